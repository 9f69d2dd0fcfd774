"""The contract's rows of a block's shipments: declarations and their versions (dec_head), customs
receipts (dec_result), manifest lines, vessel events and cargo events, as polars frames with the
columns of clearance.contract.KINDS plus the simulator's own (names starting with "_": `_at`, the
row's time, decides when it is sent; see quirks.transmitted_rows)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from clearance.contract import KINDS
from clearance_tools.simulator.liaoning import PORT_OFFICE, RECEIPT_NOTES, TAX_NOTES
from clearance_tools.simulator.quirks import with_unknown_offices
from clearance_tools.simulator.shipments import Carriage, Shipments, Units
from clearance_tools.simulator.streams import HOUR, date_of, lognormal_seconds
from clearance_tools.simulator.timelines import Outcomes, Timeline
from clearance_tools.simulator.world import VesselCalls, World

ENTRIES_PER_DAY_BEFORE_START = 1500  # an office's entry-ID sequence at the start date: as if it had run all year


@dataclass
class Events:
    """Accumulates events: (index of the shipment, unit or call, code, time[, extra]) arrays."""

    index: list = field(default_factory=list)
    code: list = field(default_factory=list)
    at: list = field(default_factory=list)
    extra: list = field(default_factory=list)

    def add(self, index, code, at, extra=None) -> None:
        index = np.asarray(index)
        if len(index) == 0:
            return
        self.index.append(index)
        self.code.append(np.broadcast_to(np.asarray(code, dtype=object), index.shape).astype(str))
        self.at.append(np.asarray(at, dtype=float))
        self.extra.append(np.full(len(index), -1) if extra is None else np.asarray(extra))

    def arrays(self):
        if not self.index:
            return np.empty(0, int), np.empty(0, str), np.empty(0), np.empty(0, int)
        return (np.concatenate(self.index), np.concatenate(self.code), np.concatenate(self.at),
                np.concatenate(self.extra))


@dataclass
class Declarations:
    """One element per declaration (entry ID): first one per shipment, then the rejected first attempts
    of the re-declared shipments."""

    shipment: np.ndarray
    declared_at: np.ndarray
    customs_master: np.ndarray  # the declaring office
    entry_id: np.ndarray
    advance: np.ndarray  # ADVANCE: "Y" when declared before arrival
    attempted: np.ndarray  # per first attempt: its shipment
    attempt_accepted_at: np.ndarray
    attempt_was_accepted: np.ndarray  # half the first attempts are rejected before acceptance
    attempt_rejected_at: np.ndarray

    def __len__(self) -> int:
        return len(self.shipment)


def contract_rows(rng: np.random.Generator, world: World, first_day: int, shipments: Shipments, units: Units,
                  bills: np.ndarray, carriage: Carriage, calls: VesselCalls, outcomes: Outcomes,
                  timeline: Timeline) -> dict[str, pl.DataFrame]:
    """Every row of the block's shipments and vessel calls, by file kind."""
    office = np.array([PORT_OFFICE[p] for p in carriage.port_code]) if len(shipments) else np.empty(0, "<U4")
    declarations = declare(rng, world, first_day, shipments, office, outcomes, timeline)
    receipts = customs_receipts(rng, declarations, len(shipments), outcomes, timeline)
    cargo = cargo_events(rng, shipments, units, outcomes, timeline)
    shipment_columns = pl.DataFrame({
        # rail, road and air consignments carry no vessel and no voyage (the train or flight is not exported)
        "PORT_CODE": carriage.port_code, "VESSEL_ID": carriage.vessel_id,
        "VOYAGE_NO": np.where(shipments.by_sea, carriage.voyage_no, ""), "BILL_NO": bills,
        "I_E_FLAG": np.where(shipments.is_import, "I", "E"), "I_E_PORT": office, "TRADE_MODE": shipments.trade_mode,
        "TRAF_MODE": shipments.transport_mode.astype(str), "OWNER_CODE": world.trader_code[shipments.owner],
        "OWNER_NAME": world.trader_name[shipments.owner], "MAIN_CODE_TS": shipments.hs_code,
    }, schema={c: pl.String for c in ("PORT_CODE", "VESSEL_ID", "VOYAGE_NO", "BILL_NO", "I_E_FLAG", "I_E_PORT",
                                      "TRADE_MODE", "TRAF_MODE", "OWNER_CODE", "OWNER_NAME", "MAIN_CODE_TS")})
    return {
        "dec_head": declaration_versions(rng, shipment_columns, declarations, len(shipments), units, outcomes,
                                         timeline),
        "dec_result": receipt_rows(declarations, *receipts),
        "manifest": manifest_lines(rng, shipment_columns, units, timeline),
        "vessel_event": vessel_events(calls),
        "cargo_event": cargo_event_rows(shipment_columns, units, *cargo),
    }


