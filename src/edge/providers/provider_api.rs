//! Calls to GitLab and Azure DevOps with an OAuth access token (through `outbound`): who signed
//! in, the groups / organizations they can read, and pages of repositories as records.

use crate::auth::credential_origins::Issuer;
use crate::edge::bindings::Ctx;
use crate::edge::providers::outbound::{call, Answer, Auth, CallError};
use crate::oauth::azure_devops::{self as azure, Account};
use crate::oauth::gitlab::{self, Group, Project, User};
use crate::provider::RepositoryRecord;
use futures_util::future::join_all;
use url::Url;
use worker::Method;

async fn get(ctx: &Ctx, token: &str, issuer: Issuer<'_>, url: &Url) -> Result<Answer, CallError> {
    call(ctx, Method::Get, url, Auth::Bearer(token, issuer)).await
}

/// The `rel="next"` link of a GitLab answer, which must stay on the instance's origin.
fn next_link(answer: &Answer, instance: &Url) -> Result<Option<Url>, CallError> {
    crate::github::next_page(answer.link.as_deref(), instance)
        .map_err(|e| CallError::Refused(format!("unusable Link header from GitLab: {e:?}")))
}

pub async fn gitlab_user(ctx: &Ctx, token: &str, instance: &Url) -> Result<User, CallError> {
    get(
        ctx,
        token,
        Issuer::GitLab(instance),
        &gitlab::user_url(instance),
    )
    .await?
    .parse("GitLab user")
}

/// The groups to connect: the chosen ones (each must be readable), or every top-level group the
/// user reads with Reporter access or more (at most `MAX_GROUPS`).
pub async fn gitlab_groups(
    ctx: &Ctx,
    token: &str,
    instance: &Url,
    chosen: &[String],
) -> Result<Vec<Group>, CallError> {
    if !chosen.is_empty() {
        let mut groups = Vec::with_capacity(chosen.len());
        for path in chosen {
            let group: Group = get(
                ctx,
                token,
                Issuer::GitLab(instance),
                &gitlab::group_url(instance, path),
            )
            .await?
            .parse("GitLab group")?;
            if !groups.iter().any(|g: &Group| g.id == group.id) {
                groups.push(group);
            }
        }
        return Ok(groups);
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut url = Some(gitlab::groups_url(instance));
    while let Some(page) = url.take() {
        let answer = get(ctx, token, Issuer::GitLab(instance), &page).await?;
        groups.extend(answer.parse::<Vec<Group>>("GitLab groups")?);
        if groups.len() >= gitlab::MAX_GROUPS {
            groups.truncate(gitlab::MAX_GROUPS);
            break;
        }
        url = next_link(&answer, instance)?;
    }
    Ok(groups)
}

/// One page of repositories and the URL of the next one.
pub struct RepositoryPage {
    pub repositories: Vec<RepositoryRecord>,
    pub next: Option<Url>,
}

/// A page of a group's projects (subgroups included), read with a token of `instance`.
pub async fn gitlab_projects(
    ctx: &Ctx,
    token: &str,
    instance: &Url,
    url: &Url,
) -> Result<RepositoryPage, CallError> {
    let answer = get(ctx, token, Issuer::GitLab(instance), url).await?;
    let projects: Vec<Project> = answer.parse("GitLab projects")?;
    Ok(RepositoryPage {
        repositories: projects.iter().map(RepositoryRecord::from).collect(),
        next: next_link(&answer, url)?,
    })
}

/// The signed-in Azure DevOps user's id and name.
pub async fn azure_profile(ctx: &Ctx, token: &str) -> Result<azure::Profile, CallError> {
    get(
        ctx,
        token,
        Issuer::Microsoft,
        &azure::profile_url(&ctx.config.azure_vssps_url),
    )
    .await?
    .parse("Azure DevOps profile")
}

/// The organizations to connect: the chosen ones (each must be one the user belongs to), or all
/// of them (at most `MAX_ORGANIZATIONS`). `Err(NotFound)` names no organization: a chosen one
/// is missing.
pub async fn azure_organizations(
    ctx: &Ctx,
    token: &str,
    member_id: &str,
    chosen: &[String],
) -> Result<Vec<Account>, CallError> {
    let url = azure::accounts_url(&ctx.config.azure_vssps_url, member_id);
    let accounts: azure::List<Account> = get(ctx, token, Issuer::Microsoft, &url)
        .await?
        .parse("Azure DevOps accounts")?;
    let mut accounts: Vec<Account> = accounts
        .value
        .into_iter()
        .filter(|a| azure::valid_organization_name(&a.account_name))
        .collect();
    if chosen.is_empty() {
        accounts.truncate(azure::MAX_ORGANIZATIONS);
        return Ok(accounts);
    }
    chosen
        .iter()
        .map(|name| {
            accounts
                .iter()
                .find(|a| a.account_name.eq_ignore_ascii_case(name))
                .cloned()
                .ok_or(CallError::NotFound)
        })
        .collect()
}

/// Repository listings fetched at once.
const CONCURRENT_LISTINGS: usize = 4;

/// A page of an organization's projects (`url`, under `organization_url`) with the Git
/// repositories of each, fetched concurrently: 1 + `PROJECTS_PER_PAGE` requests at most.
pub async fn azure_repositories(
    ctx: &Ctx,
    token: &str,
    organization_url: &Url,
    url: &Url,
) -> Result<RepositoryPage, CallError> {
    let organization = organization_url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
        .to_string();
    let answer = get(ctx, token, Issuer::Microsoft, url).await?;
    let projects: azure::List<azure::Project> = answer.parse("Azure DevOps projects")?;
    let organization = organization.as_str();
    let mut listings = Vec::with_capacity(projects.value.len());
    // A few at a time: a Worker has at most six connections open at once.
    for chunk in projects.value.chunks(CONCURRENT_LISTINGS) {
        listings.extend(
            join_all(chunk.iter().map(|project| async move {
                let url = azure::repositories_url(organization_url, &project.id);
                let repos: azure::List<azure::Repository> =
                    match get(ctx, token, Issuer::Microsoft, &url).await {
                        Ok(answer) => answer.parse("Azure DevOps repositories")?,
                        // Deleted since the project page was read: nothing of it to back up.
                        Err(CallError::NotFound) => azure::List { value: Vec::new() },
                        Err(e) => return Err(e),
                    };
                Ok::<_, CallError>(
                    repos
                        .value
                        .iter()
                        .map(|r| azure::to_record(organization, project, r))
                        .collect::<Vec<_>>(),
                )
            }))
            .await,
        );
    }
    let mut repositories = Vec::new();
    for listing in listings {
        repositories.extend(listing?);
    }
    let next = answer
        .continuation
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| azure::projects_url(organization_url, Some(t)));
    Ok(RepositoryPage { repositories, next })
}
