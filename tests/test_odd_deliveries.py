"""Odd and hostile deliveries from the field (issue #10): each test writes the delivery by hand and checks
the rows, figures or message a user would look at.

Every figure asserted comes from the rows written in the test itself.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from clearance.contract import KINDS, MANIFEST_NAME, data_file_name
from clearance.ingest import DeliveryError
from clearance.pipeline import run_business_date
from clearance_tools.delivery_writer import manifest_entry, render_csv, write_delivery, write_manifest
from tests.conftest import state_file
from tests.deliveries import cargo_event, container, dec_head, entry_id, manifest_line, receipt, vessel_event

D1, D2, D3 = "2026-11-20", "2026-11-21", "2026-11-22"


def query(path: Path, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def accounting(warehouse: Path) -> list[tuple]:
    return query(warehouse, "SELECT export_date::VARCHAR, source_file, rows_read, rows_loaded, rows_duplicate, "
                            "rows_quarantined FROM file_accounting ORDER BY ALL")


# ----------------------------------------------------------------- 1. row identity without collisions


def test_two_rows_that_only_a_separator_tells_apart_are_two_rows(clearance_env, monkeypatch):
    """The values of two rows joined with U+001F read the same; they are still two different rows."""
    inbox, warehouse = clearance_env
    monkeypatch.setenv("CLEARANCE_MAX_QUARANTINE_SHARE", "1")
    shipment = entry_id(1)
    code = "91210200MA0XXXXX1K"
    # OWNER_CODE + U+001F + OWNER_NAME is "91210200MA0XXXXX1K\x1fA\x1f大连" in both rows
    first = dec_head(shipment, "2026-11-20 08:00:00", bill="COSU1") | {"OWNER_CODE": f"{code}\x1fA", "OWNER_NAME": "大连"}
    second = dec_head(shipment, "2026-11-20 08:00:00", bill="COSU1") | {"OWNER_CODE": code, "OWNER_NAME": "A\x1f大连"}
    write_delivery(inbox, D1, {"dec_head": [first]})
    write_delivery(inbox, D2, {"dec_head": [second]})
    run_business_date(D1)
    run_business_date(D2)
    # the second is no re-send of the first: it is loaded (a second version with the same UPDATE_TIME)
    assert accounting(warehouse) == [
        (D1, data_file_name("dec_head", D1, 1), 1, 1, 0, 0),
        (D2, data_file_name("dec_head", D2, 1), 1, 1, 0, 0),
    ]
    assert query(state_file(warehouse), "SELECT owner_code, owner_name FROM land_dec_head ORDER BY export_date") == [
        (f"{code}\x1fA", "大连"), (code, "A\x1f大连")]
    assert query(warehouse, "SELECT finding, entry_id FROM mart_data_quality_findings WHERE finding = 'conflicting_versions'"
                 ) == [("conflicting_versions", shipment)]

    # in one file, the two are two different rows for one version: both quarantined, neither a duplicate
    write_delivery(inbox, D3, {"dec_head": [first, second]})
    run_business_date(D3)
    name = data_file_name("dec_head", D3, 1)
    assert [r for r in accounting(warehouse) if r[1] == name] == [(D3, name, 2, 0, 0, 2)]
    assert query(warehouse, "SELECT line_no, reason_code FROM quarantine WHERE source_file = ? ORDER BY 1", [name]) == [
        (2, "conflicting_version"), (3, "conflicting_version")]


# --------------------------------------------------- 2. every sighting kept, whatever the order of runs

RELEASE = receipt(entry_id(2), "P", "2026-11-20 15:00:00")


def sighting_deliveries(inbox: Path, first_delivery_carries_release: bool = True) -> None:
    shipment = entry_id(2)
    d1 = [receipt(shipment, "L", "2026-11-20 09:00:00")] + ([RELEASE] if first_delivery_carries_release else [])
    write_delivery(inbox, D1, {"dec_head": [dec_head(shipment, "2026-11-20 08:00:00", bill="COSU2")], "dec_result": d1})
    write_delivery(inbox, D2, {"dec_result": [receipt(entry_id(3), "L", "2026-11-21 09:00:00")],
                               "dec_head": [dec_head(entry_id(3), "2026-11-21 08:00:00", bill="COSU3")]})
    # at-least-once delivery: the release receipt again, two days later
    write_delivery(inbox, D3, {"dec_result": [RELEASE, receipt(shipment, "R", "2026-11-22 10:00:00")]})


def lineage(warehouse: Path) -> list[tuple]:
    return query(state_file(warehouse), "SELECT entry_id, channel, export_date::VARCHAR, source_file, line_no "
                                        "FROM land_dec_result ORDER BY ALL")


def test_a_row_stays_loaded_while_any_delivery_still_carries_it(clearance_env):
    inbox, warehouse = clearance_env
    sighting_deliveries(inbox)
    for day in (D1, D2, D3):
        run_business_date(day)
    results = {d: data_file_name("dec_result", d, 1) for d in (D1, D2, D3)}
    assert [r for r in accounting(warehouse) if r[1].startswith("dec_result")] == [
        (D1, results[D1], 2, 2, 0, 0), (D2, results[D2], 1, 1, 0, 0), (D3, results[D3], 2, 1, 1, 0)]
    assert (entry_id(2), "P", D1, results[D1], 3) in lineage(warehouse)

    # the exporter re-delivers the first date without the release receipt: the third date still carries it
    shutil.rmtree(inbox / D1)
    sighting_deliveries(inbox, first_delivery_carries_release=False)
    run_business_date(D1)
    assert [r for r in accounting(warehouse) if r[1].startswith("dec_result")] == [
        (D1, results[D1], 1, 1, 0, 0), (D2, results[D2], 1, 1, 0, 0), (D3, results[D3], 2, 2, 0, 0)]
    assert (entry_id(2), "P", D3, results[D3], 2) in lineage(warehouse)
    assert query(warehouse, "SELECT released_at FROM core_shipments WHERE entry_id = ?", [entry_id(2)]) == [
        (datetime(2026, 11, 20, 15, 0),)]
    [(sightings,)] = query(state_file(warehouse), "SELECT count(*) FROM row_sightings")
    assert sightings == 1 + 1 + 1 + 1 + 2  # dec_head of D1 and D2, dec_result L of D1 and D2, both of D3


def test_a_loaded_row_not_at_its_first_sighting_stops_the_night_and_names_the_table(clearance_env):
    """A row whose lineage moves is found in the state by its first sighting, not by its hash: a state
    changed outside the pipeline must stop the night, not load the row a second time."""
    inbox, warehouse = clearance_env
    sighting_deliveries(inbox)
    for day in (D1, D2, D3):
        run_business_date(day)
    published = query(warehouse, "SELECT entry_id, released_at FROM core_shipments ORDER BY 1")
    with duckdb.connect(str(state_file(warehouse))) as con:
        con.execute("UPDATE land_dec_result SET line_no = 99 WHERE channel = 'P'")
    shutil.rmtree(inbox / D1)
    sighting_deliveries(inbox, first_delivery_carries_release=False)  # the release receipt's lineage moves to D3
    with pytest.raises(Exception, match=r"land_dec_result: 1 loaded rows to move to another sighting, 0 found at"):
        run_business_date(D1)
    [(copies,)] = query(state_file(warehouse), "SELECT count(*) FROM land_dec_result WHERE channel = 'P'")
    assert copies == 1
    assert query(warehouse, "SELECT entry_id, released_at FROM core_shipments ORDER BY 1") == published


def test_deliveries_run_out_of_order_give_the_same_accounting_and_lineage(tmp_path, monkeypatch):
    results = {}
    for order in ((D1, D2, D3), (D3, D1, D2), (D2, D3, D1, D3)):
        inbox, warehouse = tmp_path / "-".join(order) / "inbox", tmp_path / "-".join(order) / "wh" / "clearance.duckdb"
        monkeypatch.setenv("CLEARANCE_INBOX", str(inbox))
        monkeypatch.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
        sighting_deliveries(inbox)
        for day in order:
            run_business_date(day)
        results[order] = (accounting(warehouse), lineage(warehouse),
                          query(warehouse, "SELECT entry_id, released_at, cleared_at FROM core_shipments ORDER BY 1"))
    in_order, *others = results.values()
    assert all(other == in_order for other in others)
    assert in_order[0][-1][2:] == (2, 1, 1, 0)  # the third date's release receipt is the duplicate


# -------------------------------------------------- 3. a manifest re-send is the bill's container list

BILL = "COSU4000000001"
C1, C2, C3 = container(400001), container(400002), container(400003)


def test_a_file_with_its_header_and_no_rows_is_a_file_of_nothing_that_day(clearance_env):
    """A port with no vessel movements that day exports the file with its header only (row count 0 in
    MANIFEST.json): the night validates, loads the other files and accounts the empty one."""
    inbox, warehouse = clearance_env
    shipment = entry_id(1)
    write_delivery(inbox, D1, {
        "dec_head": [dec_head(shipment, f"{D1} 02:00:00")],
        "dec_result": [receipt(shipment, "L", f"{D1} 03:00:00"), receipt(shipment, "P", f"{D1} 09:00:00")],
        "vessel_event": [],
    })
    run_business_date(D1)
    assert (D1, data_file_name("vessel_event", D1, 1), 0, 0, 0, 0) in accounting(warehouse)
    assert query(warehouse, "SELECT entry_id, clearance_status FROM core_shipments") == [(shipment, "released")]


def test_a_corrected_container_number_replaces_the_wrong_one(clearance_env):
    inbox, warehouse = clearance_env
    shipment = entry_id(4)
    write_delivery(inbox, D1, {
        "dec_head": [dec_head(shipment, "2026-11-20 01:00:00", bill=BILL)],
        "dec_result": [receipt(shipment, "L", "2026-11-20 02:00:00"), receipt(shipment, "P", "2026-11-20 06:00:00")],
        "vessel_event": [vessel_event("ATA_ANCH", "2026-11-20 00:00:00"), vessel_event("ATA_BERTH", "2026-11-20 03:00:00")],
        # C2 is keyed wrongly: the box on the ship is C3
        "manifest": [manifest_line(BILL, C1, update_time="2026-11-19 10:00:00"),
                     manifest_line(BILL, C2, update_time="2026-11-19 10:00:00")],
        "cargo_event": [cargo_event(BILL, "GATE_OUT", "2026-11-20 10:00:00", C1),
                        cargo_event(BILL, "GATE_OUT", "2026-11-20 11:30:00", C3)],
    })
    write_delivery(inbox, D2, {"manifest": [manifest_line(BILL, C1, update_time="2026-11-21 08:00:00"),
                                            manifest_line(BILL, C3, update_time="2026-11-21 08:00:00")]})
    run_business_date(D1)
    assert query(warehouse, "SELECT gate_out_at FROM core_shipments WHERE entry_id = ?", [shipment]) == [(None,)]
    run_business_date(D2)
    assert query(state_file(warehouse), "SELECT container_no FROM core_manifest_lines WHERE bill_no = ? ORDER BY 1",
                 [BILL]) == [(C1,), (C3,)]
    assert query(warehouse, "SELECT gate_out_at, port_exit_hours FROM core_shipments WHERE entry_id = ?", [shipment]) == [
        (datetime(2026, 11, 20, 11, 30), 5.5)]
    assert query(warehouse, "SELECT count(*) FROM mart_stalled_shipments WHERE entry_id = ?", [shipment]) == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM mart_work_in_progress WHERE entry_id = ?", [shipment]) == [(0,)]


# ----------------------------------------------- 6. rail, road and air lines have no vessel and no voyage


def test_rail_consignment_lines_without_vessel_or_voyage_load_and_gate_out_waits_for_every_box(clearance_env):
    inbox, warehouse = clearance_env
    shipment, bill = entry_id(6, office="0800"), "SHE-RAIL-0006"
    rail = {"vessel": "", "voyage": "", "port": "SHE"}
    write_delivery(inbox, D1, {
        "dec_head": [dec_head(shipment, "2026-11-20 05:00:00", office="0800", port="SHE", traf_mode="3", voyage="",
                              bill=bill)],
        "dec_result": [receipt(shipment, "L", "2026-11-20 05:30:00", office="0800"),
                       receipt(shipment, "P", "2026-11-20 09:00:00", office="0800")],
        "manifest": [manifest_line(bill, C1, **rail), manifest_line(bill, C2, **rail)],
        "cargo_event": [cargo_event(bill, "DISC_DONE", "2026-11-20 04:00:00", C1, **rail),
                        cargo_event(bill, "DISC_DONE", "2026-11-20 04:20:00", C2, **rail),
                        cargo_event(bill, "GATE_OUT", "2026-11-20 12:00:00", C1, **rail)],
    })
    write_delivery(inbox, D2, {"cargo_event": [cargo_event(bill, "GATE_OUT", "2026-11-21 08:00:00", C2, **rail)]})
    run_business_date(D1)
    assert query(warehouse, "SELECT count(*) FROM quarantine") == [(0,)]
    assert query(state_file(warehouse), "SELECT vessel_id, voyage_no, container_no FROM core_manifest_lines "
                                        "ORDER BY container_no") == [(None, None, C1), (None, None, C2)]
    # one of the two boxes is out: the shipment has not left the port yet
    assert query(warehouse, "SELECT arrival_at, gate_out_at FROM core_shipments WHERE entry_id = ?", [shipment]) == [
        (datetime(2026, 11, 20, 4, 0), None)]
    assert query(warehouse, "SELECT open_stage FROM mart_work_in_progress WHERE entry_id = ?", [shipment]) == [
        ("released_not_gated_out",)]
    run_business_date(D2)
    assert query(warehouse, "SELECT gate_out_at, door_to_gate_hours FROM core_shipments WHERE entry_id = ?", [shipment]) == [
        (datetime(2026, 11, 21, 8, 0), 28.0)]


# ------------------------------------------------------------------ 4, 5, 8. files refused, and named

def write_raw_file(inbox: Path, export_date: str, kind: str, data: bytes, rows: int) -> Path:
    folder = inbox / export_date
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / data_file_name(kind, export_date, 1)
    path.write_bytes(data)
    write_manifest(folder, export_date, [manifest_entry(path, rows)])
    return path


def header(kind: str) -> str:
    return ",".join(KINDS[kind].columns)


def test_a_file_cut_inside_a_quoted_value_is_truncated(clearance_env):
    inbox, warehouse = clearance_env
    good = f'{entry_id(8)},L,2026-11-20 09:00:00,0900,受理'
    # the NOTE of the last receipt holds a line break; the file was cut right after it
    cut = f'{entry_id(8)},P,2026-11-20 12:00:00,0900,"放行\r\n'
    path = write_raw_file(inbox, D1, "dec_result", f"{header('dec_result')}\r\n{good}\r\n{cut}".encode("gb18030"), 2)
    with pytest.raises(DeliveryError) as caught:
        run_business_date(D1)
    assert str(caught.value) == (f"{path.name}, line 3: truncated: the file ends inside a quoted value "
                                 "(no closing quote)")
    assert not warehouse.exists()


def test_a_doubled_byte_order_mark_is_removed_and_the_first_column_kept(clearance_env):
    inbox, warehouse = clearance_env
    rows = [vessel_event("ATA_ANCH", "2026-11-20 01:00:00"), vessel_event("ATA_BERTH", "2026-11-20 04:00:00")]
    data = render_csv(pl.DataFrame(rows), "utf-8")
    write_raw_file(inbox, D1, "vessel_event", b"\xef\xbb\xbf\xef\xbb\xbf" + data, 2)
    run_business_date(D1)
    assert query(state_file(warehouse), "SELECT vessel_id, voyage_no, event_code FROM land_vessel_event ORDER BY 3") == [
        ("9123456", "2611W", "ATA_ANCH"), ("9123456", "2611W", "ATA_BERTH")]
    assert query(warehouse, "SELECT arrival_at, berthed_at FROM core_vessel_calls") == [
        (datetime(2026, 11, 20, 1, 0), datetime(2026, 11, 20, 4, 0))]


def test_a_field_longer_than_the_limit_names_the_file_and_line(clearance_env):
    inbox, warehouse = clearance_env
    note = "很长" * 100_000  # 200,000 characters: an opening quote that never closes reads like this
    lines = [header("dec_result"), f"{entry_id(9)},L,2026-11-20 09:00:00,0900,ok",
             f'{entry_id(9)},P,2026-11-20 12:00:00,0900,"{note}"']
    path = write_raw_file(inbox, D1, "dec_result", ("\r\n".join(lines) + "\r\n").encode("gb18030"), 2)
    with pytest.raises(DeliveryError) as caught:
        run_business_date(D1)
    assert str(caught.value).startswith(f"{path.name}, line 3: a field is longer than 131,072 characters")
    assert not warehouse.exists()


@pytest.mark.parametrize(("document", "reason"), [
    ([], "the document: [] is not of type 'object'"),
    (None, "the document: None is not of type 'object'"),
    ({"export_date": D1, "files": [{"name": "x", "rows": True, "sha256": "0" * 64}]},
     "files[0].rows: True is not of type 'integer'"),
    ({"export_date": D1, "files": [{"name": "x", "rows": 1}]}, "files[0]: 'sha256' is a required property"),
    ({"export_date": D1}, "the document: 'files' is a required property"),
    ({"export_date": 20261120, "files": []}, "export_date: 20261120 is not of type 'string'"),
])
def test_a_manifest_of_the_wrong_shape_is_refused_with_the_field_and_reason(document, reason, clearance_env):
    inbox, warehouse = clearance_env
    (inbox / D1).mkdir(parents=True)
    (inbox / D1 / MANIFEST_NAME).write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(DeliveryError) as caught:
        run_business_date(D1)
    assert str(caught.value) == f"{inbox / D1 / MANIFEST_NAME}: does not follow the MANIFEST.json schema: {reason}"
    assert not warehouse.exists()


def test_a_data_file_that_is_a_symbolic_link_is_refused_and_not_followed(clearance_env, tmp_path):
    inbox, warehouse = clearance_env
    folder = write_delivery(inbox, D1, {"vessel_event": [vessel_event("ATA_ANCH", "2026-11-20 01:00:00")]})
    name = data_file_name("vessel_event", D1, 1)
    # a file outside the inbox that looks like the delivery's own
    secret = tmp_path / "elsewhere.csv"
    shutil.move(folder / name, secret)
    os.symlink(secret, folder / name)
    with pytest.raises(DeliveryError) as caught:
        run_business_date(D1)
    assert str(caught.value) == f"{folder / name}: {name} is a symbolic link (to {secret}); a delivery holds its files itself"
    assert not warehouse.exists()


@pytest.mark.parametrize("which", ["data file", "manifest"])
def test_a_fifo_in_the_delivery_is_refused_at_once_not_waited_on(clearance_env, which):
    """A named pipe where a file should be would block a plain open() until someone writes to it."""
    import threading

    inbox, warehouse = clearance_env
    folder = write_delivery(inbox, D1, {"vessel_event": [vessel_event("ATA_ANCH", "2026-11-20 01:00:00")]})
    name = data_file_name("vessel_event", D1, 1) if which == "data file" else MANIFEST_NAME
    (folder / name).unlink()
    os.mkfifo(folder / name)
    outcome = []
    night = threading.Thread(target=lambda: outcome.append(_raised(lambda: run_business_date(D1))), daemon=True)
    night.start()
    night.join(timeout=120)
    if night.is_alive():  # unblock the open() so that the test process can end
        with open(folder / name, "wb"):
            pass
        pytest.fail(f"the night waits on the FIFO {folder / name}")
    [error] = outcome
    assert isinstance(error, DeliveryError) and "is not a regular file" in str(error), error
    assert str(folder / name) in str(error)
    assert not warehouse.exists()


def _raised(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
        return exc
    return None


def test_a_manifest_that_is_a_symbolic_link_is_refused(clearance_env, tmp_path):
    inbox, warehouse = clearance_env
    folder = write_delivery(inbox, D1, {"vessel_event": [vessel_event("ATA_ANCH", "2026-11-20 01:00:00")]})
    elsewhere = tmp_path / "manifest-elsewhere.json"
    shutil.move(folder / MANIFEST_NAME, elsewhere)
    os.symlink(elsewhere, folder / MANIFEST_NAME)
    with pytest.raises(DeliveryError, match="MANIFEST.json is a symbolic link"):
        run_business_date(D1)
    assert not warehouse.exists()
