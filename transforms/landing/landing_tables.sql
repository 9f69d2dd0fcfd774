-- Rows as loaded from the deliveries: one table per file kind, typed, one row per distinct row (row_hash),
-- with the lineage of its first sighting. Every sighting of every row is kept in row_sightings, so a
-- row stays loaded while any delivery still carries it, whatever order deliveries are (re)run in.
/*
publish: [quarantine, file_accounting]  # copied whole into every published warehouse
*/

CREATE TABLE IF NOT EXISTS state_format (version INTEGER);
COMMENT ON TABLE state_format IS 'Version of the layout of this state file; a pipeline that keeps rows differently refuses an older one (rebuild it from the inbox with python -m clearance.recover).';
COMMENT ON COLUMN state_format.version IS 'Layout version';

CREATE TABLE IF NOT EXISTS row_sightings (
    file_kind VARCHAR, row_hash BLOB, export_date DATE, source_file VARCHAR, line_no BIGINT
);
COMMENT ON TABLE row_sightings IS 'Every time a valid row was delivered: its delivery, file and line (exact re-sends included). The first sighting (export date, file, line) is the loaded copy; the others are duplicates.';
COMMENT ON COLUMN row_sightings.file_kind IS 'Kind of file';
COMMENT ON COLUMN row_sightings.row_hash IS 'Identity of the row (as in land_<kind>.row_hash)';
COMMENT ON COLUMN row_sightings.export_date IS 'Export date of the delivery that carried it';
COMMENT ON COLUMN row_sightings.source_file IS 'Data file that carried it';
COMMENT ON COLUMN row_sightings.line_no IS 'Line in that file (the header is line 1)';

CREATE TABLE IF NOT EXISTS land_dec_head (
    entry_id VARCHAR, update_time TIMESTAMP, i_e_flag VARCHAR, custom_master VARCHAR, i_e_port VARCHAR,
    port_code VARCHAR, d_date TIMESTAMP, decl_step VARCHAR, advance VARCHAR, shipside VARCHAR, rbi VARCHAR,
    trade_mode VARCHAR, traf_mode VARCHAR, vessel_id VARCHAR, voyage_no VARCHAR, bill_no VARCHAR,
    owner_code VARCHAR, owner_name VARCHAR, main_code_ts VARCHAR, gross_wt DOUBLE,
    export_date DATE, source_file VARCHAR, line_no BIGINT, row_hash BLOB
);
COMMENT ON TABLE land_dec_head IS 'Customs declaration header versions (报关单表头) as loaded from dec_head files; times are Beijing local time.';
COMMENT ON COLUMN land_dec_head.entry_id IS 'ENTRY_ID: 18-digit declaration number (office, year, 1 import / 0 export, sequence)';
COMMENT ON COLUMN land_dec_head.update_time IS 'UPDATE_TIME: when this version was written; the latest version wins';
COMMENT ON COLUMN land_dec_head.i_e_flag IS 'I_E_FLAG: I import, E export';
COMMENT ON COLUMN land_dec_head.custom_master IS 'CUSTOM_MASTER: declaring customs office code (申报地海关)';
COMMENT ON COLUMN land_dec_head.i_e_port IS 'I_E_PORT: customs office of entry/exit (进出境关别)';
COMMENT ON COLUMN land_dec_head.port_code IS 'PORT_CODE: port of entry/exit';
COMMENT ON COLUMN land_dec_head.d_date IS 'D_DATE: declaration submission time (申报时间)';
COMMENT ON COLUMN land_dec_head.decl_step IS 'DECL_STEP: empty one-time, 1 two-step summary, 2 two-step complete declaration';
COMMENT ON COLUMN land_dec_head.advance IS 'ADVANCE: Y declared before arrival (提前申报)';
COMMENT ON COLUMN land_dec_head.shipside IS 'SHIPSIDE: Y ship-side pickup or direct loading (船边直提/抵港直装)';
COMMENT ON COLUMN land_dec_head.rbi IS 'RBI: Y release before inspection (先放后检)';
COMMENT ON COLUMN land_dec_head.trade_mode IS 'TRADE_MODE: 4-digit supervision mode (监管方式)';
COMMENT ON COLUMN land_dec_head.traf_mode IS 'TRAF_MODE: 2 waterway, 3 rail, 4 road, 5 air';
COMMENT ON COLUMN land_dec_head.vessel_id IS 'VESSEL_ID: IMO number of the vessel (waterway only)';
COMMENT ON COLUMN land_dec_head.voyage_no IS 'VOYAGE_NO: voyage number (empty by rail, road, air)';
COMMENT ON COLUMN land_dec_head.bill_no IS 'BILL_NO: bill of lading as keyed in (not normalised)';
COMMENT ON COLUMN land_dec_head.owner_code IS 'OWNER_CODE: unified social credit code of the consignee/consignor';
COMMENT ON COLUMN land_dec_head.owner_name IS 'OWNER_NAME: consignee/consignor name';
COMMENT ON COLUMN land_dec_head.main_code_ts IS 'MAIN_CODE_TS: 10-digit HS code of the first goods item';
COMMENT ON COLUMN land_dec_head.gross_wt IS 'GROSS_WT: gross weight, kg';
COMMENT ON COLUMN land_dec_head.export_date IS 'Export date of the first delivery that carried the row (Beijing date of transmission)';
COMMENT ON COLUMN land_dec_head.source_file IS 'Data file of that first sighting';
COMMENT ON COLUMN land_dec_head.line_no IS 'Line of the row in its file (the header is line 1)';
COMMENT ON COLUMN land_dec_head.row_hash IS 'SHA-256 (first 128 bits) of the contract values by column name, each with its length: identifies an exact re-send';

