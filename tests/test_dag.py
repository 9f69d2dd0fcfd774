"""The DAG as Airflow sees it, and one whole night run under Airflow on a simulated delivery."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from clearance.pipeline import business_date_for
from clearance.run_order import hand_run_alive
from clearance_tools.mailsink import start as start_mailsink
from clearance_tools.simulator import simulate
from tests.conftest import PROJECT_DIR, state_file
from tests.test_alerts import free_port, smtp_connection

BIN = Path(sys.executable).parent


def test_dag_folder_imports_under_airflow():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_DIR / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["clearance_nightly"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "business_date", "wait_for_delivery", "wait_for_earlier_nights", "ingest_delivery", "validate_delivery", "build_warehouse",
        "send_stall_alerts", "publish_warehouse", "build_dashboard", "export_for_analysts",
        "build_time_release_report",
    ]
    assert dag.catchup and dag.on_failure_callback is not None
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 2 * * *", "Asia/Shanghai")
    assert [a.name for a in dag.get_task("publish_warehouse").outlets] == ["clearance_warehouse"]


def test_catch_up_begins_at_the_configured_business_date(monkeypatch, tmp_path):
    from clearance.orchestration import catchup_start, publish_deadline

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("CLEARANCE_CATCHUP_FROM", "2026-11-20")
    # the first run the scheduler makes is business date 2026-11-20's, at 02:00 Beijing on the 21st
    assert catchup_start() == datetime(2026, 11, 21, tzinfo=timezone(timedelta(hours=8)))
    monkeypatch.delenv("CLEARANCE_CATCHUP_FROM")
    # unset: the night before the day of the first parse, not a year of runs
    assert catchup_start(datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)) == datetime(2026, 12, 1, tzinfo=timezone(timedelta(hours=8)))
    # and it stays there: a scheduler down for days runs every night it missed when it is back
    assert catchup_start(datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)) == datetime(2026, 12, 1, tzinfo=timezone(timedelta(hours=8)))
    assert (tmp_path / "airflow" / "clearance_catchup_from").read_text().strip() == "2026-11-30"
    assert publish_deadline() == ("08:00", timedelta(hours=6))
    monkeypatch.setenv("CLEARANCE_PUBLISH_DEADLINE", "07:30")
    assert publish_deadline() == ("07:30", timedelta(hours=5, minutes=30))


def test_dag_file_does_not_import_heavy_libraries_at_parse_time():
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "print(sorted(m for m in ('duckdb', 'polars', 'great_expectations', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(PROJECT_DIR / "dags" / "clearance_nightly.py")],
                         capture_output=True, text=True, check=True, env=os.environ)
    # Airflow itself may pull in pandas-free modules only; the pipeline's own heavy libraries must not load
    assert "duckdb" not in out.stdout and "great_expectations" not in out.stdout and "polars" not in out.stdout


@pytest.mark.parametrize(
    ("logical_date", "expected"),
    [
        (datetime(2026, 11, 21, 2, 0, tzinfo=timezone(timedelta(hours=8))), "2026-11-20"),  # the scheduled run
        (datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc), "2026-11-20"),  # the same instant in UTC
        (datetime(2026, 11, 20, 16, 30, tzinfo=timezone.utc), "2026-11-20"),  # 00:30 Beijing on 11-21, ds 11-20
        (datetime(2026, 11, 21, 23, 0, tzinfo=timezone.utc), "2026-11-21"),  # 07:00 Beijing on 11-22, ds 11-21
    ],
)
def test_business_date_is_the_previous_beijing_day(logical_date, expected):
    assert business_date_for(logical_date) == expected


def airflow_env(tmp_path, inbox, warehouse, smtp_port) -> dict:
    """A local Airflow home (SQLite) of the test's own, and the pipeline's locations."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CLEARANCE_INBOX": str(inbox),
        "CLEARANCE_WAREHOUSE": str(warehouse),
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp_connection(smtp_port),
    }


