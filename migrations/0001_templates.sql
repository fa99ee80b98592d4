-- Task templates loaded from the templates directory (or saved through the API).
-- Templates are not secret (they are admin-authored files) and are stored in clear:
-- the normalized model as JSON, and the YAML source as written.
CREATE TABLE template (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 1000),
    version     integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    description text NOT NULL,
    definition  jsonb NOT NULL,
    source      text NOT NULL,
    source_file text,
    hidden      boolean NOT NULL DEFAULT false,
    blocked     boolean NOT NULL DEFAULT false,
    -- a template removed from disk while tasks still reference it is archived, not deleted
    archived    boolean NOT NULL DEFAULT false,
    created     timestamptz NOT NULL DEFAULT now(),
    updated     timestamptz NOT NULL DEFAULT now()
);

-- Every version a template ever had; a task records the version it was created from.
CREATE TABLE template_version (
    name       text NOT NULL REFERENCES template (name) ON DELETE CASCADE,
    version    integer NOT NULL,
    definition jsonb NOT NULL,
    source     text NOT NULL,
    created    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
