-- One row per shipment (= declaration): every milestone and segment of clearance-metrics.md.
/*
materialized: incremental
unique_key: [entry_id]
touched_keys: affected_entries
publish: {monthly_parquet: declaration_month, order_by: entry_id}
tests:
  unique: [entry_id]
  not_null: [entry_id, direction, clearance_status, is_counted, declaring_office_code, port_code,
             transport_mode_code, commodity_group, reform_measures, declared_at, declaration_month]
  accepted_values:
    direction: [import, export]
    clearance_status: [open, released, rejected, cancelled]
  relationships:
    - {column: transport_mode_code, to: ref_transport_modes.transport_mode_code}
    - {column: district_code, to: ref_customs_districts.district_code}
    - {column: commodity_group, to: ref_commodity_groups.commodity_group, where: "commodity_group <> 'other'"}
    # new ports and offices do appear (export contract, quirk 7): loaded, and a finding, not an error
    - {column: port_code, to: ref_ports.port_code, severity: warn}
    - {column: declaring_office_code, to: ref_customs_offices.office_code, severity: warn}
  expect:
    # each segment is its milestones' difference (clearance-metrics.md, "Segments"), null while one is missing
    overall_clearance_is_release_minus_arrival: overall_clearance_hours IS NOT DISTINCT FROM hours_between(arrival_at, released_at)
    anchorage_wait_is_berthing_minus_arrival: anchorage_wait_hours IS NOT DISTINCT FROM hours_between(arrival_at, berthed_at)
    pre_declaration_is_declaration_minus_arrival: pre_declaration_hours IS NOT DISTINCT FROM hours_between(arrival_at, declared_at)
    customs_processing_is_release_minus_later_of_arrival_and_acceptance: >-
      customs_processing_hours IS NOT DISTINCT FROM
      (CASE WHEN arrival_at IS NOT NULL AND accepted_at IS NOT NULL THEN hours_between(greatest(arrival_at, accepted_at), released_at) END)
    inspection_is_inspected_minus_ordered: inspection_hours IS NOT DISTINCT FROM hours_between(inspection_ordered_at, inspected_at)
    port_exit_is_gate_out_minus_release: port_exit_hours IS NOT DISTINCT FROM hours_between(released_at, gate_out_at)
    door_to_gate_is_gate_out_minus_arrival: door_to_gate_hours IS NOT DISTINCT FROM hours_between(arrival_at, gate_out_at)
    counted_unless_rejected_or_cancelled: is_counted = (clearance_status NOT IN ('rejected', 'cancelled'))
*/
-- NOT MATERIALIZED: read twice (the HS codes, the rows), not copied first
WITH declarations AS NOT MATERIALIZED (
    SELECT * FROM core_declarations SEMI JOIN affected_entries USING (entry_id)
),
commodity AS (
    -- the longest matching HS prefix decides the group; matched once per HS code, not per
    -- declaration (a prefix match is a nested-loop join)
    SELECT h.hs_code, arg_max(g.commodity_group, length(g.hs_prefix)) AS commodity_group
    FROM (SELECT DISTINCT hs_code FROM declarations) AS h
    JOIN ref_commodity_groups AS g ON starts_with(h.hs_code, g.hs_prefix)
    GROUP BY h.hs_code
),
joined AS (
    SELECT
        d.*,
        s.accepted_at, s.inspection_ordered_at, s.tax_assessed_at, s.released_at, s.release_channel,
        s.cleared_at, s.rejected_at, s.cancelled_at, s.hold_count,
        v.anchorage_arrival_at, v.arrival_at AS vessel_arrival_at, v.berthed_at AS vessel_berthed_at,
        c.first_discharged_at, c.last_discharged_at, c.arrival_reported_at, c.last_inspected_at,
        c.certified_at AS bill_certified_at, c.last_loaded_at, c.gate_out_at AS bill_gate_out_at,
        -- by rail, road or air there is no vessel call
        (d.transport_mode_code = '2' AND d.vessel_id IS NOT NULL) AS has_vessel_call,
        coalesce(commodity.commodity_group, 'other') AS commodity_group,
        coalesce(office.district_code, port.district_code) AS district_code,
        office.office_code IS NOT NULL AS is_known_office,
        port.port_code IS NOT NULL AS is_known_port
    FROM declarations AS d
    LEFT JOIN core_declaration_status AS s USING (entry_id)
    LEFT JOIN core_vessel_calls AS v
        ON v.vessel_id = d.vessel_id AND v.voyage_no = d.voyage_no AND v.port_code = d.port_code
    LEFT JOIN core_bill_cargo AS c ON c.bill_no = d.bill_no
    LEFT JOIN commodity ON commodity.hs_code = d.hs_code
    LEFT JOIN ref_customs_offices AS office ON office.office_code = d.declaring_office_code
    LEFT JOIN ref_ports AS port ON port.port_code = d.port_code
),
milestones AS (
    SELECT
        *,
        CASE
            WHEN direction = 'export' THEN arrival_reported_at
            WHEN has_vessel_call THEN vessel_arrival_at
            ELSE first_discharged_at
        END AS arrival_at,
        CASE WHEN direction = 'import' THEN vessel_berthed_at END AS berthed_at,
        CASE WHEN direction = 'import' THEN last_discharged_at END AS discharged_at,
        last_inspected_at AS inspected_at,
        CASE WHEN direction = 'import' THEN bill_gate_out_at END AS gate_out_at,
        CASE WHEN direction = 'export' THEN last_loaded_at END AS loaded_at,
        CASE WHEN direction = 'import' THEN bill_certified_at END AS certified_at
    FROM joined
),
segments AS (
    SELECT
        *,
        hours_between(arrival_at, released_at) AS overall_clearance_hours,
        hours_between(arrival_at, berthed_at) AS anchorage_wait_hours,
        hours_between(arrival_at, declared_at) AS pre_declaration_hours,
        -- greatest() skips nulls, but the segment must stay null while a milestone is missing
        CASE WHEN arrival_at IS NOT NULL AND accepted_at IS NOT NULL
            THEN hours_between(greatest(arrival_at, accepted_at), released_at) END AS customs_processing_hours,
        hours_between(inspection_ordered_at, inspected_at) AS inspection_hours,
        hours_between(released_at, gate_out_at) AS port_exit_hours,
        hours_between(arrival_at, gate_out_at) AS door_to_gate_hours
    FROM milestones
)
SELECT
    entry_id,
    direction,
    CASE
        WHEN cancelled_at IS NOT NULL THEN 'cancelled'
        WHEN rejected_at IS NOT NULL THEN 'rejected'
        WHEN released_at IS NOT NULL THEN 'released'
        ELSE 'open'
    END AS clearance_status,
    cancelled_at IS NULL AND rejected_at IS NULL AS is_counted,
    district_code,
    declaring_office_code,
    entry_exit_office_code,
    port_code,
    transport_mode_code,
    trade_mode,
    commodity_group,
    hs_code,
    vessel_id,
    voyage_no,
    bill_no,
    owner_code,
    owner_name,
    is_advance_declaration,
    is_two_step,
    is_ship_side,
    is_release_before_inspection,
    inspection_ordered_at IS NOT NULL AS is_inspected,
    coalesce(nullif(list_filter([
        CASE WHEN is_advance_declaration THEN 'advance_declaration' END,
        CASE WHEN is_two_step THEN 'two_step' END,
        CASE WHEN is_ship_side THEN 'ship_side' END,
        CASE WHEN is_release_before_inspection THEN 'release_before_inspection' END
    ], lambda m: m IS NOT NULL), []), ['none']) AS reform_measures,
    arrival_at,
    berthed_at,
    discharged_at,
    declared_at,
    date_trunc('month', declared_at)::DATE AS declaration_month,
    completed_declaration_at,
    accepted_at,
    inspection_ordered_at,
    inspected_at,
    released_at,
    release_channel,
    cleared_at,
    gate_out_at,
    loaded_at,
    certified_at,
    rejected_at,
    cancelled_at,
    hold_count,
    released_at::DATE AS release_date,
    overall_clearance_hours,
    anchorage_wait_hours,
    pre_declaration_hours,
    customs_processing_hours,
    inspection_hours,
    port_exit_hours,
    door_to_gate_hours,
    -- only an advance declaration may make a segment negative (export contract, quirk 5)
    list_filter([
        CASE WHEN overall_clearance_hours < 0 THEN 'overall_clearance' END,
        CASE WHEN anchorage_wait_hours < 0 THEN 'anchorage_wait' END,
        CASE WHEN pre_declaration_hours < 0 AND NOT is_advance_declaration THEN 'pre_declaration' END,
        CASE WHEN customs_processing_hours < 0 THEN 'customs_processing' END,
        CASE WHEN inspection_hours < 0 THEN 'inspection' END,
        CASE WHEN port_exit_hours < 0 THEN 'port_exit' END,
        CASE WHEN door_to_gate_hours < 0 THEN 'door_to_gate' END
    ], lambda s: s IS NOT NULL) AS unexpected_negative_segments,
    has_vessel_call AS arrived_by_vessel_call,
    is_known_office,
    is_known_port
