"""The pipeline's state file: loading a delivery and running the SQL models, night by night.

Everything the pipeline keeps (loaded rows, quarantine, accounting, alert state, staging, core and
mart tables) lives in one private DuckDB file, `_state/<warehouse>_state.duckdb`, which only the
pipeline opens. A night loads its delivery and updates the models in one transaction: a run that
fails or is killed leaves the state as it was. Analysts never open this file: they read the
published warehouse (clearance.publish), so no reader ever holds a lock the night needs.

The models are incremental, so a night costs what the night brings, not what the year holds:
- staging tables are rebuilt for the export dates loaded (`-- incremental: export_date`);
- the keys those rows touch (declarations, bills, vessel calls) are collected before and after,
  and every core table is recomputed for those keys only (`-- incremental: entry_id`, ...);
  a declaration is touched when its bill or its vessel call is;
- the statistics are restated for the periods the touched shipments were, or now are, released in;
- work in progress and the stalled list are measured at the run's cut-off: rebuilt every run.
A full refresh runs the same SQL over every export date; it happens on the first run, when a
model or a reference file changes, and on request (`python -m clearance.rebuild`).
"""

from __future__ import annotations

import graphlib
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from clearance.config import SEEDS_DIR, TRANSFORMS_DIR, Settings
from clearance.contract import KINDS
from clearance.ingest import DUPLICATE_IN_DELIVERY, RAW_LINE, REASON_CODE, REASON_MESSAGE, ROW_HASH

log = logging.getLogger(__name__)

MODEL_LAYERS = ("reference", "staging", "core", "marts")

# How an incremental model is keyed: the table of keys touched this run, and its columns.
INCREMENTAL_KEYS = {
    "export_date": ("affected_export_dates", ("export_date",)),
    "entry_id": ("affected_entries", ("entry_id",)),
    "bill_no": ("affected_bills", ("bill_no",)),
    "vessel_call": ("affected_calls", ("vessel_id", "voyage_no", "port_code")),
    "period": ("affected_periods", ("grain", "period_start")),
    "arrival_period": ("affected_arrival_periods", ("grain", "period_start")),
    "arrival_month": ("affected_arrival_months", ("arrival_month",)),
}

# Tables the published warehouse serves from Parquet, one file per month (clearance.publish): the
# month expression, and the order rows are written in (a shipment's rows are next to each other).
PARTITIONED_TABLES = {
    "core_shipments": ("declaration_month", "entry_id"),
    "core_clearance_events": ("declaration_month", "entry_id, event_at, event_code, container_no"),
    "mart_clearance_statistics": (
        "date_trunc('month', period_start)::DATE",
        "grain, period_start, direction, dimension, dimension_value, segment",
    ),
    "mart_arrival_cohort_statistics": (
        "date_trunc('month', period_start)::DATE",
        "grain, period_start, scope, direction, dimension, dimension_value, segment",
    ),
}


class AccountingError(Exception):
    """Rows were lost or counted twice, or a file has too many bad rows: the run must stop."""


class StateInUseError(RuntimeError):
    """Another run (or a person) holds the state file."""


