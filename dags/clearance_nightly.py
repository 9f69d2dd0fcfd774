"""clearance_nightly: the night's single-window delivery in, the published clearance warehouse out.

Runs at 02:00 Beijing time for the previous Beijing business date, one night at a time in
business-date order whatever started the run (scheduler, catch-up, backfill, `make run`). The
steps live in `clearance.pipeline`, the orchestration in `clearance.orchestration` and the
operators' mail in `clearance.notify`; this file only wires them. Nothing heavy is imported at
parse time.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, AsyncCallback, CronTriggerTimetable, DeadlineAlert, DeadlineReference, dag, task

from clearance import notify, orchestration, pipeline

# Downstream DAGs can be scheduled on it: every night that publishes marks it, with the business date
# and the warehouse's path. Its name is its URI: a downstream DAG names it as Asset("clearance_warehouse")
# whatever the deployment's paths (Airflow 3.3 gives a DAG scheduled on Asset.ref(name=...) no events).
PUBLISHED_WAREHOUSE = Asset("clearance_warehouse")
DEADLINE, AFTER_START = orchestration.publish_deadline()


@dag(
    dag_id=orchestration.DAG_ID,
    schedule=CronTriggerTimetable("0 2 * * *", timezone="Asia/Shanghai"),
    start_date=orchestration.catchup_start(),
    # Missed nights run when the scheduler is back, oldest first; where catch-up begins is a setting.
    catchup=True,
    is_paused_upon_creation=False,
    # Runs may be active together (a night waiting for its delivery must not hold up a hand run);
    # they take turns to write the state: see wait_for_earlier_nights.
    max_active_runs=4,
    default_args=orchestration.task_defaults(),
    on_failure_callback=notify.night_failed,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=AFTER_START,
        callback=AsyncCallback(notify.night_not_published, kwargs={"deadline": DEADLINE}),
    ),
    tags=["customs", "clearance"],
    doc_md=__doc__,
)
def clearance_nightly():
    @task
    def business_date(**context) -> str:
        """The Beijing business date this run processes (not Airflow's UTC `ds`): conf `business_date`,
        else the day before the logical date, else (triggered without one) the day before `run_after`.
        From here on the run stands in the pipeline's queue: runs started together go in date order."""
        return orchestration.join_queue(context["dag_run"], context["run_id"])

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

    @task(outlets=[PUBLISHED_WAREHOUSE])
    def publish_warehouse(build_id: str, day: str, *, outlet_events) -> str:
        """Write the changed months' Parquet files and a new warehouse file; swap it in atomically."""
        published = pipeline.publish(build_id, day)
        outlet_events[PUBLISHED_WAREHOUSE].extra = {"business_date": day, "warehouse": published}
        return published

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
    delivered = orchestration.DeliverySensor(
        task_id="wait_for_delivery", business_date=day,
        poke_interval=300, timeout=int(timedelta(hours=10).total_seconds()),
        doc_md="MANIFEST.json is written last: until it exists the delivery is incomplete. A scheduled run "
               "waits for it (deferred, 10 hours at most); a run started by hand fails at once naming it.")
    turn = orchestration.NightTurnSensor(
        task_id="wait_for_earlier_nights", business_date=day,
        poke_interval=orchestration.turn_poke_seconds(), timeout=int(timedelta(hours=12).total_seconds()),
        doc_md="One night at a time, in business-date order: waits for the run of the night before and for "
               "any run holding the pipeline's state (clearance.run_order).")
    reports = ingest_delivery(day)
    delivered >> turn >> reports
    build_id = build_warehouse(validate_delivery(reports, day), day)
    published = publish_warehouse(send_stall_alerts(build_id, day), day)
    build_dashboard(published)
    export_for_analysts(published, day)
    build_time_release_report(published, day)


dag = clearance_nightly()
