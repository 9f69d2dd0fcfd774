-- Reference data, read from transforms/seeds/ on every run.
/*
publish: table
tests:
  unique: [transport_mode_code]
*/
SELECT * FROM read_csv(getvariable('seeds_dir') || '/transport_modes.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_transport_modes IS 'Transport modes (TRAF_MODE) (reference data: transforms/seeds/transport_modes.csv).';
COMMENT ON COLUMN ref_transport_modes.transport_mode_code IS 'TRAF_MODE code';
COMMENT ON COLUMN ref_transport_modes.transport_mode IS 'waterway, rail, road or air';
COMMENT ON COLUMN ref_transport_modes.transport_mode_zh IS 'Mode in Chinese';
