"""Stalled-shipment digests against a real SMTP server on 127.0.0.1 (aiosmtpd).

Cut-offs are the end of each business date, Beijing time. Thresholds are the defaults of
transforms/seeds/stall_thresholds.csv: accepted, not released 24 h; released, not out of the gate
72 h; arrived, not declared 240 h. Recipients come from transforms/seeds/alert_recipients.csv.
"""

from __future__ import annotations

import io
import json
import shutil
import socket

import duckdb
import openpyxl
import pytest

from clearance.pipeline import run_business_date
from clearance_tools.delivery_writer import write_delivery
from clearance_tools.mailsink import start
from tests.deliveries import cargo_event, container, dec_head, entry_id, manifest_line, receipt, vessel_event

SLOW, RELEASED_LATER, NOT_OUT = entry_id(41), entry_id(42), entry_id(43, office="0800")
DALIAN = "clearance-monitor@dalian-customs.example"
SHENYANG = "clearance-monitor@shenyang-customs.example"
BOX = container(430001)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_connection(port: int) -> str:
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {
        "disable_tls": True, "disable_ssl": True, "from_email": "monitor@customs.example", "retry_limit": 0,
        "timeout": 5}})


@pytest.fixture
def smtp_server(tmp_path, monkeypatch):
    """A real SMTP server on 127.0.0.1; smtp_default points at it."""
    port = free_port()
    controller, handler = start(tmp_path / "mail", port)
    handler.port = port
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(port))
    yield handler
    controller.stop()


def night(inbox, day: str, files: dict) -> None:
    write_delivery(inbox, day, files)
    run_business_date(day)


def nights_of_stalls(inbox):
    """Night 11-20: one import accepted and never released, one released later, one not out of the gate."""
    night(inbox, "2026-11-20", {
        "vessel_event": [vessel_event("ATA_ANCH", "2026-11-19 20:00:00"), vessel_event("ATA_BERTH", "2026-11-19 22:00:00"),
                         vessel_event("ATA_BERTH", "2026-11-10 20:00:00", vessel="9345678", voyage="OLD1")],
        "dec_head": [
            dec_head(SLOW, "2026-11-20 00:30:00", bill="COSU4100000041", owner_name="=HYPERLINK(\"http://x\")"),
            dec_head(RELEASED_LATER, "2026-11-20 00:30:00", bill="COSU4100000042"),
            dec_head(NOT_OUT, "2026-11-19 09:00:00", office="0800", port="SHE", traf_mode="3", voyage="X8001",
                     bill="SYRW4300000043"),
        ],
        "dec_result": [
            receipt(SLOW, "L", "2026-11-20 01:00:00"), receipt(RELEASED_LATER, "L", "2026-11-20 01:00:00"),
            receipt(NOT_OUT, "L", "2026-11-19 09:10:00", office="0800"),
            receipt(NOT_OUT, "P", "2026-11-19 10:00:00", office="0800"),
        ],
        "manifest": [manifest_line("SYRW4300000043", BOX, vessel="", voyage="X8001", port="SHE"),
                     # a bill on a call that arrived ten days ago and was never declared
                     manifest_line("MAEU9900000099", container(990001), vessel="9345678", voyage="OLD1")],
        "cargo_event": [cargo_event("SYRW4300000043", "DISC_DONE", "2026-11-19 06:00:00", BOX, vessel="",
                                    voyage="X8001", port="SHE")],
    })


def subjects(handler) -> list[str]:
    return [m["Subject"] for _, _, m in handler.received]


def alert_rows(warehouse) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT alert_key, stage, level, status FROM alert_log ORDER BY ALL").fetchall()


