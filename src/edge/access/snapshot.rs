//! Access snapshots at the edge: each sync starts one (`start`), read in bounded steps through
//! the sync queue (`step`, one `access.v1` message each) like enumeration, with the reading
//! logic in `access::reading`. The last step compares the new state with the stored one
//! (`access::diff::reconcile`) and writes the state, the run's end and the events in one D1
//! batch (compare-and-set on the state's version: a webhook applied meanwhile makes the step
//! try again, so nothing is lost or written twice).
//!
//! A `branch_protection_rule` or `repository_ruleset` webhook re-reads one repository's
//! protection (`repository`), whose events carry the delivery.
//!
//! Per step: the org and the run (2 D1 reads), a credential (GitHub: 1 token request), the
//! active repositories (1), then provider reads while the budget allows, and 2 to finish (the
//! run's progress, the next message). A repository's requests (2-3) go at once.

use crate::access::diff;
use crate::access::model::{AccessEvent, AccessState};
use crate::access::reading::{self, Next, Progress};
use crate::auth::credential_origins::Issuer;
use crate::edge::bindings::{Ctx, Internal, Param, SYNC_QUEUE};
use crate::edge::platform;
use crate::edge::providers::github_client;
use crate::edge::providers::outbound::{call, Answer, Auth, CallError};
use crate::edge::providers::provider_tokens::{self, ConnectionToken};
use crate::messages::SyncMessage;
use crate::provider::Provider;
use crate::sql;
use futures_util::future::join_all;
use serde::Deserialize;
use url::Url;
use worker::Method;

/// Kept back for the step's own writes: the progress, the next message, a retry.
const RESERVE: u32 = 4;

#[derive(Deserialize)]
pub struct OrgRow {
    pub id: String,
    pub provider: String,
    pub installation_id: i64,
    pub connection_id: Option<String>,
    pub api_url: Option<String>,
    pub status: String,
    pub login: String,
    pub account_type: String,
}

pub async fn org(ctx: &Ctx, org_id: &str) -> Result<Option<OrgRow>, Internal> {
    Ok(ctx
        .rows::<OrgRow>(sql::ACCESS_ORG, &[Param::from(org_id)])
        .await?
        .into_iter()
        .next())
}

#[derive(Deserialize)]
pub struct StateRow {
    pub state: String,
    pub version: i64,
    pub read_at: String,
}

pub async fn stored(ctx: &Ctx, org_id: &str) -> Result<Option<(AccessState, StateRow)>, Internal> {
    let row = ctx
        .rows::<StateRow>(sql::ACCESS_STATE, &[Param::from(org_id)])
        .await?
        .into_iter()
        .next();
    row.map(|row| {
        serde_json::from_str(&row.state)
            .map(|state| (state, row))
            .map_err(|e| Internal::new("stored access state", e))
    })
    .transpose()
}

/// Starts an access snapshot of the org with its first step queued; one under way is replaced,
/// so what the snapshot shows was read after this sync began.
pub async fn start(ctx: &Ctx, org_id: &str) -> Result<(), Internal> {
    #[derive(Deserialize)]
    struct Started {
        run_id: String,
    }
    let run_id = platform::random_uuid().map_err(Internal)?;
    let now = crate::time::rfc3339(ctx.now);
    let progress = serde_json::to_string(&Progress::default())
        .map_err(|e| Internal::new("access progress", e))?;
    let started: Vec<Started> = ctx
        .rows(
            sql::START_ACCESS_RUN,
            &[
                Param::from(org_id),
                Param::from(&run_id),
                Param::from(&progress),
                Param::from(&now),
            ],
        )
        .await?;
    if started.iter().any(|s| s.run_id == run_id) {
        let first = SyncMessage::AccessV1 {
            org_id: org_id.into(),
            run_id,
            step: 0,
        };
        ctx.send_batch(SYNC_QUEUE, &[first], 0).await?;
    }
    Ok(())
}

/// The credential reads go with, refreshed once on a 401 (GitLab / Azure DevOps).
enum Reader {
    GitHub(String),
    Connection {
        id: String,
        token: ConnectionToken,
        issuer_is_microsoft: bool,
    },
}

