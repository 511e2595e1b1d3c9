//! Outbound HTTP to GitHub, GitLab, Microsoft identity and Azure DevOps: one budget unit per
//! attempt, a per-attempt timeout, and retries per `github::retry_policy` (5xx and timeouts back
//! off; 403/429 wait `retry-after` or the rate-limit reset). Short waits are slept inline, long
//! ones handed back to the caller to defer through the queue. Credentials only ever travel in
//! the request that needs them (a header, or the form body of a token request), never in a
//! message, a log line or an error, and only to where they were issued: every call is checked
//! against `credential_origins` before it is sent, and redirects are never followed (a 3xx is
//! a refusal), so no `Location` can carry a credential elsewhere.

use crate::auth::credential_origins::{self, Issuer};
use crate::edge::bindings::{Ctx, Internal};
use crate::github::{self, Retry};
use futures_util::future::{select, Either};
use std::time::Duration;
use url::Url;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

/// One attempt may take this long before it counts as a timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Waits longer than this are not slept inline; the caller defers the work instead.
const MAX_INLINE_WAIT_MS: u64 = 3_000;

pub enum CallError {
    /// 404: the installation, group or organization does not exist (for this credential).
    NotFound,
    /// 401 to a provider bearer token: it expired early or was revoked.
    Unauthorized,
    /// The provider refused to refresh the OAuth connection: it is revoked.
    Revoked(String),
    /// The service keeps failing or rate limiting: try again after `retry_after_secs`.
    Unavailable {
        retry_after_secs: u32,
        detail: String,
    },
    /// An answer we cannot use (401/403/422, bad JSON, a foreign `Link`): not retried.
    Refused(String),
    /// A platform failure (including an exhausted subrequest budget).
    Internal(Internal),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotFound => f.write_str("not found"),
            CallError::Unauthorized => f.write_str("the access token was refused"),
            CallError::Revoked(why) => write!(f, "authorization revoked: {why}"),
            CallError::Unavailable {
                retry_after_secs,
                detail,
            } => write!(f, "{detail} (retry in {retry_after_secs} s)"),
            CallError::Refused(detail) => f.write_str(detail),
            CallError::Internal(e) => f.write_str(&e.0),
        }
    }
}

impl From<Internal> for CallError {
    fn from(e: Internal) -> Self {
        CallError::Internal(e)
    }
}

