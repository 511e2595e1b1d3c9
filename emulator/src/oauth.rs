//! OAuth 2.0 authorization code grant with PKCE (S256), shared by the GitLab instances and the
//! Microsoft identity platform: one store of clients, codes, tokens and the grants log, and the
//! authorize and token endpoints' flow. Each provider brings its rules and wording through
//! [`Provider`].
//!
//! - Authorize: an unknown `client_id`, an unusable `redirect_uri` or one the client did not
//!   register (`redirect_uris`, matched exactly) shows a 400 error page (no redirect). Otherwise problems redirect back with `error`, `error_description` and `state`:
//!   `response_type` other than `code` → `unsupported_response_type`; scopes the provider
//!   refuses → `invalid_scope`; no `code_challenge`, or a method other than `S256` →
//!   `invalid_request`. A good request redirects with `code` and `state` (echoed verbatim): a
//!   code for the signed-in user (the provider's default user, or the one named by the
//!   emulator's own `emulator_user` parameter) that records the scopes, redirect URI and
//!   challenge and is valid 10 minutes.
//! - Token (`application/x-www-form-urlencoded`; client credentials in the form or as HTTP
//!   Basic): client first (unknown id or wrong secret → `invalid_client`), then the grant.
//!   `authorization_code` needs a code of this client, the same `redirect_uri` and a
//!   `code_verifier` of 43 to 128 unreserved characters whose BASE64URL(SHA-256) is the
//!   challenge. A code is spent by its first successful exchange; refused attempts leave it.
//!   `refresh_token` rotates: the presented refresh token and the access token issued with it
//!   die, a new pair is issued. Every token request lands in the grants log.
//! - Tokens: `{glemu|azemu}-at-<32 hex>` (access, expiring after the client's TTL) and
//!   `{glemu|azemu}-rt-<32 hex>` (refresh, no expiry). Revoking a user deletes its tokens and
//!   codes; expiring backdates its access tokens (refresh tokens stay good).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine;
use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rsa::sha2::{Digest, Sha256};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;

use crate::http::{parse_body, parse_optional_body, percent_decode, Reply, Request};
use crate::ledger::{Family, Kind};
use crate::server::Emulator;
use crate::state::Store;

/// How long an authorization code can be exchanged.
pub const CODE_LIFETIME: Duration = Duration::minutes(10);

/// Whose clients, codes and tokens: one GitLab instance, or the Microsoft identity platform
/// (every tenant segment shares it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Realm {
    GitLab(String),
    Azure,
}

impl Realm {
    /// `provider` in the grants log.
    pub fn provider(&self) -> &'static str {
        match self {
            Realm::GitLab(_) => "gitlab",
            Realm::Azure => "azure",
        }
    }

    fn token_prefix(&self) -> &'static str {
        match self {
            Realm::GitLab(_) => "glemu",
            Realm::Azure => "azemu",
        }
    }
}

/// A provider's OAuth rules and wording, for [`authorize`] and [`token`].
pub trait Provider {
    fn realm(&self) -> Realm;
    /// `instance` in the grants log: the GitLab instance or the Microsoft tenant segment.
    fn instance(&self) -> &str;
    /// Checks the requested scopes; the error is the `invalid_scope` description.
    fn check_scopes(&self, scopes: &[String]) -> Result<(), String>;
    /// The `error_description` of an authorize request redirected back with an error.
    fn describe(&self, problem: &AuthorizeProblem) -> String;
    /// The message of the error page shown instead of redirecting.
    fn page_message(&self, problem: &PageProblem) -> String;
    /// The id of the user who signs in: `requested` (`emulator_user`) or the default user.
    fn sign_in(&self, store: &Store, requested: Option<&str>) -> Result<String, String>;
    /// Whether a grant of these scopes includes a refresh token.
    fn issues_refresh_token(&self, scopes: &[String]) -> bool;
    /// Status, `error` and `error_description` of a refused token request.
    fn grant_error(&self, error: &GrantError) -> (u16, &'static str, String);
    /// The JSON body of a refused token request.
    fn error_body(&self, error: &str, description: &str) -> Value;
    /// The JSON body of a granted token request.
    fn token_body(&self, issued: &Issued) -> Value;
}

/// An authorize request refused with a redirect (besides `invalid_scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeProblem {
    UnsupportedResponseType(String),
    MissingChallenge,
    UnsupportedChallengeMethod(String),
}

