//! Azure DevOps answers: the VSSPS profile and accounts (`/vssps`) and the organization APIs
//! (`/azure/{org}`, standing for `https://dev.azure.com/{org}`).

use chrono::SecondsFormat;
use serde_json::{json, Value};

use super::state::{Org, Project, Repo, User};
use crate::http::{encode_segment, percent_decode, Reply, Request};
use crate::server::{Caller, Emulator};
use crate::state::Store;

/// `$top` of the project list when absent.
pub const DEFAULT_TOP: usize = 100;

/// An Azure DevOps error body (`{"$id","innerException","message","typeName","typeKey",…}`).
pub(super) fn vss_error(status: u16, message: &str, type_key: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "$id": "1",
            "innerException": null,
            "message": message,
            "typeName": format!("Microsoft.VisualStudio.Services.WebApi.{type_key}, Microsoft.VisualStudio.Services.WebApi"),
            "typeKey": type_key,
            "errorCode": 0,
            "eventId": 3000,
        }),
    )
}

pub(super) fn unauthorized(user: &str) -> Reply {
    let mut reply = vss_error(
        401,
        &format!("TF400813: The user '{user}' is not authorized to access this resource."),
        "UnauthorizedRequestException",
    );
    reply.set_header("www-authenticate", "Bearer");
    reply
}

/// The token's user; no, unknown, revoked or expired tokens answer 401.
pub(super) fn authenticate<'s>(store: &'s Store, caller: &Caller) -> Result<&'s User, Reply> {
    match caller {
        Caller::Provider(holder) => store
            .azure
            .user(&holder.user_id)
            .ok_or_else(|| unauthorized(&holder.user_id)),
        _ => Err(unauthorized("")),
    }
}

/// `GET /vssps/_apis/profile/profiles/me`.
pub fn profile(em: &Emulator, caller: &Caller) -> Result<Reply, Reply> {
    let store = em.store();
    let user = authenticate(&store, caller)?;
    Ok(Reply::json(
        200,
        &json!({
            "displayName": user.display_name,
            "publicAlias": user.id,
            "emailAddress": user.email,
            "coreRevision": 1,
            "timeStamp": "2020-01-01T00:00:00+00:00",
            "id": user.id,
            "revision": 1,
        }),
    ))
}

/// `GET /vssps/_apis/accounts?memberId=<caller's id>`: the caller's organizations.
pub fn accounts(em: &Emulator, request: &Request, caller: &Caller) -> Result<Reply, Reply> {
    let store = em.store();
    let user = authenticate(&store, caller)?;
    let member = request
        .query_param("memberId")
        .or_else(|| request.query_param("ownerId"))
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            vss_error(
                400,
                "VS403271: Either memberId or ownerId must be provided.",
                "ArgumentException",
            )
        })?;
    if !member.eq_ignore_ascii_case(&user.id) {
        return Err(unauthorized(&user.id));
    }
    let accounts: Vec<Value> = store
        .azure
        .orgs_of(&user.id)
        .map(|org| {
            json!({
                "accountId": org.id,
                "accountUri": format!("{}/vssps/{}/", em.base_url, org.name),
                "accountName": org.name,
                "properties": {},
            })
        })
        .collect();
    Ok(Reply::json(
        200,
        &json!({ "count": accounts.len(), "value": accounts }),
    ))
}

/// The organization `name` if the user is a member; 404 otherwise.
pub(super) fn member_org<'s>(store: &'s Store, user: &User, name: &str) -> Result<&'s Org, Reply> {
    store
        .azure
        .org(name)
        .filter(|o| o.members.contains(&user.id))
        .ok_or_else(|| {
            vss_error(
                404,
                &format!("VS800045: The organization '{name}' does not exist or you do not have access to it."),
                "OrganizationNotFoundException",
            )
        })
}

pub(super) fn find_project<'o>(org: &'o Org, key: &str) -> Result<&'o Project, Reply> {
    org.project(key).ok_or_else(|| {
        vss_error(
            404,
            &format!(
                "TF200016: The following project does not exist: {key}. Verify that the name of \
                 the project is correct and that the project exists on the specified Azure \
                 DevOps Server."
            ),
            "ProjectDoesNotExistWithNameException",
        )
    })
}

struct Site<'a> {
    /// `{emulator}/azure`.
    api: String,
    org: &'a Org,
}

