//! Where each credential may go: the one check every outbound request passes
//! (`edge::outbound::call`) before anything leaves the worker.
//!
//! | credential | only ever sent under |
//! |---|---|
//! | GitHub App JWT, installation tokens, user-to-server tokens, the App's OAuth client secret and codes | `GITHUB_API_URL`, `GITHUB_WEB_URL` |
//! | the Entra client secret, Microsoft access / refresh tokens and codes | `AZURE_AUTHORITY_URL`, `AZURE_DEVOPS_API_URL`, `AZURE_VSSPS_URL`, `AZURE_VSAEX_URL` |
//! | a GitLab instance's client secret, access / refresh tokens and codes | that instance's URL, while it is configured (`GITLAB_URL`, `GITLAB_INSTANCES`) |
//!
//! "Under" a base URL: the same scheme, host and port (explicit or default), and a path equal to
//! the base's path or below it (`/gitlab` covers `/gitlab/api/v4/…`, not `/gitlab-other`). A URL
//! with user info is never under anything. Redirects are not followed (`outbound` answers a 3xx
//! as a refusal), so a credential cannot be carried elsewhere by a `Location` either.

use crate::config::{Config, GitLabInstance};
use url::Url;

/// Who issued a credential, which decides where it may be presented.
#[derive(Debug, Clone, Copy)]
pub enum Issuer<'a> {
    GitHub,
    /// Microsoft Entra ID (and Azure DevOps, which takes its tokens).
    Microsoft,
    /// The GitLab instance at this URL (a connection's `base_url`).
    GitLab(&'a Url),
}

/// `url` is at or below `base` (see the module docs).
pub fn under(base: &Url, url: &Url) -> bool {
    if url.scheme() != base.scheme()
        || url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return false;
    }
    let prefix = base.path().trim_end_matches('/');
    let path = url.path();
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

/// May a credential of `issuer` be sent to `url`? `gitlab` is the configured instances.
pub fn allowed(config: &Config, gitlab: &[GitLabInstance], issuer: Issuer<'_>, url: &Url) -> bool {
    match issuer {
        Issuer::GitHub => [&config.api_url, &config.web_url]
            .into_iter()
            .any(|base| under(base, url)),
        Issuer::Microsoft => [
            &config.azure_authority_url,
            &config.azure_devops_api_url,
            &config.azure_vssps_url,
            &config.azure_vsaex_url,
        ]
        .into_iter()
        .any(|base| under(base, url)),
        Issuer::GitLab(instance) => gitlab.iter().any(|configured| {
            crate::oauth::gitlab::same_instance(&configured.url, instance)
                && under(&configured.url, url)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config() -> Config {
        let vars: HashMap<&str, &str> = [
            ("GITHUB_APP_ID", "1"),
            ("GITHUB_APP_SLUG", "app"),
            ("GITHUB_API_URL", "https://api.github.com"),
            ("GITHUB_WEB_URL", "https://github.com"),
        ]
        .into_iter()
        .collect();
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
    }

    fn instances() -> Vec<GitLabInstance> {
        ["https://gitlab.com", "https://git.client.example/gitlab"]
            .into_iter()
            .map(|u| GitLabInstance {
                url: crate::oauth::gitlab::normalize_instance(u).unwrap(),
                client_id: "x".into(),
                client_secret: None,
            })
            .collect()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn github_credentials_stay_with_github() {
        let (c, gl) = (config(), instances());
        for ok in [
            "https://api.github.com/app/installations/1/access_tokens",
            "https://github.com/login/oauth/access_token",
            "https://github.com/acme/repo.git/info/refs?service=git-upload-pack",
            "https://API.GITHUB.COM:443/user",
        ] {
            assert!(allowed(&c, &gl, Issuer::GitHub, &url(ok)), "{ok}");
        }
        for no in [
            "https://gitlab.com/api/v4/user",
            "http://api.github.com/user",
            "https://api.github.com:8443/user",
            "https://api.github.com.attacker.example/user",
            "https://x-access-token:t@github.com/acme/repo.git",
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
        ] {
            assert!(!allowed(&c, &gl, Issuer::GitHub, &url(no)), "{no}");
        }
    }

    #[test]
    fn microsoft_credentials_stay_with_microsoft_and_azure_devops() {
        let (c, gl) = (config(), instances());
        for ok in [
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
            "https://dev.azure.com/contoso/_apis/projects",
            "https://app.vssps.visualstudio.com/_apis/profile/profiles/me",
            "https://vsaex.dev.azure.com/acme/_apis/userentitlements",
        ] {
            assert!(allowed(&c, &gl, Issuer::Microsoft, &url(ok)), "{ok}");
        }
        for no in [
            // Another tenant's authority path is not the configured authority.
            "https://login.microsoftonline.com/common/oauth2/v2.0/token",
            "https://api.github.com/user",
            "https://contoso.visualstudio.com/_apis/projects",
        ] {
            assert!(!allowed(&c, &gl, Issuer::Microsoft, &url(no)), "{no}");
        }
    }

    #[test]
    fn a_gitlab_instances_credentials_stay_with_that_instance_while_it_is_configured() {
        let (c, gl) = (config(), instances());
        let client = url("https://git.client.example/gitlab");
        assert!(allowed(
            &c,
            &gl,
            Issuer::GitLab(&client),
            &url("https://git.client.example/gitlab/oauth/token")
        ));
        for no in [
            "https://git.client.example/gitlab-other/oauth/token",
            "https://git.client.example/oauth/token",
            "https://gitlab.com/oauth/token",
            "https://api.github.com/user",
        ] {
            assert!(!allowed(&c, &gl, Issuer::GitLab(&client), &url(no)), "{no}");
        }
        // The default instance's tokens do not go to the self-managed one, and the reverse.
        let com = url("https://gitlab.com");
        assert!(allowed(
            &c,
            &gl,
            Issuer::GitLab(&com),
            &url("https://gitlab.com/api/v4/user")
        ));
        assert!(!allowed(
            &c,
            &gl,
            Issuer::GitLab(&com),
            &url("https://git.client.example/gitlab/api/v4/user")
        ));
        // An instance that is no longer configured gets nothing, not even at its own URL.
        let gone = url("https://old.client.example");
        assert!(!allowed(
            &c,
            &gl,
            Issuer::GitLab(&gone),
            &url("https://old.client.example/oauth/token")
        ));
    }
}
