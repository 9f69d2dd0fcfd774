-- What the pipeline keeps about its own runs (state file only, never published).

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
