//! Enumerating an organization's repositories into D1 and the backup queue, a page at a time,
//! within one invocation's subrequest budget (DESIGN.md flow 2, "10,000 repositories"): a
//! GitHub installation's repositories, a GitLab group's projects (subgroups included), or the Git
//! repositories of an Azure DevOps organization's projects.
//!
//! Per page: fetch it (1 subrequest; an Azure DevOps page of projects adds one per project for
//! its repositories), write repositories, profile stubs and backup jobs and move the run's
//! cursor in one D1 batch (1), then send the jobs D1 says are new with one `sendBatch` (1) —
//! jobs are queued only after their rows are committed (stamped as sent: a failed send leaves
//! them to the dispatcher). When the budget cannot afford another
//! page, or the provider asks us to wait, the rest is handed to the sync queue as an
//! `enumerate.v1` continuation carrying the next page URL (no token: the consumer gets its own).
//! A redelivered continuation finds the cursor moved and does nothing.

use crate::edge::bindings::{changes, Ctx, Internal, Param, BACKUP_QUEUE, SYNC_QUEUE};
use crate::edge::providers::github_client;
use crate::edge::providers::outbound::CallError;
use crate::edge::providers::provider_api::{self, RepositoryPage};
use crate::edge::providers::provider_tokens::{self, ConnectionToken, TokenFailure};
use crate::messages::{BackupJob, BackupMessage, EnumerateContinuation, SyncMessage};
use crate::provider::{Provider, RepositoryRecord};
use crate::sql;
use serde::Deserialize;
use url::Url;

/// Subrequests one page costs without retries: fetch, D1 batch, sendBatch.
const PAGE_COST: u32 = 3;
/// Kept back after the last page an invocation takes: one subrequest to hand the rest to the
/// queue or to record the finished run, and room for a retry.
const RESERVE: u32 = 3;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Repositories seen in the pages this invocation applied.
    pub found: u64,
    /// Of those, new to the org (a backup job was created and queued).
    pub added: u64,
    /// Repositories marked removed because the completed run no longer saw them.
    pub removed: u64,
    /// True when the last page was applied; false when the rest continues in the background.
    pub complete: bool,
}

/// Who reads the org's repositories: what backup jobs name so the executor can get access.
#[derive(Clone, Copy)]
pub enum Owner<'a> {
    /// A GitHub App installation.
    Installation(u64),
    /// A GitLab / Azure DevOps OAuth connection.
    Connection(Provider, &'a str),
}

/// The credential pages are read with.
pub enum Access<'a> {
    /// A GitHub installation token.
    Installation { id: u64, token: &'a str },
    /// A GitLab / Azure DevOps access token of the connection, refreshed on a 401.
    Connection {
        provider: Provider,
        id: &'a str,
        token: ConnectionToken,
        /// Azure DevOps: `{api}/{organization}`, the root of its project pages.
        api_url: Url,
    },
}

