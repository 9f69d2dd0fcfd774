"""Query the published warehouse read-only from the project environment (no DuckDB CLI needed).

    python -m clearance.query "SELECT * FROM mart_clearance_statistics LIMIT 5"
    python -m clearance.query < my_query.sql

The DuckDB CLI on PyPI (duckdb-cli) is still 1.x and cannot open a DuckDB 2.x file; this uses the
project's DuckDB 2.x Python package instead.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from clearance.config import settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sql", nargs="?", help="the query; read from standard input when left out")
    parser.add_argument("--warehouse", default=str(settings().warehouse))
    parser.add_argument("--max-rows", type=int, default=100)
    args = parser.parse_args(argv)
    sql = args.sql if args.sql is not None else sys.stdin.read()
    with duckdb.connect(args.warehouse, read_only=True) as con:
        con.sql(sql).show(max_rows=args.max_rows, max_width=200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
