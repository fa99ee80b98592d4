-- Wake-up hints (src/store/wake.rs): background loops sleep until their next deadline or a
-- NOTIFY, instead of polling every second. PostgreSQL folds identical notifications of one
-- transaction into one, and sends them only at commit.

-- a task was created or changed state: there may be notifications to build
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
    END IF;
    RETURN NULL;
END $$;

-- a schedule was created, changed, paused/resumed or fired: its next occurrence may be sooner
CREATE FUNCTION mutask_schedule_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mutask_schedule', '');
    RETURN NULL;
END $$;

CREATE TRIGGER schedule_wake AFTER INSERT OR UPDATE ON schedule
    FOR EACH STATEMENT EXECUTE FUNCTION mutask_schedule_wake();
