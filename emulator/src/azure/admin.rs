//! The Microsoft / Azure DevOps part of the admin API, under `/_emulator/azure` (see
//! `admin.rs`).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::{parse_policy, LICENSES};
use super::entra::DEFAULT_TOKEN_TTL;
use super::state::{checked_guid, NewProject, Org, User};
use crate::admin::RepositoryChanges;
use crate::http::{parse_body, percent_decode, Reply, Request};
use crate::oauth::{self, Realm};
use crate::server::Emulator;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserSpec {
    display_name: String,
    #[serde(default)]
    email_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultUser {
    id: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ReposSpec {
    Count(u32),
    Named(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSpec {
    name: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    repositories: Option<ReposSpec>,
}

/// A member: a user GUID (Basic access) or `{"id","access_level"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum MemberSpec {
    Basic(String),
    Level {
        id: String,
        #[serde(default)]
        access_level: Option<String>,
    },
}

/// `true` (401, as Azure DevOps answers), or the status: 401 or 403.
#[derive(Deserialize)]
#[serde(untagged)]
enum DeniedSpec {
    Flag(bool),
    Status(u16),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgSpec {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    members: Vec<MemberSpec>,
    #[serde(default)]
    projects: Vec<ProjectSpec>,
    #[serde(default)]
    entitlements_denied: Option<DeniedSpec>,
}

/// Answers `/_emulator/azure/{rest}`.
pub fn route(em: &Emulator, request: &Request, rest: &[&str]) -> Reply {
    let result = match (request.method.as_str(), rest) {
        ("PUT", ["oauth"]) => oauth::put_client(em, request, Realm::Azure, DEFAULT_TOKEN_TTL),
        ("PUT", ["users", id]) => guid(id).and_then(|id| put_user(em, request, id)),
        ("PUT", ["default-user"]) => set_default_user(em, request),
        ("PUT", ["orgs", name]) => put_org(em, request, &percent_decode(name)),
        ("GET", ["orgs", name]) => {
            let store = em.store();
            store
                .azure
                .org(&percent_decode(name))
                .map(|org| Reply::json(200, &org_summary(org)))
                .ok_or_else(|| unknown_org(name))
        }
        ("DELETE", ["orgs", name]) => {
            let deleted = em.store().azure.delete_org(&percent_decode(name));
            Ok(Reply::json(200, &json!({ "deleted": deleted })))
        }
        ("POST", ["orgs", name, "projects", project, "repositories"]) => {
            change_repos(em, request, &percent_decode(name), &percent_decode(project))
        }
        ("PUT", ["orgs", name, "projects", project, "repositories", repo, "policies"]) => {
            put_policies(
                em,
                request,
                &percent_decode(name),
                &percent_decode(project),
                &percent_decode(repo),
            )
        }
        ("POST", ["users", id, "revoke"]) => {
            guid(id).map(|id| oauth::revoke(em, &Realm::Azure, &id))
        }
        ("POST", ["expire"]) => oauth::expire(em, request, &Realm::Azure),
        _ => Err(crate::github::no_route(request)),
    };
    result.unwrap_or_else(|reply| reply)
}

fn bad_request(message: &str) -> Reply {
    Reply::error(400, &format!("github-emulator: {message}"))
}

fn guid(text: &str) -> Result<String, Reply> {
    checked_guid(text).map_err(|m| bad_request(&m))
}

fn unknown_org(name: &str) -> Reply {
    Reply::error(
        404,
        &format!("github-emulator: no Azure DevOps organization {name}"),
    )
}

/// The admin view of an organization, with every id.
fn org_summary(org: &Org) -> Value {
    let projects: Vec<Value> = org
        .projects
        .iter()
        .map(|p| {
            let repos: Vec<Value> = p
                .repos
                .iter()
                .map(|r| json!({ "id": r.id, "name": r.name }))
                .collect();
            json!({ "id": p.id, "name": p.name, "visibility": p.visibility, "repositories": repos })
        })
        .collect();
    json!({
        "id": org.id,
        "name": org.name,
        "members": org.members,
        "access_levels": org.members.iter().map(|m| (m.clone(), json!(org.license(m)))).collect::<serde_json::Map<_, _>>(),
        "entitlements_denied": org.entitlements_denied,
        "projects": projects,
    })
}

fn put_user(em: &Emulator, request: &Request, id: String) -> Result<Reply, Reply> {
    let spec: UserSpec = parse_body(request)?;
    let email = spec
        .email_address
        .unwrap_or_else(|| format!("user-{}@example.com", &id[..8]));
    let user = User {
        id,
        display_name: spec.display_name,
        email,
    };
    let body =
        json!({ "id": user.id, "displayName": user.display_name, "emailAddress": user.email });
    em.store().azure.put_user(user);
    Ok(Reply::json(200, &body))
}

fn set_default_user(em: &Emulator, request: &Request) -> Result<Reply, Reply> {
    let DefaultUser { id } = parse_body(request)?;
    if em.store().azure.set_default_user(&id) {
        Ok(Reply::json(
            200,
            &json!({ "default_user": id.to_ascii_lowercase() }),
        ))
    } else {
        Err(bad_request(&format!("no Microsoft user {id}")))
    }
}

fn put_org(em: &Emulator, request: &Request, name: &str) -> Result<Reply, Reply> {
    let spec: OrgSpec = parse_body(request)?;
    let projects = spec
        .projects
        .into_iter()
        .map(|p| {
            let (generated, named) = match p.repositories {
                None => (0, Vec::new()),
                Some(ReposSpec::Count(count)) => (count, Vec::new()),
                Some(ReposSpec::Named(names)) => (0, names),
            };
            NewProject {
                name: p.name,
                id: p.id,
                visibility: p.visibility,
                generated,
                named,
            }
        })
        .collect();
    let denied = match spec.entitlements_denied {
        None | Some(DeniedSpec::Flag(false)) => None,
        Some(DeniedSpec::Flag(true)) => Some(401),
        Some(DeniedSpec::Status(status @ (401 | 403))) => Some(status),
        Some(DeniedSpec::Status(other)) => {
            return Err(bad_request(&format!(
                "entitlements_denied must be true, false, 401 or 403, not {other}"
            )))
        }
    };
    let mut members = Vec::new();
    let mut licenses = std::collections::BTreeMap::new();
    for member in spec.members {
        let (id, level) = match member {
            MemberSpec::Basic(id) => (id, None),
            MemberSpec::Level { id, access_level } => (id, access_level),
        };
        if let Some(level) = level {
            if !LICENSES.iter().any(|(l, _)| *l == level) {
                return Err(bad_request(&format!("unknown access_level {level:?}")));
            }
            licenses.insert(id.to_ascii_lowercase(), level);
        }
        members.push(id);
    }
    let mut store = em.store();
    store
        .azure
        .put_org(name, spec.id, members, projects)
        .map_err(|m| bad_request(&format!("organization {name}: {m}")))?;
    let org = store.azure.org_mut(name).ok_or_else(|| unknown_org(name))?;
    org.licenses = licenses;
    org.licenses.retain(|_, l| l != "express");
    org.entitlements_denied = denied;
    Ok(Reply::json(200, &org_summary(org)))
}

fn change_repos(
    em: &Emulator,
    request: &Request,
    org: &str,
    project: &str,
) -> Result<Reply, Reply> {
    let changes: RepositoryChanges<String> = parse_body(request)?;
    let mut store = em.store();
    let target = store
        .azure
        .project_mut(org, project)
        .ok_or_else(|| bad_request(&format!("no project {project} in organization {org}")))?;
    let remove: HashSet<String> = changes
        .remove_ids
        .iter()
        .map(|id| id.to_ascii_lowercase())
        .collect();
    target.remove_ids(&remove);
    target.add_generated(changes.add);
    changes
        .add_names
        .into_iter()
        .for_each(|name| target.add_named(name));
    let org = store.azure.org(org).ok_or_else(|| unknown_org(org))?;
    Ok(Reply::json(200, &org_summary(org)))
}

/// Replaces a repository's branch policies (ids continue per organization); answers them as
/// `{"count","value":[{"id","type","isEnabled","isBlocking","refName","matchKind","settings"}]}`.
fn put_policies(
    em: &Emulator,
    request: &Request,
    org: &str,
    project: &str,
    repo: &str,
) -> Result<Reply, Reply> {
    let specs: Vec<Value> = parse_body(request)?;
    let mut store = em.store();
    let target = store.azure.org_mut(org).ok_or_else(|| unknown_org(org))?;
    let mut next = target.last_policy_id;
    let policies = specs
        .iter()
        .map(|spec| {
            next += 1;
            parse_policy(spec, next)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| bad_request(&m))?;
    let repository = target
        .projects
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case(project) || p.id.eq_ignore_ascii_case(project))
        .and_then(|p| {
            p.repos
                .iter_mut()
                .find(|r| r.name.eq_ignore_ascii_case(repo) || r.id.eq_ignore_ascii_case(repo))
        })
        .ok_or_else(|| bad_request(&format!("no repository {repo} in {org}/{project}")))?;
    let value: Vec<Value> = policies
        .iter()
        .map(|p| {
            json!({ "id": p.id, "type": p.type_name, "isEnabled": p.enabled, "isBlocking": p.blocking,
                    "refName": p.ref_name, "matchKind": p.match_kind, "settings": p.settings })
        })
        .collect();
    repository.policies = policies;
    target.last_policy_id = next;
    Ok(Reply::json(
        200,
        &json!({ "count": value.len(), "value": value }),
    ))
}
