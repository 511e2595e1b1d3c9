//! GitHub webhooks that announce access changes, applied to the stored [`AccessState`] as they
//! happen. Each event [`apply`] returns is the one [`reconcile`](super::diff::reconcile) would
//! have emitted for the same change (same kind and subject), and the state is changed as the
//! next sync will read it, so that sync finds nothing new: no event twice.
//!
//! Handled (payloads as GitHub's webhook documentation and `@octokit/webhooks-examples` show):
//!
//! - `organization`: `member_added` (`membership.user.login`, `membership.role`),
//!   `member_removed`, `member_invited` (`invitation.login` or `.email`, `invitation.role`);
//! - `member` (repository collaborators): `added`, `edited`, `removed`;
//! - `membership` (team members) and `team`: `team.changed` events, the state unchanged (teams
//!   are not part of it);
//! - `branch_protection_rule` and `repository_ruleset`: nothing here; the edge re-reads that
//!   repository's protection (it cannot be derived from the payload: classic rules and rulesets
//!   combine) and [`reconcile`](super::diff::reconcile)s, which emits the `protection.*` event;
//! - anything else: nothing.

use super::diff::{event, part_unknown, MEMBERS};
use super::model::{AccessEvent, AccessState, Collaborator, Invitation, Member};
use serde_json::{json, Value};

fn text<'a>(payload: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = payload;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str()
}

/// Applies one delivery (`event`: the `X-GitHub-Event` header; `payload`: its parsed body) to
/// the org's stored state, returning the events to record. The state is changed only when the
/// delivery changes it (a redelivery returns no event the second time).
///
/// - `organization.member_added`: the member (role `admin` or `member`) is added, or their role
///   updated → `member.added` / `member.role_changed`; their 2FA status is kept when they were
///   a member, unknown otherwise. A pending invitation or an outside collaborator of the same
///   login is dropped without an event (`member.added` says it, as in `reconcile`).
/// - `organization.member_removed` → `member.removed`.
/// - `organization.member_invited` → `invitation.created` (login, or email for someone without
///   an account).
/// - `member.added` / `member.edited` for someone who is not a member: an outside collaborator.
///   New → `outside_collaborator.added` (with `admin_on` this repository when the new permission
///   is `admin`, else none: they had no access before). Known and now `admin` on the repository
///   → `outside_collaborator.admin_granted`; no longer `admin` → the repository leaves `admin_on`
///   (no event, as in `reconcile`). Where they are admin is unknown (`admin_on: None`): it stays
///   unknown, and no event. For an org member, or when the member list is unknown (a
///   member cannot be told from an outside collaborator), nothing.
/// - `member.removed`: the repository leaves the collaborator's `admin_on`, and no event: the
///   payload does not say whether they still reach other repositories. When it was their last,
///   the next sync emits `outside_collaborator.removed`, once.
/// - `membership.added` / `.removed` and `team.created` / `.deleted` / `.edited` /
///   `.added_to_repository` / `.removed_from_repository` → `team.changed` (subject: the team's
///   slug; detail: `action` as `<event>.<action>`, and `member`, `repository` or `changes` when
///   the payload has them). No state change.
///
/// `org` is the org's login (the events of a delivery are about people and teams in it).
pub fn apply(
    org: &str,
    event_name: &str,
    payload: &Value,
    state: &mut AccessState,
    now: i64,
) -> Vec<AccessEvent> {
    let _ = org;
    let action = text(payload, &["action"]).unwrap_or("");
    match (event_name, action) {
        ("organization", "member_added") => member_added(payload, state, now),
        ("organization", "member_removed") => member_removed(payload, state),
        ("organization", "member_invited") => member_invited(payload, state, now),
        ("member", "added" | "edited" | "removed") => collaborator(action, payload, state, now),
        ("membership", "added" | "removed")
        | (
            "team",
            "created" | "deleted" | "edited" | "added_to_repository" | "removed_from_repository",
        ) => team_changed(event_name, action, payload),
        _ => Vec::new(),
    }
}

