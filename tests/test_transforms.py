"""Milestones and segments on hand-written deliveries, each figure worked out by hand below.

Vessel call A: vessel 9123456, voyage 2611W at Dalian (DLC): ATA_ANCH 11-19 20:00, ATA_BERTH 11-20 02:00.
Vessel call B: vessel 9234567, voyage ORE01 at Yingkou (YKP): no anchorage event, ATA_BERTH 11-19 06:00.
Business date 2026-11-20: the cut-off is 2026-11-21 00:00 Beijing time.
"""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pytest

from clearance.pipeline import run_business_date
from clearance_tools.delivery_writer import write_delivery
from tests.conftest import snapshot, state_file
from tests.deliveries import cargo_event, container, dec_head, entry_id, manifest_line, receipt, vessel_event

PLAIN, EXPORT, ADVANCE, EARLY_NO_ADVANCE, TWO_STEP, SHIP_SIDE, RBI_ORE, INSPECTED, HELD, STILL_HELD, REJECTED, \
    CANCELLED, THREE_BOXES, RAIL = (
        entry_id(1), entry_id(2, direction="E"), entry_id(3), entry_id(4), entry_id(5), entry_id(6), entry_id(7),
        entry_id(8), entry_id(9), entry_id(10), entry_id(11), entry_id(12), entry_id(13), entry_id(14, office="0800"),
    )
C1, C3, C7, K1, K2, K3, R1, R2 = (container(n) for n in (100001, 100003, 100007, 110001, 110002, 110003, 120001, 120002))
ORE = dict(vessel="9234567", voyage="ORE01", port="YKP")


