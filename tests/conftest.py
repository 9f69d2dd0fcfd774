"""Shared test set-up: every test gets its own inbox, warehouse and Airflow home."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Airflow reads its home at import time: point it at a scratch folder before anything imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="clearance-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parent.parent / "dags")
# The dashboard and the reports of a test that names no place of its own: never the checkout's.
os.environ.setdefault("CLEARANCE_DASHBOARD", str(_AIRFLOW_HOME / "dashboards" / "clearance_dashboard.html"))

PROJECT_DIR = Path(__file__).resolve().parent.parent


def state_file(warehouse: Path) -> Path:
    """The pipeline's private state file beside a published warehouse (loaded rows, staging, every model)."""
    return Path(warehouse).parent / "_state" / f"{Path(warehouse).stem}_state.duckdb"


def snapshot(warehouse: Path, folder: Path) -> Path:
    """Copy a published warehouse and its state file as they are now; returns the copy's warehouse path."""
    copy = folder / Path(warehouse).name
    state_file(copy).parent.mkdir(parents=True)
    shutil.copyfile(warehouse, copy)
    shutil.copyfile(state_file(warehouse), state_file(copy))
    return copy


@pytest.fixture
def clearance_env(tmp_path, monkeypatch):
    """An empty inbox and warehouse location for one test."""
    inbox, warehouse = tmp_path / "inbox", tmp_path / "warehouse" / "clearance.duckdb"
    monkeypatch.setenv("CLEARANCE_INBOX", str(inbox))
    monkeypatch.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("CLEARANCE_DASHBOARD", str(tmp_path / "dashboards" / "clearance_dashboard.html"))
    return inbox, warehouse


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (tests/browser.py), one per test module."""
    from playwright.sync_api import sync_playwright

    from tests.browser import launch

    with sync_playwright() as p:
        instance = launch(p)
        yield instance
        instance.close()


def pytest_unconfigure(config):
    """The scratch Airflow home goes with the session (each xdist worker has its own)."""
    if os.environ.get("AIRFLOW_HOME") == str(_AIRFLOW_HOME):
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    """Where the browser tests left their screenshots."""
    from tests.browser import artifacts_dir

    shots = sorted(artifacts_dir().glob("*.png"))
    if shots:
        terminalreporter.write_line(f"screenshots of the browser tests: {artifacts_dir()} ({len(shots)} files)")
