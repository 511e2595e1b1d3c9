//! The admin routes of `access/` that protect branches (classic protection and rulesets) and
//! group members (teams); see `admin.rs`.

use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::{bad, change, conflict, missing, repo_of};
use super::api::protection_json;
use super::events;
use super::state::{next_id, Protection, ProtectionSpec, Rule, Ruleset, Source, Team};
use crate::http::{parse_body, Reply, Request};
use crate::server::Emulator;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesetSpec {
    name: String,
    #[serde(default = "active")]
    enforcement: String,
    #[serde(default = "default_branch_only")]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    rules: Vec<Value>,
    /// Organization rulesets only: `repository_name` patterns (default `["~ALL"]`).
    #[serde(default)]
    repositories: Option<Vec<String>>,
    #[serde(default)]
    exclude_repositories: Option<Vec<String>>,
}

fn active() -> String {
    "active".into()
}

fn default_branch_only() -> Vec<String> {
    vec!["~DEFAULT_BRANCH".into()]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamSpec {
    name: String,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    privacy: Option<String>,
}

pub(super) fn put_protection(
    em: &Emulator,
    request: &Request,
    id: u64,
    repo: &str,
    branch: &str,
) -> Result<Reply, Reply> {
    let spec: ProtectionSpec = parse_body(request)?;
    change(em, id, |inst| {
        let repo = repo_of(inst, repo)?;
        let now = Utc::now();
        let protections = &mut inst.access.protections;
        let existing = protections
            .iter()
            .position(|p| p.repository == repo.name && p.branch == branch);
        let before = existing.map(|i| protections.remove(i));
        let protection = Protection {
            id: before.as_ref().map_or_else(next_id, |b| b.id),
            repository: repo.name.clone(),
            branch: branch.to_string(),
            created_at: before.as_ref().map_or(now, |b| b.created_at),
            updated_at: if before.as_ref().is_some_and(|b| b.spec == spec) {
                before.as_ref().expect("some").updated_at
            } else {
                now
            },
            spec,
        };
        protections.push(protection.clone());
        let events = match &before {
            None => vec![events::protection_rule(
                em,
                inst,
                &repo,
                "created",
                &protection,
                None,
            )],
            Some(b) if b.spec != protection.spec => {
                vec![events::protection_rule(
                    em,
                    inst,
                    &repo,
                    "edited",
                    &protection,
                    Some(b),
                )]
            }
            Some(_) => Vec::new(),
        };
        let body = json!({ "protection": protection_json(em, &inst.account.login, &protection) });
        Ok((body, events))
    })
}

pub(super) fn delete_protection(
    em: &Emulator,
    id: u64,
    repo: &str,
    branch: &str,
) -> Result<Reply, Reply> {
    change(em, id, |inst| {
        let repo = repo_of(inst, repo)?;
        let protections = &mut inst.access.protections;
        let index = protections
            .iter()
            .position(|p| p.repository == repo.name && p.branch == branch)
            .ok_or_else(|| missing(format!("branch {branch} of {} is not protected", repo.name)))?;
        let protection = protections.remove(index);
        let event = events::protection_rule(em, inst, &repo, "deleted", &protection, None);
        Ok((json!({ "deleted": true }), vec![event]))
    })
}

/// Creates (`rid` none) or replaces a repository's (`repo`) or the organization's ruleset.
pub(super) fn put_ruleset(
    em: &Emulator,
    request: &Request,
    id: u64,
    repo: Option<&str>,
    rid: Option<u64>,
) -> Result<Reply, Reply> {
    let spec: RulesetSpec = parse_body(request)?;
    if !["active", "disabled", "evaluate"].contains(&spec.enforcement.as_str()) {
        return Err(bad("enforcement must be active, disabled or evaluate"));
    }
    let rules = spec
        .rules
        .iter()
        .map(Rule::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    change(em, id, |inst| {
        let source = match repo {
            Some(name) => {
                if spec.repositories.is_some() || spec.exclude_repositories.is_some() {
                    return Err(bad("repositories are for organization rulesets"));
                }
                Source::Repository(repo_of(inst, name)?.name)
            }
            None => Source::Organization {
                include: spec
                    .repositories
                    .clone()
                    .unwrap_or_else(|| vec!["~ALL".into()]),
                exclude: spec.exclude_repositories.clone().unwrap_or_default(),
            },
        };
        let now = Utc::now();
        let rulesets = &mut inst.access.rulesets;
        let before = match rid {
            None => None,
            Some(rid) => {
                let index = rulesets
                    .iter()
                    .position(|r| r.id == rid && same_scope(&r.source, &source))
                    .ok_or_else(|| missing(format!("no ruleset {rid} there")))?;
                Some(rulesets.remove(index))
            }
        };
        let ruleset = Ruleset {
            id: rid.unwrap_or_else(next_id),
            name: spec.name,
            enforcement: spec.enforcement,
            include: spec.include,
            exclude: spec.exclude,
            rules,
            source,
            created_at: before.as_ref().map_or(now, |b| b.created_at),
            updated_at: now,
        };
        rulesets.push(ruleset.clone());
        rulesets.sort_by_key(|r| r.id);
        let action = if before.is_some() {
            "edited"
        } else {
            "created"
        };
        let event = events::ruleset(em, inst, action, &ruleset, before.as_ref());
        let body =
            json!({ "id": ruleset.id, "ruleset": ruleset.json(&em.base_url, &inst.account.login) });
        Ok((body, vec![event]))
    })
}

/// Whether two sources are the same repository, or both the organization.
fn same_scope(a: &Source, b: &Source) -> bool {
    match (a, b) {
        (Source::Repository(x), Source::Repository(y)) => x == y,
        (Source::Organization { .. }, Source::Organization { .. }) => true,
        _ => false,
    }
}

pub(super) fn delete_ruleset(
    em: &Emulator,
    id: u64,
    repo: Option<&str>,
    rid: u64,
) -> Result<Reply, Reply> {
    change(em, id, |inst| {
        let scope = match repo {
            Some(name) => Source::Repository(repo_of(inst, name)?.name),
            None => Source::Organization {
                include: Vec::new(),
                exclude: Vec::new(),
            },
        };
        let rulesets = &mut inst.access.rulesets;
        let index = rulesets
            .iter()
            .position(|r| r.id == rid && same_scope(&r.source, &scope))
            .ok_or_else(|| missing(format!("no ruleset {rid} there")))?;
        let ruleset = rulesets.remove(index);
        let event = events::ruleset(em, inst, "deleted", &ruleset, None);
        Ok((json!({ "deleted": true }), vec![event]))
    })
}

/// A team slug from its name: lowercase, runs of other characters become `-`.
fn slug(name: &str) -> String {
    name.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

pub(super) fn add_team(em: &Emulator, request: &Request, id: u64) -> Result<Reply, Reply> {
    let spec: TeamSpec = parse_body(request)?;
    let privacy = spec.privacy.unwrap_or_else(|| "closed".into());
    if privacy != "closed" && privacy != "secret" {
        return Err(bad("privacy must be closed or secret"));
    }
    change(em, id, |inst| {
        let slug = spec.slug.unwrap_or_else(|| slug(&spec.name));
        if slug.is_empty() || inst.access.team(&slug).is_some() {
            return Err(conflict(format!("team slug {slug:?} is taken or empty")));
        }
        let team = Team {
            id: next_id(),
            name: spec.name,
            slug,
            description: spec.description,
            privacy,
            members: Vec::new(),
        };
        inst.access.teams.push(team.clone());
        let event = events::team_created(em, inst, &team);
        Ok((json!({ "id": team.id, "slug": team.slug }), vec![event]))
    })
}

pub(super) fn team_member(
    em: &Emulator,
    id: u64,
    slug: &str,
    login: &str,
    add: bool,
) -> Result<Reply, Reply> {
    change(em, id, |inst| {
        let user = inst
            .access
            .member(login)
            .map(|m| m.user.clone())
            .ok_or_else(|| bad(format!("{login} is not a member of the organization")))?;
        let team = inst
            .access
            .teams
            .iter_mut()
            .find(|t| t.slug.eq_ignore_ascii_case(slug))
            .ok_or_else(|| missing(format!("no team {slug}")))?;
        let present = team.members.iter().any(|u| u.is(login));
        let action = match (add, present) {
            (true, false) => {
                team.members.push(user.clone());
                Some("added")
            }
            (false, true) => {
                team.members.retain(|u| !u.is(login));
                Some("removed")
            }
            (false, false) => return Err(missing(format!("{login} is not in team {slug}"))),
            (true, true) => None,
        };
        let team = team.clone();
        let events = action
            .map(|action| events::team_membership(em, inst, action, &team, &user))
            .into_iter()
            .collect();
        Ok((
            json!({ "team": team.slug, "members": team.members.iter().map(|u| &u.login).collect::<Vec<_>>() }),
            events,
        ))
    })
}
