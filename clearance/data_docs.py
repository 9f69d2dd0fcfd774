"""Great Expectations Data Docs of each delivery's validation results, safe and working offline.

GX's own site builder is not used, for two reasons measured on GX 1.24:
- its templates put the values of a validation result into the page as they are (a value such as
  `<img src=x onerror=alert(1)>` in a bad row runs when an analyst opens the page), so every
  string a file brought is HTML-escaped in a copy of the result before GX renders it;
- its pages load Bootstrap, jQuery and Font Awesome from CDNs: without them the status icons are
  blank and "Failed Only" and "Show more info" do nothing. The same libraries come from PyPI
  packages (xstatic-jquery 3.7.1, the version GX links; xstatic-bootstrap 4.5.3 for GX's 4.3.1,
  same major version; fontawesomefree 6.6.0, GX's version) and are copied into the site's
  static/vendor/; a few of GX's templates (clearance/data_docs_templates/) point at them, and
  drop GX's newsletter footer.
GX's renderers and page view still draw every page; each result page gets a section more: the
file's quarantined rows with their line, reason code and message, and the failing values are
listed by line of the file (not by pandas index).

Pages keep GX's layout (validations/<suite>/<run name>/<run time>/<batch>.html); the site's
index.html is our own plain list, newest first, its rows kept in index.json so a night reads
only its own results.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import polars as pl

from clearance.ingest import LINE_NO, REASON_CODE, REASON_MESSAGE

TEMPLATES_DIR = Path(__file__).with_name("data_docs_templates")
LINE_COLUMN = "行 line"
# url(...) of anything not in the site itself: GX's stylesheet draws its logo from its web server
_EXTERNAL_CSS_URL = re.compile(r"url\(\s*[\"']?(?:https?:)?//[^)]*\)", re.I)


def _vendored_assets() -> dict[str, Path]:
    """static/vendor/<name> -> the file or folder shipped by a PyPI package."""
    import fontawesomefree
    import xstatic.pkg.bootstrap
    import xstatic.pkg.jquery

    bootstrap, fontawesome = Path(xstatic.pkg.bootstrap.BASE_DIR), Path(fontawesomefree.__file__).parent / "static" / "fontawesomefree"
    return {
        "jquery/jquery.min.js": Path(xstatic.pkg.jquery.BASE_DIR) / "jquery.min.js",
        "bootstrap/css/bootstrap.min.css": bootstrap / "css" / "bootstrap.min.css",
        "bootstrap/js/bootstrap.bundle.min.js": bootstrap / "js" / "bootstrap.bundle.min.js",  # with Popper
        "fontawesome/css/all.min.css": fontawesome / "css" / "all.min.css",
        "fontawesome/webfonts": fontawesome / "webfonts",
        "fontawesome/LICENSE.txt": fontawesome / "LICENSE.txt",
    }


def escape_observed(value):
    """Every string a file brought, HTML-escaped once: GX's templates put these into the page as they are."""
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, list):
        return [escape_observed(v) for v in value]
    if isinstance(value, dict):
        return {k: escape_observed(v) for k, v in value.items()}
    return value


def _line_indexed(result: dict, columns: list[str], places: list[str]) -> dict:
    """The failing values by line of the file, where GX would list the pandas index of the frame."""
    indices, values = result.get("unexpected_index_list"), result.get("unexpected_list")
    result = {k: v for k, v in result.items() if k not in ("unexpected_index_query", "partial_unexpected_index_list")}
    if not indices or values is None or not all(isinstance(i, int) for i in indices):
        return result
    listed = []
    for index, value in zip(indices, values):
        entry = {LINE_COLUMN: places[index]}
        if isinstance(value, dict):
            entry.update(value)
        elif isinstance(value, (list, tuple)) and len(value) == len(columns):  # a pair of columns
            entry.update(zip(columns, value))
        else:
            entry[columns[0]] = value
        listed.append(entry)
    return {**result, "unexpected_index_list": listed, "unexpected_index_column_names": [LINE_COLUMN]}


