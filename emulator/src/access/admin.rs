//! The admin routes of `access/`, under `/_emulator/installations/{id}/` (documented in
//! `crate::admin`'s table). A change is made under the store lock; the webhooks it causes are
//! delivered after the lock is released (`webhooks.rs`) and listed in the answer's
//! `deliveries`.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::events;
use super::protections::{
    add_team, delete_protection, delete_ruleset, put_protection, put_ruleset, team_member,
};
use super::state::{
    next_id, valid_base_permission, Access, Invitation, Member, OrgRole, Outside, Permission,
    Permissions, Settings, User,
};
use crate::http::{parse_body, percent_decode, Reply, Request};
use crate::server::Emulator;
use crate::state::{Installation, RepoDetails};
use crate::webhooks::Event;

fn default_two_factor() -> bool {
    true
}

fn default_role() -> OrgRole {
    OrgRole::Member
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberSpec {
    login: String,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default = "default_role")]
    role: OrgRole,
    #[serde(default = "default_two_factor")]
    two_factor: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutsideSpec {
    login: String,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default = "default_two_factor")]
    two_factor: bool,
    /// Repositories where they are admin.
    #[serde(default)]
    admin_on: Vec<String>,
    /// Other grants: repository name → role.
    #[serde(default)]
    repositories: BTreeMap<String, Permission>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvitationSpec {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default = "direct_member")]
    role: String,
}

