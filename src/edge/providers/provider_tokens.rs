//! GitLab and Azure DevOps OAuth tokens: exchanged, sealed into D1, opened for use and refreshed
//! before they expire.
//!
//! - Sealing: AES-256-GCM with the current `TOKEN_KEYS` key, a fresh random nonce each time, the
//!   connection's id, provider and column as associated data (`token_crypto`).
//! - Use ([`access_token`]): a token within `REFRESH_MARGIN_SECS` of expiry (or refused with a
//!   401) is refreshed first.
//! - Refresh: serialized per connection. The invocation that moves the row's `version` on from
//!   what it read (a compare-and-swap, `CLAIM_REFRESH`) holds a short lease and is the only one
//!   to spend the refresh token; the others wait for the lease to end and read the new tokens.
//!   A refresh token the provider refuses (`invalid_grant`) revokes the connection and
//!   disconnects its orgs, with the reason in their activity log.
//! - Cron ([`refresh_due`], [`reseal_old_keys`]): refreshes connections that would expire
//!   before the next run, and re-seals rows still under an older key so it can be retired.
//!
//! Tokens exist in the clear only in this invocation's memory and in the request that uses them.

use crate::api::problem::Problem;
use crate::auth::credential_origins::Issuer;
use crate::auth::token_crypto::{self, Binding, TokenKeys};
use crate::config::Secret;
use crate::edge::bindings::{changes, Ctx, Internal, Param};
use crate::edge::platform;
use crate::edge::providers::outbound::{call, Auth, CallError};
use crate::oauth::{self, TokenError, TokenGrant};
use crate::provider::Provider;
use crate::sql;
use serde::Deserialize;
use std::time::Duration;
use url::Url;
use worker::{Delay, Method};

/// How long a refresh may hold the row before another invocation may try.
const LEASE_SECS: i64 = 30;
/// How often and how many times a caller waiting on another's refresh looks again (each look
/// is one D1 read of the invocation's budget).
const WAIT_MS: u64 = 400;
const WAIT_ROUNDS: u32 = 12;
/// Connections refreshed / re-sealed per cron run: the hourly cron's upkeep reads each list
/// with one query; a refresh costs `REFRESH_COST` subrequests (claim, token request, store),
/// the re-sealing one batch, and `CRON_RESERVE` stay for the re-sealing pass.
const CRON_REFRESHES: i64 = 10;
const CRON_RESEALS: i64 = 50;
const REFRESH_COST: u32 = 3;
const CRON_RESERVE: u32 = 3;
/// The hourly cron refreshes what would come within the margin before its next run.
const CRON_HORIZON_SECS: i64 = 3600 + oauth::REFRESH_MARGIN_SECS;

pub enum TokenFailure {
    /// The provider refused the refresh token: the connection is revoked, its orgs disconnected.
    Revoked(String),
    /// The provider could not refresh now; try again later.
    Unavailable(String),
    /// A stored token does not decrypt with any key (moved, tampered, or its key is gone).
    Undecryptable(String),
    /// The connection's GitLab instance is no longer configured: nothing is sent to it and the
    /// connection is not refreshed until it is configured again (its orgs show `misconfigured`).
    InstanceNotConfigured(String),
    NotFound,
    Internal(Internal),
}

impl std::fmt::Display for TokenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenFailure::Revoked(why) => write!(f, "authorization revoked: {why}"),
            TokenFailure::Unavailable(why) => write!(f, "token refresh failed: {why}"),
            TokenFailure::Undecryptable(why) => write!(f, "stored credentials unusable: {why}"),
            TokenFailure::InstanceNotConfigured(url) => {
                write!(f, "the GitLab instance {url} is not configured")
            }
            TokenFailure::NotFound => f.write_str("connection not found"),
            TokenFailure::Internal(e) => f.write_str(&e.0),
        }
    }
}

impl From<Internal> for TokenFailure {
    fn from(e: Internal) -> Self {
        TokenFailure::Internal(e)
    }
}

