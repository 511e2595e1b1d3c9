//! Reading an org's access state from its provider in bounded steps, as plain logic: which URL
//! comes next, and how each answer (or refusal) is folded in. The edge (`edge::access::snapshot`)
//! makes the calls, keeps [`Progress`] in D1 between invocations, and stops when its subrequest
//! budget runs low; nothing here touches the network.
//!
//! Order per provider (each list followed page by page):
//! - GitHub: the org's settings, its members, its admins, its members without 2FA, outside
//!   collaborators, pending invitations; then per active repository the default branch's classic
//!   protection and the rules (rulesets) that apply to it, and, when the org has outside
//!   collaborators, those with admin on it. A personal account has no members: only its
//!   repositories are read.
//! - GitLab: the group (its 2FA requirement), its members with inherited ones; per project its
//!   protected branches and approval rules.
//! - Azure DevOps: the organization's user entitlements; per repository the branch policies on
//!   the default branch.
//!
//! A list the provider refuses (403, 422, …) becomes an [`Unknown`] with the reason, and the
//! reading goes on: what could be read is still recorded, and nothing unread passes for "none".

use crate::access::model::{
    AccessState, Collaborator, Invitation, Member, OrgSettings, Protection, RepositoryProtection,
    Unknown,
};
use crate::access::{azure_devops, github, gitlab, ParseError};
use crate::provider::Provider;
use serde::{Deserialize, Serialize};
use url::Url;

/// What is being read now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Settings,
    Members,
    Admins,
    TwoFactor,
    OutsideCollaborators,
    Invitations,
    Repositories,
    Done,
}

/// Where the org lives: what the URLs are built from.
pub struct Org<'a> {
    pub provider: Provider,
    /// GitHub: the org's login. Azure DevOps: the organization's name.
    pub login: &'a str,
    /// GitHub: `false` for a personal account (no members, no settings).
    pub is_organization: bool,
    /// GitHub: `GITHUB_API_URL`. GitLab: the group's API URL (`…/api/v4/groups/{id}`). Azure
    /// DevOps: the organization's URL (`{AZURE_DEVOPS_API_URL}/{organization}`).
    pub api_url: &'a Url,
    /// Azure DevOps: `AZURE_VSAEX_URL`.
    pub entitlements_url: Option<&'a Url>,
}

/// An active repository, as D1 knows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repository {
    pub id: String,
    pub full_name: String,
    pub default_branch: Option<String>,
    /// GitLab: the project id; Azure DevOps: the repository's GUID.
    pub provider_repo_id: String,
}

/// One provider answer to a request of a repository's step.
pub enum Answer {
    Ok(String),
    /// 404 (e.g. GitHub's "Branch not protected").
    NotFound,
    /// Refused (403, 422, …): why.
    Refused(String),
}

/// The next thing to read.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// One page of the current list.
    Page(Url),
    /// The requests of one repository, answered together (in this order).
    Repository(usize, Vec<Url>),
    Done,
}

/// Everything read so far, and where to go on. Kept as JSON in D1 between steps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    /// The next page of the current list (`None`: its first page).
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub logins: Vec<String>,
    #[serde(default)]
    pub admins: Vec<String>,
    /// `None` while unread or when refused.
    #[serde(default)]
    pub without_two_factor: Option<Vec<String>>,
    #[serde(default)]
    pub outside: Vec<String>,
    /// GitLab / Azure DevOps members, read with their role.
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub invitations: Vec<Invitation>,
    #[serde(default)]
    pub settings: OrgSettings,
    /// The repositories read, in order; the next one to read comes after the last of them.
    #[serde(default)]
    pub repositories: Vec<RepositoryProtection>,
    /// Outside collaborators' admin rights found so far: (login, repository full name).
    #[serde(default)]
    pub outside_admin: Vec<(String, String)>,
    #[serde(default)]
    pub unknown: Vec<Unknown>,
}

const PAGE: &str = "per_page=100";

fn with_query(mut url: Url, path: &[&str], query: &str) -> Url {
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(path);
    }
    url.set_query(if query.is_empty() { None } else { Some(query) });
    url
}

/// GitLab: the project API under the same `/api/v4` as the group's URL.
fn gitlab_project(group_api_url: &Url, project_id: &str, rest: &[&str]) -> Url {
    let mut url = group_api_url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().pop().pop();
        segments.push("projects").push(project_id).extend(rest);
    }
    url.set_query(Some(PAGE));
    url
}

