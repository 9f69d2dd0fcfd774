"""`make bench`: a year of Liaoning through the pipeline, every step timed, with its peak memory.

    python -m clearance_tools.benchmark [--dir warehouse/bench] [--scale 1.4] [--days 365] [--full]
                                        [--fresh] [--rebuild] [--nights N] [--compare-with CHECKOUT]

1. The simulator writes a year of deliveries (at --scale 1.4: ~20 million rows) and one more night,
   once: the deliveries are kept in <dir>/cache/ for these arguments and this simulator (--fresh: again).
2. Two histories are loaded through the pipeline's own ingest and load, once each and kept in the
   cache while the ingest, load and state layout are unchanged: the last month, and the whole year.
   The simulated history has no bad rows (the simulator's bad_rows quirk is off), so Great
   Expectations, timed on the measured nights, is skipped for it: it would quarantine nothing.
3. Full rebuild of each history from its loaded rows: every staging, core and mart table, the
   alerts of the history's last night, then the first publish (every monthly Parquet file written)
   and the analyst exports. The rebuilt warehouse is kept while the pipeline's code and the history
   are unchanged: a later run starts its nights from it and prints the rebuild's figures of the run
   that measured them, marked [earlier run] (--rebuild or --full measure it again).
4. The same next night on top of each history, from a copy of the rebuilt warehouse: ingest,
   validation, load and models, alerts (to a local SMTP server), publish, then the dashboard and
   analyst exports, each part in its own process as Airflow runs its tasks (started with the
   libraries the deployment's executor preloads, clearance.executor); once (--nights N: the
   fastest of N). The ratio of the two shows whether a night costs what the night brings or what
   the year holds.
5. The same night on the year in the local deployment (clearance.deployment serve), triggered as
   `make run` does: from the run's start to the published warehouse, by Airflow's own records.
6. Analyst queries on the year's published warehouse, as an analyst would run them.
7. The catch-up of the year from an empty state (python -m clearance.recover), stopped at its
   3-minute target (--full: after 15 minutes).
8. Baseline: shipment milestones and segments with pandas groupby over the same staged events,
   compared shipment by shipment with the pipeline's core_shipments, and the time ratio.
9. With --full: cost per port of a night (validation, load and models on that port's share).

Every step runs in its own process; its peak memory is that process's maximum resident set size.
At the end every figure the issue sets a target for is printed with its target, the previous
figures (docs/bench-figures.json) and the ratio to them; with --compare-with another checkout (say
main's) the rebuilds and nights run with its code too, on the same data, and are printed beside.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from clearance.config import PROJECT_DIR  # the steps run in the project folder; default --dir is under it

START = date(2026, 1, 1)
QUIRKS_WITHOUT_BAD_ROWS = "duplicates,late,versions,shuffle,bill_variants,time_formats,bom,layout,split_files,unknown_codes"

ANALYST_QUERIES = {
    "monthly p90 by port and segment over the year (from core_shipments)": """
        WITH segment_hours AS (
            UNPIVOT (SELECT port_code, date_trunc('month', release_date) AS month, overall_clearance_hours,
                            anchorage_wait_hours, pre_declaration_hours, customs_processing_hours, inspection_hours,
                            port_exit_hours, door_to_gate_hours
                     FROM core_shipments WHERE is_counted AND released_at IS NOT NULL)
            ON COLUMNS('_hours$') INTO NAME segment VALUE hours)
        SELECT month, port_code, segment, count(*) AS shipments, quantile_cont(hours, 0.9) AS p90_hours
        FROM segment_hours GROUP BY ALL ORDER BY ALL""",
    "monthly p90 by port and segment over the year (from the statistics mart)": """
        SELECT period_start AS month, direction, dimension_value AS port_code, segment, shipments, p90_hours
        FROM mart_clearance_statistics WHERE grain = 'month' AND dimension = 'port' ORDER BY ALL""",
    "one shipment's history": """
        SELECT e.event_at, e.event_code, e.source_kind, e.container_no, e.source_file, e.line_no
        FROM core_clearance_events AS e WHERE e.entry_id = $entry_id ORDER BY e.event_at, e.event_code""",
    "today's stalled list": """
        SELECT office_code, stage, alert_key, bill_no, hours_in_stage, threshold_hours, is_escalated, port_code
        FROM mart_stalled_shipments WHERE is_still_open ORDER BY office_code, hours_in_stage DESC""",
}


def state_of(warehouse: Path) -> Path:
    from clearance.config import settings

    with environment(warehouse, warehouse.parent):
        return settings().state_db


def dates(first: int, count: int) -> list[str]:
    return [(START + timedelta(days=first + i)).isoformat() for i in range(count)]


@contextmanager
def environment(warehouse: Path, inbox: Path):
    saved = dict(os.environ)
    os.environ.update(CLEARANCE_WAREHOUSE=str(warehouse), CLEARANCE_INBOX=str(inbox),
                      CLEARANCE_DASHBOARD=str(warehouse.parent / "dashboard.html"))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ----------------------------------------------------------------------------- steps (each in its own process)

def step_simulate(inbox: str, days: int, scale: float, seed: int) -> dict:
    from clearance_tools.simulator import simulate

    shutil.rmtree(inbox, ignore_errors=True)
    simulate(inbox, START, days, scale=scale, seed=seed, quirks=QUIRKS_WITHOUT_BAD_ROWS.split(","))
    rows = sum(entry["rows"] for manifest in Path(inbox).glob("*/MANIFEST.json")
               for entry in json.loads(manifest.read_text())["files"])
    return {"rows": rows}


def _ingest_unvalidated(args: tuple[str, str, str]) -> tuple[str, list[dict]]:
    """Ingest one delivery; rows that cannot be rows are marked as validation would mark them."""
    import polars as pl

    from clearance.ingest import delivery_folder, ingest_delivery
    from clearance.validation import mark_broken_rows

    inbox, day, work = args
    reports = ingest_delivery(delivery_folder(Path(inbox), day), day, Path(work) / day)
    for report in reports:
        mark_broken_rows(pl.read_parquet(report["parquet"])).write_parquet(report["parquet"])
    return day, reports


def step_load_history(warehouse: str, inbox: str, days: list[str]) -> dict:
    """The pipeline's ingest (two processes) and load, night by night, without the models."""
    from concurrent.futures import ProcessPoolExecutor

    from clearance.config import settings
    from clearance.loading import load_delivery
    from clearance.state import connect_state, ensure_schema, transaction

    with environment(Path(warehouse), Path(inbox)):
        s = settings()
        work = s.work_dir / "history"
        con = connect_state(s)
        ensure_schema(con)
        with ProcessPoolExecutor(2) as pool:
            for day, reports in pool.map(_ingest_unvalidated, [(inbox, d, str(work)) for d in days]):
                with transaction(con):
                    load_delivery(con, reports, day, s.quarantine_policy)
                shutil.rmtree(work / day)
        [(rows,)] = con.execute("SELECT sum(rows_loaded) FROM file_accounting").fetchall()
        con.execute("CHECKPOINT")
        con.close()
    return {"nights": len(days), "rows_loaded": rows}


