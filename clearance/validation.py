"""Validate the rows of a delivery with the Great Expectations suites in expectations/.

The suites are the contract's row rules: a row that fails a row-level expectation is
quarantined with that expectation's reason_code; a failed file-level expectation stops the run.
GX runs on Arrow-backed pandas DataFrames (it cannot validate DuckDB through SQLAlchemy).
Every result is written to the validation folder beside the warehouse and kept.

One validation run per file kind holds every file of that kind: of the night's delivery, or of
many deliveries at once (the catch-up, clearance.recover). A rule's outcome for a row depends only
on the row, its file and its export date, so the two give every row the same reason: the file is a
column of the version-key rule (conflicting_version is per file) and the latest time allowed is a
column of each row (`_latest_allowed_time`, a day after its export date).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import polars as pl

from clearance.config import EXPECTATIONS_DIR
from clearance.data_docs import DataDocs
from clearance.ingest import (DUPLICATE_IN_DELIVERY, REASON_CODE, REASON_MESSAGE, ROW_HASH, SCRATCH_COMPRESSION,
                              DeliveryError)

log = logging.getLogger(__name__)

# Columns the validation adds to the rows of a run: which file, which delivery, and the row's time limit.
SOURCE_FILE, EXPORT_DATE, LATEST_ALLOWED_TIME = "_source_file", "_export_date", "_latest_allowed_time"


def load_suite_document(kind: str) -> dict:
    return json.loads((EXPECTATIONS_DIR / f"{kind}.json").read_text(encoding="utf-8"))


def suite_columns(doc: dict) -> list[str]:
    """Every column the suite's expectations look at: the only ones handed to GX (each metric it computes
    copies the rows of the frame it is given)."""
    columns = []
    for expectation in doc["expectations"]:
        kwargs = expectation["kwargs"]
        for name in [kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B"), *kwargs.get("column_list", [])]:
            if name and name not in columns:
                columns.append(name)
    return columns


def with_latest_allowed_time(frame: pl.DataFrame) -> pl.DataFrame:
    """No time may lie more than a day after the export date (contract, quirk 7): at or after export
    date + 2 days 00:00 Beijing time is too late."""
    return frame.with_columns((pl.col(EXPORT_DATE).cast(pl.Datetime("ms")) + pl.duration(days=2)).alias(LATEST_ALLOWED_TIME))


# every failing row's index is needed; the query GX would write to select them is not
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}


def results_folder(gx_root: Path) -> Path:
    """Every validation result, one JSON file each, kept (the layout of a file-backed GX project)."""
    return gx_root / "gx" / "uncommitted" / "validations"


def mark_broken_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with the wrong number of fields cannot be validated: their reason is known from ingest."""
    return frame.with_columns(
        pl.when(pl.col("_field_count_error").is_not_null()).then(pl.lit("wrong_field_count")).alias(REASON_CODE),
        pl.col("_field_count_error").alias(REASON_MESSAGE),
    )


def _import_great_expectations():
    """GX, without importing at once what only expectations this project does not use need.

    `great_expectations` imports every expectation it ships; one of them (the KL divergence) imports
    scipy.stats and altair at module level, about 1.5 s of CPU of every validating process. They are
    put in sys.modules as modules that import themselves on first use (none of our suites uses them).
    """
    import importlib
    import importlib.util
    import sys
    import types

    class ImportedOnFirstUse(types.ModuleType):
        def __getattr__(self, attribute):
            if attribute.startswith("__"):
                raise AttributeError(attribute)
            sys.modules.pop(self.__name__, None)
            real = importlib.import_module(self.__name__)
            self.__dict__.update(real.__dict__)
            return getattr(real, attribute)

    for name in ("scipy.stats", "altair"):
        if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is not None:
            sys.modules[name] = ImportedOnFirstUse(name)
    import great_expectations as gx

    for name in ("scipy.stats", "altair"):
        if isinstance(sys.modules.get(name), ImportedOnFirstUse) and not sys.modules[name].__dict__.get("__file__"):
            del sys.modules[name]  # whoever imports it next gets the real module
    _read_expectation_kwargs_once(gx)
    return gx


