//! `POST /github/webhooks`: GitHub App deliveries (DESIGN.md flow 4).
//!
//! 1. Size (> 25 MB → 413, from `Content-Length` before reading, and while reading) and type
//!    (not JSON → 415).
//! 2. `X-Hub-Signature-256` over the raw bytes under `GITHUB_WEBHOOK_SECRET` (one secret or a
//!    JSON array during a rotation; checked with WebCrypto) → 401 naming the fault; no secret
//!    configured → 503. Nothing is parsed, written or queued before this passes.
//! 3. `X-GitHub-Event` / `X-GitHub-Delivery` present, body valid JSON (else 400).
//! 4. `ping` → 200; events not acted on, or for an installation no tenant connected → 202 —
//!    except `installation.created` approving a request (`setup_action=request`) one tenant
//!    made through a GitHub user we identified: that installation becomes the tenant's org.
//! 5. One D1 batch records the delivery (first statement: a redelivery fails its primary key and
//!    rolls the batch back → 200 `duplicate`), applies the event and logs the activity; then the
//!    backup / analysis jobs D1 reports as new are queued. No GitHub call is made inline, so the
//!    answer never waits on GitHub.
//! 6. A `push` (any ref, also one deleting a branch or a tag, also one changing no dependency
//!    file) to an active repository of an active org queues a backup of that repository
//!    (`INSERT_PUSH_BACKUP_JOB`): coalesced, so none when one is already waiting for it, while
//!    one may be running. An analysis job only when dependency or structure files changed and
//!    the ref was not deleted. `backup_jobs` / `analysis_jobs` in the answer count what was
//!    queued.
//! 7. A `push` costs one D1 round trip: its batch finds the org through the installation
//!    (`RECORD_CONNECTED_DELIVERY` and the job inserts join it), where other events look the
//!    org up first. Its backup and analysis jobs are committed stamped as sent and sent after
//!    the answer (`ctx.wait_until`, [`send_later`]); a lost send is re-sent by the dispatcher
//!    (cron, every hour) once the stamp is older than its cutoff. Nothing but that batch is on
//!    the response path.

use crate::api::problem::Problem;
use crate::edge::bindings::{Ctx, Internal, Param, ANALYSIS_QUEUE, BACKUP_QUEUE, SYNC_QUEUE};
use crate::edge::enumerate::{backup_message, queue_backups, NewJob, Owner};
use crate::edge::platform;
use crate::github::webhook_events::{self, Event, InstallationAction, Push, RepositoryAction};
use crate::github::webhook_signature::{self, SignatureError};
use crate::messages::{AnalysisJob, AnalysisMessage, BackupMessage, SyncMessage};
use crate::provider::RepositoryRecord;
use crate::sql::{self, DELIVERED};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use worker::{D1PreparedStatement, Request};

/// GitHub caps webhook payloads at 25 MB.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// A job a push's statement created, with the org it found through the installation.
#[derive(Deserialize)]
struct PushJob {
    id: String,
    org_id: String,
    repository_id: String,
}

