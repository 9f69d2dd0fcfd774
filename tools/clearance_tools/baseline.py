"""The baseline the benchmark compares the pipeline with: shipment milestones and segments computed
the way an analyst would otherwise write them, with pandas groupby over the same staged events.

It follows docs/spec/clearance-metrics.md as the SQL models do (core_declarations,
core_declaration_status, core_vessel_calls, core_manifest_lines, core_bill_cargo, core_shipments),
so the benchmark can check that both give the same numbers, shipment by shipment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MILESTONES = ("arrival_at", "berthed_at", "discharged_at", "declared_at", "accepted_at", "inspection_ordered_at",
              "inspected_at", "released_at", "gate_out_at", "loaded_at")
SEGMENTS = ("overall_clearance_hours", "anchorage_wait_hours", "pre_declaration_hours", "customs_processing_hours",
            "inspection_hours", "port_exit_hours", "door_to_gate_hours")

STAGED_QUERIES = {
    "versions": "SELECT entry_id, version_written_at, direction, port_code, transport_mode_code, vessel_id, voyage_no, "
                "bill_no, decl_step, submitted_at, export_date, source_file, line_no FROM stg_declaration_versions",
    "receipts": "SELECT entry_id, receipt_meaning, notified_at FROM stg_declaration_receipts",
    "vessel": "SELECT vessel_id, voyage_no, port_code, event_code, event_at FROM stg_vessel_events",
    "cargo": "SELECT bill_no, container_no, event_code, event_at FROM stg_cargo_events WHERE bill_no IS NOT NULL",
    "manifest": "SELECT port_code, bill_no, container_no, version_written_at, export_date, source_file, line_no "
                "FROM stg_manifest_versions",
}


def read_staged(con) -> dict[str, pd.DataFrame]:
    """The staged events (bill numbers normalised, times typed) as pandas DataFrames."""
    return {name: con.execute(sql).df() for name, sql in STAGED_QUERIES.items()}


def _hours(later: pd.Series, earlier: pd.Series) -> pd.Series:
    # seconds boundaries crossed, as the pipeline's date_diff('second', ...) counts them
    return ((later.dt.floor("s") - earlier.dt.floor("s")) / np.timedelta64(1, "s")) / 3600.0


def shipments(staged: dict[str, pd.DataFrame]) -> pd.DataFrame:
    versions, receipts = staged["versions"], staged["receipts"]
    vessel, cargo, manifest = staged["vessel"], staged["cargo"], staged["manifest"]

    # declarations: the latest version's attributes; declared = the summary version (two-step) else the first
    ordered = versions.sort_values(["entry_id", "version_written_at", "export_date", "source_file", "line_no"])
    latest = ordered.groupby("entry_id", sort=False).tail(1).set_index("entry_id")
    first = ordered.groupby("entry_id", sort=False)["submitted_at"].first()
    summary = ordered[ordered["decl_step"] == "1"].groupby("entry_id", sort=False)["submitted_at"].first()
    declarations = latest[["direction", "port_code", "transport_mode_code", "vessel_id", "voyage_no", "bill_no"]].copy()
    declarations["declared_at"] = summary.reindex(declarations.index).fillna(first.reindex(declarations.index))

    # receipts: first of each milestone
    meaning = receipts.groupby(["entry_id", "receipt_meaning"], sort=False)["notified_at"].min().unstack()
    for column, receipt in (("accepted_at", "accepted"), ("inspection_ordered_at", "inspection_ordered"),
                            ("released_at", "released")):
        declarations[column] = meaning[receipt].reindex(declarations.index) if receipt in meaning else pd.NaT

    # vessel calls: arrival at anchorage, else at berth; berthing
    calls = vessel.groupby(["vessel_id", "voyage_no", "port_code", "event_code"], sort=False)["event_at"].min().unstack()
    calls = calls.reindex(columns=["ATA_ANCH", "ATA_BERTH"])
    calls["call_arrival_at"] = calls["ATA_ANCH"].fillna(calls["ATA_BERTH"])
    calls = calls.rename(columns={"ATA_BERTH": "call_berthed_at"})[["call_arrival_at", "call_berthed_at"]].reset_index()

    # bills: cargo milestones; gate-out once every container on the current manifest is out
    per_code = cargo.groupby(["bill_no", "event_code"], sort=False)["event_at"].agg(["min", "max"]).unstack()
    per_bill = pd.DataFrame(index=per_code.index)
    for name, code, how in (("first_discharged_at", "DISC_DONE", "min"), ("last_discharged_at", "DISC_DONE", "max"),
                            ("arrival_reported_at", "ARRIVAL_REPORT", "min"), ("last_inspected_at", "INSP_DONE", "max"),
                            ("last_loaded_at", "LOADED", "max"), ("last_gate_out_at", "GATE_OUT", "max")):
        per_bill[name] = per_code[(how, code)] if (how, code) in per_code else pd.NaT
    current = manifest.sort_values(["version_written_at", "export_date", "source_file", "line_no"]).assign(
        box=lambda f: f["container_no"].fillna("")).groupby(["port_code", "bill_no", "box"], sort=False).tail(1)
    boxes = current[current["container_no"].notna()][["bill_no", "container_no"]].drop_duplicates()
    out = cargo[(cargo["event_code"] == "GATE_OUT") & cargo["container_no"].notna()][["bill_no", "container_no"]]
    out = out.drop_duplicates().assign(out=True)
    progress = boxes.merge(out, on=["bill_no", "container_no"], how="left").groupby("bill_no")["out"].agg(
        on_manifest="size", gated_out="count")
    per_bill = per_bill.join(progress, how="outer")
    all_out = per_bill["on_manifest"].isna() | (per_bill["on_manifest"] == per_bill["gated_out"])
    per_bill["bill_gate_out_at"] = per_bill["last_gate_out_at"].where(all_out)

    s = declarations.reset_index().merge(calls, on=["vessel_id", "voyage_no", "port_code"], how="left")
    s = s.merge(per_bill.reset_index(), on="bill_no", how="left")
    imports, exports = s["direction"] == "import", s["direction"] == "export"
    by_vessel = (s["transport_mode_code"] == "2") & s["vessel_id"].notna()
    s["arrival_at"] = s["arrival_reported_at"].where(exports, s["call_arrival_at"].where(by_vessel, s["first_discharged_at"]))
    s["berthed_at"] = s["call_berthed_at"].where(imports)
    s["discharged_at"] = s["last_discharged_at"].where(imports)
    s["inspected_at"] = s["last_inspected_at"]
    s["gate_out_at"] = s["bill_gate_out_at"].where(imports)
    s["loaded_at"] = s["last_loaded_at"].where(exports)
    s["overall_clearance_hours"] = _hours(s["released_at"], s["arrival_at"])
    s["anchorage_wait_hours"] = _hours(s["berthed_at"], s["arrival_at"])
    s["pre_declaration_hours"] = _hours(s["declared_at"], s["arrival_at"])
    start = s[["arrival_at", "accepted_at"]].max(axis=1).where(s["arrival_at"].notna() & s["accepted_at"].notna())
    s["customs_processing_hours"] = _hours(s["released_at"], start)
    s["inspection_hours"] = _hours(s["inspected_at"], s["inspection_ordered_at"])
    s["port_exit_hours"] = _hours(s["gate_out_at"], s["released_at"])
    s["door_to_gate_hours"] = _hours(s["gate_out_at"], s["arrival_at"])
    return s[["entry_id", *MILESTONES, *SEGMENTS]].sort_values("entry_id").reset_index(drop=True)


def compare(baseline: pd.DataFrame, pipeline: pd.DataFrame) -> dict:
    """Shipment by shipment: the same declarations, every milestone equal, every segment within 1e-9 h."""
    b = baseline.set_index("entry_id").sort_index()
    p = pipeline.set_index("entry_id").sort_index()
    result = {"shipments": len(b), "same_shipments": b.index.equals(p.index), "differences": {}}
    if not result["same_shipments"]:
        result["only_in_baseline"] = len(b.index.difference(p.index))
        result["only_in_pipeline"] = len(p.index.difference(b.index))
        common = b.index.intersection(p.index)
        b, p = b.loc[common], p.loc[common]
    for column in MILESTONES:
        left, right = pd.to_datetime(b[column]), pd.to_datetime(p[column])
        differ = ~((left == right) | (left.isna() & right.isna()))
        if differ.any():
            result["differences"][column] = int(differ.sum())
    for column in SEGMENTS:
        left, right = b[column].astype(float), p[column].astype(float)
        differ = ~(((left - right).abs() < 1e-9) | (left.isna() & right.isna()))
        if differ.any():
            result["differences"][column] = int(differ.sum())
    result["equal"] = result["same_shipments"] and not result["differences"]
    return result