impl From<TokenFailure> for Problem {
    fn from(f: TokenFailure) -> Problem {
        match f {
            TokenFailure::Revoked(why) => Problem::Conflict(format!(
                "the provider revoked this connection's authorization ({why}); its organizations are disconnected. Connect them again to resume"
            )),
            TokenFailure::Unavailable(why) => Problem::Upstream(why),
            TokenFailure::Undecryptable(why) => {
                worker::console_error!("provider tokens: {why}");
                Problem::Internal
            }
            TokenFailure::InstanceNotConfigured(url) => Problem::Conflict(format!(
                "the GitLab instance {url} is no longer configured on this gateway (GITLAB_URL / GITLAB_INSTANCES); nothing was sent to it. An operator has to configure it again"
            )),
            TokenFailure::NotFound => Problem::NotFound,
            TokenFailure::Internal(e) => e.into(),
        }
    }
}

/// The `TOKEN_KEYS` secret, parsed.
pub fn keys(ctx: &Ctx) -> Result<TokenKeys, Problem> {
    let secret = ctx.secret("TOKEN_KEYS")?;
    TokenKeys::parse(secret.expose()).map_err(|e| {
        worker::console_error!("TOKEN_KEYS: {e}");
        Problem::Misconfigured("TOKEN_KEYS".into())
    })
}

/// Where a provider's tokens are exchanged and with which client.
pub struct OAuthClient {
    pub token_url: Url,
    pub client_id: String,
    client_secret: Secret,
    /// Entra wants the scope again on refresh.
    scope: Option<&'static str>,
    /// GitLab: the configured instance the client belongs to (its credentials go nowhere else).
    instance: Option<Url>,
}

impl OAuthClient {
    pub fn issuer(&self) -> Issuer<'_> {
        self.instance
            .as_ref()
            .map_or(Issuer::Microsoft, Issuer::GitLab)
    }
}

/// Why a connection's OAuth client cannot be had.
pub enum ClientError {
    /// A setting is missing or unusable (its name).
    Misconfigured(Problem),
    /// GitLab: the instance is not one the gateway is configured for.
    InstanceNotConfigured,
}

impl From<Problem> for ClientError {
    fn from(p: Problem) -> Self {
        ClientError::Misconfigured(p)
    }
}

/// The OAuth client of `provider`: for GitLab, the application configured for the instance at
/// `base_url` (`GITLAB_URL` / `GITLAB_INSTANCES`), never another instance's.
pub fn client(ctx: &Ctx, provider: Provider, base_url: &Url) -> Result<OAuthClient, ClientError> {
    match provider {
        Provider::GitLab => {
            let instance =
                crate::oauth::gitlab::instance_of(base_url.as_str(), ctx.gitlab_instances()?)
                    .ok_or(ClientError::InstanceNotConfigured)?;
            let client_secret = instance
                .client_secret
                .clone()
                .ok_or_else(|| Problem::Misconfigured("GITLAB_CLIENT_SECRET".into()))?;
            Ok(OAuthClient {
                token_url: crate::oauth::gitlab::token_url(&instance.url),
                client_id: instance.client_id.clone(),
                client_secret,
                scope: None,
                instance: Some(instance.url.clone()),
            })
        }
        Provider::AzureDevOps => Ok(OAuthClient {
            token_url: crate::oauth::azure_devops::token_url(&ctx.config.azure_authority_url),
            client_id: ctx
                .config
                .azure_client_id
                .clone()
                .ok_or_else(|| Problem::Misconfigured("AZURE_CLIENT_ID".into()))?,
            client_secret: ctx.secret("AZURE_CLIENT_SECRET")?,
            scope: Some(crate::oauth::azure_devops::SCOPE),
            instance: None,
        }),
        Provider::GitHub => Err(ClientError::Misconfigured(Problem::Internal)),
    }
}

