"""The export simulator writes exactly what the export contract says arrives every night."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from clearance.contract import (
    CARGO_EVENT_CODES, CHANNELS, DATA_FILE_PATTERN, ENTRY_ID_PATTERN, I_E_FLAGS, KINDS, MANIFEST_NAME, TRAF_MODES,
    VESSEL_EVENT_CODES, container_number_is_valid, normalise_bill_no,
)
from clearance_tools.simulator import BREAK_MODES, QUIRKS, simulate

ROOT = Path(__file__).resolve().parents[1]
START = "2026-11-20"
CHINESE = re.compile(r"[\u4e00-\u9fff]")
ENTRY_ID = re.compile(ENTRY_ID_PATTERN)
CODES = {"CHANNEL": CHANNELS, "I_E_FLAG": I_E_FLAGS, "TRAF_MODE": TRAF_MODES}
EVENT_CODES = {"vessel_event": VESSEL_EVENT_CODES, "cargo_event": CARGO_EVENT_CODES}


# ------------------------------------------------------------------------------------- helpers


def read_file(path: Path, kind: str) -> tuple[list[str], list[list[str]]]:
    text = path.read_bytes().decode(KINDS[kind].encoding)
    records = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    return records[0], records[1:]


def data_files(folder: Path):
    """(kind, path) of every data file listed in MANIFEST.json."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        yield DATA_FILE_PATTERN.match(entry["name"])["kind"], folder / entry["name"]


def parse_time(value: str, kind: str) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            pass
    if kind == "dec_result" and re.fullmatch(r"\d{17}", value):
        try:
            return datetime.strptime(value[:14], "%Y%m%d%H%M%S")
        except ValueError:
            return None
    return None


def bad_reason(kind: str, header: list[str], row: list[str], export_date: date) -> str | None:
    """Why a row is bad per quirk 7 of the export contract, or None."""
    if len(row) != len(header):
        return "fields"
    rec = dict(zip(header, row))
    spec = KINDS[kind]
    for col in spec.required:
        if not rec[col].strip():
            return f"empty {col}"
    latest = datetime.combine(export_date + timedelta(days=2), datetime.min.time())
    for col in spec.times:
        if rec[col]:
            t = parse_time(rec[col], kind)
            if t is None:
                return f"time {col}"
            if t >= latest:
                return f"future {col}"
    for col, allowed in CODES.items():
        if col in rec and rec[col] not in allowed:
            return col
    if kind in EVENT_CODES and rec["EVENT_CODE"] not in EVENT_CODES[kind]:
        return "EVENT_CODE"
    if "ENTRY_ID" in rec and not ENTRY_ID.match(rec["ENTRY_ID"]):
        return "ENTRY_ID"
    if rec.get("CONTAINER_NO") and not container_number_is_valid(rec["CONTAINER_NO"]):
        return "CONTAINER_NO"
    return None


def frames(folders: list[Path]) -> dict[str, pl.DataFrame]:
    """Every kind as one polars frame (contract columns as text, plus the export date)."""
    parts = defaultdict(list)
    for folder in folders:
        for kind, path in data_files(folder):
            header, rows = read_file(path, kind)
            cols = KINDS[kind].columns
            parts[kind].append(pl.DataFrame([[r[header.index(c)] or None for c in cols] for r in rows],
                                            schema={c: pl.String for c in cols}, orient="row")
                               .with_columns(pl.lit(folder.name).alias("_export")))
    return {k: pl.concat(v) for k, v in parts.items()}


def ts(col: str) -> pl.Expr:
    return pl.col(col).str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S").alias(col)


@pytest.fixture(scope="module")
def run_all(tmp_path_factory) -> list[Path]:
    """Four days, every quirk on (the default)."""
    return simulate(tmp_path_factory.mktemp("all"), START, 4, scale=0.03, seed=7)


@pytest.fixture(scope="module")
def run_clean(tmp_path_factory) -> list[Path]:
    """Twelve days without quirks, for the timelines."""
    return simulate(tmp_path_factory.mktemp("clean"), START, 12, scale=0.05, seed=11, quirks="none")


# ---------------------------------------------------------------------------------- determinism


