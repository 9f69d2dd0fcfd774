"""Backlog-aware statistics and reform measure effects, worked out by hand, and checked against lifelines.

Exports at Dalian (DLC), business date 2026-11-20: the cut-off is 2026-11-21 00:00 Beijing time.
Export arrival = the bill's first ARRIVAL_REPORT; release = the first P receipt (clearance-metrics.md).

Cohort of 11-18 (arrived 10:00): released after 2 h and 5 h; one still open (censored at the cut-off,
62 h); one released exactly at the cut-off (62 h): a completion and a censoring tied at 62 h.
Cohort of 11-20 (arrived 18:00): both still open at the cut-off, censored at 6 h.
Night two (11-21) releases the open one of 11-18 at 72 h and one of 11-20 at 10 h.
"""

from __future__ import annotations

import math
import warnings
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pytest

from clearance_tools.delivery_writer import write_delivery
from clearance.pipeline import run_business_date
from tests.conftest import snapshot
from tests.deliveries import cargo_event, dec_head, entry_id, receipt

Z = 1.959963984540054  # lifelines: inv_normal_cdf(0.975)
EXPORT = dict(i_e_flag="E", voyage="2611E")


def at(day: str, hour: float) -> str:
    return (datetime.fromisoformat(day) + timedelta(hours=hour)).strftime("%Y-%m-%d %H:%M:%S")


def export_shipment(seq: int, arrived: str, released: str | None, *, port: str = "DLC", advance: str = "N",
                    hs: str = "8471300000") -> dict:
    """The rows of one export: declaration, arrival report, acceptance and (if given) release."""
    entry, bill = entry_id(seq, direction="E"), f"EXP{seq:010d}"
    return {
        "dec_head": [dec_head(entry, arrived, bill=bill, port=port, advance=advance, hs=hs, **EXPORT)],
        "cargo_event": [cargo_event(bill, "ARRIVAL_REPORT", arrived, voyage="2611E", port=port)],
        "dec_result": [receipt(entry, "L", arrived)] + ([receipt(entry, "P", released)] if released else []),
    }


def delivery(*shipments: dict) -> dict:
    files: dict[str, list] = {}
    for rows in shipments:
        for kind, lines in rows.items():
            files.setdefault(kind, []).extend(lines)
    return files


def cohort(path, day: date, grain: str = "day", segment: str = "overall_clearance", scope: str = "liaoning",
           dimension: str = "all", value: str = "all") -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        cur = con.execute("SELECT * FROM mart_arrival_cohort_statistics WHERE grain = ? AND period_start = ? "
                          "AND scope = ? AND direction = 'export' AND dimension = ? AND dimension_value = ? "
                          "AND segment = ?", [grain, day, scope, dimension, value, segment])
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0]))


def band(survival: float, greenwood: float, z: float) -> float:
    """lifelines' pointwise band (exponential Greenwood): z > 0 lower, z < 0 upper."""
    v = math.log(survival)
    return math.exp(-math.exp(math.log(-v) - z * math.sqrt(greenwood) / v))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("backlog")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_INBOX", str(root / "inbox"))
        mp.setenv("CLEARANCE_WAREHOUSE", str(root / "clearance.duckdb"))
        mp.setenv("CLEARANCE_DASHBOARD", str(root / "dashboards" / "clearance_dashboard.html"))
        write_delivery(root / "inbox", "2026-11-20", delivery(
            export_shipment(1, "2026-11-18 10:00:00", "2026-11-18 12:00:00"),
            export_shipment(2, "2026-11-18 10:00:00", "2026-11-18 15:00:00"),
            export_shipment(3, "2026-11-18 10:00:00", None),
            export_shipment(4, "2026-11-18 10:00:00", "2026-11-21 00:00:00"),  # at the cut-off
            export_shipment(5, "2026-11-20 18:00:00", None),
            export_shipment(6, "2026-11-20 18:00:00", None),
        ))
        run_business_date("2026-11-20")
        first = snapshot(root / "clearance.duckdb", root / "night_one")
        write_delivery(root / "inbox", "2026-11-21", {"dec_result": [
            receipt(entry_id(3, direction="E"), "P", "2026-11-21 10:00:00"),
            receipt(entry_id(5, direction="E"), "P", "2026-11-21 04:00:00"),
        ]})
        run_business_date("2026-11-21")
    return first, root / "clearance.duckdb"