fn member_added(payload: &Value, state: &mut AccessState, now: i64) -> Vec<AccessEvent> {
    let (Some(login), Some(role)) = (
        text(payload, &["membership", "user", "login"]),
        text(payload, &["membership", "role"]),
    ) else {
        return Vec::new();
    };
    state.invitations.retain(|i| i.login != login);
    state.outside_collaborators.retain(|c| c.login != login);
    let admin = role == "admin";
    if let Some(m) = state.members.iter_mut().find(|m| m.login == login) {
        if m.role == role {
            return Vec::new();
        }
        let from = std::mem::replace(&mut m.role, role.to_string());
        m.admin = admin;
        m.since = now;
        return vec![event(
            "member.role_changed",
            login,
            json!({"from": from, "to": role}),
        )];
    }
    state.members.push(Member {
        login: login.to_string(),
        role: role.to_string(),
        admin,
        two_factor: None,
        since: now,
    });
    state.members.sort_by(|a, b| a.login.cmp(&b.login));
    vec![event(
        "member.added",
        login,
        json!({"role": role, "admin": admin}),
    )]
}

fn member_removed(payload: &Value, state: &mut AccessState) -> Vec<AccessEvent> {
    let login = text(payload, &["membership", "user", "login"])
        .or_else(|| text(payload, &["member", "login"]));
    let Some(login) = login else {
        return Vec::new();
    };
    let Some(at) = state.members.iter().position(|m| m.login == login) else {
        return Vec::new();
    };
    let removed = state.members.remove(at);
    vec![event(
        "member.removed",
        login,
        json!({"role": removed.role}),
    )]
}

