"""The analysts' read-only query command."""

import subprocess
import sys

import duckdb

from tests.conftest import PROJECT_DIR


def test_query_command_reads_the_warehouse_read_only_while_a_reader_holds_it(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE core_shipments AS SELECT 'import' AS direction, 42 AS n")
    holder = duckdb.connect(str(warehouse), read_only=True)  # another analyst has it open
    try:
        out = subprocess.run([sys.executable, "-m", "clearance.query", "--warehouse", str(warehouse),
                              "SELECT direction, n FROM core_shipments"], capture_output=True, text=True,
                             check=True, cwd=PROJECT_DIR)
    finally:
        holder.close()
    assert "import" in out.stdout and "42" in out.stdout
    failed = subprocess.run([sys.executable, "-m", "clearance.query", "--warehouse", str(warehouse),
                             "CREATE TABLE x AS SELECT 1"], capture_output=True, text=True, cwd=PROJECT_DIR)
    assert failed.returncode != 0 and "read-only" in failed.stderr


def test_a_script_prints_every_result_and_an_sql_error_as_one_line(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE core_shipments AS SELECT 'import' AS direction, 42 AS n")
    script = ("-- two results, then a mistake\n"
              "SELECT direction FROM core_shipments;\n"
              "SELECT n * 2 AS doubled FROM core_shipments;\n"
              "\n"
              "SELECT no_such_column FROM core_shipments;\n"
              "SELECT 'never reached' AS after_the_error;\n")
    out = subprocess.run([sys.executable, "-m", "clearance.query", "--warehouse", str(warehouse)], input=script,
                         capture_output=True, text=True, cwd=PROJECT_DIR)
    assert out.returncode == 1
    assert "import" in out.stdout and "84" in out.stdout and "never reached" not in out.stdout
    assert "-- line 2:" in out.stdout and "-- line 3:" in out.stdout
    [error] = out.stderr.strip().splitlines()  # one line, no traceback
    assert "line 5" in error and "no_such_column" in error
