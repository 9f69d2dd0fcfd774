"""Catching up history from an empty state (issue #14, item 5): `python -m clearance.recover --through D`
takes in every delivery of the inbox in bulk, and leaves the state, the accounting of every delivery and
the published warehouse exactly as the same nights run one at a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from clearance.ingest import DeliveryError
from clearance.loading import AccountingError
from clearance.pipeline import run_business_date
from clearance_tools.delivery_writer import write_delivery
from clearance_tools.simulator import simulate
from tests.conftest import PROJECT_DIR, state_file
from tests.deliveries import dec_head, entry_id, receipt

SIMULATED = ("2026-11-18", "2026-11-19", "2026-11-20")
BROKEN = "2026-11-19"  # a checksum that does not match: its night refuses the delivery
BY_HAND, TOO_BAD, RESENT = "2026-11-21", "2026-11-22", "2026-11-23"
NIGHTS = (*SIMULATED, BY_HAND, TOO_BAD, RESENT)

# Bookkeeping of the runs themselves (which run built the tables, which files it published), and the alert
# state: the nights mailed their stalls, a first deployment's catch-up tells no stall of the past.
NOT_COMPARED = {"run_context", "model_fingerprint", "published_partitions", "dirty_partitions", "model_test_results",
                "published_files", "alert_log", "alert_digests"}
POLICY = {"CLEARANCE_MAX_QUARANTINE_SHARE": "0.5", "CLEARANCE_MAX_QUARANTINE_ROWS": "20"}


def contents(path: Path) -> dict[str, list[tuple]]:
    """Every table and view of a DuckDB file but the bookkeeping, rows sorted."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [n for (n,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND database_name = current_database() "
            "UNION SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal "
            "AND database_name = current_database() ORDER BY 1").fetchall()]
        return {n: con.execute(f"SELECT * FROM {n} ORDER BY ALL").fetchall() for n in names if n not in NOT_COMPARED}


def write_inbox(inbox: Path) -> None:
    simulate(inbox, SIMULATED[0], len(SIMULATED), scale=0.02, seed=11, breaks=[(BROKEN, "dec_result", "checksum")])
    first = dec_head(entry_id(41), "2026-11-21 08:00:00", bill="COSU41")
    bad = dec_head(entry_id(42), "2026-11-21 09:00:00", i_e_flag="X")  # unknown I_E_FLAG: quarantined
    rows = {"dec_head": [first, first, bad, dec_head(entry_id(43), "2026-11-21 10:00:00")],  # a row twice
            "dec_result": [receipt(entry_id(41), "L", "2026-11-21 11:00:00")]}
    write_delivery(inbox, BY_HAND, rows)
    write_delivery(inbox, TOO_BAD, {"dec_result": [receipt(entry_id(50 + n), "Q", "2026-11-22 08:00:00")
                                                   for n in range(25)]})  # 25 of 25 rows bad: refused
    write_delivery(inbox, RESENT, rows)  # the exporter sends the same rows again


@pytest.fixture(scope="module")
def night_by_night(tmp_path_factory):
    root = tmp_path_factory.mktemp("nights")
    inbox, warehouse = root / "inbox", root / "warehouse" / "clearance.duckdb"
    write_inbox(inbox)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**POLICY, "CLEARANCE_INBOX": str(inbox), "CLEARANCE_WAREHOUSE": str(warehouse),
                            "CLEARANCE_DASHBOARD": str(root / "dashboard.html")}.items():
            mp.setenv(name, value)
        for night in NIGHTS:
            if night == BROKEN:
                with pytest.raises(DeliveryError, match="SHA-256 does not match"):
                    run_business_date(night)
            elif night == TOO_BAD:
                with pytest.raises(AccountingError, match="25 of 25 rows quarantined"):
                    run_business_date(night)
            else:
                run_business_date(night)
    return inbox, warehouse


