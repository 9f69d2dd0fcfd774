"""The export contract's quirks (docs/spec/single-window-exports.md, "Quirks"), each switchable.

Row quirks change which rows are sent when (re-sends, late rows, versions, hand-keyed bill
numbers, three time formats); file quirks change how a file looks (order, layout, byte-order mark,
split files, bad rows); `--break` makes one file unreadable in one of BREAK_MODES (quirk 8, only on
request). Every quirk draws from its own random stream, so switching one off leaves the others'
rows as they were.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from clearance.contract import KINDS
from clearance_tools.simulator.liaoning import PORT_INDEX, UNKNOWN_OFFICE, UNKNOWN_PORT
from clearance_tools.simulator.streams import (
    DAY, DELIVERY_STREAM, QUIRK_STREAM, VESSEL_CALL_STREAM, date_of, day_number, lognormal_seconds, random_stream,
)

if TYPE_CHECKING:
    from clearance_tools.simulator.world import World

QUIRKS = (
    "duplicates", "late", "versions", "shuffle", "bill_variants", "time_formats", "bom", "layout",
    "split_files", "unknown_codes", "bad_rows",
)
BREAK_MODES = ("missing", "row_count", "checksum", "truncated", "empty", "utf8")
KIND_ORDER = ("dec_head", "dec_result", "manifest", "vessel_event", "cargo_event")

BAD_TIMES = ("{y}-13-45 08:15:00", "N/A", "{y}/{m}/{d} 8:15", "{y}{m}{d}", "0000-00-00 00:00:00",
             "{y}-{m}-{d} 25:61:00", "{d}.{m}.{y}")
BAD_CODES = {
    "I_E_FLAG": ("X", "0", "IE"), "TRAF_MODE": ("9", "0", "W"), "CHANNEL": ("9", "X", "Z"),
    "EVENT_CODE": ("GATE_IN", "DISCHARGED", "ETA_BERTH", "ARRIVAL"),
}
EXTRA_COLUMNS = ("REMARK", "BATCH_NO", "SRC_SYS", "MSG_ID")


def parse_quirks(spec: str | Iterable[str] | None) -> frozenset[str]:
    """'all' (default), 'none', or a comma list / iterable of names from QUIRKS."""
    if spec is None:
        return frozenset(QUIRKS)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if names == ["all"]:
        return frozenset(QUIRKS)
    if names in (["none"], []):
        return frozenset()
    unknown = sorted(set(names) - set(QUIRKS))
    if unknown:
        raise ValueError(f"unknown quirk(s) {', '.join(unknown)}; known: {', '.join(QUIRKS)}, all, none")
    return frozenset(names)


def parse_break(spec: str) -> tuple[str, str, str]:
    """'2026-11-21:dec_head:truncated' -> ('2026-11-21', 'dec_head', 'truncated')."""
    parts = spec.split(":")
    if len(parts) != 3:
        raise ValueError(f"--break wants DATE:KIND:HOW, got {spec!r}")
    return parts[0], parts[1], parts[2]


def check_breaks(breaks: Iterable[Sequence[str]], start_day: int, end_day: int) -> dict[int, dict[str, str]]:
    """The requested breaks as {day: {kind: how}}, refused when they name no simulated file."""
    out: dict[int, dict[str, str]] = {}
    for d, kind, how in breaks:
        day = day_number(date.fromisoformat(str(d)))
        if not start_day <= day < end_day:
            raise ValueError(f"break date {d} is outside the simulated period")
        if kind not in KINDS:
            raise ValueError(f"unknown file kind {kind!r}; known: {', '.join(KINDS)}")
        if how not in BREAK_MODES:
            raise ValueError(f"unknown break {how!r}; known: {', '.join(BREAK_MODES)}")
        if how == "utf8" and KINDS[kind].encoding != "gb18030":
            raise ValueError(f"utf8 break applies to GB18030 kinds (dec_head, dec_result), not {kind}")
        out.setdefault(day, {})[kind] = how
    return out


def _quirk_stream(world: World, quirk: str, *keys: int) -> np.random.Generator:
    return random_stream(world.seed, QUIRK_STREAM + QUIRKS.index(quirk), *keys)


# ------------------------------------------------------------------- unknown codes (in the world)


def with_unknown_port_codes(seed: int, day: int, port: np.ndarray, port_code: np.ndarray) -> np.ndarray:
    """3 % of Yingkou's container calls are reported under Bayuquan, a port area the dictionary lacks."""
    rng = random_stream(seed, VESSEL_CALL_STREAM, day, 1)
    return np.where((port == PORT_INDEX["YKP"]) & (rng.random(len(port)) < 0.03), UNKNOWN_PORT, port_code)


