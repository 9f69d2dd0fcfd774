"""Models that declare themselves (issue #12): dependencies from DuckDB's parser, tests declared in the
model header and run on every build, a new mart that is one SQL file."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from clearance.config import TRANSFORMS_DIR
from clearance_tools.delivery_writer import write_delivery
from clearance.models import ModelTestError, tables_read
from clearance.pipeline import run_business_date
from tests.deliveries import dec_head, entry_id, receipt, vessel_event

DAY = "2026-11-20"


def one_released_shipment(inbox) -> None:
    shipment = entry_id(1)
    write_delivery(inbox, DAY, {
        "dec_head": [dec_head(shipment, "2026-11-20 02:00:00", bill="COSU1")],
        "dec_result": [receipt(shipment, "L", "2026-11-20 03:00:00"), receipt(shipment, "P", "2026-11-20 09:00:00")],
        "vessel_event": [vessel_event("ATA_ANCH", "2026-11-20 00:00:00"), vessel_event("ATA_BERTH", "2026-11-20 01:30:00")],
    })


@pytest.fixture
def transforms(tmp_path, monkeypatch):
    """A copy of transforms/ that the pipeline runs instead of the project's."""
    copy = tmp_path / "transforms"
    shutil.copytree(TRANSFORMS_DIR, copy)
    for module in ("clearance.models", "clearance.state", "clearance.publish"):
        monkeypatch.setattr(f"{module}.TRANSFORMS_DIR", copy)
    return copy


def test_dependencies_come_from_the_parser_not_from_the_text():
    sql = """-- reads core_shipments? no: this comment only names it
        WITH core_declarations AS (SELECT 1 AS entry_id)  -- a CTE, not the table
        SELECT 'mart_work_in_progress' AS label, d.entry_id
        FROM core_declarations AS d SEMI JOIN affected_entries USING (entry_id)
        JOIN (SELECT * FROM ref_ports) AS p ON true"""
    assert tables_read(sql) == {"affected_entries", "ref_ports"}


def test_a_model_that_breaks_its_tests_fails_the_night_before_anything_is_published(clearance_env, transforms):
    inbox, warehouse = clearance_env
    one_released_shipment(inbox)
    # someone measures overall clearance from the berth instead of the arrival
    model = transforms / "core" / "core_shipments.sql"
    sql = model.read_text(encoding="utf-8")
    wrong = sql.replace("hours_between(arrival_at, released_at) AS overall_clearance_hours",
                        "hours_between(berthed_at, released_at) AS overall_clearance_hours")
    assert wrong != sql
    model.write_text(wrong, encoding="utf-8")
    with pytest.raises(ModelTestError) as caught:
        run_business_date(DAY)
    message = str(caught.value)
    assert "nothing is published" in message
    assert ("transforms/core/core_shipments.sql: test overall_clearance_is_release_minus_arrival failed for 1 row(s)"
            in message)
    assert entry_id(1) in message  # an example row
    assert not warehouse.exists()
    # the state kept nothing of the night: the build was one transaction
    with duckdb.connect(str(warehouse.parent / "_state" / "clearance_state.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM land_dec_head").fetchone() == (0,)


def test_a_new_mart_is_one_sql_file(clearance_env, transforms):
    inbox, warehouse = clearance_env
    one_released_shipment(inbox)
    (transforms / "marts" / "mart_releases_by_port.sql").write_text("""\
-- Released shipments per port and day.
/*
publish: table
export: {month: "strftime(release_date, '%Y-%m')"}
tests:
  unique: [[port_code, release_date]]
  not_null: [port_code, release_date, shipments]
*/
SELECT port_code, release_date, count(*) AS shipments
FROM core_shipments
WHERE released_at IS NOT NULL
GROUP BY ALL;
COMMENT ON TABLE mart_releases_by_port IS 'Released shipments per port and day';
""", encoding="utf-8")
    run_business_date(DAY)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT port_code, release_date::VARCHAR, shipments FROM mart_releases_by_port").fetchall() == [
            ("DLC", DAY, 1)]
        assert con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'mart_releases_by_port'").fetchall() == [
            ("Released shipments per port and day",)]
        assert con.execute("SELECT test, failing_rows FROM model_test_results WHERE model = 'mart_releases_by_port' "
                           "ORDER BY 1").fetchall() == [
            ("not_null(port_code)", 0), ("not_null(release_date)", 0), ("not_null(shipments)", 0),
            ("unique(port_code, release_date)", 0)]
    exported = warehouse.parent / "parquet" / "mart_releases_by_port" / "month=2026-11"
    assert [p.suffix for p in exported.iterdir()] == [".parquet"]


