//! What GitHub, GitLab and Microsoft answer: pagination and rate-limit headers, OAuth token and
//! error responses, and the JSON bodies of their APIs.

use super::Input;
use crate::access::{azure_devops as ado_access, github as gh_access, gitlab as gl_access};
use crate::github::{self, FailedResponse, LinkError, Retry};
use crate::oauth::{self, azure_devops, gitlab, TokenError, MAX_EXPIRES_IN_SECS};
use crate::provider::RepositoryRecord;
use serde_json::{json, Map, Value};
use url::Url;

const API_BASES: &[&str] = &[
    "https://api.github.com",
    "http://127.0.0.1:9100/api/v3/",
    "https://gitlab.example.com/gitlab/",
    "https://dev.azure.com/acme",
];

/// `Link` targets: on the API's origin or not, relative or absolute, odd schemes.
const TARGETS: &[&str] = &[
    "https://api.github.com/installation/repositories?per_page=100&page=2",
    "/installation/repositories?page=3",
    "?page=4",
    "//evil.example/steal",
    "https://api.github.com.evil.example/",
    "https://API.GITHUB.COM:443/x",
    "http://api.github.com/x",
    "https://user:pass@api.github.com/x",
    "http://127.0.0.1:9100/api/v3/x?page=2",
    "http://127.0.0.1:9101/api/v3/x",
    "javascript:alert(1)",
    "data:text/plain,x",
    "file:///etc/passwd",
    "",
    " ",
    "<",
    "https://[::1]:9100/",
];

fn link_header(input: &mut Input<'_>) -> String {
    let n = 1 + input.below(4);
    let links: Vec<String> = (0..n)
        .map(|_| {
            let target = if input.bool() {
                input.pick(TARGETS).to_string()
            } else {
                input.text(60)
            };
            let rel = input.pick(&[
                "rel=\"next\"",
                "rel=next",
                "rel=\"NEXT\"",
                "rel=\"last\"",
                "rel=\"next last\"",
                "rel=\"prev\"",
                "rel=\"\\\"",
                "rel*=UTF-8''next",
                "rel*=x''y",
                "anchor=\"//evil.example/\"; rel=next",
                "title=\"a\"; title=\"b\"; rel=next",
                "",
            ]);
            let extra = if input.bool() {
                input.text(20)
            } else {
                String::new()
            };
            format!("<{target}>; {rel}{extra}")
        })
        .collect();
    links.join(input.pick(&[", ", ",", " ,\t", ";", ""]))
}

/// [`github::next_page`] on any `Link` header and on headers built from hostile links;
/// [`github::retry_policy`] on any `retry-after` / `x-ratelimit-*` values;
/// [`azure_devops::projects_url`] with any `x-ms-continuationtoken`.
///
/// - The next page is never on another origin than the API's (a token would follow it).
/// - A retry waits a whole number of milliseconds, whatever the headers say (no overflow).
/// - A continuation token reaches Azure DevOps as that exact query value.
pub fn provider_headers(data: &[u8]) {
    let mut input = Input::new(data);
    let api = Url::parse(input.pick(API_BASES)).expect("a URL");
    let link = match input.byte() % 4 {
        0 => None,
        1 => Some(input.text(300)),
        _ => Some(link_header(&mut input)),
    };
    match github::next_page(link.as_deref(), &api) {
        Ok(Some(next)) => assert_eq!(next.origin(), api.origin(), "{link:?} → {next}"),
        Ok(None) | Err(LinkError::Malformed | LinkError::ForeignOrigin) => {}
    }

    let header = |input: &mut Input<'_>| match input.byte() % 4 {
        0 => None,
        1 => Some(input.text(30)),
        2 => Some(input.i64().to_string()),
        _ => Some(format!(" {} ", input.u64())),
    };
    let (retry_after, remaining, reset) =
        (header(&mut input), header(&mut input), header(&mut input));
    let remaining = if input.bool() {
        Some("0".to_string())
    } else {
        remaining
    };
    let failed = FailedResponse {
        status: input.pick(&[0, 200, 304, 403, 404, 429, 500, 503, 599, 600, 65535]),
        retry_after: retry_after.as_deref(),
        ratelimit_remaining: remaining.as_deref(),
        ratelimit_reset: reset.as_deref(),
    };
    let attempt = 1 + input.below(github::MAX_ATTEMPTS as usize + 1) as u32;
    let now = input.clock();
    match github::retry_policy(&failed, attempt, now) {
        Retry::After(ms) if failed.status == 0 || failed.status >= 500 => {
            assert!(ms <= 250 << 6);
        }
        Retry::After(_) | Retry::GiveUp => {}
    }

    let token = input.text(200);
    let organization = azure_devops::organization_url(&api, "acme");
    let url = azure_devops::projects_url(&organization, Some(&token));
    let sent = url
        .query_pairs()
        .find(|(k, _)| k == "continuationToken")
        .map(|(_, v)| v.into_owned());
    assert_eq!(sent.as_deref(), Some(token.as_str()));
}

