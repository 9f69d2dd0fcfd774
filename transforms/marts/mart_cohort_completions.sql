-- The completions the backlog-aware statistics are estimated from, kept from run to run: per arrival
-- cohort (grain, period), slice and segment, the shipments whose segment ended at each minute since
-- it started (and their target). A night does not add them up again from every shipment of the
-- cohorts it restates: it adds the completions the observations it changes add or take away
-- (transforms/incremental/06_cohort_changes.sql), so its cost follows the night, not the cohorts.
-- Internal: not published; mart_arrival_cohort_statistics reads it. A slice is its slice_hash here: its
-- columns are in mart_cohort_slices, once per slice (six strings on each of a year's ~70 M rows took
-- a quarter of this mart's rebuild to write, and half of what a night's merge wrote).
/*
materialized: differences
# a slice is its slice_hash (mart_cohort_slices tests that no two slices share one); period_start is
# kept, by which the rows are stored: a night changes recent cohorts, and reads only their rows
unique_key: [period_start, slice_hash, target_hours, minutes]
cluster_by: period_start
# a year's grouping at once spills to disk: rebuilt a month of cohorts at a time (the weeks that start
# in the month with it), the months of every arrival
rebuild_by_month: SELECT arrival_date FROM core_segment_spans
differences: cohort_completion_changes
sums: [completions]
depends_on: [core_segment_spans, core_shipments, ref_clearance_targets]
tests:
  expect:
    completions_counted: completions > 0
*/
WITH completed_spans AS (
    -- the part's cohorts: its days, and the days of the weeks that start in it
    SELECT * FROM core_segment_spans
    WHERE ended_at <= getvariable('cutoff_at')
      AND in_part_or_its_weeks(arrival_date)
),
completed AS (
    SELECT 1 AS weight, * FROM cohort_observations('completed_spans', getvariable('cutoff_at'))
)
SELECT period_start, slice_hash, target_hours, minutes, completions
FROM cohort_minute_counts('completed')
WHERE in_part(period_start);
COMMENT ON TABLE mart_cohort_completions IS 'Internal (not published): completions per arrival cohort, slice, segment and minute, kept from run to run and changed by what each night changes; mart_arrival_cohort_statistics is estimated from it';
COMMENT ON COLUMN mart_cohort_completions.minutes IS 'Whole minutes from the segment''s start milestone to its end milestone';
COMMENT ON COLUMN mart_cohort_completions.completions IS 'Shipments of the slice whose segment ended after this many minutes';
COMMENT ON COLUMN mart_cohort_completions.slice_hash IS 'hash() of the slice''s columns: the slice (its columns: mart_cohort_slices)';
