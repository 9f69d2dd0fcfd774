"""Validate each file of a delivery with the Great Expectations suites in expectations/.

The suites are the contract's row rules: a row that fails a row-level expectation is
quarantined with that expectation's reason_code; a failed file-level expectation stops the run.
GX runs on Arrow-backed pandas DataFrames (it cannot validate DuckDB through SQLAlchemy).
Every result is written to the validation folder beside the warehouse and kept.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from clearance.config import EXPECTATIONS_DIR
from clearance.ingest import DUPLICATE_IN_DELIVERY, REASON_CODE, REASON_MESSAGE, DeliveryError

log = logging.getLogger(__name__)


def load_suite_document(kind: str) -> dict:
    return json.loads((EXPECTATIONS_DIR / f"{kind}.json").read_text(encoding="utf-8"))


def latest_allowed_time(export_date: str) -> str:
    """No time may lie more than a day after the export date (contract, quirk 7)."""
    return (date.fromisoformat(export_date) + timedelta(days=2)).strftime("%Y-%m-%d 00:00:00")


class DeliveryValidator:
    """One ephemeral GX context for a run; one suite per file kind."""

    def __init__(self) -> None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines drown the run's log
        import great_expectations as gx  # heavy: imported inside the task, never at DAG parse time
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.asset = self.context.data_sources.add_pandas("single_window").add_dataframe_asset("delivery_file")
        self.batch_definition = self.asset.add_batch_definition_whole_dataframe("whole_file")
        self.definitions = {}

    def _definition(self, kind: str):
        if kind not in self.definitions:
            doc = load_suite_document(kind)
            suite = self.context.suites.add(
                self._gx.ExpectationSuite(name=doc["name"], expectations=doc["expectations"], meta=doc.get("meta", {}))
            )
            self.definitions[kind] = self.context.validation_definitions.add(
                self._gx.ValidationDefinition(name=f"validate_{kind}", data=self.batch_definition, suite=suite)
            )
        return self.definitions[kind]

    def validate_file(self, parquet: Path, kind: str, name: str, export_date: str, results_dir: Path) -> pl.DataFrame:
        """Return the file's rows with REASON_CODE/REASON_MESSAGE set on every failing row."""
        frame = pl.read_parquet(parquet)
        frame = frame.with_columns(
            pl.when(pl.col("_field_count_error").is_not_null()).then(pl.lit("wrong_field_count")).alias(REASON_CODE),
            pl.col("_field_count_error").alias(REASON_MESSAGE),
        )
        # Only rows that could be loaded are validated: not broken rows, not second copies.
        candidates = frame.with_row_index("_frame_index").filter(
            pl.col(REASON_CODE).is_null() & ~pl.col(DUPLICATE_IN_DELIVERY)
        )
        to_check = candidates.drop("_raw_line").to_pandas(use_pyarrow_extension_array=True)
        to_check.index = candidates["_frame_index"].to_list()
        result = self._definition(kind).run(
            batch_parameters={"dataframe": to_check},
            expectation_parameters={"latest_allowed_time": latest_allowed_time(export_date)},
            result_format={"result_format": "COMPLETE"},
        )
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / f"{name}.json").write_text(
            json.dumps(result.to_json_dict(), ensure_ascii=False, indent=1, default=str), encoding="utf-8"
        )

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
        return frame.with_columns(pl.Series(REASON_CODE, codes, pl.String), pl.Series(REASON_MESSAGE, messages, pl.String))


def validate_delivery(reports: list[dict], export_date: str, results_dir: Path) -> list[dict]:
    """Validate every file; rewrite its Parquet with the reasons; add the counts to the report."""
    validator = DeliveryValidator()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    out = []
    for report in reports:
        parquet = Path(report["parquet"])
        frame = validator.validate_file(parquet, report["kind"], report["name"], export_date, results_dir / export_date / stamp)
        frame.write_parquet(parquet)
        bad = frame.filter(pl.col(REASON_CODE).is_not_null())
        log.info("%s: %d rows fail the contract%s", report["name"], bad.height,
                 "" if bad.is_empty() else " (" + ", ".join(f"{c}: {n}" for c, n in bad[REASON_CODE].value_counts().rows()) + ")")
        out.append({**report, "rows_invalid": bad.height})
    return out
