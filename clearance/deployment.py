"""The project's own Airflow deployment, and the commands that hand it nights to run.

    python -m clearance.deployment serve [--port 8080]      # make airflow: every component, foreground
    python -m clearance.deployment backfill FROM TO         # make backfill: business dates, inclusive

`serve` runs the scheduler (a LocalExecutor that preloads the libraries: clearance.executor), the DAG
processor, the triggerer and the API server (bound to 127.0.0.1) as child processes with this
environment's `airflow` first on PATH, prints
their output prefixed with their names, and stops them all on Ctrl-C (or SIGTERM); when one of them
dies the others are stopped too and it exits non-zero. `airflow standalone` does much the same but
binds the API server to every interface, leaves its children running when it gets SIGTERM, and
carries on when one of them has died; so the components are started here.

`backfill` and `clearance.run_dates` (make run) submit nights to the running deployment through its
metadata database, as Airflow's own CLI does, and follow them until each has finished.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path

from clearance.contract import BEIJING
from clearance.orchestration import DAG_ID, business_date_of_run, scheduled_logical_date

# On one machine the API server reads the task logs from disk: the scheduler's and the triggerer's
# log servers (which listen on every interface) are not started.
COMPONENTS = {"scheduler": ["--skip-serve-logs"], "dag-processor": [], "triggerer": ["--skip-serve-logs"],
              "api-server": []}
STOP_ORDER = ("scheduler", "triggerer", "dag-processor", "api-server")  # stop scheduling first
STOP_TIMEOUT_SECONDS = 60


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))


def deployment_env(port: int) -> dict:
    """The environment every component gets; settings already in the environment win."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    base_url = f"http://127.0.0.1:{port}"
    if "sqlite" in env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite"):
        # commands beside the components wait for SQLite's lock (see clearance.airflow_db)
        env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "clearance.airflow_db.SQLITE_CONNECT_ARGS")
    for key, value in {
        # LocalExecutor with the pipeline's libraries imported before its workers fork (clearance.executor)
        "AIRFLOW__CORE__EXECUTOR": "clearance.executor.PreloadingLocalExecutor",
        # LocalExecutor forks this many workers: one per core, not Airflow's default of 32
        "AIRFLOW__CORE__PARALLELISM": str(os.cpu_count() or 2),
        # the scheduler sleeps this long when a loop found nothing to do, also while a task runs: with
        # Airflow's 1 s a night's tasks waited 5.4 s in all between them, with 0.5 s 1.9 s, for an idle
        # deployment's 6.7 % of a core instead of 5.5 % (0.2 s: 1.6 s, 12.7 %)
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        # a loaded 2-core machine with SQLite answers slowly at times (Airflow's default is 5 s)
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
    }.items():
        env.setdefault(key, value)
    env["CLEARANCE_CATCHUP_FROM"] = catchup_from(env)
    return env


def catchup_from(env: dict) -> str:
    """CLEARANCE_CATCHUP_FROM, or the night before the local deployment's first start (kept in AIRFLOW_HOME)."""
    from clearance.orchestration import first_night_kept

    return env.get("CLEARANCE_CATCHUP_FROM") or first_night_kept(env.get("AIRFLOW_HOME", airflow_home()))


class Component:
    def __init__(self, name: str, args: list[str], env: dict, out) -> None:
        self.name = name
        # its own process group: Ctrl-C reaches only the supervisor, which stops the components in order
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), name, *args], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.reader = threading.Thread(target=self._copy, args=(out,), daemon=True)
        self.reader.start()

    def _copy(self, out) -> None:
        for raw in self.process.stdout:
            out(f"{self.name:13} | {raw.decode('utf-8', errors='replace').rstrip()}")

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass


def _say(line: str) -> None:
    print(line, flush=True)


