"""The nightly DAG as it is deployed: `python -m clearance.deployment serve` (make airflow) with a
real scheduler, DAG processor, triggerer and API server on loopback, on SQLite and on PostgreSQL.

One SQLite deployment serves most tests here (it is started once for the module); the PostgreSQL
one runs the backfill test only.
"""

from __future__ import annotations

import glob
import html
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from clearance.contract import BEIJING
from clearance_tools.mailsink import start as start_mailsink
from clearance.orchestration import scheduled_logical_date
from clearance_tools.simulator import simulate
from tests.conftest import PROJECT_DIR
from tests.test_alerts import free_port, smtp_connection

BIN = Path(sys.executable).parent
FIRST = date(2026, 11, 10)
NIGHTS = [FIRST + timedelta(days=n) for n in range(6)]  # three backfilled, two triggered, one killed
COMPARED_TABLES = ("core_shipments", "mart_clearance_statistics", "mart_work_in_progress", "mart_stalled_shipments")


def utc_logical(day: date) -> str:
    """What `airflow backfill create` takes: the UTC logical date of business date D's run (D+1 02:00 Beijing)."""
    return scheduled_logical_date(day).astimezone(timezone.utc).isoformat()


@pytest.fixture(scope="module")
def inbox(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deliveries") / "inbox"
    simulate(folder, FIRST.isoformat(), len(NIGHTS), scale=0.02, seed=11)
    return folder


# The nights run one by one outside Airflow, in a process of their own; after some of them the compared
# tables are copied into a DuckDB file of their own (what a deployment that ran that many must publish).
BY_HAND = """
import sys
import duckdb
from clearance.pipeline import run_business_date
warehouse, folder, tables, nights, snapshots = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(","), sys.argv[5].split(",")
for count, night in enumerate(nights, 1):
    run_business_date(night)
    if str(count) in snapshots:
        with duckdb.connect(f"{folder}/after_{count}_nights.duckdb") as con:
            con.execute(f"ATTACH '{warehouse}' AS published (READ_ONLY)")
            for table in tables:
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM published.{table}")
"""


class NightsByHand:
    """What the deployments must publish: the first nights run one by one with `run_business_date`,
    started in the background so that they run while a deployment starts."""

    def __init__(self, inbox: Path, folder: Path, nights: int, snapshots: tuple[int, ...]) -> None:
        self.folder, self.output = folder, None
        warehouse = folder / "warehouse" / "clearance.duckdb"
        self.process = subprocess.Popen(
            [sys.executable, "-c", BY_HAND, str(warehouse), str(folder), ",".join(COMPARED_TABLES),
             ",".join(d.isoformat() for d in NIGHTS[:nights]), ",".join(map(str, snapshots))],
            env={**os.environ, "CLEARANCE_INBOX": str(inbox), "CLEARANCE_WAREHOUSE": str(warehouse),
                 "CLEARANCE_DASHBOARD": str(folder / "dashboard.html")},
            cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def after(self, nights: int) -> Path:
        """The compared tables as they were after that many nights (waits for the nights by hand)."""
        if self.output is None:
            self.output, _ = self.process.communicate(timeout=900)
        assert self.process.returncode == 0, self.output[-3000:]
        return self.folder / f"after_{nights}_nights.duckdb"

    def stop(self) -> None:
        if self.output is None:
            self.process.kill()
            self.process.communicate()


@pytest.fixture(scope="module")
def nights_by_hand(inbox, tmp_path_factory):
    by_hand = NightsByHand(inbox, tmp_path_factory.mktemp("by_hand"), 5, snapshots=(2, 5))
    yield by_hand
    by_hand.stop()


def published_night(warehouse: Path) -> str | None:
    """The business date of the published warehouse, as an analyst sees it (None before the first)."""
    if not warehouse.exists():
        return None
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT business_date::VARCHAR FROM run_context").fetchone()[0]


class PostgresServer:
    """Debian's PostgreSQL, a cluster of its own in a temporary folder, on a loopback port.

    `make test` installs it with apt-get when missing and running as root (as on CI). PostgreSQL
    refuses to run as root: then it runs as the `postgres` system user (or `nobody`).
    """

    def __init__(self) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bindirs:
            pytest.skip("the PostgreSQL test needs Debian's postgresql package: sudo apt-get install postgresql")
        self.bin = Path(bindirs[-1])
        self.folder = Path(tempfile.mkdtemp(prefix="clearance-pg-"))  # not under pytest's 0700 root folder
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = next(u for u in ("postgres", "nobody") if _has_user(u))
            os.chmod(self.folder, 0o755)
            shutil.chown(self.folder, self.user)
        data = self.folder / "data"
        self._run("initdb", "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.folder / "postgres.log"), "-w", "start", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder} -c fsync=off")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "airflow")
        self.url = f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on a TCP port, as the kernel lists them."""
    import ipaddress

    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # the kernel prints each 32-bit word in host (little-endian) order
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                ip = ipaddress.ip_address(words)
                found.add(str(getattr(ip, "ipv4_mapped", None) or ip))
    return found


class Deployment:
    """`python -m clearance.deployment serve` with the test's own Airflow home, inbox, warehouse and SMTP server."""

    def __init__(self, folder: Path, inbox: Path, database_url: str | None = None, **settings) -> None:
        self.folder, self.inbox = folder, inbox
        self.warehouse = folder / "warehouse" / "clearance.duckdb"
        self.smtp_port, self.port = free_port(), free_port()
        self.sink, self.mail = start_mailsink(folder / "mail", self.smtp_port)
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(folder / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.pop("dags_folder", PROJECT_DIR / "dags")),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_PORT": str(self.port),
            "CLEARANCE_INBOX": str(inbox),
            "CLEARANCE_WAREHOUSE": str(self.warehouse),
            "CLEARANCE_DASHBOARD": str(folder / "dashboard.html"),
            "AIRFLOW_CONN_SMTP_DEFAULT": smtp_connection(self.smtp_port),
            "CLEARANCE_OPERATOR_EMAILS": "night-duty@customs.example",
            # a killed task is retried once, soon; the runs take their turns quickly
            "CLEARANCE_TASK_RETRIES": "1", "CLEARANCE_RETRY_DELAY_SECONDS": "2", "CLEARANCE_TURN_POKE_SECONDS": "2",
            # the DAG files do not change: parsed once (and again for a failure callback), not every 30 s
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            **settings,
        }
        if database_url:
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
            self.env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", None)  # SQLite's, set by the Makefile
        else:  # as the Makefile sets it for every command beside a SQLite deployment
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "clearance.airflow_db.SQLITE_CONNECT_ARGS"
        self.log = open(folder / "deployment.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "clearance.deployment", "serve"], env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT, cwd=PROJECT_DIR)
        try:
            self._wait_until_up()
        except BaseException:  # a fixture that fails here has no teardown: stop what was started
            try:
                self._interrupt()
            except subprocess.TimeoutExpired:
                self.process.kill()
            raise

    def _wait_until_up(self) -> None:
        folder = self.folder
        until = time.monotonic() + 240
        while "Airflow is up" not in (folder / "deployment.log").read_text():
            assert self.process.poll() is None and time.monotonic() < until, self.tail()
            time.sleep(2)
        # the API server listens on loopback only: nobody else on the network reaches the UI
        assert listening_addresses(self.port) == {"127.0.0.1"}, listening_addresses(self.port)
        # "up" means the Execution API answers too (it starts on its first request, seconds the first task
        # of a night would otherwise wait); only the deployment asks for its health
        until = time.monotonic() + 30
        while "path=/execution/health query= status_code=200" not in (folder / "deployment.log").read_text():
            assert time.monotonic() < until, self.tail()
            time.sleep(1)

    def tail(self, lines: int = 80) -> str:
        return "\n".join((self.folder / "deployment.log").read_text().splitlines()[-lines:])

    def airflow(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, **kwargs)

    def python(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], env=self.env, capture_output=True, text=True,
                              cwd=PROJECT_DIR, timeout=timeout)

    def runs(self, count: int, prefix: str = "") -> list[dict]:
        probe = self.python("-m", "tests.airflow_probe", "wait-runs", str(count), prefix)
        assert probe.returncode == 0, probe.stderr[-2000:]
        return json.loads(probe.stdout.strip().splitlines()[-1])

    def mails(self, subject_part: str, timeout: float = 120) -> list:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            found = [m for _, _, m in self.mail.received if subject_part in m["Subject"]]
            if found:
                return found
            time.sleep(1)
        return []

    def _interrupt(self) -> int:
        """Ctrl-C to the deployment; its exit code (the mail sink and the log are closed whatever happens)."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=120)
        finally:
            self.sink.stop()
            self.log.close()

    def stop(self) -> None:
        """As Ctrl-C does: every component stops, nothing is left running."""
        scheduler_sessions = self.sessions()
        code = self._interrupt()
        assert code == 0, self.tail()
        left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _sid(int(p.name)) in scheduler_sessions]
        assert left == [], "processes left running after Ctrl-C"

    def sessions(self) -> set[int]:
        """The components' process sessions (each component and whatever it starts)."""
        return {int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and _ppid(int(p.name)) == self.process.pid}

    def session_of(self, component: str) -> int:
        for sid in self.sessions():
            if component in Path(f"/proc/{sid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                return sid
        raise AssertionError(f"no {component} running")


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def make(deployment: Deployment, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """A make target of the project, as an operator runs it beside the deployment."""
    return subprocess.run(["make", "--no-print-directory", "-C", str(PROJECT_DIR), *args], env=deployment.env,
                          capture_output=True, text=True, timeout=timeout)


ANALYST_DAG = re.search(r"```python\n(# dags/after_the_night\.py.*?)```",
                        (PROJECT_DIR / "README.md").read_text(encoding="utf-8"), re.S)


# A DAG whose task writes which of the pipeline's libraries its process had imported when the task began.
PROBE_DAG = """
import json, os, sys
from datetime import datetime
from airflow.sdk import dag, task

@dag(dag_id="task_process_probe", schedule=None, start_date=datetime(2026, 1, 1), is_paused_upon_creation=False)
def task_process_probe():
    @task
    def modules_at_start():
        imported = sorted(m for m in ("duckdb", "great_expectations", "polars", "pyarrow") if m in sys.modules)
        with open(os.environ["TASK_PROCESS_PROBE"] + ".part", "w") as out:
            json.dump(imported, out)
        os.replace(os.environ["TASK_PROCESS_PROBE"] + ".part", os.environ["TASK_PROCESS_PROBE"])
    modules_at_start()

task_process_probe()
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, inbox, nights_by_hand):
    """The SQLite deployment. Its scheduler also catches up from two days ago (nights with no delivery:
    they wait for it) with a publish deadline one minute after the start, long past."""
    folder = tmp_path_factory.mktemp("deployment")
    dags = folder / "dags"
    dags.mkdir()
    (dags / "clearance_nightly.py").symlink_to(PROJECT_DIR / "dags" / "clearance_nightly.py")
    assert ANALYST_DAG, "README: the analysts' DAG example"
    (dags / "after_the_night.py").write_text(ANALYST_DAG.group(1), encoding="utf-8")
    (dags / "task_process_probe.py").write_text(PROBE_DAG, encoding="utf-8")
    catch_up_from = datetime.now(BEIJING).date() - timedelta(days=2)
    running = Deployment(folder, inbox, dags_folder=dags, CLEARANCE_CATCHUP_FROM=catch_up_from.isoformat(),
                         CLEARANCE_PUBLISH_DEADLINE="02:01", ANALYST_REPORTS=str(folder / "analysts"),
                         TASK_PROCESS_PROBE=str(folder / "task-process-modules.json"))
    running.catch_up_from = catch_up_from
    yield running
    running.stop()


def check_nights(deployment: Deployment, nights_by_hand: NightsByHand, backfilled: int = 3, triggered: int = 2) -> None:
    """A plain backfill of business dates, then nights by hand (`python -m clearance.run_dates D1 D2`, runs
    without a logical date): in order, equal to the nights by hand."""
    backfill = deployment.airflow("backfill", "create", "--dag-id", "clearance_nightly",
                                  "--from-date", utc_logical(NIGHTS[0]), "--to-date", utc_logical(NIGHTS[backfilled - 1]))
    assert backfill.returncode == 0, backfill.stdout[-2000:] + backfill.stderr[-2000:]
    deployment.runs(backfilled, "backfill__")
    by_hand_nights = NIGHTS[backfilled:backfilled + triggered]
    hand_run = deployment.python("-m", "clearance.run_dates", by_hand_nights[0].isoformat(), by_hand_nights[-1].isoformat())
    assert hand_run.returncode == 0, hand_run.stdout[-3000:] + hand_run.stderr[-3000:] + deployment.tail()
    outcomes = [line for line in hand_run.stdout.splitlines() if line.endswith("s)") and " success " in line]
    # followed in the deployment, one after the other, oldest first
    assert [line.split()[3] for line in outcomes] == [d.isoformat() for d in by_hand_nights], hand_run.stdout
    nights = {d.isoformat() for d in NIGHTS[:backfilled + triggered]}
    runs = [r for r in deployment.runs(backfilled + triggered) if r["business_date"] in nights]
    assert sorted((r["business_date"], r["state"]) for r in runs) == [(d, "success") for d in sorted(nights)]
    # one at a time, in business-date order: a night's first write starts after the night before has ended
    runs.sort(key=lambda r: r["business_date"])
    for before, after in zip(runs, runs[1:]):
        ended = max(t["end"] for t in before["tasks"].values())
        assert after["tasks"]["ingest_delivery"]["start"] >= ended, (before["business_date"], after["business_date"])
    by_hand = nights_by_hand.after(backfilled + triggered)
    for table in COMPARED_TABLES:
        with duckdb.connect(str(deployment.warehouse), read_only=True) as a, \
                duckdb.connect(str(by_hand), read_only=True) as b:
            query = f"SELECT * FROM {table} ORDER BY ALL"
            assert a.execute(query).fetchall() == b.execute(query).fetchall(), table


def test_the_same_nights_with_postgresql_as_the_metadata_database(tmp_path, inbox, nights_by_hand):
    """A backfilled night and a triggered one (fewer than on SQLite: the suite's time)."""
    postgres = PostgresServer()
    try:
        running = Deployment(tmp_path, inbox, database_url=postgres.url)
        try:
            assert "metadata database PostgreSQL" in running.tail(200)
            check_nights(running, nights_by_hand, backfilled=1, triggered=1)
        finally:
            running.stop()
    finally:
        postgres.stop()


def test_backfill_and_a_triggered_night_run_in_order_under_the_scheduler(deployment, nights_by_hand):
    check_nights(deployment, nights_by_hand)
    # every published night marked the warehouse asset, and the analysts' DAG of the README ran after each
    probe = deployment.python("-m", "tests.airflow_probe", "asset-events")
    events = [e["extra"]["business_date"] for e in json.loads(probe.stdout.strip().splitlines()[-1])
              if e["asset"] == "clearance_warehouse"]
    assert sorted(events) == [d.isoformat() for d in NIGHTS[:5]]
    reports = [deployment.folder / "analysts" / f"{d}.csv" for d in NIGHTS[:5]]
    until = time.monotonic() + 120
    while not all(r.exists() for r in reports) and time.monotonic() < until:
        time.sleep(2)
    for report in reports:
        assert report.exists(), (report, deployment.tail())
        lines = report.read_text(encoding="utf-8").splitlines()
        assert lines[0] == "port,median_hours" and len(lines) > 1, report


def test_a_task_process_starts_with_the_pipelines_libraries_imported(deployment):
    """The executor imports them before it forks its workers, so no task imports them again (Great
    Expectations: seconds for the validate task every night)."""
    probe = deployment.folder / "task-process-modules.json"
    trigger = deployment.airflow("dags", "trigger", "task_process_probe")
    assert trigger.returncode == 0, trigger.stderr[-2000:]
    until = time.monotonic() + 180
    while not probe.exists() and time.monotonic() < until:
        time.sleep(2)
    assert probe.exists(), deployment.tail()
    assert json.loads(probe.read_text()) == ["duckdb", "great_expectations", "polars", "pyarrow"]


def test_make_backfill_prints_each_failed_night_and_exits_non_zero(deployment):
    night = "2026-11-20"  # between the simulated nights and the catch-up: no delivery
    backfill = make(deployment, "backfill", f"FROM={night}", f"TO={night}")
    assert backfill.returncode != 0
    assert f"business date {night} failed" in backfill.stdout, backfill.stdout + backfill.stderr
    assert f"{deployment.inbox}/{night}/MANIFEST.json" in backfill.stdout  # the error's lines


def test_a_task_killed_under_the_scheduler_is_mailed_and_the_next_run_completes(deployment):
    night = NIGHTS[5].isoformat()
    published = published_night(deployment.warehouse)
    killer = subprocess.Popen([sys.executable, "-m", "tests.airflow_probe", "kill-task", "build_warehouse",
                               str(deployment.session_of("scheduler")), "2"],  # the try and its retry
                              env=deployment.env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    failed = deployment.python("-m", "clearance.run_dates", night)
    assert killer.wait(timeout=60) == 0, killer.stdout.read()
    assert failed.returncode == 1 and f"business date {night} failed" in failed.stdout, failed.stdout + failed.stderr
    [notice] = deployment.mails(f"business date {night}: build_warehouse failed")
    body = html.unescape(notice.get_body(("html", "plain")).get_content())
    assert "(try 2)" in body and "killed" in body and "Task log: " in body
    assert "The published warehouse is still the previous night's." in body
    assert published_night(deployment.warehouse) == published  # analysts keep the night before

    # the operator reruns the night with make backfill: it prints the night's outcome
    again = make(deployment, "backfill", f"FROM={night}", f"TO={night}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"business date {night} success" in again.stdout
    assert published_night(deployment.warehouse) == night


def test_a_run_triggered_without_a_logical_date_that_fails_is_mailed_with_its_business_date(deployment):
    before = (datetime.now(BEIJING) - timedelta(days=1)).date().isoformat()
    trigger = deployment.airflow("dags", "trigger", "clearance_nightly")
    after = (datetime.now(BEIJING) - timedelta(days=1)).date().isoformat()
    assert trigger.returncode == 0, trigger.stderr[-2000:]
    notices = deployment.mails(f"business date {before}: wait_for_delivery failed") or \
        deployment.mails(f"business date {after}: wait_for_delivery failed", timeout=5)
    assert notices, deployment.tail()
    body = html.unescape(notices[-1].get_body(("html", "plain")).get_content())
    assert f"{deployment.inbox}/{before}/MANIFEST.json" in body or f"{deployment.inbox}/{after}/MANIFEST.json" in body


def test_the_scheduler_catches_up_the_nights_since_the_configured_date(deployment):
    """CLEARANCE_CATCHUP_FROM is two days ago: the scheduler started both nights since by itself, no older one."""
    runs = deployment.runs(0, "scheduled__")
    scheduled = sorted(r["business_date"] for r in runs)
    nights = [deployment.catch_up_from + timedelta(days=n) for n in range(3)]
    # (before 02:00 Beijing yesterday's night is not due yet)
    assert scheduled == [d.isoformat() for d in nights if scheduled_logical_date(d) <= datetime.now(BEIJING)]
    # they have no delivery: each waits for it in the triggerer (deferred, no worker slot held) and its
    # log names the file it waits for
    until = time.monotonic() + 180
    while any(r["tasks"].get("wait_for_delivery", {}).get("state") != "deferred" for r in runs) \
            and time.monotonic() < until:
        time.sleep(3)
        runs = deployment.runs(0, "scheduled__")
    for run in runs:
        assert run["tasks"]["wait_for_delivery"]["state"] == "deferred", run
        logs = list((deployment.folder / "airflow" / "logs").glob(
            f"dag_id=clearance_nightly/run_id={run['run_id']}/task_id=wait_for_delivery/*.log"))
        manifest = f"{deployment.inbox}/{run['business_date']}/MANIFEST.json"
        assert any(manifest in log.read_text(errors="replace") for log in logs), (run["run_id"], logs)


def test_a_night_not_published_by_the_deadline_is_mailed(deployment):
    """The scheduler caught up from two days ago; those nights have no delivery and wait for it."""
    night = deployment.catch_up_from.isoformat()
    [notice] = deployment.mails(f"business date {night} not published by 02:01 Beijing time")
    assert "waiting for the delivery" in html.unescape(notice.get_body(("html", "plain")).get_content())
    # backfills and hand runs have no deadline: someone is watching them
    late = [m["Subject"] for _, _, m in deployment.mail.received if "not published by" in m["Subject"]]
    assert not [s for s in late if any(d.isoformat() in s for d in NIGHTS)], late


def test_make_run_without_a_delivery_fails_at_once_naming_the_manifest(deployment):
    started = time.monotonic()
    run = make(deployment, "run", "DATE=2026-12-31", timeout=120)
    took = time.monotonic() - started
    assert run.returncode != 0
    assert f"{deployment.inbox}/2026-12-31/MANIFEST.json does not exist" in run.stderr
    assert took < 30, took
