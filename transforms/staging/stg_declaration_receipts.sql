-- Status receipts with the milestone each channel stands for (single-window-exports.md, dec_result).
/*
materialized: incremental
unique_key: [export_date]
touched_keys: affected_export_dates
tests:
  unique: [[export_date, source_file, line_no]]
  not_null: [entry_id, channel, notified_at, receipt_meaning]
*/
SELECT
    entry_id,
    channel,
    notice_date AS notified_at,
    CASE
        WHEN channel = 'L' THEN 'accepted'
        WHEN channel = 'C' THEN 'inspection_ordered'
        WHEN channel = 'T' THEN 'tax_assessed'
        WHEN channel = 'H' THEN 'hold_started'
        WHEN channel = 'M' THEN 'hold_ended'
        WHEN channel IN ('P', 'I', 'K', 'B') THEN 'released'
        WHEN channel = 'R' THEN 'cleared'
        WHEN channel = 'E' THEN 'rejected'
        WHEN channel IN ('A', 'D') THEN 'cancelled'
        WHEN channel = '7' THEN 'submitted'
    END AS receipt_meaning,
    custom_master AS office_code,
    note,
    export_date,
    source_file,
    line_no
FROM land_dec_result
SEMI JOIN affected_export_dates USING (export_date);
COMMENT ON TABLE stg_declaration_receipts IS 'Declaration status receipts with their meaning for the clearance clock.';
COMMENT ON COLUMN stg_declaration_receipts.entry_id IS 'Declaration number';
COMMENT ON COLUMN stg_declaration_receipts.channel IS 'Receipt code (CHANNEL)';
COMMENT ON COLUMN stg_declaration_receipts.notified_at IS 'Time of the notice, Beijing time';
COMMENT ON COLUMN stg_declaration_receipts.receipt_meaning IS 'accepted, inspection_ordered, tax_assessed, hold_started, hold_ended, released, cleared, rejected, cancelled or submitted';
COMMENT ON COLUMN stg_declaration_receipts.office_code IS 'Office that issued the notice';
COMMENT ON COLUMN stg_declaration_receipts.note IS 'Free text of the notice';
COMMENT ON COLUMN stg_declaration_receipts.export_date IS 'Export date of the delivery the receipt came in';
COMMENT ON COLUMN stg_declaration_receipts.source_file IS 'Data file the receipt came from';
COMMENT ON COLUMN stg_declaration_receipts.line_no IS 'Line in that file';
