"""clearance_nightly: the night's single-window delivery in, the published clearance warehouse out.

Runs at 02:00 Beijing time for the previous Beijing business date. The steps live in
`clearance.pipeline`; this file only wires them. Nothing heavy is imported at parse time.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import CronTriggerTimetable, dag, task

from clearance import pipeline

# Operators hear of a failed task by mail (connection smtp_default), not by the deprecated email_on_failure.
notify_operators = SmtpNotifier(
    to=os.environ.get("CLEARANCE_OPERATOR_EMAILS", "clearance-operators@localhost").split(","),
    smtp_conn_id="smtp_default",
    subject="[clearance_nightly] task {{ ti.task_id }} failed (logical date {{ logical_date }})",
)


@dag(
    dag_id="clearance_nightly",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    # Each run builds on the state the previous one left: never two at once.
    max_active_runs=1,
    default_args={"retries": 0, "on_failure_callback": notify_operators},
    tags=["customs", "clearance"],
    doc_md=__doc__,
)
def clearance_nightly():
    @task
    def business_date(**context) -> str:
        """The Beijing business date this run processes (not Airflow's UTC `ds`).

        A run triggered by hand may have no logical date in Airflow 3: it is then the day before
        the run's own time (`run_after`), as for a scheduled run.
        """
        return pipeline.business_date_for(context.get("logical_date") or context["dag_run"].run_after)

    @task.sensor(poke_interval=timedelta(minutes=5), timeout=timedelta(hours=10), mode="reschedule")
    def wait_for_delivery(day: str) -> bool:
        """MANIFEST.json is written last: until it exists the delivery is incomplete."""
        return pipeline.manifest_path(day).exists()

    @task
    def ingest_delivery(day: str) -> list[dict]:
        """Check MANIFEST.json, checksums, row counts and encodings; split every file into rows."""
        return pipeline.ingest(day)

    @task
    def validate_delivery(reports: list[dict], day: str) -> list[dict]:
        """Great Expectations suites (expectations/) mark the rows to quarantine; results are kept."""
        return pipeline.validate(reports, day)

    @task
    def build_warehouse(reports: list[dict], day: str) -> str:
        """Load into the state file, account for every row, update the SQL models of transforms/."""
        return pipeline.build(reports, day)

    @task
    def send_stall_alerts(build_id: str, day: str) -> str:
        """One digest per office of newly stalled and escalated shipments; alert state kept in the state file.

        An SMTP outage does not fail the task: the digests are recorded unsent and go out next run.
        """
        pipeline.send_alerts(build_id, day)
        return build_id

    @task
    def publish_warehouse(build_id: str, day: str) -> str:
        """Write the changed months' Parquet files and a new warehouse file; swap it in atomically."""
        return pipeline.publish(build_id, day)

    @task
    def build_dashboard(published: str) -> str:
        """The self-contained HTML dashboard of the published warehouse, in dashboards/."""
        return pipeline.build_dashboard()

    @task
    def export_for_analysts(published: str, day: str) -> dict:
        """The marts as Parquet partitioned by month, and the event log as XES."""
        return pipeline.export_for_analysts(day)

    @task
    def build_time_release_report(published: str, day: str) -> list[str]:
        """The monthly Time Release Study reports (HTML and PDF, per district and for Liaoning) beside the dashboard."""
        return pipeline.build_time_release_report(day)

    day = business_date()
    reports = ingest_delivery(day)
    wait_for_delivery(day) >> reports
    build_id = build_warehouse(validate_delivery(reports, day), day)
    published = publish_warehouse(send_stall_alerts(build_id, day), day)
    build_dashboard(published)
    export_for_analysts(published, day)
    build_time_release_report(published, day)


dag = clearance_nightly()
