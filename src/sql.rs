//! Every SQL statement the gateway runs against D1, in one place. The schema is in
//! `migrations/`. Parameters are numbered; each constant's doc lists them.
//!
//! Pages of repositories are written with `json_each` over one JSON-array parameter, so a page
//! of 100 costs one statement per table and stays far below D1's 100-parameters limit.

/// ?1 installation id → `id`, `tenant_id`.
pub const ORG_BY_INSTALLATION: &str =
    "SELECT id, tenant_id FROM organizations WHERE provider = 'github' AND installation_id = ?1";

/// ?1 nonce (hex), ?2 tenant, ?3 now, ?4 state expiry, ?5 invocation id. `changes = 0` means
/// the state was already spent; the statements after it in the batch then write nothing.
pub const CONSUME_STATE: &str =
    "INSERT INTO consumed_states (nonce, tenant_id, consumed_at, expires_at, spent_by) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (nonce) DO NOTHING";

/// Appended to the callback's writes: true only in the invocation that spent nonce ?N.
macro_rules! spent_here {
    ($nonce:literal, $by:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM consumed_states WHERE nonce = ",
            $nonce,
            " AND spent_by = ",
            $by,
            ")"
        )
    };
}

/// ?1 nonce, ?2 tenant, ?3 technician, ?4 now, ?5 invocation id, ?6 the requester's GitHub
/// login (NULL when GitHub sent no OAuth code).
pub const RECORD_INSTALLATION_REQUEST: &str = concat!(
    "INSERT INTO installation_requests (nonce, tenant_id, technician_id, requested_at, requester_login) \
     SELECT ?1, ?2, ?3, ?4, ?6 WHERE ",
    spent_here!("?1", "?5"),
    " ON CONFLICT (nonce) DO NOTHING"
);

/// ?1 new id, ?2 tenant, ?3 account id, ?4 login, ?5 display name, ?6 avatar, ?7 account type,
/// ?8 installation id, ?9 status, ?10 technician, ?11 now, ?12 nonce, ?13 invocation id → the
/// org's `id` (the existing one on reconnect: its schedule and retention are kept).
pub const UPSERT_ORG: &str = concat!(
    "INSERT INTO organizations (id, tenant_id, provider, account_id, login, display_name, avatar_url, \
         account_type, installation_id, status, connected_by, created_at, updated_at) \
     SELECT ?1, ?2, 'github', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11 WHERE ",
    spent_here!("?12", "?13"),
    " ON CONFLICT (tenant_id, provider, account_id) DO UPDATE SET \
         login = excluded.login, display_name = excluded.display_name, avatar_url = excluded.avatar_url, \
         account_type = excluded.account_type, installation_id = excluded.installation_id, \
         status = excluded.status, updated_at = excluded.updated_at \
     RETURNING id"
);

/// ?1 tenant, ?2 account id (the org just upserted), ?3 run id, ?4 first page URL, ?5 now,
/// ?6 nonce, ?7 invocation id, ?8 provider. Starting a run supersedes any older one: its
/// continuations find another run id and stop.
pub const START_RUN: &str = concat!(
    "INSERT INTO enumeration_runs (org_id, run_id, status, next_url, started_at, updated_at) \
     SELECT id, ?3, 'in_progress', ?4, ?5, ?5 FROM organizations \
         WHERE tenant_id = ?1 AND provider = ?8 AND account_id = ?2 AND ",
    spent_here!("?6", "?7"),
    " ON CONFLICT (org_id) DO UPDATE SET run_id = excluded.run_id, status = 'in_progress', \
         next_url = excluded.next_url, pages = 0, found = 0, added = 0, \
         started_at = excluded.started_at, updated_at = excluded.updated_at, last_error = NULL"
);

/// ?1 org → the org's provider, credentials and status with its run's cursor.
pub const RUN_FOR_ORG: &str =
    "SELECT o.provider AS provider, o.installation_id AS installation_id, o.connection_id AS connection_id, \
         o.api_url AS api_url, o.status AS status, o.login AS login, \
         r.run_id AS run_id, r.next_url AS next_url, r.found AS found, r.added AS added \
     FROM organizations o JOIN enumeration_runs r ON r.org_id = o.id WHERE o.id = ?1";

/// Statements over a set of repositories given as one JSON array: ?1 org, ?2 the array (objects
/// with GitHub's `id`, `name`, `full_name`, `private`, `default_branch`, `html_url`, `archived`,
/// `visibility`, and `git_url`: see `provider::RepositoryRecord`), ?3 now. `gate` is a condition that must hold for anything to be written, with
/// its own parameters from ?4 on.
pub struct RepositorySet {
    gate: &'static str,
    /// What goes into `backup_jobs.run_id`.
    run: &'static str,
    /// What goes into `repositories.last_seen_run`: the run whose page listed it, or, for a
    /// webhook, the org's current run (so a sync in progress counts it as seen: see
    /// `REMOVE_UNSEEN`).
    seen: &'static str,
    /// How a known repository's `archived` follows: listings carry it, but webhook
    /// repository lists (`installation_repositories`) do not, so there it is kept.
    archived: &'static str,
}

/// A page of an enumeration run: ?4 run id, ?5 URL of this page. Writes only while the run's
/// cursor still points at this page, so a page is applied once.
pub const RUN_PAGE: RepositorySet = RepositorySet {
    gate: "EXISTS (SELECT 1 FROM enumeration_runs WHERE org_id = ?1 AND run_id = ?4 AND next_url = ?5)",
    run: "?4",
    seen: "?4",
    archived: "excluded.archived",
};

/// Repositories named by a webhook delivery (its idempotency comes from the delivery log).
pub const DELIVERED: RepositorySet = RepositorySet {
    gate: "1",
    run: "NULL",
    seen: "(SELECT run_id FROM enumeration_runs WHERE org_id = ?1)",
    archived: "repositories.archived",
};

const REPOSITORY_COLUMNS: &str = "INSERT INTO repositories (id, org_id, provider_repo_id, name, full_name, private, default_branch, \
         html_url, archived, visibility, git_url, status, created_at, updated_at, last_seen_run) \
     SELECT lower(hex(randomblob(16))), ?1, json_extract(j.value, '$.id'), json_extract(j.value, '$.name'), \
         json_extract(j.value, '$.full_name'), coalesce(json_extract(j.value, '$.private'), 0), \
         json_extract(j.value, '$.default_branch'), json_extract(j.value, '$.html_url'), \
         coalesce(json_extract(j.value, '$.archived'), 0), json_extract(j.value, '$.visibility'), \
         json_extract(j.value, '$.git_url'),";

const FOLLOW_GITHUB: &str =
    "name = excluded.name, full_name = excluded.full_name, private = excluded.private, \
     default_branch = coalesce(excluded.default_branch, repositories.default_branch), \
     html_url = coalesce(excluded.html_url, repositories.html_url), \
     visibility = coalesce(excluded.visibility, repositories.visibility), \
     git_url = coalesce(excluded.git_url, repositories.git_url), updated_at = excluded.updated_at";

/// `CROSS JOIN` keeps `json_each` the outer loop: one index lookup per page entry instead of a
/// scan of the org's repositories per entry (SQLite would otherwise choose the latter).
const SET_REPOSITORIES: &str = "FROM json_each(?2) AS j CROSS JOIN repositories AS r \
     ON r.org_id = ?1 AND r.provider_repo_id = json_extract(j.value, '$.id')";

impl RepositorySet {
    /// Inserts new repositories, updates known ones and re-activates removed ones.
    pub fn upsert_active(&self) -> String {
        format!(
            "{REPOSITORY_COLUMNS} 'active', ?3, ?3, {seen} FROM json_each(?2) AS j WHERE {gate} \
             ON CONFLICT (org_id, provider_repo_id) DO UPDATE SET {FOLLOW_GITHUB}, status = 'active', \
                 archived = {archived}, \
                 last_seen_run = coalesce(excluded.last_seen_run, repositories.last_seen_run)",
            seen = self.seen,
            archived = self.archived,
            gate = self.gate
        )
    }

    /// Inserts repositories not known yet; never resurrects one recorded as removed (a
    /// `repository.created` delivered after its `deleted`).
    pub fn insert_if_absent(&self) -> String {
        format!(
            "{REPOSITORY_COLUMNS} 'active', ?3, ?3, {seen} FROM json_each(?2) AS j WHERE {gate} \
             ON CONFLICT (org_id, provider_repo_id) DO NOTHING",
            seen = self.seen,
            gate = self.gate
        )
    }

    /// Marks repositories removed (history kept), recording unknown ones as removed too so a
    /// late `created` cannot bring them back.
    pub fn mark_removed(&self) -> String {
        format!(
            "{REPOSITORY_COLUMNS} 'removed', ?3, ?3, {seen} FROM json_each(?2) AS j WHERE {gate} \
             ON CONFLICT (org_id, provider_repo_id) DO UPDATE SET status = 'removed', updated_at = excluded.updated_at",
            seen = self.seen,
            gate = self.gate
        )
    }

    /// Updates known repositories from GitHub's view (rename, transfer, visibility, archive,
    /// default branch); unknown ones are left alone.
    pub fn follow(&self) -> String {
        format!(
            "UPDATE repositories SET name = json_extract(j.value, '$.name'), full_name = json_extract(j.value, '$.full_name'), \
                 private = coalesce(json_extract(j.value, '$.private'), private), \
                 default_branch = coalesce(json_extract(j.value, '$.default_branch'), default_branch), \
                 html_url = coalesce(json_extract(j.value, '$.html_url'), html_url), \
                 archived = coalesce(json_extract(j.value, '$.archived'), archived), \
                 visibility = coalesce(json_extract(j.value, '$.visibility'), visibility), \
                 git_url = coalesce(json_extract(j.value, '$.git_url'), git_url), updated_at = ?3, \
                 last_seen_run = coalesce({seen}, last_seen_run) \
             FROM json_each(?2) AS j WHERE repositories.org_id = ?1 \
                 AND repositories.provider_repo_id = json_extract(j.value, '$.id') AND {gate}",
            seen = self.seen,
            gate = self.gate
        )
    }

    pub fn insert_profiles(&self) -> String {
        format!(
            "INSERT INTO application_profiles (repository_id, status, created_at) \
             SELECT r.id, 'stub', ?3 {SET_REPOSITORIES} WHERE r.status = 'active' AND {gate} \
             ON CONFLICT (repository_id) DO NOTHING",
            gate = self.gate
        )
    }

    /// One initial backup job per active repository, once (`dedupe_key`). Returns the jobs
    /// created (`id`, `repository_id`): the caller sends exactly those right after the commit
    /// (hence `dispatched_at`; the dispatcher re-sends any that never arrive).
    pub fn insert_initial_jobs(&self) -> String {
        format!(
            "INSERT INTO backup_jobs (id, org_id, repository_id, kind, priority, status, dedupe_key, run_id, created_at, \
                 dispatched_at) \
             SELECT lower(hex(randomblob(16))), ?1, r.id, 'initial', 'normal', 'queued', 'initial:' || r.id, {run}, ?3, ?3 \
             {SET_REPOSITORIES} WHERE r.status = 'active' AND {gate} \
             ON CONFLICT (dedupe_key) DO NOTHING \
             RETURNING id, repository_id",
            run = self.run,
            gate = self.gate
        )
    }

    /// Resumes the paused jobs of repositories that are active again; returns them to be sent.
    pub fn resume_jobs(&self) -> String {
        format!(
            "UPDATE backup_jobs SET status = 'queued', updated_at = ?3, dispatched_at = ?3 WHERE status = 'paused' AND repository_id IN \
                 (SELECT r.id {SET_REPOSITORIES} WHERE r.status = 'active') AND {gate} \
             RETURNING id, repository_id",
            gate = self.gate
        )
    }

    /// Pauses the queued jobs of these repositories (they were removed).
    pub fn pause_jobs(&self) -> String {
        format!(
            "UPDATE backup_jobs SET status = 'paused', updated_at = ?3 WHERE status = 'queued' AND repository_id IN \
                 (SELECT r.id {SET_REPOSITORIES}) AND {gate}",
            gate = self.gate
        )
    }
}

/// ?1 org, ?2 run id, ?3 this page's URL, ?4 next URL or NULL (done), ?5 repositories on the
/// page, ?6 now. Moves the cursor (compare-and-set on ?3); `changes = 0` means another
/// invocation already applied this page.
pub const ADVANCE_RUN: &str =
    "UPDATE enumeration_runs SET next_url = ?4, pages = pages + 1, found = found + ?5, \
         added = (SELECT count(*) FROM backup_jobs WHERE org_id = ?1 AND run_id = ?2), \
         status = CASE WHEN ?4 IS NULL THEN 'complete' ELSE 'in_progress' END, updated_at = ?6 \
     WHERE org_id = ?1 AND run_id = ?2 AND next_url = ?3";

/// ?1 org, ?2 run id, ?3 now: stamps the org once its run has completed.
pub const STAMP_SYNCED: &str = "UPDATE organizations SET last_synced_at = ?3, updated_at = ?3 \
     WHERE id = ?1 AND EXISTS (SELECT 1 FROM enumeration_runs WHERE org_id = ?1 AND run_id = ?2 AND status = 'complete')";

/// ?1 org, ?2 run id, ?3 reason, ?4 now.
pub const FAIL_RUN: &str =
    "UPDATE enumeration_runs SET status = 'failed', last_error = ?3, updated_at = ?4 \
     WHERE org_id = ?1 AND run_id = ?2";

/// ?1 id, ?2 tenant, ?3 technician, ?4 provider, ?5 detail JSON, ?6 now, ?7 expiry, ?8 state
/// nonce, ?9 invocation id: recorded only by the callback that spent the state.
pub const INSERT_PENDING_CONNECTION: &str = concat!(
    "INSERT INTO pending_connections (id, tenant_id, technician_id, provider, detail, created_at, expires_at) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE ",
    spent_here!("?8", "?9")
);

/// ?1 id → the pending connection (whoever it belongs to: the caller compares).
pub const PENDING_CONNECTION: &str =
    "SELECT id, tenant_id, technician_id, provider, detail, created_at, expires_at \
     FROM pending_connections WHERE id = ?1";

/// ?1 id.
pub const DELETE_PENDING_CONNECTION: &str = "DELETE FROM pending_connections WHERE id = ?1";

/// ?1 id, ?2 its confirmation nonce (`confirm:<id>`), ?3 invocation id: the confirmation that
/// spent the nonce removes the row with its writes.
pub const SPEND_PENDING_CONNECTION: &str = concat!(
    "DELETE FROM pending_connections WHERE id = ?1 AND ",
    spent_here!("?2", "?3")
);

/// ?1 now: unconfirmed connections past their expiry (their sealed tokens go with them).
pub const PURGE_PENDING_CONNECTIONS: &str = "DELETE FROM pending_connections WHERE expires_at < ?1";

