-- What the run changes in the backlog-aware statistics, observation by observation: the touched
-- shipments' spans (as they were, 03_cohort_observations_before.sql, and as they are now), and the
-- spans whose observation the move of the cut-off from the last run's (previous_cutoff) to this
-- run's changes: a milestone between the two cut-offs (the span starts or ends, or its shipment's
-- inspection is ordered: it changes slice), or open at the earlier one (its censoring moves). An
-- observation that is the same before and after cancels out.
-- From them: the completions per slice and minute to add to mart_cohort_completions (and per slice,
-- mart_cohort_slices), and the slices
-- of mart_arrival_cohort_statistics to restate. Those are the slices whose observations changed,
-- except where the only change is censorings moving to later times, none from before the slice's
-- stable_after_hours: with as many observations as before and the same completions, the number at
-- risk changes only after the earliest moved censoring, so S(t) does too, and the row reads S only
-- up to stable_after_hours. So a slice is not restated every night only because an old shipment in
-- it never completes.
/*
runs: after core
*/
CREATE OR REPLACE TEMP TABLE cohort_spans_moved AS
WITH cutoffs AS (
    SELECT least(cutoff_at, getvariable('previous_cutoff')) AS earlier,
           greatest(cutoff_at, getvariable('previous_cutoff')) AS later
    FROM run_context
),
inspection_ordered_between AS (
    SELECT entry_id FROM core_shipments, cutoffs AS c
    WHERE inspection_ordered_at > c.earlier AND inspection_ordered_at <= c.later
)
SELECT sp.*
FROM core_segment_spans AS sp, cutoffs AS c
WHERE c.earlier < c.later AND sp.is_counted AND greatest(sp.arrival_at, sp.declared_at, sp.started_at) <= c.later
    AND (greatest(sp.arrival_at, sp.declared_at, sp.started_at) > c.earlier OR sp.ended_at IS NULL
         OR sp.ended_at > c.earlier OR sp.entry_id IN (SELECT entry_id FROM inspection_ordered_between))
    AND NOT EXISTS (SELECT 1 FROM affected_entries AS a WHERE a.entry_id = sp.entry_id);
CREATE OR REPLACE TEMP TABLE cohort_observation_changes AS
WITH touched_spans AS (
    SELECT * FROM core_segment_spans SEMI JOIN affected_entries USING (entry_id)
),
signed AS (
    SELECT -1 AS weight, * FROM cohort_observations_before
    UNION ALL BY NAME SELECT 1 AS weight, * FROM cohort_observations('touched_spans', getvariable('cutoff_at'))
    UNION ALL BY NAME SELECT -1 AS weight, * FROM cohort_observations('cohort_spans_moved', getvariable('previous_cutoff'))
    UNION ALL BY NAME SELECT 1 AS weight, * FROM cohort_observations('cohort_spans_moved', getvariable('cutoff_at'))
)
SELECT * EXCLUDE (weight), sum(weight)::INTEGER AS weight
FROM signed
GROUP BY ALL
HAVING sum(weight) <> 0;
CREATE OR REPLACE TEMP TABLE cohort_count_changes AS
SELECT * FROM cohort_minute_counts('cohort_observation_changes') WHERE completions <> 0 OR censorings <> 0;
INSERT INTO cohort_completion_changes
SELECT grain, period_start, scope, direction, dimension, dimension_value, segment, target_hours, minutes,
       completions, slice_hash
FROM cohort_count_changes
WHERE completions <> 0;
INSERT INTO cohort_slice_changes
SELECT slice_hash, grain, period_start, scope, direction, dimension, dimension_value, segment, sum(completions)
FROM cohort_completion_changes
GROUP BY ALL;
INSERT INTO affected_cohort_slices
WITH changed_slices AS (
    SELECT grain, period_start, scope, direction, dimension, dimension_value, segment, slice_hash,
           bool_or(completions <> 0) AS completions_changed, sum(censorings) AS censorings_added,
           min(minutes) FILTER (WHERE censorings <> 0) AS earliest_censoring_changed
    FROM cohort_count_changes
    GROUP BY ALL
)
SELECT c.grain, c.period_start, c.scope, c.direction, c.dimension, c.dimension_value, c.segment, c.slice_hash
FROM changed_slices AS c
LEFT JOIN mart_arrival_cohort_statistics AS m
    USING (grain, period_start, scope, direction, dimension, dimension_value, segment)
WHERE c.completions_changed OR c.censorings_added <> 0 OR m.stable_after_hours IS NULL
    OR c.earliest_censoring_changed / 60.0 < m.stable_after_hours;
INSERT INTO affected_cohort_days
SELECT DISTINCT unnest(generate_series(period_start, CASE grain WHEN 'day' THEN period_start
    WHEN 'week' THEN period_start + 6 ELSE last_day(period_start) END, INTERVAL 1 DAY))::DATE AS arrival_date
FROM (SELECT DISTINCT grain, period_start FROM affected_cohort_slices);