impl Reader {
    async fn for_org(ctx: &Ctx, org: &OrgRow, provider: Provider) -> Result<Reader, CallError> {
        match provider {
            Provider::GitHub => {
                let jwt = github_client::app_jwt(ctx)
                    .await
                    .map_err(|p| CallError::Internal(Internal(p.detail())))?;
                let token =
                    github_client::installation_token(ctx, &jwt, org.installation_id as u64)
                        .await?;
                Ok(Reader::GitHub(token))
            }
            _ => {
                let id = org
                    .connection_id
                    .clone()
                    .ok_or_else(|| Internal("the org has no connection".into()))?;
                let token = provider_tokens::access_token(ctx, &id, None)
                    .await
                    .map_err(|f| CallError::Refused(f.to_string()))?;
                Ok(Reader::Connection {
                    id,
                    token,
                    issuer_is_microsoft: provider == Provider::AzureDevOps,
                })
            }
        }
    }

    /// The instance's base, which `Link` pages must stay under.
    fn origin<'a>(&'a self, ctx: &'a Ctx) -> &'a Url {
        match self {
            Reader::GitHub(_) => &ctx.config.api_url,
            Reader::Connection { token, .. } => &token.base_url,
        }
    }

    /// One request with the current credential.
    async fn once(&self, ctx: &Ctx, url: &Url) -> Result<Answer, CallError> {
        match self {
            Reader::GitHub(token) => call(ctx, Method::Get, url, Auth::Installation(token)).await,
            Reader::Connection {
                token,
                issuer_is_microsoft,
                ..
            } => {
                let issuer = if *issuer_is_microsoft {
                    Issuer::Microsoft
                } else {
                    Issuer::GitLab(&token.base_url)
                };
                call(
                    ctx,
                    Method::Get,
                    url,
                    Auth::Bearer(token.token.expose(), issuer),
                )
                .await
            }
        }
    }

    /// One request; a GitLab / Microsoft token refused before its expiry is refreshed once. A
    /// 401 to the fresh token refuses this read, not the credential (Azure DevOps answers 401
    /// where the account lacks a permission, e.g. to view users): a refusal that says so.
    async fn get(&mut self, ctx: &Ctx, url: &Url) -> Result<Answer, CallError> {
        match self.once(ctx, url).await {
            Err(CallError::Unauthorized) => {
                let Reader::Connection { id, token, .. } = self else {
                    return self.once(ctx, url).await;
                };
                *token = provider_tokens::access_token(ctx, id, Some(&token.token))
                    .await
                    .map_err(|f| CallError::Refused(f.to_string()))?;
                match self.once(ctx, url).await {
                    Err(CallError::Unauthorized) => Err(CallError::Refused(format!(
                        "{} answered 401 to {} although the access token was just refreshed",
                        url.host_str().unwrap_or("the provider"),
                        url.path()
                    ))),
                    other => other,
                }
            }
            other => other,
        }
    }
}

/// Why a read of a part could not be used, in words for the access state.
fn refusal(provider: Provider, e: &CallError) -> String {
    match e {
        CallError::Refused(detail) => format!(
            "{} refused: {detail} (the {} lacks the permission or role to read it)",
            provider.name(),
            if provider == Provider::GitHub {
                "App installation"
            } else {
                "connected account"
            }
        ),
        other => format!("{}: {other}", provider.name()),
    }
}

pub struct Target<'a> {
    pub org: &'a OrgRow,
    pub provider: Provider,
    pub api_url: Url,
}

impl<'a> Target<'a> {
    pub fn new(ctx: &Ctx, org: &'a OrgRow) -> Result<Target<'a>, Internal> {
        let provider = Provider::from_db(&org.provider)
            .ok_or_else(|| Internal(format!("org {} has provider {}", org.id, org.provider)))?;
        let api_url = match provider {
            Provider::GitHub => ctx.config.api_url.clone(),
            _ => Url::parse(org.api_url.as_deref().unwrap_or_default())
                .map_err(|e| Internal::new("org API URL", e))?,
        };
        Ok(Target {
            org,
            provider,
            api_url,
        })
    }

    pub fn reading_org<'b>(&'b self, ctx: &'b Ctx) -> reading::Org<'b> {
        reading::Org {
            provider: self.provider,
            login: &self.org.login,
            is_organization: self.org.account_type != "User",
            api_url: &self.api_url,
            entitlements_url: Some(&ctx.config.azure_vsaex_url),
        }
    }
}

async fn repositories(ctx: &Ctx, org_id: &str) -> Result<Vec<reading::Repository>, Internal> {
    #[derive(Deserialize)]
    struct Row {
        id: String,
        full_name: String,
        default_branch: Option<String>,
        provider_repo_id: serde_json::Value,
    }
    let rows: Vec<Row> = ctx
        .rows(sql::ACCESS_REPOSITORIES, &[Param::from(org_id)])
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| reading::Repository {
            id: r.id,
            full_name: r.full_name,
            default_branch: r.default_branch,
            provider_repo_id: match r.provider_repo_id {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
        })
        .collect())
}

