"""Build the next warehouse file beside the live one, load a delivery into it, run the SQL models,
and publish it with one atomic rename.

Analysts hold the published file open read-only; DuckDB's file lock would make a writer fail, and
a writer would block every reader. So the live file is never written: each run copies it to a
private build file, works there, and `os.replace`s the result over the live path. Readers that
already opened the old file keep reading it; new readers see the new one whole.
"""

from __future__ import annotations

import graphlib
import json
import logging
import os
import re
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from clearance.config import SEEDS_DIR, TRANSFORMS_DIR, Settings
from clearance.contract import KINDS
from clearance.ingest import DUPLICATE_IN_DELIVERY, RAW_LINE, REASON_CODE, REASON_MESSAGE, ROW_HASH

log = logging.getLogger(__name__)

MODEL_LAYERS = ("reference", "staging", "core", "marts")


class AccountingError(Exception):
    """Rows were lost or counted twice, or a file has too many bad rows: the run must stop."""


def build_path(settings: Settings, business_date: str) -> Path:
    return settings.work_dir / f"{settings.warehouse.stem}-{business_date}.building.duckdb"


def live_identity(path: Path) -> list | None:
    """Which file the live path is: a publish replaces it with another inode."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def start_build(settings: Settings, business_date: str) -> Path:
    """A private copy of the live warehouse (or a new file) for this run to write."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    target = build_path(settings, business_date)
    for leftover in (target, target.with_name(target.name + ".wal")):
        leftover.unlink(missing_ok=True)  # from a run that was killed
    base = live_identity(settings.warehouse)
    if base is not None:
        shutil.copyfile(settings.warehouse, target)
    # what the build started from: publishing checks nobody published in between
    target.with_name(target.name + ".base.json").write_text(json.dumps(base))
    return target


def model_files() -> list[Path]:
    """SQL models in run order: layer by layer, and within a layer after the models they read."""
    ordered: list[Path] = []
    for layer in MODEL_LAYERS:
        files = {p.stem: p for p in sorted((TRANSFORMS_DIR / layer).glob("*.sql"))}
        graph = graphlib.TopologicalSorter()
        for name, path in files.items():
            sql = path.read_text(encoding="utf-8")
            graph.add(name, *(other for other in files if other != name and re.search(rf"\b{other}\b", sql)))
        ordered.extend(files[name] for name in graph.static_order())
    return ordered


