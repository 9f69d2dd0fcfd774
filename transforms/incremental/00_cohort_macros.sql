-- The two halves of the backlog-aware statistics' input, one definition each, for every run (full or
-- incremental): what a segment span is at a cut-off (an observation), and the completions and
-- censorings per slice and minute a set of observations adds up to. mart_cohort_completions keeps
-- the completions from run to run, changed by the observations a night changes
-- (06_cohort_changes.sql); mart_arrival_cohort_statistics adds the censorings of the shipments
-- still open at the cut-off. km_curve (below) is the estimator, of that mart and of
-- mart_reform_measure_effects. Temporary: they live as long as the run's connection.
/*
runs: start
*/
-- The marts built by month (the cohort marts by arrival, mart_clearance_statistics by release):
-- a period starting on a day of the part being built (rebuild_by_month: a month; every other run:
-- every day there is) is the part's; the days whose periods the part holds are its own and those of
-- a week that starts in it (up to 6 days after its last day).
CREATE OR REPLACE TEMP MACRO in_part(day) AS
    day BETWEEN getvariable('part_first_day') AND getvariable('part_last_day');
CREATE OR REPLACE TEMP MACRO in_part_or_its_weeks(day) AS
    day BETWEEN getvariable('part_first_day') AND getvariable('part_last_day') + 6;

-- The observation of each span of `spans` (rows of core_segment_spans) at the cut-off `at_cutoff`:
-- counted shipments arrived and declared by then whose segment has started, with the slices they
-- fall in and, completed, the time to the end milestone, still open, the time to the cut-off
-- (censored). In whole minutes: finer than any figure shown, and shipments finishing in the same
-- minute are tied, which keeps the estimator's work bounded in the big cohorts.
CREATE OR REPLACE TEMP MACRO cohort_observations(spans, at_cutoff) AS TABLE
WITH operative_targets AS (
    -- one target per direction and district (national: district NULL), as mart_clearance_statistics
    SELECT direction, district_code, target_hours
    FROM ref_clearance_targets
    WHERE is_operative
    QUALIFY row_number() OVER (PARTITION BY direction, district_code ORDER BY target_hours, target_code) = 1
)
SELECT
    sp.entry_id, sp.direction, sp.segment, sp.arrival_date,
    coalesce(s.district_code, 'unknown') AS district, s.declaring_office_code AS office, s.port_code AS port,
    s.transport_mode_code AS transport_mode, coalesce(s.trade_mode, 'unknown') AS trade_mode, s.commodity_group,
    CASE WHEN s.inspection_ordered_at <= at_cutoff THEN 'inspected' ELSE 'not_inspected' END AS inspection,
    s.reform_measures,
    CASE WHEN sp.segment = 'overall_clearance'
        THEN coalesce(district_target.target_hours, national_target.target_hours) END AS target_hours,
    round(date_diff('second', sp.started_at, CASE WHEN sp.ended_at <= at_cutoff THEN sp.ended_at ELSE at_cutoff END)
          / 60)::BIGINT AS minutes,
    coalesce(sp.ended_at <= at_cutoff, false) AS is_completed
FROM query_table(spans) AS sp
JOIN core_shipments AS s USING (entry_id)
LEFT JOIN operative_targets AS district_target
    ON district_target.direction = s.direction AND district_target.district_code = s.district_code
LEFT JOIN operative_targets AS national_target
    ON national_target.direction = s.direction AND national_target.district_code IS NULL
WHERE sp.is_counted AND sp.arrival_at <= at_cutoff AND sp.declared_at <= at_cutoff AND sp.started_at <= at_cutoff;