def _null_empty(col: str) -> pl.Expr:
    return pl.when(pl.col(col) == "").then(None).otherwise(pl.col(col)).alias(col)


# ------------------------------------------------------------------------------------ declarations


def declare(rng: np.random.Generator, world: World, first_day: int, shipments: Shipments, office: np.ndarray,
            outcomes: Outcomes, timeline: Timeline) -> Declarations:
    """The declaration of every shipment; a re-declared shipment's first attempt was filed some hours
    before (after its manifest), and rejected."""
    attempted = np.flatnonzero(outcomes.redeclared)
    n = len(attempted)
    lag = lognormal_seconds(rng, 6, 0.8, n) + lognormal_seconds(rng, 1.5, 0.8, n)
    declared, manifest = timeline.declared_at[attempted], timeline.manifest_at[attempted]
    attempt_at = declared - lag
    attempt_at = np.where(attempt_at < manifest + 300, manifest + (declared - manifest) * rng.uniform(0.05, 0.3, n),
                          attempt_at)
    rejected_at = attempt_at + (declared - attempt_at) * rng.uniform(0.3, 0.8, n)
    accepted_at = attempt_at + (rejected_at - attempt_at) * rng.uniform(0.2, 0.6, n)
    was_accepted = rng.random(n) < 0.5

    shipment = np.concatenate([np.arange(len(shipments)), attempted])
    declared_at = np.concatenate([timeline.declared_at, attempt_at])
    customs_master = office[shipment]
    if world.has_quirk("unknown_codes"):
        customs_master = with_unknown_offices(world, first_day, shipments.port[shipment], customs_master)
    return Declarations(shipment=shipment, declared_at=declared_at, customs_master=customs_master,
                        entry_id=entry_ids(world, customs_master, declared_at, shipments.is_import[shipment]),
                        advance=np.where(declared_at < timeline.arrival_at[shipment], "Y", "N"), attempted=attempted,
                        attempt_accepted_at=accepted_at, attempt_was_accepted=was_accepted,
                        attempt_rejected_at=rejected_at)


def entry_ids(world: World, customs_master: np.ndarray, declared_at: np.ndarray, is_import: np.ndarray) -> np.ndarray:
    """ENTRY_ID: office (4) + year of declaration (4) + I/E flag (1) + the office's running number (9),
    numbered in order of declaration per office, year and flag."""
    n = len(customs_master)
    flag = np.where(is_import, "1", "0")
    year = (declared_at.astype("datetime64[s]").astype("datetime64[Y]").astype(int) + 1970) if n else np.empty(0, int)
    number = np.zeros(n, dtype=np.int64)
    order = np.lexsort((declared_at, flag, year, customs_master))
    keys = list(zip(customs_master[order], year[order], flag[order]))
    start = date_of(world.start_day)
    i = 0
    while i < n:
        j = i
        while j < n and keys[j] == keys[i]:
            j += 1
        key = (str(keys[i][0]), int(keys[i][1]), str(keys[i][2]))
        if key not in world.entry_sequences:
            world.entry_sequences[key] = (1 + (start.timetuple().tm_yday - 1) * ENTRIES_PER_DAY_BEFORE_START
                                          if key[1] == start.year else 1)
        number[order[i:j]] = world.entry_sequences[key] + np.arange(j - i)
        world.entry_sequences[key] += j - i
        i = j
    return np.array([f"{c}{y}{f}{s:09d}" for c, y, f, s in zip(customs_master, year, flag, number)])