/// Posts a token request; the answer (a grant or why not) is parsed by `oauth`.
async fn token_request(
    ctx: &Ctx,
    client: &OAuthClient,
    form: &str,
) -> Result<TokenGrant, TokenError> {
    match call(
        ctx,
        Method::Post,
        &client.token_url,
        Auth::TokenRequest(form, client.issuer()),
    )
    .await
    {
        Ok(answer) => oauth::parse_token_response(answer.status, answer.body.as_bytes()),
        Err(CallError::Internal(e)) => Err(TokenError::Unavailable(e.0)),
        Err(e) => Err(TokenError::Unavailable(e.to_string())),
    }
}

/// Exchanges an authorization code (with its PKCE verifier) for tokens.
pub async fn exchange_code(
    ctx: &Ctx,
    client: &OAuthClient,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<TokenGrant, TokenError> {
    let form = oauth::authorization_code_form(
        code,
        redirect_uri,
        &client.client_id,
        client.client_secret.expose(),
        verifier,
        client.scope,
    );
    token_request(ctx, client, &form).await
}

/// A connection's tokens sealed for its row (also what a pending connection holds).
#[derive(serde::Serialize, Deserialize)]
pub struct Sealed {
    pub key_id: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: String,
}

fn binding<'a>(provider: &'a str, connection_id: &'a str, field: &'a str) -> Binding<'a> {
    Binding {
        provider,
        record_id: connection_id,
        field,
    }
}

fn seal_one(
    keys: &TokenKeys,
    provider: &str,
    connection_id: &str,
    field: &str,
    value: &str,
) -> Result<String, Internal> {
    let nonce = platform::random_bytes::<12>().map_err(Internal)?;
    Ok(token_crypto::seal(
        keys,
        nonce,
        &binding(provider, connection_id, field),
        value,
    ))
}

fn seal_pair(
    keys: &TokenKeys,
    provider: &str,
    connection_id: &str,
    access: &str,
    refresh: &str,
) -> Result<(String, String), Internal> {
    Ok((
        seal_one(keys, provider, connection_id, "access_token", access)?,
        seal_one(keys, provider, connection_id, "refresh_token", refresh)?,
    ))
}

/// Seals a fresh grant for the connection `connection_id`. A grant without a refresh token is
/// refused: the connection could not outlive its first access token.
pub fn seal_grant(
    ctx: &Ctx,
    keys: &TokenKeys,
    provider: Provider,
    connection_id: &str,
    grant: &TokenGrant,
) -> Result<Sealed, TokenError> {
    let refresh = grant.refresh_token.as_ref().ok_or_else(|| {
        TokenError::Malformed("the token response carried no refresh token".into())
    })?;
    let (access_token, refresh_token) = seal_pair(
        keys,
        provider.as_str(),
        connection_id,
        grant.access_token.expose(),
        refresh.expose(),
    )
    .map_err(|e| TokenError::Unavailable(e.0))?;
    Ok(Sealed {
        key_id: keys.current_kid().to_string(),
        access_token,
        refresh_token,
        expires_at: crate::time::rfc3339(oauth::expires_at(
            ctx.now,
            grant.expires_in,
            default_lifetime(provider),
        )),
    })
}

/// The access token of a grant sealed for `connection_id` (a held connection's, on confirm).
pub fn open_sealed(
    keys: &TokenKeys,
    provider: Provider,
    connection_id: &str,
    sealed: &Sealed,
) -> Result<Secret, String> {
    token_crypto::open(
        keys,
        &binding(provider.as_str(), connection_id, "access_token"),
        &sealed.access_token,
    )
    .map(Secret::new)
    .map_err(|e| format!("held access token of {connection_id}: {e}"))
}

fn default_lifetime(provider: Provider) -> i64 {
    match provider {
        Provider::AzureDevOps => crate::oauth::azure_devops::ACCESS_TOKEN_SECS,
        _ => crate::oauth::gitlab::ACCESS_TOKEN_SECS,
    }
}

#[derive(Deserialize)]
struct Row {
    id: String,
    provider: String,
    base_url: String,
    status: String,
    access_token: String,
    refresh_token: String,
    expires_at: String,
    version: i64,
    lease_until: Option<String>,
}

