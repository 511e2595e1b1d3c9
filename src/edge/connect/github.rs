//! The connect flow (DESIGN.md flows 1 and 2).
//!
//! `POST /v1/connect/github` (portal JWT) → `200 {"install_url", "expires_at"}`: a state token
//! (see `state_token`) remembered in KV for 600 s.
//!
//! `GET /github/setup?installation_id&setup_action&state[&code]` → `303` to the portal (or our
//! pages):
//! 1. the state: signature and expiry (pure), then present in KV (else expired / used), and
//!    issued by this route's `start` (a GitLab / Azure DevOps state is invalid here);
//! 2. `request`: spend the state and record the pending request, with the GitHub login of who
//!    asked when GitHub sent an OAuth `code` (see `webhooks` for how the owner's approval is
//!    linked to it) → `pending`;
//! 3. `install` / `update`: the state is spent, then ownership: with OAuth during installation the returning user's
//!    `code` must list the installation in `GET /user/installations` (a missing, empty or
//!    oversized code is `installation_forbidden`); without OAuth the callback is refused as
//!    `misconfigured` unless `ALLOW_UNVERIFIED_INSTALLATIONS` is set (development). Then App JWT
//!    → `GET /app/installations/{id}`: unknown, another tenant's or suspended is refused;
//!    The state is spent before these checks, so a refused link is used up too (one link cannot
//!    probe installation ids) and of two racing callbacks only one gets this far;
//! 4. a verified installation is held (`confirm::hold`: nothing linked, no job sent) and the
//!    browser goes to `/connect/github/confirm?pending=<id>`;
//! 5. the technician who started the flow confirms (`POST /v1/connect/confirm`):
//!    [`link_installation`] checks the installation again, mints a token, and in one D1
//!    transaction spends the pending id and upserts the organization and its enumeration run;
//!    pages are then applied while the budget allows (`enumerate`), and the answer carries the
//!    org, the repositories recorded so far, how many are new, and whether enumeration is done.

use crate::api::problem::Problem;
use crate::auth::portal_auth::Principal;
use crate::auth::state_token::{self, StateClaims, StateError, STATE_TTL_SECS};
use crate::edge::bindings::{changes, Ctx, Internal, Param, SYNC_QUEUE};
use crate::edge::connect::confirm::{self, Confirming, Held};
use crate::edge::enumerate::{self, Access, Target};
use crate::edge::platform;
use crate::edge::providers::github_client;
use crate::edge::providers::outbound::CallError;
use crate::github::setup::{
    parse_params, Ownership, Refusal, SetupAction, SetupOutcome, SetupParams,
};
use crate::messages::SyncMessage;
use crate::provider::Provider;
use crate::sql;
use serde::{Deserialize, Serialize};

const GITHUB: &str = "github";

#[derive(Serialize)]
pub struct ConnectAnswer {
    pub install_url: String,
    pub expires_at: String,
}

/// What `POST /v1/connect/github` keeps in KV under the state. Strict: an OAuth state's
/// record (which has more fields) is not one.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingState {
    tenant: String,
    technician: String,
}

/// Issues a state token for the principal and remembers `record` (JSON, server-side only) under
/// it in KV for the token's lifetime. Returns the token and its claims.
pub(in crate::edge) async fn issue_state(
    ctx: &Ctx,
    principal: &Principal,
    record: &impl Serialize,
) -> Result<(String, StateClaims), Problem> {
    let key = ctx.secret("STATE_SECRET")?;
    let nonce = platform::random_bytes::<16>().map_err(Internal)?;
    let (token, claims) = state_token::issue(
        key.expose().as_bytes(),
        &principal.tenant,
        &principal.technician,
        nonce,
        ctx.now,
    );
    let record = serde_json::to_string(record).map_err(|e| Internal::new("state JSON", e))?;
    ctx.kv_put(&claims.kv_key(), &record, STATE_TTL_SECS as u64)
        .await?;
    Ok((token, claims))
}

/// A callback's state: signature and expiry (pure), then still remembered in KV (not spent, not
/// aged out). Returns the claims and the record stored with it.
pub(in crate::edge) async fn verified_state(
    ctx: &Ctx,
    state: &str,
) -> Result<(StateClaims, String), Refusal> {
    let key = ctx.secret("STATE_SECRET").map_err(problem_refusal)?;
    let claims =
        state_token::verify(key.expose().as_bytes(), state, ctx.now).map_err(|e| match e {
            StateError::Expired => Refusal::StateExpired,
            StateError::Malformed | StateError::BadSignature => Refusal::StateInvalid,
        })?;
    match ctx.kv_get(&claims.kv_key()).await.map_err(internal)? {
        Some(record) => Ok((claims, record)),
        // Deleted when spent, or aged out of KV: either way this link cannot be used.
        None => Err(Refusal::StateUsed),
    }
}

