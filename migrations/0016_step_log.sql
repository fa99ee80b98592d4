-- Step logs: what script, plugin and http executions printed, per execution, in chunks of
-- lines (one row per flush, about every 300 ms while the step runs). The lines are sealed
-- (AAD step_log.lines_enc.<resolution>/<step>/<execution>/<chunk>): they may quote secrets an
-- action printed, even after masking. Removed with their task; older executions and old logs
-- are pruned by the engine (MUTASK_LOG_KEEP_EXECUTIONS, MUTASK_LOG_RETENTION).
CREATE TABLE step_log (
    resolution_id uuid NOT NULL REFERENCES resolution (id) ON DELETE CASCADE,
    step_name     text NOT NULL,
    execution     integer NOT NULL CHECK (execution >= 0),
    chunk         integer NOT NULL CHECK (chunk >= 0),
    created       timestamptz NOT NULL DEFAULT now(),
    lines_enc     bytea NOT NULL,
    PRIMARY KEY (resolution_id, step_name, execution, chunk)
);
CREATE INDEX step_log_created_idx ON step_log (created);
