-- One row per declaration version, typed and named for the customs domain.
/*
materialized: incremental
unique_key: [export_date]
touched_keys: affected_export_dates
tests:
  unique: [[export_date, source_file, line_no]]
  not_null: [entry_id, version_written_at, direction, declaring_office_code, port_code, submitted_at, transport_mode_code]
  relationships:
    - {column: transport_mode_code, to: ref_transport_modes.transport_mode_code}
*/
SELECT
    entry_id,
    update_time AS version_written_at,
    CASE i_e_flag WHEN 'I' THEN 'import' WHEN 'E' THEN 'export' END AS direction,
    custom_master AS declaring_office_code,
    i_e_port AS entry_exit_office_code,
    port_code,
    d_date AS submitted_at,
    nullif(decl_step, '') AS decl_step,
    coalesce(advance = 'Y', false) AS is_advance_declaration,
    coalesce(shipside = 'Y', false) AS is_ship_side,
    coalesce(rbi = 'Y', false) AS is_release_before_inspection,
    trade_mode,
    traf_mode AS transport_mode_code,
    vessel_id,
    voyage_no,
    bill_no AS bill_no_as_keyed,
    normalise_bill_no(bill_no) AS bill_no,
    owner_code,
    owner_name,
    main_code_ts AS hs_code,
    gross_wt AS gross_weight_kg,
    export_date,
    source_file,
    line_no
FROM land_dec_head
SEMI JOIN affected_export_dates USING (export_date);
COMMENT ON TABLE stg_declaration_versions IS 'Declaration header versions, typed; a declaration is re-sent whenever it changes (two-step declarations have a version 1 and 2).';
COMMENT ON COLUMN stg_declaration_versions.entry_id IS 'Declaration number (ENTRY_ID)';
COMMENT ON COLUMN stg_declaration_versions.version_written_at IS 'UPDATE_TIME of this version, Beijing time';
COMMENT ON COLUMN stg_declaration_versions.direction IS 'import or export';
COMMENT ON COLUMN stg_declaration_versions.declaring_office_code IS 'Declaring customs office (CUSTOM_MASTER)';
COMMENT ON COLUMN stg_declaration_versions.entry_exit_office_code IS 'Customs office of entry/exit (I_E_PORT)';
COMMENT ON COLUMN stg_declaration_versions.port_code IS 'Port of entry/exit';
COMMENT ON COLUMN stg_declaration_versions.submitted_at IS 'D_DATE of this version, Beijing time';
COMMENT ON COLUMN stg_declaration_versions.decl_step IS 'null one-time, 1 two-step summary, 2 two-step complete declaration';
COMMENT ON COLUMN stg_declaration_versions.is_advance_declaration IS 'ADVANCE = Y: declared before arrival';
COMMENT ON COLUMN stg_declaration_versions.is_ship_side IS 'SHIPSIDE = Y: ship-side pickup / direct loading';
COMMENT ON COLUMN stg_declaration_versions.is_release_before_inspection IS 'RBI = Y: release before inspection';
COMMENT ON COLUMN stg_declaration_versions.trade_mode IS 'Supervision mode code (TRADE_MODE)';
COMMENT ON COLUMN stg_declaration_versions.transport_mode_code IS 'TRAF_MODE: 2 waterway, 3 rail, 4 road, 5 air';
COMMENT ON COLUMN stg_declaration_versions.vessel_id IS 'IMO number of the vessel';
COMMENT ON COLUMN stg_declaration_versions.voyage_no IS 'Voyage number (waterway; null by rail, road, air)';
COMMENT ON COLUMN stg_declaration_versions.bill_no_as_keyed IS 'Bill of lading as keyed in';
COMMENT ON COLUMN stg_declaration_versions.bill_no IS 'Bill of lading normalised (upper case, blanks and - removed): the key to cargo and manifest';
COMMENT ON COLUMN stg_declaration_versions.owner_code IS 'Unified social credit code of the consignee/consignor';
COMMENT ON COLUMN stg_declaration_versions.owner_name IS 'Consignee/consignor name';
COMMENT ON COLUMN stg_declaration_versions.hs_code IS 'HS code of the first goods item';
COMMENT ON COLUMN stg_declaration_versions.gross_weight_kg IS 'Gross weight, kg';
COMMENT ON COLUMN stg_declaration_versions.export_date IS 'Export date of the delivery the version came in';
COMMENT ON COLUMN stg_declaration_versions.source_file IS 'Data file the version came from';
COMMENT ON COLUMN stg_declaration_versions.line_no IS 'Line in that file';