impl<'a> Access<'a> {
    /// A GitLab / Azure DevOps org's access, from its row: its connection's access token
    /// (refreshed first when due) and its API root.
    pub async fn connection(
        ctx: &Ctx,
        provider: Provider,
        connection_id: Option<&'a str>,
        api_url: Option<&str>,
    ) -> Result<Access<'a>, TokenFailure> {
        let (Some(id), Some(api_url)) = (connection_id, api_url) else {
            return Err(TokenFailure::Internal(Internal(
                "the org has no connection".into(),
            )));
        };
        let api_url = Url::parse(api_url).map_err(|e| Internal::new("org API URL", e))?;
        let token = provider_tokens::access_token(ctx, id, None).await?;
        Ok(Access::Connection {
            provider,
            id,
            token,
            api_url,
        })
    }

    /// The first page of the org's listing.
    pub fn first_page(&self, ctx: &Ctx) -> Url {
        match self {
            Access::Installation { .. } => Provider::GitHub.first_page(&ctx.config.api_url),
            Access::Connection {
                provider, api_url, ..
            } => provider.first_page(api_url),
        }
    }

    fn owner(&self) -> Owner<'_> {
        match self {
            Access::Installation { id, .. } => Owner::Installation(*id),
            Access::Connection { provider, id, .. } => Owner::Connection(*provider, id),
        }
    }

    /// Subrequests a page costs.
    fn page_cost(&self) -> u32 {
        match self {
            Access::Connection {
                provider: Provider::AzureDevOps,
                ..
            } => PAGE_COST + crate::oauth::azure_devops::PROJECTS_PER_PAGE,
            _ => PAGE_COST,
        }
    }

    /// Fetches the page at `url` as records, with GitHub's `total_count` when it has one.
    async fn page(
        &mut self,
        ctx: &Ctx,
        url: &Url,
    ) -> Result<(RepositoryPage, Option<u64>), CallError> {
        match self {
            Access::Installation { token, .. } => {
                let (page, next) = github_client::repositories_page(ctx, token, url).await?;
                let repositories = page
                    .repositories
                    .iter()
                    .map(RepositoryRecord::from)
                    .collect();
                Ok((
                    RepositoryPage { repositories, next },
                    Some(page.total_count),
                ))
            }
            Access::Connection {
                provider,
                id,
                token,
                api_url,
            } => {
                let mut refreshed = false;
                loop {
                    let secret = token.token.expose();
                    let fetched = match provider {
                        Provider::AzureDevOps => {
                            provider_api::azure_repositories(ctx, secret, api_url, url).await
                        }
                        _ => provider_api::gitlab_projects(ctx, secret, &token.base_url, url).await,
                    };
                    match fetched {
                        // Refused before its expiry (revoked, or expired early): refresh once.
                        Err(CallError::Unauthorized) if !refreshed => {
                            *token = provider_tokens::access_token(ctx, id, Some(&token.token))
                                .await
                                .map_err(token_failure)?;
                            refreshed = true;
                        }
                        other => return other.map(|page| (page, None)),
                    }
                }
            }
        }
    }
}

/// A token that cannot be had is a refusal of the page (a revoked connection fails the run).
fn token_failure(f: TokenFailure) -> CallError {
    match f {
        TokenFailure::Internal(e) => CallError::Internal(e),
        TokenFailure::Unavailable(why) => CallError::Unavailable {
            retry_after_secs: 60,
            detail: why,
        },
        TokenFailure::Revoked(why) => CallError::Revoked(why),
        other => CallError::Refused(other.to_string()),
    }
}

/// Why a run stopped without finishing or deferring (it is recorded as failed).
pub enum RunError {
    /// The listing answered 404: the installation, group or organization is gone for us.
    Gone,
    /// The OAuth connection was revoked meanwhile (its orgs are disconnected).
    Revoked(String),
    /// The provider answered something the run cannot use (a malformed page, a foreign `Link`,
    /// a refusal): the run failed, and whoever asked is told the provider failed.
    Upstream(CallError),
    Failed(Internal),
}

impl From<Internal> for RunError {
    fn from(e: Internal) -> Self {
        RunError::Failed(e)
    }
}

impl From<RunError> for Internal {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Gone => Internal("the listing is gone (404)".into()),
            RunError::Revoked(why) => Internal(format!("authorization revoked: {why}")),
            RunError::Upstream(e) => Internal(format!("the listing failed: {e}")),
            RunError::Failed(e) => e,
        }
    }
}

/// The organization being enumerated.
pub struct Target<'a> {
    pub org_id: &'a str,
    pub run_id: &'a str,
}

/// A job D1 reports as created or resumed (`RETURNING id, repository_id`).
#[derive(Deserialize)]
pub(super) struct NewJob {
    pub id: String,
    pub repository_id: String,
}

/// The backup message of a job of the org `owner` reads.
pub(super) fn backup_message(
    job_id: String,
    org_id: &str,
    repository_id: String,
    owner: Owner<'_>,
    priority: &str,
) -> BackupMessage {
    let (provider, installation_id, connection_id) = match owner {
        Owner::Installation(id) => (Provider::GitHub, Some(id), None),
        Owner::Connection(provider, id) => (provider, None, Some(id.to_string())),
    };
    BackupMessage::BackupJobV1(BackupJob {
        job_id,
        org_id: org_id.to_string(),
        repository_id,
        provider: provider.as_str().to_string(),
        installation_id,
        connection_id,
        priority: priority.to_string(),
    })
}