fn direct_member() -> String {
    "direct_member".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessSpec {
    #[serde(default)]
    members: Vec<MemberSpec>,
    #[serde(default)]
    outside_collaborators: Vec<OutsideSpec>,
    #[serde(default)]
    invitations: Vec<InvitationSpec>,
    #[serde(default)]
    settings: Settings,
    #[serde(default)]
    permissions: Permissions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberPatch {
    #[serde(default)]
    role: Option<OrgRole>,
    #[serde(default)]
    two_factor: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollaboratorSpec {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default = "write")]
    permission: Permission,
    #[serde(default = "default_two_factor")]
    two_factor: bool,
}

fn write() -> Permission {
    Permission::Write
}

pub(super) fn bad(message: impl AsRef<str>) -> Reply {
    Reply::error(400, &format!("github-emulator: {}", message.as_ref()))
}

pub(super) fn missing(message: impl AsRef<str>) -> Reply {
    Reply::error(404, &format!("github-emulator: {}", message.as_ref()))
}

pub(super) fn conflict(message: impl AsRef<str>) -> Reply {
    Reply::error(409, &format!("github-emulator: {}", message.as_ref()))
}

/// Answers `/_emulator/installations/{id}/{rest}` for the access routes.
pub fn route(em: &Emulator, request: &Request, id: u64, rest: &[&str]) -> Reply {
    let joined = |parts: &[&str]| {
        parts
            .iter()
            .map(|p| percent_decode(p))
            .collect::<Vec<_>>()
            .join("/")
    };
    let result = match (request.method.as_str(), rest) {
        ("GET", ["access"]) => em
            .store()
            .installation(id)
            .map(|inst| Reply::json(200, &access_json(em, inst)))
            .ok_or_else(|| unknown(id)),
        ("PUT", ["access"]) => put_access(em, request, id),
        ("POST", ["members"]) => add_member(em, request, id),
        ("PATCH", ["members", login]) => patch_member(em, request, id, &percent_decode(login)),
        ("DELETE", ["members", login]) => remove_member(em, id, &percent_decode(login)),
        ("POST", ["invitations"]) => invite(em, request, id),
        ("PUT", ["repositories", repo, "collaborators", login]) => put_collaborator(
            em,
            request,
            id,
            &percent_decode(repo),
            &percent_decode(login),
        ),
        ("DELETE", ["repositories", repo, "collaborators", login]) => {
            remove_collaborator(em, id, &percent_decode(repo), &percent_decode(login))
        }
        ("PUT", ["repositories", repo, "protection", branch @ ..]) if !branch.is_empty() => {
            put_protection(em, request, id, &percent_decode(repo), &joined(branch))
        }
        ("DELETE", ["repositories", repo, "protection", branch @ ..]) if !branch.is_empty() => {
            delete_protection(em, id, &percent_decode(repo), &joined(branch))
        }
        ("POST", ["repositories", repo, "rulesets"]) => {
            put_ruleset(em, request, id, Some(&percent_decode(repo)), None)
        }
        ("PUT", ["repositories", repo, "rulesets", rid]) => parse(rid)
            .and_then(|rid| put_ruleset(em, request, id, Some(&percent_decode(repo)), Some(rid))),
        ("DELETE", ["repositories", repo, "rulesets", rid]) => {
            parse(rid).and_then(|rid| delete_ruleset(em, id, Some(&percent_decode(repo)), rid))
        }
        ("POST", ["rulesets"]) => put_ruleset(em, request, id, None, None),
        ("PUT", ["rulesets", rid]) => {
            parse(rid).and_then(|rid| put_ruleset(em, request, id, None, Some(rid)))
        }
        ("DELETE", ["rulesets", rid]) => {
            parse(rid).and_then(|rid| delete_ruleset(em, id, None, rid))
        }
        ("POST", ["teams"]) => add_team(em, request, id),
        ("PUT", ["teams", slug, "members", login]) => {
            team_member(em, id, &percent_decode(slug), &percent_decode(login), true)
        }
        ("DELETE", ["teams", slug, "members", login]) => {
            team_member(em, id, &percent_decode(slug), &percent_decode(login), false)
        }
        _ => Err(crate::github::no_route(request)),
    };
    result.unwrap_or_else(|reply| reply)
}

fn parse(id: &str) -> Result<u64, Reply> {
    id.parse().map_err(|_| bad(format!("bad id {id:?}")))
}

fn unknown(id: u64) -> Reply {
    missing(format!("no installation {id}"))
}

/// Runs `change` on the installation under the store lock, then delivers the events it
/// returns (lock released) and answers its JSON with `deliveries` added.
pub(super) fn change(
    em: &Emulator,
    id: u64,
    change: impl FnOnce(&mut Installation) -> Result<(Value, Vec<Event>), Reply>,
) -> Result<Reply, Reply> {
    let (mut body, events) = {
        let mut store = em.store();
        let inst = store.installation_mut(id).ok_or_else(|| unknown(id))?;
        change(inst)?
    };
    body["deliveries"] = json!(crate::webhooks::deliver(em, events));
    Ok(Reply::json(200, &body))
}

/// A repository of the installation, by name.
pub(super) fn repo_of(inst: &Installation, name: &str) -> Result<RepoDetails, Reply> {
    inst.repo_named(name)
        .map(|d| d.into_owned())
        .ok_or_else(|| {
            missing(format!(
                "installation {} has no repository {name:?}",
                inst.id
            ))
        })
}

/// The state as `GET …/access` shows it: `PUT`'s shape with ids filled in, plus protections,
/// rulesets and teams.
fn access_json(em: &Emulator, inst: &Installation) -> Value {
    let access = &inst.access;
    let members: Vec<Value> = access
        .members
        .iter()
        .map(|m| json!({ "login": m.user.login, "id": m.user.id, "role": m.role, "two_factor": m.two_factor }))
        .collect();
    let outside: Vec<Value> = access
        .outside
        .iter()
        .map(|o| {
            let admin_on: Vec<&String> = o
                .repositories
                .iter()
                .filter(|(_, p)| *p == Permission::Admin)
                .map(|(name, _)| name)
                .collect();
            let repositories: BTreeMap<&String, Permission> =
                o.repositories.iter().map(|(n, p)| (n, *p)).collect();
            json!({ "login": o.user.login, "id": o.user.id, "two_factor": o.two_factor,
                    "admin_on": admin_on, "repositories": repositories })
        })
        .collect();
    let invitations: Vec<Value> = access
        .invitations
        .iter()
        .map(|i| json!({ "id": i.id, "login": i.login, "email": i.email, "role": i.role }))
        .collect();
    let protections: Vec<Value> = access
        .protections
        .iter()
        .map(|p| json!({ "id": p.id, "repository": p.repository, "branch": p.branch, "spec": p.spec }))
        .collect();
    let rulesets: Vec<Value> = access
        .rulesets
        .iter()
        .map(|r| r.json(&em.base_url, &inst.account.login))
        .collect();
    let teams: Vec<Value> = access
        .teams
        .iter()
        .map(|t| {
            json!({ "id": t.id, "name": t.name, "slug": t.slug,
                         "members": t.members.iter().map(|u| &u.login).collect::<Vec<_>>() })
        })
        .collect();
    json!({
        "members": members,
        "outside_collaborators": outside,
        "invitations": invitations,
        "settings": access.settings,
        "permissions": access.permissions,
        "protections": protections,
        "rulesets": rulesets,
        "teams": teams,
    })
}

const INVITATION_ROLES: [&str; 4] = [
    "direct_member",
    "admin",
    "billing_manager",
    "hiring_manager",
];

fn new_invitation(access: &Access, spec: InvitationSpec) -> Result<Invitation, Reply> {
    if spec.login.is_some() == spec.email.is_some() {
        return Err(bad("an invitation needs a login or an email, not both"));
    }
    if !INVITATION_ROLES.contains(&spec.role.as_str()) {
        return Err(bad(format!("bad invitation role {:?}", spec.role)));
    }
    if let Some(login) = spec.login.as_deref().filter(|l| access.member(l).is_some()) {
        return Err(conflict(format!("{login} is already a member")));
    }
    let user_id = spec
        .login
        .as_ref()
        .map(|login| User::new(login.clone(), spec.id).id);
    Ok(Invitation {
        id: next_id(),
        login: spec.login,
        user_id,
        email: spec.email,
        role: spec.role,
        created_at: Utc::now(),
    })
}

fn check_permissions(permissions: &Permissions) -> Result<(), Reply> {
    let levels = [
        &permissions.members,
        &permissions.organization_administration,
        &permissions.administration,
    ];
    match levels
        .into_iter()
        .flatten()
        .find(|l| *l != "read" && *l != "write")
    {
        Some(level) => Err(bad(format!(
            "bad permission level {level:?} (read, write or null)"
        ))),
        None => Ok(()),
    }
}

fn put_access(em: &Emulator, request: &Request, id: u64) -> Result<Reply, Reply> {
    let spec: AccessSpec = parse_body(request)?;
    if !valid_base_permission(&spec.settings.default_repository_permission) {
        return Err(bad(
            "default_repository_permission must be read, write, admin or none",
        ));
    }
    check_permissions(&spec.permissions)?;
    let mut store = em.store();
    let inst = store.installation_mut(id).ok_or_else(|| unknown(id))?;
    let mut access = Access {
        settings: spec.settings,
        permissions: spec.permissions,
        protections: std::mem::take(&mut inst.access.protections),
        rulesets: std::mem::take(&mut inst.access.rulesets),
        teams: std::mem::take(&mut inst.access.teams),
        ..Access::default()
    };
    for m in spec.members {
        if access.member(&m.login).is_some() {
            return Err(bad(format!("member {} listed twice", m.login)));
        }
        access.members.push(Member {
            user: User::new(m.login, m.id),
            role: m.role,
            two_factor: m.two_factor,
        });
    }
    for o in spec.outside_collaborators {
        if access.member(&o.login).is_some() || access.outside(&o.login).is_some() {
            return Err(bad(format!(
                "{} is listed twice (or also a member)",
                o.login
            )));
        }
        let grants = o
            .admin_on
            .iter()
            .map(|name| (name.clone(), Permission::Admin))
            .chain(o.repositories);
        let mut repositories: Vec<(String, Permission)> = Vec::new();
        for (name, permission) in grants {
            let canonical = repo_of(inst, &name)
                .map_err(|_| bad(format!("no repository {name:?}")))?
                .name;
            repositories.retain(|(n, _)| *n != canonical);
            repositories.push((canonical, permission));
        }
        access.outside.push(Outside {
            user: User::new(o.login, o.id),
            two_factor: o.two_factor,
            repositories,
        });
    }
    for spec in spec.invitations {
        let invitation = new_invitation(&access, spec)?;
        access.invitations.push(invitation);
    }
    for team in &mut access.teams {
        team.members
            .retain(|u| access.members.iter().any(|m| m.user.is(&u.login)));
    }
    inst.access = access;
    Ok(Reply::json(200, &access_json(em, inst)))
}

fn add_member(em: &Emulator, request: &Request, id: u64) -> Result<Reply, Reply> {
    let spec: MemberSpec = parse_body(request)?;
    change(em, id, |inst| {
        let access = &mut inst.access;
        if access.member(&spec.login).is_some() {
            return Err(conflict(format!("{} is already a member", spec.login)));
        }
        // Joining converts an outside collaborator and accepts a pending invitation.
        access.outside.retain(|o| !o.user.is(&spec.login));
        access.invitations.retain(|i| {
            !i.login
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(&spec.login))
        });
        let member = Member {
            user: User::new(spec.login, spec.id),
            role: spec.role,
            two_factor: spec.two_factor,
        };
        access.members.push(member.clone());
        let event = events::membership(em, inst, "member_added", &member.user, member.role);
        Ok((
            json!({ "login": member.user.login, "id": member.user.id }),
            vec![event],
        ))
    })
}