def connect_state(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The pipeline's state file; fails with a clear message while another run holds it."""
    settings.state_db.parent.mkdir(parents=True, exist_ok=True)
    # no table relies on the order rows were written in: writing in parallel is faster and lighter
    config = {"memory_limit": settings.memory_limit, "preserve_insertion_order": False}
    try:
        return duckdb.connect(str(settings.state_db), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StateInUseError(
                f"{settings.state_db} is in use by another run of the pipeline (two runs at once, say "
                f"`make run` beside the scheduler); nothing was changed, run again when it is done: {exc}"
            ) from exc
        raise


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    key: str | None  # None: rebuilt every run
    select: str
    statements: tuple[str, ...]  # comments on the table and its columns

    @classmethod
    def read(cls, path: Path) -> Model:
        sql = path.read_text(encoding="utf-8")
        match = re.search(r"^-- incremental: (\w+)\s*$", sql, re.MULTILINE)
        key = match[1] if match else None
        if key is not None and key not in INCREMENTAL_KEYS:
            raise ValueError(f"{path}: unknown incremental key {key!r}; one of {', '.join(INCREMENTAL_KEYS)}")
        statements = [s.query.strip().rstrip(";") for s in duckdb.extract_statements(sql)]
        return cls(path.stem, path, key, statements[0], tuple(statements[1:]))


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
    for path in sorted((TRANSFORMS_DIR / "landing").glob("*.sql")) + sorted((TRANSFORMS_DIR / "state").glob("*.sql")):
        run_sql_file(con, path)


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
        con.register("land", _land_frame(kind, first_copies, export_date, name))
        [(loaded,)] = con.execute(
            f"INSERT INTO land_{kind} BY NAME SELECT * FROM land AS candidate WHERE NOT EXISTS "
            f"(SELECT 1 FROM land_{kind} AS known WHERE known.row_hash = candidate.row_hash)"
        ).fetchall()
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
        if bad.height:
            con.register("bad", bad)
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
            "rows_loaded": loaded,
            # second copies within the delivery, and rows loaded before from another delivery
            "rows_duplicate": (valid.height - first_copies.height) + (first_copies.height - loaded),
            "rows_quarantined": bad.height,
            "extra_columns": report["extra_columns"],
        }
        con.register("accounting_row", pl.DataFrame([row], schema_overrides={"extra_columns": pl.List(pl.String)}))
        con.execute("INSERT INTO file_accounting BY NAME SELECT * FROM accounting_row")
        for view in ("land", "bad", "accounting_row"):
            con.unregister(view)
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
            "(see the quarantine table)"
            for f, q, r in too_bad
        ))


