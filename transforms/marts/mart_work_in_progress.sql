-- Shipments still open at the run's cut-off (end of the business date, Beijing time), with their age.
-- Only milestones reached by the cut-off count, so a rerun of the same date gives the same answer.
/*
materialized: table  # measured at the run's cut-off: rebuilt every run
publish: table
export: {month: "strftime(business_date, '%Y-%m')"}
tests:
  unique: [entry_id]
  not_null: [business_date, entry_id, direction, open_stage, stage_since, hours_in_stage]
  accepted_values:
    open_stage: [released_not_gated_out, on_hold, arrived_not_berthed, inspection_ordered_not_inspected, inspected_not_released, accepted_not_released, declared_not_accepted]
*/
WITH cutoff AS (
    SELECT business_date, cutoff_at FROM run_context
),
holds AS (
    SELECT
        r.entry_id,
        max(r.notified_at) FILTER (WHERE r.receipt_meaning = 'hold_started') AS last_hold_started_at,
        max(r.notified_at) FILTER (WHERE r.receipt_meaning = 'hold_ended') AS last_hold_ended_at
    FROM stg_declaration_receipts AS r, cutoff
    WHERE r.notified_at <= cutoff.cutoff_at AND r.receipt_meaning IN ('hold_started', 'hold_ended')
    GROUP BY r.entry_id
),
as_of_cutoff AS (
    SELECT
        s.entry_id, s.direction, s.district_code, s.declaring_office_code, s.port_code, s.transport_mode_code,
        s.commodity_group, s.vessel_id, s.voyage_no, s.bill_no, s.owner_code, s.owner_name,
        cutoff.business_date, cutoff.cutoff_at,
        CASE WHEN s.arrival_at <= cutoff.cutoff_at THEN s.arrival_at END AS arrival_at,
        s.arrived_by_vessel_call,
        CASE WHEN s.berthed_at <= cutoff.cutoff_at THEN s.berthed_at END AS berthed_at,
        s.declared_at,
        CASE WHEN s.accepted_at <= cutoff.cutoff_at THEN s.accepted_at END AS accepted_at,
        CASE WHEN s.inspection_ordered_at <= cutoff.cutoff_at THEN s.inspection_ordered_at END AS inspection_ordered_at,
        CASE WHEN s.inspected_at <= cutoff.cutoff_at THEN s.inspected_at END AS inspected_at,
        CASE WHEN s.released_at <= cutoff.cutoff_at THEN s.released_at END AS released_at,
        CASE WHEN s.gate_out_at <= cutoff.cutoff_at THEN s.gate_out_at END AS gate_out_at,
        CASE WHEN holds.last_hold_started_at > coalesce(holds.last_hold_ended_at, TIMESTAMP '-infinity')
            THEN holds.last_hold_started_at END AS on_hold_since
    FROM core_shipments AS s
    CROSS JOIN cutoff
    LEFT JOIN holds USING (entry_id)
    WHERE s.is_counted AND s.declared_at <= cutoff.cutoff_at
),
staged AS (
    SELECT
        *,
        CASE
            WHEN released_at IS NOT NULL AND direction = 'import' AND gate_out_at IS NULL THEN 'released_not_gated_out'
            WHEN released_at IS NOT NULL THEN NULL
            WHEN on_hold_since IS NOT NULL THEN 'on_hold'
            -- the vessel has arrived and not berthed: nothing else can move before it does
            WHEN direction = 'import' AND arrived_by_vessel_call AND arrival_at IS NOT NULL AND berthed_at IS NULL
                THEN 'arrived_not_berthed'
            WHEN inspection_ordered_at IS NOT NULL AND inspected_at IS NULL THEN 'inspection_ordered_not_inspected'
            WHEN inspected_at IS NOT NULL THEN 'inspected_not_released'
            WHEN accepted_at IS NOT NULL THEN 'accepted_not_released'
            ELSE 'declared_not_accepted'
        END AS open_stage
    FROM as_of_cutoff
)
SELECT
    business_date,
    entry_id,
    direction,
    open_stage,
    CASE open_stage
        WHEN 'released_not_gated_out' THEN released_at
        WHEN 'on_hold' THEN on_hold_since
        WHEN 'arrived_not_berthed' THEN arrival_at
        WHEN 'inspection_ordered_not_inspected' THEN inspection_ordered_at
        WHEN 'inspected_not_released' THEN inspected_at
        WHEN 'accepted_not_released' THEN accepted_at
        ELSE declared_at
    END AS stage_since,
    hours_between(stage_since, cutoff_at) AS hours_in_stage,
    hours_between(arrival_at, cutoff_at) AS hours_since_arrival,
    hours_between(declared_at, cutoff_at) AS hours_since_declared,
    released_at IS NOT NULL AS is_released,
    district_code, declaring_office_code, port_code, transport_mode_code, commodity_group,
    vessel_id, voyage_no, bill_no, owner_code, owner_name,
    arrival_at, declared_at, accepted_at, inspection_ordered_at, inspected_at, released_at
