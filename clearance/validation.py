"""Validate each file of a delivery with the Great Expectations suites in expectations/.

The suites are the contract's row rules: a row that fails a row-level expectation is
quarantined with that expectation's reason_code; a failed file-level expectation stops the run.
GX runs on Arrow-backed pandas DataFrames (it cannot validate DuckDB through SQLAlchemy).
Every result is written to the validation folder beside the warehouse and kept.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import polars as pl

from clearance.config import EXPECTATIONS_DIR
from clearance.ingest import DUPLICATE_IN_DELIVERY, REASON_CODE, REASON_MESSAGE, ROW_HASH, DeliveryError

log = logging.getLogger(__name__)


def load_suite_document(kind: str) -> dict:
    return json.loads((EXPECTATIONS_DIR / f"{kind}.json").read_text(encoding="utf-8"))


def latest_allowed_time(export_date: str) -> str:
    """No time may lie more than a day after the export date (contract, quirk 7)."""
    return (date.fromisoformat(export_date) + timedelta(days=2)).strftime("%Y-%m-%d 00:00:00")


# Data Docs pages load Bootstrap, jQuery, fonts and a logo from public servers; analysts' machines
# may have no network and nothing may be fetched at view time, so every such reference is removed
# (the pages stay readable, plainly styled).
_EXTERNAL_TAG = re.compile(
    r"<(?:script|link|img|iframe|source|embed|video|audio|input)\b[^>]*\s(?:src|href)\s*=\s*[\"']?(?:https?:)?//"
    r"[^>]*>(?:\s*</script>)?",
    re.I,
)
_EXTERNAL_CSS_URL = re.compile(r"url\(\s*[\"']?(?:https?:)?//[^)]*\)", re.I)


_LOCAL_STYLE = (
    "<style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}.ok{color:#1a7f37}.fail{color:#b42318;font-weight:bold}</style>"
)


def results_folder(gx_root: Path) -> Path:
    """Every validation result, one JSON file each, kept (the layout of a file-backed GX project)."""
    return gx_root / "gx" / "uncommitted" / "validations"


def written_since(folder: Path, since: float) -> list[Path]:
    """The files and folders GX wrote or changed in this run: earlier runs' pages are already done."""
    return [p for p in [folder, *folder.rglob("*")] if p.stat().st_mtime >= since]


def strip_external_assets(pages: list[Path]) -> None:
    for page in (p for p in pages if p.suffix in (".html", ".css") and p.is_file()):
        text = page.read_text(encoding="utf-8")
        cleaned = _EXTERNAL_CSS_URL.sub("none", _EXTERNAL_TAG.sub("", text))
        if page.suffix == ".html" and _LOCAL_STYLE not in cleaned:
            cleaned = cleaned.replace("</head>", _LOCAL_STYLE + "</head>", 1)
        if cleaned != text:
            page.write_text(cleaned, encoding="utf-8")


def index_row(docs_dir: Path, gx_root: Path, page: Path) -> dict | None:
    """One line of the index: a validation result page and the counts of its stored result."""
    relative = page.relative_to(docs_dir / "validations")
    result_file = results_folder(gx_root) / relative.with_suffix(".json")
    if not result_file.exists():
        return None
    result = json.loads(result_file.read_text(encoding="utf-8"))
    stats = result.get("statistics", {})
    suite, run_name, run_time = relative.parts[0], relative.parts[1], relative.parts[2]
    return {"run_name": run_name, "run_time": run_time, "suite": suite, "success": result.get("success"),
            "met": f"{stats.get('successful_expectations', '')}/{stats.get('evaluated_expectations', '')}",
            "failed_rows": sum((r.get("result") or {}).get("unexpected_count") or 0 for r in result.get("results", [])),
            "link": str(page.relative_to(docs_dir))}


