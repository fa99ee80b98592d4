-- A task created through the API of an instance with a free execution slot is inserted already
-- claimed by that instance (task RUNNING, resolution RUNNING), so it starts without a claim
-- statement. Its history is still "created TODO, then RUNNING": the event trigger records both
-- transitions for such an insert, as it did when the claim made the task RUNNING later, so
-- notifications and status hooks see the same sequence whichever way the task started.

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
        IF TG_OP = 'INSERT' AND NEW.state = 'RUNNING' THEN
            INSERT INTO task_event (task_id, template, old_state, new_state, hooked)
            VALUES (NEW.id, NEW.template_name, NULL, 'TODO', hooked);
            old_state := 'TODO';
        END IF;
        INSERT INTO task_event (task_id, template, old_state, new_state, hooked)
        VALUES (NEW.id, NEW.template_name, old_state, NEW.state, hooked);
        PERFORM pg_notify('mutask_event', '');
    ELSIF NEW.expected_duration IS NOT NULL THEN
        -- no event to build, but the notifiers' overdue scan looks at new deadlines sooner
        PERFORM pg_notify('mutask_event', '');
    END IF;
    RETURN NULL;
END $$;
