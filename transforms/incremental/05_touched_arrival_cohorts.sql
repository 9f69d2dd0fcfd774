-- Arrival cohorts to restate (backlog-aware statistics, reform measure effects): those of the touched
-- shipments (before and after the change), and those whose figures the move of the cut-off from the
-- last run's (the variable previous_cutoff) to this run's changes. A segment of a shipment can change
-- them when a milestone of it lies between the two cut-offs, or when it is open at the earlier one and
-- has been followed for less time than the stable_after_hours of a row of its cohort: moving a
-- censoring from t to later changes S after t only, so once an open shipment has been followed past
-- the longest completion, or past every time the figures read S at, it moves no estimate. So a
-- cohort is not recomputed every night only because an old shipment in it never completes.
/*
runs: after core
*/
INSERT INTO affected_arrival_periods
WITH cutoffs AS (
    SELECT least(cutoff_at, getvariable('previous_cutoff')) AS earlier,
           greatest(cutoff_at, getvariable('previous_cutoff')) AS later
    FROM run_context
),
spans AS (
    SELECT sp.arrival_date, sp.direction, sp.segment,
           greatest(sp.arrival_at, sp.declared_at, sp.started_at) > c.earlier
               OR (sp.ended_at > c.earlier AND sp.ended_at <= c.later) AS is_changed,
           -- as the mart measures it: whole minutes
           round(date_diff('second', sp.started_at, c.earlier) / 60) / 60.0 AS open_hours
    FROM core_segment_spans AS sp, cutoffs AS c
    WHERE c.earlier < c.later AND sp.is_counted AND greatest(sp.arrival_at, sp.declared_at, sp.started_at) <= c.later
        AND (greatest(sp.arrival_at, sp.declared_at, sp.started_at) > c.earlier OR sp.ended_at IS NULL
             OR sp.ended_at > c.earlier)
),
cohorts AS (
    SELECT 'day' AS grain, arrival_date AS period_start, * FROM spans
    UNION ALL SELECT 'week', date_trunc('week', arrival_date)::DATE, * FROM spans
    UNION ALL SELECT 'month', date_trunc('month', arrival_date)::DATE, * FROM spans
),
stability AS (
    -- every slice of a cohort (scope, dimension, value) has its own; the cohort's is the longest
    SELECT grain, period_start, direction, segment, max(stable_after_hours) AS stable_after_hours
    FROM mart_arrival_cohort_statistics
    GROUP BY ALL
    UNION ALL
    SELECT 'month', arrival_month, direction, 'overall_clearance', max(stable_after_hours)
    FROM mart_reform_measure_effects
    GROUP BY ALL
),
moved_by_cutoff AS (
    SELECT DISTINCT c.grain, c.period_start
    FROM cohorts AS c
    LEFT JOIN stability AS m
        ON m.grain = c.grain AND m.period_start = c.period_start AND m.direction = c.direction AND m.segment = c.segment
    WHERE c.is_changed OR m.stable_after_hours IS NULL OR c.open_hours < m.stable_after_hours
),
touched AS (
    SELECT DISTINCT arrival_date FROM affected_shipment_arrivals
)
SELECT DISTINCT grain, period_start, CASE grain WHEN 'day' THEN period_start WHEN 'week' THEN period_start + 6
                                               ELSE last_day(period_start) END AS period_end
FROM (
    SELECT grain, period_start FROM moved_by_cutoff
    UNION ALL SELECT 'day', arrival_date FROM touched
    UNION ALL SELECT 'week', date_trunc('week', arrival_date)::DATE FROM touched
    UNION ALL SELECT 'month', date_trunc('month', arrival_date)::DATE FROM touched
);
INSERT INTO affected_arrival_days
SELECT DISTINCT unnest(generate_series(period_start, period_end, INTERVAL 1 DAY))::DATE AS arrival_date
FROM affected_arrival_periods;
INSERT INTO affected_arrival_months
SELECT period_start AS arrival_month FROM affected_arrival_periods WHERE grain = 'month';
