"""The nightly dashboard in a real browser (headless Chromium), and the analyst exports.

The history: simulated nights 2026-11-10, 11-11 and 11-13 (the delivery of 11-12 never arrives: a
day without a delivery), and a hand-written delivery of 11-14 whose free-text fields carry markup,
script and line separators (issue 10.10): a declaration accepted on 11-13 10:30, delivered late and
never released, stalled (37.5 h accepted) at the 11-15 00:00 cut-off.
"""

from __future__ import annotations

import gzip
import re
import shutil
import xml.etree.ElementTree as ET
from datetime import date, datetime

import duckdb
import pytest

from clearance_tools.delivery_writer import write_delivery
from clearance.pipeline import run_business_date
from clearance_tools.simulator import simulate
from tests.browser import Watched, artifacts_dir
from tests.deliveries import dec_head, entry_id, receipt

XES = "{http://www.xes-standard.org/}"
HOSTILE_OWNER = "<!--<script>window.__injected=1;alert('owner')</script>\u2028\u2029&amp; 大连<b>贸易</b>"
HOSTILE_BILL = "</SCRIPT><SCRIPT>ALERT(1)</SCRIPT>"
HOSTILE_ENTRY = entry_id(777001)
NIGHTS = ("2026-11-10", "2026-11-11", "2026-11-13", "2026-11-14")  # 11-12 never delivered
RAW_KEY = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")  # released_not_gated_out, state_council_2021, ...


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    simulate(root / "inbox", "2026-11-10", 4, scale=0.03, seed=5)
    # the 11-12 delivery never arrives; 11-14 is written by hand with hostile free text
    write_delivery(root / "inbox", "2026-11-14", {
        "dec_head": [dec_head(HOSTILE_ENTRY, "2026-11-13 10:00:00", bill=HOSTILE_BILL, owner_name=HOSTILE_OWNER)],
        "dec_result": [receipt(HOSTILE_ENTRY, "L", "2026-11-13 10:30:00")],
    })
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(root / "inbox"))
        mp.setenv("CLEARANCE_WAREHOUSE", str(root / "warehouse" / "clearance.duckdb"))
        mp.setenv("CLEARANCE_DASHBOARD", str(root / "dashboards" / "clearance_dashboard.html"))
        for day in NIGHTS:
            run_business_date(day)
    return root / "warehouse" / "clearance.duckdb", root / "dashboards" / "clearance_dashboard.html"


def query(warehouse, sql, params=()):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def open_dashboard(browser, published, width: int, name: str):
    page = browser.new_page(viewport={"width": width, "height": 900})
    watched = Watched(page)
    page.goto(published[1].as_uri())
    page.wait_for_function("document.body.dataset.drawn === 'all/all'")
    page.wait_for_timeout(300)  # responsive charts settle to their container's width
    return page, watched


@pytest.fixture
def page(browser, published, request):
    """The dashboard opened from its file; any network request, console error or dialog fails the test."""
    page, watched = open_dashboard(browser, published, 1400, request.node.name)
    yield page
    shot = artifacts_dir() / f"dashboard-{request.node.name}.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 50_000
    watched.assert_clean()
    page.close()


def chart_ids(page) -> list[str]:
    return page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => d.id)")


def chart_traces(page, chart_id):
    return page.evaluate(f"document.getElementById('{chart_id}').data.map(t => ({{meta: t.meta || null, name: t.name, "
                         "x: Array.from(t.x || []), y: Array.from(t.y || [])}))")


def values(trace, axis="y"):
    return [v for v in trace[axis] if v is not None]