def test_catching_up_from_an_empty_state_equals_the_nights_run_one_at_a_time(night_by_night, tmp_path):
    inbox, nights_warehouse = night_by_night
    warehouse = tmp_path / "warehouse" / "clearance.duckdb"
    environment = {**__import__("os").environ, **POLICY, "CLEARANCE_INBOX": str(inbox),
                   "CLEARANCE_WAREHOUSE": str(warehouse)}
    run = subprocess.run([sys.executable, "-m", "clearance.recover", "--through", RESENT], env=environment,
                         capture_output=True, text=True, cwd=PROJECT_DIR)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert f"recovered the state from {len(NIGHTS) - 2} deliveries" in run.stdout
    assert f"{BROKEN}: refused, as its night was: dec_result_20261119_01.csv: SHA-256 does not match" in run.stdout
    assert f"{TOO_BAD}: refused, as its night was: dec_result_20261122_01.csv: 25 of 25 rows quarantined" in run.stdout

    caught_up, nights = contents(state_file(warehouse)), contents(state_file(nights_warehouse))
    assert caught_up.keys() == nights.keys()
    for name in nights:
        assert caught_up[name] == nights[name], name
    published, nights_published = contents(warehouse), contents(nights_warehouse)
    assert published.keys() == nights_published.keys() and "core_shipments" in published
    for name in nights_published:
        assert published[name] == nights_published[name], name

    # what the comparison covers: every delivery's accounting, the duplicate, the re-send and the bad rows
    with duckdb.connect(str(warehouse), read_only=True) as con:
        accounting = con.execute("SELECT export_date::VARCHAR, source_file, rows_read, rows_loaded, rows_duplicate, "
                                 "rows_quarantined FROM file_accounting WHERE export_date >= ? ORDER BY ALL",
                                 [BY_HAND]).fetchall()
        quarantined = con.execute("SELECT export_date::VARCHAR, line_no, reason_code FROM quarantine "
                                  "WHERE export_date >= ? ORDER BY ALL", [BY_HAND]).fetchall()
        dates = {d for (d,) in con.execute("SELECT DISTINCT export_date::VARCHAR FROM file_accounting").fetchall()}
    assert accounting == [
        (BY_HAND, "dec_head_20261121_01.csv", 4, 2, 1, 1), (BY_HAND, "dec_result_20261121_01.csv", 1, 1, 0, 0),
        (RESENT, "dec_head_20261123_01.csv", 4, 0, 3, 1), (RESENT, "dec_result_20261123_01.csv", 1, 0, 1, 0),
    ]
    assert quarantined == [(BY_HAND, 4, "unknown_i_e_flag"), (RESENT, 4, "unknown_i_e_flag")]
    assert dates == set(NIGHTS) - {BROKEN, TOO_BAD}
    assert caught_up["quarantine"] and caught_up["row_sightings"]



def _processes_of_session(session: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_a_catch_up_killed_with_sigkill_leaves_no_worker_running(tmp_path):
    """SIGKILL reaches the catch-up's own process only and no cleanup runs: the processes reading the
    deliveries ahead go with it (they used to wait for work for ever)."""
    inbox = tmp_path / "inbox"
    simulate(inbox, "2026-11-01", 6, scale=0.05, seed=5)
    environment = {**os.environ, "CLEARANCE_INBOX": str(inbox),
                   "CLEARANCE_WAREHOUSE": str(tmp_path / "warehouse" / "clearance.duckdb")}
    catch_up = subprocess.Popen([sys.executable, "-m", "clearance.recover", "--through", "2026-11-06"],
                                env=environment, cwd=PROJECT_DIR, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until = time.monotonic() + 120
        while len(_processes_of_session(catch_up.pid)) < 3 and time.monotonic() < until:  # it and two workers
            assert catch_up.poll() is None, "the catch-up ended before it could be killed"
            time.sleep(0.2)
        assert len(_processes_of_session(catch_up.pid)) >= 3
        time.sleep(1)  # the workers are reading
        os.kill(catch_up.pid, signal.SIGKILL)
        catch_up.wait()
        until = time.monotonic() + 30
        while _processes_of_session(catch_up.pid) and time.monotonic() < until:
            time.sleep(0.5)
        assert _processes_of_session(catch_up.pid) == []
    finally:
        for pid in _processes_of_session(catch_up.pid):
            os.kill(pid, signal.SIGKILL)
