"""When things happen to a shipment: the milestones of docs/spec/clearance-metrics.md, stage by stage.

Durations are heavy-tailed (lognormal, see streams.lognormal_seconds). The stages draw from the
block's random stream in the order draw_timeline calls them: that order is part of the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clearance_tools.simulator.liaoning import FLOW_ADVANCE_SHARE, PORT_INDEX, SEA_PORTS
from clearance_tools.simulator.shipments import Carriage, Shipments, Units
from clearance_tools.simulator.streams import DAY, HOUR, lognormal_seconds, per_shipment
from clearance_tools.simulator.world import World


@dataclass
class Outcomes:
    """Per shipment: the reform measures it uses and what customs does with it."""

    advance_declaration: np.ndarray  # declared before arrival
    taxed: np.ndarray
    tax_notices: np.ndarray  # receipts T: one per tax (duty, import VAT, consumption tax)
    inspected: np.ndarray
    released_before_inspection: np.ndarray  # ores: released, then inspected and certified
    held: np.ndarray  # on hold (H), then re-examined (M)
    rejected: np.ndarray
    redeclared: np.ndarray  # rejected, then declared again under a new entry ID (the first one ends rejected)
    rejected_for_good: np.ndarray
    cancelled_before_release: np.ndarray
    cancelled_after_release: np.ndarray
    shipside_pickup: np.ndarray  # imports released at the ship's side before discharge is complete
    two_step: np.ndarray  # two-step declaration: the summary (step 1), then the complete one (step 2)
    shipside_loading: np.ndarray  # exports loaded straight onto the ship

    @property
    def not_released(self) -> np.ndarray:
        return self.rejected_for_good | self.cancelled_before_release


def draw_outcomes(rng: np.random.Generator, shipments: Shipments) -> Outcomes:
    # every draw is over all shipments, so the streams do not depend on the mix
    def chance() -> np.ndarray:
        return rng.random(len(shipments))

    imports, exports, sea = shipments.is_import, shipments.is_export, shipments.by_sea
    dalian_or_yingkou = np.isin(shipments.port, [PORT_INDEX["DLC"], PORT_INDEX["YKP"]])
    advance = chance() < FLOW_ADVANCE_SHARE[shipments.flow]
    taxed = chance() < np.where(imports, np.where(shipments.auto_parts, 0.95, np.where(shipments.grain, 0.9, np.where(
        shipments.ore, 0.6, 0.72))), 0.02)
    tax_notices = np.where(shipments.auto_parts, rng.integers(2, 4, len(shipments)), np.where(chance() < 0.7, 2, 1))
    inspected = chance() < np.where(imports, np.where(shipments.ore, 1.0, np.where(shipments.grain, 0.5, 0.04)), 0.025)
    released_before_inspection = shipments.ore & inspected & (chance() < 0.7)
    held = chance() < 0.01
    rejected = chance() < 0.01
    redeclared = rejected & (chance() < 0.6)
    rejected_for_good = rejected & ~redeclared
    cancelled = ~rejected & (chance() < 0.005)
    cancelled_after_release = cancelled & (chance() < 0.3)
    shipside_pickup = (imports & sea & ~shipments.bulk & dalian_or_yingkou & (chance() < 0.10) & ~inspected & ~held
                       & ~rejected_for_good & ~cancelled)
    advance |= shipside_pickup  # a ship-side pickup is declared in advance
    two_step = imports & sea & (chance() < 0.12) & ~rejected_for_good & ~cancelled
    shipside_loading = exports & sea & dalian_or_yingkou & (chance() < 0.05)
    return Outcomes(advance_declaration=advance, taxed=taxed, tax_notices=tax_notices, inspected=inspected,
                    released_before_inspection=released_before_inspection, held=held, rejected=rejected,
                    redeclared=redeclared, rejected_for_good=rejected_for_good,
                    cancelled_before_release=cancelled & ~cancelled_after_release,
                    cancelled_after_release=cancelled_after_release, shipside_pickup=shipside_pickup,
                    two_step=two_step, shipside_loading=shipside_loading)


@dataclass
class Timeline:
    """Times (seconds, see streams) of a block's shipments, per shipment unless said per unit.

    Filled stage by stage by draw_timeline. NaN where a milestone does not apply (an export's discharge);
    times are drawn for every shipment, and the receipts after a declaration's end are not sent (records)."""

    discharged_at: np.ndarray = None  # per unit (imports): DISC_DONE
    first_discharged_at: np.ndarray = None
    last_discharged_at: np.ndarray = None
    at_port_at: np.ndarray = None  # exports: the goods reach the port (the first unit's ARRIVAL_REPORT)
    arrival_reported_at: np.ndarray = None  # per unit (exports): ARRIVAL_REPORT
    last_arrival_reported_at: np.ndarray = None
    arrival_at: np.ndarray = None  # the metrics spec's arrival
    manifest_at: np.ndarray = None  # the bill's manifest message
    declared_at: np.ndarray = None
    accepted_at: np.ndarray = None  # receipt L
    tax_notified_at: np.ndarray = None  # the first receipt T
    inspection_ordered_at: np.ndarray = None  # receipt C
    held_at: np.ndarray = None  # receipt H
    re_examined_at: np.ndarray = None  # receipt M
    inspected_at: np.ndarray = None  # the last INSP_DONE
    certified_at: np.ndarray = None  # CERT_ISSUED (release before inspection)
    released_at: np.ndarray = None
    release_channel: np.ndarray = None  # P, I (paperless), K (guarantee), B (deposit)
    loaded_at: np.ndarray = None  # per unit (exports): LOADED
    last_loaded_at: np.ndarray = None
    closed_at: np.ndarray = None  # receipt R
    completed_at: np.ndarray = None  # two-step declarations: the complete declaration (step 2)
    rejected_at: np.ndarray = None  # receipt E of a declaration rejected for good
    cancelled_before_release_at: np.ndarray = None  # receipt A
    cancelled_after_release_at: np.ndarray = None  # receipt D
    ended_at: np.ndarray = None  # the declaration's end (rejected, cancelled), inf for the others


def draw_timeline(rng: np.random.Generator, world: World, shipments: Shipments, units: Units, carriage: Carriage,
                  outcomes: Outcomes, first_day: int, last_day: int) -> Timeline:
    timeline = Timeline()
    discharge(rng, shipments, units, carriage, timeline)
    export_arrival_reports(rng, shipments, units, timeline)
    arrival_and_manifest(rng, shipments, carriage, timeline)
    # the goods are there to be released: discharged (imports), reported at the port (exports)
    ready = np.where(shipments.is_import, timeline.last_discharged_at, timeline.last_arrival_reported_at)
    declaration(rng, shipments, outcomes, carriage, timeline)
    customs(rng, shipments, outcomes, ready, timeline)
    shipside_pickup(rng, units, outcomes, carriage, timeline)
    timeline.release_channel = np.array(["P", "I", "K", "B"])[
        rng.choice(4, len(shipments), p=[0.8, 0.12, 0.04, 0.04])]
    export_loading(rng, world, shipments, units, carriage, timeline, first_day, last_day)
    closing(rng, shipments, timeline)
    endings(rng, shipments, outcomes, timeline)
    return timeline


def discharge(rng: np.random.Generator, shipments: Shipments, units: Units, carriage: Carriage,
              timeline: Timeline) -> None:
    """Imports: each unit discharged while the vessel is alongside (bulk towards the end), or unloaded
    from the train or the aircraft."""
    of = units.shipment
    imports = shipments.is_import
    berthed, departed = carriage.berthed_at, carriage.departed_at
    unloaded = carriage.train_or_flight_arrived_at
    at = np.full(len(units), np.nan)
    mask = (imports & shipments.by_sea & ~shipments.bulk)[of]
    at[mask] = berthed[of[mask]] + (departed - berthed)[of[mask]] * (0.05 + 0.9 * rng.beta(1.6, 1.2, mask.sum()))
    mask = shipments.bulk[of]
    at[mask] = berthed[of[mask]] + (departed - berthed)[of[mask]] * rng.uniform(0.8, 0.97, mask.sum())
    mask = (imports & shipments.by_rail)[of]
    at[mask] = unloaded[of[mask]] + lognormal_seconds(rng, 1.5, 0.5, mask.sum())
    mask = (imports & shipments.by_air)[of]
    at[mask] = unloaded[of[mask]] + lognormal_seconds(rng, 1.0, 0.5, mask.sum())
    timeline.discharged_at = at
    timeline.first_discharged_at = per_shipment(np.fmin, at, units.first_unit)
    timeline.last_discharged_at = per_shipment(np.fmax, at, units.first_unit)


def export_arrival_reports(rng: np.random.Generator, shipments: Shipments, units: Units, timeline: Timeline) -> None:
    """Exports: the goods reach the port, mostly in the afternoon; a bill's further containers follow."""
    n = len(shipments)
    hour = np.where(rng.random(n) < 0.75, np.clip(rng.normal(14, 3.5, n), 0.2, 23.9), rng.uniform(0, 24, n))
    timeline.at_port_at = shipments.arrival_day * DAY + hour * HOUR
    of = units.shipment
    at = np.full(len(units), np.nan)
    mask = shipments.is_export[of]
    at[mask] = timeline.at_port_at[of[mask]] + (units.position[mask] > 0) * lognormal_seconds(
        rng, 0.5, 0.8, mask.sum())
    timeline.arrival_reported_at = at
    timeline.last_arrival_reported_at = per_shipment(np.fmax, at, units.first_unit)


def _manifest_precedes(shipments: Shipments, carriage: Carriage, timeline: Timeline) -> np.ndarray:
    """What the manifest precedes: the vessel's, train's or flight's arrival (imports), the goods' (exports)."""
    return np.where(shipments.is_import & ~shipments.by_sea, carriage.train_or_flight_arrived_at, timeline.arrival_at)


def arrival_and_manifest(rng: np.random.Generator, shipments: Shipments, carriage: Carriage,
                         timeline: Timeline) -> None:
    # arrival (metrics spec): ATA_ANCH, else ATA_BERTH; no vessel call: first DISC_DONE; export: first ARRIVAL_REPORT
    vessel_arrival = np.where(np.isnan(carriage.anchored_at), carriage.berthed_at, carriage.anchored_at)
    import_arrival = np.where(shipments.by_sea, vessel_arrival, timeline.first_discharged_at)
    timeline.arrival_at = np.where(shipments.is_import, import_arrival, timeline.at_port_at)
    n = len(shipments)
    timeline.manifest_at = _manifest_precedes(shipments, carriage, timeline) - np.where(
        shipments.is_import, np.clip(lognormal_seconds(rng, 40, 0.7, n), 3 * HOUR, 11 * DAY),
        np.clip(lognormal_seconds(rng, 14, 0.6, n), HOUR, 5 * DAY))


def declaration(rng: np.random.Generator, shipments: Shipments, outcomes: Outcomes, carriage: Carriage,
                timeline: Timeline) -> None:
    """Declared in advance: between the manifest and the arrival (at least two minutes before it);
    otherwise after the arrival (imports up to 13 days, exports within the hour or so)."""
    n, imports = len(shipments), shipments.is_import
    manifest, arrival = timeline.manifest_at, timeline.arrival_at
    precedes = _manifest_precedes(shipments, carriage, timeline)
    share = np.where(outcomes.shipside_pickup, rng.uniform(0.2, 0.6, n),
                     np.where(imports, rng.uniform(0.25, 0.97, n), rng.uniform(0.3, 0.97, n)))
    in_advance = np.minimum(manifest + (precedes - manifest) * share, arrival - 120)
    after_arrival = arrival + np.where(imports, np.clip(lognormal_seconds(rng, 24, 1.0, n), 0.2 * HOUR, 13 * DAY),
                                       lognormal_seconds(rng, 0.25, 0.8, n))
    timeline.declared_at = np.where(outcomes.advance_declaration, in_advance, after_arrival)


def customs(rng: np.random.Generator, shipments: Shipments, outcomes: Outcomes, ready: np.ndarray,
            timeline: Timeline) -> None:
    """Acceptance, document review, taxes, holds, inspection and release (released once the goods are
    there and every step that applies is done)."""
    n, imports = len(shipments), shipments.is_import

    def hours(median, sigma, **clip):
        return lognormal_seconds(rng, median, sigma, n, **clip)

    accepted = timeline.declared_at + np.maximum(hours(np.where(imports, 0.1, 0.08), 0.8), 20)
    document_review = np.where(imports, hours(1.2, 1.1), hours(0.35, 1.0))
    tax_notified = accepted + hours(0.3, 0.8)
    payment = np.where(imports, hours(1.5, 1.0), hours(0.5, 0.8))
    inspection_ordered = accepted + hours(0.5, 0.8)
    held = accepted + hours(np.where(imports, 2.0, 1.0), 1.0)
    re_examined = held + hours(np.where(imports, 18.0, 10.0), 0.8)
    inspection = np.where(imports, np.where(shipments.ore, hours(30, 0.6), np.where(
        shipments.grain, hours(16, 0.6), np.where(shipments.by_air, hours(6, 0.7), hours(20, 0.7)))), hours(4, 0.7))
    inspected = np.maximum(inspection_ordered, ready) + inspection

    released = np.maximum(accepted + document_review, ready + np.where(imports, hours(2.0, 1.0), hours(0.45, 0.9)))
    released = np.where(outcomes.taxed, np.maximum(released, tax_notified + payment), released)
    released = np.where(outcomes.held, np.maximum(released, re_examined + hours(1.0, 0.8)), released)
    inspected_first = outcomes.inspected & ~outcomes.released_before_inspection
    released = np.where(inspected_first,
                        np.maximum(released, inspected + hours(np.where(imports, 1.5, 0.5), 0.8)), released)

    # release before inspection: C, release, then INSP_DONE and CERT_ISSUED
    rbi = outcomes.released_before_inspection
    inspected = np.where(rbi, released + hours(28, 0.6), inspected)
    timeline.certified_at = inspected + hours(96, 0.5, hi=5)
    inspection_ordered = np.where(rbi, accepted + (released - accepted) * rng.uniform(0.1, 0.6, n), inspection_ordered)

    timeline.accepted_at, timeline.tax_notified_at, timeline.held_at = accepted, tax_notified, held
    timeline.re_examined_at, timeline.inspection_ordered_at = re_examined, inspection_ordered
    timeline.inspected_at, timeline.released_at = inspected, released


def shipside_pickup(rng: np.random.Generator, units: Units, outcomes: Outcomes, carriage: Carriage,
                    timeline: Timeline) -> None:
    """Ship-side pickup: released right after berthing, before discharge completes (at least two hours
    before the vessel leaves, else it is an ordinary release); the containers then come off."""
    n = len(outcomes.taxed)
    released = np.maximum(carriage.berthed_at + lognormal_seconds(rng, 0.8, 0.5, n),
                          timeline.accepted_at + lognormal_seconds(rng, 0.3, 0.6, n))
    paid = timeline.tax_notified_at + lognormal_seconds(rng, 0.5, 0.6, n)
    released = np.where(outcomes.taxed, np.maximum(released, paid), released)
    with np.errstate(invalid="ignore"):
        outcomes.shipside_pickup &= released < carriage.departed_at - 2 * HOUR
    timeline.released_at = np.where(outcomes.shipside_pickup, released, timeline.released_at)
    of = units.shipment
    mask = outcomes.shipside_pickup[of]
    released, departed = timeline.released_at[of[mask]], carriage.departed_at[of[mask]]
    timeline.discharged_at[mask] = released + (departed - released) * rng.uniform(0.05, 0.7, mask.sum())
    timeline.last_discharged_at = per_shipment(np.fmax, timeline.discharged_at, units.first_unit)


def export_loading(rng: np.random.Generator, world: World, shipments: Shipments, units: Units, carriage: Carriage,
                   timeline: Timeline, first_day: int, last_day: int) -> None:
    """Exports: by sea onto one of the first container calls of the port leaving after release (a sea
    export takes that call's port, vessel and voyage); by train shortly before it leaves; by air."""
    released = timeline.released_at
    sea_exports = np.flatnonzero(shipments.is_export & shipments.by_sea)
    if len(sea_exports):
        candidates = world.container_calls_of_days(range(max(world.start_day, first_day - 2), last_day + 10))
        for port in range(len(SEA_PORTS)):
            of_port = sea_exports[shipments.port[sea_exports] == port]
            if not len(of_port):
                continue
            calls = np.flatnonzero(candidates.port == port)
            calls = calls[np.argsort(candidates.departed_at[calls], kind="stable")]
            # the first call leaving two hours after release, or one of the two after it
            k = np.searchsorted(candidates.departed_at[calls], released[of_port] + 2 * HOUR) + np.minimum(
                rng.geometric(0.6, len(of_port)) - 1, 2)
            call = calls[np.minimum(k, len(calls) - 1)]
            for ours, theirs in ((carriage.port_code, candidates.port_code),
                                 (carriage.vessel_id, candidates.vessel_id),
                                 (carriage.voyage_no, candidates.voyage_no),
                                 (carriage.berthed_at, candidates.berthed_at),
                                 (carriage.departed_at, candidates.departed_at)):
                ours[of_port] = theirs[call]

    of = units.shipment
    loaded = np.full(len(units), np.nan)
    loading_from = np.maximum(released + 0.5 * HOUR, carriage.berthed_at)
    window = carriage.departed_at - 0.3 * HOUR - loading_from
    mask = (shipments.is_export & shipments.by_sea)[of]
    in_window = window[of[mask]] > 0
    loaded[mask] = np.where(in_window,
                            loading_from[of[mask]] + rng.random(mask.sum()) * np.where(in_window, window[of[mask]], 0),
                            released[of[mask]] + lognormal_seconds(rng, 6, 0.6, mask.sum()))
    train_leaves = released + lognormal_seconds(rng, 6, 0.6, len(shipments))
    mask = (shipments.is_export & shipments.by_rail)[of]
    loaded[mask] = np.maximum(released[of[mask]] + 300, train_leaves[of[mask]] - rng.uniform(0, 1800, mask.sum()))
    mask = (shipments.is_export & shipments.by_air)[of]
    loaded[mask] = released[of[mask]] + lognormal_seconds(rng, 4, 0.6, mask.sum())
    timeline.loaded_at = loaded
    timeline.last_loaded_at = per_shipment(np.fmax, loaded, units.first_unit)


def closing(rng: np.random.Generator, shipments: Shipments, timeline: Timeline) -> None:
    """Closed (R) after release (exports after loading); a two-step declaration is completed (step 2)
    within 2 hours to 13.5 days of release."""
    n, released = len(shipments), timeline.released_at
    timeline.closed_at = np.where(shipments.is_import, released + lognormal_seconds(rng, 40, 0.8, n),
                                  np.fmax(released, timeline.last_loaded_at) + lognormal_seconds(rng, 16, 0.7, n))
    timeline.completed_at = released + np.clip(lognormal_seconds(rng, 72, 0.6, n), 2 * HOUR, 13.5 * DAY)


def endings(rng: np.random.Generator, shipments: Shipments, outcomes: Outcomes, timeline: Timeline) -> None:
    """Rejected (before or after acceptance), cancelled before or after release: receipts after the end
    are not sent."""
    n = len(shipments)
    declared, accepted, released = timeline.declared_at, timeline.accepted_at, timeline.released_at
    timeline.rejected_at = np.where(rng.random(n) < 0.5, declared + (accepted - declared) * rng.uniform(0.3, 0.9, n),
                                    accepted + lognormal_seconds(rng, 3, 1.0, n))
    timeline.cancelled_before_release_at = accepted + (np.maximum(released, accepted + 600) - accepted) * rng.uniform(
        0.2, 0.9, n)
    timeline.cancelled_after_release_at = released + lognormal_seconds(rng, 20, 1.0, n)
    timeline.ended_at = np.where(outcomes.rejected_for_good, timeline.rejected_at, np.where(
        outcomes.cancelled_before_release, timeline.cancelled_before_release_at,
        np.where(outcomes.cancelled_after_release, timeline.cancelled_after_release_at, np.inf)))
