"""Loading a validated delivery into the state file, and accounting for every row it held.

Every valid row is recorded as a sighting (delivery, file, line), re-sends included; a distinct row
(by its identity, clearance.ingest.row_identity) is loaded once, in its kind's land_ table, with the
lineage of its first sighting by (export date, file, line). So the same deliveries give the same
rows, lineage and accounting in whatever order they are (re)run, and a row stays loaded while any
delivery still carries it. Bad rows go to the quarantine with their reason; the accounting of every
file (read = loaded + duplicate + quarantined) is checked, and the failure policy applied.
"""

from __future__ import annotations

import logging
from datetime import date

import duckdb
import polars as pl

from clearance.config import QuarantinePolicy
from clearance.contract import KINDS
from clearance.ingest import RAW_LINE, REASON_CODE, REASON_MESSAGE, ROW_HASH
from clearance.state import ensure_schema

log = logging.getLogger(__name__)


class AccountingError(Exception):
    """Rows were lost or counted twice, or a file has too many bad rows: the run must stop."""


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


def load_delivery(con: duckdb.DuckDBPyConnection, reports: list[dict], export_date: str,
                  policy: QuarantinePolicy) -> list[str]:
    """The night's case of load_deliveries: one delivery."""
    return load_deliveries(con, {export_date: reports}, policy)


