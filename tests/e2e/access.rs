//! Access audit and posture (issue #10), end to end: the emulator's members, 2FA, outside
//! collaborators, org settings and branch protection read at each sync, changes announced by
//! signed webhooks the emulator sends, and the posture and portfolio routes.
//!
//! A snapshot is under way from the moment `POST /v1/orgs/{id}/sync` answers (the sync starts it
//! before answering), so waiting for `reading: false` waits for exactly that snapshot, whatever
//! the clock says.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::emulator::Inst;
use crate::harness::portal::{assert_problem, Portal};
use crate::harness::{poll_until, Stack};
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
    let kinds: Vec<(String, String)> = portal
        .get(&format!("/v1/orgs/{org_id}/access/events?limit=100"))["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
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
