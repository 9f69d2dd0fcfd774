-- One row per shipment and segment it can enter: the milestones that start and end the segment.
-- The backlog-aware statistics count a shipment in a segment from its start milestone on and, while
-- its end milestone is missing at the cut-off, as censored there (mart_arrival_cohort_statistics);
-- the runner finds here the shipments whose figures a new cut-off moves (transforms/incremental/06_cohort_changes.sql).
-- Only shipments with an arrival: the cohorts are periods of arrival.
/*
materialized: incremental
unique_key: [entry_id]
touched_keys: affected_entries
tests:
  unique: [[entry_id, segment]]
  not_null: [entry_id, segment, direction, arrival_at, started_at]
*/
WITH arrived AS (
    SELECT entry_id, direction, is_counted, arrival_at, declared_at, berthed_at, accepted_at, inspection_ordered_at,
           inspected_at, released_at, gate_out_at, arrived_by_vessel_call
    FROM core_shipments
    SEMI JOIN affected_entries USING (entry_id)
    WHERE arrival_at IS NOT NULL
),
spans AS (
    SELECT *, 'overall_clearance' AS segment, arrival_at AS started_at, released_at AS ended_at FROM arrived
    UNION ALL SELECT *, 'anchorage_wait', arrival_at, berthed_at FROM arrived
    WHERE direction = 'import' AND arrived_by_vessel_call
    UNION ALL SELECT *, 'pre_declaration', arrival_at, declared_at FROM arrived
    -- greatest() skips nulls, but the segment starts only once both milestones are reached
    UNION ALL SELECT *, 'customs_processing', greatest(arrival_at, accepted_at), released_at FROM arrived
    WHERE accepted_at IS NOT NULL
    UNION ALL SELECT *, 'inspection', inspection_ordered_at, inspected_at FROM arrived
    WHERE inspection_ordered_at IS NOT NULL
    UNION ALL SELECT *, 'port_exit', released_at, gate_out_at FROM arrived
    WHERE direction = 'import' AND released_at IS NOT NULL
    UNION ALL SELECT *, 'door_to_gate', arrival_at, gate_out_at FROM arrived WHERE direction = 'import'
)
SELECT entry_id, segment, direction, is_counted, arrival_at, arrival_at::DATE AS arrival_date, declared_at,
       started_at, ended_at
FROM spans;
COMMENT ON TABLE core_segment_spans IS 'One row per arrived shipment and segment it can enter: start and end milestone (the end null while not reached). The segments of clearance-metrics.md; anchorage_wait for imports by vessel call, port_exit and door_to_gate for imports.';
COMMENT ON COLUMN core_segment_spans.entry_id IS 'Declaration number: the shipment';
COMMENT ON COLUMN core_segment_spans.segment IS 'overall_clearance, anchorage_wait, pre_declaration, customs_processing, inspection, port_exit or door_to_gate';
COMMENT ON COLUMN core_segment_spans.direction IS 'import or export';
COMMENT ON COLUMN core_segment_spans.is_counted IS 'False for rejected and cancelled declarations, which no statistic counts';
COMMENT ON COLUMN core_segment_spans.arrival_at IS 'Milestone arrival: places the shipment in its cohort';
COMMENT ON COLUMN core_segment_spans.arrival_date IS 'Beijing date of arrival: the day cohort';
COMMENT ON COLUMN core_segment_spans.declared_at IS 'Milestone declared: before it the shipment is not known, at no cut-off';
COMMENT ON COLUMN core_segment_spans.started_at IS 'Milestone that starts the segment (customs_processing: the later of arrival and acceptance)';
COMMENT ON COLUMN core_segment_spans.ended_at IS 'Milestone that ends the segment; null while not reached';