impl AuthorizeProblem {
    fn error(&self) -> &'static str {
        match self {
            AuthorizeProblem::UnsupportedResponseType(_) => "unsupported_response_type",
            AuthorizeProblem::MissingChallenge
            | AuthorizeProblem::UnsupportedChallengeMethod(_) => "invalid_request",
        }
    }
}

/// An authorize request that cannot be redirected back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageProblem {
    UnknownClient(String),
    BadRedirectUri,
    /// A redirect URI the client did not register (the URI, the client id).
    UnregisteredRedirectUri(String, String),
}

/// Why a token request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    /// No client with this id (the id).
    UnknownClient(String),
    /// The client's secret is wrong or missing (the client id).
    WrongSecret(String),
    /// A required form parameter is missing.
    Missing(&'static str),
    UnsupportedGrantType,
    /// No such code, or one of another client.
    UnknownCode,
    RedeemedCode,
    ExpiredCode,
    RedirectMismatch,
    /// Missing, malformed or not matching the code's challenge.
    VerifierMismatch,
    /// Unknown, rotated out, revoked or another client's refresh token.
    BadRefreshToken,
}

/// A granted token request.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scopes: Vec<String>,
    /// Unix time of issue.
    pub created_at: i64,
}

/// The user and scopes a code or token was granted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub user_id: String,
    pub scopes: Vec<String>,
}

/// What a bearer token presented to an API turns out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    Live(Holder),
    Expired,
    /// Never issued here, revoked, rotated out, a refresh token or another realm's token.
    Unknown,
}

/// One token request as shown by `GET /_emulator/oauth-grants`.
#[derive(Debug, Clone, Serialize)]
pub struct GrantRecord {
    pub provider: &'static str,
    pub instance: String,
    pub grant_type: Option<String>,
    pub user_id: Option<String>,
    /// The refresh token presented by a `refresh_token` grant.
    pub presented_refresh_token: Option<String>,
    /// `ok` or the `error` answered.
    pub outcome: String,
    pub at: String,
}

#[derive(Debug, Clone)]
struct Client {
    client_id: String,
    client_secret: String,
    access_token_ttl: i64,
    redirect_uris: Vec<String>,
}

/// `PUT .../oauth`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSpec {
    client_id: String,
    client_secret: String,
    #[serde(default)]
    access_token_ttl: Option<i64>,
    /// Where the provider may send the browser back: an authorize request must name one of
    /// these exactly, as GitLab and Entra ID require.
    redirect_uris: Vec<String>,
}

/// `POST .../expire`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpireSpec {
    /// A GitLab user id (number) or a Microsoft user GUID; absent: every user.
    #[serde(default)]
    user_id: Option<Value>,
}

struct Code {
    realm: Realm,
    client_id: String,
    holder: Holder,
    redirect_uri: String,
    challenge: String,
    expires_at: DateTime<Utc>,
    redeemed: bool,
}

enum TokenKind {
    Access {
        expires_at: DateTime<Utc>,
    },
    /// Knows the access token issued with it, which dies when it is used.
    Refresh {
        access: String,
    },
}

struct Token {
    realm: Realm,
    client_id: String,
    holder: Holder,
    kind: TokenKind,
}

/// Clients, codes and tokens of every realm, and the grants log.
#[derive(Default)]
pub struct OAuthStore {
    clients: HashMap<Realm, Client>,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Token>,
    issued: Vec<String>,
    grants: Vec<GrantRecord>,
}

