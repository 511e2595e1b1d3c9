//! The GitLab part of the admin API, under `/_emulator/gitlab/{instance}` (see `admin.rs`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::api::DEFAULT_TOKEN_TTL;
use super::state::{Instance, NamedProject, NewGroup, User, OWNER};
use crate::admin::RepositoryChanges;
use crate::http::{parse_body, Reply, Request};
use crate::oauth::{self, Realm};
use crate::server::Emulator;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSpec {
    username: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultUser {
    id: u64,
}

/// A member: a user id (owner) or `{"id","access_level"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum MemberSpec {
    Owner(u64),
    Level { id: u64, access_level: u32 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSpec {
    name: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    archived: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ProjectsSpec {
    Count(u32),
    Named(Vec<ProjectSpec>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupSpec {
    name: String,
    path: String,
    #[serde(default)]
    parent_id: Option<u64>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    members: Vec<MemberSpec>,
    #[serde(default)]
    projects: Option<ProjectsSpec>,
}

impl From<ProjectSpec> for NamedProject {
    fn from(spec: ProjectSpec) -> Self {
        NamedProject {
            name: spec.name,
            path: spec.path,
            visibility: spec.visibility,
            archived: spec.archived,
        }
    }
}

/// Answers `/_emulator/gitlab/{instance}/{rest}`.
pub fn route(em: &Emulator, request: &Request, instance: &str, rest: &[&str]) -> Reply {
    let realm = Realm::GitLab(instance.to_string());
    let result = match (request.method.as_str(), rest) {
        ("PUT", ["oauth"]) => {
            em.store().gitlab.entry(instance.to_string()).or_default();
            oauth::put_client(em, request, realm, DEFAULT_TOKEN_TTL)
        }
        ("PUT", ["users", id]) => parse_id(id).and_then(|id| put_user(em, request, instance, id)),
        ("PUT", ["default-user"]) => set_default_user(em, request, instance),
        ("PUT", ["groups", id]) => parse_id(id).and_then(|id| put_group(em, request, instance, id)),
        ("POST", ["groups", id, "projects"]) => {
            parse_id(id).and_then(|id| change_projects(em, request, instance, id))
        }
        ("DELETE", ["groups", id]) => parse_id(id).map(|id| {
            let deleted = instance_mut(em, instance, |inst| Ok(inst.delete_group(id)));
            Reply::json(200, &json!({ "deleted": deleted.unwrap_or(false) }))
        }),
        ("GET", ["projects"]) => list_projects(em, request, instance),
        ("POST", ["users", id, "revoke"]) => {
            parse_id(id).map(|id| oauth::revoke(em, &realm, &id.to_string()))
        }
        ("POST", ["expire"]) => oauth::expire(em, request, &realm),
        _ => Err(crate::github::no_route(request)),
    };
    result.unwrap_or_else(|reply| reply)
}

fn parse_id(id: &str) -> Result<u64, Reply> {
    id.parse()
        .map_err(|_| Reply::error(400, &format!("github-emulator: bad GitLab id {id:?}")))
}

/// Runs `change` on the instance (created if new); its error answers 400.
fn instance_mut<T>(
    em: &Emulator,
    instance: &str,
    change: impl FnOnce(&mut Instance) -> Result<T, String>,
) -> Result<T, Reply> {
    let mut store = em.store();
    let inst = store.gitlab.entry(instance.to_string()).or_default();
    change(inst).map_err(|message| {
        Reply::error(
            400,
            &format!("github-emulator: GitLab instance {instance}: {message}"),
        )
    })
}

fn put_user(em: &Emulator, request: &Request, instance: &str, id: u64) -> Result<Reply, Reply> {
    let spec: UserSpec = parse_body(request)?;
    let user = User {
        id,
        name: spec.name.unwrap_or_else(|| spec.username.clone()),
        username: spec.username,
    };
    let body = json!({ "id": user.id, "username": user.username, "name": user.name });
    instance_mut(em, instance, |inst| {
        inst.put_user(user);
        Ok(())
    })?;
    Ok(Reply::json(200, &body))
}

fn set_default_user(em: &Emulator, request: &Request, instance: &str) -> Result<Reply, Reply> {
    let DefaultUser { id } = parse_body(request)?;
    instance_mut(em, instance, |inst| {
        inst.set_default_user(id)
            .then_some(())
            .ok_or_else(|| format!("no user {id}"))
    })?;
    Ok(Reply::json(200, &json!({ "default_user": id })))
}

/// The admin view of a group: id, full path, members and its own projects.
fn group_summary(inst: &Instance, id: u64) -> Value {
    let group = inst.group(id);
    let projects: Vec<Value> = inst
        .projects()
        .filter(|p| p.group_id == id)
        .map(|p| json!({ "id": p.id, "name": p.name, "path": p.path, "visibility": p.visibility, "archived": p.archived }))
        .collect();
    json!({
        "id": id,
        "full_path": inst.full_path(id),
        "parent_id": group.and_then(|g| g.parent_id),
        "members": group.map(|g| g.members.keys().collect::<Vec<_>>()),
        "projects": projects,
    })
}

fn put_group(em: &Emulator, request: &Request, instance: &str, id: u64) -> Result<Reply, Reply> {
    let spec: GroupSpec = parse_body(request)?;
    let members: BTreeMap<u64, u32> = spec
        .members
        .iter()
        .map(|m| match *m {
            MemberSpec::Owner(id) => (id, OWNER),
            MemberSpec::Level { id, access_level } => (id, access_level),
        })
        .collect();
    let new = NewGroup {
        name: spec.name,
        path: spec.path,
        parent_id: spec.parent_id,
        visibility: spec.visibility,
        members,
    };
    let body = instance_mut(em, instance, |inst| {
        inst.put_group(id, new)?;
        match spec.projects {
            None => {}
            Some(ProjectsSpec::Count(count)) => inst.add_generated(id, count)?,
            Some(ProjectsSpec::Named(projects)) => {
                for project in projects {
                    inst.add_named(id, project.into())?;
                }
            }
        }
        Ok(group_summary(inst, id))
    })?;
    Ok(Reply::json(200, &body))
}

fn change_projects(
    em: &Emulator,
    request: &Request,
    instance: &str,
    id: u64,
) -> Result<Reply, Reply> {
    let changes: RepositoryChanges<u64> = parse_body(request)?;
    let body = instance_mut(em, instance, |inst| {
        inst.group(id).ok_or_else(|| format!("no group {id}"))?;
        inst.remove_projects(id, &changes.remove_ids);
        inst.add_generated(id, changes.add)?;
        for name in changes.add_names {
            inst.add_named(
                id,
                NamedProject {
                    name,
                    ..NamedProject::default()
                },
            )?;
        }
        Ok(group_summary(inst, id))
    })?;
    Ok(Reply::json(200, &body))
}

/// `GET .../projects[?group=<id>]`: every project, or those of a group and its subgroups.
fn list_projects(em: &Emulator, request: &Request, instance: &str) -> Result<Reply, Reply> {
    let group = request
        .query_param("group")
        .map(|g| parse_id(&g))
        .transpose()?;
    let store = em.store();
    let Some(inst) = store.gitlab.get(instance) else {
        return Ok(Reply::json(200, &json!([])));
    };
    let groups = group.map(|g| inst.subtree(g));
    let projects: Vec<Value> = inst
        .projects()
        .filter(|p| groups.as_ref().is_none_or(|g| g.contains(&p.group_id)))
        .map(|p| {
            json!({
                "id": p.id,
                "group_id": p.group_id,
                "name": p.name,
                "path_with_namespace": format!("{}/{}", inst.full_path(p.group_id), p.path),
                "visibility": p.visibility,
                "archived": p.archived,
            })
        })
        .collect();
    Ok(Reply::json(200, &json!(projects)))
}