def _read_expectation_kwargs_once(gx) -> None:
    """GX 1.24 builds an expectation's whole configuration (pydantic .dict(), camel_to_snake) again for
    every kwarg it reads, in dict comprehensions over the domain, success and runtime keys: 7,897
    builds for one delivery, about a second of every night whatever its rows. The same methods,
    building it once per call. Only for the GX version they were read from (uv.lock)."""
    from great_expectations.expectations import expectation as module

    Expectation = module.Expectation
    if not gx.__version__.startswith("1.24.") or getattr(Expectation, "_clearance_kwargs_once", False):
        return
    original_success_kwarg = Expectation._get_success_kwarg

    def success_kwarg(self, kwargs: dict, key: str, default=None):
        if key in kwargs:
            return kwargs[key]
        field = self.__fields__.get(key)
        if field is not None:
            return field.default if not field.required else default
        return original_success_kwarg(self, key, default)  # not a field: GX's warning

    def domain_kwargs(self, kwargs: dict) -> dict:
        return {key: kwargs.get(key, self._get_default_value(key)) for key in self.domain_keys}

    def success_kwargs(self, kwargs: dict) -> dict:
        found = {key: kwargs.get(key, self._get_default_value(key)) for key in self.success_keys}
        found.update(domain_kwargs(self, kwargs))
        return found

    def _get_runtime_kwargs(self, runtime_configuration=None) -> dict:
        runtime_configuration = runtime_configuration or {}
        kwargs = self.configuration.kwargs
        runtime_kwargs = {key: runtime_configuration.get(key, success_kwarg(self, kwargs, key))
                          for key in self.runtime_keys}
        runtime_kwargs.update(success_kwargs(self, kwargs))
        runtime_kwargs["result_format"] = module.parse_result_format(runtime_kwargs["result_format"])
        return runtime_kwargs

    # GX's own, kept: tests/test_contract.py checks the two give the same kwargs for every suite's expectation
    Expectation._clearance_gx_kwargs_methods = {
        name: getattr(Expectation, name)
        for name in ("_get_success_kwarg", "_get_domain_kwargs", "_get_success_kwargs", "_get_runtime_kwargs")}
    Expectation._get_success_kwarg = lambda self, key, default=None: success_kwarg(
        self, self.configuration.kwargs, key, default)
    Expectation._get_domain_kwargs = lambda self: domain_kwargs(self, self.configuration.kwargs)
    Expectation._get_success_kwargs = lambda self: success_kwargs(self, self.configuration.kwargs)
    Expectation._get_runtime_kwargs = _get_runtime_kwargs
    Expectation._clearance_kwargs_once = True


