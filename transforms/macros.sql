-- Helpers every model uses, kept in the warehouse so analysts can use them too.
CREATE OR REPLACE MACRO hours_between(from_time, to_time) AS date_diff('second', from_time, to_time) / 3600.0;
-- Bills are keyed in by hand: upper case, blanks and '-' removed (clearance-metrics.md).
-- DuckDB's \s is ASCII only: full-width (U+3000) and no-break (U+00A0) spaces and the full-width
-- hyphen (U+FF0D) come from Chinese input methods. Same rule as contract.normalise_bill_no.
CREATE OR REPLACE MACRO normalise_bill_no(bill_no) AS
    nullif(upper(regexp_replace(bill_no, '[\s\x{3000}\x{00A0}\-\x{FF0D}]', '', 'g')), '');
