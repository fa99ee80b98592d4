-- Notifications, as an outbox. A trigger records every task creation and state change in
-- task_event, in the transaction that makes the change (whatever code path makes it); the
-- notifier of any instance expands events into one notification per backend, and delivers
-- them with retries. Nothing here is secret: ids and states only (titles are read, sealed, from
-- the task when a notification is built).
CREATE TABLE task_event (
    id          bigserial PRIMARY KEY,
    task_id     uuid NOT NULL,
    template    text NOT NULL,
    old_state   text,
    new_state   text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    expanded    boolean NOT NULL DEFAULT false
);
CREATE INDEX task_event_pending_idx ON task_event (id) WHERE NOT expanded;

CREATE FUNCTION mutask_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_event (task_id, template, old_state, new_state)
        VALUES (NEW.id, NEW.template_name, NULL, NEW.state);
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO task_event (task_id, template, old_state, new_state)
        VALUES (NEW.id, NEW.template_name, OLD.state, NEW.state);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER task_event_insert AFTER INSERT ON task
    FOR EACH ROW EXECUTE FUNCTION mutask_task_event();
CREATE TRIGGER task_event_update AFTER UPDATE OF state ON task
    FOR EACH ROW EXECUTE FUNCTION mutask_task_event();

-- One delivery to one backend; `id` is sent as X-Mutask-Id (receivers deduplicate on it).
CREATE TABLE notification (
    id            uuid PRIMARY KEY,
    event_id      bigint NOT NULL,
    backend       text NOT NULL,
    payload       jsonb NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    next_attempt  timestamptz NOT NULL DEFAULT now(),
    delivered     timestamptz,
    given_up      timestamptz,
    last_error    text,
    created       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, backend)
);
CREATE INDEX notification_due_idx ON notification (next_attempt)
    WHERE delivered IS NULL AND given_up IS NULL;