def with_unknown_offices(world: World, first_day: int, port: np.ndarray, office: np.ndarray) -> np.ndarray:
    """2 % of Dandong's declarations are filed at a sub-office the dictionary lacks."""
    rng = _quirk_stream(world, "unknown_codes", first_day, 99)
    return np.where((port == PORT_INDEX["DDG"]) & (rng.random(len(port)) < 0.02), UNKNOWN_OFFICE, office)


# ------------------------------------------------------------------------------------ row quirks


def transmitted_rows(world: World, first_day: int, kind_number: int, kind: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of one kind as the exporter sends them, each with its export day `_export_day`.

    A row is sent on the day of its time `_at`, except for the quirks: hand-keyed bill numbers, later
    versions, headers a day after their receipts, late rows, re-sent rows. Rows from before the start
    date go out with the first delivery; rows after the last simulated date are never sent.
    """
    def stream(quirk: str) -> np.random.Generator:
        return _quirk_stream(world, quirk, first_day, kind_number)

    height = frame.height
    frame = frame.with_columns(
        pl.Series("_row_order", (first_day * 10**9 + kind_number * 10**8 + np.arange(height)).astype(np.int64)),
        (pl.col("_at") // DAY).cast(pl.Int32).alias("_export_day"),
    )
    if world.has_quirk("time_formats"):
        shares = [0.6, 0.2, 0.2] if kind == "dec_result" else [0.75, 0.25, 0.0]  # compact: receipts only
        time_format = stream("time_formats").choice(3, height, p=shares).astype(np.int8)
    else:
        time_format = np.zeros(height, np.int8)
    milliseconds = random_stream(world.seed, QUIRK_STREAM + 50, first_day, kind_number).integers(0, 1000, height)
    frame = frame.with_columns(pl.Series("_time_format", time_format),
                               pl.Series("_milliseconds", milliseconds.astype(np.int16)))
    if "_first_version" not in frame.columns:
        frame = frame.with_columns(pl.lit(0, pl.Int8).alias("_first_version"))
    if world.has_quirk("bill_variants") and "BILL_NO" in frame.columns:
        frame = hand_keyed_bill_numbers(frame, stream("bill_variants"))
    if world.has_quirk("versions") and kind in ("dec_head", "manifest"):
        frame = later_versions(frame, stream("versions"), kind)
        frame = frame.with_columns((pl.col("_at") // DAY).cast(pl.Int32).alias("_export_day"))
    frame = frame.drop([c for c in ("_can_be_resent", "_arrival_at") if c in frame.columns])
    export_day = frame["_export_day"].to_numpy().copy()
    if world.has_quirk("shuffle") and kind == "dec_head":
        export_day += header_a_day_late(frame, stream("shuffle"))
    if world.has_quirk("late"):
        export_day += late_by_days(frame.height, stream("late"))
    frame = frame.with_columns(pl.Series("_export_day", export_day.astype(np.int32)))
    if world.has_quirk("duplicates"):
        frame = with_resent_rows(frame, stream("duplicates"))
    frame = frame.with_columns(pl.max_horizontal(pl.col("_export_day"), pl.lit(world.start_day, pl.Int32))
                               .alias("_export_day"))
    return frame.filter(pl.col("_export_day") < world.end_day)


def hand_keyed_bill_numbers(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Hand-keyed bill numbers: case, surrounding blanks, a stray '-' or space."""
    variant = np.where(rng.random(frame.height) < 0.1, rng.integers(1, 6, frame.height), 0)
    bill = pl.col("BILL_NO")
    head, tail = bill.str.slice(0, 4), bill.str.slice(4)
    spelled = (pl.when(pl.col("_variant") == 1).then(bill.str.to_lowercase())
               .when(pl.col("_variant") == 2).then(pl.concat_str([head, pl.lit(" "), tail]))
               .when(pl.col("_variant") == 3).then(pl.concat_str([head, pl.lit("-"), tail]))
               .when(pl.col("_variant") == 4).then(pl.concat_str([pl.lit(" "), bill, pl.lit(" ")]))
               .when(pl.col("_variant") == 5).then(pl.concat_str([head.str.to_lowercase(), pl.lit(" "), tail]))
               .otherwise(bill))
    return frame.with_columns(pl.Series("_variant", variant)).with_columns(spelled.alias("BILL_NO")).drop("_variant")


def later_versions(frame: pl.DataFrame, rng: np.random.Generator, kind: str) -> pl.DataFrame:
    """Re-send some declarations, and some bills' whole manifests, with a later UPDATE_TIME and a corrected
    GROSS_WT (the latest version wins; a manifest version is the bill's whole container list, sent before
    the goods arrive)."""
    height = frame.height
    if kind == "dec_head":
        resent = np.flatnonzero((frame["_can_be_resent"].to_numpy() == 1) & (rng.random(height) < 0.03))
        new_time = frame["UPDATE_TIME"].to_numpy()[resent] + lognormal_seconds(
            rng, 6, 1.0, len(resent), lo=0.01, hi=40).astype(np.int64)
    else:
        bill = frame["BILL_NO"].str.replace_all(r"[\s\u3000\u00a0\-\uff0d]", "").str.to_uppercase().to_numpy()
        bills, of_bill = np.unique(bill, return_inverse=True)
        resent = np.flatnonzero((rng.random(len(bills)) < 0.03)[of_bill])
        old = frame["UPDATE_TIME"].to_numpy()[resent]
        arrival = frame["_arrival_at"].to_numpy()[resent]
        new_time = old + ((arrival - old) * rng.uniform(0.2, 0.9, len(bills))[of_bill[resent]]).astype(np.int64)
    if not len(resent):
        return frame
    correction = 1 + rng.choice([-1, 1], len(resent)) * rng.uniform(0.005, 0.05, len(resent))
    versions = frame[resent].with_columns(
        pl.Series("UPDATE_TIME", new_time), pl.Series("_at", new_time),
        (pl.col("GROSS_WT") * pl.Series(correction)).round(1).alias("GROSS_WT"),
    )
    if kind == "dec_head":
        versions = versions.with_columns(pl.lit(0, pl.Int8).alias("_first_version"))
    return pl.concat([frame, versions])


def header_a_day_late(frame: pl.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Days added to the export day: a declaration's header a day after its first receipts."""
    return ((frame["_first_version"].to_numpy() == 1) & (rng.random(frame.height) < 0.005)).astype(np.int32)


def late_by_days(height: int, rng: np.random.Generator) -> np.ndarray:
    """Days added to the export day: 1.5 % of rows up to 30 days late (the contract's limit)."""
    late = rng.random(height) < 0.015
    return np.where(late, 1 + np.minimum(29, np.floor(rng.exponential(3.0, height))), 0).astype(np.int32)


def with_resent_rows(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Exact re-sends: 1 % of rows again in a later delivery (up to 9 days on), 0.1 % twice in the same one."""
    u = rng.random(frame.height)
    later = np.flatnonzero(u < 0.01)
    same_day = np.flatnonzero(u > 0.999)
    days_on = (1 + np.minimum(rng.geometric(0.5, len(later)) - 1, 8)).astype(np.int32)
    return pl.concat([
        frame,
        frame[later].with_columns((pl.col("_export_day") + pl.Series(days_on)).alias("_export_day"),
                                  pl.lit(0, pl.Int8).alias("_first_version")),
        frame[same_day].with_columns(pl.lit(0, pl.Int8).alias("_first_version")),
    ])


# ---------------------------------------------------------------------------------- time formats


def format_times(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """The row's time format: 0 'YYYY-MM-DD HH:MM:SS', 1 ISO 'T', 2 compact with milliseconds."""
    exprs = []
    for col in columns:
        at = pl.from_epoch(pl.col(col), time_unit="s")
        compact = pl.concat_str([at.dt.strftime("%Y%m%d%H%M%S"),
                                 pl.col("_milliseconds").cast(pl.String).str.zfill(3)])
        exprs.append(pl.when(pl.col("_time_format") == 0).then(at.dt.strftime("%Y-%m-%d %H:%M:%S"))
                     .when(pl.col("_time_format") == 1).then(at.dt.strftime("%Y-%m-%dT%H:%M:%S"))
                     .otherwise(compact).alias(col))
    return frame.with_columns(exprs)


def format_time(at: int, time_format: int, milliseconds: int) -> str:
    """One time, as format_times writes it."""
    day = date_of(at // DAY)
    s = at % DAY
    hms = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
    if time_format == 1:
        return f"{day:%Y-%m-%d}T{hms}"
    if time_format == 2:
        return f"{day:%Y%m%d}{hms.replace(':', '')}{milliseconds:03d}"
    return f"{day:%Y-%m-%d} {hms}"


# -------------------------------------------------------------------------------------- bad rows


def bad_rows_per_kind(world: World, day: int, heights: dict[str, int]) -> dict[str, int]:
    """Bad rows in a delivery: ~0.1 % of rows, at most 0.4 % of a file (none in files under 250 rows),
    and at least one in a delivery whose biggest file has 250 rows or more."""
    bad = {kind: 0 for kind in KIND_ORDER}
    if not world.has_quirk("bad_rows"):
        return bad
    rng = random_stream(world.seed, DELIVERY_STREAM, day, 99)
    for kind in KIND_ORDER:
        bad[kind] = min(int(rng.binomial(heights[kind], 0.001)), heights[kind] * 4 // 1000)
    biggest = max(KIND_ORDER, key=lambda k: heights[k])
    if sum(bad.values()) == 0 and heights[biggest] >= 250:
        bad[biggest] = 1
    return bad


def with_bad_rows(frame: pl.DataFrame, count: int, kind: str, day: int, rng: np.random.Generator) -> pl.DataFrame:
    """`count` rows of the (formatted) frame made bad, moved to its end."""
    picked = np.sort(rng.choice(frame.height, count, replace=False))
    is_picked = np.zeros(frame.height, bool)
    is_picked[picked] = True
    bad = pl.DataFrame(corrupt_rows(frame[picked].to_dicts(), kind, day, rng), schema=frame.schema)
    return pl.concat([frame.filter(pl.Series(~is_picked)), bad])


def corrupt_rows(rows: list[dict], kind: str, day: int, rng: np.random.Generator) -> list[dict]:
    """Quirk 7: make each row bad in one of the ways a kind can be bad."""
    spec = KINDS[kind]
    d = date_of(day)
    for row in rows:
        options = ["fields", "time", "future"]
        if "ENTRY_ID" in row:
            options.append("entry_id")
        options += [c for c in BAD_CODES if c in row]
        if row.get("CONTAINER_NO"):
            options.append("container")
        how = options[rng.integers(len(options))]
        col = spec.times[rng.integers(len(spec.times))]
        if how == "fields":  # the field count is changed once the line is written (change_field_counts)
            row["_field_count_change"] = 1 if rng.random() < 0.5 else -1
        elif how == "time":
            row[col] = BAD_TIMES[rng.integers(len(BAD_TIMES))].format(y=d.year, m=f"{d.month:02d}", d=f"{d.day:02d}")
        elif how == "future":
            at = (day + 2 + int(rng.integers(0, 30))) * DAY + int(rng.integers(0, DAY))
            row[col] = format_time(at, int(row["_time_format"]), int(row["_milliseconds"]))
        elif how == "entry_id":
            e = row["ENTRY_ID"]
            row["ENTRY_ID"] = (e[:-1], e[:9] + "X" + e[10:], e[:4] + "19" + e[6:], e + "0")[rng.integers(4)]
        elif how == "container":
            c = row["CONTAINER_NO"]
            row["CONTAINER_NO"] = c[:10] + str((int(c[10]) + 1 + int(rng.integers(9))) % 10)
        else:
            choices = BAD_CODES[how]
            row[how] = choices[rng.integers(len(choices))]
    return rows


def change_field_counts(data: bytes, encoding: str, lines: dict[int, int], rng: np.random.Generator) -> bytes:
    """Wrong number of fields on the given lines: drop the last field (-1) or add one (+1).
    (No field of the simulator's contains a line break, so a line is a row.)"""
    text_lines = data.split(b"\r\n")
    for line_number, change in sorted(lines.items()):
        values = next(csv.reader([text_lines[line_number].decode(encoding)]))
        if change < 0 and len(values) > 2:
            values = values[:-1]
        else:
            values.append(("1", "备注", "X")[rng.integers(3)])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(values)
        text_lines[line_number] = buf.getvalue().encode(encoding)
    return b"\r\n".join(text_lines)


# ------------------------------------------------------------------------------------ file layout


def file_layout(world: World, frame: pl.DataFrame, kind: str, export_date: str,
                rng: np.random.Generator) -> tuple[list[str], pl.DataFrame]:
    """The file's columns: the contract's, in another order in 30 % of files, and an extra column the
    reader must ignore in 15 % (with its values added to the frame)."""
    spec = KINDS[kind]
    columns = list(spec.columns)
    if not world.has_quirk("layout"):
        return columns, frame
    if rng.random() < 0.3:
        columns = [columns[i] for i in rng.permutation(len(columns))]
    if rng.random() < 0.15:
        extra = EXTRA_COLUMNS[rng.integers(len(EXTRA_COLUMNS))]
        columns.insert(int(rng.integers(len(columns) + 1)), extra)
        value = {"REMARK": pl.lit(None, pl.String), "BATCH_NO": pl.lit(f"{export_date.replace('-', '')}01"),
                 "SRC_SYS": pl.lit("SWEXP" if spec.encoding == "gb18030" else "PCS"),
                 "MSG_ID": pl.concat_str([pl.lit("M"), pl.col("_row_order").cast(pl.String)])}[extra]
        frame = frame.with_columns(value.alias(extra))
    return columns, frame


def split_points(world: World, rows: int, has_bad_rows: bool, rng: np.random.Generator) -> list[int]:
    """Where a file is split into parts _01, _02, ...: a quarter of the files in two or three parts.
    A file with bad rows stays whole: split, a small part could exceed the allowed bad-row share."""
    parts = 1
    if world.has_quirk("split_files") and rows >= 2 and not has_bad_rows and rng.random() < 0.25:
        parts = min(int(rng.integers(2, 4)), rows)
    if parts == 1:
        return [0, rows]
    return [0, *sorted(rng.choice(np.arange(1, rows), parts - 1, replace=False)), rows]


# ---------------------------------------------------------------------------------- broken files


def truncated(data: bytes, encoding: str) -> bytes:
    """The file cut inside its last row, without the line end: the row is visibly short."""
    body = data[:-2] if data.endswith(b"\r\n") else data
    newline = body.rfind(b"\r\n")
    cut = newline + 2 if newline >= 0 else 0
    last = body[cut:].decode(encoding)
    keep = max(1, len(last) // 2)
    if "," in last[1:]:  # cut before the last separator, so the row is visibly short
        keep = min(keep, last.rfind(","))
    return body[:cut] + last[:keep].encode(encoding)
