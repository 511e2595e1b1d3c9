//! Azure DevOps REST 7.1 answers the access audit reads, turned into the model's parts:
//!
//! - members: `GET https://vsaex.dev.azure.com/{org}/_apis/userentitlements?api-version=7.1`
//!   (paged by the body's `continuationToken`) → [`entitlements`];
//! - the default branch's protection: `GET {org}/{project}/_apis/git/policy/configurations
//!   ?repositoryId=…&refName=…` → [`protection`].
//!
//! Azure DevOps has no 2FA of its own (Microsoft Entra ID enforces MFA through conditional
//! access): members' `two_factor` and the org's requirement are always unknown. Its
//! administrators are a security group (Project Collection Administrators), not an access level:
//! `admin: false`.

use super::model::{Member, Protection};
use super::{nullable, parse_object, ParseError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Minimum number of reviewers.
pub const MINIMUM_REVIEWERS: &str = "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd";
/// Build validation.
pub const BUILD: &str = "0609b952-1397-4640-95ec-e00a01b2c241";
/// Required reviewers (specific people or groups).
pub const REQUIRED_REVIEWERS: &str = "fd2167ab-b0be-447a-8ec8-39368250530e";
/// Status checks posted by external services.
pub const STATUS: &str = "cbdc66da-9728-4af8-aada-9a5a32e4a226";

/// One page of members and the token naming the next (`None`: the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementsPage {
    pub members: Vec<Member>,
    pub continuation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entitlements {
    #[serde(default, deserialize_with = "nullable")]
    members: Vec<UserEntitlement>,
    #[serde(default)]
    continuation_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserEntitlement {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    user: Option<GraphUser>,
    #[serde(default)]
    access_level: Option<AccessLevel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUser {
    #[serde(default)]
    principal_name: Option<String>,
    #[serde(default)]
    mail_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessLevel {
    #[serde(default)]
    account_license_type: Option<String>,
    #[serde(default)]
    licensing_source: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// The access level's name as a role: `express` → `basic`, `stakeholder`, `advanced` →
/// `basic_test_plans`, `msdn` (or a license whose source is a Visual Studio subscription) →
/// `visual_studio_subscriber`, `professional`, `earlyAdopter` → `early_adopter`, `none`; any
/// other as given, in lowercase.
pub fn role_name(account_license_type: &str, licensing_source: Option<&str>) -> String {
    if licensing_source.is_some_and(|s| s.eq_ignore_ascii_case("msdn")) {
        return "visual_studio_subscriber".into();
    }
    match account_license_type {
        "express" => "basic".into(),
        "advanced" => "basic_test_plans".into(),
        "msdn" => "visual_studio_subscriber".into(),
        "earlyAdopter" => "early_adopter".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// A page of `GET /_apis/userentitlements`: each member's `user.principalName` (their sign-in
/// name; `mailAddress` when absent, the entitlement id as a last resort) as login, the access
/// level as role ([`role_name`]), `admin: false`, `two_factor: None`. Users whose access is
/// `disabled` or `deleted` are left out (they cannot sign in to the organization); `pending`
/// (invited, not yet signed in) stay: the access is theirs as soon as they do. Sorted by login,
/// `since = now`; `continuationToken` (absent, `null` or empty: the last page).
pub fn entitlements(json: &str, now: i64) -> Result<EntitlementsPage, ParseError> {
    let page: Entitlements = parse_object(json, "Azure DevOps user entitlements")?;
    let mut by_login: BTreeMap<String, String> = BTreeMap::new();
    for e in page.members {
        let level = e.access_level.as_ref();
        let status = level.and_then(|l| l.status.as_deref()).unwrap_or("");
        if status.eq_ignore_ascii_case("disabled") || status.eq_ignore_ascii_case("deleted") {
            continue;
        }
        let user = e.user.as_ref();
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let Some(login) = user
            .and_then(|u| non_empty(&u.principal_name).or_else(|| non_empty(&u.mail_address)))
            .or_else(|| non_empty(&e.id))
        else {
            return Err(ParseError(
                "Azure DevOps user entitlements: a member without principalName, mailAddress or id"
                    .into(),
            ));
        };
        let role = role_name(
            level
                .and_then(|l| l.account_license_type.as_deref())
                .unwrap_or("none"),
            level.and_then(|l| l.licensing_source.as_deref()),
        );
        by_login.insert(login, role);
    }
    Ok(EntitlementsPage {
        members: by_login
            .into_iter()
            .map(|(login, role)| Member {
                login,
                role,
                admin: false,
                two_factor: None,
                since: now,
            })
            .collect(),
        continuation: page.continuation_token.filter(|t| !t.is_empty()),
    })
}

#[derive(Deserialize)]
struct Policies {
    #[serde(default, deserialize_with = "nullable")]
    value: Vec<PolicyConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyConfiguration {
    id: u64,
    #[serde(default, deserialize_with = "nullable")]
    is_enabled: bool,
    #[serde(default, deserialize_with = "nullable")]
    is_blocking: bool,
    #[serde(default, deserialize_with = "nullable")]
    is_deleted: bool,
    #[serde(rename = "type")]
    kind: PolicyType,
    #[serde(default, deserialize_with = "nullable")]
    settings: Value,
}

#[derive(Deserialize)]
struct PolicyType {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Scope {
    #[serde(default)]
    ref_name: Option<String>,
    #[serde(default)]
    match_kind: Option<String>,
    #[serde(default)]
    repository_id: Option<String>,
}

/// The default branch's protection from the project's policy configurations
/// (`value[]` of `GET …/_apis/git/policy/configurations`).
///
/// Counted: policies enabled, blocking (required, not optional) and not deleted, with a scope
/// entry that matches: its `repositoryId` is `repository_id` or `null` (every repository of the
/// project), and its `refName` is the branch (`matchKind` `Exact`), a prefix of it (`Prefix`), or
/// the entry targets each repository's default branch (`DefaultBranch`; `branch_ref` is taken to
/// be the default branch, which is what the state records). Refs compare case-insensitively, as
/// Azure Repos' do; `branch_ref` may be `main` or `refs/heads/main`. Scope entries without a
/// `refName` are repository (push) policies — file size, path length, reserved names — which
/// check every push and protect no branch: they do not count.
///
/// - Any counted policy → protected: a branch with a required policy cannot be pushed to
///   directly (pull requests only) and cannot be deleted, so force pushes and deletions are
///   `Some(false)`; users granted "Bypass policies when pushing" still can, which these answers
///   do not show: `enforce_admins: None`.
/// - No counted policy → unprotected: no reviews, no checks, and force pushes and deletions are
///   then a matter of the repository's permissions (Force push), not read: `None`.
/// - Reviews: the most `settings.minimumApproverCount` of Minimum number of reviewers policies,
///   and of Required reviewers policies that apply to every pull request (no
///   `settings.filenamePatterns`).
/// - Checks: Build policies (`settings.displayName`, else `build:<buildDefinitionId>`) and Status
///   policies (`<statusGenre>/<statusName>`) that apply to every pull request; sorted.
/// - Sources `policy:<id>`, sorted.
pub fn protection(
    policies_json: &str,
    repository_id: &str,
    branch_ref: &str,
) -> Result<Protection, ParseError> {
    let policies: Policies = parse_object(policies_json, "Azure DevOps policy configurations")?;
    let branch = if branch_ref.starts_with("refs/") {
        branch_ref.to_string()
    } else {
        format!("refs/heads/{branch_ref}")
    };
    let mut protected = false;
    let mut reviews = 0u32;
    let mut checks = BTreeSet::new();
    let mut sources = BTreeSet::new();
    for policy in &policies.value {
        if !policy.is_enabled || !policy.is_blocking || policy.is_deleted {
            continue;
        }
        let scopes: Vec<Scope> = match policy.settings.get("scope") {
            Some(scope) => serde_json::from_value(scope.clone())
                .map_err(|e| ParseError(format!("Azure DevOps policy {} scope: {e}", policy.id)))?,
            None => Vec::new(),
        };
        if !scopes
            .iter()
            .any(|s| scope_matches(s, repository_id, &branch))
        {
            continue;
        }
        protected = true;
        sources.insert(format!("policy:{}", policy.id));
        let settings = &policy.settings;
        let every_pull_request = settings
            .get("filenamePatterns")
            .and_then(Value::as_array)
            .is_none_or(|p| p.is_empty());
        let kind = policy.kind.id.to_ascii_lowercase();
        match kind.as_str() {
            MINIMUM_REVIEWERS | REQUIRED_REVIEWERS
                if kind == MINIMUM_REVIEWERS || every_pull_request =>
            {
                let count = settings
                    .get("minimumApproverCount")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                reviews = reviews.max(u32::try_from(count).unwrap_or(u32::MAX));
            }
            BUILD if every_pull_request => {
                let name = settings
                    .get("displayName")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        let id = settings.get("buildDefinitionId").map_or_else(
                            || "?".to_string(),
                            |v| v.as_u64().map_or_else(|| v.to_string(), |n| n.to_string()),
                        );
                        format!("build:{id}")
                    });
                checks.insert(name);
            }
            STATUS if every_pull_request => {
                let part = |key: &str| settings.get(key).and_then(Value::as_str).unwrap_or("");
                let (genre, name) = (part("statusGenre"), part("statusName"));
                checks.insert(if genre.is_empty() {
                    name.to_string()
                } else {
                    format!("{genre}/{name}")
                });
            }
            _ => {}
        }
    }
    if !protected {
        return Ok(Protection {
            protected: false,
            required_reviews: Some(0),
            required_checks: Vec::new(),
            allows_force_pushes: None,
            allows_deletions: None,
            enforce_admins: None,
            sources: Vec::new(),
        });
    }
    Ok(Protection {
        protected: true,
        required_reviews: Some(reviews),
        required_checks: checks.into_iter().collect(),
        allows_force_pushes: Some(false),
        allows_deletions: Some(false),
        enforce_admins: None,
        sources: sources.into_iter().collect(),
    })
}

fn scope_matches(scope: &Scope, repository_id: &str, branch: &str) -> bool {
    let repository = scope
        .repository_id
        .as_deref()
        .is_none_or(|id| id.eq_ignore_ascii_case(repository_id));
    let kind = scope.match_kind.as_deref().unwrap_or("Exact");
    if kind.eq_ignore_ascii_case("DefaultBranch") {
        return repository;
    }
    let Some(ref_name) = scope.ref_name.as_deref().filter(|r| !r.is_empty()) else {
        return false;
    };
    let (ref_name, branch) = (ref_name.to_ascii_lowercase(), branch.to_ascii_lowercase());
    repository
        && if kind.eq_ignore_ascii_case("Prefix") {
            branch.starts_with(&ref_name)
        } else {
            branch == ref_name
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of `GET /_apis/userentitlements` (7.1), shaped as Azure DevOps answers it.
    const PAGE: &str = r#"{
      "members": [
        {"id":"8480a6d4-1b5d-4d8b-9f2a-aaaaaaaaaaaa",
         "user":{"subjectKind":"user","metaType":"member","domain":"AadGuest","principalName":"Jane.Doe@contoso.com",
           "mailAddress":"jane.doe@contoso.com","origin":"aad","originId":"e97b0e7f","displayName":"Jane Doe",
           "descriptor":"aad.ZTk3YjBlN2Y"},
         "accessLevel":{"licensingSource":"account","accountLicenseType":"express","msdnLicenseType":"none",
           "licenseDisplayName":"Basic","status":"active","statusMessage":"","assignmentSource":"unknown"},
         "lastAccessedDate":"2024-01-10T10:00:00Z","dateCreated":"2023-01-10T10:00:00Z",
         "projectEntitlements":[],"extensions":[],"groupAssignments":[]},
        {"id":"b","user":{"principalName":"sam@contoso.com","mailAddress":"sam@contoso.com"},
         "accessLevel":{"licensingSource":"msdn","accountLicenseType":"none","msdnLicenseType":"enterprise",
           "licenseDisplayName":"Visual Studio Enterprise subscription","status":"active"}},
        {"id":"c","user":{"principalName":"","mailAddress":"guest@example.com"},
         "accessLevel":{"licensingSource":"account","accountLicenseType":"stakeholder","status":"pending"}},
        {"id":"d","user":{"principalName":"tester@contoso.com"},
         "accessLevel":{"licensingSource":"account","accountLicenseType":"advanced","status":"active"}},
        {"id":"e","user":{"principalName":"old@contoso.com"},
         "accessLevel":{"licensingSource":"account","accountLicenseType":"express","status":"disabled"}},
        {"id":"f","user":{"principalName":"early@contoso.com"},
         "accessLevel":{"accountLicenseType":"earlyAdopter","status":"active"}},
        {"id":"g","user":{"principalName":"pro@contoso.com"},
         "accessLevel":{"accountLicenseType":"professional"}},
        {"id":"h","user":{"principalName":"new@contoso.com"},"accessLevel":{"accountLicenseType":"Future"}},
        {"id":"i","user":{"principalName":"nobody@contoso.com"}}
      ],
      "continuationToken": "eyJwYWdlIjoyfQ==",
      "totalCount": 42
    }"#;

    #[test]
    fn entitlements_map_access_levels_to_roles() {
        let page = entitlements(PAGE, 3).unwrap();
        let view: Vec<(&str, &str)> = page
            .members
            .iter()
            .map(|m| (m.login.as_str(), m.role.as_str()))
            .collect();
        assert_eq!(
            view,
            vec![
                ("Jane.Doe@contoso.com", "basic"),
                ("early@contoso.com", "early_adopter"),
                ("guest@example.com", "stakeholder"),
                ("new@contoso.com", "future"),
                ("nobody@contoso.com", "none"),
                ("pro@contoso.com", "professional"),
                ("sam@contoso.com", "visual_studio_subscriber"),
                ("tester@contoso.com", "basic_test_plans"),
            ]
        );
        assert!(page
            .members
            .iter()
            .all(|m| !m.admin && m.two_factor.is_none() && m.since == 3));
        assert_eq!(page.continuation.as_deref(), Some("eyJwYWdlIjoyfQ=="));
    }

    #[test]
    fn the_last_page_has_no_continuation() {
        for last in [
            r#"{"members":[],"totalCount":0}"#,
            r#"{"members":[],"continuationToken":null}"#,
            r#"{"members":null,"continuationToken":""}"#,
        ] {
            assert_eq!(
                entitlements(last, 0).unwrap(),
                EntitlementsPage {
                    members: vec![],
                    continuation: None
                },
                "{last}"
            );
        }
        assert!(entitlements("[]", 0).is_err());
        assert!(entitlements(r#"{"members":[{"user":{}}]}"#, 0).is_err());
        assert_eq!(role_name("msdn", None), "visual_studio_subscriber");
    }

    const REPO: &str = "5febef5a-833d-4e14-b9c0-14cb638f91e6";

    fn policy(id: u64, kind: &str, enabled: bool, blocking: bool, settings: &str) -> String {
        format!(
            r#"{{"createdBy":{{"displayName":"Normal Paulk","id":"ac5aaba6"}},"createdDate":"2016-11-07T15:42:36.6431347Z",
                "isEnabled":{enabled},"isBlocking":{blocking},"isDeleted":false,"settings":{settings},
                "_links":{{}},"revision":1,"id":{id},"url":"https://dev.azure.com/fabrikam/_apis/policy/configurations/{id}",
                "type":{{"id":"{kind}","url":"https://dev.azure.com/fabrikam/_apis/policy/types/{kind}","displayName":"x"}}}}"#
        )
    }

    fn answer(policies: &[String]) -> String {
        format!(
            r#"{{"count":{},"value":[{}]}}"#,
            policies.len(),
            policies.join(",")
        )
    }

    fn scope(repository: Option<&str>, ref_name: Option<&str>, kind: &str) -> String {
        let repository = repository.map_or("null".to_string(), |r| format!("\"{r}\""));
        let ref_name = ref_name.map_or(String::new(), |r| format!(r#""refName":"{r}","#));
        format!(r#"{{{ref_name}"matchKind":"{kind}","repositoryId":{repository}}}"#)
    }

    #[test]
    fn required_policies_protect_the_branch() {
        let main = scope(Some(REPO), Some("refs/heads/main"), "Exact");
        let policies = answer(&[
            policy(
                1,
                MINIMUM_REVIEWERS,
                true,
                true,
                &format!(
                    r#"{{"minimumApproverCount":2,"creatorVoteCounts":false,"allowDownvotes":false,
                        "resetOnSourcePush":true,"scope":[{main}]}}"#
                ),
            ),
            policy(
                2,
                BUILD,
                true,
                true,
                &format!(
                    r#"{{"buildDefinitionId":5,"displayName":"CI","queueOnSourceUpdateOnly":true,
                        "manualQueueOnly":false,"validDuration":720,"scope":[{main}]}}"#
                ),
            ),
            policy(
                3,
                BUILD,
                true,
                true,
                &format!(
                    r#"{{"buildDefinitionId":9,"displayName":null,"scope":[{}]}}"#,
                    scope(None, Some("refs/heads/"), "Prefix")
                ),
            ),
            // Optional (not blocking): not counted.
            policy(
                4,
                MINIMUM_REVIEWERS,
                true,
                false,
                &format!(r#"{{"minimumApproverCount":5,"scope":[{main}]}}"#),
            ),
            // Disabled: not counted.
            policy(
                5,
                MINIMUM_REVIEWERS,
                false,
                true,
                &format!(r#"{{"minimumApproverCount":6,"scope":[{main}]}}"#),
            ),
            // Another repository: not counted.
            policy(
                6,
                MINIMUM_REVIEWERS,
                true,
                true,
                &format!(
                    r#"{{"minimumApproverCount":7,"scope":[{}]}}"#,
                    scope(Some("other"), Some("refs/heads/main"), "Exact")
                ),
            ),
            // A repository policy (file size): no refName, protects no branch.
            policy(
                7,
                "2e26e725-8201-4edd-8bf5-978563c34a80",
                true,
                true,
                &format!(
                    r#"{{"maximumGitBlobSizeInBytes":10485760,"useUncompressedSize":false,"scope":[{}]}}"#,
                    r#"{"repositoryId":null}"#
                ),
            ),
            // Required reviewers for some paths only: protects, requires no review of every PR.
            policy(
                8,
                REQUIRED_REVIEWERS,
                true,
                true,
                &format!(
                    r#"{{"requiredReviewerIds":["abc"],"minimumApproverCount":3,"filenamePatterns":["/docs/*"],"scope":[{main}]}}"#
                ),
            ),
            policy(
                9,
                STATUS,
                true,
                true,
                &format!(
                    r#"{{"statusGenre":"security","statusName":"scan","authorId":null,"invalidateOnSourceUpdate":true,
                        "policyApplicability":null,"scope":[{main}]}}"#
                ),
            ),
        ]);
        for branch in ["main", "refs/heads/main", "refs/heads/MAIN"] {
            assert_eq!(
                protection(&policies, REPO, branch).unwrap(),
                Protection {
                    protected: true,
                    required_reviews: Some(2),
                    required_checks: vec!["CI".into(), "build:9".into(), "security/scan".into()],
                    allows_force_pushes: Some(false),
                    allows_deletions: Some(false),
                    enforce_admins: None,
                    sources: vec![
                        "policy:1".into(),
                        "policy:2".into(),
                        "policy:3".into(),
                        "policy:8".into(),
                        "policy:9".into()
                    ],
                },
                "{branch}"
            );
        }
        // Another branch: only the prefix policy (every branch) applies.
        let develop = protection(&policies, REPO, "develop").unwrap();
        assert_eq!(
            (
                develop.required_reviews,
                develop.required_checks,
                develop.sources
            ),
            (
                Some(0),
                vec!["build:9".to_string()],
                vec!["policy:3".to_string()]
            )
        );
    }

    #[test]
    fn an_unprotected_branch_leaves_force_pushes_to_permissions() {
        let unprotected = Protection {
            protected: false,
            required_reviews: Some(0),
            required_checks: vec![],
            allows_force_pushes: None,
            allows_deletions: None,
            enforce_admins: None,
            sources: vec![],
        };
        assert_eq!(
            protection(r#"{"count":0,"value":[]}"#, REPO, "main").unwrap(),
            unprotected
        );
        let elsewhere = answer(&[policy(
            1,
            MINIMUM_REVIEWERS,
            true,
            true,
            &format!(
                r#"{{"minimumApproverCount":1,"scope":[{}]}}"#,
                scope(Some(REPO), Some("refs/heads/release/"), "Prefix")
            ),
        )]);
        assert_eq!(protection(&elsewhere, REPO, "main").unwrap(), unprotected);
        assert!(protection("[]", REPO, "main").is_err());
        assert!(protection(r#"{"value":[{"id":1}]}"#, REPO, "main").is_err());
    }

    #[test]
    fn default_branch_scopes_and_all_repositories() {
        let policies = answer(&[
            policy(
                11,
                MINIMUM_REVIEWERS,
                true,
                true,
                &format!(
                    r#"{{"minimumApproverCount":1,"scope":[{}]}}"#,
                    scope(None, None, "DefaultBranch")
                ),
            ),
            policy(
                12,
                MINIMUM_REVIEWERS,
                true,
                true,
                &format!(
                    r#"{{"minimumApproverCount":2,"scope":[{},{}]}}"#,
                    scope(Some("other"), Some("refs/heads/main"), "Exact"),
                    scope(None, Some("refs/heads/main"), "Exact")
                ),
            ),
        ]);
        let p = protection(&policies, &REPO.to_uppercase(), "main").unwrap();
        assert_eq!(
            (p.protected, p.required_reviews, p.sources),
            (
                true,
                Some(2),
                vec!["policy:11".to_string(), "policy:12".to_string()]
            )
        );
    }
}
