//! The GitLab part of the admin API, under `/_emulator/gitlab/{instance}` (see `admin.rs`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::api::DEFAULT_TOKEN_TTL;
use super::state::{
    ApprovalRule, Instance, NamedProject, NewGroup, ProtectedBranch, User, BRANCH_LEVELS,
    MAINTAINER, OWNER,
};
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
    #[serde(default)]
    default_branch: Option<String>,
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
            default_branch: spec.default_branch,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupAccess {
    require_two_factor_authentication: bool,
    #[serde(default)]
    two_factor_grace_period: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberLevel {
    access_level: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtectedBranchSpec {
    #[serde(default)]
    push_access_level: Option<u32>,
    #[serde(default)]
    merge_access_level: Option<u32>,
    #[serde(default)]
    allow_force_push: bool,
    #[serde(default)]
    code_owner_approval_required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalRuleSpec {
    name: String,
    approvals_required: u32,
    #[serde(default)]
    rule_type: Option<String>,
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
        ("PUT", ["groups", id, "access"]) => {
            parse_id(id).and_then(|id| put_group_access(em, request, instance, id))
        }
        ("PUT", ["groups", id, "members", user]) => parse_id(id).and_then(|id| {
            let user = parse_id(user)?;
            let MemberLevel { access_level } = parse_body(request)?;
            instance_mut(em, instance, |inst| {
                inst.set_member(id, user, access_level)?;
                Ok(group_summary(inst, id))
            })
            .map(|body| Reply::json(200, &body))
        }),
        ("DELETE", ["groups", id, "members", user]) => parse_id(id).and_then(|id| {
            let user = parse_id(user)?;
            instance_mut(em, instance, |inst| {
                inst.group_mut(id)?
                    .members
                    .remove(&user)
                    .ok_or_else(|| format!("user {user} is no direct member of group {id}"))?;
                Ok(group_summary(inst, id))
            })
            .map(|body| Reply::json(200, &body))
        }),
        ("PUT", ["projects", id, "protected_branches", name @ ..]) if !name.is_empty() => {
            parse_id(id).and_then(|id| protect_branch(em, request, instance, id, &joined(name)))
        }
        ("DELETE", ["projects", id, "protected_branches", name @ ..]) if !name.is_empty() => {
            parse_id(id).and_then(|id| {
                let name = joined(name);
                instance_mut(em, instance, |inst| {
                    let project = inst.project_mut(id)?;
                    let before = project.protected_branches.len();
                    project.protected_branches.retain(|b| b.name != name);
                    if project.protected_branches.len() == before {
                        return Err(format!("branch {name:?} of project {id} is not protected"));
                    }
                    Ok(Reply::json(200, &json!({ "deleted": true })))
                })
            })
        }
        ("PUT", ["projects", id, "approval_rules"]) => {
            parse_id(id).and_then(|id| put_approval_rules(em, request, instance, id))
        }
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
        "access_levels": group.map(|g| &g.members),
        "require_two_factor_authentication": group.map(|g| g.require_two_factor_authentication),
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
                "default_branch": p.default_branch,
            })
        })
        .collect();
    Ok(Reply::json(200, &json!(projects)))
}

/// Path segments joined with `/`, each percent-decoded (a protected branch may be
/// `release/*`, given raw or as `release%2F*`).
fn joined(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| crate::http::percent_decode(p))
        .collect::<Vec<_>>()
        .join("/")
}

fn put_group_access(
    em: &Emulator,
    request: &Request,
    instance: &str,
    id: u64,
) -> Result<Reply, Reply> {
    let spec: GroupAccess = parse_body(request)?;
    let body = instance_mut(em, instance, |inst| {
        let group = inst.group_mut(id)?;
        group.require_two_factor_authentication = spec.require_two_factor_authentication;
        if let Some(hours) = spec.two_factor_grace_period {
            group.two_factor_grace_period = hours;
        }
        Ok(json!({
            "id": id,
            "require_two_factor_authentication": group.require_two_factor_authentication,
            "two_factor_grace_period": group.two_factor_grace_period,
        }))
    })?;
    Ok(Reply::json(200, &body))
}

/// Creates or replaces a protected branch (levels default to Maintainers); answers it as the
/// API lists it.
fn protect_branch(
    em: &Emulator,
    request: &Request,
    instance: &str,
    id: u64,
    name: &str,
) -> Result<Reply, Reply> {
    let spec: ProtectedBranchSpec = parse_body(request)?;
    let push = spec.push_access_level.unwrap_or(MAINTAINER);
    let merge = spec.merge_access_level.unwrap_or(MAINTAINER);
    if let Some(bad) = [push, merge]
        .into_iter()
        .find(|l| !BRANCH_LEVELS.contains(l))
    {
        return Err(Reply::error(
            400,
            &format!("github-emulator: bad protected branch access level {bad} (0, 30, 40 or 60)"),
        ));
    }
    let body = instance_mut(em, instance, |inst| {
        inst.project_mut(id)?;
        let existing = inst
            .project(id)
            .and_then(|p| p.protected_branches.iter().find(|b| b.name == name))
            .map(|b| (b.id, b.push.0, b.merge.0));
        let (branch_id, push_id, merge_id) = match existing {
            Some(ids) => ids,
            None => (
                inst.next_rule_id(),
                inst.next_rule_id(),
                inst.next_rule_id(),
            ),
        };
        let branch = ProtectedBranch {
            id: branch_id,
            name: name.to_string(),
            push: (push_id, push),
            merge: (merge_id, merge),
            allow_force_push: spec.allow_force_push,
            code_owner_approval_required: spec.code_owner_approval_required,
        };
        let project = inst.project_mut(id)?;
        match project
            .protected_branches
            .iter_mut()
            .find(|b| b.name == name)
        {
            Some(slot) => *slot = branch.clone(),
            None => project.protected_branches.push(branch.clone()),
        }
        Ok(super::audit::protected_branch_json(&branch))
    })?;
    Ok(Reply::json(200, &body))
}

/// Replaces a project's approval rules; answers them as the API lists them.
fn put_approval_rules(
    em: &Emulator,
    request: &Request,
    instance: &str,
    id: u64,
) -> Result<Reply, Reply> {
    let specs: Vec<ApprovalRuleSpec> = parse_body(request)?;
    let body = instance_mut(em, instance, |inst| {
        inst.project_mut(id)?;
        let mut rules = Vec::new();
        for spec in specs {
            let rule_type = spec.rule_type.unwrap_or_else(|| "regular".into());
            if rule_type != "regular" && rule_type != "any_approver" {
                return Err(format!("bad rule_type {rule_type:?}"));
            }
            rules.push(ApprovalRule {
                id: inst.next_rule_id(),
                name: spec.name,
                rule_type,
                approvals_required: spec.approvals_required,
            });
        }
        let listed: Vec<Value> = rules
            .iter()
            .map(|r| json!({ "id": r.id, "name": r.name, "rule_type": r.rule_type, "approvals_required": r.approvals_required }))
            .collect();
        inst.project_mut(id)?.approval_rules = rules;
        Ok(json!(listed))
    })?;
    Ok(Reply::json(200, &body))
}