def test_same_seed_is_byte_identical_and_another_seed_differs(tmp_path):
    def snapshot(inbox: Path) -> dict[str, bytes]:
        return {str(p.relative_to(inbox)): p.read_bytes() for p in sorted(inbox.rglob("*")) if p.is_file()}

    a = simulate(tmp_path / "a", START, 3, scale=0.02, seed=5)
    simulate(tmp_path / "b", START, 3, scale=0.02, seed=5)
    simulate(tmp_path / "c", START, 3, scale=0.02, seed=6)
    assert [p.name for p in a] == ["2026-11-20", "2026-11-21", "2026-11-22"]
    sa, sb, sc = snapshot(tmp_path / "a"), snapshot(tmp_path / "b"), snapshot(tmp_path / "c")
    assert sa == sb
    assert sa != sc
    # a rerun into the same inbox rewrites it identically
    simulate(tmp_path / "a", START, 3, scale=0.02, seed=5)
    assert snapshot(tmp_path / "a") == sb


def test_longer_run_reproduces_the_deliveries_of_a_shorter_one(tmp_path):
    simulate(tmp_path / "short", START, 2, scale=0.02, seed=5)
    simulate(tmp_path / "long", START, 4, scale=0.02, seed=5)
    for folder in sorted((tmp_path / "short").iterdir()):
        for f in folder.iterdir():
            assert f.read_bytes() == (tmp_path / "long" / folder.name / f.name).read_bytes(), f


# ------------------------------------------------------------------------------------ delivery


