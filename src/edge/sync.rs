//! Keeping organizations in step with GitHub (DESIGN.md flows 5 and 6).
//!
//! - [`sync_org`]: one organization now — the manual "Sync Repositories" and each org of the
//!   scheduled sync. An installation GitHub no longer knows (404) disconnects the org; a
//!   suspended one is skipped; otherwise a new enumeration run adds new repositories and, once
//!   complete, marks the ones that are gone as removed.
//!   Each sync that reads the org also starts an access snapshot (`edge::access::snapshot`).
//! - [`disconnect`]: the org is marked disconnected and its queued backup jobs paused; snapshots
//!   stay until their retention expires; the GitHub installation is not touched.
//! - [`fanout`]: one `sync_org.v1` message per active org, a page of orgs per invocation.
//! - [`dispatch`]: sends queued backup jobs that were never sent (scheduled, resumed) or whose
//!   send was lost, and analysis jobs whose send (after the webhook's answer) was lost, a
//!   bounded batch of each per invocation.

use crate::edge::bindings::{
    changes, Ctx, Internal, Param, ANALYSIS_QUEUE, BACKUP_QUEUE, SYNC_QUEUE,
};
use crate::edge::enumerate::{self, Access, Owner, Progress, RunError, Target};
use crate::edge::platform;
use crate::edge::providers::github_client;
use crate::edge::providers::outbound::CallError;
use crate::edge::providers::provider_tokens::TokenFailure;
use crate::messages::{
    send_batches, AnalysisJob, AnalysisMessage, BackupMessage, SyncMessage, MAX_BATCH_MESSAGES,
};
use crate::provider::Provider;
use crate::sql;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Orgs per fan-out step, backup and analysis jobs per dispatch step: each step stays far below
/// the budget (an analysis job may be near a message's 128 KB, so two fill a `sendBatch`).
const FANOUT_PAGE: i64 = 1_000;
const DISPATCH_PAGE: i64 = 1_000;
const ANALYSIS_DISPATCH_PAGE: i64 = 40;
/// A job sent this long ago and still not received is sent again.
const RESEND_AFTER_SECS: i64 = 15 * 60;

pub enum SyncOutcome {
    Synced(Progress),
    /// The org is not active (suspended or disconnected): nothing was done.
    Skipped(String),
    /// GitHub no longer knows the installation: the org is now disconnected.
    Uninstalled,
}

pub enum SyncError {
    NotFound,
    /// GitHub, GitLab or Azure DevOps failed.
    Upstream(Provider, CallError),
    /// The OAuth connection's tokens could not be had (revoked: its orgs are now disconnected).
    Token(TokenFailure),
    Internal(Internal),
}

impl From<Internal> for SyncError {
    fn from(e: Internal) -> Self {
        SyncError::Internal(e)
    }
}

#[derive(Deserialize)]
struct OrgRow {
    id: String,
    provider: String,
    installation_id: i64,
    connection_id: Option<String>,
    api_url: Option<String>,
    status: String,
}

pub async fn sync_org(ctx: &Ctx, org_id: &str) -> Result<SyncOutcome, SyncError> {
    let rows: Vec<OrgRow> = ctx.rows(sql::ORG_FOR_SYNC, &[Param::from(org_id)]).await?;
    let org = rows.into_iter().next().ok_or(SyncError::NotFound)?;
    if org.status != "active" {
        return Ok(SyncOutcome::Skipped(format!(
            "organization is {}",
            org.status
        )));
    }
    let outcome = match Provider::from_db(&org.provider) {
        Some(Provider::GitHub) => sync_installation(ctx, &org).await,
        Some(provider) => sync_connected(ctx, provider, &org).await,
        None => Err(SyncError::Internal(Internal(format!(
            "org {} has provider {}",
            org.id, org.provider
        )))),
    };
    if let Ok(SyncOutcome::Synced(_)) = &outcome {
        // Every sync also reads who can reach the org's code (through the sync queue).
        if let Err(e) = crate::edge::access::snapshot::start(ctx, &org.id).await {
            worker::console_warn!("access snapshot of org {} not started: {}", org.id, e.0);
        }
    }
    outcome
}

