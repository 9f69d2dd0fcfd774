-- The touched shipments' observations as they were at the last run's cut-off (the variable
-- previous_cutoff), read before the core models change them: the completions they counted are taken
-- away again (06_cohort_changes.sql), and the slices they were in are restated.
/*
runs: after staging
*/
INSERT INTO cohort_observations_before
WITH touched_spans AS (
    SELECT * FROM core_segment_spans SEMI JOIN affected_entries USING (entry_id)
)
SELECT * FROM cohort_observations('touched_spans', getvariable('previous_cutoff'));
