"""Run the clearance_nightly DAG for one business date or a range, in order.

    python -m clearance.run_dates 2026-11-20            # one night (make run DATE=2026-11-20)
    python -m clearance.run_dates 2026-11-01 2026-11-14 # a range, oldest first (make demo)

A date whose delivery is absent fails at once, naming the MANIFEST.json looked for: a run by hand
does not wait for a delivery. When a deployment is running (a scheduler of this metadata database
is alive, e.g. `make airflow`), the nights are submitted to it one at a time, each once the one
before has succeeded, and followed until it has finished; they take their turn with the
deployment's own runs. Otherwise each date runs in this
process under Airflow's `dag.test()` (the metadata database is migrated first), with the logical
date of its scheduled run (02:00 Beijing time on the next day); such a hand run does not wait for
another run either: it fails at once when one holds the pipeline's state.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from clearance.orchestration import scheduled_logical_date


def load_dag():
    dags_folder = Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", Path(__file__).resolve().parent.parent / "dags"))
    spec = importlib.util.spec_from_file_location("clearance_nightly_dag", dags_folder / "clearance_nightly.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def missing_deliveries(days: list[date]) -> list[str]:
    from clearance.pipeline import manifest_path

    return [f"business date {day}: {manifest_path(day.isoformat())} does not exist"
            for day in days if not manifest_path(day.isoformat()).exists()]


def migrate_metadata_db() -> None:
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "db-migrate.log"
    with open(log_file, "w") as out:
        if subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                          stdout=out, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"airflow db migrate failed: see {log_file}")


def run_here(days: list[date]) -> int:
    """Each night under dag.test() in this process, holding the hand-run lock (taken first: a second
    hand run fails at once, before it touches the metadata database)."""
    from clearance.config import settings
    from clearance.run_order import NightInProgressError, hand_run_lock, state_folder

    try:
        with hand_run_lock(state_folder(settings()), f"{days[0]}..{days[-1]}") as lock:
            return _test_nights(days, lock)
    except NightInProgressError as exc:
        print(f"clearance_nightly: {exc}", file=sys.stderr)
        return 1


def _test_nights(days: list[date], lock: str) -> int:
    import pendulum

    migrate_metadata_db()
    # dag.test() logs "No tasks to run" every second while a task waits for a retry
    logging.getLogger("airflow.sdk.definitions.dag").setLevel(logging.ERROR)
    dag = load_dag()
    # dag.test() cannot finish a run of a DAG with a deadline (it looks the alerts up in the metadata
    # database by the ids the DAG processor gives them); a run by hand has no deadline anyway
    dag.deadline = None
    # nor does it create tasks for a logical date before the DAG's start date, where the scheduler's
    # catch-up begins: a night before it is still run by hand
    dag.start_date = None
    for task in dag.tasks:
        task.start_date = None
    for day in days:
        logical = pendulum.instance(scheduled_logical_date(day))
        print(f"clearance_nightly: business date {day} (logical date {logical.isoformat()})", flush=True)
        dag_run = dag.test(logical_date=logical, run_conf={"business_date": day.isoformat(), "wait": False,
                                                           "hand_run_lock": lock})
        state = str(getattr(dag_run, "state", "unknown"))
        if not state.endswith("success"):
            print(f"clearance_nightly: business date {day} ended {state}; later dates not run", file=sys.stderr)
            return 1
    return 0


def run(first: date, last: date) -> int:
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    if missing := missing_deliveries(days):
        print("clearance_nightly: no delivery, nothing was run:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    from clearance import deployment

    if deployment.is_up():
        # one night at a time: runs without a logical date are not ordered by the scheduler, so the
        # next night is submitted only once the one before has succeeded
        for n, day in enumerate(days):
            if deployment.follow(deployment.trigger_nights([day])):
                if days[n + 1:]:
                    print(f"clearance_nightly: later dates not submitted: {days[n + 1]}..{days[-1]}", file=sys.stderr)
                return 1
        return 0
    return run_here(days)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=date.fromisoformat, help="business date (Beijing), YYYY-MM-DD")
    parser.add_argument("last", type=date.fromisoformat, nargs="?", help="last business date of a range")
    args = parser.parse_args(argv)
    return run(args.first, args.last or args.first)


if __name__ == "__main__":
    sys.exit(main())