def night_one() -> dict:
    return {
        "vessel_event": [
            vessel_event("ATA_ANCH", "2026-11-19 20:00:00"),
            vessel_event("ATA_BERTH", "2026-11-20T02:00:00"),
            vessel_event("ATA_BERTH", "2026-11-19 06:00:00", **ORE),
        ],
        "dec_head": [
            # the bill written three ways: here with a blank, lower case in the manifest, with '-' in cargo events
            dec_head(PLAIN, "2026-11-20 04:00:00", bill="COSU 6234567890"),
            dec_head(EXPORT, "2026-11-20 08:30:00", i_e_flag="E", bill="EXP0000000002", voyage="2611E"),
            dec_head(ADVANCE, "2026-11-19 10:00:00", advance="Y", bill="COSU7000000003"),
            dec_head(EARLY_NO_ADVANCE, "2026-11-19 18:00:00", bill="COSU7000000004"),
            dec_head(TWO_STEP, "2026-11-19 21:00:00", decl_step="1", bill="COSU7000000005", gross_wt="1500"),
            dec_head(TWO_STEP, "2026-11-20 14:00:00", decl_step="2", bill="COSU7000000005", gross_wt="2000"),
            dec_head(SHIP_SIDE, "2026-11-19 15:00:00", advance="Y", shipside="Y", bill="COSU7000000006"),
            dec_head(RBI_ORE, "2026-11-19 08:00:00", rbi="Y", bill="ORE-BL-7", hs="2601110000", gross_wt="50000000", **ORE),
            dec_head(INSPECTED, "2026-11-20 03:00:00", bill="COSU7000000008", hs="8708299000"),
            dec_head(HELD, "2026-11-20 03:00:00", bill="COSU7000000009"),
            dec_head(STILL_HELD, "2026-11-20 05:00:00", bill="COSU7000000010"),
            dec_head(REJECTED, "2026-11-20 06:00:00", bill="COSU7000000011"),
            dec_head(CANCELLED, "2026-11-20 06:00:00", bill="COSU7000000012"),
            dec_head(THREE_BOXES, "2026-11-20 03:00:00", bill="MSCU1100000013"),
            dec_head(RAIL, "2026-11-19 22:00:00", office="0800", port="SHE", traf_mode="3", voyage="X8001",
                     advance="Y", bill="SHE0000000014", hs="8708100000", owner_name='沈阳"汽车",配件有限公司'),
        ],
        "dec_result": [
            receipt(PLAIN, "L", "20261120050000000"), receipt(PLAIN, "P", "2026-11-20 12:00:00"),
            receipt(PLAIN, "R", "2026-11-20 18:00:00"),
            receipt(EXPORT, "L", "2026-11-20 08:40:00"), receipt(EXPORT, "P", "2026-11-20 09:30:00"),
            receipt(ADVANCE, "L", "2026-11-19 10:30:00"), receipt(ADVANCE, "P", "2026-11-20 03:00:00"),
            receipt(EARLY_NO_ADVANCE, "L", "2026-11-19 18:30:00"), receipt(EARLY_NO_ADVANCE, "P", "2026-11-20 06:00:00"),
            receipt(TWO_STEP, "L", "2026-11-19 21:10:00"), receipt(TWO_STEP, "P", "2026-11-20 01:00:00"),
            receipt(SHIP_SIDE, "L", "2026-11-19 15:10:00"), receipt(SHIP_SIDE, "P", "2026-11-20 02:30:00"),
            receipt(RBI_ORE, "L", "2026-11-19 08:10:00"), receipt(RBI_ORE, "C", "2026-11-19 08:20:00"),
            receipt(RBI_ORE, "P", "2026-11-19 12:00:00"),
            receipt(INSPECTED, "L", "2026-11-20 03:30:00"), receipt(INSPECTED, "C", "2026-11-20 06:00:00"),
            receipt(INSPECTED, "P", "2026-11-20 11:00:00"),
            receipt(HELD, "L", "2026-11-20 03:20:00"), receipt(HELD, "H", "2026-11-20 04:00:00"),
            receipt(HELD, "M", "2026-11-20 09:00:00"), receipt(HELD, "P", "2026-11-20 10:00:00"),
            receipt(STILL_HELD, "L", "2026-11-20 05:30:00"), receipt(STILL_HELD, "H", "2026-11-20 12:00:00"),
            receipt(REJECTED, "E", "2026-11-20 07:00:00", note="退单，请重新申报"),
            receipt(CANCELLED, "L", "2026-11-20 06:10:00"), receipt(CANCELLED, "P", "2026-11-20 08:00:00"),
            receipt(CANCELLED, "D", "2026-11-20 09:00:00"),
            receipt(THREE_BOXES, "L", "2026-11-20 03:10:00"), receipt(THREE_BOXES, "P", "2026-11-20 05:00:00"),
            receipt(RAIL, "L", "2026-11-19 22:10:00", office="0800"), receipt(RAIL, "P", "2026-11-20 05:00:00", office="0800"),
        ],
        "manifest": [
            manifest_line("cosu6234567890", C1),
            manifest_line("MSCU1100000013", K1), manifest_line("MSCU1100000013", K2), manifest_line("MSCU1100000013", K3),
            manifest_line("ORE-BL-7", **ORE),
        ],
        "cargo_event": [
            cargo_event("Cosu-6234567890", "DISC_DONE", "2026-11-20 08:00:00", C1),
            cargo_event("Cosu-6234567890", "GATE_OUT", "2026-11-20 20:00:00", C1),
            cargo_event("EXP0000000002", "ARRIVAL_REPORT", "2026-11-20 08:00:00", voyage="2611E"),
            cargo_event("EXP0000000002", "LOADED", "2026-11-20 15:00:00", voyage="2611E"),
            cargo_event("COSU7000000006", "DISC_DONE", "2026-11-20 06:00:00", C3),
            cargo_event("COSU7000000006", "GATE_OUT", "2026-11-20 06:30:00", C3),
            cargo_event("ORE-BL-7", "DISC_DONE", "2026-11-20 10:00:00", **ORE),
            cargo_event("ORE-BL-7", "WEIGHT_DONE", "2026-11-20 11:00:00", **ORE),
            cargo_event("ORE-BL-7", "INSP_DONE", "2026-11-20 16:00:00", **ORE),
            cargo_event("ORE-BL-7", "CERT_ISSUED", "2026-11-20 22:00:00", **ORE),
            cargo_event("ORE-BL-7", "GATE_OUT", "2026-11-20 23:00:00", **ORE),
            cargo_event("COSU7000000008", "INSP_DONE", "2026-11-20 10:00:00", C7),
            cargo_event("MSCU1100000013", "GATE_OUT", "2026-11-20 10:00:00", K1),
            cargo_event("MSCU1100000013", "GATE_OUT", "2026-11-20 15:00:00", K2),
            cargo_event("SHE0000000014", "DISC_DONE", "2026-11-20 02:00:00", R2, vessel="", voyage="X8001", port="SHE"),
            cargo_event("SHE0000000014", "DISC_DONE", "2026-11-20 01:00:00", R1, vessel="", voyage="X8001", port="SHE"),
        ],
    }


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("transforms")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(root / "inbox"))
        mp.setenv("CLEARANCE_WAREHOUSE", str(root / "clearance.duckdb"))
        write_delivery(root / "inbox", "2026-11-20", night_one(), bom_kinds={"manifest"})
        run_business_date("2026-11-20")
        first = snapshot(root / "clearance.duckdb", root / "after_night_one")
        # night two: the third container of the bill leaves the port
        write_delivery(root / "inbox", "2026-11-21", {
            "cargo_event": [cargo_event("MSCU1100000013", "GATE_OUT", "2026-11-21 09:00:00", K3)],
        })
        run_business_date("2026-11-21")
    return first, root / "clearance.duckdb"