impl Progress {
    /// The phase after `phase` for this org (skipping what its provider does not have).
    fn after(org: &Org<'_>, phase: Phase) -> Phase {
        use Phase::*;
        let order: &[Phase] = match org.provider {
            Provider::GitHub if org.is_organization => &[
                Settings,
                Members,
                Admins,
                TwoFactor,
                OutsideCollaborators,
                Invitations,
                Repositories,
                Done,
            ],
            Provider::GitHub => &[Settings, Repositories, Done],
            Provider::GitLab => &[Settings, Members, Repositories, Done],
            Provider::AzureDevOps => &[Members, Repositories, Done],
        };
        order
            .iter()
            .skip_while(|p| **p != phase)
            .nth(1)
            .copied()
            .unwrap_or(Done)
    }

    /// A fresh reading of `org`.
    pub fn start(org: &Org<'_>) -> Progress {
        let mut progress = Progress::default();
        match org.provider {
            Provider::AzureDevOps => {
                progress.phase = Phase::Members;
                // Nothing to read, so nothing would say it: the settings stay `None`.
                progress.unknown.push(Unknown {
                    part: "settings".into(),
                    reason: "Azure DevOps has no organization setting requiring 2FA (Microsoft Entra ID conditional access decides MFA, which it does not report), nor an org-wide default repository permission".into(),
                });
            }
            Provider::GitHub if !org.is_organization => {
                progress.phase = Phase::Repositories;
                progress.unknown.push(Unknown {
                    part: "members".into(),
                    reason: "a personal account has no members, collaborators list or org settings"
                        .into(),
                });
            }
            _ => {}
        }
        progress
    }

    fn advance(&mut self, org: &Org<'_>) {
        self.phase = Self::after(org, self.phase);
        self.next = None;
    }

    /// What to read next. `repositories` is every active repository, sorted by full name.
    pub fn next(&self, org: &Org<'_>, repositories: &[Repository]) -> Next {
        if let Some(next) = self.next.as_deref().and_then(|n| Url::parse(n).ok()) {
            return Next::Page(next);
        }
        let api = org.api_url;
        let login = org.login;
        let page = |path: &[&str], query: &str| Next::Page(with_query(api.clone(), path, query));
        match (org.provider, self.phase) {
            (_, Phase::Done) => Next::Done,
            (_, Phase::Repositories) => self.next_repository(org, repositories),
            (Provider::GitHub, Phase::Settings) => page(&["orgs", login], ""),
            (Provider::GitHub, Phase::Members) => page(&["orgs", login, "members"], PAGE),
            (Provider::GitHub, Phase::Admins) => {
                page(&["orgs", login, "members"], &format!("role=admin&{PAGE}"))
            }
            (Provider::GitHub, Phase::TwoFactor) => page(
                &["orgs", login, "members"],
                &format!("filter=2fa_disabled&{PAGE}"),
            ),
            (Provider::GitHub, Phase::OutsideCollaborators) => {
                page(&["orgs", login, "outside_collaborators"], PAGE)
            }
            (Provider::GitHub, Phase::Invitations) => page(&["orgs", login, "invitations"], PAGE),
            (Provider::GitLab, Phase::Settings) => page(&[], ""),
            (Provider::GitLab, Phase::Members) => page(&["members", "all"], PAGE),
            (Provider::AzureDevOps, Phase::Members) => match org.entitlements_url {
                Some(base) => Next::Page(with_query(
                    base.clone(),
                    &[login, "_apis", "userentitlements"],
                    "api-version=7.1-preview.3",
                )),
                None => Next::Done,
            },
            // Phases a provider does not have are skipped by `after`.
            _ => Next::Done,
        }
    }