/// A token endpoint's JSON: the members RFC 6749 names, each realistic or hostile.
fn token_body(input: &mut Input<'_>) -> Value {
    let mut body = Map::new();
    let members = [
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "scope",
        "error",
        "error_description",
    ];
    for name in members {
        if input.bool() {
            continue;
        }
        let realistic = match name {
            "access_token" | "refresh_token" => Value::String(input.text(40)),
            "token_type" => Value::String(input.pick(&["Bearer", "bearer", "mac", ""]).into()),
            "expires_in" => match input.byte() % 3 {
                0 => input.number(),
                1 => Value::String(input.pick(&["3600", " 7200 ", "-1", "1e9", "x"]).into()),
                _ => json!(3599),
            },
            "error" => Value::String(
                input
                    .pick(&[
                        "invalid_grant",
                        "invalid_client",
                        "server_error",
                        "temporarily_unavailable",
                        "interaction_required",
                        "",
                    ])
                    .into(),
            ),
            _ => Value::String(input.text(400)),
        };
        let value = input.or_junk(realistic);
        body.insert(name.to_string(), value);
    }
    Value::Object(body)
}

/// What a provider's text may become in our messages: no control character, bounded.
fn safe_text(text: &str, max_chars: usize) {
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.chars().count() <= max_chars, "{text:?}");
}

/// [`oauth::parse_token_response`] on any status and body, and on token endpoint JSON with
/// hostile members; [`oauth::callback_error`] on any query; [`oauth::expires_at`] and
/// [`oauth::needs_refresh`] on any numbers.
///
/// - A grant comes only from a 2xx answer and has a non-empty access token; it expires between
///   now and a year from now.
/// - What a refusal says (from the provider's `error` and `error_description`) has no control
///   character and is at most a few hundred characters.
pub fn oauth_response(data: &[u8]) {
    let mut input = Input::new(data);
    let status = if input.bool() {
        input.u16()
    } else {
        input.pick(&[200, 201, 204, 302, 400, 401, 403, 404, 429, 500, 503])
    };
    let body = match input.byte() % 4 {
        0 => input.bytes(600).to_vec(),
        1 => input.json(3).to_string().into_bytes(),
        _ => token_body(&mut input).to_string().into_bytes(),
    };
    let now = input.clock();
    match oauth::parse_token_response(status, &body) {
        Ok(grant) => {
            assert!((200..300).contains(&status));
            assert!(!grant.access_token.expose().is_empty());
            let expires = oauth::expires_at(now, grant.expires_in, gitlab::ACCESS_TOKEN_SECS);
            assert!((now..=now + MAX_EXPIRES_IN_SECS).contains(&expires));
        }
        Err(e) => {
            let (TokenError::Revoked(d)
            | TokenError::Rejected(d)
            | TokenError::Unavailable(d)
            | TokenError::Malformed(d)) = &e;
            safe_text(d, 300);
            safe_text(&e.to_string(), 400);
        }
    }
    let query: Vec<(String, String)> = (0..input.below(4))
        .map(|_| {
            let key = if input.bool() {
                input
                    .pick(&["error", "error_description", "code", "state"])
                    .to_string()
            } else {
                input.text(10)
            };
            (key, input.text(500))
        })
        .collect();
    if let Some(description) = oauth::callback_error(&query) {
        safe_text(&description, 300);
    }
    let (a, b, c) = (input.i64(), input.i64(), input.i64());
    oauth::expires_at(a, Some(b), c);
    oauth::expires_at(a, None, c);
    oauth::needs_refresh(a, b);
}