def step_rebuild(warehouse: str, inbox: str, business_date: str) -> dict:
    """`make rebuild`'s work: the full rebuild, the first publish, then the dashboard and the analyst
    exports of every month (so the night after exports only its own months, as after `make rebuild`).

    Before the publish, the alerts of the history's last night: the history was loaded without its
    nights, so without them the measured night would be the first to alert every stalled shipment of
    the year, where a night in service alerts only what stalled since the night before."""
    from clearance import pipeline
    from clearance.config import settings
    from clearance.publish import publish
    from clearance.state import connect_state
    from clearance.warehouse import rebuild

    with environment(Path(warehouse), Path(inbox)):
        started = time.perf_counter()
        outcome = rebuild(settings(), business_date)
        rebuilt = time.perf_counter() - started
        alerts = pipeline.send_alerts(outcome["build_id"], business_date)
        alerted = time.perf_counter() - started - rebuilt
        publish(settings(), outcome["build_id"], business_date)
        published = time.perf_counter() - started - rebuilt - alerted
        pipeline.build_dashboard()
        pipeline.export_for_analysts(business_date)
        exported = time.perf_counter() - started - rebuilt - alerted - published
        con = connect_state(settings(), read_only=True)
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("core_shipments", "core_clearance_events", "mart_clearance_statistics")}
        con.close()
    return {"rebuild_s": rebuilt, "first_alerts_s": alerted, "first_alerts": alerts,
            "first_publish_s": published, "first_exports_s": exported,
            "model_s": outcome["model_seconds"], **counts}


def step_night(warehouse: str, inbox: str, business_date: str, part: str) -> dict:
    """One part of a night, in its own process as under Airflow: `delivery` (ingest, validation),
    `warehouse` (load and models, alerts, publish) or `after` (dashboard, analyst exports)."""
    from clearance import pipeline

    try:
        from clearance.executor import preload
    except ImportError:  # an older checkout (--compare-with): its deployment preloaded nothing
        def preload() -> None:
            pass
    # Under the deployment a task's process starts with Airflow and the pipeline's libraries imported
    # (clearance.executor): imported here before the part's clock starts, as there. Their memory counts.
    preload()

    with environment(Path(warehouse), Path(inbox)):
        from clearance.config import settings

        handed_over = settings().work_dir / f"{business_date}.reports.json"  # what XCom carries under Airflow
        times, started, out = {}, time.perf_counter(), {}

        def lap(name):
            nonlocal started
            now = time.perf_counter()
            times[name] = now - started
            started = now

        if part == "delivery":
            reports = pipeline.ingest(business_date)
            lap("ingest")
            reports = pipeline.validate(reports, business_date)
            lap("validate")
            handed_over.write_text(json.dumps(reports))
            out["rows"] = sum(r["rows_read"] for r in reports)
        elif part == "warehouse":
            reports = json.loads(handed_over.read_text())
            started = time.perf_counter()
            build_id = pipeline.build(reports, business_date)
            lap("load_and_models")
            out["alerts"] = pipeline.send_alerts(build_id, business_date)
            lap("alerts")
            pipeline.publish(build_id, business_date)
            lap("publish")
            handed_over.unlink()
        else:
            pipeline.build_dashboard()
            lap("dashboard")
            pipeline.export_for_analysts(business_date)
            lap("exports")
    return {**out, "times": times}


NIGHT_PARTS = {"delivery": "ingest and validation", "warehouse": "load and models, alerts, publish",
               "after": "after publishing: dashboard, exports"}
TO_PUBLISHED = ("ingest", "validate", "load_and_models", "alerts", "publish")


def run_night(env: dict, warehouse: Path, inbox: Path, business_date: str, checkout: Path | None = None) -> dict:
    parts = {part: run_step("night", env=env, checkout=checkout, warehouse=str(warehouse), inbox=str(inbox),
                            business_date=business_date, part=part) for part in NIGHT_PARTS}
    return {"rows": parts["delivery"]["rows"], "parts": parts,
            "times": {name: t for p in parts.values() for name, t in p["times"].items()}}


