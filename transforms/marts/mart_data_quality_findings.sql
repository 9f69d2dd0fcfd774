-- What an analyst should know about the data behind the figures: not errors that stop the run,
-- but things that are loaded and need a look (new codes, impossible intervals, loose ends).
CREATE OR REPLACE TABLE mart_data_quality_findings AS
SELECT 'unknown_office_code' AS finding, entry_id, declaring_office_code AS detail
FROM core_shipments WHERE NOT is_known_office
UNION ALL
SELECT 'unknown_port_code', entry_id, port_code FROM core_shipments WHERE NOT is_known_port
UNION ALL
SELECT 'unexpected_negative_segment', entry_id, unnest(unexpected_negative_segments) FROM core_shipments
UNION ALL
SELECT 'receipts_without_declaration', s.entry_id, s.receipt_count::VARCHAR || ' receipt(s), no header yet'
FROM core_declaration_status AS s ANTI JOIN core_declarations USING (entry_id);
COMMENT ON TABLE mart_data_quality_findings IS 'Data-quality findings on loaded data: office or port codes missing from the dictionary, negative segments the contract does not allow, receipts whose declaration header has not arrived.';
COMMENT ON COLUMN mart_data_quality_findings.finding IS 'unknown_office_code, unknown_port_code, unexpected_negative_segment or receipts_without_declaration';
COMMENT ON COLUMN mart_data_quality_findings.entry_id IS 'Declaration concerned';
COMMENT ON COLUMN mart_data_quality_findings.detail IS 'The code, the segment, or what is missing';