/// A JSON answer: mostly `shape` (the documented shape, with values from the input) made
/// hostile by [`Input::vary`]; otherwise any JSON, JSON nested far deeper than any answer, or
/// bytes that are not JSON nor UTF-8 (decoded lossily, as the edge reads bodies).
fn answer(input: &mut Input<'_>, shape: fn(&mut Input<'_>) -> Value) -> String {
    match input.byte() % 8 {
        0 => String::from_utf8_lossy(input.bytes(500)).into_owned(),
        1 => {
            let depth = 1 + input.below(5000);
            String::from_utf8_lossy(&input.deep_json(depth)).into_owned()
        }
        2 => input.json(4).to_string(),
        _ => {
            let template = shape(input);
            input.vary(template).to_string()
        }
    }
}

fn maybe(input: &mut Input<'_>, value: Value) -> Value {
    match input.byte() % 4 {
        3 => Value::Null,
        _ => value,
    }
}

fn flag(input: &mut Input<'_>) -> Value {
    let b = Value::Bool(input.bool());
    maybe(input, b)
}

fn users(input: &mut Input<'_>) -> Value {
    input.list(4, |i| json!({"login": i.text(20), "id": i.id()}))
}

fn org_settings(input: &mut Input<'_>) -> Value {
    json!({
        "login": input.text(20),
        "two_factor_requirement_enabled": flag(input),
        "default_repository_permission": input.pick(&["read", "write", "admin", "none"]),
        "members_can_create_public_repositories": flag(input),
    })
}

fn invitations(input: &mut Input<'_>) -> Value {
    input.list(4, |i| {
        let login = Value::String(i.text(20));
        json!({
            "id": i.id(),
            "login": maybe(i, login),
            "email": i.text(20),
            "role": i.pick(&["direct_member", "admin", "billing_manager", "reinstate"]),
        })
    })
}

fn contexts(input: &mut Input<'_>) -> Value {
    input.list(3, |i| {
        Value::String(i.pick(&["ci/build", "lint", "", "ci/build"]).into())
    })
}

fn classic_protection(input: &mut Input<'_>) -> Value {
    json!({
        "required_pull_request_reviews": {"required_approving_review_count": input.count()},
        "required_status_checks": {
            "contexts": contexts(input),
            "checks": input.list(3, |i| json!({"context": i.pick(&["ci/build", "test"]), "app_id": i.id()})),
        },
        "enforce_admins": {"enabled": flag(input)},
        "allow_force_pushes": {"enabled": flag(input)},
        "allow_deletions": {"enabled": flag(input)},
    })
}

fn branch_rules(input: &mut Input<'_>) -> Value {
    input.list(4, |i| {
        json!({
            "type": i.pick(&["pull_request", "required_status_checks", "non_fast_forward", "deletion", "creation", ""]),
            "parameters": {
                "required_approving_review_count": i.count(),
                "required_status_checks": i.list(3, |j| json!({"context": j.pick(&["ci/build", "test"])})),
            },
            "ruleset_id": i.id(),
            "ruleset_source_type": "Repository",
        })
    })
}

fn gitlab_members(input: &mut Input<'_>) -> Value {
    input.list(5, |i| {
        json!({
            "username": i.pick(&["alice", "bob", "Alice", ""]),
            "access_level": i.count(),
            "state": i.pick(&["active", "blocked", "ldap_blocked", "banned", "deactivated"]),
            "membership_state": i.pick(&["active", "awaiting"]),
        })
    })
}

fn gitlab_group(input: &mut Input<'_>) -> Value {
    json!({"id": input.id(), "require_two_factor_authentication": flag(input)})
}

const BRANCH_PATTERNS: &[&str] = &["main", "ma*", "*", "release/*", "*n", "m**n", ""];

