-- Webhook deliveries (idempotency by X-GitHub-Delivery), the per-organization activity log, and
-- analysis jobs queued by pushes that touch dependency or structure files.

-- A delivery is inserted first in the batch that applies its effects: a redelivery violates
-- the primary key and the whole batch rolls back, so it changes nothing. Purged by the cron.
CREATE TABLE webhook_deliveries (
    delivery_id      TEXT PRIMARY KEY,
    event            TEXT NOT NULL,
    action           TEXT,
    installation_id  INTEGER,
    received_at      TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

-- Every state change of an organization, readable by the portal (GET /v1/orgs/{id}/activity).
CREATE TABLE org_activity (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    delivery_id      TEXT,                      -- the webhook delivery that caused it, if any
    event            TEXT NOT NULL,             -- e.g. 'installation.suspend'
    detail           TEXT NOT NULL,             -- human-readable summary
    created_at       TEXT NOT NULL
);
CREATE INDEX org_activity_org ON org_activity (org_id, id);

CREATE TABLE analysis_jobs (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    repository_id    TEXT NOT NULL REFERENCES repositories (id),
    delivery_id      TEXT NOT NULL UNIQUE,
    git_ref          TEXT NOT NULL,
    head_commit      TEXT NOT NULL,
    files            TEXT NOT NULL,             -- JSON array of {path, change, kind}
    status           TEXT NOT NULL CHECK (status IN ('queued', 'received')),
    created_at       TEXT NOT NULL,
    received_at      TEXT
);