/// ?1 now: spent states past their expiry can go (an expired token is refused by its own expiry).
pub const PURGE_CONSUMED_STATES: &str = "DELETE FROM consumed_states WHERE expires_at < ?1";

/// ?1 delivery id, ?2 event, ?3 action, ?4 installation id, ?5 now. No `ON CONFLICT`: a
/// redelivery fails here and rolls back the batch it leads.
pub const RECORD_DELIVERY: &str =
    "INSERT INTO webhook_deliveries (delivery_id, event, action, installation_id, received_at) \
     VALUES (?1, ?2, ?3, ?4, ?5)";

/// ?1 delivery id, ?2 event, ?3 action, ?4 installation id, ?5 now: `RECORD_DELIVERY` for an
/// installation connected to an org, nothing otherwise (such deliveries are not recorded) → the
/// delivery id when it was recorded, so no row means "not connected". A redelivery fails here as
/// well, and rolls back the batch it leads.
pub const RECORD_CONNECTED_DELIVERY: &str =
    "INSERT INTO webhook_deliveries (delivery_id, event, action, installation_id, received_at) \
     SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS \
         (SELECT 1 FROM organizations WHERE provider = 'github' AND installation_id = ?4) \
     RETURNING delivery_id";

/// ?1 delivery id → 1 row when it was recorded.
pub const DELIVERY_SEEN: &str = "SELECT 1 AS seen FROM webhook_deliveries WHERE delivery_id = ?1";

/// ?1 cutoff time: the delivery log keeps 14 days (GitHub allows redelivery for 3).
pub const PURGE_DELIVERIES: &str = "DELETE FROM webhook_deliveries WHERE received_at < ?1";

/// ?1 installation id → the organizations (one at most) it is connected to.
pub const ORG_FOR_INSTALLATION: &str =
    "SELECT id, tenant_id, status, login FROM organizations WHERE provider = 'github' AND installation_id = ?1";

/// ?1 org, ?2 new status, ?3 now, ?4 statuses it may change from (JSON array).
pub const SET_ORG_STATUS: &str = "UPDATE organizations SET status = ?2, updated_at = ?3 \
     WHERE id = ?1 AND status IN (SELECT value FROM json_each(?4))";

/// ?1 org, ?2 now: pauses every queued backup job of the org (it was disconnected).
pub const PAUSE_ORG_JOBS: &str =
    "UPDATE backup_jobs SET status = 'paused', updated_at = ?2 WHERE org_id = ?1 AND status = 'queued'";

/// ?1 org, ?2 delivery id (or NULL), ?3 event, ?4 detail, ?5 now.
pub const RECORD_ACTIVITY: &str =
    "INSERT INTO org_activity (org_id, delivery_id, event, detail, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5)";

/// ?1 org, ?2 event, ?3 detail, ?4 now: recorded only when the org was disconnected just now
/// (by the statement before it in the batch), so disconnecting twice logs once.
pub const RECORD_DISCONNECT_ACTIVITY: &str = "INSERT INTO org_activity (org_id, delivery_id, event, detail, created_at) \
     SELECT ?1, NULL, ?2, ?3, ?4 WHERE EXISTS \
         (SELECT 1 FROM organizations WHERE id = ?1 AND status = 'disconnected' AND updated_at = ?4)";

/// ?1 org, ?2 before id (exclusive; a large number for the first page), ?3 limit.
pub const LIST_ACTIVITY: &str =
    "SELECT id, delivery_id, event, detail, created_at FROM org_activity \
     WHERE org_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3";

/// ?1 new id, ?2 installation id, ?3 repository GitHub id, ?4 delivery id, ?5 ref, ?6 head
/// commit, ?7 files JSON, ?8 now, ?9 1 when more files changed than ?7 lists → the job (`id`,
/// `org_id`, `repository_id`) when the installation is connected to an active org and the repository is
/// known and active. The org is found here, in the delivery's batch, so that a push costs one
/// D1 round trip. Like a push's backup job it is stamped as sent (`dispatched_at`): the webhook
/// sends it after answering, and the dispatcher re-sends it should that send be lost.
pub const INSERT_ANALYSIS_JOB: &str = "INSERT INTO analysis_jobs (id, org_id, repository_id, delivery_id, git_ref, head_commit, files, truncated, status, created_at, dispatched_at) \
     SELECT ?1, o.id, r.id, ?4, ?5, ?6, ?7, ?9, 'queued', ?8, ?8 \
     FROM organizations o JOIN repositories r ON r.org_id = o.id \
     WHERE o.provider = 'github' AND o.installation_id = ?2 AND o.status = 'active' \
         AND r.provider_repo_id = ?3 AND r.status = 'active' \
     ON CONFLICT (delivery_id) DO NOTHING \
     RETURNING id, org_id, repository_id";

/// ?1 installation id, ?2 the provider's repository id, ?3 delivery id, ?4 now: a push's backup
/// job for an active repository of the active org the installation is connected to, unless one
/// is already waiting (pushes are coalesced: at most one waits while another may be running) →
/// the job created (`id`, `org_id`, `repository_id`). It is stamped as sent (`dispatched_at`): the
/// webhook sends it after answering, and should that send be lost, the dispatcher re-sends it
/// once `dispatched_at` is older than its cutoff.
pub const INSERT_PUSH_BACKUP_JOB: &str =
    "INSERT INTO backup_jobs (id, org_id, repository_id, kind, priority, status, dedupe_key, created_at, dispatched_at) \
     SELECT lower(hex(randomblob(16))), o.id, r.id, 'push', 'normal', 'queued', 'push:' || ?3, ?4, ?4 \
     FROM organizations o JOIN repositories r ON r.org_id = o.id \
     WHERE o.provider = 'github' AND o.installation_id = ?1 AND o.status = 'active' \
         AND r.provider_repo_id = ?2 AND r.status = 'active' \
         AND NOT EXISTS (SELECT 1 FROM backup_jobs q WHERE q.repository_id = r.id AND q.status = 'queued') \
     ON CONFLICT (dedupe_key) DO NOTHING \
     RETURNING id, org_id, repository_id";

/// ?1 JSON array of analysis job ids, ?2 now.
pub const MARK_ANALYSIS_RECEIVED: &str =
    "UPDATE analysis_jobs SET status = 'received', received_at = ?2 \
     WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'queued'";

/// At the end of a complete run (?1 org, ?2 run id, ?3 now): the active repositories the run
/// did not see are gone from the installation. "Seen" is `last_seen_run`: set by the run's
/// pages, and by every webhook write to the org's current run, so a repository created or
/// changed by a webhook while the run was listing counts as seen. No clock is involved: two
/// writes in the same second (or millisecond) cannot be mistaken for each other.
/// Only when the run saw at least as many repositories as GitHub's last page reported in
/// `total_count` (?4): page-numbered listings can skip an entry when the installation changes
/// mid-run, and a skipped repository must not be taken for a removed one.
macro_rules! unseen {
    () => {
        "org_id = ?1 AND status = 'active' AND coalesce(last_seen_run, '') <> ?2 AND EXISTS \
         (SELECT 1 FROM enumeration_runs WHERE org_id = ?1 AND run_id = ?2 AND status = 'complete' \
             AND found >= ?4)"
    };
}

/// ?1 org, ?2 run id, ?3 now, ?4 GitHub's `total_count`: pauses the queued jobs of the
/// repositories about to be removed.
pub const PAUSE_UNSEEN_JOBS: &str = concat!(
    "UPDATE backup_jobs SET status = 'paused', updated_at = ?3 WHERE status = 'queued' AND repository_id IN \
     (SELECT id FROM repositories WHERE ",
    unseen!(),
    ")"
);

/// ?1 org, ?2 run id, ?3 now, ?4 GitHub's `total_count`: marks them removed (history kept);
/// `changes` is the count.
pub const REMOVE_UNSEEN: &str = concat!(
    "UPDATE repositories SET status = 'removed', updated_at = ?3 WHERE ",
    unseen!()
);

/// ?1 org, ?2 run id, ?3 repositories removed, ?4 now.
pub const SET_RUN_REMOVED: &str =
    "UPDATE enumeration_runs SET removed = ?3, updated_at = ?4 WHERE org_id = ?1 AND run_id = ?2";

/// ?1 org, ?2 run id, ?3 repositories removed, ?4 now: the completed run in the activity log.
pub const RECORD_RUN_ACTIVITY: &str = "INSERT INTO org_activity (org_id, delivery_id, event, detail, created_at) \
     SELECT ?1, NULL, 'sync.completed', 'repositories enumerated: ' || found || ' found, ' || added || ' new, ' \
         || CAST(?3 AS INTEGER) || ' removed', ?4 FROM enumeration_runs WHERE org_id = ?1 AND run_id = ?2";

/// ?1 org, ?2 run id, ?3 first page URL, ?4 now: a sync run (manual or scheduled).
pub const START_SYNC_RUN: &str =
    "INSERT INTO enumeration_runs (org_id, run_id, status, next_url, started_at, updated_at) \
     VALUES (?1, ?2, 'in_progress', ?3, ?4, ?4) \
     ON CONFLICT (org_id) DO UPDATE SET run_id = excluded.run_id, status = 'in_progress', \
         next_url = excluded.next_url, pages = 0, found = 0, added = 0, removed = 0, \
         started_at = excluded.started_at, updated_at = excluded.updated_at, last_error = NULL";

/// ?1 tenant, ?2 account id, ?3 now, ?4 nonce, ?5 invocation id, ?6 provider: on (re)connect,
/// the paused jobs of the org's active repositories are queued again (and left for the
/// dispatcher).
pub const RESUME_ORG_JOBS_ON_CONNECT: &str = concat!(
    "UPDATE backup_jobs SET status = 'queued', updated_at = ?3, dispatched_at = NULL \
     WHERE status = 'paused' AND org_id = \
         (SELECT id FROM organizations WHERE tenant_id = ?1 AND provider = ?6 AND account_id = ?2) \
     AND repository_id IN (SELECT id FROM repositories WHERE status = 'active') AND ",
    spent_here!("?4", "?5")
);

/// ?1 tenant, ?2 account id, ?3 detail, ?4 now, ?5 nonce, ?6 invocation id, ?7 provider: the
/// (re)connect in the org's activity log.
pub const RECORD_CONNECT_ACTIVITY: &str = concat!(
    "INSERT INTO org_activity (org_id, delivery_id, event, detail, created_at) \
     SELECT id, NULL, 'org.connected', ?3, ?4 FROM organizations \
     WHERE tenant_id = ?1 AND provider = ?7 AND account_id = ?2 AND ",
    spent_here!("?5", "?6")
);

/// The columns the portal sees of an organization.
macro_rules! org_columns {
    () => {
        "SELECT o.id, o.provider, o.login, o.display_name, o.avatar_url, o.account_type, \
             CASE WHEN o.provider = 'github' THEN o.installation_id END AS installation_id, \
             o.status, o.client_label AS client, o.backup_schedule, o.backup_hour, o.retention_days, o.full_every, \
             o.last_synced_at, o.created_at, o.updated_at, \
             (SELECT count(*) FROM repositories r WHERE r.org_id = o.id AND r.status = 'active') AS repo_count, \
             (SELECT count(*) FROM repositories r WHERE r.org_id = o.id AND r.status = 'active' AND EXISTS \
                 (SELECT 1 FROM snapshots s WHERE s.repository_id = r.id AND s.outcome = 'ok' AND s.status = 'available')) \
                 AS repos_backed_up, \
             (SELECT c.base_url FROM provider_connections c WHERE c.id = o.connection_id) AS connection_url \
         FROM organizations o "
    };
}

/// ?1 tenant, ?2 client or NULL, ?3 provider or NULL, ?4 status or NULL, ?5 cursor (last id
/// seen, '' first), ?6 limit.
pub const LIST_ORGS: &str = concat!(
    org_columns!(),
    "WHERE o.tenant_id = ?1 AND (?2 IS NULL OR o.client_label = ?2) AND (?3 IS NULL OR o.provider = ?3) \
         AND (?4 IS NULL OR o.status = ?4) AND o.id > ?5 ORDER BY o.id LIMIT ?6"
);

/// ?1 org, ?2 tenant.
pub const GET_ORG: &str = concat!(org_columns!(), "WHERE o.id = ?1 AND o.tenant_id = ?2");

/// ?1 org, ?2 status or NULL, ?3 cursor (last id, '' first), ?4 limit.
pub const LIST_REPOS: &str =
    "SELECT id, provider_repo_id, name, full_name, private, default_branch, html_url, archived, \
         visibility, status, created_at, updated_at, last_backup_at, last_backup_status FROM repositories \
     WHERE org_id = ?1 AND (?2 IS NULL OR status = ?2) AND id > ?3 ORDER BY id LIMIT ?4";

/// ?1 org, ?2 tenant, ?3 1 when the client label is being set, ?4 client label (NULL clears),
/// ?5 schedule, ?6 hour, ?7 retention days, ?9 full every (NULL keeps each), ?8 now.
pub const UPDATE_ORG_SETTINGS: &str = "UPDATE organizations SET \
         client_label = CASE WHEN ?3 = 1 THEN ?4 ELSE client_label END, \
         backup_schedule = coalesce(?5, backup_schedule), backup_hour = coalesce(?6, backup_hour), \
         retention_days = coalesce(?7, retention_days), full_every = coalesce(?9, full_every), updated_at = ?8 \
     WHERE id = ?1 AND tenant_id = ?2";

/// ?1 org → snapshots still kept.
pub const COUNT_KEPT_SNAPSHOTS: &str =
    "SELECT count(*) AS kept FROM snapshots WHERE org_id = ?1 AND status = 'available'";

/// ?1 requester login, ?2 oldest request time considered → pending requests by that GitHub
/// user, newest first.
pub const PENDING_REQUESTS_BY_REQUESTER: &str =
    "SELECT nonce, tenant_id, technician_id FROM installation_requests \
     WHERE status = 'pending' AND requester_login = ?1 COLLATE NOCASE AND requested_at >= ?2 \
     ORDER BY requested_at DESC";

/// ?1 new org id, ?2 account id, ?3 login, ?4 avatar, ?5 account type, ?6 installation id,
/// ?7 now, ?8 the pending request's nonce → the org's id (an approved request becomes an
/// active org of the tenant that asked; an org it had is re-activated).
pub const LINK_APPROVED_ORG: &str = "INSERT INTO organizations (id, tenant_id, provider, account_id, login, avatar_url, \
         account_type, installation_id, status, connected_by, created_at, updated_at) \
     SELECT ?1, tenant_id, 'github', ?2, ?3, ?4, ?5, ?6, 'active', technician_id, ?7, ?7 \
     FROM installation_requests WHERE nonce = ?8 AND status = 'pending' \
     ON CONFLICT (tenant_id, provider, account_id) DO UPDATE SET login = excluded.login, \
         avatar_url = excluded.avatar_url, account_type = excluded.account_type, \
         installation_id = excluded.installation_id, status = 'active', updated_at = excluded.updated_at \
     RETURNING id";

