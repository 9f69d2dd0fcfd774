-- Reform measures compared fairly: for each measure, the difference in median overall clearance
-- time between the shipments that used it and comparable shipments without it, with its 95 %
-- confidence interval and the counts behind it, by month of arrival, district (and all Liaoning)
-- and direction.
--
-- Comparable = same stratum: port, direction, transport mode, commodity group and month of arrival
-- (a measure is used more at some ports and for some goods, which are faster or slower anyway:
-- comparing across strata would credit the measure with the difference between ports). In each
-- stratum with at least 5 shipments with and 5 without the measure, the two medians are
-- Kaplan-Meier medians (open shipments censored at the cut-off, as mart_arrival_cohort_statistics)
-- and the stratum's difference is their difference. The effect is the mean of the strata's
-- differences weighted by their shipments with the measure (the time the measure saved the
-- shipments that used it). Its standard error combines the strata's: each median's standard error
-- is read off its 95 % Brookmeyer-Crowley interval, (upper - lower) / (2 x 1.96); the interval is
-- effect +- 1.96 standard errors. A stratum whose median or interval is not reached by the cut-off
-- cannot be compared and is counted in not_compared_with_measure.
/*
materialized: incremental
unique_key: [arrival_month]
touched_keys: affected_arrival_months
publish: table
tests:
  unique: [[arrival_month, scope, direction, measure]]
  not_null: [arrival_month, scope, direction, measure, shipments_with_measure, compared_with_measure, not_compared_with_measure]
  accepted_values:
    measure: [advance_declaration, two_step, ship_side, release_before_inspection]
  expect:
    compared_within_the_measure_shipments: compared_with_measure + not_compared_with_measure = shipments_with_measure
    difference_within_its_interval: difference_hours IS NULL OR (difference_lower_hours <= difference_hours AND difference_hours <= difference_upper_hours)
*/
WITH cutoff AS (
    SELECT cutoff_at FROM run_context
),
arrived AS (
    SELECT
        date_trunc('month', s.arrival_at)::DATE AS arrival_month, s.direction,
        coalesce(s.district_code, 'unknown') AS district, coalesce(s.port_code, 'unknown') AS port,
        coalesce(s.transport_mode_code, 'unknown') AS transport_mode, s.commodity_group, s.reform_measures,
        coalesce(s.released_at <= c.cutoff_at, false) AS is_released,
        -- whole minutes, as mart_arrival_cohort_statistics
        round(date_diff('second', s.arrival_at,
                        CASE WHEN s.released_at <= c.cutoff_at THEN s.released_at ELSE c.cutoff_at END) / 60)::BIGINT
            AS minutes
    FROM core_shipments AS s
    CROSS JOIN cutoff AS c
    WHERE s.is_counted AND s.arrival_at <= c.cutoff_at AND s.declared_at <= c.cutoff_at
),
cohorts AS (
    SELECT * FROM arrived SEMI JOIN affected_arrival_months USING (arrival_month)
),
arms AS (
    -- every shipment once per measure: with it, or without it
    SELECT c.* EXCLUDE (reform_measures), m.measure, list_contains(c.reform_measures, m.measure) AS with_measure
    FROM cohorts AS c
    CROSS JOIN (VALUES ('advance_declaration'), ('two_step'), ('ship_side'), ('release_before_inspection')) AS m(measure)
),
at_times AS (
    -- per stratum (within a district, and within Liaoning) and pooled over the strata
    SELECT
        arrival_month, direction, measure, with_measure,
        CASE WHEN GROUPING(district) = 0 THEN district ELSE 'liaoning' END AS scope,
        GROUPING(port) = 1 AS is_pooled,
        coalesce(port, '') AS port, coalesce(transport_mode, '') AS transport_mode,
        coalesce(commodity_group, '') AS commodity_group,
        minutes,
        count(*) FILTER (WHERE is_released) AS completions,
        count(*) FILTER (WHERE NOT is_released) AS censorings
    FROM arms
    GROUP BY arrival_month, direction, measure, with_measure, minutes, GROUPING SETS (
        (district, port, transport_mode, commodity_group), (port, transport_mode, commodity_group), (district), ())
),
keyed_arms AS (
    -- an arm (with or without the measure) of a stratum or pool is known by one number below: the
    -- estimator sorts and streams by it. Two arms would share one with odds below 1e-9 for the arms
    -- of a year (a 64-bit hash); arm_of_id fails the build if they do.
    SELECT *, hash(arrival_month, direction, measure, with_measure, scope, is_pooled, port, transport_mode,
                   commodity_group) AS slice_id
    FROM at_times
),
arm_of_id AS (
    -- the arm each slice_id stands for: two arms with one id would be estimated as one arm, so the
    -- build stops instead of publishing their merged figures
    SELECT slice_id, unnest(arm)
    FROM (SELECT slice_id, min(arm) AS arm, max(arm) AS other_arm
          FROM (SELECT slice_id, {'arrival_month': arrival_month, 'direction': direction, 'measure': measure,
                                  'with_measure': with_measure, 'scope': scope, 'is_pooled': is_pooled, 'port': port,
                                  'transport_mode': transport_mode, 'commodity_group': commodity_group} AS arm
                -- each arm once (an arm has a row per minute): the struct is built for the arms, not the rows
                FROM (SELECT DISTINCT slice_id, arrival_month, direction, measure, with_measure, scope, is_pooled, port,
                             transport_mode, commodity_group FROM keyed_arms))
          GROUP BY slice_id)
    WHERE CASE WHEN arm IS NOT DISTINCT FROM other_arm THEN true
               ELSE error('two arms share the slice_id ' || slice_id || ': ' || arm::VARCHAR || ' and '
                          || other_arm::VARCHAR) END
),
arm_series AS (
    SELECT slice_id, minutes, completions, censorings, NULL::DOUBLE AS target_hours FROM keyed_arms
),
curve AS (
    -- Kaplan-Meier S(t) and Greenwood's sum (km_curve, transforms/incremental/00_cohort_macros.sql,
    -- as mart_arrival_cohort_statistics)
    SELECT * FROM km_curve('arm_series')
),
arm_curves AS (
    SELECT
        slice_id,
        sum(completions + censorings)::BIGINT AS shipments,
        sum(censorings)::BIGINT AS still_open,
        min(minutes) FILTER (WHERE exp(log_survival) <= 0.5 + 1e-9) / 60.0 AS median_hours,
        min(minutes) FILTER (WHERE km_log_log_bound(log_survival, greenwood, 1.959963984540054) <= 0.5 + 1e-9)
            / 60.0 AS median_lower_hours,
        min(minutes) FILTER (WHERE km_log_log_bound(log_survival, greenwood, -1.959963984540054) <= 0.5 + 1e-9)
            / 60.0 AS median_upper_hours,
        max(minutes) FILTER (WHERE completions > 0) / 60.0 AS longest_completed_hours
    FROM curve
    GROUP BY slice_id
),
arm_medians AS (
    SELECT a.arrival_month, a.direction, a.measure, a.with_measure, a.scope, a.is_pooled, a.port, a.transport_mode,
           a.commodity_group, c.* EXCLUDE (slice_id)
    FROM arm_curves AS c
    JOIN arm_of_id AS a USING (slice_id)
),
stability AS (
    -- as mart_arrival_cohort_statistics.stable_after_hours: an open shipment followed longer than this
    -- moves none of the medians and intervals behind the row (every arm of its scope)
    SELECT arrival_month, direction, measure, scope,
           max(CASE WHEN longest_completed_hours IS NULL THEN 0.0 ELSE least(longest_completed_hours, greatest(
               coalesce(median_hours, 'infinity'), coalesce(median_lower_hours, 'infinity'),
               coalesce(median_upper_hours, 'infinity'))) END) AS stable_after_hours
    FROM arm_medians
    GROUP BY ALL
),
strata AS (
    SELECT
        w.arrival_month, w.direction, w.measure, w.scope, w.shipments AS with_measure, o.shipments AS without_measure,
        w.median_hours - o.median_hours AS difference_hours,
        -- each median's standard error read off its 95 % interval
        ((w.median_upper_hours - w.median_lower_hours) / (2 * 1.959963984540054)) ^ 2
            + ((o.median_upper_hours - o.median_lower_hours) / (2 * 1.959963984540054)) ^ 2 AS difference_variance
    FROM arm_medians AS w
    JOIN arm_medians AS o USING (arrival_month, direction, measure, scope, is_pooled, port, transport_mode, commodity_group)
    WHERE NOT w.is_pooled AND w.with_measure AND NOT o.with_measure
        AND w.shipments >= 5 AND o.shipments >= 5
        AND w.median_upper_hours IS NOT NULL AND o.median_upper_hours IS NOT NULL
),
effects AS (
    SELECT
        arrival_month, direction, measure, scope,
        count(*) AS strata_compared,
        sum(with_measure)::BIGINT AS compared_with_measure,
        sum(without_measure)::BIGINT AS compared_without_measure,
        -- summed as integers (whole minutes; fixed point), so the order of the strata cannot change a digit
        sum(with_measure * round(difference_hours * 60)::BIGINT) / sum(with_measure) / 60.0 AS difference_hours,
        sqrt(sum(round(with_measure ^ 2 * difference_variance * 1e9)::HUGEINT) / 1e9) / sum(with_measure)
            AS difference_standard_error
    FROM strata
    GROUP BY ALL
),
pooled AS (
    SELECT
        w.arrival_month, w.direction, w.measure, w.scope,
        w.shipments AS shipments_with_measure, coalesce(o.shipments, 0) AS shipments_without_measure,
        w.still_open AS still_open_with_measure, coalesce(o.still_open, 0) AS still_open_without_measure,
        w.median_hours AS median_with_measure_hours, o.median_hours AS median_without_measure_hours
    FROM arm_medians AS w
    LEFT JOIN arm_medians AS o
        ON o.arrival_month = w.arrival_month AND o.direction = w.direction AND o.measure = w.measure
        AND o.scope = w.scope AND o.is_pooled AND NOT o.with_measure
    WHERE w.is_pooled AND w.with_measure
)
SELECT
    p.arrival_month,
    p.scope,
    p.direction,
    p.measure,
    p.shipments_with_measure,
    p.shipments_without_measure,
    p.still_open_with_measure,
    p.still_open_without_measure,
    coalesce(e.strata_compared, 0) AS strata_compared,
    coalesce(e.compared_with_measure, 0) AS compared_with_measure,
    coalesce(e.compared_without_measure, 0) AS compared_without_measure,
    p.shipments_with_measure - coalesce(e.compared_with_measure, 0) AS not_compared_with_measure,
    e.difference_hours,
    e.difference_hours - 1.959963984540054 * e.difference_standard_error AS difference_lower_hours,
    e.difference_hours + 1.959963984540054 * e.difference_standard_error AS difference_upper_hours,
    e.difference_standard_error AS difference_standard_error_hours,
    p.median_with_measure_hours,
    p.median_without_measure_hours,
    p.median_with_measure_hours - p.median_without_measure_hours AS unadjusted_difference_hours,
    st.stable_after_hours
