"""Rebuild every staging, core and mart table from all loaded rows, publish the result, and
rebuild what the night builds from it: the dashboard, the analyst exports and the Time Release
Study reports of the business date.

    python -m clearance.rebuild [--business-date YYYY-MM-DD]

The nightly run does this by itself when a model or a reference file changed since the last run;
run it by hand after restoring a state file, or to check that the incremental nights agree with
a rebuild from scratch. The business date (the cut-off of the work in progress and of the stalled
list) defaults to that of the last run. No alerts are sent. Stop the scheduler's runs meanwhile:
a run that finds the state file in use fails and says so.
"""

from __future__ import annotations

import argparse
import logging
import time

from clearance import pipeline
from clearance.config import settings
from clearance.publish import publish
from clearance.warehouse import rebuild


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clearance.rebuild", description=__doc__.split("\n\n")[0])
    ap.add_argument("--business-date", help="cut-off date, YYYY-MM-DD (default: the last run's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    outcome = rebuild(settings(), args.business_date)
    rebuilt = time.perf_counter() - started
    published = publish(settings(), outcome["build_id"], outcome["business_date"])
    print(f"rebuilt {outcome['affected_entries']} shipments in {rebuilt:.1f} s; published {published} "
          f"in {time.perf_counter() - started - rebuilt:.1f} s")
    print(f"dashboard: {pipeline.build_dashboard()}")
    exported = pipeline.export_for_analysts(str(outcome["business_date"]))
    print(f"analyst exports (Parquet, XES): {exported}")
    reports = pipeline.build_time_release_report(str(outcome["business_date"]))
    print(f"time release study reports: {len(reports)} files in {reports[0].rsplit('/', 1)[0] if reports else '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
