-- Every version of every manifest line, with the bill number normalised.
/*
materialized: incremental
unique_key: [export_date]
touched_keys: affected_export_dates
tests:
  unique: [[export_date, source_file, line_no]]
  not_null: [port_code, bill_no, version_written_at]
*/
SELECT
    vessel_id,
    voyage_no,
    port_code,
    normalise_bill_no(bill_no) AS bill_no,
    nullif(container_no, '') AS container_no,
    gross_wt AS gross_weight_kg,
    update_time AS version_written_at,
    export_date,
    source_file,
    line_no
FROM land_manifest
SEMI JOIN affected_export_dates USING (export_date);
COMMENT ON TABLE stg_manifest_versions IS 'Manifest line versions as loaded, bill number normalised (a line is re-sent whenever it changes).';
COMMENT ON COLUMN stg_manifest_versions.vessel_id IS 'IMO number of the vessel';
COMMENT ON COLUMN stg_manifest_versions.voyage_no IS 'Voyage number (waterway; null by rail, road, air)';
COMMENT ON COLUMN stg_manifest_versions.port_code IS 'Port of the call';
COMMENT ON COLUMN stg_manifest_versions.bill_no IS 'Bill of lading, normalised';
COMMENT ON COLUMN stg_manifest_versions.container_no IS 'Container number, null for bulk cargo';
COMMENT ON COLUMN stg_manifest_versions.gross_weight_kg IS 'Gross weight, kg';
COMMENT ON COLUMN stg_manifest_versions.version_written_at IS 'UPDATE_TIME of the version';
COMMENT ON COLUMN stg_manifest_versions.export_date IS 'Export date of the delivery the version came in';
COMMENT ON COLUMN stg_manifest_versions.source_file IS 'Data file the version came from';
COMMENT ON COLUMN stg_manifest_versions.line_no IS 'Line in that file';
