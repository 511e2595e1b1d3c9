//! GitLab API answers the access audit reads, turned into the model's parts:
//!
//! - members: `GET /api/v4/groups/:id/members/all` (direct, inherited and shared-group members,
//!   each user once at their highest level) → [`members`];
//! - the group's 2FA requirement: `GET /api/v4/groups/:id` → [`two_factor_required`];
//! - the default branch's protection: `GET /api/v4/projects/:id/protected_branches` and, where
//!   the tier has them (Premium), `GET /api/v4/projects/:id/approval_rules` → [`protection`].
//!
//! GitLab does not show group owners their members' 2FA status (only instance administrators
//! see it): `two_factor` is always unknown.

use super::github::unprotected;
use super::model::{Member, Protection};
use super::{nullable, parse, parse_object, ParseError};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Deserialize)]
struct GroupMember {
    username: String,
    access_level: u32,
    /// The user's state: `active`, `blocked`, `banned`, `deactivated`, …
    #[serde(default)]
    state: Option<String>,
    /// The membership's: `active`, or `awaiting` (waiting for a seat or an owner's approval).
    #[serde(default)]
    membership_state: Option<String>,
}

/// GitLab's name for an access level (`access_level:<n>` for a level it does not document).
pub fn role_name(access_level: u32) -> String {
    match access_level {
        5 => "minimal_access".into(),
        10 => "guest".into(),
        15 => "planner".into(),
        20 => "reporter".into(),
        30 => "developer".into(),
        40 => "maintainer".into(),
        50 => "owner".into(),
        n => format!("access_level:{n}"),
    }
}

/// The owner level: owners administer the group.
pub const OWNER: u32 = 50;

/// A page of `GET /groups/:id/members/all`: username → login, `access_level` → role
/// ([`role_name`]), `admin` for owners (and above), `two_factor: None` (not exposed).
///
/// Left out, because they cannot reach the code: memberships `awaiting` (not yet active) and
/// users whose state is `blocked` (any kind: `blocked`, `ldap_blocked`,
/// `blocked_pending_approval`) or `banned`. A `deactivated` user stays: signing in again
/// reactivates them. One member per username (the highest level when a page repeats one),
/// sorted by login, `since = now`.
pub fn members(page_json: &str, now: i64) -> Result<Vec<Member>, ParseError> {
    let page: Vec<GroupMember> = parse(page_json, "a page of GitLab group members")?;
    let mut by_login: BTreeMap<String, u32> = BTreeMap::new();
    for m in page {
        let blocked = m
            .state
            .as_deref()
            .is_some_and(|s| s.contains("blocked") || s == "banned");
        let awaiting = m.membership_state.as_deref().is_some_and(|s| s != "active");
        if blocked || awaiting {
            continue;
        }
        let level = by_login.entry(m.username).or_insert(m.access_level);
        *level = (*level).max(m.access_level);
    }
    Ok(by_login
        .into_iter()
        .map(|(login, level)| Member {
            login,
            role: role_name(level),
            admin: level >= OWNER,
            two_factor: None,
            since: now,
        })
        .collect())
}

#[derive(Deserialize)]
struct Group {
    #[serde(default)]
    require_two_factor_authentication: Option<bool>,
}

/// `GET /groups/:id`: `require_two_factor_authentication` (absent or `null`: unknown).
pub fn two_factor_required(group_json: &str) -> Result<Option<bool>, ParseError> {
    let group: Group = parse_object(group_json, "GitLab group")?;
    Ok(group.require_two_factor_authentication)
}

#[derive(Deserialize)]
struct ProtectedBranch {
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    push_access_levels: Vec<AccessLevelEntry>,
    #[serde(default, deserialize_with = "nullable")]
    allow_force_push: bool,
}

/// One entry of `push_access_levels`: a role (`access_level`, 0 = No one), or a user, group or
/// deploy key (Premium).
#[derive(Deserialize)]
struct AccessLevelEntry {
    #[serde(default)]
    access_level: Option<u32>,
    #[serde(default)]
    user_id: Option<u64>,
    #[serde(default)]
    group_id: Option<u64>,
    #[serde(default)]
    deploy_key_id: Option<u64>,
}

#[derive(Deserialize)]
struct ApprovalRule {
    #[serde(default)]
    rule_type: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    approvals_required: u32,
    #[serde(default, deserialize_with = "nullable")]
    protected_branches: Vec<NamedBranch>,
    #[serde(default, deserialize_with = "nullable")]
    applies_to_all_protected_branches: bool,
}

#[derive(Deserialize)]
struct NamedBranch {
    name: String,
}