class DeliveryValidator:
    """A Great Expectations context of this run's own: suites from expectations/, every validation
    result kept in the shared results folder beside the warehouse, Data Docs of the run's results
    built at the end (clearance.data_docs; none without docs_dir: the catch-up's runs are scratch).

    The suites and data sources live in memory, so two runs validating at once (a
    backfill beside the scheduled night) never race on GX's configuration stores; each result is
    a file of its own in the results folder."""

    def __init__(self, gx_root: Path, docs_dir: Path | None) -> None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines drown the run's log
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # GX would otherwise send usage events out
        gx = _import_great_expectations()  # heavy: imported inside the task, never at DAG parse time
        from great_expectations.data_context.types.base import (
            DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig)

        self._gx = gx
        self.docs_dir, self.gx_root = docs_dir, gx_root
        stores = InMemoryStoreBackendDefaults()
        stores.stores[stores.validation_results_store_name]["store_backend"] = {
            "class_name": "TupleFilesystemStoreBackend", "base_directory": str(results_folder(gx_root))}
        self.context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
            store_backend_defaults=stores,
            progress_bars=ProgressBarsConfig(globally=False),
            analytics_enabled=False,
        ))
        os.chmod(gx_root, 0o700)  # its stored results hold the failing values; analysts read the Data Docs
        self.docs = DataDocs(self.context, docs_dir) if docs_dir is not None else None
        self.source = self.context.data_sources.add_pandas("single_window")
        self.suites = {}

    def _suite(self, kind: str):
        """The kind's data asset, suite and the columns its expectations read.

        GX's Validator runs the suite directly: a Checkpoint and a ValidationDefinition would only add
        their freshness checks (serialising every expectation several times) and actions we do not use.
        """
        if kind not in self.suites:
            gx = self._gx
            batch = self.source.add_dataframe_asset(kind).add_batch_definition_whole_dataframe("whole_file")
            doc = load_suite_document(kind)
            suite = self.context.suites.add(
                gx.ExpectationSuite(name=doc["name"], expectations=doc["expectations"], meta=doc.get("meta", {}))
            )
            self.suites[kind] = (batch, suite, suite_columns(doc))
        return self.suites[kind]

    def _run_suite(self, kind: str, to_check, run_name: str):
        """Validate the rows with the kind's suite; the result is stored like a checkpoint stores it."""
        import datetime

        from great_expectations.core.validation_definition import DATAFRAME_REPLACEMENT_STR
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier, ValidationResultIdentifier)
        from great_expectations.validator.v1_validator import Validator

        batch, suite, _ = self._suite(kind)
        validator = Validator(batch_definition=batch, batch_parameters={"dataframe": to_check},
                              result_format=RESULT_FORMAT)
        result = validator.validate_expectation_suite(suite)
        run_id = self._gx.RunIdentifier(run_name=run_name, run_time=datetime.datetime.now(datetime.timezone.utc))
        result.meta.update(run_id=run_id, validation_time=run_id.run_time,
                           batch_parameters={"dataframe": DATAFRAME_REPLACEMENT_STR})
        identifier = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
                                                run_id=run_id, batch_identifier=validator.active_batch_id)
        self.context.validation_results_store.set(identifier, result)
        return identifier, result

    def validate_rows(self, kind: str, frame: pl.DataFrame, run_name: str) -> pl.DataFrame:
        """Return the rows of one kind (of one file or many, of one delivery or many: SOURCE_FILE and
        EXPORT_DATE say which) with REASON_CODE/REASON_MESSAGE set on every failing row."""
        frame = with_latest_allowed_time(mark_broken_rows(frame))
        _, _, columns = self._suite(kind)
        # Only rows that could be loaded are validated: not broken rows, not second copies.
        candidates = frame.select(columns).with_row_index("_frame_index").filter(
            frame[REASON_CODE].is_null() & ~frame[DUPLICATE_IN_DELIVERY])
        to_check = candidates.drop("_frame_index").to_pandas(use_pyarrow_extension_array=True)
        to_check.index = candidates["_frame_index"].to_numpy()
        identifier, result = self._run_suite(kind, to_check, run_name)
        if self.docs:
            self.docs.add(identifier, frame)  # a file refused below still gets its page

        codes, messages = frame[REASON_CODE].to_list(), frame[REASON_MESSAGE].to_list()
        for outcome in result.results:
            config = outcome.expectation_config
            meta = config.meta or {}
            if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                raise DeliveryError(run_name, f"validation could not run {config.type}: "
                                              f"{outcome.exception_info['exception_message']}")
            if outcome.success:
                continue
            if meta.get("level") == "file":
                raise DeliveryError(run_name, meta.get("message", config.type))
            column = config.kwargs.get("column") or config.kwargs.get("column_B") or ",".join(config.kwargs.get("column_list", []))
            source_column = column.split("__")[0]
            values = frame[source_column] if source_column in frame.columns else None
            for index in outcome.result.get("unexpected_index_list") or []:
                if codes[index] is None:  # the first rule a row breaks names its reason
                    codes[index] = meta["reason_code"]
                    value = values[index] if values is not None else None
                    messages[index] = f"{meta['message']} (value {value!r})" if value is not None else meta["message"]
        frame = frame.with_columns(pl.Series(REASON_CODE, codes, pl.String), pl.Series(REASON_MESSAGE, messages, pl.String))
        # a second copy of a bad row in a delivery is as bad as the first: quarantined too, never counted as a re-send
        first_reasons = frame.filter(pl.col(REASON_CODE).is_not_null() & ~pl.col(DUPLICATE_IN_DELIVERY)).select(
            EXPORT_DATE, ROW_HASH, pl.col(REASON_CODE).alias("_copy_code"), pl.col(REASON_MESSAGE).alias("_copy_message")
        ).unique([EXPORT_DATE, ROW_HASH], keep="first", maintain_order=True)
        frame = (
            frame.join(first_reasons, on=[EXPORT_DATE, ROW_HASH], how="left", maintain_order="left")
            .with_columns(
                pl.when(pl.col(REASON_CODE).is_null() & pl.col(DUPLICATE_IN_DELIVERY))
                .then(pl.col("_copy_code")).otherwise(pl.col(REASON_CODE)).alias(REASON_CODE),
                pl.when(pl.col(REASON_CODE).is_null() & pl.col(DUPLICATE_IN_DELIVERY))
                .then(pl.col("_copy_message")).otherwise(pl.col(REASON_MESSAGE)).alias(REASON_MESSAGE),
            )
            .drop("_copy_code", "_copy_message", LATEST_ALLOWED_TIME)
        )
        if self.docs:
            self.docs.add(identifier, frame)  # now with every row's reason
        return frame

    def publish_docs(self) -> None:
        """The pages of this run's results (clearance.data_docs)."""
        if self.docs:
            self.docs.publish()