CREATE TABLE IF NOT EXISTS land_dec_result (
    entry_id VARCHAR, channel VARCHAR, notice_date TIMESTAMP, custom_master VARCHAR, note VARCHAR,
    export_date DATE, source_file VARCHAR, line_no BIGINT, row_hash BLOB
);
COMMENT ON TABLE land_dec_result IS 'Declaration status receipts (回执) as loaded from dec_result files; times are Beijing local time.';
COMMENT ON COLUMN land_dec_result.entry_id IS 'ENTRY_ID the receipt is about';
COMMENT ON COLUMN land_dec_result.channel IS 'CHANNEL: receipt code (L accepted, C inspection, P/I/K/B released, R cleared, E rejected, A/D deleted, H/M hold, T tax, 7 submitted)';
COMMENT ON COLUMN land_dec_result.notice_date IS 'NOTICE_DATE: time of the notice';
COMMENT ON COLUMN land_dec_result.custom_master IS 'CUSTOM_MASTER: office that issued the notice';
COMMENT ON COLUMN land_dec_result.note IS 'NOTE: free text of the notice';
COMMENT ON COLUMN land_dec_result.export_date IS 'Export date of the first delivery that carried the row';
COMMENT ON COLUMN land_dec_result.source_file IS 'Data file of that first sighting';
COMMENT ON COLUMN land_dec_result.line_no IS 'Line of the row in its file (the header is line 1)';
COMMENT ON COLUMN land_dec_result.row_hash IS 'SHA-256 (first 128 bits) of the contract values by column name, each with its length: identifies an exact re-send';

