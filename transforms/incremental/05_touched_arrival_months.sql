-- Months of arrival whose reform-measure effects (mart_reform_measure_effects) to restate: those of
-- the touched shipments (before and after the change), and those whose figures the move of the
-- cut-off from the last run's (the variable previous_cutoff) to this run's changes. A segment of a
-- shipment can change them when a milestone of it lies between the two cut-offs, or when it is open
-- at the earlier one and has been followed for less time than the month's stable_after_hours:
-- moving a censoring from t to later changes S after t only (as 06_cohort_changes.sql, for the
-- backlog-aware statistics). So a month is not recomputed every night only because an old shipment
-- in it never completes.
/*
runs: after core
*/
INSERT INTO affected_arrival_months
WITH cutoffs AS (
    SELECT least(cutoff_at, getvariable('previous_cutoff')) AS earlier,
           greatest(cutoff_at, getvariable('previous_cutoff')) AS later
    FROM run_context
),
spans AS (
    SELECT date_trunc('month', sp.arrival_date)::DATE AS arrival_month, sp.direction,
           greatest(sp.arrival_at, sp.declared_at, sp.started_at) > c.earlier
               OR (sp.ended_at > c.earlier AND sp.ended_at <= c.later) AS is_changed,
           -- as the mart measures it: whole minutes
           round(date_diff('second', sp.started_at, c.earlier) / 60) / 60.0 AS open_hours
    FROM core_segment_spans AS sp, cutoffs AS c
    WHERE c.earlier < c.later AND sp.is_counted AND sp.segment = 'overall_clearance'
        AND greatest(sp.arrival_at, sp.declared_at, sp.started_at) <= c.later
        AND (greatest(sp.arrival_at, sp.declared_at, sp.started_at) > c.earlier OR sp.ended_at IS NULL
             OR sp.ended_at > c.earlier)
),
stability AS (
    SELECT arrival_month, direction, max(stable_after_hours) AS stable_after_hours
    FROM mart_reform_measure_effects
    GROUP BY ALL
)
SELECT DISTINCT arrival_month
FROM (
    SELECT s.arrival_month
    FROM spans AS s
    LEFT JOIN stability AS m USING (arrival_month, direction)
    WHERE s.is_changed OR m.stable_after_hours IS NULL OR s.open_hours < m.stable_after_hours
    UNION ALL
    SELECT date_trunc('month', arrival_date)::DATE FROM affected_shipment_arrivals
);
