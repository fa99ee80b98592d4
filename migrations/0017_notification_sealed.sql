-- Notification payloads carry task titles (sealed in `task`) and, for the `notify` action,
-- messages written by templates: seal them too (AAD notification.payload_enc.<id>). Rows
-- written before this migration keep their clear `payload` until delivered and collected.
ALTER TABLE notification ADD COLUMN payload_enc bytea;
ALTER TABLE notification ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE notification ADD CONSTRAINT notification_payload_present
    CHECK (payload IS NOT NULL OR payload_enc IS NOT NULL);
