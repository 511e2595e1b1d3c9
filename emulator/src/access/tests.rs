//! Tests of `access/` through `Emulator::handle`, with a local webhook receiver.

use serde_json::{json, Value};

use crate::server::tests::{admin_call, call, emulator, install, token_for};
use crate::server::Emulator;

/// Installation 5 of organization `acme` (account 1001): repositories `site` (id 77, default
/// branch `trunk`) and `docs`, then 2 generated ones.
pub(super) fn setup(em: &Emulator) -> String {
    install(
        em,
        5,
        r#"{"account":{"login":"acme","id":1001,"type":"Organization"},
            "repositories":[{"name":"site","id":77,"default_branch":"trunk"},{"name":"docs"}]}"#,
    );
    admin_call(
        em,
        "POST",
        "installations/5/repositories",
        json!({"add": 2}),
    );
    token_for(em, 5)
}

pub(super) fn access(em: &Emulator, spec: Value) -> Value {
    admin_call(em, "PUT", "installations/5/access", spec)
}

fn get(em: &Emulator, target: &str, token: &str) -> (u16, Value, crate::http::Reply) {
    call(em, "GET", target, Some(token), "")
}

fn logins(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|u| u["login"].as_str().unwrap().to_string())
        .collect()
}

pub(super) fn people() -> Value {
    json!({
        "members": [
            {"login": "carol", "role": "member", "two_factor": false},
            {"login": "Alice", "id": 11, "role": "admin"},
            {"login": "bob", "role": "member"},
            {"login": "dave", "role": "admin", "two_factor": false},
        ],
        "outside_collaborators": [
            {"login": "zed", "admin_on": ["SITE"]},
            {"login": "yan", "two_factor": false, "repositories": {"docs": "write"}},
        ],
        "invitations": [
            {"login": "newbie", "role": "direct_member"},
            {"email": "boss@example.com", "role": "admin"},
        ],
        "settings": {"two_factor_requirement_enabled": true, "default_repository_permission": "write"},
    })
}