/// Starts a sync run of the org from the first page of its listing and enumerates it.
async fn start_run(ctx: &Ctx, org_id: &str, access: &mut Access<'_>) -> Result<Progress, RunError> {
    let first_page = access.first_page(ctx);
    let run_id = platform::random_uuid().map_err(Internal)?;
    let now = crate::time::rfc3339(ctx.now);
    ctx.run(
        sql::START_SYNC_RUN,
        &[
            Param::from(org_id),
            Param::from(&run_id),
            Param::from(first_page.as_str()),
            Param::from(&now),
        ],
    )
    .await?;
    let target = Target {
        org_id,
        run_id: &run_id,
    };
    enumerate::run(ctx, access, &target, first_page).await
}

/// A GitLab group or Azure DevOps organization: the connection's access token (refreshed when
/// due), then its projects / repositories. A group or organization the user can no longer read
/// (404) disconnects the org.
async fn sync_connected(
    ctx: &Ctx,
    provider: Provider,
    org: &OrgRow,
) -> Result<SyncOutcome, SyncError> {
    let mut access = Access::connection(
        ctx,
        provider,
        org.connection_id.as_deref(),
        org.api_url.as_deref(),
    )
    .await
    .map_err(SyncError::Token)?;
    match start_run(ctx, &org.id, &mut access).await {
        Ok(progress) => Ok(SyncOutcome::Synced(progress)),
        // The group or organization is gone, or the connected account lost access to it.
        Err(RunError::Gone) => {
            let detail = format!(
                    "{} no longer lets the connected account read this {}: organization disconnected, backup jobs paused, snapshots kept",
                    provider.name(),
                    if provider == Provider::GitLab { "group" } else { "organization" }
                );
            disconnect(ctx, &org.id, "provider.gone", &detail).await?;
            Ok(SyncOutcome::Uninstalled)
        }
        Err(RunError::Revoked(why)) => Err(SyncError::Token(TokenFailure::Revoked(why))),
        Err(RunError::Upstream(e)) => Err(SyncError::Upstream(provider, e)),
        Err(RunError::Failed(e)) => Err(SyncError::Internal(e)),
    }
}

/// A GitHub org: the installation (gone → disconnected, suspended → skipped), a token, a run.
async fn sync_installation(ctx: &Ctx, org: &OrgRow) -> Result<SyncOutcome, SyncError> {
    let installation_id = org.installation_id as u64;
    let jwt = github_client::app_jwt(ctx)
        .await
        .map_err(|p| SyncError::Internal(Internal(format!("App JWT: {}", p.detail()))))?;
    let installation = match github_client::installation(ctx, &jwt, installation_id).await {
        Ok(installation) => installation,
        Err(CallError::NotFound) => {
            disconnect(ctx, &org.id, "installation.gone", "the GitHub App installation no longer exists: organization disconnected, backup jobs paused, snapshots kept").await?;
            return Ok(SyncOutcome::Uninstalled);
        }
        Err(e) => return Err(SyncError::Upstream(Provider::GitHub, e)),
    };
    if installation.suspended_at.is_some() {
        set_suspended(ctx, &org.id).await?;
        return Ok(SyncOutcome::Skipped(
            "installation is suspended on GitHub".into(),
        ));
    }
    let token = github_client::installation_token(ctx, &jwt, installation_id)
        .await
        .map_err(|e| SyncError::Upstream(Provider::GitHub, e))?;
    let mut access = Access::Installation {
        id: installation_id,
        token: &token,
    };
    match start_run(ctx, &org.id, &mut access).await {
        Ok(progress) => Ok(SyncOutcome::Synced(progress)),
        Err(RunError::Upstream(e)) => Err(SyncError::Upstream(Provider::GitHub, e)),
        Err(e) => Err(SyncError::Internal(e.into())),
    }
}

