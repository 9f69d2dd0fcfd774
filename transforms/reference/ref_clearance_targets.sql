-- Reference data, read from transforms/seeds/ on every run.
/*
publish: table
tests:
  unique: [[target_code, direction, district_code]]
*/
SELECT target_code, direction, nullif(district_code, '') AS district_code, target_hours::DOUBLE AS target_hours,
       label, label_zh, is_operative::BOOLEAN AS is_operative
FROM read_csv(getvariable('seeds_dir') || '/clearance_targets.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_clearance_targets IS 'Overall clearance time targets and reference figures, hours (transforms/seeds/clearance_targets.csv); a deployment adds district targets.';
COMMENT ON COLUMN ref_clearance_targets.target_code IS 'national_2017_baseline, state_council_2021, national_2022, or a district target';
COMMENT ON COLUMN ref_clearance_targets.direction IS 'import or export';
COMMENT ON COLUMN ref_clearance_targets.district_code IS 'Customs district the target is for; empty for a national figure';
COMMENT ON COLUMN ref_clearance_targets.target_hours IS 'Overall clearance time, hours';
COMMENT ON COLUMN ref_clearance_targets.label IS 'What the figure is (every national figure is a mean)';
COMMENT ON COLUMN ref_clearance_targets.label_zh IS 'What the figure is, in Chinese';
COMMENT ON COLUMN ref_clearance_targets.is_operative IS 'The target that share_within_target measures against (a district target, where one is operative, before the national one)';