def test_a_tie_at_the_cut_off_and_an_open_shipment_by_hand(warehouse):
    row = cohort(warehouse[0], date(2026, 11, 18))
    assert (row["shipments"], row["completed"], row["still_open"]) == (4, 3, 1)
    # at 2 h: 4 at risk, 1 released: S = 3/4; at 5 h: 3 at risk: S = 1/2, the median; at 62 h the release
    # at the cut-off and the open one (censored at 62 h) are both at risk: S = 1/2 x 1/2 = 1/4; S never
    # reaches 0.1, so the p90 is not known yet
    assert row["median_hours"] == pytest.approx(5)
    assert row["p90_hours"] is None
    # Greenwood: sum d / (n (n - d)): 1/12 at 2 h, + 1/6 at 5 h, + 1/2 at 62 h
    assert band(3 / 4, 1 / 12, Z) <= 0.5  # the lower band crosses 0.5 already at 2 h
    assert band(1 / 2, 1 / 12 + 1 / 6, -Z) > 0.5 and band(1 / 4, 1 / 12 + 1 / 6 + 1 / 2, -Z) > 0.5
    assert (row["median_lower_hours"], row["median_upper_hours"]) == (pytest.approx(2), None)
    # the p90's interval: the lower band is <= 0.1 first at 5 h; the upper one never is
    assert band(3 / 4, 1 / 12, Z) > 0.1 >= band(1 / 2, 1 / 12 + 1 / 6, Z)
    assert band(1 / 4, 1 / 12 + 1 / 6 + 1 / 2, -Z) > 0.1
    assert (row["p90_lower_hours"], row["p90_upper_hours"]) == (pytest.approx(5), None)
    # the released ones alone: 2, 5, 62 h
    assert (row["released_only_median_hours"], row["released_only_p90_hours"]) == (pytest.approx(5), pytest.approx(62))
    assert row["released_only_mean_hours"] == pytest.approx(69 / 3)
    # export target 6.15 h: 1 - S(6.15) = 1/2 counting the open one; 2 of the 3 released
    assert row["target_hours"] == 6.15
    assert row["share_within_target"] == pytest.approx(0.5)
    assert row["released_only_share_within_target"] == pytest.approx(2 / 3)
    # the distribution: 1 - S(t) at 1, 3, 6, 12, 24, 48, 72, 168 h
    assert row["share_completed_within"] == pytest.approx([0, 0.25, 0.5, 0.5, 0.5, 0.5, 0.75, 0.75])
    assert row["longest_completed_hours"] == pytest.approx(62)


def test_a_period_where_every_shipment_is_still_open(warehouse):
    row = cohort(warehouse[0], date(2026, 11, 20))
    assert (row["shipments"], row["completed"], row["still_open"]) == (2, 0, 2)
    # nothing released: S = 1 throughout; no median, no interval, none within the target yet
    for column in ("median_hours", "median_lower_hours", "median_upper_hours", "p90_hours",
                   "released_only_median_hours", "released_only_mean_hours"):
        assert row[column] is None, column
    assert row["share_within_target"] == 0.0 and row["released_only_share_within_target"] is None
    # the released-only statistics by day of release have no row for that day at all
    with duckdb.connect(str(warehouse[0]), read_only=True) as con:
        released = con.execute("SELECT count(*) FROM mart_clearance_statistics WHERE grain = 'day' "
                               "AND period_start = DATE '2026-11-20' AND direction = 'export'").fetchone()
    assert released == (0,)


