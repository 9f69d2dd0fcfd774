-- Helpers every model uses, kept in the warehouse so analysts can use them too.
CREATE OR REPLACE MACRO hours_between(from_time, to_time) AS date_diff('second', from_time, to_time) / 3600.0;
-- Bills are keyed in by hand: upper case, blanks and '-' removed (clearance-metrics.md).
-- Blanks are every character Python's str.isspace() counts (the ones ingest strips from a value's
-- ends): DuckDB's \s is only [\t\n\f\r ], and full-width (U+3000) and no-break (U+00A0) spaces
-- and the full-width hyphen (U+FF0D) come from Chinese input methods, other spaces from pasted
-- text. Same rule as contract.normalise_bill_no (tests/test_contract.py compares every character).
CREATE OR REPLACE MACRO normalise_bill_no(bill_no) AS
    nullif(upper(regexp_replace(
        bill_no, '[\t\n\x{0B}\f\r\x{1C}-\x{1F} \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\-\x{FF0D}]',
        '', 'g')), '');
-- Kaplan-Meier pointwise 95 % band on the log(-log) scale with Greenwood's variance, as lifelines
-- computes it ("exponential Greenwood"): z = +1.96 gives the lower bound, -1.96 the upper one.
-- Where S = 1 (no completion yet) the band is 1; where S = 0 it is 0.
CREATE OR REPLACE MACRO km_log_log_bound(log_survival, greenwood, z) AS
    CASE WHEN log_survival = 0 THEN 1.0 WHEN isinf(log_survival) THEN 0.0
        ELSE exp(-exp(ln(-log_survival) - z * sqrt(greenwood) / log_survival)) END;