def shipment(path, entry: str) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        cur = con.execute("SELECT * FROM core_shipments WHERE entry_id = ?", [entry])
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    assert len(rows) == 1, f"{entry}: {len(rows)} rows"
    return dict(zip(names, rows[0]))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def assert_hours(row: dict, **expected):
    for column, value in expected.items():
        actual = row[f"{column}_hours"]
        if value is None:
            assert actual is None, f"{column}: {actual}"
        else:
            assert actual == pytest.approx(value, abs=1e-6), f"{column}: {actual} != {value}"


def test_plain_import_with_bill_written_three_ways(warehouse):
    row = shipment(warehouse[0], PLAIN)
    assert row["bill_no"] == "COSU6234567890"
    assert (row["arrival_at"], row["berthed_at"], row["discharged_at"]) == (
        at("2026-11-19 20:00"), at("2026-11-20 02:00"), at("2026-11-20 08:00"))
    assert (row["declared_at"], row["accepted_at"], row["released_at"], row["cleared_at"], row["gate_out_at"]) == (
        at("2026-11-20 04:00"), at("2026-11-20 05:00"), at("2026-11-20 12:00"), at("2026-11-20 18:00"),
        at("2026-11-20 20:00"))
    # released 12:00 - arrival 20:00 the day before = 16 h; customs from max(arrival, accepted 05:00) = 7 h
    assert_hours(row, overall_clearance=16, anchorage_wait=6, pre_declaration=8, customs_processing=7,
                 inspection=None, port_exit=8, door_to_gate=24)
    assert row["clearance_status"] == "released" and row["is_counted"]
    assert row["district_code"] == "0900" and row["commodity_group"] == "other"


def test_export(warehouse):
    row = shipment(warehouse[0], EXPORT)
    assert row["direction"] == "export"
    assert row["arrival_at"] == at("2026-11-20 08:00") and row["loaded_at"] == at("2026-11-20 15:00")
    assert row["berthed_at"] is None and row["gate_out_at"] is None
    assert_hours(row, overall_clearance=1.5, anchorage_wait=None, pre_declaration=0.5,
                 customs_processing=50 / 60, port_exit=None, door_to_gate=None)


def test_advance_declaration_is_a_legitimate_negative(warehouse):
    row = shipment(warehouse[0], ADVANCE)
    assert_hours(row, pre_declaration=-10, overall_clearance=7, customs_processing=7)
    assert row["reform_measures"] == ["advance_declaration"]
    assert row["unexpected_negative_segments"] == []


def test_declaration_before_arrival_without_advance_flag_is_a_finding(warehouse):
    row = shipment(warehouse[0], EARLY_NO_ADVANCE)
    assert_hours(row, pre_declaration=-2, overall_clearance=10)  # kept as it is, never clipped
    assert row["unexpected_negative_segments"] == ["pre_declaration"]
    with duckdb.connect(str(warehouse[0]), read_only=True) as con:
        findings = con.execute("SELECT finding, entry_id, detail FROM mart_data_quality_findings "
                               "WHERE finding = 'unexpected_negative_segment'").fetchall()
    assert findings == [("unexpected_negative_segment", EARLY_NO_ADVANCE, "pre_declaration")]


