"""The contract module, the validation suites and the SQL agree with each other."""

import json

import duckdb
import pytest

from clearance.config import EXPECTATIONS_DIR, TRANSFORMS_DIR
from clearance.contract import (CARGO_EVENT_CODES, CHANNELS, DECL_STEPS, ENTRY_ID_PATTERN, I_E_FLAGS, KINDS,
                                TRAF_MODES, VESSEL_EVENT_CODES, YES_NO, container_number_is_valid,
                                normalise_bill_no)


def expectation(kind, column, type_):
    doc = json.loads((EXPECTATIONS_DIR / f"{kind}.json").read_text(encoding="utf-8"))
    [found] = [e for e in doc["expectations"] if e["type"] == type_ and e["kwargs"].get("column") == column]
    return found["kwargs"]


@pytest.mark.parametrize(("kind", "column", "codes"), [
    ("dec_result", "CHANNEL", CHANNELS), ("vessel_event", "EVENT_CODE", VESSEL_EVENT_CODES),
    ("cargo_event", "EVENT_CODE", CARGO_EVENT_CODES), ("dec_head", "I_E_FLAG", I_E_FLAGS),
    ("dec_head", "TRAF_MODE", TRAF_MODES), ("dec_head", "DECL_STEP", DECL_STEPS), ("dec_head", "RBI", YES_NO),
])
def test_suites_use_the_contract_code_lists(kind, column, codes):
    assert expectation(kind, column, "expect_column_values_to_be_in_set")["value_set"] == list(codes)


def test_suites_check_the_entry_id_pattern_and_every_required_column():
    for kind in ("dec_head", "dec_result"):
        assert expectation(kind, "ENTRY_ID", "expect_column_values_to_match_regex")["regex"] == ENTRY_ID_PATTERN
    for kind, spec in KINDS.items():
        for column in spec.required:
            expectation(kind, column, "expect_column_to_exist")
            expectation(kind, column, "expect_column_values_to_not_be_null")
        for column in spec.times:
            expectation(kind, f"{column}__parses", "expect_column_values_to_be_in_set")
            # no time more than a day after the export date: a limit per row, so one run can hold many deliveries
            doc = json.loads((EXPECTATIONS_DIR / f"{kind}.json").read_text(encoding="utf-8"))
            [limit] = [e["kwargs"] for e in doc["expectations"] if e["kwargs"].get("column_B") == f"{column}__parsed"]
            assert limit == {"column_A": "_latest_allowed_time", "column_B": f"{column}__parsed", "or_equal": True,
                             "ignore_row_if": "either_value_is_missing"}


def test_iso6346_check_digit():
    assert container_number_is_valid("CSQU3054383")  # the standard's own example
    assert not container_number_is_valid("CSQU3054384")
    assert not container_number_is_valid("CSQ3054383")
    assert not container_number_is_valid("CSQU305438\uff13")  # a full-width digit is no digit here


def test_container_check_digits_column_wise_as_one_by_one():
    import polars as pl

    from clearance.contract import container_number_is_valid_expr

    numbers = ["CSQU3054383", "CSQU3054384", "CSQ3054383", "csqu3054383", "CSQU305438\uff13", "CSQX3054383",
               "CSQU30543830", "", None] + [f"MSCU{n:06d}{d}" for n in (123, 45678, 999999) for d in range(10)]
    column_wise = pl.select(container_number_is_valid_expr(pl.Series(numbers, dtype=pl.String))).to_series().to_list()
    assert column_wise == [None if n is None else container_number_is_valid(n) for n in numbers]


def test_python_whitespace_is_what_str_strip_removes():
    import sys

    from clearance.ingest import PY_WHITESPACE

    assert set(PY_WHITESPACE) == {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()}


@pytest.mark.parametrize("keyed", ["COSU 6234567890", "cosu6234567890", " COSU-6234567890 ", "cosu\u30006234567890",
                                   "COSU\u00a06234567890", "COSU\uff0d6234567890"])