impl Row {
    fn provider(&self) -> Result<Provider, Internal> {
        Provider::from_db(&self.provider)
            .filter(|p| *p != Provider::GitHub)
            .ok_or_else(|| {
                Internal(format!(
                    "connection {} has provider {}",
                    self.id, self.provider
                ))
            })
    }

    fn open(&self, keys: &TokenKeys, field: &str) -> Result<Secret, TokenFailure> {
        let envelope = match field {
            "access_token" => &self.access_token,
            _ => &self.refresh_token,
        };
        token_crypto::open(keys, &binding(&self.provider, &self.id, field), envelope)
            .map(Secret::new)
            .map_err(|e| {
                TokenFailure::Undecryptable(format!("{field} of connection {}: {e}", self.id))
            })
    }
}

async fn load(ctx: &Ctx, connection_id: &str) -> Result<Row, TokenFailure> {
    let rows: Vec<Row> = ctx
        .rows(sql::CONNECTION, &[Param::from(connection_id)])
        .await?;
    rows.into_iter().next().ok_or(TokenFailure::NotFound)
}

fn seconds(rfc3339: &str) -> i64 {
    crate::time::parse_rfc3339(rfc3339).unwrap_or(0)
}

/// A connection's access token and who issued it: the GitLab instance (its `base_url`), or
/// Microsoft. The token is only ever sent where `credential_origins` allows for that issuer.
pub struct ConnectionToken {
    pub token: Secret,
    /// The connection's `base_url`: the GitLab instance, or the Azure DevOps API base.
    pub base_url: Url,
}

/// A usable access token of the connection, refreshed first when it is about to expire, or
/// when it is `refused` (the token the provider just answered 401 to: if the row holds another
/// one, someone refreshed meanwhile and that one is used). A GitLab connection whose instance
/// is no longer configured gets nothing (`InstanceNotConfigured`).
pub async fn access_token(
    ctx: &Ctx,
    connection_id: &str,
    refused: Option<&Secret>,
) -> Result<ConnectionToken, TokenFailure> {
    let keys = keys(ctx).map_err(|p| TokenFailure::Internal(Internal(p.detail())))?;
    for _ in 0..WAIT_ROUNDS {
        let row = load(ctx, connection_id).await?;
        if row.status != "active" {
            return Err(TokenFailure::Revoked(
                "the connection was revoked earlier".into(),
            ));
        }
        let base_url =
            Url::parse(&row.base_url).map_err(|e| Internal::new("connection base URL", e))?;
        if row.provider()? == Provider::GitLab {
            let instances = ctx
                .gitlab_instances()
                .map_err(|p| TokenFailure::Internal(Internal(p.detail())))?;
            if crate::oauth::gitlab::instance_of(&row.base_url, instances).is_none() {
                return Err(TokenFailure::InstanceNotConfigured(row.base_url));
            }
        }
        let now = platform::now();
        let current = row.open(&keys, "access_token")?;
        let stale = refused.is_some_and(|r| r.expose() == current.expose());
        if !stale && !oauth::needs_refresh(seconds(&row.expires_at), now) {
            return Ok(ConnectionToken {
                token: current,
                base_url,
            });
        }
        // A refresh in progress elsewhere: wait for its tokens.
        if row.lease_until.as_deref().is_some_and(|l| seconds(l) > now) {
            Delay::from(Duration::from_millis(WAIT_MS)).await;
            continue;
        }
        match refresh(ctx, &keys, &row, now).await? {
            Some(token) => return Ok(ConnectionToken { token, base_url }),
            // Another invocation claimed it first.
            None => Delay::from(Duration::from_millis(WAIT_MS)).await,
        }
    }
    Err(TokenFailure::Unavailable(
        "another refresh of this connection did not finish in time".into(),
    ))
}

