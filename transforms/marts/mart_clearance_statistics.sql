-- Statistics of every segment, by day, week and month of release, for every slice.
/*
materialized: incremental
unique_key: [grain, period_start]
touched_keys: affected_periods
# its quantiles hold every value in memory: a rebuild goes a month of releases at a time (the weeks
# that start in the month with it), see README (Models)
rebuild_by_month: SELECT release_date FROM core_shipments
publish: {monthly_parquet: "date_trunc('month', period_start)::DATE", order_by: 'grain, period_start, direction, dimension, dimension_value, segment'}
tests:
  unique: [[grain, period_start, direction, dimension, dimension_value, segment]]
  not_null: [grain, period_start, direction, dimension, dimension_value, segment, shipments, mean_hours, median_hours]
  accepted_values:
    grain: [day, week, month]
  expect:
    quantiles_in_order: median_hours <= p90_hours AND p90_hours <= p95_hours AND p95_hours <= max_hours
    share_within_target_is_a_share: share_within_target IS NULL OR share_within_target BETWEEN 0 AND 1
  queries:
    # every period's count of shipments is the number of counted shipments released in it
    shipments_are_the_released_shipments_behind_them: |
      WITH stated AS (
          SELECT grain, period_start, direction, shipments FROM mart_clearance_statistics
          SEMI JOIN affected_periods USING (grain, period_start)
          WHERE dimension = 'all' AND segment = 'overall_clearance'
      ),
      released AS (
          SELECT direction, release_date FROM core_shipments
          SEMI JOIN affected_release_days USING (release_date)
          WHERE is_counted AND overall_clearance_hours IS NOT NULL
      ),
      behind AS (
          SELECT grain, period_start, direction, count(*) AS shipments FROM (
              SELECT 'day' AS grain, release_date AS period_start, direction FROM released
              UNION ALL SELECT 'week', date_trunc('week', release_date)::DATE, direction FROM released
              UNION ALL SELECT 'month', date_trunc('month', release_date)::DATE, direction FROM released)
          SEMI JOIN affected_periods USING (grain, period_start)
          GROUP BY ALL
      )
      SELECT * FROM stated FULL JOIN behind USING (grain, period_start, direction)
      WHERE stated.shipments IS DISTINCT FROM behind.shipments
*/
WITH operative_targets AS (
    -- one target per direction and district (national: district NULL), even if the seed marks several
    SELECT direction, district_code, target_hours
    FROM ref_clearance_targets
    WHERE is_operative
    QUALIFY row_number() OVER (PARTITION BY direction, district_code ORDER BY target_hours, target_code) = 1
),
released AS (
    SELECT s.*, coalesce(district_target.target_hours, national_target.target_hours) AS target_hours
    FROM core_shipments AS s
    LEFT JOIN operative_targets AS district_target
        ON district_target.direction = s.direction AND district_target.district_code = s.district_code
    LEFT JOIN operative_targets AS national_target
        ON national_target.direction = s.direction AND national_target.district_code IS NULL
    -- only the days of the periods being restated (every day of each such period)
    SEMI JOIN affected_release_days USING (release_date)
    WHERE s.is_counted AND s.released_at IS NOT NULL
      AND in_part_or_its_weeks(s.release_date)
),
segment_hours AS (
    -- one row per shipment and known segment, with every slice and period it counts in
    UNPIVOT (
        SELECT direction, release_date AS day_start, date_trunc('week', release_date)::DATE AS week_start,
               date_trunc('month', release_date)::DATE AS month_start,
               coalesce(district_code, 'unknown') AS district, declaring_office_code AS office, port_code AS port,
               transport_mode_code AS transport_mode, coalesce(trade_mode, 'unknown') AS trade_mode, commodity_group,
               CASE WHEN is_inspected THEN 'inspected' ELSE 'not_inspected' END AS inspection, reform_measures,
               target_hours, overall_clearance_hours, anchorage_wait_hours, pre_declaration_hours,
               customs_processing_hours, inspection_hours, port_exit_hours, door_to_gate_hours
        FROM released
    )
    ON overall_clearance_hours, anchorage_wait_hours, pre_declaration_hours, customs_processing_hours,
       inspection_hours, port_exit_hours, door_to_gate_hours
    INTO NAME segment_column VALUE hours
),
by_measure AS (
    SELECT * EXCLUDE (reform_measures), unnest(reform_measures) AS reform_measure FROM segment_hours
),
statistics AS (
    -- every grain crossed with every slice, grouped in one pass over the rows (grouping sets), not
    -- by joining each row to its slices and periods first
    SELECT
        GROUPING(day_start, week_start) AS grain_grouping,
        coalesce(day_start, week_start, month_start) AS period_start,
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
        segment_column,
        count(*) AS shipments,
        -- summed as whole seconds: a float sum depends on the order of the rows, reruns must not
        sum(round(hours * 3600)::BIGINT) AS total_seconds,
        quantile_cont(hours, [0.5, 0.9, 0.95]) AS quantiles,
        max(hours) AS max_hours,
        min(target_hours) AS min_target_hours,
        max(target_hours) AS max_target_hours,
        count(target_hours) AS with_target,
        count(*) FILTER (WHERE hours <= target_hours) AS within_target
    FROM segment_hours
    GROUP BY direction, segment_column,
        GROUPING SETS ((day_start), (week_start), (month_start)),
        GROUPING SETS ((), (district), (office), (port), (transport_mode), (trade_mode), (commodity_group), (inspection))
    UNION ALL
    SELECT GROUPING(day_start, week_start), coalesce(day_start, week_start, month_start), direction, 'reform_measure',
           reform_measure, segment_column, count(*), sum(round(hours * 3600)::BIGINT),
           quantile_cont(hours, [0.5, 0.9, 0.95]), max(hours), min(target_hours), max(target_hours),
           count(target_hours), count(*) FILTER (WHERE hours <= target_hours)
    FROM by_measure
    GROUP BY direction, segment_column, reform_measure, GROUPING SETS ((day_start), (week_start), (month_start))
),
named AS (
    -- GROUPING(day_start, week_start): 1 = grouped by day, 2 = by week, 3 = by month
    SELECT *, CASE grain_grouping WHEN 1 THEN 'day' WHEN 2 THEN 'week' ELSE 'month' END AS grain FROM statistics
)
SELECT
    grain,
    period_start,
    direction,
    dimension,
    dimension_value,
    replace(segment_column, '_hours', '') AS segment,
    shipments,
    total_seconds / shipments / 3600.0 AS mean_hours,
    quantiles[1] AS median_hours,
    quantiles[2] AS p90_hours,
    quantiles[3] AS p95_hours,
    max_hours,
    CASE WHEN min_target_hours = max_target_hours THEN min_target_hours END AS target_hours,
    CASE WHEN segment_column = 'overall_clearance_hours' AND with_target > 0 THEN within_target / with_target END
        AS share_within_target
