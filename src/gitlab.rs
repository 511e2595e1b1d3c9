//! GitLab (gitlab.com and self-managed) through OAuth 2.0: the authorize URL, the API routes the
//! gateway reads, their JSON shapes and how a project becomes a repository record.
//!
//! - Authorize: `{base}/oauth/authorize` with PKCE (S256) and scopes `read_api read_repository`;
//!   tokens at `{base}/oauth/token`. Access tokens live 2 hours; a refresh rotates both tokens.
//! - Groups the user can read: `GET /api/v4/groups?top_level_only=true&min_access_level=20`
//!   (Reporter: enough to read and clone every project), or the ones the technician chose.
//! - Projects of a group and its subgroups: `GET /api/v4/groups/:id/projects` with
//!   `include_subgroups=true`, keyset pagination by id, 100 a page, following `Link: rel="next"`.

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
        .append_pair("code_challenge_method", crate::pkce::METHOD);
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
    /// Only `https`, except the configured `GITLAB_URL`'s own origin (a local emulator).
    NotHttps,
    /// User info, a query or a fragment has no place in an instance URL.
    Extras,
}

impl BaseUrlError {
    pub fn reason(self) -> &'static str {
        match self {
            BaseUrlError::NotAUrl => "must be an absolute URL such as https://gitlab.example.com",
            BaseUrlError::NotHttps => "must use https",
            BaseUrlError::Extras => "must not carry credentials, a query or a fragment",
        }
    }
}

/// The instance a connect is for: `base_url` from the portal (self-managed) or the configured
/// `GITLAB_URL`. Trailing slashes are dropped so the same instance is always spelled the same.
pub fn instance_url(requested: Option<&str>, configured: &Url) -> Result<Url, BaseUrlError> {
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(configured.clone());
    };
    let mut url = Url::parse(requested).map_err(|_| BaseUrlError::NotAUrl)?;
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(BaseUrlError::NotAUrl);
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(BaseUrlError::Extras);
    }
    if url.scheme() != "https" && url.origin() != configured.origin() {
        return Err(BaseUrlError::NotHttps);
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
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

    #[test]
    fn self_managed_instances_must_be_https() {
        let configured = Url::parse("http://127.0.0.1:9100/gitlab/com").unwrap();
        assert_eq!(instance_url(None, &configured).unwrap(), configured);
        assert_eq!(instance_url(Some("  "), &configured).unwrap(), configured);
        assert_eq!(
            instance_url(Some("https://git.client.example/"), &configured)
                .unwrap()
                .as_str(),
            "https://git.client.example/"
        );
        assert_eq!(
            instance_url(Some("https://git.client.example/gitlab/"), &configured)
                .unwrap()
                .as_str(),
            "https://git.client.example/gitlab"
        );
        assert_eq!(
            instance_url(Some("http://git.client.example"), &configured),
            Err(BaseUrlError::NotHttps)
        );
        // The configured instance's origin is trusted (the local emulator serves over http).
        assert!(instance_url(Some("http://127.0.0.1:9100/gitlab/other"), &configured).is_ok());
        assert_eq!(
            instance_url(Some("http://127.0.0.1:9101/x"), &configured),
            Err(BaseUrlError::NotHttps)
        );
        for extras in [
            "https://user:pw@git.example",
            "https://git.example/?a=b",
            "https://git.example/#x",
        ] {
            assert_eq!(
                instance_url(Some(extras), &configured),
                Err(BaseUrlError::Extras),
                "{extras}"
            );
        }
        for bad in ["gitlab.example.com", "mailto:a@b.c", "https://"] {
            assert_eq!(
                instance_url(Some(bad), &configured),
                Err(BaseUrlError::NotAUrl),
                "{bad}"
            );
        }
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
