//! Connecting GitLab groups and Azure DevOps organizations through OAuth 2.0 (authorization code
//! with PKCE, S256), the counterpart of `connect` for GitHub.
//!
//! `POST /v1/connect/gitlab` `{"base_url"?, "groups"?}` and `POST /v1/connect/azure-devops`
//! `{"organizations"?}` (portal JWT) → `200 {"authorize_url", "expires_at"}`: the same signed,
//! single-use, 10-minute state token as GitHub's, remembered in KV together with the PKCE
//! verifier, the redirect URI, the instance and the chosen groups (nothing of it leaves the
//! gateway but the state and the verifier's S256 challenge).
//!
//! `GET /gitlab/callback` and `GET /azure-devops/callback` `?code&state` (or `?error&state`):
//! 1. the state (signature, expiry, still in KV) and its provider; then it is spent;
//! 2. the code is exchanged with the verifier; the provider checks it against the challenge;
//! 3. who signed in (`/api/v4/user`, the Azure DevOps profile), and the groups / organizations
//!    to link: the chosen ones, or every one they can read;
//! 4. the tokens are sealed for the connection row they will live in, and the whole result is
//!    held (`confirm::hold`: the state spent, nothing linked, no job sent); the browser goes to
//!    `/connect/{gitlab,azure-devops}/confirm?pending=<id>`;
//! 5. the technician who started the flow confirms it (`POST /v1/connect/confirm`): [`link`]
//!    stores the connection, upserts each org (a reconnect keeps its settings and resumes its
//!    paused jobs) and starts its enumeration run, all in one D1 transaction that spends the
//!    pending id; repositories are enumerated while the budget lasts (`enumerate`), the rest
//!    through the sync queue.
//!
//! GitLab instances are configured, never named by the portal: `base_url` must be one of
//! `GITLAB_URL` / `GITLAB_INSTANCES` (normalized scheme, host, port and path), each with its own
//! OAuth application, whose secret goes to that instance only. Entra is asked for
//! `prompt=consent`, so a consent screen is always shown.

use crate::api::problem::Problem;
use crate::api::routes::query_param;
use crate::auth::portal_auth::Principal;
use crate::config::Secret;
use crate::edge::bindings::{changes, Ctx, Internal, Param, SYNC_QUEUE};
use crate::edge::connect::confirm::{self, Confirming, Held};
use crate::edge::connect::github::{
    internal, issue_state, problem_refusal, spend_state_with, verified_state,
};
use crate::edge::enumerate::{self, Access, Target};
use crate::edge::platform;
use crate::edge::providers::outbound::CallError;
use crate::edge::providers::provider_api;
use crate::edge::providers::provider_tokens::{self, ConnectionToken};
use crate::github::setup::{Refusal, SetupOutcome};
use crate::messages::{EnumerateContinuation, SyncMessage, MAX_BATCH_MESSAGES};
use crate::oauth::pkce;
use crate::oauth::{self, TokenError};
use crate::oauth::{azure_devops as azure, gitlab};
use crate::provider::{self, Provider};
use crate::sql;
use serde::{Deserialize, Serialize};
use url::Url;

/// Below this many subrequests left, the callback stops enumerating inline: the remaining orgs
/// start in the background (one `sendBatch` for all of them).
const INLINE_MIN_BUDGET: u32 = 10;

/// What the callback needs from the connect request, kept in KV under the state (never sent).
#[derive(Serialize, Deserialize)]
struct PendingOAuth {
    tenant: String,
    technician: String,
    provider: String,
    /// The GitLab instance, or the Azure DevOps API base.
    base_url: String,
    verifier: String,
    redirect_uri: String,
    /// Groups / organizations the technician chose (empty: every one readable).
    chosen: Vec<String>,
}

#[derive(Serialize)]
pub struct AuthorizeAnswer {
    pub authorize_url: String,
    pub expires_at: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GitLabRequest {
    base_url: Option<String>,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AzureRequest {
    organizations: Option<Vec<String>>,
}

fn request_body<T: serde::de::DeserializeOwned + Default>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    crate::api::problem::require_json(content_type)?;
    serde_json::from_slice(body).map_err(|e| Problem::BadRequest(format!("invalid body: {e}")))
}

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::Unprocessable {
        field: field.into(),
        detail: detail.into(),
    }
}

