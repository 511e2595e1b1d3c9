//! Tests of Azure DevOps user entitlements and branch policies (`audit.rs`).

use serde_json::{json, Value};

use super::tests::{admin, get, setup, tokens, DEV, OTHER};
use crate::server::tests::call;
use crate::server::Emulator;

const VERSION: &str = "api-version=7.1-preview.3";

fn ids(body: &Value) -> Vec<String> {
    body["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members: {body}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// `big`: DEV (stakeholder), OTHER (advanced) and 150 generated users (Basic).
fn big_org(em: &Emulator) -> Vec<String> {
    let mut members = vec![
        json!({"id": DEV, "access_level": "stakeholder"}),
        json!({"id": OTHER, "access_level": "advanced"}),
    ];
    let mut generated = Vec::new();
    for i in 0..150 {
        let id = format!("0d5e1c9a-0000-4000-8000-{i:012}");
        admin(
            em,
            "PUT",
            &format!("users/{id}"),
            json!({"displayName": format!("User {i:03}")}),
        );
        members.push(json!(id));
        generated.push(id);
    }
    let summary = admin(
        em,
        "PUT",
        "orgs/big",
        json!({"members": members, "projects": [{"name": "p", "repositories": 1}]}),
    );
    assert_eq!(summary["access_levels"][DEV], "stakeholder");
    assert_eq!(summary["access_levels"][&generated[0]], "express");
    generated
}

#[test]
fn entitlements_page_by_continuation_token() {
    let em = crate::server::tests::emulator();
    setup(&em);
    big_org(&em);
    let (access, _) = tokens(&em, "");
    let (status, first, _) = get(
        &em,
        &format!("/vsaex/big/_apis/userentitlements?{VERSION}"),
        &access,
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["totalCount"], 152);
    assert_eq!(ids(&first).len(), 100);
    let dev = &first["members"][0];
    assert_eq!(dev["id"], DEV, "by display name: Dev Azure first");
    assert_eq!(
        dev["accessLevel"],
        json!({"licensingSource": "account", "accountLicenseType": "stakeholder", "msdnLicenseType": "none",
               "gitHubLicenseType": "none", "licenseDisplayName": "Stakeholder", "status": "active",
               "statusMessage": "", "assignmentSource": "unknown"})
    );
    assert_eq!(
        (
            &dev["user"]["subjectKind"],
            &dev["user"]["principalName"],
            &dev["user"]["displayName"],
            &dev["user"]["origin"]
        ),
        (
            &json!("user"),
            &json!("dev@example.com"),
            &json!("Dev Azure"),
            &json!("aad")
        )
    );
    assert!(dev["user"]["descriptor"]
        .as_str()
        .unwrap()
        .starts_with("aad."));
    assert_ne!(dev["user"]["originId"], DEV);
    assert_eq!(
        first["members"][1]["accessLevel"]["licenseDisplayName"],
        "Basic + Test Plans"
    );
    assert_eq!(
        first["members"][2]["accessLevel"]["licenseDisplayName"],
        "Basic"
    );
    let token = first["continuationToken"].as_str().unwrap();
    let (_, second, _) = get(
        &em,
        &format!("/vsaex/big/_apis/userentitlements?{VERSION}&continuationToken={token}"),
        &access,
    );
    assert_eq!(ids(&second).len(), 52);
    assert_eq!(second["continuationToken"], Value::Null);
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 152);

    let (status, body, _) = get(&em, "/vsaex/big/_apis/userentitlements", &access);
    assert_eq!(
        (status, &body["typeKey"]),
        (400, &json!("VssVersionNotSpecifiedException"))
    );
    assert_eq!(
        get(
            &em,
            &format!("/vsaex/big/_apis/userentitlements?{VERSION}&continuationToken=bogus"),
            &access
        )
        .0,
        400
    );
    assert_eq!(
        get(
            &em,
            &format!("/vsaex/big/_apis/userentitlements?{VERSION}&$filter=name+eq+'x'"),
            &access
        )
        .0,
        400
    );
    assert_eq!(
        get(
            &em,
            &format!("/vsaex/fabrikam/_apis/userentitlements?{VERSION}"),
            &access
        )
        .0,
        404,
        "not a member"
    );
    assert_eq!(
        call(
            &em,
            "GET",
            &format!("/vsaex/big/_apis/userentitlements?{VERSION}"),
            None,
            ""
        )
        .0,
        401
    );
}

#[test]
fn entitlements_can_be_denied() {
    let em = crate::server::tests::emulator();
    setup(&em);
    let (access, _) = tokens(&em, "");
    for (denied, status, key) in [
        (json!(true), 401, "UnauthorizedRequestException"),
        (json!(403), 403, "AccessCheckException"),
    ] {
        let summary = admin(
            &em,
            "PUT",
            "orgs/contoso",
            json!({"members": [DEV], "entitlements_denied": denied}),
        );
        assert_eq!(summary["entitlements_denied"], status);
        let (got, body, _) = get(
            &em,
            &format!("/vsaex/contoso/_apis/userentitlements?{VERSION}"),
            &access,
        );
        assert_eq!((got, &body["typeKey"]), (status, &json!(key)), "{body}");
    }
    admin(
        &em,
        "PUT",
        "orgs/contoso",
        json!({"members": [DEV], "entitlements_denied": false}),
    );
    assert_eq!(
        get(
            &em,
            &format!("/vsaex/contoso/_apis/userentitlements?{VERSION}"),
            &access
        )
        .0,
        200
    );
    for spec in [
        json!({"entitlements_denied": 500}),
        json!({"members": [{"id": DEV, "access_level": "gold"}]}),
    ] {
        let (status, _, _) = call(
            &em,
            "PUT",
            "/_emulator/azure/orgs/contoso",
            None,
            &spec.to_string(),
        );
        assert_eq!(status, 400, "{spec}");
    }
    // The new host is Azure DevOps in the request log and the credential ledger.
    let (_, log, _) = call(&em, "GET", "/_emulator/requests", None, "");
    let last = log.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["path"], &last["auth"]),
        (
            &json!("/vsaex/contoso/_apis/userentitlements"),
            &json!("bearer")
        )
    );
    let (_, misplaced, _) = call(&em, "GET", "/_emulator/credentials/misplaced", None, "");
    assert_eq!(misplaced["misplaced"], json!([]));
}

