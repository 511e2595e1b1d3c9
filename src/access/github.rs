//! GitHub REST answers the access audit reads, turned into the model's parts. The edge fetches
//! (installation token, `per_page=100`, following `Link: rel="next"`) and hands each page here:
//!
//! - members: `GET /orgs/{org}/members` (everyone), `?role=admin` (owners) and
//!   `?filter=2fa_disabled` (only org owners may use that filter: when it is refused the 2FA
//!   status is unknown) → [`logins`] for each list, then [`members`];
//! - outside collaborators: `GET /orgs/{org}/outside_collaborators` → [`logins`]; where they are
//!   admins: `GET /repos/{o}/{r}/collaborators?affiliation=outside&permission=admin` → [`logins`];
//! - settings: `GET /orgs/{org}` → [`settings`] (the 2FA requirement is shown to owners only);
//! - invitations: `GET /orgs/{org}/invitations` → [`invitations`];
//! - the default branch's protection, two layers GitHub enforces together:
//!   `GET /repos/{o}/{r}/branches/{b}/protection` (classic; its 200 answer → [`classic_protection`],
//!   404 "Branch not protected" → `None`) and `GET /repos/{o}/{r}/rules/branches/{b}` (the active
//!   rulesets' rules → [`branch_rules`]), then [`combine`].

use super::model::{Invitation, Member, OrgSettings, Protection};
use super::{nullable, parse, parse_object, ParseError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The source of classic branch protection in [`Protection::sources`].
pub const CLASSIC_SOURCE: &str = "branch_protection";

#[derive(Deserialize)]
struct SimpleUser {
    login: String,
}

/// The logins of a page of simple user objects (`/orgs/{org}/members`,
/// `/orgs/{org}/outside_collaborators`, `/repos/{o}/{r}/collaborators`), in the page's order.
pub fn logins(page_json: &str) -> Result<Vec<String>, ParseError> {
    let users: Vec<SimpleUser> = parse(page_json, "a page of GitHub users")?;
    Ok(users.into_iter().map(|u| u.login).collect())
}

/// The org's members from the logins of every member (`all`), of the owners (`admins`) and of
/// the members without 2FA (`without_two_factor`, `None` when GitHub refused that filter).
///
/// Role `admin` (and `admin: true`) for owners, `member` otherwise; `two_factor` is
/// `Some(false)` for those listed without 2FA, `Some(true)` for the others, `None` (unknown) for
/// everyone when the list could not be read. An owner missing from `all` (the lists are read one
/// after the other) is still a member. Logins compare case-insensitively, as GitHub's do; one
/// member per login, sorted by login, each `since = now` (see [`super::diff::reconcile`]).
pub fn members(
    all: &[String],
    admins: &[String],
    without_two_factor: Option<&[String]>,
    now: i64,
) -> Vec<Member> {
    let key = |login: &String| login.to_ascii_lowercase();
    let admins_set: BTreeSet<String> = admins.iter().map(key).collect();
    let without: Option<BTreeSet<String>> = without_two_factor.map(|l| l.iter().map(key).collect());
    let mut by_key: BTreeMap<String, &String> = BTreeMap::new();
    for login in all.iter().chain(admins) {
        by_key.entry(key(login)).or_insert(login);
    }
    let mut members: Vec<Member> = by_key
        .into_iter()
        .map(|(k, login)| {
            let admin = admins_set.contains(&k);
            Member {
                login: login.clone(),
                role: if admin { "admin" } else { "member" }.to_string(),
                admin,
                two_factor: without.as_ref().map(|w| !w.contains(&k)),
                since: now,
            }
        })
        .collect();
    members.sort_by(|a, b| a.login.cmp(&b.login));
    members
}

#[derive(Deserialize)]
struct Organization {
    #[serde(default)]
    two_factor_requirement_enabled: Option<bool>,
    #[serde(default)]
    default_repository_permission: Option<String>,
    #[serde(default)]
    members_can_create_public_repositories: Option<bool>,
}

/// `GET /orgs/{org}`: the settings the posture reads. GitHub shows them to owners (or an App
/// with the organization administration permission) only: absent or `null` is unknown (`None`).
pub fn settings(org_json: &str, now: i64) -> Result<OrgSettings, ParseError> {
    let org: Organization = parse_object(org_json, "GitHub organization")?;
    Ok(OrgSettings {
        two_factor_required: org.two_factor_requirement_enabled,
        default_repository_permission: org.default_repository_permission,
        members_can_create_public_repositories: org.members_can_create_public_repositories,
        since: now,
    })
}

#[derive(Deserialize)]
struct OrgInvitation {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    email: Option<String>,
    role: String,
}

/// `GET /orgs/{org}/invitations`: pending invitations, each named by the invitee's login, or
/// their email when they have no account yet (`login: null`); role as GitHub names it
/// (`direct_member`, `admin`, `billing_manager`, `hiring_manager`, `reinstate`). An invitation
/// with neither (never seen) is named `invitation:<id>`. Sorted by login, `since = now`.
pub fn invitations(page_json: &str, now: i64) -> Result<Vec<Invitation>, ParseError> {
    let page: Vec<OrgInvitation> = parse(page_json, "a page of GitHub invitations")?;
    let mut invitations: Vec<Invitation> = page
        .into_iter()
        .map(|i| Invitation {
            login: i
                .login
                .filter(|l| !l.is_empty())
                .or(i.email.filter(|e| !e.is_empty()))
                .unwrap_or_else(|| format!("invitation:{}", i.id.unwrap_or(0))),
            role: i.role,
            since: now,
        })
        .collect();
    invitations.sort_by(|a, b| a.login.cmp(&b.login));
    Ok(invitations)
}

#[derive(Deserialize)]
struct Enabled {
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Deserialize)]
struct RequiredReviews {
    #[serde(default)]
    required_approving_review_count: Option<u32>,
}