    fn next_repository(&self, org: &Org<'_>, repositories: &[Repository]) -> Next {
        let index = match self.repositories.last() {
            None => 0,
            Some(last) => repositories.partition_point(|r| r.full_name <= last.full_name),
        };
        let Some(repo) = repositories.get(index) else {
            return Next::Done;
        };
        let Some(branch) = repo.default_branch.as_deref() else {
            // Read nothing: `repository_read` records it as unknown.
            return Next::Repository(index, Vec::new());
        };
        let api = org.api_url;
        let urls = match org.provider {
            Provider::GitHub => {
                let mut repo_path: Vec<&str> = vec!["repos"];
                repo_path.extend(repo.full_name.splitn(2, '/'));
                let at = |rest: &[&str], query: &str| {
                    let mut path = repo_path.clone();
                    path.extend(rest);
                    with_query(api.clone(), &path, query)
                };
                let mut urls = vec![
                    at(&["branches", branch, "protection"], ""),
                    at(&["rules", "branches", branch], ""),
                ];
                if !self.outside.is_empty() {
                    urls.push(at(
                        &["collaborators"],
                        &format!("affiliation=outside&permission=admin&{PAGE}"),
                    ));
                }
                urls
            }
            Provider::GitLab => vec![
                gitlab_project(api, &repo.provider_repo_id, &["protected_branches"]),
                gitlab_project(api, &repo.provider_repo_id, &["approval_rules"]),
            ],
            Provider::AzureDevOps => {
                let project = repo.full_name.split('/').nth(1).unwrap_or_default();
                let mut url = with_query(
                    api.clone(),
                    &[project, "_apis", "git", "policy", "configurations"],
                    "",
                );
                url.query_pairs_mut()
                    .append_pair("repositoryId", &repo.provider_repo_id)
                    .append_pair("refName", &format!("refs/heads/{branch}"))
                    .append_pair("api-version", "7.1");
                vec![url]
            }
        };
        Next::Repository(index, urls)
    }

    /// A page of the current list was read: `next` is its next page (already checked to stay
    /// on the provider's origin), if any.
    pub fn page_read(
        &mut self,
        org: &Org<'_>,
        body: &str,
        next: Option<String>,
        now: i64,
    ) -> Result<(), ParseError> {
        match (org.provider, self.phase) {
            (Provider::GitHub, Phase::Settings) => {
                self.settings = github::settings(body, now)?;
                if self.settings.two_factor_required.is_none() {
                    self.unknown.push(Unknown {
                        part: "settings".into(),
                        reason: "GitHub did not show the org's 2FA requirement and defaults: the App needs the organization Administration (read) permission".into(),
                    });
                }
            }
            (Provider::GitHub, Phase::Members) => self.logins.extend(github::logins(body)?),
            (Provider::GitHub, Phase::Admins) => self.admins.extend(github::logins(body)?),
            (Provider::GitHub, Phase::TwoFactor) => self
                .without_two_factor
                .get_or_insert_with(Vec::new)
                .extend(github::logins(body)?),
            (Provider::GitHub, Phase::OutsideCollaborators) => {
                self.outside.extend(github::logins(body)?)
            }
            (Provider::GitHub, Phase::Invitations) => {
                self.invitations.extend(github::invitations(body, now)?)
            }
            (Provider::GitLab, Phase::Settings) => {
                self.settings = OrgSettings {
                    two_factor_required: gitlab::two_factor_required(body)?,
                    since: now,
                    ..OrgSettings::default()
                };
                self.unknown.push(Unknown {
                    part: "settings.default_repository_permission".into(),
                    reason: "GitLab has no org-wide default repository permission".into(),
                });
                self.unknown.push(Unknown {
                    part: "settings.members_can_create_public_repositories".into(),
                    reason: "GitLab has no such group setting (project creation and visibility levels are separate settings, not read)".into(),
                });
            }
            (Provider::GitLab, Phase::Members) => self.members.extend(gitlab::members(body, now)?),
            (Provider::AzureDevOps, Phase::Members) => {
                let page = azure_devops::entitlements(body, now)?;
                self.members.extend(page.members);
                if let (Some(token), Some(base)) = (page.continuation, org.entitlements_url) {
                    let mut url = with_query(
                        base.clone(),
                        &[org.login, "_apis", "userentitlements"],
                        "api-version=7.1-preview.3",
                    );
                    url.query_pairs_mut()
                        .append_pair("continuationToken", &token);
                    self.next = Some(url.to_string());
                    return Ok(());
                }
            }
            _ => {}
        }
        match next {
            Some(next) if org.provider != Provider::AzureDevOps => self.next = Some(next),
            _ => self.advance(org),
        }
        Ok(())
    }

