-- The statistics periods to restate: every day, week and month a touched shipment was, or now is,
-- released in, and every day of those periods (a week's or a month's figures are computed from all its days).
/*
runs: after core
*/
INSERT INTO affected_periods
WITH release_days AS (
    SELECT DISTINCT release_date FROM affected_shipment_periods WHERE release_date IS NOT NULL
)
SELECT DISTINCT grain, period_start, period_end FROM (
    SELECT 'day' AS grain, release_date AS period_start, release_date AS period_end FROM release_days
    UNION ALL SELECT 'week', date_trunc('week', release_date)::DATE, date_trunc('week', release_date)::DATE + 6
    FROM release_days
    UNION ALL SELECT 'month', date_trunc('month', release_date)::DATE, last_day(release_date) FROM release_days
);
INSERT INTO affected_release_days
SELECT DISTINCT unnest(generate_series(period_start, period_end, INTERVAL 1 DAY))::DATE AS release_date
FROM affected_periods;
