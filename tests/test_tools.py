"""The demo's mail server and its check, and `make rebuild`: they tell the truth about what happened."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage

import duckdb

from clearance_tools.mailsink import check_delivered
from clearance.pipeline import run_business_date
from tests.conftest import PROJECT_DIR
from tests.test_alerts import free_port, nights_of_stalls, smtp_connection


def start_sink(folder, port, port_file):
    return subprocess.Popen([sys.executable, "-m", "clearance_tools.mailsink", "--dir", str(folder), "--port", str(port),
                             "--port-file", str(port_file)], cwd=PROJECT_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_the_mail_sink_takes_a_free_port_or_names_the_one_in_use(tmp_path):
    sink = start_sink(tmp_path / "mail", 0, tmp_path / "port")
    try:
        for _ in range(100):
            if (tmp_path / "port").exists() and (tmp_path / "port").read_text():
                break
            time.sleep(0.1)
        port = int((tmp_path / "port").read_text())
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = "test", "a@localhost", "b@localhost"
        message.set_content("hello")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(message)
        assert len(list((tmp_path / "mail").glob("*.eml"))) == 1

        # a second server asked for the same port stops at once and says which port
        taken = start_sink(tmp_path / "mail2", port, tmp_path / "port2")
        _, err = taken.communicate(timeout=60)
        assert taken.returncode == 1 and f"port {port} on 127.0.0.1 is in use" in err
        assert not (tmp_path / "port2").exists()
    finally:
        os.kill(sink.pid, signal.SIGTERM)
        sink.wait(timeout=30)


def test_the_demo_check_fails_while_digests_did_not_arrive(clearance_env, monkeypatch, tmp_path):
    inbox, warehouse = clearance_env
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(free_port()))  # nobody listens there
    nights_of_stalls(inbox)
    mail = tmp_path / "mail"
    mail.mkdir()
    problem = check_delivered(mail, warehouse)
    assert problem and problem.startswith("1 of 1 stalled-shipment alerts were never mailed")
    out = subprocess.run([sys.executable, "-m", "clearance_tools.mailsink", "--dir", str(mail), "--check", str(warehouse)],
                         cwd=PROJECT_DIR, capture_output=True, text=True)
    assert out.returncode == 1 and "never mailed" in out.stderr

    from clearance_tools.mailsink import start

    controller, _ = start(mail)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(controller.port))
    try:
        run_business_date("2026-11-20")  # the rerun sends what was kept
    finally:
        controller.stop()
    assert check_delivered(mail, warehouse) is None


def test_rebuild_rebuilds_the_dashboard_the_exports_and_the_reports(clearance_env, tmp_path, monkeypatch):
    inbox, warehouse = clearance_env
    dashboard = tmp_path / "dashboards" / "clearance_dashboard.html"
    monkeypatch.setenv("CLEARANCE_DASHBOARD", str(dashboard))
    nights_of_stalls(inbox)
    exported = (warehouse.parent / "parquet").resolve()
    dashboard.unlink()
    shutil.rmtree(dashboard.parent / "time_release_study", ignore_errors=True)
    out = subprocess.run([sys.executable, "-m", "clearance.rebuild"], cwd=PROJECT_DIR, capture_output=True, text=True,
                         env={**os.environ})
    assert out.returncode == 0, out.stderr[-2000:]
    assert dashboard.exists() and f"dashboard: {dashboard}" in out.stdout
    assert (warehouse.parent / "parquet").resolve() != exported  # a new export, switched in
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(in_warehouse,)] = con.execute("SELECT count(*) FROM mart_stalled_shipments").fetchall()
        [(in_export,)] = con.execute(f"SELECT count(*) FROM read_parquet('{warehouse.parent}/parquet/"
                                     "mart_stalled_shipments/**/*.parquet')").fetchall()
    assert in_export == in_warehouse == 1
    # the Time Release Study reports of the business date, written from the rebuilt warehouse
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(business_date, cutoff_at)] = con.execute("SELECT business_date, cutoff_at FROM run_context").fetchall()
    report = dashboard.parent / "time_release_study" / f"TRS_{business_date:%Y-%m}_liaoning_month-to-date.html"
    assert report.exists() and f"{cutoff_at:%Y-%m-%d %H:%M}" in report.read_text(encoding="utf-8"), out.stdout
    assert report.with_suffix(".pdf").exists()



def test_the_product_imports_without_its_tools():
    """clearance_tools is the dev group's: every module of the product and the DAG file import without it
    (as on a deployment that installs the product only)."""
    script = """
import importlib, pkgutil, sys
class NoTools:
    def find_spec(self, name, path=None, target=None):
        if name == "clearance_tools" or name.startswith("clearance_tools."):
            raise ImportError("clearance_tools is not installed")
sys.meta_path.insert(0, NoTools())
import clearance, dashboards
for package in (clearance, dashboards):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
import runpy
runpy.run_path("dags/clearance_nightly.py")
print("imported")
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("imported"), run.stderr[-3000:]
