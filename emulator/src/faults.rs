//! Fault injection rules (`PUT /_emulator/faults`).
//!
//! A rule matches a request to any emulated service (GitHub, GitLab, Microsoft, Azure DevOps,
//! git smart HTTP, the sink) by method (optional, case-insensitive), path prefix and query
//! substring (optional). The first matching rule that still has uses left is consumed once; it
//! may delay the request and/or replace the normal response with its own status, headers and
//! body. A rule without `status` delays and then serves normally, with its headers added to the
//! normal response. `times` absent or null means the rule never runs out.
//!
//! `truncate_after_bytes: N` cuts the body short: the response (the normal one, or the rule's
//! own) announces its full length in `Content-Length`, sends only its first `N` bytes and then
//! the emulator closes the connection, as a pack cut off mid-stream would look. A body of
//! unknown length (a git pack streamed from `git upload-pack`) is first spooled to a temporary
//! file, never held in memory, to learn its length. Example:
//! `{"path_prefix":"/acme/repo.git/git-upload-pack","truncate_after_bytes":5000,"times":1}`.
//!
//! `gate: "name"` holds the matching request (before its delay and answer) until the gate named
//! so opens: when `barrier: N` requests wait at it (the N-th opens it for all), or when a test
//! opens it (`POST /_emulator/gates/{name}`). A gate never opens by itself; a request that
//! waited [`GATE_TIMEOUT`] goes on anyway and is counted in the gate's `timed_out`. Tests use
//! gates to force two requests to overlap, and `GET /_emulator/gates` (each gate's `arrived`,
//! `waiting`, `open`, `timed_out`) to see where a held request is. Example: two syncs whose
//! first page requests must both have arrived before either is answered:
//! `{"path_prefix":"/installation/repositories","installation_id":42,"gate":"race","barrier":2,"times":2}`.
//!
//! `installation_id: N` matches only requests the emulator attributes to GitHub installation
//! `N` (its token, or a path naming it), so that a rule of one test leaves others alone.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{Reply, Request};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_prefix: String,
    #[serde(default)]
    pub query_contains: Option<String>,
    /// Status to answer with; `None` only delays and then serves normally.
    #[serde(default)]
    pub status: Option<u16>,
    /// Remaining uses; `None` means unlimited.
    #[serde(default)]
    pub times: Option<u32>,
    /// Extra response headers; values may be strings or numbers.
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    /// Response body: JSON values are sent as JSON, a JSON string is sent verbatim as text.
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub delay_ms: u64,
    /// Send only this many bytes of the body (with the full `Content-Length`), then close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate_after_bytes: Option<u64>,
    /// Only requests of this GitHub installation (as the request log attributes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
    /// Hold the request at this gate until it opens (see the module's documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// The gate opens when this many requests wait at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barrier: Option<u32>,
}

impl FaultRule {
    fn matches(&self, request: &Request, installation_id: Option<u64>) -> bool {
        self.installation_id
            .is_none_or(|id| installation_id == Some(id))
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&request.method))
            && request.path.starts_with(&self.path_prefix)
            && self
                .query_contains
                .as_ref()
                .is_none_or(|q| request.query.contains(q.as_str()))
    }

    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }

    /// Applies the rule's headers and truncation to the normal response.
    pub fn apply(&self, reply: &mut Reply) {
        self.apply_headers(reply);
        reply.truncate_after = self.truncate_after_bytes;
    }

    /// Applies the rule's headers on top of `reply`, replacing same-named ones.
    fn apply_headers(&self, reply: &mut Reply) {
        for (name, value) in &self.headers {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            reply.set_header(name, value);
        }
    }

    /// The injected response, or `None` for a delay-only rule.
    pub fn reply(&self) -> Option<Reply> {
        let status = self.status?;
        let mut reply = match &self.body {
            Some(Value::String(text)) => Reply::text(status, text),
            Some(value) => Reply::json(status, value),
            None => Reply::json(
                status,
                &json!({
                    "message": format!("github-emulator: injected fault {status}"),
                    "documentation_url": "https://docs.github.com/rest",
                }),
            ),
        };
        self.apply(&mut reply);
        Some(reply)
    }
}

