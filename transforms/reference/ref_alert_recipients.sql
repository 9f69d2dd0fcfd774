-- Reference data, read from transforms/seeds/ on every run.
/*
publish: table
tests:
  unique: [[office_code, email]]
*/
SELECT office_code, email
FROM read_csv(getvariable('seeds_dir') || '/alert_recipients.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_alert_recipients IS 'Who receives the stalled-shipment digest of each office (transforms/seeds/alert_recipients.csv); office * receives the digests of offices without recipients of their own.';
COMMENT ON COLUMN ref_alert_recipients.office_code IS 'Customs office code, or * for every office without its own recipients';
COMMENT ON COLUMN ref_alert_recipients.email IS 'Recipient address';