def test_digest_contents_and_recipients(clearance_env, smtp_server):
    inbox, warehouse = clearance_env
    nights_of_stalls(inbox)
    # at the 11-21 00:00 cut-off: SLOW 23 h accepted (under 24 h); NOT_OUT 38 h released (under 72 h);
    # the undeclared bill arrived 11-10 20:00, 244 h ago (over 240 h): one digest, to Dalian's district office
    assert len(smtp_server.received) == 1
    sender, recipients, message = smtp_server.received[0]
    assert (sender, recipients) == ("monitor@customs.example", [DALIAN])
    assert "0900" in message["Subject"] and "2026-11-20" in message["Subject"]
    assert "1 新滞留 newly stalled, 0 升级 escalated" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "MAEU9900000099" in text and "MAEU9900000099" in html and "到港未申报" in html

    night(inbox, "2026-11-21", {"dec_result": [receipt(RELEASED_LATER, "P", "2026-11-21 10:00:00")]})
    # at 11-22 00:00: SLOW 47 h accepted -> stalled; RELEASED_LATER was released: nothing; NOT_OUT 62 h: not yet
    assert len(smtp_server.received) == 2
    _, recipients, message = smtp_server.received[1]
    assert recipients == [DALIAN]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "stalled-0900-2026-11-21.xlsx"
    header, body = spreadsheet(attachment)
    assert [r[header.index("报关单号 Declaration")] for r in body] == [SLOW]
    record = dict(zip(header, body[0]))
    assert record["已滞留(小时) Hours"] == "47.0" and record["阈值(小时) Threshold"] == "24.0"
    assert record["收发货人 Owner"] == '=HYPERLINK("http://x")'  # text, shown as typed; never a live formula


def spreadsheet(attachment) -> tuple[list[str], list[list[str]]]:
    """The attachment as Excel or WPS reads it: every cell must be a text cell (no number, no formula)."""
    book = openpyxl.load_workbook(io.BytesIO(attachment.get_payload(decode=True)))
    [sheet] = book.worksheets
    cells = [list(row) for row in sheet.iter_rows()]
    for row in cells:
        for cell in row:
            assert cell.value is None or cell.data_type == "s", f"{cell.coordinate} is not text: {cell.value!r}"
    rows = [[cell.value or "" for cell in row] for row in cells]
    return rows[0], rows[1:]


def by_recipient(handler, first: int = 0) -> dict:
    return {tuple(recipients): message["Subject"] for _, recipients, message in handler.received[first:]}


def test_each_alert_once_across_reruns_backfills_and_escalation(clearance_env, smtp_server):
    inbox, warehouse = clearance_env
    nights_of_stalls(inbox)
    night(inbox, "2026-11-21", {"dec_result": [receipt(RELEASED_LATER, "P", "2026-11-21 10:00:00")]})
    assert len(smtp_server.received) == 2
    night(inbox, "2026-11-22", {})
    # at 11-23 00:00: SLOW 71 h > twice 24 h -> escalated (Dalian); NOT_OUT 86 h > 72 h -> stalled
    # (Shenyang); the undeclared bill 292 h is not yet twice 240 h; RELEASED_LATER sends nothing more
    third = by_recipient(smtp_server, first=2)
    assert set(third) == {(DALIAN,), (SHENYANG,)}
    assert "0 新滞留 newly stalled, 1 升级 escalated" in third[(DALIAN,)]
    assert "1 新滞留 newly stalled, 0 升级 escalated" in third[(SHENYANG,)]

    run_business_date("2026-11-22")  # rerun
    run_business_date("2026-11-21")  # backfill of earlier nights
    run_business_date("2026-11-20")
    night(inbox, "2026-11-23", {"cargo_event": [cargo_event("SYRW4300000043", "GATE_OUT", "2026-11-23 08:00:00",
                                                            BOX, vessel="", voyage="X8001", port="SHE")]})
    assert len(smtp_server.received) == 4  # nothing twice; NOT_OUT left the gate: nothing more
    assert alert_rows(warehouse) == sorted([
        ("bill:MAEU9900000099", "arrived_not_declared", "stalled", "sent"),
        (SLOW, "accepted_not_released", "stalled", "sent"),
        (SLOW, "accepted_not_released", "escalated", "sent"),
        (NOT_OUT, "released_not_gated_out", "stalled", "sent"),
    ])