/// ?1 nonce, ?2 installation id.
pub const MARK_REQUEST_LINKED: &str =
    "UPDATE installation_requests SET status = 'linked', installation_id = ?2 WHERE nonce = ?1 AND status = 'pending'";

/// ?1 installation id, ?2 delivery id, ?3 event, ?4 detail, ?5 now: activity of the org holding
/// the installation (written in the same batch that created it).
pub const RECORD_INSTALLATION_ACTIVITY: &str = "INSERT INTO org_activity (org_id, delivery_id, event, detail, created_at) \
     SELECT id, ?2, ?3, ?4, ?5 FROM organizations WHERE provider = 'github' AND installation_id = ?1";

/// ?1 cursor (last org id, '' first), ?2 limit → active organizations for the scheduled sync.
pub const ACTIVE_ORGS_AFTER: &str =
    "SELECT id FROM organizations WHERE status = 'active' AND id > ?1 ORDER BY id LIMIT ?2";

/// ?1 org → what a sync needs to know about it.
pub const ORG_FOR_SYNC: &str =
    "SELECT id, provider, installation_id, connection_id, api_url, status, login FROM organizations WHERE id = ?1";

/// ?1 now, ?2 UTC hour (0-23), ?3 1 on the weekly backup day (Monday), ?4 the hour's key
/// (`2026-11-30T02`): one scheduled backup job per active repository whose org is due, once,
/// unless one is already waiting.
pub const CREATE_SCHEDULED_JOBS: &str = "INSERT INTO backup_jobs (id, org_id, repository_id, kind, priority, status, dedupe_key, created_at) \
     SELECT lower(hex(randomblob(16))), o.id, r.id, 'scheduled', 'normal', 'queued', 'scheduled:' || r.id || ':' || ?4, ?1 \
     FROM organizations o JOIN repositories r ON r.org_id = o.id \
     WHERE o.status = 'active' AND r.status = 'active' AND o.backup_hour = ?2 \
         AND (o.backup_schedule = 'daily' OR (o.backup_schedule = 'weekly' AND ?3 = 1)) \
         AND NOT EXISTS (SELECT 1 FROM backup_jobs q WHERE q.repository_id = r.id AND q.status = 'queued') \
     ON CONFLICT (dedupe_key) DO NOTHING";

/// ?1 org or NULL (all), ?2 re-send cutoff (sent before this and still not received), ?3 limit
/// → queued jobs of active orgs that need sending.
pub const DISPATCHABLE_JOBS: &str =
    "SELECT j.id, j.org_id, j.repository_id, j.priority, o.provider, o.installation_id, o.connection_id \
     FROM backup_jobs j JOIN organizations o ON o.id = j.org_id \
     WHERE j.status = 'queued' AND o.status = 'active' AND (?1 IS NULL OR j.org_id = ?1) \
         AND (j.dispatched_at IS NULL OR j.dispatched_at < ?2) \
     ORDER BY j.created_at LIMIT ?3";

/// ?1 JSON array of job ids, ?2 now.
pub const MARK_DISPATCHED: &str =
    "UPDATE backup_jobs SET dispatched_at = ?2 WHERE id IN (SELECT value FROM json_each(?1))";

/// ?1 org or NULL (all), ?2 re-send cutoff, ?3 limit → queued analysis jobs of active orgs
/// whose send (after the webhook's answer) is older than the cutoff: everything their message
/// carries.
pub const DISPATCHABLE_ANALYSIS_JOBS: &str =
    "SELECT j.id, j.org_id, j.repository_id, o.installation_id, j.git_ref, j.head_commit, j.files, j.truncated \
     FROM analysis_jobs j JOIN organizations o ON o.id = j.org_id \
     WHERE j.status = 'queued' AND o.status = 'active' AND (?1 IS NULL OR j.org_id = ?1) \
         AND (j.dispatched_at IS NULL OR j.dispatched_at < ?2) \
     ORDER BY j.created_at LIMIT ?3";

/// ?1 JSON array of analysis job ids, ?2 now.
pub const MARK_ANALYSIS_DISPATCHED: &str =
    "UPDATE analysis_jobs SET dispatched_at = ?2 WHERE id IN (SELECT value FROM json_each(?1))";

// ---- backups (src/edge/backup/executor.rs) ----

/// ?1 JSON array of job ids → what each backup job needs: the job, its repository and org, and
/// the org's credentials. No row: the job is unknown.
pub const BACKUP_TARGETS: &str =
    "SELECT j.id AS job_id, j.status AS job_status, j.created_at AS job_created_at, r.id AS repository_id, \
         r.full_name AS full_name, r.git_url AS git_url, r.status AS repository_status, o.id AS org_id, \
         o.tenant_id AS tenant_id, o.status AS org_status, o.provider AS provider, \
         o.installation_id AS installation_id, o.connection_id AS connection_id, o.full_every AS full_every \
     FROM backup_jobs j JOIN repositories r ON r.id = j.repository_id JOIN organizations o ON o.id = j.org_id \
     WHERE j.id IN (SELECT value FROM json_each(?1))";

/// ?1 repository → its latest ok snapshot still kept (`id`, `kind`, `refs`) and how many ok
/// snapshots were taken since (and including) the latest full one.
pub const LAST_OK_SNAPSHOT: &str =
    "SELECT s.id AS id, s.kind AS kind, s.refs AS refs, \
         (SELECT count(*) FROM snapshots c WHERE c.repository_id = ?1 AND c.outcome = 'ok' AND c.status = 'available' \
             AND c.taken_at >= (SELECT max(f.taken_at) FROM snapshots f WHERE f.repository_id = ?1 \
                 AND f.outcome = 'ok' AND f.kind = 'full' AND f.status = 'available')) AS since_full \
     FROM snapshots s WHERE s.repository_id = ?1 AND s.outcome = 'ok' AND s.status = 'available' \
     ORDER BY s.taken_at DESC, s.rowid DESC LIMIT 1";

/// ?1 repository (NULL: every one), ?2 cutoff, ?3 now, ?4 job id or NULL: running snapshots
/// started before the cutoff, or of this job (redelivered: the invocation that ran it is gone),
/// were abandoned: failed, and their uploads returned to be aborted.
pub const ABANDON_STALE_SNAPSHOTS: &str =
    "UPDATE snapshots SET outcome = 'failed', error = 'abandoned: the backup did not finish', finished_at = ?3 \
     WHERE outcome = 'running' AND (?1 IS NULL OR repository_id = ?1) AND (started_at < ?2 OR job_id = ?4) \
     RETURNING id, job_id, object_key, upload_id";

/// ?1 JSON array of job ids, ?2 now: jobs whose backup was abandoned wait again (the
/// dispatcher re-sends them).
pub const REQUEUE_JOBS: &str =
    "UPDATE backup_jobs SET status = 'queued', updated_at = ?2, dispatched_at = ?2 \
     WHERE id IN (SELECT value FROM json_each(?1)) AND status IN ('queued', 'running')";

/// ?1 snapshot id, ?2 org, ?3 repository, ?4 now, ?5 job id, ?6 the object key its bundle will
/// have: claims the repository's one running backup (`changes` 0: another is running). The key
/// is recorded first, so an abandoned run's object can be found and deleted.
pub const CLAIM_SNAPSHOT: &str =
    "INSERT INTO snapshots (id, org_id, repository_id, taken_at, started_at, outcome, job_id, size_bytes, object_key) \
     VALUES (?1, ?2, ?3, ?4, ?4, 'running', ?5, 0, ?6) ON CONFLICT DO NOTHING";

/// ?1 job, ?2 snapshot, ?3 now: the job is running once its snapshot was claimed.
pub const START_JOB: &str = "UPDATE backup_jobs SET status = 'running', updated_at = ?3 \
     WHERE id = ?1 AND status IN ('queued', 'running') \
         AND EXISTS (SELECT 1 FROM snapshots WHERE id = ?2 AND outcome = 'running')";

/// ?1 repository, ?2 our snapshot → when another running backup of the repository started.
pub const OTHER_RUNNING_SNAPSHOT: &str =
    "SELECT started_at FROM snapshots WHERE repository_id = ?1 AND outcome = 'running' AND id <> ?2";

/// ?1 JSON array of job ids, ?2 now: settled (a snapshot recorded them, another covered them,
/// or there was nothing to do).
pub const SETTLE_JOBS: &str =
    "UPDATE backup_jobs SET status = 'received', received_at = ?2, updated_at = ?2 \
     WHERE id IN (SELECT value FROM json_each(?1)) AND status IN ('queued', 'running')";

/// ?1 repository, ?2 now: the job waiting behind a backup that just settled (one that found it
/// running, e.g. a push), stamped as sent now → `id`, `priority` (at most one).
pub const NEXT_WAITING_JOB: &str =
    "UPDATE backup_jobs SET dispatched_at = ?2 WHERE id = (SELECT id FROM backup_jobs \
         WHERE repository_id = ?1 AND status = 'queued' ORDER BY created_at LIMIT 1) \
     RETURNING id, priority";

/// ?1 job id, ?2 now: failed for good (a permanent error, or its last retry).
pub const FAIL_JOB: &str = "UPDATE backup_jobs SET status = 'failed', updated_at = ?2 \
     WHERE id = ?1 AND status IN ('queued', 'running')";

/// ?1 snapshot, ?2 object key, ?3 multipart upload id: recorded before the first part, so an
/// abandoned upload can be aborted.
pub const RECORD_UPLOAD: &str =
    "UPDATE snapshots SET object_key = ?2, upload_id = ?3 WHERE id = ?1 AND outcome = 'running'";

/// ?1 snapshot, ?2 outcome (`ok`, `unchanged`, `empty`), ?3 kind, ?4 base snapshot, ?5 refs
/// JSON, ?6 object key, ?7 bytes, ?8 SHA-256, ?9 pack objects, ?10 now, ?11 the branch HEAD names.
pub const FINISH_SNAPSHOT: &str =
    "UPDATE snapshots SET outcome = ?2, kind = ?3, base_snapshot_id = ?4, refs = ?5, object_key = ?6, head = ?11, \
         upload_id = NULL, size_bytes = ?7, sha256 = ?8, pack_objects = ?9, finished_at = ?10, error = NULL \
     WHERE id = ?1 AND outcome = 'running'";

/// ?1 snapshot, ?2 error (no secret), ?3 now.
pub const FAIL_SNAPSHOT: &str =
    "UPDATE snapshots SET outcome = 'failed', error = ?2, finished_at = ?3, upload_id = NULL, object_key = NULL \
     WHERE id = ?1 AND outcome = 'running'";

/// ?1 repository, ?2 outcome, ?3 now.
pub const RECORD_LAST_BACKUP: &str =
    "UPDATE repositories SET last_backup_at = ?3, last_backup_status = ?2 WHERE id = ?1";

/// ?1 org, ?2 repository, ?3 snapshot, ?4 now: the repository's first ok backup in the
/// activity log (once).
pub const RECORD_FIRST_BACKUP_ACTIVITY: &str =
    "INSERT INTO org_activity (org_id, delivery_id, event, detail, created_at) \
     SELECT ?1, NULL, 'backup.first', 'first backup of ' || r.full_name || ' stored (snapshot ' || ?3 || ')', ?4 \
     FROM repositories r WHERE r.id = ?2 AND NOT EXISTS \
         (SELECT 1 FROM snapshots s WHERE s.repository_id = ?2 AND s.outcome = 'ok' AND s.id <> ?3)";

/// ?1 job, ?2 error (NULL: its last snapshot's), ?3 now: a backup that failed for good (a
/// permanent error, or its last retry), in the activity log once (while the job is not yet
/// settled or failed).
pub const RECORD_BACKUP_FAILED_ACTIVITY: &str =
    "INSERT INTO org_activity (org_id, delivery_id, event, detail, created_at) \
     SELECT j.org_id, NULL, 'backup.failed', 'backup of ' || r.full_name || ' failed: ' || \
         coalesce(?2, (SELECT s.error FROM snapshots s WHERE s.job_id = ?1 AND s.error IS NOT NULL \
             ORDER BY s.started_at DESC, s.rowid DESC LIMIT 1), 'every retry failed'), ?3 \
     FROM backup_jobs j JOIN repositories r ON r.id = j.repository_id \
     WHERE j.id = ?1 AND j.status IN ('queued', 'running')";

/// The columns a snapshot is shown with (`s` the snapshot).
macro_rules! snapshot_columns {
    () => {
        "SELECT s.id AS id, s.org_id AS org_id, s.repository_id AS repository_id, s.outcome AS status, \
             s.kind AS kind, s.base_snapshot_id AS base_snapshot_id, s.started_at AS started_at, \
             s.finished_at AS finished_at, s.size_bytes AS bytes, s.sha256 AS sha256, s.refs AS refs, \
             s.pack_objects AS pack_objects, s.error AS error, s.status AS retention, s.object_key AS object_key, \
             s.head AS head \
         FROM snapshots s JOIN organizations o ON o.id = s.org_id "
    };
}

/// ?1 org, ?2 repository, ?3 tenant, ?4 cursor (the last id seen, '' first), ?5 limit: newest
/// first (snapshot ids sort by time).
pub const LIST_SNAPSHOTS: &str = concat!(
    snapshot_columns!(),
    "WHERE s.org_id = ?1 AND s.repository_id = ?2 AND o.tenant_id = ?3 AND (?4 = '' OR s.id < ?4) \
     ORDER BY s.id DESC LIMIT ?5"
);

/// ?1 snapshot, ?2 tenant.
pub const GET_SNAPSHOT: &str = concat!(snapshot_columns!(), "WHERE s.id = ?1 AND o.tenant_id = ?2");

/// ?1 snapshot, ?2 tenant → its restore chain, oldest first: from the snapshot back through
/// `base_snapshot_id` to the last full one (an `unchanged` snapshot's base is the ok snapshot
/// whose refs it found again).
pub const SNAPSHOT_CHAIN: &str = concat!(
    "WITH RECURSIVE chain (id, base, kind, depth) AS ( \
         SELECT s.id, s.base_snapshot_id, s.kind, 0 FROM snapshots s JOIN organizations o ON o.id = s.org_id \
             WHERE s.id = ?1 AND o.tenant_id = ?2 \
         UNION ALL \
         SELECT s.id, s.base_snapshot_id, s.kind, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.base \
             WHERE coalesce(c.kind, '') <> 'full' AND c.depth < 1000) ",
    snapshot_columns!(),
    "JOIN chain c ON c.id = s.id ORDER BY c.depth DESC"
);

