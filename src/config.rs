//! Configuration: the `[vars]` of wrangler.toml and the Worker secrets, parsed once per request
//! from a plain lookup function so the parsing is tested natively (no `worker::Env` needed).
//!
//! Vars: `GITHUB_APP_ID`, `GITHUB_APP_SLUG`, `GITHUB_API_URL`, `GITHUB_WEB_URL`, `PORTAL_URL`,
//! `GITHUB_CLIENT_ID` (optional), `PUBLIC_URL` (optional), and for the OAuth providers
//! `GITLAB_URL`, `GITLAB_CLIENT_ID`, `AZURE_CLIENT_ID`, `AZURE_AUTHORITY_URL`,
//! `AZURE_DEVOPS_API_URL`, `AZURE_VSSPS_URL`, `AZURE_VSAEX_URL` (a provider without its client id is off).
//! `ALLOW_UNVERIFIED_INSTALLATIONS` (development only: see [`Config::allow_unverified_installations`]).
//! Secrets (each read only by the route that needs it): `GITHUB_APP_PRIVATE_KEY`,
//! `GITHUB_WEBHOOK_SECRET`, `STATE_SECRET`, `PORTAL_JWT_SECRET`, `GITHUB_CLIENT_SECRET`
//! (optional, with `GITHUB_CLIENT_ID`), `AZURE_CLIENT_SECRET` and `TOKEN_KEYS` (the keys
//! provider tokens are encrypted with: see `token_crypto`). GitLab instances and their OAuth
//! applications (`GITLAB_URL` + `GITLAB_CLIENT_ID` + `GITLAB_CLIENT_SECRET`, and the secret
//! `GITLAB_INSTANCES` for self-managed ones) are read by [`gitlab_instances`].

use crate::api::problem::Problem;
use std::fmt;
use url::Url;

