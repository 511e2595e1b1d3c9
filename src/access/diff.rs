//! A freshly read [`AccessState`] against the stored one: the changes as [`AccessEvent`]s, and
//! the `since` of everything that did not change carried over.
//!
//! Unknown is never a change: a value that became unknown (`Some` → `None`) keeps its `since`
//! and emits nothing; a value that becomes known again (`None` → `Some`) emits nothing either
//! but starts a new `since` (the gateway did not see how long it has been so). A whole part
//! listed in [`AccessState::unknown`] (`members`, `outside_collaborators`, `invitations`) on
//! either side is not compared at all: an unreadable list is not everyone leaving, and a list
//! readable again is not everyone arriving.

use super::model::{AccessEvent, AccessState, Collaborator, Member, Protection};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// [`AccessState::unknown`] parts that make a whole list unknown.
pub const MEMBERS: &str = "members";
pub const OUTSIDE_COLLABORATORS: &str = "outside_collaborators";
pub const INVITATIONS: &str = "invitations";

/// The part is listed in the state's unknowns (exact name, e.g. [`MEMBERS`]).
pub fn part_unknown(state: &AccessState, part: &str) -> bool {
    state.unknown.iter().any(|u| u.part == part)
}

pub(crate) fn event(kind: &str, subject: &str, detail: Value) -> AccessEvent {
    AccessEvent {
        kind: kind.to_string(),
        subject: subject.to_string(),
        detail,
    }
}

/// Whether a value changed in a way that starts a new `since`: becoming unknown does not,
/// becoming known does, two known values when they differ.
fn changed<T: PartialEq>(old: &Option<T>, new: &Option<T>) -> bool {
    match (old, new) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a != b,
    }
}

/// Both known and different: `(from, to)`.
fn known_change<T: PartialEq + Clone>(old: &Option<T>, new: &Option<T>) -> Option<(T, T)> {
    match (old, new) {
        (Some(a), Some(b)) if a != b => Some((a.clone(), b.clone())),
        _ => None,
    }
}

