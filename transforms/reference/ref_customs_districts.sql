-- Reference data, read from transforms/seeds/ on every run.
/*
publish: table
tests:
  unique: [district_code]
*/
SELECT * FROM read_csv(getvariable('seeds_dir') || '/customs_districts.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_customs_districts IS 'Customs districts (reference data: transforms/seeds/customs_districts.csv).';
COMMENT ON COLUMN ref_customs_districts.district_code IS 'District code: the code of its head office';
COMMENT ON COLUMN ref_customs_districts.district_name IS 'District name';
COMMENT ON COLUMN ref_customs_districts.district_name_zh IS 'District name in Chinese';
