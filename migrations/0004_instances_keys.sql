-- Running mutask processes (heartbeats) and the metadata of encryption keys (never the keys).
CREATE TABLE instance (
    id        uuid PRIMARY KEY,
    hostname  text NOT NULL,
    pid       integer NOT NULL,
    version   text NOT NULL,
    role      text NOT NULL CHECK (role IN ('all', 'api', 'worker')),
    started   timestamptz NOT NULL DEFAULT now(),
    heartbeat timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_heartbeat_idx ON instance (heartbeat);

CREATE TABLE encryption_key (
    id         text PRIMARY KEY,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
