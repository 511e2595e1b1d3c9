//! The backup executor (issue #9): `backup_job.v1` messages → verified snapshots of
//! repositories' refs in R2, as git bundles, streamed.
//!
//! Per batch (`take_all`): the jobs, their repositories and orgs in one query
//! (`BACKUP_TARGETS`); one credential per org for the batch; then up to `CONCURRENCY` backups
//! at once. Per job:
//!
//! 1. A job already settled, or of an org or repository no longer active, is acknowledged and
//!    nothing is fetched.
//! 2. One D1 batch claims a `running` snapshot (one per repository) and marks the job
//!    `running`, after failing runs older than 20 minutes or of this very job (a redelivery: its
//!    invocation is gone), and reads the previous ok snapshot. When another backup of the
//!    repository is running: a job it covers (created before it started) is settled; any other
//!    waits (`queued`) and is sent again when that backup settles (`send_waiting`; the
//!    dispatcher re-sends it if that send is lost).
//! 3. Credentials for the work at hand: a GitHub installation token (Basic
//!    `x-access-token:<token>`), a GitLab access token (Basic `oauth2:<token>`) or a Microsoft
//!    one (Bearer); each only sent under its provider's configured origin (`outbound::git`).
//! 4. `GET {git_url}/info/refs?service=git-upload-pack` → the refs to keep (`backup::refs`), and
//!    the plan against the previous ok snapshot (`backup::plan`): `unchanged` (nothing more is
//!    fetched), `empty`, a full bundle, or an incremental one whose prerequisites are the
//!    previous tips (a full one at least every `full_every` snapshots).
//! 5. `POST {git_url}/git-upload-pack` (wants, haves, done): the answer streams through
//!    `backup::response` and `backup::pack` (signature, version, object count, trailing SHA-1)
//!    into R2 behind the bundle header: a single `put` when it stays under one part, otherwise a
//!    multipart upload of equal `PART_BYTES` parts. Nothing is held but the part being filled.
//! 6. Only a verified, completed upload makes the snapshot `ok` (with the bundle's SHA-256, its
//!    size, object count and refs) and settles the job; any failure aborts the upload and fails
//!    the snapshot with a reason (never a secret). A transient failure retries the message (its
//!    last retry ends in the dead-letter queue, which fails the job); a permanent one (no git
//!    URL, a URL outside the provider's origin, a repository gone, or bigger than one invocation
//!    can carry) fails the job at once: never an endless retry.

use crate::auth::credential_origins::Issuer;
use crate::backup::{bundle, pack, plan, refs, request, response};
use crate::config::Secret;
use crate::edge::binding_faults::{self, Op};
use crate::edge::bindings::{Ctx, Internal, Param, BACKUPS, BACKUP_QUEUE};
use crate::edge::enumerate::{self, Owner};
use crate::edge::platform;
use crate::edge::providers::github_client;
use crate::edge::providers::outbound::{self, CallError};
use crate::edge::providers::provider_tokens;
use crate::provider::Provider;
use crate::sql;
use base64::Engine;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use url::Url;

/// R2 multipart parts are at least 5 MiB and all equal but the last.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// A `running` snapshot older than this was abandoned (a consumer invocation has 15 minutes).
const ABANDONED_AFTER_SECS: i64 = 20 * 60;
/// A pack transfer that sends nothing for this long has stalled: the attempt fails (and the
/// queue retries it) rather than holding the invocation, and the batch with it, until the
/// platform ends it.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Backups of one batch that run at once: each holds one git connection (of the platform's six
/// simultaneous ones) and at most two parts in memory.
const CONCURRENCY: usize = 4;

#[derive(Deserialize)]
struct Target {
    job_id: String,
    job_status: String,
    job_created_at: String,
    repository_id: String,
    full_name: String,
    git_url: Option<String>,
    repository_status: String,
    org_id: String,
    tenant_id: String,
    org_status: String,
    provider: String,
    installation_id: Option<f64>,
    connection_id: Option<String>,
    full_every: f64,
}

#[derive(Deserialize)]
struct LastOk {
    id: String,
    refs: Option<String>,
    since_full: Option<f64>,
}

#[derive(Deserialize)]
struct Abandoned {
    job_id: Option<String>,
    object_key: Option<String>,
    upload_id: Option<String>,
}

