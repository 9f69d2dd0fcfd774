"""Catch up from an empty state, or rebuild a lost one, from the deliveries kept in the inbox, then publish.

    python -m clearance.recover [--through YYYY-MM-DD]          (make recover [THROUGH=YYYY-MM-DD])

Two cases, one command. A first deployment (or a disaster recovery without a published warehouse)
takes in the history in the inbox up to `--through`. A lost state: the state file
(`_state/<warehouse>_state.duckdb`) is the only store of the loaded rows, and when it is lost,
damaged, or was written by another version of the pipeline, the nights refuse to run (a night on an
empty state would publish only its own delivery) and name this command.

Every delivery in the inbox up to the published warehouse's business date (or `--through`) is read,
validated and loaded again with the same accounting and the same quarantine as its night: a delivery
its night refused (a file-level fault, too many bad rows) is refused again and left out, as it was
then. It is done in bulk, not night by night: the deliveries are read in parallel, validated a month
at a time (one Great Expectations run per file kind; every rule judges a row by itself, its file and
its export date, so the outcome is a night's), and loaded a month at a time in export-date order
(a row's lineage is its first sighting, whatever order it was loaded in). From the published warehouse
come what no delivery holds: the alert state (so no alert is sent twice) and the quarantined rows of
deliveries since replaced. Then every model is built once for the business date's cut-off and the
warehouse is published once. The state file it replaces, if any, is kept beside the new one as
`<name>.replaced-<time>`. Stop the scheduler meanwhile.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime
from pathlib import Path

import duckdb

from clearance.config import Settings, settings
from clearance.contract import MANIFEST_NAME
from clearance.ingest import DeliveryError, delivery_folder, ingest_delivery
from clearance.publish import publish, sql_literal
from clearance.loading import AccountingError, load_deliveries, quarantine_breaches
from clearance.models import run_models
from clearance.state import (StateInUseError, connect_state, duckdb_config, initialise, private_folder,
                             published_business_date, transaction)

log = logging.getLogger(__name__)

# Kept from run to run in the state, copied into every published warehouse, held by no delivery.
RESTORED_FROM_PUBLISHED = ("alert_log", "alert_digests")

# Deliveries validated in one Great Expectations run per kind and loaded in one transaction: a month
# (about 1.7 million rows at Liaoning's volume) keeps the rows in memory well within a task's share.
DELIVERIES_AT_A_TIME = 31


def delivered_dates(inbox: Path, through: str) -> list[str]:
    """Export dates of the complete deliveries in the inbox (MANIFEST.json written), oldest first."""
    dates = []
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir()) if inbox.is_dir() else []:
        try:
            day = date.fromisoformat(folder.name).isoformat()
        except ValueError:
            continue
        if day <= through and (folder / MANIFEST_NAME).exists():
            dates.append(day)
    return dates


def _make_sure_no_run_holds_the_state(s: Settings) -> None:
    if s.state_db.exists():
        try:
            duckdb.connect(str(s.state_db)).close()
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StateInUseError(f"{s.state_db} is in use by a run of the pipeline: stop it first ({exc})") from exc
        except duckdb.Error:
            pass  # damaged: that is why we are here


def _die_with_the_catch_up(catch_up: int) -> None:
    """A reading worker's start: it ends when the catch-up's process does, also when that is killed
    with SIGKILL, which no cleanup sees (Ctrl-C reaches the whole process group anyway). Without it
    the workers wait on their queue for ever, reading ahead."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: Linux
    except (OSError, AttributeError):  # elsewhere a killed catch-up's workers stay: stop them by hand
        return
    if os.getppid() != catch_up:  # the catch-up died before the signal was set
        os._exit(1)


def _read_delivery(inbox: str, day: str, work: str) -> tuple[list[dict] | None, str | None]:
    """Ingest one delivery (in a worker process): its files, or why its night refused it."""
    try:
        return ingest_delivery(delivery_folder(Path(inbox), day), day, Path(work)), None
    except DeliveryError as exc:  # its own constructor does not survive pickling: the message travels
        return None, str(exc)