def test_outage_keeps_digests_for_the_next_run(clearance_env, smtp_server, monkeypatch, caplog):
    inbox, warehouse = clearance_env
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(free_port()))  # nobody listens there
    nights_of_stalls(inbox)
    night(inbox, "2026-11-21", {"dec_result": [receipt(RELEASED_LATER, "P", "2026-11-21 10:00:00")]})
    # the warehouse is published all the same, the digests recorded unsent, and the log says so
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT business_date::VARCHAR FROM run_context").fetchall() == [("2026-11-21",)]
        digests = con.execute("SELECT business_date::VARCHAR, office_code, status FROM alert_digests "
                              "ORDER BY ALL").fetchall()
    assert digests == [("2026-11-20", "0900", "unsent"), ("2026-11-21", "0900", "unsent")]
    assert "DIGEST NOT SENT for office 0900" in caplog.text
    assert smtp_server.received == []

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(smtp_server.port))  # the server is back
    night(inbox, "2026-11-22", {})
    # every alert kept pending goes out, once, in one digest per office; SLOW, past twice its threshold
    # before it could be told, is told once, escalated
    recovered = by_recipient(smtp_server)
    assert len(smtp_server.received) == 2 and set(recovered) == {(DALIAN,), (SHENYANG,)}
    assert "1 新滞留 newly stalled, 1 升级 escalated" in recovered[(DALIAN,)]
    assert alert_rows(warehouse) == sorted([
        ("bill:MAEU9900000099", "arrived_not_declared", "stalled", "sent"),
        (SLOW, "accepted_not_released", "stalled", "superseded"),
        (SLOW, "accepted_not_released", "escalated", "sent"),
        (NOT_OUT, "released_not_gated_out", "stalled", "sent"),
    ])
    night(inbox, "2026-11-23", {})
    assert len(smtp_server.received) == 2


def test_office_override_of_a_threshold(clearance_env, smtp_server, monkeypatch, tmp_path):
    from clearance.config import SEEDS_DIR

    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS_DIR, seeds)
    with open(seeds / "stall_thresholds.csv", "a", encoding="utf-8") as f:
        f.write("released_not_gated_out,0800,24\n")
    monkeypatch.setattr("clearance.models.SEEDS_DIR", seeds)
    inbox, warehouse = clearance_env
    nights_of_stalls(inbox)
    # NOT_OUT, released 11-19 10:00, is 38 h out of customs at the cut-off: past Shenyang's own 24 h,
    # not yet past the default 72 h; the Dalian digest (the undeclared bill) is unchanged
    assert sorted(r[0] for _, r, _ in smtp_server.received) == [DALIAN, SHENYANG]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT alert_key, threshold_hours FROM mart_stalled_shipments "
                           "WHERE office_code = '0800'").fetchall() == [(NOT_OUT, 24.0)]


