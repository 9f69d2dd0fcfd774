-- The run itself: its business date and cut-off, and the identity of the build (publishing checks it).
/*
publish: table
tests:
  not_null: [business_date, cutoff_at, build_id]
*/
SELECT getvariable('business_date') AS business_date, getvariable('cutoff_at') AS cutoff_at,
       getvariable('build_id') AS build_id, getvariable('full_refresh') AS was_full_refresh;
COMMENT ON TABLE run_context IS 'The business date the warehouse was last built for';
COMMENT ON COLUMN run_context.business_date IS 'Business date (Beijing) of the latest run';
COMMENT ON COLUMN run_context.cutoff_at IS 'Cut-off: end of the business date, Beijing time';
COMMENT ON COLUMN run_context.build_id IS 'Identifies the run that built it: publishing checks it';
COMMENT ON COLUMN run_context.was_full_refresh IS 'Every table was rebuilt from all loaded rows';