def _deliveries_as_read(s: Settings, days: list[str], scratch: Path):
    """(export date, files, refusal) of every delivery in date order, read by one process per core while
    the caller validates and loads; at most two months are read ahead (their Parquet files wait on disk)."""
    context = multiprocessing.get_context("spawn")  # DuckDB's and polars' threads do not survive a fork
    # (the workers are started from this thread, which lives as long as the process: the parent-death
    # signal is the thread's)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=context,
                             initializer=_die_with_the_catch_up, initargs=(os.getpid(),)) as pool:
        pending = deque()
        upcoming = iter(days)
        for day in upcoming:
            pending.append((day, pool.submit(_read_delivery, str(s.inbox), day, str(scratch / day))))
            if len(pending) >= 2 * DELIVERIES_AT_A_TIME:
                break
        while pending:
            day, future = pending.popleft()
            following = next(upcoming, None)
            if following is not None:
                pending.append((following, pool.submit(_read_delivery, str(s.inbox), following, str(scratch / following))))
            yield day, *future.result()


def _validate(validator, deliveries: dict[str, list[dict]], refused: dict[str, str]) -> None:
    """Validate the deliveries together; when that raises, one by one, so the refusal falls on the
    delivery whose night refused it."""
    from clearance.validation import validate_deliveries

    try:
        validate_deliveries(validator, deliveries, f"catch-up {min(deliveries)}..{max(deliveries)}")
        return
    except DeliveryError:
        pass
    for day in sorted(deliveries):
        try:
            validate_deliveries(validator, {day: deliveries[day]}, f"catch-up {day}")
        except DeliveryError as exc:
            refused[day] = str(exc)
            del deliveries[day]


def _load(con: duckdb.DuckDBPyConnection, s: Settings, deliveries: dict[str, list[dict]],
          refused: dict[str, str]) -> list[str]:
    """Load the validated deliveries in one transaction, those their nights refused for bad rows left out."""
    for day in sorted(deliveries):
        breaches = quarantine_breaches(deliveries[day], s.quarantine_policy)
        if breaches:
            refused[day] = str(AccountingError("; ".join(breaches)))
            del deliveries[day]
    if not deliveries:
        return []
    try:
        with transaction(con):
            load_deliveries(con, deliveries, s.quarantine_policy)
        return sorted(deliveries)
    except AccountingError:  # rows that do not add up: find the delivery, as its night found it
        loaded = []
        for day in sorted(deliveries):
            try:
                with transaction(con):
                    load_deliveries(con, {day: deliveries[day]}, s.quarantine_policy)
                loaded.append(day)
            except AccountingError as exc:
                refused[day] = str(exc)
        return loaded


def replay(con: duckdb.DuckDBPyConnection, s: Settings, days: list[str], scratch: Path) -> dict:
    """Take in every delivery again as its night did, a month at a time; returns the dates loaded and
    those refused."""
    from clearance.validation import DeliveryValidator

    outcome = {"loaded": [], "refused": {}}
    refused = outcome["refused"]
    # a scratch Great Expectations project: the nights' results and Data Docs stay as they are
    validator = DeliveryValidator(scratch / "gx", None)
    started, batch = time.perf_counter(), {}

    def take_in(deliveries: dict[str, list[dict]]) -> None:
        if not deliveries:
            return
        days_read, waited = sorted(deliveries), time.perf_counter()
        _validate(validator, deliveries, refused)
        validated = time.perf_counter()
        outcome["loaded"] += _load(con, s, deliveries, refused)
        log.info("deliveries %s..%s taken in (validated in %.1f s, loaded in %.1f s): %d loaded, %d refused so far, "
                 "%.0f s since the start", days_read[0], days_read[-1], validated - waited, time.perf_counter() - validated,
                 len(outcome["loaded"]), len(refused), time.perf_counter() - started)
        for day in days_read:
            shutil.rmtree(scratch / day, ignore_errors=True)

    for day, reports, refusal in _deliveries_as_read(s, days, scratch):
        if refusal is not None:
            refused[day] = refusal
            shutil.rmtree(scratch / day, ignore_errors=True)
        else:
            batch[day] = reports
        if len(batch) == DELIVERIES_AT_A_TIME:
            take_in(batch)
            batch = {}
    take_in(batch)
    for day, reason in sorted(refused.items()):
        log.warning("delivery %s refused, as its night refused it: %s", day, reason)
    outcome["refused"] = dict(sorted(refused.items()))
    return outcome


