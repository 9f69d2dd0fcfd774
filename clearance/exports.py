"""Analyst exports of the published warehouse, for tools other than DuckDB.

- The marts as Parquet, partitioned by month (hive style: `<table>/month=YYYY-MM/*.parquet`), in a new
  folder each night; `parquet` is a symbolic link switched to it atomically, so readers never see a
  half-written export.
- The clearance event log as XES (IEEE 1849), gzip-compressed, readable by process-mining tools:
  one trace per shipment (declaration), one event per milestone event, times with the +08:00 offset.
"""

from __future__ import annotations

import gzip
import os
import shutil
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import quoteattr

import duckdb

# table → the month it is partitioned by
PARQUET_TABLES = {
    "core_shipments": "strftime(coalesce(released_at, declared_at), '%Y-%m')",
    "mart_clearance_statistics": "strftime(period_start, '%Y-%m')",
    "mart_work_in_progress": "strftime(business_date, '%Y-%m')",
    "mart_stalled_shipments": "strftime(business_date, '%Y-%m')",
    "mart_data_quality_findings": "'all'",
    "core_clearance_events": "strftime(event_at, '%Y-%m')",
}


def export_parquet(con: duckdb.DuckDBPyConnection, link: Path, business_date: str, keep: int = 2) -> Path:
    """Write every mart under a new folder beside `link`, then point `link` at it."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    target = link.with_name(f"{link.name}-{business_date}-{stamp}")
    target.mkdir(parents=True)
    for table, month in PARQUET_TABLES.items():
        # table and expression are this module's constants, never values read from a file; COPY takes no
        # parameter for its path, so the path is quoted as a SQL string literal
        path = str(target / table).replace("'", "''")
        con.execute(f"COPY (SELECT *, {month} AS month FROM {table}) TO '{path}' "
                    "(FORMAT parquet, PARTITION_BY (month), WRITE_PARTITION_COLUMNS false)")
    for path in [target, *target.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    tmp_link = link.with_name(f".{link.name}.{os.getpid()}")
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(target.name)
    os.replace(tmp_link, link)
    exports = sorted(link.parent.glob(f"{link.name}-*"), key=lambda p: p.stat().st_mtime_ns)
    for old in exports[: max(len(exports) - keep, 0)]:
        if old != target:
            shutil.rmtree(old)
    return target


XES_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1849-2016" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">
  <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>
  <extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>
  <extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>
  <global scope="trace"><string key="concept:name" value="__INVALID__"/></global>
  <global scope="event">
    <string key="concept:name" value="__INVALID__"/>
    <date key="time:timestamp" value="1970-01-01T00:00:00.000+08:00"/>
  </global>
  <classifier name="Activity" keys="concept:name"/>
  <string key="concept:name" value="Liaoning customs clearance event log"/>
"""

EVENTS = """
    SELECT e.entry_id, s.direction, s.port_code, s.declaring_office_code, s.clearance_status,
           e.event_code, strftime(e.event_at, '%Y-%m-%dT%H:%M:%S.%g+08:00') AS event_time, e.source_kind,
           e.container_no
    FROM core_clearance_events AS e
    JOIN core_shipments AS s USING (entry_id)
    WHERE e.event_at IS NOT NULL
    ORDER BY e.entry_id, e.event_at, e.event_code, e.container_no NULLS FIRST
"""


def _attribute(kind: str, key: str, value) -> str:
    return f"<{kind} key={quoteattr(key)} value={quoteattr(str(value))}/>"


def export_xes(con: duckdb.DuckDBPyConnection, out: Path) -> Path:
    """Stream the event log into `out` (gzip XES), replacing it atomically."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as xes:
        xes.write(XES_HEADER)
        cursor = con.execute(EVENTS)
        current = None
        while batch := cursor.fetchmany(50_000):
            for entry_id, direction, port, office, status, code, time, source, box in batch:
                if entry_id != current:
                    if current is not None:
                        xes.write("  </trace>\n")
                    xes.write("  <trace>" + _attribute("string", "concept:name", entry_id)
                              + _attribute("string", "direction", direction) + _attribute("string", "port", port)
                              + _attribute("string", "office", office)
                              + _attribute("string", "clearance_status", status) + "\n")
                    current = entry_id
                xes.write("    <event>" + _attribute("string", "concept:name", code)
                          + _attribute("date", "time:timestamp", time)
                          + _attribute("string", "lifecycle:transition", "complete")
                          + _attribute("string", "source", source)
                          + (_attribute("string", "container", box) if box else "") + "</event>\n")
        if current is not None:
            xes.write("  </trace>\n")
        xes.write("</log>\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return out


def export_for_analysts(warehouse: Path, parquet_link: Path, event_log: Path, business_date: str) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        folder = export_parquet(con, parquet_link, business_date)
        log = export_xes(con, event_log)
    return {"parquet": str(folder), "xes": str(log)}
