"""Read one delivery: check it is whole, decode it, split every file into rows.

A file-level fault (export contract, quirk 8) raises DeliveryError naming the file and the
reason: nothing of that delivery is loaded. Row-level faults are left to validation, except a
row with the wrong number of fields, which cannot become a row and is marked here.

Each data file becomes one Parquet file in the run's work folder: the contract columns as text
(missing optional columns as nulls), the parsed times and the check columns the validation
suites look at, and the lineage of every row (line number, raw text, content hash).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from clearance.contract import (DATA_FILE_PATTERN, KINDS, MANIFEST_NAME, MANIFEST_SCHEMA, TIME_FORMATS,
                                container_number_is_valid_expr)

log = logging.getLogger(__name__)

# Columns the pipeline adds to every row; contract column names are upper case, these are not.
LINE_NO, RAW_LINE, ROW_HASH, REASON_CODE, REASON_MESSAGE = "_line_no", "_raw_line", "_row_hash", "_reason_code", "_reason_message"
DUPLICATE_IN_DELIVERY = "_duplicate_in_delivery"

# The run's scratch Parquet files (written at ingest and validation, read by validation and loading): lz4
# writes and reads them faster than polars' default zstd, and they live only until the night is loaded.
SCRATCH_COMPRESSION = "lz4"


class DeliveryError(Exception):
    """A delivery, or one of its files, breaks the export contract; the run must stop."""

    def __init__(self, source: str, reason: str, line: int | None = None):
        self.source, self.reason, self.line = source, reason, line
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {reason}")


@dataclass
class FileReport:
    """What one data file held; the accounting starts here."""

    name: str
    kind: str
    rows_in_manifest: int
    rows_read: int
    extra_columns: list[str] = field(default_factory=list)
    missing_optional_columns: list[str] = field(default_factory=list)
    parquet: str = ""


def delivery_folder(inbox: Path, export_date: str) -> Path:
    return Path(inbox) / export_date


def read_delivery_file(path: Path, what: str) -> bytes:
    """The bytes of a file of the delivery itself: a symbolic link is refused, never followed.

    A link could make the pipeline read any file on the machine (say one pointing out of the inbox).
    """
    try:
        # O_NONBLOCK: a FIFO (or device) named like a delivery file would otherwise block the night
        # forever waiting for a writer; it is refused below as not a regular file
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise DeliveryError(str(path), f"{what} is missing") from None
    except OSError as exc:
        if path.is_symlink():
            raise DeliveryError(str(path), f"{what} is a symbolic link (to {os.readlink(path)}); "
                                           "a delivery holds its files itself") from None
        raise DeliveryError(str(path), f"{what} cannot be read ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise DeliveryError(str(path), f"{what} is not a regular file")
        return handle.read()


def _schema_error_text(error) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{where.lstrip('.') or 'the document'}: {error.message}"


def read_manifest(folder: Path, export_date: str) -> dict:
    """MANIFEST.json of a delivery, checked against its schema and every listed name against the pattern."""
    import jsonschema  # a well-kept validator: names the field and the reason

    path = folder / MANIFEST_NAME
    if not path.exists() and not path.is_symlink():
        raise DeliveryError(str(path), "MANIFEST.json is missing: the delivery is incomplete")
    data = read_delivery_file(path, "MANIFEST.json")
    try:
        manifest = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DeliveryError(str(path), f"not UTF-8 (byte {exc.start})", _line_at(data, exc.start)) from exc
    except json.JSONDecodeError as exc:
        raise DeliveryError(str(path), f"not valid JSON: {exc.msg}", exc.lineno) from exc
    errors = sorted(jsonschema.Draft202012Validator(MANIFEST_SCHEMA).iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        raise DeliveryError(str(path), "does not follow the MANIFEST.json schema: "
                            + "; ".join(_schema_error_text(e) for e in errors[:5]))
    if manifest["export_date"] != export_date:
        raise DeliveryError(str(path), f"export_date is {manifest['export_date']!r}, expected {export_date!r}")
    seen = set()
    for entry in manifest["files"]:
        name = entry["name"]
        # A name with a path component or outside the pattern is refused, never opened.
        match = DATA_FILE_PATTERN.fullmatch(name)
        if not match:
            raise DeliveryError(str(path), f"file name {name!r} does not follow <kind>_<YYYYMMDD>_<NN>.csv")
        if match["date"] != export_date.replace("-", ""):
            raise DeliveryError(str(path), f"file {name} belongs to another export date")
        if name in seen:
            raise DeliveryError(str(path), f"file {name} is listed twice")
        seen.add(name)
    return manifest


def decode(name: str, data: bytes, encoding: str) -> str:
    """Text of a file in its contract encoding; a file in the wrong encoding is a file-level fault."""
    if encoding == "utf-8":
        boms = 0
        while data.startswith(b"\xef\xbb\xbf", 3 * boms):
            boms += 1
        if boms > 1:
            # an export tool that adds its own mark before the one already there: the marks carry no data
            log.warning("%s: starts with %d byte-order marks; all are removed", name, boms)
        try:
            return data[3 * boms:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DeliveryError(name, f"not valid UTF-8 (byte {exc.start})", _line_at(data, exc.start)) from exc
    # GB18030 decodes almost any byte string, so a UTF-8 file would pass silently as mojibake:
    # a BOM, or non-ASCII text that is valid UTF-8, means the desktop export was bypassed.
    if data.startswith(b"\xef\xbb\xbf"):
        raise DeliveryError(name, "UTF-8 file (byte-order mark) where GB18030 was expected")
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raise DeliveryError(name, "UTF-8 file where GB18030 was expected")
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise DeliveryError(name, f"not valid GB18030 (byte {exc.start})", _line_at(data, exc.start)) from exc


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _ends_inside_quotes(record: str) -> bool:
    """True when a record's text ends inside a quoted field (the csv module's non-strict reading).

    The reader would return such a record as if it were whole; at the end of a file it means the
    file was cut inside a quoted value (a line break in quotes, cut after the break).
    """
    state = "start"  # start of a field, in an unquoted field, in quotes, just after a quote in quotes
    for char in record:
        if state == "quoted":
            state = "quote" if char == '"' else "quoted"
        elif state == "quote":
            state = "quoted" if char == '"' else ("start" if char in ",\r\n" else "unquoted")
        elif char == ",":
            state = "start"
        elif state == "start" and char == '"':
            state = "quoted"
        elif state == "start" and char not in "\r\n":
            state = "unquoted"
    return state == "quoted"


def csv_records(name: str, text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(first line number, raw text, fields) for every CSV record, header included.

    Quoted fields may hold line breaks, so a record can span lines; the raw text is what the
    file held, for the quarantine. A record the reader cannot end is a file-level fault.
    """
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    reader = csv.reader(lines(), strict=False)
    raw = ""
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            first_line = reader.line_num - len(consumed) + 1
            if "field larger than field limit" in str(exc):
                raise DeliveryError(name, f"a field is longer than {csv.field_size_limit():,} characters; most likely "
                                          "a quote opens a value and never closes", first_line) from exc
            raise DeliveryError(name, f"not readable as CSV ({exc})", first_line) from exc
        raw = "".join(consumed)
        first_line = reader.line_num - len(consumed) + 1
        consumed.clear()
        yield first_line, raw.rstrip("\r\n"), fields
    if _ends_inside_quotes(raw):
        raise DeliveryError(name, "truncated: the file ends inside a quoted value (no closing quote)", first_line)


