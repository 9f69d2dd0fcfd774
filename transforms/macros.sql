-- Helpers every model uses, kept in the warehouse so analysts can use them too.
CREATE OR REPLACE MACRO hours_between(from_time, to_time) AS date_diff('second', from_time, to_time) / 3600.0;
-- Bills are keyed in by hand: upper case, blanks and '-' removed (clearance-metrics.md).
CREATE OR REPLACE MACRO normalise_bill_no(bill_no) AS nullif(upper(regexp_replace(bill_no, '[\s\-]', '', 'g')), '');
