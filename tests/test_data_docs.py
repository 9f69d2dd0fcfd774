"""Great Expectations Data Docs as an analyst opens them: in headless Chromium, with no network.

One hand-written delivery whose bad rows carry markup and script in the values that fail (issue
10.9); the pages must show those values as text, run nothing, and work offline: status icons,
"Failed Only", "Show more info" (issue 13.3), each quarantined row with its file, line, reason
code and message.
"""

from __future__ import annotations

import duckdb
import pytest

from clearance_tools.delivery_writer import write_delivery
from clearance.pipeline import run_business_date
from tests.browser import Watched, artifacts_dir
from tests.deliveries import cargo_event, container, dec_head, entry_id, manifest_line, receipt, vessel_event

DAY = "2026-11-20"
IMG = "<img src=x onerror=\"window.__injected=1;alert('img')\">"
SCRIPT = "<script>window.__injected=2;alert('script')</script>"
BREAKOUT = "\"><svg onload=alert('svg')></td></table><!--"
GOOD = entry_id(1)


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data_docs")
    inbox, warehouse = root / "inbox", root / "warehouse" / "clearance.duckdb"
    write_delivery(inbox, DAY, {
        "vessel_event": [vessel_event("ATA_ANCH", "2026-11-19 20:00:00"), vessel_event(IMG, "2026-11-19 22:00:00")],
        "dec_head": [dec_head(GOOD, "2026-11-20 00:30:00", bill="COSU1"), dec_head(SCRIPT, "2026-11-20 00:30:00")],
        "dec_result": [receipt(GOOD, "L", "2026-11-20 01:00:00"), receipt(GOOD, IMG, "2026-11-20 01:00:00"),
                       receipt(GOOD, BREAKOUT, "2026-11-20 01:10:00"), receipt(GOOD, "P", SCRIPT)],
        "manifest": [manifest_line("COSU1", container(1))],
        "cargo_event": [cargo_event("COSU1", "DISC_DONE", "2026-11-19 23:00:00", container(1)),
                        cargo_event("COSU1", "GATE_OUT", "2026-11-20 10:00:00", BREAKOUT)],
    })
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(inbox))
        mp.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
        mp.setenv("CLEARANCE_DASHBOARD", str(root / "dashboards" / "clearance_dashboard.html"))
        mp.setenv("CLEARANCE_MAX_QUARANTINE_SHARE", "1")  # a small file with bad rows still loads
        run_business_date(DAY)
    return warehouse.parent / "data_docs", warehouse


def result_page(docs_dir, kind: str):
    [page] = (docs_dir / "validations" / f"single_window_{kind}").glob("*/*/*.html")
    return page


def opened(browser, path, name):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    watched = Watched(page)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, watched


@pytest.mark.parametrize("kind", ["dec_result", "dec_head", "vessel_event", "cargo_event"])
def test_hostile_values_are_shown_as_text_and_never_run(browser, docs, kind):
    page, watched = opened(browser, result_page(docs[0], kind), kind)
    try:
        page.wait_for_timeout(300)  # an onerror or onload would have fired by now
        text = page.inner_text("body")
        hostile = {"dec_result": [IMG, BREAKOUT, SCRIPT], "dec_head": [SCRIPT], "vessel_event": [IMG],
                   "cargo_event": [BREAKOUT]}[kind]
        for value in hostile:  # as the failing value, or quoted in the quarantine message
            assert value in text or repr(value) in text, f"{value!r} not shown as text"
        assert page.locator("img[src=x], svg[onload], section script, td script").count() == 0
        page.screenshot(path=artifacts_dir() / f"data-docs-{kind}.png", full_page=True)
        watched.assert_clean()
    finally:
        page.close()


def test_icons_filters_and_expanders_work_offline(browser, docs):
    page, watched = opened(browser, result_page(docs[0], "dec_result"), "offline")
    try:
        # the status icons: Font Awesome's glyphs, from the site's own files
        assert page.evaluate("document.fonts.check('900 16px \"Font Awesome 6 Free\"')")
        icon = page.locator(".fa-check-circle").first
        assert page.evaluate("e => getComputedStyle(e, '::before').content", icon.element_handle()) not in ("none", "normal", "")
        assert icon.bounding_box()["width"] > 5
        assert page.locator(".fa-times").count() >= 2  # the failed expectations
        # Failed Only hides the expectations that passed, Show All brings them back
        passed = page.locator("tr:has(.fa-check-circle)")
        failed = page.locator("tr:has(.fa-times)")
        assert passed.first.is_visible() and failed.first.is_visible()
        page.get_by_text("Failed Only").click()
        page.wait_for_timeout(800)  # jQuery fades them out
        assert not any(passed.nth(i).is_visible() for i in range(passed.count()))
        assert failed.first.is_visible()
        page.get_by_text("Show All").click()
        page.wait_for_timeout(800)
        assert passed.first.is_visible()
        # Show more info opens the run's details
        details = page.locator(".collapse").first
        assert not details.is_visible()
        page.get_by_text("Show more info...").click()
        page.wait_for_timeout(600)
        assert details.is_visible()
        # no newsletter bar
        assert "newsletter" not in page.inner_text("body").lower()
        page.screenshot(path=artifacts_dir() / "data-docs-offline.png", full_page=True)
        watched.assert_clean()
    finally:
        page.close()


def test_quarantined_rows_are_shown_with_file_line_reason_and_message(browser, docs):
    docs_dir, warehouse = docs
    with duckdb.connect(str(warehouse), read_only=True) as con:
        expected = con.execute("SELECT source_file, line_no::VARCHAR, reason_code, reason_message FROM quarantine "
                               "WHERE file_kind = 'dec_result' ORDER BY line_no").fetchall()
    assert len(expected) == 3
    page, watched = opened(browser, result_page(docs_dir, "dec_result"), "quarantine")
    try:
        table = page.locator("table.quarantined-rows")
        shown = [tuple(r.locator("td").all_inner_texts()) for r in table.locator("tbody tr").all()]
        assert shown == expected
        # the failing values are listed by line of the file, not by pandas index
        header = page.locator("tr:has(> th:text-is('Unexpected Value'))").first.locator("th").all_inner_texts()
        assert header == ["Unexpected Value", "Count", "行 line"]
        watched.assert_clean()
    finally:
        page.close()


def test_the_index_lists_every_file_and_links_its_page(browser, docs):
    docs_dir, _ = docs
    page, watched = opened(browser, docs_dir / "index.html", "index")
    try:
        rows = page.locator("tbody tr")
        assert rows.count() == 5
        assert "dec_result_20261120_01.csv" in page.inner_text("tbody")
        page.locator("tbody tr", has_text="dec_result_20261120_01.csv").get_by_text("结果 result").click()
        page.wait_for_load_state("load")
        assert "Quarantined rows of dec_result_20261120_01.csv: 3" in page.inner_text("body")
        watched.assert_clean()
    finally:
        page.close()
