"""The deployment's executor: Airflow's LocalExecutor, with the pipeline's libraries imported before
its workers are forked.

Under the LocalExecutor every task runs in a process forked from one of the executor's workers,
which are forked from the scheduler (Linux's fork start method). Imported here once, in the
scheduler, the libraries are in every task process from its first instruction: a task no longer
imports them again. Great Expectations alone takes 3-4.5 s to import on two cores, and the validate
task paid it every night.

Only third-party libraries are imported, never the pipeline's own modules or the DAG file: a change
to clearance/ or dags/ reaches the next task without a restart. Upgrading a library needs the
deployment restarted, as before. With another start method (spawn, forkserver) the import is
merely wasted, and tasks import what they need as they always do.
"""

from __future__ import annotations

import importlib
import logging

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)

# What the night's tasks import: the validation (Great Expectations, on pandas), the state and the
# models (DuckDB, pyarrow, polars), and the alerts' SMTP hook.
PRELOADED = ("duckdb", "pyarrow", "pyarrow.parquet", "polars", "pandas", "great_expectations",
             "airflow.providers.smtp.hooks.smtp")


def preload() -> list[str]:
    """Import PRELOADED; returns what could not be imported (the tasks then import it themselves)."""
    missing = []
    # Great Expectations logs some 200 lines at INFO while it imports (its docs decorators): not for the scheduler's log
    quiet = logging.getLogger("great_expectations")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        for module in PRELOADED:
            try:
                importlib.import_module(module)
            except ImportError as error:  # a task that needs it fails with its own, clearer error
                log.warning("not preloaded for the tasks: %s (%s)", module, error)
                missing.append(module)
    finally:
        quiet.setLevel(level)
    return missing


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose workers (and so every task process) start with PRELOADED imported."""

    def start(self) -> None:
        preload()
        super().start()
