"""The pipeline's state file: where it is, who may open it, what layout it has, one transaction.

Everything the pipeline keeps (loaded rows and their sightings, quarantine, accounting, alert state,
staging, core and mart tables) lives in one private DuckDB file, `_state/<warehouse>_state.duckdb`,
which only the pipeline opens. Analysts read the published warehouse (clearance.publish), so no reader
ever holds a lock the night needs. It is the only store of the loaded rows: a night that finds it
missing, damaged or of another layout beside a published warehouse refuses, naming the recovery
command (clearance.recover), instead of starting a new, empty one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from clearance.config import TRANSFORMS_DIR, Settings

# Version of the state file's layout. 2: row identity over length-prefixed values, every sighting kept.
STATE_FORMAT = 2
RECOVERY_COMMAND = "make recover (python -m clearance.recover)"

# DDL of the tables kept from run to run (not rebuilt by the models), run on every connection.
SCHEMA_FILES = ("macros.sql", "landing/*.sql", "state/*.sql")


class StateInUseError(RuntimeError):
    """Another run (or a person) holds the state file."""


class StateUnusableError(RuntimeError):
    """The state file is missing, damaged or of another layout while there is history to keep."""


def private_folder(path: Path) -> Path:
    """A folder only the pipeline's user can enter: it holds every loaded row, owner names included."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def published_business_date(settings: Settings) -> str | None:
    """Business date of the published warehouse, if there is one."""
    if not settings.warehouse.exists():
        return None
    try:
        with duckdb.connect(str(settings.warehouse), read_only=True) as con:
            rows = con.execute("SELECT business_date::VARCHAR FROM run_context").fetchall()
    except duckdb.Error:
        return "unknown"
    return rows[0][0] if rows else None


def _unusable(settings: Settings, what: str) -> StateUnusableError:
    published = published_business_date(settings)
    history = (f"the published warehouse {settings.warehouse} holds the nights up to {published}"
               if published else "it held every loaded row")
    return StateUnusableError(
        f"{settings.state_db} {what}, but {history}: a night on a new, empty state would publish only its own "
        f"delivery. Nothing was changed. Rebuild the state from the deliveries kept in the inbox with "
        f"{RECOVERY_COMMAND}, then run the night again."
    )


def duckdb_config(settings: Settings) -> dict:
    # no table relies on the order rows were written in: writing in parallel is faster and lighter
    return {"memory_limit": settings.memory_limit, "preserve_insertion_order": False}


def connect_state(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The pipeline's state file; fails with a clear message while another run holds it.

    A new state file is created only where nothing was ever published: a missing, damaged or older
    state beside a published warehouse is refused, naming the recovery command.
    """
    private_folder(settings.state_db.parent)
    if not settings.state_db.exists() and (read_only or published_business_date(settings)):
        raise _unusable(settings, "is missing")
    try:
        con = duckdb.connect(str(settings.state_db), read_only=read_only, config=duckdb_config(settings))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StateInUseError(
                f"{settings.state_db} is in use by another run of the pipeline (two runs at once, say "
                f"`make run` beside the scheduler); nothing was changed, run again when it is done: {exc}"
            ) from exc
        raise _unusable(settings, f"cannot be opened ({exc})") from exc
    except duckdb.Error as exc:
        raise _unusable(settings, f"cannot be opened ({exc})") from exc
    if not read_only:
        os.chmod(settings.state_db, 0o600)
        try:
            _check_layout(con, settings)
        except BaseException:
            con.close()
            raise
    return con


def _check_layout(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                                        "AND schema_name = 'main'").fetchall()}
    if not tables:
        if published_business_date(settings):
            raise _unusable(settings, "holds no table")
        initialise(con)  # a new deployment
        return
    layout = con.execute("SELECT max(version) FROM state_format").fetchone()[0] if "state_format" in tables else 1
    if layout != STATE_FORMAT:
        raise _unusable(settings, f"was written by another version of the pipeline (layout {layout}; this one "
                                  f"keeps layout {STATE_FORMAT})")


def initialise(con: duckdb.DuckDBPyConnection) -> None:
    """The tables of a new state file, of this layout."""
    ensure_schema(con)
    con.execute("INSERT INTO state_format VALUES (?)", [STATE_FORMAT])


def run_sql_file(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        con.execute(path.read_text(encoding="utf-8"))
    except duckdb.Error as exc:
        raise RuntimeError(f"{path.relative_to(TRANSFORMS_DIR.parent)}: {exc}") from exc


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The macros, and the tables kept from run to run (CREATE ... IF NOT EXISTS)."""
    for pattern in SCHEMA_FILES:
        for path in sorted(TRANSFORMS_DIR.glob(pattern)):
            run_sql_file(con, path)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: a failure (or a killed process, by DuckDB's write-ahead log) leaves the state as it was."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