/// The active rule list.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    pub fn replace(&mut self, rules: Vec<FaultRule>) {
        self.rules = rules;
    }

    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// Adds rules after the present ones.
    pub fn append(&mut self, rules: Vec<FaultRule>) {
        self.rules.extend(rules);
    }

    /// Consumes one use of the first matching rule with uses left and returns a copy of it.
    /// `installation_id`: the GitHub installation the request is attributed to, if any.
    pub fn take(&mut self, request: &Request, installation_id: Option<u64>) -> Option<FaultRule> {
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.times != Some(0) && r.matches(request, installation_id))?;
        if let Some(times) = rule.times.as_mut() {
            *times -= 1;
        }
        Some(rule.clone())
    }
}

/// How long a request waits at a gate that does not open.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(60);

/// One gate's counts, as `GET /_emulator/gates` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GateState {
    /// Requests that reached the gate.
    pub arrived: u32,
    /// Requests held at it now.
    pub waiting: u32,
    pub open: bool,
    /// Requests that stopped waiting after [`GATE_TIMEOUT`].
    pub timed_out: u32,
}

/// The named gates fault rules hold requests at.
#[derive(Debug, Default)]
pub struct Gates {
    gates: Mutex<BTreeMap<String, GateState>>,
    changed: Condvar,
}