/// A secret value. Its `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

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
    /// `SUBREQUEST_LIMIT`: subrequests the gateway allows itself per invocation (default
    /// `budget::INVOCATION_LIMIT`, 45, under the Workers free plan's 50; a paid plan allows
    /// 1,000, so e.g. 950 there). 10-10,000.
    pub subrequest_limit: u32,
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
    /// Where browsers reach this gateway (`PUBLIC_URL`), for OAuth redirect URIs; `None` uses
    /// the origin of the connect request.
    pub public_url: Option<Url>,
    /// GitLab.com or the default self-managed instance (`GITLAB_URL`).
    pub gitlab_url: Url,
    /// The default instance's OAuth application (`GITLAB_CLIENT_ID`); `None`: only the
    /// instances of `GITLAB_INSTANCES` (if any) can be connected.
    pub gitlab_client_id: Option<String>,
    /// `ALLOW_UNVERIFIED_INSTALLATIONS=true`: without OAuth during installation
    /// (`GITHUB_CLIENT_ID` / `GITHUB_CLIENT_SECRET`), install callbacks are linked without
    /// proof that the returning user can access the installation. For local development
    /// only; off (the callback is refused as misconfigured) unless set.
    pub allow_unverified_installations: bool,
    /// The Entra ID app registration (`AZURE_CLIENT_ID`); `None` turns Azure DevOps off.
    pub azure_client_id: Option<String>,
    /// `AZURE_AUTHORITY_URL`: `https://login.microsoftonline.com/organizations` (work and school
    /// accounts of any Entra tenant) or one tenant's authority.
    pub azure_authority_url: Url,
    /// `AZURE_DEVOPS_API_URL`: `https://dev.azure.com`.
    pub azure_devops_api_url: Url,
    /// `AZURE_VSSPS_URL`: `https://app.vssps.visualstudio.com` (profiles and accounts).
    pub azure_vssps_url: Url,
    /// `AZURE_VSAEX_URL`: `https://vsaex.dev.azure.com` (user entitlements, for access audit).
    pub azure_vsaex_url: Url,
}

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const DEFAULT_WEB_URL: &str = "https://github.com";
pub const DEFAULT_GITLAB_URL: &str = "https://gitlab.com";
pub const DEFAULT_AZURE_AUTHORITY_URL: &str = "https://login.microsoftonline.com/organizations";
pub const DEFAULT_AZURE_DEVOPS_API_URL: &str = "https://dev.azure.com";
pub const DEFAULT_AZURE_VSSPS_URL: &str = "https://app.vssps.visualstudio.com";
pub const DEFAULT_AZURE_VSAEX_URL: &str = "https://vsaex.dev.azure.com";

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
        let url_or = |name: &str, default: &str| {
            base_url(
                &non_empty(&lookup, name).unwrap_or_else(|| default.into()),
                name,
            )
        };
        let subrequest_limit = match non_empty(&lookup, "SUBREQUEST_LIMIT") {
            None => crate::budget::INVOCATION_LIMIT,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (10..=10_000).contains(n))
                .ok_or_else(|| Problem::Misconfigured("SUBREQUEST_LIMIT (10-10000)".into()))?,
        };
        Ok(Config {
            subrequest_limit,
            public_url: non_empty(&lookup, "PUBLIC_URL")
                .map(|p| base_url(&p, "PUBLIC_URL"))
                .transpose()?,
            gitlab_url: url_or("GITLAB_URL", DEFAULT_GITLAB_URL)?,
            gitlab_client_id: non_empty(&lookup, "GITLAB_CLIENT_ID"),
            azure_client_id: non_empty(&lookup, "AZURE_CLIENT_ID"),
            azure_authority_url: url_or("AZURE_AUTHORITY_URL", DEFAULT_AZURE_AUTHORITY_URL)?,
            azure_devops_api_url: url_or("AZURE_DEVOPS_API_URL", DEFAULT_AZURE_DEVOPS_API_URL)?,
            azure_vssps_url: url_or("AZURE_VSSPS_URL", DEFAULT_AZURE_VSSPS_URL)?,
            azure_vsaex_url: url_or("AZURE_VSAEX_URL", DEFAULT_AZURE_VSAEX_URL)?,
            client_id: non_empty(&lookup, "GITHUB_CLIENT_ID"),
            allow_unverified_installations: non_empty(&lookup, "ALLOW_UNVERIFIED_INSTALLATIONS")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
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

/// A GitLab instance the gateway may connect, with its OAuth application. Its credentials go
/// to this instance only (see `credential_origins`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitLabInstance {
    /// Normalized (see `gitlab::normalize_instance`): no trailing slash, no credentials,
    /// query or fragment.
    pub url: Url,
    pub client_id: String,
    /// `None` only for the default instance when `GITLAB_CLIENT_SECRET` is missing (connects
    /// and refreshes are then refused as misconfigured).
    pub client_secret: Option<Secret>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceEntry {
    url: String,
    client_id: String,
    client_secret: String,
}

/// The GitLab instances: the default one (`GITLAB_URL` with `GITLAB_CLIENT_ID` and
/// `GITLAB_CLIENT_SECRET`, when the client id is set) first, then each entry of the
/// `GITLAB_INSTANCES` secret, a JSON array of `{"url", "client_id", "client_secret"}` (one
/// OAuth application per self-managed instance). Two entries for one instance, a URL that is
/// not http(s) with a host, or one carrying credentials, a query or a fragment is a
/// configuration error naming `GITLAB_INSTANCES` (its text never contains a secret).
pub fn gitlab_instances(
    lookup: impl Fn(&str) -> Option<String>,
    config: &Config,
) -> Result<Vec<GitLabInstance>, Problem> {
    let bad = || Problem::Misconfigured("GITLAB_INSTANCES".into());
    let mut instances = Vec::new();
    if let Some(client_id) = &config.gitlab_client_id {
        instances.push(GitLabInstance {
            url: crate::oauth::gitlab::normalize_instance(config.gitlab_url.as_str())
                .map_err(|_| Problem::Misconfigured("GITLAB_URL".into()))?,
            client_id: client_id.clone(),
            client_secret: non_empty(&lookup, "GITLAB_CLIENT_SECRET").map(Secret),
        });
    }
    if let Some(json) = non_empty(&lookup, "GITLAB_INSTANCES") {
        let entries: Vec<InstanceEntry> = serde_json::from_str(&json).map_err(|_| bad())?;
        for entry in entries {
            let url = crate::oauth::gitlab::normalize_instance(&entry.url).map_err(|_| bad())?;
            let (client_id, secret) = (entry.client_id.trim(), entry.client_secret.trim());
            if client_id.is_empty() || secret.is_empty() {
                return Err(bad());
            }
            if instances
                .iter()
                .any(|i: &GitLabInstance| crate::oauth::gitlab::same_instance(&i.url, &url))
            {
                return Err(bad());
            }
            instances.push(GitLabInstance {
                url,
                client_id: client_id.to_string(),
                client_secret: Some(Secret(secret.to_string())),
            });
        }
    }
    Ok(instances)
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
        assert_eq!(c.gitlab_url.as_str(), "https://gitlab.com/");
        assert_eq!(
            c.gitlab_client_id, None,
            "GitLab is off without a client id"
        );
        assert_eq!(
            c.azure_authority_url.as_str(),
            "https://login.microsoftonline.com/organizations"
        );
        assert_eq!(c.azure_devops_api_url.as_str(), "https://dev.azure.com/");
        assert_eq!(
            c.azure_vssps_url.as_str(),
            "https://app.vssps.visualstudio.com/"
        );
        assert_eq!(c.azure_vsaex_url.as_str(), "https://vsaex.dev.azure.com/");
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
        let with_limit = |v: &str| {
            Config::from_lookup(lookup(&[
                ("GITHUB_APP_ID", "1"),
                ("GITHUB_APP_SLUG", "x"),
                ("SUBREQUEST_LIMIT", v),
            ]))
        };
        assert_eq!(with_limit("950").unwrap().subrequest_limit, 950);
        for bad in ["9", "10001", "lots", "-1"] {
            assert_eq!(
                with_limit(bad).unwrap_err(),
                Problem::Misconfigured("SUBREQUEST_LIMIT (10-10000)".into()),
                "{bad}"
            );
        }
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
        let err = Config::from_lookup(lookup(&[
            ("GITHUB_APP_ID", "1"),
            ("GITHUB_APP_SLUG", "a"),
            ("GITLAB_URL", "ftp://gitlab.example"),
        ]))
        .unwrap_err();
        assert_eq!(err, Problem::Misconfigured("GITLAB_URL".into()));
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut all = vec![("GITHUB_APP_ID", "1"), ("GITHUB_APP_SLUG", "a")];
        all.extend_from_slice(pairs);
        Config::from_lookup(lookup(&all)).unwrap()
    }

    #[test]
    fn gitlab_instances_are_the_default_then_the_configured_ones() {
        let pairs = [
            ("GITLAB_URL", "https://gitlab.com/"),
            ("GITLAB_CLIENT_ID", "gl-app"),
            ("GITLAB_CLIENT_SECRET", "gl-secret"),
            (
                "GITLAB_INSTANCES",
                r#"[{"url": "https://git.acme.example/gitlab/", "client_id": "acme-app", "client_secret": "acme-secret"}]"#,
            ),
        ];
        let c = config(&pairs);
        let all = gitlab_instances(lookup(&pairs), &c).unwrap();
        let urls: Vec<&str> = all.iter().map(|i| i.url.as_str()).collect();
        assert_eq!(
            urls,
            ["https://gitlab.com/", "https://git.acme.example/gitlab"]
        );
        assert_eq!(all[1].client_id, "acme-app");
        assert_eq!(
            all[1].client_secret.as_ref().map(Secret::expose),
            Some("acme-secret")
        );
        assert!(!format!("{all:?}").contains("secret\""), "{all:?}");
        assert!(!format!("{all:?}").contains("gl-secret"));

        // Without a default application, only the listed instances.
        let only = [pairs[3]];
        let all = gitlab_instances(lookup(&only), &config(&only)).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].url.as_str(), "https://git.acme.example/gitlab");
        // Nothing configured: no instance at all.
        assert!(gitlab_instances(lookup(&[]), &config(&[]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn unusable_gitlab_instances_are_a_named_misconfiguration_without_secrets() {
        for json in [
            "not json",
            r#"{"url": "https://a.example"}"#,
            r#"[{"url": "https://a.example", "client_id": "x"}]"#,
            r#"[{"url": "https://a.example", "client_id": "x", "client_secret": "s3cr3t", "extra": 1}]"#,
            r#"[{"url": "ftp://a.example", "client_id": "x", "client_secret": "s3cr3t"}]"#,
            r#"[{"url": "https://u:p@a.example", "client_id": "x", "client_secret": "s3cr3t"}]"#,
            r#"[{"url": "https://a.example?x=1", "client_id": "x", "client_secret": "s3cr3t"}]"#,
            r#"[{"url": "https://a.example", "client_id": " ", "client_secret": "s3cr3t"}]"#,
            r#"[{"url": "https://a.example", "client_id": "x", "client_secret": ""}]"#,
            // The same instance twice (spelled differently), or the default one again.
            r#"[{"url": "https://a.example", "client_id": "x", "client_secret": "s3cr3t"},
                {"url": "https://A.example:443/", "client_id": "y", "client_secret": "s3cr3t"}]"#,
            r#"[{"url": "https://gitlab.com", "client_id": "y", "client_secret": "s3cr3t"}]"#,
        ] {
            let pairs = [("GITLAB_CLIENT_ID", "gl"), ("GITLAB_INSTANCES", json)];
            let err = gitlab_instances(lookup(&pairs), &config(&pairs)).unwrap_err();
            assert_eq!(
                err,
                Problem::Misconfigured("GITLAB_INSTANCES".into()),
                "{json}"
            );
            assert!(!format!("{err:?}").contains("s3cr3t"));
        }
    }

    #[test]
    fn unverified_installations_need_the_explicit_flag() {
        assert!(!config(&[]).allow_unverified_installations);
        assert!(!config(&[("ALLOW_UNVERIFIED_INSTALLATIONS", "1")]).allow_unverified_installations);
        assert!(
            config(&[("ALLOW_UNVERIFIED_INSTALLATIONS", "true")]).allow_unverified_installations
        );
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