@dataclass
class CheckedRun:
    """One validation run: one kind, the rows of one or more files."""

    identifier: object  # GX ValidationResultIdentifier
    files: list[str]  # the files of the run, in order
    places: list[str]  # line of the file (and the file, when there are several) of each row validated, by position
    file_of_row: list[int]  # index into files of each row, by position
    quarantined: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # by file: line, reason code, message


class DataDocs:
    """The Data Docs site of a GX file context: pages of the results recorded with add(), built by publish()."""

    def __init__(self, context, docs_dir: Path) -> None:
        self.context, self.docs_dir = context, docs_dir
        self.started = time.time() - 1  # file times may be rounded to the second
        self.runs: dict[str, CheckedRun] = {}  # by result: a run's later add() replaces its first
        self.suites: set[str] = set()
        # GX's own site would render raw values and CDN links: nobody builds it from this project
        for name in list(context.get_config().data_docs_sites or {}):
            context.delete_data_docs_site(name)

    def add(self, identifier, frame: pl.DataFrame) -> None:
        """A run's validation result and its rows as validated (file, line numbers, reasons)."""
        from clearance.validation import SOURCE_FILE

        files = frame[SOURCE_FILE].unique(maintain_order=True).to_list()
        number = {name: i for i, name in enumerate(files)}
        places = frame.select(pl.col(LINE_NO).cast(pl.String) if len(files) == 1 else
                              pl.format("{}, line {}", SOURCE_FILE, LINE_NO)).to_series().to_list()
        bad = frame.filter(pl.col(REASON_CODE).is_not_null()).sort(SOURCE_FILE, LINE_NO, maintain_order=True)
        quarantined = {name: [] for name in files}
        for name, line, code, message in bad.select(SOURCE_FILE, LINE_NO, REASON_CODE, pl.col(REASON_MESSAGE).fill_null("")).rows():
            quarantined[name].append((line, code, message))
        self.runs[str(identifier.to_tuple())] = CheckedRun(
            identifier, files, places, [number[f] for f in frame[SOURCE_FILE].to_list()], quarantined)
        self.suites.add(identifier.expectation_suite_identifier.name)

    def publish(self) -> None:
        if not self.runs:
            return
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier
        from great_expectations.render.renderer import ExpectationSuitePageRenderer, ValidationResultsPageRenderer

        view = OfflinePageView()
        index_rows = []
        for checked in self.runs.values():
            page = self.docs_dir / "validations" / Path(*checked.identifier.to_tuple()).with_suffix(".html")
            result = self.context.validation_results_store.get(checked.identifier)
            index_rows += index_rows_of_run(checked, result)
            document = ValidationResultsPageRenderer().render(self._safe_result(checked, result))
            for position, section in enumerate(quarantine_sections(checked), start=1):
                document.sections.insert(position, section)
            write_page(page, view.render(document, show_how_to_buttons=False))
        for name in sorted(self.suites):
            suite = self.context.suites.get(name)
            page = self.docs_dir / "expectations" / Path(*ExpectationSuiteIdentifier(name=name).to_tuple()).with_suffix(".html")
            write_page(page, view.render(ExpectationSuitePageRenderer().render(suite), show_how_to_buttons=False))
        copy_static(self.docs_dir)
        written = [p for p in [self.docs_dir, *self.docs_dir.rglob("*")] if p.stat().st_mtime >= self.started]
        write_index(self.docs_dir, index_rows)
        make_world_readable(written + [self.docs_dir / "index.html", self.docs_dir / "index.json"])

    @staticmethod
    def _safe_result(checked: CheckedRun, result):
        """The stored result made safe to draw (in place): values escaped, failing values by line."""
        for outcome in result.results:
            kwargs = outcome.expectation_config.kwargs
            columns = ([kwargs["column"]] if "column" in kwargs else
                       [kwargs["column_A"], kwargs["column_B"]] if "column_A" in kwargs else list(kwargs.get("column_list") or []))
            if outcome.result:
                outcome.result = escape_observed(_line_indexed(outcome.result, columns or ["value"], checked.places))
        return result


