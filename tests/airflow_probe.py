"""Looks into a running deployment's metadata database for the deployment tests (run as a subprocess
with the deployment's environment, since Airflow binds its database at import).

    python -m tests.airflow_probe wait-runs COUNT [RUN_ID_PREFIX]  # until COUNT runs are finished; JSON
    python -m tests.airflow_probe kill-task TASK_ID SESSION_ID TIMES  # SIGKILL that task's process TIMES times
    python -m tests.airflow_probe asset-events                     # JSON: the warehouse asset's events
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from sqlalchemy import select


def runs_report(session) -> list[dict]:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    from clearance.orchestration import business_date_of_run

    out = []
    for run in session.scalars(select(DagRun).where(DagRun.dag_id == "clearance_nightly")):
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == run.dag_id,
                                                         TaskInstance.run_id == run.run_id)).all()
        out.append({"run_id": run.run_id, "state": str(run.state), "run_type": str(run.run_type),
                    "business_date": business_date_of_run(run),
                    "tasks": {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number,
                                           "start": ti.start_date.isoformat() if ti.start_date else None,
                                           "end": ti.end_date.isoformat() if ti.end_date else None} for ti in tis}})
    return out


def wait_runs(count: int, prefix: str = "", timeout: float = 900) -> int:
    from airflow.utils.session import create_session

    until = time.monotonic() + timeout
    while True:
        with create_session() as session:
            runs = [r for r in runs_report(session) if r["run_id"].startswith(prefix)]
        if len([r for r in runs if r["state"] in ("success", "failed")]) >= count or time.monotonic() > until:
            print(json.dumps(runs))
            return 0
        time.sleep(2)


def kill_task(task_id: str, session_id: int, times: int, timeout: float = 600) -> int:
    """SIGKILL the process of a running try of `task_id` (as the kernel's OOM killer would), `times` times.

    Only processes of the deployment's scheduler session are considered (other deployments may run
    on this machine); a task process is titled `airflow worker -- <task instance id>`.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    killed, seen, until = 0, set(), time.monotonic() + timeout
    while killed < times and time.monotonic() < until:
        with create_session() as session:
            running = {(str(ti.id), ti.try_number) for ti in session.scalars(select(TaskInstance).where(
                TaskInstance.task_id == task_id, TaskInstance.state == "running"))}
        for ti_id, try_number in running - seen:
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                    sid = os.getsid(int(proc.name))
                except (OSError, ProcessLookupError):
                    continue
                if sid == session_id and title == f"airflow worker -- {ti_id}":
                    time.sleep(1)  # let it get into its work
                    os.kill(int(proc.name), signal.SIGKILL)
                    print(f"killed {task_id} try {try_number} (pid {proc.name})", flush=True)
                    seen.add((ti_id, try_number))
                    killed += 1
        time.sleep(0.2)
    return 0 if killed == times else 1


def asset_events() -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(select(AssetModel.name, AssetEvent.extra, AssetEvent.timestamp)
                               .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                               .order_by(AssetEvent.timestamp)).all()
    print(json.dumps([{"asset": name, "extra": extra} for name, extra, _ in rows]))
    return 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "wait-runs":
        sys.exit(wait_runs(int(args[0]), *(args[1:2])))
    if command == "kill-task":
        sys.exit(kill_task(args[0], int(args[1]), int(args[2])))
    if command == "asset-events":
        sys.exit(asset_events())
    raise SystemExit(f"unknown command {command}")