def test_the_next_night_restates_the_cohorts(warehouse):
    old = cohort(warehouse[1], date(2026, 11, 18))
    # 2, 5, 62, 72 h, all released: S = 3/4, 1/2, 1/4, 0
    assert (old["completed"], old["still_open"]) == (4, 0)
    assert (old["median_hours"], old["p90_hours"]) == (pytest.approx(5), pytest.approx(72))
    assert old["released_only_median_hours"] == old["median_hours"]
    new = cohort(warehouse[1], date(2026, 11, 20))
    # released after 10 h; the other one open, censored at 30 h now: S(10) = 1/2
    assert (new["completed"], new["still_open"], new["median_hours"]) == (1, 1, pytest.approx(10))
    month = cohort(warehouse[1], date(2026, 11, 1), grain="month", scope="0900")
    assert (month["shipments"], month["completed"], month["still_open"]) == (6, 5, 1)


def test_every_slice_and_period_of_the_statistics_mart_has_its_backlog_aware_figures(warehouse):
    """Each (grain, period, dimension, value) the released-only statistics show, the cohort mart shows
    too, counted by arrival; and a day's port slice adds up to the day."""
    with duckdb.connect(str(warehouse[1]), read_only=True) as con:
        released_only = set(con.execute(
            "SELECT DISTINCT grain, dimension FROM mart_clearance_statistics").fetchall())
        backlog_aware = set(con.execute(
            "SELECT DISTINCT grain, dimension FROM mart_arrival_cohort_statistics WHERE scope = 'liaoning'").fetchall())
        [(day_total, by_commodity)] = con.execute(
            "SELECT sum(shipments) FILTER (WHERE dimension = 'all'), sum(shipments) FILTER (WHERE dimension = "
            "'commodity_group') FROM mart_arrival_cohort_statistics WHERE grain = 'day' AND period_start = "
            "DATE '2026-11-18' AND scope = 'liaoning' AND segment = 'overall_clearance'").fetchall()
    assert released_only and released_only <= backlog_aware, released_only - backlog_aware
    assert {dimension for grain, dimension in backlog_aware if grain == "day"} >= {
        "all", "district", "office", "port", "transport_mode", "trade_mode", "commodity_group", "inspection",
        "reform_measure"}
    assert day_total == by_commodity == 4  # the 18th's four shipments, once in each slicing


def test_every_segment_counts_its_own_risk_set(warehouse):
    # pre_declaration: declared at arrival for all four (0 h); customs_processing: accepted at arrival
    pre = cohort(warehouse[0], date(2026, 11, 18), segment="pre_declaration")
    assert (pre["shipments"], pre["completed"], pre["median_hours"]) == (4, 4, 0)
    customs = cohort(warehouse[0], date(2026, 11, 18), segment="customs_processing")
    assert (customs["shipments"], customs["still_open"], customs["median_hours"]) == (4, 1, pytest.approx(5))
    with duckdb.connect(str(warehouse[0]), read_only=True) as con:
        import_only = con.execute("SELECT count(*) FROM mart_arrival_cohort_statistics WHERE direction = 'export' "
                                  "AND segment IN ('port_exit', 'door_to_gate', 'anchorage_wait')").fetchone()
    assert import_only == (0,)


# --------------------------------------------------------------------------------------- reform measures