/// Claims the row (compare-and-swap on `version`), spends the refresh token and stores the new
/// pair. `None` when another invocation holds the claim.
async fn refresh(
    ctx: &Ctx,
    keys: &TokenKeys,
    row: &Row,
    now: i64,
) -> Result<Option<Secret>, TokenFailure> {
    #[derive(Deserialize)]
    struct Claimed {
        version: i64,
    }
    let provider = row.provider()?;
    // Everything that can fail before the refresh token is spent, before the claim.
    let base_url =
        Url::parse(&row.base_url).map_err(|e| Internal::new("connection base URL", e))?;
    let client = client(ctx, provider, &base_url).map_err(|e| match e {
        ClientError::InstanceNotConfigured => {
            TokenFailure::InstanceNotConfigured(row.base_url.clone())
        }
        ClientError::Misconfigured(p) => TokenFailure::Internal(Internal(p.detail())),
    })?;
    let stamp = crate::time::rfc3339(now);
    let claimed: Vec<Claimed> = ctx
        .rows(
            sql::CLAIM_REFRESH,
            &[
                Param::from(&row.id),
                Param::from(row.version),
                Param::from(&crate::time::rfc3339(now + LEASE_SECS)),
                Param::from(&stamp),
            ],
        )
        .await?;
    let Some(claimed) = claimed.into_iter().next() else {
        return Ok(None);
    };
    let stamp = stamp.as_str();
    let release = |why: String| async move {
        let released = ctx
            .run(
                sql::RELEASE_REFRESH,
                &[
                    Param::from(&row.id),
                    Param::from(claimed.version),
                    Param::from(&why),
                    Param::from(stamp),
                ],
            )
            .await;
        if let Err(e) = released {
            worker::console_warn!("connection {}: lease not released: {}", row.id, e.0);
        }
        why
    };
    let refresh_token = match row.open(keys, "refresh_token") {
        Ok(token) => token,
        Err(e) => {
            release(e.to_string()).await;
            return Err(e);
        }
    };
    let form = oauth::refresh_form(
        refresh_token.expose(),
        &client.client_id,
        client.client_secret.expose(),
        client.scope,
    );
    match token_request(ctx, &client, &form).await {
        Ok(grant) => {
            let sealed = seal_grant(ctx, keys, provider, &row.id, &grant)
                .map_err(|e| TokenFailure::Unavailable(e.to_string()))?;
            let stored = ctx
                .run(
                    sql::STORE_REFRESHED,
                    &[
                        Param::from(&row.id),
                        Param::from(claimed.version),
                        Param::from(&sealed.key_id),
                        Param::from(&sealed.access_token),
                        Param::from(&sealed.refresh_token),
                        Param::from(&sealed.expires_at),
                        Param::from(stamp),
                    ],
                )
                .await?;
            if stored.meta().ok().flatten().and_then(|m| m.changes) != Some(1) {
                // Cannot happen while the lease holds; the tokens are lost with the claim.
                return Err(TokenFailure::Unavailable(
                    "the refreshed tokens could not be stored".into(),
                ));
            }
            Ok(Some(grant.access_token))
        }
        Err(TokenError::Revoked(why)) => {
            revoke(ctx, &row.id, provider, &why).await?;
            Err(TokenFailure::Revoked(why))
        }
        Err(e) => Err(TokenFailure::Unavailable(release(e.to_string()).await)),
    }
}

/// The provider refused the refresh token: the connection is revoked and each of its orgs
/// disconnected (jobs paused, snapshots kept), with the reason in its activity log.
async fn revoke(
    ctx: &Ctx,
    connection_id: &str,
    provider: Provider,
    why: &str,
) -> Result<(), Internal> {
    let now = crate::time::rfc3339(ctx.now.max(platform::now()));
    let detail = format!(
        "{} refused to refresh the authorization ({why}): organization disconnected, backup jobs paused, snapshots kept. Connect it again to resume",
        provider.name()
    );
    let id = Param::from(connection_id);
    let results = ctx
        .batch(vec![
            ctx.statement(
                sql::REVOKE_CONNECTION,
                &[
                    Param::from(connection_id),
                    Param::from(why),
                    Param::from(&now),
                ],
            )?,
            ctx.statement(
                sql::DISCONNECT_CONNECTION_ORGS,
                &[Param::from(connection_id), Param::from(&now)],
            )?,
            ctx.statement(
                sql::PAUSE_CONNECTION_JOBS,
                &[Param::from(connection_id), Param::from(&now)],
            )?,
            ctx.statement(
                sql::RECORD_REVOKED_ACTIVITY,
                &[id, Param::from(&detail), Param::from(&now)],
            )?,
        ])
        .await?;
    worker::console_warn!(
        "connection {connection_id} revoked by {}: {} orgs disconnected",
        provider.name(),
        changes(&results, 1)
    );
    Ok(())
}

