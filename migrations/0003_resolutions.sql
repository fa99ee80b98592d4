-- Resolutions (the execution record of a task) and their steps.
CREATE TABLE resolution (
    id                 uuid PRIMARY KEY,
    task_id            uuid NOT NULL UNIQUE REFERENCES task (id) ON DELETE CASCADE,
    resolver_username  text,
    state              text NOT NULL CHECK (state IN
        ('TODO', 'RUNNING', 'DONE', 'CANCELLED', 'PAUSED', 'BLOCKED_TOCHECK', 'BLOCKED_BADREQUEST',
         'BLOCKED_DEADLOCK', 'BLOCKED_MAXRETRIES', 'BLOCKED_FATAL', 'WAITING', 'CRASHED', 'RETRY',
         'ERROR', 'TO_AUTORUN', 'TO_AUTORUN_DELAYED', 'AUTORUNNING')),
    -- ownership while running: the claiming instance, its fencing counter and lease
    owner_instance     uuid,
    claim_attempt      bigint NOT NULL DEFAULT 0,
    lease_expires      timestamptz,
    created            timestamptz NOT NULL DEFAULT now(),
    last_start         timestamptz,
    last_stop          timestamptz,
    next_retry         timestamptz,
    run_count          integer NOT NULL DEFAULT 0,
    run_max            integer NOT NULL,
    -- sealed
    resolver_input_enc bytea NOT NULL,
    updated            timestamptz NOT NULL DEFAULT now()
);
-- Only claimable rows are indexed, so finished rows never slow the claim down.
CREATE INDEX resolution_claimable_idx ON resolution (next_retry NULLS FIRST, id)
    WHERE state IN ('TO_AUTORUN', 'TO_AUTORUN_DELAYED', 'RETRY', 'ERROR', 'WAITING', 'CRASHED');
-- Running rows, to find expired leases.
CREATE INDEX resolution_lease_idx ON resolution (lease_expires)
    WHERE state IN ('RUNNING', 'AUTORUNNING');

-- One row per step so that a step update does not rewrite every step of the resolution.
CREATE TABLE step (
    resolution_id  uuid NOT NULL REFERENCES resolution (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 1000),
    position       integer NOT NULL,
    -- builtin states or a template custom state
    state          text NOT NULL CHECK (length(state) BETWEEN 1 AND 200),
    try_count      integer NOT NULL DEFAULT 0,
    last_run       timestamptz,
    -- sealed (bound to step.<column>.<resolution_id>/<name>)
    definition_enc bytea NOT NULL,
    output_enc     bytea,
    metadata_enc   bytea,
    error_enc      bytea,
    children_enc   bytea,
    updated        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resolution_id, name)
);
