-- Analysis jobs are sent after the webhook's answer, like a push's backup job (issue #11): the
-- row is committed stamped as sent, and should that send be lost, the hourly dispatcher
-- re-sends it once the stamp is older than its cutoff. The row holds everything the message
-- carries, so the dispatcher can rebuild it.

-- When the job was last sent (the webhook's send after its answer, or the dispatcher's).
ALTER TABLE analysis_jobs ADD COLUMN dispatched_at TEXT;
-- More relevant files changed than `files` lists (the message's `truncated`).
ALTER TABLE analysis_jobs ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
-- Jobs waiting (`queued`) that need sending, oldest stamp first.
CREATE INDEX analysis_jobs_dispatch ON analysis_jobs (status, dispatched_at);
