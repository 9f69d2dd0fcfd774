"""Write a delivery exactly as the single-window exports arrive (export contract, "Delivery").

Used by the export simulator and by tests that hand-write small deliveries. Rows are given per
file kind as polars DataFrames or lists of dicts keyed by header name (values are the text as
it should appear in the file; None is written as an empty field).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import polars as pl

from clearance.contract import KINDS, MANIFEST_NAME, data_file_name

Rows = pl.DataFrame | Sequence[Mapping[str, object]]


def _rows_to_frame(kind: str, rows: Rows) -> pl.DataFrame:
    if isinstance(rows, pl.DataFrame):
        return rows
    columns: list[str] = []
    for row in rows:  # keep the contract order, then any extra columns in order of appearance
        for name in row:
            if name not in columns:
                columns.append(name)
    if not columns:
        columns = list(KINDS[kind].columns)
    data = {c: [None if r.get(c) is None else str(r.get(c)) for r in rows] for c in columns}
    return pl.DataFrame(data, schema={c: pl.String for c in columns})


def render_csv(frame: pl.DataFrame, encoding: str, bom: bool = False) -> bytes:
    """CSV text as the exports write it: header line, '"' quoting, CRLF line ends."""
    frame = frame.select(pl.all().cast(pl.String))
    text = frame.write_csv(line_terminator="\r\n", quote_style="necessary", null_value="")
    data = text.encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom and encoding == "utf-8" else data


def csv_record_count(data: bytes, encoding: str) -> int:
    """Data rows in a CSV file (quoted line breaks do not start a row), header excluded."""
    text = data.decode(encoding, errors="replace")
    return max(sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1, 0)


def manifest_entry(path: Path, rows: int) -> dict:
    return {"name": path.name, "rows": rows, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def write_manifest(folder: Path, export_date: str, entries: list[dict], generated_at: str | None = None) -> Path:
    """MANIFEST.json is written last, atomically: its presence means the delivery is complete."""
    manifest = {
        "export_date": export_date,
        "generated_at": generated_at or datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "files": entries,
    }
    tmp = folder / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_NAME)
    return folder / MANIFEST_NAME


def write_delivery(
    inbox: Path,
    export_date: str,
    files: Mapping[str, Rows | Sequence[Rows]],
    *,
    bom_kinds: frozenset[str] | set[str] = frozenset(),
    generated_at: str | None = None,
) -> Path:
    """Write `<inbox>/<export_date>/` with one file per kind (or several, given a list of parts).

    Returns the delivery folder. MANIFEST.json is written after every data file.
    """
    folder = Path(inbox) / export_date
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for kind, parts in files.items():
        spec = KINDS[kind]
        if isinstance(parts, pl.DataFrame) or not parts or isinstance(parts[0], Mapping):
            parts = [parts]
        for seq, rows in enumerate(parts, start=1):
            frame = _rows_to_frame(kind, rows)
            path = folder / data_file_name(kind, export_date, seq)
            path.write_bytes(render_csv(frame, spec.encoding, bom=kind in bom_kinds))
            entries.append(manifest_entry(path, frame.height))
    write_manifest(folder, export_date, entries, generated_at)
    return folder