/// Sends backup jobs whose rows are committed (stamped as sent), at normal priority, in batches
/// the queue takes. A failed send is logged, not raised: the jobs are committed, and the
/// dispatcher (cron) re-sends those whose send never arrived. Returns how many were queued.
pub(super) async fn queue_backups(
    ctx: &Ctx,
    org_id: &str,
    owner: Owner<'_>,
    jobs: Vec<NewJob>,
) -> usize {
    let messages: Vec<BackupMessage> = jobs
        .into_iter()
        .map(|job| backup_message(job.id, org_id, job.repository_id, owner, "normal"))
        .collect();
    for chunk in messages.chunks(crate::messages::MAX_BATCH_MESSAGES) {
        if let Err(e) = ctx.send_batch(BACKUP_QUEUE, chunk, 0).await {
            worker::console_warn!(
                "{} backup jobs of org {org_id} left to the dispatcher: {}",
                chunk.len(),
                e.0
            );
        }
    }
    messages.len()
}

/// Applies pages from `url` on while the budget allows, then continues through the queue.
pub async fn run(
    ctx: &Ctx,
    access: &mut Access<'_>,
    target: &Target<'_>,
    mut url: Url,
) -> Result<Progress, RunError> {
    let mut progress = Progress::default();
    loop {
        if ctx.budget.remaining() < access.page_cost() + RESERVE {
            defer(ctx, target, &url, 0).await?;
            return Ok(progress);
        }
        let (page, total_count) = match access.page(ctx, &url).await {
            Ok(answer) => answer,
            Err(CallError::Unavailable {
                retry_after_secs,
                detail,
            }) => {
                worker::console_warn!("enumeration of org {} paused: {detail}", target.org_id);
                defer(ctx, target, &url, retry_after_secs).await?;
                return Ok(progress);
            }
            Err(CallError::Internal(e)) if ctx.budget.remaining() <= RESERVE => {
                worker::console_warn!("enumeration of org {} deferred: {}", target.org_id, e.0);
                defer(ctx, target, &url, 0).await?;
                return Ok(progress);
            }
            Err(e) => {
                let reason = e.to_string();
                fail(ctx, target, &reason).await?;
                return Err(match e {
                    CallError::NotFound => RunError::Gone,
                    CallError::Revoked(why) => RunError::Revoked(why),
                    CallError::Internal(_) => RunError::Failed(Internal(format!(
                        "enumeration of org {} failed: {reason}",
                        target.org_id
                    ))),
                    upstream => RunError::Upstream(upstream),
                });
            }
        };
        let next = page.next.as_ref();
        let Some(applied) =
            apply_page(ctx, target, &url, next, &page.repositories, total_count).await?
        else {
            // Another invocation applied this page (a redelivery): it owns the rest of the run.
            return Ok(progress);
        };
        progress.found += page.repositories.len() as u64;
        progress.added += applied.added;
        queue_backups(ctx, target.org_id, access.owner(), applied.jobs).await;
        match page.next {
            Some(next) => url = next,
            None => {
                progress.complete = true;
                progress.removed = applied.removed;
                finish(ctx, target, applied.removed).await;
                return Ok(progress);
            }
        }
    }
}

/// Records what the completed run removed, and the run in the org's activity log, in one
/// subrequest. The run itself is already complete: a failure here is logged, not raised.
async fn finish(ctx: &Ctx, target: &Target<'_>, removed: u64) {
    let now = crate::time::rfc3339(ctx.now);
    let params = [
        Param::from(target.org_id),
        Param::from(target.run_id),
        Param::from(removed as i64),
        Param::from(&now),
    ];
    let statements = [sql::SET_RUN_REMOVED, sql::RECORD_RUN_ACTIVITY]
        .into_iter()
        .map(|s| ctx.statement(s, &params))
        .collect::<Result<Vec<_>, _>>();
    let recorded = match statements {
        Ok(statements) => ctx.batch(statements).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        worker::console_warn!(
            "run {} of org {} not recorded: {}",
            target.run_id,
            target.org_id,
            e.0
        );
    }
}

struct Applied {
    /// Jobs to send: one per new repository, and the resumed ones of repositories back.
    jobs: Vec<NewJob>,
    /// New repositories.
    added: u64,
    removed: u64,
}