impl Gates {
    /// Holds the caller at gate `name` until it opens (`barrier`: it opens when that many
    /// wait) or `timeout` passes.
    pub fn wait(&self, name: &str, barrier: Option<u32>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let gate = gates.entry(name.to_string()).or_default();
            gate.arrived += 1;
            gate.waiting += 1;
            if barrier.is_some_and(|n| gate.waiting >= n) {
                gate.open = true;
            }
        }
        self.changed.notify_all();
        loop {
            let gate = gates.get_mut(name).expect("a gate is never removed");
            if gate.open {
                gate.waiting -= 1;
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                gate.waiting -= 1;
                gate.timed_out += 1;
                break;
            }
            gates = self
                .changed
                .wait_timeout(gates, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(gates);
        self.changed.notify_all();
    }

    /// Opens gate `name` (created open if nobody reached it yet): every request held there goes
    /// on, and later ones pass.
    pub fn open(&self, name: &str) -> GateState {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        let gate = gates.entry(name.to_string()).or_default();
        gate.open = true;
        let state = gate.clone();
        drop(gates);
        self.changed.notify_all();
        state
    }

    pub fn states(&self) -> BTreeMap<String, GateState> {
        self.gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: Value) -> Faults {
        let mut faults = Faults::default();
        faults.replace(serde_json::from_value(json).unwrap());
        faults
    }

    fn get(target: &str) -> Request {
        Request::new("GET", target)
    }

    #[test]
    fn limited_rule_is_consumed_then_requests_pass() {
        let mut faults = rules(json!([{
            "method": "GET", "path_prefix": "/installation/repositories",
            "query_contains": "page=3", "status": 502, "times": 2,
            "body": {"message": "Server Error"}
        }]));
        let page3 = get("/installation/repositories?per_page=100&page=3");
        for _ in 0..2 {
            let reply = faults.take(&page3, None).unwrap().reply().unwrap();
            assert_eq!(reply.status, 502);
            assert_eq!(reply.body, br#"{"message":"Server Error"}"#);
        }
        assert!(faults.take(&page3, None).is_none());
        assert_eq!(faults.rules()[0].times, Some(0));
    }

    #[test]
    fn method_path_and_query_must_all_match() {
        let mut faults = rules(json!([{
            "method": "get", "path_prefix": "/installation/", "query_contains": "page=3", "status": 500
        }]));
        assert!(faults
            .take(
                &Request::new("POST", "/installation/repositories?page=3"),
                None
            )
            .is_none());
        assert!(faults
            .take(&get("/app/installations/1?page=3"), None)
            .is_none());
        assert!(faults
            .take(&get("/installation/repositories?page=2"), None)
            .is_none());
        assert!(faults
            .take(&get("/installation/repositories?page=3"), None)
            .is_some());
        // No `times`: unlimited.
        assert!(faults
            .take(&get("/installation/repositories?page=3"), None)
            .is_some());
    }

    #[test]
    fn first_matching_rule_with_uses_left_wins() {
        let mut faults = rules(json!([
            {"path_prefix": "/app/", "status": 403, "times": 1,
             "headers": {"retry-after": "1"}},
            {"path_prefix": "/app/", "status": 429,
             "headers": {"x-ratelimit-remaining": 0, "x-ratelimit-reset": 1700000000}}
        ]));
        let request = Request::new("POST", "/app/installations/1/access_tokens");
        let first = faults.take(&request, None).unwrap().reply().unwrap();
        assert_eq!(first.status, 403);
        assert_eq!(first.header("retry-after"), Some("1"));
        let second = faults.take(&request, None).unwrap().reply().unwrap();
        assert_eq!(second.status, 429);
        assert_eq!(second.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(second.header("x-ratelimit-reset"), Some("1700000000"));
    }

    #[test]
    fn delay_only_rule_has_no_reply() {
        let mut faults = rules(json!([{"path_prefix": "/", "delay_ms": 250, "times": 1}]));
        let rule = faults.take(&get("/orgs/acme"), None).unwrap();
        assert_eq!(rule.delay(), Duration::from_millis(250));
        assert!(rule.reply().is_none());
        assert!(faults.take(&get("/orgs/acme"), None).is_none());
    }

    #[test]
    fn string_body_is_sent_verbatim() {
        let rule: FaultRule = serde_json::from_value(json!({
            "path_prefix": "/", "status": 502, "body": "<html>Bad gateway</html>",
            "headers": {"content-type": "text/html"}
        }))
        .unwrap();
        let reply = rule.reply().unwrap();
        assert_eq!(reply.body, b"<html>Bad gateway</html>");
        assert_eq!(reply.header("content-type"), Some("text/html"));
    }

    #[test]
    fn truncation_applies_to_normal_and_injected_answers() {
        let rule: FaultRule = serde_json::from_value(json!({
            "path_prefix": "/acme/repo.git/", "truncate_after_bytes": 10
        }))
        .unwrap();
        assert!(rule.reply().is_none(), "serves normally");
        let mut normal = Reply::text(200, "a long enough body");
        rule.apply(&mut normal);
        assert_eq!(normal.truncate_after, Some(10));
        let injected: FaultRule = serde_json::from_value(json!({
            "path_prefix": "/", "status": 500, "body": "oops", "truncate_after_bytes": 2
        }))
        .unwrap();
        assert_eq!(injected.reply().unwrap().truncate_after, Some(2));
        let listed = serde_json::to_value(&rule).unwrap();
        assert_eq!(listed["truncate_after_bytes"], 10);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_value::<FaultRule>(json!({"path": "/x"})).is_err());
    }

    #[test]
    fn installation_rules_match_only_their_installation() {
        let mut faults = rules(json!([
            {"path_prefix": "/installation/repositories", "installation_id": 7, "status": 500}
        ]));
        let page = get("/installation/repositories?page=1");
        assert!(faults.take(&page, None).is_none());
        assert!(faults.take(&page, Some(8)).is_none());
        assert_eq!(faults.take(&page, Some(7)).unwrap().status, Some(500));
    }

    #[test]
    fn a_barrier_gate_holds_each_request_until_the_last_arrives() {
        let gates = Gates::default();
        let order = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for i in 0..3 {
                let (gates, order) = (&gates, &order);
                scope.spawn(move || {
                    order.lock().unwrap().push(format!("arrived {i}"));
                    gates.wait("race", Some(3), GATE_TIMEOUT);
                    order.lock().unwrap().push(format!("passed {i}"));
                });
            }
        });
        let order = order.into_inner().unwrap();
        assert!(
            order[..3].iter().all(|e| e.starts_with("arrived")),
            "{order:?}"
        );
        assert_eq!(
            gates.states()["race"],
            GateState {
                arrived: 3,
                waiting: 0,
                open: true,
                timed_out: 0
            }
        );
    }

    #[test]
    fn a_gate_opened_by_the_test_releases_its_request() {
        let gates = Gates::default();
        std::thread::scope(|scope| {
            let held = scope.spawn(|| gates.wait("hold", None, GATE_TIMEOUT));
            while gates.states().get("hold").is_none_or(|g| g.waiting == 0) {
                std::thread::yield_now();
            }
            assert!(!held.is_finished());
            assert_eq!(gates.open("hold").waiting, 1);
            held.join().unwrap();
        });
        assert_eq!(gates.states()["hold"].timed_out, 0);
        // Open: later requests pass at once.
        gates.wait("hold", None, GATE_TIMEOUT);
        assert_eq!(gates.states()["hold"].arrived, 2);
    }

    #[test]
    fn a_gate_that_never_opens_lets_go_after_the_timeout() {
        let gates = Gates::default();
        gates.wait("never", Some(2), Duration::from_millis(1));
        assert_eq!(
            gates.states()["never"],
            GateState {
                arrived: 1,
                waiting: 0,
                open: false,
                timed_out: 1
            }
        );
    }
}