impl Site<'_> {
    fn project_json(&self, project: &Project) -> Value {
        json!({
            "id": project.id,
            "name": project.name,
            "url": format!("{}/{}/_apis/projects/{}", self.api, self.org.name, project.id),
            "state": "wellFormed",
            "revision": 1,
            "visibility": project.visibility,
            "lastUpdateTime": project.last_update.to_rfc3339_opts(SecondsFormat::Millis, true),
        })
    }

    fn repo_json(&self, project: &Project, repo: &Repo) -> Value {
        let org = &self.org.name;
        let path = format!(
            "{org}/{}/_git/{}",
            encode_segment(&project.name),
            encode_segment(&repo.name)
        );
        json!({
            "id": repo.id,
            "name": repo.name,
            "url": format!("{}/{org}/{}/_apis/git/repositories/{}", self.api, project.id, repo.id),
            "project": self.project_json(project),
            "defaultBranch": "refs/heads/main",
            "size": repo.size,
            "remoteUrl": format!("{}/{path}", self.api),
            "sshUrl": format!(
                "git@ssh.dev.azure.com:v3/{org}/{}/{}",
                encode_segment(&project.name),
                encode_segment(&repo.name)
            ),
            "webUrl": format!("https://dev.azure.com/{path}"),
            "isDisabled": false,
            "isInMaintenance": false,
        })
    }
}

fn bad_argument(name: &str, value: &str) -> Reply {
    vss_error(
        400,
        &format!("The value '{value}' is not valid for parameter '{name}'."),
        "InvalidArgumentValueException",
    )
}

/// A non-negative integer query parameter.
pub(super) fn count_param(request: &Request, name: &str) -> Result<Option<usize>, Reply> {
    match request.query_param(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|_| bad_argument(name, &value)),
    }
}

/// `GET /azure/{org}/_apis/projects`: `$top` (default 100), `$skip`, `continuationToken`; the
/// `x-ms-continuationtoken` response header when more remain.
pub fn list_projects(
    em: &Emulator,
    request: &Request,
    caller: &Caller,
    org: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let user = authenticate(&store, caller)?;
    let org = member_org(&store, user, &percent_decode(org))?;
    let top = count_param(request, "$top")?.unwrap_or(DEFAULT_TOP).max(1);
    let start = count_param(request, "continuationToken")?
        .or(count_param(request, "$skip")?)
        .unwrap_or(0);
    let mut projects: Vec<&Project> = org.projects.iter().collect();
    projects.sort_by_key(|p| (p.name.to_lowercase(), p.id.clone()));
    let site = site(em, org);
    let end = start.saturating_add(top).min(projects.len());
    let page: Vec<Value> = projects[start.min(end)..end]
        .iter()
        .map(|p| site.project_json(p))
        .collect();
    let mut reply = Reply::json(200, &json!({ "count": page.len(), "value": page }));
    if end < projects.len() {
        reply.set_header("x-ms-continuationtoken", end.to_string());
    }
    Ok(reply)
}

/// `GET /azure/{org}/_apis/projects/{project id or name}`.
pub fn get_project(
    em: &Emulator,
    caller: &Caller,
    org: &str,
    project: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let user = authenticate(&store, caller)?;
    let org = member_org(&store, user, &percent_decode(org))?;
    let project = find_project(org, &percent_decode(project))?;
    Ok(Reply::json(200, &site(em, org).project_json(project)))
}

/// `GET /azure/{org}[/{project}]/_apis/git/repositories`: every repository of the project (or
/// of the organization), by name, unpaginated.
pub fn list_repositories(
    em: &Emulator,
    caller: &Caller,
    org: &str,
    project: Option<&str>,
) -> Result<Reply, Reply> {
    let store = em.store();
    let user = authenticate(&store, caller)?;
    let org = member_org(&store, user, &percent_decode(org))?;
    let projects: Vec<&Project> = match project {
        Some(key) => vec![find_project(org, &percent_decode(key))?],
        None => org.projects.iter().collect(),
    };
    let mut repos: Vec<(&Project, &Repo)> = projects
        .iter()
        .flat_map(|p| p.repos.iter().map(move |r| (*p, r)))
        .collect();
    repos.sort_by_key(|(p, r)| (r.name.to_lowercase(), p.name.to_lowercase()));
    let site = site(em, org);
    let value: Vec<Value> = repos.iter().map(|(p, r)| site.repo_json(p, r)).collect();
    Ok(Reply::json(
        200,
        &json!({ "count": value.len(), "value": value }),
    ))
}

fn site<'a>(em: &Emulator, org: &'a Org) -> Site<'a> {
    Site {
        api: format!("{}/azure", em.base_url),
        org,
    }
}
