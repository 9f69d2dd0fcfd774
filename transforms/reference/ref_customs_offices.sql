-- Reference data, read from transforms/seeds/ on every run.
/*
publish: table
tests:
  unique: [office_code]
*/
SELECT * FROM read_csv(getvariable('seeds_dir') || '/customs_offices.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_customs_offices IS 'Customs offices (reference data: transforms/seeds/customs_offices.csv); a deployment adds its offices.';
COMMENT ON COLUMN ref_customs_offices.office_code IS '4-digit customs office code (CUSTOM_MASTER, I_E_PORT, chars 1-4 of ENTRY_ID)';
COMMENT ON COLUMN ref_customs_offices.office_name IS 'Office name';
COMMENT ON COLUMN ref_customs_offices.office_name_zh IS 'Office name in Chinese';
COMMENT ON COLUMN ref_customs_offices.district_code IS 'Customs district the office belongs to';
