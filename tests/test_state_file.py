"""The state file: the only store of the loaded rows (issue #10, items 12 and 13).

A night that finds it missing, damaged or of an older layout beside a published warehouse refuses and
names the recovery command; the recovery command rebuilds it from the deliveries kept in the inbox, equal
to the state it replaces; only the pipeline's user can open it.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from clearance.config import settings
from clearance.contract import MANIFEST_NAME
from clearance.pipeline import run_business_date
from clearance.state import StateUnusableError
from clearance_tools.delivery_writer import manifest_entry, write_manifest
from clearance_tools.simulator import simulate
from tests.conftest import PROJECT_DIR, state_file
from tests.deliveries import entry_id, receipt

DAYS = ("2026-11-18", "2026-11-19", "2026-11-20")
NEXT = "2026-11-21"

# bookkeeping of the runs themselves: which run built the tables and which files it published
BOOKKEEPING = {"run_context", "model_fingerprint", "published_partitions", "dirty_partitions", "model_test_results"}


def tables(path: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        names = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
                                           "ORDER BY 1").fetchall()]
        return {t: con.execute(f"SELECT * EXCLUDE (row_hash) FROM {t} ORDER BY ALL" if t == "quarantine"
                               else f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                for t in names if t not in BOOKKEEPING}


@pytest.fixture(scope="module")
def three_nights(tmp_path_factory):
    """Three simulated nights with every quirk (bad rows, re-sends, late rows), the first one re-delivered
    with one bad row fewer after the third, and rerun; returns the places and a copy of the state."""
    root = tmp_path_factory.mktemp("state")
    inbox, warehouse = root / "inbox", root / "warehouse" / "clearance.duckdb"
    simulate(inbox, DAYS[0], 4, scale=0.02, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(inbox))
        mp.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
        mp.setenv("CLEARANCE_MAX_QUARANTINE_SHARE", "1")
        for day in DAYS:
            run_business_date(day)
        # the exporter sends the third delivery again with one more, bad, receipt, and then once more as
        # it was: the bad row stays in the quarantine though no delivery in the inbox holds it any more
        folder = inbox / DAYS[2]
        original_manifest = (folder / MANIFEST_NAME).read_bytes()
        path = sorted(folder.glob("dec_result_*.csv"))[0]
        original = path.read_bytes()
        columns = next(csv.reader(io.StringIO(original.decode("gb18030"))))
        extra = receipt(entry_id(7), "Q", "2026-11-20 09:00:00")
        path.write_bytes(original + (",".join(extra.get(c, "") for c in columns) + "\r\n").encode("gb18030"))
        manifest = json.loads(original_manifest)
        for entry in manifest["files"]:
            if entry["name"] == path.name:
                entry.update(manifest_entry(path, entry["rows"] + 1))
        write_manifest(folder, DAYS[2], manifest["files"])
        run_business_date(DAYS[2])
        path.write_bytes(original)
        (folder / MANIFEST_NAME).write_bytes(original_manifest)
        run_business_date(DAYS[2])
        kept = root / "state-before"
        kept.mkdir()
        shutil.copy(state_file(warehouse), kept / "state.duckdb")
    return inbox, warehouse, kept / "state.duckdb"


def environment(inbox: Path, warehouse: Path) -> dict:
    import os

    return {**os.environ, "CLEARANCE_INBOX": str(inbox), "CLEARANCE_WAREHOUSE": str(warehouse),
            "CLEARANCE_MAX_QUARANTINE_SHARE": "1"}


def test_a_night_without_its_state_refuses_and_names_the_recovery_command(three_nights, monkeypatch):
    inbox, warehouse, _ = three_nights
    monkeypatch.setenv("CLEARANCE_INBOX", str(inbox))
    monkeypatch.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
    published = warehouse.read_bytes()
    state = state_file(warehouse)
    moved = state.with_name("moved-away.duckdb")
    state.rename(moved)
    try:
        with pytest.raises(StateUnusableError) as caught:
            run_business_date(NEXT)
        assert str(caught.value) == (
            f"{state} is missing, but the published warehouse {warehouse} holds the nights up to {DAYS[2]}: a night "
            "on a new, empty state would publish only its own delivery. Nothing was changed. Rebuild the state from "
            "the deliveries kept in the inbox with make recover (python -m clearance.recover), then run the night again.")
        assert warehouse.read_bytes() == published and not state.exists()

        state.write_bytes(b"not a DuckDB file, say a disk error" * 100)  # damaged
        with pytest.raises(StateUnusableError, match=r"cannot be opened .* make recover"):
            run_business_date(NEXT)
        state.unlink()

        # a state of the layout before every sighting was kept
        with duckdb.connect(str(state)) as con:
            con.execute("CREATE TABLE land_dec_head (entry_id VARCHAR, row_hash VARCHAR)")
        with pytest.raises(StateUnusableError, match=r"written by another version of the pipeline \(layout 1; this "
                                                     r"one keeps layout 2\).* make recover"):
            run_business_date(NEXT)
        assert warehouse.read_bytes() == published
    finally:
        state.unlink(missing_ok=True)
        moved.rename(state)


def test_recovery_rebuilds_the_state_equal_to_the_one_it_replaces(three_nights):
    inbox, warehouse, before = three_nights
    state = state_file(warehouse)
    state.unlink()
    run = subprocess.run([sys.executable, "-m", "clearance.recover"], env=environment(inbox, warehouse),
                         capture_output=True, text=True, cwd=PROJECT_DIR)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert f"recovered the state from {len(DAYS)} deliveries" in run.stdout
    recovered, original = tables(state), tables(before)
    assert recovered.keys() == original.keys()
    for name in original:
        assert recovered[name] == original[name], name
    assert original["alert_log"] and original["row_sightings"]
    # the bad receipt of the delivery sent twice: only the published warehouse still held it
    assert [r[5] for r in original["quarantine"] if entry_id(7) in r[4]] == ["unknown_channel"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT business_date::VARCHAR FROM run_context").fetchall() == [(DAYS[2],)]

    # the next night runs on it, and tells no stall a second time
    with duckdb.connect(str(state), read_only=True) as con:
        told = con.execute("SELECT alert_key, stage, level FROM alert_log ORDER BY ALL").fetchall()
    subprocess.run([sys.executable, "-c", f"from clearance.pipeline import run_business_date; "
                    f"run_business_date('{NEXT}')"], env=environment(inbox, warehouse), check=True,
                   capture_output=True, cwd=PROJECT_DIR)
    with duckdb.connect(str(state), read_only=True) as con:
        again = con.execute("SELECT alert_key, stage, level, count(*) FROM alert_log GROUP BY ALL HAVING count(*) > 1"
                            ).fetchall()
        assert set(told) <= set(con.execute("SELECT alert_key, stage, level FROM alert_log").fetchall())
    assert again == []


def test_only_the_pipeline_can_open_its_state_and_scratch_files(three_nights, monkeypatch):
    inbox, warehouse, _ = three_nights
    monkeypatch.setenv("CLEARANCE_WAREHOUSE", str(warehouse))
    s = settings()
    assert stat.S_IMODE(s.state_db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(s.state_db.stat().st_mode) == 0o600
    for private in (s.work_dir, s.gx_root):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, private
    # what analysts open stays readable
    assert stat.S_IMODE(warehouse.stat().st_mode) == 0o444
