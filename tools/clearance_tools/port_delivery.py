"""One port's share of a delivery, as a delivery of its own: what a worker mapped per port would get.

Used by the benchmark to measure the cost of a night per port. Every file keeps the rows of the
port (PORT_CODE); status receipts, which carry no port, keep those of the port's declarations
(in the delivery, or loaded before).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl

from clearance.contract import KINDS
from clearance.ingest import RAW_LINE, decode, read_data_file, read_manifest
from clearance_tools.delivery_writer import manifest_entry, write_manifest


def write_port_delivery(inbox: Path, out_inbox: Path, export_date: str, port: str, state_db: Path) -> int:
    """Write `<out_inbox>/<export_date>/` with the port's rows of the delivery; returns the rows kept."""
    folder, out = Path(inbox) / export_date, Path(out_inbox) / export_date
    manifest = read_manifest(folder, export_date)
    files = [(entry, *read_data_file(folder, entry)) for entry in manifest["files"]]
    declared_here = pl.concat([frame.select("ENTRY_ID", "PORT_CODE") for _, report, frame in files
                               if report.kind == "dec_head"] or [pl.DataFrame({"ENTRY_ID": [], "PORT_CODE": []})])
    with duckdb.connect(str(state_db), read_only=True) as con:
        declared_before = con.execute("SELECT entry_id FROM core_declarations WHERE port_code = ?", [port]).fetchall()
    entries_of_port = set(declared_here.filter(pl.col("PORT_CODE") == port)["ENTRY_ID"].to_list()) | {
        e for (e,) in declared_before}

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    written, kept = [], 0
    for entry, report, frame in files:
        spec = KINDS[report.kind]
        keep = frame["ENTRY_ID"].is_in(list(entries_of_port)) if report.kind == "dec_result" else frame["PORT_CODE"] == port
        header = decode(entry["name"], (folder / entry["name"]).read_bytes(), spec.encoding).split("\r\n", 1)[0]
        lines = frame.filter(keep.fill_null(False))[RAW_LINE].to_list()
        path = out / entry["name"]
        path.write_bytes(("\r\n".join([header, *lines]) + "\r\n").encode(spec.encoding))
        written.append(manifest_entry(path, len(lines)))
        kept += len(lines)
    write_manifest(out, export_date, written)
    return kept
