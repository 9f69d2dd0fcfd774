"""The night's build on the pipeline's state file: load the delivery, bring the models up to date.

Both happen in one transaction: a run that fails or is killed leaves the state as it was. The models
are incremental (clearance.models), so a night costs what the night brings, not what the year holds;
a full refresh rebuilds every table from all loaded rows (`python -m clearance.rebuild`).
"""

from __future__ import annotations

import duckdb

from clearance.config import Settings
from clearance.loading import load_delivery
from clearance.models import run_models, table_exists
from clearance.state import connect_state, transaction


def build_warehouse(settings: Settings, reports: list[dict], business_date: str) -> str:
    """Load the night's delivery and bring the models up to date, in one transaction. Returns the build id."""
    con = connect_state(settings)
    try:
        with transaction(con):
            export_dates = load_delivery(con, reports, business_date, settings.quarantine_policy)
            outcome = run_models(con, business_date, export_dates)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return outcome["build_id"]


def rebuild(settings: Settings, business_date: str | None = None) -> dict:
    """Full refresh: every staging, core and mart table rebuilt from all loaded rows."""
    con = connect_state(settings)
    try:
        if business_date is None:
            rows = con.execute("SELECT business_date::VARCHAR FROM run_context").fetchall() \
                if table_exists(con, "run_context") else []
            if not rows:
                raise RuntimeError(f"{settings.state_db}: nothing loaded yet; run a night first")
            business_date = rows[0][0]
        with transaction(con):
            outcome = run_models(con, business_date, full_refresh=True)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return outcome


def check_build(con: duckdb.DuckDBPyConnection, build_id: str, business_date: str) -> None:
    """The state is still what this run built: no other run rebuilt it in between."""
    rows = con.execute("SELECT build_id, business_date::VARCHAR FROM run_context").fetchall()
    if rows != [(build_id, business_date)]:
        built_for = rows[0][1] if rows else "nothing"
        raise RuntimeError(
            f"the state was rebuilt by another run (business date {built_for}) after this run built it; "
            f"nothing published for {business_date}, rerun business date {business_date}"
        )