impl OAuthStore {
    /// What `token` is in `realm` at `now`.
    pub fn bearer(&self, realm: &Realm, token: &str, now: DateTime<Utc>) -> Bearer {
        match self.tokens.get(token) {
            Some(Token {
                realm: r,
                holder,
                kind: TokenKind::Access { expires_at },
                ..
            }) if r == realm => {
                if *expires_at > now {
                    Bearer::Live(holder.clone())
                } else {
                    Bearer::Expired
                }
            }
            _ => Bearer::Unknown,
        }
    }

    /// Every access and refresh token ever issued, oldest first.
    pub fn issued_tokens(&self) -> &[String] {
        &self.issued
    }

    pub fn grants(&self) -> &[GrantRecord] {
        &self.grants
    }

    /// Deletes every token and unspent code of a user; returns how many tokens died.
    pub fn revoke_user(&mut self, realm: &Realm, user_id: &str) -> usize {
        let owned = |r: &Realm, h: &Holder| r == realm && h.user_id == user_id;
        self.codes.retain(|_, c| !owned(&c.realm, &c.holder));
        let before = self.tokens.len();
        self.tokens.retain(|_, t| !owned(&t.realm, &t.holder));
        before - self.tokens.len()
    }

    /// Makes the live access tokens of a user (or of everyone) expired at `now`; returns how
    /// many.
    pub fn expire(&mut self, realm: &Realm, user_id: Option<&str>, now: DateTime<Utc>) -> usize {
        let mut count = 0;
        for token in self.tokens.values_mut() {
            if token.realm != *realm || user_id.is_some_and(|u| u != token.holder.user_id) {
                continue;
            }
            if let TokenKind::Access { expires_at } = &mut token.kind {
                if *expires_at > now {
                    *expires_at = now - Duration::seconds(1);
                    count += 1;
                }
            }
        }
        count
    }

    fn client(&self, realm: &Realm, client_id: &str) -> Option<&Client> {
        self.clients
            .get(realm)
            .filter(|c| !client_id.is_empty() && c.client_id == client_id)
    }

    fn issue_code(
        &mut self,
        realm: Realm,
        client_id: &str,
        holder: Holder,
        redirect_uri: &str,
        challenge: &str,
        now: DateTime<Utc>,
    ) -> String {
        let code = random_hex(20);
        self.codes.insert(
            code.clone(),
            Code {
                realm,
                client_id: client_id.to_string(),
                holder,
                redirect_uri: redirect_uri.to_string(),
                challenge: challenge.to_string(),
                expires_at: now + CODE_LIFETIME,
                redeemed: false,
            },
        );
        code
    }

    fn issue(
        &mut self,
        realm: &Realm,
        client: &Client,
        holder: Holder,
        with_refresh: bool,
        now: DateTime<Utc>,
    ) -> Issued {
        let prefix = realm.token_prefix();
        let access_token = format!("{prefix}-at-{}", random_hex(16));
        let refresh_token = with_refresh.then(|| format!("{prefix}-rt-{}", random_hex(16)));
        let token = |kind| Token {
            realm: realm.clone(),
            client_id: client.client_id.clone(),
            holder: holder.clone(),
            kind,
        };
        let expires_at = now + Duration::seconds(client.access_token_ttl);
        self.tokens.insert(
            access_token.clone(),
            token(TokenKind::Access { expires_at }),
        );
        self.issued.push(access_token.clone());
        if let Some(refresh) = &refresh_token {
            let access = access_token.clone();
            self.tokens
                .insert(refresh.clone(), token(TokenKind::Refresh { access }));
            self.issued.push(refresh.clone());
        }
        Issued {
            access_token,
            refresh_token,
            expires_in: client.access_token_ttl,
            scopes: holder.scopes,
            created_at: now.timestamp(),
        }
    }