#[test]
fn branch_policies_by_repository_ref_and_type() {
    let em = crate::server::tests::emulator();
    setup(&em);
    let (access, _) = tokens(&em, "");
    let summary = admin(&em, "GET", "orgs/contoso", json!(null));
    let repo = summary["projects"][0]["repositories"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = summary["projects"][0]["repositories"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let set = admin(
        &em,
        "PUT",
        "orgs/contoso/projects/web/repositories/web-repo-001/policies",
        json!([
            {"type": "reviewers", "minimum_approver_count": 2, "reset_on_source_push": true},
            {"type": "build", "name": "ci", "blocking": false},
            {"type": "reviewers", "branch": "release", "match": "prefix", "enabled": false},
        ]),
    );
    assert_eq!(set["count"], 3);
    admin(
        &em,
        "PUT",
        "orgs/contoso/projects/web/repositories/web-repo-002/policies",
        json!([{"type": "comment_resolution"}]),
    );
    let base = "/azure/contoso/web/_apis/git/policy/configurations";
    let list = |query: &str| {
        let (status, body, reply) = get(&em, &format!("{base}?{query}&api-version=7.1"), &access);
        assert_eq!(status, 200, "{query}: {body}");
        (body, reply)
    };
    let (main, _) = list(&format!("repositoryId={repo}&refName=refs/heads/main"));
    assert_eq!(main["count"], 2);
    let reviewers = &main["value"][0];
    assert_eq!(
        reviewers["type"]["id"],
        "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd"
    );
    assert_eq!(
        reviewers["type"]["displayName"],
        "Minimum number of reviewers"
    );
    assert_eq!(
        (
            &reviewers["isEnabled"],
            &reviewers["isBlocking"],
            &reviewers["isDeleted"]
        ),
        (&json!(true), &json!(true), &json!(false))
    );
    assert_eq!(reviewers["settings"]["minimumApproverCount"], 2);
    assert_eq!(reviewers["settings"]["resetOnSourcePush"], true);
    assert_eq!(
        reviewers["settings"]["scope"],
        json!([{"refName": "refs/heads/main", "matchKind": "Exact", "repositoryId": repo}])
    );
    let build = &main["value"][1];
    assert_eq!(
        (&build["type"]["id"], &build["type"]["displayName"]),
        (
            &json!("0609b952-1397-4640-95ec-e00a01b2c241"),
            &json!("Build")
        )
    );
    assert_eq!(
        (&build["settings"]["displayName"], &build["isBlocking"]),
        (&json!("ci"), &json!(false))
    );

    let (release, _) = list(&format!(
        "repositoryId={repo}&refName=refs/heads/release/2.0"
    ));
    assert_eq!(release["count"], 1);
    assert_eq!(
        release["value"][0]["settings"]["scope"][0]["matchKind"],
        "Prefix"
    );
    assert_eq!(release["value"][0]["isEnabled"], false);
    assert_eq!(list(&format!("repositoryId={repo}")).0["count"], 3);
    assert_eq!(list(&format!("repositoryId={other}")).0["count"], 1);
    assert_eq!(
        list("refName=refs/heads/main").0["count"],
        3,
        "both repositories' main"
    );
    assert_eq!(
        list(&format!(
            "repositoryId={repo}&policyType=0609b952-1397-4640-95ec-e00a01b2c241"
        ))
        .0["count"],
        1
    );
    let (first, reply) = list(&format!("repositoryId={repo}&$top=2"));
    assert_eq!(first["count"], 2);
    let token = reply.header("x-ms-continuationtoken").unwrap().to_string();
    let (rest, reply) = list(&format!(
        "repositoryId={repo}&$top=2&continuationToken={token}"
    ));
    assert_eq!(
        (
            rest["count"].as_u64(),
            reply.header("x-ms-continuationtoken")
        ),
        (Some(1), None)
    );
    let (_, policy_area, _) = get(
        &em,
        "/azure/contoso/web/_apis/policy/configurations?api-version=7.1",
        &access,
    );
    assert_eq!(policy_area["count"], 4);
    assert_eq!(
        get(&em, &format!("{base}?repositoryId={repo}"), &access).0,
        400,
        "api-version required"
    );
    assert_eq!(
        get(
            &em,
            "/azure/contoso/nope/_apis/git/policy/configurations?api-version=7.1",
            &access
        )
        .0,
        404
    );

    // Replaced, not appended; ids keep increasing.
    let again = admin(
        &em,
        "PUT",
        "orgs/contoso/projects/web/repositories/web-repo-001/policies",
        json!([{"type": "merge_strategy", "allow_squash": false}]),
    );
    assert_eq!(again["value"][0]["id"], 5);
    let (replaced, _) = list(&format!("repositoryId={repo}"));
    assert_eq!(replaced["value"][0]["settings"]["allowSquash"], false);
    assert_eq!(
        replaced["value"][0]["type"]["displayName"],
        "Require a merge strategy"
    );
    for bad in [
        json!([{"type": "nope"}]),
        json!([{"type": "reviewers", "minimum": 1}]),
        json!([{"type": "build", "enabled": "yes"}]),
        json!({"type": "build"}),
    ] {
        let (status, _, _) = call(
            &em,
            "PUT",
            "/_emulator/azure/orgs/contoso/projects/web/repositories/web-repo-001/policies",
            None,
            &bad.to_string(),
        );
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _, _) = call(
        &em,
        "PUT",
        "/_emulator/azure/orgs/contoso/projects/web/repositories/nope/policies",
        None,
        "[]",
    );
    assert_eq!(status, 400);
}
