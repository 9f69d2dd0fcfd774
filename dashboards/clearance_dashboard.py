"""The nightly dashboard: one self-contained HTML file, charts drawn in the page by the plotly.js
bundled with the plotly package (inlined, so the file opens with no network at all).

    python -m dashboards.clearance_dashboard [--warehouse PATH] [--out PATH]

Every figure comes from one query below on the published warehouse; the page filters them by port
and direction in the browser. The page template is templates/clearance_dashboard.html beside this file.
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

TEMPLATE = Path(__file__).with_name("templates") / "clearance_dashboard.html"

# A day's figure is provisional while at least this share of the shipments that were waiting that
# day (arrived by its end, not released before it) is still open at the cut-off: their times, longer
# than those already counted, are still to come (at the start of a history only the fast ones are in).
PROVISIONAL_OPEN_SHARE = 0.10

# Each query yields rows with a `port` and a `direction` column ('all' for the total over them), so
# the page can filter every figure the same way.
QUERIES = {
    # overall clearance time by day of release: mean (compared with the targets, which are means),
    # median and p90
    "daily": """
        SELECT period_start AS day, direction, CASE dimension WHEN 'all' THEN 'all' ELSE dimension_value END AS port,
               shipments, mean_hours, median_hours, p90_hours, share_within_target
        FROM mart_clearance_statistics
        WHERE grain = 'day' AND segment = 'overall_clearance' AND dimension IN ('all', 'port')
        ORDER BY day, direction, port""",
    # per day: how many of the shipments waiting that day are still open at the cut-off
    "daily_open": """
        WITH cutoff AS (SELECT cutoff_at FROM run_context),
        shipments AS (
            SELECT s.port_code AS port, s.direction, s.arrival_at::DATE AS arrival_day,
                   CASE WHEN s.released_at <= cutoff.cutoff_at THEN s.released_at::DATE END AS release_day
            FROM core_shipments AS s, cutoff
            WHERE s.is_counted AND s.arrival_at <= cutoff.cutoff_at),
        both_levels AS (
            SELECT * FROM shipments UNION ALL SELECT 'all', direction, arrival_day, release_day FROM shipments),
        changes AS (
            -- a shipment waits from its arrival day to its release day; it is still open if never released
            SELECT port, direction, arrival_day AS day, 1 AS waiting, (release_day IS NULL)::INTEGER AS still_open
            FROM both_levels
            UNION ALL
            SELECT port, direction, release_day + 1, -1, 0 FROM both_levels WHERE release_day IS NOT NULL),
        running AS (
            -- running totals instead of a join of every day with every shipment: linear in the history
            SELECT port, direction, day, sum(sum(waiting)) OVER w AS waiting, sum(sum(still_open)) OVER w AS still_open
            FROM changes GROUP BY port, direction, day
            WINDOW w AS (PARTITION BY port, direction ORDER BY day)),
        grid AS (
            SELECT d.day, p.port, p.direction
            FROM (SELECT DISTINCT period_start AS day FROM mart_clearance_statistics WHERE grain = 'day') AS d
            CROSS JOIN (SELECT DISTINCT port, direction FROM running) AS p)
        SELECT g.day, g.port, g.direction, r.waiting::BIGINT AS waiting, r.still_open::BIGINT AS still_open
        FROM grid AS g
        ASOF JOIN running AS r ON r.port = g.port AND r.direction = g.direction AND r.day <= g.day
        ORDER BY ALL""",
    # where the time goes: the chain of non-overlapping intervals every shipment passes, over the
    # shipments that completed it (imports out of the gate, exports loaded); each milestone is taken
    # no earlier than the one before it, so the intervals add up to arrival -> last milestone
    "chain": """
        WITH milestones AS (
            SELECT port_code, direction, arrival_at AS t0,
                   -- by rail, road or air there is no berth: the wait for one is nil
                   greatest(arrival_at, CASE WHEN direction = 'import' THEN coalesce(berthed_at, arrival_at)
                                             ELSE arrival_at END) AS t1,
                   accepted_at, released_at, CASE direction WHEN 'import' THEN gate_out_at ELSE loaded_at END AS last_at
            FROM core_shipments
            WHERE is_counted AND arrival_at IS NOT NULL AND accepted_at IS NOT NULL AND released_at IS NOT NULL
              AND CASE direction WHEN 'import' THEN gate_out_at IS NOT NULL
                                 AND (berthed_at IS NOT NULL OR NOT arrived_by_vessel_call)
                                 ELSE loaded_at IS NOT NULL END),
        chained AS (
            SELECT *, greatest(t1, accepted_at) AS t2 FROM milestones),
        chained2 AS (
            SELECT *, greatest(t2, released_at) AS t3 FROM chained),
        chained3 AS (
            SELECT *, greatest(t3, last_at) AS t4 FROM chained2),
        intervals AS (
            SELECT port_code, direction,
                   hours_between(t0, t1) AS berth_wait, hours_between(t1, t2) AS to_acceptance,
                   hours_between(t2, t3) AS to_release, hours_between(t3, t4) AS to_exit,
                   hours_between(t0, t3) AS arrival_to_release
            FROM chained3)
        SELECT coalesce(port_code, 'all') AS port, direction, count(*) AS shipments,
               avg(berth_wait) AS berth_wait_hours, avg(to_acceptance) AS to_acceptance_hours,
               avg(to_release) AS to_release_hours, avg(to_exit) AS to_exit_hours,
               avg(arrival_to_release) AS arrival_to_release_hours
        FROM intervals
        GROUP BY GROUPING SETS ((port_code, direction), (direction))
        ORDER BY ALL""",
    # inspection as extra time: mean overall clearance of inspected against not inspected shipments
    "inspection": """
        SELECT coalesce(port_code, 'all') AS port, direction,
               count(*) AS shipments, count(*) FILTER (WHERE is_inspected) AS inspected,
               count(*) FILTER (WHERE is_inspected) / count(*) AS inspected_share,
               avg(overall_clearance_hours) FILTER (WHERE is_inspected) AS inspected_mean_hours,
               avg(overall_clearance_hours) FILTER (WHERE NOT is_inspected) AS not_inspected_mean_hours
        FROM core_shipments WHERE is_counted AND overall_clearance_hours IS NOT NULL
        GROUP BY GROUPING SETS ((port_code, direction), (direction))
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
        SELECT office_code AS office, coalesce(entry_id, '') AS entry_id, bill_no, stage,
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
        SELECT q.reason_code, coalesce(l.label_zh, '') AS label_zh, coalesce(l.label, '') AS label, count(*) AS rows_quarantined
        FROM quarantine AS q
        LEFT JOIN ref_data_quality_labels AS l ON l.kind = 'quarantine_reason' AND l.code = q.reason_code
        GROUP BY ALL ORDER BY rows_quarantined DESC, q.reason_code""",
    "late_rows": """
        SELECT export_date, late_rows, rows_loaded FROM mart_delivery_timeliness ORDER BY export_date""",
    "validation": """
        SELECT export_date, count(*) AS files, count(*) FILTER (WHERE rows_quarantined > 0) AS files_with_failing_rows,
               sum(rows_quarantined) AS rows_failing
        FROM file_accounting GROUP BY export_date ORDER BY export_date DESC LIMIT 7""",
    "findings": """
        SELECT f.finding, coalesce(l.label_zh, '') AS label_zh, coalesce(l.label, '') AS label, count(*) AS findings
        FROM mart_data_quality_findings AS f
        LEFT JOIN ref_data_quality_labels AS l ON l.kind = 'finding' AND l.code = f.finding
        GROUP BY ALL ORDER BY f.finding""",
    "ports": """SELECT port_code AS code, port_name_zh AS zh, port_name AS en FROM ref_ports ORDER BY port_code""",
    "offices": """SELECT office_code AS code, office_name_zh AS zh, office_name AS en FROM ref_customs_offices
                  UNION ALL SELECT district_code, district_name_zh, district_name FROM ref_customs_districts
                  WHERE district_code NOT IN (SELECT office_code FROM ref_customs_offices)""",
    "stages": """SELECT stage, stage_label_zh AS zh, stage_label AS en, acting_party FROM ref_stage_responsibilities""",
    "targets": """SELECT target_code, direction, target_hours, label, label_zh FROM ref_clearance_targets
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
    data["provisional_open_share"] = PROVISIONAL_OPEN_SHARE
    return data


def embedded_json(data: dict) -> str:
    """JSON that no value can break out of: inside <script> only the markup characters matter, and
    U+2028/2029, which older parsers read as line ends. The escapes are plain JSON, read back unchanged."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def render(data: dict) -> str:
    import plotly.offline

    template = TEMPLATE.read_text(encoding="utf-8")
    # the data first: the plotly.js text must not be searched for the data's placeholder
    page = template.replace("/*DASHBOARD_DATA*/", embedded_json(data))
    return page.replace("/*PLOTLY_JS*/", plotly.offline.get_plotlyjs())


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
    parser = argparse.ArgumentParser(prog="python -m dashboards.clearance_dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, default=settings().warehouse)
    parser.add_argument("--out", type=Path, default=settings().dashboard)
    args = parser.parse_args(argv)
    print(build_dashboard(args.warehouse, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
