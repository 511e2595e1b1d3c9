//! Queue consumers and cron triggers.
//!
//! - `onecode-backup-jobs`: each job's backup is taken (`backup`: a verified git bundle in R2);
//!   a failed one is retried like any message.
//! - `onecode-analysis-jobs`: records that each job was received (idempotently: a redelivered
//!   job changes nothing) and acknowledges it; the analysis pipeline replaces this later.
//! - `onecode-sync` (one message per invocation): `enumerate.v1` continuations, `sync_org.v1`,
//!   `fanout.v1` and `dispatch.v1` steps (see `sync`), and `retention.v1` passes (see `retention`).
//! - `onecode-dead-letter`: messages that failed every retry, stored in `dead_letters` with
//!   the last failure recorded for them.
//! - cron `0 */4 * * *`: the scheduled sync (a `fanout.v1` over every active org).
//! - cron `15 * * * *`: GitLab / Azure DevOps connections refreshed ahead of expiry and re-sealed
//!   under the current `TOKEN_KEYS` key; scheduled backup jobs for the orgs due this hour, then
//!   a dispatch; a retention pass (`retention`: snapshots past retention expired, bundles no
//!   kept chain needs deleted from R2); backups abandoned by a dead invocation failed, their
//!   uploads aborted and their jobs sent again; spent connect states and delivery ids older than
//!   14 days purged.
//!
//! A message that fails is retried with a growing delay (the failure, and its count, recorded in
//! `message_failures`) until the queue's `max_retries` send it to the dead-letter queue; one bad
//! message does not replay the others.

use crate::edge::access;
use crate::edge::backup::executor as backup;
use crate::edge::backup::retention;
use crate::edge::bindings::{self, Ctx, Internal, Param, SYNC_QUEUE};
use crate::edge::enumerate::{self, Access, RunError, Target};
use crate::edge::providers::github_client;
use crate::edge::providers::provider_tokens::{self, TokenFailure};
use crate::edge::queue_trace;
use crate::edge::sync::{self, SyncError, SyncOutcome};
use crate::messages::{AnalysisMessage, BackupMessage, EnumerateContinuation, SyncMessage};
use crate::provider::Provider;
use crate::sql;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use worker::{Message, MessageBatch, MessageExt, QueueRetryOptionsBuilder};

pub const BACKUP_QUEUE_NAME: &str = "onecode-backup-jobs";
pub const SYNC_QUEUE_NAME: &str = "onecode-sync";
pub const ANALYSIS_QUEUE_NAME: &str = "onecode-analysis-jobs";
pub const DEAD_LETTER_QUEUE_NAME: &str = "onecode-dead-letter";
pub const SYNC_CRON: &str = "0 */4 * * *";
pub const HOURLY_CRON: &str = "15 * * * *";
/// How long delivery ids are remembered for deduplication.
const DELIVERY_RETENTION_SECS: i64 = 14 * 24 * 3600;
/// How long a message's failure record is kept (its retries end well within this).
const FAILURE_RETENTION_SECS: i64 = 7 * 24 * 3600;
/// Retry delays double per failed attempt, up to this.
const MAX_RETRY_DELAY_SECS: u32 = 300;