/// `POST /v1/connect/{gitlab,azure-devops}`.
pub async fn start(
    ctx: &Ctx,
    principal: &Principal,
    provider: Provider,
    origin: &Url,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<AuthorizeAnswer, Problem> {
    let (base_url, chosen) = match provider {
        Provider::GitLab => {
            let request: GitLabRequest = request_body(content_type, body)?;
            let instances = ctx.gitlab_instances()?;
            if instances.is_empty() {
                return Err(Problem::Misconfigured("GITLAB_CLIENT_ID".into()));
            }
            let base = gitlab::configured_instance(request.base_url.as_deref(), instances)
                .map_err(|e| invalid("base_url", e.reason()))?
                .url
                .clone();
            let groups = request.groups.unwrap_or_default();
            if groups.len() > gitlab::MAX_GROUPS {
                return Err(invalid(
                    "groups",
                    format!("at most {} groups", gitlab::MAX_GROUPS),
                ));
            }
            if let Some(bad) = groups.iter().find(|g| g.trim().is_empty() || g.len() > 255) {
                return Err(invalid("groups", format!("not a group path: {bad:?}")));
            }
            (base, groups.iter().map(|g| g.trim().to_string()).collect())
        }
        _ => {
            let request: AzureRequest = request_body(content_type, body)?;
            let organizations = request.organizations.unwrap_or_default();
            if organizations.len() > azure::MAX_ORGANIZATIONS {
                return Err(invalid(
                    "organizations",
                    format!("at most {} organizations", azure::MAX_ORGANIZATIONS),
                ));
            }
            if let Some(bad) = organizations
                .iter()
                .find(|o| !azure::valid_organization_name(o))
            {
                return Err(invalid(
                    "organizations",
                    format!("not an Azure DevOps organization name: {bad:?}"),
                ));
            }
            (ctx.config.azure_devops_api_url.clone(), organizations)
        }
    };
    // Everything the callback will need is checked now, not after the technician signed in.
    let client = provider_tokens::client(ctx, provider, &base_url).map_err(client_problem)?;
    provider_tokens::keys(ctx)?;

    let pkce = pkce::from_random(platform::random_bytes::<32>().map_err(Internal)?);
    let public = ctx.config.public_url.as_ref().unwrap_or(origin);
    let redirect_uri = crate::config::join(public, &format!("{}/callback", provider.slug()));
    let pending = PendingOAuth {
        tenant: principal.tenant.clone(),
        technician: principal.technician.clone(),
        provider: provider.slug().into(),
        base_url: base_url.to_string(),
        verifier: pkce.verifier,
        redirect_uri: redirect_uri.to_string(),
        chosen,
    };
    let (state, claims) = issue_state(ctx, principal, &pending).await?;
    let authorize_url = match provider {
        Provider::GitLab => gitlab::authorize_url(
            &base_url,
            &client.client_id,
            redirect_uri.as_str(),
            &state,
            &pkce.challenge,
        ),
        _ => azure::authorize_url(
            &ctx.config.azure_authority_url,
            &client.client_id,
            redirect_uri.as_str(),
            &state,
            &pkce.challenge,
        ),
    };
    Ok(AuthorizeAnswer {
        authorize_url: authorize_url.to_string(),
        expires_at: crate::time::rfc3339(claims.expires_at),
    })
}

/// `GET /{gitlab,azure-devops}/callback`: every path ends in an outcome.
pub async fn callback(ctx: &Ctx, provider: Provider, query: &[(String, String)]) -> SetupOutcome {
    match callback_flow(ctx, provider, query).await {
        Ok(outcome) => outcome,
        Err(refusal) => SetupOutcome::Refused(refusal),
    }
}

/// A group / organization to link, as the provider describes it.
#[derive(Serialize, Deserialize)]
pub struct Link {
    /// `organizations.account_id`: unique on the provider (see migration 0005).
    account: String,
    login: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
    account_type: String,
    /// The group's API URL, or `{api}/{organization}` (see `Provider::first_page`).
    api_url: String,
}

/// A verified OAuth callback, held for its technician's confirmation (`confirm`): who signed
/// in, what to link, and the tokens already sealed for the connection row they will live in
/// (its id is derived from the tenant, instance and user, so the associated data matches).
#[derive(Serialize, Deserialize)]
pub struct HeldOAuth {
    base_url: String,
    user_id: String,
    user_name: Option<String>,
    links: Vec<Link>,
    sealed: provider_tokens::Sealed,
}

/// A provider client that cannot be had, as the portal is told.
fn client_problem(e: provider_tokens::ClientError) -> Problem {
    match e {
        provider_tokens::ClientError::Misconfigured(p) => p,
        provider_tokens::ClientError::InstanceNotConfigured => {
            invalid("base_url", gitlab::BaseUrlError::NotConfigured.reason())
        }
    }
}

fn provider_refusal(provider: Provider, e: CallError) -> Refusal {
    match e {
        CallError::NotFound => Refusal::GroupNotFound,
        CallError::Internal(e) => internal(e),
        other => {
            worker::console_warn!("{} callback: {other}", provider.name());
            Refusal::ProviderUnavailable
        }
    }
}

async fn links(
    ctx: &Ctx,
    provider: Provider,
    base_url: &Url,
    token: &str,
    chosen: &[String],
) -> Result<(String, Option<String>, Vec<Link>), CallError> {
    match provider {
        Provider::GitLab => {
            let user = provider_api::gitlab_user(ctx, token, base_url).await?;
            let groups = provider_api::gitlab_groups(ctx, token, base_url, chosen).await?;
            let links = groups
                .into_iter()
                .map(|g| {
                    let api_url = gitlab::group_api_url(base_url, g.id);
                    Link {
                        account: api_url.to_string(),
                        login: g.full_path,
                        display_name: Some(g.name),
                        avatar_url: g.avatar_url,
                        account_type: "Group".into(),
                        api_url: api_url.to_string(),
                    }
                })
                .collect();
            Ok((user.id.to_string(), Some(user.username), links))
        }
        _ => {
            let profile = provider_api::azure_profile(ctx, token).await?;
            let accounts =
                provider_api::azure_organizations(ctx, token, &profile.id, chosen).await?;
            let links = accounts
                .into_iter()
                .map(|a| {
                    let api_url = azure::organization_url(base_url, &a.account_name);
                    Link {
                        account: a.account_id,
                        display_name: Some(a.account_name.clone()),
                        login: a.account_name,
                        avatar_url: None,
                        account_type: "Organization".into(),
                        api_url: api_url.to_string(),
                    }
                })
                .collect();
            Ok((profile.id, profile.display_name, links))
        }
    }
}

async fn callback_flow(
    ctx: &Ctx,
    provider: Provider,
    query: &[(String, String)],
) -> Result<SetupOutcome, Refusal> {
    let param = |name: &str| query_param(query, name).filter(|v| !v.is_empty() && v.len() <= 2048);
    let state = param("state").ok_or(Refusal::MissingParameters)?;
    if let Some(why) = oauth::callback_error(query) {
        worker::console_warn!("{} callback: {why}", provider.name());
        return Err(Refusal::AuthorizationDenied);
    }
    let code = param("code").ok_or(Refusal::MissingParameters)?;
    let (claims, record) = verified_state(ctx, state).await?;
    // A GitHub state, or one issued for the other provider, is not a valid state here.
    let pending: PendingOAuth = serde_json::from_str(&record).map_err(|_| Refusal::StateInvalid)?;
    if pending.provider != provider.slug() {
        return Err(Refusal::StateInvalid);
    }
    // Spent before the code is exchanged: of two racing callbacks only one goes on, and a
    // refused one is used up.
    spend_state_with(ctx, &claims, Vec::new()).await?;
    let base_url = Url::parse(&pending.base_url)
        .map_err(|e| internal(Internal::new("pending base URL", e)))?;
    let client = provider_tokens::client(ctx, provider, &base_url).map_err(|e| match e {
        provider_tokens::ClientError::Misconfigured(p) => problem_refusal(p),
        provider_tokens::ClientError::InstanceNotConfigured => Refusal::Misconfigured,
    })?;
    let keys = provider_tokens::keys(ctx).map_err(problem_refusal)?;
    let grant = provider_tokens::exchange_code(
        ctx,
        &client,
        code,
        &pending.redirect_uri,
        &pending.verifier,
    )
    .await
    .map_err(|e| {
        worker::console_warn!("{} code exchange: {e}", provider.name());
        match e {
            TokenError::Revoked(_) | TokenError::Rejected(_) => Refusal::AuthorizationRefused,
            TokenError::Unavailable(_) | TokenError::Malformed(_) => Refusal::ProviderUnavailable,
        }
    })?;
    let token = grant.access_token.expose();
    let (user_id, user_name, links) = links(ctx, provider, &base_url, token, &pending.chosen)
        .await
        .map_err(|e| provider_refusal(provider, e))?;
    if links.is_empty() {
        return Err(Refusal::NothingToConnect);
    }
    let connection_id =
        provider::connection_id(&claims.tenant, provider, base_url.as_str(), &user_id);
    let sealed = provider_tokens::seal_grant(ctx, &keys, provider, &connection_id, &grant)
        .map_err(|e| {
            worker::console_warn!("{} grant unusable: {e}", provider.name());
            Refusal::AuthorizationRefused
        })?;
    // Nothing is linked until the technician who started the flow confirms it.
    let held = Held::OAuth(HeldOAuth {
        base_url: base_url.to_string(),
        user_id,
        user_name,
        links,
        sealed,
    });
    confirm::hold(ctx, &claims, provider, &held).await
}

/// Links a confirmed OAuth connection (`confirm`): one D1 transaction spends the pending id
/// and stores the connection with its sealed tokens, upserts each org (a reconnect keeps its
/// settings and resumes its paused jobs) and starts its enumeration run; repositories are then
/// enumerated while the budget lasts, the rest through the sync queue.
pub(in crate::edge) async fn link(
    ctx: &Ctx,
    confirming: &Confirming<'_>,
    provider: Provider,
    held: HeldOAuth,
) -> Result<SetupOutcome, Refusal> {
    let HeldOAuth {
        base_url,
        user_id,
        user_name,
        links,
        sealed,
    } = held;
    let connection_id = provider::connection_id(confirming.tenant, provider, &base_url, &user_id);
    let keys = provider_tokens::keys(ctx).map_err(problem_refusal)?;
    let token = provider_tokens::open_sealed(&keys, provider, &connection_id, &sealed)
        .map_err(|e| internal(Internal(e)))?;
    let now = crate::time::rfc3339(ctx.now);
    let nonce = confirming.nonce;
    let kind = provider.as_str();
    let mut writes = vec![ctx
        .statement(
            sql::UPSERT_CONNECTION,
            &[
                Param::from(&connection_id),
                Param::from(confirming.tenant),
                Param::from(kind),
                Param::from(&base_url),
                Param::from(&user_id),
                Param::from(user_name.as_deref()),
                Param::from(&sealed.key_id),
                Param::from(&sealed.access_token),
                Param::from(&sealed.refresh_token),
                Param::from(&sealed.expires_at),
                Param::from(confirming.technician),
                Param::from(&now),
                Param::from(nonce),
                Param::from(&ctx.invocation),
            ],
        )
        .map_err(internal)?];
    let mut run_ids = Vec::with_capacity(links.len());
    let mut api_urls = Vec::with_capacity(links.len());
    for link in &links {
        let api_url =
            Url::parse(&link.api_url).map_err(|e| internal(Internal::new("held API URL", e)))?;
        let run_id = platform::random_uuid().map_err(|e| internal(Internal(e)))?;
        let new_org_id = platform::random_uuid().map_err(|e| internal(Internal(e)))?;
        let detail = format!(
            "connected by {} ({} {} {}, authorized as {})",
            confirming.technician,
            provider.name(),
            link.account_type.to_lowercase(),
            link.login,
            user_name.as_deref().unwrap_or(&user_id)
        );
        writes.extend(
            [
                ctx.statement(
                    sql::UPSERT_OAUTH_ORG,
                    &[
                        Param::from(&new_org_id),
                        Param::from(confirming.tenant),
                        Param::from(kind),
                        Param::from(&link.account),
                        Param::from(&link.login),
                        Param::from(link.display_name.as_deref()),
                        Param::from(link.avatar_url.as_deref()),
                        Param::from(&link.account_type),
                        Param::from(api_url.as_str()),
                        Param::from(&connection_id),
                        Param::from(confirming.technician),
                        Param::from(&now),
                        Param::from(nonce),
                        Param::from(&ctx.invocation),
                    ],
                ),
                ctx.statement(
                    sql::START_RUN,
                    &[
                        Param::from(confirming.tenant),
                        Param::from(&link.account),
                        Param::from(&run_id),
                        Param::from(provider.first_page(&api_url).as_str()),
                        Param::from(&now),
                        Param::from(nonce),
                        Param::from(&ctx.invocation),
                        Param::from(kind),
                    ],
                ),
                ctx.statement(
                    sql::RESUME_ORG_JOBS_ON_CONNECT,
                    &[
                        Param::from(confirming.tenant),
                        Param::from(&link.account),
                        Param::from(&now),
                        Param::from(nonce),
                        Param::from(&ctx.invocation),
                        Param::from(kind),
                    ],
                ),
                ctx.statement(
                    sql::RECORD_CONNECT_ACTIVITY,
                    &[
                        Param::from(confirming.tenant),
                        Param::from(&link.account),
                        Param::from(&detail),
                        Param::from(&now),
                        Param::from(nonce),
                        Param::from(&ctx.invocation),
                        Param::from(kind),
                    ],
                ),
            ]
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?,
        );
        run_ids.push(run_id);
        api_urls.push(api_url);
    }
    let results = confirm::spend(ctx, confirming, writes).await?;

    #[derive(Deserialize)]
    struct OrgId {
        id: String,
    }
    // Per org, 4 statements after the connection's: upsert (returns the id), run, resume, log.
    let mut org_ids = Vec::with_capacity(links.len());
    let mut resumed = Vec::new();
    for i in 0..links.len() {
        let at = 1 + 4 * i;
        let id = results
            .get(at)
            .and_then(|r| r.results::<OrgId>().ok())
            .and_then(|rows| rows.into_iter().next())
            .map(|row| row.id)
            .ok_or_else(|| internal(Internal("organization upsert returned no id".into())))?;
        if changes(&results, at + 2) > 0 {
            // A reconnect: the jobs paused by the disconnect are sent by the dispatcher.
            resumed.push(SyncMessage::DispatchV1 {
                org_id: Some(id.clone()),
            });
        }
        org_ids.push(id);
    }
    for chunk in resumed.chunks(MAX_BATCH_MESSAGES) {
        ctx.send_batch(SYNC_QUEUE, chunk, 0)
            .await
            .map_err(internal)?;
    }

    // Enumerate inline while the budget lasts; hand the other orgs to the sync queue at once.
    let (mut repos, mut added, mut complete) = (0, 0, true);
    let mut later = Vec::new();
    for ((api_url, org_id), run_id) in api_urls.iter().zip(&org_ids).zip(&run_ids) {
        if ctx.budget.remaining() < INLINE_MIN_BUDGET {
            later.push(SyncMessage::EnumerateV1(EnumerateContinuation {
                org_id: org_id.clone(),
                run_id: run_id.clone(),
                next_url: provider.first_page(api_url).to_string(),
            }));
            complete = false;
            continue;
        }
        let mut access = Access::Connection {
            provider,
            id: &connection_id,
            token: ConnectionToken {
                token: Secret::new(token.expose().to_string()),
                base_url: Url::parse(&base_url)
                    .map_err(|e| internal(Internal::new("held base URL", e)))?,
            },
            api_url: api_url.clone(),
        };
        let target = Target { org_id, run_id };
        let first_page = access.first_page(ctx);
        let progress = enumerate::run(ctx, &mut access, &target, first_page)
            .await
            .map_err(|e| internal(e.into()))?;
        repos += progress.found;
        added += progress.added;
        complete &= progress.complete;
    }
    for chunk in later.chunks(MAX_BATCH_MESSAGES) {
        ctx.send_batch(SYNC_QUEUE, chunk, 0)
            .await
            .map_err(internal)?;
    }
    Ok(SetupOutcome::ConnectedOrgs {
        orgs: org_ids
            .into_iter()
            .zip(links.into_iter().map(|l| l.login))
            .collect(),
        repos,
        added,
        complete,
    })
}