def quarantine_sections(checked: CheckedRun) -> list:
    """The quarantined rows of each file of the run, as GX content: every cell escaped here (GX's table
    template does not). The files every row of which passed share one line."""
    from great_expectations.render import (RenderedHeaderContent, RenderedSectionContent, RenderedStringTemplateContent,
                                           RenderedTableContent)

    esc = html.escape

    def header(text: str):
        return RenderedHeaderContent(content_block_type="header", header=RenderedStringTemplateContent(
            content_block_type="string_template", string_template={"template": text, "tag": "h5"}))

    sections = []
    for name, rows in checked.quarantined.items():
        if not rows:
            continue
        table = RenderedTableContent(
            content_block_type="table", header_row=["文件 file", LINE_COLUMN, "原因代码 reason code", "原因 reason"],
            table=[[esc(name), str(line), esc(code), esc(message)] for line, code, message in rows],
            styling={"body": {"classes": ["table", "table-sm", "table-bordered", "quarantined-rows"]}})
        sections.append(RenderedSectionContent(section_name="隔离的行 Quarantined rows", content_blocks=[
            header(f"隔离的行 Quarantined rows of {esc(name)}: {len(rows)}"), table]))
    clean = [name for name, rows in checked.quarantined.items() if not rows]
    if clean:
        names = ", ".join(esc(n) for n in clean)
        sections.append(RenderedSectionContent(section_name="隔离的行 Quarantined rows", content_blocks=[
            header(f"隔离的行 Quarantined rows of {names}: 0"),
            RenderedStringTemplateContent(content_block_type="string_template", string_template={
                "template": "无 None: every row of " + ("the file" if len(clean) == 1 else "these files") + " passed.",
                "tag": "p"})]))
    return sections


def _view_class():
    from great_expectations.render.view import DefaultJinjaPageView
    from jinja2 import ChoiceLoader, FileSystemBytecodeCache, FileSystemLoader

    class View(DefaultJinjaPageView):
        """GX's page view with our few templates taking precedence over GX's (GX's own custom_views
        folder is searched after GX's templates, so it can add templates but not replace one)."""

        def __init__(self) -> None:
            super().__init__()
            self.env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES_DIR)), self.env.loader])
            self.env.filters["offline_css"] = lambda css: _EXTERNAL_CSS_URL.sub("none", str(css))
            self.env.globals["site_root_for"] = site_root_for
            # every run is a new process: the compiled templates are kept (in the user's own temporary
            # folder, which jinja makes private) instead of compiling GX's templates again each night
            self.env.bytecode_cache = FileSystemBytecodeCache()

    return View


def OfflinePageView():  # noqa: N802 - a class built when GX is imported (GX is heavy: imported in the task)
    return _view_class()()


def site_root_for(renderer_type: str, suite_name: str | None) -> str:
    """The path from a page to the site's root, as GX lays its pages out."""
    dots = (suite_name or "").count(".")
    if "ValidationResults" in (renderer_type or ""):
        return (dots + 4) * "../"
    if "ExpectationSuite" in (renderer_type or ""):
        return (dots + 1) * "../"
    return "./"