#[derive(Deserialize)]
struct RequiredStatusChecks {
    #[serde(default, deserialize_with = "nullable")]
    contexts: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    checks: Vec<StatusCheck>,
}

#[derive(Deserialize)]
struct StatusCheck {
    context: String,
}

#[derive(Deserialize)]
struct ClassicProtection {
    #[serde(default)]
    required_pull_request_reviews: Option<RequiredReviews>,
    #[serde(default)]
    required_status_checks: Option<RequiredStatusChecks>,
    #[serde(default)]
    enforce_admins: Option<Enabled>,
    #[serde(default)]
    allow_force_pushes: Option<Enabled>,
    #[serde(default)]
    allow_deletions: Option<Enabled>,
}

/// The 200 answer of `GET /repos/{o}/{r}/branches/{b}/protection` (the 404 "Branch not
/// protected" is `None` for [`combine`], not a body for this function).
///
/// - reviews: `required_pull_request_reviews.required_approving_review_count`; no
///   `required_pull_request_reviews` (pull requests not required) → 0;
/// - checks: `required_status_checks.contexts` and `.checks[].context`, deduplicated, sorted;
/// - `enforce_admins.enabled` (absent → unknown);
/// - `allow_force_pushes.enabled`, `allow_deletions.enabled` (absent → `false`: GitHub's default);
/// - `protected: true`, sources `["branch_protection"]`.
pub fn classic_protection(json: &str) -> Result<Protection, ParseError> {
    let p: ClassicProtection = parse_object(json, "GitHub branch protection")?;
    let mut checks = BTreeSet::new();
    if let Some(s) = p.required_status_checks {
        checks.extend(s.contexts);
        checks.extend(s.checks.into_iter().map(|c| c.context));
    }
    let enabled = |e: Option<Enabled>| e.and_then(|e| e.enabled);
    Ok(Protection {
        protected: true,
        required_reviews: Some(
            p.required_pull_request_reviews
                .and_then(|r| r.required_approving_review_count)
                .unwrap_or(0),
        ),
        required_checks: checks.into_iter().collect(),
        allows_force_pushes: Some(enabled(p.allow_force_pushes).unwrap_or(false)),
        allows_deletions: Some(enabled(p.allow_deletions).unwrap_or(false)),
        enforce_admins: enabled(p.enforce_admins),
        sources: vec![CLASSIC_SOURCE.to_string()],
    })
}

#[derive(Deserialize)]
struct BranchRule {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    ruleset_id: Option<u64>,
}

