"""The nightly dashboard in a real browser (headless Chromium), and the analyst exports."""

from __future__ import annotations

import gzip
import shutil
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from clearance.pipeline import run_business_date
from clearance_tools.simulator import simulate

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
XES = "{http://www.xes-standard.org/}"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    simulate(root / "inbox", "2026-11-10", 4, scale=0.03, seed=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(root / "inbox"))
        mp.setenv("CLEARANCE_WAREHOUSE", str(root / "warehouse" / "clearance.duckdb"))
        mp.setenv("CLEARANCE_DASHBOARD", str(root / "dashboards" / "clearance_dashboard.html"))
        for day in ("2026-11-10", "2026-11-11", "2026-11-12", "2026-11-13"):
            run_business_date(day)
    return root / "warehouse" / "clearance.duckdb", root / "dashboards" / "clearance_dashboard.html"


def query(warehouse, sql, params=()):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "headless Chromium is needed: apt-get install chromium fonts-noto-cjk"
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, published, tmp_path):
    """The dashboard opened from its file; any network request or console error fails the test."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.goto(published[1].as_uri())
    page.wait_for_function("document.body.dataset.drawn === 'all/all'")
    yield page
    page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 50_000
    assert [u for u in requests if not u.startswith("file:")] == []
    assert errors == []
    page.close()


def chart_traces(page, chart_id):
    return page.evaluate(f"document.getElementById('{chart_id}').data.map(t => ({{meta: t.meta || null, "
                         "x: Array.from(t.x || []), y: Array.from(t.y || [])}))")


def test_every_chart_has_data_and_chinese_labels_render(page):
    charts = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => d.id)")
    assert len(charts) == 8
    for chart in charts:
        traces = chart_traces(page, chart)
        assert any(any(v is not None and v != 0 for v in t["y"]) for t in traces), f"{chart} is empty"
    assert page.evaluate("document.fonts.check('16px \"Noto Sans CJK SC\"')"), "no CJK font: apt-get install fonts-noto-cjk"
    assert "整体通关时间" in page.inner_text("main")


def test_figures_shown_equal_the_warehouse(page, published):
    warehouse = published[0]
    daily = query(warehouse, "SELECT period_start::VARCHAR, median_hours, p90_hours FROM mart_clearance_statistics "
                             "WHERE grain = 'day' AND segment = 'overall_clearance' AND dimension = 'all' "
                             "AND direction = 'import' ORDER BY period_start")
    [median] = [t for t in chart_traces(page, "chart-overall") if t["meta"] == {"direction": "import", "statistic": "median"}]
    assert median["x"] == [d for d, _, _ in daily]
    assert median["y"] == pytest.approx([m for _, m, _ in daily])
    assert page.inner_text("#kpi-import .median") == f"{daily[-1][1]:.1f}"
    assert page.inner_text("#kpi-import .p90") == f"{daily[-1][2]:.1f}"

    stalled = query(warehouse, "SELECT count(*) FROM mart_stalled_shipments")[0][0]
    assert page.locator("#table-stalled tbody tr").count() == min(stalled, 500)
    [latest] = query(warehouse, "SELECT export_date::VARCHAR, count(*), count(*) FILTER (WHERE rows_quarantined > 0), "
                                "sum(rows_quarantined) FROM file_accounting GROUP BY ALL ORDER BY 1 DESC LIMIT 1")
    assert page.inner_text("#table-validation tr:nth-child(2)").split("\t") == [str(v) for v in latest]
    quarantined = dict(query(warehouse, "SELECT reason_code, count(*) FROM quarantine GROUP BY ALL"))
    shown = dict(r.split("\t") for r in page.inner_text("#table-quarantine").splitlines())
    assert {k: int(v) for k, v in shown.items()} == quarantined


def test_filters_by_port_and_direction_work_inside_the_page(page, published):
    warehouse = published[0]
    page.select_option("#filter-port", "YKP")
    page.select_option("#filter-direction", "export")
    page.wait_for_function("document.body.dataset.drawn === 'YKP/export'")
    daily = query(warehouse, "SELECT median_hours FROM mart_clearance_statistics WHERE grain = 'day' "
                             "AND segment = 'overall_clearance' AND dimension = 'port' AND dimension_value = 'YKP' "
                             "AND direction = 'export' ORDER BY period_start")
    traces = chart_traces(page, "chart-overall")
    assert {t["meta"]["direction"] for t in traces} == {"export"}
    [median] = [t for t in traces if t["meta"]["statistic"] == "median"]
    assert median["y"] == pytest.approx([m for (m,) in daily])
    stalled = query(warehouse, "SELECT count(*) FROM mart_stalled_shipments WHERE port_code = 'YKP' AND direction = 'export'")
    assert page.locator("#table-stalled tbody tr").count() == stalled[0][0]
    [(inspected_share,)] = query(warehouse, "SELECT count(*) FILTER (WHERE is_inspected) / count(*) FROM core_shipments "
                                            "WHERE is_counted AND released_at IS NOT NULL AND port_code = 'YKP' "
                                            "AND direction = 'export'")
    [bars, _] = chart_traces(page, "chart-inspection")
    assert bars["y"] == pytest.approx([100 * inspected_share])


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