/// ?1 org, ?2 JSON array of repository ids (NULL: every active one), ?3 now, ?4 a key unique to
/// the request: a manual backup job for each active repository that has none queued (at most
/// one backup of a repository is queued at a time) → the jobs created.
pub const INSERT_MANUAL_JOBS: &str =
    "INSERT INTO backup_jobs (id, org_id, repository_id, kind, priority, status, dedupe_key, created_at) \
     SELECT lower(hex(randomblob(16))), ?1, r.id, 'manual', 'high', 'queued', 'manual:' || r.id || ':' || ?4, ?3 \
     FROM repositories r WHERE r.org_id = ?1 AND r.status = 'active' \
         AND (?2 IS NULL OR r.id IN (SELECT value FROM json_each(?2))) \
         AND NOT EXISTS (SELECT 1 FROM backup_jobs q WHERE q.repository_id = r.id AND q.status = 'queued') \
     ON CONFLICT (dedupe_key) DO NOTHING RETURNING id";

/// ?1 org, ?2 JSON array of repository ids → how many of them are the org's.
pub const COUNT_ORG_REPOSITORIES: &str =
    "SELECT count(*) AS n FROM repositories WHERE org_id = ?1 AND id IN (SELECT value FROM json_each(?2))";

/// ?1 now, ?2 limit → every snapshot record of up to ?2 repositories where retention has work:
/// a snapshot past its org's retention that is still offered (other than a connected
/// repository's newest ok one), or an expired one whose bundle is stored but no longer needed by
/// a kept snapshot (none kept after it before the next full). `backup::plan::retention` decides;
/// this only finds the repositories (`src/edge/backup/retention.rs`).
pub const RETENTION_RECORDS: &str =
    "WITH candidates AS (SELECT DISTINCT s.repository_id FROM snapshots s JOIN organizations o ON o.id = s.org_id \
         WHERE (s.status = 'available' AND s.outcome <> 'running' \
                 AND julianday(coalesce(s.finished_at, s.taken_at)) + o.retention_days <= julianday(?1) \
                 AND (o.status = 'disconnected' OR s.id <> coalesce((SELECT n.id FROM snapshots n \
                     WHERE n.repository_id = s.repository_id AND n.outcome = 'ok' \
                     ORDER BY coalesce(n.finished_at, n.taken_at) DESC, n.id DESC LIMIT 1), ''))) \
             OR (s.status = 'expired' AND s.object_key IS NOT NULL AND s.outcome = 'ok' AND NOT EXISTS ( \
                 SELECT 1 FROM snapshots y WHERE y.repository_id = s.repository_id AND y.status = 'available' \
                     AND y.outcome IN ('ok', 'unchanged', 'running') AND y.taken_at > s.taken_at \
                     AND NOT EXISTS (SELECT 1 FROM snapshots f WHERE f.repository_id = s.repository_id \
                         AND f.outcome = 'ok' AND f.kind = 'full' AND f.taken_at > s.taken_at AND f.taken_at <= y.taken_at))) \
         LIMIT ?2) \
     SELECT s.id AS id, s.repository_id AS repository_id, s.kind AS kind, s.base_snapshot_id AS base, \
         s.outcome AS outcome, coalesce(s.finished_at, s.taken_at) AS finished_at, s.object_key AS object_key, \
         o.retention_days AS retention_days, o.status AS org_status \
     FROM snapshots s JOIN organizations o ON o.id = s.org_id \
     WHERE s.repository_id IN (SELECT repository_id FROM candidates) ORDER BY s.repository_id, s.id";

/// ?1 JSON array of snapshot ids: past retention, no longer offered for restore.
pub const EXPIRE_SNAPSHOTS: &str = "UPDATE snapshots SET status = 'expired' \
     WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'available'";

/// ?1 JSON array of snapshot ids: their bundles were deleted.
pub const FORGET_OBJECTS: &str = "UPDATE snapshots SET object_key = NULL \
     WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'expired'";

/// ?1 message id, ?2 body hash, ?3 queue, ?4 error, ?5 now → `attempts` so far.
pub const RECORD_MESSAGE_FAILURE: &str = "INSERT INTO message_failures (message_id, body_hash, queue, attempts, last_error, updated_at) \
     VALUES (?1, ?2, ?3, 1, ?4, ?5) \
     ON CONFLICT (message_id) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error, \
         updated_at = excluded.updated_at \
     RETURNING attempts";

/// ?1 dead-letter message id, ?2 body hash, ?3 message type, ?4 body, ?5 now: the reason is the
/// last failure recorded for that body. A redelivered dead letter is stored once.
pub const RECORD_DEAD_LETTER: &str = "INSERT INTO dead_letters (message_id, body_hash, message_type, body, reason, received_at) \
     SELECT ?1, ?2, ?3, ?4, coalesce((SELECT last_error FROM message_failures WHERE body_hash = ?2 \
         ORDER BY updated_at DESC LIMIT 1), 'no failure was recorded (undecodable, or the consumer crashed)'), ?5 \
     ON CONFLICT (message_id) DO NOTHING";

/// ?1 cutoff: failure records older than this are no longer needed.
pub const PURGE_MESSAGE_FAILURES: &str = "DELETE FROM message_failures WHERE updated_at < ?1";

/// ?1 new id, ?2 tenant, ?3 provider, ?4 account key, ?5 login (path or name), ?6 display name,
/// ?7 avatar, ?8 account type, ?9 API URL, ?10 connection id, ?11 technician, ?12 now, ?13 nonce,
/// ?14 invocation id → the org's `id`: a GitLab group or Azure DevOps organization linked by an
/// OAuth callback (a reconnect keeps its settings and re-activates it).
pub const UPSERT_OAUTH_ORG: &str = concat!(
    "INSERT INTO organizations (id, tenant_id, provider, account_id, login, display_name, avatar_url, \
         account_type, installation_id, api_url, connection_id, status, connected_by, created_at, updated_at) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, 'active', ?11, ?12, ?12 WHERE ",
    spent_here!("?13", "?14"),
    " ON CONFLICT (tenant_id, provider, account_id) DO UPDATE SET \
         login = excluded.login, display_name = excluded.display_name, avatar_url = excluded.avatar_url, \
         api_url = excluded.api_url, connection_id = excluded.connection_id, status = 'active', \
         updated_at = excluded.updated_at \
     RETURNING id"
);

/// ?1 connection id (derived from the next four), ?2 tenant, ?3 provider, ?4 base URL, ?5 the
/// provider user's id, ?6 their name, ?7 key id, ?8 sealed access token, ?9 sealed refresh
/// token, ?10 access token expiry, ?11 technician, ?12 now, ?13 nonce, ?14 invocation id:
/// stores (or replaces, on reconnect) the connection's tokens.
pub const UPSERT_CONNECTION: &str = concat!(
    "INSERT INTO provider_connections (id, tenant_id, provider, base_url, user_id, user_name, status, key_id, \
         access_token, refresh_token, expires_at, connected_by, created_at, updated_at) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?8, ?9, ?10, ?11, ?12, ?12 WHERE ",
    spent_here!("?13", "?14"),
    " ON CONFLICT (id) DO UPDATE SET user_name = excluded.user_name, status = 'active', \
         key_id = excluded.key_id, access_token = excluded.access_token, \
         refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, \
         version = provider_connections.version + 1, lease_until = NULL, last_error = NULL, \
         connected_by = excluded.connected_by, updated_at = excluded.updated_at"
);

/// What a token operation reads of a connection.
macro_rules! connection_columns {
    () => {
        "SELECT id, tenant_id, provider, base_url, status, key_id, access_token, refresh_token, expires_at, \
             version, lease_until FROM provider_connections "
    };
}

/// ?1 connection id → the row with its sealed tokens.
pub const CONNECTION: &str = concat!(connection_columns!(), "WHERE id = ?1");

/// ?1 connection id, ?2 the version read, ?3 lease end, ?4 now → the claimed `version`. The
/// compare-and-swap that serializes refreshes: only one invocation moves `version` on from what
/// it read, and a live lease keeps the others out until the winner has stored the new tokens.
pub const CLAIM_REFRESH: &str = "UPDATE provider_connections SET version = version + 1, lease_until = ?3, updated_at = ?4 \
     WHERE id = ?1 AND version = ?2 AND status = 'active' AND (lease_until IS NULL OR lease_until < ?4) \
     RETURNING version";

/// ?1 connection id, ?2 claimed version, ?3 key id, ?4 sealed access token, ?5 sealed refresh
/// token, ?6 expiry, ?7 now: the refreshed tokens, only by the claim's holder.
pub const STORE_REFRESHED: &str = "UPDATE provider_connections SET key_id = ?3, access_token = ?4, refresh_token = ?5, \
         expires_at = ?6, version = version + 1, lease_until = NULL, last_error = NULL, updated_at = ?7 \
     WHERE id = ?1 AND version = ?2";

/// ?1 connection id, ?2 claimed version, ?3 error, ?4 now: a refresh that failed for a reason
/// worth retrying gives the row back.
pub const RELEASE_REFRESH: &str =
    "UPDATE provider_connections SET lease_until = NULL, last_error = ?3, updated_at = ?4 \
     WHERE id = ?1 AND version = ?2";

/// ?1 connection id, ?2 reason, ?3 now: the provider refused the refresh token (revoked).
pub const REVOKE_CONNECTION: &str =
    "UPDATE provider_connections SET status = 'revoked', lease_until = NULL, last_error = ?2, \
         version = version + 1, updated_at = ?3 WHERE id = ?1 AND status = 'active'";

/// ?1 connection id, ?2 now: its orgs are disconnected, when the `REVOKE_CONNECTION` before it
/// in the batch revoked it just now.
pub const DISCONNECT_CONNECTION_ORGS: &str =
    "UPDATE organizations SET status = 'disconnected', updated_at = ?2 \
     WHERE connection_id = ?1 AND status IN ('active', 'suspended') AND EXISTS \
         (SELECT 1 FROM provider_connections WHERE id = ?1 AND status = 'revoked' AND updated_at = ?2)";

/// ?1 connection id, ?2 now: pauses the queued jobs of its orgs.
pub const PAUSE_CONNECTION_JOBS: &str =
    "UPDATE backup_jobs SET status = 'paused', updated_at = ?2 \
     WHERE status = 'queued' AND org_id IN (SELECT id FROM organizations WHERE connection_id = ?1)";

/// ?1 connection id, ?2 detail, ?3 now: the revocation in the log of each org it disconnected.
pub const RECORD_REVOKED_ACTIVITY: &str =
    "INSERT INTO org_activity (org_id, delivery_id, event, detail, created_at) \
     SELECT id, NULL, 'connection.revoked', ?2, ?3 FROM organizations \
     WHERE connection_id = ?1 AND status = 'disconnected' AND updated_at = ?3";

/// ?1 refresh-before time, ?2 limit, ?3 every key id `TOKEN_KEYS` holds (a JSON array) →
/// active connections with an active org whose access token expires before ?1 (the cron
/// refreshes them ahead of use), soonest first. A row sealed under a key that is gone cannot be
/// opened: picked, it would be skipped every hour and, `limit` of them, keep every other row
/// from being refreshed (`RECORD_UNUSABLE_KEY_ACTIVITY` tells its orgs to connect again).
pub const CONNECTIONS_DUE: &str = concat!(
    connection_columns!(),
    "WHERE status = 'active' AND expires_at < ?1 AND key_id IN (SELECT value FROM json_each(?3)) \
         AND EXISTS (SELECT 1 FROM organizations o WHERE o.connection_id = provider_connections.id AND o.status = 'active') \
     ORDER BY expires_at, id LIMIT ?2"
);

/// ?1 current key id, ?2 limit, ?3 every key id `TOKEN_KEYS` holds (a JSON array) → connections
/// sealed with another key that can still open them (the re-encryption pass), in id order. A row
/// whose key is gone cannot be opened: picked, it would be skipped by every run and, 50 of them,
/// keep every other row from being re-sealed. It needs a reconnect, which
/// `RECORD_UNUSABLE_KEY_ACTIVITY` tells its orgs.
pub const CONNECTIONS_TO_RESEAL: &str = concat!(
    connection_columns!(),
    "WHERE key_id <> ?1 AND key_id IN (SELECT value FROM json_each(?3)) ORDER BY id LIMIT ?2"
);

/// ?1 every key id `TOKEN_KEYS` holds (a JSON array), ?2 now: each org (not disconnected) of an
/// active connection sealed under a key `TOKEN_KEYS` no longer holds gets an activity line saying
/// it must be connected again, once per key (not while an earlier line names the same key).
pub const RECORD_UNUSABLE_KEY_ACTIVITY: &str = "INSERT INTO org_activity (org_id, delivery_id, event, detail, created_at) \
     SELECT u.org_id, NULL, 'connection.unusable', u.detail, ?2 FROM \
         (SELECT o.id AS org_id, 'the stored credentials of its connection are sealed under key `' || c.key_id || \
              '`, which TOKEN_KEYS no longer holds: they can be neither used nor re-sealed. Connect the organization \
              again (or put the key back in TOKEN_KEYS)' AS detail \
          FROM provider_connections c JOIN organizations o ON o.connection_id = c.id \
          WHERE c.status = 'active' AND o.status <> 'disconnected' \
              AND c.key_id NOT IN (SELECT value FROM json_each(?1))) u \
     WHERE NOT EXISTS (SELECT 1 FROM org_activity a \
         WHERE a.org_id = u.org_id AND a.event = 'connection.unusable' AND a.detail = u.detail)";

/// ?1 connection id, ?2 the version read, ?3 key id, ?4 sealed access token, ?5 sealed refresh
/// token, ?6 now: the same tokens under the current key (lost to a concurrent write: no harm).
pub const RESEAL_CONNECTION: &str =
    "UPDATE provider_connections SET key_id = ?3, access_token = ?4, refresh_token = ?5, \
         version = version + 1, updated_at = ?6 WHERE id = ?1 AND version = ?2";

// ---- Access audit and posture (migration 0009, `edge::access`) ----

/// ?1 org: what an access snapshot needs of the org.
pub const ACCESS_ORG: &str =
    "SELECT id, provider, installation_id, connection_id, api_url, status, login, \
         account_type FROM organizations WHERE id = ?1";

/// ?1 org: the org's current access state (at most one row).
pub const ACCESS_STATE: &str =
    "SELECT state, version, read_at FROM access_states WHERE org_id = ?1";

/// ?1 org, ?2 run id, ?3 progress JSON, ?4 now: starts a snapshot run. One under way is replaced
/// (its next step finds another run id and stops): a snapshot must show what was true after the
/// latest sync began, not what an older run read before a change.
pub const START_ACCESS_RUN: &str =
    "INSERT INTO access_runs (org_id, run_id, step, progress, started_at, updated_at) \
     VALUES (?1, ?2, 0, ?3, ?4, ?4) \
     ON CONFLICT (org_id) DO UPDATE SET run_id = excluded.run_id, step = 0, progress = excluded.progress, \
         started_at = excluded.started_at, updated_at = excluded.updated_at \
     RETURNING run_id";