def test_reform_measure_effect_compares_like_with_like(clearance_env):
    """Advance declaration saves 1 h at Dalian and 2 h at Yingkou, but is used mostly at fast Dalian: the
    unadjusted comparison credits the measure with the difference between the ports."""
    inbox, warehouse = clearance_env
    shipments, seq = [], 100

    def add(port: str, hours: list[int], advance: str):
        nonlocal seq
        for h in hours:
            seq += 1
            shipments.append(export_shipment(seq, "2026-11-10 08:00:00", at("2026-11-10 08:00:00", h), port=port,
                                             advance=advance))

    add("DLC", [2, 3, 4, 5, 6], "N")
    add("DLC", [1, 2, 3, 4, 5] * 2, "Y")
    add("YKP", [10, 11, 12, 13, 14] * 2, "N")
    add("YKP", [8, 9, 10, 11, 12], "Y")
    write_delivery(inbox, "2026-11-20", delivery(*shipments))
    run_business_date("2026-11-20")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cur = con.execute("SELECT * FROM mart_reform_measure_effects WHERE scope = 'liaoning' "
                          "AND measure = 'advance_declaration'")
        names = [d[0] for d in cur.description]
        [effect] = [dict(zip(names, r)) for r in cur.fetchall()]
    assert effect["arrival_month"] == date(2026, 11, 1) and effect["direction"] == "export"
    assert (effect["shipments_with_measure"], effect["shipments_without_measure"]) == (15, 15)
    assert (effect["strata_compared"], effect["compared_with_measure"], effect["compared_without_measure"],
            effect["not_compared_with_measure"]) == (2, 15, 15, 0)
    # medians within the strata (the ceil(n/2)-th smallest): Dalian 3 vs 4 h, Yingkou 10 vs 12 h;
    # weighted by the shipments with the measure: (10 x -1 + 5 x -2) / 15
    assert effect["difference_hours"] == pytest.approx(-20 / 15)
    # pooled: the 8th of 15 with (4 h) against the 8th of 15 without (11 h)
    assert (effect["median_with_measure_hours"], effect["median_without_measure_hours"]) == (4, 11)
    assert effect["unadjusted_difference_hours"] == pytest.approx(-7)
    # the interval: each arm's standard error from its Brookmeyer-Crowley interval (lifelines), combined
    se = {}
    for name, hours in {"dlc_with": [1, 2, 3, 4, 5] * 2, "dlc_without": [2, 3, 4, 5, 6],
                        "ykp_with": [8, 9, 10, 11, 12], "ykp_without": [10, 11, 12, 13, 14] * 2}.items():
        lower, upper = lifelines_median_interval(hours, [True] * len(hours))
        se[name] = (upper - lower) / (2 * Z)
    standard_error = math.sqrt((10 / 15) ** 2 * (se["dlc_with"] ** 2 + se["dlc_without"] ** 2)
                               + (5 / 15) ** 2 * (se["ykp_with"] ** 2 + se["ykp_without"] ** 2))
    assert effect["difference_standard_error_hours"] == pytest.approx(standard_error, rel=1e-6)
    assert effect["difference_lower_hours"] == pytest.approx(-20 / 15 - Z * standard_error, rel=1e-6)
    assert effect["difference_upper_hours"] == pytest.approx(-20 / 15 + Z * standard_error, rel=1e-6)


# ---------------------------------------------------------------------------------- against lifelines

def lifelines_fit(hours, completed):
    from lifelines import KaplanMeierFitter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KaplanMeierFitter().fit(hours, completed)


def first_at_or_below(series, q: float):
    """The first time a step function is <= q (the tolerance keeps an exact 1/2 computed as 0.5000000000000001
    an exact 1/2: lifelines itself compares without one and then reports the next time)."""
    hit = series[series <= q + 1e-9]
    return float(hit.index[0]) if len(hit) else None


def lifelines_median_interval(hours, completed):
    fit = lifelines_fit(hours, completed)
    band_frame = fit.confidence_interval_
    return first_at_or_below(band_frame.iloc[:, 0], 0.5), first_at_or_below(band_frame.iloc[:, 1], 0.5)


