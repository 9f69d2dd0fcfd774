-- The slices of mart_cohort_completions, one row each, with their completions in all: where
-- mart_arrival_cohort_statistics finds a slice's columns by its slice_hash without reading them
-- from every row of mart_cohort_completions. Kept from run to run as mart_cohort_completions is.
-- Internal: not published.
/*
materialized: differences
unique_key: [slice_hash, grain, period_start, scope, direction, dimension, dimension_value, segment]
differences: cohort_slice_changes
sums: [completions]
tests:
  queries:
    one_slice_per_hash: >-
      SELECT slice_hash, count(*) AS slices FROM mart_cohort_slices SEMI JOIN cohort_slice_changes USING (slice_hash)
      GROUP BY slice_hash HAVING count(*) > 1
  expect:
    completions_counted: completions > 0
*/
SELECT slice_hash, grain, period_start, scope, direction, dimension, dimension_value, segment,
       sum(completions)::BIGINT AS completions
FROM mart_cohort_completions
GROUP BY ALL;
COMMENT ON TABLE mart_cohort_slices IS 'Internal (not published): the slices of mart_cohort_completions with their completions in all, kept from run to run';