/// Cron: refreshes the connections whose access token would expire before the next run, while
/// the invocation's budget lasts (a refresh costs `REFRESH_COST` subrequests).
pub async fn refresh_due(ctx: &Ctx) -> Result<usize, Internal> {
    let keys = keys(ctx).map_err(|p| Internal(p.detail()))?;
    let known = serde_json::json!(keys.kids().collect::<Vec<_>>()).to_string();
    let due: Vec<Row> = ctx
        .rows(
            sql::CONNECTIONS_DUE,
            &[
                Param::from(&crate::time::rfc3339(ctx.now + CRON_HORIZON_SECS)),
                Param::from(CRON_REFRESHES),
                Param::from(&known),
            ],
        )
        .await?;
    let mut refreshed = 0;
    for row in &due {
        if ctx.budget.remaining() < REFRESH_COST + CRON_RESERVE {
            break; // the next run takes the rest
        }
        match refresh(ctx, &keys, row, platform::now()).await {
            Ok(Some(_)) => refreshed += 1,
            Ok(None) => {}
            Err(e) => worker::console_warn!("connection {} not refreshed: {e}", row.id),
        }
    }
    Ok(refreshed)
}

/// Cron: re-seals connections sealed under an older key with the current one, in one batch (a
/// row written meanwhile keeps its newer version: the compare-and-swap leaves it alone). Rows
/// under a key `TOKEN_KEYS` no longer holds are not picked (they cannot be opened); the same
/// batch tells their orgs, once, that they must be connected again.
pub async fn reseal_old_keys(ctx: &Ctx) -> Result<usize, Internal> {
    let keys = keys(ctx).map_err(|p| Internal(p.detail()))?;
    let known = serde_json::json!(keys.kids().collect::<Vec<_>>()).to_string();
    let old: Vec<Row> = ctx
        .rows(
            sql::CONNECTIONS_TO_RESEAL,
            &[
                Param::from(keys.current_kid()),
                Param::from(CRON_RESEALS),
                Param::from(&known),
            ],
        )
        .await?;
    let now = crate::time::rfc3339(ctx.now);
    let mut statements = vec![ctx.statement(
        sql::RECORD_UNUSABLE_KEY_ACTIVITY,
        &[Param::from(&known), Param::from(&now)],
    )?];
    for row in &old {
        let opened = row
            .open(&keys, "access_token")
            .and_then(|a| row.open(&keys, "refresh_token").map(|r| (a, r)));
        let (access, refresh) = match opened {
            Ok(pair) => pair,
            Err(e) => {
                worker::console_error!("connection {} cannot be re-sealed: {e}", row.id);
                continue;
            }
        };
        let (access, refresh) = seal_pair(
            &keys,
            &row.provider,
            &row.id,
            access.expose(),
            refresh.expose(),
        )?;
        statements.push(ctx.statement(
            sql::RESEAL_CONNECTION,
            &[
                Param::from(&row.id),
                Param::from(row.version),
                Param::from(keys.current_kid()),
                Param::from(&access),
                Param::from(&refresh),
                Param::from(&now),
            ],
        )?);
    }
    let count = statements.len();
    let results = ctx.batch(statements).await?;
    let told = changes(&results, 0);
    if told > 0 {
        worker::console_warn!(
            "{told} orgs must be connected again: their connection is sealed under a key TOKEN_KEYS no longer holds"
        );
    }
    Ok((1..count).map(|i| changes(&results, i) as usize).sum())
}
