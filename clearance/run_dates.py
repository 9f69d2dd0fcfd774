"""Run the clearance_nightly DAG under Airflow for one business date or a range, in order.

    python -m clearance.run_dates 2026-11-20            # one night (make run DATE=2026-11-20)
    python -m clearance.run_dates 2026-11-01 2026-11-14 # catch up a range, oldest first

Each date becomes a DAG run with the logical date of its scheduled run (02:00 Beijing time on
the next day), executed by Airflow's `dag.test()` in this process. Needs `airflow db migrate`
and AIRFLOW__CORE__DAGS_FOLDER set (the Makefile does both).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

from clearance.contract import BEIJING


def scheduled_logical_date(business_date: date) -> datetime:
    """The scheduled run for business date D is at 02:00 Beijing time on D+1."""
    return datetime.combine(business_date + timedelta(days=1), time(2, 0), tzinfo=BEIJING)


def load_dag():
    dags_folder = Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", Path(__file__).resolve().parent.parent / "dags"))
    spec = importlib.util.spec_from_file_location("clearance_nightly_dag", dags_folder / "clearance_nightly.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def run(first: date, last: date) -> int:
    import pendulum

    dag = load_dag()
    day = first
    while day <= last:
        logical = pendulum.instance(scheduled_logical_date(day))
        print(f"clearance_nightly: business date {day} (logical date {logical.isoformat()})", flush=True)
        dag_run = dag.test(logical_date=logical)
        state = str(getattr(dag_run, "state", "unknown"))
        if not state.endswith("success"):
            print(f"clearance_nightly: business date {day} ended {state}; later dates not run", file=sys.stderr)
            return 1
        day += timedelta(days=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=date.fromisoformat, help="business date (Beijing), YYYY-MM-DD")
    parser.add_argument("last", type=date.fromisoformat, nargs="?", help="last business date of a range")
    args = parser.parse_args(argv)
    return run(args.first, args.last or args.first)


if __name__ == "__main__":
    sys.exit(main())