def test_two_step_declaration(warehouse):
    row = shipment(warehouse[0], TWO_STEP)
    assert row["is_two_step"] and row["reform_measures"] == ["two_step"]
    assert row["declared_at"] == at("2026-11-19 21:00")  # the summary version
    assert row["completed_declaration_at"] == at("2026-11-20 14:00")
    assert_hours(row, pre_declaration=1, overall_clearance=5)
    with duckdb.connect(str(state_file(warehouse[0])), read_only=True) as con:
        weight = con.execute("SELECT gross_weight_kg FROM core_declarations WHERE entry_id = ?", [TWO_STEP]).fetchone()
    assert weight == (2000.0,)  # the latest version wins


def test_ship_side_release_before_discharge(warehouse):
    row = shipment(warehouse[0], SHIP_SIDE)
    assert row["released_at"] < row["discharged_at"]
    assert_hours(row, overall_clearance=6.5, pre_declaration=-5, customs_processing=6.5, port_exit=4, door_to_gate=10.5)
    assert row["reform_measures"] == ["advance_declaration", "ship_side"]
    assert row["unexpected_negative_segments"] == []


def test_release_before_inspection_for_ores(warehouse):
    row = shipment(warehouse[0], RBI_ORE)
    assert row["commodity_group"] == "ores" and row["is_release_before_inspection"] and row["is_inspected"]
    assert row["arrival_at"] == at("2026-11-19 06:00")  # no anchorage event: berthing is the arrival
    assert row["released_at"] < row["inspected_at"] and row["certified_at"] == at("2026-11-20 22:00")
    # inspected 11-20 16:00 - ordered 11-19 08:20 = 31 h 40 min; bulk bill out at its bill-level GATE_OUT
    assert_hours(row, overall_clearance=6, anchorage_wait=0, customs_processing=230 / 60,
                 inspection=31 + 40 / 60, port_exit=35, door_to_gate=41)
    assert row["unexpected_negative_segments"] == []


def test_inspection(warehouse):
    row = shipment(warehouse[0], INSPECTED)
    assert row["is_inspected"] and row["commodity_group"] == "auto_parts"
    assert_hours(row, inspection=4, overall_clearance=15, customs_processing=7.5)


def test_hold_and_re_review(warehouse):
    held = shipment(warehouse[0], HELD)
    assert held["hold_count"] == 1 and held["clearance_status"] == "released"
    assert_hours(held, overall_clearance=14)
    with duckdb.connect(str(warehouse[0]), read_only=True) as con:
        wip = dict((r[0], r[1:]) for r in con.execute(
            "SELECT entry_id, open_stage, stage_since, hours_in_stage FROM mart_work_in_progress").fetchall())
    assert wip[STILL_HELD] == ("on_hold", at("2026-11-20 12:00"), pytest.approx(12))
    assert HELD not in wip or wip[HELD][0] != "on_hold"


def test_rejected_and_cancelled_are_kept_but_not_counted(warehouse):
    rejected, cancelled = shipment(warehouse[0], REJECTED), shipment(warehouse[0], CANCELLED)
    assert (rejected["clearance_status"], rejected["is_counted"]) == ("rejected", False)
    assert (cancelled["clearance_status"], cancelled["is_counted"]) == ("cancelled", False)
    with duckdb.connect(str(warehouse[0]), read_only=True) as con:
        in_wip = con.execute("SELECT count(*) FROM mart_work_in_progress WHERE entry_id IN (?, ?)",
                             [REJECTED, CANCELLED]).fetchone()[0]
    assert in_wip == 0


def test_last_of_three_containers_decides_gate_out(warehouse):
    after_two = shipment(warehouse[0], THREE_BOXES)
    assert after_two["gate_out_at"] is None  # two of three containers out
    assert_hours(after_two, port_exit=None, door_to_gate=None, overall_clearance=9)
    with duckdb.connect(str(warehouse[0]), read_only=True) as con:
        stage = con.execute("SELECT open_stage, hours_in_stage FROM mart_work_in_progress WHERE entry_id = ?",
                            [THREE_BOXES]).fetchone()
    assert stage == ("released_not_gated_out", pytest.approx(19))
    after_three = shipment(warehouse[1], THREE_BOXES)
    assert after_three["gate_out_at"] == at("2026-11-21 09:00")
    assert_hours(after_three, port_exit=28, door_to_gate=37)


