-- Release dates and declaration months of the touched shipments, before the core models change them and
-- after: the statistics periods to restate.
/*
runs: [after staging, after core]
*/
INSERT INTO affected_shipment_periods
    SELECT release_date, declaration_month FROM core_shipments SEMI JOIN affected_entries USING (entry_id);
-- and their arrival dates: the arrival cohorts of the backlog-aware statistics to restate
INSERT INTO affected_shipment_arrivals
    SELECT arrival_at::DATE FROM core_shipments SEMI JOIN affected_entries USING (entry_id) WHERE arrival_at IS NOT NULL;