def write_index(docs_dir: Path, gx_root: Path, new_pages: list[Path]) -> None:
    """GX's own index lists the runs with JavaScript from a CDN; this one is plain HTML, newest first.

    The lines of earlier runs are kept in index.json, so a night reads only its own results.
    """
    listing = docs_dir / "index.json"
    rows = {r["link"]: r for r in json.loads(listing.read_text(encoding="utf-8"))} if listing.exists() else {}
    for page in new_pages:
        if (row := index_row(docs_dir, gx_root, page)) is not None:
            rows[row["link"]] = row
    ordered = sorted(rows.values(), key=lambda r: (r["run_name"], r["run_time"]), reverse=True)
    listing.write_text(json.dumps(ordered, ensure_ascii=False), encoding="utf-8")
    body = "".join(
        f"<tr><td>{html.escape(r['run_name'])}</td><td>{html.escape(r['suite'])}</td><td>{html.escape(r['run_time'])}</td>"
        f"<td class=\"{'ok' if r['success'] else 'fail'}\">{'passed' if r['success'] else 'rows failed'}</td>"
        f"<td>{html.escape(r['met'])}</td><td>{r['failed_rows']}</td>"
        f"<td><a href=\"{html.escape(quote(r['link']))}\">result</a></td></tr>"
        for r in ordered
    )
    (docs_dir / "index.html").write_text(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Validation results</title>"
        f"{_LOCAL_STYLE}</head><body><h1>数据校验结果 Validation results of the single-window deliveries</h1>"
        "<p>One row per delivery file and run, newest first. Rows that fail an expectation are quarantined "
        "(table <code>quarantine</code> of the warehouse); a failed file-level expectation stops the run. "
        "Suites: <a href=\"expectations/\">expectations/</a>.</p>"
        "<table><thead><tr><th>delivery file</th><th>suite</th><th>run (UTC)</th><th>outcome</th>"
        "<th>expectations met</th><th>failing values</th><th></th></tr></thead>"
        f"<tbody>{body}</tbody></table></body></html>",
        encoding="utf-8",
    )


def make_world_readable(paths: list[Path]) -> None:
    """Analysts read; only the pipeline's user writes."""
    for path in paths:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def mark_broken_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with the wrong number of fields cannot be validated: their reason is known from ingest."""
    return frame.with_columns(
        pl.when(pl.col("_field_count_error").is_not_null()).then(pl.lit("wrong_field_count")).alias(REASON_CODE),
        pl.col("_field_count_error").alias(REASON_MESSAGE),
    )


class DeliveryValidator:
    """A Great Expectations context of this run's own: suites from expectations/, every validation
    result kept in the shared results folder beside the warehouse, Data Docs built from them.

    The suites, checkpoints and data sources live in memory, so two runs validating at once (a
    backfill beside the scheduled night) never race on GX's configuration stores; each result is
    a file of its own in the results folder."""

    SITE = "clearance"

    def __init__(self, gx_root: Path, docs_dir: Path) -> None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines drown the run's log
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # GX would otherwise send usage events out
        import great_expectations as gx  # heavy: imported inside the task, never at DAG parse time
        from great_expectations.data_context.types.base import (
            DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig)

        self._gx = gx
        self.docs_dir, self.gx_root = docs_dir, gx_root
        self.started = time.time() - 1  # file times may be rounded to the second
        stores = InMemoryStoreBackendDefaults()
        stores.stores[stores.validation_results_store_name]["store_backend"] = {
            "class_name": "TupleFilesystemStoreBackend", "base_directory": str(results_folder(gx_root))}
        self.context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
            store_backend_defaults=stores,
            progress_bars=ProgressBarsConfig(globally=False),
            analytics_enabled=False,
            data_docs_sites={self.SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            }},
        ))
        self.source = self.context.data_sources.add_pandas("single_window")
        self.checkpoints = {}
        self.results, self.suites = [], set()

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
        to_check = candidates.drop("_raw_line").to_pandas(use_pyarrow_extension_array=True)
        to_check.index = candidates["_frame_index"].to_list()
        checkpoint_result = self._checkpoint(kind).run(
            batch_parameters={"dataframe": to_check},
            expectation_parameters={"latest_allowed_time": latest_allowed_time(export_date)},
            run_id=self._gx.RunIdentifier(run_name=f"{export_date} {name}"),
        )
        [(identifier, result)] = checkpoint_result.run_results.items()
        self.results.append(identifier)
        self.suites.add(result.suite_name)

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
        return (
            frame.join(first_reasons, on=ROW_HASH, how="left", maintain_order="left")
            .with_columns(
                pl.when(pl.col(REASON_CODE).is_null() & pl.col(DUPLICATE_IN_DELIVERY))
                .then(pl.col("_copy_code")).otherwise(pl.col(REASON_CODE)).alias(REASON_CODE),
                pl.when(pl.col(REASON_CODE).is_null() & pl.col(DUPLICATE_IN_DELIVERY))
                .then(pl.col("_copy_message")).otherwise(pl.col(REASON_MESSAGE)).alias(REASON_MESSAGE),
            )
            .drop("_copy_code", "_copy_message")
        )

    def publish_docs(self) -> None:
        """The pages of this delivery's results (and of the suites), then the plain index."""
        if not self.results:
            return
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        suites = [ExpectationSuiteIdentifier(name=name) for name in sorted(self.suites)]
        self.context.build_data_docs(site_names=[self.SITE], resource_identifiers=[*suites, *self.results],
                                     build_index=False)
        written = written_since(self.docs_dir, self.started)
        strip_external_assets(written)
        write_index(self.docs_dir, self.gx_root, [p for p in written if p.suffix == ".html"
                                                  and p.is_relative_to(self.docs_dir / "validations")])
        make_world_readable(written_since(self.docs_dir, self.started))


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