def load_deliveries(con: duckdb.DuckDBPyConnection, deliveries: dict[str, list[dict]],
                    policy: QuarantinePolicy) -> list[str]:
    """Load every file of validated deliveries (export date -> its files) and account for every row;
    returns the export dates whose loaded rows changed (the deliveries' own and those whose rows' first
    sighting moved).

    Every valid row is recorded as a sighting (delivery, file, line), re-sends included; a distinct
    row is loaded once, with the lineage of its first sighting by (export date, file, line), so the
    same deliveries give the same rows, lineage and accounting in whatever order and however many at
    a time they are (re)loaded: a night loads its own, the catch-up (clearance.recover) many at once.
    A rerun of an export date replaces that date's sightings: a row it no longer carries stays
    loaded while another delivery still carries it. Quarantined rows are never deleted: a rerun
    finds its own already there and adds what is new.
    """
    ensure_schema(con)
    days = sorted(date.fromisoformat(d) for d in deliveries)
    con.execute("DELETE FROM file_accounting WHERE export_date IN (SELECT unnest($days))", {"days": days})
    for kind in KINDS:
        con.execute(f"CREATE OR REPLACE TEMP TABLE delivered_{kind} AS FROM land_{kind} LIMIT 0")
    con.execute("CREATE OR REPLACE TEMP TABLE delivered_sightings AS FROM row_sightings LIMIT 0")
    for export_date, reports in sorted(deliveries.items()):
        day = date.fromisoformat(export_date)
        for report in reports:
            _load_file(con, report, export_date, day)

    # the rows whose sightings change: those the dates carried before and those they carry now
    con.execute("""
        CREATE OR REPLACE TEMP TABLE resighted AS
        SELECT file_kind, row_hash FROM row_sightings WHERE export_date IN (SELECT unnest($days))
        UNION SELECT file_kind, row_hash FROM delivered_sightings""", {"days": days})
    # Their sightings so far, in the one look-up of the history by row hash: the first of them is where
    # the row is loaded now (its land_ row's lineage), the first without the dates' is where it belongs.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE prior_sightings AS
        SELECT * FROM row_sightings SEMI JOIN resighted USING (file_kind, row_hash)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE lineages AS
        WITH sightings AS (
            SELECT *, true AS is_prior, export_date IN (SELECT unnest($days)) AS is_replaced FROM prior_sightings
            UNION ALL SELECT *, false, false FROM delivered_sightings
        )
        SELECT file_kind, row_hash,
               min({'export_date': export_date, 'source_file': source_file, 'line_no': line_no}) FILTER (WHERE is_prior) AS old_lineage,
               min({'export_date': export_date, 'source_file': source_file, 'line_no': line_no}) FILTER (WHERE NOT is_replaced) AS new_lineage
        FROM sightings GROUP BY file_kind, row_hash""", {"days": days})
    con.execute("DELETE FROM row_sightings WHERE export_date IN (SELECT unnest($days))", {"days": days})
    con.execute("INSERT INTO row_sightings SELECT * FROM delivered_sightings")
    con.execute("CREATE OR REPLACE TEMP TABLE lineage_moves (old_date DATE, new_date DATE)")
    for kind in KINDS:
        _restate_loaded_rows(con, kind)
    [(dates,)] = con.execute(
        "SELECT list(DISTINCT d ORDER BY d) FROM (SELECT unnest($days) AS d UNION ALL SELECT old_date FROM lineage_moves "
        "UNION ALL SELECT new_date FROM lineage_moves) WHERE d IS NOT NULL", {"days": days}).fetchall()
    _restate_accounting(con, dates)
    check_accounting(con, dates, policy)
    if len(days) == 1:  # a night's files; the catch-up reports its deliveries itself
        for row in con.execute(
                "SELECT source_file, rows_read, rows_loaded, rows_duplicate, rows_quarantined FROM file_accounting "
                "WHERE export_date = ? ORDER BY source_file", days).fetchall():
            log.info("%s: read %d = loaded %d + duplicate %d + quarantined %d", *row)
    return [d.isoformat() for d in dates]


def _load_file(con: duckdb.DuckDBPyConnection, report: dict, export_date: str, day: date) -> None:
    """A file's valid rows into delivered_<kind> and their sightings into delivered_sightings, its bad rows
    into the quarantine, its counts into the accounting."""
    kind, name = report["kind"], report["name"]
    frame = pl.read_parquet(report["parquet"])
    valid = frame.filter(pl.col(REASON_CODE).is_null())
    con.register("delivered", _land_frame(kind, valid, export_date, name))
    con.execute(f"INSERT INTO delivered_{kind} BY NAME SELECT * FROM delivered")
    con.execute("INSERT INTO delivered_sightings SELECT ?, row_hash, export_date, source_file, line_no FROM delivered", [kind])
    con.unregister("delivered")
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
        con.unregister("bad")
        if kept != bad.height:
            raise AccountingError(f"{name}: {bad.height} rows quarantined but {kept} found in the quarantine table")
    con.execute("INSERT INTO file_accounting VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
                [day, name, kind, report["rows_in_manifest"], report["rows_read"], bad.height,
                 report["extra_columns"]])


def _restate_loaded_rows(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    """land_<kind> holds each row whose kind has a sighting once, with the lineage of its first sighting.

    The rows whose lineage moves are found in the state by their old lineage, not by row hash: its
    export date keeps DuckDB to the row groups of those dates (a night's new rows have none, and the
    history is not read at all), where a look-up by hash would read the row hashes of the whole year."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE moved AS
        SELECT row_hash, old_lineage, new_lineage FROM lineages
        WHERE file_kind = '{kind}' AND old_lineage IS DISTINCT FROM new_lineage""")
    con.execute("INSERT INTO lineage_moves SELECT old_lineage.export_date, new_lineage.export_date FROM moved")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE moved_from AS
        SELECT row_hash, old_lineage.export_date, old_lineage.source_file, old_lineage.line_no
        FROM moved WHERE old_lineage IS NOT NULL""")
    at_first_sighting = ("EXISTS (SELECT 1 FROM moved_from AS m WHERE m.export_date = l.export_date "
                         "AND m.source_file = l.source_file AND m.line_no = l.line_no AND m.row_hash = l.row_hash)")
    # the values of a row are the same in every copy: take them from the state or from tonight's files
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE restated AS
        WITH known AS (
            SELECT * EXCLUDE (export_date, source_file, line_no) FROM land_{kind} AS l WHERE {at_first_sighting}
            UNION ALL BY NAME
            SELECT * EXCLUDE (export_date, source_file, line_no) FROM delivered_{kind} SEMI JOIN moved USING (row_hash)
        ),
        one_copy AS (SELECT * FROM known QUALIFY row_number() OVER (PARTITION BY row_hash) = 1)
        SELECT one_copy.*, m.new_lineage.export_date, m.new_lineage.source_file, m.new_lineage.line_no
        FROM one_copy JOIN moved AS m USING (row_hash)
        WHERE m.new_lineage IS NOT NULL""")
    [(deleted,)] = con.execute(f"DELETE FROM land_{kind} AS l WHERE {at_first_sighting}").fetchall()
    [(expected,)] = con.execute("SELECT count(*) FROM moved_from").fetchall()
    if deleted != expected:  # a row not where its first sighting says: the state is not what loading left
        raise AccountingError(
            f"land_{kind}: {expected} loaded rows to move to another sighting, {deleted} found at their first "
            "sighting: the state file was changed outside the pipeline; rebuild it from the inbox (make recover)")
    con.execute(f"INSERT INTO land_{kind} BY NAME SELECT * FROM restated")


def _restate_accounting(con: duckdb.DuckDBPyConnection, dates: list) -> None:
    """Loaded and duplicate rows of every file of these dates, from the sightings: the first sighting of a
    row is its loaded copy, every other one a duplicate."""
    loaded = " UNION ALL ".join(
        f"SELECT export_date, source_file FROM land_{kind} WHERE export_date IN (SELECT unnest($dates))" for kind in KINDS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE file_counts AS
        WITH sighted AS (
            SELECT export_date, source_file, count(*) AS n FROM row_sightings
            WHERE export_date IN (SELECT unnest($dates)) GROUP BY ALL
        ),
        loaded AS (SELECT export_date, source_file, count(*) AS n FROM ({loaded}) GROUP BY ALL)
        SELECT a.export_date, a.source_file, coalesce(loaded.n, 0) AS loaded, coalesce(sighted.n, 0) AS sighted
        FROM file_accounting AS a
        LEFT JOIN sighted USING (export_date, source_file)
        LEFT JOIN loaded USING (export_date, source_file)
        WHERE a.export_date IN (SELECT unnest($dates))""", {"dates": dates})
    con.execute("UPDATE file_accounting AS a SET rows_loaded = c.loaded, rows_duplicate = c.sighted - c.loaded "
                "FROM file_counts AS c WHERE a.export_date = c.export_date AND a.source_file = c.source_file")


