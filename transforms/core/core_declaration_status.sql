-- The receipt milestones of each declaration (first of each kind; holds counted).
/*
materialized: incremental
unique_key: [entry_id]
touched_keys: affected_entries
tests:
  unique: [entry_id]
  not_null: [entry_id]
*/
SELECT
    entry_id,
    min(notified_at) FILTER (WHERE receipt_meaning = 'accepted') AS accepted_at,
    min(notified_at) FILTER (WHERE receipt_meaning = 'inspection_ordered') AS inspection_ordered_at,
    min(notified_at) FILTER (WHERE receipt_meaning = 'tax_assessed') AS tax_assessed_at,
    min(notified_at) FILTER (WHERE receipt_meaning = 'released') AS released_at,
    arg_min(channel, notified_at) FILTER (WHERE receipt_meaning = 'released') AS release_channel,
    min(notified_at) FILTER (WHERE receipt_meaning = 'cleared') AS cleared_at,
    min(notified_at) FILTER (WHERE receipt_meaning = 'rejected') AS rejected_at,
    min(notified_at) FILTER (WHERE receipt_meaning = 'cancelled') AS cancelled_at,
    count(*) FILTER (WHERE receipt_meaning = 'hold_started') AS hold_count,
    max(notified_at) FILTER (WHERE receipt_meaning = 'hold_started') AS last_hold_started_at,
    max(notified_at) FILTER (WHERE receipt_meaning = 'hold_ended') AS last_hold_ended_at,
    count(*) AS receipt_count
FROM stg_declaration_receipts
SEMI JOIN affected_entries USING (entry_id)
GROUP BY entry_id;
COMMENT ON TABLE core_declaration_status IS 'Receipt milestones per declaration, from the status receipts (a receipt may arrive before its header).';
COMMENT ON COLUMN core_declaration_status.entry_id IS 'Declaration number';
COMMENT ON COLUMN core_declaration_status.accepted_at IS 'Milestone accepted: first L receipt';
COMMENT ON COLUMN core_declaration_status.inspection_ordered_at IS 'Milestone inspection_ordered: first C receipt';
COMMENT ON COLUMN core_declaration_status.tax_assessed_at IS 'First T receipt (duties and taxes payable)';
COMMENT ON COLUMN core_declaration_status.released_at IS 'Milestone released: first of P, I, K, B';
COMMENT ON COLUMN core_declaration_status.release_channel IS 'Which release receipt came first: P, I, K or B';
COMMENT ON COLUMN core_declaration_status.cleared_at IS 'Milestone cleared: first R receipt';
COMMENT ON COLUMN core_declaration_status.rejected_at IS 'First E receipt: rejected, the declaration ends and is not counted';
COMMENT ON COLUMN core_declaration_status.cancelled_at IS 'First A or D receipt: deleted, the declaration is not counted';
COMMENT ON COLUMN core_declaration_status.hold_count IS 'Number of H (suspended) receipts';
COMMENT ON COLUMN core_declaration_status.last_hold_started_at IS 'Latest H receipt';
COMMENT ON COLUMN core_declaration_status.last_hold_ended_at IS 'Latest M (re-review) receipt';
COMMENT ON COLUMN core_declaration_status.receipt_count IS 'Receipts received for the declaration';
