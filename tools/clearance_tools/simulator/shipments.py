"""The shipments of a block of arrival days: what they carry, in which units, under which bill, on
which vessel call, train or flight.

Every function draws from the block's random stream in turn: the order of the calls (and of the
draws inside them) is part of the simulator's output, so that a seed gives the same files forever.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clearance.contract import iso6346_check_digit
from clearance_tools.simulator.liaoning import (
    AIRLINE_AWB_PREFIXES, AUTO_PARTS_SHARE_EXPORT, AUTO_PARTS_SHARE_IMPORT, BULK_BILL_PREFIXES, BULK_SHARE,
    CARRIER_SCAC, CONTAINER_OWNER_CODES, CROSS_BORDER_ECOMMERCE, FLOW_DECLARATIONS_PER_DAY, FLOW_IS_IMPORT,
    FLOW_PORT, FLOW_TRANSPORT_MODE, FLOWS, HS_AUTO_PARTS, HS_GRAIN, HS_ORE, HS_OTHER_EXPORTS, HS_OTHER_IMPORTS,
    INBOUND_FLIGHTS, INBOUND_TRAINS, ORE_SHARE, OUTBOUND_FLIGHTS, OUTBOUND_TRAINS, PORTS, RAIL_BILL_PREFIX,
    SEA_PORTS, TRADE_MODE_SHARE, TRADE_MODES, WEEKDAY_FACTOR,
)
from clearance_tools.simulator.streams import DAY, HOUR, date_of, lognormal_seconds
from clearance_tools.simulator.world import VesselCalls, World, voyage_number

SEA, RAIL, AIR = 2, 3, 5  # TRAF_MODE
BULK_CALLS_PER_BILL = 0.7  # bulk bills of one arrival day and port share the carriers' calls


@dataclass
class Shipments:
    """One element per shipment: one bill (or air waybill) of one flow, declared once."""

    flow: np.ndarray  # index into FLOWS
    arrival_day: np.ndarray
    port: np.ndarray  # index into PORTS
    is_import: np.ndarray
    is_export: np.ndarray
    transport_mode: np.ndarray  # TRAF_MODE
    by_sea: np.ndarray
    by_rail: np.ndarray
    by_air: np.ndarray
    bulk: np.ndarray  # ore, grain and oil seeds into Dalian and Yingkou
    ore: np.ndarray
    grain: np.ndarray
    auto_parts: np.ndarray
    containerised: np.ndarray  # everything but bulk and air cargo
    hs_code: np.ndarray
    trade_mode: np.ndarray
    owner: np.ndarray  # index into the world's traders

    def __len__(self) -> int:
        return len(self.flow)


@dataclass
class Units:
    """One element per unit: a container of a containerised shipment, else the shipment's one bill-level unit."""

    shipment: np.ndarray  # the unit's shipment; a shipment's units are consecutive
    first_unit: np.ndarray  # per shipment: index of its first unit
    position: np.ndarray  # 0 for a shipment's first unit
    is_container: np.ndarray
    gross_weight: np.ndarray  # kg
    container_no: np.ndarray  # "" for a bill-level unit
    shipment_gross_weight: np.ndarray  # per shipment: sum of its units

    def __len__(self) -> int:
        return len(self.shipment)


@dataclass
class Carriage:
    """Per shipment: the vessel call, train or flight that carries it (sea exports are given their call
    when they are loaded, see timelines.export_loading)."""

    vessel_call: np.ndarray  # index into the block's calls, -1 for none
    port_code: np.ndarray
    vessel_id: np.ndarray  # "" without a vessel
    voyage_no: np.ndarray  # the voyage, or the train or flight number (not exported: see records)
    anchored_at: np.ndarray
    berthed_at: np.ndarray
    departed_at: np.ndarray
    train_or_flight_arrived_at: np.ndarray  # inbound trains and flights; NaN otherwise