def check_accounting(con: duckdb.DuckDBPyConnection, dates: list, policy: QuarantinePolicy) -> None:
    """Every row read is loaded, a duplicate, or quarantined; bad rows stay within the failure policy."""
    unbalanced = con.execute(
        "SELECT source_file, rows_read, rows_loaded, rows_duplicate, rows_quarantined FROM file_accounting "
        "WHERE export_date IN (SELECT unnest($dates)) "
        "AND rows_read IS DISTINCT FROM rows_loaded + rows_duplicate + rows_quarantined", {"dates": dates}
    ).fetchall()
    if unbalanced:
        raise AccountingError("; ".join(
            f"{f}: read {r} != loaded {lo} + duplicate {d} + quarantined {q}" for f, r, lo, d, q in unbalanced
        ))
    too_bad = policy.breaches(con.execute(
        "SELECT source_file, rows_quarantined, rows_read FROM file_accounting "
        "WHERE export_date IN (SELECT unnest($dates)) ORDER BY export_date, source_file", {"dates": dates}).fetchall())
    if too_bad:
        raise AccountingError("; ".join(too_bad))


def quarantine_breaches(reports: list[dict], policy: QuarantinePolicy) -> list[str]:
    """The files of a validated delivery that would fail its night on their bad rows (as check_accounting
    finds them once loaded): the catch-up leaves such a delivery out before loading, as its night did."""
    counted = []
    for report in reports:
        [quarantined] = pl.scan_parquet(report["parquet"]).select(pl.col(REASON_CODE).is_not_null().sum()).collect().row(0)
        counted.append((report["name"], quarantined, report["rows_read"]))
    return policy.breaches(counted)