def restore_from_published(con: duckdb.DuckDBPyConnection) -> dict:
    """The alert state, and quarantined rows no delivery in the inbox holds any more (the published
    warehouse is attached as `published`)."""
    restored = {}
    for table in RESTORED_FROM_PUBLISHED:
        [(n,)] = con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM published.{table}").fetchall()
        restored[table] = n
    # the identity of a row may have been computed differently by another version: not restored
    [(n,)] = con.execute("""
        INSERT INTO quarantine BY NAME
        SELECT * EXCLUDE (row_hash), NULL AS row_hash FROM published.quarantine AS p
        WHERE NOT EXISTS (SELECT 1 FROM quarantine AS q WHERE q.export_date = p.export_date
                          AND q.source_file = p.source_file AND q.line_no = p.line_no AND q.raw_line = p.raw_line)
    """).fetchall()
    restored["quarantine"] = n
    return restored


def recover(s: Settings, through: str | None = None) -> dict:
    """Build a new state file from the inbox beside the old one, swap it in, publish."""
    through = through or published_business_date(s)
    if through in (None, "unknown"):
        raise SystemExit(f"{s.warehouse} cannot tell up to which business date the nights ran: give --through YYYY-MM-DD")
    date.fromisoformat(through)
    _make_sure_no_run_holds_the_state(s)
    days = delivered_dates(s.inbox, through)
    if not days:
        raise SystemExit(f"no delivery up to {through} in {s.inbox}: nothing to recover from")
    folder = private_folder(s.state_db.parent)
    building = folder / f"{s.state_db.stem}.recovering.duckdb"
    building.unlink(missing_ok=True)
    building.with_name(building.name + ".wal").unlink(missing_ok=True)
    scratch = private_folder(s.work_dir / "recover")
    con = duckdb.connect(str(building), config=duckdb_config(s))
    try:
        os.chmod(building, 0o600)
        initialise(con)
        outcome = replay(con, s, days, scratch)
        if s.warehouse.exists():
            con.execute(f"ATTACH {sql_literal(str(s.warehouse))} AS published (READ_ONLY)")
        with transaction(con):
            outcome["restored"] = restore_from_published(con) if s.warehouse.exists() else {}
            outcome["models"] = run_models(con, through, full_refresh=True)
        if s.warehouse.exists():
            con.execute("DETACH published")
        con.execute("CHECKPOINT")
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)
    if s.state_db.exists():
        kept = s.state_db.with_name(f"{s.state_db.name}.replaced-{datetime.now():%Y%m%dT%H%M%S}")
        os.replace(s.state_db, kept)
        outcome["replaced_state_kept_as"] = str(kept)
    s.state_db.with_name(s.state_db.name + ".wal").unlink(missing_ok=True)
    os.replace(building, s.state_db)
    con = connect_state(s)  # the layout check of every night
    con.close()
    outcome["published"] = str(publish(s, outcome["models"]["build_id"], through))
    return outcome


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clearance.recover", description=__doc__.split("\n\n")[0])
    ap.add_argument("--through", help="last business date to load (default: that of the published warehouse)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    outcome = recover(settings(), args.through)
    print(f"recovered the state from {len(outcome['loaded'])} deliveries in {time.perf_counter() - started:.0f} s "
          f"and published {outcome['published']}")
    for day, reason in outcome["refused"].items():
        print(f"  {day}: refused, as its night was: {reason}")
    if "replaced_state_kept_as" in outcome:
        print(f"  the state file it replaced is kept as {outcome['replaced_state_kept_as']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
