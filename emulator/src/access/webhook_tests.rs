//! Webhooks of `access/` admin changes, received by a local receiver.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

use super::tests::{access, people, setup};
use crate::server::tests::{admin_call, call, emulator};
use crate::webhooks::signature;

/// A delivery as received: its headers (lowercase names) and body.
type Seen = (Vec<(String, String)>, Vec<u8>);

/// A local webhook receiver: records every delivery and answers `status`.
struct Receiver {
    url: String,
    server: Arc<tiny_http::Server>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!(
            "http://{}/github/webhooks",
            server.server_addr().to_ip().unwrap()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (srv, log) = (server.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while let Ok(mut request) = srv.recv() {
                let headers = request
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_ascii_lowercase(),
                            h.value.to_string(),
                        )
                    })
                    .collect();
                let mut body = Vec::new();
                request.as_reader().read_to_end(&mut body).unwrap();
                log.lock().unwrap().push((headers, body));
                let _ = request.respond(tiny_http::Response::empty(status));
            }
        });
        Receiver {
            url,
            server,
            seen,
            thread: Some(thread),
        }
    }

    fn deliveries(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn admin_changes_send_signed_webhooks_that_can_be_redelivered() {
    let em = emulator();
    setup(&em);
    access(&em, people());
    // No target yet: the change applies, nothing is sent.
    let answer = admin_call(
        &em,
        "POST",
        "installations/5/members",
        json!({"login": "erin"}),
    );
    assert_eq!(answer["deliveries"], json!([]));

    let receiver = Receiver::start(202);
    admin_call(
        &em,
        "PUT",
        "webhooks",
        json!({"url": receiver.url, "secret": "s3cret"}),
    );
    let answer = admin_call(
        &em,
        "POST",
        "installations/5/members",
        json!({"login": "frank", "id": 99, "role": "admin"}),
    );
    let delivery = &answer["deliveries"][0];
    assert_eq!(
        (&delivery["event"], &delivery["action"], &delivery["status"]),
        (&json!("organization"), &json!("member_added"), &json!(202))
    );
    let seen = receiver.deliveries();
    let (headers, body) = &seen[0];
    assert_eq!(header(headers, "x-github-event"), "organization");
    assert_eq!(
        header(headers, "x-github-delivery"),
        delivery["id"].as_str().unwrap()
    );
    assert_eq!(
        header(headers, "x-hub-signature-256"),
        signature("s3cret", body)
    );
    assert_eq!(
        header(headers, "x-github-hook-installation-target-type"),
        "integration"
    );
    assert_eq!(
        header(headers, "x-github-hook-installation-target-id"),
        "424242"
    );
    assert!(header(headers, "user-agent").starts_with("GitHub-Hookshot/"));
    assert_eq!(header(headers, "content-type"), "application/json");
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["membership"]["role"], "admin");
    assert_eq!(payload["membership"]["user"]["login"], "frank");
    assert_eq!(payload["membership"]["user"]["id"], 99);
    assert_eq!(payload["organization"]["login"], "acme");
    assert_eq!(payload["installation"]["id"], 5);
    assert_eq!(payload["sender"]["login"], "emulator-admin");

    // Every other change and its event.
    let events = |answer: &Value| -> Vec<String> {
        answer["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                format!(
                    "{}.{}",
                    d["event"].as_str().unwrap(),
                    d["action"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    let patch = |body: Value| admin_call(&em, "PATCH", "installations/5/members/bob", body);
    assert_eq!(
        events(&patch(json!({"role": "admin"}))),
        ["organization.member_added"]
    );
    assert_eq!(
        events(&patch(json!({"two_factor": false}))),
        Vec::<String>::new()
    );
    assert_eq!(
        events(&admin_call(
            &em,
            "DELETE",
            "installations/5/members/carol",
            json!(null)
        )),
        ["organization.member_removed"]
    );
    assert_eq!(
        events(&admin_call(
            &em,
            "POST",
            "installations/5/invitations",
            json!({"login": "gina", "role": "admin"})
        )),
        ["organization.member_invited"]
    );
    let put_collaborator = |permission: &str| {
        admin_call(
            &em,
            "PUT",
            "installations/5/repositories/docs/collaborators/hal",
            json!({"permission": permission}),
        )
    };
    assert_eq!(events(&put_collaborator("write")), ["member.added"]);
    assert_eq!(events(&put_collaborator("write")), Vec::<String>::new());
    assert_eq!(events(&put_collaborator("admin")), ["member.edited"]);
    assert_eq!(
        events(&admin_call(
            &em,
            "DELETE",
            "installations/5/repositories/docs/collaborators/hal",
            json!(null)
        )),
        ["member.removed"]
    );
    let protect = |spec: Value| {
        admin_call(
            &em,
            "PUT",
            "installations/5/repositories/site/protection/trunk",
            spec,
        )
    };
    assert_eq!(
        events(&protect(json!({"required_reviews": 1}))),
        ["branch_protection_rule.created"]
    );
    assert_eq!(
        events(&protect(
            json!({"required_reviews": 2, "allow_force_pushes": true})
        )),
        ["branch_protection_rule.edited"]
    );
    assert_eq!(
        events(&admin_call(
            &em,
            "DELETE",
            "installations/5/repositories/site/protection/trunk",
            json!(null)
        )),
        ["branch_protection_rule.deleted"]
    );
    let ruleset = admin_call(
        &em,
        "POST",
        "installations/5/repositories/site/rulesets",
        json!({"name": "r", "rules": [{"type": "deletion"}]}),
    );
    assert_eq!(events(&ruleset), ["repository_ruleset.created"]);
    let rid = ruleset["id"].as_u64().unwrap();
    let edited = admin_call(
        &em,
        "PUT",
        &format!("installations/5/repositories/site/rulesets/{rid}"),
        json!({"name": "r2", "include": ["~ALL"], "rules": [{"type": "pull_request", "required_approving_review_count": 2}]}),
    );
    assert_eq!(events(&edited), ["repository_ruleset.edited"]);
    assert_eq!(
        events(&admin_call(
            &em,
            "DELETE",
            &format!("installations/5/repositories/site/rulesets/{rid}"),
            json!(null)
        )),
        ["repository_ruleset.deleted"]
    );
    assert_eq!(
        events(&admin_call(
            &em,
            "POST",
            "installations/5/teams",
            json!({"name": "Core Devs"})
        )),
        ["team.created"]
    );
    assert_eq!(
        events(&admin_call(
            &em,
            "PUT",
            "installations/5/teams/core-devs/members/bob",
            json!(null)
        )),
        ["membership.added"]
    );
    assert_eq!(
        events(&admin_call(
            &em,
            "DELETE",
            "installations/5/teams/core-devs/members/bob",
            json!(null)
        )),
        ["membership.removed"]
    );

    let payloads: Vec<Value> = receiver
        .deliveries()
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect();
    let find = |event: &str, action: &str| {
        let (headers_and, _) = (receiver.deliveries(), ());
        let index = headers_and
            .iter()
            .position(|(h, b)| {
                header(h, "x-github-event") == event
                    && serde_json::from_slice::<Value>(b).unwrap()["action"] == action
            })
            .unwrap_or_else(|| panic!("no {event}.{action}"));
        payloads[index].clone()
    };
    let invited = find("organization", "member_invited");
    assert_eq!(
        (
            &invited["invitation"]["login"],
            &invited["invitation"]["role"]
        ),
        (&json!("gina"), &json!("admin"))
    );
    let added = find("member", "added");
    assert_eq!(added["member"]["login"], "hal");
    assert_eq!(
        added["changes"],
        json!({"permission": {"to": "write"}, "role_name": {"to": "write"}})
    );
    assert_eq!(added["repository"]["full_name"], "acme/docs");
    let edited_member = find("member", "edited");
    assert_eq!(
        edited_member["changes"],
        json!({"old_permission": {"from": "write"}, "permission": {"from": "write", "to": "admin"}})
    );
    let rule = find("branch_protection_rule", "edited");
    assert_eq!(rule["rule"]["name"], "trunk");
    assert_eq!(rule["rule"]["repository_id"], 77);
    assert_eq!(rule["rule"]["required_approving_review_count"], 2);
    assert_eq!(
        rule["rule"]["pull_request_reviews_enforcement_level"],
        "non_admins"
    );
    assert_eq!(
        rule["rule"]["allow_force_pushes_enforcement_level"],
        "everyone"
    );
    assert_eq!(rule["rule"]["allow_deletions_enforcement_level"], "off");
    assert_eq!(
        rule["changes"],
        json!({"required_approving_review_count": {"from": 1}, "allow_force_pushes_enforcement_level": {"from": "off"}})
    );
    assert_eq!(rule["repository"]["id"], 77);
    let changed = find("repository_ruleset", "edited");
    assert_eq!(changed["changes"]["name"], json!({"from": "r"}));
    assert_eq!(
        changed["changes"]["rules"]["added"][0]["type"],
        "pull_request"
    );
    assert_eq!(
        changed["changes"]["rules"]["deleted"],
        json!([{"type": "deletion"}])
    );
    assert_eq!(
        changed["changes"]["conditions"]["updated"][0]["changes"]["include"],
        json!({"from": ["~DEFAULT_BRANCH"]})
    );
    assert_eq!(changed["repository_ruleset"]["source_type"], "Repository");
    assert_eq!(find("team", "created")["team"]["slug"], "core-devs");
    let membership = find("membership", "added");
    assert_eq!(
        (&membership["scope"], &membership["member"]["login"]),
        (&json!("team"), &json!("bob"))
    );

    // The log, and a redelivery: same id, bytes and signature, even with a new secret.
    let (_, log, _) = call(&em, "GET", "/_emulator/webhooks/deliveries", None, "");
    let log = log.as_array().unwrap().clone();
    assert_eq!(log.len(), receiver.deliveries().len());
    assert_eq!(log[0]["body"], payloads[0]);
    assert_eq!(log[0]["url"], receiver.url.as_str());
    let first = log[0]["id"].as_str().unwrap();
    admin_call(
        &em,
        "PUT",
        "webhooks",
        json!({"url": receiver.url, "secret": "rotated"}),
    );
    let again = admin_call(
        &em,
        "POST",
        &format!("webhooks/deliveries/{first}/redeliver"),
        json!(null),
    );
    assert_eq!(
        (&again["id"], &again["status"]),
        (&json!(first), &json!(202))
    );
    let seen = receiver.deliveries();
    let ((h0, b0), (h1, b1)) = (&seen[0], seen.last().unwrap());
    assert_eq!(b0, b1);
    for name in ["x-github-delivery", "x-hub-signature-256", "x-github-event"] {
        assert_eq!(header(h0, name), header(h1, name), "{name}");
    }
    let (_, log, _) = call(&em, "GET", "/_emulator/webhooks/deliveries", None, "");
    assert_eq!(log.as_array().unwrap().last().unwrap()["redelivery"], true);
    assert_eq!(
        call(
            &em,
            "POST",
            "/_emulator/webhooks/deliveries/nope/redeliver",
            None,
            ""
        )
        .0,
        404
    );
    call(&em, "DELETE", "/_emulator/webhooks", None, "");
    assert_eq!(
        call(
            &em,
            "POST",
            &format!("/_emulator/webhooks/deliveries/{first}/redeliver"),
            None,
            ""
        )
        .0,
        409
    );
}

#[test]
fn unreachable_receivers_and_refused_specs() {
    let em = emulator();
    setup(&em);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    admin_call(
        &em,
        "PUT",
        "webhooks",
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": "x"}),
    );
    let answer = admin_call(
        &em,
        "POST",
        "installations/5/members",
        json!({"login": "erin"}),
    );
    let delivery = &answer["deliveries"][0];
    assert_eq!(delivery["status"], Value::Null);
    assert!(delivery["error"].is_string());
    let (_, state, _) = call(&em, "GET", "/_emulator/installations/5/access", None, "");
    assert_eq!(state["members"][0]["login"], "erin", "the change applied");

    for (method, path, body) in [
        (
            "PUT",
            "webhooks",
            r#"{"url":"https://example.com","secret":"x"}"#,
        ),
        ("PUT", "webhooks", r#"{"url":"http://127.0.0.1:1"}"#),
        (
            "PUT",
            "installations/5/access",
            r#"{"members":[{"login":"a","role":"owner"}]}"#,
        ),
        (
            "PUT",
            "installations/5/access",
            r#"{"outside_collaborators":[{"login":"a","admin_on":["nope"]}]}"#,
        ),
        (
            "PUT",
            "installations/5/access",
            r#"{"settings":{"default_repository_permission":"everything"}}"#,
        ),
        (
            "PUT",
            "installations/5/access",
            r#"{"permissions":{"members":"all"}}"#,
        ),
        (
            "PUT",
            "installations/5/access",
            r#"{"invitations":[{"role":"admin"}]}"#,
        ),
        ("PUT", "installations/5/access", r#"{"extra":1}"#),
        (
            "PUT",
            "installations/5/repositories/docs/collaborators/erin",
            r#"{"permission":"admin"}"#,
        ),
        ("PUT", "installations/5/teams/x/members/erin", ""),
        ("POST", "installations/5/members", r#"{"login":"ERIN"}"#),
        ("DELETE", "installations/5/members/nobody", ""),
        ("PUT", "installations/9/access", "{}"),
    ] {
        let (status, body, _) = call(&em, method, &format!("/_emulator/{path}"), None, body);
        assert!(
            (400..500).contains(&status),
            "{method} {path}: {status} {body}"
        );
    }
}