FROM staged
WHERE open_stage IS NOT NULL;
COMMENT ON TABLE mart_work_in_progress IS 'Work in progress at the cut-off of the latest run: counted shipments declared but not released, and imports released but not out of the gate, with their stage and age.';
COMMENT ON COLUMN mart_work_in_progress.business_date IS 'Business date of the run; the cut-off is the end of that day, Beijing time';
COMMENT ON COLUMN mart_work_in_progress.entry_id IS 'Declaration number';
COMMENT ON COLUMN mart_work_in_progress.direction IS 'import or export';
COMMENT ON COLUMN mart_work_in_progress.open_stage IS 'One stage per shipment, the first that applies: released_not_gated_out, on_hold, arrived_not_berthed, inspection_ordered_not_inspected, inspected_not_released, accepted_not_released, declared_not_accepted';
COMMENT ON COLUMN mart_work_in_progress.stage_since IS 'When the shipment entered its open stage';
COMMENT ON COLUMN mart_work_in_progress.hours_in_stage IS 'Hours in the open stage at the cut-off';
COMMENT ON COLUMN mart_work_in_progress.hours_since_arrival IS 'Age: hours from arrival to the cut-off (null before arrival)';
COMMENT ON COLUMN mart_work_in_progress.hours_since_declared IS 'Hours from declaration to the cut-off';
COMMENT ON COLUMN mart_work_in_progress.is_released IS 'Released by the cut-off (then only the gate-out is open)';
COMMENT ON COLUMN mart_work_in_progress.district_code IS 'Customs district';
COMMENT ON COLUMN mart_work_in_progress.declaring_office_code IS 'Declaring customs office';
COMMENT ON COLUMN mart_work_in_progress.port_code IS 'Port of entry/exit';
COMMENT ON COLUMN mart_work_in_progress.transport_mode_code IS 'TRAF_MODE';
COMMENT ON COLUMN mart_work_in_progress.commodity_group IS 'ores, grain, auto_parts or other';
COMMENT ON COLUMN mart_work_in_progress.vessel_id IS 'IMO number of the vessel';
COMMENT ON COLUMN mart_work_in_progress.voyage_no IS 'Voyage number (waterway; null by rail, road, air)';
COMMENT ON COLUMN mart_work_in_progress.bill_no IS 'Bill of lading, normalised';
COMMENT ON COLUMN mart_work_in_progress.owner_code IS 'Unified social credit code of the consignee/consignor';
COMMENT ON COLUMN mart_work_in_progress.owner_name IS 'Consignee/consignor name';
COMMENT ON COLUMN mart_work_in_progress.arrival_at IS 'Arrival, if reached by the cut-off';
COMMENT ON COLUMN mart_work_in_progress.declared_at IS 'Declaration time';
COMMENT ON COLUMN mart_work_in_progress.accepted_at IS 'Acceptance, if reached by the cut-off';
COMMENT ON COLUMN mart_work_in_progress.inspection_ordered_at IS 'Inspection ordered, if by the cut-off';
COMMENT ON COLUMN mart_work_in_progress.inspected_at IS 'Inspection done, if by the cut-off';
COMMENT ON COLUMN mart_work_in_progress.released_at IS 'Release, if by the cut-off';
