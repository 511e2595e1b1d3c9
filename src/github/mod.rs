//! The GitHub REST API as the gateway uses it: the few response shapes it reads, the URLs it
//! calls, `Link` pagination and the retry policy for faults and rate limits. Pure: the edge's
//! `github_client` does the fetching and hands responses here.
//!
//! Calls: `GET /app/installations/{id}` and `POST /app/installations/{id}/access_tokens` with the
//! App JWT; `GET /installation/repositories?per_page=100` (following `Link: rel="next"`) and
//! `GET /orgs/{login}` / `GET /users/{login}` with an installation token.

pub mod app_jwt;
pub mod dependency_files;
pub mod setup;
pub mod webhook_events;
pub mod webhook_signature;

use crate::config::join;
use serde::{Deserialize, Serialize};
use url::Url;

pub const ACCEPT: &str = "application/vnd.github+json";
pub const API_VERSION: &str = "2022-11-28";
pub const USER_AGENT: &str = "onecode-edge";
pub const PER_PAGE: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub login: String,
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Installation {
    pub id: u64,
    pub account: Account,
    #[serde(default)]
    pub suspended_at: Option<String>,
}

/// `POST /app/installations/{id}/access_tokens`. The token is used for the work at hand and
/// dropped: never stored, queued or logged.
#[derive(Deserialize)]
pub struct AccessToken {
    pub token: String,
}