def test_every_chart_drawn_with_titled_axes_and_bilingual_labels(page):
    charts = chart_ids(page)
    assert len(charts) == 9
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for chart in charts:
        traces = chart_traces(page, chart)
        assert any(any(v not in (None, 0) for v in t["x"] + t["y"] if isinstance(v, (int, float))) for t in traces), \
            f"{chart} is empty"
        # every axis in use has a title, drawn in the page (plotly.js ignores titles given as strings)
        drawn = page.evaluate(f"""(() => {{
            const div = document.getElementById('{chart}');
            const axes = Object.keys(div._fullLayout).filter(k => /^[xy]axis\\d*$/.test(k));
            return axes.map(a => [a, (div._fullLayout[a].title || {{}}).text || '',
              Array.from(div.querySelectorAll('.g-' + a.replace('axis', '') + 'title text')).map(t => t.textContent).join(' ')]);
        }})()""")
        assert drawn, chart
        for axis_name, title, shown in drawn:
            assert title and shown.strip(), f"{chart} {axis_name}: no axis title drawn"
            assert cjk.search(shown) and re.search("[A-Za-z]{3}", shown), f"{chart} {axis_name}: title not bilingual: {shown}"
        # legends and ticks: names, not raw keys
        texts = page.evaluate(f"Array.from(document.querySelectorAll('#{chart} .legendtext, #{chart} .xtick text, "
                              f"#{chart} .ytick text')).map(t => t.textContent)")
        for text in texts:
            assert not RAW_KEY.search(text), f"{chart}: raw key in {text!r}"
        for text in page.evaluate(f"Array.from(document.querySelectorAll('#{chart} .legendtext')).map(t => t.textContent)"):
            assert cjk.search(text) and re.search("[A-Za-z]{3}", text), f"{chart}: legend entry not bilingual: {text!r}"
    assert page.evaluate("document.fonts.check('16px \"Noto Sans CJK SC\"')"), "no CJK font: apt-get install fonts-noto-cjk"
    assert "整体通关时间" in page.inner_text("main")
    # offices and ports by name
    offices = page.evaluate("Array.from(document.querySelectorAll('#chart-wip .xtick text')).map(t => t.textContent)")
    assert any("大连海关" in o and "Dalian Customs" in o for o in offices)
    assert page.get_attribute("#link-trs", "href") == "time_release_study/index.html"


def test_figures_shown_equal_the_warehouse(page, published):
    warehouse = published[0]
    daily = query(warehouse, "SELECT period_start::VARCHAR, mean_hours, median_hours, p90_hours FROM mart_clearance_statistics "
                             "WHERE grain = 'day' AND segment = 'overall_clearance' AND dimension = 'all' "
                             "AND direction = 'import' ORDER BY period_start")
    traces = {t["meta"]["statistic"]: t for t in chart_traces(page, "chart-overall") if t["meta"].get("direction") == "import"}
    median = traces["median"]
    assert [d for d, m in zip(median["x"], median["y"]) if m is not None] == [d for d, *_ in daily]
    assert values(median) == pytest.approx([m for _, _, m, _ in daily])
    assert values(traces["mean"]) == pytest.approx([m for _, m, _, _ in daily])
    assert page.inner_text("#kpi-import .mean") == f"{daily[-1][1]:.1f}"
    assert page.inner_text("#kpi-import .median") == f"{daily[-1][2]:.1f}"
    assert page.inner_text("#kpi-import .p90") == f"{daily[-1][3]:.1f}"

    stalled = query(warehouse, "SELECT count(*) FROM mart_stalled_shipments")[0][0]
    assert page.locator("#table-stalled tbody tr").count() == min(stalled, 500)
    [latest] = query(warehouse, "SELECT export_date::VARCHAR, count(*), count(*) FILTER (WHERE rows_quarantined > 0), "
                                "sum(rows_quarantined) FROM file_accounting GROUP BY ALL ORDER BY 1 DESC LIMIT 1")
    assert page.inner_text("#table-validation tr:nth-child(2)").split("\t") == [str(v) for v in latest]
    quarantined = dict(query(warehouse, "SELECT reason_code, count(*) FROM quarantine GROUP BY ALL"))
    shown = [r.split("\t") for r in page.inner_text("#table-quarantine").splitlines()]
    assert {code: int(rows) for _, code, rows in shown} == quarantined
    # each reason said in words, Chinese and English, beside its code
    for label, code, _ in shown:
        assert label != code and re.search(r"[\u4e00-\u9fff]", label) and re.search(r"[A-Za-z]{2,} [A-Za-z]{2,}", label), label


