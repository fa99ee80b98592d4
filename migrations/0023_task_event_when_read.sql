-- Task events are recorded only when something will read them: the task has a status hook, or
-- an instance that sends notifications (one with a notification backend, running the engine) is
-- registered. Before, every task creation and state change wrote a `task_event` row and sent a
-- `mutask_event` NOTIFY, and every instance without a backend then marked the row expanded with
-- nothing sent: three inserts, three updates and three NOTIFYs per one-step task for nothing,
-- and an instance without a backend could mark expanded the events that an instance with one
-- was to send.

ALTER TABLE instance ADD COLUMN notifies boolean NOT NULL DEFAULT false;

-- the task had a status hook when the event was recorded (instances without a backend expand
-- only these)
ALTER TABLE task_event ADD COLUMN hooked boolean NOT NULL DEFAULT false;
UPDATE task_event e SET hooked = true
  FROM task t
 WHERE t.id = e.task_id AND t.status_hook_enc IS NOT NULL AND NOT e.expanded;
CREATE INDEX task_event_hooked_idx ON task_event (id) WHERE NOT expanded AND hooked;

CREATE OR REPLACE FUNCTION mutask_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    hooked boolean := NEW.status_hook_enc IS NOT NULL;
    old_state text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.state IS NOT DISTINCT FROM OLD.state THEN
            RETURN NULL;
        END IF;
        old_state := OLD.state;
        -- requests waiting for the task's outcome (0022)
        IF NEW.state IN ('DONE', 'CANCELLED', 'WONTFIX', 'BLOCKED') THEN
            PERFORM pg_notify('mutask_task_settled', NEW.id::text);
        END IF;
    END IF;
    IF hooked OR EXISTS (SELECT 1 FROM instance WHERE notifies) THEN
        INSERT INTO task_event (task_id, template, old_state, new_state, hooked)
        VALUES (NEW.id, NEW.template_name, old_state, NEW.state, hooked);
        PERFORM pg_notify('mutask_event', '');
    ELSIF NEW.expected_duration IS NOT NULL THEN
        -- no event to build, but the notifiers' overdue scan looks at new deadlines sooner
        PERFORM pg_notify('mutask_event', '');
    END IF;
    RETURN NULL;
END $$;