/// A credential for one request. Never logged, never stored in the clear.
pub enum Auth<'a> {
    /// GitHub: the App's JWT.
    AppJwt(&'a str),
    /// GitHub: an installation token.
    Installation(&'a str),
    /// GitHub: a user-to-server token (from OAuth during installation).
    User(&'a str),
    /// GitHub's OAuth code exchange: a form body carrying the client credentials and the code.
    CodeExchange(&'a str),
    /// GitLab / Azure DevOps: an OAuth access token issued by the instance or by Microsoft.
    Bearer(&'a str, Issuer<'a>),
    /// GitLab / Microsoft token endpoint: a form body with the client credentials and the code
    /// or refresh token. Its 4xx answers are returned (they say why the grant was refused).
    TokenRequest(&'a str, Issuer<'a>),
}

impl Auth<'_> {
    fn issuer(&self) -> Issuer<'_> {
        match self {
            Auth::AppJwt(_) | Auth::Installation(_) | Auth::User(_) | Auth::CodeExchange(_) => {
                Issuer::GitHub
            }
            Auth::Bearer(_, issuer) | Auth::TokenRequest(_, issuer) => *issuer,
        }
    }

    fn is_github(&self) -> bool {
        matches!(self.issuer(), Issuer::GitHub)
    }
}

/// The credential may go to `url` (see `credential_origins`); nothing is sent otherwise.
fn ensure_issued_for(ctx: &Ctx, issuer: Issuer<'_>, url: &Url) -> Result<(), CallError> {
    let gitlab = match issuer {
        Issuer::GitLab(_) => ctx
            .gitlab_instances()
            .map_err(|p| CallError::Refused(format!("GitLab is misconfigured: {}", p.detail())))?,
        _ => &[],
    };
    if credential_origins::allowed(&ctx.config, gitlab, issuer, url) {
        return Ok(());
    }
    worker::console_error!(
        "refused to send a credential to {}{}: it was not issued there",
        service(url),
        url.path()
    );
    Err(CallError::Refused(format!(
        "a credential was not sent to {}: it was not issued there",
        service(url)
    )))
}

pub struct Answer {
    pub status: u16,
    pub body: String,
    pub link: Option<String>,
    /// Azure DevOps' `x-ms-continuationtoken`.
    pub continuation: Option<String>,
}

impl Answer {
    pub fn parse<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, CallError> {
        serde_json::from_str(&self.body)
            .map_err(|e| CallError::Refused(format!("unexpected {what}: {e}")))
    }
}

fn service(url: &Url) -> &str {
    url.host_str().unwrap_or("the upstream")
}

async fn attempt(
    ctx: &Ctx,
    method: &Method,
    url: &Url,
    auth: &Auth<'_>,
) -> Result<worker::Response, Internal> {
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| Internal::new("header", e));
    set("user-agent", github::USER_AGENT)?;
    set("x-onecode-invocation", &ctx.invocation)?;
    if auth.is_github() {
        set("x-github-api-version", github::API_VERSION)?;
    }
    let mut init = RequestInit::new();
    match auth {
        Auth::AppJwt(jwt) => set("authorization", &format!("Bearer {jwt}"))?,
        Auth::Installation(token) => set("authorization", &format!("token {token}"))?,
        Auth::User(token) | Auth::Bearer(token, _) => {
            set("authorization", &format!("Bearer {token}"))?
        }
        Auth::CodeExchange(form) | Auth::TokenRequest(form, _) => {
            set("content-type", "application/x-www-form-urlencoded")?;
            init.with_body(Some(wasm_bindgen::JsValue::from_str(form)));
        }
    }
    // GitHub's OAuth endpoint answers JSON only when asked for plain `application/json`.
    let accept = match auth {
        Auth::AppJwt(_) | Auth::Installation(_) | Auth::User(_) => github::ACCEPT,
        _ => "application/json",
    };
    set("accept", accept)?;
    init.with_method(method.clone()).with_headers(headers);
    match send(ctx, url, init, "a call").await? {
        Some(result) => result.map_err(|e| Internal::new("fetch", e)),
        None => Err(Internal("timeout".into())),
    }
}

/// One request, counted against the budget, that waits at most `ATTEMPT_TIMEOUT` for the
/// answer's head (`None`: it did not come). A redirect is answered to us, never followed with
/// the credential.
async fn send(
    ctx: &Ctx,
    url: &Url,
    mut init: RequestInit,
    what: &str,
) -> Result<Option<worker::Result<worker::Response>>, Internal> {
    init.with_redirect(RequestRedirect::Manual);
    let request =
        Request::new_with_init(url.as_str(), &init).map_err(|e| Internal::new("request", e))?;
    ctx.budget.spend().map_err(|_| {
        Internal(format!(
            "subrequest budget exhausted before {what} to {}",
            service(url)
        ))
    })?;
    let fetch = Fetch::Request(request);
    let sent = fetch.send();
    let timeout = Delay::from(ATTEMPT_TIMEOUT);
    futures_util::pin_mut!(sent);
    Ok(match select(sent, timeout).await {
        Either::Left((result, _)) => Some(result),
        Either::Right(_) => None,
    })
}

