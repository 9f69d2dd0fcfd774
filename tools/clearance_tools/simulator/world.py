"""What the simulation keeps from one block of days to the next: the fleet, the traders, the running
numbers of bills, containers and declarations, and the container vessel calls of every day."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date

import numpy as np

from clearance_tools.simulator.liaoning import (
    ANCHORAGE_SHARE, CITIES, CITY_SHARE, COMPANY_FORMS, CONTAINER_CALLS_PER_DAY, LINES_OF_BUSINESS, SEA_PORTS,
    TRADE_NAMES,
)
from clearance_tools.simulator.quirks import with_unknown_port_codes
from clearance_tools.simulator.streams import (
    DAY, HOUR, VESSEL_CALL_STREAM, WORLD_STREAM, date_of, lognormal_seconds, random_stream,
)

FLEET_SIZE = 800  # IMO numbers: the first 560 container vessels, the rest bulk carriers
CONTAINER_VESSELS = 560
TRADERS = 4000
KEEP_CALLS_DAYS = 40  # days of container calls kept in memory (a block's exports load onto calls of 10 days on)


@dataclass
class VesselCalls:
    """Vessel calls (vessel, voyage, port), one element per call."""

    port: np.ndarray  # index into SEA_PORTS
    port_code: np.ndarray
    vessel_id: np.ndarray
    voyage_no: np.ndarray
    anchored_at: np.ndarray  # NaN for a call that berthed on arrival
    berthed_at: np.ndarray
    departed_at: np.ndarray

    def __len__(self) -> int:
        return len(self.port)

    @staticmethod
    def concat(parts: list[VesselCalls]) -> VesselCalls:
        return VesselCalls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(VesselCalls)})


def voyage_number(day: date, direction: str) -> str:
    """YYDDD + the direction letter (year, day of the year of the arrival)."""
    return f"{day.year % 100:02d}{day.timetuple().tm_yday:03d}{direction}"


def imo_number(six: int) -> str:
    digits = [int(c) for c in f"{six:06d}"]
    return f"{six:06d}{sum(d * (7 - i) for i, d in enumerate(digits)) % 10}"


_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def unified_social_credit_code(region: str, rng: np.random.Generator) -> str:
    """Unified social credit code (GB 32100): 91 + region + organisation code (GB 11714) + check."""
    org = "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRTUWXY"), 8, p=None))
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in org]
    org_check = 11 - sum(v * w for v, w in zip(values, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
    body = "91" + region + org + ("X" if org_check == 10 else "0" if org_check == 11 else str(org_check))
    weighted = sum(_USCC_CHARS.index(c) * w for c, w in zip(body, _USCC_WEIGHTS))
    return body + _USCC_CHARS[(31 - weighted % 31) % 31]


@dataclass
class World:
    seed: int
    scale: float
    quirks: frozenset[str]
    start_day: int
    end_day: int
    container_vessels: np.ndarray = field(init=False)
    bulk_carriers: np.ndarray = field(init=False)
    trader_code: np.ndarray = field(init=False)
    trader_name: np.ndarray = field(init=False)
    trader_share: np.ndarray = field(init=False)
    # running numbers: entry-ID sequence per (office, year, I/E flag); bills and containers numbered so far
    entry_sequences: dict = field(default_factory=dict)
    bills_numbered: int = 0
    containers_numbered: int = 0
    bill_number_offset: int = 0
    container_serial_offset: int = 0
    _container_calls: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = random_stream(self.seed, WORLD_STREAM)
        imos = rng.choice(np.arange(900000, 990000), FLEET_SIZE, replace=False)
        self.container_vessels = np.array([imo_number(int(x)) for x in imos[:CONTAINER_VESSELS]])
        self.bulk_carriers = np.array([imo_number(int(x)) for x in imos[CONTAINER_VESSELS:]])
        self.trader_code, self.trader_name = self._traders(rng)
        weight = 1.0 / (np.arange(TRADERS) + 15.0)  # a few big traders, a long tail of small ones
        self.trader_share = weight / weight.sum()
        self.bill_number_offset = int(rng.integers(10**9, 9 * 10**9))
        self.container_serial_offset = int(rng.integers(10**5, 9 * 10**5))

    @staticmethod
    def _traders(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cities = rng.choice(len(CITIES), TRADERS, p=CITY_SHARE)
        codes, names = [], []
        for i in range(TRADERS):
            city, region = CITIES[cities[i]]
            trade_name = TRADE_NAMES[rng.integers(len(TRADE_NAMES))]
            business = LINES_OF_BUSINESS[rng.integers(len(LINES_OF_BUSINESS))]
            name = city + trade_name + business + COMPANY_FORMS[rng.integers(len(COMPANY_FORMS))]
            u = rng.random()
            if u < 0.03:  # names that exercise CSV quoting
                name += ",保税区分公司"
            elif u < 0.05:
                name = (f'{city}"{TRADE_NAMES[rng.integers(len(TRADE_NAMES))]}"'
                        f'{LINES_OF_BUSINESS[rng.integers(len(LINES_OF_BUSINESS))]}有限公司')
            codes.append(unified_social_credit_code(region, rng))
            names.append(name)
        return np.array(codes), np.array(names)

    def has_quirk(self, name: str) -> bool:
        return name in self.quirks

    def container_calls(self, day: int) -> VesselCalls:
        """Container vessel calls arriving at the sea ports on `day` (the day's own random stream)."""
        if day in self._container_calls:
            return self._container_calls[day]
        rng = random_stream(self.seed, VESSEL_CALL_STREAM, day)
        counts = np.maximum(1, rng.poisson(CONTAINER_CALLS_PER_DAY * self.scale))
        port = np.repeat(np.arange(len(SEA_PORTS)), counts)
        n = len(port)
        vessel = self.container_vessels[rng.choice(len(self.container_vessels), n,
                                                   replace=n > len(self.container_vessels))]
        voyage = np.array([voyage_number(date_of(day), x) for x in rng.choice(list("ENWS"), n)])
        arrived = day * DAY + rng.uniform(0, DAY, n)
        anchors = rng.random(n) < ANCHORAGE_SHARE[port]
        anchorage_wait = lognormal_seconds(rng, 4.0, 1.0, n, lo=0.08, hi=30)
        alongside = np.clip(14 * HOUR * np.exp(0.45 * rng.standard_normal(n)), 5 * HOUR, 60 * HOUR)
        berthed = np.where(anchors, arrived + anchorage_wait, arrived)
        port_code = np.array(SEA_PORTS)[port]
        if self.has_quirk("unknown_codes"):
            port_code = with_unknown_port_codes(self.seed, day, port, port_code)
        calls = VesselCalls(port=port, port_code=port_code, vessel_id=vessel, voyage_no=voyage,
                            anchored_at=np.where(anchors, arrived, np.nan), berthed_at=berthed,
                            departed_at=berthed + alongside)
        self._container_calls[day] = calls
        for old in [d for d in self._container_calls if d < day - KEEP_CALLS_DAYS]:
            del self._container_calls[old]
        return calls

    def container_calls_of_days(self, days) -> VesselCalls:
        return VesselCalls.concat([self.container_calls(int(d)) for d in days])