fn protected_branches(input: &mut Input<'_>) -> Value {
    input.list(3, |i| {
        json!({
            "name": i.pick(BRANCH_PATTERNS),
            "push_access_levels": i.list(3, |j| json!({
                "access_level": j.count(),
                "user_id": maybe(j, Value::from(1)),
                "group_id": maybe(j, Value::from(2)),
                "deploy_key_id": maybe(j, Value::from(3)),
            })),
            "allow_force_push": flag(i),
        })
    })
}

fn approval_rules(input: &mut Input<'_>) -> Value {
    input.list(3, |i| {
        json!({
            "rule_type": i.pick(&["regular", "any_approver", "code_owner", "report_approver"]),
            "approvals_required": i.count(),
            "protected_branches": i.list(2, |j| json!({"name": j.pick(BRANCH_PATTERNS)})),
            "applies_to_all_protected_branches": flag(i),
        })
    })
}

fn entitlements(input: &mut Input<'_>) -> Value {
    let token = Value::String(input.text(20));
    json!({
        "members": input.list(4, |i| json!({
            "id": i.text(10),
            "user": {"principalName": i.pick(&["a@x.example", "b@x.example", ""]), "mailAddress": i.text(10)},
            "accessLevel": {
                "accountLicenseType": i.pick(&["express", "stakeholder", "advanced", "msdn", "earlyAdopter", "none"]),
                "licensingSource": i.pick(&["account", "msdn", "MSDN"]),
                "status": i.pick(&["active", "pending", "disabled", "deleted"]),
            },
        })),
        "continuationToken": maybe(input, token),
    })
}

fn policies(input: &mut Input<'_>) -> Value {
    json!({
        "value": input.list(4, |i| json!({
            "id": i.id(),
            "isEnabled": flag(i),
            "isBlocking": flag(i),
            "isDeleted": flag(i),
            "type": {"id": i.pick(&[
                ado_access::MINIMUM_REVIEWERS, ado_access::BUILD, ado_access::REQUIRED_REVIEWERS,
                ado_access::STATUS, "FA4E907D-C16B-4A4C-9DFA-4906E5D171DD", "other",
            ])},
            "settings": {
                "scope": i.list(2, |j| json!({
                    "refName": j.pick(&["refs/heads/main", "refs/heads/", "REFS/HEADS/MAIN", ""]),
                    "matchKind": j.pick(&["Exact", "Prefix", "DefaultBranch", "exact"]),
                    "repositoryId": maybe(j, Value::String("r1".into())),
                })),
                "minimumApproverCount": i.count(),
                "filenamePatterns": i.list(1, |j| Value::String(j.text(10))),
                "displayName": i.text(10),
                "buildDefinitionId": i.id(),
                "statusGenre": i.text(8),
                "statusName": i.text(8),
            },
        })),
    })
}

fn github_repository(input: &mut Input<'_>) -> Value {
    json!({
        "id": input.id(),
        "name": input.text(20),
        "full_name": input.pick(&["acme/widgets", "acme/..", "a/b/c", "acme/wid gets", "/x", ""]),
        "private": input.bool(),
        "default_branch": input.text(10),
        "archived": input.bool(),
        "clone_url": input.text(40),
    })
}

fn github_answers(input: &mut Input<'_>) -> Value {
    match input.byte() % 3 {
        0 => {
            json!({"total_count": input.count(), "repositories": input.list(3, github_repository)})
        }
        1 => json!({
            "id": input.id(),
            "account": {"login": input.text(20), "id": input.id(), "type": input.pick(&["Organization", "User"])},
            "suspended_at": maybe(input, Value::String("2026-01-01T00:00:00Z".into())),
        }),
        _ => {
            json!({"installations": input.list(3, |i| json!({"id": i.id()})), "access_token": i_text(input)})
        }
    }
}

fn i_text(input: &mut Input<'_>) -> Value {
    Value::String(input.text(20))
}

fn gitlab_projects(input: &mut Input<'_>) -> Value {
    input.list(3, |i| {
        json!({
            "id": i.id(),
            "name": i.text(20),
            "path_with_namespace": i.text(30),
            "full_path": i.text(30),
            "visibility": i.pick(&["public", "internal", "private"]),
            "default_branch": i.text(10),
            "web_url": i.text(30),
            "archived": i.bool(),
            "http_url_to_repo": i.text(40),
        })
    })
}

