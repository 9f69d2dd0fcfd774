"""Publish the warehouse analysts open: a new DuckDB file each night, swapped in with one rename.

Analysts hold the published file open read-only; DuckDB's file lock would make a writer fail and a
writer would block every reader. So the published file is never written once it is live: each
night builds a new one beside it and `os.replace`s it over the live path. Readers that opened
the old file keep reading it whole; new readers see the new one.

The big tables (shipments, their events, the statistics) are not copied into it every night,
which would cost what the whole history holds. They are Parquet files, one per month, written
once and never changed: a night rewrites only the months its data touched (as new files) and the
published file's views name the current file of every month. Small tables (work in progress,
stalled shipments, findings, accounting, alert state, reference data) are copied in whole.
Files no published version names any more are deleted.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

import duckdb

from clearance.config import TRANSFORMS_DIR, Settings
from clearance.models import copied_tables, monthly_parquet_tables
from clearance.state import connect_state, private_folder
from clearance.warehouse import check_build

log = logging.getLogger(__name__)


def build_path(settings: Settings, business_date: str) -> Path:
    return settings.work_dir / f"{settings.warehouse.stem}-{business_date}.building.duckdb"


def sql_literal(text: str) -> str:
    """A SQL string literal, for the statements that take no parameter (COPY's path, COMMENT ON)."""
    return "'" + text.replace("'", "''") + "'"


def write_dirty_partitions(con: duckdb.DuckDBPyConnection, settings: Settings, business_date: str) -> list[tuple]:
    """Write a new Parquet file for every month whose rows changed; returns (table, month, rows)."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    written = []
    dirty = con.execute("SELECT table_name, partition_month FROM dirty_partitions ORDER BY ALL").fetchall()
    publications = monthly_parquet_tables()
    for table, month in dirty:
        month_expr, order = publications[table].month, publications[table].order_by
        folder = settings.partitions_dir / table
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{month:%Y-%m}.{business_date}.{stamp}.parquet"
        # COPY takes no parameter for its path; the path is built here from a table name and dates
        [(rows,)] = con.execute(
            f"COPY (SELECT * FROM {table} WHERE {month_expr} = ? ORDER BY {order}) TO {sql_literal(str(path))} "
            "(FORMAT parquet, COMPRESSION zstd)", [month]).fetchall()
        con.execute("DELETE FROM published_partitions WHERE table_name = ? AND partition_month = ?", [table, month])
        if rows:
            os.chmod(path, 0o444)
            # relative to the warehouse folder: the folder can move with everything in it
            con.execute("INSERT INTO published_partitions VALUES (?, ?, ?, ?, ?)",
                        [table, month, str(path.relative_to(settings.warehouse_dir)), rows, business_date])
        else:  # the month has no rows any more
            path.unlink()
        written.append((table, month, rows))
    con.execute("DELETE FROM dirty_partitions")
    return written


def fill_published(con: duckdb.DuckDBPyConnection, warehouse_dir: Path) -> None:
    """Create the tables and views of the published file (attached as `published`) from the state."""
    [(state,)] = con.execute("SELECT current_database()").fetchall()
    con.execute("USE published")
    con.execute((TRANSFORMS_DIR / "macros.sql").read_text(encoding="utf-8"))  # analysts use them too
    con.execute(f"USE \"{state}\"")
    for table in copied_tables():
        con.execute(f"CREATE TABLE published.{table} AS FROM \"{state}\".main.{table}")
    for table in monthly_parquet_tables():
        files = [str(warehouse_dir / f) for (f,) in con.execute(
            "SELECT file FROM published_partitions WHERE table_name = ? ORDER BY partition_month", [table]).fetchall()]
        if files:
            listing = ", ".join(sql_literal(f) for f in files)
            con.execute(f"CREATE VIEW published.{table} AS SELECT * FROM read_parquet([{listing}])")
        else:
            con.execute(f"CREATE TABLE published.{table} AS FROM \"{state}\".main.{table} LIMIT 0")
    con.execute("CREATE TABLE published.published_files AS SELECT table_name, partition_month, ? || '/' || file AS file, "
                "row_count FROM published_partitions ORDER BY ALL", [str(warehouse_dir)])
    con.execute("COMMENT ON TABLE published.published_files IS " + sql_literal(
        f"The Parquet files behind {', '.join(monthly_parquet_tables())}: one per month, never rewritten"))
    for column, text in (("table_name", "Table (a view over its files)"), ("partition_month", "First day of the month"),
                         ("file", "Absolute path of the Parquet file"), ("row_count", "Rows in the file")):
        con.execute(f"COMMENT ON COLUMN published.published_files.{column} IS {sql_literal(text)}")
    # the comments of every table and column travel with it (one script: a statement each costs more)
    published = dict(con.execute(
        "SELECT table_name, 'TABLE' FROM duckdb_tables() WHERE database_name = 'published' "
        "UNION ALL SELECT view_name, 'VIEW' FROM duckdb_views() WHERE database_name = 'published'").fetchall())
    comments = [f"COMMENT ON {published[table]} published.{table} IS {sql_literal(comment)};"
                for table, comment in con.execute(
                    "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = ? AND comment IS NOT NULL",
                    [state]).fetchall() if table in published]
    comments += [f"COMMENT ON COLUMN published.{table}.{column} IS {sql_literal(comment)};"
                 for table, column, comment in con.execute(
                     "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE database_name = ? "
                     "AND comment IS NOT NULL", [state]).fetchall() if table in published]
    if comments:
        con.execute("\n".join(comments))


def referenced_files(settings: Settings) -> set[str]:
    """Parquet files some kept published file (live or in versions/) still names."""
    keep = set()
    for catalog in [settings.warehouse, *settings.versions_dir.glob(f"{settings.warehouse.stem}.*.duckdb")]:
        if catalog.exists():
            with duckdb.connect(str(catalog), read_only=True) as con:
                keep.update(f for (f,) in con.execute("SELECT file FROM published_files").fetchall())
    return keep


def remove_unreferenced_partitions(settings: Settings, current: set[str]) -> int:
    keep = current | referenced_files(settings)
    removed = 0
    for path in settings.partitions_dir.glob("*/*.parquet"):
        if str(path) not in keep:
            path.unlink()
            removed += 1
    return removed


def publish(settings: Settings, build_id: str, business_date: str) -> Path:
    """Write the months that changed, build the next published file, and swap it in atomically.

    The published file is also linked into versions/ (a hard link: no copy, and the file is never
    written again), and only the newest `keep_versions` of those are kept.
    """
    target = build_path(settings, business_date)
    private_folder(settings.work_dir)
    for leftover in (target, target.with_name(target.name + ".wal")):
        leftover.unlink(missing_ok=True)  # from a run that was killed
    con = connect_state(settings)
    try:
        check_build(con, build_id, business_date)
        con.execute(f"ATTACH {sql_literal(str(target))} AS published")
        con.execute("BEGIN TRANSACTION")
        written = write_dirty_partitions(con, settings, business_date)
        con.execute("COMMIT")
        fill_published(con, settings.warehouse_dir)
        current = {str(settings.warehouse_dir / f) for (f,) in con.execute("SELECT file FROM published_partitions").fetchall()}
        con.execute("DETACH published")
    finally:
        con.close()
    if target.with_name(target.name + ".wal").exists():
        raise RuntimeError(f"{target}: write-ahead log left over; the build was not closed cleanly")
    os.chmod(target, 0o444)  # published files are never written again: everyone reads, nobody writes
    settings.versions_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    os.link(target, settings.versions_dir / f"{settings.warehouse.stem}.{business_date}.{stamp}.duckdb")
    # Clean up before the swap, so that the swap is the last thing that can fail: a run that fails
    # has published nothing, a run that swapped has succeeded. The live file is still kept here, and
    # the files of the new one are named in versions/.
    versions = sorted(settings.versions_dir.glob(f"{settings.warehouse.stem}.*.duckdb"), key=lambda p: p.stat().st_mtime_ns)
    for old in versions[: max(len(versions) - settings.keep_versions, 0)]:
        old.unlink()
    removed = remove_unreferenced_partitions(settings, current)
    os.replace(target, settings.warehouse)
    log.info("published %s (business date %s): %d monthly files rewritten, %d old ones removed",
             settings.warehouse, business_date, len(written), removed)
    return settings.warehouse