/// Reads the answers to one repository's requests, at once.
async fn read_all(
    ctx: &Ctx,
    reader: &Reader,
    urls: &[Url],
) -> Vec<Result<reading::Answer, CallError>> {
    join_all(urls.iter().map(|url| async move {
        match reader.once(ctx, url).await {
            Ok(a) => Ok(reading::Answer::Ok(a.body)),
            Err(CallError::NotFound) => Ok(reading::Answer::NotFound),
            Err(e) => Err(e),
        }
    }))
    .await
}

/// How a step ended.
enum Stop {
    Done,
    /// The budget ran low: go on in the next step.
    Budget,
    /// The provider asks us to wait (rate limit, outage): go on after this many seconds.
    Wait(u32),
}

/// Reads as much of the org as the budget allows into `progress`.
async fn read(
    ctx: &Ctx,
    target: &Target<'_>,
    reader: &mut Reader,
    progress: &mut Progress,
    repos: &[reading::Repository],
) -> Result<Stop, Internal> {
    let org = target.reading_org(ctx);
    let provider = target.provider;
    loop {
        let next = progress.next(&org, repos);
        let cost = match &next {
            Next::Done => return Ok(Stop::Done),
            Next::Page(_) => 1,
            Next::Repository(_, urls) => urls.len().max(1) as u32,
        };
        if ctx.budget.remaining() < cost + RESERVE {
            return Ok(Stop::Budget);
        }
        match next {
            Next::Done => return Ok(Stop::Done),
            Next::Page(url) => match reader.get(ctx, &url).await {
                Ok(answer) => {
                    let next = if provider == Provider::AzureDevOps {
                        None
                    } else {
                        crate::github::next_page(answer.link.as_deref(), reader.origin(ctx))
                            .map_err(|e| Internal(format!("unusable Link header: {e:?}")))?
                            .map(|u| u.to_string())
                    };
                    progress
                        .page_read(&org, &answer.body, next, ctx.now)
                        .map_err(|e| Internal(format!("{}: {e}", provider.name())))?;
                }
                Err(CallError::Unavailable {
                    retry_after_secs, ..
                }) => return Ok(Stop::Wait(retry_after_secs)),
                Err(CallError::Internal(e)) => return Err(e),
                Err(e) => progress.page_refused(&org, &refusal(provider, &e)),
            },
            Next::Repository(index, urls) => {
                let Some(repo) = repos.get(index) else {
                    return Ok(Stop::Done);
                };
                let mut answers = Vec::new();
                for result in read_all(ctx, reader, &urls).await {
                    match result {
                        Ok(a) => answers.push(a),
                        Err(CallError::Unavailable {
                            retry_after_secs, ..
                        }) => return Ok(Stop::Wait(retry_after_secs)),
                        Err(CallError::Internal(e)) => return Err(e),
                        Err(e) => answers.push(reading::Answer::Refused(refusal(provider, &e))),
                    }
                }
                progress
                    .repository_read(&org, repo, answers, ctx.now)
                    .map_err(|e| Internal(format!("{}: {e}", provider.name())))?;
            }
        }
    }
}