/// The default branch's protection from the project's protected branches
/// (`GET /projects/:id/protected_branches`) and, when readable, its approval rules
/// (`GET /projects/:id/approval_rules`; `None` when GitLab refused them, e.g. the Free tier or
/// missing permission).
///
/// - The protected branches whose `name` matches `default_branch` (exactly, or as a pattern
///   with `*` wildcards, see [`wildcard_matches`]); none → [`unprotected`].
/// - GitLab applies the *most permissive* of several matching rules: force pushes are allowed
///   when any matching rule has `allow_force_push`.
/// - Deletions: `Some(false)`. No one can delete a protected branch with `git push`
///   (Maintainers and above can from the UI or the API), and GitLab never deletes a project's
///   default branch.
/// - `enforce_admins` (do the rules bind the group's owners?): a push access level granting a
///   role (Developers 30, Maintainers 40, Owners 50) lets owners push directly, skipping merge
///   requests and their approvals → `Some(false)` (GitLab's default, "Maintainers" may push);
///   only "No one" (0) or instance administrators (60) → `Some(true)`; otherwise only specific
///   users, groups or deploy keys (who may or may not be owners), or no entry visible → `None`.
/// - Reviews: the most `approvals_required` among the approval rules that apply to the branch
///   (rules of type `regular` or `any_approver` scoped to all branches, to all protected branches,
///   or to a protected branch matching it; `code_owner` and `report_approver` rules only apply
///   when certain files or reports change), 0 when none applies; `None` (unknown) when the rules
///   were not readable.
/// - No required checks: GitLab's "pipelines must succeed" is a project merge setting, not part
///   of these answers. Sources `protected_branch:<name>`, sorted.
pub fn protection(
    protected_branches_json: &str,
    default_branch: &str,
    approval_rules_json: Option<&str>,
) -> Result<Protection, ParseError> {
    let branches: Vec<ProtectedBranch> =
        parse(protected_branches_json, "GitLab protected branches")?;
    let rules: Option<Vec<ApprovalRule>> = approval_rules_json
        .map(|json| parse(json, "GitLab approval rules"))
        .transpose()?;
    let matching: Vec<&ProtectedBranch> = branches
        .iter()
        .filter(|b| wildcard_matches(&b.name, default_branch))
        .collect();
    if matching.is_empty() {
        return Ok(unprotected());
    }
    let entries: Vec<&AccessLevelEntry> = matching
        .iter()
        .flat_map(|b| &b.push_access_levels)
        .collect();
    let role_may_push = entries
        .iter()
        .any(|e| matches!(e.access_level, Some(level) if (1..60).contains(&level)));
    let principal = |e: &&AccessLevelEntry| {
        e.user_id.is_some() || e.group_id.is_some() || e.deploy_key_id.is_some()
    };
    let enforce_admins = if role_may_push {
        Some(false)
    } else if entries.is_empty() || entries.iter().any(principal) {
        None
    } else {
        Some(true)
    };
    let required_reviews = rules.map(|rules| {
        rules
            .iter()
            .filter(|r| {
                matches!(
                    r.rule_type.as_deref(),
                    None | Some("regular" | "any_approver")
                )
            })
            .filter(|r| {
                r.applies_to_all_protected_branches
                    || r.protected_branches.is_empty()
                    || r.protected_branches
                        .iter()
                        .any(|b| wildcard_matches(&b.name, default_branch))
            })
            .map(|r| r.approvals_required)
            .max()
            .unwrap_or(0)
    });
    let sources: BTreeSet<String> = matching
        .iter()
        .map(|b| format!("protected_branch:{}", b.name))
        .collect();
    Ok(Protection {
        protected: true,
        required_reviews,
        required_checks: Vec::new(),
        allows_force_pushes: Some(matching.iter().any(|b| b.allow_force_push)),
        allows_deletions: Some(false),
        enforce_admins,
        sources: sources.into_iter().collect(),
    })
}

