-- Shipments stalled at the run's cut-off: longer in their open stage than the stage's threshold
-- (clearance-metrics.md, "Stalled shipments"). Measured at the cut-off, never at wall-clock time.
/*
materialized: table  # measured at the run's cut-off: rebuilt every run
publish: table
export: {month: "strftime(business_date, '%Y-%m')"}
tests:
  unique: [alert_key]
  not_null: [business_date, alert_key, stage, stage_since, hours_in_stage, threshold_hours, office_code]
  relationships:
    - {column: stage, to: ref_stall_thresholds.stage}
  expect:
    past_its_threshold: hours_in_stage > threshold_hours
*/
WITH cutoff AS (
    SELECT business_date, cutoff_at FROM run_context
),
declared_stages AS (
    SELECT entry_id, bill_no, direction, open_stage AS stage, stage_since, declaring_office_code AS office_code,
           district_code, port_code, vessel_id, voyage_no, owner_code, owner_name, NULL::BOOLEAN AS is_declared_since
    FROM mart_work_in_progress
),
undeclared_bills AS (
    -- bills with no counted declaration by the cut-off: few, so the rest is cheap
    SELECT b.bill_no, b.first_counted_declared_at IS NOT NULL AS is_declared_since
    FROM core_bill_declarations AS b, cutoff
    WHERE b.first_counted_declared_at IS NULL OR b.first_counted_declared_at > cutoff.cutoff_at
),
arrived_bills AS (
    -- import bills on the manifest of an arrived call, or discharged; exports (arrival reports,
    -- loading) declare before they move and are left out
    SELECT m.bill_no, any_value(m.port_code) AS port_code, any_value(m.vessel_id) AS vessel_id,
           any_value(m.voyage_no) AS voyage_no,
           least(min(v.arrival_at), any_value(c.first_discharged_at)) AS arrived_at,
           any_value(u.is_declared_since) AS is_declared_since
    FROM core_manifest_lines AS m
    JOIN undeclared_bills AS u USING (bill_no)
    LEFT JOIN core_vessel_calls AS v USING (vessel_id, voyage_no, port_code)
    LEFT JOIN (SELECT c.* FROM undeclared_bills JOIN core_bill_cargo AS c USING (bill_no)) AS c USING (bill_no)
    WHERE c.arrival_reported_at IS NULL AND c.last_loaded_at IS NULL
    GROUP BY m.bill_no
),
not_declared AS (
    SELECT NULL::VARCHAR AS entry_id, b.bill_no, 'import' AS direction, 'arrived_not_declared' AS stage,
           b.arrived_at AS stage_since, coalesce(p.district_code, 'unknown') AS office_code, p.district_code,
           b.port_code, b.vessel_id, b.voyage_no, NULL::VARCHAR AS owner_code, NULL::VARCHAR AS owner_name,
           b.is_declared_since
    FROM arrived_bills AS b
    CROSS JOIN cutoff
    LEFT JOIN ref_ports AS p USING (port_code)
    WHERE b.arrived_at <= cutoff.cutoff_at
),
open_stages AS (
    SELECT * FROM declared_stages
    UNION ALL SELECT * FROM not_declared
),
with_threshold AS (
    SELECT o.*, cutoff.business_date, hours_between(o.stage_since, cutoff.cutoff_at) AS hours_in_stage,
           coalesce(office_rule.threshold_hours, default_rule.threshold_hours) AS threshold_hours,
           names.stage_label_zh, names.stage_label
    FROM open_stages AS o
    CROSS JOIN cutoff
    JOIN ref_stall_thresholds AS default_rule ON default_rule.stage = o.stage AND default_rule.office_code IS NULL
    LEFT JOIN ref_stage_responsibilities AS names ON names.stage = o.stage
    LEFT JOIN ref_stall_thresholds AS office_rule ON office_rule.stage = o.stage AND office_rule.office_code = o.office_code
),
stalled AS (
    SELECT * FROM with_threshold WHERE hours_in_stage > threshold_hours
),
-- the shipments and statuses of the stalled rows only. Joined whole, or by SEMI JOIN, DuckDB hashed the
-- year's 1.4 M shipments to look up a few thousand; an inner join from the few hashes those and
-- filters the scan of the many (the same for the undeclared bills' cargo above)
stalled_shipments AS (
    SELECT s.* FROM (SELECT DISTINCT entry_id FROM stalled) AS t JOIN core_shipments AS s USING (entry_id)
),
stalled_statuses AS (
    SELECT s.* FROM (SELECT DISTINCT entry_id FROM stalled) AS t JOIN core_declaration_status AS s USING (entry_id)
)
SELECT
    t.business_date,
    coalesce(t.entry_id, 'bill:' || t.bill_no) AS alert_key,
    t.entry_id,
    t.bill_no,
    t.direction,
    t.stage,
    t.stage_label_zh,
    t.stage_label,
    t.stage_since,
    t.hours_in_stage,
    t.threshold_hours,
    t.hours_in_stage > 2 * t.threshold_hours AS is_escalated,
    -- the stall has not ended in any data loaded since the cut-off (a backfill of an old date must
    -- not alert on a shipment that has long been released)
    CASE t.stage
        WHEN 'arrived_not_declared' THEN NOT t.is_declared_since
        WHEN 'arrived_not_berthed' THEN s.berthed_at IS NULL AND s.released_at IS NULL
        WHEN 'released_not_gated_out' THEN s.gate_out_at IS NULL
        WHEN 'on_hold' THEN s.released_at IS NULL
            AND (st.last_hold_ended_at IS NULL OR st.last_hold_ended_at < t.stage_since)
        WHEN 'inspection_ordered_not_inspected' THEN s.released_at IS NULL AND s.inspected_at IS NULL
        ELSE s.released_at IS NULL
    END AND coalesce(s.is_counted, true) AS is_still_open,
    t.office_code,
    office.office_name_zh,
    office.office_name,
    t.district_code,
    t.port_code,
    t.vessel_id,
    t.voyage_no,
    t.owner_code,
    t.owner_name
FROM stalled AS t
LEFT JOIN stalled_shipments AS s USING (entry_id)
LEFT JOIN stalled_statuses AS st USING (entry_id)
LEFT JOIN ref_customs_offices AS office ON office.office_code = t.office_code;
COMMENT ON TABLE mart_stalled_shipments IS 'Shipments (and undeclared arrived bills) longer in their open stage than its threshold at the cut-off of the latest run; escalated past twice the threshold.';
COMMENT ON COLUMN mart_stalled_shipments.business_date IS 'Business date of the run; stalls are measured at the end of it, Beijing time';
COMMENT ON COLUMN mart_stalled_shipments.alert_key IS 'The declaration number, or bill:<bill> for a bill not yet declared';
COMMENT ON COLUMN mart_stalled_shipments.entry_id IS 'Declaration number (null for a bill not yet declared)';
COMMENT ON COLUMN mart_stalled_shipments.bill_no IS 'Bill of lading, normalised';
COMMENT ON COLUMN mart_stalled_shipments.direction IS 'import or export';
COMMENT ON COLUMN mart_stalled_shipments.stage IS 'Open stage the shipment is stalled in';
COMMENT ON COLUMN mart_stalled_shipments.stage_label_zh IS 'Stage in Chinese (ref_stage_responsibilities)';
COMMENT ON COLUMN mart_stalled_shipments.stage_label IS 'Stage in English';
COMMENT ON COLUMN mart_stalled_shipments.stage_since IS 'When the shipment entered the stage';
COMMENT ON COLUMN mart_stalled_shipments.hours_in_stage IS 'Age in the stage at the cut-off, hours';
COMMENT ON COLUMN mart_stalled_shipments.threshold_hours IS 'Threshold of the stage for the office (ref_stall_thresholds)';
COMMENT ON COLUMN mart_stalled_shipments.is_escalated IS 'Past twice the threshold';
COMMENT ON COLUMN mart_stalled_shipments.is_still_open IS 'The stage has not ended in any data loaded so far';
COMMENT ON COLUMN mart_stalled_shipments.office_code IS 'Office alerted: the declaring office, or the district head office for an undeclared bill';
COMMENT ON COLUMN mart_stalled_shipments.office_name_zh IS 'Office name in Chinese';
COMMENT ON COLUMN mart_stalled_shipments.office_name IS 'Office name';
COMMENT ON COLUMN mart_stalled_shipments.district_code IS 'Customs district';
COMMENT ON COLUMN mart_stalled_shipments.port_code IS 'Port';
COMMENT ON COLUMN mart_stalled_shipments.vessel_id IS 'IMO number of the vessel of the call';
COMMENT ON COLUMN mart_stalled_shipments.voyage_no IS 'Voyage number (waterway; null by rail, road, air)';
COMMENT ON COLUMN mart_stalled_shipments.owner_code IS 'Unified social credit code of the consignee/consignor';
COMMENT ON COLUMN mart_stalled_shipments.owner_name IS 'Consignee/consignor name';
