//! Azure DevOps through the Microsoft identity platform (Entra ID, v2 endpoints): the authorize
//! URL, the API routes the gateway reads, their JSON shapes and how a Git repository becomes a
//! repository record.
//!
//! - Authorize: `{authority}/oauth2/v2.0/authorize` with PKCE (S256), scope
//!   `499b84ac-1321-427f-aa17-267ca6975798/.default offline_access` (Azure DevOps as a resource,
//!   plus a refresh token); tokens at `{authority}/oauth2/v2.0/token`.
//! - Who signed in: `GET {vssps}/_apis/profile/profiles/me`; their organizations:
//!   `GET {vssps}/_apis/accounts?memberId=…`.
//! - Per organization: projects (`GET {api}/{org}/_apis/projects`, `$top` a page, the next page
//!   named by the `x-ms-continuationtoken` header), and each project's Git repositories
//!   (`GET {api}/{org}/{project}/_apis/git/repositories`, not paginated by Azure DevOps).

use crate::provider::{RepoId, RepositoryRecord};
use serde::Deserialize;
use url::Url;

/// Azure DevOps' resource id, with `.default` (the permissions its app registration grants),
/// and `offline_access` for a refresh token.
pub const SCOPE: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default offline_access";
pub const API_VERSION: &str = "7.1";
/// Entra access tokens live about an hour (used when a token response omits `expires_in`).
pub const ACCESS_TOKEN_SECS: i64 = 3599;
/// Projects a page: each costs one more request (its repositories) in the same step.
pub const PROJECTS_PER_PAGE: u32 = 20;
/// The response header naming the next page of projects.
pub const CONTINUATION_HEADER: &str = "x-ms-continuationtoken";
/// Organizations one connect links at most.
pub const MAX_ORGANIZATIONS: usize = 50;

fn join(base: &Url, path: &str) -> Url {
    crate::config::join(base, path)
}

fn with_version(mut url: Url) -> Url {
    url.query_pairs_mut()
        .append_pair("api-version", API_VERSION);
    url
}

pub fn authorize_url(
    authority: &Url,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Url {
    let mut url = join(authority, "oauth2/v2.0/authorize");
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_mode", "query")
        // Always a consent screen: a user who consented before must still see what they are
        // connecting, so a link sent by someone else cannot complete without them noticing.
        .append_pair("prompt", "consent")
        .append_pair("scope", SCOPE)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", crate::oauth::pkce::METHOD);
    url
}

pub fn token_url(authority: &Url) -> Url {
    join(authority, "oauth2/v2.0/token")
}

pub fn profile_url(vssps: &Url) -> Url {
    with_version(join(vssps, "_apis/profile/profiles/me"))
}

pub fn accounts_url(vssps: &Url, member_id: &str) -> Url {
    let mut url = join(vssps, "_apis/accounts");
    url.query_pairs_mut().append_pair("memberId", member_id);
    with_version(url)
}

/// `{api}/{organization}`: the organization's API root (stored as the org's `api_url`).
pub fn organization_url(api: &Url, organization: &str) -> Url {
    let mut url = api.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(organization);
    }
    url
}

/// A page of the organization's projects; `continuation` from the previous page's header.
pub fn projects_url(organization_url: &Url, continuation: Option<&str>) -> Url {
    let mut url = join(organization_url, "_apis/projects");
    url.query_pairs_mut()
        .append_pair("$top", &PROJECTS_PER_PAGE.to_string());
    if let Some(token) = continuation {
        url.query_pairs_mut()
            .append_pair("continuationToken", token);
    }
    with_version(url)
}

pub fn repositories_url(organization_url: &Url, project_id: &str) -> Url {
    let mut url = organization_url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .push(project_id)
            .extend(["_apis", "git", "repositories"]);
    }
    with_version(url)
}

/// Organization names are one URL path segment: letters, digits and hyphens, as Azure DevOps
/// allows them.
pub fn valid_organization_name(name: &str) -> bool {
    (1..=50).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `{"count": n, "value": [...]}`, Azure DevOps' list envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub value: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub account_id: String,
    pub account_name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub visibility: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub is_disabled: Option<bool>,
    /// `https://{org}@dev.azure.com/{org}/{project}/_git/{repo}`.
    #[serde(default)]
    pub remote_url: Option<String>,
}