FROM pooled AS p
LEFT JOIN effects AS e USING (arrival_month, direction, measure, scope)
JOIN stability AS st USING (arrival_month, direction, measure, scope);
COMMENT ON TABLE mart_reform_measure_effects IS 'Reform measures compared fairly: difference in median overall clearance time (Kaplan-Meier, open shipments censored at the cut-off) between shipments with a measure and comparable ones without it (same port, direction, transport mode, commodity group and month of arrival), weighted over the strata by shipments with the measure, with a 95 % confidence interval. One row per month of arrival, scope (district or liaoning), direction and measure used.';
COMMENT ON COLUMN mart_reform_measure_effects.arrival_month IS 'First day of the month of arrival: the cohort compared';
COMMENT ON COLUMN mart_reform_measure_effects.scope IS 'District code (of the shipments: declaring office, else port), or liaoning for both districts';
COMMENT ON COLUMN mart_reform_measure_effects.direction IS 'import or export';
COMMENT ON COLUMN mart_reform_measure_effects.measure IS 'advance_declaration, two_step, ship_side or release_before_inspection';
COMMENT ON COLUMN mart_reform_measure_effects.shipments_with_measure IS 'Counted shipments of the cohort (arrived and declared by the cut-off) with the measure';
COMMENT ON COLUMN mart_reform_measure_effects.shipments_without_measure IS 'Counted shipments of the cohort without the measure';
COMMENT ON COLUMN mart_reform_measure_effects.still_open_with_measure IS 'Of the shipments with the measure, not released at the cut-off (censored)';
COMMENT ON COLUMN mart_reform_measure_effects.still_open_without_measure IS 'Of the shipments without the measure, not released at the cut-off (censored)';
COMMENT ON COLUMN mart_reform_measure_effects.strata_compared IS 'Strata (port x transport mode x commodity group) with at least 5 shipments with and 5 without the measure and both medians and their intervals reached';
COMMENT ON COLUMN mart_reform_measure_effects.compared_with_measure IS 'Shipments with the measure in the compared strata: the shipments the effect is about';
COMMENT ON COLUMN mart_reform_measure_effects.compared_without_measure IS 'Comparable shipments without the measure in the compared strata';
COMMENT ON COLUMN mart_reform_measure_effects.not_compared_with_measure IS 'Shipments with the measure in strata that could not be compared (too few shipments, or a median not reached by the cut-off)';
COMMENT ON COLUMN mart_reform_measure_effects.difference_hours IS 'Effect: median with minus median without the measure within each stratum, averaged over the strata weighted by shipments with the measure, hours (negative: faster with the measure); null when no stratum can be compared';
COMMENT ON COLUMN mart_reform_measure_effects.difference_lower_hours IS 'Lower end of the 95 % confidence interval of the effect, hours';
COMMENT ON COLUMN mart_reform_measure_effects.difference_upper_hours IS 'Upper end of the 95 % confidence interval of the effect, hours';
COMMENT ON COLUMN mart_reform_measure_effects.difference_standard_error_hours IS 'Standard error of the effect, hours: from the strata medians'' standard errors, each read off its Brookmeyer-Crowley interval';
COMMENT ON COLUMN mart_reform_measure_effects.median_with_measure_hours IS 'Kaplan-Meier median of all shipments with the measure, strata pooled, hours (null: not reached)';
COMMENT ON COLUMN mart_reform_measure_effects.median_without_measure_hours IS 'Kaplan-Meier median of all shipments without the measure, strata pooled, hours';
COMMENT ON COLUMN mart_reform_measure_effects.unadjusted_difference_hours IS 'Pooled median with minus pooled median without the measure, not comparing like with like: shown to see what the strata change';
COMMENT ON COLUMN mart_reform_measure_effects.stable_after_hours IS 'A shipment still open that has been followed (since arrival) this long or longer no longer moves any median or interval behind the row as the cut-off moves on (capped at the longest release of each group compared); 0 with nothing released';
