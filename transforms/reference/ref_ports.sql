-- Reference data, read from transforms/seeds/ on every run.
/*
publish: table
tests:
  unique: [port_code]
*/
SELECT * FROM read_csv(getvariable('seeds_dir') || '/ports.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_ports IS 'Ports of entry/exit and their customs district (reference data: transforms/seeds/ports.csv).';
COMMENT ON COLUMN ref_ports.port_code IS 'PORT_CODE as the exports write it';
COMMENT ON COLUMN ref_ports.port_name IS 'Port name';
COMMENT ON COLUMN ref_ports.port_name_zh IS 'Port name in Chinese';
COMMENT ON COLUMN ref_ports.district_code IS 'Customs district: 0900 Dalian, 0800 Shenyang';