/// `POST /v1/connect/github`.
pub async fn start(ctx: &Ctx, principal: &Principal) -> Result<ConnectAnswer, Problem> {
    let pending = PendingState {
        tenant: principal.tenant.clone(),
        technician: principal.technician.clone(),
    };
    let (token, claims) = issue_state(ctx, principal, &pending).await?;
    let mut install_url = crate::config::join(
        &ctx.config.web_url,
        &format!("apps/{}/installations/new", ctx.config.app_slug),
    );
    install_url.query_pairs_mut().append_pair("state", &token);
    Ok(ConnectAnswer {
        install_url: install_url.to_string(),
        expires_at: crate::time::rfc3339(claims.expires_at),
    })
}

/// `GET /github/setup`: every path ends in an outcome; nothing here returns an HTTP error.
pub async fn setup(ctx: &Ctx, query: &[(String, String)]) -> SetupOutcome {
    match setup_flow(ctx, query).await {
        Ok(outcome) => outcome,
        Err(refusal) => SetupOutcome::Refused(refusal),
    }
}

pub(in crate::edge) fn internal(e: Internal) -> Refusal {
    worker::console_error!("setup callback: {}", e.0);
    Refusal::Internal
}

pub(in crate::edge) fn problem_refusal(p: Problem) -> Refusal {
    match p {
        Problem::Misconfigured(name) => {
            worker::console_error!("setup callback: {name} is missing or unusable");
            Refusal::Misconfigured
        }
        _ => Refusal::Internal,
    }
}

fn github_refusal(e: CallError) -> Refusal {
    match e {
        CallError::NotFound => Refusal::InstallationUnknown,
        CallError::Internal(e) => internal(e),
        other => {
            worker::console_warn!("setup callback: GitHub: {other}");
            Refusal::GitHubUnavailable
        }
    }
}