class Refusing:
    """An SMTP server that answers every message with a permanent failure."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return "554 Transaction failed: relay refused"


def test_a_refusing_server_keeps_the_digest_unsent(clearance_env, monkeypatch):
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(port))
    try:
        nights_of_stalls(clearance_env[0])
    finally:
        controller.stop()
    with duckdb.connect(str(clearance_env[1]), read_only=True) as con:
        digest = con.execute("SELECT status, error FROM alert_digests").fetchall()
        pending = con.execute("SELECT count(*) FROM alert_log WHERE status = 'pending'").fetchall()
    assert digest[0][0] == "unsent" and "554" in digest[0][1]
    assert pending == [(1,)]


def test_a_long_digest_says_who_acts_and_what_to_do_stage_by_stage(clearance_env, smtp_server, monkeypatch, tmp_path):
    """22 imports accepted and not released on two vessel calls: one summary line for the stage, who
    acts and the next step from the reference CSV (edited by the district here), the list by vessel
    call, a link to the dashboard, and a spreadsheet with every declaration number whole."""
    from clearance.config import SEEDS_DIR

    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS_DIR, seeds)
    steps = (seeds / "stage_responsibilities.csv").read_text(encoding="utf-8")
    steps = steps.replace("完成审单，放行或布控查验", "请审单科当日处理").replace('"Finish the review: release, or order an inspection"',
                                                                       "Review desk: settle it today")
    (seeds / "stage_responsibilities.csv").write_text(steps, encoding="utf-8")
    monkeypatch.setattr("clearance.models.SEEDS_DIR", seeds)
    monkeypatch.setenv("CLEARANCE_DASHBOARD_URL", "https://clearance.customs.example/dashboard.html")
    inbox, _ = clearance_env
    entries = [entry_id(500 + i) for i in range(22)]
    voyages = ["2611W" if i % 2 else "2612E" for i in range(22)]
    night(inbox, "2026-11-20", {
        "vessel_event": [event for voyage in ("2611W", "2612E") for event in (
            vessel_event("ATA_ANCH", "2026-11-18 20:00:00", voyage=voyage), vessel_event("ATA_BERTH", "2026-11-18 22:00:00", voyage=voyage))],
        "dec_head": [dec_head(e, "2026-11-19 00:00:00", voyage=v, bill=f"COSU5{i:09d}") for i, (e, v) in enumerate(zip(entries, voyages))],
        "dec_result": [receipt(e, "L", "2026-11-19 00:30:00") for e in entries],
    })
    [(_, recipients, message)] = smtp_server.received
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    for body in (text, html):
        assert ("已受理未放行 accepted, no inspection ordered, not released: 22 票 shipments (0 升级 escalated); "
                "最久 oldest since 2026-11-19 00:30 (48 h); 由谁处理 who acts: 海关 customs; "
                "下一步 next step: 请审单科当日处理 Review desk: settle it today") in body
        assert "https://clearance.customs.example/dashboard.html" in body
    assert html.count("船舶 vessel 9123456 · 航次 voyage 2611W · 口岸 port DLC: 11 票 shipments") == 1
    assert html.count("船舶 vessel 9123456 · 航次 voyage 2612E · 口岸 port DLC: 11 票 shipments") == 1
    [attachment] = list(message.iter_attachments())
    header, body = spreadsheet(attachment)
    ids = [r[header.index("报关单号 Declaration")] for r in body]
    assert sorted(ids) == sorted(entries) and all(i.startswith("0900") and len(i) == 18 for i in ids)
    assert {r[header.index("由谁处理 Who acts")] for r in body} == {"海关 customs"}


def test_stalls_that_ended_during_an_outage_are_told_when_mail_is_back(clearance_env, smtp_server, monkeypatch):
    inbox, warehouse = clearance_env
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(free_port()))  # nobody listens there
    # accepted 11-19 00:30, not released at the 11-21 00:00 cut-off (47.5 h): stalled, mail down
    night(inbox, "2026-11-20", {
        "dec_head": [dec_head(SLOW, "2026-11-19 00:00:00", bill="COSU4100000041")],
        "dec_result": [receipt(SLOW, "L", "2026-11-19 00:30:00")],
    })
    # released on 11-21: the stall ended before any digest could tell it
    night(inbox, "2026-11-21", {"dec_result": [receipt(SLOW, "P", "2026-11-21 08:00:00")]})
    assert smtp_server.received == []
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(smtp_server.port))  # the server is back
    night(inbox, "2026-11-22", {})
    [(_, recipients, message)] = smtp_server.received
    assert recipients == [DALIAN]
    assert "0 新滞留 newly stalled, 0 升级 escalated, 1 期间已结束 ended while unsent" in message["Subject"]
    html = message.get_body(preferencelist=("html",)).get_content()
    section = html[html.index("Stalls that began and ended while mail could not go out"):]
    assert SLOW in section and "已受理未放行" in section
    header, body = spreadsheet(next(message.iter_attachments()))
    assert [(r[header.index("报关单号 Declaration")], r[header.index("级别 Level")]) for r in body] == [
        (SLOW, "已结束(当时未能发出) ended before it could be mailed")]
    assert alert_rows(warehouse) == [(SLOW, "accepted_not_released", "stalled", "sent_after_end")]
    night(inbox, "2026-11-23", {})
    assert len(smtp_server.received) == 1  # told once
