-- Reference data, read from transforms/seeds/ on every run. A customs district edits the CSV (who acts,
-- what to do); a party outside the three stops the run with the stage named, rather than sending mails
-- that name nobody.
/*
publish: table
tests:
  unique: [stage]
  not_null: [stage, stage_label_zh, stage_label, acting_party, next_step_zh, next_step]
*/
SELECT stage, stage_label_zh, stage_label,
       CASE WHEN acting_party IN ('port', 'trader', 'customs') THEN acting_party
            ELSE error('transforms/seeds/stage_responsibilities.csv: stage ' || stage || ': acting_party must be port, trader or customs, not ' || coalesce(acting_party, 'empty'))
       END AS acting_party,
       next_step_zh, next_step
FROM read_csv(getvariable('seeds_dir') || '/stage_responsibilities.csv', header = true, all_varchar = true);
COMMENT ON TABLE ref_stage_responsibilities IS 'Every open stage of a shipment: its name, who acts on it (port, trader or customs) and the next step, as alert mails and the dashboard show them (transforms/seeds/stage_responsibilities.csv).';
COMMENT ON COLUMN ref_stage_responsibilities.stage IS 'Open stage (mart_work_in_progress.open_stage, or arrived_not_declared)';
COMMENT ON COLUMN ref_stage_responsibilities.stage_label_zh IS 'Stage name in Chinese';
COMMENT ON COLUMN ref_stage_responsibilities.stage_label IS 'Stage name in English';
COMMENT ON COLUMN ref_stage_responsibilities.acting_party IS 'Who must act to end the stage: port, trader (consignee, consignor or their broker) or customs';
COMMENT ON COLUMN ref_stage_responsibilities.next_step_zh IS 'What the party should do next, in Chinese';
COMMENT ON COLUMN ref_stage_responsibilities.next_step IS 'What the party should do next, in English';
