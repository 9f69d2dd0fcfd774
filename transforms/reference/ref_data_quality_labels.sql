-- Reference data, read from transforms/seeds/ on every run: what a quarantine reason or a data-quality
-- finding means, in Chinese and English, for the dashboard's data-quality tables. Every reason code of
-- expectations/ and every finding of mart_data_quality_findings has one (tests/test_contract.py).
/*
publish: table
tests:
  unique: [[kind, code]]
  not_null: [kind, code, label_zh, label]
  accepted_values:
    kind: [quarantine_reason, finding]
*/
SELECT kind, code, label_zh, label
FROM read_csv(getvariable('seeds_dir') || '/data_quality_labels.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_data_quality_labels IS 'What each quarantine reason (quarantine.reason_code) and data-quality finding (mart_data_quality_findings.finding) means, in Chinese and English (transforms/seeds/data_quality_labels.csv).';
COMMENT ON COLUMN ref_data_quality_labels.kind IS 'quarantine_reason or finding';
COMMENT ON COLUMN ref_data_quality_labels.code IS 'The reason code or finding';
COMMENT ON COLUMN ref_data_quality_labels.label_zh IS 'What it means, in Chinese';
COMMENT ON COLUMN ref_data_quality_labels.label IS 'What it means, in English';
