-- Real backups (issue #9): where each repository is cloned from, and each backup's record.

-- The provider's https clone URL (GitHub `clone_url`, GitLab `http_url_to_repo`, Azure DevOps
-- `remoteUrl` without user info), kept current by enumeration, sync and webhooks.
ALTER TABLE repositories ADD COLUMN git_url TEXT;
-- The last backup's finish time and outcome (`ok`, `unchanged`, `empty`, `failed`).
ALTER TABLE repositories ADD COLUMN last_backup_at TEXT;
ALTER TABLE repositories ADD COLUMN last_backup_status TEXT;

-- A full bundle at least every `full_every` snapshots of a repository (1: always full), so
-- restore chains stay short.
ALTER TABLE organizations ADD COLUMN full_every INTEGER NOT NULL DEFAULT 7;

-- `snapshots` (0003) becomes the record of each backup. `status` stays the retention state
-- (`available` / `expired`); `outcome` is how the backup went:
--   running    a backup is in progress (its multipart `upload_id` is recorded, so an abandoned
--              one can be aborted and no orphaned object stays);
--   ok         a bundle was stored and verified (pack signature, version, object count and
--              trailing SHA-1; `sha256` of the whole bundle);
--   unchanged  the refs were those of the previous ok snapshot: nothing fetched or stored;
--   empty      the repository has no refs;
--   failed     the last attempt failed (`error` says why, never a secret).
-- `kind` is `full` or `incremental` (its `base_snapshot_id` is the previous ok snapshot, whose
-- tips are its prerequisites); `refs` is the JSON object refname → object id the bundle holds.
ALTER TABLE snapshots ADD COLUMN job_id TEXT;
ALTER TABLE snapshots ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok'
    CHECK (outcome IN ('running', 'ok', 'unchanged', 'empty', 'failed'));
ALTER TABLE snapshots ADD COLUMN kind TEXT CHECK (kind IN ('full', 'incremental'));
ALTER TABLE snapshots ADD COLUMN base_snapshot_id TEXT;
ALTER TABLE snapshots ADD COLUMN started_at TEXT;
ALTER TABLE snapshots ADD COLUMN finished_at TEXT;
ALTER TABLE snapshots ADD COLUMN refs TEXT;
ALTER TABLE snapshots ADD COLUMN object_key TEXT;
ALTER TABLE snapshots ADD COLUMN upload_id TEXT;
ALTER TABLE snapshots ADD COLUMN sha256 TEXT;
ALTER TABLE snapshots ADD COLUMN pack_objects INTEGER;
ALTER TABLE snapshots ADD COLUMN error TEXT;
CREATE INDEX snapshots_repository ON snapshots (repository_id, taken_at);
-- At most one backup of a repository runs at a time.
CREATE UNIQUE INDEX snapshots_running ON snapshots (repository_id) WHERE outcome = 'running';