def test_where_the_time_goes_is_a_chain_over_the_same_shipments(page, published):
    """Each port's bar adds up to arrival -> gate-out of the imports out of the gate, its first three
    steps to their mean overall clearance time; inspection is the inspected shipments' extra time."""
    warehouse = published[0]
    expected = dict((port, (n, arrival_to_release, arrival_to_exit)) for port, n, arrival_to_release, arrival_to_exit in query(
        warehouse, "SELECT port_code, count(*), avg(overall_clearance_hours), avg(door_to_gate_hours) FROM core_shipments "
                   "WHERE is_counted AND direction = 'import' AND arrival_at IS NOT NULL AND accepted_at IS NOT NULL "
                   "AND released_at IS NOT NULL AND gate_out_at IS NOT NULL "
                   "AND (berthed_at IS NOT NULL OR NOT arrived_by_vessel_call) GROUP BY ALL"))
    steps = [t for t in chart_traces(page, "chart-chain-import") if t["meta"]["step"] != "national_mean"]
    assert [t["meta"]["step"] for t in steps] == ["berth_wait", "to_acceptance", "to_release", "to_exit"]
    names = {code: f"{zh} {en}" for code, zh, en in query(warehouse, "SELECT port_code, port_name_zh, port_name FROM ref_ports")}
    for i, label in enumerate(steps[0]["y"]):
        port = next((code for code, name in names.items() if name == label), None)
        if port is None:
            continue  # the total over the ports
        n, arrival_to_release, arrival_to_exit = expected.pop(port)
        assert min(t["x"][i] for t in steps) >= 0
        assert sum(t["x"][i] for t in steps[:3]) == pytest.approx(arrival_to_release)
        assert sum(t["x"][i] for t in steps) == pytest.approx(arrival_to_exit)
    assert expected == {}, "ports missing from the chart"

    [(inspected, not_inspected)] = query(
        warehouse, "SELECT avg(overall_clearance_hours) FILTER (WHERE is_inspected), "
                   "avg(overall_clearance_hours) FILTER (WHERE NOT is_inspected) FROM core_shipments "
                   "WHERE is_counted AND direction = 'import' AND port_code = 'DLC'")
    bars = {t["meta"]["inspected"]: t for t in chart_traces(page, "chart-inspection") if t["meta"]["direction"] == "import"}
    row = bars[True]["y"].index(f"{names['DLC']} · 进口 import")
    assert bars[True]["x"][row] == pytest.approx(inspected)
    assert bars[False]["x"][row] == pytest.approx(not_inspected)


def test_a_day_without_a_delivery_is_a_gap_and_marked(page, published):
    traces = chart_traces(page, "chart-overall")
    [missing] = [t for t in traces if t["meta"]["statistic"] == "no_delivery"]
    assert missing["x"] == ["2026-11-12"]
    [mean] = [t for t in traces if t["meta"] == {**t["meta"], "direction": "import", "statistic": "mean"}]
    day = mean["x"].index("2026-11-12")
    assert mean["y"][day] is None and mean["y"][day - 1] is not None  # no line drawn across the day
    shapes = page.evaluate("document.getElementById('chart-overall').layout.shapes.map(s => [s.x0, s.x1])")
    assert ["2026-11-12 00:00", "2026-11-13 00:00"] in shapes