/// GitLab's protected branch names: `*` matches any run of characters (`/` included, none at
/// all too), everything else matches itself, case-sensitively, over the whole name.
pub fn wildcard_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    // `split` always yields at least one part.
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        // No `*`: the whole name.
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_like_gitlab() {
        for (pattern, name, expected) in [
            ("main", "main", true),
            ("main", "Main", false),
            ("main", "main2", false),
            ("main", "xmain", false),
            ("*", "main", true),
            ("*", "", true),
            ("ma*", "main", true),
            ("*in", "main", true),
            ("m*n", "main", true),
            ("m*n", "mn", true),
            ("m*n", "mainx", false),
            ("release/*", "release/1.0", true),
            ("release/*", "release/a/b", true),
            ("release/*", "release", false),
            ("*-stable", "13-1-stable", true),
            ("*-stable", "stable", false),
            ("v*.*", "v1.2", true),
            ("v*.*", "v12", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("**", "x", true),
            ("ma?n", "main", false),
        ] {
            assert_eq!(
                wildcard_matches(pattern, name),
                expected,
                "{pattern} ~ {name}"
            );
        }
    }

    #[test]
    fn role_names_follow_gitlab_access_levels() {
        let names: Vec<String> = [5, 10, 15, 20, 30, 40, 50, 60]
            .into_iter()
            .map(role_name)
            .collect();
        assert_eq!(
            names,
            [
                "minimal_access",
                "guest",
                "planner",
                "reporter",
                "developer",
                "maintainer",
                "owner",
                "access_level:60"
            ]
        );
    }

    /// `GET /groups/:id/members/all` as GitLab documents it, plus the states it can show.
    const MEMBERS: &str = r#"[
      {"id":1,"username":"raymond_smith","name":"Raymond Smith","state":"active",
       "avatar_url":"https://www.gravatar.com/avatar/c2525a7f58ae3776070e44c106c48e15?s=80&d=identicon",
       "web_url":"http://192.168.1.8:3000/root","expires_at":"2012-10-22T14:13:35Z","access_level":30,
       "group_saml_identity":null,"membership_state":"active"},
      {"id":2,"username":"john_doe","name":"John Doe","state":"active","access_level":50,
       "created_at":"2012-10-22T14:13:35Z","created_by":{"id":1,"username":"raymond_smith"},
       "email":"john@example.com","group_saml_identity":{"extern_uid":"ABC-1234567890","provider":"group_saml","saml_provider_id":10},
       "membership_state":"active"},
      {"id":3,"username":"foo_bar","name":"Foo bar","state":"active","access_level":10,"membership_state":"active"},
      {"id":4,"username":"waiting","state":"active","access_level":30,"membership_state":"awaiting"},
      {"id":5,"username":"gone","state":"blocked","access_level":40},
      {"id":6,"username":"ldap_gone","state":"ldap_blocked","access_level":40},
      {"id":7,"username":"banned_one","state":"banned","access_level":40},
      {"id":8,"username":"sleeper","state":"deactivated","access_level":40},
      {"id":9,"username":"group_42_bot_1a2b","state":"active","access_level":40},
      {"id":10,"username":"minimal","access_level":5},
      {"id":1,"username":"raymond_smith","state":"active","access_level":40}
    ]"#;

    #[test]
    fn members_map_levels_and_leave_out_who_cannot_sign_in() {
        let m = members(MEMBERS, 11).unwrap();
        let view: Vec<(&str, &str, bool)> = m
            .iter()
            .map(|m| (m.login.as_str(), m.role.as_str(), m.admin))
            .collect();
        assert_eq!(
            view,
            vec![
                ("foo_bar", "guest", false),
                ("group_42_bot_1a2b", "maintainer", false),
                ("john_doe", "owner", true),
                ("minimal", "minimal_access", false),
                // Listed twice: the higher level.
                ("raymond_smith", "maintainer", false),
                ("sleeper", "maintainer", false),
            ]
        );
        assert!(m.iter().all(|m| m.two_factor.is_none() && m.since == 11));
        assert!(members(r#"[{"username":"x"}]"#, 0).is_err());
        assert!(members(r#"{"message":"403 Forbidden"}"#, 0).is_err());
    }

    #[test]
    fn two_factor_requirement_of_the_group() {
        let group = r#"{"id":4,"name":"Twitter","path":"twitter","description":"Aliquid qui quis dignissimos distinctio ut commodi voluptas est.",
            "visibility":"public","require_two_factor_authentication":true,"two_factor_grace_period":48,"full_path":"twitter"}"#;
        assert_eq!(two_factor_required(group).unwrap(), Some(true));
        assert_eq!(
            two_factor_required(r#"{"id":4,"require_two_factor_authentication":false}"#).unwrap(),
            Some(false)
        );
        assert_eq!(two_factor_required(r#"{"id":4}"#).unwrap(), None);
        assert!(two_factor_required("[]").is_err());
    }

    /// `GET /projects/:id/protected_branches` as GitLab documents it.
    const PROTECTED: &str = r#"[
      {"id":1,"name":"main","push_access_levels":[{"id":1,"access_level":40,"access_level_description":"Maintainers",
        "user_id":null,"group_id":null,"deploy_key_id":null}],
       "merge_access_levels":[{"id":1,"access_level":40,"access_level_description":"Maintainers"}],
       "allow_force_push":false,"unprotect_access_levels":[],"code_owner_approval_required":false,"inherited":false},
      {"id":2,"name":"release/*","push_access_levels":[{"id":2,"access_level":0,"access_level_description":"No one"}],
       "merge_access_levels":[{"id":2,"access_level":40}],"allow_force_push":true},
      {"id":3,"name":"*-stable","push_access_levels":[{"id":3,"access_level":null,"user_id":7,"access_level_description":"Jane"}],
       "merge_access_levels":[],"allow_force_push":false}
    ]"#;

    #[test]
    fn an_unmatched_branch_is_unprotected() {
        assert_eq!(
            protection(PROTECTED, "develop", None).unwrap(),
            unprotected()
        );
        assert_eq!(protection("[]", "main", Some("[]")).unwrap(), unprotected());
    }

    #[test]
    fn protection_of_the_default_branch() {
        assert_eq!(
            protection(PROTECTED, "main", None).unwrap(),
            Protection {
                protected: true,
                // Approval rules not readable: unknown.
                required_reviews: None,
                required_checks: vec![],
                allows_force_pushes: Some(false),
                allows_deletions: Some(false),
                // Maintainers (and so owners) may push directly.
                enforce_admins: Some(false),
                sources: vec!["protected_branch:main".into()],
            }
        );
        // No one may push to release branches; force pushes allowed there.
        let release = protection(PROTECTED, "release/2.0", Some("[]")).unwrap();
        assert_eq!(
            (
                release.required_reviews,
                release.allows_force_pushes,
                release.enforce_admins
            ),
            (Some(0), Some(true), Some(true))
        );
        assert_eq!(release.sources, vec!["protected_branch:release/*"]);
        // Only a named user may push: whether they are an owner is unknown.
        let stable = protection(PROTECTED, "13-stable", None).unwrap();
        assert_eq!(stable.enforce_admins, None);
    }

    #[test]
    fn several_matching_rules_are_as_permissive_as_the_most_permissive() {
        let rules = r#"[
          {"name":"main","push_access_levels":[{"access_level":0}],"allow_force_push":false},
          {"name":"ma*","push_access_levels":[{"access_level":30}],"allow_force_push":true},
          {"name":"other","push_access_levels":[{"access_level":30}],"allow_force_push":true}
        ]"#;
        let p = protection(rules, "main", None).unwrap();
        assert_eq!(
            (p.allows_force_pushes, p.enforce_admins, p.sources.clone()),
            (
                Some(true),
                Some(false),
                vec![
                    "protected_branch:ma*".to_string(),
                    "protected_branch:main".to_string()
                ]
            )
        );
        // Missing or null lists: nobody visible may push, so unknown.
        let sparse = r#"[{"name":"main","push_access_levels":null}]"#;
        let p = protection(sparse, "main", None).unwrap();
        assert_eq!(
            (p.enforce_admins, p.allows_force_pushes),
            (None, Some(false))
        );
    }

    #[test]
    fn approval_rules_that_apply_to_the_branch() {
        // `GET /projects/:id/approval_rules` as GitLab documents it, with the rule types it has.
        let rules = r#"[
          {"id":1,"name":"security","rule_type":"regular","eligible_approvers":[{"id":5,"username":"jdoe"}],
           "approvals_required":2,"users":[],"groups":[],"contains_hidden_groups":false,
           "protected_branches":[{"id":1,"name":"main","push_access_levels":[],"merge_access_levels":[],
             "unprotect_access_levels":[],"code_owner_approval_required":"false"}],
           "applies_to_all_protected_branches":false},
          {"id":2,"name":"All Members","rule_type":"any_approver","approvals_required":1,
           "protected_branches":[],"applies_to_all_protected_branches":false},
          {"id":3,"name":"release team","rule_type":"regular","approvals_required":4,
           "protected_branches":[{"id":2,"name":"release/*"}],"applies_to_all_protected_branches":false},
          {"id":4,"name":"Coverage-Check","rule_type":"report_approver","approvals_required":5,
           "protected_branches":[],"applies_to_all_protected_branches":false},
          {"id":5,"name":"CODEOWNERS","rule_type":"code_owner","approvals_required":6,"protected_branches":[]}
        ]"#;
        let main = protection(PROTECTED, "main", Some(rules)).unwrap();
        assert_eq!(main.required_reviews, Some(2));
        let release = protection(PROTECTED, "release/1", Some(rules)).unwrap();
        assert_eq!(release.required_reviews, Some(4));
        // A rule for all protected branches.
        let all = r#"[{"id":7,"rule_type":"regular","approvals_required":3,"protected_branches":[],
            "applies_to_all_protected_branches":true}]"#;
        assert_eq!(
            protection(PROTECTED, "main", Some(all))
                .unwrap()
                .required_reviews,
            Some(3)
        );
        assert!(protection(PROTECTED, "main", Some("{}")).is_err());
        assert!(protection("{}", "main", None).is_err());
    }
}
