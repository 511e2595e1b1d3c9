//! The webhook payloads access changes cause, shaped like GitHub's (octokit/webhooks schemas):
//! `organization` (`member_added`, `member_removed`, `member_invited`), `member` (`added`,
//! `edited`, `removed`), `team` (`created`), `membership` (`added`, `removed`),
//! `branch_protection_rule` and `repository_ruleset` (`created`, `edited`, `deleted`). Every
//! payload carries `organization`, `installation` (`id`, `node_id`) and `sender` (the admin
//! user, `emulator-admin`).

use serde_json::{json, Map, Value};

use super::state::{Invitation, OrgRole, Permission, Protection, Ruleset, Source, Team, User};
use super::{admin_user, org_json, timestamp, user_json};
use crate::server::Emulator;
use crate::state::{Account, Installation, Repo, RepoDetails};
use crate::webhooks::Event;

/// A payload with `action` and the fields every one carries, then `fields`.
fn payload(em: &Emulator, inst: &Installation, action: &str, fields: Value) -> Value {
    let mut body = json!({ "action": action });
    if let Value::Object(fields) = fields {
        body.as_object_mut().expect("object").extend(fields);
    }
    body["organization"] = org_json(em, &inst.account);
    body["installation"] = json!({
        "id": inst.id,
        "node_id": crate::github::node_id("MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u", inst.id),
    });
    body["sender"] = user_json(em, &admin_user());
    body
}

fn repository(em: &Emulator, inst: &Installation, repo: &RepoDetails) -> Value {
    crate::github::repository_json(em, inst, &Repo::Named(Box::new(repo.clone())))
}

/// An invitation as `GET /orgs/{org}/invitations` and `member_invited` show it.
pub fn invitation_json(em: &Emulator, account: &Account, invitation: &Invitation) -> Value {
    json!({
        "id": invitation.id,
        "node_id": crate::github::node_id("OI", invitation.id),
        "login": invitation.login,
        "email": invitation.email,
        "role": invitation.role,
        "created_at": timestamp(invitation.created_at),
        "failed_at": null,
        "failed_reason": null,
        "inviter": user_json(em, &admin_user()),
        "team_count": 0,
        "invitation_teams_url": format!(
            "{}/organizations/{}/invitations/{}/teams",
            em.base_url, account.id, invitation.id
        ),
        "invitation_source": "member",
    })
}

/// `organization` `member_added` / `member_removed`: `membership{url,state,role,organization_url,user}`.
pub fn membership(
    em: &Emulator,
    inst: &Installation,
    action: &str,
    user: &User,
    role: OrgRole,
) -> Event {
    let org = format!("{}/orgs/{}", em.base_url, inst.account.login);
    let membership = json!({
        "url": format!("{org}/memberships/{}", user.login),
        "state": "active",
        "role": role.as_str(),
        "organization_url": org,
        "user": user_json(em, user),
    });
    let body = payload(em, inst, action, json!({ "membership": membership }));
    Event::new("organization", inst.id, body)
}

/// `organization` `member_invited`, with `user` for an invitation by login.
pub fn invited(em: &Emulator, inst: &Installation, invitation: &Invitation) -> Event {
    let mut fields = json!({ "invitation": invitation_json(em, &inst.account, invitation) });
    if let (Some(login), Some(id)) = (&invitation.login, invitation.user_id) {
        fields["user"] = user_json(
            em,
            &User {
                login: login.clone(),
                id,
            },
        );
    }
    Event::new(
        "organization",
        inst.id,
        payload(em, inst, "member_invited", fields),
    )
}

