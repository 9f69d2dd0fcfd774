"""What a customs analyst wants first: the last day's overall clearance time by port and direction,
against the national targets. Reads the published warehouse read-only.

    python -m clearance.report [--warehouse PATH]
"""

from __future__ import annotations

import argparse
import sys
import unicodedata

import duckdb

from clearance.config import settings

LAST_DAY_BY_PORT = """
WITH last_day AS (SELECT max(period_start) AS day FROM mart_clearance_statistics WHERE grain = 'day'),
targets AS (
    SELECT direction,
           max(target_hours) FILTER (WHERE target_code = 'state_council_2021') AS target_2021,
           max(target_hours) FILTER (WHERE target_code = 'national_2022') AS national_2022
    FROM ref_clearance_targets WHERE district_code IS NULL GROUP BY direction
)
SELECT s.period_start AS day, s.direction, s.dimension_value AS port, p.port_name_zh, p.port_name,
       s.shipments, s.median_hours, s.p90_hours, s.share_within_target, t.target_2021, t.national_2022
FROM mart_clearance_statistics AS s
JOIN last_day ON s.period_start = last_day.day
LEFT JOIN ref_ports AS p ON p.port_code = s.dimension_value
LEFT JOIN targets AS t USING (direction)
WHERE s.grain = 'day' AND s.dimension = 'port' AND s.segment = 'overall_clearance'
ORDER BY s.direction DESC, s.shipments DESC
"""


def pad(text: str, width: int) -> str:
    """Left-align text in a terminal column; Chinese characters take two columns."""
    shown = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(width - shown, 0)


def render(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute(LAST_DAY_BY_PORT).fetchall()
    if not rows:
        return "No released shipments in the warehouse yet."
    [(business_date,)] = con.execute("SELECT business_date FROM run_context").fetchall()
    lines = [
        f"Overall clearance time (整体通关时间), released on {rows[0][0]} — warehouse as of business date {business_date}",
        "Targets: State Council 2021 import 48 h / export 6.15 h; national 2022 figures import 32.02 h / export 1.03 h",
        "",
        f"{'direction':<9} {'port':<24} {'shipments':>9} {'median h':>9} {'p90 h':>8} {'≤target':>8}  vs 2021 target  vs 2022 national",
    ]
    for _, direction, port, name_zh, name, shipments, median, p90, share, target_2021, national_2022 in rows:
        label = f"{port} {name_zh or '(not in dictionary)'}"
        lines.append(
            f"{direction:<9} {pad(label, 24)} {shipments:>9} {median:>9.2f} {p90:>8.2f} {share:>8.0%}  "
            f"{'within' if median <= target_2021 else 'ABOVE':<14}  "
            f"{'within' if median <= national_2022 else 'above':<6}"
        )
    wip = con.execute(
        "SELECT open_stage, count(*), round(max(hours_in_stage), 1) FROM mart_work_in_progress GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    lines += ["", "Work in progress at the cut-off (stage: shipments, longest hours in stage):"]
    lines += [f"  {stage}: {count}, {longest} h" for stage, count, longest in wip]
    stalled = con.execute(
        "SELECT office_code, stage, count(*), count(*) FILTER (WHERE is_escalated) FROM mart_stalled_shipments "
        "GROUP BY ALL ORDER BY office_code, 3 DESC"
    ).fetchall()
    lines += ["", "Stalled at the cut-off (office, stage: shipments, of which past twice the threshold):"]
    lines += [f"  {office} {stage}: {count}, {escalated}" for office, stage, count, escalated in stalled]
    digests = con.execute("SELECT status, count(*), sum(new_stalls), sum(escalations) FROM alert_digests "
                          "WHERE business_date = (SELECT business_date FROM run_context) GROUP BY ALL").fetchall()
    lines += [f"Digests of this run: {n} {status} ({new} newly stalled, {esc} escalated)" for status, n, new, esc in digests]
    [(quarantined,)] = con.execute("SELECT count(*) FROM quarantine").fetchall()
    lines += ["", f"Rows quarantined so far: {quarantined} (table quarantine)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", default=str(settings().warehouse))
    args = parser.parse_args(argv)
    with duckdb.connect(args.warehouse, read_only=True) as con:
        print(render(con))
    return 0


if __name__ == "__main__":
    sys.exit(main())
