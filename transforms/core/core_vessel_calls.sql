-- One row per vessel call (vessel, voyage, port) with its arrival and berthing.
/*
materialized: incremental
unique_key: [vessel_id, voyage_no, port_code]
touched_keys: affected_calls
publish: table
tests:
  unique: [[vessel_id, voyage_no, port_code]]
  not_null: [vessel_id, voyage_no, port_code]
*/
SELECT
    vessel_id,
    voyage_no,
    port_code,
    min(event_at) FILTER (WHERE event_code = 'ATA_ANCH') AS anchorage_arrival_at,
    min(event_at) FILTER (WHERE event_code = 'ATA_BERTH') AS berthed_at,
    min(event_at) FILTER (WHERE event_code = 'ATD_BERTH') AS departed_at,
    -- arrival is the anchorage report; a vessel that goes straight to the berth arrives when it berths
    coalesce(anchorage_arrival_at, berthed_at) AS arrival_at
FROM stg_vessel_events
SEMI JOIN affected_calls USING (vessel_id, voyage_no, port_code)
WHERE vessel_id IS NOT NULL AND voyage_no IS NOT NULL AND port_code IS NOT NULL
GROUP BY vessel_id, voyage_no, port_code;
COMMENT ON TABLE core_vessel_calls IS 'Vessel calls at the ports, with arrival and berthing (port community system).';
COMMENT ON COLUMN core_vessel_calls.vessel_id IS 'IMO number of the vessel';
COMMENT ON COLUMN core_vessel_calls.voyage_no IS 'Voyage number';
COMMENT ON COLUMN core_vessel_calls.port_code IS 'Port of the call';
COMMENT ON COLUMN core_vessel_calls.anchorage_arrival_at IS 'First ATA_ANCH: arrived at anchorage / arrival reported';
COMMENT ON COLUMN core_vessel_calls.berthed_at IS 'First ATA_BERTH: berthed, all fast';
COMMENT ON COLUMN core_vessel_calls.departed_at IS 'First ATD_BERTH: left the berth';
COMMENT ON COLUMN core_vessel_calls.arrival_at IS 'Arrival of the call: ATA_ANCH, or ATA_BERTH when there is no anchorage event';