# Exactly the characters Python's str.strip() removes (str.isspace); polars' own set lacks \x1c-\x1f.
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                 "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
FIELDS = "_fields"
_RECORDS_SCHEMA = {LINE_NO: pl.Int64, RAW_LINE: pl.String, FIELDS: pl.List(pl.String)}


def records_by_csv_module(name: str, text: str, kind_name: str) -> tuple[list[str], pl.DataFrame]:
    """The header and every record (line number, raw text, fields), read record by record by Python's
    csv module: the reference reading, and the one every refusal of a malformed file comes from (the
    header is checked before the rest is read, so a bad header is what such a file is refused for)."""
    records = csv_records(name, text)
    _, _, header = next(records)
    check_header(name, kind_name, header)
    line_nos, raws, fields = [], [], []
    for line_no, raw, values in records:
        line_nos.append(line_no)
        raws.append(raw)
        fields.append(values)
    return header, pl.DataFrame({LINE_NO: line_nos, RAW_LINE: raws, FIELDS: fields}, schema=_RECORDS_SCHEMA)


def check_header(name: str, kind_name: str, header: list[str]) -> list[str]:
    """The header's column names (stripped); a required column missing, or one twice, refuses the file."""
    kind = KINDS[kind_name]
    header = [h.strip() for h in header]
    missing = [c for c in kind.required if c not in header]
    if missing:
        raise DeliveryError(name, f"required column(s) missing from the header: {', '.join(missing)}", 1)
    if len(set(header)) != len(header):
        raise DeliveryError(name, "a column name appears twice in the header", 1)
    return header


