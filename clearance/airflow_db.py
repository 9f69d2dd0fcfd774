"""Connection settings of Airflow's metadata database on SQLite (imported by Airflow itself while it
starts: this module imports nothing but the standard library).

AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=clearance.airflow_db.SQLITE_CONNECT_ARGS (SQLite only;
the Makefile and `make airflow` set it).

SQLite lets one writer in at a time. Two things make a deployment's processes (and a command beside
them: `airflow backfill create`, `make run`) fail with `database is locked` although they would
only have to wait:

- pysqlite waits 5 s for the lock: here a minute.
- A transaction that read before it writes (SQLAlchemy opens every `begin_nested()` with a
  SAVEPOINT, which SQLite starts as a deferred transaction) cannot wait at all: when another
  connection has written meanwhile, SQLite refuses the upgrade to a write at once, the busy
  timeout notwithstanding. `airflow backfill create` beside a running scheduler failed so, and
  Airflow's clean-up of the half-made backfill then crashed the scheduler. So every transaction
  takes the write lock when it begins (BEGIN IMMEDIATE), waiting for it up to the timeout.
"""

import sqlite3


class _ImmediateCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=()):
        if not self.connection.in_transaction and sql.lstrip()[:9].upper() == "SAVEPOINT":
            super().execute("BEGIN IMMEDIATE")
        return super().execute(sql, parameters)


class ImmediateConnection(sqlite3.Connection):
    """pysqlite begins a transaction before a write only, and then IMMEDIATE (isolation_level below);
    a SAVEPOINT outside a transaction begins one IMMEDIATE here."""

    def cursor(self, factory=_ImmediateCursor):
        return super().cursor(factory)


SQLITE_CONNECT_ARGS = {"timeout": 60, "isolation_level": "IMMEDIATE", "factory": ImmediateConnection}