/// `member` `added` (`changes.permission.to`, `changes.role_name.to`), `edited`
/// (`changes.old_permission.from`, `changes.permission.from`/`to`) or `removed`.
pub fn collaborator(
    em: &Emulator,
    inst: &Installation,
    repo: &RepoDetails,
    user: &User,
    before: Option<Permission>,
    after: Option<Permission>,
) -> Event {
    let (action, changes) = match (before, after) {
        (None, Some(to)) => (
            "added",
            json!({ "permission": { "to": to.legacy() }, "role_name": { "to": to.as_str() } }),
        ),
        (Some(from), Some(to)) => (
            "edited",
            json!({
                "old_permission": { "from": from.legacy() },
                "permission": { "from": from.as_str(), "to": to.as_str() },
            }),
        ),
        _ => ("removed", Value::Null),
    };
    let mut fields = json!({
        "member": user_json(em, user),
        "repository": repository(em, inst, repo),
    });
    if !changes.is_null() {
        fields["changes"] = changes;
    }
    Event::new("member", inst.id, payload(em, inst, action, fields))
}

fn team_json(em: &Emulator, inst: &Installation, team: &Team) -> Value {
    let api = format!(
        "{}/organizations/{}/team/{}",
        em.base_url, inst.account.id, team.id
    );
    json!({
        "name": team.name,
        "id": team.id,
        "node_id": crate::github::node_id("T", team.id),
        "slug": team.slug,
        "description": team.description,
        "privacy": team.privacy,
        "notification_setting": "notifications_enabled",
        "url": api,
        "html_url": format!("https://github.com/orgs/{}/teams/{}", inst.account.login, team.slug),
        "members_url": format!("{api}/members{{/member}}"),
        "repositories_url": format!("{api}/repos"),
        "permission": "pull",
        "parent": null,
    })
}

/// `team` `created`.
pub fn team_created(em: &Emulator, inst: &Installation, team: &Team) -> Event {
    let body = payload(
        em,
        inst,
        "created",
        json!({ "team": team_json(em, inst, team) }),
    );
    Event::new("team", inst.id, body)
}

/// `membership` `added` / `removed` (`scope` `team`).
pub fn team_membership(
    em: &Emulator,
    inst: &Installation,
    action: &str,
    team: &Team,
    user: &User,
) -> Event {
    let fields = json!({
        "scope": "team",
        "member": user_json(em, user),
        "team": team_json(em, inst, team),
    });
    Event::new("membership", inst.id, payload(em, inst, action, fields))
}

/// The `rule` of `branch_protection_rule` webhooks.
fn rule_json(protection: &Protection, repository_id: u64) -> Value {
    let spec = &protection.spec;
    let level = |on: bool| match (on, spec.enforce_admins) {
        (false, _) => "off",
        (true, true) => "everyone",
        (true, false) => "non_admins",
    };
    let allowed = |on: bool| if on { "everyone" } else { "off" };
    json!({
        "id": protection.id,
        "repository_id": repository_id,
        "name": protection.branch,
        "created_at": timestamp(protection.created_at),
        "updated_at": timestamp(protection.updated_at),
        "pull_request_reviews_enforcement_level": level(spec.required_reviews.is_some()),
        "required_approving_review_count": spec.required_reviews.unwrap_or(0),
        "dismiss_stale_reviews_on_push": spec.dismiss_stale_reviews,
        "require_code_owner_review": spec.require_code_owner_reviews,
        "authorized_dismissal_actors_only": false,
        "ignore_approvals_from_contributors": false,
        "require_last_push_approval": spec.require_last_push_approval,
        "required_status_checks": spec.required_checks.clone().unwrap_or_default(),
        "required_status_checks_enforcement_level": level(spec.required_checks.is_some()),
        "strict_required_status_checks_policy": spec.strict,
        "signature_requirement_enforcement_level": "off",
        "linear_history_requirement_enforcement_level": level(spec.required_linear_history),
        "lock_branch_enforcement_level": "off",
        "lock_allows_fork_sync": false,
        "admin_enforced": spec.enforce_admins,
        "create_protected": false,
        "allow_force_pushes_enforcement_level": allowed(spec.allow_force_pushes),
        "allow_deletions_enforcement_level": allowed(spec.allow_deletions),
        "merge_queue_enforcement_level": "off",
        "required_deployments_enforcement_level": "off",
        "required_conversation_resolution_level": level(spec.required_conversation_resolution),
        "authorized_actors_only": false,
        "authorized_actor_names": [],
    })
}