    /// Answers a token request (client authentication, then the grant).
    fn exchange(
        &mut self,
        provider: &impl Provider,
        form: &TokenForm,
        now: DateTime<Utc>,
    ) -> Result<Issued, GrantError> {
        let realm = provider.realm();
        let (client_id, secret) = form.client();
        let client = self
            .client(&realm, client_id)
            .ok_or_else(|| GrantError::UnknownClient(client_id.to_string()))?
            .clone();
        if client.client_secret != secret {
            return Err(GrantError::WrongSecret(client.client_id));
        }
        let holder = match form.get("grant_type") {
            None => return Err(GrantError::Missing("grant_type")),
            Some("authorization_code") => self.redeem(&realm, &client, form, now)?,
            Some("refresh_token") => self.rotate(&realm, &client, form)?,
            Some(_) => return Err(GrantError::UnsupportedGrantType),
        };
        let with_refresh = provider.issues_refresh_token(&holder.scopes);
        Ok(self.issue(&realm, &client, holder, with_refresh, now))
    }

    /// Spends a code: checks it, its redirect URI and the PKCE verifier.
    fn redeem(
        &mut self,
        realm: &Realm,
        client: &Client,
        form: &TokenForm,
        now: DateTime<Utc>,
    ) -> Result<Holder, GrantError> {
        let code = form.get("code").ok_or(GrantError::Missing("code"))?;
        let record = self
            .codes
            .get_mut(code)
            .filter(|c| c.realm == *realm && c.client_id == client.client_id)
            .ok_or(GrantError::UnknownCode)?;
        if record.redeemed {
            return Err(GrantError::RedeemedCode);
        }
        if record.expires_at <= now {
            return Err(GrantError::ExpiredCode);
        }
        if form.get("redirect_uri") != Some(record.redirect_uri.as_str()) {
            return Err(GrantError::RedirectMismatch);
        }
        if !form
            .get("code_verifier")
            .is_some_and(|v| verifier_matches(v, &record.challenge))
        {
            return Err(GrantError::VerifierMismatch);
        }
        record.redeemed = true;
        Ok(record.holder.clone())
    }

    /// Spends a refresh token and the access token issued with it.
    fn rotate(
        &mut self,
        realm: &Realm,
        client: &Client,
        form: &TokenForm,
    ) -> Result<Holder, GrantError> {
        let presented = form
            .get("refresh_token")
            .ok_or(GrantError::Missing("refresh_token"))?;
        let usable = self.tokens.get(presented).is_some_and(|t| {
            t.realm == *realm
                && t.client_id == client.client_id
                && matches!(t.kind, TokenKind::Refresh { .. })
        });
        let token = usable
            .then(|| self.tokens.remove(presented))
            .flatten()
            .ok_or(GrantError::BadRefreshToken)?;
        if let TokenKind::Refresh { access } = &token.kind {
            self.tokens.remove(access);
        }
        Ok(token.holder)
    }

    /// The user a token request is about (before it changes anything), for the grants log.
    fn presented_user(&self, realm: &Realm, form: &TokenForm) -> Option<String> {
        match form.get("grant_type")? {
            "authorization_code" => self
                .codes
                .get(form.get("code")?)
                .filter(|c| c.realm == *realm)
                .map(|c| c.holder.user_id.clone()),
            "refresh_token" => self
                .tokens
                .get(form.get("refresh_token")?)
                .filter(|t| t.realm == *realm)
                .map(|t| t.holder.user_id.clone()),
            _ => None,
        }
    }
}

/// The parameters of a token request: form body, then query, and HTTP Basic client credentials.
struct TokenForm {
    params: Vec<(String, String)>,
    basic: Option<(String, String)>,
}

impl TokenForm {
    fn parse(request: &Request) -> Self {
        let params = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .chain(url::form_urlencoded::parse(request.query.as_bytes()).into_owned())
            .collect();
        let basic = request
            .header("authorization")
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| decode_base64(encoded.trim()))
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|pair| {
                let (id, secret) = pair.split_once(':')?;
                Some((percent_decode(id), percent_decode(secret)))
            });
        TokenForm { params, basic }
    }

    /// The first non-empty value of a parameter.
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Client id and secret: HTTP Basic when present, else the form's.
    fn client(&self) -> (&str, &str) {
        match &self.basic {
            Some((id, secret)) => (id, secret),
            None => (
                self.get("client_id").unwrap_or(""),
                self.get("client_secret").unwrap_or(""),
            ),
        }
    }
}