def step_scheduled_night(root: str, rebuilt: str, inbox: str, business_date: str, smtp_env: dict) -> dict:
    """The night in the local deployment (python -m clearance.deployment serve: scheduler, DAG
    processor, triggerer, API server), on a copy of the year's warehouse as its full rebuild left it:
    triggered as `make run` does, timed from the run's start to its publish_warehouse task's end,
    from Airflow's own records."""
    folder = Path(root)
    shutil.rmtree(folder, ignore_errors=True)
    warehouse = folder / "warehouse" / "clearance.duckdb"
    copy_warehouse(Path(rebuilt), warehouse.parent)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **smtp_env, "AIRFLOW_HOME": str(folder / "airflow"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW_PORT": str(port), "CLEARANCE_INBOX": inbox, "CLEARANCE_WAREHOUSE": str(warehouse),
           "CLEARANCE_DASHBOARD": str(folder / "dashboard.html"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "clearance.airflow_db.SQLITE_CONNECT_ARGS",
           # the deployment's own catch-up starts no night of the bench
           "CLEARANCE_CATCHUP_FROM": (date.today() + timedelta(days=30)).isoformat()}
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    log = open(folder / "deployment.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "clearance.deployment", "serve"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, cwd=PROJECT_DIR, start_new_session=True)
    try:
        until = time.monotonic() + 300
        while "Airflow is up" not in (folder / "deployment.log").read_text():
            if server.poll() is not None or time.monotonic() > until:
                raise RuntimeError("the deployment did not start: " + (folder / "deployment.log").read_text()[-3000:])
            time.sleep(1)
        triggered = subprocess.run([sys.executable, "-m", "clearance.run_dates", business_date], env=env,
                                   capture_output=True, text=True, cwd=PROJECT_DIR, timeout=1800)
        if triggered.returncode:
            raise RuntimeError(triggered.stdout[-3000:] + triggered.stderr[-3000:])
        probe = subprocess.run([sys.executable, "-c", RUN_TIMES], env=env, capture_output=True, text=True,
                               cwd=PROJECT_DIR, timeout=300)
        if probe.returncode:
            raise RuntimeError(probe.stderr[-3000:])
        run = json.loads(probe.stdout.strip().splitlines()[-1])
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    start = run["start"]
    to_published = run["tasks"]["publish_warehouse"]["end"] - start
    work = sum(t["end"] - t["start"] for name, t in run["tasks"].items() if t["end"] <= start + to_published + 1e-6)
    return {"state": run["state"], "run_s": run["end"] - start, "to_published_s": to_published, "task_work_s": work,
            "tasks": {name: t["end"] - t["start"] for name, t in sorted(run["tasks"].items(), key=lambda i: i[1]["start"])}}


# The run's times as Airflow recorded them (run in the deployment's environment: Airflow binds its
# database at import).
RUN_TIMES = """
import json
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from sqlalchemy import select
with create_session() as session:
    run = session.scalars(select(DagRun).where(DagRun.dag_id == "clearance_nightly", DagRun.run_id.like("hand__%"))
                          .order_by(DagRun.start_date.desc())).first()
    tasks = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == run.dag_id,
                                                       TaskInstance.run_id == run.run_id)).all()
    print(json.dumps({"state": str(run.state), "start": run.start_date.timestamp(), "end": run.end_date.timestamp(),
                      "tasks": {t.task_id: {"start": t.start_date.timestamp(), "end": t.end_date.timestamp()}
                                for t in tasks if t.start_date and t.end_date}}))
"""


def step_recover(warehouse: str, inbox: str, through: str, timeout_s: float) -> dict:
    """The catch-up of a first deployment: `python -m clearance.recover --through D` from an empty
    state on the bench's inbox (every delivery validated, accounted, loaded; then the models and the
    publish), as an operator runs it; stopped after timeout_s."""
    shutil.rmtree(Path(warehouse).parent, ignore_errors=True)
    Path(warehouse).parent.mkdir(parents=True)
    env = {**os.environ, "CLEARANCE_WAREHOUSE": warehouse, "CLEARANCE_INBOX": inbox,
           "CLEARANCE_DASHBOARD": str(Path(warehouse).parent / "dashboard.html")}
    started = time.perf_counter()
    # in its own process group: stopped at the timeout with its worker processes, which would
    # otherwise go on ingesting beside the bench's next steps (and skew them)
    recover = subprocess.Popen([sys.executable, "-m", "clearance.recover", "--through", through], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_DIR,
                               start_new_session=True)
    try:
        out, err = recover.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(recover.pid, signal.SIGKILL)
        recover.communicate()
        return {"finished": False, "seconds": time.perf_counter() - started}
    if recover.returncode:
        raise RuntimeError(out[-3000:] + err[-3000:])
    return {"finished": True, "seconds": time.perf_counter() - started}


def step_queries(warehouse: str, entry_id: str) -> dict:
    import duckdb

    out = {}
    con = duckdb.connect(warehouse, read_only=True)
    for name, sql in ANALYST_QUERIES.items():
        params = {"entry_id": entry_id} if "$entry_id" in sql else {}
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            result = con.execute(sql, params).fetchall()
            runs.append(time.perf_counter() - started)
        out[name] = {"first_s": runs[0], "median_s": sorted(runs)[2], "rows": len(result)}
    con.close()
    return out


def step_baseline(warehouse: str) -> dict:
    from clearance.config import settings
    from clearance.state import connect_state
    from clearance_tools.baseline import MILESTONES, SEGMENTS, compare, read_staged, shipments

    with environment(Path(warehouse), Path(warehouse).parent):
        con = connect_state(settings(), read_only=True)
        started = time.perf_counter()
        staged = read_staged(con)
        read_s = time.perf_counter() - started
        pipeline_rows = con.execute(f"SELECT entry_id, {', '.join(MILESTONES + SEGMENTS)} FROM core_shipments").df()
        con.close()
    started = time.perf_counter()
    result = shipments(staged)
    pandas_s = time.perf_counter() - started
    return {"read_s": read_s, "pandas_s": pandas_s, "events": sum(len(f) for f in staged.values()),
            "comparison": compare(result, pipeline_rows)}


def step_port_night(warehouse: str, inbox: str, business_date: str, port: str) -> dict:
    """A night of one port: the delivery cut down to that port's rows, validated, loaded, modelled."""
    from clearance import pipeline
    from clearance.config import settings
    from clearance_tools.port_delivery import write_port_delivery

    port_inbox = Path(warehouse).parent / f"inbox-{port}"
    with environment(Path(warehouse), port_inbox):
        rows = write_port_delivery(Path(inbox), port_inbox, business_date, port, settings().state_db)
        times, started = {}, time.perf_counter()
        reports = pipeline.validate(pipeline.ingest(business_date), business_date)
        times["ingest_and_validate"] = time.perf_counter() - started
        started = time.perf_counter()
        build_id = pipeline.build(reports, business_date)
        times["load_and_models"] = time.perf_counter() - started
        started = time.perf_counter()
        pipeline.publish(build_id, business_date)
        times["publish"] = time.perf_counter() - started
    shutil.rmtree(port_inbox)
    return {"rows": rows, "times": times}


STEPS = {f.__name__.removeprefix("step_"): f for f in (
    step_simulate, step_load_history, step_rebuild, step_night, step_scheduled_night, step_recover, step_queries,
    step_baseline, step_port_night)}


# ----------------------------------------------------------------------------- the driver

def run_step(name: str, env: dict | None = None, checkout: Path | None = None, **kwargs) -> dict:
    """Run a step in a new process; wall time of the step's own work, and the process's peak memory.

    With `checkout`, the step runs that checkout's pipeline (another clone or worktree of the project,
    in this environment; the steps are this file's): the figures before a change, measured in the same
    run on the same data.
    """
    command = [sys.executable, "-m", "clearance_tools.benchmark", "--step", name, "--args", json.dumps(kwargs)]
    environment = {**os.environ, **(env or {})}
    if checkout:
        environment["PYTHONPATH"] = str(checkout)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=checkout or PROJECT_DIR, env=environment)
    started = time.perf_counter()
    out, err = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode:
        sys.stderr.write(err[-5000:])
        raise SystemExit(f"benchmark step {name} failed")
    result = json.loads(out.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    result["peak_rss_mib"] = result.pop("_maxrss_kib") / 1024
    return result


# ----------------------------------------------------------------------------- caches

def fingerprint(*paths: Path, extra: str = "", base: Path = PROJECT_DIR) -> str:
    """A short hash of files (folders: every file in them) and a text: a cache is reused only while they are unchanged."""
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(base)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:12]


def _drop_other_versions(folder: Path, prefix: str, keep: Path) -> None:
    for other in folder.glob(prefix + "*"):
        if other != keep and not other.name.startswith(keep.name):
            shutil.rmtree(other) if other.is_dir() else other.unlink()


def cached_inbox(root: Path, scale: float, days: int, seed: int, fresh: bool) -> Path:
    """The simulated deliveries, simulated once for these arguments and this version of the simulator."""
    key = fingerprint(PROJECT_DIR / "tools" / "clearance_tools" / "simulator",
                      extra=f"{scale}/{days}/{seed}/{QUIRKS_WITHOUT_BAD_ROWS}")
    cache = root / "cache"
    inbox = cache / f"inbox-{key}"
    done = inbox / "SIMULATED.json"
    if fresh or not done.exists():
        cache.mkdir(parents=True, exist_ok=True)
        _drop_other_versions(cache, "inbox-", inbox)
        sim = run_step("simulate", inbox=str(inbox), days=days, scale=scale, seed=seed)
        done.write_text(json.dumps({"scale": scale, "days": days, "seed": seed, "rows": sim["rows"]}))
        row(f"simulate {days} days ({sim['rows'] / 1e6:.1f} M rows)", sim["process_wall_s"], sim["peak_rss_mib"])
    else:
        rows = json.loads(done.read_text())["rows"]
        print(f"  simulated before: {inbox} ({rows / 1e6:.1f} M rows; --fresh simulates again)", flush=True)
    return inbox


# What the loaded history depends on: the pipeline's ingest, load and state layout, and this loader.
LOADER_SOURCES = ("clearance/ingest.py", "clearance/loading.py", "clearance/contract.py", "clearance/validation.py",
                  "clearance/state.py", "transforms/landing", "transforms/state", "transforms/macros.sql")


def cached_history(root: Path, label: str, inbox: Path, days: list[str], fresh: bool) -> Path:
    """A state file holding the loaded rows of these deliveries (no models yet), loaded once and kept."""
    import inspect

    key = fingerprint(*(PROJECT_DIR / p for p in LOADER_SOURCES), extra=inbox.name + ",".join(days)
                      + inspect.getsource(step_load_history) + inspect.getsource(_ingest_unvalidated))
    cache = root / "cache"
    state = cache / f"history-{label}-{key}.duckdb"
    if fresh or not state.exists():
        _drop_other_versions(cache, f"history-{label}-", state)
        warehouse = cache / f"loading-{label}" / "clearance.duckdb"
        shutil.rmtree(warehouse.parent, ignore_errors=True)
        load = run_step("load_history", warehouse=str(warehouse), inbox=str(inbox), days=days)
        row(f"load {len(days)} deliveries (ingest + load, no models)", load["process_wall_s"],
            load["peak_rss_mib"], f"{load['rows_loaded'] / 1e6:.1f} M rows loaded")
        os.replace(state_of(warehouse), state)
        shutil.rmtree(warehouse.parent)
    else:
        print(f"  loaded before: {state} (--fresh loads again)", flush=True)
    return state


# What a full rebuild's result and its figures depend on, beside the loaded history: the whole
# pipeline (its code, SQL, suites, reference data, dashboard) and the locked library versions.
REBUILD_SOURCES = ("clearance", "transforms", "expectations", "dashboards", "uv.lock")


def rebuild_key(loaded_state: Path, checkout: Path | None) -> str:
    import inspect

    base = checkout or PROJECT_DIR
    return fingerprint(*(base / p for p in REBUILD_SOURCES), base=base,
                       extra=loaded_state.name + inspect.getsource(step_rebuild))


def cached_rebuild(marker: Path, key: str) -> dict | None:
    """The rebuild step's result kept beside its rebuilt warehouse, if that was rebuilt by this code from this history."""
    if not marker.exists():
        return None
    kept = json.loads(marker.read_text())
    return kept["result"] if kept["key"] == key else None


def copy_warehouse(source: Path, copy: Path) -> None:
    """A copy of a warehouse folder (state file, published file, exports) to run a night on: every
    night measured starts from the same state, never from one that already holds the night (a rerun
    of a night changes nothing and costs a fraction). The monthly Parquet files are hard links: they
    are written once and never changed (a night writes new ones)."""
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy, symlinks=True, copy_function=lambda src, dst: (
        os.link(src, dst) if Path(src).relative_to(source).parts[0] == "partitions" else shutil.copy2(src, dst)))
    # on disk before the night starts, as a real night's state is: else the night's first fsync (its
    # commit) writes out the whole fresh copy (on the year ~0.85 s of the night, on a month ~0.2 s)
    os.sync()