#[derive(Deserialize)]
struct OrgRow {
    id: String,
    status: String,
    login: String,
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The raw body, refused past [`MAX_BODY_BYTES`]: by its `Content-Length` before reading, then
/// read whole in one call (the runtime holds a body to its declared length, as GitHub always
/// declares one); without a length, chunk by chunk, counting.
async fn read_body(req: &mut Request) -> Result<Vec<u8>, Problem> {
    let too_large = || Problem::PayloadTooLarge(MAX_BODY_BYTES);
    let unreadable = |e: worker::Error| Problem::BadRequest(format!("unreadable body: {e}"));
    if let Some(length) = header(req, "content-length").and_then(|v| v.trim().parse::<usize>().ok())
    {
        if length > MAX_BODY_BYTES {
            return Err(too_large());
        }
        let body = req.bytes().await.map_err(unreadable)?;
        return if body.len() > MAX_BODY_BYTES {
            Err(too_large())
        } else {
            Ok(body)
        };
    }
    let mut body = Vec::new();
    let mut stream = req.stream().map_err(unreadable)?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Handles one delivery: the status and JSON body to answer with.
pub async fn receive(ctx: &Ctx, req: &mut Request) -> Result<Answer, Problem> {
    let content_type = header(req, "content-type").unwrap_or_default();
    if !content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(Problem::UnsupportedMediaType(
            "webhook content type must be application/json".into(),
        ));
    }
    let secrets = webhook_signature::parse_secrets(ctx.secret("GITHUB_WEBHOOK_SECRET")?.expose());
    if secrets.is_empty() {
        return Err(Problem::Misconfigured("GITHUB_WEBHOOK_SECRET".into()));
    }
    let body = read_body(req).await?;
    let refused = |e: SignatureError| Problem::Unauthorized(e.detail().into());
    let claimed = webhook_signature::claimed_digest(
        header(req, "x-hub-signature-256").as_deref(),
        header(req, "x-hub-signature").as_deref(),
    )
    .map_err(refused)?;
    let mut verified = false;
    for secret in &secrets {
        if platform::hmac_sha256_verify(secret.as_bytes(), &claimed, &body)
            .await
            .map_err(Internal)?
        {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(refused(SignatureError::Mismatch));
    }

    let event_name = header(req, "x-github-event")
        .ok_or_else(|| Problem::BadRequest("missing X-GitHub-Event header".into()))?;
    let delivery = header(req, "x-github-delivery")
        .filter(|d| !d.is_empty() && d.len() <= 128)
        .ok_or_else(|| {
            Problem::BadRequest("missing or oversized X-GitHub-Delivery header".into())
        })?;
    let event = webhook_events::parse(&event_name, &body).map_err(|e| Problem::BadRequest(e.0))?;
    drop(body);
    if let Event::Push(push) = &event {
        return apply_push(ctx, push, &delivery).await;
    }
    route(ctx, &event, &event_name, &delivery)
        .await
        .map(|answer| Answer::now(&delivery, answer))
}

/// What a delivery is answered with, and the jobs to send once it was answered.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub delivery: String,
    /// Committed jobs stamped as sent (`dispatched_at`): [`send_later`] sends them after the
    /// answer, and the dispatcher re-sends any whose send was lost.
    pub backups: Vec<BackupMessage>,
    /// Their changed files are the JSON the job's row holds, written once.
    pub analyses: Vec<AnalysisMessage<Box<RawValue>>>,
}

impl Answer {
    /// Whether there are jobs to send after the answer ([`send_later`]).
    pub fn has_jobs(&self) -> bool {
        !self.backups.is_empty() || !self.analyses.is_empty()
    }