def test_provisional_days_are_marked(page, published):
    """A day is provisional while 10 % or more of the shipments waiting that day are still open at the cut-off."""
    warehouse = published[0]
    [(cutoff,)] = query(warehouse, "SELECT cutoff_at FROM run_context")
    shipments = query(warehouse, "SELECT arrival_at, released_at FROM core_shipments WHERE is_counted "
                                 "AND direction = 'import' AND arrival_at <= ?", [cutoff])
    days = [d for (d,) in query(warehouse, "SELECT DISTINCT period_start::VARCHAR FROM mart_clearance_statistics "
                                           "WHERE grain = 'day' AND direction = 'import' AND dimension = 'all' ORDER BY 1")]
    expected = []
    for day in days:
        d = date.fromisoformat(day)
        waiting = [r for a, r in shipments if a.date() <= d and (r is None or r > cutoff or r.date() >= d)]
        still_open = [r for r in waiting if r is None or r > cutoff]
        if waiting and len(still_open) / len(waiting) >= 0.10:
            expected.append(day)
    [mean] = [t for t in chart_traces(page, "chart-overall") if t["meta"].get("statistic") == "mean"
              and t["meta"]["direction"] == "import"]
    assert mean["meta"]["provisional"] == expected
    assert days[0] in expected  # the first day of a history counts only the fast shipments
    symbols = page.evaluate("document.getElementById('chart-overall').data[0].marker.symbol")
    assert [d for d, s in zip(mean["x"], symbols) if s == "circle-open"] == expected


def test_hostile_free_text_is_shown_as_text_and_every_chart_is_drawn(page, published):
    """<!--<script> and friends in the stalled list and owner names (issue 10.10)."""
    assert query(published[0], "SELECT owner_name FROM mart_stalled_shipments WHERE entry_id = ?",
                 [HOSTILE_ENTRY]) == [(HOSTILE_OWNER,)]
    row = page.locator("#table-stalled tbody tr", has_text=HOSTILE_ENTRY)
    cells = row.locator("td").all_text_contents()
    assert HOSTILE_OWNER in cells and HOSTILE_BILL in cells
    assert page.locator("#table-stalled b").count() == 0  # the markup was not parsed
    for chart in chart_ids(page):
        assert page.locator(f"#{chart} .main-svg").count() > 0, f"{chart} not drawn"
    # the fixture's page checks: no dialog, no injected script ran, no error


def test_filters_by_port_and_direction_work_inside_the_page(page, published):
    warehouse = published[0]
    page.select_option("#filter-port", "YKP")
    page.select_option("#filter-direction", "export")
    page.wait_for_function("document.body.dataset.drawn === 'YKP/export'")
    daily = query(warehouse, "SELECT median_hours FROM mart_clearance_statistics WHERE grain = 'day' "
                             "AND segment = 'overall_clearance' AND dimension = 'port' AND dimension_value = 'YKP' "
                             "AND direction = 'export' ORDER BY period_start")
    traces = [t for t in chart_traces(page, "chart-overall") if t["meta"].get("direction")]
    assert {t["meta"]["direction"] for t in traces} == {"export"}
    [median] = [t for t in traces if t["meta"]["statistic"] == "median"]
    assert values(median) == pytest.approx([m for (m,) in daily])
    stalled = query(warehouse, "SELECT count(*) FROM mart_stalled_shipments WHERE port_code = 'YKP' AND direction = 'export'")
    assert page.locator("#table-stalled tbody tr").count() == stalled[0][0]
    assert page.locator("#section-chain-import").is_hidden() and page.locator("#section-chain-export").is_visible()
    [(share, inspected, not_inspected)] = query(
        warehouse, "SELECT count(*) FILTER (WHERE is_inspected) / count(*), avg(overall_clearance_hours) FILTER (WHERE is_inspected), "
                   "avg(overall_clearance_hours) FILTER (WHERE NOT is_inspected) FROM core_shipments "
                   "WHERE is_counted AND overall_clearance_hours IS NOT NULL AND port_code = 'YKP' AND direction = 'export'")
    bars = {t["meta"]["inspected"]: t for t in chart_traces(page, "chart-inspection")}
    assert bars[False]["x"] == pytest.approx([not_inspected])
    assert values(bars[True], "x") == pytest.approx([v for v in [inspected] if v is not None])


