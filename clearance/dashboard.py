"""The nightly dashboard: one self-contained HTML file, charts drawn in the page by the plotly.js
bundled with the plotly package (inlined, so the file opens with no network at all).

    python -m clearance.dashboard [--warehouse PATH] [--out PATH]

Every figure comes from one query below on the published warehouse; the page filters them by port
and direction in the browser.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb

from clearance.config import settings

# Each query yields rows with a `port` and a `direction` column ('all' for the total over them), so
# the page can filter every figure the same way.
QUERIES = {
    # overall clearance time by day of release, against the targets
    "daily": """
        SELECT period_start AS day, direction, CASE dimension WHEN 'all' THEN 'all' ELSE dimension_value END AS port,
               shipments, median_hours, p90_hours, share_within_target
        FROM mart_clearance_statistics
        WHERE grain = 'day' AND segment = 'overall_clearance' AND dimension IN ('all', 'port')
        ORDER BY day, direction, port""",
    # where the time goes: mean hours of each segment, released shipments of the whole period
    "segments": """
        WITH released AS (SELECT * FROM core_shipments WHERE is_counted AND released_at IS NOT NULL),
        long AS (
            UNPIVOT (SELECT port_code, direction, anchorage_wait_hours, pre_declaration_hours,
                            customs_processing_hours, inspection_hours, port_exit_hours FROM released)
            ON anchorage_wait_hours, pre_declaration_hours, customs_processing_hours, inspection_hours, port_exit_hours
            INTO NAME segment VALUE hours)
        SELECT coalesce(port_code, 'all') AS port, coalesce(direction, 'all') AS direction,
               replace(segment, '_hours', '') AS segment, count(*) AS shipments, avg(hours) AS mean_hours
        FROM long
        GROUP BY GROUPING SETS ((port_code, direction, segment), (direction, segment), (port_code, segment), (segment))
        ORDER BY ALL""",
    # berthing delay (anchorage wait) per port
    "berthing": """
        SELECT coalesce(port_code, 'all') AS port, 'import' AS direction, count(*) AS shipments,
               median(anchorage_wait_hours) AS median_hours, quantile_cont(anchorage_wait_hours, 0.9) AS p90_hours
        FROM core_shipments
        WHERE is_counted AND anchorage_wait_hours IS NOT NULL
        GROUP BY GROUPING SETS ((port_code), ())
        ORDER BY ALL""",
    # distribution of customs processing (release delay)
    "release_delay": """
        WITH binned AS (
            SELECT port_code, direction, CASE
                WHEN customs_processing_hours < 1 THEN '0-1' WHEN customs_processing_hours < 2 THEN '1-2'
                WHEN customs_processing_hours < 4 THEN '2-4' WHEN customs_processing_hours < 8 THEN '4-8'
                WHEN customs_processing_hours < 24 THEN '8-24' WHEN customs_processing_hours < 48 THEN '24-48'
                ELSE '48+' END AS hours_bin
            FROM core_shipments WHERE is_counted AND customs_processing_hours IS NOT NULL)
        SELECT coalesce(port_code, 'all') AS port, coalesce(direction, 'all') AS direction, hours_bin,
               count(*) AS shipments
        FROM binned
        GROUP BY GROUPING SETS ((port_code, direction, hours_bin), (direction, hours_bin), (port_code, hours_bin), (hours_bin))
        ORDER BY ALL""",
    # the commodity groups singled out, with and without their reform measures
    "commodities": """
        WITH released AS (SELECT * FROM core_shipments WHERE is_counted AND overall_clearance_hours IS NOT NULL
                          AND commodity_group IN ('ores', 'grain', 'auto_parts')),
        by_measure AS (
            SELECT port_code, direction, commodity_group, v.measure,
                   list_contains(reform_measures, v.measure) AS applied, overall_clearance_hours
            FROM released
            CROSS JOIN (VALUES ('release_before_inspection'), ('ship_side'), ('advance_declaration')) AS v(measure))
        SELECT coalesce(port_code, 'all') AS port, coalesce(direction, 'all') AS direction, commodity_group,
               measure, applied, count(*) AS shipments, median(overall_clearance_hours) AS median_hours
        FROM by_measure
        GROUP BY GROUPING SETS ((port_code, direction, commodity_group, measure, applied),
                                (direction, commodity_group, measure, applied),
                                (port_code, commodity_group, measure, applied), (commodity_group, measure, applied))
        ORDER BY ALL""",
    # inspection share and inspection time
    "inspection": """
        SELECT coalesce(port_code, 'all') AS port, coalesce(direction, 'all') AS direction,
               count(*) AS shipments, count(*) FILTER (WHERE is_inspected) AS inspected,
               count(*) FILTER (WHERE is_inspected) / count(*) AS inspected_share,
               median(inspection_hours) AS median_inspection_hours
        FROM core_shipments WHERE is_counted AND released_at IS NOT NULL
        GROUP BY GROUPING SETS ((port_code, direction), (direction), (port_code), ())
        ORDER BY ALL""",
    # work in progress by office and stage
    "wip": """
        SELECT coalesce(port_code, 'all') AS port, coalesce(direction, 'all') AS direction,
               declaring_office_code AS office, open_stage AS stage, count(*) AS shipments,
               max(hours_in_stage) AS longest_hours
        FROM mart_work_in_progress
        GROUP BY GROUPING SETS ((port_code, direction, office, stage), (direction, office, stage),
                                (port_code, office, stage), (office, stage))
        ORDER BY ALL""",
    # the stalled list, oldest first
    "stalled": """
        SELECT office_code AS office, coalesce(entry_id, '') AS entry_id, bill_no, stage, stage_label_zh, stage_label,
               strftime(stage_since, '%Y-%m-%d %H:%M') AS since, hours_in_stage, threshold_hours, is_escalated,
               port_code AS port, direction, coalesce(vessel_id, '') AS vessel_id, coalesce(voyage_no, '') AS voyage_no,
               coalesce(owner_name, '') AS owner_name
        FROM mart_stalled_shipments
        ORDER BY stage_since, alert_key
        LIMIT 500""",
    # data quality: rows per delivery, quarantined by reason, late rows
    "accounting": """
        SELECT export_date, sum(rows_read) AS rows_read, sum(rows_loaded) AS rows_loaded,
               sum(rows_duplicate) AS rows_duplicate, sum(rows_quarantined) AS rows_quarantined, count(*) AS files
        FROM file_accounting GROUP BY export_date ORDER BY export_date""",
    "quarantine_reasons": """
        SELECT reason_code, count(*) AS rows_quarantined FROM quarantine GROUP BY reason_code ORDER BY 2 DESC, 1""",
    "late_rows": """
        SELECT export_date, late_rows, rows_loaded FROM mart_delivery_timeliness ORDER BY export_date""",
    "validation": """
        SELECT export_date, count(*) AS files, count(*) FILTER (WHERE rows_quarantined > 0) AS files_with_failing_rows,
               sum(rows_quarantined) AS rows_failing
        FROM file_accounting GROUP BY export_date ORDER BY export_date DESC LIMIT 7""",
    "findings": """SELECT finding, count(*) AS findings FROM mart_data_quality_findings GROUP BY finding ORDER BY 1""",
    "ports": """SELECT port_code AS code, port_name_zh AS zh, port_name AS en FROM ref_ports ORDER BY port_code""",
    "offices": """SELECT office_code AS code, office_name_zh AS zh, office_name AS en FROM ref_customs_offices""",
    "targets": """SELECT target_code, direction, target_hours, label FROM ref_clearance_targets
                  WHERE district_code IS NULL ORDER BY direction, target_hours DESC""",
    "run": """SELECT business_date, cutoff_at FROM run_context""",
}


def _plain(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def dashboard_data(con: duckdb.DuckDBPyConnection) -> dict:
    data = {}
    for name, sql in QUERIES.items():
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description]
        data[name] = [{c: _plain(v) for c, v in zip(columns, row)} for row in cur.fetchall()]
    data["ports_seen"] = sorted({r["port"] for r in data["daily"] if r["port"] != "all"})
    return data


def render(data: dict) -> str:
    import plotly.offline

    template = (Path(__file__).with_name("dashboard_template.html")).read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return (template.replace("/*PLOTLY_JS*/", plotly.offline.get_plotlyjs())
            .replace("/*DASHBOARD_DATA*/", payload))


def build_dashboard(warehouse: Path, out: Path) -> Path:
    """Write the dashboard of the published warehouse; replace the previous one atomically."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        page = render(dashboard_data(con))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, default=settings().warehouse)
    parser.add_argument("--out", type=Path, default=settings().dashboard)
    args = parser.parse_args(argv)
    print(build_dashboard(args.warehouse, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
