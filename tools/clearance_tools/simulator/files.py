"""Writing a delivery folder: the day's rows of each kind as CSV files, then MANIFEST.json last
(export contract, "Delivery"), with the file quirks and any requested break."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl

from clearance.contract import DATA_FILE_PATTERN, KINDS, MANIFEST_NAME, data_file_name
from clearance_tools.delivery_writer import csv_record_count, manifest_entry, render_csv, write_manifest
from clearance_tools.simulator.quirks import (
    KIND_ORDER, bad_rows_per_kind, change_field_counts, file_layout, format_times, split_points, truncated,
    with_bad_rows,
)
from clearance_tools.simulator.streams import DELIVERY_STREAM, date_of, random_stream
from clearance_tools.simulator.world import World

MANIFEST_WRITTEN_AT = "00:40:12"  # the exporter writes MANIFEST.json early in the morning after the export date


def write_delivery(world: World, inbox: Path, day: int, parts: dict[str, list[pl.DataFrame]],
                   breaks: dict[str, str]) -> tuple[Path, int, int]:
    """Write `<inbox>/<export date>/` from the rows transmitted on `day` (frames per kind, in the order
    they were generated); breaks: {kind: how}. Returns the folder, its rows and its new declarations."""
    export_date = date_of(day).isoformat()
    folder = _emptied_delivery_folder(inbox, export_date)
    frames = {kind: _rows_of_kind(kind, parts.get(kind) or []) for kind in KIND_ORDER}
    bad_rows = bad_rows_per_kind(world, day, {kind: frame.height for kind, frame in frames.items()})
    entries, rows, declarations = [], 0, 0
    for kind_number, kind in enumerate(KIND_ORDER):
        rng = random_stream(world.seed, DELIVERY_STREAM, day, kind_number)
        frame = _as_text(frames[kind], kind)
        if kind == "dec_head":
            declarations = int(frame["_first_version"].sum())
        if bad_rows[kind]:
            frame = with_bad_rows(frame, bad_rows[kind], kind, day, rng)
        if world.has_quirk("shuffle"):  # rows in no particular order
            frame = frame[rng.permutation(frame.height)]
        else:
            frame = frame.sort(["_at", "_row_order"], maintain_order=True)
        columns, frame = file_layout(world, frame, kind, export_date, rng)
        entries += _write_files(world, folder, export_date, kind, frame, columns, bool(bad_rows[kind]),
                                breaks.get(kind), rng)
        rows += frame.height
    write_manifest(folder, export_date, entries, generated_at=f"{date_of(day + 1).isoformat()} {MANIFEST_WRITTEN_AT}")
    return folder, rows, declarations


def _emptied_delivery_folder(inbox: Path, export_date: str) -> Path:
    """The delivery's folder without its MANIFEST.json and data files: a rerun rewrites the delivery."""
    folder = inbox / export_date
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    for old in folder.iterdir():
        m = DATA_FILE_PATTERN.match(old.name)
        if m and m["date"] == export_date.replace("-", ""):
            old.unlink()
    return folder


def _no_rows(kind: str) -> pl.DataFrame:
    spec = KINDS[kind]
    schema = {c: (pl.Int64 if c in spec.times else pl.Float64 if c == "GROSS_WT" else pl.String) for c in spec.columns}
    schema.update({"_at": pl.Int64, "_row_order": pl.Int64, "_export_day": pl.Int32, "_time_format": pl.Int8,
                   "_milliseconds": pl.Int16, "_first_version": pl.Int8})
    return pl.DataFrame(schema=schema)


def _rows_of_kind(kind: str, parts: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(parts, how="vertical_relaxed") if parts else _no_rows(kind)
    return frame.select(_no_rows(kind).columns)


def _as_text(frame: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Times in each row's format, weights with one decimal; `_field_count_change` for bad rows."""
    spec = KINDS[kind]
    frame = format_times(frame, spec.times).with_columns(pl.lit(0, pl.Int8).alias("_field_count_change"))
    if "GROSS_WT" in spec.columns:
        frame = frame.with_columns(pl.col("GROSS_WT").round(1).cast(pl.String))
    return frame


def _write_files(world: World, folder: Path, export_date: str, kind: str, frame: pl.DataFrame, columns: list[str],
                 has_bad_rows: bool, how: str | None, rng: np.random.Generator) -> list[dict]:
    """The kind's file, or its parts _01, _02, ...; a break applies to the first. Returns their manifest entries."""
    spec = KINDS[kind]
    field_count_change = frame["_field_count_change"].to_numpy()
    rows = frame.select(columns)
    cuts = split_points(world, rows.height, has_bad_rows, rng)
    entries = []
    for seq in range(1, len(cuts)):
        first, end = int(cuts[seq - 1]), int(cuts[seq])
        part = rows.slice(first, end - first)
        broken = how if seq == 1 else None
        encoding = "utf-8" if broken == "utf8" else spec.encoding
        bom = spec.encoding == "utf-8" and world.has_quirk("bom") and rng.random() < 0.35
        data = render_csv(part, encoding, bom=bom)
        changed = np.flatnonzero(field_count_change[first:end] != 0)
        changes = {i + 1: int(field_count_change[first + i]) for i in changed}  # line i + 1: the header is line 0
        if changes:
            data = change_field_counts(data, encoding, changes, rng)
        path = folder / data_file_name(kind, export_date, seq)
        entries.append(_write_file(path, data, encoding, part.height, broken))
    return entries


def _write_file(path: Path, data: bytes, encoding: str, rows: int, broken: str | None) -> dict:
    """Write the file (unless it is to be missing) and return its manifest entry. `truncated` and `empty`
    leave the entry describing the file as written, so only the file itself shows the defect."""
    if broken == "truncated":
        data = truncated(data, encoding)
    elif broken == "empty":
        data = b""
    if broken in ("truncated", "empty"):
        rows = csv_record_count(data, encoding)
    if broken == "missing":
        entry = {"name": path.name, "rows": rows, "sha256": hashlib.sha256(data).hexdigest()}
    else:
        path.write_bytes(data)
        entry = manifest_entry(path, rows)
    if broken == "row_count":
        entry["rows"] += 1
    elif broken == "checksum":
        entry["sha256"] = hashlib.sha256(data + b"\r\n").hexdigest()
    return entry
