-- Statistics of every segment, by day, week and month of release, for every slice.
CREATE OR REPLACE TABLE mart_clearance_statistics AS
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
    WHERE s.is_counted AND s.released_at IS NOT NULL
),
slices AS (
    SELECT entry_id, 'all' AS dimension, 'all' AS dimension_value FROM released
    UNION ALL SELECT entry_id, 'district', coalesce(district_code, 'unknown') FROM released
    UNION ALL SELECT entry_id, 'office', declaring_office_code FROM released
    UNION ALL SELECT entry_id, 'port', port_code FROM released
    UNION ALL SELECT entry_id, 'transport_mode', transport_mode_code FROM released
    UNION ALL SELECT entry_id, 'trade_mode', coalesce(trade_mode, 'unknown') FROM released
    UNION ALL SELECT entry_id, 'commodity_group', commodity_group FROM released
    UNION ALL SELECT entry_id, 'reform_measure', unnest(reform_measures) FROM released
    UNION ALL SELECT entry_id, 'inspection', CASE WHEN is_inspected THEN 'inspected' ELSE 'not_inspected' END FROM released
),
segment_hours AS (
    UNPIVOT (
        SELECT entry_id, overall_clearance_hours, anchorage_wait_hours, pre_declaration_hours,
               customs_processing_hours, inspection_hours, port_exit_hours, door_to_gate_hours
        FROM released
    )
    ON overall_clearance_hours, anchorage_wait_hours, pre_declaration_hours, customs_processing_hours,
       inspection_hours, port_exit_hours, door_to_gate_hours
    INTO NAME segment_column VALUE hours
),
periods AS (
    SELECT entry_id, 'day' AS grain, release_date AS period_start FROM released
    UNION ALL SELECT entry_id, 'week', date_trunc('week', release_date)::DATE FROM released
    UNION ALL SELECT entry_id, 'month', date_trunc('month', release_date)::DATE FROM released
)
SELECT
    p.grain,
    p.period_start,
    r.direction,
    sl.dimension,
    sl.dimension_value,
    replace(h.segment_column, '_hours', '') AS segment,
    count(*) AS shipments,
    -- summed as whole seconds: a float sum depends on the order of the rows, reruns must not
    sum(round(h.hours * 3600)::BIGINT) / count(*) / 3600.0 AS mean_hours,
    median(h.hours) AS median_hours,
    quantile_cont(h.hours, 0.90) AS p90_hours,
    quantile_cont(h.hours, 0.95) AS p95_hours,
    max(h.hours) AS max_hours,
    CASE WHEN min(r.target_hours) = max(r.target_hours) THEN min(r.target_hours) END AS target_hours,
    CASE WHEN h.segment_column = 'overall_clearance_hours' AND count(r.target_hours) > 0
        THEN count(*) FILTER (WHERE h.hours <= r.target_hours) / count(r.target_hours) END AS share_within_target
FROM segment_hours AS h
JOIN released AS r USING (entry_id)
JOIN slices AS sl USING (entry_id)
JOIN periods AS p USING (entry_id)
GROUP BY p.grain, p.period_start, r.direction, sl.dimension, sl.dimension_value, h.segment_column;
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