def test_a_key_that_is_not_unique_fails_the_night(clearance_env, transforms):
    inbox, warehouse = clearance_env
    one_released_shipment(inbox)
    # a mart that says one row per port, and gives each port a row per copy of a join gone wrong
    (transforms / "marts" / "mart_port_copies.sql").write_text("""\
-- One row per port (it claims).
/*
publish: table
tests:
  unique: [port_code]
*/
SELECT port_code, copy FROM core_shipments CROSS JOIN (VALUES (1), (2)) AS copies(copy);
COMMENT ON TABLE mart_port_copies IS 'One row per port (it claims)';
""", encoding="utf-8")
    with pytest.raises(ModelTestError) as caught:
        run_business_date(DAY)
    assert "transforms/marts/mart_port_copies.sql: test unique(port_code) failed for 1 row(s)" in str(caught.value)
    assert "'DLC'" in str(caught.value)  # the key that has copies
    assert not warehouse.exists()


def test_a_cluster_key_stores_the_rows_in_its_order_and_must_be_part_of_the_key(clearance_env, transforms):
    inbox, warehouse = clearance_env
    one_released_shipment(inbox)
    for day, hour in (("2026-11-21", 2), ("2026-11-22", 5)):
        shipment = entry_id(hour)
        write_delivery(inbox, day, {"dec_head": [dec_head(shipment, f"{day} 0{hour}:00:00", bill=f"COSU{hour}")],
                                    "dec_result": [receipt(shipment, "L", f"{day} 0{hour}:30:00")]})
    run_business_date(DAY)
    run_business_date("2026-11-21")
    # the completions are stored by period_start (cluster_by): after the rebuild a night's rows follow
    from clearance.warehouse import rebuild
    from clearance.config import settings

    rebuild(settings())
    state = warehouse.parent / "_state" / "clearance_state.duckdb"
    with duckdb.connect(str(state), read_only=True) as con:
        periods = [p for (p,) in con.execute("SELECT period_start FROM mart_cohort_completions ORDER BY rowid").fetchall()]
        assert len(set(periods)) > 1
        assert periods == sorted(periods)

    # a cluster column outside the unique key would leave a night's key matches unable to skip anything
    model = transforms / "marts" / "mart_cohort_completions.sql"
    model.write_text(model.read_text(encoding="utf-8").replace("cluster_by: period_start", "cluster_by: grain"),
                     encoding="utf-8")
    with pytest.raises(ValueError, match="mart_cohort_completions.sql: cluster_by names columns of the unique_key"):
        run_business_date("2026-11-22")


def test_two_reform_measure_arms_with_one_id_stop_the_build_rather_than_merge(clearance_env, transforms):
    """mart_reform_measure_effects knows an arm (with or without a measure, per stratum) by a 64-bit hash:
    were two to share one, the estimator would take them as one arm. Here every arm shares one."""
    inbox, warehouse = clearance_env
    one_released_shipment(inbox)
    model = transforms / "marts" / "mart_reform_measure_effects.sql"
    text = model.read_text(encoding="utf-8")
    hashed = ("hash(arrival_month, direction, measure, with_measure, scope, is_pooled, port, transport_mode,\n"
              "                   commodity_group)")
    assert hashed in text
    model.write_text(text.replace(hashed, "42::UBIGINT"), encoding="utf-8")
    with pytest.raises(RuntimeError, match=r"mart_reform_measure_effects\.sql: .*two arms share the slice_id 42: "
                                           r"\{'arrival_month': 2026-11-01, 'direction': import"):
        run_business_date(DAY)
    assert not warehouse.exists()  # nothing published


def test_a_rebuild_runs_under_its_own_memory_limit_and_a_night_under_the_nights(clearance_env, monkeypatch):
    from clearance.config import settings
    from clearance.warehouse import rebuild

    inbox, warehouse = clearance_env
    one_released_shipment(inbox)
    run_business_date(DAY)  # the first night builds every table: a rebuild, under the rebuild's limit
    monkeypatch.setenv("CLEARANCE_DUCKDB_REBUILD_MEMORY_LIMIT", "1MB")
    shipment = entry_id(2)
    write_delivery(inbox, "2026-11-21", {"dec_head": [dec_head(shipment, "2026-11-21 02:00:00", bill="COSU2")]})
    run_business_date("2026-11-21")  # incremental: the night's limit, not the rebuild's
    with pytest.raises(RuntimeError, match=r"Out of Memory Error.*/976.5 KiB used"):
        rebuild(settings())


