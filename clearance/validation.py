"""Validate each file of a delivery with the Great Expectations suites in expectations/.

The suites are the contract's row rules: a row that fails a row-level expectation is
quarantined with that expectation's reason_code; a failed file-level expectation stops the run.
GX runs on Arrow-backed pandas DataFrames (it cannot validate DuckDB through SQLAlchemy).
Every result is written to the validation folder beside the warehouse and kept.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from clearance.config import EXPECTATIONS_DIR
from clearance.data_docs import DataDocs
from clearance.ingest import DUPLICATE_IN_DELIVERY, REASON_CODE, REASON_MESSAGE, ROW_HASH, DeliveryError

log = logging.getLogger(__name__)


def load_suite_document(kind: str) -> dict:
    return json.loads((EXPECTATIONS_DIR / f"{kind}.json").read_text(encoding="utf-8"))


def latest_allowed_time(export_date: str) -> str:
    """No time may lie more than a day after the export date (contract, quirk 7)."""
    return (date.fromisoformat(export_date) + timedelta(days=2)).strftime("%Y-%m-%d 00:00:00")


def results_folder(gx_root: Path) -> Path:
    """Every validation result, one JSON file each, kept (the layout of a file-backed GX project)."""
    return gx_root / "gx" / "uncommitted" / "validations"


def mark_broken_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with the wrong number of fields cannot be validated: their reason is known from ingest."""
    return frame.with_columns(
        pl.when(pl.col("_field_count_error").is_not_null()).then(pl.lit("wrong_field_count")).alias(REASON_CODE),
        pl.col("_field_count_error").alias(REASON_MESSAGE),
    )