def synthetic_state(rows: list[dict], cutoff: datetime) -> duckdb.DuckDBPyConnection:
    """An in-memory state with only what the backlog-aware model reads, built by the project's own models."""
    from clearance.config import TRANSFORMS_DIR
    from clearance.models import Model, run_model
    from clearance.state import ensure_schema, run_sql_file

    con = duckdb.connect()
    ensure_schema(con)  # the macros, and the tables the runner keeps its books in
    run_sql_file(con, TRANSFORMS_DIR / "incremental" / "00_cohort_macros.sql")  # the backlog-aware statistics' own
    con.execute("CREATE TABLE run_context AS SELECT ?::TIMESTAMP AS cutoff_at", [cutoff])
    con.execute("SET VARIABLE cutoff_at = ?::TIMESTAMP", [cutoff])
    con.execute("CREATE TABLE ref_clearance_targets AS SELECT 'state_council_2021' AS target_code, 'import' AS direction,"
                " NULL::VARCHAR AS district_code, 48.0 AS target_hours, true AS is_operative")
    con.execute("""CREATE TABLE core_shipments (entry_id VARCHAR, direction VARCHAR, is_counted BOOLEAN,
        district_code VARCHAR, declaring_office_code VARCHAR, port_code VARCHAR, transport_mode_code VARCHAR,
        trade_mode VARCHAR, commodity_group VARCHAR, reform_measures VARCHAR[], arrived_by_vessel_call BOOLEAN,
        arrival_at TIMESTAMP, declared_at TIMESTAMP, berthed_at TIMESTAMP, accepted_at TIMESTAMP,
        inspection_ordered_at TIMESTAMP, inspected_at TIMESTAMP, released_at TIMESTAMP, gate_out_at TIMESTAMP)""")
    con.executemany("INSERT INTO core_shipments VALUES (?, 'import', true, '0900', '0900', ?, '3', '0110', 'other', "
                    "['none'], false, ?, ?, NULL, NULL, NULL, NULL, ?, NULL)",
                    [[r["entry_id"], r["port"], r["arrival_at"], r["arrival_at"], r["released_at"]] for r in rows])
    run_model(con, Model.read(TRANSFORMS_DIR / "core" / "core_segment_spans.sql"), full_refresh=True)
    for mart in ("mart_cohort_completions", "mart_cohort_slices", "mart_arrival_cohort_statistics"):
        run_model(con, Model.read(TRANSFORMS_DIR / "marts" / f"{mart}.sql"), full_refresh=True)
    return con


def test_the_estimator_equals_lifelines_on_many_cohorts_with_ties():
    """Sixty cohorts (one port each) of 1 to 40 rail imports: durations drawn from a few values so that
    releases tie with each other and with the cut-off, some still open."""
    rng = np.random.default_rng(15)
    cutoff = datetime(2026, 11, 21)
    rows = []
    for port in range(60):
        for i in range(int(rng.integers(1, 41))):
            arrival = cutoff - timedelta(hours=int(rng.integers(1, 120)))
            duration = timedelta(hours=int(rng.choice([1, 2, 2, 5, 5, 10, 24, 48, 72, 96, 130])))
            rows.append({"entry_id": f"{port}-{i}", "port": f"P{port:02d}", "arrival_at": arrival,
                         "released_at": arrival + duration})
    con = synthetic_state(rows, cutoff)
    mart = {r[0]: r[1:] for r in con.execute(
        "SELECT dimension_value, shipments, still_open, median_hours, median_lower_hours, median_upper_hours, "
        "p90_hours, p90_lower_hours, p90_upper_hours, share_within_target, share_completed_within "
        "FROM mart_arrival_cohort_statistics WHERE grain = 'month' AND scope = 'liaoning' AND dimension = 'port' "
        "AND segment = 'overall_clearance'").fetchall()}
    assert len(mart) == 60
    ties_at_cutoff = open_cohorts = 0
    for port, (shipments, still_open, *quantiles, share, distribution) in mart.items():
        mine = [r for r in rows if r["port"] == port]
        completed = [r["released_at"] <= cutoff for r in mine]
        hours = [((r["released_at"] if done else cutoff) - r["arrival_at"]).total_seconds() / 3600
                 for r, done in zip(mine, completed)]
        ties_at_cutoff += any(r["released_at"] == cutoff for r in mine) and not all(completed)
        open_cohorts += not all(completed)
        fit = lifelines_fit(hours, completed)
        survival = fit.survival_function_.iloc[:, 0]
        lower, upper = fit.confidence_interval_.iloc[:, 0], fit.confidence_interval_.iloc[:, 1]
        expected = [first_at_or_below(s, q) for q in (0.5, 0.1) for s in (survival, lower, upper)]
        assert (shipments, still_open) == (len(mine), completed.count(False)), port
        assert quantiles == pytest.approx(expected), port
        assert share == pytest.approx(1 - float(fit.survival_function_at_times(48.0).iloc[0])), port
        assert distribution == pytest.approx(
            [1 - float(v) for v in fit.survival_function_at_times([1, 3, 6, 12, 24, 48, 72, 168])]), port
    assert open_cohorts > 20 and ties_at_cutoff > 0  # the draw exercises what the test is about