def test_bill_numbers_normalise_the_same_in_python_and_sql(keyed):
    con = duckdb.connect()
    con.execute((TRANSFORMS_DIR / "macros.sql").read_text(encoding="utf-8"))
    [(in_sql,)] = con.execute("SELECT normalise_bill_no(?)", [keyed]).fetchall()
    assert in_sql == normalise_bill_no(keyed) == "COSU6234567890"


def test_bill_numbers_normalise_the_same_in_python_and_sql_for_every_character():
    """Each character of Unicode inside a bill number: removed as a blank by both or by neither, and
    upper-cased alike, but for the letters Python upper-cases to several characters."""
    import sys

    import pyarrow as pa

    keyed = [f"cosu{chr(c)}62" for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    con = duckdb.connect()
    con.execute((TRANSFORMS_DIR / "macros.sql").read_text(encoding="utf-8"))
    con.register("keyed", pa.table({"bill_no": keyed}))
    in_sql = [v for (v,) in con.execute("SELECT normalise_bill_no(bill_no) FROM keyed").fetchall()]
    differing = {k[4] for k, sql in zip(keyed, in_sql) if sql != normalise_bill_no(k)}
    assert differing == {k[4] for k in keyed if len(k[4].upper()) > 1}
    blanks = {k[4] for k, sql in zip(keyed, in_sql) if sql == "COSU62"}
    assert blanks == {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()} | {"-", "\uff0d"}


def test_every_quarantine_reason_and_finding_is_said_in_words():
    """The dashboard's data-quality tables name each reason and finding from transforms/seeds/data_quality_labels.csv."""
    import csv
    import re

    from clearance.config import PROJECT_DIR

    with open(PROJECT_DIR / "transforms" / "seeds" / "data_quality_labels.csv", encoding="utf-8") as handle:
        labelled = {(row["kind"], row["code"]) for row in csv.DictReader(handle) if row["label_zh"] and row["label"]}
    reasons = {"wrong_field_count"} | {
        e["meta"]["reason_code"] for path in EXPECTATIONS_DIR.glob("*.json")
        for e in json.loads(path.read_text(encoding="utf-8"))["expectations"] if "reason_code" in e.get("meta", {})}
    header = (PROJECT_DIR / "transforms" / "marts" / "mart_data_quality_findings.sql").read_text(encoding="utf-8")
    findings = set(re.search(r"finding: \[([^\]]+)\]", header).group(1).replace(" ", "").split(","))
    assert {("quarantine_reason", r) for r in reasons} | {("finding", f) for f in findings} <= labelled


@pytest.mark.parametrize("kind", KINDS)
def test_gx_reads_every_expectations_kwargs_as_its_own_methods_do(kind):
    """clearance.validation replaces four of GX's kwarg readers with ones that build an expectation's
    configuration once per call (a second of every night): for every expectation of the suites, the
    kwargs read are GX's own."""
    from clearance.validation import _import_great_expectations, load_suite_document

    gx = _import_great_expectations()
    from great_expectations.expectations.expectation import Expectation

    if not hasattr(Expectation, "_clearance_gx_kwargs_methods"):
        pytest.skip(f"GX {gx.__version__}: its own readers are used")
    gx_own = Expectation._clearance_gx_kwargs_methods
    suite = gx.ExpectationSuite(name=f"check_{kind}", expectations=load_suite_document(kind)["expectations"])
    assert suite.expectations
    for expectation in suite.expectations:
        for runtime in ({}, {"result_format": {"result_format": "COMPLETE", "unexpected_index_column_names": ["x"]}}):
            assert expectation._get_runtime_kwargs(runtime) == gx_own["_get_runtime_kwargs"](expectation, runtime)
        assert expectation._get_success_kwargs() == gx_own["_get_success_kwargs"](expectation)
        assert expectation._get_domain_kwargs() == gx_own["_get_domain_kwargs"](expectation)
        for key in (*expectation.runtime_keys, *expectation.success_keys, "mostly", "no_such_key"):
            assert expectation._get_success_kwarg(key, "default") == gx_own["_get_success_kwarg"](expectation, key, "default")
