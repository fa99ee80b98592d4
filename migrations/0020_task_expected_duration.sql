-- The deadline trigger of 0019 read the template version's definition (a TOASTed jsonb) for every
-- task on its first RUNNING transition, and deleted from task_deadline at every final state —
-- on the hot path of every task, with or without an expected_duration. The task now carries its
-- expected_duration (set at creation, from its template version), and the triggers fire only for
-- tasks that have one.

ALTER TABLE task ADD COLUMN expected_duration interval;

UPDATE task t
   SET expected_duration = mutask_go_duration(v.definition->>'expected_duration')
  FROM template_version v
 WHERE v.name = t.template_name AND v.version = t.template_version
   AND t.state NOT IN ('DONE', 'CANCELLED', 'WONTFIX')
   AND v.definition ? 'expected_duration';

CREATE OR REPLACE FUNCTION mutask_task_deadline() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_deadline (task_id, started, deadline)
    VALUES (NEW.id, now(), now() + NEW.expected_duration)
    ON CONFLICT (task_id) DO NOTHING;
    RETURN NULL;
END $$;

DROP TRIGGER task_deadline_insert ON task;
DROP TRIGGER task_deadline_update ON task;
DROP TRIGGER task_deadline_done ON task;

CREATE TRIGGER task_deadline_insert AFTER INSERT ON task
    FOR EACH ROW WHEN (NEW.state = 'RUNNING' AND NEW.expected_duration IS NOT NULL)
    EXECUTE FUNCTION mutask_task_deadline();
CREATE TRIGGER task_deadline_update AFTER UPDATE OF state ON task
    FOR EACH ROW WHEN (NEW.state = 'RUNNING' AND OLD.state IS DISTINCT FROM 'RUNNING'
                       AND NEW.expected_duration IS NOT NULL)
    EXECUTE FUNCTION mutask_task_deadline();
CREATE TRIGGER task_deadline_done AFTER UPDATE OF state ON task
    FOR EACH ROW WHEN (NEW.state IN ('DONE', 'CANCELLED', 'WONTFIX')
                       AND NEW.expected_duration IS NOT NULL)
    EXECUTE FUNCTION mutask_task_deadline_done();
