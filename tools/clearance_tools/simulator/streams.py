"""Seeded random streams, the simulator's clock, and the duration draws every stage uses.

Times are seconds since 1970-01-01 00:00 of Beijing local time (the exports carry local times
without a zone); days are day numbers on that clock.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

HOUR = 3600.0  # seconds
DAY = 86400  # seconds
EPOCH = date(1970, 1, 1)

# Stream tags (numpy SeedSequence entropy: [seed, tag, ...]): every stream is its own, so the rows of
# one block of days, one day's vessel calls or one delivery's files never depend on any other.
WORLD_STREAM, VESSEL_CALL_STREAM, BLOCK_STREAM, DELIVERY_STREAM, QUIRK_STREAM = 1, 2, 3, 4, 100


def random_stream(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def day_number(d: date) -> int:
    return (d - EPOCH).days


def date_of(day: int) -> date:
    return EPOCH + timedelta(days=int(day))


def lognormal_seconds(rng: np.random.Generator, median_hours, sigma: float, n: int, lo: float = 1 / 20,
                      hi: float = 15.0) -> np.ndarray:
    """Heavy-tailed durations in seconds: lognormal around the median (hours, scalar or array), clipped
    to [lo, hi] x median so that no stage takes no time or forever."""
    median = np.asarray(median_hours, dtype=float) * HOUR
    return np.clip(median * np.exp(sigma * rng.standard_normal(n)), median * lo, median * hi)


def per_shipment(reduce: np.ufunc, unit_values: np.ndarray, first_units: np.ndarray) -> np.ndarray:
    """Reduce the values of each shipment's units (consecutive, from first_units) to one per shipment."""
    if len(first_units) == 0:
        return np.empty(0)
    return reduce.reduceat(unit_values, first_units)
