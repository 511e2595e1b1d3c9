//! GitLab (gitlab.com and self-managed) through OAuth 2.0: the authorize URL, the API routes the
//! gateway reads, their JSON shapes and how a project becomes a repository record.
//!
//! - Authorize: `{base}/oauth/authorize` with PKCE (S256) and scopes `read_api read_repository`;
//!   tokens at `{base}/oauth/token`. Access tokens live 2 hours; a refresh rotates both tokens.
//! - Groups the user can read: `GET /api/v4/groups?top_level_only=true&min_access_level=20`
//!   (Reporter: enough to read and clone every project), or the ones the technician chose.
//! - Projects of a group and its subgroups: `GET /api/v4/groups/:id/projects` with
//!   `include_subgroups=true`, keyset pagination by id, 100 a page, following `Link: rel="next"`.

use crate::config::GitLabInstance;
use crate::provider::{RepoId, RepositoryRecord};
use serde::Deserialize;
use url::Url;

pub const SCOPES: &str = "read_api read_repository";
/// Access tokens live 2 hours on GitLab (used when a token response omits `expires_in`).
pub const ACCESS_TOKEN_SECS: i64 = 7200;
/// Reporter: can read and clone every project of the group.
const MIN_ACCESS_LEVEL: &str = "20";
pub const PAGE_SIZE: &str = "100";
/// Groups one connect links at most (each becomes an organization).
pub const MAX_GROUPS: usize = 50;

fn join(base: &Url, path: &str) -> Url {
    crate::config::join(base, path)
}

pub fn authorize_url(
    base: &Url,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Url {
    let mut url = join(base, "oauth/authorize");
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("state", state)
        .append_pair("scope", SCOPES)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", crate::oauth::pkce::METHOD);
    url
}

pub fn token_url(base: &Url) -> Url {
    join(base, "oauth/token")
}

pub fn user_url(base: &Url) -> Url {
    join(base, "api/v4/user")
}

/// The top-level groups the user can read, 100 a page.
pub fn groups_url(base: &Url) -> Url {
    let mut url = join(base, "api/v4/groups");
    url.query_pairs_mut()
        .append_pair("top_level_only", "true")
        .append_pair("min_access_level", MIN_ACCESS_LEVEL)
        .append_pair("order_by", "id")
        .append_pair("sort", "asc")
        .append_pair("per_page", PAGE_SIZE);
    url
}

/// One group, by numeric id or full path (`acme/platform`, encoded as one path segment).
pub fn group_url(base: &Url, id_or_path: &str) -> Url {
    let mut url = join(base, "api/v4/groups");
    if let Ok(mut segments) = url.path_segments_mut() {
        // `push` percent-encodes the `/` of a full path, as GitLab wants.
        segments.push(id_or_path);
    }
    url
}

/// The group's API URL: its account key and the root its projects are listed from.
pub fn group_api_url(base: &Url, group_id: u64) -> Url {
    group_url(base, &group_id.to_string())
}

/// The first page of a group's projects, subgroups included (keyset pagination by id).
pub fn first_projects_url(group_api_url: &Url) -> Url {
    let mut url = group_api_url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.push("projects");
    }
    url.query_pairs_mut()
        .append_pair("include_subgroups", "true")
        .append_pair("with_shared", "false")
        .append_pair("pagination", "keyset")
        .append_pair("order_by", "id")
        .append_pair("sort", "asc")
        .append_pair("per_page", PAGE_SIZE);
    url
}

/// Why a self-managed instance URL was refused (the portal gets the field and the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseUrlError {
    NotAUrl,
    /// User info, a query or a fragment has no place in an instance URL.
    Extras,
    /// Not one of the instances the gateway is configured for (`GITLAB_URL`,
    /// `GITLAB_INSTANCES`).
    NotConfigured,
}