pub async fn call(
    ctx: &Ctx,
    method: Method,
    url: &Url,
    auth: Auth<'_>,
) -> Result<Answer, CallError> {
    ensure_issued_for(ctx, auth.issuer(), url)?;
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
                    worker::console_warn!(
                        "{} {} {}: {}",
                        service(url),
                        method.to_string(),
                        url.path(),
                        e.0
                    );
                    (0, None, None, None, None)
                }
            };
        let mut cut_off = false;
        // A token endpoint's refusal is an answer: its body says why.
        let refused_grant =
            matches!(auth, Auth::TokenRequest(..)) && (400..500).contains(&status) && status != 429;
        if let Some(mut response) =
            response.filter(|_| (200..300).contains(&status) || refused_grant)
        {
            let get = |n: &str| response.headers().get(n).ok().flatten();
            let (link, continuation) = (
                get("link"),
                get(crate::oauth::azure_devops::CONTINUATION_HEADER),
            );
            match response.text().await {
                Ok(body) => {
                    return Ok(Answer {
                        status,
                        body,
                        link,
                        continuation,
                    })
                }
                Err(e) => {
                    worker::console_warn!(
                        "{} {} {}: the body was cut off: {e}",
                        service(url),
                        method.to_string(),
                        url.path()
                    );
                    cut_off = true;
                }
            }
        }
        // A body cut off mid-way (the connection dropped) is a failed attempt, like a lost
        // connection: retried, and in the end unavailable, never an internal error.
        let status = if cut_off { 0 } else { status };
        if (300..400).contains(&status) {
            return Err(CallError::Refused(format!(
                "{} answered {status} (a redirect, not followed) to {}",
                service(url),
                url.path()
            )));
        }
        if status == 404 {
            return Err(CallError::NotFound);
        }
        if status == 401 && matches!(auth, Auth::Bearer(..)) {
            return Err(CallError::Unauthorized);
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
                return Err(CallError::Unavailable {
                    retry_after_secs: ms.div_ceil(1000).max(1) as u32,
                    detail: format!("{} answered {status} to {}", service(url), url.path()),
                })
            }
            Retry::GiveUp if status == 0 || status >= 500 => {
                return Err(CallError::Unavailable {
                    retry_after_secs: 30,
                    detail: format!("{} failed {tries} times on {}", service(url), url.path()),
                })
            }
            Retry::GiveUp => {
                return Err(CallError::Refused(format!(
                    "{} answered {status} to {}",
                    service(url),
                    url.path()
                )))
            }
        }
    }
}

/// A git smart-HTTP request (`info/refs` or `git-upload-pack`) with its `Authorization` value
/// (`Basic …` or `Bearer …`) issued by `issuer`: the same origin check, budget and per-attempt
/// timeout for the answer's head as `call`, no redirect followed, one attempt (the backup job is
/// retried by its queue). The answer's body is left to stream.
pub async fn git(
    ctx: &Ctx,
    url: &Url,
    authorization: &str,
    issuer: Issuer<'_>,
    request_body: Option<&[u8]>,
) -> Result<worker::Response, CallError> {
    ensure_issued_for(ctx, issuer, url)?;
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| Internal::new("header", e));
    set(
        "user-agent",
        &format!("git/2.0 ({})", crate::backup::request::AGENT),
    )?;
    set("x-onecode-invocation", &ctx.invocation)?;
    set("authorization", authorization)?;
    let mut init = RequestInit::new();
    let method = match request_body {
        Some(body) => {
            set("content-type", "application/x-git-upload-pack-request")?;
            set("accept", "application/x-git-upload-pack-result")?;
            init.with_body(Some(js_sys::Uint8Array::from(body).into()));
            Method::Post
        }
        None => Method::Get,
    };
    init.with_method(method).with_headers(headers);
    let response = match send(ctx, url, init, "a git call").await? {
        Some(result) => result.map_err(|e| CallError::Unavailable {
            retry_after_secs: 30,
            detail: format!("{}: {e}", service(url)),
        })?,
        None => {
            return Err(CallError::Unavailable {
                retry_after_secs: 30,
                detail: format!("{} did not answer in time", service(url)),
            })
        }
    };
    match response.status_code() {
        200 => Ok(response),
        401 | 403 => Err(CallError::Unauthorized),
        404 => Err(CallError::NotFound),
        status if (300..400).contains(&status) => Err(CallError::Refused(format!(
            "{} answered {status} (a redirect, not followed) to {}",
            service(url),
            url.path()
        ))),
        status if status == 429 || status >= 500 => Err(CallError::Unavailable {
            retry_after_secs: 30,
            detail: format!("{} answered {status} to {}", service(url), url.path()),
        }),
        status => Err(CallError::Refused(format!(
            "{} answered {status} to {}",
            service(url),
            url.path()
        ))),
    }
}