CREATE TABLE IF NOT EXISTS land_manifest (
    vessel_id VARCHAR, voyage_no VARCHAR, port_code VARCHAR, bill_no VARCHAR, container_no VARCHAR,
    gross_wt DOUBLE, update_time TIMESTAMP,
    export_date DATE, source_file VARCHAR, line_no BIGINT, row_hash BLOB
);
COMMENT ON TABLE land_manifest IS 'Cargo manifest line versions (舱单) as loaded from manifest files.';
COMMENT ON COLUMN land_manifest.vessel_id IS 'VESSEL_ID: IMO number (empty by rail, road, air)';
COMMENT ON COLUMN land_manifest.voyage_no IS 'VOYAGE_NO: voyage number (empty by rail, road, air)';
COMMENT ON COLUMN land_manifest.port_code IS 'PORT_CODE: port of the call';
COMMENT ON COLUMN land_manifest.bill_no IS 'BILL_NO: bill of lading as keyed in (not normalised)';
COMMENT ON COLUMN land_manifest.container_no IS 'CONTAINER_NO: ISO 6346 container number, empty for bulk cargo';
COMMENT ON COLUMN land_manifest.gross_wt IS 'GROSS_WT: gross weight, kg';
COMMENT ON COLUMN land_manifest.update_time IS 'UPDATE_TIME: when this version was written; the latest version wins';
COMMENT ON COLUMN land_manifest.export_date IS 'Export date of the first delivery that carried the row';
COMMENT ON COLUMN land_manifest.source_file IS 'Data file of that first sighting';
COMMENT ON COLUMN land_manifest.line_no IS 'Line of the row in its file (the header is line 1)';
COMMENT ON COLUMN land_manifest.row_hash IS 'SHA-256 (first 128 bits) of the contract values by column name, each with its length: identifies an exact re-send';

CREATE TABLE IF NOT EXISTS land_vessel_event (
    vessel_id VARCHAR, voyage_no VARCHAR, port_code VARCHAR, event_code VARCHAR, event_time TIMESTAMP, source VARCHAR,
    export_date DATE, source_file VARCHAR, line_no BIGINT, row_hash BLOB
);
COMMENT ON TABLE land_vessel_event IS 'Vessel call events from the port community system, as loaded from vessel_event files.';
COMMENT ON COLUMN land_vessel_event.vessel_id IS 'VESSEL_ID: IMO number';
COMMENT ON COLUMN land_vessel_event.voyage_no IS 'VOYAGE_NO: voyage number';
COMMENT ON COLUMN land_vessel_event.port_code IS 'PORT_CODE: port of the call';
COMMENT ON COLUMN land_vessel_event.event_code IS 'EVENT_CODE: ATA_ANCH arrived at anchorage, ATA_BERTH berthed, ATD_BERTH left the berth';
COMMENT ON COLUMN land_vessel_event.event_time IS 'EVENT_TIME: Beijing local time of the event';
COMMENT ON COLUMN land_vessel_event.source IS 'SOURCE: system that reported the event';
COMMENT ON COLUMN land_vessel_event.export_date IS 'Export date of the first delivery that carried the row';
COMMENT ON COLUMN land_vessel_event.source_file IS 'Data file of that first sighting';
COMMENT ON COLUMN land_vessel_event.line_no IS 'Line of the row in its file (the header is line 1)';
COMMENT ON COLUMN land_vessel_event.row_hash IS 'SHA-256 (first 128 bits) of the contract values by column name, each with its length: identifies an exact re-send';

