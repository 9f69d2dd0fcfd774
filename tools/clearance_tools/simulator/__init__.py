"""Export simulator: nightly single-window deliveries for Liaoning, exactly as the real exports arrive.

    python -m clearance_tools.simulator --inbox DIR --start 2026-11-20 --days 30 [--scale 1.0] [--seed S]
        [--quirks all|none|q1,q2,...] [--break 2026-11-21:dec_head:truncated ...]

Writes one delivery folder `<inbox>/<YYYY-MM-DD>/` per export date (the Beijing date a row is
transmitted) with all five file kinds and MANIFEST.json last, per the export contract
(docs/spec/single-window-exports.md). The timelines follow the milestones of the metrics spec
(docs/spec/clearance-metrics.md).

How it works. Shipments are generated vectorised (numpy) in fixed blocks of BLOCK_DAYS arrival
days counted from the start date, each block with its own seeded random stream; vessel calls per
day have their own stream too. Every row gets an export day; rows are then buffered per export
date and a delivery is written as soon as no later block can add rows to it (no row precedes its
shipment's arrival day by more than LEAD_DAYS). Consequently:
- the same arguments give byte-identical output, and a longer run with the same start and seed
  reproduces the deliveries of a shorter one;
- shipments arrive from the start date on (cold start); their earlier rows (manifest lines,
  advance declarations filed before the start) are transmitted in the first delivery;
- rows transmitted after the last simulated date are not delivered (those shipments stay open).

Quirks (export contract, "Quirks"), each switchable, all on by default: see QUIRKS. Bad files
(quirk 8) only on request: `--break DATE:KIND:HOW`, HOW in BREAK_MODES; each breaks exactly one
thing in the kind's first file of that delivery (`truncated`, `empty` and `utf8` leave MANIFEST.json
describing the file as written, so only the file itself shows the defect).

The modules, in the order a block of days goes through them:
- liaoning: the province simulated (ports, offices, flows, cargo, carriers, traders);
- world: what lasts from block to block (fleet, traders, running numbers, container vessel calls);
- shipments: a block's shipments, their units, bills and carriers;
- timelines: their milestones, stage by stage (outcomes, discharge, declaration, customs, loading, endings);
- records: the contract's rows of each file kind;
- quirks: the contract's quirks, from re-sent rows to broken files;
- files: a delivery folder written; simulation: the run; cli: the command;
- streams: the seeded random streams, the clock and the duration draws they all use.
"""

from clearance_tools.simulator.quirks import BREAK_MODES, QUIRKS, parse_break, parse_quirks
from clearance_tools.simulator.simulation import DEFAULT_SEED, RunStats, run, simulate

__all__ = ["BREAK_MODES", "DEFAULT_SEED", "QUIRKS", "RunStats", "parse_break", "parse_quirks", "run", "simulate"]