def declaration_versions(rng: np.random.Generator, shipment_columns: pl.DataFrame, declarations: Declarations,
                         n_shipments: int, units: Units, outcomes: Outcomes, timeline: Timeline) -> pl.DataFrame:
    """dec_head: version 1 of every declaration, version 2 (the complete one) of two-step declarations."""
    two_step = np.flatnonzero(outcomes.two_step)
    version_of = np.concatenate([np.arange(len(declarations)), two_step])  # the declaration of each version
    of_shipment = declarations.shipment[version_of]
    declared_at = np.concatenate([declarations.declared_at, timeline.completed_at[two_step]])
    written_at = declared_at + rng.uniform(2, 90, len(declared_at))
    summary = outcomes.two_step[declarations.shipment] & (np.arange(len(declarations)) < n_shipments)
    step = np.concatenate([np.where(summary, "1", ""), np.full(len(two_step), "2")])
    # the complete declaration corrects the summary's weight now and then
    correction = np.where(rng.random(len(two_step)) < 0.3, 1 + rng.uniform(-0.01, 0.01, len(two_step)), 1)
    weight = units.shipment_gross_weight[of_shipment] * np.concatenate([np.ones(len(declarations)), correction])
    real = version_of < n_shipments  # not a rejected first attempt
    shipside = outcomes.shipside_pickup | outcomes.shipside_loading
    rows = shipment_columns[of_shipment].with_columns(
        pl.Series("ENTRY_ID", declarations.entry_id[version_of]),
        pl.Series("CUSTOM_MASTER", declarations.customs_master[version_of]),
        pl.Series("UPDATE_TIME", written_at.astype(np.int64)), pl.Series("D_DATE", declared_at.astype(np.int64)),
        pl.Series("DECL_STEP", step), pl.Series("ADVANCE", declarations.advance[version_of]),
        pl.Series("SHIPSIDE", np.where(real & shipside[of_shipment], "Y", "N")),
        pl.Series("RBI", np.where(real & outcomes.released_before_inspection[of_shipment], "Y", "N")),
        pl.Series("GROSS_WT", np.round(weight, 1)),
        pl.Series("_first_version", (np.arange(len(version_of)) < len(declarations)).astype(np.int8)),
        # a later version may be re-sent (quirk versions), except the summary a complete declaration replaces
        pl.Series("_can_be_resent", (~(outcomes.two_step[of_shipment] & real & (step == "1"))).astype(np.int8)),
    ).select(*KINDS["dec_head"].columns, "_first_version", "_can_be_resent")
    return rows.with_columns(_null_empty("DECL_STEP"), _null_empty("VESSEL_ID"), _null_empty("VOYAGE_NO"),
                             pl.col("UPDATE_TIME").alias("_at"))


# -------------------------------------------------------------------------------------- receipts


def customs_receipts(rng: np.random.Generator, declarations: Declarations, n: int, outcomes: Outcomes,
                     timeline: Timeline) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(declaration, CHANNEL, time, note) of every receipt sent: declared (7), accepted (L), rejected (E),
    tax notices (T), inspection (C), hold (H) and re-examination (M), release (P/I/K/B), closed (R),
    cancelled (A before, D after release), and the complete declaration's 7 and L of two-step ones."""
    shipments = np.arange(n)
    attempts = n + np.arange(len(declarations.attempted))
    receipts = Events()
    receipts.add(np.arange(len(declarations)), "7", declarations.declared_at + rng.uniform(1, 60, len(declarations)))
    receipts.add(shipments, "L", timeline.accepted_at)
    accepted_attempt = declarations.attempt_was_accepted
    receipts.add(attempts[accepted_attempt], "L", declarations.attempt_accepted_at[accepted_attempt])
    receipts.add(attempts, "E", declarations.attempt_rejected_at)
    rejected = outcomes.rejected_for_good
    receipts.add(shipments[rejected], "E", timeline.rejected_at[rejected])
    notices = outcomes.tax_notices[outcomes.taxed]
    tax_receipt = np.repeat(shipments[outcomes.taxed], notices)
    tax_number = np.arange(len(tax_receipt)) - np.repeat(np.cumsum(notices) - notices, notices)  # 0, 1, 2 per shipment
    receipts.add(tax_receipt, "T",
                 timeline.tax_notified_at[tax_receipt] + tax_number * rng.uniform(1, 40, len(tax_receipt)),
                 extra=tax_number)
    receipts.add(shipments[outcomes.inspected], "C", timeline.inspection_ordered_at[outcomes.inspected])
    receipts.add(shipments[outcomes.held], "H", timeline.held_at[outcomes.held])
    receipts.add(shipments[outcomes.held], "M", timeline.re_examined_at[outcomes.held])
    released = ~outcomes.not_released
    receipts.add(shipments[released], timeline.release_channel[released], timeline.released_at[released])
    closed = released & ~outcomes.cancelled_after_release
    receipts.add(shipments[closed], "R", timeline.closed_at[closed])
    cancelled = outcomes.cancelled_before_release
    receipts.add(shipments[cancelled], "A", timeline.cancelled_before_release_at[cancelled])
    cancelled = outcomes.cancelled_after_release
    receipts.add(shipments[cancelled], "D", timeline.cancelled_after_release_at[cancelled])
    two_step = outcomes.two_step
    receipts.add(shipments[two_step], "7", timeline.completed_at[two_step] + rng.uniform(1, 60, two_step.sum()))
    receipts.add(shipments[two_step], "L",
                 timeline.completed_at[two_step] + lognormal_seconds(rng, 0.1, 0.8, two_step.sum()))
    declaration, channel, at, extra = receipts.arrays()
    # nothing after a declaration's end but the receipt that ends it; first attempts end with their E
    ends = np.isin(channel, ["E", "A", "D"])
    sent = ends | (declaration >= n) | (at < timeline.ended_at[np.minimum(declaration, n - 1)] if n else True)
    declaration, channel, at, extra = declaration[sent], channel[sent], at[sent], extra[sent]
    note = np.empty(len(declaration), dtype=object)
    for code, notes in RECEIPT_NOTES.items():
        of_code = channel == code
        note[of_code] = np.array(notes)[rng.integers(0, len(notes), of_code.sum())]
    of_code = channel == "T"
    note[of_code] = np.array(TAX_NOTES)[np.clip(extra[of_code], 0, 2)]
    return declaration, channel, at, note.astype(str)


