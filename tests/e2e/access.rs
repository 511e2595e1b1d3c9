//! Access audit and posture (issue #10), end to end: the emulator's members, 2FA, outside
//! collaborators, org settings and branch protection read at each sync, changes announced by
//! signed webhooks the emulator sends, and the posture and portfolio routes. GitLab groups
//! (members with inherited ones, the 2FA requirement, protected branches and approval rules, a
//! Developer's refused protections) and Azure DevOps organizations (entitlements, refused or
//! not, and branch policies) read at each sync.
//!
//! A snapshot is under way from the moment `POST /v1/orgs/{id}/sync` answers (the sync starts it
//! before answering), so waiting for `reading: false` waits for exactly that snapshot, whatever
//! the clock says.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::emulator::Inst;
use crate::harness::portal::{assert_problem, Portal};
use crate::harness::{poll_until, Stack, GITLAB_INSTANCE};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        Case::shared(
            "access::github_findings_appear_when_warranted_and_clear_when_fixed",
            findings_appear_and_clear,
        ),
        Case::shared(
            "access::a_membership_webhook_applies_once_and_the_next_sync_does_not_repeat_it",
            membership_webhook_once,
        ),
        Case::shared(
            "access::unreadable_2fa_is_unknown_not_none",
            unreadable_two_factor,
        ),
        Case::shared(
            "access::a_protection_webhook_rereads_the_branch",
            protection_webhook,
        ),
        Case::shared(
            "access::portfolio_across_clients_as_json_and_csv_and_tenant_isolation",
            portfolio,
        ),
        Case::shared(
            "access::gitlab_members_two_factor_requirement_and_protected_branches",
            gitlab_members_and_protected_branches,
        ),
        Case::shared(
            "access::gitlab_developer_cannot_read_protected_branches_and_says_so",
            gitlab_developer,
        ),
        Case::shared(
            "access::azure_devops_entitlements_and_branch_policies",
            azure_entitlements_and_policies,
        ),
    ]
}

/// Connects `inst` (already in the emulator) for `tenant`: the org id.
fn connect(s: &Stack, tenant: &str, inst: &Inst) -> String {
    let done = s.connect_and_install(tenant, inst.id).done();
    assert!(done.complete, "{done:?}");
    done.org_id
}

/// Syncs the org and waits for the access snapshot that sync started.
#[track_caller]
fn snapshot(portal: &Portal<'_>, org_id: &str) -> Value {
    portal.sync(org_id);
    poll_until(Duration::from_secs(60), "the access snapshot", || {
        let access = portal.get(&format!("/v1/orgs/{org_id}/access"));
        if access["reading"] == json!(false) && access["read_at"].is_string() {
            Ok(access)
        } else {
            Err(format!("reading: {}", access["reading"]))
        }
    })
}

fn posture(portal: &Portal<'_>, org_id: &str) -> Value {
    portal.get(&format!("/v1/orgs/{org_id}/posture"))
}

