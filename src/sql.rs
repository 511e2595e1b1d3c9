//! Every SQL statement the gateway runs against D1, in one place. The schema is in
//! `migrations/`. Parameters are numbered; each constant's doc lists them.
//!
//! Pages of repositories are written with `json_each` over one JSON-array parameter, so a page
//! of 100 costs one statement per table and stays far below D1's 100-parameters limit.

/// ?1 provider, ?2 installation id → `id`, `tenant_id`.
pub const ORG_BY_INSTALLATION: &str =
    "SELECT id, tenant_id FROM organizations WHERE provider = ?1 AND installation_id = ?2";

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

/// ?1 nonce, ?2 tenant, ?3 technician, ?4 now, ?5 invocation id.
pub const RECORD_INSTALLATION_REQUEST: &str = concat!(
    "INSERT INTO installation_requests (nonce, tenant_id, technician_id, requested_at) \
     SELECT ?1, ?2, ?3, ?4 WHERE ",
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
/// ?6 nonce, ?7 invocation id. Starting a run supersedes any older one: its continuations find
/// another run id and stop.
pub const START_RUN: &str = concat!(
    "INSERT INTO enumeration_runs (org_id, run_id, status, next_url, started_at, updated_at) \
     SELECT id, ?3, 'in_progress', ?4, ?5, ?5 FROM organizations \
         WHERE tenant_id = ?1 AND provider = 'github' AND account_id = ?2 AND ",
    spent_here!("?6", "?7"),
    " ON CONFLICT (org_id) DO UPDATE SET run_id = excluded.run_id, status = 'in_progress', \
         next_url = excluded.next_url, pages = 0, found = 0, added = 0, \
         started_at = excluded.started_at, updated_at = excluded.updated_at, last_error = NULL"
);

/// ?1 org → the org's installation and status with its run's cursor.
pub const RUN_FOR_ORG: &str =
    "SELECT o.installation_id AS installation_id, o.status AS status, o.login AS login, \
         r.run_id AS run_id, r.next_url AS next_url, r.found AS found, r.added AS added \
     FROM organizations o JOIN enumeration_runs r ON r.org_id = o.id WHERE o.id = ?1";

/// The page statements below share parameters: ?1 org, ?2 JSON array of repositories,
/// ?3 run id, ?4 URL of this page (the run's cursor), ?5 now. Each writes only while the run's
/// cursor still points at this page, so a page is applied once.
const CURSOR_MATCHES: &str =
    "EXISTS (SELECT 1 FROM enumeration_runs WHERE org_id = ?1 AND run_id = ?3 AND next_url = ?4)";

pub fn page_upsert_repositories() -> String {
    format!(
        "INSERT INTO repositories (id, org_id, github_id, name, full_name, private, default_branch, html_url, \
             archived, visibility, status, created_at, updated_at) \
         SELECT lower(hex(randomblob(16))), ?1, json_extract(j.value, '$.id'), json_extract(j.value, '$.name'), \
             json_extract(j.value, '$.full_name'), json_extract(j.value, '$.private'), \
             json_extract(j.value, '$.default_branch'), json_extract(j.value, '$.html_url'), \
             json_extract(j.value, '$.archived'), json_extract(j.value, '$.visibility'), 'active', ?5, ?5 \
         FROM json_each(?2) AS j WHERE {CURSOR_MATCHES} \
         ON CONFLICT (org_id, github_id) DO UPDATE SET name = excluded.name, full_name = excluded.full_name, \
             private = excluded.private, default_branch = excluded.default_branch, html_url = excluded.html_url, \
             archived = excluded.archived, visibility = excluded.visibility, status = 'active', \
             updated_at = excluded.updated_at"
    )
}

const PAGE_REPOSITORIES: &str = "FROM json_each(?2) AS j JOIN repositories AS r \
     ON r.org_id = ?1 AND r.github_id = json_extract(j.value, '$.id')";

pub fn page_insert_profiles() -> String {
    format!(
        "INSERT INTO application_profiles (repository_id, status, created_at) \
         SELECT r.id, 'stub', ?5 {PAGE_REPOSITORIES} WHERE {CURSOR_MATCHES} \
         ON CONFLICT (repository_id) DO NOTHING"
    )
}

/// Returns the jobs created (`id`, `repository_id`): only those get sent to the queue.
pub fn page_insert_jobs() -> String {
    format!(
        "INSERT INTO backup_jobs (id, org_id, repository_id, kind, priority, status, dedupe_key, run_id, created_at) \
         SELECT lower(hex(randomblob(16))), ?1, r.id, 'initial', 'normal', 'queued', 'initial:' || r.id, ?3, ?5 \
         {PAGE_REPOSITORIES} WHERE {CURSOR_MATCHES} \
         ON CONFLICT (dedupe_key) DO NOTHING \
         RETURNING id, repository_id"
    )
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

/// ?1 JSON array of job ids, ?2 now. Idempotent: a redelivered job changes nothing.
pub const MARK_JOBS_RECEIVED: &str =
    "UPDATE backup_jobs SET status = 'received', received_at = ?2 \
     WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'queued'";

/// ?1 now: spent states past their expiry can go (an expired token is refused by its own expiry).
pub const PURGE_CONSUMED_STATES: &str = "DELETE FROM consumed_states WHERE expires_at < ?1";
