//! Connections complete only for the technician who started them (issue #13).
//!
//! A callback (GitHub's install callback, the GitLab and Azure DevOps OAuth callbacks) spends its
//! state, verifies what it can, then [`hold`]s the result instead of linking it: one
//! `pending_connections` row, written only by the invocation that spent the state, holding what linking needs (the
//! installation id; or the account, the chosen groups / organizations and the tokens sealed
//! for their connection row). Nothing in it is visible and no job is sent. The browser goes to
//! `{PORTAL_URL}/connect/{provider}/confirm?pending=<id>` (or the gateway's own confirm page).
//!
//! `POST /v1/connect/confirm` `{"pending": "<id>"}` (portal JWT) → [`confirm`]:
//! - the tenant and technician of the JWT must be the ones who started the flow; anyone else
//!   gets 404 and the pending connection is dropped (the flow was completed in someone else's
//!   browser: nobody gets it);
//! - past its 10 minutes: 410, and it is dropped;
//! - otherwise the provider's `link` runs: its writes are gated on spending `confirm:<id>`
//!   once (`consumed_states`), in one transaction that also deletes the row, so a replayed or
//!   concurrent confirmation links nothing twice (the second answers 404). The answer is what
//!   the done page shows: `{provider, org_ids, org, orgs, repos, added, complete, done_url}`.
//!
//! A confirmation that fails before its transaction (GitHub or GitLab unavailable) leaves the
//! pending connection in place, so the technician can try again within the 10 minutes.

use crate::api::problem::Problem;
use crate::auth::portal_auth::Principal;
use crate::auth::state_token::{StateClaims, STATE_TTL_SECS};
use crate::edge::bindings::{changes, Ctx, Internal, Param};
use crate::edge::connect::github::{self as connect, internal};
use crate::edge::connect::oauth::{self as oauth_connect, HeldOAuth};
use crate::edge::platform;
use crate::github::setup::{confirm_answer, ConfirmAnswer, Refusal, SetupOutcome};
use crate::provider::Provider;
use crate::sql;
use serde::{Deserialize, Serialize};

/// What a confirmation links, kept in `pending_connections.detail`. Versioned, like queue
/// messages: a row written before a deploy still decodes after it.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Held {
    #[serde(rename = "github.v1")]
    GitHub { installation_id: u64, update: bool },
    #[serde(rename = "oauth.v1")]
    OAuth(HeldOAuth),
}

/// The pending connection being confirmed. `nonce` (`confirm:<id>`) is what the linking writes
/// are gated on (see `connect::spend_once`): spent once, like a state.
pub struct Confirming<'a> {
    pub id: &'a str,
    pub nonce: &'a str,
    pub tenant: &'a str,
    pub technician: &'a str,
    pub expires_at: i64,
}

