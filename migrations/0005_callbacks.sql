-- Callbacks created by the `callback` action: a tokenized URL that resumes a WAITING step.
CREATE TABLE callback (
    id            uuid PRIMARY KEY,
    task_id       uuid NOT NULL REFERENCES task (id) ON DELETE CASCADE,
    resolution_id uuid NOT NULL REFERENCES resolution (id) ON DELETE CASCADE,
    step_name     text NOT NULL,
    created       timestamptz NOT NULL DEFAULT now(),
    called        timestamptz,
    -- sealed (bound to callback.<column>.<id>)
    secret_enc    bytea NOT NULL,
    schema_enc    bytea,
    body_enc      bytea
);
CREATE INDEX callback_resolution_idx ON callback (resolution_id);
