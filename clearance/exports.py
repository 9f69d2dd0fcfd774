"""Analyst exports of the published warehouse, for tools other than DuckDB.

- The marts as Parquet, partitioned by month (hive style: `<table>/month=YYYY-MM/*.parquet`), in a new
  folder each night; `parquet` is a symbolic link switched to it atomically, so readers never see a
  half-written export. The monthly files of the big tables are hard links to the published
  warehouse's own Parquet files (no copy); the small marts are written out.
- The clearance event log as XES (IEEE 1849), gzip-compressed, readable by process-mining tools:
  one file per month of declaration in `event_log/`, one trace per shipment (declaration), one
  event per milestone event, times with the +08:00 offset. Only the months whose events changed
  are written again.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from clearance.models import exported_tables
from clearance.publish import sql_literal


def export_parquet(con: duckdb.DuckDBPyConnection, link: Path, business_date: str, keep: int = 2) -> Path:
    """Lay out every mart under a new folder beside `link`, then point `link` at it."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    target = link.with_name(f"{link.name}-{business_date}-{stamp}")
    target.mkdir(parents=True)
    for table, month, file in con.execute(
            "SELECT table_name, strftime(partition_month, '%Y-%m'), file FROM published_files").fetchall():
        folder = target / table / f"month={month}"
        folder.mkdir(parents=True, exist_ok=True)
        os.link(file, folder / "data_0.parquet")
    for table, month in exported_tables().items():
        # table and expression come from the models' headers; COPY takes no parameter for its path
        con.execute(f"COPY (SELECT *, {month} AS month FROM {table}) TO {sql_literal(str(target / table))} "
                    "(FORMAT parquet, PARTITION_BY (month), WRITE_PARTITION_COLUMNS false)")
    for path in [target, *target.rglob("*")]:
        if path.is_dir() or path.stat().st_nlink == 1:  # the linked files are the warehouse's, read-only
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

# One XML line per event, built by DuckDB (in parallel, not row by row in Python); the first event
# of a trace opens it and the last closes it. Attribute values are escaped as xml.sax.saxutils.quoteattr does.
XES_LINES = """
WITH events AS (
    SELECT e.entry_id, s.direction, s.port_code, s.declaring_office_code, s.clearance_status, e.event_code,
           strftime(e.event_at, '%Y-%m-%dT%H:%M:%S.%g+08:00') AS event_time, e.source_kind, e.container_no,
           row_number() OVER trace AS position, count(*) OVER (PARTITION BY e.entry_id) AS trace_events
    FROM core_clearance_events AS e
    JOIN core_shipments AS s USING (entry_id)
    WHERE e.declaration_month = $month AND s.declaration_month = $month AND e.event_at IS NOT NULL
    WINDOW trace AS (PARTITION BY e.entry_id ORDER BY e.event_at, e.event_code, e.container_no NULLS FIRST)
)
SELECT
    CASE WHEN position = 1 THEN '  <trace>' || xes_attr('string', 'concept:name', entry_id)
        || xes_attr('string', 'direction', direction) || xes_attr('string', 'port', port_code)
        || xes_attr('string', 'office', declaring_office_code)
        || xes_attr('string', 'clearance_status', clearance_status) || chr(10) ELSE '' END
    || '    <event>' || xes_attr('string', 'concept:name', event_code) || xes_attr('date', 'time:timestamp', event_time)
    || xes_attr('string', 'lifecycle:transition', 'complete') || xes_attr('string', 'source', source_kind)
    || CASE WHEN container_no IS NOT NULL AND container_no <> '' THEN xes_attr('string', 'container', container_no) ELSE '' END
    || '</event>' || chr(10)
    || CASE WHEN position = trace_events THEN '  </trace>' || chr(10) ELSE '' END AS line
FROM events
ORDER BY entry_id, position
"""

XES_MACROS = """
CREATE OR REPLACE TEMP MACRO xml_quote(v) AS '"' || replace(replace(replace(replace(replace(replace(replace(
    coalesce(v, 'None'), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), chr(10), '&#10;'),
    chr(13), '&#13;'), chr(9), '&#9;') || '"';
CREATE OR REPLACE TEMP MACRO xes_attr(kind, key, v) AS '<' || kind || ' key=' || xml_quote(key) || ' value=' || xml_quote(v) || '/>';
"""


def _text_of(lines: pa.Array) -> bytes | memoryview:
    """The lines end in a newline and are never null: the array's string buffer is the text itself."""
    if len(lines) and lines.null_count == 0 and (pa.types.is_string(lines.type) or pa.types.is_large_string(lines.type)):
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32 if pa.types.is_string(lines.type) else np.int64)
        return memoryview(lines.buffers()[2])[offsets[lines.offset]:offsets[lines.offset + len(lines)]]
    return "".join(line for line in lines.to_pylist() if line).encode()


def export_xes_month(con: duckdb.DuckDBPyConnection, month: str, out: Path) -> Path:
    """The event log of the shipments declared in one month, as gzip XES, replacing `out` atomically."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    con.execute(XES_MACROS)
    reader = con.sql(XES_LINES, params={"month": month}).to_arrow_reader(200_000)
    with gzip.open(tmp, "wb", compresslevel=3) as xes:
        xes.write(XES_HEADER.encode())
        for batch in reader:
            xes.write(_text_of(batch.column(0)))
        xes.write(b"</log>\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return out


def export_xes(con: duckdb.DuckDBPyConnection, folder: Path) -> list[Path]:
    """Write the event log of every month whose events file changed since the last export."""
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    # by the file's name, not its path: a warehouse folder copied or moved elsewhere names the same
    # files by other paths (each name is written once, with its night and a time stamp)
    current = {month: Path(file).name for month, file in con.execute(
        "SELECT strftime(partition_month, '%Y-%m'), file FROM published_files "
        "WHERE table_name = 'core_clearance_events'").fetchall()}
    written = []
    for month, source in sorted(current.items()):
        out = folder / f"clearance_events-{month}.xes.gz"
        if index.get(month) != source or not out.exists():
            written.append(export_xes_month(con, f"{month}-01", out))
            index[month] = source
    for month in set(index) - set(current):
        (folder / f"clearance_events-{month}.xes.gz").unlink(missing_ok=True)
        del index[month]
    tmp = index_path.with_name(f".index.{os.getpid()}.json")
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    os.replace(tmp, index_path)
    return written


def export_for_analysts(warehouse: Path, parquet_link: Path, event_log_dir: Path, business_date: str) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        folder = export_parquet(con, parquet_link, business_date)
        written = export_xes(con, event_log_dir)
    return {"parquet": str(folder), "xes_months_written": [str(p) for p in written]}
