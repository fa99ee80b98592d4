-- Inbound webhooks: POST /webhook/{name}, authenticated by a signature over the body, creates a
-- task from a template. The secret (HMAC key, or the sender's public key for sourcehut) is
-- sealed (webhook.secret_enc.<id>).
CREATE TABLE webhook (
    id               uuid PRIMARY KEY,
    name             text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    template_name    text NOT NULL REFERENCES template (name),
    auth             text NOT NULL CHECK (auth IN ('github', 'sourcehut', 'hmac-sha256')),
    header           text NOT NULL DEFAULT 'X-Mutask-Sign',
    timestamp_header text,
    replay_window    integer NOT NULL DEFAULT 300 CHECK (replay_window BETWEEN 1 AND 86400),
    input_map        jsonb NOT NULL DEFAULT '{}',
    created_by       text NOT NULL,
    secret_enc       bytea NOT NULL,
    created          timestamptz NOT NULL DEFAULT now()
);

-- Deliveries seen recently (replay protection): a delivery id (the sender's, or a hash of the
-- signature) is accepted once per webhook.
CREATE TABLE webhook_delivery (
    webhook_id  uuid NOT NULL REFERENCES webhook (id) ON DELETE CASCADE,
    delivery    text NOT NULL,
    received    timestamptz NOT NULL DEFAULT now(),
    task_id     uuid,
    PRIMARY KEY (webhook_id, delivery)
);