def test_manifest_lists_every_file_with_its_checksum_and_row_count(run_all):
    assert len(run_all) == 4
    for folder in run_all:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        assert manifest["export_date"] == folder.name
        assert manifest["generated_at"] == f"{date.fromisoformat(folder.name) + timedelta(days=1)} 00:40:12"
        listed = {e["name"] for e in manifest["files"]}
        on_disk = {p.name for p in folder.iterdir() if p.name != MANIFEST_NAME}
        assert listed == on_disk
        assert {DATA_FILE_PATTERN.match(n)["kind"] for n in listed} == set(KINDS)
        for e in manifest["files"]:
            m = DATA_FILE_PATTERN.match(e["name"])
            assert m and m["date"] == folder.name.replace("-", "")
            data = (folder / e["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == e["sha256"]
            _, rows = read_file(folder / e["name"], m["kind"])
            assert len(rows) == e["rows"]


def test_encodings_line_ends_and_headers(run_all):
    saw_bom = saw_extra = saw_split = False
    for folder in run_all:
        for kind, path in data_files(folder):
            data = path.read_bytes()
            assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n"), path
            if KINDS[kind].encoding == "gb18030":
                text = data.decode("gb18030")
                assert CHINESE.search(text), path
                with pytest.raises(UnicodeDecodeError):
                    data.decode("utf-8")
            else:
                text = data.decode("utf-8")
                saw_bom |= text.startswith("\ufeff")
            header, _ = read_file(path, kind)
            assert set(KINDS[kind].columns) <= set(header)
            saw_extra |= len(header) > len(KINDS[kind].columns)
            saw_split |= path.name.endswith("_02.csv")
    assert saw_bom and saw_extra and saw_split


def test_without_quirks_every_row_is_good_and_plain(run_clean):
    for folder in run_clean:
        export_date = date.fromisoformat(folder.name)
        for kind, path in data_files(folder):
            assert path.name.endswith("_01.csv")
            assert not path.read_bytes().startswith(b"\xef\xbb\xbf")
            header, rows = read_file(path, kind)
            assert header == list(KINDS[kind].columns)
            seen = set()
            for row in rows:
                assert bad_reason(kind, header, row, export_date) is None, (path, row)
                rec = dict(zip(header, row))
                for col in KINDS[kind].times:  # one time format, and nothing transmitted before it happened
                    t = datetime.strptime(rec[col], "%Y-%m-%d %H:%M:%S")
                    assert t.date() <= export_date
                if "BILL_NO" in rec:
                    assert rec["BILL_NO"] == normalise_bill_no(rec["BILL_NO"])
                assert tuple(row) not in seen, "no duplicates without the quirk"
                seen.add(tuple(row))


def test_bad_rows_are_a_small_nonzero_share(tmp_path):
    folders = simulate(tmp_path, START, 3, scale=0.05, seed=3, quirks="bad_rows")
    total = bad = 0
    reasons = Counter()
    for folder in folders:
        for kind, path in data_files(folder):
            header, rows = read_file(path, kind)
            n_bad = 0
            for row in rows:
                reason = bad_reason(kind, header, row, date.fromisoformat(folder.name))
                if reason:
                    n_bad += 1
                    reasons[reason.split()[0]] += 1
            assert n_bad <= max(1, len(rows) // 100), path  # well below 1% of any file
            total += len(rows)
            bad += n_bad
    assert 0 < bad < total * 0.005, (bad, total, reasons)


def test_every_quirk_name_is_accepted_and_unknown_names_are_not(tmp_path):
    with pytest.raises(ValueError):
        simulate(tmp_path, START, 1, scale=0.01, quirks="duplicates,typo")
    simulate(tmp_path, START, 1, scale=0.01, quirks=",".join(QUIRKS))


def test_breaks_produce_the_broken_file_they_name(tmp_path):
    plan = [("2026-11-20", "dec_head", "missing"), ("2026-11-20", "manifest", "row_count"),
            ("2026-11-20", "cargo_event", "checksum"), ("2026-11-21", "dec_result", "truncated"),
            ("2026-11-21", "vessel_event", "empty"), ("2026-11-21", "dec_head", "utf8")]
    assert {how for *_, how in plan} == set(BREAK_MODES)
    folders = simulate(tmp_path, START, 2, scale=0.02, seed=9, quirks="none", breaks=plan)
    broken = {}
    for folder in folders:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        for e in manifest["files"]:
            broken[(folder.name, DATA_FILE_PATTERN.match(e["name"])["kind"])] = (folder / e["name"], e)
    for (day, kind), (path, entry) in broken.items():
        how = dict(((d, k), h) for d, k, h in plan).get((day, kind))
        if how == "missing":
            assert not path.exists()
            continue
        data = path.read_bytes()
        sha_ok = hashlib.sha256(data).hexdigest() == entry["sha256"]
        count = len(list(csv.reader(io.StringIO(data.decode(KINDS[kind].encoding, "replace"), newline="")))) - 1
        count = max(count, 0)
        assert sha_ok == (how != "checksum"), (day, kind)
        assert (count == entry["rows"]) == (how != "row_count"), (day, kind)
        if how == "truncated":
            assert not data.endswith(b"\r\n")
            header, rows = read_file(path, kind)
            assert len(rows[-1]) < len(header)
        elif how == "empty":
            assert data == b""
        elif how == "utf8":
            assert CHINESE.search(data.decode("utf-8"))
            assert data.decode("gb18030", "replace") != data.decode("utf-8")
        else:
            assert data.endswith(b"\r\n") and data.startswith(b"VESSEL_ID" if "event" in kind or kind == "manifest"
                                                               else b"ENTRY_ID")
    with pytest.raises(ValueError):
        simulate(tmp_path / "x", START, 1, scale=0.01, breaks=[("2026-11-20", "manifest", "utf8")])
    with pytest.raises(ValueError):
        simulate(tmp_path / "x", START, 1, scale=0.01, breaks=[("2026-12-20", "manifest", "empty")])


# --------------------------------------------------------------------------------------- quirks


def test_time_formats_mix_all_three_and_compact_only_on_receipts(run_all):
    seen = defaultdict(set)
    for folder in run_all:
        for kind, path in data_files(folder):
            header, rows = read_file(path, kind)
            for row in rows:
                rec = dict(zip(header, row))
                for col in KINDS[kind].times:
                    v = rec.get(col, "")
                    if re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", v):
                        seen[kind].add("space")
                    elif re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", v):
                        seen[kind].add("T")
                    elif re.fullmatch(r"\d{17}", v):
                        seen[kind].add("compact")
    assert seen["dec_result"] == {"space", "T", "compact"}
    for kind in ("dec_head", "manifest", "cargo_event", "vessel_event"):
        assert seen[kind] == {"space", "T"}, kind


def test_bill_variants_differ_raw_and_normalise_equal(run_all):
    spellings = defaultdict(set)
    kinds_of = defaultdict(set)
    for folder in run_all:
        for kind, path in data_files(folder):
            if kind not in ("dec_head", "manifest", "cargo_event"):
                continue
            header, rows = read_file(path, kind)
            if "BILL_NO" not in header:
                continue
            i = header.index("BILL_NO")
            for row in rows:
                if len(row) == len(header):
                    spellings[normalise_bill_no(row[i])].add(row[i])
                    kinds_of[normalise_bill_no(row[i])].add(kind)
    varied = {b: s for b, s in spellings.items() if len(s) > 1}
    assert len(varied) > 10
    assert any(" " in v.strip() or "-" in v for s in varied.values() for v in s)
    assert any(v != v.strip() for s in varied.values() for v in s)
    assert any(v.strip() != v.strip().upper() for s in varied.values() for v in s)
    assert sum(len(kinds_of[b]) == 3 for b in spellings) > 50  # the same bill across the three kinds


def test_duplicates_late_rows_and_receipts_before_headers(run_all):
    f = frames(run_all)
    dr = f["dec_result"]
    # byte-identical re-sends, in a later delivery
    dup = dr.group_by(pl.exclude("_export")).agg(pl.col("_export").n_unique().alias("n")).filter(pl.col("n") > 1)
    assert dup.height > 0
    # rows transmitted after the day they happened
    t = pl.coalesce(
        pl.col("NOTICE_DATE").str.strptime(pl.Date, "%Y-%m-%d %H:%M:%S", strict=False),
        pl.col("NOTICE_DATE").str.strptime(pl.Date, "%Y-%m-%dT%H:%M:%S", strict=False),
        pl.col("NOTICE_DATE").str.slice(0, 8).str.strptime(pl.Date, "%Y%m%d", strict=False))
    late = dr.filter(t < pl.col("_export").str.to_date() - pl.duration(days=1)).filter(
        t >= pl.lit(date(2026, 11, 20)))
    assert late.height > 0
    # versions: one ENTRY_ID with several UPDATE_TIMEs beyond the two-step pair
    dh = f["dec_head"]
    assert dh.group_by("ENTRY_ID").agg(pl.col("UPDATE_TIME").n_unique().alias("n"), pl.col("DECL_STEP").n_unique()
                                       .alias("s")).filter((pl.col("n") > 1) & (pl.col("s") == 1)).height > 0


# ------------------------------------------------------------------------------------- realism


def test_timelines_follow_the_metrics_spec(run_clean):
    f = frames(run_clean)
    dh = f["dec_head"].with_columns(ts("UPDATE_TIME"), ts("D_DATE"))
    dr = f["dec_result"].with_columns(ts("NOTICE_DATE"))
    ve = f["vessel_event"].with_columns(ts("EVENT_TIME"))
    ce = f["cargo_event"].with_columns(ts("EVENT_TIME"))
    call = ["VESSEL_ID", "VOYAGE_NO", "PORT_CODE"]

    # reference data and shapes
    assert set(dh["PORT_CODE"]) == {"DLC", "YKP", "DDG", "JZH", "PJN", "HLD", "SHE"}
    she = dh.filter(pl.col("PORT_CODE") == "SHE")
    assert set(she["TRAF_MODE"]) == {"3", "5"} and she["VESSEL_ID"].null_count() == she.height
    assert set(dh.filter(pl.col("PORT_CODE") == "DDG")["CUSTOM_MASTER"]) == {"0930"}
    assert set(she["I_E_PORT"]) == {"0800"}
    assert dh["ENTRY_ID"].n_unique() == dh.filter(pl.col("DECL_STEP").fill_null("") != "2").height
    boxes = f["manifest"].group_by("BILL_NO").agg(pl.col("CONTAINER_NO").drop_nulls().n_unique().alias("n"))
    assert set(boxes["n"]) == {0, 1, 2, 3}
    bulk_hs = dh.join(boxes.filter(pl.col("n") == 0), on="BILL_NO").filter(pl.col("TRAF_MODE") == "2")
    assert set(bulk_hs["PORT_CODE"]) <= {"DLC", "YKP"}
    assert bulk_hs["MAIN_CODE_TS"].str.slice(0, 2).is_in(["26", "10", "12"]).all()
    two = dh.filter(pl.col("DECL_STEP").is_not_null()).pivot("DECL_STEP", index="ENTRY_ID", values="D_DATE",
                                                             aggregate_function="first").drop_nulls()
    assert two.height > 0 and (two["2"] > two["1"]).all()

    # milestones (metrics spec) per declaration
    arrival = ve.filter(pl.col("EVENT_CODE").is_in(["ATA_ANCH", "ATA_BERTH"])).sort("EVENT_TIME").group_by(call).agg(
        pl.col("EVENT_TIME").first().alias("ata"), (pl.col("EVENT_CODE") == "ATA_ANCH").any().alias("anch"))
    assert arrival["anch"].any() and not arrival["anch"].all()
    by_bill = ce.group_by("BILL_NO", "EVENT_CODE").agg(pl.col("EVENT_TIME").min().alias("first"),
                                                      pl.col("EVENT_TIME").max().alias("last"))
    ev = lambda code, which, name: by_bill.filter(pl.col("EVENT_CODE") == code).select(  # noqa: E731
        "BILL_NO", pl.col(which).alias(name))
    first_rc = lambda chans, name: dr.filter(pl.col("CHANNEL").is_in(chans)).group_by("ENTRY_ID").agg(  # noqa: E731
        pl.col("NOTICE_DATE").min().alias(name))
    decl = (dh.sort("UPDATE_TIME").group_by("ENTRY_ID").agg(pl.all().first())
            .join(arrival, on=call, how="left", nulls_equal=True)
            .join(ev("DISC_DONE", "first", "disc1"), on="BILL_NO", how="left")
            .join(ev("DISC_DONE", "last", "disc"), on="BILL_NO", how="left")
            .join(ev("ARRIVAL_REPORT", "first", "ar"), on="BILL_NO", how="left")
            .join(ev("INSP_DONE", "last", "inspected"), on="BILL_NO", how="left")
            .join(first_rc(["P", "I", "K", "B"], "released"), on="ENTRY_ID", how="left")
            .join(first_rc(["E", "A", "D"], "ended"), on="ENTRY_ID", how="left")
            .filter(pl.col("ended").is_null())
            .with_columns(pl.when(pl.col("I_E_FLAG") == "E").then(pl.col("ar"))
                          .when(pl.col("VESSEL_ID").is_null()).then(pl.col("disc1"))
                          .otherwise(pl.col("ata")).alias("arrival")))
    hours = lambda a, b: (pl.col(a) - pl.col(b)).dt.total_seconds() / 3600  # noqa: E731
    decl = decl.with_columns(hours("released", "arrival").alias("overall"), hours("D_DATE", "arrival").alias("pre"))
    early = decl.filter(pl.col("arrival") < pl.datetime(2026, 11, 25))
    imp, exp = early.filter(pl.col("I_E_FLAG") == "I"), early.filter(pl.col("I_E_FLAG") == "E")

    # advance declarations precede the vessel's arrival; nothing else does
    adv = imp.filter((pl.col("ADVANCE") == "Y") & pl.col("VESSEL_ID").is_not_null())
    assert adv.height > 0.2 * imp.height and (adv["D_DATE"] < adv["ata"]).all()
    assert decl.filter(pl.col("pre") < 0)["ADVANCE"].to_list() == ["Y"] * decl.filter(pl.col("pre") < 0).height
    # clearance time: imports tens of hours, exports low hours (national 2022: 32.02 h and 1.03 h)
    med_i, med_e = imp["overall"].median(), exp["overall"].median()
    assert 18 <= med_i <= 36, med_i
    assert imp["overall"].quantile(0.9) > 2 * med_i
    assert 0.5 <= med_e <= 2.5, med_e
    assert decl.filter(pl.col("overall") < 0).height == 0
    # the legitimate negative intervals occur, and only where the contract allows them
    before_disc = decl.filter(pl.col("released") < pl.col("disc"))
    assert before_disc.height > 0 and set(before_disc["SHIPSIDE"]) == {"Y"}
    before_insp = decl.filter(pl.col("released") < pl.col("inspected"))
    assert before_insp.height > 0 and set(before_insp["RBI"]) == {"Y"}
    assert set(before_insp["MAIN_CODE_TS"].str.slice(0, 2)) == {"26"}


def test_cli(tmp_path):
    cmd = [sys.executable, "-m", "clearance_tools.simulator", "--inbox", str(tmp_path / "inbox"), "--start", START,
           "--days", "2", "--scale", "0.01", "--seed", "4", "--quirks", "late,bom",
           "--break", "2026-11-21:cargo_event:empty"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "2 days" in lines[0] and "declarations" in lines[0] and "events" in lines[0]
    assert (tmp_path / "inbox" / "2026-11-21" / "cargo_event_20261121_01.csv").read_bytes() == b""
    assert (tmp_path / "inbox" / "2026-11-20" / MANIFEST_NAME).exists()
    bad = subprocess.run([*cmd[:-2], "--quirks", "nonsense"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "nonsense" in bad.stderr