def fresh_copy(loaded_state: Path, warehouse: Path) -> None:
    """A new warehouse folder whose state file is a copy of the loaded history."""
    shutil.rmtree(warehouse.parent, ignore_errors=True)
    state = state_of(warehouse)
    state.parent.mkdir(parents=True)
    os.chmod(state.parent, 0o700)
    shutil.copyfile(loaded_state, state)
    os.sync()  # on disk before the rebuild is timed (see copy_warehouse)


# ----------------------------------------------------------------------------- the figures

class Figures:
    """The figures the issue sets targets for: printed at the end with their targets, the previous
    figures (docs/bench-figures.json, from the run in docs/bench-output.txt) and the ratio to them."""

    def __init__(self, previous: Path | None, run: dict) -> None:
        self.previous = json.loads(previous.read_text()) if previous and previous.exists() else {}
        self.previous_source = previous
        # figures of another scale or length of history are no previous figures of this run
        self.previous_run = self.previous.pop("_run", {"scale": 1.4, "days": 365})
        if self.previous_run != run:
            self.previous = {}
        self.run = run
        self.figures: dict[str, dict] = {}

    def add(self, key: str, label: str, value: float, unit: str, target: float | None = None,
            at_least: bool = False, failed: bool = False) -> None:
        """failed: the step did not get as far as the figure (a value at a timeout): the target is not met."""
        self.figures[key] = {"label": label, "value": value, "unit": unit, "target": target, "at_least": at_least,
                             "failed": failed}

    def report(self, out: Path) -> None:
        header_line = (f"  {'figure':<64} {'now':>8} {'target':>9} {'met':>4} {'previous':>9} {'ratio':>6}"
                       + ("  before  now/before" if any(k.startswith("before.") for k in self.figures) else ""))
        print(f"\nFigures and targets (issue #14); previous: {self.previous_source} ({self.previous_run})"
              + ("" if self.previous else ": another scale or history, not compared") + f"\n{header_line}")
        for key, f in self.figures.items():
            if key.startswith("before."):
                continue
            value, target = f["value"], f["target"]
            met = "" if target is None else ("yes" if not f["failed"] and (
                value >= target if f["at_least"] else value <= target) else "NO")
            shown_target = "" if target is None else f"{'>=' if f['at_least'] else '<='}{target:g}{f['unit']}"
            old = self.previous.get(key)
            line = (f"  {f['label']:<64} {value:7.2f}{f['unit']:<1} {shown_target:>9} {met:>4} "
                    f"{'' if old is None else f'{old:8.2f}':>9} {'' if not old else f'{value / old:5.2f}':>6}")
            before = self.figures.get("before." + key)
            if before:
                line += f"  {before['value']:7.2f} {value / before['value'] if before['value'] else 0:8.2f}"
            print(line)
        out.write_text(json.dumps({"_run": self.run, **{k: f["value"] for k, f in self.figures.items()}}, indent=1) + "\n")
        print(f"  (these figures as JSON: {out}; copy it to docs/bench-figures.json with the output)", flush=True)