fn member_invited(payload: &Value, state: &mut AccessState, now: i64) -> Vec<AccessEvent> {
    let invitation = payload.get("invitation");
    let non_empty = |key: &str| {
        invitation
            .and_then(|i| i.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let Some(role) = non_empty("role") else {
        return Vec::new();
    };
    let login = match non_empty("login").or_else(|| non_empty("email")) {
        Some(login) => login.to_string(),
        None => match invitation.and_then(|i| i.get("id")).and_then(Value::as_u64) {
            Some(id) => format!("invitation:{id}"),
            None => return Vec::new(),
        },
    };
    if let Some(i) = state.invitations.iter_mut().find(|i| i.login == login) {
        if i.role == role {
            return Vec::new();
        }
        i.role = role.to_string();
        i.since = now;
    } else {
        state.invitations.push(Invitation {
            login: login.clone(),
            role: role.to_string(),
            since: now,
        });
        state.invitations.sort_by(|a, b| a.login.cmp(&b.login));
    }
    vec![event("invitation.created", &login, json!({"role": role}))]
}

/// The collaborator's permission on the repository after the change is `admin`.
fn now_admin(payload: &Value) -> bool {
    text(payload, &["changes", "permission", "to"]) == Some("admin")
        || text(payload, &["changes", "role_name", "to"]) == Some("admin")
}

fn collaborator(
    action: &str,
    payload: &Value,
    state: &mut AccessState,
    now: i64,
) -> Vec<AccessEvent> {
    let (Some(login), Some(repository)) = (
        text(payload, &["member", "login"]),
        text(payload, &["repository", "full_name"]),
    ) else {
        return Vec::new();
    };
    if part_unknown(state, MEMBERS) || state.members.iter().any(|m| m.login == login) {
        return Vec::new();
    }
    let known = state
        .outside_collaborators
        .iter_mut()
        .find(|c| c.login == login);
    match (action, known) {
        ("removed", None) => Vec::new(),
        ("removed", Some(c)) => {
            drop_admin(c, repository, now);
            Vec::new()
        }
        (_, None) => {
            let admin_on = if now_admin(payload) {
                vec![repository.to_string()]
            } else {
                Vec::new()
            };
            state.outside_collaborators.push(Collaborator {
                login: login.to_string(),
                admin_on: Some(admin_on.clone()),
                since: now,
            });
            state
                .outside_collaborators
                .sort_by(|a, b| a.login.cmp(&b.login));
            vec![event(
                "outside_collaborator.added",
                login,
                json!({"admin_on": admin_on}),
            )]
        }
        (_, Some(c)) => {
            if !now_admin(payload) {
                drop_admin(c, repository, now);
                return Vec::new();
            }
            match &mut c.admin_on {
                Some(admin_on) if admin_on.iter().any(|r| r == repository) => return Vec::new(),
                Some(admin_on) => {
                    admin_on.push(repository.to_string());
                    admin_on.sort();
                    c.since = now;
                }
                // Where else they are admin is unknown: it stays so, and a grant on top of
                // unknown is no event (as in `reconcile`, and a redelivery could not be told
                // from a new grant).
                None => return Vec::new(),
            }
            vec![event(
                "outside_collaborator.admin_granted",
                login,
                json!({"repository": repository}),
            )]
        }
    }
}

fn drop_admin(c: &mut Collaborator, repository: &str, now: i64) {
    if let Some(admin_on) = &mut c.admin_on {
        let before = admin_on.len();
        admin_on.retain(|r| r != repository);
        if admin_on.len() != before {
            c.since = now;
        }
    }
}

fn team_changed(event_name: &str, action: &str, payload: &Value) -> Vec<AccessEvent> {
    let Some(team) = text(payload, &["team", "slug"]).or_else(|| text(payload, &["team", "name"]))
    else {
        return Vec::new();
    };
    let mut detail = json!({"action": format!("{event_name}.{action}")});
    if event_name == "membership" {
        if let Some(member) = text(payload, &["member", "login"]) {
            detail["member"] = json!(member);
        }
    }
    if let Some(repository) = text(payload, &["repository", "full_name"]) {
        detail["repository"] = json!(repository);
    }
    if action == "edited" {
        if let Some(changes) = payload.get("changes") {
            detail["changes"] = changes.clone();
        }
    }
    vec![event("team.changed", team, detail)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::diff::reconcile;
    use crate::access::diff::tests::{collaborator as collab, invitation, member, state};
    use crate::access::model::Unknown;

    fn kinds(events: &[AccessEvent]) -> Vec<(&str, &str)> {
        events
            .iter()
            .map(|e| (e.kind.as_str(), e.subject.as_str()))
            .collect()
    }

    /// The stored state after a sync at 10.
    fn stored() -> AccessState {
        let mut s = state();
        reconcile("acme", None, &mut s, 10);
        s
    }

    fn organization(action: &str, login: &str, role: &str) -> Value {
        json!({
            "action": action,
            "membership": {
                "url": format!("https://api.github.com/orgs/acme/memberships/{login}"),
                "state": "active", "role": role,
                "organization_url": "https://api.github.com/orgs/acme",
                "user": {"login": login, "id": 21031067, "type": "User", "site_admin": false}
            },
            "organization": {"login": "acme", "id": 1},
            "sender": {"login": "alice", "id": 2},
            "installation": {"id": 42}
        })
    }

    fn invited(login: Option<&str>, email: Option<&str>, role: &str) -> Value {
        json!({
            "action": "member_invited",
            "invitation": {"id": 7, "node_id": "OI_1", "login": login, "email": email, "role": role,
                "created_at": "2024-01-01T00:00:00Z", "failed_at": null, "failed_reason": null,
                "inviter": {"login": "alice"}, "team_count": 0, "invitation_teams_url": "u"},
            "user": login.map(|l| json!({"login": l})),
            "organization": {"login": "acme"},
            "sender": {"login": "alice"}
        })
    }

    fn collaborator_event(action: &str, login: &str, repository: &str, changes: Value) -> Value {
        json!({
            "action": action,
            "member": {"login": login, "id": 9, "type": "User"},
            "changes": changes,
            "repository": {"id": 1, "name": repository.split('/').nth(1), "full_name": repository, "private": true},
            "organization": {"login": "acme"},
            "sender": {"login": "alice"},
            "installation": {"id": 42}
        })
    }

    /// Applies the delivery to the stored state; then checks that a sync reading `truth` (the
    /// stored state changed as the provider now is) emits nothing more, and that the webhook's
    /// events are the ones that sync would have emitted against the state before the delivery.
    fn check(
        event_name: &str,
        payload: Value,
        truth: impl Fn(&mut AccessState),
        expected: &[(&str, &str)],
    ) -> AccessState {
        let before = stored();
        let mut applied = before.clone();
        let events = apply("acme", event_name, &payload, &mut applied, 15);
        assert_eq!(kinds(&events), expected, "{event_name} {payload}");

        let mut read = state();
        truth(&mut read);
        let mut sync = read.clone();
        let after = reconcile("acme", Some(&applied), &mut sync, 20);
        assert_eq!(after, vec![], "a sync after {event_name} {payload}");

        let mut sync_only = read.clone();
        let by_sync = reconcile("acme", Some(&before), &mut sync_only, 20);
        assert_eq!(
            kinds(&by_sync),
            expected,
            "a sync without {event_name} {payload}"
        );

        // A redelivery changes nothing and emits nothing.
        let mut again = applied.clone();
        assert_eq!(apply("acme", event_name, &payload, &mut again, 16), vec![]);
        assert_eq!(again, applied);
        applied
    }

    #[test]
    fn member_added_and_removed() {
        let applied = check(
            "organization",
            organization("member_added", "zoe", "member"),
            |s| s.members.push(member("zoe", "member", Some(true), 0)),
            &[("member.added", "zoe")],
        );
        let zoe = applied.members.iter().find(|m| m.login == "zoe").unwrap();
        assert_eq!((zoe.two_factor, zoe.since, zoe.admin), (None, 15, false));
        let applied = check(
            "organization",
            organization("member_added", "bob", "admin"),
            |s| {
                s.members[1].role = "admin".into();
                s.members[1].admin = true;
            },
            &[("member.role_changed", "bob")],
        );
        // bob's 2FA status is kept.
        assert_eq!(applied.members[1].two_factor, Some(false));
        check(
            "organization",
            organization("member_removed", "carol", "member"),
            |s| s.members.retain(|m| m.login != "carol"),
            &[("member.removed", "carol")],
        );
    }

    #[test]
    fn an_accepted_invitation_or_a_collaborator_who_joins_is_only_member_added() {
        let applied = check(
            "organization",
            organization("member_added", "frank", "member"),
            |s| {
                s.invitations.clear();
                s.members.push(member("frank", "member", None, 0));
            },
            &[("member.added", "frank")],
        );
        assert!(applied.invitations.is_empty());
        let applied = check(
            "organization",
            organization("member_added", "dave", "member"),
            |s| {
                s.outside_collaborators.retain(|c| c.login != "dave");
                s.members.push(member("dave", "member", None, 0));
            },
            &[("member.added", "dave")],
        );
        assert!(applied
            .outside_collaborators
            .iter()
            .all(|c| c.login != "dave"));
    }

    #[test]
    fn member_invited() {
        check(
            "organization",
            invited(Some("yann"), None, "direct_member"),
            |s| s.invitations.push(invitation("yann", "direct_member", 0)),
            &[("invitation.created", "yann")],
        );
        check(
            "organization",
            invited(None, Some("new@example.com"), "admin"),
            |s| {
                s.invitations
                    .push(invitation("new@example.com", "admin", 0))
            },
            &[("invitation.created", "new@example.com")],
        );
        // Re-invited with another role.
        check(
            "organization",
            invited(Some("frank"), None, "admin"),
            |s| s.invitations[0].role = "admin".into(),
            &[("invitation.created", "frank")],
        );
    }

    #[test]
    fn collaborators_added_and_granted_admin() {
        let applied = check(
            "member",
            collaborator_event(
                "added",
                "yann",
                "acme/web",
                json!({"permission": {"to": "write"}}),
            ),
            |s| s.outside_collaborators.push(collab("yann", Some(&[]), 0)),
            &[("outside_collaborator.added", "yann")],
        );
        let yann = applied
            .outside_collaborators
            .iter()
            .find(|c| c.login == "yann")
            .unwrap();
        assert_eq!((yann.admin_on.clone(), yann.since), (Some(vec![]), 15));
        check(
            "member",
            collaborator_event(
                "added",
                "yann",
                "acme/web",
                json!({"permission": {"to": "admin"}, "role_name": {"to": "admin"}}),
            ),
            |s| {
                s.outside_collaborators
                    .push(collab("yann", Some(&["acme/web"]), 0))
            },
            &[("outside_collaborator.added", "yann")],
        );
        // dave, admin on acme/api, made admin on acme/web too.
        check(
            "member",
            collaborator_event(
                "edited",
                "dave",
                "acme/web",
                json!({"old_permission": {"from": "write"}, "permission": {"from": "write", "to": "admin"}}),
            ),
            |s| {
                s.outside_collaborators[0].admin_on =
                    Some(vec!["acme/api".into(), "acme/web".into()])
            },
            &[("outside_collaborator.admin_granted", "dave")],
        );
        // dave no longer admin on acme/api: no event, as reconcile.
        let applied = check(
            "member",
            collaborator_event(
                "edited",
                "dave",
                "acme/api",
                json!({"old_permission": {"from": "admin"}, "permission": {"from": "admin", "to": "write"}}),
            ),
            |s| s.outside_collaborators[0].admin_on = Some(vec![]),
            &[],
        );
        assert_eq!(applied.outside_collaborators[0].since, 15);
    }

    /// Found by the `webhook_payload` fuzz target: `admin_granted` was recorded for a
    /// collaborator whose admin rights are unknown, again at every redelivery, where a sync
    /// records nothing.
    #[test]
    fn a_grant_where_admin_rights_are_unknown_is_no_event() {
        let payload = collaborator_event(
            "edited",
            "erin",
            "acme/web",
            json!({"permission": {"from": "write", "to": "admin"}}),
        );
        let applied = check(
            "member",
            payload,
            |s| s.outside_collaborators[1].admin_on = Some(vec!["acme/web".into()]),
            &[],
        );
        assert_eq!(applied.outside_collaborators[1].admin_on, None);
    }

    #[test]
    fn a_collaborator_removed_from_one_repository_is_removed_by_the_next_sync_if_at_all() {
        let payload = collaborator_event("removed", "dave", "acme/api", json!({}));
        // Still a collaborator elsewhere: nothing more.
        let applied = check(
            "member",
            payload.clone(),
            |s| s.outside_collaborators[0].admin_on = Some(vec![]),
            &[],
        );
        assert_eq!(applied.outside_collaborators[0].admin_on, Some(vec![]));
        // It was their last repository: the sync says it, once (the webhook did not).
        let before = stored();
        let mut applied = before.clone();
        assert_eq!(apply("acme", "member", &payload, &mut applied, 15), vec![]);
        let mut read = state();
        read.outside_collaborators.retain(|c| c.login != "dave");
        let events = reconcile("acme", Some(&applied), &mut read, 20);
        assert_eq!(
            kinds(&events),
            vec![("outside_collaborator.removed", "dave")]
        );
    }

    #[test]
    fn repository_access_of_members_or_unknown_members_is_not_tracked() {
        let payload = collaborator_event(
            "added",
            "bob",
            "acme/web",
            json!({"permission": {"to": "admin"}}),
        );
        let mut s = stored();
        assert_eq!(apply("acme", "member", &payload, &mut s, 15), vec![]);
        assert_eq!(s, stored());
        let payload = collaborator_event(
            "added",
            "yann",
            "acme/web",
            json!({"permission": {"to": "admin"}}),
        );
        s.unknown.push(Unknown {
            part: "members".into(),
            reason: "403".into(),
        });
        let before = s.clone();
        assert_eq!(apply("acme", "member", &payload, &mut s, 15), vec![]);
        assert_eq!(s, before);
    }

    #[test]
    fn team_changes_are_events_without_state() {
        let membership = json!({
            "action": "added", "scope": "team",
            "member": {"login": "bob", "id": 3},
            "team": {"name": "Justice League", "id": 3253328, "slug": "justice-league", "permission": "pull"},
            "organization": {"login": "acme"}, "sender": {"login": "alice"}
        });
        let mut s = stored();
        let events = apply("acme", "membership", &membership, &mut s, 15);
        assert_eq!(kinds(&events), vec![("team.changed", "justice-league")]);
        assert_eq!(
            events[0].detail,
            json!({"action": "membership.added", "member": "bob"})
        );
        let team = json!({
            "action": "added_to_repository",
            "team": {"name": "Justice League", "slug": "justice-league"},
            "repository": {"full_name": "acme/api"},
            "organization": {"login": "acme"}
        });
        let events = apply("acme", "team", &team, &mut s, 15);
        assert_eq!(
            events[0].detail,
            json!({"action": "team.added_to_repository", "repository": "acme/api"})
        );
        let edited = json!({
            "action": "edited",
            "changes": {"repository": {"permissions": {"from": {"admin": false, "pull": true, "push": false}}}},
            "team": {"name": "Justice League", "slug": "justice-league"},
            "repository": {"full_name": "acme/api"}
        });
        let events = apply("acme", "team", &edited, &mut s, 15);
        assert_eq!(
            events[0].detail["changes"]["repository"]["permissions"]["from"]["pull"],
            json!(true)
        );
        // A deleted team's payload may lack the slug: its name.
        let deleted = json!({"action": "removed", "member": {"login": "bob"}, "team": {"name": "Gone", "deleted": true}});
        assert_eq!(
            kinds(&apply("acme", "membership", &deleted, &mut s, 15)),
            vec![("team.changed", "Gone")]
        );
        assert_eq!(s, stored());
    }

    #[test]
    fn protection_webhooks_and_others_change_nothing() {
        let mut s = stored();
        for (name, payload) in [
            (
                "branch_protection_rule",
                json!({"action": "edited", "rule": {"id": 1, "name": "main"}}),
            ),
            (
                "repository_ruleset",
                json!({"action": "created", "repository_ruleset": {"id": 5}}),
            ),
            ("organization", json!({"action": "renamed"})),
            ("organization", json!({"action": "member_added"})),
            ("push", json!({"ref": "refs/heads/main"})),
            ("member", json!({"action": "added"})),
            ("membership", json!({"action": "added"})),
        ] {
            assert_eq!(apply("acme", name, &payload, &mut s, 15), vec![], "{name}");
        }
        assert_eq!(s, stored());
    }
}
