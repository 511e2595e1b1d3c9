//! Queue consumers and cron triggers.
//!
//! - `onecode-backup-jobs` and `onecode-analysis-jobs`: record that each job was received
//!   (idempotently: a redelivered job changes nothing) and acknowledge it. The backup executor
//!   and the analysis pipeline replace these later.
//! - `onecode-sync`: `enumerate.v1` continuations; each mints its own installation token and
//!   applies pages from the run's cursor (see `enumerate`).
//! - cron (hourly): purges spent connect states past their expiry and webhook delivery ids
//!   older than 14 days.
//!
//! A message that cannot be decoded is retried until it lands in the dead-letter queue, where it
//! can be inspected; one bad message does not replay the others.

use super::bindings::{Ctx, Internal, Param};
use super::enumerate::{self, Target};
use super::github_client;
use crate::messages::{AnalysisMessage, BackupMessage, SyncMessage};
use crate::sql;
use serde::Deserialize;
use worker::{Message, MessageBatch, MessageExt, QueueRetryOptionsBuilder};

pub const BACKUP_QUEUE_NAME: &str = "onecode-backup-jobs";
pub const SYNC_QUEUE_NAME: &str = "onecode-sync";
pub const ANALYSIS_QUEUE_NAME: &str = "onecode-analysis-jobs";
/// How long delivery ids are remembered for deduplication.
const DELIVERY_RETENTION_SECS: i64 = 14 * 24 * 3600;

fn retry_later(message: &Message<String>, delay_secs: u32) {
    message.retry_with_options(
        &QueueRetryOptionsBuilder::new()
            .with_delay_seconds(delay_secs)
            .build(),
    );
}

pub async fn consume(ctx: &Ctx, batch: MessageBatch<String>) -> Result<(), Internal> {
    let messages = batch
        .messages()
        .map_err(|e| Internal::new("queue batch", e))?;
    match batch.queue().as_str() {
        BACKUP_QUEUE_NAME => {
            let job_id = |body: &str| {
                serde_json::from_str::<BackupMessage>(body)
                    .map(|BackupMessage::BackupJobV1(j)| j.job_id)
            };
            record_receipts(ctx, &messages, job_id, sql::MARK_JOBS_RECEIVED).await
        }
        ANALYSIS_QUEUE_NAME => {
            let job_id = |body: &str| {
                serde_json::from_str::<AnalysisMessage>(body)
                    .map(|AnalysisMessage::AnalysisJobV1(j)| j.job_id)
            };
            record_receipts(ctx, &messages, job_id, sql::MARK_ANALYSIS_RECEIVED).await
        }
        SYNC_QUEUE_NAME => {
            for message in &messages {
                sync_message(ctx, message).await;
            }
            Ok(())
        }
        other => {
            worker::console_error!("messages from unknown queue {other}; retrying them");
            batch.retry_all();
            Ok(())
        }
    }
}

/// Marks the jobs of a batch received with one statement (`mark`: ?1 ids as JSON, ?2 now).
async fn record_receipts(
    ctx: &Ctx,
    messages: &[Message<String>],
    job_id: impl Fn(&str) -> Result<String, serde_json::Error>,
    mark: &str,
) -> Result<(), Internal> {
    let mut decoded = Vec::with_capacity(messages.len());
    for message in messages {
        match job_id(message.body()) {
            Ok(id) => decoded.push((message, id)),
            Err(e) => {
                worker::console_error!("undecodable job message {}: {e}", message.id());
                retry_later(message, 60);
            }
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
            worker::console_error!("recording job receipts: {}", e.0);
            decoded.iter().for_each(|(m, _)| retry_later(m, 30));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct RunRow {
    installation_id: i64,
    status: String,
    run_id: String,
    next_url: Option<String>,
}

async fn sync_message(ctx: &Ctx, message: &Message<String>) {
    let continuation = match serde_json::from_str::<SyncMessage>(message.body()) {
        Ok(SyncMessage::EnumerateV1(c)) => c,
        Err(e) => {
            worker::console_error!("undecodable sync message {}: {e}", message.id());
            return retry_later(message, 60);
        }
    };
    match continue_run(ctx, &continuation).await {
        Ok(()) => message.ack(),
        Err(e) => {
            worker::console_error!(
                "enumeration continuation for org {}: {}",
                continuation.org_id,
                e.0
            );
            retry_later(message, 30);
        }
    }
}

async fn continue_run(
    ctx: &Ctx,
    c: &crate::messages::EnumerateContinuation,
) -> Result<(), Internal> {
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
    if url.origin() != ctx.config.api_url.origin() {
        return Err(Internal(
            "continuation URL is not on the GitHub API origin".into(),
        ));
    }
    let installation_id = run.installation_id as u64;
    let jwt = github_client::app_jwt(ctx)
        .await
        .map_err(|p| Internal(format!("App JWT: {p:?}")))?;
    let token = github_client::installation_token(ctx, &jwt, installation_id)
        .await
        .map_err(|e| Internal(format!("installation token: {e}")))?;
    let target = Target {
        org_id: &c.org_id,
        installation_id,
        run_id: &c.run_id,
    };
    enumerate::run(ctx, &token, &target, url).await.map(|_| ())
}

pub async fn scheduled(ctx: &Ctx, cron: &str) -> Result<(), Internal> {
    let now = crate::time::rfc3339(ctx.now);
    ctx.run(sql::PURGE_CONSUMED_STATES, &[Param::from(&now)])
        .await?;
    let cutoff = crate::time::rfc3339(ctx.now - DELIVERY_RETENTION_SECS);
    ctx.run(sql::PURGE_DELIVERIES, &[Param::from(&cutoff)])
        .await?;
    worker::console_log!("cron {cron}: purged spent states and old delivery ids");
    Ok(())
}