fn body_hash(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

fn retry_after(queue: &str, message: &Message<String>, delay_secs: u32) {
    queue_trace::retried(queue, [message.body().as_str()]);
    message.retry_with_options(
        &QueueRetryOptionsBuilder::new()
            .with_delay_seconds(delay_secs)
            .build(),
    );
}

/// Records why `message` failed and retries it, later each time.
async fn fail(ctx: &Ctx, queue: &str, message: &Message<String>, error: &str) {
    #[derive(Deserialize)]
    struct Attempts {
        attempts: i64,
    }
    worker::console_error!("{queue} message {} failed: {error}", message.id());
    let now = crate::time::rfc3339(ctx.now);
    let recorded: Result<Vec<Attempts>, Internal> = ctx
        .rows(
            sql::RECORD_MESSAGE_FAILURE,
            &[
                Param::from(&message.id()),
                Param::from(&body_hash(message.body())),
                Param::from(queue),
                Param::from(error),
                Param::from(&now),
            ],
        )
        .await;
    let attempts = recorded
        .ok()
        .and_then(|rows| rows.first().map(|a| a.attempts))
        .unwrap_or(1);
    let delay = 1u32
        .checked_shl(attempts.clamp(1, 16) as u32)
        .unwrap_or(MAX_RETRY_DELAY_SECS)
        .min(MAX_RETRY_DELAY_SECS);
    retry_after(queue, message, delay);
}

pub async fn consume(ctx: &Ctx, batch: MessageBatch<String>) -> Result<(), Internal> {
    let messages = batch
        .messages()
        .map_err(|e| Internal::new("queue batch", e))?;
    let queue = batch.queue();
    let handled = handle(ctx, &queue, &batch, &messages).await;
    queue_trace::ended(&queue, messages.iter().map(|m| m.body().as_str()));
    handled
}

/// Settles every message of a batch from `queue`: each is acknowledged or retried.
async fn handle(
    ctx: &Ctx,
    queue: &str,
    batch: &MessageBatch<String>,
    messages: &[Message<String>],
) -> Result<(), Internal> {
    match queue {
        BACKUP_QUEUE_NAME => {
            let mut jobs = Vec::new();
            let mut taken = Vec::new();
            for message in messages {
                match serde_json::from_str::<BackupMessage>(message.body()) {
                    Ok(BackupMessage::BackupJobV1(job)) => {
                        jobs.push(job.job_id);
                        taken.push(message);
                    }
                    Err(e) => fail(ctx, queue, message, &format!("undecodable message: {e}")).await,
                }
            }
            let outcomes = backup::take_all(ctx, &jobs).await;
            for (message, outcome) in taken.into_iter().zip(outcomes) {
                match outcome {
                    backup::Outcome::Done => message.ack(),
                    backup::Outcome::Retry(why) => fail(ctx, queue, message, &why).await,
                }
            }
            Ok(())
        }
        ANALYSIS_QUEUE_NAME => {
            // Only the id is needed to record the receipt: the file list is skipped, not read.
            let job_id = |body: &str| {
                serde_json::from_str::<AnalysisMessage<serde::de::IgnoredAny>>(body)
                    .map(|AnalysisMessage::AnalysisJobV1(j)| j.job_id)
            };
            record_receipts(ctx, queue, messages, job_id, sql::MARK_ANALYSIS_RECEIVED).await
        }
        SYNC_QUEUE_NAME => {
            for message in messages {
                match sync_step(ctx, message.body()).await {
                    Ok(()) => message.ack(),
                    Err(e) => fail(ctx, queue, message, &e).await,
                }
            }
            Ok(())
        }
        DEAD_LETTER_QUEUE_NAME => dead_letters(ctx, messages).await,
        other => {
            worker::console_error!("messages from unknown queue {other}; retrying them");
            queue_trace::retried(other, messages.iter().map(|m| m.body().as_str()));
            batch.retry_all();
            Ok(())
        }
    }
}

/// Marks the jobs of a batch received with one statement (`mark`: ?1 ids as JSON, ?2 now).
async fn record_receipts(
    ctx: &Ctx,
    queue: &str,
    messages: &[Message<String>],
    job_id: impl Fn(&str) -> Result<String, serde_json::Error>,
    mark: &str,
) -> Result<(), Internal> {
    let mut decoded = Vec::with_capacity(messages.len());
    for message in messages {
        match job_id(message.body()) {
            Ok(id) => decoded.push((message, id)),
            Err(e) => fail(ctx, queue, message, &format!("undecodable message: {e}")).await,
        }
    }
    if decoded.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = decoded.iter().map(|(_, id)| id.as_str()).collect();
    let ids_json = serde_json::to_string(&ids).map_err(|e| Internal::new("ids JSON", e))?;
    let now = crate::time::rfc3339(ctx.now);
    match ctx
        .run(mark, &[Param::from(&ids_json), Param::from(&now)])
        .await
    {
        Ok(_) => decoded.iter().for_each(|(m, _)| m.ack()),
        Err(e) => {
            for (m, _) in &decoded {
                fail(ctx, queue, m, &e.0).await;
            }
        }
    }
    Ok(())
}

async fn sync_step(ctx: &Ctx, body: &str) -> Result<(), String> {
    let message = serde_json::from_str::<SyncMessage>(body)
        .map_err(|e| format!("undecodable message: {e}"))?;
    match message {
        SyncMessage::EnumerateV1(c) => continue_run(ctx, &c).await.map_err(|e| e.0),
        SyncMessage::SyncOrgV1 { org_id } => match sync::sync_org(ctx, &org_id).await {
            Ok(SyncOutcome::Synced(_) | SyncOutcome::Uninstalled) | Err(SyncError::NotFound) => {
                Ok(())
            }
            Ok(SyncOutcome::Skipped(why)) => {
                worker::console_log!("scheduled sync of org {org_id} skipped: {why}");
                Ok(())
            }
            Err(SyncError::Upstream(provider, e)) => {
                Err(format!("sync of org {org_id}: {}: {e}", provider.name()))
            }
            // A revoked connection disconnected its orgs: nothing to retry.
            Err(SyncError::Token(TokenFailure::Revoked(why))) => {
                worker::console_warn!(
                    "scheduled sync of org {org_id}: authorization revoked: {why}"
                );
                Ok(())
            }
            Err(SyncError::Token(e)) => Err(format!("sync of org {org_id}: {e}")),
            Err(SyncError::Internal(e)) => Err(format!("sync of org {org_id}: {}", e.0)),
        },
        SyncMessage::FanoutV1 { after } => sync::fanout(ctx, &after).await.map_err(|e| e.0),
        SyncMessage::RetentionV1 {} => retention_pass(ctx).await.map_err(|e| e.0),
        SyncMessage::AccessV1 {
            org_id,
            run_id,
            step,
        } => access::snapshot::step(ctx, &org_id, &run_id, step)
            .await
            .map_err(|e| format!("access snapshot of org {org_id}: {}", e.0)),
        SyncMessage::AccessRepositoryV1 {
            org_id,
            repository: Some(repository),
            delivery_id,
        } => access::snapshot::repository(ctx, &org_id, &repository, &delivery_id)
            .await
            .map_err(|e| format!("access of {repository}: {}", e.0)),
        SyncMessage::AccessRepositoryV1 {
            org_id,
            repository: None,
            ..
        } => access::snapshot::start(ctx, &org_id)
            .await
            .map_err(|e| format!("access snapshot of org {org_id}: {}", e.0)),
        SyncMessage::DispatchV1 { org_id } => sync::dispatch(ctx, org_id.as_deref())
            .await
            .map(|_| ())
            .map_err(|e| e.0),
    }
}

#[derive(Deserialize)]
struct RunRow {
    provider: String,
    installation_id: i64,
    connection_id: Option<String>,
    api_url: Option<String>,
    status: String,
    run_id: String,
    next_url: Option<String>,
}

async fn continue_run(ctx: &Ctx, c: &EnumerateContinuation) -> Result<(), Internal> {
    let rows: Vec<RunRow> = ctx
        .rows(sql::RUN_FOR_ORG, &[Param::from(&c.org_id)])
        .await?;
    let Some(run) = rows.into_iter().next() else {
        return Ok(()); // the organization is gone
    };
    if run.run_id != c.run_id
        || run.next_url.as_deref() != Some(c.next_url.as_str())
        || run.status != "active"
    {
        return Ok(()); // superseded, already applied, or the org is no longer active
    }
    let url = url::Url::parse(&c.next_url).map_err(|e| Internal::new("continuation URL", e))?;
    let target = Target {
        org_id: &c.org_id,
        run_id: &c.run_id,
    };
    let provider = Provider::from_db(&run.provider)
        .ok_or_else(|| Internal(format!("org {} has provider {}", c.org_id, run.provider)))?;
    if provider == Provider::GitHub {
        if url.origin() != ctx.config.api_url.origin() {
            return Err(Internal(
                "continuation URL is not on the GitHub API origin".into(),
            ));
        }
        let installation_id = run.installation_id as u64;
        let jwt = github_client::app_jwt(ctx)
            .await
            .map_err(|p| Internal(format!("App JWT: {}", p.detail())))?;
        let token = github_client::installation_token(ctx, &jwt, installation_id)
            .await
            .map_err(|e| Internal(format!("installation token: {e}")))?;
        let mut access = Access::Installation {
            id: installation_id,
            token: &token,
        };
        return Ok(enumerate::run(ctx, &mut access, &target, url)
            .await
            .map(|_| ())?);
    }
    let access = Access::connection(
        ctx,
        provider,
        run.connection_id.as_deref(),
        run.api_url.as_deref(),
    )
    .await;
    let mut access = match access {
        Ok(access) => access,
        // Revoked: the org is disconnected now and its run ends here.
        Err(TokenFailure::Revoked(_)) => return Ok(()),
        Err(e) => return Err(Internal(format!("access token: {e}"))),
    };
    if url.origin() != access.first_page(ctx).origin() {
        return Err(Internal(format!(
            "continuation URL is not on the {} origin of the org",
            provider.name()
        )));
    }
    match enumerate::run(ctx, &mut access, &target, url).await {
        Ok(_) | Err(RunError::Revoked(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn dead_letters(ctx: &Ctx, messages: &[Message<String>]) -> Result<(), Internal> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let now = crate::time::rfc3339(ctx.now);
    let mut statements = Vec::with_capacity(messages.len());
    for m in messages {
        let kind = serde_json::from_str::<Typed>(m.body())
            .ok()
            .and_then(|t| t.kind);
        // A backup that failed every retry: its job fails, once, in the activity log.
        if let Ok(BackupMessage::BackupJobV1(job)) = serde_json::from_str(m.body()) {
            statements.push(ctx.statement(
                sql::RECORD_BACKUP_FAILED_ACTIVITY,
                &[
                    Param::from(&job.job_id),
                    Param::from(None::<&str>),
                    Param::from(&now),
                ],
            )?);
            statements.push(ctx.statement(
                sql::FAIL_JOB,
                &[Param::from(&job.job_id), Param::from(&now)],
            )?);
        }
        statements.push(ctx.statement(
            sql::RECORD_DEAD_LETTER,
            &[
                Param::from(&m.id()),
                Param::from(&body_hash(m.body())),
                Param::from(kind.as_deref()),
                Param::from(m.body()),
                Param::from(&now),
            ],
        )?);
        worker::console_error!(
            "dead letter {} ({})",
            m.id(),
            kind.as_deref().unwrap_or("untyped")
        );
    }
    match ctx.batch(statements).await {
        Ok(_) => messages.iter().for_each(|m| m.ack()),
        Err(e) => {
            worker::console_error!("recording dead letters: {}", e.0);
            messages
                .iter()
                .for_each(|m| retry_after(DEAD_LETTER_QUEUE_NAME, m, 60));
        }
    }
    Ok(())
}

pub async fn scheduled(ctx: &Ctx, cron: &str) -> Result<(), Internal> {
    // The clock, except in the e2e suite's `e2e` builds (see `time::scheduled_at`).
    let (cron, at) = crate::time::scheduled_at(cron, ctx.now);
    match cron {
        SYNC_CRON => {
            ctx.send_batch(
                SYNC_QUEUE,
                &[SyncMessage::FanoutV1 {
                    after: String::new(),
                }],
                0,
            )
            .await
        }
        HOURLY_CRON => hourly(ctx, at).await,
        other => Err(Internal(format!(
            "no work is configured for cron `{other}`"
        ))),
    }
}

/// The OAuth connections' upkeep: refresh what would expire before the next run, re-seal what an
/// older key sealed. Failures are logged; the rest of the hourly work goes on.
async fn connection_upkeep(ctx: &Ctx) {
    match provider_tokens::refresh_due(ctx).await {
        Ok(n) if n > 0 => worker::console_log!("hourly: {n} provider connections refreshed"),
        Ok(_) => {}
        Err(e) => worker::console_warn!("hourly: connection refresh: {}", e.0),
    }
    match provider_tokens::reseal_old_keys(ctx).await {
        Ok(n) if n > 0 => {
            worker::console_log!("hourly: {n} provider connections re-sealed under the current key")
        }
        Ok(_) => {}
        Err(e) => worker::console_warn!("hourly: re-sealing: {}", e.0),
    }
}

/// One retention pass; a full one asks for the next through the sync queue.
async fn retention_pass(ctx: &Ctx) -> Result<(), Internal> {
    let pass = retention::pass(ctx).await?;
    worker::console_log!(
        "retention: {} snapshots expired, {} bundles deleted{}",
        pass.expired,
        pass.deleted,
        if pass.more { ", more to do" } else { "" }
    );
    if pass.more {
        ctx.send_batch(SYNC_QUEUE, &[SyncMessage::RetentionV1 {}], 0)
            .await?;
    }
    Ok(())
}

/// The hourly pass; `at` is the time it is for (the clock's in deployed builds): it decides
/// which orgs are due and the pass's dedupe key. Everything else (timestamps, purges, retention,
/// refreshes) goes by the clock.
async fn hourly(ctx: &Ctx, at: i64) -> Result<(), Internal> {
    let now = crate::time::rfc3339(ctx.now);
    let hour = crate::time::backup_hour(at);
    let delivery_cutoff = crate::time::rfc3339(ctx.now - DELIVERY_RETENTION_SECS);
    let failure_cutoff = crate::time::rfc3339(ctx.now - FAILURE_RETENTION_SECS);
    let results = ctx
        .batch(vec![
            ctx.statement(
                sql::CREATE_SCHEDULED_JOBS,
                &[
                    Param::from(&now),
                    Param::from(hour.hour as i64),
                    Param::from(hour.weekly_day as i64),
                    Param::from(&hour.key),
                ],
            )?,
            ctx.statement(sql::PURGE_CONSUMED_STATES, &[Param::from(&now)])?,
            ctx.statement(sql::PURGE_DELIVERIES, &[Param::from(&delivery_cutoff)])?,
            ctx.statement(sql::PURGE_MESSAGE_FAILURES, &[Param::from(&failure_cutoff)])?,
            ctx.statement(sql::PURGE_PENDING_CONNECTIONS, &[Param::from(&now)])?,
        ])
        .await?;
    let changes = |i: usize| bindings::changes(&results, i);
    worker::console_log!(
        "hourly {}: {} scheduled backup jobs, {} states, {} delivery ids and {} unconfirmed connections purged",
        hour.key,
        changes(0),
        changes(1),
        changes(2),
        changes(4)
    );
    retention_pass(ctx).await?;
    if let Err(e) = backup::abandon_stale(ctx).await {
        worker::console_warn!("hourly: abandoned backups: {}", e.0);
    }
    ctx.send_batch(SYNC_QUEUE, &[SyncMessage::DispatchV1 { org_id: None }], 0)
        .await?;
    // With the budget the scheduled work left (it costs 2 subrequests).
    connection_upkeep(ctx).await;
    Ok(())
}