@pytest.mark.parametrize("width", [390, 1024, 2560])
def test_layout_from_a_phone_to_a_wall_screen(browser, published, width):
    """No horizontal scrolling, and no title, tick or legend text cut off by its chart's edges."""
    page, watched = open_dashboard(browser, published, width, f"layout-{width}")
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        clipped = page.evaluate("""Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(div => {
            const box = div.getBoundingClientRect();
            return Array.from(div.querySelectorAll('.g-xtitle text, .g-ytitle text, .g-y2title text, .xtick text, .ytick text, .y2tick text, .legendtext'))
              .filter(t => t.textContent.trim())
              .map(t => [div.id, t.textContent, t.getBoundingClientRect()])
              .filter(([, , r]) => r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
              .map(([id, text]) => id + ': ' + text);
        })""")
        assert clipped == [], clipped
        shot = artifacts_dir() / f"dashboard-{width}px.png"
        page.screenshot(path=shot, full_page=True)
        watched.assert_clean()
    finally:
        page.close()


def test_marts_exported_as_parquet_by_month(published):
    warehouse = published[0]
    parquet = warehouse.parent / "parquet"
    assert parquet.is_symlink()
    months = sorted(p.name for p in (parquet / "mart_clearance_statistics").iterdir())
    assert months == ["month=2026-11"]
    for table in ("core_shipments", "mart_clearance_statistics", "mart_work_in_progress", "core_clearance_events"):
        [(in_parquet,)] = query(warehouse, f"SELECT count(*) FROM read_parquet('{parquet}/{table}/**/*.parquet', "
                                           "hive_partitioning = true)")
        [(in_warehouse,)] = query(warehouse, f"SELECT count(*) FROM {table}")
        assert in_parquet == in_warehouse > 0, table


def test_event_log_as_xes(published):
    warehouse = published[0]
    traces = []
    monthly = sorted((warehouse.parent / "event_log").glob("clearance_events-*.xes.gz"))
    [(months,)] = query(warehouse, "SELECT count(DISTINCT declaration_month) FROM core_clearance_events")
    assert len(monthly) == months > 0  # one file per month of declaration
    for path in monthly:
        with gzip.open(path, "rb") as f:
            log = ET.parse(f).getroot()
        assert log.tag == f"{XES}log" and log.get("xes.version") == "1849-2016"
        traces += log.findall(f"{XES}trace")
    [(cases, events)] = query(warehouse, "SELECT count(DISTINCT entry_id), count(*) FROM core_clearance_events "
                                         "WHERE event_at IS NOT NULL")
    assert len(traces) == cases
    assert sum(len(t.findall(f"{XES}event")) for t in traces) == events
    first = traces[0]
    case = first.find(f"{XES}string[@key='concept:name']").get("value")
    times = [datetime.fromisoformat(e.find(f"{XES}date[@key='time:timestamp']").get("value"))
             for e in first.findall(f"{XES}event")]
    assert times == sorted(times) and all(t.utcoffset().total_seconds() == 8 * 3600 for t in times)
    [(expected,)] = query(warehouse, "SELECT count(*) FROM core_clearance_events WHERE entry_id = ? AND event_at IS NOT NULL",
                          [case])
    assert len(times) == expected


def test_a_warehouse_folder_moved_elsewhere_exports_no_event_log_month_again(published, tmp_path, monkeypatch):
    """The exports know a month's events file by its name: a copy of the folder (a restored backup,
    another disk) that publishes again writes no XES month whose events did not change."""
    from clearance.pipeline import export_for_analysts, publish

    warehouse = published[0]
    moved = tmp_path / "elsewhere" / "warehouse"
    shutil.copytree(warehouse.parent, moved, symlinks=True)
    monkeypatch.setenv("CLEARANCE_WAREHOUSE", str(moved / "clearance.duckdb"))
    monkeypatch.setenv("CLEARANCE_DASHBOARD", str(tmp_path / "elsewhere" / "dashboards" / "clearance_dashboard.html"))
    with duckdb.connect(str(moved / "_state" / "clearance_state.duckdb"), read_only=True) as con:
        [(build_id, day)] = con.execute("SELECT build_id, business_date::VARCHAR FROM run_context").fetchall()
    publish(build_id, day)  # the published file now names the copy's Parquet files
    [(files,)] = query(moved / "clearance.duckdb", "SELECT list(file) FROM published_files")
    assert all(f.startswith(str(moved)) for f in files)
    assert export_for_analysts(day)["xes_months_written"] == []
