-- The keys a run touches, empty at the start of every run (temporary: they live as long as the run's
-- connection). The export dates are those the run (re)loaded (the variable export_dates).
/*
runs: start
*/
CREATE OR REPLACE TEMP TABLE affected_export_dates AS SELECT DISTINCT unnest(getvariable('export_dates')) AS export_date;
CREATE OR REPLACE TEMP TABLE changed_entries (entry_id VARCHAR);
CREATE OR REPLACE TEMP TABLE changed_bills (bill_no VARCHAR);
CREATE OR REPLACE TEMP TABLE changed_calls (vessel_id VARCHAR, voyage_no VARCHAR, port_code VARCHAR);
CREATE OR REPLACE TEMP TABLE affected_entries (entry_id VARCHAR);
CREATE OR REPLACE TEMP TABLE affected_bills (bill_no VARCHAR);
CREATE OR REPLACE TEMP TABLE affected_calls (vessel_id VARCHAR, voyage_no VARCHAR, port_code VARCHAR);
CREATE OR REPLACE TEMP TABLE affected_shipment_periods (release_date DATE, declaration_month DATE);
CREATE OR REPLACE TEMP TABLE affected_periods (grain VARCHAR, period_start DATE, period_end DATE);
CREATE OR REPLACE TEMP TABLE affected_release_days (release_date DATE);
CREATE OR REPLACE TEMP TABLE affected_shipment_arrivals (arrival_date DATE);
CREATE OR REPLACE TEMP TABLE affected_arrival_periods (grain VARCHAR, period_start DATE, period_end DATE);
CREATE OR REPLACE TEMP TABLE affected_arrival_days (arrival_date DATE);
CREATE OR REPLACE TEMP TABLE affected_arrival_months (arrival_month DATE);