def test_nightly_dag_run_under_airflow_publishes_the_warehouse(tmp_path):
    inbox, warehouse = tmp_path / "inbox", tmp_path / "warehouse" / "clearance.duckdb"
    folders = simulate(inbox, "2026-11-18", 2, scale=0.02, seed=7)
    port = free_port()
    sink, mail = start_mailsink(tmp_path / "mail", port)
    env = airflow_env(tmp_path, inbox, warehouse, port)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    lock = warehouse.parent / "_state" / "hand_run.lock"
    try:
        run = subprocess.Popen([sys.executable, "-m", "clearance.run_dates", "2026-11-18", "2026-11-19"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_DIR)
        until = time.monotonic() + 120
        while not (lock.exists() and hand_run_alive(str(lock))) and run.poll() is None and time.monotonic() < until:
            time.sleep(0.2)
        # a second hand run while the first is in progress (make run twice) fails at once, changing nothing
        second = subprocess.run([sys.executable, "-m", "clearance.run_dates", "2026-11-19"],
                                env=env, capture_output=True, text=True, cwd=PROJECT_DIR, timeout=60)
        out, err = run.communicate(timeout=900)
    finally:
        sink.stop()
    assert run.returncode == 0, out[-3000:] + err[-3000:]
    assert second.returncode == 1
    assert ("another hand run of clearance_nightly is in progress (business date 2026-11-18..2026-11-19"
            in second.stderr), second.stderr[-2000:]

    listed = {e["name"]: e["rows"] for f in folders for e in json.loads((f / "MANIFEST.json").read_text())["files"]}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT business_date::VARCHAR FROM run_context").fetchone() == ("2026-11-19",)
        accounting = dict(con.execute("SELECT source_file, rows_read FROM file_accounting").fetchall())
        balanced = con.execute("SELECT bool_and(rows_read = rows_loaded + rows_duplicate + rows_quarantined) "
                               "FROM file_accounting").fetchone()[0]
        shipments = con.execute("SELECT count(*) FROM core_shipments").fetchone()[0]
        sent = con.execute("SELECT list(recipients[1] ORDER BY digest_id) FROM alert_digests WHERE status = 'sent'").fetchall()[0][0]
        released_days = con.execute("SELECT list(DISTINCT period_start::VARCHAR ORDER BY period_start::VARCHAR) "
                                    "FROM mart_clearance_statistics WHERE grain = 'day'").fetchone()[0]
    with duckdb.connect(str(state_file(warehouse)), read_only=True) as con:
        declarations = con.execute("SELECT count(DISTINCT entry_id) FROM land_dec_head").fetchone()[0]
    assert accounting == listed  # every file of both deliveries, every row read
    assert balanced
    assert shipments == declarations > 50
    assert released_days == ["2026-11-18", "2026-11-19"]
    # the send_stall_alerts task reached the SMTP server through the smtp_default connection from the environment
    assert sent and sorted(r[0] for _, r, _ in mail.received) == sorted(sent)
    assert not (warehouse.parent / "_build" / "2026-11-19").exists()  # the run cleans its work folder

    # the nights run one by one outside Airflow give the same warehouse as the Airflow range run
    by_hand = tmp_path / "by_hand" / "clearance.duckdb"
    subprocess.run([sys.executable, "-c", "from clearance.pipeline import run_business_date as r; "
                    "r('2026-11-18'); r('2026-11-19')"],
                   env={**env, "CLEARANCE_WAREHOUSE": str(by_hand)}, check=True, capture_output=True, cwd=PROJECT_DIR)
    for table in ("core_shipments", "mart_clearance_statistics", "mart_work_in_progress", "mart_stalled_shipments",
                  "file_accounting"):
        with duckdb.connect(str(warehouse), read_only=True) as a, duckdb.connect(str(by_hand), read_only=True) as b:
            query = f"SELECT * FROM {table} ORDER BY ALL"
            assert a.execute(query).fetchall() == b.execute(query).fetchall(), table


def test_operators_are_mailed_when_a_task_fails(tmp_path):
    inbox = tmp_path / "inbox"
    simulate(inbox, "2026-11-18", 1, scale=0.02, seed=7, breaks=[("2026-11-18", "cargo_event", "checksum")])
    port = free_port()
    sink, mail = start_mailsink(tmp_path / "mail", port)
    env = {**airflow_env(tmp_path, inbox, tmp_path / "warehouse" / "clearance.duckdb", port),
           "CLEARANCE_OPERATOR_EMAILS": "night-duty@customs.example"}
    try:
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        run = subprocess.run([sys.executable, "-m", "clearance.run_dates", "2026-11-18"],
                             env=env, capture_output=True, text=True, cwd=PROJECT_DIR)
    finally:
        sink.stop()
    assert run.returncode == 1
    assert "SHA-256 does not match MANIFEST.json" in run.stdout + run.stderr
    [(recipients, message)] = [(r, m) for _, r, m in mail.received]
    assert recipients == ["night-duty@customs.example"]
    assert message["Subject"] == "[clearance_nightly] business date 2026-11-18: ingest_delivery failed"
    body = html.unescape(message.get_body(("html", "plain")).get_content())
    broken = inbox / "2026-11-18" / "cargo_event_20261118_01.csv"
    assert "DeliveryError: cargo_event_20261118_01.csv: SHA-256 does not match MANIFEST.json" in body
    assert f"File named in the error: {broken}" in body
    assert "(try 1)" in body  # bad input is not retried
    assert not (tmp_path / "warehouse" / "clearance.duckdb").exists()


def test_bad_input_fails_at_once_and_transient_faults_retry_after_the_delay():
    import smtplib

    from airflow.sdk.definitions.retry_policy import RetryAction

    from clearance.ingest import DeliveryError
    from clearance.orchestration import NightRetryPolicy
    from clearance.loading import AccountingError
    from clearance.state import StateInUseError

    policy = NightRetryPolicy(timedelta(seconds=300))
    for bad_input in (DeliveryError("MANIFEST.json", "rows must be a count"), AccountingError("3 rows lost")):
        assert policy.evaluate(bad_input, try_number=1, max_tries=3).action == RetryAction.FAIL
    for transient in (StateInUseError("in use by another run"), smtplib.SMTPServerDisconnected("gone"),
                      ConnectionRefusedError(111, "refused")):
        decision = policy.evaluate(transient, try_number=1, max_tries=3)
        assert (decision.action, decision.retry_delay) == (RetryAction.RETRY, timedelta(seconds=300)), transient
    # anything else (a bug, a killed task) retries as the task is configured
    assert policy.evaluate(KeyError("x"), try_number=1, max_tries=3).action == RetryAction.DEFAULT


def test_the_deadline_mail_tells_only_of_a_night_not_yet_published(tmp_path):
    """Airflow keeps a run's deadline until the whole run succeeds: a night that published and is still
    writing its dashboard at the deadline (or failed after publishing) is no unpublished night."""
    import duckdb

    warehouse = tmp_path / "warehouse" / "clearance.duckdb"
    warehouse.parent.mkdir()
    with duckdb.connect(str(warehouse)) as con:  # a published warehouse of business date 2026-11-20
        con.execute("CREATE TABLE run_context AS SELECT DATE '2026-11-20' AS business_date")
    port = free_port()
    sink, mail = start_mailsink(tmp_path / "mail", port)
    env = airflow_env(tmp_path, tmp_path / "inbox", warehouse, port)
    deadline = ("import asyncio, sys; from clearance.notify import night_not_published\n"
                "for night in sys.argv[1:]: asyncio.run(night_not_published("
                "{'dag_run': {'run_type': 'scheduled', 'run_id': 'scheduled__x', 'conf': {'business_date': night}}}, '08:00'))")
    try:
        subprocess.run([sys.executable, "-c", deadline, "2026-11-20", "2026-11-21"], env=env, check=True,
                       cwd=PROJECT_DIR, capture_output=True, timeout=120)
    finally:
        sink.stop()
    assert [m["Subject"] for _, _, m in mail.received] == [
        "[clearance_nightly] business date 2026-11-21 not published by 08:00 Beijing time"]
