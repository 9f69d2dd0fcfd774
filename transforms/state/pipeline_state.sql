-- What the pipeline keeps about its own runs (state file only, but the test results).
/*
publish: [model_test_results]
*/

CREATE TABLE IF NOT EXISTS model_fingerprint (fingerprint VARCHAR, recorded_at TIMESTAMP);
COMMENT ON TABLE model_fingerprint IS 'Hash of the SQL models, DDL and reference files the tables were built with: when it changes, the next run rebuilds every table.';
COMMENT ON COLUMN model_fingerprint.fingerprint IS 'SHA-256 over transforms/**/*.sql and transforms/seeds/*.csv';
COMMENT ON COLUMN model_fingerprint.recorded_at IS 'When the tables were last built with it';

CREATE TABLE IF NOT EXISTS dirty_partitions (table_name VARCHAR, partition_month DATE);
COMMENT ON TABLE dirty_partitions IS 'Months of the published Parquet files whose rows changed since they were last written: the next publish rewrites them.';
COMMENT ON COLUMN dirty_partitions.table_name IS 'Table served from monthly Parquet files';
COMMENT ON COLUMN dirty_partitions.partition_month IS 'First day of the month';

CREATE TABLE IF NOT EXISTS published_partitions (
    table_name VARCHAR, partition_month DATE, file VARCHAR, row_count BIGINT, written_for_date DATE
);
COMMENT ON TABLE published_partitions IS 'The current Parquet file of every month of every table the warehouse serves from Parquet.';
COMMENT ON COLUMN published_partitions.table_name IS 'Table';
COMMENT ON COLUMN published_partitions.partition_month IS 'First day of the month';
COMMENT ON COLUMN published_partitions.file IS 'Path of the Parquet file within the warehouse folder (never rewritten: a change writes a new file)';
COMMENT ON COLUMN published_partitions.row_count IS 'Rows in the file';
COMMENT ON COLUMN published_partitions.written_for_date IS 'Business date of the run that wrote it';

CREATE TABLE IF NOT EXISTS model_test_results (
    build_id VARCHAR, model VARCHAR, test VARCHAR, severity VARCHAR, failing_rows BIGINT, examples VARCHAR
);
COMMENT ON TABLE model_test_results IS 'The tests the models declare in their headers, as the latest build ran them (on the rows of the touched keys of an incremental model): a failure of severity error fails the build before publishing, a warning is kept here.';
COMMENT ON COLUMN model_test_results.build_id IS 'The build that ran them (run_context.build_id)';
COMMENT ON COLUMN model_test_results.model IS 'Table the test is about';
COMMENT ON COLUMN model_test_results.test IS 'unique(...), not_null(...), relationships(... -> ...), accepted_values(...), or the name of an expectation or query';
COMMENT ON COLUMN model_test_results.severity IS 'error (fails the build) or warn';
COMMENT ON COLUMN model_test_results.failing_rows IS 'Rows that break it (0: passed)';
COMMENT ON COLUMN model_test_results.examples IS 'Up to three of them';
