"""Late and out-of-order data, reruns, readers during the write, and runs killed half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from clearance.config import settings
from clearance.pipeline import run_business_date
from clearance_tools.delivery_writer import write_delivery
from clearance_tools.simulator import simulate
from tests.conftest import PROJECT_DIR, state_file
from tests.deliveries import container, dec_head, entry_id, manifest_line, receipt, vessel_event

LATE, EARLY_RECEIPTS = entry_id(21), entry_id(22)
BOX = container(210001)


def rows(path, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def table_contents(path, table: str) -> list[tuple]:
    """A table's rows in a stable order, to compare warehouses."""
    return rows(path, f"SELECT * FROM {table} ORDER BY ALL")


def test_late_vessel_event_restates_past_statistics(clearance_env):
    inbox, warehouse = clearance_env
    # night 1: a shipment released on 11-20 whose vessel arrival has not been reported yet
    write_delivery(inbox, "2026-11-20", {
        "dec_head": [dec_head(LATE, "2026-11-20 04:00:00", bill="COSU2100000021")],
        "dec_result": [receipt(LATE, "L", "2026-11-20 05:00:00"), receipt(LATE, "P", "2026-11-20 12:00:00")],
        "manifest": [manifest_line("COSU2100000021", BOX)],
    })
    run_business_date("2026-11-20")
    overall = "SELECT shipments, median_hours FROM mart_clearance_statistics WHERE grain = 'day' AND " \
              "period_start = DATE '2026-11-20' AND dimension = 'all' AND segment = 'overall_clearance'"
    assert rows(warehouse, overall) == []  # no arrival yet: the segment is unknown, not counted
    assert rows(warehouse, "SELECT overall_clearance_hours FROM core_shipments") == [(None,)]

    # night 2 brings the arrival of 11-19 20:00, one day late
    write_delivery(inbox, "2026-11-21", {"vessel_event": [vessel_event("ATA_ANCH", "2026-11-19 20:00:00")]})
    run_business_date("2026-11-21")
    assert rows(warehouse, overall) == [(1, 16.0)]  # the statistics of 11-20 are restated


def test_receipts_before_their_declaration_header(clearance_env):
    inbox, warehouse = clearance_env
    write_delivery(inbox, "2026-11-20", {
        "vessel_event": [vessel_event("ATA_ANCH", "2026-11-19 20:00:00")],
        "dec_result": [receipt(EARLY_RECEIPTS, "P", "2026-11-20 09:00:00"),
                       receipt(EARLY_RECEIPTS, "L", "2026-11-20 06:00:00")],
    })
    run_business_date("2026-11-20")
    assert rows(warehouse, "SELECT finding, entry_id FROM mart_data_quality_findings") == [
        ("receipts_without_declaration", EARLY_RECEIPTS)]
    assert rows(warehouse, "SELECT count(*) FROM core_shipments") == [(0,)]

    write_delivery(inbox, "2026-11-21", {"dec_head": [dec_head(EARLY_RECEIPTS, "2026-11-20 05:00:00")]})
    run_business_date("2026-11-21")
    assert rows(warehouse, "SELECT count(*) FROM mart_data_quality_findings") == [(0,)]
    assert rows(warehouse, "SELECT accepted_at::VARCHAR, released_at::VARCHAR, overall_clearance_hours "
                           "FROM core_shipments") == [("2026-11-20 06:00:00", "2026-11-20 09:00:00", 13.0)]


def test_latest_manifest_version_wins(clearance_env):
    inbox, warehouse = clearance_env
    write_delivery(inbox, "2026-11-20", {"manifest": [
        manifest_line("COSU2100000023", BOX, update_time="2026-11-18 10:00:00", gross_wt="9000"),
    ]})
    run_business_date("2026-11-20")
    write_delivery(inbox, "2026-11-21", {"manifest": [
        manifest_line("COSU2100000023", BOX, update_time="2026-11-19 08:00:00", gross_wt="9500"),
    ]})
    run_business_date("2026-11-21")
    # a re-send of the older version arriving last does not win either
    write_delivery(inbox, "2026-11-22", {"manifest": [
        manifest_line("COSU2100000023", BOX, update_time="2026-11-17 10:00:00", gross_wt="8000"),
    ]})
    run_business_date("2026-11-22")
    assert rows(state_file(warehouse), "SELECT gross_weight_kg FROM core_manifest_lines") == [(9500.0,)]


MARTS = ("core_shipments", "mart_clearance_statistics", "mart_work_in_progress", "mart_data_quality_findings")


@pytest.fixture(scope="module")
def three_nights(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("inbox")
    simulate(inbox, "2026-11-10", 3, scale=0.03, seed=11)
    return inbox


def run_nights(inbox, warehouse, dates):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(inbox))
        mp.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
        for day in dates:
            run_business_date(day)