    fn now(delivery: &str, (status, body): (u16, Value)) -> Self {
        Answer {
            status,
            body,
            delivery: delivery.to_string(),
            backups: Vec::new(),
            analyses: Vec::new(),
        }
    }
}

/// Sends an answered delivery's backup and analysis jobs (from `ctx.wait_until`, after the
/// response). A failure is only logged: the rows are committed, and the dispatcher (cron)
/// re-sends them.
pub async fn send_later(ctx: &Ctx, answer: &Answer) {
    let lost = |what: &str, e: Internal| {
        worker::console_warn!(
            "delivery {}: {what} send lost, left to the dispatcher: {}",
            answer.delivery,
            e.0
        )
    };
    for chunk in answer.backups.chunks(crate::messages::MAX_BATCH_MESSAGES) {
        if let Err(e) = ctx.send_batch(BACKUP_QUEUE, chunk, 0).await {
            lost("backup", e);
        }
    }
    // A push's analysis job is one message within the message cap: one batch.
    if let Err(e) = ctx.send_batch(ANALYSIS_QUEUE, &answer.analyses, 0).await {
        lost("analysis", e);
    }
}

/// Every event but `push`: the org is looked up first, then the event applied in one batch.
async fn route(
    ctx: &Ctx,
    event: &Event,
    event_name: &str,
    delivery: &str,
) -> Result<(u16, Value), Problem> {
    let installation_id = match event {
        Event::Ping => return Ok((200, json!({ "ok": true, "event": "ping" }))),
        Event::Ignored(reason) => return Ok((202, json!({ "ignored": reason }))),
        other => other.installation_id().unwrap_or_default(),
    };
    let orgs: Vec<OrgRow> = ctx
        .rows(
            sql::ORG_FOR_INSTALLATION,
            &[Param::from(installation_id as i64)],
        )
        .await?;
    let Some(org) = orgs.into_iter().next() else {
        if let Event::Installation {
            action: InstallationAction::Created,
            account: Some(account),
            requester: Some(requester),
            ..
        } = event
        {
            return link_approval(ctx, delivery, installation_id, account, requester).await;
        }
        return Ok(not_connected());
    };
    apply(ctx, event, event_name, delivery, installation_id, &org).await
}

fn not_connected() -> (u16, Value) {
    (
        202,
        json!({ "ignored": "installation is not connected to any tenant" }),
    )
}

/// A `push`, the hot path, in one D1 round trip: the org is found inside the batch that
/// records the delivery (each statement joins the installation's org, so for an installation
/// no tenant connected nothing is written), and its jobs are sent after the answer.
async fn apply_push(ctx: &Ctx, push: &Push, delivery: &str) -> Result<Answer, Problem> {
    let now = crate::time::rfc3339(ctx.now);
    let installation_id = push.installation_id;
    let what = if push.deleted {
        "deleted".to_string()
    } else {
        format!("{} dependency or structure files changed", push.files.len())
    };
    let detail = format!(
        "push to {} {}: {what}",
        push.repository.full_name, push.git_ref
    );
    let mut statements = vec![
        ctx.statement(
            sql::RECORD_CONNECTED_DELIVERY,
            &[
                Param::from(delivery),
                Param::from("push"),
                Param::Null,
                Param::from(installation_id as i64),
                Param::from(&now),
            ],
        )?,
        // Every push changes refs: a backup of the repository, unless one is already waiting
        // for it (coalesced), and only for an active repository of an active org.
        ctx.statement(
            sql::INSERT_PUSH_BACKUP_JOB,
            &[
                Param::from(installation_id as i64),
                Param::from(push.repository.id as i64),
                Param::from(delivery),
                Param::from(&now),
            ],
        )?,
        ctx.statement(
            sql::RECORD_INSTALLATION_ACTIVITY,
            &[
                Param::from(installation_id as i64),
                Param::from(delivery),
                Param::from("push"),
                Param::from(&detail),
                Param::from(&now),
            ],
        )?,
    ];
    // The changed files as JSON, written once: the job's row and its message carry the same.
    let files = if push.needs_analysis() {
        let files = serde_json::value::to_raw_value(&push.files)
            .map_err(|e| Internal::new("files JSON", e))?;
        let job_id = platform::random_uuid().map_err(Internal)?;
        statements.push(ctx.statement(
            sql::INSERT_ANALYSIS_JOB,
            &[
                Param::from(&job_id),
                Param::from(installation_id as i64),
                Param::from(push.repository.id as i64),
                Param::from(delivery),
                Param::from(&push.git_ref),
                Param::from(&push.head_commit),
                Param::from(files.get()),
                Param::from(&now),
                Param::from(push.truncated as i64),
            ],
        )?);
        Some(files)
    } else {
        None
    };
    let Some(results) = apply_once(ctx, delivery, statements).await? else {
        return Ok(Answer::now(
            delivery,
            (200, json!({ "duplicate": true, "delivery": delivery })),
        ));
    };
    let rows = |i: usize| rows_of::<PushJob>(&results, i, "job rows");
    // Nothing recorded: no tenant connected the installation (and so nothing was written).
    if rows_of::<Value>(&results, 0, "delivery row")?.is_empty() {
        return Ok(Answer::now(delivery, not_connected()));
    }
    let owner = Owner::Installation(installation_id);
    let backups: Vec<BackupMessage> = rows(1)?
        .into_iter()
        .map(|job| backup_message(job.id, &job.org_id, job.repository_id, owner, "normal"))
        .collect();
    let analyses: Vec<AnalysisMessage<Box<RawValue>>> = match files {
        Some(files) => rows(3)?
            .into_iter()
            .map(|job| analysis_message(push, job, files.clone()))
            .collect(),
        None => Vec::new(),
    };
    Ok(Answer {
        status: 200,
        body: json!({ "ok": true, "event": "push", "backup_jobs": backups.len(), "analysis_jobs": analyses.len() }),
        delivery: delivery.to_string(),
        backups,
        analyses,
    })
}

fn analysis_message(
    push: &Push,
    job: PushJob,
    files: Box<RawValue>,
) -> AnalysisMessage<Box<RawValue>> {
    AnalysisMessage::AnalysisJobV1(AnalysisJob {
        job_id: job.id,
        org_id: job.org_id,
        repository_id: job.repository_id,
        installation_id: push.installation_id,
        git_ref: push.git_ref.clone(),
        head_commit: push.head_commit.clone(),
        files,
        truncated: push.truncated,
    })
}

/// The rows of statement `i` of a batch's `results` (`what` names them in an error).
fn rows_of<T: serde::de::DeserializeOwned>(
    results: &[worker::D1Result],
    i: usize,
    what: &str,
) -> Result<Vec<T>, Internal> {
    results
        .get(i)
        .ok_or_else(|| Internal("D1 batch returned too few results".into()))?
        .results::<T>()
        .map_err(|e| Internal::new(what, e))
}

/// Runs a delivery's batch, which `RECORD_DELIVERY` leads: `None` when the delivery was seen
/// before (its primary key failed the batch, so nothing was applied).
pub(crate) async fn apply_once(
    ctx: &Ctx,
    delivery: &str,
    statements: Vec<D1PreparedStatement>,
) -> Result<Option<Vec<worker::D1Result>>, Problem> {
    match ctx.batch(statements).await {
        Ok(results) => Ok(Some(results)),
        Err(e) => {
            let seen: Vec<Value> = ctx
                .rows(sql::DELIVERY_SEEN, &[Param::from(delivery)])
                .await?;
            if seen.is_empty() {
                Err(e.into())
            } else {
                Ok(None)
            }
        }
    }
}

/// How long a pending installation request waits for an owner's approval.
const REQUEST_VALID_SECS: i64 = 30 * 24 * 3600;

/// An owner approved an installation someone requested (`setup_action=request`): when exactly
/// one tenant has a pending request by that GitHub user (identified through OAuth during
/// installation), the installation becomes that tenant's organization and a sync enumerates
/// it. Anything less certain is left alone (202): the tenant can still connect it normally.
async fn link_approval(
    ctx: &Ctx,
    delivery: &str,
    installation_id: u64,
    account: &crate::github::Account,
    requester: &str,
) -> Result<(u16, Value), Problem> {
    #[derive(Deserialize)]
    struct Pending {
        nonce: String,
        tenant_id: String,
        technician_id: String,
    }
    let cutoff = crate::time::rfc3339(ctx.now - REQUEST_VALID_SECS);
    let pending: Vec<Pending> = ctx
        .rows(
            sql::PENDING_REQUESTS_BY_REQUESTER,
            &[Param::from(requester), Param::from(&cutoff)],
        )
        .await?;
    let tenants: std::collections::BTreeSet<&str> =
        pending.iter().map(|p| p.tenant_id.as_str()).collect();
    let Some(request) = pending.first().filter(|_| tenants.len() == 1) else {
        let why = if tenants.is_empty() {
            "no pending request by"
        } else {
            "several tenants have pending requests by"
        };
        return Ok((
            202,
            json!({ "ignored": format!("installation not connected: {why} {requester}") }),
        ));
    };
    let now = crate::time::rfc3339(ctx.now);
    let org_id = platform::random_uuid().map_err(Internal)?;
    let detail = format!(
        "installation approved on GitHub: linked to the request {requester} made for technician {}",
        request.technician_id
    );
    let id = installation_id as i64;
    let statements = vec![
        ctx.statement(
            sql::RECORD_DELIVERY,
            &[
                Param::from(delivery),
                Param::from("installation"),
                Param::from("created"),
                Param::from(id),
                Param::from(&now),
            ],
        )?,
        ctx.statement(
            sql::LINK_APPROVED_ORG,
            &[
                Param::from(&org_id),
                Param::from(account.id as i64),
                Param::from(&account.login),
                Param::from(account.avatar_url.as_deref()),
                Param::from(&account.kind),
                Param::from(id),
                Param::from(&now),
                Param::from(&request.nonce),
            ],
        )?,
        ctx.statement(
            sql::MARK_REQUEST_LINKED,
            &[Param::from(&request.nonce), Param::from(id)],
        )?,
        ctx.statement(
            sql::RECORD_INSTALLATION_ACTIVITY,
            &[
                Param::from(id),
                Param::from(delivery),
                Param::from("installation.created"),
                Param::from(&detail),
                Param::from(&now),
            ],
        )?,
    ];
    let Some(results) = apply_once(ctx, delivery, statements).await? else {
        return Ok((200, json!({ "duplicate": true, "delivery": delivery })));
    };
    #[derive(Deserialize)]
    struct Linked {
        id: String,
    }
    let linked = results
        .get(1)
        .and_then(|r| r.results::<Linked>().ok())
        .and_then(|rows| rows.into_iter().next())
        .ok_or_else(|| Internal("linking the approved installation returned no org".into()))?;
    ctx.send_batch(
        SYNC_QUEUE,
        &[SyncMessage::SyncOrgV1 {
            org_id: linked.id.clone(),
        }],
        0,
    )
    .await?;
    Ok((
        200,
        json!({ "ok": true, "event": "installation.created", "linked_org": linked.id }),
    ))
}

/// Statements for one event; their results are read by position afterwards.
struct Plan {
    statements: Vec<D1PreparedStatement>,
    /// Indexes (in the batch, after the delivery record) whose rows are backup jobs to send.
    backup_results: Vec<usize>,
    action: &'static str,
    detail: String,
}

impl Plan {
    fn new(action: &'static str, detail: String) -> Self {
        Plan {
            statements: Vec::new(),
            backup_results: Vec::new(),
            action,
            detail,
        }
    }

