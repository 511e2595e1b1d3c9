//! Tests of the access audit endpoints of GitLab (`audit.rs`) and their admin routes.

use serde_json::{json, Value};

use super::tests::{admin, code, exchange, get, names, setup, tokens, VERIFIER};
use crate::server::tests::call;
use crate::server::Emulator;

/// A live access token of `user`.
fn token_of(em: &Emulator, user: u64) -> String {
    let code = code(em, &format!("&emulator_user={user}"));
    let (status, body) = exchange(em, &code, VERIFIER);
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

fn levels(body: &Value) -> Vec<(u64, u64)> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["access_level"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Instance `com` as `setup` makes it, plus user 7003 a developer of `initech/platform` and
/// 7002 a reporter of `initech`.
fn members(em: &Emulator) {
    setup(em);
    admin(em, "PUT", "com/users/7003", json!({"username": "dev"}));
    admin(
        em,
        "PUT",
        "com/groups/2/members/7003",
        json!({"access_level": 30}),
    );
    let summary = admin(
        em,
        "PUT",
        "com/groups/1/members/7002",
        json!({"access_level": 20}),
    );
    assert_eq!(summary["access_levels"], json!({"7001": 50, "7002": 20}));
}

#[test]
fn group_members_with_inherited_levels_and_two_factor_settings() {
    let em = emulator_with_members();
    let (owner, _) = tokens(&em);
    let (status, all, reply) = get(
        &em,
        "groups/initech%2Fplatform/members/all?per_page=2",
        &owner,
    );
    assert_eq!(status, 200, "{all}");
    assert_eq!(levels(&all), [(7001, 50), (7002, 20)]);
    assert_eq!(all[0]["username"], "dev-gitlab");
    assert_eq!(
        (&all[0]["state"], &all[0]["expires_at"]),
        (&json!("active"), &Value::Null)
    );
    assert_eq!(
        (reply.header("x-total"), reply.header("x-next-page")),
        (Some("3"), Some("2"))
    );
    let (_, rest, _) = get(&em, "groups/2/members/all?per_page=2&page=2", &owner);
    assert_eq!(levels(&rest), [(7003, 30)]);
    let (_, direct, _) = get(&em, "groups/2/members", &owner);
    assert_eq!(levels(&direct), [(7003, 30)]);
    // A higher direct level wins over an inherited one.
    admin(
        &em,
        "PUT",
        "com/groups/2/members/7002",
        json!({"access_level": 40}),
    );
    let (_, all, _) = get(&em, "groups/2/members/all", &owner);
    assert_eq!(levels(&all), [(7001, 50), (7002, 40), (7003, 30)]);
    admin(&em, "DELETE", "com/groups/2/members/7002", json!(null));
    assert_eq!(get(&em, "groups/3/members/all", &owner).0, 404);

    let (_, group, _) = get(&em, "groups/1", &owner);
    assert_eq!(
        (
            &group["require_two_factor_authentication"],
            &group["two_factor_grace_period"]
        ),
        (&json!(false), &json!(48))
    );
    let answer = admin(
        &em,
        "PUT",
        "com/groups/1/access",
        json!({"require_two_factor_authentication": true, "two_factor_grace_period": 24}),
    );
    assert_eq!(answer["two_factor_grace_period"], 24);
    let (_, group, _) = get(&em, "groups/initech", &owner);
    assert_eq!(
        (
            &group["require_two_factor_authentication"],
            &group["two_factor_grace_period"]
        ),
        (&json!(true), &json!(24))
    );
    for (path, body) in [
        ("com/groups/1/members/7003", r#"{"access_level":33}"#),
        ("com/groups/1/members/9999", r#"{"access_level":30}"#),
        (
            "com/groups/99/access",
            r#"{"require_two_factor_authentication":true}"#,
        ),
        (
            "com/groups/1/access",
            r#"{"require_two_factor_authentication":true,"x":1}"#,
        ),
    ] {
        let (status, _, _) = call(&em, "PUT", &format!("/_emulator/gitlab/{path}"), None, body);
        assert_eq!(status, 400, "{path} {body}");
    }
}

fn emulator_with_members() -> Emulator {
    let em = crate::server::tests::emulator();
    members(&em);
    em
}

#[test]
fn protected_branches_and_approval_rules_need_their_levels() {
    let em = emulator_with_members();
    let (owner, _) = tokens(&em);
    let (developer, reporter) = (token_of(&em, 7003), token_of(&em, 7002));
    let (status, body, _) = get(&em, "projects/4/protected_branches", &owner);
    assert_eq!((status, body), (200, json!([])));
    let main = admin(
        &em,
        "PUT",
        "com/projects/4/protected_branches/main",
        json!({}),
    );
    assert_eq!(main["push_access_levels"][0]["access_level"], 40);
    admin(
        &em,
        "PUT",
        "com/projects/4/protected_branches/release%2F*",
        json!({"push_access_level": 0, "merge_access_level": 30, "allow_force_push": true, "code_owner_approval_required": true}),
    );
    let (status, branches, reply) = get(
        &em,
        "projects/initech%2Fplatform%2Fplatform-repo-001/protected_branches",
        &owner,
    );
    assert_eq!(status, 200, "{branches}");
    assert_eq!(reply.header("x-total"), Some("2"));
    assert_eq!(names(&branches, "name"), ["main", "release/*"]);
    let release = &branches[1];
    assert_eq!(
        release["push_access_levels"],
        json!([{"id": release["push_access_levels"][0]["id"], "access_level": 0, "access_level_description": "No one",
                "user_id": null, "group_id": null, "deploy_key_id": null}])
    );
    assert_eq!(
        release["merge_access_levels"][0]["access_level_description"],
        "Developers + Maintainers"
    );
    assert_eq!(
        (
            &release["allow_force_push"],
            &release["code_owner_approval_required"]
        ),
        (&json!(true), &json!(true))
    );
    let same_id = admin(
        &em,
        "PUT",
        "com/projects/4/protected_branches/main",
        json!({"allow_force_push": true}),
    );
    assert_eq!(
        (&same_id["id"], &same_id["allow_force_push"]),
        (&main["id"], &json!(true))
    );

    for token in [&developer, &reporter] {
        let (status, body, _) = get(&em, "projects/4/protected_branches", token);
        assert_eq!((status, body), (403, json!({"message": "403 Forbidden"})));
    }
    let (status, body, _) = get(&em, "projects/6/protected_branches", &owner);
    assert_eq!(
        (status, body),
        (404, json!({"message": "404 Project Not Found"}))
    );

    assert_eq!(
        get(&em, "projects/4/approval_rules", &developer).1,
        json!([])
    );
    let rules = admin(
        &em,
        "PUT",
        "com/projects/4/approval_rules",
        json!([{"name": "All members", "approvals_required": 2}, {"name": "Any", "approvals_required": 1, "rule_type": "any_approver"}]),
    );
    assert_eq!(rules.as_array().unwrap().len(), 2);
    let (status, rules, _) = get(&em, "projects/4/approval_rules", &developer);
    assert_eq!(status, 200);
    assert_eq!(
        (
            &rules[0]["name"],
            &rules[0]["rule_type"],
            &rules[0]["approvals_required"]
        ),
        (&json!("All members"), &json!("regular"), &json!(2))
    );
    assert_eq!(rules[1]["rule_type"], "any_approver");
    assert_eq!(get(&em, "projects/4/approval_rules", &reporter).0, 403);

    admin(
        &em,
        "DELETE",
        "com/projects/4/protected_branches/release/*",
        json!(null),
    );
    assert_eq!(
        names(&get(&em, "projects/4/protected_branches", &owner).1, "name"),
        ["main"]
    );
    let (status, _, _) = call(
        &em,
        "DELETE",
        "/_emulator/gitlab/com/projects/4/protected_branches/nope",
        None,
        "",
    );
    assert_eq!(status, 400);
    let (status, _, _) = call(
        &em,
        "PUT",
        "/_emulator/gitlab/com/projects/4/protected_branches/x",
        None,
        r#"{"push_access_level":50}"#,
    );
    assert_eq!(status, 400);
}

#[test]
fn projects_keep_their_default_branch_and_minimal_access_sees_none() {
    let em = emulator_with_members();
    let (owner, _) = tokens(&em);
    admin(
        &em,
        "PUT",
        "com/groups/5",
        json!({"name": "Apps", "path": "apps", "members": [7001], "projects": [{"name": "legacy", "default_branch": "develop"}]}),
    );
    let (_, listed, _) = get(&em, "groups/apps/projects", &owner);
    assert_eq!(listed[0]["default_branch"], "develop");
    let id = listed[0]["id"].as_u64().unwrap();
    let (status, project, _) = get(&em, &format!("projects/{id}"), &owner);
    assert_eq!(
        (status, &project["default_branch"]),
        (200, &json!("develop"))
    );
    assert_eq!(get(&em, "projects/apps%2Flegacy", &owner).1["id"], id);
    assert_eq!(
        get(&em, "projects/initech%2Finitech-repo-001", &owner).1["default_branch"],
        "main"
    );

    admin(
        &em,
        "PUT",
        "com/groups/3/members/7001",
        json!({"access_level": 5}),
    );
    let (_, all, _) = get(&em, "groups/3/members/all", &owner);
    assert_eq!(
        levels(&all),
        [(7001, 5), (7002, 50)],
        "minimal access members see the group"
    );
    assert_eq!(
        get(&em, "projects/6", &owner).0,
        404,
        "but not its projects"
    );
    let (status, _, _) = call(
        &em,
        "GET",
        "/gitlab/com/api/v4/projects/4/protected_branches",
        None,
        "",
    );
    assert_eq!(status, 401);
}