def draw_shipments(rng: np.random.Generator, world: World, days: np.ndarray) -> Shipments:
    """Declarations of every flow and day (Poisson, by weekday) and what each one carries."""
    # day 0 (1970-01-01) was a Thursday: (day + 3) % 7 is the weekday, Monday = 0
    expected = FLOW_DECLARATIONS_PER_DAY[:, None] * world.scale * WEEKDAY_FACTOR[(days[None, :] + 3) % 7]
    counts = rng.poisson(expected)  # flows x days
    flow = np.repeat(np.repeat(np.arange(len(FLOWS)), len(days)), counts.ravel())
    arrival_day = np.repeat(np.tile(days, len(FLOWS)), counts.ravel())
    n = len(flow)
    port, is_import, mode = FLOW_PORT[flow], FLOW_IS_IMPORT[flow], FLOW_TRANSPORT_MODE[flow]
    is_export = ~is_import
    by_sea = mode == SEA

    def chance() -> np.ndarray:
        return rng.random(n)

    bulk = is_import & by_sea & (chance() < BULK_SHARE[port])
    ore = bulk & (chance() < ORE_SHARE[port])
    grain = bulk & ~ore
    auto_parts = ~bulk & (chance() < np.where(is_import, AUTO_PARTS_SHARE_IMPORT[port], AUTO_PARTS_SHARE_EXPORT[port]))
    by_air = mode == AIR
    by_rail = mode == RAIL
    containerised = ~(bulk | by_air)

    hs_code = np.empty(n, dtype="<U10")
    for mask, codes in ((ore, HS_ORE), (grain, HS_GRAIN), (auto_parts, HS_AUTO_PARTS),
                        (is_import & ~bulk & ~auto_parts, HS_OTHER_IMPORTS),
                        (is_export & ~auto_parts, HS_OTHER_EXPORTS)):
        hs_code[mask] = np.array(codes)[rng.integers(0, len(codes), mask.sum())]
    trade_mode = np.array(TRADE_MODES)[rng.choice(len(TRADE_MODES), n, p=TRADE_MODE_SHARE)]
    trade_mode = np.where(by_air & is_export & (chance() < 0.2), CROSS_BORDER_ECOMMERCE, trade_mode)
    owner = rng.choice(len(world.trader_code), n, p=world.trader_share)
    return Shipments(flow=flow, arrival_day=arrival_day, port=port, is_import=is_import, is_export=is_export,
                     transport_mode=mode, by_sea=by_sea, by_rail=by_rail, by_air=by_air, bulk=bulk, ore=ore,
                     grain=grain, auto_parts=auto_parts, containerised=containerised, hs_code=hs_code,
                     trade_mode=trade_mode, owner=owner)


def draw_units(rng: np.random.Generator, world: World, shipments: Shipments) -> Units:
    """One to three containers per containerised shipment, one bill-level unit otherwise; weights."""
    containers = rng.choice([1, 2, 3], len(shipments), p=[0.25, 0.3, 0.45])
    units_per_shipment = np.where(shipments.containerised, containers, 1)
    shipment = np.repeat(np.arange(len(shipments)), units_per_shipment)
    n = len(shipment)
    first_unit = np.cumsum(units_per_shipment) - units_per_shipment
    is_container = shipments.containerised[shipment]
    weight = np.where(is_container, rng.uniform(3500, 28000, n), 0.0)
    weight = np.where(shipments.ore[shipment], rng.uniform(40e6, 180e6, n), weight)
    weight = np.where(shipments.grain[shipment], rng.uniform(25e6, 70e6, n), weight)
    weight = np.where(shipments.by_air[shipment], np.clip(300 * np.exp(1.2 * rng.standard_normal(n)), 5, 20000), weight)
    weight = np.round(weight, 1)
    return Units(shipment=shipment, first_unit=first_unit, position=np.arange(n) - first_unit[shipment],
                 is_container=is_container, gross_weight=weight,
                 container_no=container_numbers(rng, world, is_container),
                 shipment_gross_weight=np.round(np.bincount(shipment, weights=weight, minlength=len(shipments)), 1))


