//! Signed GitHub webhook deliveries, sent as GitHub sends an App's webhooks.
//!
//! `PUT /_emulator/webhooks` `{"url","secret"}` sets where deliveries go and the secret they are
//! signed with (`DELETE` turns delivery off, `GET` answers `{"url","secret"}` or nulls). Admin
//! calls that change what a webhook reports (`access/admin.rs`) collect their [`Event`]s and
//! hand them to [`deliver`] once the change is made and the store unlocked: each is POSTed
//! synchronously, in order, before the admin call answers, with GitHub's headers:
//!
//! | Header | Value |
//! | --- | --- |
//! | `X-GitHub-Event` | the event name (`organization`, `member`, `branch_protection_rule`, …) |
//! | `X-GitHub-Delivery` | a fresh GUID per delivery (kept by a redelivery) |
//! | `X-GitHub-Hook-ID` | `4242001`, the App's webhook |
//! | `X-GitHub-Hook-Installation-Target-Type` | `integration` |
//! | `X-GitHub-Hook-Installation-Target-ID` | the App id |
//! | `X-Hub-Signature-256` | `sha256=` and the hex HMAC-SHA256 of the body with the secret |
//! | `User-Agent` | `GitHub-Hookshot/emulator` |
//! | `Content-Type` | `application/json` |
//!
//! (No SHA-1 `X-Hub-Signature`.) The admin call answers
//! `{"deliveries":[{"id","event","action","status"}],…}`: `status` is the receiver's HTTP status,
//! or `null` (with `error`) when it could not be reached. Without a URL the change still applies
//! and `deliveries` is empty. Redirects are not followed.
//!
//! The emulator serves every request on a pool of worker threads (`server.rs`) and never holds
//! its state lock while delivering, so a receiver that calls the emulator back (for an
//! installation token, say) before answering is served meanwhile.
//!
//! `GET /_emulator/webhooks/deliveries` lists every delivery sent, oldest first:
//! `{"id","event","action","installation_id","url","status","error","redelivery","delivered_at","duration_ms","body"}`
//! (`body` the JSON sent); `DELETE` empties the list. `POST
//! /_emulator/webhooks/deliveries/{id}/redeliver` sends that delivery again to the configured
//! URL: the same `X-GitHub-Delivery`, the same bytes and the same signature (even if the secret
//! changed since), listed again with `"redelivery":true`; it answers `{"id","event","action",
//! "status"}` (409 without a URL, 404 for an unknown id).

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use rsa::sha2::{Digest, Sha256};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{parse_body, Reply, Request};
use crate::server::Emulator;

/// `X-GitHub-Hook-ID` of every delivery: the App's one webhook.
pub const HOOK_ID: &str = "4242001";
const USER_AGENT: &str = "GitHub-Hookshot/emulator";
const TIMEOUT: Duration = Duration::from_secs(60);

/// A webhook an admin change causes.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `X-GitHub-Event`.
    pub name: &'static str,
    pub installation_id: u64,
    /// The payload, with its `action`.
    pub payload: Value,
}

impl Event {
    pub fn new(name: &'static str, installation_id: u64, payload: Value) -> Self {
        Event {
            name,
            installation_id,
            payload,
        }
    }

    fn action(&self) -> Option<String> {
        self.payload["action"].as_str().map(str::to_string)
    }
}

/// Where deliveries go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub url: String,
    pub secret: String,
}

/// One delivery as `GET /_emulator/webhooks/deliveries` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: u64,
    pub url: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub redelivery: bool,
    pub delivered_at: String,
    pub duration_ms: u64,
    pub body: Value,
    #[serde(skip)]
    raw: Vec<u8>,
    #[serde(skip)]
    signature: String,
}

impl Delivery {
    fn summary(&self) -> Value {
        let mut summary = json!({
            "id": self.id, "event": self.event, "action": self.action, "status": self.status,
        });
        if let Some(error) = &self.error {
            summary["error"] = json!(error);
        }
        summary
    }
}

/// The webhook target and every delivery sent.
#[derive(Debug, Default)]
pub struct Hooks {
    pub target: Option<Target>,
    deliveries: Vec<Delivery>,
}