/// `POST /login/oauth/access_token`: GitHub answers 200 with either a token or an `error`.
#[derive(Deserialize)]
pub struct CodeExchange {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /user/installations` with a user token: the App's installations the user can access.
#[derive(Deserialize)]
pub struct UserInstallations {
    pub installations: Vec<InstallationId>,
}

#[derive(Deserialize)]
pub struct InstallationId {
    pub id: u64,
}

pub fn user_installations_url(api: &Url) -> Url {
    let mut url = join(api, "user/installations");
    url.set_query(Some(&format!("per_page={PER_PAGE}")));
    url
}

/// `GET /user` with a user token.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub login: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// The repository fields the gateway keeps. Serialized compactly into the JSON array that the
/// D1 page statement reads with `json_each`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Repository {
    pub id: u64,
    pub name: String,
    pub full_name: String,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub clone_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepositoryPage {
    pub total_count: u64,
    pub repositories: Vec<Repository>,
}

pub fn installation_url(api: &Url, installation_id: u64) -> Url {
    join(api, &format!("app/installations/{installation_id}"))
}

pub fn access_tokens_url(api: &Url, installation_id: u64) -> Url {
    join(
        api,
        &format!("app/installations/{installation_id}/access_tokens"),
    )
}

/// GitHub's https clone URL of `owner/repo` under the web origin (`GITHUB_WEB_URL`), for a
/// repository recorded from a payload that carries no `clone_url` (`installation_repositories`
/// events list only ids and names). `None` for a name that is not `owner/repo`.
pub fn clone_url(web: &Url, full_name: &str) -> Option<Url> {
    let (owner, repo) = full_name.split_once('/')?;
    let segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (segment(owner) && segment(repo)).then(|| join(web, &format!("{owner}/{repo}.git")))
}

pub fn first_repositories_url(api: &Url) -> Url {
    let mut url = join(api, "installation/repositories");
    url.set_query(Some(&format!("per_page={PER_PAGE}")));
    url
}

/// `GET /orgs/{login}` for organizations, `GET /users/{login}` for personal accounts.
pub fn profile_url(api: &Url, account: &Account) -> Url {
    let kind = if account.kind == "Organization" {
        "orgs"
    } else {
        "users"
    };
    let mut url = join(api, kind);
    url.path_segments_mut()
        .expect("http base")
        .push(&account.login);
    url
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The header is not a valid RFC 8288 `Link` value.
    Malformed,
    /// `rel="next"` points away from the configured API origin: following it would send an
    /// installation token to another host.
    ForeignOrigin,
}

/// The `rel="next"` target of a `Link` header (RFC 8288, relative targets resolved against the
/// API base), checked to stay on the API's origin. A non-empty header with no parsable link is
/// malformed rather than "no next page": ending early would make a sync believe every later
/// repository was removed.
pub fn next_page(link: Option<&str>, api: &Url) -> Result<Option<Url>, LinkError> {
    let Some(link) = link.filter(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let links = http_link::parse_link_header(link, api).map_err(|_| LinkError::Malformed)?;
    if links.is_empty() {
        return Err(LinkError::Malformed);
    }
    let Some(next) = links
        .into_iter()
        .find(|l| l.rel.eq_ignore_ascii_case("next"))
    else {
        return Ok(None);
    };
    if next.target.origin() != api.origin() {
        return Err(LinkError::ForeignOrigin);
    }
    Ok(Some(next.target))
}

/// What to do after a failed GitHub response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after this many milliseconds.
    After(u64),
    /// Not worth retrying (a 4xx that is not a rate limit, or attempts exhausted).
    GiveUp,
}

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 4;

/// The response facts the retry policy reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailedResponse<'a> {
    pub status: u16,
    pub retry_after: Option<&'a str>,
    pub ratelimit_remaining: Option<&'a str>,
    pub ratelimit_reset: Option<&'a str>,
}

/// The longest wait a rate-limit header is followed for: GitHub's rate-limit windows last an
/// hour. A header asking for longer (or a number too large to compute with) waits an hour.
pub const MAX_WAIT_SECS: u64 = 3600;

/// GitHub's guidance: 5xx → back off and retry; 403/429 with `retry-after` → wait that long;
/// 403/429 with `x-ratelimit-remaining: 0` → wait until `x-ratelimit-reset`; anything else gives
/// up. Header waits are between 1 s and [`MAX_WAIT_SECS`]. `attempt` counts from 1 (the attempt
/// that just failed); `None` status means the request itself failed (network error or timeout)
/// and is treated like a 5xx.
pub fn retry_policy(failed: &FailedResponse<'_>, attempt: u32, now: i64) -> Retry {
    if attempt >= MAX_ATTEMPTS {
        return Retry::GiveUp;
    }
    let backoff = 250u64 << (attempt - 1).min(6);
    match failed.status {
        0 | 500..=599 => Retry::After(backoff),
        403 | 429 => {
            if let Some(secs) = failed
                .retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                return Retry::After(secs.min(MAX_WAIT_SECS) * 1000);
            }
            if failed.ratelimit_remaining.map(str::trim) == Some("0") {
                if let Some(reset) = failed
                    .ratelimit_reset
                    .and_then(|v| v.trim().parse::<i64>().ok())
                {
                    let secs = reset.saturating_sub(now).clamp(1, MAX_WAIT_SECS as i64);
                    return Retry::After(secs as u64 * 1000);
                }
            }
            if failed.status == 429 {
                Retry::After(backoff.max(1000))
            } else {
                Retry::GiveUp
            }
        }
        _ => Retry::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Url {
        Url::parse("http://127.0.0.1:9000").unwrap()
    }

    #[test]
    fn clone_urls_are_derived_only_from_plain_names() {
        let web = Url::parse("https://github.com/").unwrap();
        assert_eq!(
            clone_url(&web, "acme/repo.js").map(|u| u.to_string()),
            Some("https://github.com/acme/repo.js.git".to_string())
        );
        let emulator = Url::parse("http://127.0.0.1:9100").unwrap();
        assert_eq!(
            clone_url(&emulator, "acme/a").map(|u| u.to_string()),
            Some("http://127.0.0.1:9100/acme/a.git".to_string())
        );
        for bad in [
            "acme", "acme/", "/a", "acme/a/b", "acme/..", "ac me/a", "acme/a?x", "acme/a#b",
        ] {
            assert_eq!(clone_url(&web, bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_match_the_github_routes() {
        assert_eq!(
            installation_url(&api(), 42).as_str(),
            "http://127.0.0.1:9000/app/installations/42"
        );
        assert_eq!(
            access_tokens_url(&api(), 42).path(),
            "/app/installations/42/access_tokens"
        );
        assert_eq!(
            first_repositories_url(&api()).as_str(),
            "http://127.0.0.1:9000/installation/repositories?per_page=100"
        );
        let org = Account {
            login: "acme".into(),
            id: 1,
            kind: "Organization".into(),
            avatar_url: None,
        };
        let user = Account {
            kind: "User".into(),
            ..org.clone()
        };
        assert_eq!(profile_url(&api(), &org).path(), "/orgs/acme");
        assert_eq!(profile_url(&api(), &user).path(), "/users/acme");
    }

    #[test]
    fn next_link_is_followed_only_on_the_api_origin() {
        let link = r#"<http://127.0.0.1:9000/installation/repositories?per_page=100&page=2>; rel="next", <http://127.0.0.1:9000/installation/repositories?per_page=100&page=100>; rel="last""#;
        assert_eq!(
            next_page(Some(link), &api()).unwrap().unwrap().as_str(),
            "http://127.0.0.1:9000/installation/repositories?per_page=100&page=2"
        );
        let last = r#"<http://127.0.0.1:9000/installation/repositories?per_page=100&page=1>; rel="first", <http://127.0.0.1:9000/installation/repositories?per_page=100&page=2>; rel="prev""#;
        assert_eq!(next_page(Some(last), &api()), Ok(None));
        assert_eq!(next_page(None, &api()), Ok(None));
        let foreign = r#"<https://evil.example/installation/repositories?page=2>; rel="next""#;
        assert_eq!(
            next_page(Some(foreign), &api()),
            Err(LinkError::ForeignOrigin)
        );
        assert_eq!(
            next_page(Some("garbage"), &api()),
            Err(LinkError::Malformed)
        );
        let relative = r#"</installation/repositories?page=3>; rel="next""#;
        assert_eq!(
            next_page(Some(relative), &api()).unwrap().unwrap().as_str(),
            "http://127.0.0.1:9000/installation/repositories?page=3"
        );
    }

    #[test]
    fn repository_pages_parse_from_github_shapes() {
        let page: RepositoryPage = serde_json::from_str(
            r#"{"total_count":2,"repository_selection":"all","repositories":[
                {"id":1,"node_id":"x","name":"a","full_name":"o/a","private":true,"owner":{"login":"o"},"default_branch":"main","archived":false,"html_url":"https://github.com/o/a","visibility":"private"},
                {"id":2,"name":"b","full_name":"o/b"}]}"#,
        )
        .unwrap();
        assert_eq!(page.total_count, 2);
        assert_eq!(page.repositories[0].default_branch.as_deref(), Some("main"));
        assert!(!page.repositories[1].private);
    }

    #[test]
    fn retry_policy_follows_github_guidance() {
        let now = 1_000;
        let f = |status| FailedResponse {
            status,
            ..Default::default()
        };
        assert_eq!(retry_policy(&f(502), 1, now), Retry::After(250));
        assert_eq!(retry_policy(&f(503), 2, now), Retry::After(500));
        assert_eq!(retry_policy(&f(0), 3, now), Retry::After(1000));
        assert_eq!(retry_policy(&f(502), MAX_ATTEMPTS, now), Retry::GiveUp);
        assert_eq!(retry_policy(&f(404), 1, now), Retry::GiveUp);
        assert_eq!(
            retry_policy(&f(403), 1, now),
            Retry::GiveUp,
            "a plain 403 is a permission error"
        );
        let secondary = FailedResponse {
            status: 403,
            retry_after: Some("3"),
            ..Default::default()
        };
        assert_eq!(retry_policy(&secondary, 1, now), Retry::After(3000));
        let primary = FailedResponse {
            status: 403,
            ratelimit_remaining: Some("0"),
            ratelimit_reset: Some("1005"),
            ..Default::default()
        };
        assert_eq!(retry_policy(&primary, 1, now), Retry::After(5000));
        assert_eq!(retry_policy(&f(429), 1, now), Retry::After(1000));
    }

    /// Found by the `provider_headers` fuzz target: `retry-after` seconds times 1000, and
    /// `x-ratelimit-reset` minus now, overflowed (a panic in debug builds, a wrapped and far too
    /// short wait in release ones).
    #[test]
    fn rate_limit_headers_of_any_size_wait_at_most_an_hour() {
        let now = 1_000;
        let hour = Retry::After(MAX_WAIT_SECS * 1000);
        for retry_after in ["18446744073709551615", "18446744073709552", "3601"] {
            let failed = FailedResponse {
                status: 429,
                retry_after: Some(retry_after),
                ..Default::default()
            };
            assert_eq!(
                retry_policy(&failed, 1, now),
                hour,
                "retry-after {retry_after}"
            );
        }
        for (reset, wait) in [
            ("9223372036854775807", hour),
            ("-9223372036854775808", Retry::After(1000)),
            ("4601", hour),
            ("0", Retry::After(1000)),
        ] {
            let failed = FailedResponse {
                status: 403,
                ratelimit_remaining: Some("0"),
                ratelimit_reset: Some(reset),
                ..Default::default()
            };
            assert_eq!(retry_policy(&failed, 1, now), wait, "reset {reset}");
        }
    }
}