def container_numbers(rng: np.random.Generator, world: World, is_container: np.ndarray) -> np.ndarray:
    """ISO 6346 numbers, unique: owner code + a bijective scramble of a running serial + check digit."""
    n = len(is_container)
    owner = rng.integers(0, len(CONTAINER_OWNER_CODES), n)
    serial = (np.arange(world.containers_numbered, world.containers_numbered + n) * 7919
              + world.container_serial_offset) % 10**6
    world.containers_numbered += n
    numbers = np.full(n, "", dtype="<U11")
    for k in np.flatnonzero(is_container):
        body = f"{CONTAINER_OWNER_CODES[owner[k]]}{serial[k]:06d}"
        numbers[k] = body + str(iso6346_check_digit(body))
    return numbers


def number_bills(rng: np.random.Generator, world: World, shipments: Shipments) -> np.ndarray:
    """Bill numbers in their canonical spelling: carrier (SCAC), bulk shipper or rail prefix + 10 digits;
    air waybills: airline prefix + 7 digits + their mod-7 check digit. Unique: a bijective scramble
    of a running counter."""
    n = len(shipments)
    number = (np.arange(world.bills_numbered, world.bills_numbered + n, dtype=np.int64) * 6364136223
              + world.bill_number_offset) % 10**10
    world.bills_numbered += n
    prefix = np.array(CARRIER_SCAC)[rng.integers(0, len(CARRIER_SCAC), n)]
    prefix = np.where(shipments.bulk, np.array(BULK_BILL_PREFIXES)[rng.integers(0, len(BULK_BILL_PREFIXES), n)], prefix)
    prefix = np.where(shipments.by_rail, RAIL_BILL_PREFIX, prefix)
    airline = np.array(AIRLINE_AWB_PREFIXES)[rng.integers(0, len(AIRLINE_AWB_PREFIXES), n)]
    return np.array([
        f"{airline[i]}{number[i] % 10**7:07d}{(number[i] % 10**7) % 7}" if shipments.by_air[i]
        else f"{prefix[i]}{number[i]:010d}"
        for i in range(n)
    ])


def board_carriers(rng: np.random.Generator, world: World, shipments: Shipments,
                   days: np.ndarray) -> tuple[Carriage, VesselCalls]:
    """Sea imports onto vessel calls of their arrival day and port, the Shenyang hub's consignments onto
    trains and flights. Returns the carriage and the block's vessel calls: the container calls of its
    days (each day's calls belong to the block of that day) and the bulk carriers' calls it creates."""
    first_day = int(days[0])
    container_calls = world.container_calls_of_days(days)
    vessel_call = np.full(len(shipments), -1)
    container_bill = shipments.is_import & shipments.by_sea & ~shipments.bulk
    vessel_call[container_bill] = _on_container_calls(rng, world, shipments, days, container_calls, container_bill)
    bulk_calls, vessel_call[shipments.bulk] = _bulk_carrier_calls(rng, world, shipments, first_day,
                                                                  len(container_calls))
    calls = VesselCalls.concat([container_calls, bulk_calls])

    n = len(shipments)
    nowhere = np.full(n, np.nan)
    carriage = Carriage(vessel_call=vessel_call, port_code=np.array(PORTS)[shipments.port].astype("<U3"),
                        vessel_id=np.full(n, "", dtype="<U7"), voyage_no=np.full(n, "", dtype="<U6"),
                        anchored_at=nowhere.copy(), berthed_at=nowhere.copy(), departed_at=nowhere.copy(),
                        train_or_flight_arrived_at=nowhere.copy())
    on_call = vessel_call >= 0
    for ours, theirs in ((carriage.port_code, calls.port_code), (carriage.vessel_id, calls.vessel_id),
                         (carriage.voyage_no, calls.voyage_no), (carriage.anchored_at, calls.anchored_at),
                         (carriage.berthed_at, calls.berthed_at), (carriage.departed_at, calls.departed_at)):
        ours[on_call] = theirs[vessel_call[on_call]]
    _on_trains_and_flights(rng, shipments, carriage)
    return carriage, calls


