-- The bills, vessel calls and shipments the run touches: a shipment is touched when its own rows changed,
-- or those of its bill or vessel call. Its bill and call are those before this run's change; a
-- declaration whose bill or call changed has new header rows, so it is touched itself.
/*
runs: after staging
*/
INSERT INTO affected_bills SELECT DISTINCT bill_no FROM changed_bills;
INSERT INTO affected_calls SELECT DISTINCT vessel_id, voyage_no, port_code FROM changed_calls;
INSERT INTO affected_entries
    SELECT entry_id FROM changed_entries
    UNION SELECT d.entry_id FROM core_declarations AS d SEMI JOIN affected_bills USING (bill_no)
    UNION SELECT d.entry_id FROM core_declarations AS d SEMI JOIN affected_calls USING (vessel_id, voyage_no, port_code);
-- The bills whose first counted declaration the run can change: the bills touched, and the bills of
-- the shipments whose own rows changed (a declaration's bill, time and whether it counts come from
-- its versions and receipts alone), as they were (core_declarations is not updated yet) and as they
-- may now be (the bill of any of their versions): an amendment that moves a declaration to another
-- bill leaves the first bill undeclared.
INSERT INTO affected_declared_bills
    SELECT bill_no FROM affected_bills
    UNION SELECT bill_no FROM core_declarations SEMI JOIN changed_entries USING (entry_id) WHERE bill_no IS NOT NULL
    UNION SELECT bill_no FROM stg_declaration_versions SEMI JOIN changed_entries USING (entry_id)
    WHERE bill_no IS NOT NULL;
