-- Late rows per delivery (quirk 2: an event can arrive up to 30 days after it happened).
/*
materialized: incremental
unique_key: [export_date]
touched_keys: affected_export_dates
publish: table
tests:
  unique: [export_date]
  not_null: [export_date, late_rows, rows_loaded]
*/
WITH event_dates AS (
    SELECT export_date, submitted_at::DATE AS event_date
    FROM stg_declaration_versions SEMI JOIN affected_export_dates USING (export_date)
    UNION ALL SELECT export_date, notified_at::DATE
    FROM stg_declaration_receipts SEMI JOIN affected_export_dates USING (export_date)
    UNION ALL SELECT export_date, event_at::DATE FROM stg_vessel_events SEMI JOIN affected_export_dates USING (export_date)
    UNION ALL SELECT export_date, event_at::DATE FROM stg_cargo_events SEMI JOIN affected_export_dates USING (export_date)
)
SELECT export_date, count(*) FILTER (WHERE event_date < export_date) AS late_rows, count(*) AS rows_loaded
FROM event_dates
GROUP BY export_date;
COMMENT ON TABLE mart_delivery_timeliness IS 'Per delivery: event rows loaded, and how many of them happened before the export date (late rows).';
COMMENT ON COLUMN mart_delivery_timeliness.export_date IS 'Export date of the delivery';
COMMENT ON COLUMN mart_delivery_timeliness.late_rows IS 'Declaration, receipt, vessel and cargo rows whose time is before the export date';
COMMENT ON COLUMN mart_delivery_timeliness.rows_loaded IS 'Declaration, receipt, vessel and cargo rows loaded from the delivery';