#[test]
fn members_paginate_filter_and_need_their_permissions() {
    let em = emulator();
    let token = setup(&em);
    let state = access(&em, people());
    assert_eq!(
        state["members"][1],
        json!({"login": "Alice", "id": 11, "role": "admin", "two_factor": true})
    );
    assert_eq!(
        state["permissions"],
        json!({"members": "read", "organization_administration": "read", "administration": "read"})
    );

    let (status, body, reply) = get(&em, "/orgs/ACME/members?role=all&per_page=3", &token);
    assert_eq!(status, 200);
    assert_eq!(logins(&body), ["Alice", "bob", "carol"]);
    assert_eq!(body[0]["id"], 11);
    assert_eq!(body[1]["id"], super::state::user_id("bob"));
    assert_eq!(body[0]["type"], "User");
    assert_eq!(body[0]["site_admin"], false);
    assert_eq!(body[0]["url"], "http://127.0.0.1:1/users/Alice");
    let link = reply.header("link").unwrap();
    let next = "http://127.0.0.1:1/organizations/1001/members?role=all&per_page=3&page=2";
    assert!(
        link.starts_with(&format!("<{next}>; rel=\"next\"")),
        "{link}"
    );
    let (status, body, _) = get(&em, &next.replace("http://127.0.0.1:1", ""), &token);
    assert_eq!((status, logins(&body)), (200, vec!["dave".to_string()]));

    let (_, admins, _) = get(&em, "/orgs/acme/members?role=admin", &token);
    assert_eq!(logins(&admins), ["Alice", "dave"]);
    let (_, no_2fa, _) = get(&em, "/orgs/acme/members?filter=2fa_disabled", &token);
    assert_eq!(logins(&no_2fa), ["carol", "dave"]);
    let (_, insecure, _) = get(&em, "/orgs/acme/members?filter=2fa_insecure", &token);
    assert_eq!(insecure, json!([]));
    let (_, outside, _) = get(&em, "/orgs/acme/outside_collaborators", &token);
    assert_eq!(logins(&outside), ["yan", "zed"]);
    let (_, outside, _) = get(
        &em,
        "/orgs/acme/outside_collaborators?filter=2fa_disabled",
        &token,
    );
    assert_eq!(logins(&outside), ["yan"]);
    assert_eq!(get(&em, "/orgs/acme/members?role=owner", &token).0, 422);

    let (_, invitations, _) = get(&em, "/orgs/acme/invitations", &token);
    assert_eq!(invitations[0]["login"], "newbie");
    assert_eq!(invitations[0]["role"], "direct_member");
    assert_eq!(
        (&invitations[1]["login"], &invitations[1]["email"]),
        (&Value::Null, &json!("boss@example.com"))
    );
    assert_eq!(invitations[1]["inviter"]["login"], "emulator-admin");
    assert!(invitations[1]["created_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let (_, admins, _) = get(&em, "/orgs/acme/invitations?role=admin", &token);
    assert_eq!(admins.as_array().unwrap().len(), 1);

    let (_, org, _) = get(&em, "/orgs/acme", &token);
    assert_eq!(
        (
            &org["two_factor_requirement_enabled"],
            &org["default_repository_permission"],
            &org["members_can_create_public_repositories"]
        ),
        (&json!(true), &json!("write"), &json!(true))
    );
    let (_, minted, _) = call(
        &em,
        "GET",
        "/app/installations/5",
        Some(&crate::server::tests::jwt()),
        "",
    );
    assert_eq!(minted["permissions"]["organization_administration"], "read");

    // Without organization_administration: no settings, no 2FA filter.
    let mut spec = people();
    spec["permissions"] = json!({"organization_administration": null});
    access(&em, spec);
    let (_, org, _) = get(&em, "/orgs/acme", &token);
    assert!(org.get("two_factor_requirement_enabled").is_none(), "{org}");
    assert!(org.get("default_repository_permission").is_none());
    let (status, body, _) = get(&em, "/orgs/acme/members?filter=2fa_disabled", &token);
    assert_eq!(
        (status, body["message"].as_str()),
        (422, Some("Only owners can use this filter."))
    );
    assert_eq!(
        get(
            &em,
            "/orgs/acme/outside_collaborators?filter=2fa_disabled",
            &token
        )
        .0,
        422
    );
    assert_eq!(get(&em, "/orgs/acme/members", &token).0, 200);
    let (_, installation, _) = call(
        &em,
        "GET",
        "/app/installations/5",
        Some(&crate::server::tests::jwt()),
        "",
    );
    assert!(installation["permissions"]
        .get("organization_administration")
        .is_none());
    assert_eq!(installation["permissions"]["members"], "read");

    // Without members: 403 on every list.
    access(&em, json!({"permissions": {"members": null}}));
    for path in [
        "/orgs/acme/members",
        "/orgs/acme/outside_collaborators",
        "/orgs/acme/invitations",
        "/repos/acme/site/collaborators",
    ] {
        let (status, body, _) = get(&em, path, &token);
        assert_eq!(
            (status, body["message"].as_str()),
            (403, Some("Resource not accessible by integration")),
            "{path}"
        );
        assert!(body["documentation_url"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.github.com/rest/"));
    }
    assert_eq!(get(&em, "/orgs/other/members", &token).0, 404);
    assert_eq!(call(&em, "GET", "/orgs/acme/members", None, "").0, 401);
}

#[test]
fn collaborators_by_affiliation_and_permission() {
    let em = emulator();
    let token = setup(&em);
    access(&em, people());
    let (status, body, _) = get(
        &em,
        "/repos/acme/site/collaborators?affiliation=outside&permission=admin",
        &token,
    );
    assert_eq!(status, 200);
    assert_eq!(logins(&body), ["zed"]);
    assert_eq!(body[0]["role_name"], "admin");
    assert_eq!(
        body[0]["permissions"],
        json!({"pull": true, "triage": true, "push": true, "maintain": true, "admin": true})
    );
    let (_, docs, _) = get(
        &em,
        "/repos/acme/docs/collaborators?affiliation=direct",
        &token,
    );
    assert_eq!(logins(&docs), ["yan"]);
    assert_eq!(
        docs[0]["permissions"],
        json!({"pull": true, "triage": true, "push": true, "maintain": false, "admin": false})
    );
    let (_, all, _) = get(&em, "/repos/acme/site/collaborators?per_page=100", &token);
    assert_eq!(logins(&all), ["Alice", "bob", "carol", "dave", "zed"]);
    assert_eq!(
        all[1]["role_name"], "write",
        "members get the base permission"
    );
    let (_, admins, reply) = get(
        &em,
        "/repos/acme/site/collaborators?permission=admin&per_page=1",
        &token,
    );
    assert_eq!(logins(&admins), ["Alice"]);
    let link = reply.header("link").unwrap();
    assert!(link.contains("<http://127.0.0.1:1/repositories/77/collaborators?permission=admin&per_page=1&page=2>; rel=\"next\""), "{link}");
    let (_, second, _) = get(
        &em,
        "/repositories/77/collaborators?permission=admin&per_page=1&page=2",
        &token,
    );
    assert_eq!(logins(&second), ["dave"]);
    assert_eq!(
        get(
            &em,
            "/repos/acme/site/collaborators?affiliation=team",
            &token
        )
        .0,
        422
    );
    assert_eq!(
        get(
            &em,
            "/repos/acme/site/collaborators?permission=write",
            &token
        )
        .0,
        422
    );
    assert_eq!(get(&em, "/repos/acme/nope/collaborators", &token).0, 404);
    assert_eq!(get(&em, "/repos/other/site/collaborators", &token).0, 404);
}

#[test]
fn classic_protection_needs_administration() {
    let em = emulator();
    let token = setup(&em);
    let (status, body, _) = get(&em, "/repos/acme/site/branches/trunk/protection", &token);
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Branch not protected"))
    );
    let answer = admin_call(
        &em,
        "PUT",
        "installations/5/repositories/site/protection/release%2F1.0",
        json!({"required_reviews": 2, "dismiss_stale_reviews": true, "required_checks": ["ci"], "strict": true, "enforce_admins": true}),
    );
    assert_eq!(answer["deliveries"], json!([]), "no webhook target");
    let (status, body, _) = get(
        &em,
        "/repos/acme/site/branches/release/1.0/protection",
        &token,
    );
    assert_eq!(status, 200, "{body}");
    let url = "http://127.0.0.1:1/repos/acme/site/branches/release/1.0/protection";
    assert_eq!(body["url"], url);
    assert_eq!(
        body["required_pull_request_reviews"],
        json!({"url": format!("{url}/required_pull_request_reviews"), "dismiss_stale_reviews": true,
               "require_code_owner_reviews": false, "required_approving_review_count": 2, "require_last_push_approval": false})
    );
    assert_eq!(body["required_status_checks"]["contexts"], json!(["ci"]));
    assert_eq!(
        body["required_status_checks"]["checks"],
        json!([{"context": "ci", "app_id": null}])
    );
    assert_eq!(body["required_status_checks"]["strict"], true);
    assert_eq!(body["enforce_admins"]["enabled"], true);
    assert_eq!(body["allow_force_pushes"], json!({"enabled": false}));
    assert_eq!(
        body,
        get(
            &em,
            "/repos/acme/site/branches/release%2F1.0/protection",
            &token
        )
        .1
    );

    admin_call(
        &em,
        "PUT",
        "installations/5/repositories/site/protection/trunk",
        json!({"allow_force_pushes": true}),
    );
    let (_, body, _) = get(&em, "/repos/acme/site/branches/trunk/protection", &token);
    assert!(
        body.get("required_pull_request_reviews").is_none()
            && body.get("required_status_checks").is_none()
    );
    assert_eq!(body["allow_force_pushes"]["enabled"], true);

    access(&em, json!({"permissions": {"administration": null}}));
    let (status, body, _) = get(&em, "/repos/acme/site/branches/trunk/protection", &token);
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("Resource not accessible by integration"))
    );
    access(&em, json!({}));
    admin_call(
        &em,
        "DELETE",
        "installations/5/repositories/site/protection/trunk",
        json!(null),
    );
    assert_eq!(
        get(&em, "/repos/acme/site/branches/trunk/protection", &token).0,
        404
    );
    let (status, _, _) = call(
        &em,
        "DELETE",
        "/_emulator/installations/5/repositories/site/protection/trunk",
        None,
        "",
    );
    assert_eq!(status, 404);
    let (status, _, _) = call(
        &em,
        "PUT",
        "/_emulator/installations/5/repositories/site/protection/trunk",
        None,
        r#"{"reviews":1}"#,
    );
    assert_eq!(status, 400, "unknown fields refused");
}

#[test]
fn branch_rules_come_from_active_matching_rulesets() {
    let em = emulator();
    let token = setup(&em);
    let (status, body, _) = get(&em, "/repos/acme/site/rules/branches/trunk", &token);
    assert_eq!((status, body), (200, json!([])));
    let created = admin_call(
        &em,
        "POST",
        "installations/5/repositories/site/rulesets",
        json!({"name": "main", "rules": [
            {"type": "pull_request", "required_approving_review_count": 1},
            {"type": "non_fast_forward"},
            {"type": "required_status_checks", "required_status_checks": [{"context": "ci"}]}]}),
    );
    let repo_rid = created["id"].as_u64().unwrap();
    assert_eq!(created["ruleset"]["source"], "acme/site");
    let org = admin_call(
        &em,
        "POST",
        "installations/5/rulesets",
        json!({"name": "everywhere", "include": ["~ALL"], "exclude": ["refs/heads/tmp/*"], "repositories": ["s*"], "rules": [{"type": "deletion"}]}),
    );
    let org_rid = org["id"].as_u64().unwrap();
    admin_call(
        &em,
        "POST",
        "installations/5/repositories/site/rulesets",
        json!({"name": "trial", "enforcement": "evaluate", "include": ["~ALL"], "rules": [{"type": "required_signatures"}]}),
    );

    let (_, rules, _) = get(&em, "/repos/acme/site/rules/branches/trunk", &token);
    assert_eq!(
        rules,
        json!([
            {"type": "pull_request", "parameters": {"required_approving_review_count": 1, "dismiss_stale_reviews_on_push": false,
              "require_code_owner_review": false, "require_last_push_approval": false, "required_review_thread_resolution": false,
              "allowed_merge_methods": ["merge", "squash", "rebase"]},
             "ruleset_source_type": "Repository", "ruleset_source": "acme/site", "ruleset_id": repo_rid},
            {"type": "non_fast_forward", "ruleset_source_type": "Repository", "ruleset_source": "acme/site", "ruleset_id": repo_rid},
            {"type": "required_status_checks", "parameters": {"required_status_checks": [{"context": "ci"}],
              "strict_required_status_checks_policy": false, "do_not_enforce_on_create": false},
             "ruleset_source_type": "Repository", "ruleset_source": "acme/site", "ruleset_id": repo_rid},
            {"type": "deletion", "ruleset_source_type": "Organization", "ruleset_source": "acme", "ruleset_id": org_rid},
        ])
    );
    let (_, feature, _) = get(&em, "/repos/acme/site/rules/branches/feature/x", &token);
    assert_eq!(
        feature.as_array().unwrap().len(),
        1,
        "only the org ruleset: {feature}"
    );
    let (_, tmp, _) = get(&em, "/repos/acme/site/rules/branches/tmp/x", &token);
    assert_eq!(tmp, json!([]));
    let (_, docs, _) = get(&em, "/repos/acme/docs/rules/branches/main", &token);
    assert_eq!(docs, json!([]), "docs does not match s*");
    let (_, paged, reply) = get(
        &em,
        "/repos/acme/site/rules/branches/trunk?per_page=2&page=2",
        &token,
    );
    assert_eq!(paged.as_array().unwrap().len(), 2);
    assert!(reply
        .header("link")
        .unwrap()
        .contains("/repositories/77/rules/branches/trunk?per_page=2&page=1"));

    // Disabled, re-targeted, deleted.
    admin_call(
        &em,
        "PUT",
        &format!("installations/5/repositories/site/rulesets/{repo_rid}"),
        json!({"name": "main", "enforcement": "disabled", "rules": [{"type": "deletion"}]}),
    );
    let (_, rules, _) = get(&em, "/repos/acme/site/rules/branches/trunk", &token);
    assert_eq!(rules.as_array().unwrap().len(), 1);
    admin_call(
        &em,
        "DELETE",
        &format!("installations/5/rulesets/{org_rid}"),
        json!(null),
    );
    assert_eq!(
        get(&em, "/repos/acme/site/rules/branches/trunk", &token).1,
        json!([])
    );
    let (status, _, _) = call(
        &em,
        "DELETE",
        &format!("/_emulator/installations/5/rulesets/{repo_rid}"),
        None,
        "",
    );
    assert_eq!(
        status, 404,
        "a repository's ruleset is not the organization's"
    );
    let (status, _, _) = call(
        &em,
        "POST",
        "/_emulator/installations/5/rulesets",
        None,
        r#"{"name":"x","rules":[{"type":"bogus"}]}"#,
    );
    assert_eq!(status, 400);
    let (_, state, _) = call(&em, "GET", "/_emulator/installations/5/access", None, "");
    assert_eq!(state["rulesets"].as_array().unwrap().len(), 2);
}

#[test]
fn access_endpoints_are_logged_and_faulted() {
    let em = emulator();
    let token = setup(&em);
    call(&em, "DELETE", "/_emulator/requests", None, "");
    admin_call(
        &em,
        "PUT",
        "faults",
        json!([{"path_prefix": "/orgs/acme/members", "status": 502, "times": 1}]),
    );
    assert_eq!(get(&em, "/orgs/acme/members", &token).0, 502);
    assert_eq!(get(&em, "/orgs/acme/members", &token).0, 200);
    get(&em, "/repos/acme/site/rules/branches/trunk", &token);
    let (_, log, _) = call(&em, "GET", "/_emulator/requests", None, "");
    let seen: Vec<(String, u64, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().into(),
                r["status"].as_u64().unwrap(),
                r["auth"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "/orgs/acme/members".to_string(),
                502,
                "installation_token".to_string()
            ),
            (
                "/orgs/acme/members".to_string(),
                200,
                "installation_token".to_string()
            ),
            (
                "/repos/acme/site/rules/branches/trunk".to_string(),
                200,
                "installation_token".to_string()
            ),
        ]
    );
    assert_eq!(log[0]["installation_id"], 5);
}