async fn set_suspended(ctx: &Ctx, org_id: &str) -> Result<(), Internal> {
    let now = crate::time::rfc3339(ctx.now);
    ctx.batch(vec![
        ctx.statement(
            sql::SET_ORG_STATUS,
            &[
                Param::from(org_id),
                Param::from("suspended"),
                Param::from(&now),
                Param::from(r#"["active"]"#),
            ],
        )?,
        activity(
            ctx,
            org_id,
            "sync.suspended",
            "installation is suspended on GitHub: organization suspended",
            &now,
        )?,
    ])
    .await
    .map(|_| ())
}

fn activity(
    ctx: &Ctx,
    org_id: &str,
    event: &str,
    detail: &str,
    now: &str,
) -> Result<worker::D1PreparedStatement, Internal> {
    ctx.statement(
        sql::RECORD_ACTIVITY,
        &[
            Param::from(org_id),
            Param::Null,
            Param::from(event),
            Param::from(detail),
            Param::from(now),
        ],
    )
}

/// What a disconnect did.
pub struct Disconnected {
    pub jobs_paused: u64,
    pub snapshots_kept: u64,
}

/// Marks the org disconnected and pauses its queued backup jobs, in one transaction; keeps its
/// snapshots and records and leaves the GitHub installation alone. Idempotent.
pub async fn disconnect(
    ctx: &Ctx,
    org_id: &str,
    event: &str,
    detail: &str,
) -> Result<Disconnected, Internal> {
    #[derive(Deserialize)]
    struct Kept {
        kept: i64,
    }
    let now = crate::time::rfc3339(ctx.now);
    let results = ctx
        .batch(vec![
            ctx.statement(
                sql::SET_ORG_STATUS,
                &[
                    Param::from(org_id),
                    Param::from("disconnected"),
                    Param::from(&now),
                    Param::from(r#"["active","suspended"]"#),
                ],
            )?,
            ctx.statement(
                sql::PAUSE_ORG_JOBS,
                &[Param::from(org_id), Param::from(&now)],
            )?,
            ctx.statement(sql::COUNT_KEPT_SNAPSHOTS, &[Param::from(org_id)])?,
            ctx.statement(
                sql::RECORD_DISCONNECT_ACTIVITY,
                &[
                    Param::from(org_id),
                    Param::from(event),
                    Param::from(detail),
                    Param::from(&now),
                ],
            )?,
        ])
        .await?;
    let jobs_paused = changes(&results, 1);
    let snapshots_kept = results
        .get(2)
        .and_then(|r| r.results::<Kept>().ok())
        .and_then(|rows| rows.first().map(|k| k.kept))
        .unwrap_or(0) as u64;
    Ok(Disconnected {
        jobs_paused,
        snapshots_kept,
    })
}

/// One fan-out step: a page of active orgs → one `sync_org.v1` each; continues after the page.
pub async fn fanout(ctx: &Ctx, after: &str) -> Result<(), Internal> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    let orgs: Vec<Id> = ctx
        .rows(
            sql::ACTIVE_ORGS_AFTER,
            &[Param::from(after), Param::from(FANOUT_PAGE)],
        )
        .await?;
    let messages: Vec<SyncMessage> = orgs
        .iter()
        .map(|o| SyncMessage::SyncOrgV1 {
            org_id: o.id.clone(),
        })
        .collect();
    for chunk in messages.chunks(MAX_BATCH_MESSAGES) {
        ctx.send_batch(SYNC_QUEUE, chunk, 0).await?;
    }
    if orgs.len() as i64 == FANOUT_PAGE {
        let after = orgs.last().map(|o| o.id.clone()).unwrap_or_default();
        ctx.send_batch(SYNC_QUEUE, &[SyncMessage::FanoutV1 { after }], 0)
            .await?;
    }
    Ok(())
}

/// One dispatch step: sends up to a page of queued backup jobs and one of analysis jobs that
/// need sending, marks them sent, and continues while there may be more. The number of jobs
/// sent.
pub async fn dispatch(ctx: &Ctx, org_id: Option<&str>) -> Result<usize, Internal> {
    let backups = dispatch_backups(ctx, org_id).await?;
    let analyses = dispatch_analyses(ctx, org_id).await?;
    if backups as i64 == DISPATCH_PAGE || analyses as i64 == ANALYSIS_DISPATCH_PAGE {
        let next = SyncMessage::DispatchV1 {
            org_id: org_id.map(str::to_string),
        };
        ctx.send_batch(SYNC_QUEUE, &[next], 0).await?;
    }
    Ok(backups + analyses)
}

/// Marks the jobs `mark` names as sent now.
async fn mark_sent(ctx: &Ctx, mark: &str, ids: &[&str]) -> Result<(), Internal> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids_json = serde_json::to_string(ids).map_err(|e| Internal::new("ids JSON", e))?;
    let now = crate::time::rfc3339(ctx.now);
    ctx.run(mark, &[Param::from(&ids_json), Param::from(&now)])
        .await?;
    Ok(())
}