def test_a_rebuild_month_by_month_gives_the_tables_a_rebuild_at_once_gives(clearance_env, transforms, monkeypatch):
    """rebuild_by_month: the parts add up to the whole, a week that starts in a month where nothing
    arrived included (its month's part has no day of its own)."""
    from clearance.config import settings
    from clearance.warehouse import rebuild

    inbox, warehouse = clearance_env
    # the week of Monday 30 November: every shipment arrives in December, the week's period starts in November
    days = ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]
    for n, day in enumerate(days, start=1):
        shipment, voyage = entry_id(n), f"26{n}W"
        receipts = [receipt(shipment, "L", f"{day} 03:00:00")]
        if n % 2 == 0:  # every other one released, the others still open at the cut-off
            receipts.append(receipt(shipment, "P", f"{day} 09:00:00"))
        write_delivery(inbox, day, {
            "dec_head": [dec_head(shipment, f"{day} 02:00:00", bill=f"COSU{n}", voyage=voyage)],
            "dec_result": receipts,
            "vessel_event": [vessel_event("ATA_ANCH", f"{day} 00:00:00", voyage=voyage),
                             vessel_event("ATA_BERTH", f"{day} 01:30:00", voyage=voyage)]})
        run_business_date(day)
    marts = ("mart_cohort_completions", "mart_cohort_slices", "mart_arrival_cohort_statistics",
             "mart_clearance_statistics")
    state = warehouse.parent / "_state" / "clearance_state.duckdb"

    def rebuilt() -> dict:
        rebuild(settings())
        with duckdb.connect(str(state), read_only=True) as con:
            return {m: con.execute(f"SELECT * FROM {m} ORDER BY ALL").fetchall() for m in marts}

    by_month = rebuilt()
    with duckdb.connect(str(state), read_only=True) as con:
        assert con.execute(
            "SELECT shipments, completed FROM mart_arrival_cohort_statistics WHERE grain = 'week' AND period_start = "
            "'2026-11-30' AND dimension = 'all' AND segment = 'overall_clearance'").fetchall() == [(4, 2)]
    for model in ("mart_cohort_completions", "mart_arrival_cohort_statistics", "mart_clearance_statistics"):
        path = transforms / "marts" / f"{model}.sql"
        text = path.read_text(encoding="utf-8")
        assert "rebuild_by_month:" in text
        path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("rebuild_by_month:")),
                        encoding="utf-8")
    at_once = rebuilt()
    for m in marts:
        assert by_month[m] == at_once[m], m


def test_a_shipment_at_an_unknown_port_is_a_warning_naming_its_key_and_the_port(clearance_env, caplog):
    inbox, warehouse = clearance_env
    shipment = entry_id(1)
    # a port the reference data does not know yet (export contract, quirk 7): loaded, and a finding
    write_delivery(inbox, DAY, {
        "dec_head": [dec_head(shipment, "2026-11-20 02:00:00", port="XYZ", owner_name="沈阳某某机械有限公司")],
        "dec_result": [receipt(shipment, "L", "2026-11-20 03:00:00"), receipt(shipment, "P", "2026-11-20 09:00:00")],
    })
    with caplog.at_level("WARNING", logger="clearance.models"):
        run_business_date(DAY)
    [line] = [r.getMessage() for r in caplog.records if "relationships(port_code" in r.getMessage()]
    # the shipment and the port, not every column of the shipment (its owner's name among them)
    assert line == (f"transforms/core/core_shipments.sql: test relationships(port_code -> ref_ports.port_code) "
                    f"failed for 1 row(s), e.g. [('{shipment}', 'XYZ')]")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT failing_rows, examples FROM model_test_results "
                           "WHERE test = 'relationships(port_code -> ref_ports.port_code)'").fetchall() == [
            (1, f"[('{shipment}', 'XYZ')]")]


def test_a_night_tests_the_rows_it_updates_and_records_every_test_once(clearance_env, caplog):
    """An incremental night runs each model's tests on the rows it wrote (not on the whole table for
    the touched keys); the results name the same tests a full build does, each once."""
    inbox, warehouse = clearance_env
    one_released_shipment(inbox)
    run_business_date(DAY)
    tests = "SELECT model, test FROM model_test_results ORDER BY ALL"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tests_of_a_full_build = con.execute(tests).fetchall()
    shipment = entry_id(2)
    write_delivery(inbox, "2026-11-21", {
        "dec_head": [dec_head(shipment, "2026-11-21 02:00:00", port="XYZ")],
        "dec_result": [receipt(shipment, "L", "2026-11-21 03:00:00")],
    })
    with caplog.at_level("WARNING", logger="clearance.models"):
        run_business_date("2026-11-21")
    assert [r.getMessage() for r in caplog.records if "relationships(port_code" in r.getMessage()] == [
        f"transforms/core/core_shipments.sql: test relationships(port_code -> ref_ports.port_code) "
        f"failed for 1 row(s), e.g. [('{shipment}', 'XYZ')]"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT was_full_refresh FROM run_context").fetchall() == [(False,)]
        assert con.execute(tests).fetchall() == tests_of_a_full_build
        assert con.execute("SELECT failing_rows FROM model_test_results WHERE model = 'core_shipments' "
                           "AND test = 'relationships(port_code -> ref_ports.port_code)'").fetchall() == [(1,)]
