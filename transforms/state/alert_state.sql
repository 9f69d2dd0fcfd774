-- Alert state: kept from run to run (never rebuilt by the models), so that reruns and backfills
-- never send the same alert twice and an alert that could not be sent goes out with the next run.
/*
publish: [alert_log, alert_digests]  # copied whole into every published warehouse
*/

CREATE TABLE IF NOT EXISTS alert_log (
    alert_key VARCHAR, entry_id VARCHAR, bill_no VARCHAR, stage VARCHAR, stage_since TIMESTAMP, level VARCHAR,
    detected_for_date DATE, hours_in_stage DOUBLE, threshold_hours DOUBLE, office_code VARCHAR,
    port_code VARCHAR, vessel_id VARCHAR, voyage_no VARCHAR, owner_code VARCHAR, owner_name VARCHAR,
    status VARCHAR, digest_id VARCHAR
);
COMMENT ON TABLE alert_log IS 'One row per stalled-shipment alert (a shipment, its stage, and the level stalled or escalated): pending until a digest carrying it is sent.';
COMMENT ON COLUMN alert_log.alert_key IS 'The declaration number, or bill:<bill> for a bill not yet declared';
COMMENT ON COLUMN alert_log.entry_id IS 'Declaration number';
COMMENT ON COLUMN alert_log.bill_no IS 'Bill of lading, normalised';
COMMENT ON COLUMN alert_log.stage IS 'Stage the shipment stalled in';
COMMENT ON COLUMN alert_log.stage_since IS 'When it entered the stage';
COMMENT ON COLUMN alert_log.level IS 'stalled (past the threshold) or escalated (past twice the threshold)';
COMMENT ON COLUMN alert_log.detected_for_date IS 'Business date of the run that raised the alert';
COMMENT ON COLUMN alert_log.hours_in_stage IS 'Hours in the stage at that cut-off';
COMMENT ON COLUMN alert_log.threshold_hours IS 'Threshold of the stage for the office';
COMMENT ON COLUMN alert_log.office_code IS 'Office alerted';
COMMENT ON COLUMN alert_log.port_code IS 'Port';
COMMENT ON COLUMN alert_log.vessel_id IS 'IMO number of the vessel';
COMMENT ON COLUMN alert_log.voyage_no IS 'Voyage number (waterway; null by rail, road, air)';
COMMENT ON COLUMN alert_log.owner_code IS 'Unified social credit code of the consignee/consignor';
COMMENT ON COLUMN alert_log.owner_name IS 'Consignee/consignor name';
COMMENT ON COLUMN alert_log.status IS 'pending (not yet sent), sent, ended_unsent (the stall ended before a digest could carry it: the next digest tells it in a section of its own), sent_after_end (so told), or superseded (it passed twice its threshold before it was sent: the escalation is sent instead)';
COMMENT ON COLUMN alert_log.digest_id IS 'Digest that carried the alert (alert_digests)';

CREATE TABLE IF NOT EXISTS alert_digests (
    digest_id VARCHAR, business_date DATE, office_code VARCHAR, recipients VARCHAR[], subject VARCHAR,
    new_stalls INTEGER, escalations INTEGER, status VARCHAR, error VARCHAR, attempted_at TIMESTAMP
);
COMMENT ON TABLE alert_digests IS 'Every attempt to send an office its digest of stalled shipments, sent or not.';
COMMENT ON COLUMN alert_digests.digest_id IS 'Identifier of the digest, also in its Message-ID';
COMMENT ON COLUMN alert_digests.business_date IS 'Business date of the run';
COMMENT ON COLUMN alert_digests.office_code IS 'Office the digest is for';
COMMENT ON COLUMN alert_digests.recipients IS 'Addresses it went to';
COMMENT ON COLUMN alert_digests.subject IS 'Subject line';
COMMENT ON COLUMN alert_digests.new_stalls IS 'Newly stalled shipments listed';
COMMENT ON COLUMN alert_digests.escalations IS 'Shipments listed because they passed twice their threshold';
COMMENT ON COLUMN alert_digests.status IS 'sent, or unsent (its alerts stay pending and go out with the next run)';
COMMENT ON COLUMN alert_digests.error IS 'Why it was not sent';
COMMENT ON COLUMN alert_digests.attempted_at IS 'When the pipeline tried to send it (wall clock, Beijing time)';
