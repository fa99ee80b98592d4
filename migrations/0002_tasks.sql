-- Batches, tasks and their comments.
CREATE TABLE batch (
    id      uuid PRIMARY KEY,
    created timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE task (
    id                 uuid PRIMARY KEY,
    template_name      text NOT NULL REFERENCES template (name),
    template_version   integer NOT NULL,
    batch_id           uuid REFERENCES batch (id) ON DELETE SET NULL,
    parent_task_id     uuid REFERENCES task (id) ON DELETE SET NULL,
    state              text NOT NULL CHECK (state IN
        ('TODO', 'RUNNING', 'DONE', 'BLOCKED', 'DELAYED', 'CANCELLED', 'WONTFIX', 'WAITING')),
    requester_username text NOT NULL,
    requester_groups   text[] NOT NULL DEFAULT '{}',
    watcher_usernames  text[] NOT NULL DEFAULT '{}',
    watcher_groups     text[] NOT NULL DEFAULT '{}',
    resolver_usernames text[] NOT NULL DEFAULT '{}',
    resolver_groups    text[] NOT NULL DEFAULT '{}',
    tags               jsonb NOT NULL DEFAULT '{}',
    -- sealed (AES-256-GCM, bound to task.<column>.<id>); the title is rendered from inputs
    title_enc          bytea NOT NULL,
    input_enc          bytea NOT NULL,
    result_enc         bytea,
    steps_done         integer NOT NULL DEFAULT 0,
    steps_total        integer NOT NULL DEFAULT 0,
    created            timestamptz NOT NULL DEFAULT now(),
    last_activity      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_last_activity_idx ON task (last_activity DESC, id DESC);
CREATE INDEX task_template_idx ON task (template_name);
CREATE INDEX task_state_idx ON task (state);
CREATE INDEX task_batch_idx ON task (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX task_parent_idx ON task (parent_task_id) WHERE parent_task_id IS NOT NULL;
CREATE INDEX task_tags_idx ON task USING gin (tags jsonb_path_ops);
CREATE INDEX task_requester_idx ON task (requester_username);

CREATE TABLE task_comment (
    id       uuid PRIMARY KEY,
    task_id  uuid NOT NULL REFERENCES task (id) ON DELETE CASCADE,
    username text NOT NULL,
    created  timestamptz NOT NULL DEFAULT now(),
    updated  timestamptz NOT NULL DEFAULT now(),
    body_enc bytea NOT NULL
);
CREATE INDEX task_comment_task_idx ON task_comment (task_id, created);