/// One step of a run: read, then either store the progress and queue the next step, or finish.
pub async fn step(ctx: &Ctx, org_id: &str, run_id: &str, step: i64) -> Result<(), Internal> {
    #[derive(Deserialize)]
    struct Run {
        step: i64,
        progress: String,
    }
    let Some(org) = org(ctx, org_id).await? else {
        return Ok(());
    };
    let runs: Vec<Run> = ctx
        .rows(sql::ACCESS_RUN, &[Param::from(org_id), Param::from(run_id)])
        .await?;
    let Some(run) = runs.into_iter().next().filter(|r| r.step == step) else {
        return Ok(()); // Moved on (a redelivered step), replaced, or finished.
    };
    let drop_run = || async {
        ctx.run(
            sql::DROP_ACCESS_RUN,
            &[Param::from(org_id), Param::from(run_id)],
        )
        .await
        .map(|_| ())
    };
    if org.status != "active" {
        return drop_run().await;
    }
    let target = Target::new(ctx, &org)?;
    let mut progress: Progress =
        serde_json::from_str(&run.progress).map_err(|e| Internal::new("access progress", e))?;
    if step == 0 {
        progress = Progress::start(&target.reading_org(ctx));
    }
    let mut reader = match Reader::for_org(ctx, &org, target.provider).await {
        Ok(r) => r,
        Err(CallError::Internal(e)) => return Err(e),
        Err(CallError::Unavailable { detail, .. }) => return Err(Internal(detail)),
        // No credential (revoked, uninstalled): the sync that follows says so; stop here.
        Err(e) => {
            worker::console_warn!("access snapshot of org {org_id}: no credential: {e}");
            return drop_run().await;
        }
    };
    let repos = repositories(ctx, org_id).await?;
    let stop = read(ctx, &target, &mut reader, &mut progress, &repos).await?;
    let delay = match stop {
        Stop::Done => return finish(ctx, &target, run_id, step, progress).await,
        Stop::Budget => 0,
        Stop::Wait(secs) => secs,
    };
    let json = serde_json::to_string(&progress).map_err(|e| Internal::new("access progress", e))?;
    let now = crate::time::rfc3339(ctx.now);
    let moved = ctx
        .run(
            sql::ADVANCE_ACCESS_RUN,
            &[
                Param::from(org_id),
                Param::from(run_id),
                Param::from(step),
                Param::from(&json),
                Param::from(&now),
            ],
        )
        .await?;
    if crate::edge::bindings::changes(std::slice::from_ref(&moved), 0) == 0 {
        return Ok(());
    }
    let next = SyncMessage::AccessV1 {
        org_id: org_id.into(),
        run_id: run_id.into(),
        step: step + 1,
    };
    ctx.send_batch(SYNC_QUEUE, &[next], delay).await
}

/// Writes a state computed from the stored one: `compute` gets the stored state (`None` before
/// the first snapshot) and gives the new state and its events. Compare-and-set on the version;
/// tried again (from a fresh read) when another write got there first. `finish_run`: the run
/// and step the write completes (deleted in the same batch).
pub async fn write_state(
    ctx: &Ctx,
    org_id: &str,
    complete: bool,
    source: &str,
    delivery: Option<&str>,
    finish_run: Option<(&str, i64)>,
    compute: impl Fn(Option<&AccessState>) -> (AccessState, Vec<AccessEvent>),
) -> Result<bool, Internal> {
    for _ in 0..3 {
        let stored = stored(ctx, org_id).await?;
        let (state, events) = compute(stored.as_ref().map(|(s, _)| s));
        let state_json =
            serde_json::to_string(&state).map_err(|e| Internal::new("access state", e))?;
        let events_json =
            serde_json::to_string(&events).map_err(|e| Internal::new("access events", e))?;
        let now = crate::time::rfc3339(ctx.now);
        let mut statements = vec![match &stored {
            None => ctx.statement(
                sql::INSERT_ACCESS_STATE,
                &[
                    Param::from(org_id),
                    Param::from(&state_json),
                    Param::from(&now),
                ],
            )?,
            Some((_, row)) => ctx.statement(
                sql::UPDATE_ACCESS_STATE,
                &[
                    Param::from(org_id),
                    Param::from(&state_json),
                    Param::from(row.version),
                    Param::from(&now),
                    Param::from(complete as i64),
                ],
            )?,
        }];
        if let Some((run_id, step)) = finish_run {
            statements.push(ctx.statement(
                sql::FINISH_ACCESS_RUN,
                &[Param::from(org_id), Param::from(run_id), Param::from(step)],
            )?);
        }
        statements.push(ctx.statement(
            sql::INSERT_ACCESS_EVENTS,
            &[
                Param::from(org_id),
                Param::from(&events_json),
                Param::from(source),
                Param::from(delivery),
                Param::from(&now),
            ],
        )?);
        let results = ctx.batch(statements).await?;
        if crate::edge::bindings::changes(&results, 0) == 1 {
            return Ok(true);
        }
        // Another write got there first (a newer version, or another first state): the next
        // round compares against it.
    }
    Ok(false)
}