def receipt_rows(declarations: Declarations, declaration: np.ndarray, channel: np.ndarray, at: np.ndarray,
                 note: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({
        "ENTRY_ID": declarations.entry_id[declaration], "CHANNEL": channel, "NOTICE_DATE": at.astype(np.int64),
        "CUSTOM_MASTER": declarations.customs_master[declaration], "NOTE": note,
    }, schema={"ENTRY_ID": pl.String, "CHANNEL": pl.String, "NOTICE_DATE": pl.Int64, "CUSTOM_MASTER": pl.String,
               "NOTE": pl.String}).with_columns(pl.col("NOTICE_DATE").alias("_at"))


# ---------------------------------------------------------------------------------- the port's rows


def _containers(units: Units) -> pl.DataFrame:
    return pl.DataFrame({"CONTAINER_NO": units.container_no}, schema={"CONTAINER_NO": pl.String}).with_columns(
        _null_empty("CONTAINER_NO"))


def manifest_lines(rng: np.random.Generator, shipment_columns: pl.DataFrame, units: Units,
                   timeline: Timeline) -> pl.DataFrame:
    """One line per unit; `_arrival_at`: a later manifest version must still precede the arrival."""
    # a bill's manifest is one message: every line of it has the message's UPDATE_TIME (the draw is kept so
    # the random streams after it stay as they were)
    rng.uniform(0, 5, len(units))
    written_at = timeline.manifest_at[units.shipment].astype(np.int64)
    lines = pl.concat([shipment_columns[units.shipment].select("VESSEL_ID", "VOYAGE_NO", "PORT_CODE", "BILL_NO"),
                       _containers(units)], how="horizontal")
    return lines.with_columns(
        pl.Series("GROSS_WT", units.gross_weight), pl.Series("UPDATE_TIME", written_at),
        pl.Series("_arrival_at", timeline.arrival_at[units.shipment].astype(np.int64)),
    ).with_columns(_null_empty("VESSEL_ID"), _null_empty("VOYAGE_NO"), pl.col("UPDATE_TIME").alias("_at"))


def cargo_events(rng: np.random.Generator, shipments: Shipments, units: Units, outcomes: Outcomes,
                 timeline: Timeline) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit, EVENT_CODE, time) of the terminal's events: imports discharged, tallied, weighed (bulk),
    out of the gate; exports reported, loaded, tallied; inspections and certificates."""
    of = units.shipment
    unit = np.arange(len(units))
    events = Events()
    imported = shipments.is_import[of]
    events.add(unit[imported], "DISC_DONE", timeline.discharged_at[imported])
    discharged = timeline.discharged_at
    events.add(unit[imported], "TALLY", discharged[imported] + lognormal_seconds(rng, 0.5, 0.6, imported.sum()))
    bulk = shipments.bulk[of]
    events.add(unit[bulk], "WEIGHT_DONE", discharged[bulk] + lognormal_seconds(rng, 8, 0.5, bulk.sum()))
    # out of the gate after release and discharge (and an inspection before release); some containers wait long
    gate_from = np.maximum(timeline.released_at[of], discharged)
    inspected_first = (outcomes.inspected & ~outcomes.released_before_inspection)[of]
    gate_from = np.where(inspected_first, np.maximum(gate_from, timeline.inspected_at[of]), gate_from)
    n = len(units)
    gate_out = gate_from + np.where(
        units.is_container,
        lognormal_seconds(rng, 12, 1.0, n) + (rng.random(n) < 0.05) * lognormal_seconds(rng, 100, 0.6, n),
        np.where(shipments.bulk[of], lognormal_seconds(rng, 30, 0.7, n), lognormal_seconds(rng, 3, 0.8, n)))
    gate_out = np.where(outcomes.shipside_pickup[of], discharged + lognormal_seconds(rng, 0.6, 0.5, n), gate_out)
    out = imported & ~outcomes.not_released[of]
    events.add(unit[out], "GATE_OUT", gate_out[out])
    exported = shipments.is_export[of]
    events.add(unit[exported], "ARRIVAL_REPORT", timeline.arrival_reported_at[exported])
    loaded = exported & ~outcomes.not_released[of] & ~outcomes.cancelled_after_release[of]
    events.add(unit[loaded], "LOADED", timeline.loaded_at[loaded])
    events.add(unit[loaded], "TALLY", timeline.loaded_at[loaded] + lognormal_seconds(rng, 0.3, 0.6, loaded.sum()))
    # inspection: every container of an inspected container bill, else one bill-level event;
    # the last INSP_DONE of the bill is the inspection time
    inspected = (outcomes.inspected & ~outcomes.not_released)[of]
    room = np.minimum(HOUR, np.maximum(timeline.inspected_at - timeline.inspection_ordered_at, 0) / 2)[of]
    events.add(unit[inspected], "INSP_DONE", timeline.inspected_at[of[inspected]]
               - (units.position[inspected] > 0) * room[inspected] * rng.random(n)[inspected])
    certified = (outcomes.released_before_inspection & ~outcomes.not_released)[of] & (units.position == 0)
    events.add(unit[certified], "CERT_ISSUED", timeline.certified_at[of[certified]])
    unit, code, at, _ = events.arrays()
    return unit, code, at


def cargo_event_rows(shipment_columns: pl.DataFrame, units: Units, unit: np.ndarray, code: np.ndarray,
                     at: np.ndarray) -> pl.DataFrame:
    """Bill-level events (bulk, air) and certificates carry no container number."""
    bills = shipment_columns[units.shipment[unit]].select("VESSEL_ID", "VOYAGE_NO", "PORT_CODE", "BILL_NO")
    rows = pl.concat([bills, _containers(units)[unit]], how="horizontal")
    return rows.with_columns(
        pl.Series("EVENT_CODE", code), pl.Series("EVENT_TIME", at.astype(np.int64)),
        pl.Series("_bill_level", ~units.is_container[unit]),
    ).with_columns(
        pl.when(pl.col("_bill_level") | pl.col("EVENT_CODE").is_in(["CERT_ISSUED"])).then(None)
        .otherwise(pl.col("CONTAINER_NO")).alias("CONTAINER_NO"),
        _null_empty("VESSEL_ID"), _null_empty("VOYAGE_NO"), pl.col("EVENT_TIME").alias("_at"),
    ).drop("_bill_level").select(*KINDS["cargo_event"].columns, "_at")


def vessel_events(calls: VesselCalls) -> pl.DataFrame:
    """The block's calls (the container calls of its days and its bulk calls): at anchorage (reported by
    the maritime safety administration, CSM004), berthed, departed (the port community system)."""
    events = Events()
    call = np.arange(len(calls))
    anchored = ~np.isnan(calls.anchored_at)
    events.add(call[anchored], "ATA_ANCH", calls.anchored_at[anchored])
    events.add(call, "ATA_BERTH", calls.berthed_at)
    events.add(call, "ATD_BERTH", calls.departed_at)
    call, code, at, _ = events.arrays()
    return pl.DataFrame({
        "VESSEL_ID": calls.vessel_id[call], "VOYAGE_NO": calls.voyage_no[call], "PORT_CODE": calls.port_code[call],
        "EVENT_CODE": code, "EVENT_TIME": at.astype(np.int64),
        "SOURCE": np.where(code == "ATA_ANCH", "CSM004", np.char.add("PCS-", calls.port_code[call].astype(str))),
    }, schema={"VESSEL_ID": pl.String, "VOYAGE_NO": pl.String, "PORT_CODE": pl.String, "EVENT_CODE": pl.String,
               "EVENT_TIME": pl.Int64, "SOURCE": pl.String}).with_columns(pl.col("EVENT_TIME").alias("_at"))
