-- A task's status hook (Harbor's `status_hook`): a URL (and optional HMAC secret) that receives
-- every state change of the task. Sealed: hook URLs often carry tokens.
ALTER TABLE task ADD COLUMN status_hook_enc bytea;
