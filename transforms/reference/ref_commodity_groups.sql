-- Reference data, read from transforms/seeds/ on every run.
/*
publish: table
tests:
  unique: [hs_prefix]
*/
SELECT * FROM read_csv(getvariable('seeds_dir') || '/commodity_groups.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_commodity_groups IS 'HS code prefixes of the commodity groups the customs authority singled out; the longest matching prefix wins, anything else is other.';
COMMENT ON COLUMN ref_commodity_groups.hs_prefix IS 'Leading digits of the HS code';
COMMENT ON COLUMN ref_commodity_groups.commodity_group IS 'ores, grain or auto_parts';
COMMENT ON COLUMN ref_commodity_groups.commodity_group_zh IS 'Group name in Chinese';
