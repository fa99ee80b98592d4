-- expected_duration counts from when a task first starts running (not from its creation, so a
-- DELAYED task or one waiting for approval is not overdue), and the overdue scan takes the
-- earliest deadlines first. A trigger records the deadline in the transaction that first makes
-- the task RUNNING; the notifier's scan reads task_deadline ordered by deadline.

-- A Go duration (`90s`, `1h30m`, `1.5h`, `300ms`, `0`) as an interval; NULL when malformed
-- (templates are validated at load: a NULL only skips the alert). Capped at 100 years, so it
-- never raises.
CREATE FUNCTION mutask_go_duration(d text) RETURNS interval LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN d IS NULL THEN NULL
        WHEN btrim(d) = '0' THEN interval '0'
        WHEN btrim(d) !~ '^\+?(([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$' THEN NULL
        ELSE (SELECT make_interval(secs => least(sum(m[1]::float8 * CASE m[2]
                        WHEN 'h' THEN 3600 WHEN 'm' THEN 60 WHEN 's' THEN 1
                        WHEN 'ms' THEN 1e-3 WHEN 'ns' THEN 1e-9 ELSE 1e-6 END), 3.2e9))
                FROM regexp_matches(btrim(d), '([0-9.]+)([^0-9.]+)', 'g') AS m)
    END
$$;

CREATE TABLE task_deadline (
    task_id   uuid PRIMARY KEY REFERENCES task (id) ON DELETE CASCADE,
    started   timestamptz NOT NULL,
    deadline  timestamptz NOT NULL
);
CREATE INDEX task_deadline_idx ON task_deadline (deadline);

CREATE FUNCTION mutask_task_deadline() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    expected interval;
BEGIN
    SELECT mutask_go_duration(v.definition->>'expected_duration') INTO expected
      FROM template_version v
     WHERE v.name = NEW.template_name AND v.version = NEW.template_version;
    IF expected IS NOT NULL THEN
        INSERT INTO task_deadline (task_id, started, deadline)
        VALUES (NEW.id, now(), now() + expected)
        ON CONFLICT (task_id) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER task_deadline_insert AFTER INSERT ON task
    FOR EACH ROW WHEN (NEW.state = 'RUNNING') EXECUTE FUNCTION mutask_task_deadline();
CREATE TRIGGER task_deadline_update AFTER UPDATE OF state ON task
    FOR EACH ROW WHEN (NEW.state = 'RUNNING' AND OLD.state IS DISTINCT FROM 'RUNNING')
    EXECUTE FUNCTION mutask_task_deadline();

-- A finished task needs no deadline (the scan would skip it forever).
CREATE FUNCTION mutask_task_deadline_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_deadline WHERE task_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER task_deadline_done AFTER UPDATE OF state ON task
    FOR EACH ROW WHEN (NEW.state IN ('DONE', 'CANCELLED', 'WONTFIX'))
    EXECUTE FUNCTION mutask_task_deadline_done();

-- Tasks already past their start when this migration runs keep the old rule (from creation).
INSERT INTO task_deadline (task_id, started, deadline)
SELECT t.id, t.created, t.created + mutask_go_duration(v.definition->>'expected_duration')
  FROM task t
  JOIN template_version v ON v.name = t.template_name AND v.version = t.template_version
 WHERE t.state IN ('RUNNING', 'BLOCKED')
   AND mutask_go_duration(v.definition->>'expected_duration') IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM task_overdue o WHERE o.task_id = t.id)
ON CONFLICT DO NOTHING;