fn ado_projects(input: &mut Input<'_>) -> Value {
    json!({"count": input.count(), "value": input.list(3, |i| json!({
        "id": i.text(10), "name": i.text(20), "visibility": i.pick(&["public", "private"]),
    }))})
}

fn ado_repositories(input: &mut Input<'_>) -> Value {
    json!({"value": input.list(3, |i| json!({
        "id": i.text(10),
        "name": i.text(20),
        "defaultBranch": i.pick(&["refs/heads/main", "main", ""]),
        "webUrl": i.text(30),
        "isDisabled": flag(i),
        "remoteUrl": if i.bool() {
            Value::String(format!("https://{}@dev.azure.com/acme/p/_git/r", i.text(10)))
        } else {
            Value::String(i.text(40))
        },
    }))})
}

fn sorted_unique<'a>(names: impl Iterator<Item = &'a str>) -> bool {
    let names: Vec<&str> = names.collect();
    names.windows(2).all(|w| w[0] < w[1])
}

/// An Azure DevOps clone URL is recorded without the user name Azure DevOps puts in it.
fn record_is_sound(record: &RepositoryRecord) {
    if let Some(git_url) = &record.git_url {
        let url = Url::parse(git_url).expect("a git URL we recorded parses");
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "{url}"
        );
    }
}

