-- Organizations over time: portal settings, sync bookkeeping, scheduled backups, snapshots
-- and dead letters.

ALTER TABLE organizations ADD COLUMN client_label TEXT;         -- the MSP's client, for filtering
ALTER TABLE organizations ADD COLUMN backup_hour INTEGER NOT NULL DEFAULT 2;  -- UTC hour of scheduled backups
CREATE INDEX organizations_tenant_client ON organizations (tenant_id, client_label);

-- The enumeration run that last saw the repository: a completed sync marks the ones it did
-- not see (and nobody touched since it started) as removed.
ALTER TABLE repositories ADD COLUMN last_seen_run TEXT;

-- When the dispatcher last sent the job (NULL: sent inline right after its creation, or never).
ALTER TABLE backup_jobs ADD COLUMN dispatched_at TEXT;
CREATE INDEX backup_jobs_dispatch ON backup_jobs (status, dispatched_at);

ALTER TABLE enumeration_runs ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;

-- Backup snapshots, filled by the backup executor (later); kept until their org's retention
-- has passed, also after a disconnect.
CREATE TABLE snapshots (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    repository_id    TEXT NOT NULL REFERENCES repositories (id),
    taken_at         TEXT NOT NULL,
    expires_at       TEXT,
    size_bytes       INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'expired'))
);
CREATE INDEX snapshots_org ON snapshots (org_id, status);

-- Why a queue message failed last (per message id: retries keep it), so its retry delay grows
-- and the dead letter it becomes after its last retry carries the reason (found by the body's
-- hash: the dead-letter queue gives the message a new id). Purged after 7 days.
CREATE TABLE message_failures (
    message_id       TEXT PRIMARY KEY,
    body_hash        TEXT NOT NULL,
    queue            TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    last_error       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX message_failures_body ON message_failures (body_hash, updated_at);

CREATE TABLE dead_letters (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id       TEXT NOT NULL UNIQUE,           -- in the dead-letter queue
    body_hash        TEXT NOT NULL,
    message_type     TEXT,
    body             TEXT NOT NULL,
    reason           TEXT NOT NULL,
    received_at      TEXT NOT NULL
);