/// `GET /repos/{o}/{r}/rules/branches/{b}`: the rules of the active rulesets that apply to the
/// branch (an array of `{type, parameters, ruleset_id, ruleset_source_type, ruleset_source}`).
///
/// - `pull_request` → required reviews (`parameters.required_approving_review_count`, the most
///   over all such rules; 0 when no rule requires a pull request);
/// - `required_status_checks` → `parameters.required_status_checks[].context`;
/// - `non_fast_forward` → force pushes blocked; `deletion` → deletions blocked;
/// - any rule at all (`creation`, `update`, `required_signatures`, …) → protected.
///
/// Rulesets bind administrators unless they are on the ruleset's bypass list, which this
/// endpoint does not show: `enforce_admins: None`. Sources `ruleset:<id>`, deduplicated, sorted.
/// An empty array is [`unprotected`].
pub fn branch_rules(json: &str) -> Result<Protection, ParseError> {
    let rules: Vec<BranchRule> = parse(json, "GitHub branch rules")?;
    if rules.is_empty() {
        return Ok(unprotected());
    }
    let mut reviews = 0u32;
    let mut checks = BTreeSet::new();
    let mut force_pushes = true;
    let mut deletions = true;
    let mut sources = BTreeSet::new();
    for rule in &rules {
        let parameters = rule.parameters.as_ref();
        match rule.kind.as_str() {
            "pull_request" => {
                let count = parameters
                    .and_then(|p| p.get("required_approving_review_count"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                reviews = reviews.max(u32::try_from(count).unwrap_or(u32::MAX));
            }
            "required_status_checks" => {
                let listed = parameters
                    .and_then(|p| p.get("required_status_checks"))
                    .and_then(Value::as_array);
                for check in listed.into_iter().flatten() {
                    if let Some(context) = check.get("context").and_then(Value::as_str) {
                        checks.insert(context.to_string());
                    }
                }
            }
            "non_fast_forward" => force_pushes = false,
            "deletion" => deletions = false,
            _ => {}
        }
        if let Some(id) = rule.ruleset_id {
            sources.insert(format!("ruleset:{id}"));
        }
    }
    Ok(Protection {
        protected: true,
        required_reviews: Some(reviews),
        required_checks: checks.into_iter().collect(),
        allows_force_pushes: Some(force_pushes),
        allows_deletions: Some(deletions),
        enforce_admins: None,
        sources: sources.into_iter().collect(),
    })
}

/// A branch no rule applies to: no reviews, no checks, force pushes and deletions allowed to
/// anyone who can push (whether administrators are bound is moot: `None`).
///
/// GitHub (and GitLab) refuse deleting a repository's *default* branch whatever its rules; this
/// describes the rules, as GitHub's own answers do.
pub fn unprotected() -> Protection {
    Protection {
        protected: false,
        required_reviews: Some(0),
        required_checks: Vec::new(),
        allows_force_pushes: Some(true),
        allows_deletions: Some(true),
        enforce_admins: None,
        sources: Vec::new(),
    }
}

/// The branch's effective protection: classic protection (`None`: the branch has none, GitHub's
/// 404 "Branch not protected") and the rulesets' rules, both enforced by GitHub, so the
/// strictest wins:
///
/// - protected when either layer protects; reviews: the larger; checks: the union, sorted;
/// - force pushes / deletions allowed only when both layers allow them;
/// - `enforce_admins` from the classic layer when there is one (rulesets do not say), else the
///   rules' (`None`);
/// - sources: the union, sorted.
///
/// Unknown (`None`) values: a field is unknown only when neither layer says; when one layer
/// says and the other does not, the one that says decides (for reviews that is a lower bound).
/// Both parsers here always know reviews, force pushes and deletions; `None` only enters through
/// `enforce_admins`.
pub fn combine(classic: Option<Protection>, rules: Protection) -> Protection {
    let Some(classic) = classic else {
        return rules;
    };
    let checks: BTreeSet<String> = classic
        .required_checks
        .into_iter()
        .chain(rules.required_checks)
        .collect();
    let sources: BTreeSet<String> = classic.sources.into_iter().chain(rules.sources).collect();
    Protection {
        protected: classic.protected || rules.protected,
        required_reviews: either(classic.required_reviews, rules.required_reviews, u32::max),
        required_checks: checks.into_iter().collect(),
        allows_force_pushes: either(
            classic.allows_force_pushes,
            rules.allows_force_pushes,
            |a, b| a && b,
        ),
        allows_deletions: either(classic.allows_deletions, rules.allows_deletions, |a, b| {
            a && b
        }),
        enforce_admins: classic.enforce_admins.or(rules.enforce_admins),
        sources: sources.into_iter().collect(),
    }
}

/// Both known: `f`; one known: that one; neither: unknown.
fn either<T>(a: Option<T>, b: Option<T>, f: impl FnOnce(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A page of `/orgs/{org}/members` as GitHub documents it (simple user objects).
    const MEMBERS_PAGE: &str = r#"[
      {"login":"octocat","id":1,"node_id":"MDQ6VXNlcjE=","avatar_url":"https://github.com/images/error/octocat_happy.gif",
       "gravatar_id":"","url":"https://api.github.com/users/octocat","html_url":"https://github.com/octocat",
       "type":"User","site_admin":false},
      {"login":"hubot","id":2,"type":"User","site_admin":false}
    ]"#;

    #[test]
    fn logins_read_simple_users_in_page_order() {
        assert_eq!(
            logins(MEMBERS_PAGE).unwrap(),
            strings(&["octocat", "hubot"])
        );
        assert_eq!(logins("[]").unwrap(), Vec::<String>::new());
        for bad in [r#"{"message":"Not Found"}"#, r#"[{"id":1}]"#, "not json"] {
            let err = logins(bad).unwrap_err();
            assert!(err.to_string().contains("GitHub users"), "{err}");
        }
    }

    #[test]
    fn members_get_roles_and_two_factor_from_the_lists() {
        let all = strings(&["zed", "Octocat", "hubot"]);
        let admins = strings(&["octocat", "root"]);
        let without = strings(&["HUBOT", "root"]);
        let m = members(&all, &admins, Some(&without), 100);
        let view: Vec<(&str, &str, bool, Option<bool>, i64)> = m
            .iter()
            .map(|m| {
                (
                    m.login.as_str(),
                    m.role.as_str(),
                    m.admin,
                    m.two_factor,
                    m.since,
                )
            })
            .collect();
        assert_eq!(
            view,
            vec![
                ("Octocat", "admin", true, Some(true), 100),
                ("hubot", "member", false, Some(false), 100),
                // An owner missing from the members list (read a moment earlier) is a member.
                ("root", "admin", true, Some(false), 100),
                ("zed", "member", false, Some(true), 100),
            ]
        );
        // The 2FA filter refused: unknown for everyone, never "has 2FA".
        let m = members(&all, &[], None, 5);
        assert!(m.iter().all(|m| m.two_factor.is_none() && !m.admin));
        assert_eq!(m.len(), 3);
        // Duplicates across pages are one member.
        assert_eq!(members(&strings(&["a", "a", "A"]), &[], None, 0).len(), 1);
    }

    #[test]
    fn settings_read_what_owners_see_and_unknown_otherwise() {
        let owner_view = r#"{"login":"github","id":1,"url":"https://api.github.com/orgs/github",
            "two_factor_requirement_enabled":true,"default_repository_permission":"read",
            "members_can_create_repositories":true,"members_can_create_public_repositories":false,
            "plan":{"name":"Medium","space":400,"private_repos":20}}"#;
        assert_eq!(
            settings(owner_view, 7).unwrap(),
            OrgSettings {
                two_factor_required: Some(true),
                default_repository_permission: Some("read".into()),
                members_can_create_public_repositories: Some(false),
                since: 7,
            }
        );
        let public_view = r#"{"login":"github","id":1,"two_factor_requirement_enabled":null}"#;
        assert_eq!(
            settings(public_view, 7).unwrap(),
            OrgSettings {
                since: 7,
                ..OrgSettings::default()
            }
        );
        assert!(settings("[]", 7).is_err());
    }

    #[test]
    fn invitations_are_named_by_login_or_email() {
        let page = r#"[
          {"id":1,"login":"monalisa","node_id":"MDQ6VXNlcjE=","email":"octocat@github.com","role":"direct_member",
           "created_at":"2016-11-30T06:46:10-08:00","failed_at":null,"failed_reason":null,
           "inviter":{"login":"other_user","id":1},"team_count":2,"invitation_teams_url":"https://api.github.com/organizations/2/invitations/1/teams",
           "invitation_source":"member"},
          {"id":2,"login":null,"email":"new@example.com","role":"admin","created_at":"2016-11-30T06:46:10-08:00"},
          {"id":3,"login":null,"email":null,"role":"billing_manager"}
        ]"#;
        let view: Vec<(String, String, i64)> = invitations(page, 9)
            .unwrap()
            .into_iter()
            .map(|i| (i.login, i.role, i.since))
            .collect();
        assert_eq!(
            view,
            vec![
                ("invitation:3".into(), "billing_manager".into(), 9),
                ("monalisa".into(), "direct_member".into(), 9),
                ("new@example.com".into(), "admin".into(), 9),
            ]
        );
        assert!(
            invitations(r#"[{"id":1,"login":"a"}]"#, 0).is_err(),
            "role is required"
        );
    }

    /// The documented example answer of `GET /repos/{o}/{r}/branches/{b}/protection`.
    const CLASSIC: &str = r#"{
      "url": "https://api.github.com/repos/octocat/Hello-World/branches/master/protection",
      "required_status_checks": {
        "url": "https://api.github.com/repos/octocat/Hello-World/branches/master/protection/required_status_checks",
        "contexts": ["continuous-integration/travis-ci"],
        "contexts_url": "https://api.github.com/repos/octocat/Hello-World/branches/master/protection/required_status_checks/contexts",
        "enforcement_level": "non_admins",
        "checks": [{"context": "continuous-integration/travis-ci", "app_id": null}, {"context": "build", "app_id": 15368}]
      },
      "restrictions": {"url": "https://api.github.com/repos/octocat/Hello-World/branches/master/protection/restrictions",
        "users": [], "teams": [], "apps": []},
      "required_pull_request_reviews": {
        "url": "https://api.github.com/repos/octocat/Hello-World/branches/master/protection/required_pull_request_reviews",
        "dismiss_stale_reviews": true, "require_code_owner_reviews": true,
        "required_approving_review_count": 2, "require_last_push_approval": true
      },
      "required_signatures": {"url": "https://api.github.com/repos/octocat/Hello-World/branches/master/protection/required_signatures", "enabled": true},
      "enforce_admins": {"url": "https://api.github.com/repos/octocat/Hello-World/branches/master/protection/enforce_admins", "enabled": true},
      "required_linear_history": {"enabled": true},
      "allow_force_pushes": {"enabled": true},
      "allow_deletions": {"enabled": true},
      "block_creations": {"enabled": true},
      "required_conversation_resolution": {"enabled": true},
      "lock_branch": {"enabled": true},
      "allow_fork_syncing": {"enabled": true}
    }"#;

    #[test]
    fn classic_protection_reads_the_documented_answer() {
        assert_eq!(
            classic_protection(CLASSIC).unwrap(),
            Protection {
                protected: true,
                required_reviews: Some(2),
                required_checks: strings(&["build", "continuous-integration/travis-ci"]),
                allows_force_pushes: Some(true),
                allows_deletions: Some(true),
                enforce_admins: Some(true),
                sources: strings(&["branch_protection"]),
            }
        );
    }

    #[test]
    fn classic_protection_defaults_are_github_defaults() {
        // Only status checks required: no pull request (0 reviews), no force pushes, no deletions.
        let minimal = r#"{"url":"u","required_status_checks":{"strict":true,"contexts":["ci"]},
            "enforce_admins":{"url":"u","enabled":false}}"#;
        assert_eq!(
            classic_protection(minimal).unwrap(),
            Protection {
                protected: true,
                required_reviews: Some(0),
                required_checks: strings(&["ci"]),
                allows_force_pushes: Some(false),
                allows_deletions: Some(false),
                enforce_admins: Some(false),
                sources: strings(&["branch_protection"]),
            }
        );
        // Pull requests required without a count, checks null, enforce_admins missing (unknown).
        let sparse = r#"{"required_pull_request_reviews":{"dismiss_stale_reviews":false},
            "required_status_checks":{"contexts":null,"checks":null},"allow_force_pushes":{"enabled":false}}"#;
        let p = classic_protection(sparse).unwrap();
        assert_eq!(
            (
                p.required_reviews,
                p.required_checks.len(),
                p.enforce_admins
            ),
            (Some(0), 0, None)
        );
        assert!(classic_protection("[]").is_err());
    }

    #[test]
    fn branch_rules_read_the_rulesets() {
        let rules = r#"[
          {"type":"deletion","ruleset_source_type":"Repository","ruleset_source":"monalisa/my-repo","ruleset_id":42},
          {"type":"non_fast_forward","ruleset_source_type":"Organization","ruleset_source":"my-org","ruleset_id":7},
          {"type":"pull_request","ruleset_source_type":"Repository","ruleset_source":"monalisa/my-repo","ruleset_id":42,
           "parameters":{"dismiss_stale_reviews_on_push":true,"require_code_owner_review":false,
             "require_last_push_approval":false,"required_approving_review_count":1,
             "required_review_thread_resolution":false,"allowed_merge_methods":["squash"]}},
          {"type":"pull_request","ruleset_source_type":"Organization","ruleset_source":"my-org","ruleset_id":7,
           "parameters":{"required_approving_review_count":3}},
          {"type":"required_status_checks","ruleset_source_type":"Organization","ruleset_source":"my-org","ruleset_id":7,
           "parameters":{"strict_required_status_checks_policy":false,"do_not_enforce_on_create":false,
             "required_status_checks":[{"context":"ci/build","integration_id":15368},{"context":"ci/lint"}]}},
          {"type":"commit_message_pattern","ruleset_source_type":"Repository","ruleset_source":"monalisa/my-repo","ruleset_id":42,
           "parameters":{"operator":"starts_with","pattern":"issue","negate":false}}
        ]"#;
        assert_eq!(
            branch_rules(rules).unwrap(),
            Protection {
                protected: true,
                required_reviews: Some(3),
                required_checks: strings(&["ci/build", "ci/lint"]),
                allows_force_pushes: Some(false),
                allows_deletions: Some(false),
                enforce_admins: None,
                sources: strings(&["ruleset:42", "ruleset:7"]),
            }
        );
        // One rule that only restricts creations still protects the branch; the rest is open.
        let only_signatures = r#"[{"type":"required_signatures","ruleset_source_type":"Repository","ruleset_source":"o/r","ruleset_id":9}]"#;
        assert_eq!(
            branch_rules(only_signatures).unwrap(),
            Protection {
                protected: true,
                sources: strings(&["ruleset:9"]),
                ..unprotected()
            }
        );
        assert_eq!(branch_rules("[]").unwrap(), unprotected());
        assert!(branch_rules(r#"{"message":"Not Found"}"#).is_err());
    }

    #[test]
    fn unprotected_allows_everything() {
        assert_eq!(
            unprotected(),
            Protection {
                protected: false,
                required_reviews: Some(0),
                required_checks: vec![],
                allows_force_pushes: Some(true),
                allows_deletions: Some(true),
                enforce_admins: None,
                sources: vec![],
            }
        );
    }

    #[test]
    fn combine_keeps_the_strictest_of_both_layers() {
        let classic = classic_protection(CLASSIC).unwrap();
        // No classic protection: the rules alone.
        assert_eq!(combine(None, unprotected()), unprotected());
        let rules = branch_rules(
            r#"[{"type":"non_fast_forward","ruleset_id":5},
                {"type":"pull_request","ruleset_id":5,"parameters":{"required_approving_review_count":1}},
                {"type":"required_status_checks","ruleset_id":5,
                 "parameters":{"required_status_checks":[{"context":"build"},{"context":"sec"}]}}]"#,
        )
        .unwrap();
        assert_eq!(combine(None, rules.clone()), rules);
        assert_eq!(
            combine(Some(classic.clone()), rules),
            Protection {
                protected: true,
                // Classic asks 2, the ruleset 1: 2.
                required_reviews: Some(2),
                required_checks: strings(&["build", "continuous-integration/travis-ci", "sec"]),
                // Classic allows force pushes, the ruleset blocks them: blocked.
                allows_force_pushes: Some(false),
                // Both allow deletions.
                allows_deletions: Some(true),
                enforce_admins: Some(true),
                sources: strings(&["branch_protection", "ruleset:5"]),
            }
        );
        // Classic protection and no ruleset: the classic layer as it is.
        assert_eq!(combine(Some(classic.clone()), unprotected()), classic);
    }

    #[test]
    fn combine_is_unknown_only_when_neither_layer_says() {
        let unknown = Protection {
            protected: true,
            required_reviews: None,
            allows_force_pushes: None,
            allows_deletions: None,
            enforce_admins: None,
            ..Protection::default()
        };
        let known = Protection {
            protected: true,
            required_reviews: Some(1),
            allows_force_pushes: Some(true),
            allows_deletions: Some(false),
            enforce_admins: Some(false),
            ..Protection::default()
        };
        let c = combine(Some(unknown.clone()), known.clone());
        assert_eq!(
            (
                c.required_reviews,
                c.allows_force_pushes,
                c.allows_deletions,
                c.enforce_admins
            ),
            (Some(1), Some(true), Some(false), Some(false))
        );
        let c = combine(Some(known), unknown.clone());
        assert_eq!(
            (
                c.required_reviews,
                c.allows_force_pushes,
                c.allows_deletions,
                c.enforce_admins
            ),
            (Some(1), Some(true), Some(false), Some(false))
        );
        assert_eq!(combine(Some(unknown.clone()), unknown.clone()), unknown);
    }
}