/// The (rule, subject) pairs of the access findings (backups have their own tests).
fn access_findings(posture: &Value) -> BTreeSet<(String, String)> {
    posture["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| !f["rule"].as_str().unwrap_or("").starts_with("backup_"))
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or("").to_string(),
                f["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Every access event of the org as (kind, subject), newest first.
fn event_kinds(portal: &Portal<'_>, org_id: &str) -> Vec<(String, String)> {
    portal.get(&format!("/v1/orgs/{org_id}/access/events?limit=100"))["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_string(),
                e["subject"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn events(portal: &Portal<'_>, org_id: &str, kind: &str) -> Vec<Value> {
    portal.get(&format!(
        "/v1/orgs/{org_id}/access/events?kind={kind}&limit=100"
    ))["items"]
        .as_array()
        .expect("items")
        .clone()
}

fn findings_appear_and_clear(s: &Stack) {
    let tenant = "tenant-access-findings";
    let portal = Portal::new(s, tenant);
    let inst = Inst::org(10_401, "access-findings", 3);
    s.emulator.put_installation(&inst);
    let repos: Vec<String> = s
        .emulator
        .repositories(inst.id)
        .into_iter()
        .map(|r| r.name)
        .collect();
    let full = |i: usize| format!("{}/{}", inst.login, repos[i]);
    s.emulator.set_github_access(
        inst.id,
        json!({
            "members": [
                {"login": "alice", "role": "admin", "two_factor": true},
                {"login": "bob", "role": "admin", "two_factor": false},
                {"login": "carol", "role": "member", "two_factor": false},
                {"login": "dave", "role": "member", "two_factor": true},
            ],
            "outside_collaborators": [{"login": "eve", "admin_on": [repos[0]]}],
            "invitations": [{"login": "frank", "role": "direct_member"}],
            "settings": {"two_factor_requirement_enabled": false},
        }),
    );
    s.emulator.set_protection(
        inst.id,
        &repos[0],
        "main",
        json!({"required_reviews": 1, "enforce_admins": true}),
    );
    s.emulator.set_protection(
        inst.id,
        &repos[2],
        "main",
        json!({"required_reviews": 0, "allow_force_pushes": true}),
    );
    let org_id = connect(s, tenant, &inst);
    let access = snapshot(&portal, &org_id);

    let members: Vec<(String, String, Value)> = access["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["login"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
                m["two_factor"].clone(),
            )
        })
        .collect();
    assert_eq!(
        members,
        vec![
            ("alice".into(), "admin".into(), json!(true)),
            ("bob".into(), "admin".into(), json!(false)),
            ("carol".into(), "member".into(), json!(false)),
            ("dave".into(), "member".into(), json!(true)),
        ],
        "{access}"
    );
    assert_eq!(
        access["outside_collaborators"][0]["login"], "eve",
        "{access}"
    );
    assert_eq!(
        access["outside_collaborators"][0]["admin_on"],
        json!([full(0)]),
        "{access}"
    );
    assert_eq!(access["invitations"][0]["login"], "frank", "{access}");
    assert_eq!(access["settings"]["two_factor_required"], false, "{access}");
    assert_eq!(
        access["unknown"],
        json!([]),
        "everything was readable: {access}"
    );
    let protection = |access: &Value, name: &str| -> Value {
        access["repositories"]
            .as_array()
            .expect("repositories")
            .iter()
            .find(|r| r["full_name"] == name)
            .map(|r| r["protection"].clone())
            .unwrap_or_else(|| panic!("{name} in {access}"))
    };
    assert_eq!(protection(&access, &full(0))["protected"], true);
    assert_eq!(protection(&access, &full(0))["required_reviews"], 1);
    assert_eq!(protection(&access, &full(0))["enforce_admins"], true);
    assert_eq!(protection(&access, &full(1))["protected"], false);
    assert_eq!(protection(&access, &full(2))["allows_force_pushes"], true);

    let found = posture(&portal, &org_id);
    assert_eq!(
        access_findings(&found),
        pairs(&[
            ("org_2fa_not_required", &inst.login),
            ("admin_without_2fa", "bob"),
            ("member_without_2fa", "carol"),
            ("outside_collaborator_admin", "eve"),
            ("default_branch_unprotected", &full(1)),
            ("default_branch_force_push", &full(2)),
            ("default_branch_no_required_reviews", &full(2)),
        ]),
        "{found}"
    );
    let severity = |rule: &str| {
        found["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule)
            .map(|f| f["severity"].clone())
    };
    assert_eq!(severity("admin_without_2fa"), Some(json!("critical")));
    assert!(
        found["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["since"]
                .as_str()
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())),
        "every finding has its RFC 3339 since: {found}"
    );
    assert_eq!(found["counts"]["critical"], 1, "{found}");

    // Fixed on GitHub: each finding clears at the next sync.
    s.emulator.set_github_access(
        inst.id,
        json!({
            "members": [
                {"login": "alice", "role": "admin", "two_factor": true},
                {"login": "bob", "role": "admin", "two_factor": true},
                {"login": "carol", "role": "member", "two_factor": true},
                {"login": "dave", "role": "member", "two_factor": true},
            ],
            "outside_collaborators": [{"login": "eve", "admin_on": []}],
            "settings": {"two_factor_requirement_enabled": true},
        }),
    );
    s.emulator
        .set_protection(inst.id, &repos[1], "main", json!({"required_reviews": 1}));
    s.emulator.set_protection(
        inst.id,
        &repos[2],
        "main",
        json!({"required_reviews": 2, "allow_force_pushes": false}),
    );
    snapshot(&portal, &org_id);
    let fixed = posture(&portal, &org_id);
    assert_eq!(access_findings(&fixed), BTreeSet::new(), "{fixed}");

    // The history says what changed (by sync or by webhook, each once).
    let kinds: Vec<(String, String)> = event_kinds(&portal, &org_id);
    for expected in [
        ("member.2fa_enabled", "bob"),
        ("member.2fa_enabled", "carol"),
        ("invitation.removed", "frank"),
        ("settings.changed", inst.login.as_str()),
        ("protection.added", full(1).as_str()),
        ("protection.strengthened", full(2).as_str()),
    ] {
        let n = kinds
            .iter()
            .filter(|(k, s)| k == expected.0 && s == expected.1)
            .count();
        assert_eq!(n, 1, "{expected:?} once in {kinds:?}");
    }
}

fn membership_webhook_once(s: &Stack) {
    let tenant = "tenant-access-webhook";
    let portal = Portal::new(s, tenant);
    let inst = Inst::org(10_402, "access-webhook", 1);
    s.emulator.put_installation(&inst);
    s.emulator.set_github_access(
        inst.id,
        json!({"members": [{"login": "alice", "role": "admin", "two_factor": true}]}),
    );
    let org_id = connect(s, tenant, &inst);
    snapshot(&portal, &org_id);
    assert_eq!(
        events(&portal, &org_id, "member"),
        Vec::<Value>::new(),
        "a first snapshot is a baseline"
    );

    let sent = s
        .emulator
        .add_member(inst.id, json!({"login": "grace", "role": "member"}));
    let delivery = &sent["deliveries"][0];
    assert_eq!(delivery["event"], "organization", "{sent}");
    assert_eq!(delivery["status"], 200, "the worker took it: {sent}");
    let id = delivery["id"].as_str().expect("delivery id").to_string();
    let added = events(&portal, &org_id, "member.added");
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["subject"], "grace");
    assert_eq!(added[0]["source"], "webhook");
    assert_eq!(added[0]["delivery_id"], id.as_str());

    assert_eq!(s.emulator.redeliver(&id), 200);
    assert_eq!(
        events(&portal, &org_id, "member.added").len(),
        1,
        "a redelivery applies nothing"
    );
    let access = snapshot(&portal, &org_id);
    assert!(
        access["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["login"] == "grace" && m["role"] == "member"),
        "{access}"
    );
    assert_eq!(
        events(&portal, &org_id, "member.added").len(),
        1,
        "the sync reads the same truth: no second event"
    );

    let removed = s.emulator.remove_member(inst.id, "grace");
    assert_eq!(removed["deliveries"][0]["status"], 200, "{removed}");
    let gone = events(&portal, &org_id, "member.removed");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(
        (gone[0]["subject"].clone(), gone[0]["source"].clone()),
        (json!("grace"), json!("webhook"))
    );
    // History filters: by family, by kind, by time.
    assert_eq!(events(&portal, &org_id, "member").len(), 2);
    let later = portal.get(&format!(
        "/v1/orgs/{org_id}/access/events?since=2999-01-01T00:00:00Z"
    ));
    assert_eq!(later["items"], json!([]), "{later}");
    let bad = portal.request(
        "GET",
        &format!("/v1/orgs/{org_id}/access/events?since=yesterday"),
        None,
    );
    assert_problem(&bad, 400, "bad_request", "a malformed since");
}

fn unreadable_two_factor(s: &Stack) {
    let tenant = "tenant-access-unknown";
    let portal = Portal::new(s, tenant);
    let inst = Inst::org(10_403, "access-unknown", 1);
    s.emulator.put_installation(&inst);
    s.emulator.set_github_access(
        inst.id,
        json!({
            "members": [
                {"login": "alice", "role": "admin", "two_factor": false},
                {"login": "bob", "role": "member", "two_factor": false},
            ],
            "settings": {"two_factor_requirement_enabled": false},
            "permissions": {"organization_administration": null},
        }),
    );
    let org_id = connect(s, tenant, &inst);
    let access = snapshot(&portal, &org_id);
    let members = access["members"].as_array().expect("members");
    assert_eq!(members.len(), 2, "{access}");
    assert!(
        members.iter().all(|m| m["two_factor"].is_null()),
        "2FA unknown, not false: {access}"
    );
    let parts: Vec<&str> = access["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["part"].as_str().unwrap())
        .collect();
    assert!(parts.contains(&"members.two_factor"), "{access}");
    assert!(parts.contains(&"settings"), "{access}");
    assert!(
        access["unknown"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| !u["reason"].as_str().unwrap_or("").is_empty()),
        "each says why: {access}"
    );
    let found = posture(&portal, &org_id);
    let rules: BTreeSet<String> = access_findings(&found)
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    for unreadable in [
        "admin_without_2fa",
        "member_without_2fa",
        "org_2fa_not_required",
    ] {
        assert!(
            !rules.contains(unreadable),
            "{unreadable} from unread data: {found}"
        );
    }
    let unknown: Vec<&str> = found["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["part"].as_str().unwrap())
        .collect();
    assert!(
        unknown.contains(&"members.two_factor"),
        "posture says what it could not see: {found}"
    );
}

fn protection_webhook(s: &Stack) {
    let tenant = "tenant-access-protection";
    let portal = Portal::new(s, tenant);
    let inst = Inst::org(10_404, "access-protection", 1);
    s.emulator.put_installation(&inst);
    let repo = s.emulator.repositories(inst.id).remove(0);
    s.emulator.set_github_access(
        inst.id,
        json!({"settings": {"two_factor_requirement_enabled": true}}),
    );
    let org_id = connect(s, tenant, &inst);
    snapshot(&portal, &org_id);
    let found = posture(&portal, &org_id);
    assert!(
        access_findings(&found)
            .contains(&("default_branch_unprotected".into(), repo.full_name.clone())),
        "{found}"
    );
    let sent =
        s.emulator
            .set_protection(inst.id, &repo.name, "main", json!({"required_reviews": 2}));
    let delivery = sent["deliveries"][0]["id"]
        .as_str()
        .expect("delivery")
        .to_string();
    assert_eq!(sent["deliveries"][0]["status"], 200, "{sent}");
    let added = poll_until(Duration::from_secs(30), "the re-read protection", || {
        let added = events(&portal, &org_id, "protection.added");
        if added.is_empty() {
            Err("no protection.added yet".to_string())
        } else {
            Ok(added)
        }
    });
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["subject"], repo.full_name.as_str());
    assert_eq!(added[0]["source"], "webhook");
    assert_eq!(added[0]["delivery_id"], delivery.as_str());
    let found = posture(&portal, &org_id);
    assert_eq!(access_findings(&found), BTreeSet::new(), "{found}");
    snapshot(&portal, &org_id);
    assert_eq!(
        events(&portal, &org_id, "protection").len(),
        1,
        "the sync finds the protection as the webhook left it"
    );
}

fn portfolio(s: &Stack) {
    let tenant = "tenant-access-portfolio";
    let portal = Portal::new(s, tenant);
    let mut orgs = Vec::new();
    for (id, login, client, two_factor) in [
        (10_405, "access-acme", "Acme", false),
        (10_406, "access-globex", "Globex", true),
    ] {
        let inst = Inst::org(id, login, 1);
        s.emulator.put_installation(&inst);
        s.emulator.set_github_access(
            id,
            json!({
                "members": [{"login": "root", "role": "admin", "two_factor": two_factor}],
                "settings": {"two_factor_requirement_enabled": two_factor},
            }),
        );
        let org_id = connect(s, tenant, &inst);
        portal.patch(&org_id, json!({"client": client}));
        snapshot(&portal, &org_id);
        orgs.push(org_id);
    }
    let all = portal.get("/v1/posture");
    let rows = all["orgs"].as_array().expect("orgs");
    let ids: BTreeSet<&str> = rows.iter().map(|r| r["org_id"].as_str().unwrap()).collect();
    assert_eq!(ids, orgs.iter().map(String::as_str).collect(), "{all}");
    let acme = rows.iter().find(|r| r["client"] == "Acme").expect("Acme");
    assert_eq!(acme["counts"]["critical"], 1, "admin without 2FA: {acme}");
    let globex = rows
        .iter()
        .find(|r| r["client"] == "Globex")
        .expect("Globex");
    assert_eq!(globex["counts"]["critical"], 0, "{globex}");
    let sum = |severity: &str| -> i64 {
        rows.iter()
            .map(|r| r["counts"][severity].as_i64().unwrap())
            .sum()
    };
    for severity in ["critical", "high", "medium", "low"] {
        assert_eq!(
            all["totals"][severity].as_i64(),
            Some(sum(severity)),
            "{all}"
        );
    }
    let one = portal.get("/v1/posture?client=Acme");
    assert_eq!(one["orgs"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one["orgs"][0]["org_id"], orgs[0].as_str());

    // The CSV says what the JSON says.
    let jwt = s.portal_jwt(tenant, &crate::harness::technician(tenant));
    let csv = s.http.request(
        "GET",
        &format!("{}/v1/posture", s.worker),
        &[
            ("authorization", &format!("Bearer {jwt}")),
            ("accept", "text/csv"),
        ],
        None,
    );
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv")),
        "{:?}",
        csv.header("content-type")
    );
    let mut reader = csv::Reader::from_reader(csv.body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "org_id", "provider", "org", "client", "critical", "high", "medium", "low", "unknown",
            "rules"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), rows.len());
    for record in &records {
        let row = rows
            .iter()
            .find(|r| r["org_id"] == record[0])
            .unwrap_or_else(|| panic!("{record:?} in {all}"));
        assert_eq!(record[1], row["provider"].as_str().unwrap().to_string());
        assert_eq!(record[2], row["org"].as_str().unwrap().to_string());
        assert_eq!(record[3], row["client"].as_str().unwrap().to_string());
        for (i, severity) in ["critical", "high", "medium", "low"].iter().enumerate() {
            assert_eq!(
                record[4 + i].parse::<i64>().ok(),
                row["counts"][severity].as_i64(),
                "{severity} of {record:?}"
            );
        }
        let rules: BTreeSet<&str> = record[9].split(';').filter(|r| !r.is_empty()).collect();
        let json_rules: BTreeSet<&str> = row["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap())
            .collect();
        assert_eq!(rules, json_rules, "{record:?}");
    }

    // Another tenant sees none of it.
    let other = Portal::new(s, "tenant-access-portfolio-other");
    for path in [
        format!("/v1/orgs/{}/access", orgs[0]),
        format!("/v1/orgs/{}/access/events", orgs[0]),
        format!("/v1/orgs/{}/posture", orgs[0]),
    ] {
        assert_problem(&other.request("GET", &path, None), 404, "not_found", &path);
    }
    let theirs = other.get("/v1/posture");
    assert_eq!(theirs["orgs"], json!([]), "{theirs}");
}

// ---- GitLab and Azure DevOps ----

const GL: &str = "gitlab";
const AZ: &str = "azure-devops";

/// `(login, role, admin, two_factor)` of each member, in the state's order.
fn member_rows(access: &Value) -> Vec<(String, String, bool, Value)> {
    access["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["login"].as_str().expect("login").to_string(),
                m["role"].as_str().expect("role").to_string(),
                m["admin"].as_bool().expect("admin"),
                m["two_factor"].clone(),
            )
        })
        .collect()
}

/// A repository's `protection` in an access state (`null`: unknown).
#[track_caller]
fn protection_of(access: &Value, full_name: &str) -> Value {
    access["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .find(|r| r["full_name"] == full_name)
        .map(|r| r["protection"].clone())
        .unwrap_or_else(|| panic!("{full_name} in {access}"))
}

/// The parts listed in `unknown` (of an access state or a posture).
fn unknown_parts(value: &Value) -> BTreeSet<String> {
    value["unknown"]
        .as_array()
        .expect("unknown")
        .iter()
        .map(|u| u["part"].as_str().expect("part").to_string())
        .collect()
}

/// Why `part` is unknown (panics when it is not listed, or without a reason).
#[track_caller]
fn unknown_reason(value: &Value, part: &str) -> String {
    let reason = value["unknown"]
        .as_array()
        .expect("unknown")
        .iter()
        .find(|u| u["part"] == part)
        .unwrap_or_else(|| panic!("{part} unknown in {value}"))["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!reason.is_empty(), "{part} says why: {value}");
    reason
}

/// A GitLab user of the tenant-shared instance; its username.
fn gitlab_user(s: &Stack, id: u64) -> String {
    let username = format!("user-{id}");
    s.emulator
        .gitlab_user(GITLAB_INSTANCE, id, &username, &format!("User {id}"));
    username
}

/// The id of a group's project named `name`, from the group summary the emulator answers.
#[track_caller]
fn project_id(group: &Value, name: &str) -> u64 {
    group["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["id"].as_u64())
        .unwrap_or_else(|| panic!("project {name} in {group}"))
}

/// Connects GitLab groups (`groups`: chosen full paths; empty: every group) as `user`.
#[track_caller]
fn connect_gitlab(
    s: &Stack,
    tenant: &str,
    user: u64,
    groups: &[&str],
) -> crate::harness::oauth::Connected {
    let body = (!groups.is_empty()).then(|| json!({ "groups": groups }));
    let connected = s
        .oauth_connect_as(GL, tenant, &user.to_string(), body.as_ref())
        .connected(GL);
    assert!(connected.complete, "{connected:?}");
    connected
}

fn gitlab_members_and_protected_branches(s: &Stack) {
    let tenant = "tenant-access-gitlab";
    let portal = Portal::new(s, tenant);
    let (owner, reporter, maintainer, developer, guest) = (77_101, 77_102, 77_103, 77_104, 77_105);
    for id in [owner, reporter, maintainer, developer, guest] {
        gitlab_user(s, id);
    }
    // The connected group is a subgroup: its owner and its reporter are members of the parent
    // group (inherited), the others its own.
    s.emulator.gitlab_group(
        GITLAB_INSTANCE,
        77_101,
        json!({"name": "Access 77101", "path": "grp-77101",
               "members": [owner, {"id": reporter, "access_level": 20}]}),
    );
    let sub = s.emulator.gitlab_group(
        GITLAB_INSTANCE,
        77_102,
        json!({"name": "Security", "path": "sec", "parent_id": 77_101,
               "members": [{"id": maintainer, "access_level": 40},
                           {"id": developer, "access_level": 30},
                           {"id": guest, "access_level": 10}],
               "projects": [{"name": "app"}, {"name": "docs"}]}),
    );
    assert_eq!(
        sub["require_two_factor_authentication"], false,
        "a new group does not require 2FA: {sub}"
    );
    let group = "grp-77101/sec";
    let (app, docs) = (project_id(&sub, "app"), project_id(&sub, "docs"));
    let (app_name, docs_name) = (format!("{group}/app"), format!("{group}/docs"));
    s.emulator.gitlab_protect_branch(
        GITLAB_INSTANCE,
        app,
        "main",
        json!({"allow_force_push": true}),
    );
    // GitLab's default rule: any eligible user may approve, none is required to.
    s.emulator.gitlab_approval_rules(
        GITLAB_INSTANCE,
        app,
        json!([{"name": "All Members", "rule_type": "any_approver", "approvals_required": 0}]),
    );
    let connected = connect_gitlab(s, tenant, owner, &[group]);
    assert_eq!(connected.orgs, [group]);
    let org_id = connected.org_ids[0].clone();
    let access = snapshot(&portal, &org_id);

    assert_eq!(
        member_rows(&access),
        vec![
            ("user-77101".into(), "owner".into(), true, Value::Null),
            ("user-77102".into(), "reporter".into(), false, Value::Null),
            ("user-77103".into(), "maintainer".into(), false, Value::Null),
            ("user-77104".into(), "developer".into(), false, Value::Null),
            ("user-77105".into(), "guest".into(), false, Value::Null),
        ],
        "direct and inherited members at their GitLab roles, 2FA unknown: {access}"
    );
    assert_eq!(
        unknown_parts(&access),
        [
            "members.two_factor",
            "settings.default_repository_permission",
            "settings.members_can_create_public_repositories",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        "only what GitLab does not expose: {access}"
    );
    assert!(
        unknown_reason(&access, "members.two_factor").contains("GitLab"),
        "{access}"
    );
    assert_eq!(access["settings"]["two_factor_required"], false, "{access}");
    assert_eq!(
        protection_of(&access, &app_name),
        json!({
            "protected": true,
            "required_reviews": 0,
            "required_checks": [],
            "allows_force_pushes": true,
            "allows_deletions": false,
            // Maintainers (and so owners) may push to it directly.
            "enforce_admins": false,
            "sources": ["protected_branch:main"],
        }),
        "{access}"
    );
    let unprotected = protection_of(&access, &docs_name);
    assert_eq!(unprotected["protected"], false, "{access}");
    assert_eq!(unprotected["sources"], json!([]), "{access}");

    let found = posture(&portal, &org_id);
    assert_eq!(
        access_findings(&found),
        pairs(&[
            ("org_2fa_not_required", group),
            ("default_branch_unprotected", &docs_name),
            ("default_branch_force_push", &app_name),
            ("default_branch_no_required_reviews", &app_name),
        ]),
        "nothing about members' 2FA, which is unknown: {found}"
    );
    assert!(
        unknown_parts(&found).contains("members.two_factor"),
        "posture says what it could not see: {found}"
    );

    // Fixed on GitLab, and the guest leaves: the findings clear at the next sync.
    s.emulator
        .gitlab_group_access(GITLAB_INSTANCE, 77_102, true, Some(0));
    s.emulator.gitlab_protect_branch(
        GITLAB_INSTANCE,
        app,
        "main",
        json!({"allow_force_push": false}),
    );
    s.emulator.gitlab_approval_rules(
        GITLAB_INSTANCE,
        app,
        json!([{"name": "All Members", "rule_type": "any_approver", "approvals_required": 2}]),
    );
    s.emulator
        .gitlab_protect_branch(GITLAB_INSTANCE, docs, "main", json!({}));
    s.emulator.gitlab_approval_rules(
        GITLAB_INSTANCE,
        docs,
        json!([{"name": "Reviewers", "approvals_required": 1}]),
    );
    s.emulator
        .gitlab_remove_member(GITLAB_INSTANCE, 77_102, guest);
    let access = snapshot(&portal, &org_id);
    assert_eq!(access["settings"]["two_factor_required"], true, "{access}");
    assert_eq!(
        protection_of(&access, &app_name)["required_reviews"],
        2,
        "{access}"
    );
    assert_eq!(
        protection_of(&access, &docs_name)["required_reviews"],
        1,
        "{access}"
    );
    let fixed = posture(&portal, &org_id);
    assert_eq!(access_findings(&fixed), BTreeSet::new(), "{fixed}");

    let removed = events(&portal, &org_id, "member");
    assert_eq!(removed.len(), 1, "only the guest left: {removed:?}");
    assert_eq!(
        (
            removed[0]["kind"].clone(),
            removed[0]["subject"].clone(),
            removed[0]["source"].clone(),
            removed[0]["delivery_id"].clone(),
            removed[0]["detail"]["role"].clone(),
        ),
        (
            json!("member.removed"),
            json!("user-77105"),
            json!("sync"),
            Value::Null,
            json!("guest"),
        ),
        "{removed:?}"
    );
    let kinds: Vec<(String, String)> = event_kinds(&portal, &org_id);
    let mut expected = vec![
        ("member.removed".to_string(), "user-77105".to_string()),
        ("protection.added".to_string(), docs_name.clone()),
        ("protection.strengthened".to_string(), app_name.clone()),
        ("settings.changed".to_string(), group.to_string()),
    ];
    expected.sort();
    let mut kinds_sorted = kinds.clone();
    kinds_sorted.sort();
    assert_eq!(kinds_sorted, expected, "each change once: {kinds:?}");
}

fn gitlab_developer(s: &Stack) {
    let tenant = "tenant-access-gitlab-developer";
    let portal = Portal::new(s, tenant);
    let (developer, owner) = (77_111, 77_112);
    gitlab_user(s, developer);
    gitlab_user(s, owner);
    let group = s.emulator.gitlab_group(
        GITLAB_INSTANCE,
        77_111,
        json!({"name": "Access 77111", "path": "grp-77111",
               "members": [owner, {"id": developer, "access_level": 30}],
               "projects": [{"name": "api"}, {"name": "web"}]}),
    );
    // Protected, but a Developer cannot see it.
    s.emulator.gitlab_protect_branch(
        GITLAB_INSTANCE,
        project_id(&group, "api"),
        "main",
        json!({"allow_force_push": true}),
    );
    let connected = connect_gitlab(s, tenant, developer, &[]);
    assert_eq!(connected.orgs, ["grp-77111"]);
    let org_id = connected.org_ids[0].clone();
    let access = snapshot(&portal, &org_id);

    assert_eq!(
        member_rows(&access),
        vec![
            ("user-77111".into(), "developer".into(), false, Value::Null),
            ("user-77112".into(), "owner".into(), true, Value::Null),
        ],
        "{access}"
    );
    for name in ["grp-77111/api", "grp-77111/web"] {
        assert_eq!(
            protection_of(&access, name),
            Value::Null,
            "unreadable, not unprotected: {access}"
        );
        let reason = unknown_reason(&access, &format!("repository:{name}.protection"));
        assert!(
            reason.contains("refused") && reason.contains("403"),
            "the refusal, said: {reason}"
        );
    }
    let found = posture(&portal, &org_id);
    assert_eq!(
        access_findings(&found),
        pairs(&[("org_2fa_not_required", "grp-77111")]),
        "no default_branch_* finding from protections it could not read: {found}"
    );
    for name in ["grp-77111/api", "grp-77111/web"] {
        assert!(
            unknown_parts(&found).contains(&format!("repository:{name}.protection")),
            "{found}"
        );
    }
}

/// An Azure DevOps user with its own sign-in name (a GUID from `n`).
fn azure_user(s: &Stack, n: u32, name: &str) -> (String, String) {
    let id = format!("a11ce55e-0000-4000-8000-{n:012}");
    let email = format!("{name}@access-e2e{n}.example.com");
    s.emulator.azure_user(&id, name, Some(&email));
    (id, email)
}

fn azure_entitlements_and_policies(s: &Stack) {
    let tenant = "tenant-access-azure";
    let portal = Portal::new(s, tenant);
    let (owner, owner_mail) = azure_user(s, 77_201, "owner");
    let (viewer, viewer_mail) = azure_user(s, 77_202, "viewer");
    let (tester, tester_mail) = azure_user(s, 77_203, "tester");
    let org = "access-e2e77201";
    s.emulator.azure_org(
        org,
        json!({
            "members": [owner, {"id": viewer, "access_level": "stakeholder"},
                        {"id": tester, "access_level": "advanced"}],
            "projects": [{"name": "core", "repositories": ["guarded", "open"]}],
        }),
    );
    s.emulator.azure_policies(
        org,
        "core",
        "guarded",
        json!([
            {"type": "reviewers", "minimum_approver_count": 2},
            {"type": "build", "name": "ci"},
        ]),
    );
    // Optional (not blocking) policies protect nothing.
    s.emulator.azure_policies(
        org,
        "core",
        "open",
        json!([{"type": "reviewers", "minimum_approver_count": 3, "blocking": false}]),
    );
    // The connected account may not view users here: 403, or 401 as Azure DevOps often says it.
    let denied = "access-e2e77201-denied";
    let unauthorized = "access-e2e77201-unauthorized";
    for (name, denial) in [(denied, json!(403)), (unauthorized, json!(true))] {
        s.emulator.azure_org(
            name,
            json!({
                "members": [owner, viewer],
                "projects": [{"name": "core", "repositories": ["one"]}],
                "entitlements_denied": denial,
            }),
        );
    }
    let connected = s.oauth_connect_as(AZ, tenant, &owner, None).connected(AZ);
    assert!(connected.complete, "{connected:?}");
    let org_id = |name: &str| {
        connected.org_ids[connected
            .orgs
            .iter()
            .position(|o| o == name)
            .unwrap_or_else(|| panic!("{name} in {connected:?}"))]
        .clone()
    };
    let org_id_main = org_id(org);
    let access = snapshot(&portal, &org_id_main);

    // Sorted by login: owner@…, tester@…, viewer@….
    assert_eq!(
        member_rows(&access),
        vec![
            (owner_mail, "basic".to_string(), false, Value::Null),
            (
                tester_mail,
                "basic_test_plans".to_string(),
                false,
                Value::Null
            ),
            (viewer_mail, "stakeholder".to_string(), false, Value::Null),
        ],
        "members by sign-in name at their access levels, 2FA unknown: {access}"
    );
    assert!(
        unknown_reason(&access, "members.two_factor").contains("Entra ID"),
        "{access}"
    );
    assert!(
        !unknown_parts(&access).contains("members"),
        "the members were read: {access}"
    );
    assert!(
        access["settings"]["two_factor_required"].is_null(),
        "{access}"
    );
    assert!(
        unknown_parts(&access).contains("settings"),
        "an unknown 2FA requirement is said to be unknown: {access}"
    );
    let (guarded, open) = (format!("{org}/core/guarded"), format!("{org}/core/open"));
    let protection = protection_of(&access, &guarded);
    assert_eq!(
        (
            protection["protected"].clone(),
            protection["required_reviews"].clone(),
            protection["required_checks"].clone(),
            protection["allows_force_pushes"].clone(),
        ),
        (json!(true), json!(2), json!(["ci"]), json!(false)),
        "{access}"
    );
    assert_eq!(
        protection_of(&access, &open)["protected"],
        false,
        "{access}"
    );
    let found = posture(&portal, &org_id_main);
    assert_eq!(
        access_findings(&found),
        pairs(&[("default_branch_unprotected", &open)]),
        "{found}"
    );

    // A required reviewer policy on the open repository: the finding clears.
    s.emulator.azure_policies(
        org,
        "core",
        "open",
        json!([{"type": "reviewers", "minimum_approver_count": 1}]),
    );
    let access = snapshot(&portal, &org_id_main);
    assert_eq!(
        protection_of(&access, &open)["required_reviews"],
        1,
        "{access}"
    );
    let fixed = posture(&portal, &org_id_main);
    assert_eq!(access_findings(&fixed), BTreeSet::new(), "{fixed}");
    let added = events(&portal, &org_id_main, "protection");
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(
        (added[0]["kind"].clone(), added[0]["subject"].clone()),
        (json!("protection.added"), json!(open.as_str()))
    );

    // Entitlements refused: the members are unknown, and why; not an empty list that is fine.
    for (name, status) in [(denied, "403"), (unauthorized, "401")] {
        let id = org_id(name);
        let access = snapshot(&portal, &id);
        assert_eq!(access["members"], json!([]), "{name}: {access}");
        let reason = unknown_reason(&access, "members");
        assert!(
            reason.contains("Azure DevOps refused")
                && reason.contains(status)
                && reason.contains("userentitlements"),
            "{name}: the refusal, said: {reason}"
        );
        assert_eq!(
            portal.org(&id)["status"],
            "active",
            "{name}: a refused list is no broken connection"
        );
        assert_eq!(
            protection_of(&access, &format!("{name}/core/one"))["protected"],
            false,
            "the rest is still read: {access}"
        );
        let found = posture(&portal, &id);
        assert!(unknown_parts(&found).contains("members"), "{name}: {found}");
    }
}
