"""The monthly Time Release Study report: the PDF a chief opens, its figures against the warehouse's,
no network while rendering or viewing."""

from __future__ import annotations

import http.server
import re
import threading
from datetime import date

import duckdb
import pytest

from clearance_tools.delivery_writer import write_delivery
from clearance.pipeline import build_time_release_report, run_business_date
from tests.deliveries import entry_id, receipt
from tests.test_backlog_statistics import delivery, export_shipment


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("trs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(root / "inbox"))
        mp.setenv("CLEARANCE_WAREHOUSE", str(root / "clearance.duckdb"))
        mp.setenv("CLEARANCE_DASHBOARD", str(root / "dashboards" / "clearance_dashboard.html"))
        write_delivery(root / "inbox", "2026-11-30", delivery(
            export_shipment(1, "2026-11-28 10:00:00", "2026-11-28 12:00:00"),
            export_shipment(2, "2026-11-28 10:00:00", "2026-11-28 15:00:00"),
            export_shipment(3, "2026-11-28 10:00:00", None),
            export_shipment(4, "2026-11-29 10:00:00", "2026-11-29 13:30:00", advance="Y"),
            export_shipment(5, "2026-11-29 18:00:00", None, port="YKP"),
        ))
        run_business_date("2026-11-30")
        month_to_date = build_time_release_report("2026-11-30")
        # the first night of December: the final report of November, and December's month to date
        write_delivery(root / "inbox", "2026-12-01", {"dec_result": [
            receipt(entry_id(3, direction="E"), "P", "2026-12-01 08:00:00")]})
        run_business_date("2026-12-01")
        first_of_month = build_time_release_report("2026-12-01")
    return root, month_to_date, first_of_month


def pdf_text(path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def cohort(warehouse, scope: str) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cur = con.execute("SELECT * FROM mart_arrival_cohort_statistics WHERE grain = 'month' AND period_start = "
                          "DATE '2026-11-01' AND scope = ? AND direction = 'export' AND dimension = 'all' "
                          "AND segment = 'overall_clearance'", [scope])
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone()))


def test_every_night_writes_the_month_to_date_and_the_first_of_the_month_the_final_report(reports):
    root, month_to_date, first_of_month = reports
    folder = root / "dashboards" / "time_release_study"
    names = sorted(p.name for p in folder.glob("TRS_*"))
    # November final (it replaces November's month to date) and December's month to date, per scope
    assert names == sorted(f"TRS_{month}_{scope}_{kind}.{ext}" for month, kind in
                           (("2026-11", "final"), ("2026-12", "month-to-date"))
                           for scope in ("liaoning", "0800", "0900") for ext in ("html", "pdf"))
    assert {p.rsplit("/", 1)[-1] for p in month_to_date} == {
        f"TRS_2026-11_{s}_month-to-date.{e}" for s in ("liaoning", "0800", "0900") for e in ("html", "pdf")}
    index = (folder / "index.html").read_text(encoding="utf-8")
    for name in names:
        assert f'href="{name}"' in index
    assert "TRS_2026-11_0900_month-to-date" not in index


def test_the_pdf_names_the_month_the_district_and_the_warehouse_figures(reports):
    root, _, _ = reports
    warehouse = root / "clearance.duckdb"
    text = pdf_text(root / "dashboards" / "time_release_study" / "TRS_2026-11_0900_final.pdf")
    flat = re.sub(r"\s+", " ", text)
    assert "2026年11月" in flat and "November 2026" in flat
    assert "大连关区" in flat and "Dalian customs district" in flat
    assert "终版" in flat and "final" in flat
    assert "2026-12-02 00:00" in flat  # the cut-off of the night that wrote it
    row = cohort(warehouse, "0900")
    # the November exports of Dalian district as of the cut-off of 12-02 00:00: released after 2, 3.5, 5 and
    # 70 h (on 12-01), one still open (Yingkou, censored at 54 h): S = 4/5, 3/5, 2/5 at 5 h, the median
    assert (row["shipments"], row["completed"], row["still_open"]) == (5, 4, 1)
    assert row["median_hours"] == pytest.approx(5)
    for figure in (f"{row['median_hours']:.1f} h", f"{row['released_only_median_hours']:.1f} h",
                   f"{100 * row['share_within_target']:.1f}%", f"[{row['median_lower_hours']:.1f}, "):
        assert figure in flat, figure
    assert re.search(r"出口[^\n]{0,40}\b5\b[^\n]{0,10}\b4\b[^\n]{0,10}\b1\b", text), "the cohort counts"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(released_median,)] = con.execute(
            "SELECT median_hours FROM mart_clearance_statistics WHERE grain = 'month' AND period_start = "
            "DATE '2026-11-01' AND direction = 'export' AND dimension = 'district' AND dimension_value = '0900' "
            "AND segment = 'overall_clearance'").fetchall()
    assert f"{released_median:.1f} h" in flat  # beside it, the released-only figure by month of release


def test_the_html_page_is_self_contained_and_matches_the_warehouse(reports):
    root, _, _ = reports
    page = (root / "dashboards" / "time_release_study" / "TRS_2026-11_liaoning_final.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"url\((?!data:)", page)  # every font and image inline
    assert "@font-face" in page and "data:font/woff2;base64," in page  # the CJK font travels with the page
    row = cohort(root / "clearance.duckdb", "liaoning")
    assert f"{row['median_hours']:.1f} h" in page and "辽宁" in page


def test_the_pdf_renderer_never_fetches_from_the_network(tmp_path):
    from clearance.time_release_study import render_pdf

    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        html = (f'<html><head><link rel="stylesheet" href="{url}/style.css"></head>'
                f'<body><p>通关</p><img src="{url}/logo.png"></body></html>')
        refused = render_pdf(html, tmp_path / "page.pdf", tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert requests == []
    assert sorted(refused) == [f"{url}/logo.png", f"{url}/style.css"]
    assert (tmp_path / "page.pdf").read_bytes().startswith(b"%PDF")


def test_reports_due(reports):
    from clearance.time_release_study import Report, reports_due

    scopes = ["liaoning", "0900"]
    assert reports_due(date(2026, 11, 17), scopes) == [Report(date(2026, 11, 1), "month_to_date", s) for s in scopes]
    assert reports_due(date(2026, 12, 1), scopes)[2:] == [Report(date(2026, 11, 1), "final", s) for s in scopes]
