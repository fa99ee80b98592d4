-- API tokens for machine clients: `Authorization: Bearer mtk_<id>_<secret>`.
-- Only the SHA-256 of the secret is stored (the secret is 256 random bits, so a fast hash is
-- enough and a stolen table does not yield usable tokens); the token is shown once at creation.
CREATE TABLE api_token (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    username    text NOT NULL CHECK (length(username) BETWEEN 1 AND 200),
    groups      text[] NOT NULL DEFAULT '{}',
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_by  text NOT NULL,
    created     timestamptz NOT NULL DEFAULT now(),
    expires     timestamptz,
    last_used   timestamptz,
    revoked     timestamptz
);