def _healthy(port: int) -> bool:
    import json

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as response:
            health = json.load(response)
    except (OSError, ValueError):
        return False
    if not all((health.get(part) or {}).get("status") == "healthy"
               for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
        return False
    # The Execution API (what task processes talk to) starts on its first request, 4-7 s on two cores:
    # asked here, so that the first task of a night does not wait for it.
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/health", timeout=60) as response:
            return response.status == 200
    except OSError:
        return False


def serve(port: int) -> int:
    env = deployment_env(port)
    home = Path(env.get("AIRFLOW_HOME", airflow_home()))
    home.mkdir(parents=True, exist_ok=True)
    _say(f"deployment    | AIRFLOW_HOME {home}; metadata database "
         f"{'PostgreSQL' if 'postgres' in env.get('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', '') else 'SQLite'}; "
         f"{env['AIRFLOW__CORE__EXECUTOR']}, parallelism {env['AIRFLOW__CORE__PARALLELISM']}; "
         f"catch-up from business date {env['CLEARANCE_CATCHUP_FROM']}")
    migrate_log = home / "db-migrate.log"
    with open(migrate_log, "w") as log_file:
        if subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env,
                          stdout=log_file, stderr=subprocess.STDOUT).returncode:
            _say(f"deployment    | airflow db migrate failed: see {migrate_log}")
            return 1

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    components = {name: Component(name, args, env, _say) for name, args in COMPONENTS.items()}
    exit_code, announced = 0, False
    while not stop.wait(1):
        dead = [c for c in components.values() if c.process.poll() is not None]
        if dead:
            _say(f"deployment    | {', '.join(f'{c.name} exited ({c.process.returncode})' for c in dead)}: "
                 "stopping the others")
            exit_code = 1
            break
        if not announced and _healthy(port):
            announced = True
            _say(f"deployment    | Airflow is up: http://127.0.0.1:{port}/ (user admin; its password is in "
                 f"{home}/simple_auth_manager_passwords.json.generated). Ctrl-C stops it.")
    _say("deployment    | stopping")
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name in STOP_ORDER:
        component = components[name]
        component.signal_group(signal.SIGTERM)
        try:
            component.process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            _say(f"deployment    | {name} did not stop in time: killed")
        component.signal_group(signal.SIGKILL)  # whatever it left behind (executor workers, task processes)
        component.process.wait()
    for component in components.values():
        component.reader.join(timeout=5)
    _say("deployment    | stopped")
    return exit_code


# ---- handing nights to the running deployment -------------------------------------------------

def is_up() -> bool:
    """Whether a scheduler of this metadata database is alive (it heartbeats every few seconds)."""
    try:
        from airflow.jobs.job import most_recent_job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

        job = most_recent_job(SchedulerJobRunner.job_type)
        return bool(job and job.is_alive())
    except Exception:  # noqa: BLE001 - no database, no tables yet: no deployment
        return False