def test_rerunning_a_night_gives_identical_marts(three_nights, tmp_path):
    warehouse = tmp_path / "clearance.duckdb"
    run_nights(three_nights, warehouse, ["2026-11-10", "2026-11-11", "2026-11-12"])
    before = {t: table_contents(warehouse, t) for t in MARTS + ("quarantine", "file_accounting")}
    run_nights(three_nights, warehouse, ["2026-11-12"])
    assert {t: table_contents(warehouse, t) for t in before} == before
    assert len(before["core_shipments"]) > 50


def test_out_of_order_deliveries_converge(three_nights, tmp_path):
    in_order, shuffled = tmp_path / "a" / "clearance.duckdb", tmp_path / "b" / "clearance.duckdb"
    run_nights(three_nights, in_order, ["2026-11-10", "2026-11-11", "2026-11-12"])
    run_nights(three_nights, shuffled, ["2026-11-12", "2026-11-10", "2026-11-11", "2026-11-12"])
    for table in MARTS:
        assert table_contents(shuffled, table) == table_contents(in_order, table), table
    loaded = "SELECT sum(rows_loaded), sum(rows_duplicate), sum(rows_quarantined) FROM file_accounting"
    (in_order_counts,), (shuffled_counts,) = rows(in_order, loaded), rows(shuffled, loaded)
    assert in_order_counts[2] == shuffled_counts[2]
    assert sum(in_order_counts) == sum(shuffled_counts)  # each row once: loaded here, a duplicate there