/// `{field: {"from": old}}` for every field that differs between two JSON objects (timestamps
/// and ids aside).
fn changed_fields(before: &Value, after: &Value) -> Map<String, Value> {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return Map::new();
    };
    before
        .iter()
        .filter(|(k, v)| {
            !["id", "created_at", "updated_at"].contains(&k.as_str()) && after.get(*k) != Some(*v)
        })
        .map(|(k, v)| (k.clone(), json!({ "from": v })))
        .collect()
}

/// `branch_protection_rule` `created`, `edited` (with `changes`, from `before`) or `deleted`.
pub fn protection_rule(
    em: &Emulator,
    inst: &Installation,
    repo: &RepoDetails,
    action: &str,
    protection: &Protection,
    before: Option<&Protection>,
) -> Event {
    let rule = rule_json(protection, repo.id);
    let mut fields = json!({ "rule": rule, "repository": repository(em, inst, repo) });
    if let Some(before) = before {
        fields["changes"] =
            Value::Object(changed_fields(&rule_json(before, repo.id), &fields["rule"]));
    }
    Event::new(
        "branch_protection_rule",
        inst.id,
        payload(em, inst, action, fields),
    )
}

/// `changes` of a `repository_ruleset` `edited`: `name`/`enforcement` `{from}`, `conditions`
/// and `rules` as `{added,deleted,updated}`.
fn ruleset_changes(before: &Ruleset, after: &Ruleset) -> Value {
    let mut changes = json!({});
    if before.name != after.name {
        changes["name"] = json!({ "from": before.name });
    }
    if before.enforcement != after.enforcement {
        changes["enforcement"] = json!({ "from": before.enforcement });
    }
    if (&before.include, &before.exclude) != (&after.include, &after.exclude) {
        let mut condition_changes = json!({});
        if before.include != after.include {
            condition_changes["include"] = json!({ "from": before.include });
        }
        if before.exclude != after.exclude {
            condition_changes["exclude"] = json!({ "from": before.exclude });
        }
        changes["conditions"] = json!({
            "added": [],
            "deleted": [],
            "updated": [{
                "condition": { "ref_name": { "include": after.include, "exclude": after.exclude } },
                "changes": condition_changes,
            }],
        });
    }
    if before.rules != after.rules {
        let kinds = |r: &Ruleset| r.rules.iter().map(|x| x.kind.clone()).collect::<Vec<_>>();
        let (old, new) = (kinds(before), kinds(after));
        let added: Vec<Value> = after
            .rules
            .iter()
            .filter(|r| !old.contains(&r.kind))
            .map(|r| r.json())
            .collect();
        let deleted: Vec<Value> = before
            .rules
            .iter()
            .filter(|r| !new.contains(&r.kind))
            .map(|r| r.json())
            .collect();
        let updated: Vec<Value> = after
            .rules
            .iter()
            .filter_map(|rule| {
                let previous = before.rules.iter().find(|r| r.kind == rule.kind)?;
                (previous != rule).then(|| {
                    json!({
                        "rule": rule.json(),
                        "changes": { "configuration": { "from": previous.parameters.as_ref().map(Value::to_string) } },
                    })
                })
            })
            .collect();
        changes["rules"] = json!({ "added": added, "deleted": deleted, "updated": updated });
    }
    changes
}

/// `repository_ruleset` `created`, `edited` (with `changes` from `before`) or `deleted`; with
/// `repository` for a repository's ruleset.
pub fn ruleset(
    em: &Emulator,
    inst: &Installation,
    action: &str,
    ruleset: &Ruleset,
    before: Option<&Ruleset>,
) -> Event {
    let mut fields = json!({
        "repository_ruleset": ruleset.json(&em.base_url, &inst.account.login),
    });
    if let Some(before) = before {
        fields["changes"] = ruleset_changes(before, ruleset);
    }
    if let Source::Repository(name) = &ruleset.source {
        if let Some(repo) = inst.repo_named(name) {
            fields["repository"] = repository(em, inst, &repo);
        }
    }
    Event::new(
        "repository_ruleset",
        inst.id,
        payload(em, inst, action, fields),
    )
}