CREATE TABLE IF NOT EXISTS land_cargo_event (
    vessel_id VARCHAR, voyage_no VARCHAR, port_code VARCHAR, bill_no VARCHAR, container_no VARCHAR,
    event_code VARCHAR, event_time TIMESTAMP,
    export_date DATE, source_file VARCHAR, line_no BIGINT, row_hash BLOB
);
COMMENT ON TABLE land_cargo_event IS 'Cargo and container events (port community system, inspection sites), as loaded from cargo_event files.';
COMMENT ON COLUMN land_cargo_event.vessel_id IS 'VESSEL_ID: IMO number (empty by rail, road, air)';
COMMENT ON COLUMN land_cargo_event.voyage_no IS 'VOYAGE_NO: voyage number (empty by rail, road, air)';
COMMENT ON COLUMN land_cargo_event.port_code IS 'PORT_CODE: port of the event';
COMMENT ON COLUMN land_cargo_event.bill_no IS 'BILL_NO: bill of lading as keyed in (not normalised)';
COMMENT ON COLUMN land_cargo_event.container_no IS 'CONTAINER_NO: container of a container-level event, empty for bill-level and bulk events';
COMMENT ON COLUMN land_cargo_event.event_code IS 'EVENT_CODE: ARRIVAL_REPORT, DISC_DONE, TALLY, INSP_DONE, WEIGHT_DONE, CERT_ISSUED, GATE_OUT, LOADED';
COMMENT ON COLUMN land_cargo_event.event_time IS 'EVENT_TIME: Beijing local time of the event';
COMMENT ON COLUMN land_cargo_event.export_date IS 'Export date of the first delivery that carried the row';
COMMENT ON COLUMN land_cargo_event.source_file IS 'Data file of that first sighting';
COMMENT ON COLUMN land_cargo_event.line_no IS 'Line of the row in its file (the header is line 1)';
COMMENT ON COLUMN land_cargo_event.row_hash IS 'SHA-256 (first 128 bits) of the contract values by column name, each with its length: identifies an exact re-send';

CREATE TABLE IF NOT EXISTS quarantine (
    export_date DATE, source_file VARCHAR, file_kind VARCHAR, line_no BIGINT, raw_line VARCHAR,
    reason_code VARCHAR, reason_message VARCHAR, row_hash BLOB
);
COMMENT ON TABLE quarantine IS 'Rows that broke the export contract, kept as they were received with the reason; never deleted.';
COMMENT ON COLUMN quarantine.export_date IS 'Export date of the delivery the row came in';
COMMENT ON COLUMN quarantine.source_file IS 'Data file the row came from';
COMMENT ON COLUMN quarantine.file_kind IS 'Kind of file: dec_head, dec_result, manifest, vessel_event, cargo_event';
COMMENT ON COLUMN quarantine.line_no IS 'Line of the row in its file (the header is line 1)';
COMMENT ON COLUMN quarantine.raw_line IS 'The row exactly as the file held it';
COMMENT ON COLUMN quarantine.reason_code IS 'Why it was quarantined (the reason_code of the failed expectation in expectations/, or wrong_field_count)';
COMMENT ON COLUMN quarantine.reason_message IS 'Readable reason, with the offending value';
COMMENT ON COLUMN quarantine.row_hash IS 'Identity of the row as for loaded rows, null for a row with the wrong number of fields';

CREATE TABLE IF NOT EXISTS file_accounting (
    export_date DATE, source_file VARCHAR, file_kind VARCHAR, rows_in_manifest BIGINT, rows_read BIGINT,
    rows_loaded BIGINT, rows_duplicate BIGINT, rows_quarantined BIGINT, extra_columns VARCHAR[]
);
COMMENT ON TABLE file_accounting IS 'Every data file of every delivery: rows read = loaded + duplicate + quarantined, checked on every run (loaded and duplicate restated when an earlier delivery arrives or is rerun).';
COMMENT ON COLUMN file_accounting.export_date IS 'Export date of the delivery';
COMMENT ON COLUMN file_accounting.source_file IS 'Data file name';
COMMENT ON COLUMN file_accounting.file_kind IS 'Kind of file';
COMMENT ON COLUMN file_accounting.rows_in_manifest IS 'Data rows MANIFEST.json lists for the file';
COMMENT ON COLUMN file_accounting.rows_read IS 'Data rows read from the file (header excluded)';
COMMENT ON COLUMN file_accounting.rows_loaded IS 'Rows loaded into the land_ table of the kind (the first sighting of each distinct row)';
COMMENT ON COLUMN file_accounting.rows_duplicate IS 'Rows recognised as exact re-sends of a row loaded from an earlier file, line or delivery';
COMMENT ON COLUMN file_accounting.rows_quarantined IS 'Rows put in quarantine';
COMMENT ON COLUMN file_accounting.extra_columns IS 'Columns the file had beyond the contract (ignored)';
