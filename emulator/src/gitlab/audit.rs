//! What an access audit reads of GitLab: group members with their access levels, projects,
//! their protected branches and merge request approval rules (see the table in `mod.rs`).

use serde_json::{json, Value};

use super::api::{authenticate, endpoint, offset_page, site, visible_group, API_SCOPES};
use super::state::{Instance, Project, ProtectedBranch, User, DEVELOPER, GUEST, MAINTAINER};
use crate::http::{percent_decode, Reply, Request};
use crate::server::{Caller, Emulator};

fn project_not_found() -> Reply {
    Reply::json(404, &json!({ "message": "404 Project Not Found" }))
}

fn forbidden() -> Reply {
    Reply::json(403, &json!({ "message": "403 Forbidden" }))
}

/// `GET /api/v4/groups/:id/members[/all]`: direct members, or with `all` every member of the
/// group and its ancestors at their highest level; by user id, offset-paginated.
pub fn group_members(
    em: &Emulator,
    request: &Request,
    instance: &str,
    caller: &Caller,
    key: &str,
    inherited: bool,
) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, user) = authenticate(&store, instance, caller, &API_SCOPES)?;
    let group = visible_group(inst, user, key)?;
    let members: Vec<(&User, u32)> = if inherited {
        inst.inherited_members(group.id)
    } else {
        group
            .members
            .iter()
            .filter_map(|(id, level)| inst.user(*id).map(|u| (u, *level)))
            .collect()
    };
    let site = site(em, instance, inst);
    let path = if inherited { "members/all" } else { "members" };
    let url = endpoint(em, instance, &format!("groups/{key}/{path}"));
    Ok(offset_page(request, &url, &members, |(member, level)| {
        let mut json = site.user_json(member);
        json["access_level"] = json!(level);
        json["expires_at"] = Value::Null;
        json["membership_state"] = json!("active");
        json
    }))
}

/// The project `key` names (id or URL-encoded path) if the user sees it, and the user's level
/// there (inherited from its group); 404 otherwise.
fn visible_project<'s>(
    inst: &'s Instance,
    user: &User,
    key: &str,
) -> Result<(&'s Project, u32), Reply> {
    let project = inst
        .find_project(&percent_decode(key))
        .ok_or_else(project_not_found)?;
    match inst.access_level(project.group_id, user.id) {
        Some(level) if level >= GUEST => Ok((project, level)),
        _ => Err(project_not_found()),
    }
}

/// `GET /api/v4/projects/:id`.
pub fn get_project(
    em: &Emulator,
    instance: &str,
    caller: &Caller,
    key: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, user) = authenticate(&store, instance, caller, &API_SCOPES)?;
    let (project, _) = visible_project(inst, user, key)?;
    Ok(Reply::json(
        200,
        &site(em, instance, inst).project_json(project),
    ))
}

/// What the `access_level_description` of a protected branch rule says.
fn level_description(level: u32) -> &'static str {
    match level {
        0 => "No one",
        30 => "Developers + Maintainers",
        40 => "Maintainers",
        _ => "Admins",
    }
}

pub(super) fn protected_branch_json(branch: &ProtectedBranch) -> Value {
    let rule = |(id, level): (u64, u32), push: bool| {
        let mut rule = json!({
            "id": id,
            "access_level": level,
            "access_level_description": level_description(level),
            "user_id": null,
            "group_id": null,
        });
        if push {
            rule["deploy_key_id"] = Value::Null;
        }
        rule
    };
    json!({
        "id": branch.id,
        "name": branch.name,
        "push_access_levels": [rule(branch.push, true)],
        "merge_access_levels": [rule(branch.merge, false)],
        "unprotect_access_levels": [],
        "allow_force_push": branch.allow_force_push,
        "code_owner_approval_required": branch.code_owner_approval_required,
        "inherited": false,
    })
}

/// `GET /api/v4/projects/:id/protected_branches`: Maintainers and up (else 403).
pub fn protected_branches(
    em: &Emulator,
    request: &Request,
    instance: &str,
    caller: &Caller,
    key: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, user) = authenticate(&store, instance, caller, &API_SCOPES)?;
    let (project, level) = visible_project(inst, user, key)?;
    if level < MAINTAINER {
        return Err(forbidden());
    }
    let url = endpoint(em, instance, &format!("projects/{key}/protected_branches"));
    Ok(offset_page(
        request,
        &url,
        &project.protected_branches,
        protected_branch_json,
    ))
}

/// `GET /api/v4/projects/:id/approval_rules`: Developers and up (else 403).
pub fn approval_rules(
    em: &Emulator,
    request: &Request,
    instance: &str,
    caller: &Caller,
    key: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, user) = authenticate(&store, instance, caller, &API_SCOPES)?;
    let (project, level) = visible_project(inst, user, key)?;
    if level < DEVELOPER {
        return Err(forbidden());
    }
    let url = endpoint(em, instance, &format!("projects/{key}/approval_rules"));
    Ok(offset_page(
        request,
        &url,
        &project.approval_rules,
        |rule| {
            json!({
                "id": rule.id,
                "name": rule.name,
                "rule_type": rule.rule_type,
                "report_type": null,
                "eligible_approvers": [],
                "approvals_required": rule.approvals_required,
                "users": [],
                "groups": [],
                "contains_hidden_groups": false,
                "protected_branches": [],
                "applies_to_all_protected_branches": false,
            })
        },
    ))
}