/// `GET .../authorize`: redirects back with a code, or with an error.
pub fn authorize(em: &Emulator, provider: &impl Provider, request: &Request) -> Reply {
    let param = |name: &str| request.query_param(name).filter(|v| !v.is_empty());
    let realm = provider.realm();
    let mut store = em.store();
    let client_id = param("client_id").unwrap_or_default();
    let Some(client) = store.provider_oauth.client(&realm, &client_id) else {
        return error_page(&provider.page_message(&PageProblem::UnknownClient(client_id)));
    };
    // The code remembers the redirect URI as sent: the token request must repeat it exactly.
    let redirect_uri = param("redirect_uri").unwrap_or_default();
    let Ok(redirect) = Url::parse(&redirect_uri) else {
        return error_page(&provider.page_message(&PageProblem::BadRedirectUri));
    };
    // Never redirect anywhere the client did not register (the user sees an error page).
    if !client.redirect_uris.contains(&redirect_uri) {
        return error_page(
            &provider.page_message(&PageProblem::UnregisteredRedirectUri(
                redirect_uri,
                client_id,
            )),
        );
    }
    let state = param("state");
    let back = |pairs: &[(&str, &str)]| {
        let mut url = redirect.clone();
        url.query_pairs_mut()
            .extend_pairs(pairs)
            .extend_pairs(state.as_deref().map(|s| ("state", s)));
        Reply::redirect(url.as_str())
    };
    let refuse = |error: &str, description: &str| {
        back(&[("error", error), ("error_description", description)])
    };
    let response_type = param("response_type").unwrap_or_default();
    let scopes: Vec<String> = param("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let refuse_for =
        |problem: AuthorizeProblem| refuse(problem.error(), &provider.describe(&problem));
    if response_type != "code" {
        return refuse_for(AuthorizeProblem::UnsupportedResponseType(response_type));
    }
    if let Err(description) = provider.check_scopes(&scopes) {
        return refuse("invalid_scope", &description);
    }
    let challenge = match (param("code_challenge"), param("code_challenge_method")) {
        (None, _) => return refuse_for(AuthorizeProblem::MissingChallenge),
        (Some(challenge), Some(method)) if method == "S256" => challenge,
        // RFC 7636: an absent method means `plain`.
        (Some(_), method) => {
            let method = method.unwrap_or_else(|| "plain".into());
            return refuse_for(AuthorizeProblem::UnsupportedChallengeMethod(method));
        }
    };
    let user_id = match provider.sign_in(&store, param("emulator_user").as_deref()) {
        Ok(user_id) => user_id,
        Err(message) => return error_page(&message),
    };
    let holder = Holder { user_id, scopes };
    let family = Family::of_realm(&realm);
    let code = store.provider_oauth.issue_code(
        realm,
        &client_id,
        holder,
        &redirect_uri,
        &challenge,
        Utc::now(),
    );
    store.ledger.remember(&code, family, Kind::Code);
    back(&[("code", &code)])
}

/// `POST .../token`: exchanges a code or a refresh token, and logs the grant.
pub fn token(em: &Emulator, provider: &impl Provider, request: &Request) -> Reply {
    let form = TokenForm::parse(request);
    let now = Utc::now();
    let realm = provider.realm();
    let mut guard = em.store();
    let store = &mut *guard;
    let oauth = &mut store.provider_oauth;
    let user_id = oauth.presented_user(&realm, &form);
    let (mut reply, outcome) = match oauth.exchange(provider, &form, now) {
        Ok(issued) => {
            let family = Family::of_realm(&realm);
            let access = &issued.access_token;
            store.ledger.remember(access, family.clone(), Kind::Bearer);
            if let Some(refresh) = &issued.refresh_token {
                store.ledger.remember(refresh, family, Kind::RefreshToken);
            }
            (Reply::json(200, &provider.token_body(&issued)), "ok")
        }
        Err(error) => {
            let (status, code, description) = provider.grant_error(&error);
            let body = provider.error_body(code, &description);
            (Reply::json(status, &body), code)
        }
    };
    let grant_type = form.get("grant_type").map(str::to_string);
    oauth.grants.push(GrantRecord {
        provider: realm.provider(),
        instance: provider.instance().to_string(),
        presented_refresh_token: (grant_type.as_deref() == Some("refresh_token"))
            .then(|| form.get("refresh_token").map(str::to_string))
            .flatten(),
        grant_type,
        user_id,
        outcome: outcome.to_string(),
        at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
    });
    reply.set_header("cache-control", "no-store");
    reply.set_header("pragma", "no-cache");
    reply
}

/// The page a browser sees when an authorize request cannot go back to the client.
pub fn error_page(message: &str) -> Reply {
    let message = html_escape::encode_text(message);
    Reply::html(
        400,
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Sign-in error</title></head>\n\
             <body><h1>An error has occurred</h1>\n<p>{message}</p>\n</body></html>\n"
        ),
    )
}

