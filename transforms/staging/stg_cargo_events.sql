/*
materialized: incremental
unique_key: [export_date]
touched_keys: affected_export_dates
tests:
  unique: [[export_date, source_file, line_no]]
  not_null: [port_code, bill_no, event_code, event_at]
*/
SELECT vessel_id, voyage_no, port_code, normalise_bill_no(bill_no) AS bill_no, bill_no AS bill_no_as_keyed,
       nullif(container_no, '') AS container_no, event_code, event_time AS event_at,
       export_date, source_file, line_no
FROM land_cargo_event
SEMI JOIN affected_export_dates USING (export_date);
COMMENT ON TABLE stg_cargo_events IS 'Cargo and container events with the bill number normalised.';
COMMENT ON COLUMN stg_cargo_events.vessel_id IS 'IMO number of the vessel (null by rail, road, air)';
COMMENT ON COLUMN stg_cargo_events.voyage_no IS 'Voyage number (waterway; null by rail, road, air)';
COMMENT ON COLUMN stg_cargo_events.port_code IS 'Port of the event';
COMMENT ON COLUMN stg_cargo_events.bill_no IS 'Bill of lading, normalised: the key to declarations';
COMMENT ON COLUMN stg_cargo_events.bill_no_as_keyed IS 'Bill of lading as keyed in';
COMMENT ON COLUMN stg_cargo_events.container_no IS 'Container number, null for bill-level and bulk events';
COMMENT ON COLUMN stg_cargo_events.event_code IS 'ARRIVAL_REPORT, DISC_DONE, TALLY, INSP_DONE, WEIGHT_DONE, CERT_ISSUED, GATE_OUT, LOADED';
COMMENT ON COLUMN stg_cargo_events.event_at IS 'Time of the event, Beijing time';
COMMENT ON COLUMN stg_cargo_events.export_date IS 'Export date of the delivery the event came in';
COMMENT ON COLUMN stg_cargo_events.source_file IS 'Data file the event came from';
COMMENT ON COLUMN stg_cargo_events.line_no IS 'Line in that file';
