-- The current version of each manifest line: the latest UPDATE_TIME wins (quirk 3).
-- incremental: bill_no
SELECT *
FROM stg_manifest_versions
SEMI JOIN affected_bills USING (bill_no)
WHERE bill_no IS NOT NULL  -- a line without a bill belongs to no shipment
QUALIFY row_number() OVER (
    PARTITION BY port_code, bill_no, coalesce(container_no, '')
    ORDER BY version_written_at DESC, export_date DESC, source_file DESC, line_no DESC
) = 1;
COMMENT ON TABLE core_manifest_lines IS 'Current manifest lines: one per bill and container (one per bill for bulk cargo), latest version.';
COMMENT ON COLUMN core_manifest_lines.vessel_id IS 'IMO number of the vessel';
COMMENT ON COLUMN core_manifest_lines.voyage_no IS 'Voyage, train or flight number';
COMMENT ON COLUMN core_manifest_lines.port_code IS 'Port of the call';
COMMENT ON COLUMN core_manifest_lines.bill_no IS 'Bill of lading, normalised';
COMMENT ON COLUMN core_manifest_lines.container_no IS 'Container number, null for bulk cargo';
COMMENT ON COLUMN core_manifest_lines.gross_weight_kg IS 'Gross weight, kg';
COMMENT ON COLUMN core_manifest_lines.version_written_at IS 'UPDATE_TIME of the version kept';
COMMENT ON COLUMN core_manifest_lines.export_date IS 'Export date of the delivery the version came in';
COMMENT ON COLUMN core_manifest_lines.source_file IS 'Data file the version came from';
COMMENT ON COLUMN core_manifest_lines.line_no IS 'Line in that file';