impl BaseUrlError {
    pub fn reason(self) -> &'static str {
        match self {
            BaseUrlError::NotAUrl => "must be an absolute URL such as https://gitlab.example.com",
            BaseUrlError::Extras => "must not carry credentials, a query or a fragment",
            BaseUrlError::NotConfigured => {
                "is not a GitLab instance this gateway is configured for (ask the operator to add it to GITLAB_INSTANCES)"
            }
        }
    }
}

/// An instance URL in one spelling: http(s) with a host, no credentials, query or fragment,
/// no trailing slash (scheme and host are lower-cased and a default port dropped by `Url`).
pub fn normalize_instance(value: &str) -> Result<Url, BaseUrlError> {
    let mut url = Url::parse(value.trim()).map_err(|_| BaseUrlError::NotAUrl)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.cannot_be_a_base() {
        return Err(BaseUrlError::NotAUrl);
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(BaseUrlError::Extras);
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

/// The same instance: scheme, host, port (explicit or default) and path, after normalizing.
pub fn same_instance(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

/// The instance a connect is for: the configured instance `requested` names, or the first
/// configured one (the default `GITLAB_URL`) when nothing is requested. An instance that is not
/// configured is refused: its OAuth application's secret must never be sent anywhere else.
pub fn configured_instance<'a>(
    requested: Option<&str>,
    instances: &'a [GitLabInstance],
) -> Result<&'a GitLabInstance, BaseUrlError> {
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return instances.first().ok_or(BaseUrlError::NotConfigured);
    };
    let url = normalize_instance(requested)?;
    instances
        .iter()
        .find(|i| same_instance(&i.url, &url))
        .ok_or(BaseUrlError::NotConfigured)
}

/// The configured instance a stored connection belongs to (`None`: no longer configured).
pub fn instance_of<'a>(
    base_url: &str,
    instances: &'a [GitLabInstance],
) -> Option<&'a GitLabInstance> {
    let url = normalize_instance(base_url).ok()?;
    instances.iter().find(|i| same_instance(&i.url, &url))
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Group {
    pub id: u64,
    pub name: String,
    pub full_path: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub id: u64,
    pub name: String,
    pub path_with_namespace: String,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub http_url_to_repo: Option<String>,
}