/// Why a backup did not produce a snapshot. `permanent`: retrying cannot help.
pub struct Failed {
    pub why: String,
    pub permanent: bool,
    /// The snapshot claimed for the job, to be failed with it.
    snapshot: Option<String>,
}

impl Failed {
    fn transient(why: impl Into<String>) -> Self {
        Failed {
            why: why.into(),
            permanent: false,
            snapshot: None,
        }
    }

    fn permanent(why: impl Into<String>) -> Self {
        Failed {
            why: why.into(),
            permanent: true,
            snapshot: None,
        }
    }
}

impl From<Internal> for Failed {
    fn from(e: Internal) -> Self {
        Failed::transient(e.0)
    }
}

impl From<CallError> for Failed {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotFound => Failed::permanent(
                "the provider answered 404: the repository is gone or out of reach",
            ),
            CallError::Refused(why) => Failed::permanent(why),
            // The queue's own back-off decides when the message is retried.
            CallError::Unavailable { detail, .. } => Failed::transient(detail),
            other => Failed::transient(other.to_string()),
        }
    }
}

/// What became of one job.
pub enum Outcome {
    /// Settled (a snapshot, nothing to do, or failed for good): acknowledge the message.
    Done,
    /// Retry the message.
    Retry(String),
}

/// Takes the backups `job_ids` ask for; one outcome per job, in order.
pub async fn take_all(ctx: &Ctx, job_ids: &[String]) -> Vec<Outcome> {
    match take_batch(ctx, job_ids).await {
        Ok(outcomes) => outcomes,
        Err(Internal(why)) => job_ids
            .iter()
            .map(|_| Outcome::Retry(why.clone()))
            .collect(),
    }
}