/// HMAC-SHA256 (RFC 2104) of `message` with `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// `sha256=<hex>`, the `X-Hub-Signature-256` of `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(secret.as_bytes(), body);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Sends `events` in order to the configured URL (none: nothing is sent) and answers their
/// summaries `[{"id","event","action","status"}]`. The store is only locked briefly before
/// and after each send, never during one.
pub fn deliver(em: &Emulator, events: Vec<Event>) -> Vec<Value> {
    let Some(target) = em.store().webhooks.target.clone() else {
        return Vec::new();
    };
    events
        .into_iter()
        .map(|event| {
            let raw = serde_json::to_vec(&event.payload).expect("JSON values always serialize");
            let delivery = Delivery {
                id: crate::azure::new_guid(),
                event: event.name.to_string(),
                action: event.action(),
                installation_id: event.installation_id,
                url: target.url.clone(),
                status: None,
                error: None,
                redelivery: false,
                delivered_at: String::new(),
                duration_ms: 0,
                signature: signature(&target.secret, &raw),
                body: event.payload,
                raw,
            };
            send(em, delivery)
        })
        .collect()
}

/// POSTs one delivery to its URL, records it and answers its summary.
fn send(em: &Emulator, mut delivery: Delivery) -> Value {
    let agent = ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .redirects(0)
        .build();
    let started = Instant::now();
    delivery.delivered_at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let result = agent
        .post(&delivery.url)
        .set("Content-Type", "application/json")
        .set("User-Agent", USER_AGENT)
        .set("X-GitHub-Event", &delivery.event)
        .set("X-GitHub-Delivery", &delivery.id)
        .set("X-GitHub-Hook-ID", HOOK_ID)
        .set("X-GitHub-Hook-Installation-Target-Type", "integration")
        .set("X-GitHub-Hook-Installation-Target-ID", em.app_id())
        .set("X-Hub-Signature-256", &delivery.signature)
        .send_bytes(&delivery.raw);
    delivery.duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            delivery.status = Some(response.status());
            // Read the answer so the receiver sees its response taken.
            let _ = response.into_string();
        }
        Err(e) => delivery.error = Some(e.to_string()),
    }
    eprintln!(
        "webhook {} {} -> {:?} ({} ms)",
        delivery.event, delivery.id, delivery.status, delivery.duration_ms
    );
    let summary = delivery.summary();
    em.store().webhooks.deliveries.push(delivery);
    summary
}

/// Answers `/_emulator/webhooks/{rest}`.
pub fn admin_route(em: &Emulator, request: &Request, rest: &[&str]) -> Reply {
    let result = match (request.method.as_str(), rest) {
        ("PUT", []) => parse_body::<Target>(request).and_then(|target| {
            let parsed = url::Url::parse(&target.url).map_err(|e| {
                Reply::error(
                    400,
                    &format!("github-emulator: bad webhook URL {:?}: {e}", target.url),
                )
            })?;
            if parsed.scheme() != "http" {
                return Err(Reply::error(
                    400,
                    "github-emulator: webhook URLs must be plain http:// (the receiver runs locally)",
                ));
            }
            let body = json!(target);
            em.store().webhooks.target = Some(target);
            Ok(Reply::json(200, &body))
        }),
        ("GET", []) => {
            let store = em.store();
            let target = store.webhooks.target.as_ref();
            Ok(Reply::json(
                200,
                &json!({ "url": target.map(|t| &t.url), "secret": target.map(|t| &t.secret) }),
            ))
        }
        ("DELETE", []) => {
            em.store().webhooks.target = None;
            Ok(Reply::json(200, &json!({ "url": null, "secret": null })))
        }
        ("GET", ["deliveries"]) => Ok(Reply::json(
            200,
            &json!(em.store().webhooks.deliveries),
        )),
        ("DELETE", ["deliveries"]) => {
            let cleared = std::mem::take(&mut em.store().webhooks.deliveries).len();
            Ok(Reply::json(200, &json!({ "cleared": cleared })))
        }
        ("POST", ["deliveries", id, "redeliver"]) => redeliver(em, id),
        _ => Err(crate::github::no_route(request)),
    };
    result.unwrap_or_else(|reply| reply)
}

fn redeliver(em: &Emulator, id: &str) -> Result<Reply, Reply> {
    let (original, url) = {
        let store = em.store();
        let original = store
            .webhooks
            .deliveries
            .iter()
            .find(|d| d.id == id)
            .cloned()
            .ok_or_else(|| Reply::error(404, &format!("github-emulator: no delivery {id}")))?;
        let url = store.webhooks.target.as_ref().map(|t| t.url.clone());
        (original, url)
    };
    let url = url.ok_or_else(|| {
        Reply::error(
            409,
            "github-emulator: no webhook URL configured (PUT /_emulator/webhooks)",
        )
    })?;
    let again = Delivery {
        url,
        status: None,
        error: None,
        redelivery: true,
        ..original
    };
    Ok(Reply::json(200, &send(em, again)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "GitHub's documented example"
        );
    }
}
