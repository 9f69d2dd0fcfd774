-- The cleaned event log behind the milestones: every event of every shipment, one row each.
/*
materialized: incremental
unique_key: [entry_id]
touched_keys: affected_entries
publish: {monthly_parquet: declaration_month, order_by: 'entry_id, event_at, event_code, container_no'}
tests:
  unique: [[entry_id, export_date, source_file, line_no]]
  not_null: [entry_id, event_code, source_kind, declaration_month]
*/
WITH declarations AS (
    SELECT entry_id, bill_no, vessel_id, voyage_no, port_code, transport_mode_code,
           date_trunc('month', declared_at)::DATE AS declaration_month
    FROM core_declarations SEMI JOIN affected_entries USING (entry_id)
),
declaration_versions AS (
    SELECT
        v.entry_id,
        v.submitted_at AS event_at,
        CASE
            WHEN v.decl_step = '2' THEN 'DECLARATION_COMPLETED'
            -- the version whose D_DATE is the declaration time: the summary, else the first version
            WHEN row_number() OVER (PARTITION BY v.entry_id
                                    ORDER BY v.decl_step = '1' DESC NULLS LAST, v.version_written_at,
                                             v.export_date, v.source_file, v.line_no) = 1 THEN 'DECLARED'
            ELSE 'DECLARATION_AMENDED'
        END AS event_code,
        'dec_head' AS source_kind,
        NULL::VARCHAR AS container_no,
        v.export_date, v.source_file, v.line_no
    FROM stg_declaration_versions AS v
    SEMI JOIN declarations USING (entry_id)
),
receipts AS (
    -- receipts whose declaration header has not arrived yet belong to no shipment (a finding instead)
    SELECT r.entry_id, r.notified_at, 'RECEIPT_' || r.channel, 'dec_result', NULL::VARCHAR, r.export_date,
           r.source_file, r.line_no
    FROM stg_declaration_receipts AS r
    SEMI JOIN declarations USING (entry_id)
),
vessel AS (
    SELECT d.entry_id, e.event_at, e.event_code, 'vessel_event', NULL::VARCHAR, e.export_date, e.source_file, e.line_no
    FROM stg_vessel_events AS e
    JOIN declarations AS d
        ON d.vessel_id = e.vessel_id AND d.voyage_no = e.voyage_no AND d.port_code = e.port_code
    WHERE d.transport_mode_code = '2'
),
cargo AS (
    SELECT d.entry_id, e.event_at, e.event_code, 'cargo_event', e.container_no, e.export_date, e.source_file, e.line_no
    FROM stg_cargo_events AS e
    JOIN declarations AS d ON d.bill_no = e.bill_no
),
events AS (
    SELECT * FROM declaration_versions
    UNION ALL SELECT * FROM receipts
    UNION ALL SELECT * FROM vessel
    UNION ALL SELECT * FROM cargo
)
SELECT events.*, declarations.declaration_month
FROM events
JOIN declarations USING (entry_id);
COMMENT ON TABLE core_clearance_events IS 'Event log per shipment: declaration versions, receipts, events of its vessel call and of its bill (the cleaned events behind core_shipments).';
COMMENT ON COLUMN core_clearance_events.entry_id IS 'Declaration number: the shipment (case id)';
COMMENT ON COLUMN core_clearance_events.event_at IS 'Time of the event, Beijing time';
COMMENT ON COLUMN core_clearance_events.event_code IS 'DECLARED, DECLARATION_COMPLETED, DECLARATION_AMENDED, RECEIPT_<channel>, a vessel EVENT_CODE or a cargo EVENT_CODE';
COMMENT ON COLUMN core_clearance_events.source_kind IS 'File kind the event came from';
COMMENT ON COLUMN core_clearance_events.container_no IS 'Container of a container-level cargo event';
COMMENT ON COLUMN core_clearance_events.export_date IS 'Export date of the delivery the event came in';
COMMENT ON COLUMN core_clearance_events.source_file IS 'Data file the event came from';
COMMENT ON COLUMN core_clearance_events.line_no IS 'Line in that file';
COMMENT ON COLUMN core_clearance_events.declaration_month IS 'Month of declaration of the shipment: the Parquet file of the published warehouse the event is in';