def rows_of_files(reports: list[dict]) -> pl.DataFrame:
    """The rows of these files (as ingested, each report with its export date), one after the other, with
    SOURCE_FILE and EXPORT_DATE."""
    return pl.concat([
        pl.read_parquet(r["parquet"]).with_columns(
            pl.lit(r["name"]).alias(SOURCE_FILE), pl.lit(r["export_date"]).str.to_date().alias(EXPORT_DATE))
        for r in reports
    ], how="vertical")


def validate_deliveries(validator: DeliveryValidator, deliveries: dict[str, list[dict]], run_name: str) -> None:
    """Validate the files of these deliveries (export date -> its files), one run per kind; rewrite each
    file's Parquet with the reasons. A file-level fault raises DeliveryError."""
    for kind in sorted({r["kind"] for reports in deliveries.values() for r in reports}):
        files = [{**r, "export_date": day} for day, reports in sorted(deliveries.items()) for r in reports if r["kind"] == kind]
        frame = validator.validate_rows(kind, rows_of_files(files), f"{run_name} {kind}")
        # file names hold their export date (the contract, checked at ingest): the name alone says which file
        by_file = frame.partition_by(SOURCE_FILE, as_dict=True, maintain_order=True)
        for report in files:
            # a file of its header only (nothing that day) has no rows to partition: its rows are none
            rows = by_file.get((report["name"],), frame.clear()).drop(SOURCE_FILE, EXPORT_DATE)
            rows.write_parquet(report["parquet"], compression=SCRATCH_COMPRESSION)
            bad = rows.filter(pl.col(REASON_CODE).is_not_null())
            log.log(logging.INFO if len(deliveries) == 1 else logging.DEBUG, "%s: %d rows fail the contract%s",
                    report["name"], bad.height,
                    "" if bad.is_empty() else " (" + ", ".join(f"{c}: {n}" for c, n in bad[REASON_CODE].value_counts().rows()) + ")")


def validate_delivery(reports: list[dict], export_date: str, gx_root: Path, docs_dir: Path) -> list[dict]:
    """The night's validation: every file of its delivery, one run per kind, the results in Data Docs."""
    validator = DeliveryValidator(gx_root, docs_dir)
    try:
        validate_deliveries(validator, {export_date: reports}, export_date)
    finally:
        validator.publish_docs()
    return reports
