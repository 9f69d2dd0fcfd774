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
    october_final = {("2026-10", "final", s) for s in scopes}
    month_to_date = [Report(date(2026, 11, 1), "month_to_date", s) for s in scopes]
    assert reports_due(date(2026, 11, 17), scopes, october_final) == month_to_date
    # the night of the 1st failed or had no delivery: the next night that runs writes the final reports
    assert reports_due(date(2026, 11, 17), scopes, october_final - {("2026-10", "final", "0900")}) == [
        *month_to_date, Report(date(2026, 10, 1), "final", "0900")]
    # the 1st writes them again (the cut-off moved) even when they exist
    assert reports_due(date(2026, 12, 1), scopes, {("2026-11", "final", s) for s in scopes})[2:] == [
        Report(date(2026, 11, 1), "final", s) for s in scopes]
    # a rerun of an older night: no month-to-date report beside a month's final one
    assert reports_due(date(2026, 11, 17), scopes, october_final | {("2026-11", "final", "liaoning")}) == [
        Report(date(2026, 11, 1), "month_to_date", "0900")]


def html_tables(page: str) -> list[tuple[str, list[list[str]]]]:
    """Every table of a report page with the heading above it: rows of cell texts, as a reader sees them."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.heading, self.tables, self.cell, self.in_heading = "", [], None, False

        def handle_starttag(self, tag, attrs):
            if tag in ("h2", "h3"):
                self.heading, self.in_heading = ("" if tag == "h2" else self.heading.split(" / ")[0] + " / "), True
            elif tag == "table":
                self.tables.append((self.heading, []))
            elif tag == "tr":
                self.tables[-1][1].append([])
            elif tag in ("td", "th"):
                self.cell = [dict(attrs).get("class") or ""]
            elif tag == "br" and self.cell is not None:
                self.cell.append(" ")

        def handle_endtag(self, tag):
            if tag in ("h2", "h3"):
                self.in_heading = False
            elif tag in ("td", "th") and self.cell is not None:
                self.tables[-1][1][-1].append((self.cell[0], re.sub(r"\s+", " ", "".join(self.cell[1:])).strip()))
                self.cell = None

        def handle_data(self, data):
            if self.in_heading:
                self.heading += data.strip()
            elif self.cell is not None:
                self.cell.append(data)

    parser = Tables()
    parser.feed(page)
    return parser.tables


def test_every_section_shows_the_warehouse_figures_and_only_a_mean_is_judged_against_the_target(reports):
    """Interval, slice, reform and backlog tables read row by row against their marts; the verdict
    against the target (a mean, as the national figures) is given to the mean of the shipments
    released in the month, never to a median."""
    from clearance.time_release_study import SEGMENTS, hours, quantile

    root, _, _ = reports
    page = (root / "dashboards" / "time_release_study" / "TRS_2026-11_0900_final.html").read_text(encoding="utf-8")
    tables = html_tables(page)

    def table(heading_start: str) -> list[list[str]]:
        [rows] = [rows for heading, rows in tables if heading.startswith(heading_start)]
        return [[text for _, text in row] for row in rows[1:]]

    with duckdb.connect(str(root / "clearance.duckdb"), read_only=True) as con:
        def rows(sql, params=()):
            cur = con.execute(sql, params)
            return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]

        segments = rows("SELECT * FROM mart_arrival_cohort_statistics WHERE grain = 'month' AND period_start = "
                        "DATE '2026-11-01' AND scope = '0900' AND direction = 'export' AND dimension = 'all'")
        ports = rows("SELECT * FROM mart_arrival_cohort_statistics WHERE grain = 'month' AND period_start = "
                     "DATE '2026-11-01' AND scope = '0900' AND direction = 'export' AND dimension = 'port' "
                     "AND segment = 'overall_clearance'")
        effects = rows("SELECT * FROM mart_reform_measure_effects WHERE arrival_month = DATE '2026-11-01' AND scope = '0900'")
        backlog = rows("SELECT direction, open_stage, count(*) AS shipments FROM mart_work_in_progress "
                       "WHERE date_trunc('month', arrival_at) = DATE '2026-11-01' AND district_code = '0900' GROUP BY ALL")
        [released] = rows("SELECT mean_hours, median_hours FROM mart_clearance_statistics WHERE grain = 'month' "
                          "AND period_start = DATE '2026-11-01' AND direction = 'export' AND dimension = 'district' "
                          "AND dimension_value = '0900' AND segment = 'overall_clearance'")
        [(target,)] = con.execute("SELECT min(target_hours) FROM ref_clearance_targets WHERE direction = 'export' "
                                  "AND is_operative AND district_code IS NULL").fetchall()

    # time per interval, exports: every segment the cohort entered, its counts and estimates
    labels = {code: zh for code, zh, _ in SEGMENTS}
    shown = {row[0]: row for row in table("2. 各环节时间 Time per interval / 出口")}
    assert len(segments) >= 3
    for segment in segments:
        [row] = [r for label, r in shown.items() if label.startswith(labels[segment["segment"]])]
        assert row[1:5] == [str(segment["shipments"]), str(segment["completed"]), str(segment["still_open"]),
                            hours(segment["released_only_mean_hours"])], segment["segment"]
        assert row[6].startswith(quantile(segment, "median")), segment["segment"]

    # by port, exports: one row per port of the cohort
    port_rows = table("4. 按运输方式、通道、商品类别和口岸 By transport mode, channel, commodity group and port / 口岸")
    port_rows = [r for r in port_rows if "(" in r[0]]
    assert sorted(r[0].rsplit("(", 1)[1].rstrip(")") for r in port_rows) == sorted(p["dimension_value"] for p in ports)
    for port in ports:
        [row] = [r for r in port_rows if r[0].endswith(f"({port['dimension_value']})")]
        assert row[1:3] == [str(port["shipments"]), str(port["still_open"])]
        assert row[3].startswith(quantile(port, "median"))

    # reform measures: one row per measure of the month and scope, with/compared counts
    effect_rows = [r for r in table("5. 改革措施成效") if len(r) > 1]
    assert len(effect_rows) == len(effects) >= 1
    for effect in effects:
        assert any(r[2] == f"{effect['compared_with_measure']} / {effect['shipments_with_measure']}" for r in effect_rows)

    # backlog: shipments still open by stage, as in mart_work_in_progress
    backlog_rows = [r for r in table("6. 积压") if len(r) > 1]
    assert sorted(int(r[2]) for r in backlog_rows) == sorted(b["shipments"] for b in backlog) and backlog

    # the verdict: on the mean released in the month, never on a median
    judged = [(cls, text) for heading, rows in tables for row in rows for cls, text in row
              if "within" in cls.split() or "above" in cls.split()]
    judged = [(cls, text) for cls, text in judged if "figure" in cls.split()]
    expected = "within" if released["mean_hours"] <= target else "above"
    assert judged == [(f"figure {expected}", f"{hours(released['mean_hours'])} h")]