async fn take_batch(ctx: &Ctx, job_ids: &[String]) -> Result<Vec<Outcome>, Internal> {
    let ids = serde_json::to_string(job_ids).map_err(|e| Internal::new("job ids", e))?;
    let targets: Vec<Target> = ctx.rows(sql::BACKUP_TARGETS, &[Param::from(&ids)]).await?;
    let now = crate::time::rfc3339(ctx.now);
    let mut settle = Vec::new();
    let mut runnable = Vec::new();
    for target in targets {
        if target.job_status != "queued" && target.job_status != "running" {
            continue;
        }
        if target.org_status != "active" || target.repository_status != "active" {
            settle.push(target.job_id.clone());
            continue;
        }
        runnable.push(target);
    }
    if !settle.is_empty() {
        let ids = serde_json::to_string(&settle).map_err(|e| Internal::new("job ids", e))?;
        ctx.run(sql::SETTLE_JOBS, &[Param::from(&ids), Param::from(&now)])
            .await?;
    }
    // One credential per org for the batch, minted before the backups start.
    let mut credentials: BTreeMap<String, Result<Credentials, String>> = BTreeMap::new();
    for target in &runnable {
        if !credentials.contains_key(&target.org_id) {
            let minted = credentials_for(ctx, target).await.map_err(|f| f.why);
            credentials.insert(target.org_id.clone(), minted);
        }
    }
    let alone = runnable.len() == 1;
    let credentials = &credentials;
    let results: BTreeMap<String, Outcome> = futures_util::stream::iter(runnable)
        .map(|target| async move {
            let outcome = match credentials.get(&target.org_id) {
                Some(Ok(credentials)) => take(ctx, &target, credentials, alone).await,
                Some(Err(why)) => Outcome::Retry(format!("credentials: {why}")),
                None => Outcome::Retry("no credentials".into()),
            };
            (target.job_id, outcome)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut results = results;
    Ok(job_ids
        .iter()
        .map(|id| results.remove(id).unwrap_or(Outcome::Done))
        .collect())
}

/// One job, its credentials minted.
async fn take(ctx: &Ctx, target: &Target, credentials: &Credentials, alone: bool) -> Outcome {
    match claim_and_back_up(ctx, target, credentials, alone).await {
        Ok(()) => Outcome::Done,
        Err(failed) => match record_failure(ctx, target, &failed).await {
            Err(Internal(why)) => {
                Outcome::Retry(format!("{} (and recording it: {why})", failed.why))
            }
            Ok(()) if failed.permanent => Outcome::Done,
            Ok(()) => Outcome::Retry(failed.why),
        },
    }
}

/// The claim, the backup and its record. `Err`: the job's snapshot (if claimed) is still to be
/// failed.
async fn claim_and_back_up(
    ctx: &Ctx,
    target: &Target,
    credentials: &Credentials,
    alone: bool,
) -> Result<(), Failed> {
    let now = crate::time::rfc3339(ctx.now);
    let snapshot_id = format!(
        "{:012x}{}",
        worker::Date::now().as_millis(),
        hex::encode(platform::random_bytes::<8>().map_err(Internal)?)
    );
    let mut upload = Upload::new(target, &snapshot_id);
    let cutoff = crate::time::rfc3339(ctx.now - ABANDONED_AFTER_SECS);
    let results = ctx
        .batch(vec![
            ctx.statement(
                sql::ABANDON_STALE_SNAPSHOTS,
                &[
                    Param::from(&target.repository_id),
                    Param::from(&cutoff),
                    Param::from(&now),
                    Param::from(&target.job_id),
                ],
            )?,
            ctx.statement(
                sql::CLAIM_SNAPSHOT,
                &[
                    Param::from(&snapshot_id),
                    Param::from(&target.org_id),
                    Param::from(&target.repository_id),
                    Param::from(&now),
                    Param::from(&target.job_id),
                    Param::from(&upload.key),
                ],
            )?,
            ctx.statement(
                sql::START_JOB,
                &[
                    Param::from(&target.job_id),
                    Param::from(&snapshot_id),
                    Param::from(&now),
                ],
            )?,
            ctx.statement(
                sql::OTHER_RUNNING_SNAPSHOT,
                &[
                    Param::from(&target.repository_id),
                    Param::from(&snapshot_id),
                ],
            )?,
            ctx.statement(sql::LAST_OK_SNAPSHOT, &[Param::from(&target.repository_id)])?,
        ])
        .await?;
    let rows = |i: usize| {
        results
            .get(i)
            .ok_or_else(|| Internal("D1 batch returned too few results".into()))
    };
    let abandoned: Vec<Abandoned> = rows(0)?
        .results()
        .map_err(|e| Internal::new("abandoned rows", e))?;
    let _ = settle_abandoned(ctx, abandoned, Some(&target.job_id)).await;
    let claimed = rows(1)?.meta().ok().flatten().and_then(|m| m.changes) == Some(1);
    if !claimed {
        #[derive(Deserialize)]
        struct Running {
            started_at: Option<String>,
        }
        let other: Vec<Running> = rows(3)?
            .results()
            .map_err(|e| Internal::new("running rows", e))?;
        let covered = other
            .first()
            .and_then(|r| r.started_at.as_deref())
            // Strictly after: within the same second the order is unknown, and a second backup
            // is cheaper than a missed push.
            .is_some_and(|started| started > target.job_created_at.as_str());
        // Covered: the running backup started after the job was made. Otherwise the job waits:
        // that backup sends it when it settles (`send_waiting`), or the dispatcher does.
        let sql = if covered {
            sql::SETTLE_JOBS
        } else {
            sql::REQUEUE_JOBS
        };
        let ids = serde_json::json!([target.job_id]).to_string();
        ctx.run(sql, &[Param::from(&ids), Param::from(&now)])
            .await?;
        return Ok(());
    }
    let previous: Vec<LastOk> = rows(4)?
        .results()
        .map_err(|e| Internal::new("last ok rows", e))?;
    match snapshot(
        ctx,
        target,
        credentials,
        previous.into_iter().next(),
        &mut upload,
    )
    .await
    {
        Ok(done) => {
            let recorded = finish(ctx, target, &snapshot_id, &done).await;
            // Benchmark builds: the wasm heap's size (it never shrinks, so this is its peak).
            #[cfg(feature = "bench")]
            worker::console_log!(
                "bench: backup of {} bytes done, wasm memory {} MiB",
                done.bytes,
                core::arch::wasm32::memory_size(0) * 64 / 1024
            );
            if !matches!(recorded, Ok(true)) {
                // Not recorded (another invocation abandoned this run): nothing may stay behind.
                upload.delete(ctx, done.object_key.as_deref()).await;
            } else if let Err(Internal(why)) = send_waiting(ctx, target).await {
                // The dispatcher sends it later.
                worker::console_warn!("the job waiting behind this backup was not sent: {why}");
            }
            recorded.map(|_| ()).map_err(|e| Failed {
                snapshot: Some(snapshot_id.clone()),
                ..Failed::from(e)
            })
        }
        Err(mut failed) => {
            upload.abort().await;
            if failed.why.contains("subrequest budget exhausted") {
                failed.permanent = alone;
                failed.why = format!(
                    "{}: the repository needs more than one invocation's {} subrequests{}",
                    failed.why,
                    ctx.config.subrequest_limit,
                    if alone {
                        ""
                    } else {
                        " shared with other backups (retried)"
                    }
                );
            }
            failed.snapshot = Some(snapshot_id);
            Err(failed)
        }
    }
}

/// Sends the job that waits behind the backup that just settled (a push while it ran), so it
/// does not wait for the dispatcher.
async fn send_waiting(ctx: &Ctx, target: &Target) -> Result<(), Internal> {
    #[derive(Deserialize)]
    struct Waiting {
        id: String,
        priority: String,
    }
    let now = crate::time::rfc3339(platform::now());
    let waiting: Vec<Waiting> = ctx
        .rows(
            sql::NEXT_WAITING_JOB,
            &[Param::from(&target.repository_id), Param::from(&now)],
        )
        .await?;
    let Some(job) = waiting.into_iter().next() else {
        return Ok(());
    };
    let owner = match (Provider::from_db(&target.provider), &target.connection_id) {
        (Some(provider), Some(connection)) if provider != Provider::GitHub => {
            Owner::Connection(provider, connection)
        }
        _ => Owner::Installation(target.installation_id.unwrap_or_default() as u64),
    };
    let message = enumerate::backup_message(
        job.id,
        &target.org_id,
        target.repository_id.clone(),
        owner,
        &job.priority,
    );
    ctx.send_batch(BACKUP_QUEUE, &[message], 0).await
}

/// Fails the job's snapshot (when one was claimed) and either fails the job for good or lets
/// it wait for the message's retry.
async fn record_failure(ctx: &Ctx, target: &Target, failed: &Failed) -> Result<(), Internal> {
    let why = failed.why.as_str();
    let at = crate::time::rfc3339(platform::now());
    let ids = serde_json::json!([target.job_id]).to_string();
    let mut statements = Vec::new();
    if let Some(snapshot_id) = &failed.snapshot {
        statements.push(ctx.statement(
            sql::FAIL_SNAPSHOT,
            &[Param::from(snapshot_id), Param::from(why), Param::from(&at)],
        )?);
        statements.push(ctx.statement(
            sql::RECORD_LAST_BACKUP,
            &[
                Param::from(&target.repository_id),
                Param::from("failed"),
                Param::from(&at),
            ],
        )?);
    }
    if failed.permanent {
        statements.push(ctx.statement(
            sql::RECORD_BACKUP_FAILED_ACTIVITY,
            &[
                Param::from(&target.job_id),
                Param::from(why),
                Param::from(&at),
            ],
        )?);
        statements.push(ctx.statement(
            sql::FAIL_JOB,
            &[Param::from(&target.job_id), Param::from(&at)],
        )?);
    } else {
        statements.push(ctx.statement(sql::REQUEUE_JOBS, &[Param::from(&ids), Param::from(&at)])?);
    }
    ctx.batch(statements).await?;
    Ok(())
}

/// Aborts the uploads of abandoned runs, or deletes their objects (best effort), and lets their jobs (other than `ours`)
/// wait to be sent again.
async fn settle_abandoned(
    ctx: &Ctx,
    abandoned: Vec<Abandoned>,
    ours: Option<&str>,
) -> Result<(), Internal> {
    let mut jobs = Vec::new();
    for a in abandoned {
        let cleared = match ctx.env.bucket(BACKUPS) {
            Ok(bucket) => match (&a.object_key, &a.upload_id) {
                (Some(key), Some(upload_id)) => {
                    match bucket.resume_multipart_upload(key, upload_id) {
                        Ok(upload) => upload.abort().await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
                // The run may have died between storing its bundle and recording it.
                (Some(key), None) => bucket.delete(key).await.map_err(|e| e.to_string()),
                _ => Ok(()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = cleared {
            worker::console_warn!("abandoned backup {:?} not cleared: {e}", a.object_key);
        }
        if let Some(job) = a.job_id.filter(|j| Some(j.as_str()) != ours) {
            jobs.push(job);
        }
    }
    if !jobs.is_empty() {
        let ids = serde_json::to_string(&jobs).map_err(|e| Internal::new("job ids", e))?;
        let now = crate::time::rfc3339(ctx.now);
        ctx.run(sql::REQUEUE_JOBS, &[Param::from(&ids), Param::from(&now)])
            .await?;
    }
    Ok(())
}

/// The hourly sweep: every run older than 20 minutes is failed, its upload aborted and its job
/// sent again by the dispatcher.
pub async fn abandon_stale(ctx: &Ctx) -> Result<(), Internal> {
    let abandoned: Vec<Abandoned> = ctx
        .rows(
            sql::ABANDON_STALE_SNAPSHOTS,
            &[
                Param::from(None::<&str>),
                Param::from(&crate::time::rfc3339(ctx.now - ABANDONED_AFTER_SECS)),
                Param::from(&crate::time::rfc3339(ctx.now)),
                Param::from(None::<&str>),
            ],
        )
        .await?;
    settle_abandoned(ctx, abandoned, None).await
}

/// What a finished backup records.
struct Done {
    outcome: &'static str,
    kind: Option<&'static str>,
    base: Option<String>,
    refs: plan::RefMap,
    /// The branch the advertisement's `symref=HEAD:…` named.
    head: Option<String>,
    object_key: Option<String>,
    bytes: u64,
    sha256: Option<String>,
    objects: u32,
}

/// Records a finished backup and settles its job: `false` when the snapshot was no longer
/// this run's to finish (another invocation abandoned it).
async fn finish(
    ctx: &Ctx,
    target: &Target,
    snapshot_id: &str,
    done: &Done,
) -> Result<bool, Internal> {
    let at = crate::time::rfc3339(platform::now());
    let refs: BTreeMap<&str, String> = done
        .refs
        .iter()
        .map(|(name, oid)| (name.as_str(), oid.to_hex()))
        .collect();
    let refs = serde_json::to_string(&refs).map_err(|e| Internal::new("refs JSON", e))?;
    let ids = serde_json::json!([target.job_id]).to_string();
    let mut statements = vec![
        ctx.statement(
            sql::FINISH_SNAPSHOT,
            &[
                Param::from(snapshot_id),
                Param::from(done.outcome),
                Param::from(done.kind),
                Param::from(done.base.as_deref()),
                Param::from(&refs),
                Param::from(done.object_key.as_deref()),
                Param::from(done.bytes as i64),
                Param::from(done.sha256.as_deref()),
                Param::from(i64::from(done.objects)),
                Param::from(&at),
                Param::from(done.head.as_deref()),
            ],
        )?,
        ctx.statement(
            sql::RECORD_LAST_BACKUP,
            &[
                Param::from(&target.repository_id),
                Param::from(done.outcome),
                Param::from(&at),
            ],
        )?,
        ctx.statement(sql::SETTLE_JOBS, &[Param::from(&ids), Param::from(&at)])?,
    ];
    if done.outcome == "ok" {
        statements.push(ctx.statement(
            sql::RECORD_FIRST_BACKUP_ACTIVITY,
            &[
                Param::from(&target.org_id),
                Param::from(&target.repository_id),
                Param::from(snapshot_id),
                Param::from(&at),
            ],
        )?);
    }
    let results = ctx.batch(statements).await?;
    Ok(results
        .first()
        .and_then(|r| r.meta().ok().flatten())
        .and_then(|m| m.changes)
        == Some(1))
}

/// An org's git credential for a batch: the `Authorization` value and who issued it.
enum Credentials {
    GitHub(String),
    Microsoft(String, Secret),
    GitLab(String, Url, Secret),
}

impl Credentials {
    fn authorization(&self) -> &str {
        match self {
            Credentials::GitHub(a)
            | Credentials::Microsoft(a, _)
            | Credentials::GitLab(a, _, _) => a,
        }
    }

    fn issuer(&self) -> Issuer<'_> {
        match self {
            Credentials::GitHub(_) => Issuer::GitHub,
            Credentials::Microsoft(..) => Issuer::Microsoft,
            Credentials::GitLab(_, instance, _) => Issuer::GitLab(instance),
        }
    }

    /// After a 401 to the connection's access token: the token refreshed (or the one another
    /// invocation refreshed meanwhile), as an `Authorization` value; `None` for a GitHub
    /// installation token. A refused refresh revokes the connection (its orgs disconnected) and
    /// fails the job for good.
    async fn refreshed(&self, ctx: &Ctx, target: &Target) -> Result<Option<String>, Failed> {
        let (refused, connection) = match (self, target.connection_id.as_deref()) {
            (Credentials::Microsoft(_, t) | Credentials::GitLab(_, _, t), Some(c)) => (t, c),
            _ => return Ok(None),
        };
        let access = provider_tokens::access_token(ctx, connection, Some(refused))
            .await
            .map_err(|f| match f {
                provider_tokens::TokenFailure::Revoked(_) => Failed::permanent(f.to_string()),
                other => Failed::transient(other.to_string()),
            })?;
        Ok(Some(match self {
            Credentials::GitLab(..) => basic("oauth2", access.token.expose()),
            _ => format!("Bearer {}", access.token.expose()),
        }))
    }
}

fn basic(user: &str, token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
    )
}

/// Mints the org's credential: a GitHub installation token, or the connection's access token
/// (refreshed when it is about to expire).
async fn credentials_for(ctx: &Ctx, target: &Target) -> Result<Credentials, Failed> {
    match Provider::from_db(&target.provider) {
        Some(Provider::GitHub) => {
            let id = target
                .installation_id
                .ok_or_else(|| Failed::permanent("the org has no installation"))?
                as u64;
            let jwt = github_client::app_jwt(ctx)
                .await
                .map_err(|p| Failed::transient(p.detail()))?;
            let token = github_client::installation_token(ctx, &jwt, id)
                .await
                .map_err(|e| Failed::transient(e.to_string()))?;
            Ok(Credentials::GitHub(basic("x-access-token", &token)))
        }
        Some(provider) => {
            let connection = target
                .connection_id
                .as_deref()
                .ok_or_else(|| Failed::permanent("the org has no connection"))?;
            let access = provider_tokens::access_token(ctx, connection, None)
                .await
                .map_err(|f| Failed::transient(f.to_string()))?;
            Ok(match provider {
                Provider::GitLab => Credentials::GitLab(
                    basic("oauth2", access.token.expose()),
                    access.base_url,
                    access.token,
                ),
                _ => Credentials::Microsoft(
                    format!("Bearer {}", access.token.expose()),
                    access.token,
                ),
            })
        }
        None => Err(Failed::permanent(format!(
            "unknown provider {}",
            target.provider
        ))),
    }
}

async fn snapshot(
    ctx: &Ctx,
    target: &Target,
    credentials: &Credentials,
    previous: Option<LastOk>,
    upload: &mut Upload,
) -> Result<Done, Failed> {
    let git_url = match (&target.git_url, credentials) {
        (Some(url), _) => {
            Url::parse(url).map_err(|e| Failed::permanent(format!("bad git URL: {e}")))?
        }
        // Recorded from a webhook that names no clone URL: GitHub's is derived from the name.
        (None, Credentials::GitHub(_)) => {
            crate::github::clone_url(&ctx.config.web_url, &target.full_name).ok_or_else(|| {
                Failed::permanent(format!("no git URL for {:?}", target.full_name))
            })?
        }
        (None, _) => {
            return Err(Failed::permanent(
                "the repository has no git URL yet (the next sync records it)",
            ))
        }
    };
    let issuer = credentials.issuer();
    let mut authorization = credentials.authorization().to_string();
    let join = |suffix: &str| {
        let mut url = git_url.clone();
        url.set_path(&format!(
            "{}/{suffix}",
            git_url.path().trim_end_matches('/')
        ));
        url.set_query(None);
        url
    };
    let mut info = join("info/refs");
    info.set_query(Some("service=git-upload-pack"));
    let advertised = match outbound::git(ctx, &info, &authorization, issuer, None).await {
        // Refused before the expiry we know of (expired early, or revoked): refresh once.
        Err(CallError::Unauthorized) => match credentials.refreshed(ctx, target).await? {
            Some(fresh) => {
                authorization = fresh;
                outbound::git(ctx, &info, &authorization, issuer, None).await?
            }
            None => return Err(CallError::Unauthorized.into()),
        },
        answer => answer?,
    }
    .bytes()
    .await
    .map_err(|e| Failed::transient(format!("reading the ref advertisement: {e}")))?;
    let advertisement = refs::parse_advertisement(&advertised)
        .map_err(|e| Failed::transient(format!("ref advertisement: {e}")))?;
    let current = refs::select_refs(&advertisement);
    let previous_refs: Option<plan::RefMap> = previous.as_ref().and_then(|p| {
        let map: BTreeMap<String, String> = serde_json::from_str(p.refs.as_deref()?).ok()?;
        map.into_iter()
            .map(|(k, v)| Some((k, crate::backup::oid::Oid::from_hex(&v)?)))
            .collect()
    });
    let since_full = previous.as_ref().and_then(|p| p.since_full).unwrap_or(0.0) as u32;
    let decision = plan::decide(
        previous_refs.as_ref(),
        &current,
        since_full,
        target.full_every.max(1.0) as u32,
    );
    let base = previous.map(|p| p.id);
    let (kind, wants, haves, prerequisites) = match decision {
        plan::Decision::Unchanged => {
            return Ok(Done {
                outcome: "unchanged",
                kind: None,
                base,
                refs: current,
                head: advertisement.head_symref.clone(),
                object_key: None,
                bytes: 0,
                sha256: None,
                objects: 0,
            })
        }
        plan::Decision::Empty => {
            return Ok(Done {
                outcome: "empty",
                kind: None,
                base: None,
                refs: current,
                head: advertisement.head_symref.clone(),
                object_key: None,
                bytes: 0,
                sha256: None,
                objects: 0,
            })
        }
        plan::Decision::Full { wants } => ("full", wants, Vec::new(), Vec::new()),
        plan::Decision::Incremental {
            wants,
            haves,
            prerequisites,
        } => ("incremental", wants, haves, prerequisites),
    };
    let header = bundle::header(&current, &prerequisites)
        .map_err(|e| Failed::transient(format!("bundle header: {e}")))?;
    upload.push(ctx, &header).await?;
    let mut verifier = pack::PackVerifier::new();
    if wants.is_empty() {
        // Nothing new to fetch (e.g. only a branch deleted): an empty pack.
        let empty = pack::empty_pack();
        verifier
            .push(&empty)
            .map_err(|e| Failed::transient(e.to_string()))?;
        upload.push(ctx, &empty).await?;
    } else {
        let request = request::build_request(&wants, &haves, &advertisement.capabilities)
            .map_err(|e| Failed::transient(format!("upload-pack request: {e:?}")))?;
        let mut answer = outbound::git(
            ctx,
            &join("git-upload-pack"),
            &authorization,
            issuer,
            Some(&request.body),
        )
        .await?;
        let mut parser = response::ResponseParser::new(request.side_band);
        let mut body = answer
            .stream()
            .map_err(|e| Failed::transient(format!("upload-pack body: {e}")))?;
        loop {
            let next = body.next();
            futures_util::pin_mut!(next);
            let chunk = match select(next, worker::Delay::from(IDLE_TIMEOUT)).await {
                Either::Left((Some(chunk), _)) => chunk,
                Either::Left((None, _)) => break,
                Either::Right(_) => {
                    return Err(Failed::transient(format!(
                        "upload-pack transfer: nothing received for {} s",
                        IDLE_TIMEOUT.as_secs()
                    )))
                }
            };
            let chunk =
                chunk.map_err(|e| Failed::transient(format!("upload-pack transfer: {e}")))?;
            for piece in parser
                .push(&chunk)
                .map_err(|e| Failed::transient(e.to_string()))?
            {
                verifier
                    .push(piece)
                    .map_err(|e| Failed::transient(e.to_string()))?;
                upload.push(ctx, piece).await?;
            }
        }
        parser
            .finish()
            .map_err(|e| Failed::transient(e.to_string()))?;
    }
    let summary = verifier
        .finish()
        .map_err(|e| Failed::transient(e.to_string()))?;
    let (object_key, bytes, sha256) = upload.complete(ctx).await?;
    Ok(Done {
        outcome: "ok",
        kind: Some(kind),
        base: (kind == "incremental").then_some(base).flatten(),
        refs: current,
        head: advertisement.head_symref.clone(),
        object_key: Some(object_key),
        bytes,
        sha256: Some(sha256),
        objects: summary.objects,
    })
}

/// The R2 bucket, for one more write counted against the budget.
fn bucket_for(ctx: &Ctx, what: &str) -> Result<worker::Bucket, Failed> {
    let bucket = ctx
        .env
        .bucket(BACKUPS)
        .map_err(|e| Internal::new("R2 binding", e))?;
    spend_write(ctx, what)?;
    Ok(bucket)
}

/// One more R2 write: counted against the budget, failed when the suite armed a fault for it.
fn spend_write(ctx: &Ctx, what: &str) -> Result<(), Failed> {
    ctx.budget
        .spend()
        .map_err(|_| Failed::transient(format!("subrequest budget exhausted before {what}")))?;
    binding_faults::check(Op::R2Put).map_err(|e| Failed::transient(format!("R2 {what}: {e}")))
}

/// The bundle on its way to R2: the part being filled, the SHA-256 of everything so far, and
/// the multipart upload once the bundle outgrows one part.
struct Upload {
    snapshot_id: String,
    key: String,
    part: Vec<u8>,
    hash: Sha256,
    bytes: u64,
    multipart: Option<(worker::MultipartUpload, Vec<worker::UploadedPart>)>,
}

impl Upload {
    fn new(target: &Target, snapshot_id: &str) -> Upload {
        Upload {
            snapshot_id: snapshot_id.to_string(),
            key: format!(
                "{}/{}/{}/{snapshot_id}.bundle",
                target.tenant_id, target.org_id, target.repository_id
            ),
            part: Vec::new(),
            hash: Sha256::new(),
            bytes: 0,
            multipart: None,
        }
    }

    async fn push(&mut self, ctx: &Ctx, bytes: &[u8]) -> Result<(), Failed> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        self.part.extend_from_slice(bytes);
        while self.part.len() >= PART_BYTES {
            let rest = self.part.split_off(PART_BYTES);
            let full = std::mem::replace(&mut self.part, rest);
            self.send_part(ctx, full).await?;
        }
        Ok(())
    }

    async fn send_part(&mut self, ctx: &Ctx, part: Vec<u8>) -> Result<(), Failed> {
        if self.multipart.is_none() {
            let bucket = bucket_for(ctx, "an upload")?;
            let upload = bucket
                .create_multipart_upload(&self.key)
                .execute()
                .await
                .map_err(|e| Failed::transient(format!("R2 multipart upload: {e}")))?;
            let upload_id = upload.upload_id().await;
            // Recorded before the first part, so an abandoned upload can be aborted.
            ctx.run(
                sql::RECORD_UPLOAD,
                &[
                    Param::from(&self.snapshot_id),
                    Param::from(&self.key),
                    Param::from(&upload_id),
                ],
            )
            .await?;
            self.multipart = Some((upload, Vec::new()));
        }
        let Some((upload, parts)) = self.multipart.as_mut() else {
            return Err(Failed::transient("no multipart upload"));
        };
        spend_write(ctx, "an upload part")?;
        let number = parts.len() as u16 + 1;
        let uploaded = upload
            .upload_part(number, part)
            .await
            .map_err(|e| Failed::transient(format!("R2 part {number}: {e}")))?;
        parts.push(uploaded);
        Ok(())
    }

    /// Stores what is left and completes the object: `(key, bytes, sha256)`.
    async fn complete(&mut self, ctx: &Ctx) -> Result<(String, u64, String), Failed> {
        let sha256 = hex::encode(std::mem::take(&mut self.hash).finalize());
        let last = std::mem::take(&mut self.part);
        if self.multipart.is_none() {
            let bucket = bucket_for(ctx, "the upload")?;
            bucket
                .put(&self.key, last)
                .execute()
                .await
                .map_err(|e| Failed::transient(format!("R2 put: {e}")))?;
            return Ok((self.key.clone(), self.bytes, sha256));
        }
        if !last.is_empty() {
            self.send_part(ctx, last).await?;
        }
        let Some((upload, parts)) = self.multipart.take() else {
            return Err(Failed::transient("no multipart upload"));
        };
        ctx.budget
            .spend()
            .map_err(|_| Failed::transient("subrequest budget exhausted before completing"))?;
        upload
            .complete(parts)
            .await
            .map_err(|e| Failed::transient(format!("R2 complete: {e}")))?;
        Ok((self.key.clone(), self.bytes, sha256))
    }

    /// A stored bundle whose snapshot could not be recorded is deleted (best effort; the hygiene
    /// scan of the suite checks that none is left).
    async fn delete(&self, ctx: &Ctx, key: Option<&str>) {
        let Some(key) = key else { return };
        let deleted = match ctx.env.bucket(BACKUPS) {
            Ok(bucket) => bucket.delete(key).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = deleted {
            worker::console_warn!("unrecorded bundle {key} not deleted: {e}");
        }
    }

    /// A failed backup leaves no object behind.
    async fn abort(&mut self) {
        if let Some((upload, _)) = self.multipart.take() {
            if let Err(e) = upload.abort().await {
                worker::console_warn!("upload {} not aborted: {e}", self.key);
            }
        }
    }
}
