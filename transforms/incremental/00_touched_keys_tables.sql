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
CREATE OR REPLACE TEMP TABLE affected_declared_bills (bill_no VARCHAR);
CREATE OR REPLACE TEMP TABLE affected_shipment_periods (release_date DATE, declaration_month DATE);
CREATE OR REPLACE TEMP TABLE affected_periods (grain VARCHAR, period_start DATE, period_end DATE);
CREATE OR REPLACE TEMP TABLE affected_release_days (release_date DATE);
CREATE OR REPLACE TEMP TABLE affected_shipment_arrivals (arrival_date DATE);
CREATE OR REPLACE TEMP TABLE affected_arrival_months (arrival_month DATE);
-- The backlog-aware statistics: observations the run changes (weight -1 as they were, +1 as they are
-- now), the completions they change per slice and minute, the slices to restate and their days.
CREATE OR REPLACE TEMP TABLE cohort_observations_before (
    entry_id VARCHAR, direction VARCHAR, segment VARCHAR, arrival_date DATE, district VARCHAR, office VARCHAR,
    port VARCHAR, transport_mode VARCHAR, trade_mode VARCHAR, commodity_group VARCHAR, inspection VARCHAR,
    reform_measures VARCHAR[], target_hours DOUBLE, minutes BIGINT, is_completed BOOLEAN);
CREATE OR REPLACE TEMP TABLE cohort_completion_changes (
    grain VARCHAR, period_start DATE, scope VARCHAR, direction VARCHAR, dimension VARCHAR, dimension_value VARCHAR,
    segment VARCHAR, target_hours DOUBLE, minutes BIGINT, completions BIGINT, slice_hash UBIGINT);
CREATE OR REPLACE TEMP TABLE affected_cohort_slices (
    grain VARCHAR, period_start DATE, scope VARCHAR, direction VARCHAR, dimension VARCHAR, dimension_value VARCHAR,
    segment VARCHAR, slice_hash UBIGINT);
CREATE OR REPLACE TEMP TABLE affected_cohort_days (arrival_date DATE);
CREATE OR REPLACE TEMP TABLE cohort_slice_changes (
    slice_hash UBIGINT, grain VARCHAR, period_start DATE, scope VARCHAR, direction VARCHAR, dimension VARCHAR,
    dimension_value VARCHAR, segment VARCHAR, completions BIGINT);