def _on_container_calls(rng: np.random.Generator, world: World, shipments: Shipments, days: np.ndarray,
                        container_calls: VesselCalls, container_bill: np.ndarray) -> np.ndarray:
    """Each container bill on one of the container calls of its arrival day and port, at random."""
    first_day = int(days[0])
    call_day = np.repeat(days, [len(world.container_calls(int(d))) for d in days])
    call_key = (call_day - first_day) * len(SEA_PORTS) + container_calls.port  # sorted: by day, then port
    key = (shipments.arrival_day[container_bill] - first_day) * len(SEA_PORTS) + shipments.port[container_bill]
    lo, hi = np.searchsorted(call_key, key, "left"), np.searchsorted(call_key, key, "right")
    return lo + np.floor(rng.random(container_bill.sum()) * (hi - lo)).astype(int)


def _bulk_carrier_calls(rng: np.random.Generator, world: World, shipments: Shipments, first_day: int,
                        calls_before: int) -> tuple[VesselCalls, np.ndarray]:
    """Bulk carriers' calls for the bulk bills of each arrival day and port, and each bulk bill's call
    (numbered after the `calls_before` container calls of the block)."""
    bulk_bill = np.flatnonzero(shipments.bulk)
    day_and_port = (shipments.arrival_day[bulk_bill] - first_day) * len(SEA_PORTS) + shipments.port[bulk_bill]
    keys, of_key = np.unique(day_and_port, return_inverse=True)
    bills = np.bincount(of_key, minlength=len(keys))
    calls_of_key = np.maximum(1, np.round(bills * BULK_CALLS_PER_BILL)).astype(int)
    first_call = np.cumsum(calls_of_key) - calls_of_key
    n = int(calls_of_key.sum())
    port = np.repeat(keys % len(SEA_PORTS), calls_of_key)
    day = np.repeat(keys // len(SEA_PORTS) + first_day, calls_of_key)
    vessel = np.empty(n, dtype="<U7")
    for k in range(len(keys)):
        carriers = world.bulk_carriers
        vessel[first_call[k]:first_call[k] + calls_of_key[k]] = rng.choice(
            carriers, calls_of_key[k], replace=bool(calls_of_key[k] > len(carriers)))
    voyage = np.array([voyage_number(date_of(d), x) for d, x in zip(day, rng.choice(list("ENWS"), n))])
    arrived = day * DAY + rng.uniform(0, DAY, n)
    anchors = rng.random(n) < 0.9
    berthed = np.where(anchors, arrived + lognormal_seconds(rng, 20.0, 1.0, n, lo=0.05, hi=18), arrived)
    departed = berthed + np.clip(48 * HOUR * np.exp(0.4 * rng.standard_normal(n)), 18 * HOUR, 8 * 24 * HOUR)
    call_of_bill = calls_before + first_call[of_key] + np.floor(
        rng.random(len(bulk_bill)) * calls_of_key[of_key]).astype(int)
    calls = VesselCalls(port=port, port_code=np.array(SEA_PORTS)[port], vessel_id=vessel, voyage_no=voyage,
                        anchored_at=np.where(anchors, arrived, np.nan), berthed_at=berthed, departed_at=departed)
    return calls, call_of_bill


def _on_trains_and_flights(rng: np.random.Generator, shipments: Shipments, carriage: Carriage) -> None:
    """Inbound rail and air consignments arrive with their train or flight (around its usual hour);
    outbound ones leave on one (when, see timelines.export_loading)."""
    imports, exports = shipments.is_import, shipments.is_export
    for mask, timetable in ((imports & shipments.by_rail, INBOUND_TRAINS),
                            (imports & shipments.by_air, INBOUND_FLIGHTS)):
        k = rng.integers(0, len(timetable), mask.sum())
        hour = np.array([h for _, h in timetable])[k] + np.clip(rng.normal(0, 0.7, mask.sum()), -2, 2)
        carriage.train_or_flight_arrived_at[mask] = shipments.arrival_day[mask] * DAY + np.clip(hour, 0.1, 23.9) * HOUR
        carriage.voyage_no[mask] = np.array([number for number, _ in timetable])[k]
    for mask, numbers in ((exports & shipments.by_rail, OUTBOUND_TRAINS),
                          (exports & shipments.by_air, OUTBOUND_FLIGHTS)):
        carriage.voyage_no[mask] = np.array(numbers)[rng.integers(0, len(numbers), mask.sum())]
