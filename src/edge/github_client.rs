//! Outbound calls to the GitHub API: App-JWT and installation-token requests with GitHub's
//! headers, a per-attempt timeout, retries per `github::retry_policy` (short waits inline, long
//! ones handed back to the caller to defer through the queue) and one budget unit per attempt.
//! Tokens only ever travel in the `Authorization` header of the request that needs them.

use super::bindings::{Ctx, Internal};
use super::platform;
use crate::app_jwt::{assemble, pkcs8_der_from_pem, AppJwtClaims};
use crate::github::{self, Account, Installation, Profile, RepositoryPage, Retry};
use futures_util::future::{select, Either};
use std::time::Duration;
use url::Url;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

/// One attempt may take this long before it counts as a timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Waits longer than this are not slept inline; the caller defers the work instead.
const MAX_INLINE_WAIT_MS: u64 = 3_000;

pub enum GitHubError {
    /// 404: the installation (or account) does not exist.
    NotFound,
    /// GitHub keeps failing or rate limiting: try again after `retry_after_secs`.
    Unavailable {
        retry_after_secs: u32,
        detail: String,
    },
    /// An answer we cannot use (401/403/422, bad JSON, a foreign `Link`): not retried.
    Refused(String),
    /// A platform failure (including an exhausted subrequest budget).
    Internal(Internal),
}

impl std::fmt::Display for GitHubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitHubError::NotFound => f.write_str("not found on GitHub"),
            GitHubError::Unavailable {
                retry_after_secs,
                detail,
            } => write!(f, "{detail} (retry in {retry_after_secs} s)"),
            GitHubError::Refused(detail) => f.write_str(detail),
            GitHubError::Internal(e) => f.write_str(&e.0),
        }
    }
}

impl From<Internal> for GitHubError {
    fn from(e: Internal) -> Self {
        GitHubError::Internal(e)
    }
}