/// ?1 org, ?2 run id: a run that cannot go on (the org is no longer active, or its credential
/// is gone) ends without a state; the next sync starts afresh.
pub const DROP_ACCESS_RUN: &str = "DELETE FROM access_runs WHERE org_id = ?1 AND run_id = ?2";

/// ?1 org: a row when a snapshot of the org is under way.
pub const ACCESS_RUN_UNDER_WAY: &str = "SELECT 1 AS one FROM access_runs WHERE org_id = ?1";

/// ?1 org, ?2 run id: the run's progress and step.
pub const ACCESS_RUN: &str =
    "SELECT step, progress FROM access_runs WHERE org_id = ?1 AND run_id = ?2";

/// ?1 org, ?2 run id, ?3 the step it was at, ?4 progress JSON, ?5 now: one step done (once: a
/// redelivered step message finds the step moved and changes nothing).
pub const ADVANCE_ACCESS_RUN: &str =
    "UPDATE access_runs SET step = step + 1, progress = ?4, updated_at = ?5 \
     WHERE org_id = ?1 AND run_id = ?2 AND step = ?3";

/// ?1 org, ?2 run id, ?3 the step it was at: the finished run goes, only when the state write
/// before it in the batch happened (else the run stays and its last step is tried again).
pub const FINISH_ACCESS_RUN: &str =
    "DELETE FROM access_runs WHERE org_id = ?1 AND run_id = ?2 AND step = ?3 AND changes() = 1";

/// ?1 org, ?2 state JSON, ?3 now: the first access state of an org (nothing if another write
/// got there first: the caller reads it and tries again).
pub const INSERT_ACCESS_STATE: &str =
    "INSERT INTO access_states (org_id, state, version, read_at, updated_at) \
     VALUES (?1, ?2, 1, ?3, ?3) ON CONFLICT (org_id) DO NOTHING";

/// ?1 org, ?2 state JSON, ?3 the version it was computed from, ?4 now, ?5 1 when a complete
/// snapshot (moves `read_at`): compare-and-set, so a concurrent write makes this change nothing.
pub const UPDATE_ACCESS_STATE: &str =
    "UPDATE access_states SET state = ?2, version = version + 1, updated_at = ?4, \
         read_at = CASE WHEN ?5 = 1 THEN ?4 ELSE read_at END \
     WHERE org_id = ?1 AND version = ?3";

/// ?1 org, ?2 events JSON (`[{kind, subject, detail}]`), ?3 source, ?4 delivery or NULL, ?5 now:
/// the events, only when the statement before changed a row (the state write they describe).
pub const INSERT_ACCESS_EVENTS: &str =
    "INSERT INTO access_events (org_id, kind, subject, detail, source, delivery_id, occurred_at) \
     SELECT ?1, json_extract(e.value, '$.kind'), json_extract(e.value, '$.subject'), \
         json(json_extract(e.value, '$.detail')), ?3, ?4, ?5 \
     FROM json_each(?2) e WHERE changes() = 1";

/// ?1 org, ?2 delivery, ?3 event, ?4 action, ?5 installation, ?6 now: a webhook's delivery
/// record, only when the state write before it happened (a lost compare-and-set records nothing,
/// so the delivery is applied again on the retry; a redelivery fails the primary key).
pub const RECORD_ACCESS_DELIVERY: &str =
    "INSERT INTO webhook_deliveries (delivery_id, event, action, installation_id, received_at) \
     SELECT ?2, ?3, ?4, ?5, ?6 WHERE changes() = 1";

/// ?1 org, ?2 since (RFC 3339, '' for all), ?3 until ('' for no bound), ?4 kind prefix ('' for
/// all: `member` matches `member.added`…), ?5 before id, ?6 limit: history, newest first.
pub const LIST_ACCESS_EVENTS: &str =
    "SELECT id, kind, subject, detail, source, delivery_id, occurred_at FROM access_events \
     WHERE org_id = ?1 AND occurred_at >= ?2 AND (?3 = '' OR occurred_at < ?3) \
         AND (?4 = '' OR kind = ?4 OR kind LIKE ?4 || '.%') AND id < ?5 \
     ORDER BY id DESC LIMIT ?6";

/// ?1 org: each active repository with what posture needs of its backups.
pub const ACCESS_REPOSITORIES: &str =
    "SELECT r.id, r.full_name, r.default_branch, r.provider_repo_id, r.created_at, r.last_backup_at, \
         r.last_backup_status, \
         (SELECT max(s.finished_at) FROM snapshots s WHERE s.repository_id = r.id \
             AND s.outcome IN ('ok', 'unchanged', 'empty')) AS last_ok_at \
     FROM repositories r WHERE r.org_id = ?1 AND r.status = 'active' ORDER BY r.full_name";

/// ?1 tenant, ?2 client label or NULL: the orgs of a portfolio report with their access state.
pub const PORTFOLIO_ORGS: &str =
    "SELECT o.id, o.provider, o.login, o.client_label AS client, o.status, o.backup_schedule, \
         a.state, a.read_at \
     FROM organizations o LEFT JOIN access_states a ON a.org_id = o.id \
     WHERE o.tenant_id = ?1 AND (?2 IS NULL OR o.client_label = ?2) AND o.status <> 'disconnected' \
     ORDER BY o.client_label, o.login, o.id";

/// ?1 tenant, ?2 client label or NULL: the active repositories of those orgs, as in
/// `ACCESS_REPOSITORIES`, with their org.
pub const PORTFOLIO_REPOSITORIES: &str =
    "SELECT r.org_id, r.full_name, r.created_at, r.last_backup_at, r.last_backup_status, \
         (SELECT max(s.finished_at) FROM snapshots s WHERE s.repository_id = r.id \
             AND s.outcome IN ('ok', 'unchanged', 'empty')) AS last_ok_at \
     FROM repositories r JOIN organizations o ON o.id = r.org_id \
     WHERE o.tenant_id = ?1 AND (?2 IS NULL OR o.client_label = ?2) AND o.status <> 'disconnected' \
         AND r.status = 'active'";