/// Writes one page in one D1 transaction; `None` when the run's cursor no longer points here.
/// The last page also removes the repositories the run did not see.
async fn apply_page(
    ctx: &Ctx,
    target: &Target<'_>,
    url: &Url,
    next: Option<&Url>,
    repositories: &[RepositoryRecord],
    total_count: Option<u64>,
) -> Result<Option<Applied>, Internal> {
    let page_json =
        serde_json::to_string(repositories).map_err(|e| Internal::new("page JSON", e))?;
    let now = crate::time::rfc3339(ctx.now);
    let page_params = [
        Param::from(target.org_id),
        Param::from(&page_json),
        Param::from(&now),
        Param::from(target.run_id),
        Param::from(url.as_str()),
    ];
    let advance = [
        Param::from(target.org_id),
        Param::from(target.run_id),
        Param::from(url.as_str()),
        Param::from(next.map(Url::as_str)),
        Param::from(repositories.len() as i64),
        Param::from(&now),
    ];
    let stamp = [
        Param::from(target.org_id),
        Param::from(target.run_id),
        Param::from(&now),
    ];
    // Positions in the batch whose results are read below.
    const NEW_JOBS: usize = 2;
    const RESUMED_JOBS: usize = 3;
    const ADVANCED: usize = 4;
    const REMOVED: usize = 7;
    let mut statements = vec![
        ctx.statement(&sql::RUN_PAGE.upsert_active(), &page_params)?,
        ctx.statement(&sql::RUN_PAGE.insert_profiles(), &page_params)?,
        ctx.statement(&sql::RUN_PAGE.insert_initial_jobs(), &page_params)?,
        // A repository back on GitHub after a sync removed it: its paused job goes again.
        ctx.statement(&sql::RUN_PAGE.resume_jobs(), &page_params)?,
        ctx.statement(sql::ADVANCE_RUN, &advance)?,
        ctx.statement(sql::STAMP_SYNCED, &stamp)?,
    ];
    if next.is_none() {
        let unseen = [
            Param::from(target.org_id),
            Param::from(target.run_id),
            Param::from(&now),
            // Without GitHub's `total_count` (GitLab's keyset pages and Azure DevOps give none),
            // a complete run is the whole listing.
            Param::from(total_count.unwrap_or(0) as i64),
        ];
        statements.push(ctx.statement(sql::PAUSE_UNSEEN_JOBS, &unseen)?);
        statements.push(ctx.statement(sql::REMOVE_UNSEEN, &unseen)?);
    }
    let results = ctx.batch(statements).await?;
    if changes(&results, ADVANCED) == 0 {
        return Ok(None);
    }
    let mut jobs = Vec::new();
    let mut added = 0;
    for i in [NEW_JOBS, RESUMED_JOBS] {
        jobs.extend(
            results
                .get(i)
                .ok_or_else(|| Internal("D1 batch returned too few results".into()))?
                .results::<NewJob>()
                .map_err(|e| Internal::new("page jobs", e))?,
        );
        if i == NEW_JOBS {
            added = jobs.len() as u64;
        }
    }
    let removed = changes(&results, REMOVED);
    Ok(Some(Applied {
        jobs,
        added,
        removed,
    }))
}

/// Hands the rest of the run to the sync queue, `delay_secs` from now.
async fn defer(ctx: &Ctx, target: &Target<'_>, url: &Url, delay_secs: u32) -> Result<(), Internal> {
    let message = SyncMessage::EnumerateV1(EnumerateContinuation {
        org_id: target.org_id.to_string(),
        run_id: target.run_id.to_string(),
        next_url: url.to_string(),
    });
    ctx.send_batch(SYNC_QUEUE, &[message], delay_secs).await
}

async fn fail(ctx: &Ctx, target: &Target<'_>, reason: &str) -> Result<(), Internal> {
    let now = crate::time::rfc3339(ctx.now);
    ctx.run(
        sql::FAIL_RUN,
        &[
            Param::from(target.org_id),
            Param::from(target.run_id),
            Param::from(reason),
            Param::from(&now),
        ],
    )
    .await
    .map(|_| ())
}