def models_fingerprint() -> str:
    """Changes whenever a model, a DDL file or a reference file changes: then the next run is a full refresh."""
    digest = hashlib.sha256()
    for path in sorted(TRANSFORMS_DIR.rglob("*.sql")) + sorted(Path(SEEDS_DIR).glob("*.csv")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    [(n,)] = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = ?", [name]).fetchall()
    return n > 0


# Models pick the rows of the touched keys with exactly this clause; in a full refresh every key is
# touched, so the clause is left out (a join with every key costs time and changes nothing).
AFFECTED_FILTER = re.compile(r"\s*SEMI JOIN affected_\w+ USING \([\w, ]+\)")


def run_model(con: duckdb.DuckDBPyConnection, model: Model, full_refresh: bool) -> None:
    try:
        if full_refresh or model.key is None or not _table_exists(con, model.name):
            select = AFFECTED_FILTER.sub("", model.select) if full_refresh else model.select
            if full_refresh and "affected_" in select:
                raise RuntimeError("rows of touched keys must be picked with `SEMI JOIN affected_<keys> USING (...)`")
            con.execute(f"CREATE OR REPLACE TABLE {model.name} AS {select}")
            for statement in model.statements:
                con.execute(statement)
        else:
            keys, columns = INCREMENTAL_KEYS[model.key]
            match = " AND ".join(f"{model.name}.{c} IS NOT DISTINCT FROM k.{c}" for c in columns)
            con.execute(f"DELETE FROM {model.name} USING {keys} AS k WHERE {match}")
            con.execute(f"INSERT INTO {model.name} BY NAME {model.select}")
    except duckdb.Error as exc:
        raise RuntimeError(f"{model.path.relative_to(TRANSFORMS_DIR.parent)}: {exc}") from exc


# Keys touched by the staging rows of the export dates being (re)loaded, before and after.
COLLECT_CHANGED_KEYS = """
INSERT INTO changed_entries
    SELECT entry_id FROM stg_declaration_versions SEMI JOIN affected_export_dates USING (export_date)
    UNION ALL SELECT entry_id FROM stg_declaration_receipts SEMI JOIN affected_export_dates USING (export_date);
INSERT INTO changed_bills
    SELECT bill_no FROM stg_cargo_events SEMI JOIN affected_export_dates USING (export_date) WHERE bill_no IS NOT NULL
    UNION ALL SELECT bill_no FROM stg_manifest_versions SEMI JOIN affected_export_dates USING (export_date)
    WHERE bill_no IS NOT NULL;
INSERT INTO changed_calls
    SELECT vessel_id, voyage_no, port_code FROM stg_vessel_events SEMI JOIN affected_export_dates USING (export_date);
"""

# The shipments touched: their own rows changed, or those of their bill or vessel call. Their
# bill and call are those before this run's change; a declaration whose bill or call changed has
# new header rows, so it is touched itself.
AFFECTED_KEYS = """
CREATE OR REPLACE TEMP TABLE affected_bills AS SELECT DISTINCT bill_no FROM changed_bills;
CREATE OR REPLACE TEMP TABLE affected_calls AS SELECT DISTINCT vessel_id, voyage_no, port_code FROM changed_calls;
CREATE OR REPLACE TEMP TABLE affected_entries AS
    SELECT entry_id FROM changed_entries
    UNION SELECT d.entry_id FROM {declarations} AS d SEMI JOIN affected_bills USING (bill_no)
    UNION SELECT d.entry_id FROM {declarations} AS d SEMI JOIN affected_calls USING (vessel_id, voyage_no, port_code);
"""

# Release dates and declaration months of the touched shipments (before and after the change):
# the statistics periods to restate and the published months to rewrite.
COLLECT_SHIPMENT_PERIODS = """
INSERT INTO affected_shipment_periods
    SELECT release_date, declaration_month FROM core_shipments SEMI JOIN affected_entries USING (entry_id);
INSERT INTO affected_shipment_arrivals
    SELECT arrival_at::DATE FROM core_shipments SEMI JOIN affected_entries USING (entry_id) WHERE arrival_at IS NOT NULL;
"""

AFFECTED_PERIODS = """
CREATE OR REPLACE TEMP TABLE affected_periods AS
WITH release_days AS (
    SELECT DISTINCT release_date FROM affected_shipment_periods WHERE release_date IS NOT NULL
)
SELECT DISTINCT grain, period_start, period_end FROM (
    SELECT 'day' AS grain, release_date AS period_start, release_date AS period_end FROM release_days
    UNION ALL SELECT 'week', date_trunc('week', release_date)::DATE, date_trunc('week', release_date)::DATE + 6
    FROM release_days
    UNION ALL SELECT 'month', date_trunc('month', release_date)::DATE, last_day(release_date) FROM release_days
);
CREATE OR REPLACE TEMP TABLE affected_release_days AS
SELECT DISTINCT unnest(generate_series(period_start, period_end, INTERVAL 1 DAY))::DATE AS release_date
FROM affected_periods;
"""

# Arrival cohorts to restate (backlog-aware statistics, reform measure effects): those of the touched
# shipments (before and after the change), and those whose figures the move of the cut-off from the
# last run's to this run's changes. A segment of a shipment can change them when a milestone of it lies
# between the two cut-offs, or when it is open at the earlier one and has been followed for less time
# than the longest completed segment of its cohort: once censored beyond every completion, a longer
# follow-up moves no estimate. So a cohort is not recomputed every night only because an old shipment
# in it never completes.
AFFECTED_ARRIVAL_PERIODS = """
CREATE OR REPLACE TEMP TABLE affected_arrival_periods AS
WITH cutoffs AS (
    SELECT least(cutoff_at, getvariable('previous_cutoff')) AS earlier,
           greatest(cutoff_at, getvariable('previous_cutoff')) AS later
    FROM run_context
),
spans AS (
    SELECT sp.arrival_date, sp.direction, sp.segment,
           greatest(sp.arrival_at, sp.declared_at, sp.started_at) > c.earlier
               OR (sp.ended_at > c.earlier AND sp.ended_at <= c.later) AS is_changed,
           -- as the mart measures it: whole minutes
           round(date_diff('second', sp.started_at, c.earlier) / 60) / 60.0 AS open_hours
    FROM core_segment_spans AS sp, cutoffs AS c
    WHERE c.earlier < c.later AND sp.is_counted AND greatest(sp.arrival_at, sp.declared_at, sp.started_at) <= c.later
        AND (greatest(sp.arrival_at, sp.declared_at, sp.started_at) > c.earlier OR sp.ended_at IS NULL
             OR sp.ended_at > c.earlier)
),
cohorts AS (
    SELECT 'day' AS grain, arrival_date AS period_start, * FROM spans
    UNION ALL SELECT 'week', date_trunc('week', arrival_date)::DATE, * FROM spans
    UNION ALL SELECT 'month', date_trunc('month', arrival_date)::DATE, * FROM spans
),
moved_by_cutoff AS (
    SELECT DISTINCT c.grain, c.period_start
    FROM cohorts AS c
    LEFT JOIN mart_arrival_cohort_statistics AS m
        ON m.grain = c.grain AND m.period_start = c.period_start AND m.scope = 'liaoning' AND m.direction = c.direction
        AND m.dimension = 'all' AND m.segment = c.segment
    WHERE c.is_changed OR m.grain IS NULL OR c.open_hours < m.longest_completed_hours
),
touched AS (
    SELECT DISTINCT arrival_date FROM affected_shipment_arrivals
)
SELECT DISTINCT grain, period_start, CASE grain WHEN 'day' THEN period_start WHEN 'week' THEN period_start + 6
                                               ELSE last_day(period_start) END AS period_end
FROM (
    SELECT grain, period_start FROM moved_by_cutoff
    UNION ALL SELECT 'day', arrival_date FROM touched
    UNION ALL SELECT 'week', date_trunc('week', arrival_date)::DATE FROM touched
    UNION ALL SELECT 'month', date_trunc('month', arrival_date)::DATE FROM touched
);
CREATE OR REPLACE TEMP TABLE affected_arrival_days AS
SELECT DISTINCT unnest(generate_series(period_start, period_end, INTERVAL 1 DAY))::DATE AS arrival_date
FROM affected_arrival_periods;
CREATE OR REPLACE TEMP TABLE affected_arrival_months AS
SELECT period_start AS arrival_month FROM affected_arrival_periods WHERE grain = 'month';
"""


def run_models(con: duckdb.DuckDBPyConnection, business_date: str, export_dates: list[str] | None = None,
               full_refresh: bool = False) -> dict:
    """Bring every model up to date with the export dates just (re)loaded, for the business date's cut-off.

    Without export dates, or when the models or reference data changed since the last run, every
    table is rebuilt from all loaded rows. Returns what was done, for the log and the benchmark.
    """
    ensure_schema(con)
    fingerprint = models_fingerprint()
    stored = con.execute("SELECT fingerprint FROM model_fingerprint").fetchall()
    models = [Model.read(p) for p in model_files()]
    full_refresh = (
        full_refresh or export_dates is None or stored != [(fingerprint,)]
        or not all(_table_exists(con, m.name) for m in models)
    )
    build_id = uuid.uuid4().hex
    previous_cutoff = con.execute("SELECT max(cutoff_at) FROM run_context").fetchall()[0][0] \
        if _table_exists(con, "run_context") else None
    cutoff = datetime.combine(date.fromisoformat(business_date) + timedelta(days=1), datetime.min.time())
    con.execute("CREATE OR REPLACE TABLE run_context AS SELECT ?::DATE AS business_date, ?::TIMESTAMP AS cutoff_at, "
                "?::VARCHAR AS build_id, ?::BOOLEAN AS was_full_refresh",
                [business_date, cutoff, build_id, full_refresh])
    con.execute("COMMENT ON TABLE run_context IS 'The business date the warehouse was last built for'")
    con.execute("COMMENT ON COLUMN run_context.business_date IS 'Business date (Beijing) of the latest run'")
    con.execute("COMMENT ON COLUMN run_context.cutoff_at IS 'Cut-off: end of the business date, Beijing time'")
    con.execute("COMMENT ON COLUMN run_context.build_id IS 'Identifies the run that built it: publishing checks it'")
    con.execute("COMMENT ON COLUMN run_context.was_full_refresh IS 'Every table was rebuilt from all loaded rows'")
    con.execute("SET VARIABLE seeds_dir = ?", [str(SEEDS_DIR)])
    con.execute("SET VARIABLE previous_cutoff = ?::TIMESTAMP", [previous_cutoff or cutoff])

    con.execute("CREATE OR REPLACE TEMP TABLE affected_export_dates (export_date DATE)")
    if full_refresh:
        con.execute("INSERT INTO affected_export_dates " + " UNION ".join(
            f"SELECT DISTINCT export_date FROM land_{kind}" for kind in KINDS))
    else:
        con.execute("INSERT INTO affected_export_dates SELECT DISTINCT unnest(?::DATE[])", [export_dates])
    con.execute("CREATE OR REPLACE TEMP TABLE changed_entries (entry_id VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE changed_bills (bill_no VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE changed_calls (vessel_id VARCHAR, voyage_no VARCHAR, port_code VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE affected_shipment_periods (release_date DATE, declaration_month DATE)")
    con.execute("CREATE OR REPLACE TEMP TABLE affected_shipment_arrivals (arrival_date DATE)")

    layer = {m.name: m.path.parent.name for m in models}
    if not full_refresh:
        con.execute(COLLECT_CHANGED_KEYS)  # rows about to be replaced
    for model in (m for m in models if layer[m.name] in ("reference", "staging")):
        run_model(con, model, full_refresh)
    con.execute(COLLECT_CHANGED_KEYS)  # rows as now loaded
    if full_refresh:
        con.execute(AFFECTED_KEYS.format(declarations="(SELECT NULL::VARCHAR AS entry_id, NULL::VARCHAR AS bill_no, "
                                         "NULL::VARCHAR AS vessel_id, NULL::VARCHAR AS voyage_no, "
                                         "NULL::VARCHAR AS port_code WHERE false)"))
    else:
        con.execute(AFFECTED_KEYS.format(declarations="core_declarations"))
        con.execute(COLLECT_SHIPMENT_PERIODS)
    for model in (m for m in models if layer[m.name] == "core"):
        run_model(con, model, full_refresh)
    con.execute(COLLECT_SHIPMENT_PERIODS)
    con.execute(AFFECTED_PERIODS)
    if not full_refresh:  # (a full refresh computes every cohort)
        con.execute(AFFECTED_ARRIVAL_PERIODS)
    for model in (m for m in models if layer[m.name] == "marts"):
        run_model(con, model, full_refresh)

    # months of the published Parquet files to rewrite (all of them after a full refresh)
    for table, (month, _order) in PARTITIONED_TABLES.items():
        if full_refresh:
            source = f"SELECT DISTINCT {month} FROM {table} UNION SELECT partition_month FROM published_partitions " \
                     f"WHERE table_name = '{table}'"
        elif table == "mart_clearance_statistics":
            source = "SELECT DISTINCT date_trunc('month', period_start)::DATE FROM affected_periods"
        elif table == "mart_arrival_cohort_statistics":
            source = "SELECT DISTINCT date_trunc('month', period_start)::DATE FROM affected_arrival_periods"
        else:
            source = "SELECT DISTINCT declaration_month FROM affected_shipment_periods WHERE declaration_month IS NOT NULL"
        con.execute(f"INSERT INTO dirty_partitions SELECT '{table}', m FROM ({source}) AS t(m) "
                    f"EXCEPT SELECT table_name, partition_month FROM dirty_partitions")
    con.execute("DELETE FROM model_fingerprint")
    con.execute("INSERT INTO model_fingerprint VALUES (?, now())", [fingerprint])
    [(entries, bills, calls, periods)] = con.execute(
        "SELECT (SELECT count(*) FROM affected_entries), (SELECT count(*) FROM affected_bills), "
        "(SELECT count(*) FROM affected_calls), (SELECT count(*) FROM affected_periods)").fetchall()
    outcome = {"build_id": build_id, "business_date": business_date, "full_refresh": full_refresh, "affected_entries": entries,
               "affected_bills": bills, "affected_calls": calls, "affected_periods": periods}
    log.info("models %s: %s", "rebuilt in full" if full_refresh else "updated", outcome)
    return outcome


def build_warehouse(settings: Settings, reports: list[dict], business_date: str) -> str:
    """Load the night's delivery and bring the models up to date, in one transaction. Returns the build id."""
    con = connect_state(settings)
    try:
        con.execute("BEGIN TRANSACTION")
        load_delivery(con, reports, business_date, settings.max_quarantine_share)
        outcome = run_models(con, business_date, [business_date])
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return outcome["build_id"]


def rebuild(settings: Settings, business_date: str | None = None) -> dict:
    """Full refresh: every staging, core and mart table rebuilt from all loaded rows."""
    con = connect_state(settings)
    try:
        if business_date is None:
            rows = con.execute("SELECT business_date::VARCHAR FROM run_context").fetchall() \
                if _table_exists(con, "run_context") else []
            if not rows:
                raise RuntimeError(f"{settings.state_db}: nothing loaded yet; run a night first")
            business_date = rows[0][0]
        con.execute("BEGIN TRANSACTION")
        outcome = run_models(con, business_date, full_refresh=True)
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return outcome


def check_build(con: duckdb.DuckDBPyConnection, build_id: str, business_date: str) -> None:
    """The state is still what this run built: no other run rebuilt it in between."""
    rows = con.execute("SELECT build_id, business_date::VARCHAR FROM run_context").fetchall()
    if rows != [(build_id, business_date)]:
        built_for = rows[0][1] if rows else "nothing"
        raise RuntimeError(
            f"the state was rebuilt by another run (business date {built_for}) after this run built it; "
            f"nothing published for {business_date}, rerun business date {business_date}"
        )