fn patch_member(em: &Emulator, request: &Request, id: u64, login: &str) -> Result<Reply, Reply> {
    let patch: MemberPatch = parse_body(request)?;
    change(em, id, |inst| {
        let member = inst
            .access
            .members
            .iter_mut()
            .find(|m| m.user.is(login))
            .ok_or_else(|| missing(format!("{login} is not a member")))?;
        let role_changed = patch.role.is_some_and(|r| r != member.role);
        member.role = patch.role.unwrap_or(member.role);
        member.two_factor = patch.two_factor.unwrap_or(member.two_factor);
        let member = member.clone();
        // GitHub has no action for a role change: it reports the membership again as
        // `member_added` with the new role. A 2FA change sends nothing.
        let events = if role_changed {
            vec![events::membership(
                em,
                inst,
                "member_added",
                &member.user,
                member.role,
            )]
        } else {
            Vec::new()
        };
        Ok((
            json!({ "login": member.user.login, "role": member.role, "two_factor": member.two_factor }),
            events,
        ))
    })
}

fn remove_member(em: &Emulator, id: u64, login: &str) -> Result<Reply, Reply> {
    change(em, id, |inst| {
        let access = &mut inst.access;
        let index = access
            .members
            .iter()
            .position(|m| m.user.is(login))
            .ok_or_else(|| missing(format!("{login} is not a member")))?;
        let member = access.members.remove(index);
        access.leave_teams(login);
        let event = events::membership(em, inst, "member_removed", &member.user, member.role);
        Ok((json!({ "removed": member.user.login }), vec![event]))
    })
}