def run_sql_file(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        con.execute(path.read_text(encoding="utf-8"))
    except duckdb.Error as exc:
        raise RuntimeError(f"{path.relative_to(TRANSFORMS_DIR.parent)}: {exc}") from exc


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    run_sql_file(con, TRANSFORMS_DIR / "macros.sql")
    run_sql_file(con, TRANSFORMS_DIR / "landing" / "landing_tables.sql")
    run_sql_file(con, TRANSFORMS_DIR / "state" / "alert_state.sql")


def _land_frame(kind: str, frame: pl.DataFrame, export_date: str, source_file: str) -> pl.DataFrame:
    """The valid rows of a file, typed, in the land_ table's column names."""
    spec = KINDS[kind]
    columns = []
    for c in spec.columns:
        if c in spec.times:
            columns.append(pl.col(f"{c}__parsed").alias(c.lower()))
        elif c == "GROSS_WT":
            columns.append(pl.col("GROSS_WT__value").alias("gross_wt"))
        else:
            columns.append(pl.col(c).alias(c.lower()))
    return frame.select(
        *columns,
        pl.lit(date.fromisoformat(export_date)).alias("export_date"),
        pl.lit(source_file).alias("source_file"),
        pl.col("_line_no").alias("line_no"),
        pl.col(ROW_HASH).alias("row_hash"),
    )


def load_delivery(con: duckdb.DuckDBPyConnection, reports: list[dict], export_date: str, max_quarantine_share: float) -> list[dict]:
    """Load every file of a validated delivery; account for every row.

    A rerun of an export date first removes what that date loaded before, so reruns are exact.
    Quarantined rows are never deleted: a rerun finds its own already there and adds what is new.
    A row already loaded from another delivery is a duplicate (at-least-once delivery).
    """
    ensure_schema(con)
    day = date.fromisoformat(export_date)
    for kind in KINDS:
        con.execute(f"DELETE FROM land_{kind} WHERE export_date = ?", [day])
    con.execute("DELETE FROM file_accounting WHERE export_date = ?", [day])

    accounting = []
    for report in reports:
        kind, name = report["kind"], report["name"]
        frame = pl.read_parquet(report["parquet"])
        valid = frame.filter(pl.col(REASON_CODE).is_null())
        first_copies = valid.filter(~pl.col(DUPLICATE_IN_DELIVERY))
        land = _land_frame(kind, first_copies, export_date, name)
        new_rows = con.sql(
            f"SELECT * FROM land AS candidate WHERE NOT EXISTS "
            f"(SELECT 1 FROM land_{kind} AS known WHERE known.row_hash = candidate.row_hash)"
        ).pl()
        con.execute(f"INSERT INTO land_{kind} BY NAME SELECT * FROM new_rows")
        bad = frame.filter(pl.col(REASON_CODE).is_not_null()).select(
            pl.lit(day).alias("export_date"),
            pl.lit(name).alias("source_file"),
            pl.lit(kind).alias("file_kind"),
            pl.col("_line_no").alias("line_no"),
            pl.col(RAW_LINE).alias("raw_line"),
            pl.col(REASON_CODE).alias("reason_code"),
            pl.col(REASON_MESSAGE).alias("reason_message"),
            pl.when(pl.col(REASON_CODE) != "wrong_field_count").then(pl.col(ROW_HASH)).alias("row_hash"),
        )
        con.execute(
            "INSERT INTO quarantine BY NAME SELECT * FROM bad WHERE NOT EXISTS (SELECT 1 FROM quarantine AS q "
            "WHERE q.export_date = bad.export_date AND q.source_file = bad.source_file AND q.line_no = bad.line_no "
            "AND q.raw_line = bad.raw_line)"
        )
        [(kept,)] = con.execute(
            "SELECT count(*) FROM bad SEMI JOIN quarantine AS q USING (export_date, source_file, line_no, raw_line)"
        ).fetchall()
        if kept != bad.height:
            raise AccountingError(f"{name}: {bad.height} rows quarantined but {kept} found in the quarantine table")
        row = {
            "export_date": day,
            "source_file": name,
            "file_kind": kind,
            "rows_in_manifest": report["rows_in_manifest"],
            "rows_read": report["rows_read"],
            "rows_loaded": new_rows.height,
            # second copies within the delivery, and rows loaded before from another delivery
            "rows_duplicate": (valid.height - first_copies.height) + (first_copies.height - new_rows.height),
            "rows_quarantined": bad.height,
            "extra_columns": report["extra_columns"],
        }
        accounting_row = pl.DataFrame([row], schema_overrides={"extra_columns": pl.List(pl.String)})
        con.execute("INSERT INTO file_accounting BY NAME SELECT * FROM accounting_row")
        accounting.append(row)
        log.info("%s: read %d = loaded %d + duplicate %d + quarantined %d", name, row["rows_read"],
                 row["rows_loaded"], row["rows_duplicate"], row["rows_quarantined"])
    check_accounting(con, export_date, max_quarantine_share)
    return accounting


def check_accounting(con: duckdb.DuckDBPyConnection, export_date: str, max_quarantine_share: float) -> None:
    """Every row read is loaded, a duplicate, or quarantined; bad rows stay below the allowed share."""
    day = date.fromisoformat(export_date)
    unbalanced = con.execute(
        "SELECT source_file, rows_read, rows_loaded, rows_duplicate, rows_quarantined FROM file_accounting "
        "WHERE export_date = ? AND rows_read <> rows_loaded + rows_duplicate + rows_quarantined",
        [day],
    ).fetchall()
    if unbalanced:
        raise AccountingError("; ".join(
            f"{f}: read {r} != loaded {lo} + duplicate {d} + quarantined {q}" for f, r, lo, d, q in unbalanced
        ))
    too_bad = con.execute(
        "SELECT source_file, rows_quarantined, rows_read FROM file_accounting "
        "WHERE export_date = ? AND rows_read > 0 AND rows_quarantined > ? * rows_read",
        [day, max_quarantine_share],
    ).fetchall()
    if too_bad:
        raise AccountingError("; ".join(
            f"{f}: {q} of {r} rows quarantined, more than the allowed {max_quarantine_share:.1%} "
            "(see the quarantine table of the build file)"
            for f, q, r in too_bad
        ))


def run_models(con: duckdb.DuckDBPyConnection, business_date: str) -> None:
    """Rebuild every reference, staging, core and mart table for the business date's cut-off."""
    ensure_schema(con)
    cutoff = datetime.combine(date.fromisoformat(business_date) + timedelta(days=1), datetime.min.time())
    con.execute("CREATE OR REPLACE TABLE run_context AS SELECT ?::DATE AS business_date, ?::TIMESTAMP AS cutoff_at",
                [business_date, cutoff])
    con.execute("COMMENT ON TABLE run_context IS 'The business date the warehouse was last built for'")
    con.execute("COMMENT ON COLUMN run_context.business_date IS 'Business date (Beijing) of the latest run'")
    con.execute("COMMENT ON COLUMN run_context.cutoff_at IS 'Cut-off: end of the business date, Beijing time'")
    con.execute("SET VARIABLE seeds_dir = ?", [str(SEEDS_DIR)])
    for path in model_files():
        log.info("model %s/%s", path.parent.name, path.stem)
        run_sql_file(con, path)


def build_warehouse(settings: Settings, reports: list[dict], business_date: str) -> str:
    """Copy the live warehouse, load the night's delivery, rebuild the models. Returns the build path."""
    target = start_build(settings, business_date)
    con = duckdb.connect(str(target))
    try:
        load_delivery(con, reports, business_date, settings.max_quarantine_share)
        run_models(con, business_date)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return str(target)


def publish(settings: Settings, built: Path, business_date: str) -> Path:
    """Make the build the live warehouse in one atomic step; readers never see half of it.

    The published file is also linked into versions/ (a hard link: no copy, and the file is never
    written again), and only the newest `keep_versions` of those are kept.
    """
    built = Path(built)
    if built.with_name(built.name + ".wal").exists():
        raise RuntimeError(f"{built}: write-ahead log left over; the build was not closed cleanly")
    base_file = built.with_name(built.name + ".base.json")
    if json.loads(base_file.read_text()) != live_identity(settings.warehouse):
        # two runs at once (say `make run` beside the scheduler): the later publish would drop the
        # other's night, so it refuses; rerun this date
        raise RuntimeError(f"{settings.warehouse} was published by another run after this run copied it; "
                           f"nothing published, rerun business date {business_date}")
    base_file.unlink()
    os.chmod(built, 0o444)  # published files are never written again: everyone reads, nobody writes
    settings.versions_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    os.link(built, settings.versions_dir / f"{settings.warehouse.stem}.{business_date}.{stamp}.duckdb")
    os.replace(built, settings.warehouse)
    versions = sorted(settings.versions_dir.glob(f"{settings.warehouse.stem}.*.duckdb"), key=lambda p: p.stat().st_mtime_ns)
    for old in versions[: max(len(versions) - settings.keep_versions, 0)]:
        old.unlink()
    log.info("published %s (business date %s)", settings.warehouse, business_date)
    return settings.warehouse