async fn finish(
    ctx: &Ctx,
    target: &Target<'_>,
    run_id: &str,
    step: i64,
    progress: Progress,
) -> Result<(), Internal> {
    let org = target.reading_org(ctx);
    let read = progress.finish(&org, ctx.now);
    let login = target.org.login.clone();
    let now = ctx.now;
    let written = write_state(
        ctx,
        &target.org.id,
        true,
        "sync",
        None,
        Some((run_id, step)),
        |old| {
            let mut new = read.clone();
            let events = diff::reconcile(&login, old, &mut new, now);
            (new, events)
        },
    )
    .await?;
    if !written {
        return Err(Internal(
            "the access state kept changing: will try again".into(),
        ));
    }
    Ok(())
}

/// A webhook said one repository's protection changed: read it again now and record what
/// changed, naming the delivery.
pub async fn repository(
    ctx: &Ctx,
    org_id: &str,
    full_name: &str,
    delivery: &str,
) -> Result<(), Internal> {
    let Some(org) = org(ctx, org_id).await? else {
        return Ok(());
    };
    if org.status != "active" {
        return Ok(());
    }
    let target = Target::new(ctx, &org)?;
    let repos = repositories(ctx, org_id).await?;
    let Some(repo) = repos
        .iter()
        .find(|r| r.full_name.eq_ignore_ascii_case(full_name))
    else {
        return Ok(());
    };
    let reader = match Reader::for_org(ctx, &org, target.provider).await {
        Ok(r) => r,
        Err(CallError::Internal(e)) => return Err(e),
        Err(e) => return Err(Internal(format!("no credential: {e}"))),
    };
    let reading_org = target.reading_org(ctx);
    // A reading that starts at this repository (with the org's outside collaborators, so their
    // admin rights on it are read too).
    let before = stored(ctx, org_id).await?;
    let Some((old_state, _)) = before else {
        return Ok(()); // No snapshot yet: the first one reads it.
    };
    let mut progress = Progress {
        phase: reading::Phase::Repositories,
        outside: old_state
            .outside_collaborators
            .iter()
            .map(|c| c.login.clone())
            .collect(),
        ..Progress::default()
    };
    let Next::Repository(_, urls) = progress.next(&reading_org, std::slice::from_ref(repo)) else {
        return Ok(());
    };
    let mut answers = Vec::new();
    for result in read_all(ctx, &reader, &urls).await {
        match result {
            Ok(a) => answers.push(a),
            Err(CallError::Internal(e)) => return Err(e),
            Err(CallError::Unavailable { detail, .. }) => return Err(Internal(detail)),
            Err(e) => answers.push(reading::Answer::Refused(refusal(target.provider, &e))),
        }
    }
    progress
        .repository_read(&reading_org, repo, answers, ctx.now)
        .map_err(|e| Internal(e.to_string()))?;
    let Some(read) = progress.repositories.pop() else {
        return Ok(());
    };
    let admins: Vec<(String, String)> = progress.outside_admin;
    let login = org.login.clone();
    let now = ctx.now;
    write_state(ctx, org_id, false, "webhook", Some(delivery), None, |old| {
        let Some(old) = old else {
            return (AccessState::default(), Vec::new());
        };
        let mut new = old.clone();
        match new
            .repositories
            .iter_mut()
            .find(|r| r.repository_id == read.repository_id)
        {
            Some(slot) => *slot = read.clone(),
            None => new.repositories.push(read.clone()),
        }
        new.unknown
            .retain(|u| u.part != format!("repository:{}.protection", read.full_name));
        if read.protection.is_none() {
            new.unknown.push(crate::access::model::Unknown {
                part: format!("repository:{}.protection", read.full_name),
                reason: "unreadable when re-read after a webhook".into(),
            });
        }
        for collaborator in new.outside_collaborators.iter_mut() {
            if let Some(admin_on) = collaborator.admin_on.as_mut() {
                admin_on.retain(|r| r != &read.full_name);
                if admins
                    .iter()
                    .any(|(l, r)| l == &collaborator.login && r == &read.full_name)
                {
                    admin_on.push(read.full_name.clone());
                    admin_on.sort();
                }
            }
        }
        let events = diff::reconcile(&login, Some(old), &mut new, now);
        (new, events)
    })
    .await?;
    Ok(())
}