async fn setup_flow(ctx: &Ctx, query: &[(String, String)]) -> Result<SetupOutcome, Refusal> {
    let params = parse_params(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let (claims, record) = verified_state(ctx, &params.state).await?;
    // A GitLab / Azure DevOps state is not a valid state here (nor the reverse: see
    // `oauth_connect`); like any invalid state, it is left alone.
    if serde_json::from_str::<PendingState>(&record).is_err() {
        return Err(Refusal::StateInvalid);
    }
    let installation_id = match params.action {
        SetupAction::Request => {
            // Who asked, when GitHub identified them: the owner's approval is linked by it.
            let requester = match params.usable_code() {
                Some(code) => github_client::requester(ctx, code)
                    .await
                    .unwrap_or_else(|e| {
                        worker::console_warn!("requester of a pending installation unknown: {e}");
                        None
                    }),
                None => None,
            };
            let now = crate::time::rfc3339(ctx.now);
            let record = ctx
                .statement(
                    sql::RECORD_INSTALLATION_REQUEST,
                    &[
                        Param::from(&claims.nonce_hex()),
                        Param::from(&claims.tenant),
                        Param::from(&claims.technician),
                        Param::from(&now),
                        Param::from(&ctx.invocation),
                        Param::from(requester.as_deref()),
                    ],
                )
                .map_err(internal)?;
            spend_state_with(ctx, &claims, vec![record]).await?;
            return Ok(SetupOutcome::Pending);
        }
        SetupAction::Install(id) | SetupAction::Update(id) => id,
    };
    // Spent before anything else: whatever follows, this link is used up (a refusal cannot be
    // retried to probe installation ids, and of two racing callbacks one goes on).
    spend_state_with(ctx, &claims, Vec::new()).await?;
    verify_installation(ctx, &params, installation_id, &claims.tenant).await?;
    let held = Held::GitHub {
        installation_id,
        update: matches!(params.action, SetupAction::Update(_)),
    };
    confirm::hold(ctx, &claims, Provider::GitHub, &held).await
}

/// The install callback's proof that the GitHub user who came back can access the
/// installation: with OAuth during installation (`GITHUB_CLIENT_ID` / `GITHUB_CLIENT_SECRET`) a
/// usable `code` whose user lists it in `GET /user/installations` (checked first, so a spoofed
/// id learns nothing about other installations); without OAuth, refused as misconfigured
/// unless `ALLOW_UNVERIFIED_INSTALLATIONS` is set (development). Then the installation itself:
/// known to GitHub, not another tenant's, not suspended.
async fn verify_installation(
    ctx: &Ctx,
    params: &SetupParams,
    installation_id: u64,
    tenant: &str,
) -> Result<(), Refusal> {
    let oauth = ctx.config.client_id.is_some() && ctx.secret("GITHUB_CLIENT_SECRET").is_ok();
    let proof = params
        .ownership(oauth, ctx.config.allow_unverified_installations)
        .inspect_err(|r| {
            if *r == Refusal::Misconfigured {
                worker::console_error!(
                    "setup callback refused: set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (OAuth during installation) to prove installation ownership"
                );
            }
        })?;
    if let Ownership::Code(code) = proof {
        let access = github_client::user_can_access(ctx, code, installation_id)
            .await
            .map_err(|e| match e {
                // A refused or reused code cannot vouch for anyone.
                CallError::Refused(why) => {
                    worker::console_warn!("setup callback: {why}");
                    Refusal::InstallationForbidden
                }
                other => github_refusal(other),
            })?;
        if access != Some(true) {
            return Err(Refusal::InstallationForbidden);
        }
    }
    let jwt = github_client::app_jwt(ctx).await.map_err(problem_refusal)?;
    let installation = github_client::installation(ctx, &jwt, installation_id)
        .await
        .map_err(github_refusal)?;
    ensure_not_claimed(ctx, installation_id, tenant).await?;
    if installation.suspended_at.is_some() {
        return Err(Refusal::InstallationSuspended);
    }
    Ok(())
}

/// Links a confirmed installation (`confirm`): an installation token, the account's display
/// name, then one D1 transaction that spends the pending id and upserts the organization (a
/// reconnect keeps its settings, re-activates it and resumes its paused backup jobs through the
/// dispatcher) and starts a new enumeration run; pages are then applied while the budget allows.
pub(in crate::edge) async fn link_installation(
    ctx: &Ctx,
    confirming: &Confirming<'_>,
    installation_id: u64,
    update: bool,
) -> Result<SetupOutcome, Refusal> {
    // Checked again: it may have been suspended or claimed while the technician confirmed.
    let jwt = github_client::app_jwt(ctx).await.map_err(problem_refusal)?;
    let installation = github_client::installation(ctx, &jwt, installation_id)
        .await
        .map_err(github_refusal)?;
    ensure_not_claimed(ctx, installation_id, confirming.tenant).await?;
    if installation.suspended_at.is_some() {
        return Err(Refusal::InstallationSuspended);
    }
    let token = github_client::installation_token(ctx, &jwt, installation_id)
        .await
        .map_err(github_refusal)?;
    let display_name = match github_client::profile(ctx, &token, &installation.account).await {
        Ok(profile) => profile.name,
        Err(e) => {
            worker::console_warn!(
                "display name of {} unavailable: {e}",
                installation.account.login
            );
            None
        }
    };

    let account = &installation.account;
    let run_id = platform::random_uuid().map_err(|e| internal(Internal(e)))?;
    let new_org_id = platform::random_uuid().map_err(|e| internal(Internal(e)))?;
    let now = crate::time::rfc3339(ctx.now);
    let first_page = crate::github::first_repositories_url(&ctx.config.api_url);
    let nonce = confirming.nonce;
    let mut writes = vec![
        ctx.statement(
            sql::UPSERT_ORG,
            &[
                Param::from(&new_org_id),
                Param::from(confirming.tenant),
                Param::from(account.id as i64),
                Param::from(&account.login),
                Param::from(display_name.as_deref()),
                Param::from(account.avatar_url.as_deref()),
                Param::from(&account.kind),
                Param::from(installation_id as i64),
                Param::from("active"),
                Param::from(confirming.technician),
                Param::from(&now),
                Param::from(nonce),
                Param::from(&ctx.invocation),
            ],
        )
        .map_err(internal)?,
        ctx.statement(
            sql::START_RUN,
            &[
                Param::from(confirming.tenant),
                Param::from(account.id as i64),
                Param::from(&run_id),
                Param::from(first_page.as_str()),
                Param::from(&now),
                Param::from(nonce),
                Param::from(&ctx.invocation),
                Param::from(GITHUB),
            ],
        )
        .map_err(internal)?,
        ctx.statement(
            sql::RESUME_ORG_JOBS_ON_CONNECT,
            &[
                Param::from(confirming.tenant),
                Param::from(account.id as i64),
                Param::from(&now),
                Param::from(nonce),
                Param::from(&ctx.invocation),
                Param::from(GITHUB),
            ],
        )
        .map_err(internal)?,
    ];
    let action = if update { "update" } else { "install" };
    let detail = format!(
        "connected by {} (installation {installation_id}, setup_action={action})",
        confirming.technician
    );
    writes.push(
        ctx.statement(
            sql::RECORD_CONNECT_ACTIVITY,
            &[
                Param::from(confirming.tenant),
                Param::from(account.id as i64),
                Param::from(&detail),
                Param::from(&now),
                Param::from(nonce),
                Param::from(&ctx.invocation),
                Param::from(GITHUB),
            ],
        )
        .map_err(internal)?,
    );
    let results = confirm::spend(ctx, confirming, writes).await?;
    let resumed = changes(&results, 2);
    #[derive(Deserialize)]
    struct OrgId {
        id: String,
    }
    let org_id = results
        .first()
        .and_then(|r| r.results::<OrgId>().ok())
        .and_then(|rows| rows.into_iter().next())
        .map(|row| row.id)
        .ok_or_else(|| internal(Internal("organization upsert returned no id".into())))?;
    if resumed > 0 {
        // A reconnect: the jobs paused by the disconnect are sent by the dispatcher.
        let dispatch = SyncMessage::DispatchV1 {
            org_id: Some(org_id.clone()),
        };
        ctx.send_batch(SYNC_QUEUE, &[dispatch], 0)
            .await
            .map_err(internal)?;
    }

    let target = Target {
        org_id: &org_id,
        run_id: &run_id,
    };
    let mut access = Access::Installation {
        id: installation_id,
        token: &token,
    };
    let progress = enumerate::run(ctx, &mut access, &target, first_page)
        .await
        .map_err(|e| internal(e.into()))?;
    Ok(SetupOutcome::Connected {
        org_id,
        login: account.login.clone(),
        repos: progress.found,
        added: progress.added,
        complete: progress.complete,
    })
}

/// An installation belongs to at most one tenant.
async fn ensure_not_claimed(ctx: &Ctx, installation_id: u64, tenant: &str) -> Result<(), Refusal> {
    #[derive(Deserialize)]
    struct Holder {
        tenant_id: String,
    }
    let holders: Vec<Holder> = ctx
        .rows(
            sql::ORG_BY_INSTALLATION,
            &[Param::from(installation_id as i64)],
        )
        .await
        .map_err(internal)?;
    if holders.iter().any(|h| h.tenant_id != tenant) {
        return Err(Refusal::InstallationClaimed);
    }
    Ok(())
}

/// Spends the state exactly once (D1 primary key) in one transaction with `writes`, which are
/// gated on this invocation having spent it; then forgets it in KV. Returns the writes' results.
pub(in crate::edge) async fn spend_state_with(
    ctx: &Ctx,
    claims: &StateClaims,
    writes: Vec<worker::D1PreparedStatement>,
) -> Result<Vec<worker::D1Result>, Refusal> {
    let results = spend_once(
        ctx,
        &claims.nonce_hex(),
        &claims.tenant,
        claims.expires_at,
        writes,
    )
    .await?;
    if let Err(e) = ctx.kv_delete(&claims.kv_key()).await {
        // Not fatal: D1 already refuses the nonce.
        worker::console_warn!("state KV delete: {}", e.0);
    }
    Ok(results)
}

/// Spends `nonce` exactly once (`consumed_states`' primary key) in one D1 transaction with
/// `writes`, each gated on this invocation having spent it (`sql::spent_here!`). `StateUsed`
/// when another invocation spent it first: then nothing was written. Returns the writes'
/// results.
pub(in crate::edge) async fn spend_once(
    ctx: &Ctx,
    nonce: &str,
    tenant: &str,
    expires_at: i64,
    writes: Vec<worker::D1PreparedStatement>,
) -> Result<Vec<worker::D1Result>, Refusal> {
    let now = crate::time::rfc3339(ctx.now);
    let expires = crate::time::rfc3339(expires_at);
    let consume = ctx
        .statement(
            sql::CONSUME_STATE,
            &[
                Param::from(nonce),
                Param::from(tenant),
                Param::from(&now),
                Param::from(&expires),
                Param::from(&ctx.invocation),
            ],
        )
        .map_err(internal)?;
    let mut results = ctx
        .batch([vec![consume], writes].concat())
        .await
        .map_err(internal)?;
    if changes(&results, 0) == 0 {
        return Err(Refusal::StateUsed);
    }
    results.remove(0);
    Ok(results)
}
