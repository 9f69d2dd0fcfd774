-- Backlog-aware statistics: for the shipments that arrived in a day, week or month (the cohort),
-- median and p90 of every segment estimated with the shipments still open at the run's cut-off
-- counted as right-censored there (Kaplan-Meier product-limit), with 95 % confidence intervals
-- (Brookmeyer-Crowley: the pointwise log(-log) Greenwood band of S(t) inverted, as lifelines does),
-- beside the released-only figures of the same cohort. Only milestones reached by the cut-off count.
-- A shipment enters a segment's risk set once the segment's start milestone is reached; while its
-- end milestone is missing it is censored at the cut-off. Ties: completions at a time are counted
-- before the censorings at that time (a shipment censored at t was still at risk at t).
-- The figures move with the cut-off, so a run restates the slices with a shipment whose figures the
-- cut-off moves, and those of the shipments the night touched (transforms/incremental/06_cohort_changes.sql):
-- from their completions, kept in mart_cohort_completions, and their censorings at this cut-off.
/*
materialized: incremental
unique_key: [grain, period_start, scope, direction, dimension, dimension_value, segment]
touched_keys: affected_cohort_slices
depends_on: [core_segment_spans, core_shipments, ref_clearance_targets]
# rebuilt a month of cohorts at a time, as mart_cohort_completions (every other run: one part, every day)
rebuild_by_month: SELECT arrival_date FROM core_segment_spans
publish: {monthly_parquet: "date_trunc('month', period_start)::DATE", order_by: 'grain, period_start, scope, direction, dimension, dimension_value, segment'}
tests:
  unique: [[grain, period_start, scope, direction, dimension, dimension_value, segment]]
  not_null: [grain, period_start, scope, direction, dimension, dimension_value, segment]
  accepted_values:
    grain: [day, week, month]
  expect:
    every_shipment_completed_or_still_open: still_open = shipments - completed AND completed >= 0 AND still_open >= 0
    median_within_its_interval: median_hours IS NULL OR median_lower_hours IS NULL OR median_lower_hours <= median_hours
    median_before_p90: median_hours IS NULL OR p90_hours IS NULL OR median_hours <= p90_hours
*/
WITH open_spans AS (
    -- shipments still in a segment at the cut-off, in the days of the slices restated
    SELECT * FROM core_segment_spans
    SEMI JOIN affected_cohort_days USING (arrival_date)
    WHERE (ended_at IS NULL OR ended_at > getvariable('cutoff_at'))
      AND in_part_or_its_weeks(arrival_date)
),
open_observations AS (
    SELECT 1 AS weight, * FROM cohort_observations('open_spans', getvariable('cutoff_at'))
),
censored AS (
    SELECT * FROM cohort_minute_counts('open_observations')
    SEMI JOIN affected_cohort_slices USING (slice_hash)
    WHERE in_part(period_start)
),
both_kinds AS (
    -- only numbers from mart_cohort_completions: its other columns are the slice's, read once per slice below
    SELECT slice_hash, target_hours, minutes, completions, 0 AS censorings
    FROM mart_cohort_completions
    -- with period_start, DuckDB reads only the row groups of the restated periods (stored by period_start)
    SEMI JOIN affected_cohort_slices USING (period_start, slice_hash)
    WHERE in_part(period_start)
    UNION ALL
    SELECT slice_hash, target_hours, minutes, 0, censorings
    FROM censored
),
slices AS (
    -- A slice is known by its slice_hash below: grouping and sorting by one number is several times
    -- faster than by the seven columns. Two slices would share one with odds below 1e-9 for the
    -- ~150,000 slices of a year (a 64-bit hash); mart_cohort_slices tests that none of its do.
    SELECT DISTINCT ON (slice_hash) slice_hash AS slice_id, grain, period_start, scope, direction, dimension,
           dimension_value, segment
    FROM (SELECT slice_hash, grain, period_start, scope, direction, dimension, dimension_value, segment
          FROM mart_cohort_slices
          SEMI JOIN affected_cohort_slices USING (slice_hash)
          WHERE in_part(period_start)
          UNION ALL
          SELECT slice_hash, grain, period_start, scope, direction, dimension, dimension_value, segment
          FROM censored)
),
series AS (
    -- completions (kept from run to run) and censorings (at this cut-off) at each distinct time of
    -- every grain, slice and segment (00_cohort_macros.sql), not added up again: a time can have a
    -- row of completions and one of censorings (and one per target). The estimator takes a time's
    -- rows one after the other, completions first, which gives the same S(t) and Greenwood sum as the
    -- time's counts added up (both products telescope).
    SELECT slice_hash AS slice_id, minutes, completions, censorings, target_hours
    FROM both_kinds
),
curve AS (
    -- S(t), Greenwood's sum and the completions so far at each row (km_curve, 00_cohort_macros.sql)
    SELECT * FROM km_curve('series')
),
bands AS (
    SELECT
        *,
        minutes / 60.0 AS hours,
        exp(log_survival) AS survival,
        km_log_log_bound(log_survival, greenwood, 1.959963984540054) AS survival_lower,
        km_log_log_bound(log_survival, greenwood, -1.959963984540054) AS survival_upper,
        slice_target_hours AS target_hours
    FROM curve
),
statistics AS (
    -- a quantile q is the first time S(t) <= 1 - q; its interval ends are the first times the lower
    -- and the upper band are <= 1 - q (null: not reached by the cut-off). The tolerance keeps an
    -- exact 0.5 computed as 0.5000000000001 an exact 0.5.
    SELECT
        slice_id,
        sum(completions + censorings)::BIGINT AS shipments,
        sum(completions)::BIGINT AS completed,
        sum(censorings)::BIGINT AS still_open,
        min(hours) FILTER (WHERE 2 * completed_so_far >= slice_completed AND slice_completed > 0)
            AS released_only_median_hours,
        min(hours) FILTER (WHERE 10 * completed_so_far >= 9 * slice_completed AND slice_completed > 0)
            AS released_only_p90_hours,
        min(hours) FILTER (WHERE survival <= 0.5 + 1e-9) AS median_hours,
        min(hours) FILTER (WHERE survival_lower <= 0.5 + 1e-9) AS median_lower_hours,
        min(hours) FILTER (WHERE survival_upper <= 0.5 + 1e-9) AS median_upper_hours,
        min(hours) FILTER (WHERE survival <= 0.1 + 1e-9) AS p90_hours,
        min(hours) FILTER (WHERE survival_lower <= 0.1 + 1e-9) AS p90_lower_hours,
        min(hours) FILTER (WHERE survival_upper <= 0.1 + 1e-9) AS p90_upper_hours,
        -- summed as whole minutes: a float sum depends on the order of the rows, reruns must not
        sum(completions * minutes)::BIGINT AS completed_minutes,
        -- an open shipment followed longer than this no longer moves any estimate (transforms/incremental/06_cohort_changes.sql)
        max(hours) FILTER (WHERE completions > 0) AS longest_completed_hours,
        -- the distribution: shares completed within 1, 3, 6, 12, 24, 48, 72 and 168 hours (S never
        -- rises: its least value by a time is its value at the last row by then)
        [
            1 - coalesce(min(survival) FILTER (WHERE hours <= 1), 1.0),
            1 - coalesce(min(survival) FILTER (WHERE hours <= 3), 1.0),
            1 - coalesce(min(survival) FILTER (WHERE hours <= 6), 1.0),
            1 - coalesce(min(survival) FILTER (WHERE hours <= 12), 1.0),
            1 - coalesce(min(survival) FILTER (WHERE hours <= 24), 1.0),
            1 - coalesce(min(survival) FILTER (WHERE hours <= 48), 1.0),
            1 - coalesce(min(survival) FILTER (WHERE hours <= 72), 1.0),
            1 - coalesce(min(survival) FILTER (WHERE hours <= 168), 1.0)
        ] AS share_completed_within,
        [
            coalesce(sum(completions) FILTER (WHERE hours <= 1), 0),
            coalesce(sum(completions) FILTER (WHERE hours <= 3), 0),
            coalesce(sum(completions) FILTER (WHERE hours <= 6), 0),
            coalesce(sum(completions) FILTER (WHERE hours <= 12), 0),
            coalesce(sum(completions) FILTER (WHERE hours <= 24), 0),
            coalesce(sum(completions) FILTER (WHERE hours <= 48), 0),
            coalesce(sum(completions) FILTER (WHERE hours <= 72), 0),
            coalesce(sum(completions) FILTER (WHERE hours <= 168), 0)
        ] AS completed_within,
        any_value(target_hours) AS target_hours,
        -- 1 - S(target): the share completed within the target, open shipments counted
        1 - coalesce(min(survival) FILTER (WHERE hours <= target_hours), 1.0) AS share_within_target,
        sum(completions) FILTER (WHERE hours <= target_hours) AS completed_within_target
    FROM bands
    GROUP BY ALL
),
named AS (
    SELECT * FROM statistics JOIN slices USING (slice_id)
)
SELECT
    grain,
    period_start,
    scope,
    direction,
    dimension,
    dimension_value,
    segment,
    shipments,
    completed,
    still_open,
    median_hours,
    median_lower_hours,
    median_upper_hours,
    p90_hours,
    p90_lower_hours,
    p90_upper_hours,
    share_completed_within,
    released_only_median_hours,
    released_only_p90_hours,
    CASE WHEN completed > 0 THEN completed_minutes / completed / 60.0 END AS released_only_mean_hours,
    CASE WHEN completed > 0 THEN [n / completed FOR n IN completed_within] END AS released_only_share_completed_within,
    longest_completed_hours,
    target_hours,
    CASE WHEN segment = 'overall_clearance' AND target_hours IS NOT NULL THEN share_within_target END
        AS share_within_target,
    CASE WHEN segment = 'overall_clearance' AND target_hours IS NOT NULL AND completed > 0
        THEN coalesce(completed_within_target, 0) / completed END AS released_only_share_within_target,
    -- Moving a censoring from t to a later time changes S only after t. So once a shipment still open
    -- has been followed past the longest completion, or past every time the figures read S at (the
    -- quantiles and their interval ends, null: not reached yet; 168 h; the target), it no longer moves
    -- them: the runner does not restate the slice for it (transforms/incremental/06_cohort_changes.sql)
    CASE WHEN completed = 0 THEN 0.0 ELSE least(longest_completed_hours, greatest(
        168.0, coalesce(target_hours, 0), coalesce(median_hours, 'infinity'), coalesce(median_lower_hours, 'infinity'),
        coalesce(median_upper_hours, 'infinity'), coalesce(p90_hours, 'infinity'),
        coalesce(p90_lower_hours, 'infinity'), coalesce(p90_upper_hours, 'infinity'))) END AS stable_after_hours
