-- Reference data, read from transforms/seeds/ on every run.
/*
publish: table
tests:
  unique: [[stage, office_code]]
*/
SELECT stage, nullif(office_code, '') AS office_code, threshold_hours::DOUBLE AS threshold_hours
FROM read_csv(getvariable('seeds_dir') || '/stall_thresholds.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_stall_thresholds IS 'How long a shipment may stay in an open stage before it is stalled (transforms/seeds/stall_thresholds.csv); a row with an office_code overrides the default for that office.';
COMMENT ON COLUMN ref_stall_thresholds.stage IS 'Open stage (mart_work_in_progress.open_stage, arrived_not_berthed, arrived_not_declared)';
COMMENT ON COLUMN ref_stall_thresholds.office_code IS 'Office the threshold applies to; empty for the default';
COMMENT ON COLUMN ref_stall_thresholds.threshold_hours IS 'Hours in the stage after which the shipment is stalled; twice this escalates';