def test_reader_holding_the_warehouse_open_neither_blocks_nor_sees_half_a_night(three_nights, tmp_path):
    warehouse = tmp_path / "clearance.duckdb"
    run_nights(three_nights, warehouse, ["2026-11-10"])
    # an analyst's process keeps the published file open read-only during the next night's run
    reader = subprocess.Popen(
        [sys.executable, "-c", (
            "import duckdb, sys\n"
            "con = duckdb.connect(sys.argv[1], read_only=True)\n"
            "print(con.execute('SELECT business_date FROM run_context').fetchall()[0][0], flush=True)\n"
            "sys.stdin.readline()\n"
            "print(con.execute('SELECT business_date FROM run_context').fetchall()[0][0], flush=True)\n"
        ), str(warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "2026-11-10"
        run_nights(three_nights, warehouse, ["2026-11-11"])  # must not fail on the reader's lock
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "2026-11-10"  # its file is whole and unchanged
    finally:
        reader.kill()
    assert rows(warehouse, "SELECT business_date FROM run_context") == [(date(2026, 11, 11),)]


def test_last_published_versions_are_kept(three_nights, tmp_path, monkeypatch):
    warehouse = tmp_path / "clearance.duckdb"
    monkeypatch.setenv("CLEARANCE_KEEP_VERSIONS", "2")
    run_nights(three_nights, warehouse, ["2026-11-10", "2026-11-11", "2026-11-12"])
    versions = sorted((tmp_path / "versions").glob("*.duckdb"))
    assert [v.name.split(".")[1] for v in versions] == ["2026-11-11", "2026-11-12"]
    assert [rows(v, "SELECT business_date::VARCHAR FROM run_context") for v in versions] == [
        [("2026-11-11",)], [("2026-11-12",)]]


@pytest.mark.parametrize("kill_when", ["ingesting", "building"])
def test_run_killed_half_way_leaves_the_published_warehouse_intact(three_nights, tmp_path, kill_when):
    warehouse = tmp_path / "clearance.duckdb"
    run_nights(three_nights, warehouse, ["2026-11-10"])
    published = warehouse.read_bytes()
    env = {**os.environ, "CLEARANCE_INBOX": str(three_nights), "CLEARANCE_WAREHOUSE": str(warehouse)}
    night = subprocess.Popen([sys.executable, "-c", "from clearance.pipeline import run_business_date; "
                              "run_business_date('2026-11-11')"], env=env, cwd=PROJECT_DIR)
    work = tmp_path / "_build"
    marker = (work / "2026-11-11") if kill_when == "ingesting" else (work / "clearance-2026-11-11.building.duckdb")
    deadline = time.monotonic() + 60
    while not marker.exists() and night.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert night.poll() is None, "the run finished before it could be killed"
    os.kill(night.pid, signal.SIGKILL)
    night.wait()

    assert warehouse.read_bytes() == published
    assert rows(warehouse, "SELECT business_date::VARCHAR FROM run_context") == [("2026-11-10",)]
    run_nights(three_nights, warehouse, ["2026-11-11"])  # the next run completes
    assert rows(warehouse, "SELECT business_date::VARCHAR FROM run_context") == [("2026-11-11",)]
    assert not list(work.glob("*.building.duckdb*"))


def test_two_runs_at_once_the_later_publish_refuses(three_nights, tmp_path):
    """`make run` beside a scheduled run: the run that publishes second would drop the other's night."""
    from clearance import pipeline

    warehouse = tmp_path / "clearance.duckdb"
    run_nights(three_nights, warehouse, ["2026-11-10"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(three_nights))
        mp.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
        slow = pipeline.build(pipeline.validate(pipeline.ingest("2026-11-12"), "2026-11-12"), "2026-11-12")
        run_business_date("2026-11-11")  # the other run publishes first
        published = warehouse.read_bytes()
        with pytest.raises(RuntimeError, match="rebuilt by another run .* after this run built it"):
            pipeline.publish(slow, "2026-11-12")
    assert warehouse.read_bytes() == published
    assert rows(warehouse, "SELECT business_date::VARCHAR FROM run_context") == [("2026-11-11",)]


# ----------------------------------------------------------------------------- incremental nights

def test_incremental_nights_equal_a_rebuild_from_scratch(three_nights, tmp_path):
    """Each night updates the models for the shipments its rows touch; table by table, the result is
    what a rebuild from every loaded row gives (nights out of order and a rerun included)."""
    from clearance.models import models
    from clearance.warehouse import rebuild

    warehouse = tmp_path / "clearance.duckdb"
    run_nights(three_nights, warehouse, ["2026-11-11", "2026-11-10", "2026-11-12", "2026-11-11"])
    state = state_file(warehouse)
    assert rows(state, "SELECT was_full_refresh FROM run_context") == [(False,)]
    tables = [m.name for m in models() if m.name != "run_context"]  # which build, and whether in full
    nightly = {table: table_contents(state, table) for table in tables}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
        rebuild(settings(), "2026-11-11")
    assert rows(state, "SELECT was_full_refresh FROM run_context") == [(True,)]
    for table in tables:
        assert table_contents(state, table) == nightly[table], table
    assert len(nightly["core_clearance_events"]) > 1000 and len(nightly["mart_clearance_statistics"]) > 100


def test_a_changed_reference_file_rebuilds_every_table(three_nights, tmp_path, monkeypatch):
    import shutil

    from clearance.config import SEEDS_DIR

    warehouse = tmp_path / "clearance.duckdb"
    run_nights(three_nights, warehouse, ["2026-11-10", "2026-11-11"])
    target = "SELECT DISTINCT target_hours FROM mart_clearance_statistics WHERE direction = 'import' " \
             "AND segment = 'overall_clearance' AND period_start = DATE '2026-11-10' AND grain = 'day'"
    assert rows(warehouse, target) == [(48.0,)]
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS_DIR, seeds)
    targets = (seeds / "clearance_targets.csv").read_text(encoding="utf-8")
    (seeds / "clearance_targets.csv").write_text(targets.replace("import,,48.00", "import,,40.00"), encoding="utf-8")
    monkeypatch.setattr("clearance.models.SEEDS_DIR", seeds)
    run_nights(three_nights, warehouse, ["2026-11-12"])
    assert rows(state_file(warehouse), "SELECT was_full_refresh FROM run_context") == [(True,)]
    assert rows(warehouse, target) == [(40.0,)]  # a day the night's rows did not touch


def test_a_night_rewrites_only_the_months_it_touches(clearance_env):
    inbox, warehouse = clearance_env
    october, november = entry_id(41), entry_id(42)
    write_delivery(inbox, "2026-11-20", {
        "dec_head": [dec_head(october, "2026-10-30 10:00:00", bill="COSU2100000041"),
                     dec_head(november, "2026-11-19 10:00:00", bill="COSU2100000042")],
        "dec_result": [receipt(october, "L", "2026-10-30 11:00:00"), receipt(november, "L", "2026-11-19 11:00:00")],
    })
    run_business_date("2026-11-20")
    files = "SELECT partition_month::VARCHAR, file FROM published_files WHERE table_name = 'core_shipments' ORDER BY 1"
    before = rows(warehouse, files)
    assert [month for month, _ in before] == ["2026-10-01", "2026-11-01"]

    write_delivery(inbox, "2026-11-21", {"dec_result": [receipt(november, "P", "2026-11-21 09:00:00")]})
    run_business_date("2026-11-21")
    after = rows(warehouse, files)
    assert after[0] == before[0]  # October untouched: the same file
    assert after[1][1] != before[1][1] and Path(before[1][1]).exists()  # November: a new file; the old one kept
    assert rows(warehouse, "SELECT entry_id, released_at::VARCHAR FROM core_shipments ORDER BY 1") == [
        (october, None), (november, "2026-11-21 09:00:00")]


def test_a_bill_left_by_its_declaration_is_listed_undeclared_again(clearance_env):
    """A bill's first counted declaration is kept per bill from night to night: an amendment that moves
    the declaration to another bill, a cancellation arriving alone, or a re-delivery that corrects the
    bill leaves the first bill undeclared, and the night names it as a rebuild would."""
    import shutil

    from clearance.warehouse import rebuild

    inbox, warehouse = clearance_env
    amended, cancelled, corrected = entry_id(51), entry_id(52), entry_id(53)
    left, taken, dropped, wrong = "COSU2100000051", "COSU2100000052", "COSU2100000053", "COSU2100000054"
    write_delivery(inbox, "2026-11-10", {
        "vessel_event": [vessel_event("ATA_ANCH", "2026-11-09 20:00:00")],
        "manifest": [manifest_line(bill, container(510000 + i), update_time="2026-11-09 10:00:00")
                     for i, bill in enumerate((left, taken, dropped, wrong))],
        "dec_head": [dec_head(amended, "2026-11-10 04:00:00", bill=left),
                     dec_head(cancelled, "2026-11-10 05:00:00", bill=dropped)],
    })
    write_delivery(inbox, "2026-11-11", {
        "dec_head": [dec_head(amended, "2026-11-10 04:00:00", update_time="2026-11-11 09:00:00", bill=taken)],
        "dec_result": [receipt(cancelled, "A", "2026-11-11 10:00:00")],
    })
    write_delivery(inbox, "2026-11-12", {"dec_head": [dec_head(corrected, "2026-11-12 04:00:00", bill=wrong)]})
    for day in ("2026-11-10", "2026-11-11", "2026-11-12"):
        run_business_date(day)
    # the exporter re-delivers 11-12 with the bill of the declaration corrected (to one on no manifest)
    shutil.rmtree(inbox / "2026-11-12")
    write_delivery(inbox, "2026-11-12", {"dec_head": [dec_head(corrected, "2026-11-12 04:00:00",
                                                               bill="COSU2100000055")]})
    run_business_date("2026-11-12")
    write_delivery(inbox, "2026-11-20", {})
    run_business_date("2026-11-20")  # at 11-21 00:00 the arrival is 268 h old: past the 240 h threshold

    stalled = ("SELECT alert_key, stage, is_still_open FROM mart_stalled_shipments "
               "WHERE stage = 'arrived_not_declared' ORDER BY 1")
    nightly = rows(warehouse, stalled)
    assert nightly == [(f"bill:{bill}", "arrived_not_declared", True) for bill in (left, dropped, wrong)]
    per_bill = "SELECT bill_no, first_counted_declared_at::VARCHAR FROM core_bill_declarations ORDER BY 1"
    assert rows(state_file(warehouse), per_bill) == [
        (left, None), (taken, "2026-11-10 04:00:00"), (dropped, None), (wrong, None)]
    rebuild(settings(), "2026-11-20")
    assert rows(warehouse, stalled) == nightly


def test_a_second_run_while_the_state_file_is_held_fails_clearly(three_nights, tmp_path):
    """Only the pipeline opens its state file; a run that finds it held says so and changes nothing."""
    from clearance.state import StateInUseError

    warehouse = tmp_path / "clearance.duckdb"
    run_nights(three_nights, warehouse, ["2026-11-10"])
    published = warehouse.read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys\ncon = duckdb.connect(sys.argv[1])\nprint('held', flush=True)\n"
                               "sys.stdin.readline()\n", str(state_file(warehouse))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StateInUseError, match="in use by another run"):
            run_nights(three_nights, warehouse, ["2026-11-11"])
    finally:
        holder.kill()
        holder.wait()
    assert warehouse.read_bytes() == published
    run_nights(three_nights, warehouse, ["2026-11-11"])  # once it is free, the night runs
    assert rows(warehouse, "SELECT business_date::VARCHAR FROM run_context") == [("2026-11-11",)]


def test_the_warehouse_folder_can_move(three_nights, tmp_path):
    """Everything the runs keep lives in the warehouse folder and names its files relative to it."""
    before, after = tmp_path / "before" / "clearance.duckdb", tmp_path / "after" / "clearance.duckdb"
    run_nights(three_nights, before, ["2026-11-10"])
    before.parent.rename(after.parent)
    run_nights(three_nights, after, ["2026-11-11"])
    files = rows(after, "SELECT file FROM published_files")
    assert files and all(Path(f).is_relative_to(after.parent) and Path(f).exists() for (f,) in files)
    [(shipments,)] = rows(after, "SELECT count(*) FROM core_shipments")
    assert shipments == rows(state_file(after), "SELECT count(*) FROM core_shipments")[0][0] > 50
    assert (after.parent / "data_docs" / "index.json").exists() and not before.parent.exists()