def records_by_lines(text: str) -> tuple[list[str], pl.DataFrame] | None:
    """The same as records_by_csv_module, column-wise, for a file whose every record is one line; None
    when it cannot vouch for that (the caller then reads the file with the csv module).

    Python's csv reader splits the lines a file holds as io.StringIO(newline="") does; a line without a
    quote character is one record, its fields split at the commas. The lines with quotes are read by the
    csv module itself: a line that does not end inside a quoted value is one whole record, read as the
    whole file's reading would read it. A line ending inside quotes (a record over several lines, or a
    cut file), a NUL character or a line longer than the csv module's field limit: the whole file is left
    to the csv module, so every refusal and message stays its.
    """
    if "\x00" in text:
        return None
    lines = io.StringIO(text, newline="").readlines()
    if not lines:
        return None
    series = pl.Series(lines, dtype=pl.String)
    if series.str.len_chars().max() > csv.field_size_limit():
        return None
    raw = series.str.strip_chars_end("\r\n")
    frame = pl.DataFrame({RAW_LINE: raw}).with_columns(
        # a blank line is a record without a field for the csv module
        pl.when(pl.col(RAW_LINE) == "").then(pl.lit([], pl.List(pl.String)))
        .otherwise(pl.col(RAW_LINE).str.split(",")).alias(FIELDS))
    quoted = series.str.contains('"', literal=True).arg_true().to_list()
    if quoted:
        # one reading of every line with quotes: a line ending inside quotes would take the next one into
        # its record, so there are as many records as lines only when none does (the last one is checked)
        lines_with_quotes = [lines[i] for i in quoted]
        try:
            parsed = list(csv.reader(lines_with_quotes, strict=False))
        except csv.Error:
            return None
        if len(parsed) != len(quoted) or _ends_inside_quotes(lines_with_quotes[-1]):
            return None
        by_csv = pl.DataFrame({"_index": quoted, "_parsed": parsed},
                              schema={"_index": pl.UInt32, "_parsed": pl.List(pl.String)})
        frame = (frame.with_row_index("_index").join(by_csv, on="_index", how="left", maintain_order="left")
                 .with_columns(pl.coalesce("_parsed", FIELDS).alias(FIELDS)))
    header = frame[FIELDS][0].to_list()
    frame = frame.slice(1).with_columns(pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias(LINE_NO))
    return header, frame.select(LINE_NO, RAW_LINE, FIELDS)


def read_data_file(folder: Path, entry: dict) -> tuple[FileReport, pl.DataFrame]:
    """Check one listed file against the manifest and split it into rows."""
    name = entry["name"]
    kind = KINDS[DATA_FILE_PATTERN.fullmatch(name)["kind"]]
    path = folder / name
    if not path.exists() and not path.is_symlink():
        raise DeliveryError(name, "listed in MANIFEST.json but missing")
    data = read_delivery_file(path, name)
    if not data:
        raise DeliveryError(name, "empty file (not even a header)")
    if hashlib.sha256(data).hexdigest() != entry["sha256"].lower():
        raise DeliveryError(name, "SHA-256 does not match MANIFEST.json")
    if not data.endswith(b"\r\n"):
        raise DeliveryError(name, "truncated: the last line has no line end", _line_at(data, len(data)))
    text = decode(name, data, kind.encoding)
    header, records = records_by_lines(text) or records_by_csv_module(name, text, kind.name)
    return rows_of_records(name, kind.name, entry["rows"], header, records)


def rows_of_records(name: str, kind_name: str, rows_in_manifest: int, header: list[str],
                    records: pl.DataFrame) -> tuple[FileReport, pl.DataFrame]:
    """The file's rows from its records: the contract columns, stripped (empty = null), the check columns."""
    kind = KINDS[kind_name]
    header = check_header(name, kind_name, header)
    present = [c for c in kind.columns if c in header]
    rows_read = records.height
    if rows_read != rows_in_manifest:
        raise DeliveryError(name, f"{rows_read} data rows where MANIFEST.json lists {rows_in_manifest}")

    whole = pl.col(FIELDS).list.len() == len(header)
    values = []
    for c in present:
        value = pl.col(FIELDS).list.get(header.index(c), null_on_oob=True).str.strip_chars(PY_WHITESPACE)
        values.append(pl.when(whole & (value != "")).then(value).alias(c))
    frame = records.select(
        pl.col(LINE_NO), pl.col(RAW_LINE), *values,
        pl.when(~whole).then(pl.format("{} fields where the header has {}", pl.col(FIELDS).list.len(),
                                       pl.lit(len(header)))).alias("_field_count_error"),
    )
    frame = frame.with_columns(pl.lit(None, pl.String).alias(c) for c in kind.columns if c not in present)
    report = FileReport(
        name=name,
        kind=kind.name,
        rows_in_manifest=rows_in_manifest,
        rows_read=rows_read,
        extra_columns=[h for h in header if h not in kind.columns],
        missing_optional_columns=[c for c in kind.columns if c not in present],
    )
    return report, add_check_columns(kind.name, frame)


