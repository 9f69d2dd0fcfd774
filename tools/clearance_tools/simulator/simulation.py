"""The simulation run: blocks of arrival days generated in turn, their rows buffered by export day,
each delivery written as soon as no later block can add a row to it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from clearance_tools.simulator.files import write_delivery
from clearance_tools.simulator.quirks import KIND_ORDER, check_breaks, parse_quirks, transmitted_rows
from clearance_tools.simulator.records import contract_rows
from clearance_tools.simulator.shipments import board_carriers, draw_shipments, draw_units, number_bills
from clearance_tools.simulator.streams import BLOCK_STREAM, day_number, random_stream
from clearance_tools.simulator.timelines import draw_outcomes, draw_timeline
from clearance_tools.simulator.world import World

DEFAULT_SEED = 20261120
BLOCK_DAYS = 7  # shipments are generated for this many arrival days at a time, each block its own stream
LEAD_DAYS = 12  # no row is transmitted more than this many days before its shipment's arrival day


def block_rows(world: World, first_day: int, last_day: int) -> dict[str, pl.DataFrame]:
    """All rows of the shipments arriving on days [first_day, last_day), each with its export day."""
    rng = random_stream(world.seed, BLOCK_STREAM, first_day)
    days = np.arange(first_day, last_day)
    shipments = draw_shipments(rng, world, days)
    units = draw_units(rng, world, shipments)
    bills = number_bills(rng, world, shipments)
    carriage, calls = board_carriers(rng, world, shipments, days)
    outcomes = draw_outcomes(rng, shipments)
    timeline = draw_timeline(rng, world, shipments, units, carriage, outcomes, first_day, last_day)
    frames = contract_rows(rng, world, first_day, shipments, units, bills, carriage, calls, outcomes, timeline)
    return {kind: transmitted_rows(world, first_day, number, kind, frames[kind])
            for number, kind in enumerate(KIND_ORDER)}


@dataclass
class RunStats:
    folders: list[Path]
    days: int
    declarations: int
    rows: int
    seconds: float

    def summary(self) -> str:
        return (f"simulated {self.days} days: {self.declarations} declarations, {self.rows} events (rows of all "
                f"five kinds) in {len(self.folders)} deliveries, {self.seconds:.1f} s")


def run(inbox: str | Path, start: str | date, days: int, scale: float = 1.0, seed: int = DEFAULT_SEED,
        quirks: str | Iterable[str] | None = "all", breaks: Iterable[Sequence[str]] = ()) -> RunStats:
    """simulate() with run statistics."""
    started = time.perf_counter()
    start_date = date.fromisoformat(start) if isinstance(start, str) else start
    if days < 1:
        raise ValueError("days must be at least 1")
    if scale <= 0:
        raise ValueError("scale must be positive")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    start_day = day_number(start_date)
    end_day = start_day + days
    breaks_by_day = check_breaks(breaks, start_day, end_day)
    world = World(seed=seed, scale=scale, quirks=parse_quirks(quirks), start_day=start_day, end_day=end_day)
    inbox = Path(inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    pending: dict[int, dict[str, list[pl.DataFrame]]] = {}  # export day -> kind -> rows
    folders: list[Path] = []
    next_day = start_day
    rows = declarations = 0

    def deliver_until(day: int) -> None:
        nonlocal next_day, rows, declarations
        while next_day < min(day, end_day):
            folder, delivered, declared = write_delivery(world, inbox, next_day, pending.pop(next_day, {}),
                                                         breaks_by_day.get(next_day, {}))
            folders.append(folder)
            rows += delivered
            declarations += declared
            next_day += 1

    first = start_day
    while first < end_day + LEAD_DAYS:  # shipments arriving up to LEAD_DAYS later have rows in the period
        last = first + BLOCK_DAYS
        for kind, frame in block_rows(world, first, last).items():
            if frame.height == 0:
                continue
            for (export_day,), part in frame.partition_by("_export_day", as_dict=True, maintain_order=True).items():
                pending.setdefault(int(export_day), {}).setdefault(kind, []).append(part)
        deliver_until(last - LEAD_DAYS)
        first = last
    deliver_until(end_day)
    return RunStats(folders, days, declarations, rows, time.perf_counter() - started)


def simulate(inbox: str | Path, start: str | date, days: int, scale: float = 1.0, seed: int = DEFAULT_SEED,
             quirks: str | Iterable[str] | None = "all", breaks: Iterable[Sequence[str]] = ()) -> list[Path]:
    """Write deliveries for `days` export dates from `start`; returns the delivery folders in date order.

    quirks: 'all' (default), 'none', a comma list or an iterable of names from QUIRKS.
    breaks: (date, kind, how) triples, how in BREAK_MODES (bad files, never on by default).
    """
    return run(inbox, start, days, scale, seed, quirks, breaks).folders
