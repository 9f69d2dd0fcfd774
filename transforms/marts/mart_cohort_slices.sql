-- The slices of mart_cohort_completions, one row each, with their completions in all: where
-- mart_arrival_cohort_statistics finds a slice's columns by its slice_hash (mart_cohort_completions
-- holds the hash only). Kept from run to run as mart_cohort_completions is; a rebuild counts the same
-- completed observations, without their minutes: the observations alike but for the shipment are
-- counted once first, so the slices' grouping sets add up ~65,000 rows a month, not ~500,000.
-- Internal: not published.
/*
materialized: differences
unique_key: [slice_hash, grain, period_start, scope, direction, dimension, dimension_value, segment]
differences: cohort_slice_changes
sums: [completions]
# rebuilt a month of cohorts at a time, as mart_cohort_completions
rebuild_by_month: SELECT arrival_date FROM core_segment_spans
depends_on: [core_segment_spans, core_shipments, ref_clearance_targets]
tests:
  queries:
    one_slice_per_hash: >-
      SELECT slice_hash, count(*) AS slices FROM mart_cohort_slices SEMI JOIN cohort_slice_changes USING (slice_hash)
      GROUP BY slice_hash HAVING count(*) > 1
  expect:
    completions_counted: completions > 0
*/
WITH completed_spans AS (
    -- as mart_cohort_completions: the part's cohorts, its days and the days of the weeks that start in it
    SELECT * FROM core_segment_spans
    WHERE ended_at <= getvariable('cutoff_at')
      AND in_part_or_its_weeks(arrival_date)
),
completed AS (
    SELECT count(*) AS weight, direction, segment, arrival_date, district, office, port, transport_mode, trade_mode,
           commodity_group, inspection, reform_measures, NULL::DOUBLE AS target_hours, 0::BIGINT AS minutes,
           true AS is_completed
    FROM cohort_observations('completed_spans', getvariable('cutoff_at'))
    GROUP BY ALL
)
SELECT slice_hash, grain, period_start, scope, direction, dimension, dimension_value, segment, completions
FROM cohort_minute_counts('completed')
WHERE in_part(period_start);
COMMENT ON TABLE mart_cohort_slices IS 'Internal (not published): the slices of mart_cohort_completions with their completions in all, kept from run to run';
