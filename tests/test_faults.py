"""Bad input, end to end: bad rows are quarantined with file, line and reason; bad files stop the run
before anything is published; untrusted values stay data; nothing is lost.

Every expected figure below comes from the rows written in this file: each hand-written row says whether
it is good or which reason code it must be quarantined with (and the offending value the message names).

Night 1 (export date 2026-11-20) of the hand-written deliveries, line 1 being the header of each file:

    dec_head     2 good  3 21 fields  4 unparseable D_DATE  5 I_E_FLAG X  6 good (office 0931)  7 TRAF_MODE 9
                 8 short ENTRY_ID  9 good (port BYQ)  10 D_DATE two days after the export date
                 11 good (SQL-looking owner name, bill number with quotes)
    dec_result   2 good  3 CHANNEL 9  4 good (SQL-looking note)  5 good
    manifest     2 good  3 container with a wrong check digit  4 good (bulk)
    vessel_event 2 good  3 EVENT_CODE ETA_BERTH  4 good            (UTF-8 with byte-order mark)
    cargo_event  2 good  3 good (23:59:59 on the day after the export date: less than a day after it)

Night 2 (2026-11-21): the declaration with the unparseable D_DATE sent corrected, a byte-identical re-send of
night 1's first dec_head row and of its first receipt, and a new receipt written twice in the same file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import duckdb
import pytest

from clearance.config import EXPECTATIONS_DIR, settings
from clearance.contract import KINDS, MANIFEST_NAME, data_file_name
from clearance.ingest import DeliveryError
from clearance.pipeline import run_business_date
from clearance.loading import AccountingError
from clearance_tools.delivery_writer import csv_record_count, manifest_entry, write_delivery, write_manifest
from clearance_tools.simulator import BREAK_MODES, simulate
from tests.conftest import snapshot, state_file
from tests.deliveries import cargo_event, container, dec_head, entry_id, manifest_line, receipt, vessel_event

DAY1, DAY2, DAY3 = "2026-11-20", "2026-11-21", "2026-11-22"

GOOD1, UNKNOWN_OFFICE, UNKNOWN_PORT, UNTRUSTED = entry_id(1), entry_id(2, office="0931"), entry_id(3), entry_id(4)
BAD_FIELDS, CORRECTED, BAD_FLAG, BAD_MODE, LATE = entry_id(90), entry_id(91), entry_id(92), entry_id(93), entry_id(94)
MALFORMED = "0900202611234"  # 13 characters, not 18
INJECTION = "'); DROP TABLE core_shipments; --"
QUOTED_BILL = "O'Neil \"B/L\" 7"
C1, C2 = container(200001), container(200002)
BAD_BOX = C2[:10] + str((int(C2[10]) + 1) % 10)  # the check digit is off by one


class Row(NamedTuple):
    fields: dict | list  # a row dict keyed by header name, or the raw fields of a row that cannot be one
    reason: str | None = None  # None: the row must load
    value: str | None = None  # what the quarantine message must name


def bad(fields, reason: str, value: str) -> Row:
    return Row(fields, reason, value)


@dataclass
class HandFile:
    name: str
    kind: str
    lines: list[str]  # the text of every line as written, without its CRLF; lines[0] is the header
    rows: list[Row]

    def line(self, line_no: int) -> str:
        return self.lines[line_no - 1]

    def quarantined(self) -> set[tuple[str, int, str]]:
        return {(self.name, n, r.reason) for n, r in enumerate(self.rows, start=2) if r.reason}

    def good_lines(self) -> list[int]:
        return [n for n, r in enumerate(self.rows, start=2) if r.reason is None]


def csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def write_hand_delivery(inbox: Path, export_date: str, files: dict[str, list[Row]], bom: set[str] = frozenset()):
    """Write every file byte by byte (header, '"' quoting, CRLF), then a correct MANIFEST.json."""
    folder = inbox / export_date
    folder.mkdir(parents=True, exist_ok=True)
    entries, written = [], {}
    for kind, rows in files.items():
        spec = KINDS[kind]
        lines = [",".join(spec.columns)]
        for row in rows:
            values = [row.fields.get(c) or "" for c in spec.columns] if isinstance(row.fields, dict) else row.fields
            lines.append(csv_line(values))
        data = ("\r\n".join(lines) + "\r\n").encode(spec.encoding)
        if kind in bom:
            data = b"\xef\xbb\xbf" + data
        path = folder / data_file_name(kind, export_date, 1)
        path.write_bytes(data)
        entries.append(manifest_entry(path, len(rows)))
        written[kind] = HandFile(path.name, kind, lines, rows)
    write_manifest(folder, export_date, entries)
    return written


def night_one() -> dict[str, list[Row]]:
    at = "2026-11-20 05:00:00"
    too_many = [v for v in dec_head(BAD_FIELDS, at).values()] + ["备注"]
    return {
        "dec_head": [
            Row(dec_head(GOOD1, "2026-11-20 04:00:00", bill="COSU1000000001")),
            bad(too_many, "wrong_field_count", f"{len(too_many)} fields"),
            bad(dec_head(CORRECTED, "2026/11/20 8:15", update_time="2026-11-20 08:20:00"), "unparseable_time",
                "2026/11/20 8:15"),
            bad(dec_head(BAD_FLAG, at, i_e_flag="X"), "unknown_i_e_flag", "X"),
            Row(dec_head(UNKNOWN_OFFICE, at, office="0931", bill="COSU1000000002")),
            bad(dec_head(BAD_MODE, at, traf_mode="9"), "unknown_traf_mode", "9"),
            bad(dec_head(MALFORMED, at), "malformed_entry_id", MALFORMED),
            Row(dec_head(UNKNOWN_PORT, at, port="BYQ", bill="COSU1000000003")),
            bad(dec_head(LATE, "2026-11-22 08:00:00", update_time="2026-11-20 09:00:00"), "time_after_export_date",
                "2026-11-22 08:00:00"),
            Row(dec_head(UNTRUSTED, at, bill=QUOTED_BILL, owner_name=INJECTION)),
        ],
        "dec_result": [
            Row(receipt(GOOD1, "L", "20261120050000000")),
            bad(receipt(GOOD1, "9", "2026-11-20 06:00:00"), "unknown_channel", "9"),
            Row(receipt(UNTRUSTED, "L", "2026-11-20 06:10:00", note=INJECTION)),
            Row(receipt(GOOD1, "P", "2026-11-20 12:00:00")),
        ],
        "manifest": [
            Row(manifest_line("COSU1000000001", C1)),
            bad(manifest_line("COSU1000000009", BAD_BOX), "bad_container_check_digit", BAD_BOX),
            Row(manifest_line("COSU1000000004")),
        ],
        "vessel_event": [
            Row(vessel_event("ATA_ANCH", "2026-11-19 20:00:00")),
            bad(vessel_event("ETA_BERTH", "2026-11-20 01:00:00"), "unknown_event_code", "ETA_BERTH"),
            Row(vessel_event("ATA_BERTH", "2026-11-20T02:00:00")),
        ],
        "cargo_event": [
            Row(cargo_event("COSU1000000001", "DISC_DONE", "2026-11-20 08:00:00", C1)),
            Row(cargo_event("COSU1000000001", "GATE_OUT", "2026-11-21 23:59:59", C1)),
        ],
    }


def night_two(one: dict[str, list[Row]]) -> dict[str, list[Row]]:
    closed = receipt(GOOD1, "R", "2026-11-21 10:00:00")
    return {
        "dec_head": [
            Row(dec_head(CORRECTED, "2026-11-20 08:15:00", update_time="2026-11-21 09:00:00")),
            one["dec_head"][0],  # at-least-once delivery: night 1's line 2 again
        ],
        "dec_result": [Row(closed), Row(closed), one["dec_result"][0]],
    }


def query(path: Path, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def business_date(path: Path) -> str:
    return query(path, "SELECT business_date FROM run_context")[0][0].isoformat()


# ------------------------------------------------------------------- nights 1 and 2, then night 1 rerun


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    inbox, live = root / "inbox", root / "warehouse" / "clearance.duckdb"
    # a permissive umask, so the modes the run publishes are its own doing, not the default's
    umask = os.umask(0o002)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CLEARANCE_INBOX", str(inbox))
            mp.setenv("CLEARANCE_WAREHOUSE", str(live))
            mp.setenv("CLEARANCE_MAX_QUARANTINE_SHARE", "1")
            one = night_one()
            files1 = write_hand_delivery(inbox, DAY1, one, bom={"vessel_event"})
            run_business_date(DAY1)
            after_one = snapshot(live, root / "after_night_one")
            files2 = write_hand_delivery(inbox, DAY2, night_two(one))
            run_business_date(DAY2)
            after_two = snapshot(live, root / "after_night_two")
            run_business_date(DAY1)  # a rerun of night 1 after night 2
            docs = settings().data_docs_dir
    finally:
        os.umask(umask)
    return SimpleNamespace(one=after_one, two=after_two, rerun=live,
                           live=live, docs=docs, files1=files1, files2=files2)


def test_bad_rows_are_quarantined_with_file_line_and_reason(nights):
    rows = query(nights.one, "SELECT export_date, file_kind, source_file, line_no, reason_code, raw_line, reason_message "
                             "FROM quarantine ORDER BY source_file, line_no")
    expected = set().union(*(f.quarantined() for f in nights.files1.values()))
    assert len(expected) == 9
    assert {(r[2], r[3], r[4]) for r in rows} == expected and len(rows) == len(expected)
    by_name = {f.name: f for f in nights.files1.values()}
    for export_date, kind, name, line_no, _, raw_line, message in rows:
        hand = by_name[name]
        assert (export_date.isoformat(), kind) == (DAY1, hand.kind)
        assert raw_line == hand.line(line_no), (name, line_no)
        assert hand.rows[line_no - 2].value in message, (name, line_no, message)


def test_wrong_field_count_message_gives_both_counts(nights):
    [(message,)] = query(nights.one, "SELECT reason_message FROM quarantine WHERE reason_code = 'wrong_field_count'")
    header_fields = len(KINDS["dec_head"].columns)
    assert f"{header_fields + 1} fields" in message and str(header_fields) in message


def test_file_accounting_balances_and_good_rows_of_the_same_files_load(nights):
    for hand in nights.files1.values():
        good, quarantined = len(hand.good_lines()), len(hand.quarantined())
        [accounting] = query(nights.one, "SELECT rows_in_manifest, rows_read, rows_loaded, rows_duplicate, rows_quarantined "
                                         "FROM file_accounting WHERE source_file = ?", [hand.name])
        assert accounting == (len(hand.rows), len(hand.rows), good, 0, quarantined), hand.name
        loaded = query(state_file(nights.one), f"SELECT line_no FROM land_{hand.kind} WHERE source_file = ? ORDER BY line_no",
                       [hand.name])
        assert [n for (n,) in loaded] == hand.good_lines(), hand.name


def test_unknown_office_and_port_codes_load_and_are_findings(nights):
    findings = query(nights.one, "SELECT finding, entry_id, detail FROM mart_data_quality_findings "
                                 "WHERE finding IN ('unknown_office_code', 'unknown_port_code')")
    assert sorted(findings) == [("unknown_office_code", UNKNOWN_OFFICE, "0931"), ("unknown_port_code", UNKNOWN_PORT, "BYQ")]
    loaded = query(state_file(nights.one), "SELECT entry_id, custom_master, port_code FROM land_dec_head WHERE entry_id IN (?, ?) "
                               "ORDER BY entry_id", [UNKNOWN_OFFICE, UNKNOWN_PORT])
    assert loaded == sorted([(UNKNOWN_OFFICE, "0931", "DLC"), (UNKNOWN_PORT, "0900", "BYQ")])
    shipments = query(nights.one, "SELECT entry_id, is_known_office, is_known_port FROM core_shipments "
                                  "WHERE entry_id IN (?, ?) ORDER BY entry_id", [UNKNOWN_OFFICE, UNKNOWN_PORT])
    assert shipments == sorted([(UNKNOWN_OFFICE, False, True), (UNKNOWN_PORT, True, False)])
    in_quarantine = query(nights.one, "SELECT count(*) FROM quarantine WHERE raw_line LIKE ? OR raw_line LIKE ?",
                          [f"%{UNKNOWN_OFFICE}%", f"%{UNKNOWN_PORT}%"])
    assert in_quarantine == [(0,)]


def test_corrected_resend_loads_and_night_one_quarantine_stays(nights):
    dec_head_one = nights.files1["dec_head"].name
    quarantined = ("dec_head", dec_head_one, 4, "unparseable_time")
    before = query(nights.one, "SELECT * FROM quarantine ORDER BY source_file, line_no")
    for path in (nights.two, nights.rerun):
        assert query(path, "SELECT file_kind, source_file, line_no, reason_code FROM quarantine WHERE raw_line LIKE ?",
                     [f"{CORRECTED},%"]) == [quarantined]
        loaded = query(state_file(path), "SELECT export_date, source_file, line_no, d_date FROM land_dec_head WHERE entry_id = ?",
                       [CORRECTED])
        assert [(d.isoformat(), f, n, t) for d, f, n, t in loaded] == [
            (DAY2, nights.files2["dec_head"].name, 2, datetime(2026, 11, 20, 8, 15))]
        declared = query(path, "SELECT declared_at FROM core_shipments WHERE entry_id = ?", [CORRECTED])
        assert declared == [(datetime(2026, 11, 20, 8, 15),)]
    # night 2 added no quarantine row; the rerun of night 1 neither duplicated nor deleted any
    assert query(nights.two, "SELECT * FROM quarantine ORDER BY source_file, line_no") == before
    assert query(nights.rerun, "SELECT * FROM quarantine ORDER BY source_file, line_no") == before
    assert business_date(nights.rerun) == DAY1


def test_rerun_of_night_one_accounts_and_loads_the_same(nights):
    sql_accounting = ("SELECT source_file, rows_read, rows_loaded, rows_duplicate, rows_quarantined FROM file_accounting "
                      "WHERE export_date = ? ORDER BY source_file")
    assert query(nights.rerun, sql_accounting, [DAY1]) == query(nights.one, sql_accounting, [DAY1])
    assert query(nights.rerun, sql_accounting, [DAY2]) == query(nights.two, sql_accounting, [DAY2])
    for kind in KINDS:
        sql = f"SELECT source_file, line_no, row_hash FROM land_{kind} ORDER BY ALL"
        assert query(state_file(nights.rerun), sql) == query(state_file(nights.two), sql), kind


def test_repeated_rows_are_duplicates_not_loaded_twice(nights):
    head, results = nights.files2["dec_head"], nights.files2["dec_result"]
    # the re-sent rows are byte-identical to night 1's lines
    assert head.line(3) == nights.files1["dec_head"].line(2)
    assert results.line(4) == nights.files1["dec_result"].line(2) and results.line(2) == results.line(3)
    accounting = dict((r[0], r[1:]) for r in query(
        nights.two, "SELECT source_file, rows_read, rows_loaded, rows_duplicate, rows_quarantined FROM file_accounting "
                    "WHERE export_date = ?", [DAY2]))
    assert accounting == {head.name: (2, 1, 1, 0), results.name: (3, 1, 2, 0)}
    for path in (nights.two, nights.rerun):
        assert query(state_file(path), "SELECT export_date, line_no FROM land_dec_head WHERE entry_id = ?", [GOOD1]) == [
            (datetime(2026, 11, 20).date(), 2)]
        by_channel = query(state_file(path), "SELECT channel, export_date, line_no FROM land_dec_result WHERE entry_id = ? "
                                 "ORDER BY channel", [GOOD1])
        assert [(c, d.isoformat(), n) for c, d, n in by_channel] == [("L", DAY1, 2), ("P", DAY1, 5), ("R", DAY2, 2)]


def test_untrusted_values_stay_data(nights):
    for path in (nights.one, nights.rerun):
        assert query(state_file(path), "SELECT owner_name, bill_no FROM land_dec_head WHERE entry_id = ?", [UNTRUSTED]) == [
            (INJECTION, QUOTED_BILL)]
        assert query(state_file(path), "SELECT note FROM land_dec_result WHERE entry_id = ?", [UNTRUSTED]) == [(INJECTION,)]
        assert query(path, "SELECT owner_name, bill_no FROM core_shipments WHERE entry_id = ?", [UNTRUSTED]) == [
            (INJECTION, "O'NEIL\"B/L\"7")]  # bill normalised: upper case, blanks removed
    good_entries = {r.fields["ENTRY_ID"] for r in night_one()["dec_head"] if r.reason is None}
    assert {e for (e,) in query(nights.one, "SELECT entry_id FROM core_shipments")} == good_entries
    assert {e for (e,) in query(nights.rerun, "SELECT entry_id FROM core_shipments")} == good_entries | {CORRECTED}


# ----------------------------------------------------------------------------------------- permissions

EXTERNAL_ASSET = re.compile(r"<(?:script|link)\b[^>]*\s(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)


def test_published_warehouse_and_data_docs_are_readable_not_writable_by_others(nights):
    assert stat.S_IMODE(nights.live.stat().st_mode) == 0o444  # published files are never written again
    pages = list(nights.docs.rglob("*.html"))
    assert pages, "no Data Docs page was written"
    for path in [nights.docs, *nights.docs.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    for page in pages:
        found = EXTERNAL_ASSET.findall(page.read_text(encoding="utf-8"))
        assert not found, f"{page}: loads {found[:3]}"


# Any resource a browser fetches on its own when the page is opened: src of an element, a stylesheet link,
# a CSS url(). Plain <a href> links are only followed when clicked.
FETCHED_AT_VIEW_TIME = re.compile(
    r"<(?:script|img|iframe|source|embed|video|audio|input)\b[^>]*\ssrc\s*=\s*[\"']?(?:https?:)?//[^\"'\s>]*"
    r"|<link\b[^>]*\shref\s*=\s*[\"']?(?:https?:)?//[^\"'\s>]*"
    r"|url\(\s*[\"']?(?:https?:)?//[^)]*\)", re.I)


def test_data_docs_fetch_nothing_from_the_network_when_opened(nights):
    files = [p for p in nights.docs.rglob("*") if p.suffix in (".html", ".css")]
    assert files
    fetched = {m.group(0)[:120] for p in files for m in FETCHED_AT_VIEW_TIME.finditer(p.read_text(encoding="utf-8"))}
    assert fetched == set()


# ------------------------------------------------------------------------------------------- bad files

# The simulator breaks the first file of one kind; several kinds, so every reader path is exercised.
BREAK_KINDS = {"missing": "manifest", "row_count": "vessel_event", "checksum": "cargo_event",
               "truncated": "dec_result", "empty": "manifest", "utf8": "dec_head"}
assert set(BREAK_KINDS) == set(BREAK_MODES)


@pytest.fixture(scope="module")
def day_one_published(tmp_path_factory):
    """Day 1 of a tiny simulated fortnight, run and published; the tests break day 2."""
    root = tmp_path_factory.mktemp("day_one")
    inbox, live = root / "inbox", root / "warehouse" / "clearance.duckdb"
    simulate(inbox, DAY1, 2, scale=0.02, quirks="none")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(inbox))
        mp.setenv("CLEARANCE_WAREHOUSE", str(live))
        mp.delenv("CLEARANCE_MAX_QUARANTINE_SHARE", raising=False)
        run_business_date(DAY1)
    return SimpleNamespace(inbox=inbox, bytes=live.read_bytes(), folder=live.parent)


def start_from_day_one(day_one, warehouse: Path) -> None:
    """The published warehouse of day 1 with the state file and the monthly files it was published from."""
    for part in ("_state", "partitions"):
        shutil.copytree(day_one.folder / part, warehouse.parent / part)
    warehouse.write_bytes(day_one.bytes)
    assert business_date(warehouse) == DAY1


def assert_nothing_published(day_one, warehouse: Path) -> None:
    assert warehouse.read_bytes() == day_one.bytes
    assert business_date(warehouse) == DAY1
    assert not settings().versions_dir.exists() or not any(settings().versions_dir.iterdir())


@pytest.mark.parametrize("how", BREAK_MODES)
def test_broken_file_stops_the_run_before_publishing(how, day_one_published, clearance_env, monkeypatch):
    inbox, warehouse = clearance_env
    monkeypatch.delenv("CLEARANCE_MAX_QUARANTINE_SHARE", raising=False)
    kind = BREAK_KINDS[how]
    simulate(inbox, DAY1, 2, scale=0.02, quirks="none", breaks=[(DAY2, kind, how)])
    # the same day 1 as the published one: only day 2 differs
    assert (inbox / DAY1 / MANIFEST_NAME).read_bytes() == (day_one_published.inbox / DAY1 / MANIFEST_NAME).read_bytes()
    start_from_day_one(day_one_published, warehouse)
    name = data_file_name(kind, DAY2, 1)
    path = inbox / DAY2 / name
    listed = {e["name"]: e for e in json.loads((inbox / DAY2 / MANIFEST_NAME).read_text(encoding="utf-8"))["files"]}
    assert name in listed

    with pytest.raises(DeliveryError) as caught:
        run_business_date(DAY2)
    message = str(caught.value)
    assert message.startswith(name), message
    if how == "missing":
        assert not path.exists()
        assert "missing" in message
    elif how == "row_count":
        read = csv_record_count(path.read_bytes(), "utf-8-sig")
        assert f"{read} data rows where MANIFEST.json lists {listed[name]['rows']}" in message
        assert listed[name]["rows"] == read + 1
    elif how == "checksum":
        assert hashlib.sha256(path.read_bytes()).hexdigest() != listed[name]["sha256"]
        assert "SHA-256" in message
    elif how == "truncated":
        last_line = path.read_bytes().count(b"\n") + 1
        assert "truncated" in message and caught.value.line == last_line and f"line {last_line}:" in message
    elif how == "empty":
        assert path.read_bytes() == b"" and "empty" in message
    elif how == "utf8":
        assert "UTF-8" in message and "GB18030" in message
    assert_nothing_published(day_one_published, warehouse)


def test_missing_required_column_stops_the_run(day_one_published, clearance_env):
    inbox, warehouse = clearance_env
    start_from_day_one(day_one_published, warehouse)
    rows = [vessel_event("ATA_BERTH", "2026-11-21 06:00:00"), vessel_event("ATD_BERTH", "2026-11-21 18:00:00")]
    write_delivery(inbox, DAY2, {"vessel_event": [{k: v for k, v in r.items() if k != "EVENT_TIME"} for r in rows]})
    with pytest.raises(DeliveryError) as caught:
        run_business_date(DAY2)
    name = data_file_name("vessel_event", DAY2, 1)
    assert str(caught.value).startswith(f"{name}, line 1:") and "EVENT_TIME" in str(caught.value)
    assert_nothing_published(day_one_published, warehouse)


@pytest.mark.parametrize(("rows", "bad_rows", "fails"), [
    (25, 1, False),  # 4 % of a small port's file, but one row: quarantined, the night goes on
    (25, 20, False),  # 80 %, but not more than 20 rows
    (100, 21, True),  # 21 % and 21 rows: both limits passed
    (2200, 21, False),  # 21 rows, but under 1 % of the file
])
def test_a_file_fails_only_with_more_bad_rows_than_both_limits(rows, bad_rows, fails, day_one_published, clearance_env,
                                                              monkeypatch):
    """The failure policy: a file stops the night only past both the share (1 %) and the count (20 rows)."""
    inbox, warehouse = clearance_env
    monkeypatch.delenv("CLEARANCE_MAX_QUARANTINE_SHARE", raising=False)
    monkeypatch.delenv("CLEARANCE_MAX_QUARANTINE_ROWS", raising=False)
    start_from_day_one(day_one_published, warehouse)
    events = [cargo_event(f"COSU2{n:09d}", "GATE_OUT", "2026-11-21 10:00:00", container(300000 + n))
              for n in range(rows - bad_rows)]
    events += [cargo_event(f"COSU3{n:09d}", "GATE_IN", "2026-11-21 11:00:00", container(390000 + n))
               for n in range(bad_rows)]
    write_delivery(inbox, DAY2, {"cargo_event": events})
    name = data_file_name("cargo_event", DAY2, 1)
    if fails:
        with pytest.raises(AccountingError) as caught:
            run_business_date(DAY2)
        assert (f"{name}: {bad_rows} of {rows} rows quarantined, more than 1.0% of its rows and more than 20 rows"
                in str(caught.value))
        assert_nothing_published(day_one_published, warehouse)
    else:
        run_business_date(DAY2)
        assert business_date(warehouse) == DAY2
        assert query(warehouse, "SELECT rows_read, rows_loaded, rows_duplicate, rows_quarantined FROM file_accounting "
                                "WHERE source_file = ?", [name]) == [(rows, rows - bad_rows, 0, bad_rows)]
        assert query(warehouse, "SELECT list(line_no ORDER BY line_no), list(DISTINCT reason_code) FROM quarantine "
                                "WHERE source_file = ?", [name]) == [
            (list(range(rows - bad_rows + 2, rows + 2)), ["unknown_event_code"])]


def test_both_quarantine_limits_are_settings(day_one_published, clearance_env, monkeypatch):
    inbox, warehouse = clearance_env
    monkeypatch.setenv("CLEARANCE_MAX_QUARANTINE_SHARE", "0.5")
    monkeypatch.setenv("CLEARANCE_MAX_QUARANTINE_ROWS", "0")
    start_from_day_one(day_one_published, warehouse)
    events = [cargo_event("COSU2000000001", "GATE_OUT", "2026-11-21 10:00:00", container(300001)),
              cargo_event("COSU2000000002", "GATE_IN", "2026-11-21 10:00:00", container(300002)),
              cargo_event("COSU2000000003", "GATE_IN", "2026-11-21 10:00:00", container(300003))]
    write_delivery(inbox, DAY2, {"cargo_event": events})
    with pytest.raises(AccountingError, match=r"2 of 3 rows quarantined, more than 50.0% of its rows and more than 0 rows"):
        run_business_date(DAY2)
    assert_nothing_published(day_one_published, warehouse)


# ------------------------------------------------------------------------------ names in MANIFEST.json


@pytest.mark.parametrize("bad_name", ["../x.csv", "/etc/passwd", "sub/dec_head_20261120_01.csv",
                                      "dec_head_20261120_1.csv", "notes.txt"])
def test_manifest_names_outside_the_pattern_are_refused(bad_name, clearance_env, monkeypatch):
    inbox, warehouse = clearance_env
    folder = write_delivery(inbox, DAY1, {"vessel_event": [vessel_event("ATA_BERTH", "2026-11-20 06:00:00")]})
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    # a real, well-formed file where the name points, so only the name can make the run refuse it
    target = Path(bad_name) if bad_name.startswith("/") else folder / bad_name
    if not bad_name.startswith("/"):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(("\r\n".join([",".join(KINDS["cargo_event"].columns),
                                         csv_line(list(cargo_event("COSU9", "GATE_OUT", "2026-11-20 07:00:00").values()))])
                            + "\r\n").encode("utf-8"))
    entry = {"name": bad_name, "rows": 1, "sha256": hashlib.sha256(target.read_bytes()).hexdigest() if target.exists() else "0"}
    write_manifest(folder, DAY1, manifest["files"] + [entry])

    opened = []

    def spy(real_open):
        def opening(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)):
                opened.append(Path(file).resolve())
            return real_open(file, *args, **kwargs)
        return opening

    with monkeypatch.context() as patched, pytest.raises(DeliveryError) as caught:
        patched.setattr(io, "open", spy(io.open))
        patched.setattr(os, "open", spy(os.open))
        run_business_date(DAY1)
    assert repr(bad_name) in str(caught.value) and MANIFEST_NAME in str(caught.value)
    assert (folder / MANIFEST_NAME).resolve() in opened  # the spy saw the run's reads
    assert target.resolve() not in opened
    assert not warehouse.exists()


def test_dot_dot_name_does_not_reach_a_file_next_to_the_inbox(clearance_env):
    inbox, warehouse = clearance_env
    folder = write_delivery(inbox, DAY1, {"vessel_event": [vessel_event("ATA_BERTH", "2026-11-20 06:00:00")]})
    outside = write_delivery(inbox.parent / "elsewhere", DAY1,
                             {"cargo_event": [cargo_event("COSU9", "GATE_OUT", "2026-11-20 07:00:00")]})
    [outside_entry] = json.loads((outside / MANIFEST_NAME).read_text(encoding="utf-8"))["files"]
    escaped = dict(outside_entry, name=f"../../elsewhere/{DAY1}/{outside_entry['name']}")
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    write_manifest(folder, DAY1, manifest["files"] + [escaped])
    with pytest.raises(DeliveryError, match=re.escape(repr(escaped["name"]))):
        run_business_date(DAY1)
    assert not warehouse.exists()


# ---------------------------------------------------------------------------- simulator quirks, 3 nights


def contract_reason_codes() -> set[str]:
    codes = {"wrong_field_count"}
    for path in EXPECTATIONS_DIR.glob("*.json"):
        for expectation in json.loads(path.read_text(encoding="utf-8"))["expectations"]:
            if "reason_code" in expectation.get("meta", {}):
                codes.add(expectation["meta"]["reason_code"])
    return codes


def test_simulated_quirks_end_to_end(clearance_env, monkeypatch):
    inbox, warehouse = clearance_env
    monkeypatch.delenv("CLEARANCE_MAX_QUARANTINE_SHARE", raising=False)
    simulate(inbox, DAY1, 3, scale=0.05, quirks="all")
    listed = {}
    for day in (DAY1, DAY2, DAY3):
        for entry in json.loads((inbox / day / MANIFEST_NAME).read_text(encoding="utf-8"))["files"]:
            listed[(day, entry["name"])] = entry["rows"]
        run_business_date(day)

    accounting = query(warehouse, "SELECT export_date, source_file, rows_in_manifest, rows_read, rows_loaded, "
                                  "rows_duplicate, rows_quarantined FROM file_accounting")
    assert {(d.isoformat(), f): m for d, f, m, *_ in accounting} == listed
    unbalanced = [r for r in accounting if r[3] != r[4] + r[5] + r[6]]
    assert unbalanced == []
    assert sum(r[3] for r in accounting) == sum(listed.values())
    assert sum(r[5] for r in accounting) > 0

    quarantine = query(warehouse, "SELECT reason_code, count(*) FROM quarantine GROUP BY ALL")
    assert quarantine, "the quirks include bad rows: the quarantine must not be empty"
    assert {code for code, _ in quarantine} <= contract_reason_codes()
    assert sum(n for _, n in quarantine) == sum(r[6] for r in accounting)
    for kind in KINDS:
        [(rows, hashes)] = query(state_file(warehouse), f"SELECT count(*), count(DISTINCT row_hash) FROM land_{kind}")
        assert rows > 0 and rows == hashes, kind


# ----------------------------------------------------------------------------- version keys and accounting

def test_two_different_rows_for_one_declaration_version_are_quarantined(clearance_env, monkeypatch):
    inbox, warehouse = clearance_env
    monkeypatch.setenv("CLEARANCE_MAX_QUARANTINE_SHARE", "1")
    first = dec_head(entry_id(31), "2026-11-20 04:00:00", gross_wt="1000")
    conflicting = {**first, "GROSS_WT": "1200"}  # same ENTRY_ID and UPDATE_TIME, other content
    other = dec_head(entry_id(32), "2026-11-20 05:00:00")
    write_delivery(inbox, "2026-11-20", {"dec_head": [first, conflicting, other]})
    run_business_date("2026-11-20")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        quarantined = con.execute("SELECT line_no, reason_code FROM quarantine ORDER BY line_no").fetchall()
    loaded = query(state_file(warehouse), "SELECT entry_id FROM land_dec_head")
    assert quarantined == [(2, "conflicting_version"), (3, "conflicting_version")]
    assert loaded == [(entry_id(32),)]


def test_the_run_fails_when_rows_are_not_accounted_for(tmp_path):
    from clearance.config import QuarantinePolicy
    from clearance.loading import check_accounting
    from clearance.state import ensure_schema

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        ensure_schema(con)
        con.execute("INSERT INTO file_accounting VALUES (DATE '2026-11-20', 'cargo_event_20261120_01.csv', "
                    "'cargo_event', 10, 10, 8, 1, 0, [])")
        with pytest.raises(AccountingError, match=r"cargo_event_20261120_01.csv: read 10 != loaded 8 \+ duplicate 1"):
            check_accounting(con, [datetime(2026, 11, 20).date()], QuarantinePolicy())


def test_a_bad_row_sent_twice_is_quarantined_twice_not_counted_as_a_duplicate(clearance_env, monkeypatch):
    inbox, warehouse = clearance_env
    monkeypatch.setenv("CLEARANCE_MAX_QUARANTINE_SHARE", "1")
    bad = receipt(entry_id(33), "Q", "2026-11-20 08:00:00")
    write_delivery(inbox, "2026-11-20", {"dec_result": [bad, receipt(entry_id(33), "L", "2026-11-20 07:00:00"), bad]})
    run_business_date("2026-11-20")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        counts = con.execute("SELECT rows_read, rows_loaded, rows_duplicate, rows_quarantined FROM file_accounting").fetchall()
        quarantined = con.execute("SELECT line_no, reason_code FROM quarantine ORDER BY line_no").fetchall()
    assert counts == [(3, 1, 0, 2)]
    assert quarantined == [(2, "unknown_channel"), (4, "unknown_channel")]
