"""Rebuild the pipeline's state file from the deliveries kept in the inbox, then publish.

    python -m clearance.recover [--through YYYY-MM-DD]          (make recover)

The state file (`_state/<warehouse>_state.duckdb`) is the only store of the loaded rows. When it is
lost, damaged, or was written by another version of the pipeline, the nights refuse to run (a night
on an empty state would publish only its own delivery) and name this command.

Every delivery in the inbox up to the published warehouse's business date (or `--through`) is read,
validated and loaded again, oldest first, exactly as its night did it: the same accounting, the same
quarantine. A delivery its night refused (a file-level fault, too many bad rows) is refused again and
left out, as it was then. From the published warehouse come what no delivery holds: the alert state
(so no alert is sent twice) and the quarantined rows of deliveries since replaced. Then every model is
rebuilt for the business date's cut-off and the warehouse is published. The state file it replaces,
if any, is kept beside the new one as `<name>.replaced-<time>`. Stop the scheduler meanwhile.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from datetime import date, datetime
from pathlib import Path

import duckdb

from clearance.config import Settings, settings
from clearance.contract import MANIFEST_NAME
from clearance.ingest import DeliveryError, delivery_folder, ingest_delivery
from clearance.publish import publish, sql_literal
from clearance.validation import validate_delivery
from clearance.loading import AccountingError, load_delivery
from clearance.models import run_models
from clearance.state import (StateInUseError, connect_state, duckdb_config, initialise, private_folder,
                             published_business_date, transaction)

log = logging.getLogger(__name__)

# Kept from run to run in the state, copied into every published warehouse, held by no delivery.
RESTORED_FROM_PUBLISHED = ("alert_log", "alert_digests")


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


def replay(con: duckdb.DuckDBPyConnection, s: Settings, days: list[str], scratch: Path) -> dict:
    """Load every delivery again as its night did; returns the dates loaded and those refused."""
    outcome = {"loaded": [], "refused": {}}
    for day in days:
        work = scratch / day
        try:
            reports = ingest_delivery(delivery_folder(s.inbox, day), day, work)
            # a scratch Great Expectations project: the nights' results and Data Docs stay as they are
            reports = validate_delivery(reports, day, scratch / "gx", scratch / "data_docs")
            with transaction(con):
                load_delivery(con, reports, day, s.quarantine_policy)
        except (DeliveryError, AccountingError) as exc:
            outcome["refused"][day] = str(exc)
            log.warning("delivery %s refused, as its night refused it: %s", day, exc)
        else:
            outcome["loaded"].append(day)
            log.info("delivery %s loaded again", day)
        finally:
            shutil.rmtree(work, ignore_errors=True)
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