async fn dispatch_backups(ctx: &Ctx, org_id: Option<&str>) -> Result<usize, Internal> {
    #[derive(Deserialize)]
    struct Job {
        id: String,
        org_id: String,
        repository_id: String,
        priority: String,
        provider: String,
        installation_id: i64,
        connection_id: Option<String>,
    }
    let cutoff = crate::time::rfc3339(ctx.now - RESEND_AFTER_SECS);
    let jobs: Vec<Job> = ctx
        .rows(
            sql::DISPATCHABLE_JOBS,
            &[
                Param::from(org_id),
                Param::from(&cutoff),
                Param::from(DISPATCH_PAGE),
            ],
        )
        .await?;
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let messages: Vec<BackupMessage> = jobs
        .iter()
        .map(|j| {
            let owner = match (Provider::from_db(&j.provider), &j.connection_id) {
                (Some(provider), Some(connection)) if provider != Provider::GitHub => {
                    Owner::Connection(provider, connection)
                }
                _ => Owner::Installation(j.installation_id as u64),
            };
            enumerate::backup_message(
                j.id.clone(),
                &j.org_id,
                j.repository_id.clone(),
                owner,
                &j.priority,
            )
        })
        .collect();
    for chunk in messages.chunks(MAX_BATCH_MESSAGES) {
        ctx.send_batch(BACKUP_QUEUE, chunk, 0).await?;
    }
    mark_sent(ctx, sql::MARK_DISPATCHED, &ids).await?;
    Ok(jobs.len())
}

/// Analysis jobs whose send after the webhook's answer (`edge::webhooks::send_later`) was lost:
/// each message rebuilt from its row.
async fn dispatch_analyses(ctx: &Ctx, org_id: Option<&str>) -> Result<usize, Internal> {
    #[derive(Deserialize)]
    struct Job {
        id: String,
        org_id: String,
        repository_id: String,
        installation_id: i64,
        git_ref: String,
        head_commit: String,
        files: String,
        truncated: i64,
    }
    let cutoff = crate::time::rfc3339(ctx.now - RESEND_AFTER_SECS);
    let jobs: Vec<Job> = ctx
        .rows(
            sql::DISPATCHABLE_ANALYSIS_JOBS,
            &[
                Param::from(org_id),
                Param::from(&cutoff),
                Param::from(ANALYSIS_DISPATCH_PAGE),
            ],
        )
        .await?;
    let messages = jobs
        .iter()
        .map(|j| {
            // The row holds the files as the push wrote them: checked, not rewritten.
            let files = RawValue::from_string(j.files.clone())
                .map_err(|e| Internal::new("analysis files", e))?;
            Ok(AnalysisMessage::AnalysisJobV1(AnalysisJob {
                job_id: j.id.clone(),
                org_id: j.org_id.clone(),
                repository_id: j.repository_id.clone(),
                installation_id: j.installation_id as u64,
                git_ref: j.git_ref.clone(),
                head_commit: j.head_commit.clone(),
                files,
                truncated: j.truncated != 0,
            }))
        })
        .collect::<Result<Vec<_>, Internal>>()?;
    for batch in send_batches(&messages).map_err(|e| Internal::new("message JSON", e))? {
        ctx.send_batch(ANALYSIS_QUEUE, batch, 0).await?;
    }
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    mark_sent(ctx, sql::MARK_ANALYSIS_DISPATCHED, &ids).await?;
    Ok(jobs.len())
}
