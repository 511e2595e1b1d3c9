-- onecode-edge: organizations connected through the GitHub App, their repositories, application
-- profile stubs, backup jobs, the single-use record of consumed connect states and the enumeration
-- cursor of each organization. Applied by `wrangler d1 migrations apply DB`.
-- Times are RFC 3339 UTC text; GitHub ids are INTEGER; our ids are 32-hex text.

CREATE TABLE organizations (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    provider         TEXT NOT NULL DEFAULT 'github',
    account_id       INTEGER NOT NULL,          -- GitHub account (org or user) id
    login            TEXT NOT NULL,
    display_name     TEXT,
    avatar_url       TEXT,
    account_type     TEXT NOT NULL,             -- 'Organization' | 'User'
    installation_id  INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'disconnected')),
    backup_schedule  TEXT NOT NULL DEFAULT 'daily',
    retention_days   INTEGER NOT NULL DEFAULT 90,
    connected_by     TEXT NOT NULL,             -- technician id
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    last_synced_at   TEXT,
    UNIQUE (tenant_id, provider, account_id)
);
-- One tenant per installation: an installation id another tenant holds is refused.
CREATE UNIQUE INDEX organizations_installation ON organizations (provider, installation_id);
CREATE INDEX organizations_tenant ON organizations (tenant_id, status);

CREATE TABLE repositories (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    github_id        INTEGER NOT NULL,
    name             TEXT NOT NULL,
    full_name        TEXT NOT NULL,
    private          INTEGER NOT NULL,
    default_branch   TEXT,
    html_url         TEXT,
    archived         INTEGER NOT NULL DEFAULT 0,
    visibility       TEXT,
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (org_id, github_id)
);

-- Filled by the analysis pipeline later; created as a stub per repository.
CREATE TABLE application_profiles (
    repository_id    TEXT PRIMARY KEY REFERENCES repositories (id),
    status           TEXT NOT NULL DEFAULT 'stub',
    created_at       TEXT NOT NULL
);

CREATE TABLE backup_jobs (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    repository_id    TEXT NOT NULL REFERENCES repositories (id),
    kind             TEXT NOT NULL,             -- 'initial' (on connect / discovery)
    priority         TEXT NOT NULL CHECK (priority IN ('high', 'normal', 'low')),
    status           TEXT NOT NULL CHECK (status IN ('queued', 'received', 'paused')),
    dedupe_key       TEXT NOT NULL UNIQUE,      -- makes job creation idempotent
    created_at       TEXT NOT NULL,
    updated_at       TEXT,                      -- last status change (paused, resumed, received)
    run_id           TEXT,                      -- the enumeration run that created it
    received_at      TEXT                       -- set once by the queue consumer
);
CREATE INDEX backup_jobs_org ON backup_jobs (org_id, status);
CREATE INDEX backup_jobs_run ON backup_jobs (org_id, run_id);

-- A state token is spent by inserting its nonce here: the primary key makes it single use even
-- though KV (where it was issued) is eventually consistent. The callback's writes sit in the same
-- D1 batch and only apply when this invocation is the one that spent the nonce.
CREATE TABLE consumed_states (
    nonce            TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    consumed_at      TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    spent_by         TEXT NOT NULL              -- the invocation that spent it (gates its writes)
);

-- `setup_action=request`: an org owner must approve the installation; recorded per tenant.
CREATE TABLE installation_requests (
    nonce            TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    technician_id    TEXT NOT NULL,
    requested_at     TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
);

-- Where the current enumeration of an organization stands. Each page moves `next_url` with a
-- compare-and-set, so a redelivered continuation cannot process a page twice.
CREATE TABLE enumeration_runs (
    org_id           TEXT PRIMARY KEY REFERENCES organizations (id),
    run_id           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('in_progress', 'complete', 'failed')),
    next_url         TEXT,
    pages            INTEGER NOT NULL DEFAULT 0,
    found            INTEGER NOT NULL DEFAULT 0,
    added            INTEGER NOT NULL DEFAULT 0,
    started_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    last_error       TEXT
);
