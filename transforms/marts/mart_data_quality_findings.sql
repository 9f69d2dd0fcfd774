-- What an analyst should know about the data behind the figures: not errors that stop the run,
-- but things that are loaded and need a look (new codes, impossible intervals, loose ends).
/*
materialized: incremental
unique_key: [entry_id]
touched_keys: affected_entries
publish: table
export: {month: "'all'"}
tests:
  unique: [[finding, entry_id, detail]]
  not_null: [finding, entry_id]
  accepted_values:
    finding: [unknown_office_code, unknown_port_code, unexpected_negative_segment, receipts_without_declaration, conflicting_versions]
*/
WITH shipments AS (
    SELECT * FROM core_shipments SEMI JOIN affected_entries USING (entry_id)
)
SELECT 'unknown_office_code' AS finding, entry_id, declaring_office_code AS detail
FROM shipments WHERE NOT is_known_office
UNION ALL
SELECT 'unknown_port_code', entry_id, port_code FROM shipments WHERE NOT is_known_port
UNION ALL
SELECT 'unexpected_negative_segment', entry_id, unnest(unexpected_negative_segments) FROM shipments
UNION ALL
SELECT 'receipts_without_declaration', s.entry_id, s.receipt_count::VARCHAR || ' receipt(s), no header yet'
FROM core_declaration_status AS s
SEMI JOIN affected_entries USING (entry_id)
ANTI JOIN core_declarations USING (entry_id)
UNION ALL
-- two different header versions with the same UPDATE_TIME from different files or deliveries (within
-- one file they are quarantined): the one loaded last is shown, and this says so
SELECT 'conflicting_versions', entry_id, strftime(version_written_at, '%Y-%m-%d %H:%M:%S') || ' in '
       || string_agg(DISTINCT source_file, ', ' ORDER BY source_file)
FROM stg_declaration_versions
SEMI JOIN affected_entries USING (entry_id)
GROUP BY entry_id, version_written_at
HAVING count(*) > 1;
COMMENT ON TABLE mart_data_quality_findings IS 'Data-quality findings on loaded data: office or port codes missing from the dictionary, negative segments the contract does not allow, receipts whose declaration header has not arrived, header versions that conflict across deliveries.';
COMMENT ON COLUMN mart_data_quality_findings.finding IS 'unknown_office_code, unknown_port_code, unexpected_negative_segment, receipts_without_declaration or conflicting_versions';
COMMENT ON COLUMN mart_data_quality_findings.entry_id IS 'Declaration concerned';
COMMENT ON COLUMN mart_data_quality_findings.detail IS 'The code, the segment, or what is missing';