def parse_times(column: pl.Expr) -> pl.Expr:
    """A Beijing local time in any of the contract's three formats, else null."""
    return pl.coalesce([column.str.strptime(pl.Datetime("ms"), fmt, strict=False) for fmt in TIME_FORMATS])


def add_check_columns(kind_name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Parsed values and the boolean checks the validation suites assert on, plus the row hash.

    A check column is null where the value is empty, so it only judges values that are there.
    """
    kind = KINDS[kind_name]
    exprs = []
    for t in kind.times:
        exprs.append(parse_times(pl.col(t)).alias(f"{t}__parsed"))
        exprs.append(pl.when(pl.col(t).is_not_null()).then(parse_times(pl.col(t)).is_not_null()).alias(f"{t}__parses"))
    if "CONTAINER_NO" in kind.columns:
        exprs.append(
            container_number_is_valid_expr(pl.col("CONTAINER_NO")).alias("CONTAINER_NO__valid")
        )
    if "GROSS_WT" in kind.columns:
        exprs.append(pl.col("GROSS_WT").cast(pl.Float64, strict=False).alias("GROSS_WT__value"))
        exprs.append(
            pl.when(pl.col("GROSS_WT").is_not_null())
            .then(pl.col("GROSS_WT").cast(pl.Float64, strict=False).is_not_null())
            .alias("GROSS_WT__parses")
        )
    frame = frame.with_columns(exprs)
    frame = frame.with_columns(row_identity(kind.columns).alias(ROW_HASH))
    # A second copy of a row within the same delivery is a duplicate, not a new fact.
    return frame.with_columns(
        (pl.col("_field_count_error").is_null() & pl.col(ROW_HASH).is_first_distinct().not_()).alias(DUPLICATE_IN_DELIVERY)
    )


def row_identity(columns: tuple[str, ...]) -> pl.Expr:
    """Identity of a row: SHA-256 (first 128 bits) of its contract values by column name.

    A re-sent row is recognised even when a later delivery orders the columns differently or adds
    one. Each value is written with its length in bytes first (`~` for an empty one), so no value can
    pass for two (a separator character inside a value cannot make two different rows one).
    """
    encoded = pl.concat_str([
        pl.when(pl.col(c).is_null()).then(pl.lit("~"))
        .otherwise(pl.concat_str([pl.col(c).str.len_bytes().cast(pl.String), pl.lit(":"), pl.col(c)]))
        for c in columns
    ])
    return encoded.map_batches(_sha256_128, return_dtype=pl.Binary)


def _sha256_128(encoded: pl.Series) -> pl.Series:
    frame = pl.DataFrame({"encoded": encoded})
    with duckdb.connect() as con:  # its own: polars may call this from any thread
        return con.sql("SELECT unhex(left(sha256(encoded), 32)) AS h FROM frame").pl()["h"]


def ingest_delivery(folder: Path, export_date: str, work_dir: Path) -> list[dict]:
    """Check and split every file of a delivery into Parquet files under work_dir.

    Duplicates are recognised across the files of the delivery too. Returns one FileReport
    (as a dict, for XCom) per data file.
    """
    manifest = read_manifest(folder, export_date)
    work_dir.mkdir(parents=True, exist_ok=True)
    listed = {e["name"] for e in manifest["files"]}
    for stray in sorted(p.name for p in folder.iterdir() if p.name != MANIFEST_NAME and p.name not in listed):
        log.warning("%s: not listed in MANIFEST.json, ignored", folder / stray)
    reports, seen_hashes = [], set()
    for entry in sorted(manifest["files"], key=lambda e: e["name"]):
        report, frame = read_data_file(folder, entry)
        earlier = frame[ROW_HASH].is_in(list(seen_hashes)) & frame["_field_count_error"].is_null()
        frame = frame.with_columns((pl.col(DUPLICATE_IN_DELIVERY) | earlier).alias(DUPLICATE_IN_DELIVERY))
        seen_hashes.update(frame.filter(pl.col("_field_count_error").is_null())[ROW_HASH].to_list())
        out = work_dir / f"{entry['name']}.parquet"
        frame.write_parquet(out, compression=SCRATCH_COMPRESSION)
        report.parquet = str(out)
        log.info(
            "%s: %d rows read%s%s", report.name, report.rows_read,
            f"; extra columns ignored: {', '.join(report.extra_columns)}" if report.extra_columns else "",
            f"; optional columns absent: {', '.join(report.missing_optional_columns)}"
            if report.missing_optional_columns else "",
        )
        reports.append(asdict(report))
    return reports