FROM segments;
COMMENT ON TABLE core_shipments IS 'One row per shipment (declaration): milestones (Beijing time) and segments (hours) as clearance-metrics.md defines them. Count only rows with is_counted.';
COMMENT ON COLUMN core_shipments.entry_id IS 'Declaration number: the shipment';
COMMENT ON COLUMN core_shipments.direction IS 'import or export';
COMMENT ON COLUMN core_shipments.clearance_status IS 'open, released, rejected (E) or cancelled (A, D)';
COMMENT ON COLUMN core_shipments.is_counted IS 'False for rejected and cancelled declarations, which no statistic counts';
COMMENT ON COLUMN core_shipments.district_code IS 'Customs district (of the declaring office, else of the port)';
COMMENT ON COLUMN core_shipments.declaring_office_code IS 'Declaring customs office (CUSTOM_MASTER): the office alerts go to';
COMMENT ON COLUMN core_shipments.entry_exit_office_code IS 'Customs office of entry/exit (I_E_PORT)';
COMMENT ON COLUMN core_shipments.port_code IS 'Port of entry/exit';
COMMENT ON COLUMN core_shipments.transport_mode_code IS 'TRAF_MODE: 2 waterway, 3 rail, 4 road, 5 air';
COMMENT ON COLUMN core_shipments.trade_mode IS 'Supervision mode code';
COMMENT ON COLUMN core_shipments.commodity_group IS 'ores, grain, auto_parts or other, from the HS code';
COMMENT ON COLUMN core_shipments.hs_code IS 'HS code of the first goods item';
COMMENT ON COLUMN core_shipments.vessel_id IS 'IMO number of the vessel';
COMMENT ON COLUMN core_shipments.voyage_no IS 'Voyage number (waterway; null by rail, road, air)';
COMMENT ON COLUMN core_shipments.bill_no IS 'Bill of lading, normalised';
COMMENT ON COLUMN core_shipments.owner_code IS 'Unified social credit code of the consignee/consignor';
COMMENT ON COLUMN core_shipments.owner_name IS 'Consignee/consignor name';
COMMENT ON COLUMN core_shipments.is_advance_declaration IS 'Measure: advance declaration (提前申报)';
COMMENT ON COLUMN core_shipments.is_two_step IS 'Measure: two-step declaration (两步申报)';
COMMENT ON COLUMN core_shipments.is_ship_side IS 'Measure: ship-side pickup / direct loading (船边直提/抵港直装)';
COMMENT ON COLUMN core_shipments.is_release_before_inspection IS 'Measure: release before inspection (先放后检)';
COMMENT ON COLUMN core_shipments.is_inspected IS 'An inspection was ordered (C receipt)';
COMMENT ON COLUMN core_shipments.reform_measures IS 'Measures applied: advance_declaration, two_step, ship_side, release_before_inspection, or none';
COMMENT ON COLUMN core_shipments.arrival_at IS 'Milestone arrival: import ATA_ANCH (else ATA_BERTH) of the call, or first DISC_DONE without a vessel call; export first ARRIVAL_REPORT';
COMMENT ON COLUMN core_shipments.berthed_at IS 'Milestone berthed: ATA_BERTH of the call (import)';
COMMENT ON COLUMN core_shipments.discharged_at IS 'Milestone discharged: last DISC_DONE of the bill (import)';
COMMENT ON COLUMN core_shipments.declared_at IS 'Milestone declared: D_DATE of the first (summary) version';
COMMENT ON COLUMN core_shipments.declaration_month IS 'Month of declaration: the published warehouse keeps a shipment and its events in one Parquet file per month';
COMMENT ON COLUMN core_shipments.completed_declaration_at IS 'Milestone completed_declaration: D_DATE of version DECL_STEP = 2';
COMMENT ON COLUMN core_shipments.accepted_at IS 'Milestone accepted: first L';
COMMENT ON COLUMN core_shipments.inspection_ordered_at IS 'Milestone inspection_ordered: first C';
COMMENT ON COLUMN core_shipments.inspected_at IS 'Milestone inspected: last INSP_DONE of the bill';
COMMENT ON COLUMN core_shipments.released_at IS 'Milestone released: first of P, I, K, B';
COMMENT ON COLUMN core_shipments.release_channel IS 'Release receipt that came first';
COMMENT ON COLUMN core_shipments.cleared_at IS 'Milestone cleared: first R';
COMMENT ON COLUMN core_shipments.gate_out_at IS 'Milestone gate_out: last GATE_OUT once every manifest container is out (import)';
COMMENT ON COLUMN core_shipments.loaded_at IS 'Milestone loaded: last LOADED of the bill (export)';
COMMENT ON COLUMN core_shipments.certified_at IS 'Milestone certified: CERT_ISSUED (import, release before inspection)';
COMMENT ON COLUMN core_shipments.rejected_at IS 'First E receipt';
COMMENT ON COLUMN core_shipments.cancelled_at IS 'First A or D receipt';
COMMENT ON COLUMN core_shipments.hold_count IS 'Number of holds (H receipts)';
COMMENT ON COLUMN core_shipments.release_date IS 'Beijing date of release: the day the statistics count the shipment';
COMMENT ON COLUMN core_shipments.overall_clearance_hours IS 'Segment overall_clearance (整体通关时间): released - arrival, hours';
COMMENT ON COLUMN core_shipments.anchorage_wait_hours IS 'Segment anchorage_wait (berthing delay): berthed - arrival, hours';
COMMENT ON COLUMN core_shipments.pre_declaration_hours IS 'Segment pre_declaration: declared - arrival, hours (negative with advance declaration)';
COMMENT ON COLUMN core_shipments.customs_processing_hours IS 'Segment customs_processing (release delay): released - max(arrival, accepted), hours';
COMMENT ON COLUMN core_shipments.inspection_hours IS 'Segment inspection: inspected - inspection_ordered, hours';
COMMENT ON COLUMN core_shipments.port_exit_hours IS 'Segment port_exit: gate_out - released, hours';
COMMENT ON COLUMN core_shipments.door_to_gate_hours IS 'Segment door_to_gate: gate_out - arrival, hours';
COMMENT ON COLUMN core_shipments.unexpected_negative_segments IS 'Segments negative where the export contract does not allow it: a data-quality finding, values kept as they are';
COMMENT ON COLUMN core_shipments.arrived_by_vessel_call IS 'Waterway with a vessel call: arrival and berthing come from the call (else arrival is the first DISC_DONE)';
COMMENT ON COLUMN core_shipments.is_known_office IS 'The declaring office is in the office dictionary';
COMMENT ON COLUMN core_shipments.is_known_port IS 'The port is in the port dictionary';