/// Compares the state stored at the previous sync (`old`) with the one just read (`new`), sets
/// every `since` in `new` (and sorts its lists as the model says), and returns the changes.
/// `org` is the org's login (or name): the subject of `settings.changed`.
///
/// - `old == None` (the org's first read): a baseline, no events; every `since = now`.
/// - Otherwise an item that did not change keeps its `since` from `old` (a member with the same
///   role and 2FA status, a collaborator with the same `admin_on`, an invitation with the same
///   role, the same settings, a repository with the same effective protection — its `sources`
///   aside); an item that changed or is new gets `since = now`.
///
/// Events (subject in parentheses; `detail` JSON):
/// - `member.added` (login; `{role, admin}`), `member.removed` (`{role}`),
///   `member.role_changed` (`{from, to}`), `member.2fa_disabled` (`true` → `false`),
///   `member.2fa_enabled` (`false` → `true`); unknown 2FA on either side emits nothing;
/// - `outside_collaborator.added` (login; `{admin_on}`), `outside_collaborator.removed`,
///   `outside_collaborator.admin_granted` (one per repository, `{repository}`; losing admin
///   rights is not an event, only a new `since`);
/// - `invitation.created` (login or email; `{role}`, also when a pending invitation's role
///   changed: GitHub re-invites), `invitation.removed` (`{role}`: cancelled, expired or
///   declined);
/// - someone who became a member leaves the invitations and the outside collaborators without
///   `invitation.removed` / `outside_collaborator.removed`: `member.added` says it;
/// - `settings.changed` (`org`; `{field: {from, to}}` for each field known on both sides that
///   differs: `two_factor_required`, `default_repository_permission`,
///   `members_can_create_public_repositories`);
/// - per repository (full name; matched by `repository_id`, so a rename is no change):
///   `protection.added` (unprotected → protected), `protection.removed` (protected →
///   unprotected), `protection.weakened` (fewer reviews, a check dropped, force pushes or
///   deletions newly allowed, administrators no longer bound — even when something else got
///   stronger), `protection.strengthened` (only stronger); detail `{branch, from, to}` plus, for
///   the last two, `weakened` and `strengthened`: the fields that changed each way. A protection
///   unknown on either side emits nothing; a repository new to the state or gone from it emits
///   nothing (repositories come and go through sync; that is not access).
///
/// Order: by kind, then subject (then as found: one collaborator's `admin_granted` by
/// repository).
pub fn reconcile(
    org: &str,
    old: Option<&AccessState>,
    new: &mut AccessState,
    now: i64,
) -> Vec<AccessEvent> {
    normalize(new);
    let Some(old) = old else {
        baseline(new, now);
        return Vec::new();
    };
    let mut events = Vec::new();
    let old_members: BTreeSet<&str> = old.members.iter().map(|m| m.login.as_str()).collect();
    let new_members: BTreeSet<String> = new.members.iter().map(|m| m.login.clone()).collect();
    let joined = |login: &str| new_members.contains(login) && !old_members.contains(login);

    let compare = |part: &str| !part_unknown(old, part) && !part_unknown(new, part);
    let compare_members = compare(MEMBERS);
    let compare_collaborators = compare(OUTSIDE_COLLABORATORS);
    let compare_invitations = compare(INVITATIONS);

    // Members.
    let previous: BTreeMap<&str, &Member> =
        old.members.iter().map(|m| (m.login.as_str(), m)).collect();
    for m in &mut new.members {
        match previous.get(m.login.as_str()) {
            Some(o) => {
                let same = o.role == m.role && !changed(&o.two_factor, &m.two_factor);
                m.since = if same { o.since } else { now };
                if !compare_members {
                    continue;
                }
                if o.role != m.role {
                    events.push(event(
                        "member.role_changed",
                        &m.login,
                        json!({"from": o.role, "to": m.role}),
                    ));
                }
                match known_change(&o.two_factor, &m.two_factor) {
                    Some((true, false)) => {
                        events.push(event("member.2fa_disabled", &m.login, json!({})))
                    }
                    Some((false, true)) => {
                        events.push(event("member.2fa_enabled", &m.login, json!({})))
                    }
                    _ => {}
                }
            }
            None => {
                m.since = now;
                if compare_members {
                    events.push(event(
                        "member.added",
                        &m.login,
                        json!({"role": m.role, "admin": m.admin}),
                    ));
                }
            }
        }
    }
    if compare_members {
        for o in &old.members {
            if !new_members.contains(&o.login) {
                events.push(event("member.removed", &o.login, json!({"role": o.role})));
            }
        }
    }

    // Outside collaborators.
    let previous: BTreeMap<&str, &Collaborator> = old
        .outside_collaborators
        .iter()
        .map(|c| (c.login.as_str(), c))
        .collect();
    for c in &mut new.outside_collaborators {
        match previous.get(c.login.as_str()) {
            Some(o) => {
                let old_admin = o.admin_on.as_ref().map(|v| sorted(v));
                c.since = if changed(&old_admin, &c.admin_on) {
                    now
                } else {
                    o.since
                };
                if let (true, Some(before), Some(after)) =
                    (compare_collaborators, &old_admin, &c.admin_on)
                {
                    for repository in after.iter().filter(|r| !before.contains(r)) {
                        events.push(event(
                            "outside_collaborator.admin_granted",
                            &c.login,
                            json!({"repository": repository}),
                        ));
                    }
                }
            }
            None => {
                c.since = now;
                if compare_collaborators {
                    events.push(event(
                        "outside_collaborator.added",
                        &c.login,
                        json!({"admin_on": c.admin_on}),
                    ));
                }
            }
        }
    }
    if compare_collaborators {
        let current: BTreeSet<&str> = new
            .outside_collaborators
            .iter()
            .map(|c| c.login.as_str())
            .collect();
        for o in &old.outside_collaborators {
            if !current.contains(o.login.as_str()) && !joined(&o.login) {
                events.push(event("outside_collaborator.removed", &o.login, json!({})));
            }
        }
    }

    // Invitations.
    let previous: BTreeMap<&str, &str> = old
        .invitations
        .iter()
        .map(|i| (i.login.as_str(), i.role.as_str()))
        .collect();
    let since: BTreeMap<&str, i64> = old
        .invitations
        .iter()
        .map(|i| (i.login.as_str(), i.since))
        .collect();
    for i in &mut new.invitations {
        let same = previous.get(i.login.as_str()) == Some(&i.role.as_str());
        i.since = if same { since[i.login.as_str()] } else { now };
        if !same && compare_invitations {
            events.push(event(
                "invitation.created",
                &i.login,
                json!({"role": i.role}),
            ));
        }
    }
    if compare_invitations {
        let current: BTreeSet<&str> = new.invitations.iter().map(|i| i.login.as_str()).collect();
        for o in &old.invitations {
            if !current.contains(o.login.as_str()) && !joined(&o.login) {
                events.push(event(
                    "invitation.removed",
                    &o.login,
                    json!({"role": o.role}),
                ));
            }
        }
    }

    // Settings.
    let (before, after) = (&old.settings, &mut new.settings);
    let mut fields = serde_json::Map::new();
    if let Some((from, to)) = known_change(&before.two_factor_required, &after.two_factor_required)
    {
        fields.insert(
            "two_factor_required".into(),
            json!({"from": from, "to": to}),
        );
    }
    if let Some((from, to)) = known_change(
        &before.default_repository_permission,
        &after.default_repository_permission,
    ) {
        fields.insert(
            "default_repository_permission".into(),
            json!({"from": from, "to": to}),
        );
    }
    if let Some((from, to)) = known_change(
        &before.members_can_create_public_repositories,
        &after.members_can_create_public_repositories,
    ) {
        fields.insert(
            "members_can_create_public_repositories".into(),
            json!({"from": from, "to": to}),
        );
    }
    let settings_changed = changed(&before.two_factor_required, &after.two_factor_required)
        || changed(
            &before.default_repository_permission,
            &after.default_repository_permission,
        )
        || changed(
            &before.members_can_create_public_repositories,
            &after.members_can_create_public_repositories,
        );
    after.since = if settings_changed { now } else { before.since };
    if !fields.is_empty() {
        events.push(event("settings.changed", org, Value::Object(fields)));
    }

    // Repositories.
    let previous: BTreeMap<&str, _> = old
        .repositories
        .iter()
        .map(|r| (r.repository_id.as_str(), r))
        .collect();
    for r in &mut new.repositories {
        let Some(o) = previous.get(r.repository_id.as_str()) else {
            r.since = now;
            continue;
        };
        r.since = match (&o.protection, &r.protection) {
            (_, None) => o.since,
            (None, Some(_)) => now,
            (Some(a), Some(b)) => {
                if protection_changed(a, b) {
                    now
                } else {
                    o.since
                }
            }
        };
        if let (Some(a), Some(b)) = (&o.protection, &r.protection) {
            if let Some(e) = protection_event(&r.full_name, r.default_branch.as_deref(), a, b) {
                events.push(e);
            }
        }
    }

    events.sort_by(|a, b| (&a.kind, &a.subject).cmp(&(&b.kind, &b.subject)));
    events
}