impl From<&Project> for RepositoryRecord {
    fn from(p: &Project) -> Self {
        RepositoryRecord {
            id: RepoId::Number(p.id),
            name: p.name.clone(),
            full_name: p.path_with_namespace.clone(),
            // `internal` projects are readable by every signed-in user of the instance, not by
            // the public: private for backup purposes.
            private: p.visibility.as_deref() != Some("public"),
            default_branch: p.default_branch.clone(),
            html_url: p.web_url.clone(),
            archived: p.archived,
            visibility: p.visibility.clone(),
            git_url: p.http_url_to_repo.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://gitlab.example.com/gl").unwrap()
    }

    #[test]
    fn urls_follow_the_gitlab_routes() {
        let authorize = authorize_url(
            &base(),
            "cid",
            "https://edge.example/gitlab/callback",
            "s.t",
            "chal",
        );
        assert_eq!(
            authorize.as_str(),
            "https://gitlab.example.com/gl/oauth/authorize?client_id=cid&redirect_uri=https%3A%2F%2Fedge.example%2Fgitlab%2Fcallback\
             &response_type=code&state=s.t&scope=read_api+read_repository&code_challenge=chal&code_challenge_method=S256"
        );
        assert_eq!(
            token_url(&base()).as_str(),
            "https://gitlab.example.com/gl/oauth/token"
        );
        assert_eq!(
            group_url(&base(), "acme/platform").as_str(),
            "https://gitlab.example.com/gl/api/v4/groups/acme%2Fplatform"
        );
        let group = group_api_url(&base(), 42);
        assert_eq!(
            group.as_str(),
            "https://gitlab.example.com/gl/api/v4/groups/42"
        );
        assert_eq!(
            first_projects_url(&group).as_str(),
            "https://gitlab.example.com/gl/api/v4/groups/42/projects?include_subgroups=true&with_shared=false\
             &pagination=keyset&order_by=id&sort=asc&per_page=100"
        );
        assert!(groups_url(&base())
            .as_str()
            .ends_with("/gl/api/v4/groups?top_level_only=true&min_access_level=20&order_by=id&sort=asc&per_page=100"));
    }

    fn instance(url: &str) -> GitLabInstance {
        GitLabInstance {
            url: normalize_instance(url).unwrap(),
            client_id: format!("app-of-{url}"),
            client_secret: None,
        }
    }

    #[test]
    fn only_configured_instances_can_be_connected() {
        let configured = [
            instance("https://gitlab.com"),
            instance("https://git.client.example/gitlab/"),
        ];
        let pick = |requested| configured_instance(requested, &configured).map(|i| i.url.as_str());
        assert_eq!(pick(None), Ok("https://gitlab.com/"));
        assert_eq!(pick(Some("  ")), Ok("https://gitlab.com/"));
        // Spelled differently, the same instance: case, default port, trailing slashes.
        for same in [
            "https://git.client.example/gitlab",
            "HTTPS://Git.Client.Example:443/gitlab//",
            " https://git.client.example/gitlab/ ",
        ] {
            assert_eq!(
                pick(Some(same)),
                Ok("https://git.client.example/gitlab"),
                "{same}"
            );
        }
        assert_eq!(pick(Some("https://gitlab.com/")), Ok("https://gitlab.com/"));
        // Another host, port, path or scheme is another instance: refused.
        for other in [
            "https://attacker.example",
            "https://git.client.example:8443/gitlab",
            "https://git.client.example/other",
            "https://git.client.example",
            "https://git.client.example/gitlab/sub",
            "http://git.client.example/gitlab",
            "https://gitlab.com.attacker.example",
        ] {
            assert_eq!(
                pick(Some(other)),
                Err(BaseUrlError::NotConfigured),
                "{other}"
            );
        }
        for extras in [
            "https://user:pw@gitlab.com",
            "https://token@gitlab.com",
            "https://gitlab.com/?a=b",
            "https://gitlab.com/#x",
        ] {
            assert_eq!(pick(Some(extras)), Err(BaseUrlError::Extras), "{extras}");
        }
        for bad in [
            "gitlab.example.com",
            "mailto:a@b.c",
            "https://",
            "ftp://gitlab.com",
        ] {
            assert_eq!(pick(Some(bad)), Err(BaseUrlError::NotAUrl), "{bad}");
        }
        // Nothing configured: nothing can be connected.
        assert_eq!(
            configured_instance(None, &[]).map(|_| ()),
            Err(BaseUrlError::NotConfigured)
        );
        // A stored connection finds its instance while it stays configured.
        assert!(instance_of("https://git.client.example/gitlab", &configured).is_some());
        assert!(instance_of("https://old.client.example", &configured).is_none());
    }

    #[test]
    fn projects_become_repository_records() {
        let project: Project = serde_json::from_str(
            r#"{"id":17,"name":"API","path":"api","path_with_namespace":"initech/platform/api",
                "visibility":"internal","default_branch":"main","web_url":"https://gitlab.com/initech/platform/api",
                "archived":true,"namespace":{"id":3,"full_path":"initech/platform"}}"#,
        )
        .unwrap();
        let record = RepositoryRecord::from(&project);
        assert_eq!(record.id, RepoId::Number(17));
        assert_eq!(record.full_name, "initech/platform/api");
        assert!(record.private, "internal is not public");
        assert!(record.archived);
        assert_eq!(record.default_branch.as_deref(), Some("main"));
        let public: Project = serde_json::from_str(
            r#"{"id":18,"name":"site","path_with_namespace":"initech/site","visibility":"public"}"#,
        )
        .unwrap();
        assert!(!RepositoryRecord::from(&public).private);
        assert!(!RepositoryRecord::from(&public).archived);
    }
}