/// `PUT .../oauth`: configures the realm's OAuth application.
pub fn put_client(
    em: &Emulator,
    request: &Request,
    realm: Realm,
    default_ttl: i64,
) -> Result<Reply, Reply> {
    let spec: ClientSpec = parse_body(request)?;
    let ttl = spec.access_token_ttl.unwrap_or(default_ttl);
    if ttl <= 0 || spec.client_id.is_empty() {
        return Err(Reply::error(
            400,
            "github-emulator: client_id must be non-empty and access_token_ttl positive",
        ));
    }
    if spec.redirect_uris.is_empty() || spec.redirect_uris.iter().any(|u| Url::parse(u).is_err()) {
        return Err(Reply::error(
            400,
            "github-emulator: redirect_uris must list at least one absolute URL",
        ));
    }
    let body = json!({
        "client_id": spec.client_id,
        "access_token_ttl": ttl,
        "redirect_uris": spec.redirect_uris,
    });
    let mut store = em.store();
    let family = Family::of_realm(&realm);
    store
        .ledger
        .remember(&spec.client_secret, family, Kind::ClientSecret);
    store.provider_oauth.clients.insert(
        realm,
        Client {
            client_id: spec.client_id,
            client_secret: spec.client_secret,
            access_token_ttl: ttl,
            redirect_uris: spec.redirect_uris,
        },
    );
    Ok(Reply::json(200, &body))
}

/// `POST .../users/{id}/revoke`.
pub fn revoke(em: &Emulator, realm: &Realm, user_id: &str) -> Reply {
    let revoked = em.store().provider_oauth.revoke_user(realm, user_id);
    Reply::json(200, &json!({ "revoked": revoked }))
}

/// `POST .../expire` with `{"user_id"?}`.
pub fn expire(em: &Emulator, request: &Request, realm: &Realm) -> Result<Reply, Reply> {
    let spec: ExpireSpec = parse_optional_body(request)?;
    let user_id = match spec.user_id {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.to_ascii_lowercase()),
        Some(Value::Number(id)) => Some(id.to_string()),
        Some(other) => {
            return Err(Reply::error(
                400,
                &format!("github-emulator: bad user_id {other}"),
            ))
        }
    };
    let expired = em
        .store()
        .provider_oauth
        .expire(realm, user_id.as_deref(), Utc::now());
    Ok(Reply::json(200, &json!({ "expired": expired })))
}

/// Whether a PKCE `code_verifier` is well-formed and hashes (S256) to `challenge`.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(unreserved)
        && s256_challenge(verifier) == challenge
}

/// The S256 `code_challenge` of a verifier: BASE64URL-NOPAD(SHA-256(verifier)).
pub fn s256_challenge(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

/// Unpadded base64url.
fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

const NO_PAD_INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);

/// Decodes base64 (standard or URL-safe alphabet, padding optional).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let standard = GeneralPurpose::new(&alphabet::STANDARD, NO_PAD_INDIFFERENT);
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| standard.decode(text))
        .ok()
}