    /// The provider refused the current list: it is unknown, and why; the reading goes on.
    pub fn page_refused(&mut self, org: &Org<'_>, reason: &str) {
        let part = match (org.provider, self.phase) {
            (_, Phase::Settings) => "settings",
            (Provider::GitHub, Phase::TwoFactor) => "members.two_factor",
            (_, Phase::Members) | (_, Phase::Admins) => "members",
            (_, Phase::OutsideCollaborators) => "outside_collaborators",
            (_, Phase::Invitations) => "invitations",
            _ => "repositories",
        };
        // A list cut off halfway is as unknown as one never read.
        match self.phase {
            Phase::TwoFactor => self.without_two_factor = None,
            Phase::OutsideCollaborators => self.outside.clear(),
            Phase::Invitations => self.invitations.clear(),
            _ => {}
        }
        self.unknown.push(Unknown {
            part: part.into(),
            reason: reason.into(),
        });
        self.advance(org);
    }

    /// The answers to `Next::Repository(index, urls)`, in the same order.
    pub fn repository_read(
        &mut self,
        org: &Org<'_>,
        repo: &Repository,
        answers: Vec<Answer>,
        now: i64,
    ) -> Result<(), ParseError> {
        let protection = match repo.default_branch.as_deref() {
            None => Err("the repository has no default branch".to_string()),
            Some(branch) => self.protection(org, repo, branch, answers)?,
        };
        let protection = match protection {
            Ok(p) => Some(p),
            Err(reason) => {
                self.unknown.push(Unknown {
                    part: format!("repository:{}.protection", repo.full_name),
                    reason,
                });
                None
            }
        };
        self.repositories.push(RepositoryProtection {
            repository_id: repo.id.clone(),
            full_name: repo.full_name.clone(),
            default_branch: repo.default_branch.clone(),
            protection,
            since: now,
        });
        Ok(())
    }

    /// The default branch's protection, or why it is unknown.
    fn protection(
        &mut self,
        org: &Org<'_>,
        repo: &Repository,
        branch: &str,
        answers: Vec<Answer>,
    ) -> Result<Result<Protection, String>, ParseError> {
        let mut answers = answers.into_iter();
        let first = answers.next();
        let second = answers.next();
        Ok(match org.provider {
            Provider::GitHub => {
                let classic = match first {
                    Some(Answer::Ok(body)) => Some(github::classic_protection(&body)?),
                    Some(Answer::NotFound) => None,
                    Some(Answer::Refused(why)) => return Ok(Err(why)),
                    None => return Ok(Err("not read".into())),
                };
                let rules = match second {
                    Some(Answer::Ok(body)) => github::branch_rules(&body)?,
                    Some(Answer::NotFound) => github::unprotected(),
                    Some(Answer::Refused(why)) => return Ok(Err(why)),
                    None => return Ok(Err("not read".into())),
                };
                if let Some(Answer::Ok(body)) = answers.next() {
                    for login in github::logins(&body)? {
                        self.outside_admin.push((login, repo.full_name.clone()));
                    }
                }
                Ok(github::combine(classic, rules))
            }
            Provider::GitLab => {
                let branches = match first {
                    Some(Answer::Ok(body)) => body,
                    Some(Answer::Refused(why)) => return Ok(Err(why)),
                    Some(Answer::NotFound) | None => return Ok(Err("project not found".into())),
                };
                let approvals = match &second {
                    Some(Answer::Ok(body)) => Some(body.as_str()),
                    _ => None,
                };
                Ok(gitlab::protection(&branches, branch, approvals)?)
            }
            Provider::AzureDevOps => match first {
                Some(Answer::Ok(body)) => Ok(azure_devops::protection(
                    &body,
                    &repo.provider_repo_id,
                    &format!("refs/heads/{branch}"),
                )?),
                Some(Answer::Refused(why)) => Err(why),
                Some(Answer::NotFound) | None => Err("repository not found".into()),
            },
        })
    }

