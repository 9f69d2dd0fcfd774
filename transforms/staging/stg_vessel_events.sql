/*
materialized: incremental
unique_key: [export_date]
touched_keys: affected_export_dates
tests:
  unique: [[export_date, source_file, line_no]]
  not_null: [vessel_id, voyage_no, port_code, event_code, event_at]
*/
SELECT vessel_id, voyage_no, port_code, event_code, event_time AS event_at, source AS reported_by,
       export_date, source_file, line_no
FROM land_vessel_event
SEMI JOIN affected_export_dates USING (export_date);
COMMENT ON TABLE stg_vessel_events IS 'Vessel call events: arrival at anchorage, berthing, departure.';
COMMENT ON COLUMN stg_vessel_events.vessel_id IS 'IMO number of the vessel';
COMMENT ON COLUMN stg_vessel_events.voyage_no IS 'Voyage number';
COMMENT ON COLUMN stg_vessel_events.port_code IS 'Port of the call';
COMMENT ON COLUMN stg_vessel_events.event_code IS 'ATA_ANCH, ATA_BERTH or ATD_BERTH';
COMMENT ON COLUMN stg_vessel_events.event_at IS 'Time of the event, Beijing time';
COMMENT ON COLUMN stg_vessel_events.reported_by IS 'System that reported the event (SOURCE)';
COMMENT ON COLUMN stg_vessel_events.export_date IS 'Export date of the delivery the event came in';
COMMENT ON COLUMN stg_vessel_events.source_file IS 'Data file the event came from';
COMMENT ON COLUMN stg_vessel_events.line_no IS 'Line in that file';