def _wait_for_dag(seconds: float = 120) -> None:
    """The DAG processor must have parsed the DAG before runs can be created."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    until = time.monotonic() + seconds
    while True:
        with create_session() as session:
            if session.scalar(SerializedDagModel.latest_item_select_object(DAG_ID)) is not None:
                return
        if time.monotonic() > until:
            raise RuntimeError(f"the deployment has not parsed {DAG_ID} after {seconds:.0f} s: is its DAG folder "
                               "the project's dags/ (AIRFLOW__CORE__DAGS_FOLDER)?")
        time.sleep(2)


def trigger_nights(days: list[date]) -> list[str]:
    """One run per business date, oldest first, through the deployment (conf business_date, no logical date)."""
    from airflow.api.client.local_client import Client

    _wait_for_dag()
    client, run_ids = Client(), []
    for day in days:
        stamp = datetime.now(BEIJING).strftime("%Y%m%dT%H%M%S%f")
        run = client.trigger_dag(dag_id=DAG_ID, run_id=f"hand__{day.isoformat()}__{stamp}",
                                 conf={"business_date": day.isoformat()}, triggering_user_name=getpass.getuser())
        run_ids.append(run["dag_run_id"])
        _say(f"clearance_nightly: business date {day} submitted to the running deployment (run {run['dag_run_id']})")
    return run_ids


def backfill_nights(first: date, last: date) -> list[str]:
    """An Airflow backfill of business dates first..last (their logical dates are the next days, 02:00 Beijing)."""
    from airflow.models.backfill import AlreadyRunningBackfill, BackfillDagRun, ReprocessBehavior, _create_backfill
    from airflow.utils.session import create_session
    from sqlalchemy import select

    _wait_for_dag()
    told = False
    while True:
        try:
            backfill = _create_backfill(
                dag_id=DAG_ID, from_date=scheduled_logical_date(first), to_date=scheduled_logical_date(last),
                max_active_runs=1, reverse=False, dag_run_conf=None, triggering_user_name=getpass.getuser(),
                # the dates were asked for: nights that ran before run again
                reprocess_behavior=ReprocessBehavior.COMPLETED)
            break
        except AlreadyRunningBackfill:
            # Airflow runs one backfill of a DAG at a time (and marks one complete up to 30 s after
            # its last night): this one waits for its turn rather than fail
            if not told:
                _say("clearance_nightly: another backfill of clearance_nightly is in progress; "
                     f"business dates {first}..{last} wait for it")
                told = True
            time.sleep(5)
    with create_session() as session:
        rows = session.execute(select(BackfillDagRun).where(BackfillDagRun.backfill_id == backfill.id)
                               .order_by(BackfillDagRun.sort_ordinal)).scalars().all()
        from airflow.models.dagrun import DagRun

        run_ids = []
        for row in rows:
            day = (row.logical_date.astimezone(BEIJING).date() - timedelta(days=1)) if row.logical_date else None
            if row.dag_run_id is None:
                _say(f"clearance_nightly: business date {day} not submitted: {row.exception_reason} "
                     "(a run of that night is in progress)")
                continue
            run_ids.append(session.get(DagRun, row.dag_run_id).run_id)
    _say(f"clearance_nightly: backfill {backfill.id} of business dates {first}..{last} submitted to the running "
         f"deployment ({len(run_ids)} nights)")
    return run_ids


def failure_lines(run, session) -> list[str]:
    """The failed tasks of a run, with the error's last lines and the log file."""
    from clearance.notify import error_summary, task_log_file

    lines = []
    for ti in run.get_task_instances(state=["failed"], session=session):
        path = task_log_file(ti)
        error, _ = error_summary(ti, path)
        lines.append(f"  task {ti.task_id} failed (log {path}):")
        lines += [f"    {line}" for line in error.splitlines()[-6:]]
    return lines


def follow(run_ids: list[str], poll_seconds: float = 3) -> int:
    """Print each night's outcome as it finishes; 1 when any failed."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    pending, failed = list(run_ids), 0
    while pending:
        time.sleep(poll_seconds)
        with create_session() as session:
            runs = session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id.in_(pending),
                                                        DagRun.state.in_(["success", "failed"]))).all()
            for run in sorted(runs, key=lambda r: r.end_date):
                pending.remove(run.run_id)
                took = (run.end_date - run.start_date).total_seconds() if run.end_date and run.start_date else 0
                _say(f"clearance_nightly: business date {business_date_of_run(run)} {run.state} "
                     f"(run {run.run_id}, {took:.0f} s)")
                if run.state != "success":
                    failed += 1
                    for line in failure_lines(run, session):
                        _say(line)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run every Airflow component in the foreground")
    serve_cmd.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    backfill_cmd = commands.add_parser("backfill", help="run business dates FROM..TO (inclusive) in the deployment")
    backfill_cmd.add_argument("first", type=date.fromisoformat)
    backfill_cmd.add_argument("last", type=date.fromisoformat)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.port)
    if args.last < args.first:
        parser.error("TO is before FROM")
    if not is_up():
        print("no running deployment (start one with `make airflow`); nothing was submitted", file=sys.stderr)
        return 2
    return follow(backfill_nights(args.first, args.last))


if __name__ == "__main__":
    sys.exit(main())