fn invite(em: &Emulator, request: &Request, id: u64) -> Result<Reply, Reply> {
    let spec: InvitationSpec = parse_body(request)?;
    change(em, id, |inst| {
        let invitation = new_invitation(&inst.access, spec)?;
        inst.access.invitations.push(invitation.clone());
        let event = events::invited(em, inst, &invitation);
        Ok((json!({ "id": invitation.id }), vec![event]))
    })
}

fn put_collaborator(
    em: &Emulator,
    request: &Request,
    id: u64,
    repo: &str,
    login: &str,
) -> Result<Reply, Reply> {
    let spec: CollaboratorSpec = parse_body(request)?;
    change(em, id, |inst| {
        let repo = repo_of(inst, repo)?;
        let access = &mut inst.access;
        if access.member(login).is_some() {
            return Err(bad(format!(
                "{login} is a member, not an outside collaborator"
            )));
        }
        if access.outside(login).is_none() {
            access.outside.push(Outside {
                user: User::new(login.to_string(), spec.id),
                two_factor: spec.two_factor,
                repositories: Vec::new(),
            });
        }
        let outside = access
            .outside
            .iter_mut()
            .find(|o| o.user.is(login))
            .expect("just added");
        let before = outside.on(&repo.name);
        outside.repositories.retain(|(n, _)| *n != repo.name);
        outside
            .repositories
            .push((repo.name.clone(), spec.permission));
        let user = outside.user.clone();
        let events = if before == Some(spec.permission) {
            Vec::new()
        } else {
            vec![events::collaborator(
                em,
                inst,
                &repo,
                &user,
                before,
                Some(spec.permission),
            )]
        };
        Ok((
            json!({ "login": user.login, "id": user.id, "permission": spec.permission }),
            events,
        ))
    })
}

fn remove_collaborator(em: &Emulator, id: u64, repo: &str, login: &str) -> Result<Reply, Reply> {
    change(em, id, |inst| {
        let repo = repo_of(inst, repo)?;
        let access = &mut inst.access;
        let outside = access
            .outside
            .iter_mut()
            .find(|o| o.user.is(login) && o.on(&repo.name).is_some())
            .ok_or_else(|| {
                missing(format!(
                    "{login} is no outside collaborator on {}",
                    repo.name
                ))
            })?;
        let before = outside.on(&repo.name);
        outside.repositories.retain(|(n, _)| *n != repo.name);
        let user = outside.user.clone();
        access.outside.retain(|o| !o.repositories.is_empty());
        let event = events::collaborator(em, inst, &repo, &user, before, None);
        Ok((json!({ "removed": user.login }), vec![event]))
    })
}
