"""`make bench`: a year of Liaoning through the pipeline, every step timed, with its peak memory.

    python -m clearance_tools.benchmark [--dir warehouse/bench] [--scale 1.4] [--days 365]

1. The simulator writes a year of deliveries (at --scale 1.4: ~20 million rows) and one more night.
2. Two histories are loaded through the pipeline's own ingest and load: the last month, and the
   whole year. The simulated history has no bad rows (the simulator's bad_rows quirk is off), so
   Great Expectations, timed on the measured nights, is skipped for it: it would quarantine nothing.
3. Full rebuild of each history: every staging, core and mart table from all loaded rows, then the
   first publish (every monthly Parquet file written).
4. The same next night on top of each history: ingest, validation, load and models, alerts (to a
   local SMTP server), publish, then the dashboard and analyst exports; run twice, best kept.
   The ratio of the two shows whether a night costs what the night brings or what the year holds.
5. Analyst queries on the year's published warehouse, as an analyst would run them.
6. Baseline: shipment milestones and segments with pandas groupby over the same staged events,
   compared shipment by shipment with the pipeline's core_shipments, and the time ratio.
7. Cost per port of a night (validation, load and models on that port's share of the delivery).

Every step runs in its own process; its peak memory is that process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    from clearance.config import settings
    from clearance.publish import publish
    from clearance.state import connect_state
    from clearance.warehouse import rebuild

    with environment(Path(warehouse), Path(inbox)):
        started = time.perf_counter()
        outcome = rebuild(settings(), business_date)
        rebuilt = time.perf_counter() - started
        publish(settings(), outcome["build_id"], business_date)
        published = time.perf_counter() - started - rebuilt
        con = connect_state(settings(), read_only=True)
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("core_shipments", "core_clearance_events", "mart_clearance_statistics")}
        con.close()
    return {"rebuild_s": rebuilt, "first_publish_s": published, "model_s": outcome["model_seconds"], **counts}


def step_night(warehouse: str, inbox: str, business_date: str, part: str) -> dict:
    """One part of a night, in its own process as under Airflow: `delivery` (ingest, validation),
    `warehouse` (load and models, alerts, publish) or `after` (dashboard, analyst exports)."""
    from clearance import pipeline

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


def run_night(env: dict, warehouse: Path, inbox: Path, business_date: str) -> dict:
    parts = {part: run_step("night", env=env, warehouse=str(warehouse), inbox=str(inbox),
                            business_date=business_date, part=part) for part in NIGHT_PARTS}
    return {"rows": parts["delivery"]["rows"], "parts": parts,
            "times": {name: t for p in parts.values() for name, t in p["times"].items()}}


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
    step_simulate, step_load_history, step_rebuild, step_night, step_queries, step_baseline, step_port_night)}


# ----------------------------------------------------------------------------- the driver

def run_step(name: str, env: dict | None = None, **kwargs) -> dict:
    """Run a step in a new process; wall time of the step's own work, and the process's peak memory."""
    command = [sys.executable, "-m", "clearance_tools.benchmark", "--step", name, "--args", json.dumps(kwargs)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=PROJECT_DIR, env={**os.environ, **(env or {})})
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
    return run_benchmark(args.dir.resolve(), args.scale, args.days, args.seed)


def run_benchmark(root: Path, scale: float, days: int, seed: int) -> int:
    from clearance_tools.mailsink import start as start_mailsink

    inbox = root / "inbox"
    history = dates(0, days)
    night = dates(days, 1)[0]
    month = history[-31:]
    cores = os.cpu_count()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"Benchmark: {days} days of Liaoning at scale {scale}, then the night {night}; "
          f"{cores} cores, {memory_gib:.0f} GiB; in {root}")
    root.mkdir(parents=True, exist_ok=True)

    header("Simulated exports")
    sim = run_step("simulate", inbox=str(inbox), days=days + 1, scale=scale, seed=seed)
    row(f"simulate {days + 1} days ({sim['rows'] / 1e6:.1f} M rows)", sim["process_wall_s"], sim["peak_rss_mib"])

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
            warehouse = root / label / "clearance.duckdb"
            shutil.rmtree(warehouse.parent, ignore_errors=True)
            header(f"History of {len(loaded)} days ({loaded[0]} .. {loaded[-1]})")
            load = run_step("load_history", warehouse=str(warehouse), inbox=str(inbox), days=loaded)
            row(f"load {len(loaded)} deliveries (ingest + load, no models)", load["process_wall_s"],
                load["peak_rss_mib"], f"{load['rows_loaded'] / 1e6:.1f} M rows loaded")
            rebuild = run_step("rebuild", warehouse=str(warehouse), inbox=str(inbox), business_date=loaded[-1])
            row("full rebuild: staging, core, marts from all loaded rows", rebuild["rebuild_s"], rebuild["peak_rss_mib"],
                f"{rebuild['core_shipments'] / 1e6:.2f} M shipments, {rebuild['core_clearance_events'] / 1e6:.1f} M events")
            row("first publish: every monthly Parquet file", rebuild["first_publish_s"])
            base_state = root / f"{label}-before-the-night_state.duckdb"
            shutil.copyfile(state_of(warehouse), base_state)  # for the nights of one port, below
            nights = [run_night(smtp_env, warehouse, inbox, night) for _ in range(2)]
            best = min(nights, key=lambda n: sum(n["times"][s] for s in TO_PUBLISHED))
            results[label] = {"load": load, "rebuild": rebuild, "night": best, "warehouse": warehouse}
            for part, title in NIGHT_PARTS.items():
                times = best["parts"][part]["times"]
                row(f"night {night}: {title}", sum(times.values()), best["parts"][part]["peak_rss_mib"],
                    ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
            row(f"night {night}: delivery to published warehouse ({best['rows']} rows)",
                sum(best["times"][s] for s in TO_PUBLISHED), None, "target 20 s")

        header(f"Nightly cost: the same night on {len(history)} days of history against {len(month)} days")
        short, long = results["month"]["night"]["times"], results["year"]["night"]["times"]
        for step in short:
            print(f"  {step:<22} {short[step]:8.2f} s  {long[step]:8.2f} s  ratio {long[step] / max(short[step], 1e-9):5.2f}")
        total = lambda t: sum(t[s] for s in TO_PUBLISHED)  # noqa: E731
        print(f"  {'to published':<22} {total(short):8.2f} s  {total(long):8.2f} s  ratio {total(long) / total(short):5.2f}"
              "   (should stay near 1)")

        year = results["year"]["warehouse"]
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

        header("Baseline: milestones and segments with pandas groupby over the same staged events")
        base = run_step("baseline", warehouse=str(year))
        model_s = results["year"]["rebuild"]["model_s"]
        same_work = sum(model_s[m] for m in model_s if m.startswith("stg_") or m in (
            "core_manifest_lines", "core_vessel_calls", "core_bill_cargo", "core_declaration_status",
            "core_declarations", "core_shipments"))
        row(f"pandas: read {base['events'] / 1e6:.1f} M staged events into DataFrames", base["read_s"])
        row("pandas: groupby to milestones and segments", base["pandas_s"], base["peak_rss_mib"])
        row("pipeline: the same tables in the full rebuild (staging to core_shipments)", same_work)
        print(f"  time ratio pandas / pipeline, both from scratch: {base['pandas_s'] / same_work:.2f}"
              " (pandas without reading the events; the pipeline's time includes writing its tables)")
        nightly = results["year"]["night"]["times"]["load_and_models"]
        print(f"  time ratio pandas from scratch / the pipeline's night (load and every model, incremental): "
              f"{(base['read_s'] + base['pandas_s']) / nightly:.1f}")
        cmp = base["comparison"]
        print(f"  results equal: {cmp['equal']} ({cmp['shipments']} shipments; differences: {cmp['differences'] or 'none'})")

        header(f"One port's share of the night {night}, on {len(history)} days of history (best of 2)")
        with duckdb.connect(str(year), read_only=True) as con:
            ports = [p for (p,) in con.execute("SELECT port_code FROM ref_ports ORDER BY port_code").fetchall()]
        for port in ports:
            # a copy of the year's state from before the night, and hard links to the year's Parquet
            # files (never changed; the port's night writes new ones)
            copy = root / f"port-{port}" / "clearance.duckdb"
            shutil.rmtree(copy.parent, ignore_errors=True)
            state_of(copy).parent.mkdir(parents=True)
            shutil.copyfile(root / "year-before-the-night_state.duckdb", state_of(copy))
            shutil.copytree(year.parent / "partitions", copy.parent / "partitions", copy_function=os.link)
            p = min((run_step("port_night", warehouse=str(copy), inbox=str(inbox), business_date=night, port=port)
                     for _ in range(2)), key=lambda r: sum(r["times"].values()))
            row(f"{port}: {p['rows']} rows", sum(p["times"].values()), p["peak_rss_mib"],
                ", ".join(f"{k} {v:.2f} s" for k, v in p["times"].items()))
            shutil.rmtree(copy.parent)
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