/// A credential for one request. Never logged, never stored.
pub enum Auth<'a> {
    AppJwt(&'a str),
    Installation(&'a str),
    /// A user-to-server token (from OAuth during installation).
    User(&'a str),
    /// The OAuth code exchange: a form body carrying the client credentials and the code.
    CodeExchange(&'a str),
}

struct Answer {
    body: String,
    link: Option<String>,
}

/// Signs a fresh App JWT with WebCrypto.
pub async fn app_jwt(ctx: &Ctx) -> Result<String, crate::problem::Problem> {
    use crate::problem::Problem;
    let pem = ctx.secret("GITHUB_APP_PRIVATE_KEY")?;
    let der = pkcs8_der_from_pem(pem.expose())
        .map_err(|_| Problem::Misconfigured("GITHUB_APP_PRIVATE_KEY".into()))?;
    let input = AppJwtClaims::new(&ctx.config.app_id, ctx.now).signing_input();
    let signature = platform::sign_rs256(&der, input.as_bytes())
        .await
        .map_err(|e| {
            worker::console_error!("App key rejected by WebCrypto: {e}");
            Problem::Misconfigured("GITHUB_APP_PRIVATE_KEY".into())
        })?;
    Ok(assemble(&input, &signature))
}

async fn attempt(
    ctx: &Ctx,
    method: &Method,
    url: &Url,
    auth: &Auth<'_>,
) -> Result<worker::Response, Internal> {
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| Internal::new("header", e));
    set("x-github-api-version", github::API_VERSION)?;
    set("user-agent", github::USER_AGENT)?;
    set("x-onecode-invocation", &ctx.invocation)?;
    let mut init = RequestInit::new();
    match auth {
        Auth::AppJwt(jwt) => set("authorization", &format!("Bearer {jwt}"))?,
        Auth::Installation(token) => set("authorization", &format!("token {token}"))?,
        Auth::User(token) => set("authorization", &format!("Bearer {token}"))?,
        Auth::CodeExchange(form) => {
            set("content-type", "application/x-www-form-urlencoded")?;
            init.with_body(Some(wasm_bindgen::JsValue::from_str(form)));
        }
    }
    // The OAuth endpoint answers JSON only when asked for plain `application/json`.
    let accept = if matches!(auth, Auth::CodeExchange(_)) {
        "application/json"
    } else {
        github::ACCEPT
    };
    set("accept", accept)?;
    init.with_method(method.clone()).with_headers(headers);
    let request =
        Request::new_with_init(url.as_str(), &init).map_err(|e| Internal::new("request", e))?;
    ctx.budget
        .spend()
        .map_err(|_| Internal("subrequest budget exhausted before a GitHub call".into()))?;
    let fetch = Fetch::Request(request);
    let sent = fetch.send();
    let timeout = Delay::from(ATTEMPT_TIMEOUT);
    futures_util::pin_mut!(sent);
    match select(sent, timeout).await {
        Either::Left((result, _)) => result.map_err(|e| Internal::new("fetch", e)),
        Either::Right(_) => Err(Internal("timeout".into())),
    }
}

async fn call(ctx: &Ctx, method: Method, url: &Url, auth: Auth<'_>) -> Result<Answer, GitHubError> {
    let mut tries = 0u32;
    loop {
        tries += 1;
        let (status, retry_after, remaining, reset, response) =
            match attempt(ctx, &method, url, &auth).await {
                Ok(r) => {
                    let h = r.headers();
                    let get = |n: &str| h.get(n).ok().flatten();
                    (
                        r.status_code(),
                        get("retry-after"),
                        get("x-ratelimit-remaining"),
                        get("x-ratelimit-reset"),
                        Some(r),
                    )
                }
                Err(e) if ctx.budget.remaining() == 0 => return Err(e.into()),
                Err(e) => {
                    worker::console_warn!("GitHub {} {}: {}", method.to_string(), url.path(), e.0);
                    (0, None, None, None, None)
                }
            };
        if let Some(mut response) = response.filter(|_| (200..300).contains(&status)) {
            let link = response.headers().get("link").ok().flatten();
            let body = response
                .text()
                .await
                .map_err(|e| Internal::new("GitHub body", e))?;
            return Ok(Answer { body, link });
        }
        if status == 404 {
            return Err(GitHubError::NotFound);
        }
        let failed = github::FailedResponse {
            status,
            retry_after: retry_after.as_deref(),
            ratelimit_remaining: remaining.as_deref(),
            ratelimit_reset: reset.as_deref(),
        };
        match github::retry_policy(&failed, tries, ctx.now) {
            Retry::After(ms) if ms <= MAX_INLINE_WAIT_MS && ctx.budget.remaining() > 0 => {
                Delay::from(Duration::from_millis(ms)).await;
            }
            Retry::After(ms) => {
                return Err(GitHubError::Unavailable {
                    retry_after_secs: ms.div_ceil(1000).max(1) as u32,
                    detail: format!("GitHub answered {status} to {}", url.path()),
                })
            }
            Retry::GiveUp if status == 0 || status >= 500 => {
                return Err(GitHubError::Unavailable {
                    retry_after_secs: 30,
                    detail: format!("GitHub failed {tries} times on {}", url.path()),
                })
            }
            Retry::GiveUp => {
                return Err(GitHubError::Refused(format!(
                    "GitHub answered {status} to {}",
                    url.path()
                )))
            }
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, GitHubError> {
    serde_json::from_str(&answer.body)
        .map_err(|e| GitHubError::Refused(format!("unexpected {what} from GitHub: {e}")))
}

/// `GET /app/installations/{id}`: proves the installation exists (the id in the callback can be spoofed).
pub async fn installation(ctx: &Ctx, jwt: &str, id: u64) -> Result<Installation, GitHubError> {
    let answer = call(
        ctx,
        Method::Get,
        &github::installation_url(&ctx.config.api_url, id),
        Auth::AppJwt(jwt),
    )
    .await?;
    let installation: Installation = parse(&answer, "installation")?;
    if installation.id != id {
        return Err(GitHubError::Refused(
            "GitHub answered for another installation".into(),
        ));
    }
    Ok(installation)
}

/// `POST /app/installations/{id}/access_tokens`: a 1-hour token for the work at hand.
pub async fn installation_token(ctx: &Ctx, jwt: &str, id: u64) -> Result<String, GitHubError> {
    let url = github::access_tokens_url(&ctx.config.api_url, id);
    let answer = call(ctx, Method::Post, &url, Auth::AppJwt(jwt)).await?;
    let token: github::AccessToken = parse(&answer, "access token")?;
    Ok(token.token)
}

/// `GET /orgs/{login}` or `/users/{login}`: the display name.
pub async fn profile(ctx: &Ctx, token: &str, account: &Account) -> Result<Profile, GitHubError> {
    let url = github::profile_url(&ctx.config.api_url, account);
    parse(
        &call(ctx, Method::Get, &url, Auth::Installation(token)).await?,
        "profile",
    )
}

/// Exchanges the OAuth `code` GitHub adds when the App requests user authorization during
/// installation for a user token, used for the request at hand and dropped. `None` when OAuth
/// is not configured here (`GITHUB_CLIENT_ID` / `GITHUB_CLIENT_SECRET`).
async fn user_token(ctx: &Ctx, code: &str) -> Result<Option<String>, GitHubError> {
    let (Some(client_id), Ok(secret)) = (&ctx.config.client_id, ctx.secret("GITHUB_CLIENT_SECRET"))
    else {
        return Ok(None);
    };
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("client_secret", secret.expose())
        .append_pair("code", code)
        .finish();
    let url = crate::config::join(&ctx.config.web_url, "login/oauth/access_token");
    let exchanged: github::CodeExchange = parse(
        &call(ctx, Method::Post, &url, Auth::CodeExchange(&form)).await?,
        "OAuth token",
    )?;
    exchanged.access_token.map(Some).ok_or_else(|| {
        GitHubError::Refused(format!(
            "OAuth code refused: {}",
            exchanged.error.unwrap_or_default()
        ))
    })
}

/// The GitHub login of the user who clicked through the install page (`None` without OAuth).
pub async fn requester(ctx: &Ctx, code: &str) -> Result<Option<String>, GitHubError> {
    let Some(token) = user_token(ctx, code).await? else {
        return Ok(None);
    };
    let url = crate::config::join(&ctx.config.api_url, "user");
    let user: github::User = parse(
        &call(ctx, Method::Get, &url, Auth::User(&token)).await?,
        "user",
    )?;
    Ok(Some(user.login))
}

/// Pages of `GET /user/installations` read before giving up (100 installations a page).
const MAX_USER_INSTALLATION_PAGES: u32 = 5;

/// Whether the user who clicked through can access `installation_id` (`GET /user/installations`):
/// the `installation_id` of a callback can be spoofed, the user's own list cannot. `None`
/// without OAuth.
pub async fn user_can_access(
    ctx: &Ctx,
    code: &str,
    installation_id: u64,
) -> Result<Option<bool>, GitHubError> {
    let Some(token) = user_token(ctx, code).await? else {
        return Ok(None);
    };
    let mut url = github::user_installations_url(&ctx.config.api_url);
    for _ in 0..MAX_USER_INSTALLATION_PAGES {
        let answer = call(ctx, Method::Get, &url, Auth::User(&token)).await?;
        let page: github::UserInstallations = parse(&answer, "user installations")?;
        if page.installations.iter().any(|i| i.id == installation_id) {
            return Ok(Some(true));
        }
        match github::next_page(answer.link.as_deref(), &ctx.config.api_url)
            .map_err(|e| GitHubError::Refused(format!("unusable Link header: {e:?}")))?
        {
            Some(next) => url = next,
            None => return Ok(Some(false)),
        }
    }
    Ok(Some(false))
}

/// One page of `GET /installation/repositories`, with the checked `rel="next"` URL.
pub async fn repositories_page(
    ctx: &Ctx,
    token: &str,
    url: &Url,
) -> Result<(RepositoryPage, Option<Url>), GitHubError> {
    let answer = call(ctx, Method::Get, url, Auth::Installation(token)).await?;
    let page: RepositoryPage = parse(&answer, "repository page")?;
    let next = github::next_page(answer.link.as_deref(), &ctx.config.api_url)
        .map_err(|e| GitHubError::Refused(format!("unusable Link header: {e:?}")))?;
    Ok((page, next))
}
