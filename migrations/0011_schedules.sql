-- Schedules: tasks created from a template on a cron expression, a karajo calendar or an
-- interval. Each occurrence fires at most once across all instances: the firing transaction
-- moves `next_fire` with a guarded UPDATE (WHERE next_fire = <the occurrence>) and records the
-- occurrence in schedule_run (primary key), in the same transaction as the task it creates.
CREATE TABLE schedule (
    id             uuid PRIMARY KEY,
    name           text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    template_name  text NOT NULL REFERENCES template (name),
    spec           text NOT NULL CHECK (length(spec) BETWEEN 1 AND 200),
    suspend        text[] NOT NULL DEFAULT '{}',
    missed         text NOT NULL DEFAULT 'skip' CHECK (missed IN ('skip', 'run_once')),
    overlap        text NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip')),
    paused         boolean NOT NULL DEFAULT false,
    anchor         timestamptz NOT NULL,
    next_fire      timestamptz,
    last_fire      timestamptz,
    last_task      uuid,
    created_by     text NOT NULL,
    -- sealed (bound to schedule.input_enc.<id>): the task inputs
    input_enc      bytea NOT NULL,
    created        timestamptz NOT NULL DEFAULT now(),
    updated        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedule_due_idx ON schedule (next_fire) WHERE NOT paused;

-- Every occurrence handled, fired or skipped (and why).
CREATE TABLE schedule_run (
    schedule_id uuid NOT NULL REFERENCES schedule (id) ON DELETE CASCADE,
    occurrence  timestamptz NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('fired', 'skipped_missed', 'skipped_overlap',
                                                 'skipped_suspended', 'failed')),
    task_id     uuid,
    detail      text,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, occurrence)
);

-- Idempotency keys of POST /task: a repeated create with the same key (same requester, within
-- the TTL) answers the task created first.
CREATE TABLE task_idempotency (
    requester_username text NOT NULL,
    key                text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    task_id            uuid NOT NULL REFERENCES task (id) ON DELETE CASCADE,
    expires            timestamptz NOT NULL,
    PRIMARY KEY (requester_username, key)
);
