//! What GitHub, GitLab and Azure DevOps organizations have in common once connected: the
//! provider's name as stored in D1 and the repository record every listing is turned into, which
//! the page statements in `sql` read (`$.id`, `$.name`, `$.full_name`, `$.private`,
//! `$.default_branch`, `$.html_url`, `$.archived`, `$.visibility`).

use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    AzureDevOps,
}

impl Provider {
    /// The value of `organizations.provider` (and of the portal's `provider` filter).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::AzureDevOps => "azure_devops",
        }
    }

    pub fn from_db(value: &str) -> Option<Provider> {
        [Provider::GitHub, Provider::GitLab, Provider::AzureDevOps]
            .into_iter()
            .find(|p| p.as_str() == value)
    }

    /// The path segment of its connect routes and result pages (`/connect/{slug}/done`).
    pub fn slug(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::AzureDevOps => "azure-devops",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Provider> {
        [Provider::GitHub, Provider::GitLab, Provider::AzureDevOps]
            .into_iter()
            .find(|p| p.slug() == slug)
    }

    /// The first page of an org's repository listing, from its API root: GitHub's API (the
    /// installation's repositories), a GitLab group's API URL (its projects, subgroups included)
    /// or `{api}/{organization}` on Azure DevOps (its projects, whose repositories follow).
    pub fn first_page(self, api_url: &Url) -> Url {
        match self {
            Provider::GitHub => crate::github::first_repositories_url(api_url),
            Provider::GitLab => crate::oauth::gitlab::first_projects_url(api_url),
            Provider::AzureDevOps => crate::oauth::azure_devops::projects_url(api_url, None),
        }
    }

    /// How people call it.
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "GitHub",
            Provider::GitLab => "GitLab",
            Provider::AzureDevOps => "Azure DevOps",
        }
    }
}

/// The id of a tenant's OAuth connection to one provider user on one instance. Derived, not
/// random: the tokens sealed for it name it in their associated data, so it must be known before
/// the row is written, and a reconnect of the same user lands on the same row.
pub fn connection_id(tenant: &str, provider: Provider, base_url: &str, user_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for field in [tenant, provider.as_str(), base_url, user_id] {
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// A provider's repository id: an integer on GitHub and GitLab, a GUID on Azure DevOps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RepoId {
    Number(u64),
    Text(String),
}

/// One repository as the page statements write it, whatever the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryRecord {
    pub id: RepoId,
    pub name: String,
    /// The path people know it by (`group/sub/project`, `org/project/repo`).
    pub full_name: String,
    pub private: bool,
    pub default_branch: Option<String>,
    pub html_url: Option<String>,
    pub archived: bool,
    pub visibility: Option<String>,
    /// Where git clones it over https (GitHub `clone_url`, GitLab `http_url_to_repo`, Azure
    /// DevOps `remoteUrl` without its user info); credentials only ever go there when it is
    /// under the provider's configured origin (`credential_origins`).
    pub git_url: Option<String>,
}

impl From<&crate::github::Repository> for RepositoryRecord {
    fn from(r: &crate::github::Repository) -> Self {
        RepositoryRecord {
            id: RepoId::Number(r.id),
            name: r.name.clone(),
            full_name: r.full_name.clone(),
            private: r.private,
            default_branch: r.default_branch.clone(),
            html_url: r.html_url.clone(),
            archived: r.archived,
            visibility: r.visibility.clone(),
            git_url: r.clone_url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [Provider::GitHub, Provider::GitLab, Provider::AzureDevOps] {
            assert_eq!(Provider::from_db(p.as_str()), Some(p));
            assert_eq!(Provider::from_slug(p.slug()), Some(p));
        }
        assert_eq!(Provider::from_db("azure-devops"), None);
        assert_eq!(Provider::from_slug("azure_devops"), None);
    }

    #[test]
    fn connection_ids_are_stable_and_unambiguous() {
        let a = connection_id("t1", Provider::GitLab, "https://gitlab.com/", "7");
        assert_eq!(a.len(), 32);
        assert_eq!(
            a,
            connection_id("t1", Provider::GitLab, "https://gitlab.com/", "7")
        );
        assert_ne!(
            a,
            connection_id("t2", Provider::GitLab, "https://gitlab.com/", "7")
        );
        assert_ne!(
            a,
            connection_id("t1", Provider::AzureDevOps, "https://gitlab.com/", "7")
        );
        assert_ne!(
            a,
            connection_id("t1", Provider::GitLab, "https://gitlab.co", "m/7")
        );
    }

    #[test]
    fn records_serialize_ids_as_the_provider_has_them() {
        let record = |id| RepositoryRecord {
            id,
            name: "api".into(),
            full_name: "acme/api".into(),
            private: true,
            default_branch: None,
            html_url: None,
            archived: false,
            visibility: None,
            git_url: None,
        };
        let number = serde_json::to_value(record(RepoId::Number(42))).unwrap();
        assert_eq!(number["id"], 42);
        let guid = serde_json::to_value(record(RepoId::Text("5febef5a".into()))).unwrap();
        assert_eq!(guid["id"], "5febef5a");
        assert_eq!(guid["full_name"], "acme/api");
    }
}
