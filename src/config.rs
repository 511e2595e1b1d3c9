//! Configuration: the `[vars]` of wrangler.toml and the Worker secrets, parsed once per request
//! from a plain lookup function so the parsing is tested natively (no `worker::Env` needed).
//!
//! Vars: `GITHUB_APP_ID`, `GITHUB_APP_SLUG`, `GITHUB_API_URL`, `GITHUB_WEB_URL`, `PORTAL_URL`,
//! `GITHUB_CLIENT_ID` (optional).
//! Secrets (each read only by the route that needs it): `GITHUB_APP_PRIVATE_KEY`,
//! `GITHUB_WEBHOOK_SECRET`, `STATE_SECRET`, `PORTAL_JWT_SECRET`, `GITHUB_CLIENT_SECRET`
//! (optional, with `GITHUB_CLIENT_ID`).

use crate::problem::Problem;
use std::fmt;
use url::Url;

/// A secret value. Its `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The non-secret settings every route needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub app_id: String,
    pub app_slug: String,
    /// GitHub REST API base, without a trailing slash (`https://api.github.com`).
    pub api_url: Url,
    /// GitHub web base (`https://github.com`): where the install page lives.
    pub web_url: Url,
    /// The portal the browser returns to; `None` means the gateway serves its own result pages.
    pub portal_url: Option<Url>,
    /// The App's OAuth client id (`GITHUB_CLIENT_ID`), when it requests user authorization
    /// during installation; with `GITHUB_CLIENT_SECRET` it identifies who asked for approval.
    pub client_id: Option<String>,
}

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const DEFAULT_WEB_URL: &str = "https://github.com";

fn non_empty(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn base_url(value: &str, name: &str) -> Result<Url, Problem> {
    let url = Url::parse(value.trim_end_matches('/'))
        .map_err(|_| Problem::Misconfigured(name.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Problem::Misconfigured(name.to_string()));
    }
    Ok(url)
}

impl Config {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Problem> {
        let app_id = non_empty(&lookup, "GITHUB_APP_ID")
            .filter(|id| id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| Problem::Misconfigured("GITHUB_APP_ID".into()))?;
        let app_slug = non_empty(&lookup, "GITHUB_APP_SLUG")
            .filter(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or_else(|| Problem::Misconfigured("GITHUB_APP_SLUG".into()))?;
        let api = non_empty(&lookup, "GITHUB_API_URL").unwrap_or_else(|| DEFAULT_API_URL.into());
        let web = non_empty(&lookup, "GITHUB_WEB_URL").unwrap_or_else(|| DEFAULT_WEB_URL.into());
        let portal_url = non_empty(&lookup, "PORTAL_URL")
            .map(|p| base_url(&p, "PORTAL_URL"))
            .transpose()?;
        Ok(Config {
            client_id: non_empty(&lookup, "GITHUB_CLIENT_ID"),
            app_id,
            app_slug,
            api_url: base_url(&api, "GITHUB_API_URL")?,
            web_url: base_url(&web, "GITHUB_WEB_URL")?,
            portal_url,
        })
    }
}

/// Reads a secret, refusing a missing or blank one with a clear (name-only) problem.
pub fn require_secret(
    lookup: impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Secret, Problem> {
    non_empty(&lookup, name)
        .map(Secret)
        .ok_or_else(|| Problem::Misconfigured(name.to_string()))
}

/// Joins a path onto a base URL that may itself carry a path prefix.
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply_and_trailing_slashes_go() {
        let c = Config::from_lookup(lookup(&[
            ("GITHUB_APP_ID", "3034314"),
            ("GITHUB_APP_SLUG", "the-one-code"),
            ("PORTAL_URL", ""),
            ("GITHUB_API_URL", "http://127.0.0.1:9000/"),
        ]))
        .unwrap();
        assert_eq!(c.api_url.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(
            join(&c.api_url, "/app/installations/7").as_str(),
            "http://127.0.0.1:9000/app/installations/7"
        );
        assert_eq!(c.web_url.as_str(), "https://github.com/");
        assert_eq!(c.portal_url, None);
    }

    #[test]
    fn join_keeps_a_base_path_prefix() {
        let base = Url::parse("https://ghe.example.com/api/v3").unwrap();
        assert_eq!(
            join(&base, "app/installations/1").as_str(),
            "https://ghe.example.com/api/v3/app/installations/1"
        );
    }

    #[test]
    fn missing_or_bad_settings_are_named() {
        let err = Config::from_lookup(lookup(&[("GITHUB_APP_SLUG", "x")])).unwrap_err();
        assert_eq!(err, Problem::Misconfigured("GITHUB_APP_ID".into()));
        let err = Config::from_lookup(lookup(&[
            ("GITHUB_APP_ID", "1"),
            ("GITHUB_APP_SLUG", "a/b"),
        ]))
        .unwrap_err();
        assert_eq!(err, Problem::Misconfigured("GITHUB_APP_SLUG".into()));
        let err = Config::from_lookup(lookup(&[
            ("GITHUB_APP_ID", "1"),
            ("GITHUB_APP_SLUG", "a"),
            ("PORTAL_URL", "not a url"),
        ]))
        .unwrap_err();
        assert_eq!(err, Problem::Misconfigured("PORTAL_URL".into()));
    }

    #[test]
    fn secrets_are_required_and_never_debug_printed() {
        let l = lookup(&[("STATE_SECRET", "hunter2"), ("BLANK", "  ")]);
        let s = require_secret(&l, "STATE_SECRET").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(
            require_secret(&l, "BLANK").unwrap_err(),
            Problem::Misconfigured("BLANK".into())
        );
        assert_eq!(
            require_secret(&l, "NONE").unwrap_err(),
            Problem::Misconfigured("NONE".into())
        );
    }
}