FROM named
SEMI JOIN affected_periods USING (grain, period_start)
WHERE in_part(period_start);
COMMENT ON TABLE mart_clearance_statistics IS 'Segment statistics of released, counted shipments by period of release (Beijing date), direction and slice. Filter one grain, one dimension and one segment at a time.';
COMMENT ON COLUMN mart_clearance_statistics.grain IS 'day, week (starting Monday) or month';
COMMENT ON COLUMN mart_clearance_statistics.period_start IS 'First day of the period of release';
COMMENT ON COLUMN mart_clearance_statistics.direction IS 'import or export';
COMMENT ON COLUMN mart_clearance_statistics.dimension IS 'all, district, office, port, transport_mode, trade_mode, commodity_group, reform_measure or inspection';
COMMENT ON COLUMN mart_clearance_statistics.dimension_value IS 'The slice: a district, office or port code, a mode, a group, a measure, inspected/not_inspected, or all';
COMMENT ON COLUMN mart_clearance_statistics.segment IS 'overall_clearance, anchorage_wait, pre_declaration, customs_processing, inspection, port_exit or door_to_gate';
COMMENT ON COLUMN mart_clearance_statistics.shipments IS 'Shipments with this segment known';
COMMENT ON COLUMN mart_clearance_statistics.mean_hours IS 'Mean, hours';
COMMENT ON COLUMN mart_clearance_statistics.median_hours IS 'Median, hours';
COMMENT ON COLUMN mart_clearance_statistics.p90_hours IS '90th percentile (interpolated), hours';
COMMENT ON COLUMN mart_clearance_statistics.p95_hours IS '95th percentile (interpolated), hours';
COMMENT ON COLUMN mart_clearance_statistics.max_hours IS 'Maximum, hours';
COMMENT ON COLUMN mart_clearance_statistics.target_hours IS 'Operative overall clearance target of the slice (null when its shipments have different targets)';
COMMENT ON COLUMN mart_clearance_statistics.share_within_target IS 'overall_clearance only: share of shipments released within their operative target (ref_clearance_targets)';