/// Holds a verified callback for its technician: records the pending connection, gated on
/// this invocation having spent the callback's state (see `connect::spend_state_with`).
pub async fn hold(
    ctx: &Ctx,
    claims: &StateClaims,
    provider: Provider,
    held: &Held,
) -> Result<SetupOutcome, Refusal> {
    let id = hex::encode(platform::random_bytes::<16>().map_err(|e| internal(Internal(e)))?);
    let detail =
        serde_json::to_string(held).map_err(|e| internal(Internal::new("pending JSON", e)))?;
    let record = ctx
        .statement(
            sql::INSERT_PENDING_CONNECTION,
            &[
                Param::from(&id),
                Param::from(&claims.tenant),
                Param::from(&claims.technician),
                Param::from(provider.as_str()),
                Param::from(&detail),
                Param::from(&crate::time::rfc3339(ctx.now)),
                Param::from(&crate::time::rfc3339(ctx.now + STATE_TTL_SECS)),
                Param::from(&claims.nonce_hex()),
                Param::from(&ctx.invocation),
            ],
        )
        .map_err(internal)?;
    let results = ctx.batch(vec![record]).await.map_err(internal)?;
    if changes(&results, 0) != 1 {
        // This invocation did not spend the state: nothing may be held for it.
        return Err(Refusal::StateUsed);
    }
    Ok(SetupOutcome::AwaitingConfirmation(id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    pending: String,
}

#[derive(Deserialize)]
struct PendingRow {
    id: String,
    tenant_id: String,
    technician_id: String,
    provider: String,
    detail: String,
    expires_at: String,
}

/// A pending id as `hold` makes them: 32 lower-case hex digits.
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `POST /v1/connect/confirm`.
pub async fn confirm(
    ctx: &Ctx,
    principal: &Principal,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<ConfirmAnswer, Problem> {
    crate::api::problem::require_json(content_type)?;
    let request: ConfirmRequest = serde_json::from_slice(body)
        .map_err(|e| Problem::BadRequest(format!("invalid body: {e}")))?;
    if !valid_id(&request.pending) {
        return Err(Problem::NotFound);
    }
    let rows: Vec<PendingRow> = ctx
        .rows(sql::PENDING_CONNECTION, &[Param::from(&request.pending)])
        .await?;
    let row = rows.into_iter().next().ok_or(Problem::NotFound)?;
    if row.tenant_id != principal.tenant || row.technician_id != principal.technician {
        // Completed in someone else's browser, or shared: nobody gets it now.
        worker::console_warn!(
            "pending connection {} confirmed by another technician or tenant: dropped",
            row.id
        );
        ctx.run(sql::DELETE_PENDING_CONNECTION, &[Param::from(&row.id)])
            .await?;
        return Err(Problem::NotFound);
    }
    let expires_at = crate::time::parse_rfc3339(&row.expires_at).unwrap_or(0);
    if expires_at <= ctx.now {
        ctx.run(sql::DELETE_PENDING_CONNECTION, &[Param::from(&row.id)])
            .await?;
        return Err(Problem::Gone(
            "this connection was not confirmed within 10 minutes; nothing was linked. Start again from the portal".into(),
        ));
    }
    let provider = Provider::from_db(&row.provider)
        .ok_or_else(|| Internal(format!("pending connection with provider {}", row.provider)))?;
    let held: Held = serde_json::from_str(&row.detail)
        .map_err(|e| Internal::new("pending connection detail", e))?;
    let nonce = format!("confirm:{}", row.id);
    let confirming = Confirming {
        id: &row.id,
        nonce: &nonce,
        tenant: &row.tenant_id,
        technician: &row.technician_id,
        expires_at,
    };
    let outcome = match held {
        Held::GitHub {
            installation_id,
            update,
        } => connect::link_installation(ctx, &confirming, installation_id, update).await,
        Held::OAuth(held) => oauth_connect::link(ctx, &confirming, provider, held).await,
    }
    .map_err(refusal_problem)?;
    confirm_answer(ctx.config.portal_url.as_ref(), provider, &outcome)
        .ok_or_else(|| Internal("a confirmation linked nothing".into()).into())
}

/// The linking writes are gated on spending the pending id once, and delete its row.
pub async fn spend(
    ctx: &Ctx,
    confirming: &Confirming<'_>,
    mut writes: Vec<worker::D1PreparedStatement>,
) -> Result<Vec<worker::D1Result>, Refusal> {
    writes.push(
        ctx.statement(
            sql::SPEND_PENDING_CONNECTION,
            &[
                Param::from(confirming.id),
                Param::from(confirming.nonce),
                Param::from(&ctx.invocation),
            ],
        )
        .map_err(internal)?,
    );
    let mut results = connect::spend_once(
        ctx,
        confirming.nonce,
        confirming.tenant,
        confirming.expires_at,
        writes,
    )
    .await?;
    results.pop();
    Ok(results)
}

/// A confirmation that could not link, as the portal is told.
fn refusal_problem(refusal: Refusal) -> Problem {
    match refusal {
        // Another confirmation of the same pending connection won.
        Refusal::StateUsed => Problem::NotFound,
        Refusal::GitHubUnavailable | Refusal::ProviderUnavailable => {
            Problem::Upstream(refusal.message().into())
        }
        Refusal::Internal => Problem::Internal,
        Refusal::Misconfigured => Problem::Misconfigured("provider configuration".into()),
        other => Problem::Conflict(format!("{} ({})", other.message(), other.code())),
    }
}
