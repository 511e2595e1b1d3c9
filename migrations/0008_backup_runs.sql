-- Backup jobs that really back up (issue #9) have more states than "received":
--   queued    waiting to be sent or taken (the dispatcher re-sends those never taken);
--   running   a backup of it is in progress (its snapshot is `running`);
--   received  settled: a snapshot recorded it (`ok`, `unchanged`, `empty`), another backup that
--             started after the job was created covered it, or there was nothing to do;
--   failed    it failed for good (a permanent error, or every retry); the snapshot says why;
--   paused    its repository was removed.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt (nothing references it).
CREATE TABLE backup_jobs_v8 (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    repository_id    TEXT NOT NULL REFERENCES repositories (id),
    kind             TEXT NOT NULL,             -- 'initial', 'scheduled', 'manual', 'push'
    priority         TEXT NOT NULL CHECK (priority IN ('high', 'normal', 'low')),
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'received', 'failed', 'paused')),
    dedupe_key       TEXT NOT NULL UNIQUE,      -- makes job creation idempotent
    created_at       TEXT NOT NULL,
    updated_at       TEXT,                      -- last status change
    run_id           TEXT,                      -- the enumeration run that created it
    received_at      TEXT,                      -- set once the job is settled
    dispatched_at    TEXT                       -- last sent to the queue
);
INSERT INTO backup_jobs_v8 (id, org_id, repository_id, kind, priority, status, dedupe_key, created_at,
        updated_at, run_id, received_at, dispatched_at)
    SELECT id, org_id, repository_id, kind, priority, status, dedupe_key, created_at,
        updated_at, run_id, received_at, dispatched_at FROM backup_jobs;
DROP TABLE backup_jobs;
ALTER TABLE backup_jobs_v8 RENAME TO backup_jobs;
CREATE INDEX backup_jobs_org ON backup_jobs (org_id, status);
CREATE INDEX backup_jobs_run ON backup_jobs (org_id, run_id);
CREATE INDEX backup_jobs_dispatch ON backup_jobs (status, dispatched_at);
CREATE INDEX backup_jobs_repository ON backup_jobs (repository_id, status);

-- The branch the repository's HEAD named when the snapshot was taken (`symref=HEAD:…` in the
-- ref advertisement): a bundle cannot say it, so a restore sets it (`git symbolic-ref HEAD`).
ALTER TABLE snapshots ADD COLUMN head TEXT;
