-- The current manifest of each bill: the lines of its latest version (quirk 3). A manifest re-send for a
-- bill is the bill's whole current container list, so a corrected container number replaces the old one.
/*
materialized: incremental
unique_key: [bill_no]
touched_keys: affected_bills
tests:
  unique: [[bill_no, container_no]]
  not_null: [bill_no, version_written_at]
*/
WITH versions AS (
    SELECT *
    FROM stg_manifest_versions
    SEMI JOIN affected_bills USING (bill_no)
    WHERE bill_no IS NOT NULL  -- a line without a bill belongs to no shipment
),
latest_version AS (
    SELECT * FROM versions
    QUALIFY version_written_at = max(version_written_at) OVER (PARTITION BY bill_no)
)
-- a container sent twice in one version (say in two deliveries) is one line: the last one received
SELECT *
FROM latest_version
QUALIFY row_number() OVER (
    PARTITION BY bill_no, coalesce(container_no, '')
    ORDER BY export_date DESC, source_file DESC, line_no DESC
) = 1;
COMMENT ON TABLE core_manifest_lines IS 'Current manifest lines: the lines of each bill''s latest manifest version (UPDATE_TIME), one per container (one per bill for bulk cargo).';
COMMENT ON COLUMN core_manifest_lines.vessel_id IS 'IMO number of the vessel (null by rail, road, air)';
COMMENT ON COLUMN core_manifest_lines.voyage_no IS 'Voyage number (null by rail, road, air)';
COMMENT ON COLUMN core_manifest_lines.port_code IS 'Port of the call';
COMMENT ON COLUMN core_manifest_lines.bill_no IS 'Bill of lading, normalised';
COMMENT ON COLUMN core_manifest_lines.container_no IS 'Container number, null for bulk cargo';
COMMENT ON COLUMN core_manifest_lines.gross_weight_kg IS 'Gross weight, kg';
COMMENT ON COLUMN core_manifest_lines.version_written_at IS 'UPDATE_TIME of the bill''s latest manifest version';
COMMENT ON COLUMN core_manifest_lines.export_date IS 'Export date of the delivery the line came in';
COMMENT ON COLUMN core_manifest_lines.source_file IS 'Data file the line came from';
COMMENT ON COLUMN core_manifest_lines.line_no IS 'Line in that file';