def write_page(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def copy_static(docs_dir: Path) -> None:
    """GX's images (logo, favicon) and the vendored libraries, once per site (and again when a package changed)."""
    import great_expectations

    static = docs_dir / "static"
    images = Path(great_expectations.__file__).parent / "render" / "view" / "static" / "images"
    for name in ("logo-long.png", "favicon.ico"):
        target = static / "images" / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(images / name, target)
    for name, source in _vendored_assets().items():
        target = static / "vendor" / name
        if source.is_dir():
            for file in source.iterdir():
                _copy_if_changed(file, target / file.name)
        else:
            _copy_if_changed(source, target)


def _copy_if_changed(source: Path, target: Path) -> None:
    if target.exists() and target.stat().st_size == source.stat().st_size:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def index_rows_of_run(checked: CheckedRun, result) -> list[dict]:
    """The lines of the index for a run: one per file, with the expectations the file's rows met."""
    suite, run_name, run_time = (checked.identifier.expectation_suite_identifier.name, checked.identifier.run_id.run_name,
                                 checked.identifier.run_id.to_tuple()[1])
    export_date = run_name.split(" ")[0]
    link = str(Path("validations", *checked.identifier.to_tuple()).with_suffix(".html"))
    failed_by_file = [0] * len(checked.files)
    for outcome in result.results:
        if outcome.success:
            continue
        indices = (outcome.result or {}).get("unexpected_index_list")
        if not indices:  # a failure that names no row is every file's
            failed_by_file = [n + 1 for n in failed_by_file]
            continue
        for number in {checked.file_of_row[i] for i in indices}:
            failed_by_file[number] += 1
    evaluated = len(result.results)
    return [{"run_name": f"{export_date} {name}", "run_time": run_time, "suite": suite,
             "success": failed_by_file[number] == 0, "met": f"{evaluated - failed_by_file[number]}/{evaluated}",
             "failed_rows": len(checked.quarantined[name]), "link": link, "file": name}
            for number, name in enumerate(checked.files)]


_INDEX_STYLE = (
    "<style>body{font-family:\"Noto Sans CJK SC\",sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}.ok{color:#1a7f37}.fail{color:#b42318;font-weight:bold}</style>"
)


def write_index(docs_dir: Path, new_rows: list[dict]) -> None:
    """GX's own index lists the runs with JavaScript from a CDN; this one is plain HTML, newest first.

    The lines of earlier runs are kept in index.json, so a night reads only its own results.
    """
    listing = docs_dir / "index.json"
    rows = {(r["link"], r.get("file")): r for r in json.loads(listing.read_text(encoding="utf-8"))} if listing.exists() else {}
    for row in new_rows:
        rows[(row["link"], row["file"])] = row
    ordered = sorted(rows.values(), key=lambda r: (r["run_name"], r["run_time"]), reverse=True)
    listing.write_text(json.dumps(ordered, ensure_ascii=False), encoding="utf-8")
    body = "".join(
        f"<tr><td>{html.escape(r['run_name'])}</td><td>{html.escape(r['suite'])}</td><td>{html.escape(r['run_time'])}</td>"
        f"<td class=\"{'ok' if r['success'] else 'fail'}\">{'通过 passed' if r['success'] else '有失败行 rows failed'}</td>"
        f"<td>{html.escape(r['met'])}</td><td>{int(r['failed_rows'])}</td>"
        f"<td><a href=\"{html.escape(quote(r['link']))}\">结果 result</a></td></tr>"
        for r in ordered
    )
    (docs_dir / "index.html").write_text(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>数据校验结果 Validation results</title>"
        f"{_INDEX_STYLE}</head><body><h1>数据校验结果 Validation results of the single-window deliveries</h1>"
        "<p>One row per delivery file and run, newest first. Rows that fail an expectation are quarantined "
        "(table <code>quarantine</code> of the warehouse); a failed file-level expectation stops the run. "
        "Each result page lists the file's quarantined rows with their line, reason code and message. "
        "Suites: <a href=\"expectations/\">expectations/</a>.</p>"
        "<table><thead><tr><th>交付文件 delivery file</th><th>规则集 suite</th><th>运行时间 run (UTC)</th><th>结果 outcome</th>"
        "<th>满足的规则 expectations met</th><th>隔离的行 rows quarantined</th><th></th></tr></thead>"
        f"<tbody>{body}</tbody></table></body></html>",
        encoding="utf-8",
    )


def make_world_readable(paths: list[Path]) -> None:
    """Analysts read; only the pipeline's user writes."""
    for path in paths:
        if path.exists():
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
