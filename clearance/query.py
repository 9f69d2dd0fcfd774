"""Query the published warehouse read-only from the project environment (no DuckDB CLI needed).

    python -m clearance.query "SELECT * FROM mart_clearance_statistics LIMIT 5"
    python -m clearance.query < my_script.sql

Every statement of the script runs in order and each result is printed under the statement's
line number. An SQL error stops the script with one line: the statement's line and DuckDB's
message (exit status 1). The DuckDB CLI on PyPI (duckdb-cli) is still 1.x and cannot open a
DuckDB 2.x file; this uses the project's DuckDB 2.x Python package instead.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from clearance.config import settings


def statements(script: str) -> list[tuple[int, str]]:
    """The script's statements with the line each starts on."""
    out, position = [], 0
    for statement in duckdb.extract_statements(script):
        text = statement.query.strip()
        found = script.find(text, position)
        start = found if found >= 0 else position
        out.append((script.count("\n", 0, start) + 1, text))
        position = start + len(text)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clearance.query", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sql", nargs="?", help="the query or script; read from standard input when left out")
    parser.add_argument("--warehouse", default=str(settings().warehouse))
    parser.add_argument("--max-rows", type=int, default=100)
    args = parser.parse_args(argv)
    script = args.sql if args.sql is not None else sys.stdin.read()
    try:
        with duckdb.connect(args.warehouse, read_only=True) as con:
            parsed = statements(script)
            for line, text in parsed:
                try:
                    relation = con.sql(text)
                except duckdb.Error as exc:
                    message = " ".join(str(exc).split())
                    print(f"{args.warehouse}: SQL error in the statement at line {line}: {message}", file=sys.stderr)
                    return 1
                if len(parsed) > 1:
                    print(f"-- line {line}: {' '.join(text.split())[:100]}")
                if relation is not None:
                    relation.show(max_rows=args.max_rows, max_width=200)
                else:
                    print("ok")
    except duckdb.Error as exc:  # the script itself does not parse, or the file cannot be opened
        print(f"{args.warehouse}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