/// A Git repository of `project` in `organization` as a repository record.
pub fn to_record(organization: &str, project: &Project, repo: &Repository) -> RepositoryRecord {
    RepositoryRecord {
        id: RepoId::Text(repo.id.clone()),
        name: repo.name.clone(),
        full_name: format!("{organization}/{}/{}", project.name, repo.name),
        private: project.visibility.as_deref() != Some("public"),
        default_branch: repo
            .default_branch
            .as_deref()
            .map(|b| b.strip_prefix("refs/heads/").unwrap_or(b).to_string()),
        html_url: repo.web_url.clone(),
        // A disabled repository cannot be read or cloned until re-enabled.
        archived: repo.is_disabled.unwrap_or(false),
        visibility: project.visibility.clone(),
        git_url: repo.remote_url.as_deref().and_then(without_user_info),
    }
}

/// A clone URL without the `{org}@` Azure DevOps puts before the host (credentials travel in
/// a header, never in the URL).
fn without_user_info(url: &str) -> Option<String> {
    let mut url = Url::parse(url).ok()?;
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_microsoft_and_azure_devops_routes() {
        let authority = Url::parse("https://login.microsoftonline.com/organizations").unwrap();
        assert_eq!(
            authorize_url(&authority, "app", "https://edge.example/azure-devops/callback", "st", "ch").as_str(),
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize?client_id=app&response_type=code\
             &redirect_uri=https%3A%2F%2Fedge.example%2Fazure-devops%2Fcallback&response_mode=query\
             &prompt=consent&scope=499b84ac-1321-427f-aa17-267ca6975798%2F.default+offline_access&state=st&code_challenge=ch\
             &code_challenge_method=S256"
        );
        assert_eq!(
            token_url(&authority).as_str(),
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
        );
        let vssps = Url::parse("https://app.vssps.visualstudio.com").unwrap();
        assert_eq!(
            profile_url(&vssps).as_str(),
            "https://app.vssps.visualstudio.com/_apis/profile/profiles/me?api-version=7.1"
        );
        assert_eq!(
            accounts_url(&vssps, "abc-1").as_str(),
            "https://app.vssps.visualstudio.com/_apis/accounts?memberId=abc-1&api-version=7.1"
        );
        let org = organization_url(&Url::parse("https://dev.azure.com").unwrap(), "contoso");
        assert_eq!(org.as_str(), "https://dev.azure.com/contoso");
        assert_eq!(
            projects_url(&org, None).as_str(),
            "https://dev.azure.com/contoso/_apis/projects?%24top=20&api-version=7.1"
        );
        assert_eq!(
            projects_url(&org, Some("a b+c")).as_str(),
            "https://dev.azure.com/contoso/_apis/projects?%24top=20&continuationToken=a+b%2Bc&api-version=7.1"
        );
        assert_eq!(
            repositories_url(&org, "6ce954b1").as_str(),
            "https://dev.azure.com/contoso/6ce954b1/_apis/git/repositories?api-version=7.1"
        );
        // Behind a path prefix (the local emulator).
        let prefixed = organization_url(&Url::parse("http://127.0.0.1:9100/azure").unwrap(), "fab");
        assert_eq!(prefixed.as_str(), "http://127.0.0.1:9100/azure/fab");
    }

    #[test]
    fn organization_names_are_single_segments() {
        assert!(valid_organization_name("contoso-demo"));
        assert!(valid_organization_name("Fabrikam2"));
        for bad in ["", "a/b", "-x", "x-", "a b", "a%2Fb", &"x".repeat(51)] {
            assert!(!valid_organization_name(bad), "{bad}");
        }
    }

    #[test]
    fn repositories_become_records() {
        let project: Project = serde_json::from_str(
            r#"{"id":"p1","name":"Web","state":"wellFormed","visibility":"private"}"#,
        )
        .unwrap();
        let repo: Repository = serde_json::from_str(
            r#"{"id":"5febef5a-833d-4e14-b9c0-14cb638f91e6","name":"site","defaultBranch":"refs/heads/main",
                "webUrl":"https://dev.azure.com/contoso/Web/_git/site","isDisabled":false,"size":10}"#,
        )
        .unwrap();
        let record = to_record("contoso", &project, &repo);
        assert_eq!(
            record.id,
            RepoId::Text("5febef5a-833d-4e14-b9c0-14cb638f91e6".into())
        );
        assert_eq!(record.full_name, "contoso/Web/site");
        assert_eq!(record.default_branch.as_deref(), Some("main"));
        assert!(record.private);
        assert!(!record.archived);
        let empty: Repository =
            serde_json::from_str(r#"{"id":"e","name":"empty","isDisabled":true}"#).unwrap();
        let record = to_record("contoso", &project, &empty);
        assert_eq!(
            record.default_branch, None,
            "an empty repository has no branch"
        );
        assert!(record.archived);
        let accounts: List<Account> = serde_json::from_str(
            r#"{"count":1,"value":[{"accountId":"a1","accountUri":"https://x","accountName":"contoso"}]}"#,
        )
        .unwrap();
        assert_eq!(accounts.value[0].account_name, "contoso");
    }
}