/// Each JSON answer the gateway reads (through [`crate::access`], [`crate::github`],
/// [`crate::oauth::gitlab`] and [`crate::oauth::azure_devops`]) on any body, and on bodies
/// made of the members those answers have.
///
/// - Members, invitations and entitlements come back sorted by login, once each.
/// - Required checks and sources are sorted, once each; combining protections keeps the
///   strictest.
/// - A GitLab branch pattern matches itself; `*` matches every branch.
/// - Repository URLs made from an answer stay on the configured origin (GitHub) or carry no
///   credentials (Azure DevOps).
pub fn provider_answer(data: &[u8]) {
    let mut input = Input::new(data);
    let which = input.byte() % 14;
    let shape: fn(&mut Input<'_>) -> Value = match which {
        0 => users,
        1 => org_settings,
        2 => invitations,
        3 | 4 => branch_rules,
        5 => gitlab_members,
        6 => gitlab_group,
        7 => protected_branches,
        9 => entitlements,
        10 => policies,
        11 => github_answers,
        12 => gitlab_projects,
        _ => ado_projects,
    };
    let body = answer(&mut input, shape);
    let now = input.clock();
    match which {
        0 => {
            let _ = gh_access::logins(&body);
        }
        1 => {
            let _ = gh_access::settings(&body, now);
        }
        2 => {
            if let Ok(invitations) = gh_access::invitations(&body, now) {
                let logins: Vec<&String> = invitations.iter().map(|i| &i.login).collect();
                assert!(logins.windows(2).all(|w| w[0] <= w[1]));
            }
        }
        3 | 4 => {
            let rules = gh_access::branch_rules(&body);
            let classic = gh_access::classic_protection(&answer(&mut input, classic_protection));
            for p in rules.iter().chain(classic.iter()) {
                assert!(sorted_unique(p.required_checks.iter().map(String::as_str)));
                assert!(sorted_unique(p.sources.iter().map(String::as_str)));
            }
            if let (Ok(rules), Ok(classic)) = (rules, classic) {
                let both = gh_access::combine(Some(classic.clone()), rules.clone());
                assert!(both.protected);
                assert!(both.required_reviews >= rules.required_reviews);
                assert!(both.required_reviews >= classic.required_reviews);
                assert!(sorted_unique(both.sources.iter().map(String::as_str)));
            }
        }
        5 => {
            if let Ok(members) = gl_access::members(&body, now) {
                assert!(sorted_unique(members.iter().map(|m| m.login.as_str())));
                assert!(
                    members
                        .iter()
                        .all(|m| m.admin == (m.role == "owner")
                            || m.role.starts_with("access_level:"))
                );
            }
        }
        6 => {
            let _ = gl_access::two_factor_required(&body);
        }
        7 => {
            let branch = input.text(30);
            let rules = input.bool().then(|| answer(&mut input, approval_rules));
            if let Ok(p) = gl_access::protection(&body, &branch, rules.as_deref()) {
                assert!(sorted_unique(p.sources.iter().map(String::as_str)));
            }
        }
        8 => {
            let (pattern, name) = (input.text(30), input.text(30));
            gl_access::wildcard_matches(&pattern, &name);
            assert!(gl_access::wildcard_matches(&pattern, &pattern));
            assert!(gl_access::wildcard_matches("*", &name));
            let around = format!("{pattern}{}{name}", input.text(10));
            assert!(gl_access::wildcard_matches(
                &format!("{pattern}*{name}"),
                &around
            ));
            if !pattern.contains('*') {
                assert_eq!(
                    gl_access::wildcard_matches(&pattern, &name),
                    pattern == name
                );
            }
        }
        9 => {
            if let Ok(page) = ado_access::entitlements(&body, now) {
                assert!(sorted_unique(page.members.iter().map(|m| m.login.as_str())));
                assert!(page.continuation.as_deref() != Some(""));
            }
        }
        10 => {
            let (repository, branch) = (input.text(20), input.text(30));
            if let Ok(p) = ado_access::protection(&body, &repository, &branch) {
                assert!(sorted_unique(p.required_checks.iter().map(String::as_str)));
                assert!(sorted_unique(p.sources.iter().map(String::as_str)));
            }
        }
        11 => {
            let api = Url::parse(input.pick(API_BASES)).expect("a URL");
            let web = Url::parse("https://github.com/").expect("a URL");
            if let Ok(page) = serde_json::from_str::<github::RepositoryPage>(&body) {
                for r in &page.repositories {
                    if let Some(url) = github::clone_url(&web, &r.full_name) {
                        assert_eq!(url.origin(), web.origin());
                    }
                }
            }
            if let Ok(installation) = serde_json::from_str::<github::Installation>(&body) {
                // `account.login` comes from the answer.
                let url = github::profile_url(&api, &installation.account);
                assert_eq!(url.origin(), api.origin());
            }
            let _ = serde_json::from_str::<github::UserInstallations>(&body);
            let _ = serde_json::from_str::<github::CodeExchange>(&body);
            let _ = serde_json::from_str::<github::AccessToken>(&body);
            let _ = serde_json::from_str::<github::Profile>(&body);
        }
        12 => {
            let _ = serde_json::from_str::<gitlab::User>(&body);
            let _ = serde_json::from_str::<Vec<gitlab::Group>>(&body);
            if let Ok(projects) = serde_json::from_str::<Vec<gitlab::Project>>(&body) {
                for p in &projects {
                    let record = RepositoryRecord::from(p);
                    assert_eq!(record.full_name, p.path_with_namespace);
                }
            }
        }
        _ => {
            let _ = serde_json::from_str::<azure_devops::Profile>(&body);
            let _ = serde_json::from_str::<azure_devops::List<azure_devops::Account>>(&body);
            let projects = serde_json::from_str::<azure_devops::List<azure_devops::Project>>(&body);
            let repositories = serde_json::from_str::<azure_devops::List<azure_devops::Repository>>(
                &answer(&mut input, ado_repositories),
            );
            if let (Ok(projects), Ok(repositories)) = (projects, repositories) {
                let organization = input.text(20);
                for p in &projects.value {
                    for r in &repositories.value {
                        record_is_sound(&azure_devops::to_record(&organization, p, r));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bytes, config};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config(1000))]

        #[test]
        fn provider_headers(data in bytes(600)) {
            super::provider_headers(&data);
        }

        #[test]
        fn oauth_response(data in bytes(1000)) {
            super::oauth_response(&data);
        }

        #[test]
        fn provider_answer(data in bytes(1500)) {
            super::provider_answer(&data);
        }
    }

    /// Found by this property test: a `retry-after` of 18446744073709551615 seconds overflowed
    /// in `github::retry_policy` (fixed there, with a readable test).
    #[test]
    fn a_huge_retry_after() {
        super::provider_headers(&[
            0, 126, 101, 92, 18, 74, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 29, 181, 0, 44, 0,
            61, 0, 128, 0, 186, 0, 0, 0, 0, 0, 0, 0, 1, 38, 0, 0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 245, 5,
        ]);
    }
}