def row(label: str, seconds: float, mib: float | None = None, note: str = "") -> None:
    memory = f"{mib:9.0f}" if mib is not None else " " * 9
    print(f"  {label:<58} {seconds:9.2f} {memory}   {note}", flush=True)


def header(title: str) -> None:
    print(f"\n{title}\n  {'step':<58} {'wall s':>9} {'peak MiB':>9}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clearance_tools.benchmark", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=PROJECT_DIR / "warehouse" / "bench")
    ap.add_argument("--scale", type=float, default=1.4, help="simulator scale; 1.4 gives ~20 million rows a year")
    ap.add_argument("--days", type=int, default=365, help="days of history (the measured night is the day after)")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--fresh", action="store_true",
                    help="simulate, load and rebuild the histories again, not from the cache")
    ap.add_argument("--rebuild", action="store_true",
                    help="rebuild the histories again even where this code rebuilt them before (~7 minutes more)")
    ap.add_argument("--full", action="store_true",
                    help="everything measured in this run: --rebuild, each night best of 2, the catch-up to its "
                         "end (up to 15 minutes), and each port's share of the night")
    ap.add_argument("--nights", type=int, default=None,
                    help="runs of each measured night, the fastest kept (default 1; 2 with --full)")
    ap.add_argument("--previous", type=Path, default=PROJECT_DIR / "docs" / "bench-figures.json",
                    help="the previous run's figures, to print the ratio to them")
    ap.add_argument("--compare-with", metavar="CHECKOUT",
                    help="another checkout of the project (e.g. main): its rebuild and nights on the same data, "
                         "printed beside this one's")
    ap.add_argument("--recover-timeout", type=float, default=None,
                    help="stop the catch-up (python -m clearance.recover) after this many seconds (default 180, "
                         "its target: past it the target is not met; 900 with --full)")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--args", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:  # inside a step's process
        import resource

        result = STEPS[args.step](**json.loads(args.args))
        # the step's own process, or the largest of the worker processes it started
        result["_maxrss_kib"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        print(json.dumps(result, default=str))
        return 0
    if args.full:
        args.rebuild = True
    args.nights = args.nights or (2 if args.full else 1)
    args.recover_timeout = args.recover_timeout or (900 if args.full else 180)
    return run_benchmark(args)


def run_benchmark(args: argparse.Namespace) -> int:
    from clearance_tools.mailsink import start as start_mailsink

    root, scale, days, seed, full = args.dir.resolve(), args.scale, args.days, args.seed, args.full
    wall_started = time.perf_counter()
    history = dates(0, days)
    night = dates(days, 1)[0]
    month = history[-31:]
    cores = os.cpu_count()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"Benchmark: {days} days of Liaoning at scale {scale}, then the night {night}; "
          f"{cores} cores, {memory_gib:.0f} GiB; in {root}" + ("; full run" if full else ""))
    root.mkdir(parents=True, exist_ok=True)
    figures = Figures(args.previous, {"scale": scale, "days": days})
    before = Path(args.compare_with).resolve() if args.compare_with else None

    header("Simulated exports (cached by arguments and simulator version)")
    inbox = cached_inbox(root, scale, days + 1, seed, fresh=args.fresh)

    with socket.socket() as probe:  # a free port on the loopback for the SMTP server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink, _ = start_mailsink(root / "mail", port)
    smtp_env = {"AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "bench@localhost", "retry_limit": 0}})}
    results = {}
    try:
        for label, loaded in (("month", month), ("year", history)):
            header(f"History of {len(loaded)} days ({loaded[0]} .. {loaded[-1]})")
            loaded_state = cached_history(root, label, inbox, loaded, fresh=args.fresh)
            runs = {"after": None}
            if before:
                runs = {"before": before, "after": None}
            for which, checkout in runs.items():
                warehouse = root / (label if which == "after" else f"{label}-before") / "clearance.duckdb"
                # the warehouse as the rebuild left it: each night below, the scheduler's and the ports' start from it
                rebuilt = root / f"{label}-{which}-rebuilt"
                marker = rebuilt.with_name(rebuilt.name + ".json")
                key = rebuild_key(loaded_state, checkout)
                rebuild = None if args.fresh or args.rebuild else cached_rebuild(marker, key)
                tag = " (before)" if which == "before" else ""
                if rebuild is None:
                    marker.unlink(missing_ok=True)
                    fresh_copy(loaded_state, warehouse)
                    rebuild = run_step("rebuild", env=smtp_env, checkout=checkout, warehouse=str(warehouse),
                                       inbox=str(inbox), business_date=loaded[-1])
                    rebuild["measured"] = f"this run, {time.strftime('%Y-%m-%d %H:%M')}"
                    copy_warehouse(warehouse.parent, rebuilt)
                    marker.write_text(json.dumps({"key": key, "result": rebuild}, default=str))
                else:
                    rebuild["measured"] = f"an earlier run, {rebuild['measured'].split(', ')[-1]}"
                    print(f"  rebuilt before: {rebuilt} by this code from this history; the rebuild's figures "
                          f"below are those of {rebuild['measured']} (--rebuild measures it again)", flush=True)
                rebuilt_tag = tag + ("" if rebuild["measured"].startswith("this run") else " [earlier run]")
                row(f"full rebuild{rebuilt_tag}: staging, core, marts from all loaded rows", rebuild["rebuild_s"],
                    rebuild["peak_rss_mib"], f"{rebuild['core_shipments'] / 1e6:.2f} M shipments, "
                    f"{rebuild['core_clearance_events'] / 1e6:.1f} M events")
                row(f"alerts of {loaded[-1]}{rebuilt_tag}: the history's stalled shipments", rebuild["first_alerts_s"],
                    None, f"{rebuild['first_alerts']['alerts_sent']} alerts in {rebuild['first_alerts']['sent']} digests")
                row(f"first publish{rebuilt_tag}: every monthly Parquet file", rebuild["first_publish_s"])
                row(f"first dashboard and analyst exports{rebuilt_tag}: every month", rebuild["first_exports_s"])
                nights = []
                for _ in range(args.nights):
                    copy_warehouse(rebuilt, warehouse.parent)
                    nights.append(run_night(smtp_env, warehouse, inbox, night, checkout))
                best = min(nights, key=lambda n: sum(n["times"][s] for s in TO_PUBLISHED))
                results[(label, which)] = {"rebuild": rebuild, "night": best, "warehouse": warehouse,
                                           "rebuilt": rebuilt}
                for part, title in NIGHT_PARTS.items():
                    times = best["parts"][part]["times"]
                    row(f"night {night}{tag}: {title}", sum(times.values()), best["parts"][part]["peak_rss_mib"],
                        ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
                row(f"night {night}{tag}: delivery to published warehouse ({best['rows']} rows)",
                    sum(best["times"][s] for s in TO_PUBLISHED), None,
                    f"best of {args.nights}" if args.nights > 1 else "one run")

        for which in (["before"] if before else []) + ["after"]:
            year, short = results[("year", which)], results[("month", which)]
            prefix = "before." if which == "before" else ""
            rebuild = year["rebuild"]
            earlier = "" if rebuild["measured"].startswith("this run") else " [earlier run]"
            figures.add(prefix + "rebuild_year_s", "full rebuild of the year from loaded rows" + earlier,
                        rebuild["rebuild_s"], "s", 20)
            figures.add(prefix + "rebuild_year_peak_gib", "full rebuild of the year: peak memory" + earlier,
                        rebuild["peak_rss_mib"] / 1024, "GiB", 3)
            times = year["night"]["times"]
            for step in TO_PUBLISHED:
                figures.add(f"{prefix}night_year_{step}_s", f"night on the year: {step}", times[step], "s")
            figures.add(prefix + "night_year_warehouse_tasks_s", "night on the year: load and models + alerts + publish",
                        sum(times[s] for s in ("load_and_models", "alerts", "publish")), "s")
            figures.add(prefix + "night_year_to_published_s", "night on the year: task work, delivery to published",
                        sum(times[s] for s in TO_PUBLISHED), "s", 6)
            figures.add(prefix + "night_year_task_peak_gib", "night on the year: largest task's peak memory",
                        max(p["peak_rss_mib"] for p in year["night"]["parts"].values()) / 1024, "GiB", 1.5)
            long, brief = year["night"]["times"], short["night"]["times"]
            figures.add(prefix + "ratio_load_and_models", "load and models, year / month",
                        long["load_and_models"] / brief["load_and_models"], "x", 1.2)
            total = lambda t: sum(t[s] for s in TO_PUBLISHED)  # noqa: E731
            figures.add(prefix + "ratio_to_published", "delivery to published, year / month", total(long) / total(brief),
                        "x", 1.1)
            figures.add(prefix + "night_year_exports_s", "night on the year: analyst exports (after publishing)",
                        long["exports"], "s")
            figures.add(prefix + "night_year_dashboard_s", "night on the year: dashboard (after publishing)",
                        long["dashboard"], "s")

        header(f"Nightly cost: the same night on {len(history)} days of history against {len(month)} days")
        brief, long = results[("month", "after")]["night"]["times"], results[("year", "after")]["night"]["times"]
        for step in brief:
            print(f"  {step:<22} {brief[step]:8.2f} s  {long[step]:8.2f} s  ratio {long[step] / max(brief[step], 1e-9):5.2f}")
        total = lambda t: sum(t[s] for s in TO_PUBLISHED)  # noqa: E731
        print(f"  {'to published':<22} {total(brief):8.2f} s  {total(long):8.2f} s  ratio {total(long) / total(brief):5.2f}")

        year = results[("year", "after")]["warehouse"]
        header("The night on the year under the running scheduler (python -m clearance.deployment serve, SQLite)")
        for which, checkout in ([("before", before)] if before else []) + [("after", None)]:
            scheduled = run_step("scheduled_night", checkout=checkout, root=str(root / f"scheduler-{which}"),
                                 rebuilt=str(results[("year", which)]["rebuilt"]), inbox=str(inbox),
                                 business_date=night, smtp_env=smtp_env)
            tag = " (before)" if which == "before" else ""
            row(f"run{tag}: triggered to published warehouse", scheduled["to_published_s"], None,
                f"run ended after {scheduled['run_s']:.1f} s; {scheduled['state']}")
            row(f"run{tag}: task work (sum of the tasks' durations to published)", scheduled["task_work_s"], None,
                ", ".join(f"{k} {v:.1f}" for k, v in scheduled["tasks"].items()))
            row(f"run{tag}: waiting between the tasks (to published)",
                scheduled["to_published_s"] - scheduled["task_work_s"], None)
            prefix = "before." if which == "before" else ""
            figures.add(prefix + "scheduler_to_published_s", "night on the year under the scheduler: triggered to published",
                        scheduled["to_published_s"], "s", 15)
            figures.add(prefix + "scheduler_between_tasks_s", "under the scheduler: time between the tasks (to published)",
                        scheduled["to_published_s"] - scheduled["task_work_s"], "s")

        import duckdb

        with duckdb.connect(str(year), read_only=True) as con:
            [(entry_id,)] = con.execute("SELECT entry_id FROM core_shipments ORDER BY declared_at, entry_id LIMIT 1 "
                                        "OFFSET (SELECT count(*) // 2 FROM core_shipments)").fetchall()
        header("Analyst queries on the year's published warehouse (5 runs each; target 0.5 s)")
        queries = run_step("queries", warehouse=str(year), entry_id=entry_id)
        for name, q in queries.items():
            if isinstance(q, dict):
                row(f"{name}", q["median_s"], None, f"first run {q['first_s']:.3f} s, {q['rows']} rows")
        row("the queries' process", queries["process_wall_s"], queries["peak_rss_mib"])
        figures.add("queries_slowest_s", "analyst queries on the year: the slowest (median of 5)",
                    max(q["median_s"] for q in queries.values() if isinstance(q, dict)), "s", 0.5)

        header(f"Catching up {len(history)} deliveries from an empty state (python -m clearance.recover)")
        catch_up = run_step("recover", warehouse=str(root / "recover" / "clearance.duckdb"), inbox=str(inbox),
                            through=history[-1], timeout_s=args.recover_timeout)
        row(f"recover --through {history[-1]}: to the published warehouse", catch_up["seconds"],
            catch_up["peak_rss_mib"], "" if catch_up["finished"] else f"stopped: not done after {args.recover_timeout:.0f} s")
        figures.add("catch_up_year_s", "catching up the year from an empty state (recover)"
                    + ("" if catch_up["finished"] else ": NOT FINISHED, time at the stop"), catch_up["seconds"], "s", 180,
                    failed=not catch_up["finished"])
        shutil.rmtree(root / "recover", ignore_errors=True)

        header("Baseline: milestones and segments with pandas groupby over the same staged events")
        base = run_step("baseline", warehouse=str(year))
        model_s = results[("year", "after")]["rebuild"]["model_s"]
        # The baseline starts from the staged events (bill numbers normalised, times typed: the stg_
        # tables), so the same work is the core models that compute milestones and segments from them.
        # Staging (the landing rows to those events) is the pipeline's alone: shown, and in a second ratio.
        staging_s = sum(model_s[m] for m in model_s if m.startswith("stg_"))
        same_work = sum(model_s[m] for m in (
            "core_manifest_lines", "core_vessel_calls", "core_bill_cargo", "core_declaration_status",
            "core_declarations", "core_shipments"))
        measured = results[("year", "after")]["rebuild"]["measured"]
        row(f"pandas: read {base['events'] / 1e6:.1f} M staged events into DataFrames", base["read_s"])
        row("pandas: groupby to milestones and segments", base["pandas_s"], base["peak_rss_mib"])
        row("pipeline: the same tables from the staged events (core_manifest_lines to core_shipments)", same_work,
            None, f"measured in {measured}")
        row("pipeline: staging, the loaded rows to the staged events (not in the baseline)", staging_s, None,
            f"measured in {measured}")
        cmp = base["comparison"]
        print(f"  results equal: {cmp['equal']} ({cmp['shipments']} shipments; differences: {cmp['differences'] or 'none'})")
        earlier = "" if measured.startswith("this run") else " [pipeline: earlier run]"
        figures.add("baseline_pandas_over_core_models", "from the staged events, pandas groupby / the core models"
                    + earlier, base["pandas_s"] / same_work, "x", 3, at_least=True)
        # the figure as published before 2026-12-02, the pipeline's staging counted in its time
        figures.add("baseline_pandas_over_pipeline", "the same, the pipeline's staging counted too"
                    + earlier, base["pandas_s"] / (same_work + staging_s), "x")
        figures.add("baseline_results_equal", "pandas baseline equal to core_shipments, shipment by shipment",
                    1.0 if cmp["equal"] else 0.0, "", 1, at_least=True)

        if full:
            header(f"One port's share of the night {night}, on {len(history)} days of history (best of 2)")
            port_nights(root, results[("year", "after")]["rebuilt"], inbox, night, len(history))
    finally:
        sink.stop()

    figures.add("bench_minutes", "make bench itself", (time.perf_counter() - wall_started) / 60, "min", 10)
    figures.report(root / "bench-figures.json")
    return 0


def port_nights(root: Path, rebuilt: Path, inbox: Path, night: str, days: int) -> None:
    import duckdb

    with duckdb.connect(str(rebuilt / "clearance.duckdb"), read_only=True) as con:
        ports = [p for (p,) in con.execute("SELECT port_code FROM ref_ports ORDER BY port_code").fetchall()]
    for port in ports:
        copy = root / f"port-{port}" / "clearance.duckdb"

        def night_of_the_port() -> dict:
            copy_warehouse(rebuilt, copy.parent)  # the year as rebuilt, before the night
            return run_step("port_night", warehouse=str(copy), inbox=str(inbox), business_date=night, port=port)

        p = min((night_of_the_port() for _ in range(2)), key=lambda r: sum(r["times"].values()))
        row(f"{port}: {p['rows']} rows", sum(p["times"].values()), p["peak_rss_mib"],
            ", ".join(f"{k} {v:.2f} s" for k, v in p["times"].items()))
        shutil.rmtree(copy.parent)


if __name__ == "__main__":
    raise SystemExit(main())
