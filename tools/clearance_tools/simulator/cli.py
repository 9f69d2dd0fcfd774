"""python -m clearance_tools.simulator: see the package's docstring."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import clearance_tools.simulator as package
from clearance_tools.simulator.quirks import BREAK_MODES, QUIRKS, parse_break
from clearance_tools.simulator.simulation import DEFAULT_SEED, run


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clearance_tools.simulator",
                                 description=package.__doc__.split("\n\n")[0])
    ap.add_argument("--inbox", required=True, type=Path, help="inbox folder; one delivery folder per export date")
    ap.add_argument("--start", required=True, help="first export date, YYYY-MM-DD (Beijing)")
    ap.add_argument("--days", required=True, type=int, help="number of export dates")
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = Liaoning volume (~2,700 declarations a day)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--quirks", default="all", help=f"all (default), none, or a comma list of: {', '.join(QUIRKS)}")
    ap.add_argument("--break", dest="breaks", action="append", default=[], metavar="DATE:KIND:HOW",
                    help=f"break a file (repeatable); HOW one of {', '.join(BREAK_MODES)}")
    args = ap.parse_args(argv)
    try:
        stats = run(args.inbox, args.start, args.days, args.scale, args.seed, args.quirks,
                    [parse_break(b) for b in args.breaks])
    except ValueError as exc:
        ap.error(str(exc))
    print(stats.summary())
    return 0
