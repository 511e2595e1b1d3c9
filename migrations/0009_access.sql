-- Access audit and compliance posture (issue #10): per organization, who can reach its code and
-- how its default branches are protected (`src/access/model.rs`), and the history of changes.

-- The current access state of each org: the last complete snapshot, kept current by webhooks.
-- `version` moves on every write, so a webhook and a snapshot that finish together cannot
-- overwrite each other (compare-and-set).
CREATE TABLE access_states (
    org_id       TEXT PRIMARY KEY REFERENCES organizations (id),
    state        TEXT NOT NULL,                 -- AccessState JSON
    version      INTEGER NOT NULL DEFAULT 1,
    read_at      TEXT NOT NULL,                 -- when the last complete snapshot finished
    updated_at   TEXT NOT NULL                  -- last change (snapshot or webhook)
);

-- A snapshot being read, one bounded step per invocation (like enumeration). One per org: a
-- sync while one is being read replaces it (the old run's next step finds another run id).
CREATE TABLE access_runs (
    org_id       TEXT PRIMARY KEY REFERENCES organizations (id),
    run_id       TEXT NOT NULL,
    step         INTEGER NOT NULL DEFAULT 0,    -- steps taken: a redelivered step message finds it moved
    progress     TEXT NOT NULL,                 -- JSON: what was read so far, and what is next
    started_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- History: what changed, when, and how the gateway learnt it.
CREATE TABLE access_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    kind         TEXT NOT NULL,                 -- `member.added`, `protection.weakened`, … (model.rs)
    subject      TEXT NOT NULL,                 -- a login, a repository's full name, or the org
    detail       TEXT NOT NULL,                 -- JSON: before / after
    source       TEXT NOT NULL CHECK (source IN ('sync', 'webhook')),
    delivery_id  TEXT,                          -- the webhook delivery, when the source is a webhook
    occurred_at  TEXT NOT NULL
);
CREATE INDEX access_events_org ON access_events (org_id, occurred_at);
CREATE INDEX access_events_kind ON access_events (org_id, kind, occurred_at);
