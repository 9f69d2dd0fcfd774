-- One row per bill on a manifest: when its first counted declaration was lodged (null: none yet).
-- The stalled list's undeclared bills are those whose first counted declaration is past the cut-off:
-- kept per bill, so a night no longer matches every manifest line of the history against every
-- declaration (on the year: 0.5 s against 0.08 s on a month).
/*
materialized: incremental
unique_key: [bill_no]
touched_keys: affected_declared_bills
tests:
  unique: [bill_no]
  not_null: [bill_no]
*/
WITH manifest_bills AS (
    SELECT DISTINCT bill_no
    FROM core_manifest_lines SEMI JOIN affected_declared_bills USING (bill_no)
    WHERE bill_no IS NOT NULL
),
counted_declarations AS (
    SELECT bill_no, min(declared_at) AS first_counted_declared_at
    FROM core_shipments SEMI JOIN affected_declared_bills USING (bill_no)
    WHERE is_counted
    GROUP BY bill_no
)
SELECT manifest_bills.bill_no, counted_declarations.first_counted_declared_at
FROM manifest_bills
LEFT JOIN counted_declarations USING (bill_no);
COMMENT ON TABLE core_bill_declarations IS 'One row per bill on a manifest: its first counted (not rejected, not cancelled) declaration, for the stalled list''s undeclared bills.';
COMMENT ON COLUMN core_bill_declarations.bill_no IS 'Bill of lading, normalised';
COMMENT ON COLUMN core_bill_declarations.first_counted_declared_at IS 'Declaration time of the bill''s first counted declaration, Beijing time; null while none has been lodged';
