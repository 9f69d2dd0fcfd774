"""The monthly Time Release Study (TRS) report, per customs district and for Liaoning, in Chinese and English.

    python -m clearance.time_release_study [--warehouse PATH] [--out DIR] [--month YYYY-MM --final]

Every night writes the month-to-date report of the business date's month; the night of the first
day of a month also writes the final report of the month before. Each report is a self-contained
HTML page (styles and a subset of the CJK font inlined: it opens with no network) and a PDF
rendered from it by WeasyPrint, whose URL fetcher refuses anything but file and data URLs.
They are written under `<folder of the dashboard>/time_release_study/`, with `index.html`
listing every report.

The tables follow the model report of the WCO Time Release Study guide: the average, median and
distribution of each interval by direction, transport mode, channel (inspection) and commodity
group, the share within the target, the reform measures' effect and the backlog, against the
national figures and the targets of the reference data. Every figure is read from the published
warehouse (mart_arrival_cohort_statistics, mart_clearance_statistics, mart_reform_measure_effects,
mart_work_in_progress, ref_*): the report computes nothing of its own.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import jinja2
from weasyprint import HTML
from weasyprint.urls import URLFetcher

from clearance.config import settings

log = logging.getLogger(__name__)

REPORT_FOLDER = "time_release_study"
INDEX_NAME = "index.html"
CATALOGUE_NAME = "reports.json"
LIAONING = "liaoning"
KINDS = {"month_to_date": ("月度截至当日", "month to date"), "final": ("终版", "final")}

SEGMENTS = (
    ("overall_clearance", "整体通关时间", "Overall clearance (arrival → release)"),
    ("anchorage_wait", "锚地等待（靠泊延误）", "Anchorage wait (berthing delay)"),
    ("pre_declaration", "抵港至申报", "Arrival → declaration"),
    ("customs_processing", "海关作业（放行延误）", "Customs processing (release delay)"),
    ("inspection", "查验", "Inspection"),
    ("port_exit", "放行至提离", "Release → gate-out"),
    ("door_to_gate", "抵港至提离", "Arrival → gate-out"),
)
DIMENSIONS = (
    ("transport_mode", "运输方式", "Transport mode"),
    ("inspection", "查验（通道）", "Channel: inspected or not"),
    ("commodity_group", "商品类别", "Commodity group"),
    ("port", "口岸", "Port"),
)
MEASURES = (
    ("advance_declaration", "提前申报", "Advance declaration"),
    ("two_step", "两步申报", "Two-step declaration"),
    ("ship_side", "船边直提 / 抵港直装", "Ship-side pickup / direct loading"),
    ("release_before_inspection", "先放后检", "Release before inspection"),
)
DIRECTIONS = (("import", "进口", "Imports"), ("export", "出口", "Exports"))
IMPORT_ONLY = ("anchorage_wait", "port_exit", "door_to_gate")
# the thresholds of share_completed_within in mart_arrival_cohort_statistics
DISTRIBUTION_HOURS = (1, 3, 6, 12, 24, 48, 72, 168)
EXTRA_STAGE_LABELS = {"declared_not_accepted": ("已申报未入库", "declared, not accepted")}
INSPECTION_LABELS = {"inspected": ("查验", "inspected"), "not_inspected": ("未查验", "not inspected")}

COHORT_COLUMNS = (
    "dimension_value, segment, shipments, completed, still_open, median_hours, median_lower_hours, median_upper_hours, "
    "p90_hours, p90_lower_hours, p90_upper_hours, share_completed_within, released_only_median_hours, "
    "released_only_p90_hours, released_only_mean_hours, released_only_share_completed_within, "
    "longest_completed_hours, target_hours, share_within_target, released_only_share_within_target"
)


@dataclass(frozen=True)
class Report:
    month: date  # first day of the month reported
    kind: str  # month_to_date or final
    scope: str  # liaoning or a district code

    @property
    def stem(self) -> str:
        return f"TRS_{self.month:%Y-%m}_{self.scope}_{self.kind.replace('_', '-')}"


def reports_due(business_date: date, scopes: list[str], written: set[tuple[str, str, str]] = frozenset()) -> list[Report]:
    """The month-to-date reports of the business date's month, and the month before's final ones on the
    1st or on any later night that finds them missing (the night of the 1st failed, or had no delivery).
    `written` holds (YYYY-MM, kind, scope) of the reports already in the catalogue: a month that has its
    final report gets no month-to-date one again (a rerun of an older night)."""
    month = business_date.replace(day=1)
    previous = (month - timedelta(days=1)).replace(day=1)
    due = [Report(month, "month_to_date", s) for s in scopes if (f"{month:%Y-%m}", "final", s) not in written]
    due += [Report(previous, "final", s) for s in scopes
            if business_date.day == 1 or (f"{previous:%Y-%m}", "final", s) not in written]
    return due


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict = ()) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def scopes_of(con: duckdb.DuckDBPyConnection) -> list[dict]:
    districts = _rows(con, "SELECT district_code AS code, district_name_zh AS zh, district_name AS en "
                           "FROM ref_customs_districts ORDER BY district_code")
    return [{"code": LIAONING, "zh": "辽宁（沈阳关区、大连关区）", "en": "Liaoning (both customs districts)"}, *districts]


def _targets(con: duckdb.DuckDBPyConnection, scope: str) -> dict:
    """Per direction: the operative target (the district's where it has one) and the national figures."""
    district = None if scope == LIAONING else scope
    rows = _rows(con, "SELECT target_code, direction, district_code, target_hours, label, is_operative "
                      "FROM ref_clearance_targets ORDER BY target_code")
    targets = {}
    for direction, _, _ in DIRECTIONS:
        mine = [r for r in rows if r["direction"] == direction]
        operative = sorted((r for r in mine if r["is_operative"] and r["district_code"] == district),
                           key=lambda r: (r["target_hours"], r["target_code"])) or \
            sorted((r for r in mine if r["is_operative"] and r["district_code"] is None),
                   key=lambda r: (r["target_hours"], r["target_code"]))
        targets[direction] = {
            "operative": operative[0] if operative else None,
            "national": [r for r in mine if r["district_code"] is None],
        }
    return targets


def collect(con: duckdb.DuckDBPyConnection, report: Report) -> dict:
    """Every figure of one report, read from the published warehouse."""
    [(business_date, cutoff_at)] = con.execute("SELECT business_date, cutoff_at FROM run_context").fetchall()
    scope = next(s for s in scopes_of(con) if s["code"] == report.scope)
    cohort = {"month": report.month, "scope": report.scope}
    headline, breakdown, slices, distribution = {}, {}, {}, {}
    for direction, _, _ in DIRECTIONS:
        rows = _rows(con, f"SELECT {COHORT_COLUMNS} FROM mart_arrival_cohort_statistics WHERE grain = 'month' "
                          "AND period_start = $month AND scope = $scope AND direction = $direction AND dimension = 'all'",
                     {**cohort, "direction": direction})
        by_segment = {r["segment"]: r for r in rows}
        breakdown[direction] = [(code, zh, en, by_segment.get(code)) for code, zh, en in SEGMENTS]
        headline[direction] = {"cohort": by_segment.get("overall_clearance")}
        # the figure of released shipments by month of release, as customs publishes it
        released = _rows(con, "SELECT shipments, mean_hours, median_hours, p90_hours, share_within_target, target_hours "
                              "FROM mart_clearance_statistics WHERE grain = 'month' AND period_start = $month "
                              "AND direction = $direction AND segment = 'overall_clearance' AND "
                              "((dimension = 'all' AND $scope = 'liaoning') OR (dimension = 'district' AND dimension_value = $scope))",
                         {**cohort, "direction": direction})
        headline[direction]["released_in_month"] = released[0] if released else None
        distribution[direction] = [(code, zh, en, by_segment.get(code)) for code, zh, en in SEGMENTS]
        for dimension, _, _ in DIMENSIONS:
            rows = _rows(con, f"SELECT {COHORT_COLUMNS} FROM mart_arrival_cohort_statistics WHERE grain = 'month' "
                              "AND period_start = $month AND scope = $scope AND direction = $direction "
                              "AND dimension = $dimension ORDER BY dimension_value, segment",
                         {**cohort, "direction": direction, "dimension": dimension})
            values = sorted({r["dimension_value"] for r in rows})
            slices[(dimension, direction)] = [
                (value, {r["segment"]: r for r in rows if r["dimension_value"] == value}) for value in values]
    effects = _rows(con, "SELECT * FROM mart_reform_measure_effects WHERE arrival_month = $month AND scope = $scope "
                         "ORDER BY direction, measure", cohort)
    district_filter = "" if report.scope == LIAONING else "AND w.district_code = $scope"
    backlog = _rows(con, f"""
        SELECT w.direction, w.open_stage, count(*) AS shipments, median(w.hours_in_stage) AS median_hours_in_stage,
               max(w.hours_in_stage) AS longest_hours_in_stage, count(s.entry_id) AS stalled
        FROM mart_work_in_progress AS w
        LEFT JOIN mart_stalled_shipments AS s ON s.entry_id = w.entry_id AND s.stage = w.open_stage
        WHERE date_trunc('month', w.arrival_at) = $month {district_filter}
        GROUP BY ALL ORDER BY w.direction, shipments DESC, w.open_stage""",
        cohort if district_filter else {"month": report.month})
    labels = {r["stage"]: (r["stage_label_zh"], r["stage_label"]) for r in _rows(
        con, "SELECT stage, stage_label_zh, stage_label FROM ref_stage_responsibilities")}
    names = {
        "port": {r["code"]: (r["zh"], r["en"]) for r in _rows(
            con, "SELECT port_code AS code, port_name_zh AS zh, port_name AS en FROM ref_ports")},
        "transport_mode": {r["code"]: (r["zh"], r["en"]) for r in _rows(
            con, "SELECT transport_mode_code AS code, transport_mode_zh AS zh, transport_mode AS en FROM ref_transport_modes")},
        "commodity_group": {r["code"]: (r["zh"], r["en"].replace("_", " ")) for r in _rows(
            con, "SELECT DISTINCT commodity_group AS code, commodity_group_zh AS zh, commodity_group AS en "
                 "FROM ref_commodity_groups")} | {"other": ("其他", "other")},
        "inspection": INSPECTION_LABELS,
        "stage": labels | EXTRA_STAGE_LABELS,
    }
    return {
        "report": report, "scope": scope, "business_date": business_date, "cutoff_at": cutoff_at,
        "generated_at": datetime.now().replace(microsecond=0), "targets": _targets(con, report.scope),
        "headline": headline, "breakdown": breakdown, "slices": slices, "distribution": distribution,
        "effects": effects, "backlog": backlog, "names": names,
    }


# ----------------------------------------------------------------------------------------- rendering

def hours(value, digits: int = 1) -> str:
    """Hours as the report prints them; — for a figure that does not exist."""
    return "—" if value is None else f"{value:,.{digits}f}"


def share(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def quantile(row: dict | None, name: str) -> str:
    """A Kaplan-Meier quantile; n.r.: not reached by the cut-off (too many shipments still open to tell)."""
    if row is None or not row["shipments"]:
        return "—"
    value = row[f"{name}_hours"]
    return hours(value) if value is not None else "n.r."


def interval(row: dict | None, name: str) -> str:
    if row is None or not row["shipments"]:
        return ""
    lower, upper = row[f"{name}_lower_hours"], row[f"{name}_upper_hours"]
    return f"[{hours(lower) if lower is not None else 'n.r.'}, {hours(upper) if upper is not None else 'n.r.'}]"


def verdict(mean_hours: float | None, target: float | None) -> str:
    """within, above or unknown: a mean against a target. The targets and the national figures are
    means (GACC's), so only a mean is judged against them, never a median."""
    if mean_hours is None or target is None:
        return "unknown"
    return "within" if mean_hours <= target else "above"


def _template() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(hours=hours, share=share)
    env.globals.update(quantile=quantile, interval=interval, SEGMENTS=SEGMENTS, DIMENSIONS=DIMENSIONS,
                       MEASURES=MEASURES, DIRECTIONS=DIRECTIONS, IMPORT_ONLY=IMPORT_ONLY, KINDS=KINDS, DISTRIBUTION_HOURS=DISTRIBUTION_HOURS, verdict=verdict)
    return env


def render_html(figures: dict, font_css: str = "") -> str:
    return _template().get_template("time_release_study_template.html").render(**figures, font_css=font_css)


# The report's CJK font: a subset of Noto Sans CJK SC (Debian's fonts-noto-cjk) with the characters the
# page uses, inlined as WOFF2. Subsetting the 20 MB collection takes seconds: the subset of a set of
# characters is kept in the report folder and reused (the characters change only with the reference data).
FONT_FAMILY = "Noto Sans CJK SC"
FONT_WEIGHTS = {400: "", 700: ":bold"}


def _font_file(weight: int) -> tuple[str, int] | None:
    try:
        found = subprocess.run(["fc-match", "-f", "%{file}|%{index}", FONT_FAMILY + FONT_WEIGHTS[weight]],
                               capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    path, _, index = found.partition("|")
    return (path, int(index or 0)) if "NotoSansCJK" in path else None


def font_css(text: str, cache_dir: Path) -> str:
    """@font-face rules inlining the subset of the CJK font needed for `text` (empty if the font is missing)."""
    characters = "".join(sorted(set(text) | {chr(c) for c in range(32, 127)} | set("–—→·≤≥−")))
    rules = []
    for weight in FONT_WEIGHTS:
        source = _font_file(weight)
        if source is None:
            log.warning("font %s (weight %d) not found: install Debian's fonts-noto-cjk; the report falls back "
                        "to the viewer's fonts", FONT_FAMILY, weight)
            continue
        key = hashlib.sha256(f"{source}|{characters}".encode()).hexdigest()[:16]
        cached = cache_dir / f"noto-sans-cjk-sc-{weight}-{key}.woff2"
        if not cached.exists():
            from fontTools import subset
            from fontTools.ttLib import TTFont

            font = TTFont(source[0], fontNumber=source[1], lazy=True)
            options = subset.Options()
            options.flavor = "woff2"
            subsetter = subset.Subsetter(options)
            subsetter.populate(text=characters)
            subsetter.subset(font)
            buffer = io.BytesIO()
            font.flavor = "woff2"
            font.save(buffer)
            cache_dir.mkdir(parents=True, exist_ok=True)
            for old in cache_dir.glob(f"noto-sans-cjk-sc-{weight}-*.woff2"):
                old.unlink()
            _write(cached, buffer.getvalue())
        data = base64.b64encode(cached.read_bytes()).decode("ascii")
        rules.append(f'@font-face {{ font-family: "TRS Sans"; font-weight: {weight}; '
                     f'src: url(data:font/woff2;base64,{data}) format("woff2"); }}')
    return "\n".join(rules)


class LocalOnlyFetcher(URLFetcher):
    """WeasyPrint URL fetcher that refuses every URL but file: and data: ones: the PDF is rendered
    with no network (the page inlines everything it shows; any other URL would be a fault of the page)."""

    def __init__(self):
        super().__init__(allowed_protocols={"file", "data"})
        self.refused: list[str] = []

    def fetch(self, url, headers=None):
        if url.split(":", 1)[0].lower() not in ("file", "data"):
            self.refused.append(url)
            log.warning("time release study: refused to fetch %s (no network while rendering)", url)
            raise ValueError(f"{url}: only file and data URLs are fetched")
        return super().fetch(url, headers)


def render_pdf(html: str, path: Path, base_url: Path) -> list[str]:
    """Render the page to PDF; returns the URLs refused (none for our own pages)."""
    fetcher = LocalOnlyFetcher()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    HTML(string=html, base_url=str(base_url) + "/", url_fetcher=fetcher).write_pdf(tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return fetcher.refused


def _write(path: Path, data: bytes | str) -> None:
    """Write a file whole, then rename it into place: a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def report_folder(dashboard: Path) -> Path:
    return dashboard.parent / REPORT_FOLDER


def _catalogue(folder: Path) -> list[dict]:
    path = folder / CATALOGUE_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def write_index(folder: Path, catalogue: list[dict]) -> Path:
    catalogue = sorted(catalogue, key=lambda r: (r["month"], r["kind"] != "final", r["scope"] != LIAONING, r["scope"]),
                       reverse=False)
    by_month: dict[str, list[dict]] = {}
    for entry in catalogue:
        by_month.setdefault(entry["month"], []).append(entry)
    page = _template().get_template("time_release_study_index.html").render(
        months=sorted(by_month.items(), reverse=True), generated_at=datetime.now().replace(microsecond=0))
    _write(folder / INDEX_NAME, page)
    _write(folder / CATALOGUE_NAME, json.dumps(catalogue, ensure_ascii=False, indent=1))
    return folder / INDEX_NAME


def build_reports(warehouse: Path, folder: Path, business_date: date | None = None,
                  reports: list[Report] | None = None, pdf: bool = True) -> list[Path]:
    """Write the reports due for the warehouse's business date (or the ones given) and the index."""
    folder.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(built_for,)] = con.execute("SELECT business_date FROM run_context").fetchall()
        business_date = business_date or built_for
        if business_date != built_for:
            raise RuntimeError(f"{warehouse} is built for business date {built_for}, not {business_date}: "
                               "the report would not show that night")
        scopes = [s["code"] for s in scopes_of(con)]
        catalogue = {(e["month"], e["kind"], e["scope"]): e for e in _catalogue(folder)}
        due = reports or reports_due(business_date, scopes, set(catalogue))
        [(first_arrival,)] = con.execute("SELECT min(period_start) FROM mart_arrival_cohort_statistics "
                                         "WHERE grain = 'month'").fetchall()
        pages = []
        for report in due:
            if report.kind == "final" and (first_arrival is None or report.month < first_arrival):
                log.info("no final report for %s: no shipment arrived that month", f"{report.month:%Y-%m}")
                continue
            pages.append((report, collect(con, report)))
    # one font subset for every page of the night: the characters are those of the template and the
    # reference data, the same night after night, so the subset is made once and then reused
    drafts = [render_html(figures) for _, figures in pages]
    fonts = font_css("".join(drafts), folder / ".fonts") if pages else ""
    written = []
    for report, figures in pages:
        html = render_html(figures, fonts)
        html_path = folder / f"{report.stem}.html"
        _write(html_path, html)
        written.append(html_path)
        entry = {"month": f"{report.month:%Y-%m}", "kind": report.kind, "scope": report.scope,
                 "scope_zh": figures["scope"]["zh"], "scope_en": figures["scope"]["en"],
                 "business_date": str(figures["business_date"]), "cutoff_at": str(figures["cutoff_at"]),
                 "html": html_path.name, "pdf": None}
        if pdf:
            pdf_path = html_path.with_suffix(".pdf")
            refused = render_pdf(html, pdf_path, folder)
            if refused:
                raise RuntimeError(f"{html_path.name}: the page names resources outside itself: {refused}")
            entry["pdf"] = pdf_path.name
            written.append(pdf_path)
        catalogue[(entry["month"], entry["kind"], entry["scope"])] = entry
        if report.kind == "final":  # the final report supersedes the month-to-date one
            stale = catalogue.pop((entry["month"], "month_to_date", report.scope), None)
            for name in (stale or {}).get("html"), (stale or {}).get("pdf"):
                if name:
                    (folder / name).unlink(missing_ok=True)
        log.info("time release study %s: %s", report.stem, ", ".join(p.name for p in written[-2:]))
    write_index(folder, list(catalogue.values()))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, default=settings().warehouse)
    parser.add_argument("--out", type=Path, default=report_folder(settings().dashboard),
                        help="folder of the reports (default: time_release_study/ beside the dashboard)")
    parser.add_argument("--month", help="YYYY-MM: write this month's reports instead of the ones due tonight")
    parser.add_argument("--final", action="store_true", help="with --month: the final report")
    parser.add_argument("--no-pdf", action="store_true", help="HTML only")
    args = parser.parse_args(argv)
    reports = None
    if args.month:
        month = date.fromisoformat(args.month + "-01")
        with duckdb.connect(str(args.warehouse), read_only=True) as con:
            scopes = [s["code"] for s in scopes_of(con)]
        reports = [Report(month, "final" if args.final else "month_to_date", s) for s in scopes]
    for path in build_reports(args.warehouse, args.out, reports=reports, pdf=not args.no_pdf):
        print(path)
    print(args.out / INDEX_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
