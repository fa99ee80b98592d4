-- A task that settles (DONE, CANCELLED, WONTFIX, or BLOCKED for a human) announces it on
-- `mutask_task_settled`, its id as the payload: an instance answering a request that waits for
-- the task (`POST /task?wait=`, `GET /task/{id}?wait=`) answers as soon as it hears it, whichever
-- instance ran the task. Otherwise as in 0015.
CREATE OR REPLACE FUNCTION mutask_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_event (task_id, template, old_state, new_state)
        VALUES (NEW.id, NEW.template_name, NULL, NEW.state);
        PERFORM pg_notify('mutask_event', '');
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO task_event (task_id, template, old_state, new_state)
        VALUES (NEW.id, NEW.template_name, OLD.state, NEW.state);
        PERFORM pg_notify('mutask_event', '');
        IF NEW.state IN ('DONE', 'CANCELLED', 'WONTFIX', 'BLOCKED') THEN
            PERFORM pg_notify('mutask_task_settled', NEW.id::text);
        END IF;
    END IF;
    RETURN NULL;
END $$;