class DeliveryValidator:
    """A Great Expectations context of this run's own: suites from expectations/, every validation
    result kept in the shared results folder beside the warehouse, Data Docs of the delivery's results
    built at the end (clearance.data_docs).

    The suites, checkpoints and data sources live in memory, so two runs validating at once (a
    backfill beside the scheduled night) never race on GX's configuration stores; each result is
    a file of its own in the results folder."""

    def __init__(self, gx_root: Path, docs_dir: Path) -> None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines drown the run's log
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # GX would otherwise send usage events out
        import great_expectations as gx  # heavy: imported inside the task, never at DAG parse time
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
        self.docs = DataDocs(self.context, docs_dir)
        self.source = self.context.data_sources.add_pandas("single_window")
        self.checkpoints = {}

    def _checkpoint(self, kind: str):
        if kind not in self.checkpoints:
            gx = self._gx
            try:
                asset = self.source.get_asset(kind)
            except LookupError:
                asset = self.source.add_dataframe_asset(kind)
            try:
                batch = asset.get_batch_definition("whole_file")
            except (KeyError, LookupError):
                batch = asset.add_batch_definition_whole_dataframe("whole_file")
            doc = load_suite_document(kind)
            suite = self.context.suites.add_or_update(
                gx.ExpectationSuite(name=doc["name"], expectations=doc["expectations"], meta=doc.get("meta", {}))
            )
            definition = self.context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=f"validate_{kind}", data=batch, suite=suite)
            )
            self.checkpoints[kind] = self.context.checkpoints.add_or_update(gx.Checkpoint(
                name=f"single_window_{kind}",
                validation_definitions=[definition],
                # Data Docs are built once for the whole delivery (publish_docs), without GX's index,
                # which reads every result ever stored
                actions=[],
                result_format={"result_format": "COMPLETE"},
            ))
        return self.checkpoints[kind]

    def validate_file(self, parquet: Path, kind: str, name: str, export_date: str) -> pl.DataFrame:
        """Return the file's rows with REASON_CODE/REASON_MESSAGE set on every failing row."""
        frame = mark_broken_rows(pl.read_parquet(parquet))
        # Only rows that could be loaded are validated: not broken rows, not second copies.
        candidates = frame.with_row_index("_frame_index").filter(
            pl.col(REASON_CODE).is_null() & ~pl.col(DUPLICATE_IN_DELIVERY)
        )
        to_check = candidates.drop("_raw_line", ROW_HASH).to_pandas(use_pyarrow_extension_array=True)
        to_check.index = candidates["_frame_index"].to_list()
        checkpoint_result = self._checkpoint(kind).run(
            batch_parameters={"dataframe": to_check},
            expectation_parameters={"latest_allowed_time": latest_allowed_time(export_date)},
            run_id=self._gx.RunIdentifier(run_name=f"{export_date} {name}"),
        )
        [(identifier, result)] = checkpoint_result.run_results.items()
        self.docs.add(identifier, name, frame)  # a file refused below still gets its page

        codes, messages = frame[REASON_CODE].to_list(), frame[REASON_MESSAGE].to_list()
        for outcome in result.results:
            config = outcome.expectation_config
            meta = config.meta or {}
            if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                raise DeliveryError(name, f"validation could not run {config.type}: {outcome.exception_info['exception_message']}")
            if outcome.success:
                continue
            if meta.get("level") == "file":
                raise DeliveryError(name, meta.get("message", config.type))
            column = config.kwargs.get("column") or ",".join(config.kwargs.get("column_list", []))
            source_column = column.split("__")[0]
            for index in outcome.result.get("unexpected_index_list") or []:
                if codes[index] is None:  # the first rule a row breaks names its reason
                    codes[index] = meta["reason_code"]
                    value = frame[source_column][index] if source_column in frame.columns else None
                    messages[index] = f"{meta['message']} (value {value!r})" if value is not None else meta["message"]
        frame = frame.with_columns(pl.Series(REASON_CODE, codes, pl.String), pl.Series(REASON_MESSAGE, messages, pl.String))
        # a second copy of a bad row is as bad as the first: quarantined too, never counted as a re-send
        first_reasons = frame.filter(pl.col(REASON_CODE).is_not_null() & ~pl.col(DUPLICATE_IN_DELIVERY)).select(
            ROW_HASH, pl.col(REASON_CODE).alias("_copy_code"), pl.col(REASON_MESSAGE).alias("_copy_message")
        ).unique(ROW_HASH, keep="first")
        frame = (
            frame.join(first_reasons, on=ROW_HASH, how="left", maintain_order="left")
            .with_columns(
                pl.when(pl.col(REASON_CODE).is_null() & pl.col(DUPLICATE_IN_DELIVERY))
                .then(pl.col("_copy_code")).otherwise(pl.col(REASON_CODE)).alias(REASON_CODE),
                pl.when(pl.col(REASON_CODE).is_null() & pl.col(DUPLICATE_IN_DELIVERY))
                .then(pl.col("_copy_message")).otherwise(pl.col(REASON_MESSAGE)).alias(REASON_MESSAGE),
            )
            .drop("_copy_code", "_copy_message")
        )
        self.docs.add(identifier, name, frame)  # now with every row's reason
        return frame

    def publish_docs(self) -> None:
        """The pages of this delivery's results (clearance.data_docs)."""
        self.docs.publish()


def validate_delivery(reports: list[dict], export_date: str, gx_root: Path, docs_dir: Path) -> list[dict]:
    """Validate every file; rewrite its Parquet with the reasons; add the counts to the report."""
    validator = DeliveryValidator(gx_root, docs_dir)
    out = []
    try:
        for report in reports:
            parquet = Path(report["parquet"])
            frame = validator.validate_file(parquet, report["kind"], report["name"], export_date)
            frame.write_parquet(parquet)
            bad = frame.filter(pl.col(REASON_CODE).is_not_null())
            log.info("%s: %d rows fail the contract%s", report["name"], bad.height,
                     "" if bad.is_empty() else " (" + ", ".join(f"{c}: {n}" for c, n in bad[REASON_CODE].value_counts().rows()) + ")")
            out.append(report)
    finally:
        validator.publish_docs()
    return out
