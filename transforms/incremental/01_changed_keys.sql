-- Keys of the staging rows of the export dates being (re)loaded: run before the staging models (the
-- rows about to be replaced) and after them (the rows as now loaded), so a rerun that drops a row
-- still touches what the row touched.
/*
runs: [before staging, after staging]
*/
INSERT INTO changed_entries
    SELECT entry_id FROM stg_declaration_versions SEMI JOIN affected_export_dates USING (export_date)
    UNION ALL SELECT entry_id FROM stg_declaration_receipts SEMI JOIN affected_export_dates USING (export_date);
INSERT INTO changed_bills
    SELECT bill_no FROM stg_cargo_events SEMI JOIN affected_export_dates USING (export_date) WHERE bill_no IS NOT NULL
    UNION ALL SELECT bill_no FROM stg_manifest_versions SEMI JOIN affected_export_dates USING (export_date)
    WHERE bill_no IS NOT NULL;
INSERT INTO changed_calls
    SELECT vessel_id, voyage_no, port_code FROM stg_vessel_events SEMI JOIN affected_export_dates USING (export_date);