/// Sorts the lists as the model says they are (members, collaborators, invitations by login,
/// repositories by full name; `admin_on`, checks and sources too).
fn normalize(state: &mut AccessState) {
    state.members.sort_by(|a, b| a.login.cmp(&b.login));
    state
        .outside_collaborators
        .sort_by(|a, b| a.login.cmp(&b.login));
    for c in &mut state.outside_collaborators {
        if let Some(admin_on) = &mut c.admin_on {
            admin_on.sort();
            admin_on.dedup();
        }
    }
    state.invitations.sort_by(|a, b| a.login.cmp(&b.login));
    state
        .repositories
        .sort_by(|a, b| a.full_name.cmp(&b.full_name));
    for r in &mut state.repositories {
        if let Some(p) = &mut r.protection {
            p.required_checks.sort();
            p.required_checks.dedup();
            p.sources.sort();
            p.sources.dedup();
        }
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

fn baseline(state: &mut AccessState, now: i64) {
    for m in &mut state.members {
        m.since = now;
    }
    for c in &mut state.outside_collaborators {
        c.since = now;
    }
    for i in &mut state.invitations {
        i.since = now;
    }
    state.settings.since = now;
    for r in &mut state.repositories {
        r.since = now;
    }
}

/// The effective protection changed (its sources aside; a value that became unknown is no
/// change).
fn protection_changed(a: &Protection, b: &Protection) -> bool {
    a.protected != b.protected
        || changed(&a.required_reviews, &b.required_reviews)
        || sorted(&a.required_checks) != sorted(&b.required_checks)
        || changed(&a.allows_force_pushes, &b.allows_force_pushes)
        || changed(&a.allows_deletions, &b.allows_deletions)
        || changed(&a.enforce_admins, &b.enforce_admins)
}

/// The fields of a protected branch that got weaker and stronger (known values only).
pub fn compare_protection(
    a: &Protection,
    b: &Protection,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut weaker = Vec::new();
    let mut stronger = Vec::new();
    if let Some((from, to)) = known_change(&a.required_reviews, &b.required_reviews) {
        if to < from {
            weaker.push("required_reviews");
        } else {
            stronger.push("required_reviews");
        }
    }
    let (before, after): (BTreeSet<&String>, BTreeSet<&String>) = (
        a.required_checks.iter().collect(),
        b.required_checks.iter().collect(),
    );
    if before.difference(&after).next().is_some() {
        weaker.push("required_checks");
    }
    if after.difference(&before).next().is_some() {
        stronger.push("required_checks");
    }
    // For these, `true` is the weaker value.
    for (field, from, to) in [
        (
            "allows_force_pushes",
            a.allows_force_pushes,
            b.allows_force_pushes,
        ),
        ("allows_deletions", a.allows_deletions, b.allows_deletions),
    ] {
        match (from, to) {
            (Some(false), Some(true)) => weaker.push(field),
            (Some(true), Some(false)) => stronger.push(field),
            _ => {}
        }
    }
    match (a.enforce_admins, b.enforce_admins) {
        (Some(true), Some(false)) => weaker.push("enforce_admins"),
        (Some(false), Some(true)) => stronger.push("enforce_admins"),
        _ => {}
    }
    (weaker, stronger)
}

fn protection_event(
    full_name: &str,
    branch: Option<&str>,
    a: &Protection,
    b: &Protection,
) -> Option<AccessEvent> {
    let detail = |extra: Option<(&[&str], &[&str])>| {
        let mut d = json!({"branch": branch, "from": a, "to": b});
        if let Some((weakened, strengthened)) = extra {
            d["weakened"] = json!(weakened);
            d["strengthened"] = json!(strengthened);
        }
        d
    };
    match (a.protected, b.protected) {
        (false, true) => Some(event("protection.added", full_name, detail(None))),
        (true, false) => Some(event("protection.removed", full_name, detail(None))),
        (false, false) => None,
        (true, true) => {
            let (weaker, stronger) = compare_protection(a, b);
            let kind = if !weaker.is_empty() {
                "protection.weakened"
            } else if !stronger.is_empty() {
                "protection.strengthened"
            } else {
                return None;
            };
            Some(event(kind, full_name, detail(Some((&weaker, &stronger)))))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::access::github::unprotected;
    use crate::access::model::{Invitation, OrgSettings, RepositoryProtection, Unknown};

    pub(crate) fn member(login: &str, role: &str, two_factor: Option<bool>, since: i64) -> Member {
        Member {
            login: login.into(),
            role: role.into(),
            admin: role == "admin",
            two_factor,
            since,
        }
    }

    pub(crate) fn collaborator(login: &str, admin_on: Option<&[&str]>, since: i64) -> Collaborator {
        Collaborator {
            login: login.into(),
            admin_on: admin_on.map(|a| a.iter().map(|s| s.to_string()).collect()),
            since,
        }
    }

    pub(crate) fn invitation(login: &str, role: &str, since: i64) -> Invitation {
        Invitation {
            login: login.into(),
            role: role.into(),
            since,
        }
    }

    pub(crate) fn repository(
        id: &str,
        full_name: &str,
        protection: Option<Protection>,
        since: i64,
    ) -> RepositoryProtection {
        RepositoryProtection {
            repository_id: id.into(),
            full_name: full_name.into(),
            default_branch: Some("main".into()),
            protection,
            since,
        }
    }

    pub(crate) fn protected(reviews: u32, checks: &[&str]) -> Protection {
        Protection {
            protected: true,
            required_reviews: Some(reviews),
            required_checks: checks.iter().map(|s| s.to_string()).collect(),
            allows_force_pushes: Some(false),
            allows_deletions: Some(false),
            enforce_admins: Some(true),
            sources: vec!["branch_protection".into()],
        }
    }

    /// A state as a sync reads it (every `since` 0: reconcile sets them).
    pub(crate) fn state() -> AccessState {
        AccessState {
            members: vec![
                member("alice", "admin", Some(true), 0),
                member("bob", "member", Some(false), 0),
                member("carol", "member", None, 0),
            ],
            outside_collaborators: vec![
                collaborator("dave", Some(&["acme/api"]), 0),
                collaborator("erin", None, 0),
            ],
            invitations: vec![invitation("frank", "direct_member", 0)],
            settings: OrgSettings {
                two_factor_required: Some(false),
                default_repository_permission: Some("read".into()),
                members_can_create_public_repositories: None,
                since: 0,
            },
            repositories: vec![
                repository("1", "acme/api", Some(protected(2, &["ci"])), 0),
                repository("2", "acme/web", Some(unprotected()), 0),
                repository("3", "acme/docs", None, 0),
            ],
            unknown: vec![],
        }
    }

    fn kinds(events: &[AccessEvent]) -> Vec<(&str, &str)> {
        events
            .iter()
            .map(|e| (e.kind.as_str(), e.subject.as_str()))
            .collect()
    }

    /// The stored state after a first sync at `t`.
    fn stored(t: i64) -> AccessState {
        let mut s = state();
        assert!(reconcile("acme", None, &mut s, t).is_empty());
        s
    }

    #[test]
    fn the_first_read_is_a_baseline() {
        let mut s = state();
        assert_eq!(reconcile("acme", None, &mut s, 10), vec![]);
        assert!(s.members.iter().all(|m| m.since == 10));
        assert!(s.outside_collaborators.iter().all(|c| c.since == 10));
        assert!(s.invitations.iter().all(|i| i.since == 10));
        assert!(s.repositories.iter().all(|r| r.since == 10));
        assert_eq!(s.settings.since, 10);
        // Sorted as the model says.
        let names: Vec<&str> = s
            .repositories
            .iter()
            .map(|r| r.full_name.as_str())
            .collect();
        assert_eq!(names, ["acme/api", "acme/docs", "acme/web"]);
    }

    #[test]
    fn nothing_changed_keeps_every_since() {
        let old = stored(10);
        let mut new = state();
        assert_eq!(reconcile("acme", Some(&old), &mut new, 20), vec![]);
        assert_eq!(new, old);
    }

    #[test]
    fn member_changes() {
        let old = stored(10);
        let mut new = state();
        new.members = vec![
            // 2FA turned on, role unchanged.
            member("alice", "admin", Some(false), 0),
            // Promoted, and 2FA turned on.
            member("bob", "admin", Some(true), 0),
            // New.
            member("zoe", "member", None, 0),
        ];
        let events = reconcile("acme", Some(&old), &mut new, 20);
        assert_eq!(
            kinds(&events),
            vec![
                ("member.2fa_disabled", "alice"),
                ("member.2fa_enabled", "bob"),
                ("member.added", "zoe"),
                ("member.removed", "carol"),
                ("member.role_changed", "bob"),
            ]
        );
        let role = events
            .iter()
            .find(|e| e.kind == "member.role_changed")
            .unwrap();
        assert_eq!(role.detail, json!({"from": "member", "to": "admin"}));
        let added = events.iter().find(|e| e.kind == "member.added").unwrap();
        assert_eq!(added.detail, json!({"role": "member", "admin": false}));
        assert!(new.members.iter().all(|m| m.since == 20));
    }

    #[test]
    fn unknown_two_factor_is_not_a_change() {
        let old = stored(10);
        // alice's 2FA unreadable now: no event, keeps since.
        let mut new = state();
        new.members[0].two_factor = None;
        assert_eq!(reconcile("acme", Some(&old), &mut new, 20), vec![]);
        assert_eq!(new.members[0].since, 10);
        // carol's 2FA readable now: no event, but a new since (not seen before).
        let mut new = state();
        new.members[2].two_factor = Some(false);
        assert_eq!(reconcile("acme", Some(&old), &mut new, 20), vec![]);
        assert_eq!((new.members[1].since, new.members[2].since), (10, 20));
    }

    #[test]
    fn an_unreadable_list_is_not_everyone_leaving_or_arriving() {
        let old = stored(10);
        let unknown = |part: &str| Unknown {
            part: part.into(),
            reason: "403 Forbidden".into(),
        };
        let mut unreadable = state();
        unreadable.members.clear();
        unreadable.outside_collaborators.clear();
        unreadable.invitations.clear();
        unreadable.unknown = vec![
            unknown(MEMBERS),
            unknown(OUTSIDE_COLLABORATORS),
            unknown(INVITATIONS),
        ];
        assert_eq!(reconcile("acme", Some(&old), &mut unreadable, 20), vec![]);
        // Readable again: nobody "added", a new since for all.
        let mut again = state();
        assert_eq!(reconcile("acme", Some(&unreadable), &mut again, 30), vec![]);
        assert!(again.members.iter().all(|m| m.since == 30));
    }

    #[test]
    fn collaborator_changes() {
        let old = stored(10);
        let mut new = state();
        new.outside_collaborators = vec![
            collaborator("dave", Some(&["acme/web", "acme/api", "acme/docs"]), 0),
            collaborator("yann", Some(&[]), 0),
        ];
        let events = reconcile("acme", Some(&old), &mut new, 20);
        assert_eq!(
            kinds(&events),
            vec![
                ("outside_collaborator.added", "yann"),
                ("outside_collaborator.admin_granted", "dave"),
                ("outside_collaborator.admin_granted", "dave"),
                ("outside_collaborator.removed", "erin"),
            ]
        );
        let granted: Vec<&Value> = events
            .iter()
            .filter(|e| e.kind == "outside_collaborator.admin_granted")
            .map(|e| &e.detail["repository"])
            .collect();
        assert_eq!(granted, [&json!("acme/docs"), &json!("acme/web")]);
        assert_eq!(new.outside_collaborators[0].since, 20);
        assert_eq!(
            new.outside_collaborators[0].admin_on,
            Some(vec![
                "acme/api".into(),
                "acme/docs".into(),
                "acme/web".into()
            ])
        );

        // Admin rights dropped: no event, a new since; admin_on unreadable: nothing.
        let mut new = state();
        new.outside_collaborators[0].admin_on = Some(vec![]);
        assert_eq!(reconcile("acme", Some(&old), &mut new, 20), vec![]);
        assert_eq!(new.outside_collaborators[0].since, 20);
        let mut new = state();
        new.outside_collaborators[0].admin_on = None;
        assert_eq!(reconcile("acme", Some(&old), &mut new, 20), vec![]);
        assert_eq!(new.outside_collaborators[0].since, 10);
    }

    #[test]
    fn invitation_changes_and_accepted_invitations() {
        let old = stored(10);
        let mut new = state();
        new.invitations = vec![
            invitation("new@example.com", "admin", 0),
            invitation("frank", "admin", 0),
        ];
        let events = reconcile("acme", Some(&old), &mut new, 20);
        assert_eq!(
            kinds(&events),
            vec![
                ("invitation.created", "frank"),
                ("invitation.created", "new@example.com")
            ]
        );

        let mut new = state();
        new.invitations.clear();
        let events = reconcile("acme", Some(&old), &mut new, 20);
        assert_eq!(kinds(&events), vec![("invitation.removed", "frank")]);
        assert_eq!(events[0].detail, json!({"role": "direct_member"}));

        // frank accepted, and dave the outside collaborator joined: only member.added.
        let mut new = state();
        new.invitations.clear();
        new.outside_collaborators.retain(|c| c.login != "dave");
        new.members.push(member("frank", "member", None, 0));
        new.members.push(member("dave", "member", None, 0));
        let events = reconcile("acme", Some(&old), &mut new, 20);
        assert_eq!(
            kinds(&events),
            vec![("member.added", "dave"), ("member.added", "frank")]
        );
    }

    #[test]
    fn settings_changes_list_each_known_field() {
        let old = stored(10);
        let mut new = state();
        new.settings = OrgSettings {
            two_factor_required: Some(true),
            default_repository_permission: None,
            members_can_create_public_repositories: Some(true),
            since: 0,
        };
        let events = reconcile("acme", Some(&old), &mut new, 20);
        assert_eq!(kinds(&events), vec![("settings.changed", "acme")]);
        assert_eq!(
            events[0].detail,
            json!({"two_factor_required": {"from": false, "to": true}})
        );
        // members_can_create_public_repositories became known: a new since.
        assert_eq!(new.settings.since, 20);

        // Only unknowns: nothing, since kept.
        let mut new = state();
        new.settings.default_repository_permission = None;
        new.settings.two_factor_required = None;
        assert_eq!(reconcile("acme", Some(&old), &mut new, 20), vec![]);
        assert_eq!(new.settings.since, 10);

        let mut new = state();
        new.settings.default_repository_permission = Some("write".into());
        let events = reconcile("acme", Some(&old), &mut new, 20);
        assert_eq!(
            events[0].detail,
            json!({"default_repository_permission": {"from": "read", "to": "write"}})
        );
    }

    fn protection_change(before: Protection, after: Protection) -> (Vec<AccessEvent>, i64) {
        let mut old = state();
        old.repositories[0].protection = Some(before);
        reconcile("acme", None, &mut old, 10);
        let mut new = state();
        new.repositories[0].protection = Some(after);
        let events = reconcile("acme", Some(&old), &mut new, 20);
        (events, new.repositories[0].since)
    }

    #[test]
    fn protection_added_and_removed() {
        let (events, since) = protection_change(unprotected(), protected(1, &[]));
        assert_eq!(kinds(&events), vec![("protection.added", "acme/api")]);
        assert_eq!(events[0].detail["branch"], json!("main"));
        assert_eq!(events[0].detail["to"]["required_reviews"], json!(1));
        assert_eq!(since, 20);
        let (events, _) = protection_change(protected(1, &[]), unprotected());
        assert_eq!(kinds(&events), vec![("protection.removed", "acme/api")]);
    }

    #[test]
    fn protection_weakened_and_strengthened() {
        let base = protected(2, &["ci", "lint"]);
        let weaker: Vec<(&str, Protection)> = vec![
            ("required_reviews", protected(1, &["ci", "lint"])),
            ("required_checks", protected(2, &["ci"])),
            (
                "allows_force_pushes",
                Protection {
                    allows_force_pushes: Some(true),
                    ..base.clone()
                },
            ),
            (
                "allows_deletions",
                Protection {
                    allows_deletions: Some(true),
                    ..base.clone()
                },
            ),
            (
                "enforce_admins",
                Protection {
                    enforce_admins: Some(false),
                    ..base.clone()
                },
            ),
        ];
        for (field, after) in weaker {
            let (events, since) = protection_change(base.clone(), after.clone());
            assert_eq!(
                kinds(&events),
                vec![("protection.weakened", "acme/api")],
                "{field}"
            );
            assert_eq!(events[0].detail["weakened"], json!([field]), "{field}");
            assert_eq!(since, 20);
            // The reverse is a strengthening.
            let (events, _) = protection_change(after, base.clone());
            assert_eq!(
                kinds(&events),
                vec![("protection.strengthened", "acme/api")],
                "{field}"
            );
            assert_eq!(events[0].detail["strengthened"], json!([field]), "{field}");
        }
        // A mix: weakened, and the detail says both.
        let (events, _) = protection_change(base.clone(), protected(3, &["ci"]));
        assert_eq!(kinds(&events), vec![("protection.weakened", "acme/api")]);
        assert_eq!(events[0].detail["weakened"], json!(["required_checks"]));
        assert_eq!(
            events[0].detail["strengthened"],
            json!(["required_reviews"])
        );
        // A check swapped for another: weakened (one dropped) and strengthened.
        let (events, _) = protection_change(base.clone(), protected(2, &["ci", "sec"]));
        assert_eq!(events[0].detail["weakened"], json!(["required_checks"]));
        assert_eq!(events[0].detail["strengthened"], json!(["required_checks"]));
    }

    #[test]
    fn same_protection_from_other_sources_or_unknown_is_no_change() {
        let base = protected(2, &["ci"]);
        let moved = Protection {
            sources: vec!["ruleset:9".into()],
            ..base.clone()
        };
        assert_eq!(protection_change(base.clone(), moved), (vec![], 10));
        // enforce_admins unknown now (a ruleset): no event, since kept.
        let unknown_admins = Protection {
            enforce_admins: None,
            ..base.clone()
        };
        assert_eq!(
            protection_change(base.clone(), unknown_admins.clone()),
            (vec![], 10)
        );
        // Known again, as it was: no event, a new since.
        assert_eq!(
            protection_change(unknown_admins, base.clone()),
            (vec![], 20)
        );
        // Both unprotected, whatever else differs: nothing.
        let odd = Protection {
            allows_force_pushes: None,
            ..unprotected()
        };
        assert!(protection_change(unprotected(), odd).0.is_empty());
    }

    #[test]
    fn unreadable_new_or_gone_repositories_emit_nothing() {
        let old = stored(10);
        let mut new = state();
        // api unreadable now, docs readable now, web gone, a new repository.
        new.repositories[0].protection = None;
        new.repositories[2].protection = Some(unprotected());
        new.repositories.remove(1);
        new.repositories
            .push(repository("9", "acme/new", Some(unprotected()), 0));
        assert_eq!(reconcile("acme", Some(&old), &mut new, 20), vec![]);
        let since: Vec<(&str, i64)> = new
            .repositories
            .iter()
            .map(|r| (r.full_name.as_str(), r.since))
            .collect();
        assert_eq!(
            since,
            vec![("acme/api", 10), ("acme/docs", 20), ("acme/new", 20)]
        );
        // Renamed (same repository id): the new name is the subject, no rename event.
        let mut renamed = state();
        renamed.repositories[0].full_name = "acme/api2".into();
        renamed.repositories[0].protection = Some(unprotected());
        let events = reconcile("acme", Some(&old), &mut renamed, 20);
        assert_eq!(kinds(&events), vec![("protection.removed", "acme/api2")]);
    }

    #[test]
    fn events_are_sorted_by_kind_then_subject() {
        let old = stored(10);
        let mut new = state();
        new.members.retain(|m| m.login == "alice");
        new.members.push(member("aaron", "member", None, 0));
        new.repositories[1].protection = Some(protected(1, &[]));
        new.settings.two_factor_required = Some(true);
        let events = reconcile("acme", Some(&old), &mut new, 20);
        assert_eq!(
            kinds(&events),
            vec![
                ("member.added", "aaron"),
                ("member.removed", "bob"),
                ("member.removed", "carol"),
                ("protection.added", "acme/web"),
                ("settings.changed", "acme"),
            ]
        );
    }
}