/// `bytes` random bytes from the OS RNG as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    random_bytes(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut buf = vec![0u8; count];
    getrandom::getrandom(&mut buf).expect("OS random number generator unavailable");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256_challenge(verifier), challenge);
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches(&verifier[1..], challenge));
        // Right hash, wrong shape: too short, or characters outside the unreserved set.
        assert!(!verifier_matches("abc", &s256_challenge("abc")));
        let spaced = format!("{} x", &verifier[..41]);
        assert!(!verifier_matches(&spaced, &s256_challenge(&spaced)));
        let long = "a".repeat(129);
        assert!(!verifier_matches(&long, &s256_challenge(&long)));
        assert!(verifier_matches(
            &"a".repeat(128),
            &s256_challenge(&"a".repeat(128))
        ));
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode_base64("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_base64("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_base64("Z"), None);
        assert_eq!(decode_base64("Zm9v!"), None);
    }

    #[test]
    fn basic_credentials_win_over_the_form() {
        // "my%20app:s3:cret" with the id form-encoded, as RFC 6749 section 2.3.1 asks.
        let request = Request::new("POST", "/gitlab/com/oauth/token")
            .with_header("Authorization", "Basic bXklMjBhcHA6czM6Y3JldA==")
            .with_body("client_id=other&client_secret=x&grant_type=refresh_token&code=");
        let form = TokenForm::parse(&request);
        assert_eq!(form.client(), ("my app", "s3:cret"));
        assert_eq!(form.get("grant_type"), Some("refresh_token"));
        assert_eq!(form.get("code"), None, "empty values count as missing");
        let plain = TokenForm::parse(&request.clone().with_header("Authorization", "x"));
        assert_eq!(plain.client(), ("my app", "s3:cret"), "first header wins");
        let form =
            TokenForm::parse(&Request::new("POST", "/t").with_body("client_id=a&client_secret=b"));
        assert_eq!(form.client(), ("a", "b"));
    }

    #[test]
    fn tokens_are_prefixed_hex_and_expire_or_die_per_realm() {
        let mut store = OAuthStore::default();
        let client = Client {
            client_id: "c".into(),
            client_secret: "s".into(),
            access_token_ttl: 60,
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
        };
        let realm = Realm::GitLab("com".into());
        let holder = |user: &str| Holder {
            user_id: user.into(),
            scopes: vec!["api".into()],
        };
        let now = Utc::now();
        let a = store.issue(&realm, &client, holder("1"), true, now);
        let b = store.issue(&realm, &client, holder("2"), false, now);
        assert!(a.access_token.starts_with("glemu-at-") && a.access_token.len() == 41);
        let refresh = a.refresh_token.clone().unwrap();
        assert!(
            refresh.starts_with("glemu-rt-") && refresh[9..].bytes().all(|c| c.is_ascii_hexdigit())
        );
        assert_eq!(b.refresh_token, None);
        assert_eq!(
            store.bearer(&realm, &a.access_token, now),
            Bearer::Live(holder("1"))
        );
        assert_eq!(
            store.bearer(&realm, &a.access_token, now + Duration::seconds(60)),
            Bearer::Expired
        );
        assert_eq!(
            store.bearer(&Realm::Azure, &a.access_token, now),
            Bearer::Unknown
        );
        assert_eq!(store.bearer(&realm, &refresh, now), Bearer::Unknown);

        assert_eq!(store.expire(&realm, Some("1"), now), 1);
        assert_eq!(store.bearer(&realm, &a.access_token, now), Bearer::Expired);
        assert_eq!(
            store.bearer(&realm, &b.access_token, now),
            Bearer::Live(holder("2"))
        );
        assert_eq!(store.revoke_user(&realm, "1"), 2);
        assert_eq!(store.bearer(&realm, &a.access_token, now), Bearer::Unknown);
        assert_eq!(
            store.issued_tokens(),
            [a.access_token, refresh, b.access_token]
        );
    }
}
