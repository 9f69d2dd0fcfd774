"""The nightly run's steps, one function per Airflow task; the DAG file only wires them together."""

from __future__ import annotations

import logging
import shutil
from datetime import date, datetime, timedelta

from clearance.config import settings
from clearance.contract import BEIJING, MANIFEST_NAME

log = logging.getLogger(__name__)


def business_date_for(logical_date: datetime) -> str:
    """The run at 02:00 Beijing time on day D+1 processes business date D.

    Airflow's `ds` is the UTC date, which is not a Beijing business date; the logical date is
    converted to Beijing time first.
    """
    return (logical_date.astimezone(BEIJING).date() - timedelta(days=1)).isoformat()


def manifest_path(business_date: str):
    return settings().inbox / business_date / MANIFEST_NAME


def run_work_dir(business_date: str):
    return settings().work_dir / business_date


def ingest(business_date: str) -> list[dict]:
    from clearance.ingest import delivery_folder, ingest_delivery
    from clearance.state import private_folder

    private_folder(settings().work_dir)  # the night's rows as read: the pipeline's user only
    work = run_work_dir(business_date)
    shutil.rmtree(work, ignore_errors=True)
    return ingest_delivery(delivery_folder(settings().inbox, business_date), business_date, work)


def validate(reports: list[dict], business_date: str) -> list[dict]:
    from clearance.validation import validate_delivery

    return validate_delivery(reports, business_date, settings().gx_root, settings().data_docs_dir)


def build(reports: list[dict], business_date: str) -> str:
    """Load the night into the state file and update the models; returns the build id."""
    from clearance.warehouse import build_warehouse

    return build_warehouse(settings(), reports, business_date)


def send_alerts(build_id: str, business_date: str) -> dict:
    """Stalled-shipment digests from the night's build, the alert state recorded in the state file."""
    from clearance.alerts import send_digests
    from clearance.state import connect_state
    from clearance.warehouse import check_build

    con = connect_state(settings())
    try:
        check_build(con, build_id, business_date)
        outcome = send_digests(con, business_date, dashboard_url=settings().dashboard_url)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return outcome


def publish(build_id: str, business_date: str) -> str:
    from clearance.publish import publish as publish_warehouse

    # the night's work folder goes first: once the new file is swapped in nothing may fail
    shutil.rmtree(run_work_dir(business_date), ignore_errors=True)
    return str(publish_warehouse(settings(), build_id, business_date))


def build_dashboard() -> str:
    """The nightly dashboard of the published warehouse."""
    from dashboards.clearance_dashboard import build_dashboard as build_page

    return str(build_page(settings().warehouse, settings().dashboard))


def export_for_analysts(business_date: str) -> dict:
    """The marts as monthly Parquet and the event log as XES, from the published warehouse."""
    from clearance.exports import export_for_analysts as export

    s = settings()
    return export(s.warehouse, s.parquet_dir, s.event_log_dir, business_date)


def build_time_release_report(business_date: str) -> list[str]:
    """The month-to-date Time Release Study reports (and on the 1st the final ones of the month before),
    HTML and PDF, in time_release_study/ beside the dashboard."""
    from clearance.time_release_study import build_reports, report_folder

    s = settings()
    return [str(p) for p in build_reports(s.warehouse, report_folder(s.dashboard), date.fromisoformat(business_date))]


def run_business_date(business_date: str) -> str:
    """The whole night without Airflow: for tests of the steps and for benchmarks."""
    date.fromisoformat(business_date)
    reports = validate(ingest(business_date), business_date)
    build_id = build(reports, business_date)
    send_alerts(build_id, business_date)
    published = publish(build_id, business_date)
    build_dashboard()
    export_for_analysts(business_date)
    return published