# ------------------------------------------------------------------ an old cohort with a shipment still open

def old_cohort_deliveries(inbox) -> None:
    """November's export cohort: 100 released within 50 h and one after 430 h (arrived 11-01), one
    shipment arrived 11-10 and still open on every night (followed 254 h at the first cut-off: past
    168 h and every quantile and interval end, short of the longest release). The day of 11-17:
    released after 1, 2 and 80 h, and one arrived at 20:00 still open: followed 76 h at the first
    cut-off, 100 h at the second, when the p90 (80 h: S = 0 there) is no longer reached. Each later
    night brings one new shipment of its own day."""
    first = [export_shipment(700 + i, "2026-11-10 10:00:00", at("2026-11-10 10:00:00", 1 + i // 2))
             for i in range(100)]
    first.append(export_shipment(880, "2026-11-01 10:00:00", at("2026-11-01 10:00:00", 430)))
    first.append(export_shipment(881, "2026-11-10 10:00:00", None))
    first += [export_shipment(890 + i, "2026-11-12 08:00:00", at("2026-11-12 08:00:00", 2 + i), advance="Y")
              for i in range(10)]
    first += [export_shipment(950 + i, "2026-11-17 10:00:00", at("2026-11-17 10:00:00", h))
              for i, h in enumerate((1, 2, 80))]
    first.append(export_shipment(953, "2026-11-17 20:00:00", None))
    write_delivery(inbox, "2026-11-20", delivery(*first))
    for n, day in enumerate(("2026-11-21", "2026-11-22", "2026-11-23")):
        write_delivery(inbox, day, delivery(export_shipment(900 + n, f"{day} 09:00:00", f"{day} 12:00:00")))


@pytest.mark.parametrize("nights", [["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"],
                                    ["2026-11-20", "2026-11-22", "2026-11-21", "2026-11-23", "2026-11-22"]],
                         ids=["in_order", "out_of_order_and_rerun"])
def test_an_old_open_shipment_followed_night_after_night_equals_a_rebuild(clearance_env, nights):
    """The month's figures are not restated only because the open shipment is followed one more day
    (moving its censoring past every time the figures read S at changes none of them): night by
    night, every table equals a rebuild from scratch at the last cut-off."""
    from clearance.config import settings
    from clearance.models import models
    from clearance.warehouse import rebuild
    from tests.conftest import state_file
    from tests.test_reruns_and_readers import table_contents

    inbox, warehouse = clearance_env
    old_cohort_deliveries(inbox)
    run_business_date(nights[0])
    month = cohort(state_file(warehouse), date(2026, 11, 1), grain="month")
    assert month["still_open"] == 2 and month["longest_completed_hours"] == pytest.approx(430)
    # the case this is about: the open shipment (254 h) is past the row's stable time, short of the longest release
    assert month["stable_after_hours"] < 254 < month["longest_completed_hours"]
    assert cohort(state_file(warehouse), date(2026, 11, 17))["p90_hours"] == pytest.approx(80)
    for night in nights[1:]:
        run_business_date(night)
    state = state_file(warehouse)
    tables = [m.name for m in models() if m.name != "run_context"]
    nightly = {table: table_contents(state, table) for table in tables}
    assert any(row[0] == "month" for row in nightly["mart_arrival_cohort_statistics"])
    assert nightly["mart_reform_measure_effects"]
    assert cohort(state, date(2026, 11, 17))["p90_hours"] is None
    rebuild(settings(), nights[-1])
    for table in tables:
        assert table_contents(state, table) == nightly[table], table
