//! Webhook deliveries from the real binary to a receiver that, like the worker under
//! `wrangler dev`, calls the emulator back (an installation token, the organization's members)
//! before it answers: the admin call that caused the webhook must not deadlock, and the
//! receiver must be able to verify the signature with the secret.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use jwt_compact::{alg::Rsa, AlgorithmExt, Claims, Header};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::sha2::{Digest, Sha256};
use serde_json::{json, Value};

const APP_ID: &str = "424242";
const DEV_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dev/github-app-dev-key.pem");
const SECRET: &str = "webhook-secret";

struct Emulator {
    child: Child,
    base: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

fn start() -> Emulator {
    let mut child = Command::new(env!("CARGO_BIN_EXE_github-emulator"))
        .args(["--port", "0", "--app-id", APP_ID, "--app-key", DEV_KEY])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn github-emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("github-emulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Emulator { child, base }
}

/// `(status, JSON body)` of one request.
fn call(method: &str, url: &str, auth: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = agent().request(method, url);
    if let Some(auth) = auth {
        request = request.set("Authorization", auth);
    }
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => (
            response.status(),
            response.into_json().unwrap_or(Value::Null),
        ),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn app_jwt() -> String {
    let pem = std::fs::read_to_string(DEV_KEY).unwrap();
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap();
    let now = Utc::now();
    let mut claims = Claims::new(json!({ "iss": APP_ID }));
    claims.issued_at = Some(now - chrono::Duration::seconds(60));
    claims.expiration = Some(now + chrono::Duration::seconds(540));
    let jwt = Rsa::rs256().token(&Header::empty(), &claims, &key).unwrap();
    format!("Bearer {jwt}")
}

/// HMAC-SHA256, as a receiver computes it to check `X-Hub-Signature-256`.
fn hmac(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the receiver saw of one delivery: event, signature valid, members it read back.
type Seen = (String, bool, Vec<String>);

#[test]
fn receivers_that_call_back_do_not_deadlock_and_can_verify_signatures() {
    let emulator = start();
    let base = emulator.base.clone();
    let admin = |method: &str, path: &str, body: Value| {
        let (status, answer) = call(
            method,
            &format!("{base}/_emulator/{path}"),
            None,
            Some(body),
        );
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer
    };
    admin(
        "PUT",
        "installations/5",
        json!({"account": {"login": "acme", "id": 1001, "type": "Organization"}, "repositories": 2}),
    );
    admin(
        "PUT",
        "installations/5/access",
        json!({"members": [{"login": "alice", "role": "admin"}]}),
    );

    let receiver = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!(
        "http://{}/github/webhooks",
        receiver.server_addr().to_ip().unwrap()
    );
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let worker = {
        let (receiver, seen, base) = (receiver.clone(), seen.clone(), base.clone());
        std::thread::spawn(move || {
            while let Ok(mut request) = receiver.recv() {
                let header = |name: &str| {
                    request
                        .headers()
                        .iter()
                        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                        .map(|h| h.value.to_string())
                        .unwrap_or_default()
                };
                let (event, signature) = (header("X-GitHub-Event"), header("X-Hub-Signature-256"));
                let mut body = Vec::new();
                request.as_reader().read_to_end(&mut body).unwrap();
                let valid = signature == format!("sha256={}", hmac(SECRET.as_bytes(), &body));
                // Call the emulator back, as the worker does, before answering.
                let (status, minted) = call(
                    "POST",
                    &format!("{base}/app/installations/5/access_tokens"),
                    Some(&app_jwt()),
                    None,
                );
                assert_eq!(status, 201);
                let token = format!("token {}", minted["token"].as_str().unwrap());
                let (status, members) = call(
                    "GET",
                    &format!("{base}/orgs/acme/members"),
                    Some(&token),
                    None,
                );
                assert_eq!(status, 200);
                let logins = members
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["login"].as_str().unwrap().to_string())
                    .collect();
                seen.lock().unwrap().push((event, valid, logins));
                let _ = request.respond(tiny_http::Response::empty(200));
            }
        })
    };
    admin("PUT", "webhooks", json!({"url": url, "secret": SECRET}));

    // Several admin calls at once, each waiting for a receiver that calls back.
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let calls: Vec<_> = ["bob", "carol", "dave", "erin"]
            .into_iter()
            .map(|login| {
                let admin = &admin;
                scope.spawn(move || {
                    admin("POST", "installations/5/members", json!({"login": login}))
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for answer in &answers {
        assert_eq!(answer["deliveries"][0]["status"], 200, "{answer}");
        assert_eq!(answer["deliveries"][0]["action"], "member_added");
    }
    let protected = admin(
        "PUT",
        "installations/5/repositories/acme-repo-00001/protection/main",
        json!({"required_reviews": 1}),
    );
    assert_eq!(
        protected["deliveries"][0]["event"],
        "branch_protection_rule"
    );

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|(_, valid, _)| *valid), "{seen:?}");
    let last = &seen.last().unwrap().2;
    assert_eq!(
        last.len(),
        5,
        "the receiver saw every member added: {last:?}"
    );
    assert_eq!(seen.last().unwrap().0, "branch_protection_rule");

    // A redelivery calls back too, with the same id.
    let (_, deliveries) = call(
        "GET",
        &format!("{base}/_emulator/webhooks/deliveries"),
        None,
        None,
    );
    let first = deliveries[0]["id"].as_str().unwrap().to_string();
    let again = admin(
        "POST",
        &format!("webhooks/deliveries/{first}/redeliver"),
        json!(null),
    );
    assert_eq!(
        (again["id"].as_str(), &again["status"]),
        (Some(first.as_str()), &json!(200))
    );

    receiver.unblock();
    worker.join().unwrap();
}