/// The statements run against the real schema in SQLite (the engine under D1), natively.
#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{params, Connection};

    fn db() -> Connection {
        let db = Connection::open_in_memory().unwrap();
        let mut files: Vec<_> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
        files.sort();
        for f in files {
            db.execute_batch(&std::fs::read_to_string(f).unwrap())
                .unwrap();
        }
        db.execute(
            "INSERT INTO organizations (id, tenant_id, account_id, login, account_type, installation_id, status, \
                 connected_by, created_at, updated_at) VALUES ('o1', 't1', 1, 'acme', 'Organization', 10, 'active', 'u', 'now', 'now')",
            [],
        )
        .unwrap();
        db
    }

    fn repos(ids: &[u64]) -> String {
        let list: Vec<_> = ids
            .iter()
            .map(|id| serde_json::json!({"id": id, "name": format!("r{id}"), "full_name": format!("acme/r{id}"), "private": true}))
            .collect();
        serde_json::to_string(&list).unwrap()
    }

    fn count(db: &Connection, sql: &str) -> i64 {
        db.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn returned(db: &Connection, sql: &str, p: impl rusqlite::Params) -> usize {
        let mut stmt = db.prepare(sql).unwrap();
        let rows = stmt.query_map(p, |_| Ok(())).unwrap();
        rows.count()
    }

    #[test]
    fn every_constant_statement_prepares_against_the_schema() {
        let db = db();
        for sql in [
            ORG_BY_INSTALLATION,
            CONSUME_STATE,
            RECORD_INSTALLATION_REQUEST,
            UPSERT_ORG,
            START_RUN,
            RUN_FOR_ORG,
            ADVANCE_RUN,
            STAMP_SYNCED,
            FAIL_RUN,
            SETTLE_JOBS,
            START_JOB,
            OTHER_RUNNING_SNAPSHOT,
            REQUEUE_JOBS,
            FAIL_JOB,
            NEXT_WAITING_JOB,
            PURGE_CONSUMED_STATES,
            RECORD_DELIVERY,
            RECORD_CONNECTED_DELIVERY,
            DELIVERY_SEEN,
            PURGE_DELIVERIES,
            ORG_FOR_INSTALLATION,
            SET_ORG_STATUS,
            PAUSE_ORG_JOBS,
            RECORD_ACTIVITY,
            RECORD_DISCONNECT_ACTIVITY,
            LIST_ACTIVITY,
            INSERT_ANALYSIS_JOB,
            INSERT_PUSH_BACKUP_JOB,
            MARK_ANALYSIS_RECEIVED,
            PAUSE_UNSEEN_JOBS,
            REMOVE_UNSEEN,
            SET_RUN_REMOVED,
            RECORD_RUN_ACTIVITY,
            START_SYNC_RUN,
            RESUME_ORG_JOBS_ON_CONNECT,
            RECORD_CONNECT_ACTIVITY,
            LIST_ORGS,
            GET_ORG,
            LIST_REPOS,
            UPDATE_ORG_SETTINGS,
            COUNT_KEPT_SNAPSHOTS,
            ACTIVE_ORGS_AFTER,
            ORG_FOR_SYNC,
            CREATE_SCHEDULED_JOBS,
            DISPATCHABLE_JOBS,
            MARK_DISPATCHED,
            DISPATCHABLE_ANALYSIS_JOBS,
            MARK_ANALYSIS_DISPATCHED,
            EXPIRE_SNAPSHOTS,
            RETENTION_RECORDS,
            FORGET_OBJECTS,
            BACKUP_TARGETS,
            LIST_SNAPSHOTS,
            GET_SNAPSHOT,
            SNAPSHOT_CHAIN,
            INSERT_MANUAL_JOBS,
            COUNT_ORG_REPOSITORIES,
            LAST_OK_SNAPSHOT,
            ABANDON_STALE_SNAPSHOTS,
            CLAIM_SNAPSHOT,
            RECORD_UPLOAD,
            FINISH_SNAPSHOT,
            FAIL_SNAPSHOT,
            RECORD_LAST_BACKUP,
            RECORD_FIRST_BACKUP_ACTIVITY,
            RECORD_BACKUP_FAILED_ACTIVITY,
            RECORD_MESSAGE_FAILURE,
            RECORD_DEAD_LETTER,
            PURGE_MESSAGE_FAILURES,
            PENDING_REQUESTS_BY_REQUESTER,
            LINK_APPROVED_ORG,
            MARK_REQUEST_LINKED,
            RECORD_INSTALLATION_ACTIVITY,
            UPSERT_OAUTH_ORG,
            UPSERT_CONNECTION,
            CONNECTION,
            CLAIM_REFRESH,
            STORE_REFRESHED,
            RELEASE_REFRESH,
            REVOKE_CONNECTION,
            DISCONNECT_CONNECTION_ORGS,
            PAUSE_CONNECTION_JOBS,
            RECORD_REVOKED_ACTIVITY,
            CONNECTIONS_DUE,
            CONNECTIONS_TO_RESEAL,
            RECORD_UNUSABLE_KEY_ACTIVITY,
            RESEAL_CONNECTION,
            INSERT_PENDING_CONNECTION,
            PENDING_CONNECTION,
            DELETE_PENDING_CONNECTION,
            SPEND_PENDING_CONNECTION,
            PURGE_PENDING_CONNECTIONS,
            ACCESS_ORG,
            ACCESS_STATE,
            START_ACCESS_RUN,
            ACCESS_RUN,
            ACCESS_RUN_UNDER_WAY,
            DROP_ACCESS_RUN,
            ADVANCE_ACCESS_RUN,
            FINISH_ACCESS_RUN,
            INSERT_ACCESS_STATE,
            UPDATE_ACCESS_STATE,
            INSERT_ACCESS_EVENTS,
            RECORD_ACCESS_DELIVERY,
            LIST_ACCESS_EVENTS,
            ACCESS_REPOSITORIES,
            PORTFOLIO_ORGS,
            PORTFOLIO_REPOSITORIES,
        ] {
            db.prepare(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
        }
    }

    /// The access writes chain on `changes()`: events and the delivery record only follow a
    /// state write that happened, and a lost compare-and-set writes nothing at all.
    #[test]
    fn access_writes_follow_only_a_state_write_that_happened() {
        let db = db();
        let events = r#"[{"kind":"member.added","subject":"octocat","detail":{"role":"admin"}}]"#;
        let snapshot = |version: i64, step: i64| {
            let tx = db.unchecked_transaction().unwrap();
            let stored = if version == 0 {
                tx.execute(INSERT_ACCESS_STATE, params!["o1", "{}", "t1"])
            } else {
                tx.execute(UPDATE_ACCESS_STATE, params!["o1", "{}", version, "t2", 1])
            }
            .unwrap();
            let finished = tx
                .execute(FINISH_ACCESS_RUN, params!["o1", "run", step])
                .unwrap();
            let inserted = tx
                .execute(
                    INSERT_ACCESS_EVENTS,
                    params!["o1", events, "sync", None::<String>, "t2"],
                )
                .unwrap();
            tx.commit().unwrap();
            (stored, finished, inserted)
        };
        assert_eq!(
            returned(&db, START_ACCESS_RUN, params!["o1", "old", "{}", "t0"]),
            1
        );
        assert_eq!(
            returned(&db, START_ACCESS_RUN, params!["o1", "run", "{}", "t0"]),
            1,
            "a newer sync replaces the run under way"
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM access_runs WHERE run_id = 'run'"),
            1
        );
        assert_eq!(
            snapshot(0, 0),
            (1, 1, 1),
            "the first state, the run finished, its events"
        );
        assert_eq!(
            snapshot(0, 0),
            (0, 0, 0),
            "a second first state writes nothing"
        );
        assert_eq!(
            returned(&db, START_ACCESS_RUN, params!["o1", "run", "{}", "t1"]),
            1
        );
        assert_eq!(snapshot(7, 0), (0, 0, 0), "a stale version writes nothing");
        assert_eq!(snapshot(1, 0), (1, 1, 1));
        assert_eq!(count(&db, "SELECT version FROM access_states"), 2);
        assert_eq!(count(&db, "SELECT count(*) FROM access_runs"), 0);
        // A webhook: the delivery is recorded only with the state write, the events after it.
        let webhook = |version: i64, delivery: &str| {
            let tx = db.unchecked_transaction().unwrap();
            tx.execute(UPDATE_ACCESS_STATE, params!["o1", "{}", version, "t3", 0])
                .unwrap();
            let recorded = tx.execute(
                RECORD_ACCESS_DELIVERY,
                params!["o1", delivery, "organization", "member_added", 10, "t3"],
            );
            let Ok(recorded) = recorded else {
                return None;
            };
            let inserted = tx
                .execute(
                    INSERT_ACCESS_EVENTS,
                    params!["o1", events, "webhook", delivery, "t3"],
                )
                .unwrap();
            tx.commit().unwrap();
            Some((recorded, inserted))
        };
        assert_eq!(
            webhook(1, "d1"),
            Some((0, 0)),
            "lost compare-and-set: nothing recorded"
        );
        assert_eq!(webhook(2, "d1"), Some((1, 1)));
        assert_eq!(webhook(3, "d1"), None, "a redelivery fails the primary key");
        assert_eq!(count(&db, "SELECT count(*) FROM access_events"), 3);
        assert_eq!(
            count(&db, "SELECT count(*) FROM access_events WHERE source = 'webhook' AND delivery_id = 'd1'"),
            1
        );
    }

    #[test]
    fn a_run_page_applies_once_and_only_at_the_cursor() {
        let db = db();
        db.execute("INSERT INTO enumeration_runs (org_id, run_id, status, next_url, started_at, updated_at) VALUES ('o1', 'run', 'in_progress', 'p1', 'now', 'now')", []).unwrap();
        let page = repos(&[1, 2, 3]);
        let apply = |url: &str| -> usize {
            let p = params!["o1", page, "now", "run", url];
            db.execute(&RUN_PAGE.upsert_active(), p).unwrap();
            db.execute(&RUN_PAGE.insert_profiles(), p).unwrap();
            let jobs = returned(&db, &RUN_PAGE.insert_initial_jobs(), p);
            db.execute(ADVANCE_RUN, params!["o1", "run", url, "p2", 3, "now"])
                .unwrap();
            jobs
        };
        assert_eq!(apply("stale"), 0);
        assert_eq!(count(&db, "SELECT count(*) FROM repositories"), 0);
        assert_eq!(apply("p1"), 3);
        assert_eq!(apply("p1"), 0, "a redelivered page writes nothing");
        assert_eq!(count(&db, "SELECT count(*) FROM repositories"), 3);
        assert_eq!(count(&db, "SELECT count(*) FROM application_profiles"), 3);
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM backup_jobs WHERE run_id = 'run' AND priority = 'normal'"
            ),
            3
        );
        assert_eq!(count(&db, "SELECT added FROM enumeration_runs"), 3);
        assert_eq!(count(&db, "SELECT found FROM enumeration_runs"), 3);
    }

    #[test]
    fn removal_tombstones_pause_jobs_and_readding_resumes_them() {
        let db = db();
        let p = |ids: &[u64]| (repos(ids),);
        let run =
            |sql: String, ids: &[u64]| db.execute(&sql, params!["o1", p(ids).0, "now"]).unwrap();
        run(DELIVERED.upsert_active(), &[1, 2]);
        assert_eq!(
            returned(
                &db,
                &DELIVERED.insert_initial_jobs(),
                params!["o1", repos(&[1, 2]), "now"]
            ),
            2
        );
        run(DELIVERED.mark_removed(), &[2, 9]);
        run(DELIVERED.pause_jobs(), &[2, 9]);
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM repositories WHERE status = 'removed'"
            ),
            2,
            "9 is a tombstone"
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM backup_jobs WHERE status = 'paused'"
            ),
            1
        );
        // A late `repository.created` for 9 does not resurrect it; for 3 it adds it.
        run(DELIVERED.insert_if_absent(), &[9, 3]);
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM repositories WHERE provider_repo_id = 9 AND status = 'removed'"
            ),
            1
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM repositories WHERE provider_repo_id = 3 AND status = 'active'"
            ),
            1
        );
        assert_eq!(
            returned(
                &db,
                &DELIVERED.insert_initial_jobs(),
                params!["o1", repos(&[9, 3]), "now"]
            ),
            1
        );
        // Re-added to the installation: active again, its paused job resumes.
        run(DELIVERED.upsert_active(), &[2]);
        assert_eq!(
            returned(
                &db,
                &DELIVERED.resume_jobs(),
                params!["o1", repos(&[2]), "now"]
            ),
            1
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM backup_jobs WHERE status = 'paused'"
            ),
            0
        );
    }

    #[test]
    fn follow_updates_known_repositories_only() {
        let db = db();
        db.execute(
            &DELIVERED.upsert_active(),
            params!["o1", repos(&[1]), "now"],
        )
        .unwrap();
        let renamed = r#"[{"id":1,"name":"new","full_name":"acme/new","default_branch":"trunk"},{"id":5,"name":"x","full_name":"acme/x"}]"#;
        db.execute(&DELIVERED.follow(), params!["o1", renamed, "later"])
            .unwrap();
        let (name, branch, private): (String, String, bool) = db
            .query_row(
                "SELECT full_name, default_branch, private FROM repositories WHERE provider_repo_id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (name.as_str(), branch.as_str(), private),
            ("acme/new", "trunk", true)
        );
        assert_eq!(count(&db, "SELECT count(*) FROM repositories"), 1);
    }

    #[test]
    fn one_backup_runs_per_repository_and_chains_count_from_the_last_full() {
        let db = db();
        db.execute(&DELIVERED.upsert_active(), params!["o1", repos(&[1]), "t0"])
            .unwrap();
        let repo: String = db
            .query_row("SELECT id FROM repositories", [], |r| r.get(0))
            .unwrap();
        let claim = |id: &str, at: &str| {
            db.execute(
                CLAIM_SNAPSHOT,
                params![id, "o1", repo, at, "job", format!("k/{id}")],
            )
            .unwrap()
        };
        assert_eq!(claim("s1", "2026-01-01T00:00:00Z"), 1);
        assert_eq!(
            claim("s2", "2026-01-01T00:00:01Z"),
            0,
            "one running at a time"
        );
        // A run that never finished is abandoned after the cutoff, and its upload returned.
        db.execute(RECORD_UPLOAD, params!["s1", "k1", "up1"])
            .unwrap();
        let abandoned: Vec<(String, Option<String>)> = db
            .prepare(ABANDON_STALE_SNAPSHOTS)
            .unwrap()
            .query_map(
                params![repo, "2026-01-01T00:00:00Z", "now", None::<String>],
                |r| Ok((r.get(0)?, r.get(3)?)),
            )
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(abandoned.is_empty(), "not before the cutoff");
        let abandoned: Vec<(String, Option<String>)> = db
            .prepare(ABANDON_STALE_SNAPSHOTS)
            .unwrap()
            .query_map(
                params![repo, "2026-01-01T00:20:00Z", "now", None::<String>],
                |r| Ok((r.get(0)?, r.get(3)?)),
            )
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(abandoned, [("s1".to_string(), Some("up1".to_string()))]);
        // Full, incremental, incremental: three since the full; a newer full restarts.
        let chain = [
            ("f1", "full", None),
            ("i1", "incremental", Some("f1")),
            ("i2", "incremental", Some("i1")),
        ];
        for (taken, (id, kind, base)) in (1..).zip(chain) {
            let at = format!("2026-01-02T00:00:0{taken}Z");
            assert_eq!(claim(id, &at), 1);
            db.execute(
                FINISH_SNAPSHOT,
                params![
                    id,
                    "ok",
                    kind,
                    base,
                    "{}",
                    "key",
                    1,
                    "sha",
                    1,
                    at,
                    "refs/heads/main"
                ],
            )
            .unwrap();
        }
        let chain_of = |id: &str, tenant: &str| -> Vec<String> {
            db.prepare(SNAPSHOT_CHAIN)
                .unwrap()
                .query_map(params![id, tenant], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(chain_of("i2", "t1"), ["f1", "i1", "i2"], "full first");
        assert_eq!(chain_of("f1", "t1"), ["f1"]);
        assert!(
            chain_of("i2", "t2").is_empty(),
            "another tenant's snapshot has no chain"
        );
        let last = |db: &Connection| -> (String, i64) {
            db.query_row(LAST_OK_SNAPSHOT, [&repo], |r| Ok((r.get(0)?, r.get(3)?)))
                .unwrap()
        };
        assert_eq!(last(&db), ("i2".to_string(), 3));
        assert_eq!(claim("f2", "2026-01-02T00:00:09Z"), 1);
        db.execute(
            FINISH_SNAPSHOT,
            params![
                "f2",
                "ok",
                "full",
                None::<String>,
                "{}",
                "key",
                1,
                "sha",
                1,
                "t",
                "refs/heads/main"
            ],
        )
        .unwrap();
        assert_eq!(last(&db), ("f2".to_string(), 1));
        // A finished snapshot is not finished or failed again.
        assert_eq!(
            db.execute(FAIL_SNAPSHOT, params!["f2", "late", "t"])
                .unwrap(),
            0
        );
    }

    #[test]
    fn git_urls_are_recorded_and_follow_the_provider() {
        let db = db();
        let listed = r#"[{"id":1,"name":"a","full_name":"acme/a","git_url":"https://github.com/acme/a.git"},
                         {"id":2,"name":"b","full_name":"acme/b"}]"#;
        db.execute(&DELIVERED.upsert_active(), params!["o1", listed, "t0"])
            .unwrap();
        // A rename moves the clone URL; an entry without one keeps what is known.
        let renamed = r#"[{"id":1,"name":"c","full_name":"acme/c","git_url":"https://github.com/acme/c.git"}]"#;
        db.execute(&DELIVERED.follow(), params!["o1", renamed, "t1"])
            .unwrap();
        let without = r#"[{"id":1,"name":"c","full_name":"acme/c"}]"#;
        db.execute(&DELIVERED.upsert_active(), params!["o1", without, "t2"])
            .unwrap();
        let urls: Vec<Option<String>> = db
            .prepare("SELECT git_url FROM repositories ORDER BY provider_repo_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            urls,
            [Some("https://github.com/acme/c.git".to_string()), None]
        );
    }

    #[test]
    fn a_complete_sync_removes_what_nothing_saw_during_it_whatever_the_clock_says() {
        // Every write in the same second: only runs decide, not timestamps.
        let t = "2026-01-01T00:00:00Z";
        let db = db();
        db.execute(
            &DELIVERED.upsert_active(),
            params!["o1", repos(&[1, 2, 3]), t],
        )
        .unwrap();
        returned(
            &db,
            &DELIVERED.insert_initial_jobs(),
            params!["o1", repos(&[1, 2, 3]), t],
        );
        db.execute(START_SYNC_RUN, params!["o1", "run2", "p1", t])
            .unwrap();
        // The sync sees 1; a webhook re-adds 3 while it runs; 2 is gone.
        db.execute(
            &RUN_PAGE.upsert_active(),
            params!["o1", repos(&[1]), t, "run2", "p1"],
        )
        .unwrap();
        db.execute(&DELIVERED.upsert_active(), params!["o1", repos(&[3]), t])
            .unwrap();
        db.execute(
            ADVANCE_RUN,
            params!["o1", "run2", "p1", None::<String>, 1, t],
        )
        .unwrap();
        let skipped = params!["o1", "run2", t, 3];
        assert_eq!(
            db.execute(REMOVE_UNSEEN, skipped).unwrap(),
            0,
            "GitHub reported more than the run saw"
        );
        let p = params!["o1", "run2", t, 1];
        db.execute(PAUSE_UNSEEN_JOBS, p).unwrap();
        assert_eq!(db.execute(REMOVE_UNSEEN, p).unwrap(), 1);
        assert_eq!(
            count(
                &db,
                "SELECT provider_repo_id FROM repositories WHERE status = 'removed'"
            ),
            2
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM backup_jobs WHERE status = 'paused'"
            ),
            1
        );
    }

    #[test]
    fn a_backup_job_runs_once_settles_or_fails_once_and_an_abandoned_run_frees_it() {
        let db = db();
        db.execute(
            &DELIVERED.upsert_active(),
            params!["o1", repos(&[1]), "now"],
        )
        .unwrap();
        let repo: String = db
            .query_row("SELECT id FROM repositories", [], |r| r.get(0))
            .unwrap();
        for job in ["j1", "j2"] {
            db.execute(
                "INSERT INTO backup_jobs (id, org_id, repository_id, kind, priority, status, dedupe_key, created_at) \
                 VALUES (?1, 'o1', ?2, 'manual', 'high', 'queued', ?1, '2026-01-01T00:00:00Z')",
                params![job, repo],
            )
            .unwrap();
        }
        let status = |job: &str| -> String {
            db.query_row("SELECT status FROM backup_jobs WHERE id = ?1", [job], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let claim = |snapshot: &str, job: &str, at: &str| {
            db.execute(
                CLAIM_SNAPSHOT,
                params![snapshot, "o1", repo, at, job, "key"],
            )
            .unwrap()
        };
        assert_eq!(claim("s1", "j1", "2026-01-01T00:00:01Z"), 1);
        assert_eq!(db.execute(START_JOB, params!["j1", "s1", "t"]).unwrap(), 1);
        assert_eq!(status("j1"), "running");
        // j2 finds s1 running: it learns when s1 started.
        assert_eq!(claim("s2", "j2", "2026-01-01T00:00:02Z"), 0);
        assert_eq!(
            db.execute(START_JOB, params!["j2", "s2", "t"]).unwrap(),
            0,
            "no snapshot of its own"
        );
        let started: String = db
            .query_row(OTHER_RUNNING_SNAPSHOT, params![repo, "s2"], |r| r.get(0))
            .unwrap();
        assert_eq!(started, "2026-01-01T00:00:01Z");
        assert_eq!(
            returned(&db, OTHER_RUNNING_SNAPSHOT, params![repo, "s1"]),
            0,
            "its own run is not another's"
        );
        // j1's invocation died; its redelivery abandons its own run (not stale yet) and
        // claims again; j2 is requeued for the dispatcher.
        let abandoned: Vec<(String, Option<String>, Option<String>)> = db
            .prepare(ABANDON_STALE_SNAPSHOTS)
            .unwrap()
            .query_map(params![repo, "2026-01-01T00:00:00Z", "now", "j1"], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            abandoned,
            [(
                "s1".to_string(),
                Some("j1".to_string()),
                Some("key".to_string())
            )]
        );
        assert_eq!(claim("s3", "j1", "2026-01-01T00:00:03Z"), 1);
        assert_eq!(db.execute(START_JOB, params!["j1", "s3", "t"]).unwrap(), 1);
        db.execute(REQUEUE_JOBS, params![r#"["j2"]"#, "t"]).unwrap();
        assert_eq!(status("j2"), "queued");
        // j1 settles once; a settled job is neither requeued, failed, nor logged as failed.
        assert_eq!(
            db.execute(SETTLE_JOBS, params![r#"["j1"]"#, "t"]).unwrap(),
            1
        );
        assert_eq!(
            db.execute(SETTLE_JOBS, params![r#"["j1"]"#, "t"]).unwrap(),
            0
        );
        assert_eq!(
            db.execute(REQUEUE_JOBS, params![r#"["j1"]"#, "t"]).unwrap(),
            0
        );
        assert_eq!(
            db.execute(RECORD_BACKUP_FAILED_ACTIVITY, params!["j1", "x", "t"])
                .unwrap(),
            0
        );
        assert_eq!(db.execute(FAIL_JOB, params!["j1", "t"]).unwrap(), 0);
        assert_eq!(status("j1"), "received");
        // j2 fails for good, once, with its last snapshot's error when none is given.
        assert_eq!(
            db.execute(FAIL_SNAPSHOT, params!["s1", "pack truncated", "t"])
                .unwrap(),
            0,
            "an abandoned run keeps its reason"
        );
        db.execute("UPDATE snapshots SET job_id = 'j2' WHERE id = 's1'", [])
            .unwrap();
        assert_eq!(
            db.execute(
                RECORD_BACKUP_FAILED_ACTIVITY,
                params!["j2", None::<String>, "t"]
            )
            .unwrap(),
            1
        );
        assert_eq!(db.execute(FAIL_JOB, params!["j2", "t"]).unwrap(), 1);
        assert_eq!(
            db.execute(
                RECORD_BACKUP_FAILED_ACTIVITY,
                params!["j2", None::<String>, "t"]
            )
            .unwrap(),
            0,
            "once"
        );
        let detail: String = db
            .query_row(
                "SELECT detail FROM org_activity WHERE event = 'backup.failed'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            detail,
            "backup of acme/r1 failed: abandoned: the backup did not finish"
        );
        assert_eq!(status("j2"), "failed");
    }

    #[test]
    fn scheduled_jobs_follow_each_orgs_schedule_once_per_hour() {
        let db = db();
        db.execute(
            &DELIVERED.upsert_active(),
            params!["o1", repos(&[1, 2]), "now"],
        )
        .unwrap();
        db.execute("UPDATE organizations SET backup_hour = 2", [])
            .unwrap();
        let create = |hour: i64, monday: i64, key: &str| {
            db.execute(CREATE_SCHEDULED_JOBS, params!["now", hour, monday, key])
                .unwrap()
        };
        assert_eq!(create(3, 0, "2026-11-30T03"), 0, "not the org's hour");
        assert_eq!(create(2, 0, "2026-11-30T02"), 2);
        assert_eq!(create(2, 0, "2026-11-30T02"), 0, "once per hour key");
        assert_eq!(
            create(2, 0, "2026-12-01T02"),
            0,
            "not while the last one is still waiting"
        );
        db.execute("UPDATE backup_jobs SET status = 'received'", [])
            .unwrap();
        assert_eq!(create(2, 0, "2026-12-01T02"), 2, "the next day's");
        db.execute("UPDATE backup_jobs SET status = 'received'", [])
            .unwrap();
        db.execute("UPDATE organizations SET backup_schedule = 'weekly'", [])
            .unwrap();
        assert_eq!(create(2, 0, "2026-12-02T02"), 0, "weekly: not on Wednesday");
        assert_eq!(create(2, 1, "2026-12-07T02"), 2);
        db.execute("UPDATE organizations SET backup_schedule = 'off'", [])
            .unwrap();
        assert_eq!(create(2, 1, "2026-12-14T02"), 0);
        db.execute(
            "UPDATE repositories SET status = 'removed' WHERE provider_repo_id = 1",
            [],
        )
        .unwrap();
        db.execute("UPDATE organizations SET backup_schedule = 'daily'", [])
            .unwrap();
        db.execute("UPDATE backup_jobs SET status = 'received'", [])
            .unwrap();
        assert_eq!(
            create(2, 0, "2026-12-15T02"),
            1,
            "never for removed repositories"
        );
        // Scheduled jobs are undispatched; inline-sent initial ones are not picked until stale.
        assert_eq!(
            returned(
                &db,
                DISPATCHABLE_JOBS,
                params![None::<String>, "2000-01-01", 1000]
            ),
            1
        );
    }

    /// A push's batch (`edge::webhooks::apply_push`): the org is found through the
    /// installation inside the batch; its backup job is stamped as sent by the webhook, so the
    /// dispatcher leaves it alone until its send may have been lost, then sends it.
    #[test]
    fn push_batch_finds_the_org_and_its_job_is_dispatched_only_when_its_send_may_be_lost() {
        let db = db();
        db.execute(
            &DELIVERED.upsert_active(),
            params!["o1", repos(&[1]), "now"],
        )
        .unwrap();
        let at = "2026-12-04T12:00:00Z";
        let record = |delivery: &str, installation: i64| {
            let mut statement = db.prepare(RECORD_CONNECTED_DELIVERY)?;
            let rows = statement
                .query_map(
                    params![delivery, "push", None::<String>, installation, at],
                    |r| r.get::<_, String>("delivery_id"),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            assert!(rows.iter().all(|id| id == delivery), "{rows:?}");
            Ok::<_, rusqlite::Error>(rows.len())
        };
        let push_job = |delivery: &str, installation: i64| {
            returned(
                &db,
                INSERT_PUSH_BACKUP_JOB,
                params![installation, 1, delivery, at],
            )
        };
        let analysis_job = |delivery: &str, installation: i64| {
            returned(
                &db,
                INSERT_ANALYSIS_JOB,
                params![
                    delivery,
                    installation,
                    1,
                    delivery,
                    "refs/heads/main",
                    "abc",
                    "[]",
                    at,
                    0
                ],
            )
        };
        // An installation no tenant connected: nothing is written.
        assert_eq!(record("d0", 99).unwrap(), 0);
        assert_eq!((push_job("d0", 99), analysis_job("d0", 99)), (0, 0));
        assert_eq!(count(&db, "SELECT count(*) FROM webhook_deliveries"), 0);
        // Connected (installation 10 is org o1's): recorded, one job each, for o1.
        assert_eq!(record("d1", 10).unwrap(), 1);
        assert_eq!((push_job("d1", 10), analysis_job("d1", 10)), (1, 1));
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM backup_jobs j JOIN analysis_jobs a USING (org_id) WHERE j.org_id = 'o1'"
            ),
            1
        );
        // A redelivery fails its primary key (and so rolls back the batch it leads).
        assert!(record("d1", 10).is_err());
        // Coalesced: a second push while the first job waits adds none.
        assert_eq!(record("d2", 10).unwrap(), 1);
        assert_eq!(push_job("d2", 10), 0);
        let dispatchable = |cutoff: &str| {
            let jobs = |sql| returned(&db, sql, params![None::<String>, cutoff, 1000]);
            (jobs(DISPATCHABLE_JOBS), jobs(DISPATCHABLE_ANALYSIS_JOBS))
        };
        assert_eq!(
            dispatchable("2026-12-04T11:45:00Z"),
            (0, 0),
            "sent by the webhook just now: not re-sent"
        );
        assert_eq!(
            dispatchable("2026-12-04T12:15:00Z"),
            (1, 1),
            "still queued after the cutoff: the send may be lost, the dispatcher sends it"
        );
        // Received: nothing left to send.
        db.execute(
            MARK_ANALYSIS_RECEIVED,
            params![r#"["d1"]"#, "2026-12-04T12:00:01Z"],
        )
        .unwrap();
        assert_eq!(dispatchable("2026-12-04T12:15:00Z"), (1, 0));
        // Analysis jobs are not coalesced: each names its push's files.
        assert_eq!(analysis_job("d2", 10), 1);
        assert_eq!(dispatchable("2026-12-04T12:15:00Z"), (1, 1));
        // Re-sent by the dispatcher: stamped again, not re-sent before the next cutoff.
        db.execute(
            MARK_ANALYSIS_DISPATCHED,
            params![r#"["d2"]"#, "2026-12-04T12:16:00Z"],
        )
        .unwrap();
        assert_eq!(dispatchable("2026-12-04T12:15:00Z"), (1, 0));
        db.execute(
            "UPDATE organizations SET status = 'suspended' WHERE id = 'o1'",
            [],
        )
        .unwrap();
        db.execute("UPDATE backup_jobs SET status = 'received'", [])
            .unwrap();
        assert_eq!(record("d3", 10).unwrap(), 1, "recorded for a suspended org");
        assert_eq!(
            (push_job("d3", 10), analysis_job("d3", 10)),
            (0, 0),
            "but no jobs"
        );
    }

    #[test]
    fn retention_finds_repositories_with_work_and_only_those() {
        let db = db();
        db.execute(
            &DELIVERED.upsert_active(),
            params!["o1", repos(&[1, 2]), "now"],
        )
        .unwrap();
        let snap = |id: &str, repo: u64, kind: &str, base: Option<&str>, at: &str| {
            db.execute(
                "INSERT INTO snapshots (id, org_id, repository_id, taken_at, finished_at, outcome, kind, base_snapshot_id, object_key) \
                 SELECT ?1, 'o1', id, ?4, ?4, 'ok', ?2, ?3, 'key/' || ?1 FROM repositories WHERE provider_repo_id = ?5",
                params![id, kind, base, at, repo],
            )
            .unwrap();
        };
        // Repository 1: a full and an incremental long ago, a fresh incremental on them.
        snap("a1", 1, "full", None, "2026-01-01T00:00:00Z");
        snap("a2", 1, "incremental", Some("a1"), "2026-01-02T00:00:00Z");
        snap("a3", 1, "incremental", Some("a2"), "2026-03-30T00:00:00Z");
        // Repository 2: one old ok snapshot, its newest: nothing to do while connected.
        snap("b1", 2, "full", None, "2026-01-01T00:00:00Z");
        let found = |now: &str| -> Vec<String> {
            db.prepare(RETENTION_RECORDS)
                .unwrap()
                .query_map(params![now, 10], |r| r.get::<_, String>(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert!(found("2026-03-01T00:00:00Z").is_empty(), "within 90 days");
        assert_eq!(found("2026-04-15T00:00:00Z"), ["a1", "a2", "a3"]);
        db.execute(EXPIRE_SNAPSHOTS, params![r#"["a1","a2"]"#])
            .unwrap();
        assert!(
            found("2026-04-15T00:00:00Z").is_empty(),
            "a1 and a2 expired but a3 needs them"
        );
        snap("a4", 1, "full", None, "2026-04-10T00:00:00Z");
        db.execute(EXPIRE_SNAPSHOTS, params![r#"["a3"]"#]).unwrap();
        assert_eq!(
            found("2026-04-15T00:00:00Z"),
            ["a1", "a2", "a3", "a4"],
            "a new full frees the old chain"
        );
        db.execute(FORGET_OBJECTS, params![r#"["a1","a2","a3"]"#])
            .unwrap();
        assert!(found("2026-04-15T00:00:00Z").is_empty());
        db.execute("UPDATE organizations SET status = 'disconnected'", [])
            .unwrap();
        assert_eq!(
            found("2026-04-15T00:00:00Z"),
            ["b1"],
            "a disconnected org keeps nothing past retention"
        );
    }

    #[test]
    fn run_activity_reads_as_integers_though_d1_binds_numbers_as_reals() {
        let db = db();
        db.execute(START_SYNC_RUN, params!["o1", "run", "p1", "now"])
            .unwrap();
        db.execute(RECORD_RUN_ACTIVITY, params!["o1", "run", 2.0_f64, "now"])
            .unwrap();
        let detail: String = db
            .query_row("SELECT detail FROM org_activity", [], |r| r.get(0))
            .unwrap();
        assert_eq!(detail, "repositories enumerated: 0 found, 0 new, 2 removed");
    }

    #[test]
    fn a_re_added_repository_keeps_what_the_webhook_does_not_carry() {
        let db = db();
        let full = r#"[{"id":1,"name":"a","full_name":"acme/a","private":false,"archived":true,"default_branch":"trunk"}]"#;
        db.execute(&DELIVERED.insert_if_absent(), params!["o1", full, "t0"])
            .unwrap();
        let partial = r#"[{"id":1,"name":"a","full_name":"acme/a","private":false}]"#;
        db.execute(&DELIVERED.upsert_active(), params!["o1", partial, "t1"])
            .unwrap();
        let (archived, branch): (bool, String) = db
            .query_row(
                "SELECT archived, default_branch FROM repositories",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((archived, branch.as_str()), (true, "trunk"));
        // A listing carries `archived`, so a run follows it.
        db.execute("INSERT INTO enumeration_runs (org_id, run_id, status, next_url, started_at, updated_at) VALUES ('o1', 'r', 'in_progress', 'p', 't', 't')", []).unwrap();
        let listed =
            r#"[{"id":1,"name":"a","full_name":"acme/a","private":false,"archived":false}]"#;
        db.execute(
            &RUN_PAGE.upsert_active(),
            params!["o1", listed, "t2", "r", "p"],
        )
        .unwrap();
        assert_eq!(count(&db, "SELECT archived FROM repositories"), 0);
    }

    #[test]
    fn disconnecting_twice_logs_once() {
        let db = db();
        for now in ["2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"] {
            db.execute(
                SET_ORG_STATUS,
                params!["o1", "disconnected", now, r#"["active","suspended"]"#],
            )
            .unwrap();
            db.execute(
                RECORD_DISCONNECT_ACTIVITY,
                params!["o1", "org.disconnected", "by u", now],
            )
            .unwrap();
        }
        assert_eq!(count(&db, "SELECT count(*) FROM org_activity"), 1);
    }

    /// The connection `c1` of tenant `t1`, sealed under `key`, as invocation `inv` writes it
    /// with the state `nonce`.
    fn upsert_connection(db: &Connection, key: &str, nonce: &str, inv: &str) -> usize {
        let (access, refresh) = (format!("v1.{key}.a"), format!("v1.{key}.r"));
        db.execute(
            UPSERT_CONNECTION,
            params![
                "c1",
                "t1",
                "gitlab",
                "https://gitlab.com/",
                "7",
                "dev",
                key,
                access,
                refresh,
                "2026-01-01T02:00:00Z",
                "tech",
                "2026-01-01T00:00:00Z",
                nonce,
                inv
            ],
        )
        .unwrap()
    }

    /// A spent state, a connection and two GitLab groups of it, as an OAuth callback writes them.
    fn connected(db: &Connection) {
        db.execute(CONSUME_STATE, params!["n1", "t1", "now", "later", "inv"])
            .unwrap();
        upsert_connection(db, "k1", "n1", "inv");
        for (id, account) in [
            ("g1", "https://gitlab.com/api/v4/groups/1"),
            ("g2", "https://gitlab.com/api/v4/groups/2"),
        ] {
            let returned_id: String = db
                .query_row(
                    UPSERT_OAUTH_ORG,
                    params![
                        id,
                        "t1",
                        "gitlab",
                        account,
                        "grp",
                        "Group",
                        None::<String>,
                        "Group",
                        account,
                        "c1",
                        "tech",
                        "2026-01-01T00:00:00Z",
                        "n1",
                        "inv"
                    ],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(returned_id, id);
        }
    }

    #[test]
    fn oauth_writes_need_the_spent_state_and_ids_stay_on_reconnect() {
        let db = db();
        // Not spent by this invocation: nothing is written.
        upsert_connection(&db, "k1", "n1", "inv");
        assert_eq!(count(&db, "SELECT count(*) FROM provider_connections"), 0);
        connected(&db);
        assert_eq!(count(&db, "SELECT count(*) FROM organizations WHERE provider = 'gitlab' AND installation_id = 0"), 2);
        // Reconnect (a later state): the same org row comes back, the tokens are replaced.
        db.execute(
            "UPDATE organizations SET status = 'disconnected' WHERE id = 'g1'",
            [],
        )
        .unwrap();
        db.execute(CONSUME_STATE, params!["n2", "t1", "now", "later", "inv2"])
            .unwrap();
        upsert_connection(&db, "k2", "n2", "inv2");
        let id: String = db
            .query_row(
                UPSERT_OAUTH_ORG,
                params![
                    "new",
                    "t1",
                    "gitlab",
                    "https://gitlab.com/api/v4/groups/1",
                    "grp",
                    "Group",
                    None::<String>,
                    "Group",
                    "https://gitlab.com/api/v4/groups/1",
                    "c1",
                    "tech",
                    "now",
                    "n2",
                    "inv2"
                ],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(id, "g1");
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM organizations WHERE provider = 'gitlab' AND status = 'active'"
            ),
            2
        );
        assert_eq!(count(&db, "SELECT version FROM provider_connections"), 2);
        assert_eq!(
            db.query_row("SELECT key_id FROM provider_connections", [], |r| r
                .get::<_, String>(0))
                .unwrap(),
            "k2"
        );
    }

    #[test]
    fn one_claim_wins_a_refresh_and_only_it_stores() {
        let db = db();
        connected(&db);
        // As the edge reads it: no row returned is a lost claim; an error is an error (a failing
        // statement must fail the test, not pass for a lost claim).
        let claim_as = |version: i64, lease: &str, now: &str| -> Option<i64> {
            let mut stmt = db.prepare(CLAIM_REFRESH).unwrap();
            let versions: Vec<i64> = stmt
                .query_map(params!["c1", version, lease, now], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(versions.len() <= 1, "one row at most: {versions:?}");
            versions.first().copied()
        };
        let claim = |lease: &str, now: &str| claim_as(1, lease, now);
        assert_eq!(
            claim("2026-01-01T01:00:30Z", "2026-01-01T01:00:00Z"),
            Some(2)
        );
        assert_eq!(
            claim("2026-01-01T01:00:31Z", "2026-01-01T01:00:01Z"),
            None,
            "same version read: lost"
        );
        let stored = |version: i64| {
            db.execute(
                STORE_REFRESHED,
                params![
                    "c1",
                    version,
                    "k1",
                    "v1.k1.a2",
                    "v1.k1.r2",
                    "2026-01-01T03:00:00Z",
                    "t"
                ],
            )
            .unwrap()
        };
        assert_eq!(stored(1), 0, "a stale version cannot store");
        assert_eq!(stored(2), 1);
        assert_eq!(count(&db, "SELECT count(*) FROM provider_connections WHERE lease_until IS NULL AND version = 3"), 1);
        // A live lease keeps even a fresh reader out.
        db.execute(
            "UPDATE provider_connections SET lease_until = '2026-01-01T05:00:00Z'",
            [],
        )
        .unwrap();
        assert_eq!(
            claim_as(3, "x", "2026-01-01T04:00:00Z"),
            None,
            "a live lease: lost"
        );
        // Once the lease has run out, the same reader wins.
        assert_eq!(
            claim_as(3, "2026-01-01T05:00:40Z", "2026-01-01T05:00:10Z"),
            Some(4)
        );
    }

    #[test]
    fn a_revoked_connection_disconnects_its_orgs_once() {
        let db = db();
        connected(&db);
        db.execute(
            "INSERT INTO repositories (id, org_id, provider_repo_id, name, full_name, private, created_at, updated_at) \
             VALUES ('r1', 'g1', 5, 'p', 'grp/p', 1, 'now', 'now')",
            [],
        )
        .unwrap();
        db.execute(
            "INSERT INTO backup_jobs (id, org_id, repository_id, kind, priority, status, dedupe_key, created_at) \
             VALUES ('j1', 'g1', 'r1', 'initial', 'normal', 'queued', 'k', 'now')",
            [],
        )
        .unwrap();
        // A second refusal (another isolate, later) changes and logs nothing more.
        for now in ["2026-01-02T00:00:00Z", "2026-01-02T00:10:00Z"] {
            db.execute(REVOKE_CONNECTION, params!["c1", "invalid_grant", now])
                .unwrap();
            db.execute(DISCONNECT_CONNECTION_ORGS, params!["c1", now])
                .unwrap();
            db.execute(PAUSE_CONNECTION_JOBS, params!["c1", now])
                .unwrap();
            db.execute(RECORD_REVOKED_ACTIVITY, params!["c1", "revoked", now])
                .unwrap();
        }
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM provider_connections WHERE status = 'revoked'"
            ),
            1
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM organizations WHERE status = 'disconnected'"
            ),
            2
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM backup_jobs WHERE status = 'paused'"
            ),
            1
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM org_activity WHERE event = 'connection.revoked'"
            ),
            2
        );
        // Due for refresh: only active connections with an active org.
        assert_eq!(
            returned(
                &db,
                CONNECTIONS_DUE,
                params!["2030-01-01T00:00:00Z", 10, r#"["k1"]"#]
            ),
            0
        );
    }

    #[test]
    fn refreshing_never_picks_a_row_whose_key_is_gone() {
        let db = db();
        // 15 due rows under `gone` (no longer in TOKEN_KEYS), expiring first, then 3 under
        // `old` and 2 under the current key. Without the filter, a pass of 10 would pick
        // `gone` rows only, fail to open every one, and never refresh the others.
        for i in 0..15 {
            sealed_connection(&db, &format!("a{i:03}"), "gone", "active");
            oauth_org(&db, &format!("ga{i:03}"), &format!("a{i:03}"), "active");
        }
        for (i, key) in ["old", "old", "old", "new", "new"].iter().enumerate() {
            let id = format!("b{i:03}");
            sealed_connection(&db, &id, key, "active");
            oauth_org(&db, &format!("gb{i:03}"), &id, "active");
            db.execute(
                "UPDATE provider_connections SET expires_at = '2026-01-01T03:00:00Z' WHERE id = ?1",
                [&id],
            )
            .unwrap();
        }
        let mut stmt = db.prepare(CONNECTIONS_DUE).unwrap();
        let due: Vec<String> = stmt
            .query_map(
                params!["2026-01-02T00:00:00Z", 10, r#"["new","old"]"#],
                |r| r.get("id"),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(due, ["b000", "b001", "b002", "b003", "b004"]);
    }

    /// A GitLab connection of tenant `t1` sealed under `key`.
    fn sealed_connection(db: &Connection, id: &str, key: &str, status: &str) {
        db.execute(
            "INSERT INTO provider_connections (id, tenant_id, provider, base_url, user_id, status, key_id, \
                 access_token, refresh_token, expires_at, connected_by, created_at, updated_at) \
             VALUES (?1, 't1', 'gitlab', 'https://gitlab.com/', ?1, ?3, ?2, 'v1.' || ?2 || '.a', \
                 'v1.' || ?2 || '.r', '2026-01-01T02:00:00Z', 'tech', 'then', 'then')",
            params![id, key, status],
        )
        .unwrap();
    }

    /// A GitLab org of connection `connection`.
    fn oauth_org(db: &Connection, id: &str, connection: &str, status: &str) {
        db.execute(
            "INSERT INTO organizations (id, tenant_id, provider, account_id, login, account_type, \
                 installation_id, status, connected_by, created_at, updated_at, connection_id) \
             VALUES (?1, 't1', 'gitlab', 'https://gitlab.com/api/v4/groups/' || ?1, ?1, 'Group', 0, ?3, \
                 'tech', 'then', 'then', ?2)",
            params![id, connection, status],
        )
        .unwrap();
    }

    /// `(org, detail)` of every `connection.unusable` activity line.
    fn unusable_lines(db: &Connection) -> Vec<(String, String)> {
        let mut stmt = db
            .prepare(
                "SELECT org_id, detail FROM org_activity WHERE event = 'connection.unusable' \
                 ORDER BY org_id, id",
            )
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    /// The hourly re-sealing pass as `provider_tokens::reseal_old_keys` runs it, `TOKEN_KEYS`
    /// being `known` (current first): the orgs told, then the picked rows (≤ 50, in id order)
    /// re-sealed under the current key, except those it cannot open (key gone), which it skips.
    /// Returns the ids picked.
    fn reseal_pass(db: &Connection, known: &[&str]) -> Vec<String> {
        let kids = serde_json::json!(known).to_string();
        db.execute(
            RECORD_UNUSABLE_KEY_ACTIVITY,
            params![kids, "2026-02-01T00:00:00Z"],
        )
        .unwrap();
        let mut stmt = db.prepare(CONNECTIONS_TO_RESEAL).unwrap();
        let picked: Vec<(String, String, i64)> = stmt
            .query_map(params![known[0], 50, kids], |r| {
                Ok((r.get("id")?, r.get("key_id")?, r.get("version")?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (id, key, version) in &picked {
            if !known.contains(&key.as_str()) {
                continue; // cannot be opened
            }
            let current = known[0];
            let (access, refresh) = (format!("v1.{current}.a"), format!("v1.{current}.r"));
            let changed = db
                .execute(
                    RESEAL_CONNECTION,
                    params![
                        id,
                        version,
                        current,
                        access,
                        refresh,
                        "2026-02-01T00:00:00Z"
                    ],
                )
                .unwrap();
            assert_eq!(changed, 1, "{id}");
        }
        picked.into_iter().map(|(id, _, _)| id).collect()
    }

    #[test]
    fn resealing_reaches_every_usable_row_and_never_picks_one_whose_key_is_gone() {
        let db = db();
        // 60 rows under `gone` (no longer in TOKEN_KEYS) whose ids sort first, 70 under `old`
        // (still listed), a revoked one under `old` (re-sealed too, so `old` can be dropped), a
        // revoked one under `gone` and one already under the current key `new`. Without the
        // filter, a pass of 50 would pick `gone` rows only, skip them all, and never progress.
        for i in 0..60 {
            sealed_connection(&db, &format!("a{i:03}"), "gone", "active");
        }
        sealed_connection(&db, "a999", "gone", "revoked");
        // Inserted against id order, so that only an ordered query picks them in id order.
        for i in (0..70).rev() {
            sealed_connection(&db, &format!("b{i:03}"), "old", "active");
        }
        sealed_connection(&db, "b999", "old", "revoked");
        sealed_connection(&db, "c000", "new", "active");
        // Orgs: of a `gone` connection (told), a disconnected one of another (not told), one of
        // the revoked `gone` connection (revocation already said why), one of a usable row.
        oauth_org(&db, "g-told", "a000", "active");
        oauth_org(&db, "g-told-too", "a000", "suspended");
        oauth_org(&db, "g-disconnected", "a001", "disconnected");
        oauth_org(&db, "g-revoked", "a999", "active");
        oauth_org(&db, "g-usable", "b000", "active");

        let known = ["new", "old"];
        let mut passes = Vec::new();
        for _ in 0..10 {
            let picked = reseal_pass(&db, &known);
            if picked.is_empty() {
                break;
            }
            passes.push(picked);
        }
        assert_eq!(
            passes.iter().map(Vec::len).collect::<Vec<_>>(),
            [50, 21],
            "71 usable rows: two passes, then nothing left"
        );
        let picked: Vec<&String> = passes.iter().flatten().collect();
        let mut in_order = picked.clone();
        in_order.sort();
        assert_eq!(picked, in_order, "picked in id order");
        assert!(
            picked.iter().all(|id| id.starts_with('b')),
            "no row whose key is gone, none already current: {picked:?}"
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM provider_connections WHERE key_id = 'new'"
            ),
            72
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM provider_connections WHERE key_id = 'old'"
            ),
            0,
            "the old key can be dropped"
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM provider_connections WHERE key_id = 'gone' AND version = 1 \
                 AND updated_at = 'then'"
            ),
            61,
            "rows whose key is gone are left as they are"
        );

        // Their orgs were told once, over three passes, with the key named.
        let lines = unusable_lines(&db);
        assert_eq!(
            lines
                .iter()
                .map(|(org, _)| org.as_str())
                .collect::<Vec<_>>(),
            ["g-told", "g-told-too"]
        );
        assert!(
            lines[0].1.contains("sealed under key `gone`")
                && lines[0].1.contains("Connect the organization again"),
            "{}",
            lines[0].1
        );
        reseal_pass(&db, &known);
        assert_eq!(unusable_lines(&db).len(), 2, "once, not every hour");
        // Another key dropped later is another line.
        sealed_connection(&db, "a500", "older", "active");
        db.execute(
            "UPDATE organizations SET connection_id = 'a500' WHERE id = 'g-told-too'",
            [],
        )
        .unwrap();
        reseal_pass(&db, &known);
        let lines = unusable_lines(&db);
        assert_eq!(lines.len(), 3);
        assert!(lines[2].1.contains("sealed under key `older`"), "{lines:?}");

        // The key put back: its rows are picked again (and re-sealed), nobody told again.
        let picked = reseal_pass(&db, &["new", "old", "gone"]);
        assert_eq!(picked.len(), 50);
        assert!(picked.iter().all(|id| id.starts_with('a')), "{picked:?}");
        assert_eq!(unusable_lines(&db).len(), 3);
    }

    #[test]
    fn azure_guids_and_gitlab_ids_share_the_repository_id_column() {
        let db = db();
        let page = r#"[{"id":"5febef5a-833d-4e14-b9c0-14cb638f91e6","name":"site","full_name":"contoso/Web/site","private":true},
                       {"id":17,"name":"api","full_name":"initech/api","private":true}]"#;
        db.execute(&DELIVERED.upsert_active(), params!["o1", page, "now"])
            .unwrap();
        assert_eq!(
            returned(
                &db,
                &DELIVERED.insert_initial_jobs(),
                params!["o1", page, "now"]
            ),
            2
        );
        assert_eq!(
            returned(
                &db,
                &DELIVERED.insert_initial_jobs(),
                params!["o1", page, "now"]
            ),
            0
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM repositories WHERE provider_repo_id = '5febef5a-833d-4e14-b9c0-14cb638f91e6'"),
            1
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM repositories WHERE provider_repo_id = 17"
            ),
            1
        );
    }
}