FROM named
SEMI JOIN affected_cohort_slices USING (grain, period_start, scope, direction, dimension, dimension_value, segment);
COMMENT ON TABLE mart_arrival_cohort_statistics IS 'Backlog-aware statistics: shipments by period of arrival (the cohort), direction and slice, every segment estimated with the shipments still open at the cut-off counted as censored there (Kaplan-Meier), with 95 % confidence intervals, beside the released-only figures of the same cohort. Filter one grain, one dimension and one segment at a time.';
COMMENT ON COLUMN mart_arrival_cohort_statistics.grain IS 'day, week (starting Monday) or month';
COMMENT ON COLUMN mart_arrival_cohort_statistics.period_start IS 'First day of the period of arrival (Beijing date): the cohort';
COMMENT ON COLUMN mart_arrival_cohort_statistics.scope IS 'liaoning (every shipment), or a district code: the shipments of that district only (grain month only, for the districts'' Time Release Study reports)';
COMMENT ON COLUMN mart_arrival_cohort_statistics.direction IS 'import or export';
COMMENT ON COLUMN mart_arrival_cohort_statistics.dimension IS 'all, district, office, port, transport_mode, trade_mode, commodity_group, reform_measure or inspection';
COMMENT ON COLUMN mart_arrival_cohort_statistics.dimension_value IS 'The slice: a district, office or port code, a mode, a group, a measure, inspected/not_inspected (inspection ordered by the cut-off), or all';
COMMENT ON COLUMN mart_arrival_cohort_statistics.segment IS 'overall_clearance, anchorage_wait, pre_declaration, customs_processing, inspection, port_exit or door_to_gate';
COMMENT ON COLUMN mart_arrival_cohort_statistics.shipments IS 'Shipments of the cohort that entered the segment (its start milestone reached) by the cut-off';
COMMENT ON COLUMN mart_arrival_cohort_statistics.completed IS 'Of these, shipments whose segment ended by the cut-off (for overall_clearance: released)';
COMMENT ON COLUMN mart_arrival_cohort_statistics.still_open IS 'Of these, shipments still in the segment at the cut-off: counted as censored there';
COMMENT ON COLUMN mart_arrival_cohort_statistics.median_hours IS 'Kaplan-Meier median, open shipments censored at the cut-off: first time S(t) <= 0.5, hours (whole minutes); null: not reached by the cut-off (too many still open to tell)';
COMMENT ON COLUMN mart_arrival_cohort_statistics.median_lower_hours IS 'Lower end of the 95 % confidence interval of the median (Brookmeyer-Crowley, log-log Greenwood band), hours';
COMMENT ON COLUMN mart_arrival_cohort_statistics.median_upper_hours IS 'Upper end of the 95 % confidence interval of the median, hours; null: not bounded by what is known at the cut-off';
COMMENT ON COLUMN mart_arrival_cohort_statistics.p90_hours IS 'Kaplan-Meier 90th percentile, open shipments censored at the cut-off: first time S(t) <= 0.1, hours; null: not reached';
COMMENT ON COLUMN mart_arrival_cohort_statistics.p90_lower_hours IS 'Lower end of the 95 % confidence interval of the 90th percentile, hours';
COMMENT ON COLUMN mart_arrival_cohort_statistics.p90_upper_hours IS 'Upper end of the 95 % confidence interval of the 90th percentile, hours; null: not bounded';
COMMENT ON COLUMN mart_arrival_cohort_statistics.share_completed_within IS 'The distribution, open shipments counted: Kaplan-Meier share completed within 1, 3, 6, 12, 24, 48, 72 and 168 hours (1 - S(t))';
COMMENT ON COLUMN mart_arrival_cohort_statistics.released_only_median_hours IS 'Median of the completed shipments only, open ones left out (same step convention: the ceil(n/2)-th smallest), hours';
COMMENT ON COLUMN mart_arrival_cohort_statistics.released_only_p90_hours IS '90th percentile of the completed shipments only (the ceil(0.9 n)-th smallest), hours';
COMMENT ON COLUMN mart_arrival_cohort_statistics.released_only_mean_hours IS 'Mean of the completed shipments only (the average a survey of released shipments reports), hours';
COMMENT ON COLUMN mart_arrival_cohort_statistics.released_only_share_completed_within IS 'Shares of the completed shipments completed within 1, 3, 6, 12, 24, 48, 72 and 168 hours, open ones left out';
COMMENT ON COLUMN mart_arrival_cohort_statistics.longest_completed_hours IS 'Longest time of a completed shipment of the slice, hours (the released-only maximum)';
COMMENT ON COLUMN mart_arrival_cohort_statistics.target_hours IS 'overall_clearance only: operative target of the slice (null when its shipments have different targets)';
COMMENT ON COLUMN mart_arrival_cohort_statistics.share_within_target IS 'overall_clearance only: Kaplan-Meier estimate of the share released within the target, 1 - S(target), open shipments counted';
COMMENT ON COLUMN mart_arrival_cohort_statistics.released_only_share_within_target IS 'overall_clearance only: share of the released shipments of the cohort released within the target, open ones left out';
COMMENT ON COLUMN mart_arrival_cohort_statistics.stable_after_hours IS 'A shipment still open that has been followed (since its start milestone) this long or longer no longer moves any figure of the row as the cut-off moves on: the later of 168 h, the target and the quantiles and their interval ends (not reached: infinity), capped at the longest completion; 0 with nothing completed';