    /// The finished state (call once `next` says `Done`).
    pub fn finish(self, org: &Org<'_>, now: i64) -> AccessState {
        let Progress {
            logins,
            admins,
            without_two_factor,
            outside,
            mut members,
            mut invitations,
            settings,
            mut repositories,
            outside_admin,
            mut unknown,
            ..
        } = self;
        if org.provider == Provider::GitHub && org.is_organization {
            members = github::members(&logins, &admins, without_two_factor.as_deref(), now);
        } else if org.provider != Provider::GitHub {
            unknown.push(Unknown {
                part: "members.two_factor".into(),
                reason: match org.provider {
                    Provider::GitLab => "GitLab does not show group owners their members' 2FA status",
                    _ => "Azure DevOps leaves sign-in (and MFA) to Microsoft Entra ID, which it does not report",
                }
                .into(),
            });
        }
        members.sort_by(|a, b| a.login.cmp(&b.login));
        members.dedup_by(|a, b| a.login == b.login);
        let mut outside_collaborators: Vec<Collaborator> = outside
            .iter()
            .map(|login| {
                let mut admin_on: Vec<String> = outside_admin
                    .iter()
                    .filter(|(l, _)| l == login)
                    .map(|(_, repo)| repo.clone())
                    .collect();
                admin_on.sort();
                admin_on.dedup();
                Collaborator {
                    login: login.clone(),
                    admin_on: Some(admin_on),
                    since: now,
                }
            })
            .collect();
        outside_collaborators.sort_by(|a, b| a.login.cmp(&b.login));
        outside_collaborators.dedup_by(|a, b| a.login == b.login);
        invitations.sort_by(|a, b| a.login.cmp(&b.login));
        repositories.sort_by(|a, b| a.full_name.cmp(&b.full_name));
        AccessState {
            members,
            outside_collaborators,
            invitations,
            settings,
            repositories,
            unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str, id: &str) -> Repository {
        Repository {
            id: format!("r-{name}"),
            full_name: name.into(),
            default_branch: Some("main".into()),
            provider_repo_id: id.into(),
        }
    }

    fn page_url(next: Next) -> String {
        match next {
            Next::Page(url) => url.to_string(),
            other => panic!("not a page: {other:?}"),
        }
    }

    /// A GitHub org read from start to end: every list, a refused 2FA filter, a second page,
    /// then each repository; the state says what it could not see.
    #[test]
    fn a_github_org_is_read_list_by_list_then_repository_by_repository() {
        let api = Url::parse("https://api.github.com").unwrap();
        let org = Org {
            provider: Provider::GitHub,
            login: "acme",
            is_organization: true,
            api_url: &api,
            entitlements_url: None,
        };
        let repos = [repo("acme/a", "1"), repo("acme/b", "2")];
        let mut p = Progress::start(&org);
        let now = 1_700_000_000;
        assert_eq!(
            page_url(p.next(&org, &repos)),
            "https://api.github.com/orgs/acme"
        );
        p.page_read(&org, r#"{"login":"acme"}"#, None, now).unwrap();
        assert_eq!(
            p.unknown[0].part, "settings",
            "no admin fields: unknown, and why"
        );
        assert_eq!(
            page_url(p.next(&org, &repos)),
            "https://api.github.com/orgs/acme/members?per_page=100"
        );
        let next = "https://api.github.com/orgs/acme/members?per_page=100&page=2".to_string();
        p.page_read(&org, r#"[{"login":"alice"}]"#, Some(next.clone()), now)
            .unwrap();
        assert_eq!(
            page_url(p.next(&org, &repos)),
            next,
            "the next page of the same list"
        );
        p.page_read(&org, r#"[{"login":"bob"}]"#, None, now)
            .unwrap();
        assert_eq!(
            page_url(p.next(&org, &repos)),
            "https://api.github.com/orgs/acme/members?role=admin&per_page=100"
        );
        p.page_read(&org, r#"[{"login":"alice"}]"#, None, now)
            .unwrap();
        assert_eq!(
            page_url(p.next(&org, &repos)),
            "https://api.github.com/orgs/acme/members?filter=2fa_disabled&per_page=100"
        );
        p.page_refused(&org, "GitHub refused: 422");
        assert_eq!(
            page_url(p.next(&org, &repos)),
            "https://api.github.com/orgs/acme/outside_collaborators?per_page=100"
        );
        p.page_read(&org, r#"[{"login":"eve"}]"#, None, now)
            .unwrap();
        p.page_read(&org, "[]", None, now).unwrap(); // invitations
        let Next::Repository(0, urls) = p.next(&org, &repos) else {
            panic!("the first repository");
        };
        let urls: Vec<String> = urls.iter().map(Url::to_string).collect();
        assert_eq!(
            urls,
            [
                "https://api.github.com/repos/acme/a/branches/main/protection",
                "https://api.github.com/repos/acme/a/rules/branches/main",
                "https://api.github.com/repos/acme/a/collaborators?affiliation=outside&permission=admin&per_page=100",
            ]
        );
        p.repository_read(
            &org,
            &repos[0],
            vec![
                Answer::NotFound,
                Answer::Ok("[]".into()),
                Answer::Ok(r#"[{"login":"eve"}]"#.into()),
            ],
            now,
        )
        .unwrap();
        assert!(matches!(p.next(&org, &repos), Next::Repository(1, _)));
        p.repository_read(
            &org,
            &repos[1],
            vec![Answer::Refused("403".into()), Answer::Ok("[]".into())],
            now,
        )
        .unwrap();
        assert_eq!(p.next(&org, &repos), Next::Done);
        let state = p.finish(&org, now);
        let members: Vec<(&str, bool, Option<bool>)> = state
            .members
            .iter()
            .map(|m| (m.login.as_str(), m.admin, m.two_factor))
            .collect();
        assert_eq!(members, [("alice", true, None), ("bob", false, None)]);
        assert_eq!(
            state.outside_collaborators[0].admin_on,
            Some(vec!["acme/a".to_string()])
        );
        assert_eq!(
            state.repositories[0]
                .protection
                .as_ref()
                .map(|p| p.protected),
            Some(false)
        );
        assert_eq!(
            state.repositories[1].protection, None,
            "unreadable: unknown"
        );
        let parts: Vec<&str> = state.unknown.iter().map(|u| u.part.as_str()).collect();
        assert_eq!(
            parts,
            [
                "settings",
                "members.two_factor",
                "repository:acme/b.protection"
            ]
        );
    }

    #[test]
    fn gitlab_and_azure_devops_urls_stay_under_their_api() {
        let group = Url::parse("https://gitlab.example.com/api/v4/groups/12").unwrap();
        let org = Org {
            provider: Provider::GitLab,
            login: "grp",
            is_organization: true,
            api_url: &group,
            entitlements_url: None,
        };
        let repos = [repo("grp/app", "77")];
        let mut p = Progress::start(&org);
        assert_eq!(
            page_url(p.next(&org, &repos)),
            "https://gitlab.example.com/api/v4/groups/12"
        );
        p.page_read(
            &org,
            r#"{"id":12,"require_two_factor_authentication":true}"#,
            None,
            1,
        )
        .unwrap();
        assert_eq!(
            page_url(p.next(&org, &repos)),
            "https://gitlab.example.com/api/v4/groups/12/members/all?per_page=100"
        );
        p.page_read(&org, "[]", None, 1).unwrap();
        let Next::Repository(0, urls) = p.next(&org, &repos) else {
            panic!("the project");
        };
        assert_eq!(
            urls.iter().map(Url::as_str).collect::<Vec<_>>(),
            [
                "https://gitlab.example.com/api/v4/projects/77/protected_branches?per_page=100",
                "https://gitlab.example.com/api/v4/projects/77/approval_rules?per_page=100",
            ]
        );

        let api = Url::parse("https://dev.azure.com/contoso").unwrap();
        let vsaex = Url::parse("https://vsaex.dev.azure.com").unwrap();
        let org = Org {
            provider: Provider::AzureDevOps,
            login: "contoso",
            is_organization: true,
            api_url: &api,
            entitlements_url: Some(&vsaex),
        };
        let repos = [repo("contoso/Web/site", "9a1b")];
        let mut p = Progress::start(&org);
        assert_eq!(
            p.unknown
                .iter()
                .map(|u| u.part.as_str())
                .collect::<Vec<_>>(),
            ["settings"],
            "never read, so said to be unknown"
        );
        assert_eq!(
            page_url(p.next(&org, &repos)),
            "https://vsaex.dev.azure.com/contoso/_apis/userentitlements?api-version=7.1-preview.3"
        );
        p.page_read(&org, r#"{"members":[],"continuationToken":"abc"}"#, None, 1)
            .unwrap();
        assert_eq!(
            page_url(p.next(&org, &repos)),
            "https://vsaex.dev.azure.com/contoso/_apis/userentitlements?api-version=7.1-preview.3&continuationToken=abc"
        );
        p.page_read(&org, r#"{"members":[]}"#, None, 1).unwrap();
        let Next::Repository(0, urls) = p.next(&org, &repos) else {
            panic!("the repository");
        };
        assert_eq!(
            urls[0].as_str(),
            "https://dev.azure.com/contoso/Web/_apis/git/policy/configurations?repositoryId=9a1b&refName=refs%2Fheads%2Fmain&api-version=7.1"
        );
    }
}
