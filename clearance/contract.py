"""The inbound contract of the single-window exports (spec: single-window-exports.md).

One place that says which files exist, how they are encoded, which columns they carry and
which of those are times or codes. The reader and the simulator take their knowledge of the files
from here; the validation suites in expectations/ repeat the code lists, and a test keeps the two
the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")  # UTC+8, no daylight saving

MANIFEST_NAME = "MANIFEST.json"
# kind_YYYYMMDD_NN.csv, nothing else: no path component, no other extension.
DATA_FILE_PATTERN = re.compile(
    r"^(?P<kind>dec_head|dec_result|manifest|vessel_event|cargo_event)_(?P<date>\d{8})_(?P<seq>\d{2})\.csv$"
)

# The three time formats real exports use; the last one only appears on receipts.
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M%S%3f")

CHANNELS = ("7", "L", "E", "C", "T", "H", "M", "P", "I", "K", "B", "R", "A", "D")
VESSEL_EVENT_CODES = ("ATA_ANCH", "ATA_BERTH", "ATD_BERTH")
CARGO_EVENT_CODES = (
    "ARRIVAL_REPORT", "DISC_DONE", "TALLY", "INSP_DONE", "WEIGHT_DONE", "CERT_ISSUED", "GATE_OUT", "LOADED",
)
I_E_FLAGS = ("I", "E")
TRAF_MODES = ("2", "3", "4", "5")
DECL_STEPS = ("1", "2")
YES_NO = ("Y", "N")

ENTRY_ID_PATTERN = r"^\d{4}20\d{2}[01]\d{9}$"

# MANIFEST.json (export contract, "Delivery"): field names and types, checked before anything is read.
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["export_date", "files"],
    "properties": {
        "export_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "generated_at": {"type": "string"},
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "rows", "sha256"],
                "properties": {
                    "name": {"type": "string"},
                    "rows": {"type": "integer", "minimum": 0},  # JSON true is not an integer here
                    "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class FileKind:
    """One kind of export file."""

    name: str
    encoding: str  # "gb18030" or "utf-8" (a UTF-8 file may start with a byte-order mark)
    columns: tuple[str, ...]  # every column the contract names, in the usual order
    required: tuple[str, ...]  # columns that must be present in the header and non-empty in a row
    times: tuple[str, ...] = ()  # columns holding Beijing local times
    description: str = ""
    column_notes: dict[str, str] = field(default_factory=dict)


KINDS: dict[str, FileKind] = {
    k.name: k
    for k in (
        FileKind(
            "dec_head",
            "gb18030",
            (
                "ENTRY_ID", "UPDATE_TIME", "I_E_FLAG", "CUSTOM_MASTER", "I_E_PORT", "PORT_CODE", "D_DATE",
                "DECL_STEP", "ADVANCE", "SHIPSIDE", "RBI", "TRADE_MODE", "TRAF_MODE", "VESSEL_ID", "VOYAGE_NO",
                "BILL_NO", "OWNER_CODE", "OWNER_NAME", "MAIN_CODE_TS", "GROSS_WT",
            ),
            required=("ENTRY_ID", "UPDATE_TIME", "I_E_FLAG", "CUSTOM_MASTER", "PORT_CODE", "D_DATE", "TRAF_MODE"),
            times=("UPDATE_TIME", "D_DATE"),
            description="customs declaration headers (报关单表头), one row per declaration version",
        ),
        FileKind(
            "dec_result",
            "gb18030",
            ("ENTRY_ID", "CHANNEL", "NOTICE_DATE", "CUSTOM_MASTER", "NOTE"),
            required=("ENTRY_ID", "CHANNEL", "NOTICE_DATE"),
            times=("NOTICE_DATE",),
            description="declaration status receipts (回执), one row per status notice",
        ),
        FileKind(
            "manifest",
            "utf-8",
            ("VESSEL_ID", "VOYAGE_NO", "PORT_CODE", "BILL_NO", "CONTAINER_NO", "GROSS_WT", "UPDATE_TIME"),
            # rail, road and air consignments (the Shenyang hub) have no vessel and no voyage
            required=("PORT_CODE", "BILL_NO", "UPDATE_TIME"),
            times=("UPDATE_TIME",),
            description="cargo manifest lines (舱单), linking bills to vessel calls and containers",
        ),
        FileKind(
            "vessel_event",
            "utf-8",
            ("VESSEL_ID", "VOYAGE_NO", "PORT_CODE", "EVENT_CODE", "EVENT_TIME", "SOURCE"),
            required=("VESSEL_ID", "VOYAGE_NO", "PORT_CODE", "EVENT_CODE", "EVENT_TIME"),
            times=("EVENT_TIME",),
            description="vessel call events from the port community system",
        ),
        FileKind(
            "cargo_event",
            "utf-8",
            ("VESSEL_ID", "VOYAGE_NO", "PORT_CODE", "BILL_NO", "CONTAINER_NO", "EVENT_CODE", "EVENT_TIME"),
            required=("PORT_CODE", "BILL_NO", "EVENT_CODE", "EVENT_TIME"),
            times=("EVENT_TIME",),
            description="cargo and container events from the port community system and inspection sites",
        ),
    )
}


def data_file_name(kind: str, export_date: str, seq: int) -> str:
    """`dec_head_20261120_01.csv` for ("dec_head", "2026-11-20", 1)."""
    return f"{kind}_{export_date.replace('-', '')}_{seq:02d}.csv"


def normalise_bill_no(bill_no: str | None) -> str | None:
    """Bills are keyed in by hand: upper case, blanks and '-' removed (metrics spec). The rule is the
    SQL macro's (transforms/macros.sql), which decides the loaded rows; blanks are what str.isspace()
    counts. Upper case differs only for the letters whose upper case Python spells in several
    characters (ß -> SS: DuckDB keeps one), which no bill number has."""
    if bill_no is None:
        return None
    cleaned = re.sub("[\\s\\-\uff0d]", "", bill_no).upper()
    return cleaned or None


_ISO6346_VALUES = {
    **{str(d): d for d in range(10)},
    # Letters skip multiples of 11 (ISO 6346).
    **dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", [v for v in range(10, 39) if v % 11 != 0])),
}


def iso6346_check_digit(owner_serial: str) -> int:
    """Check digit of the first ten characters of a container number (ISO 6346)."""
    total = sum(_ISO6346_VALUES[c] * (2**i) for i, c in enumerate(owner_serial.upper()))
    return total % 11 % 10


CONTAINER_NO_SHAPE = r"^[A-Z]{3}[UJZ][0-9]{7}$"  # ASCII digits: a full-width digit is no digit here


def container_number_is_valid(container_no: str) -> bool:
    """Owner code (3 letters), category U/J/Z, 6-digit serial and a correct check digit."""
    if not re.fullmatch(CONTAINER_NO_SHAPE, container_no or ""):
        return False
    return iso6346_check_digit(container_no[:10]) == int(container_no[10])


def container_number_is_valid_expr(container_no):
    """container_number_is_valid as a polars expression (null for a null value): column-wise, for ingest."""
    import polars as pl

    values = {c: v for c, v in _ISO6346_VALUES.items()}
    weighted = [container_no.str.slice(i, 1).replace_strict(values, default=0, return_dtype=pl.Int64) * (2**i)
                for i in range(10)]
    check = pl.sum_horizontal(weighted) % 11 % 10
    digit = container_no.str.slice(10, 1).replace_strict({str(d): d for d in range(10)}, default=-1,
                                                          return_dtype=pl.Int64)
    return pl.when(container_no.is_null()).then(None).otherwise(
        container_no.str.contains(CONTAINER_NO_SHAPE) & (check == digit))
