-- Tasks already notified as running longer than their template's expected_duration (kuroko2's
-- "long elapsed time" alert): one notification per task.
CREATE TABLE task_overdue (
    task_id  uuid PRIMARY KEY REFERENCES task (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL DEFAULT now()
);
