"""Connection settings of Airflow's metadata database (imported by Airflow itself while it starts:
this module imports nothing).

SQLite lets one writer in at a time; with every component of a deployment writing, a command beside
them (a backfill, a trigger) waits up to a minute for its turn instead of pysqlite's 5 s:
AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=clearance.airflow_db.SQLITE_CONNECT_ARGS (SQLite only).
"""

SQLITE_CONNECT_ARGS = {"timeout": 60}