def test_rail_import_arrives_at_first_discharge(warehouse):
    row = shipment(warehouse[0], RAIL)
    assert row["district_code"] == "0800" and row["transport_mode_code"] == "3"
    assert row["arrival_at"] == at("2026-11-20 01:00") and row["discharged_at"] == at("2026-11-20 02:00")
    assert_hours(row, overall_clearance=4, pre_declaration=-3, anchorage_wait=None)
    assert row["owner_name"] == '沈阳"汽车",配件有限公司'  # quotes and commas survive GB18030 CSV


def statistics(path, **where) -> dict:
    clauses = " AND ".join(f"{k} = ?" for k in where)
    with duckdb.connect(str(path), read_only=True) as con:
        cur = con.execute(f"SELECT * FROM mart_clearance_statistics WHERE {clauses}", list(where.values()))
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0]))


def test_daily_statistics_by_hand(warehouse):
    day = date(2026, 11, 20)
    # imports released on 11-20 and counted: 16, 7, 10, 5, 6.5, 15, 14, 9, 4 hours (the ore ship released on
    # 11-19; the cancelled declaration is not counted)
    imports = statistics(warehouse[0], grain="day", period_start=day, direction="import", dimension="all",
                         segment="overall_clearance")
    assert imports["shipments"] == 9
    assert imports["median_hours"] == pytest.approx(9)
    assert imports["mean_hours"] == pytest.approx(86.5 / 9)
    assert imports["p90_hours"] == pytest.approx(15.2)  # interpolated between 15 and 16
    assert imports["max_hours"] == pytest.approx(16)
    assert (imports["target_hours"], imports["share_within_target"]) == (48.0, 1.0)
    dalian = statistics(warehouse[0], grain="day", period_start=day, direction="import", dimension="port",
                        dimension_value="DLC", segment="overall_clearance")
    assert (dalian["shipments"], dalian["median_hours"]) == (8, pytest.approx(9.5))
    exports = statistics(warehouse[0], grain="day", period_start=day, direction="export", dimension="all",
                         segment="overall_clearance")
    assert (exports["shipments"], exports["median_hours"], exports["share_within_target"]) == (1, 1.5, 1.0)
    two_step = statistics(warehouse[0], grain="day", period_start=day, direction="import", dimension="reform_measure",
                          dimension_value="two_step", segment="overall_clearance")
    assert (two_step["shipments"], two_step["median_hours"]) == (1, 5)
    ores = statistics(warehouse[0], grain="day", period_start=date(2026, 11, 19), direction="import",
                      dimension="commodity_group", dimension_value="ores", segment="inspection")
    assert ores["median_hours"] == pytest.approx(31 + 40 / 60)
    month = statistics(warehouse[0], grain="month", period_start=date(2026, 11, 1), direction="import",
                       dimension="all", segment="overall_clearance")
    assert month["shipments"] == 10  # the nine of 11-20 and the ore ship of 11-19


def test_event_log_and_accounting(warehouse):
    with duckdb.connect(str(warehouse[0]), read_only=True) as con:
        events = con.execute("SELECT event_code FROM core_clearance_events WHERE entry_id = ? ORDER BY event_at",
                             [PLAIN]).fetchall()
        accounting = con.execute("SELECT sum(rows_read), sum(rows_loaded), sum(rows_duplicate), sum(rows_quarantined) "
                                 "FROM file_accounting").fetchone()
    assert [e[0] for e in events] == ["ATA_ANCH", "ATA_BERTH", "DECLARED", "RECEIPT_L", "DISC_DONE", "RECEIPT_P",
                                      "RECEIPT_R", "GATE_OUT"]
    delivered = sum(len(rows) for rows in night_one().values())
    assert accounting == (delivered, delivered, 0, 0)


def test_every_table_and_column_has_a_comment(warehouse):
    with duckdb.connect(str(warehouse[1]), read_only=True) as con:
        relations = ("SELECT table_name AS name, comment FROM duckdb_tables() WHERE NOT internal "
                     "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE NOT internal")
        tables = con.execute(f"SELECT name FROM ({relations}) WHERE coalesce(comment, '') = ''").fetchall()
        columns = con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                              "WHERE NOT internal AND coalesce(comment, '') = ''").fetchall()
        count = con.execute(f"SELECT count(*) FROM ({relations})").fetchone()[0]
    assert count >= 20 and tables == [] and columns == []