    fn push(&mut self, statement: D1PreparedStatement) -> usize {
        self.statements.push(statement);
        self.statements.len() - 1
    }
}

/// The JSON array the `RepositorySet` statements read: as records, so that GitHub's `clone_url`
/// is kept as `git_url` (where the backup executor clones from).
fn repositories_json(repos: &[crate::github::Repository]) -> Result<String, Internal> {
    let records: Vec<RepositoryRecord> = repos.iter().map(RepositoryRecord::from).collect();
    serde_json::to_string(&records).map_err(|e| Internal::new("repositories JSON", e))
}

fn plan(ctx: &Ctx, event: &Event, org: &OrgRow, now: &str) -> Result<Plan, Internal> {
    let org_id = org.id.as_str();
    let active = org.status == "active";
    let set = |sql: String, json: &str| {
        ctx.statement(
            &sql,
            &[Param::from(org_id), Param::from(json), Param::from(now)],
        )
    };
    let status = |to: &str, from: &str| {
        ctx.statement(
            sql::SET_ORG_STATUS,
            &[
                Param::from(org_id),
                Param::from(to),
                Param::from(now),
                Param::from(from),
            ],
        )
    };
    let mut p;
    match event {
        Event::Installation { action, .. } => match action {
            InstallationAction::Deleted => {
                p = Plan::new("deleted", "GitHub App uninstalled: organization disconnected, backup jobs paused, snapshots kept".into());
                p.push(status("disconnected", r#"["active","suspended"]"#)?);
                p.push(ctx.statement(
                    sql::PAUSE_ORG_JOBS,
                    &[Param::from(org_id), Param::from(now)],
                )?);
            }
            InstallationAction::Suspend => {
                p = Plan::new(
                    "suspend",
                    "installation suspended on GitHub: no work until it is unsuspended".into(),
                );
                p.push(status("suspended", r#"["active"]"#)?);
            }
            InstallationAction::Unsuspend => {
                p = Plan::new(
                    "unsuspend",
                    "installation unsuspended on GitHub: active again".into(),
                );
                p.push(status("active", r#"["suspended"]"#)?);
            }
            InstallationAction::NewPermissionsAccepted => {
                p = Plan::new(
                    "new_permissions_accepted",
                    "new App permissions accepted on GitHub".into(),
                );
            }
            InstallationAction::Created => {
                p = Plan::new("created", "installation created on GitHub".into());
            }
        },
        Event::InstallationRepositories { added, removed, .. } => {
            p = Plan::new(
                if removed.is_empty() {
                    "added"
                } else if added.is_empty() {
                    "removed"
                } else {
                    "changed"
                },
                format!(
                    "{} repositories added to the installation, {} removed",
                    added.len(),
                    removed.len()
                ),
            );
            if !added.is_empty() {
                let json = repositories_json(added)?;
                p.push(set(DELIVERED.upsert_active(), &json)?);
                p.push(set(DELIVERED.insert_profiles(), &json)?);
                if active {
                    let i = p.push(set(DELIVERED.insert_initial_jobs(), &json)?);
                    let j = p.push(set(DELIVERED.resume_jobs(), &json)?);
                    p.backup_results.extend([i, j]);
                }
            }
            if !removed.is_empty() {
                let json = repositories_json(removed)?;
                p.push(set(DELIVERED.mark_removed(), &json)?);
                p.push(set(DELIVERED.pause_jobs(), &json)?);
            }
        }
        Event::Repository {
            action, repository, ..
        } => {
            let json = repositories_json(std::slice::from_ref(repository))?;
            match action {
                RepositoryAction::Created => {
                    p = Plan::new(
                        "created",
                        format!("repository {} created", repository.full_name),
                    );
                    p.push(set(DELIVERED.insert_if_absent(), &json)?);
                    p.push(set(DELIVERED.insert_profiles(), &json)?);
                    if active {
                        let i = p.push(set(DELIVERED.insert_initial_jobs(), &json)?);
                        p.backup_results.push(i);
                    }
                }
                RepositoryAction::Deleted => {
                    p = Plan::new(
                        "deleted",
                        format!(
                            "repository {} deleted on GitHub (history kept)",
                            repository.full_name
                        ),
                    );
                    p.push(set(DELIVERED.mark_removed(), &json)?);
                    p.push(set(DELIVERED.pause_jobs(), &json)?);
                }
                RepositoryAction::Changed(change) => {
                    p = Plan::new(
                        change,
                        format!("repository {} {change} on GitHub", repository.full_name),
                    );
                    p.push(set(DELIVERED.follow(), &json)?);
                }
            }
        }
        Event::Ping | Event::Ignored(_) | Event::Access { .. } | Event::Push(_) => {
            unreachable!("answered before planning")
        }
    }
    Ok(p)
}

async fn apply(
    ctx: &Ctx,
    event: &Event,
    event_name: &str,
    delivery: &str,
    installation_id: u64,
    org: &OrgRow,
) -> Result<(u16, Value), Problem> {
    if let Event::Access {
        event,
        action,
        payload,
        ..
    } = event
    {
        let delivery = crate::edge::access::webhook::Delivery {
            id: delivery,
            event,
            action,
            installation_id,
            org_id: &org.id,
            org_login: &org.login,
            payload,
        };
        return crate::edge::access::webhook::receive(ctx, &delivery).await;
    }
    let now = crate::time::rfc3339(ctx.now);
    let mut plan = plan(ctx, event, org, &now)?;
    // `push` has no action.
    let action_name = if plan.action.is_empty() {
        event_name.to_string()
    } else {
        format!("{event_name}.{}", plan.action)
    };
    let mut statements = vec![ctx.statement(
        sql::RECORD_DELIVERY,
        &[
            Param::from(delivery),
            Param::from(event_name),
            Param::from(Some(plan.action).filter(|a| !a.is_empty())),
            Param::from(installation_id as i64),
            Param::from(&now),
        ],
    )?];
    statements.append(&mut plan.statements);
    statements.push(ctx.statement(
        sql::RECORD_ACTIVITY,
        &[
            Param::from(org.id.as_str()),
            Param::from(delivery),
            Param::from(&action_name),
            Param::from(&plan.detail),
            Param::from(&now),
        ],
    )?);
    let Some(results) = apply_once(ctx, delivery, statements).await? else {
        return Ok((200, json!({ "duplicate": true, "delivery": delivery })));
    };
    // Results are offset by one: the delivery record leads the batch.
    let rows = |i: usize| rows_of::<NewJob>(&results, i + 1, "job rows");
    let mut backups = Vec::new();
    for &i in &plan.backup_results {
        backups.extend(rows(i)?);
    }
    let backups = queue_backups(ctx, &org.id, Owner::Installation(installation_id), backups).await;
    Ok((
        200,
        json!({ "ok": true, "event": action_name, "backup_jobs": backups, "analysis_jobs": 0 }),
    ))
}