-- Completions and censorings at each minute of every grain, slice and segment that `observations`
-- (cohort_observations' columns, and `weight`: +1 an observation added, -1 one taken away, n for n alike) add up to, in
-- one pass (grouping sets): every slice and period of mart_clearance_statistics. The districts
-- (their Time Release Study reports) are also sliced within, by month. slice_hash: the slice as one
-- number: mart_cohort_completions keeps only it (mart_cohort_slices, the slice's columns once).
CREATE OR REPLACE TEMP MACRO cohort_minute_counts(observations) AS TABLE
WITH observed AS (
    SELECT *, arrival_date AS day_start, date_trunc('week', arrival_date)::DATE AS week_start,
           date_trunc('month', arrival_date)::DATE AS month_start
    FROM query_table(observations)
),
by_measure AS (
    SELECT * EXCLUDE (reform_measures), unnest(reform_measures) AS reform_measure FROM observed
),
counted AS (
    SELECT
        CASE GROUPING(day_start, week_start) WHEN 1 THEN 'day' WHEN 2 THEN 'week' ELSE 'month' END AS grain,
        coalesce(day_start, week_start, month_start) AS period_start,
        'liaoning' AS scope,
        direction,
        CASE
            WHEN GROUPING(district) = 0 THEN 'district' WHEN GROUPING(office) = 0 THEN 'office'
            WHEN GROUPING(port) = 0 THEN 'port' WHEN GROUPING(transport_mode) = 0 THEN 'transport_mode'
            WHEN GROUPING(trade_mode) = 0 THEN 'trade_mode' WHEN GROUPING(commodity_group) = 0 THEN 'commodity_group'
            WHEN GROUPING(inspection) = 0 THEN 'inspection' ELSE 'all'
        END AS dimension,
        CASE
            WHEN GROUPING(district) = 0 THEN district WHEN GROUPING(office) = 0 THEN office
            WHEN GROUPING(port) = 0 THEN port WHEN GROUPING(transport_mode) = 0 THEN transport_mode
            WHEN GROUPING(trade_mode) = 0 THEN trade_mode WHEN GROUPING(commodity_group) = 0 THEN commodity_group
            WHEN GROUPING(inspection) = 0 THEN inspection ELSE 'all'
        END AS dimension_value,
        segment, target_hours, minutes,
        coalesce(sum(weight) FILTER (WHERE is_completed), 0)::BIGINT AS completions,
        coalesce(sum(weight) FILTER (WHERE NOT is_completed), 0)::BIGINT AS censorings
    FROM observed
    GROUP BY direction, segment, target_hours, minutes, GROUPING SETS (
        (day_start), (day_start, district), (day_start, office), (day_start, port), (day_start, transport_mode),
        (day_start, trade_mode), (day_start, commodity_group), (day_start, inspection),
        (week_start), (week_start, district), (week_start, office), (week_start, port), (week_start, transport_mode),
        (week_start, trade_mode), (week_start, commodity_group), (week_start, inspection),
        (month_start), (month_start, district), (month_start, office), (month_start, port),
        (month_start, transport_mode), (month_start, trade_mode), (month_start, commodity_group),
        (month_start, inspection))
    UNION ALL
    SELECT CASE GROUPING(day_start, week_start) WHEN 1 THEN 'day' WHEN 2 THEN 'week' ELSE 'month' END,
           coalesce(day_start, week_start, month_start), 'liaoning', direction, 'reform_measure', reform_measure,
           segment, target_hours, minutes, coalesce(sum(weight) FILTER (WHERE is_completed), 0)::BIGINT,
           coalesce(sum(weight) FILTER (WHERE NOT is_completed), 0)::BIGINT
    FROM by_measure
    GROUP BY direction, segment, reform_measure, target_hours, minutes,
        GROUPING SETS ((day_start), (week_start), (month_start))
    UNION ALL
    SELECT 'month', month_start, district, direction,
        CASE
            WHEN GROUPING(office) = 0 THEN 'office' WHEN GROUPING(port) = 0 THEN 'port'
            WHEN GROUPING(transport_mode) = 0 THEN 'transport_mode' WHEN GROUPING(trade_mode) = 0 THEN 'trade_mode'
            WHEN GROUPING(commodity_group) = 0 THEN 'commodity_group' WHEN GROUPING(inspection) = 0 THEN 'inspection'
            ELSE 'all'
        END,
        CASE
            WHEN GROUPING(office) = 0 THEN office WHEN GROUPING(port) = 0 THEN port
            WHEN GROUPING(transport_mode) = 0 THEN transport_mode WHEN GROUPING(trade_mode) = 0 THEN trade_mode
            WHEN GROUPING(commodity_group) = 0 THEN commodity_group WHEN GROUPING(inspection) = 0 THEN inspection
            ELSE 'all'
        END,
        segment, target_hours, minutes, coalesce(sum(weight) FILTER (WHERE is_completed), 0)::BIGINT,
        coalesce(sum(weight) FILTER (WHERE NOT is_completed), 0)::BIGINT
    FROM observed
    GROUP BY month_start, district, direction, segment, target_hours, minutes,
        GROUPING SETS ((), (office), (port), (transport_mode), (trade_mode), (commodity_group), (inspection))
    UNION ALL
    SELECT 'month', month_start, district, direction, 'reform_measure', reform_measure, segment, target_hours,
           minutes, coalesce(sum(weight) FILTER (WHERE is_completed), 0)::BIGINT,
           coalesce(sum(weight) FILTER (WHERE NOT is_completed), 0)::BIGINT
    FROM by_measure
    GROUP BY month_start, district, direction, segment, reform_measure, target_hours, minutes
)
SELECT *, hash(grain, period_start, scope, direction, dimension, dimension_value, segment) AS slice_hash
FROM counted;

-- A Kaplan-Meier curve per slice, for the slices of `series` whose slice_id % 2 is `half` (km_curve,
-- below, runs both halves): `series`
-- has a row per slice, time and kind (slice_id, minutes, completions, censorings, target_hours: the
-- shipments whose segment ended, and those censored, after that many minutes). Returned per row:
-- S(t) as its log, Greenwood's sum, the completions so far, and the slice's completions in all and
-- target (null if its rows have several). Rows of a time are taken in the order completions first
-- (censorings 0), then by target: a shipment censored at t was still at risk at t; the order is
-- total, so a rerun adds the same terms in the same order.
-- The running sums run over all the half's slices at once, in the order of (slice, time): one sort,
-- then streaming passes (a window partitioned by slice sorts and builds a tree per slice, and was
-- several times slower). A slice's own running sum is the overall one less its value just before the
-- slice's first row: for the counts, the sums of the slices before it (a window over the slices, not
-- their rows); for the estimator's sums, that value is carried from the slice's first row to its
-- other rows as a running max (min for the log sum): each sum only grows (only falls), so the latest
-- slice's start is the extreme one. So the rows keep the one sort's order to the end (no join after
-- it), and the sort carries only narrow columns (it spilled to disk when it carried doubles and
-- 128-bit sums). DuckDB runs an ordered stream on one thread: km_curve runs two halves side by
-- side. The sums are of integers, so neither the order they are added in nor the halves change a digit.
CREATE OR REPLACE TEMP MACRO km_curve_half(series, half) AS TABLE
WITH half_series AS (
    SELECT slice_id, minutes::INTEGER AS minutes, completions::INTEGER AS completions,
           censorings::INTEGER AS censorings, target_hours
    FROM query_table(series)
    WHERE slice_id % 2 = half
),
totals AS (
    SELECT *, sum(slice_observed) OVER earlier - slice_observed AS observed_before_slice,
           sum(slice_completed) OVER earlier - slice_completed AS completed_before_slice
    FROM (SELECT slice_id, sum(completions + censorings)::INTEGER AS slice_observed,
                 sum(completions)::INTEGER AS slice_completed,
                 CASE WHEN min(target_hours) = max(target_hours) THEN min(target_hours) END AS slice_target_hours
          FROM half_series
          GROUP BY slice_id)
    WINDOW earlier AS (ORDER BY slice_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
ordered AS (
    SELECT *, slice_id IS DISTINCT FROM lag(slice_id) OVER so_far AS first_in_slice,
           sum(completions + censorings) OVER so_far AS observed_so_far,
           sum(completions) OVER so_far AS completed_overall
    FROM (SELECT * FROM half_series JOIN totals USING (slice_id)
          ORDER BY slice_id, minutes, censorings, target_hours NULLS FIRST)
    WINDOW so_far AS (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
at_risk AS (
    -- shipments observed at this time or later: the risk set at this time
    SELECT * EXCLUDE (observed_so_far, completed_overall, observed_before_slice, completed_before_slice),
           (slice_observed - (observed_so_far - observed_before_slice) + completions + censorings)::BIGINT AS at_risk,
           (completed_overall - completed_before_slice)::INTEGER AS completed_so_far
    FROM ordered
),
terms AS (
    -- product-limit S(t) = prod (1 - d/n), summed as logs; Greenwood: sum d / (n (n - d)), a step
    -- where n = d adds nothing (lifelines' convention; S = 0 there). In fixed point (integers): a
    -- float sum's last digit depends on how its rows are added up, and a rerun or a restated cohort
    -- must give the same figures as a rebuild
    SELECT
        *,
        CASE WHEN completions < at_risk THEN round((ln(at_risk - completions) - ln(at_risk)) * 1e15) ELSE 0 END::BIGINT
            AS log_term,
        CASE WHEN completions < at_risk THEN round(1e18 * completions / (at_risk * (at_risk - completions)))
             ELSE 0 END::BIGINT AS greenwood_term
    FROM at_risk
),
running AS (
    SELECT *, sum(log_term) OVER so_far AS log_so_far, sum(greenwood_term) OVER so_far AS greenwood_so_far
    FROM terms
    WINDOW so_far AS (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
slice_start AS (
    -- the running sums just before the slice's first row (log terms are never positive, Greenwood's never negative)
    SELECT *,
           min(CASE WHEN first_in_slice THEN log_so_far - log_term END) OVER so_far AS log_before,
           max(CASE WHEN first_in_slice THEN greenwood_so_far - greenwood_term END) OVER so_far AS greenwood_before
    FROM running
    WINDOW so_far AS (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT
    slice_id, minutes, completions, censorings, slice_completed, slice_target_hours, completed_so_far,
    -- -inf once every shipment at risk completed: only at a slice's last time (none is at risk after it)
    CASE WHEN completions = at_risk THEN '-inf'::DOUBLE ELSE (log_so_far - log_before) / 1e15 END AS log_survival,
    (greenwood_so_far - greenwood_before) / 1e18 AS greenwood
FROM slice_start;

-- The Kaplan-Meier curve of every slice of `series` (km_curve_half's columns): its two halves side by side.
CREATE OR REPLACE TEMP MACRO km_curve(series) AS TABLE
SELECT * FROM km_curve_half(series, 0)
UNION ALL
SELECT * FROM km_curve_half(series, 1);
