//! Every way the setup callback refuses its state token or its parameters, and replays.
//!
//! For each refusal: the redirect names the reason, nothing is written for the tenant (no
//! organization, repository, job, consumed state or request row), the worker never calls
//! GitHub, and — where the genuine link was left alone — the genuine link still connects
//! afterwards (a refusal spends nothing). Replays, sequential or racing, connect once.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use onecode_edge::auth::state_token;
use serde_json::json;

use crate::harness::auth::{now, state_of};
use crate::harness::checks;
use crate::harness::emulator::Inst;
use crate::harness::http::Outcome;
use crate::harness::store::Footprint;
use crate::harness::{technician, Stack};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        Case::shared("state::missing_is_refused", missing),
        Case::shared("state::garbage_is_refused", garbage),
        Case::shared("state::forged_with_another_key_is_refused", forged),
        Case::shared("state::tampered_is_refused", tampered),
        Case::shared("state::expired_is_refused", expired),
        Case::shared("state::replayed_is_refused", replayed),
        Case::shared("state::racing_replay_connects_once", racing_replay),
        Case::shared(
            "setup::missing_installation_id_is_refused",
            missing_installation_id,
        ),
        Case::shared("setup::bad_setup_action_is_refused", bad_setup_action),
    ]
}

/// A tenant with a genuine, unused setup URL for its own two-repository installation.
struct Prepared {
    tenant: String,
    installation_id: u64,
    /// The setup URL the install page produced.
    setup: String,
    state: String,
}

fn prepare(s: &Stack, tenant: &str, installation_id: u64) -> Prepared {
    let inst = Inst::org(installation_id, &format!("e2e-{tenant}"), 2);
    s.emulator.put_installation(&inst);
    let setup = s.walk_install(&s.connect(tenant), installation_id);
    let state = state_of(&setup);
    Prepared {
        tenant: tenant.to_string(),
        installation_id,
        setup,
        state,
    }
}

impl Prepared {
    fn id(&self) -> String {
        self.installation_id.to_string()
    }

    /// The genuine setup URL with `state` replaced.
    fn with_state(&self, s: &Stack, state: &str) -> String {
        s.setup_url(&[
            ("installation_id", &self.id()),
            ("setup_action", "install"),
            ("state", state),
        ])
    }

    /// The callback at `url` is refused with `reason` and leaves no trace.
    #[track_caller]
    fn refused_without_trace(&self, s: &Stack, url: &str, reason: &str) {
        let callback = s.callback(url);
        callback.assert_refused(reason);
        assert_eq!(
            s.store.footprint(&self.tenant),
            Footprint::default(),
            "nothing may be written for a refused callback ({url})"
        );
        assert_eq!(
            s.emulator.worker_requests(self.installation_id).len(),
            0,
            "a refused callback does not call GitHub ({url})"
        );
    }

    /// The genuine link still connects: the refusals before spent nothing.
    #[track_caller]
    fn genuine_still_connects(&self, s: &Stack) {
        let done = s.callback(&self.setup).done();
        assert_eq!((done.repos, done.added, done.complete), (2, 2, true));
        assert_eq!(s.store.footprint(&self.tenant).consumed_states, 1);
    }
}

fn missing(s: &Stack) {
    let p = prepare(s, "tenant-state-missing", 1300);
    let id = p.id();
    let without = s.setup_url(&[("installation_id", &id), ("setup_action", "install")]);
    p.refused_without_trace(s, &without, "missing_parameters");
    p.refused_without_trace(s, &p.with_state(s, ""), "missing_parameters");
    p.genuine_still_connects(s);
}

fn garbage(s: &Stack) {
    let p = prepare(s, "tenant-state-garbage", 1301);
    let long = format!("v1.{}.AAAA", "A".repeat(600));
    for state in [
        "garbage",
        "v1.",
        "v1..",
        "v2.AAAA.AAAA",
        "v1.!!!.AAAA",
        long.as_str(),
    ] {
        p.refused_without_trace(s, &p.with_state(s, state), "state_invalid");
    }
    p.genuine_still_connects(s);
}

fn forged(s: &Stack) {
    let p = prepare(s, "tenant-state-forged", 1302);
    let (forged, _) = state_token::issue(
        b"not-the-state-secret",
        &p.tenant,
        &technician(&p.tenant),
        [0x5a; 16],
        now(),
    );
    p.refused_without_trace(s, &p.with_state(s, &forged), "state_invalid");
    p.genuine_still_connects(s);
}

fn tampered(s: &Stack) {
    let p = prepare(s, "tenant-state-tampered", 1303);
    let parts: Vec<&str> = p.state.split('.').collect();
    assert_eq!(parts.len(), 3, "v1.<payload>.<mac>: {}", p.state);
    let mut payload = B64.decode(parts[1]).expect("payload");
    // Push the expiry (the last 8 bytes) a day further, keep the MAC.
    let len = payload.len();
    let expiry = i64::from_be_bytes(payload[len - 8..].try_into().unwrap()) + 86_400;
    payload[len - 8..].copy_from_slice(&expiry.to_be_bytes());
    let later = format!("v1.{}.{}", B64.encode(&payload), parts[2]);
    p.refused_without_trace(s, &p.with_state(s, &later), "state_invalid");
    // Another tenant's payload under this token's MAC.
    let (other, _) = state_token::issue(b"whatever", "tenant-someone-else", "tech", [1; 16], now());
    let spliced = format!("v1.{}.{}", other.split('.').nth(1).unwrap(), parts[2]);
    p.refused_without_trace(s, &p.with_state(s, &spliced), "state_invalid");
    // One MAC character changed.
    let mut mac = parts[2].to_string();
    let flipped = if mac.starts_with('A') { "B" } else { "A" };
    mac.replace_range(0..1, flipped);
    let bad_mac = format!("v1.{}.{mac}", parts[1]);
    p.refused_without_trace(s, &p.with_state(s, &bad_mac), "state_invalid");
    p.genuine_still_connects(s);
}

fn expired(s: &Stack) {
    let p = prepare(s, "tenant-state-expired", 1304);
    // Correctly signed, issued 11 minutes ago (10-minute lifetime); never stored in KV.
    let (old, _) = state_token::issue(
        s.state_secret().as_bytes(),
        &p.tenant,
        &technician(&p.tenant),
        [0x11; 16],
        now() - 11 * 60,
    );
    let url = p.with_state(s, &old);
    p.refused_without_trace(s, &url, "state_expired");
    // The browser lands on a readable page telling the technician to start again.
    let location = s.callback(&url).location;
    let page = s.http.get(&format!("{}{location}", s.worker));
    assert_eq!(page.status, 400);
    assert!(
        page.body.contains("The link expired") && page.body.contains("Start again"),
        "{}",
        page.body
    );
    p.genuine_still_connects(s);
}

fn replayed(s: &Stack) {
    let p = prepare(s, "tenant-state-replayed", 1305);
    let first = s.callback(&p.setup).done();
    assert!(first.complete);
    let org_id = first.org_id.clone();
    checks::jobs_received(s, &org_id, 2);
    let after_first = s.store.footprint(&p.tenant);
    assert_eq!(
        after_first,
        Footprint {
            orgs: 1,
            repos: 2,
            profiles: 2,
            jobs: 2,
            consumed_states: 1,
            installation_requests: 0,
            confirmations: 1,
            pending: 0,
        }
    );
    let calls_after_first = s.emulator.worker_requests(p.installation_id).len();

    s.callback(&p.setup).assert_refused("state_used");
    assert_eq!(
        s.store.footprint(&p.tenant),
        after_first,
        "a replay changes nothing"
    );
    assert_eq!(
        s.emulator.worker_requests(p.installation_id).len(),
        calls_after_first,
        "a replay does not call GitHub"
    );
    assert_eq!(s.store.jobs(&org_id).len(), 2, "no job queued twice");
}

fn racing_replay(s: &Stack) {
    let p = prepare(s, "tenant-state-race", 1306);
    // Force the race instead of hoping for it: the callback that spends the state goes on to
    // ask GitHub about the installation, and the emulator holds that request at a gate until
    // the test opens it, so that callback cannot be answered before the test lets it. The other
    // callback must be answered first, while the gate is still closed: were the two callbacks
    // made one after the other, the first would be held and the second never start, and the
    // wait below would time out.
    let gate = "state-racing-replay";
    s.emulator.add_faults(json!([{
        "method": "GET", "path_prefix": format!("/app/installations/{}", p.installation_id),
        "gate": gate, "times": 1
    }]));
    let (first, held, outcomes) = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        for racer in 0..2 {
            let (tx, url) = (tx.clone(), &p.setup);
            scope.spawn(move || {
                let _ = tx.send((racer, s.callback(url).outcome()));
            });
        }
        drop(tx);
        let first = rx.recv_timeout(Duration::from_secs(60));
        // The one that spent the state is still on its way: it reaches the gate and waits.
        let deadline = Instant::now() + Duration::from_secs(60);
        let held = loop {
            let state = s.emulator.gates()[gate].clone();
            if state["waiting"] == 1 || Instant::now() >= deadline {
                break state;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        s.emulator.open_gate(gate);
        let first = first.expect("one racing callback is answered while the gate is closed");
        let second = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the held callback finishes once released");
        (
            first.1.clone(),
            held,
            BTreeMap::from([first, second])
                .into_values()
                .collect::<Vec<_>>(),
        )
    });
    assert_eq!(
        first,
        Outcome::Refused("state_used".into()),
        "the callback answered while the other one was in flight is told the link was used"
    );
    assert_eq!(
        (&held["arrived"], &held["waiting"], &held["open"]),
        (&json!(1), &json!(1), &json!(false)),
        "the other callback was held at GitHub after the first was answered: {held}"
    );
    assert_eq!(s.emulator.gates()[gate]["timed_out"], 0);
    let done: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Done(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 1, "exactly one callback connects: {outcomes:?}");
    assert!(
        outcomes.contains(&Outcome::Refused("state_used".into())),
        "the other is told the link was used: {outcomes:?}"
    );
    checks::jobs_received(s, &done[0].org_id, 2);
    assert_eq!(
        s.store.footprint(&p.tenant),
        Footprint {
            orgs: 1,
            repos: 2,
            profiles: 2,
            jobs: 2,
            consumed_states: 1,
            installation_requests: 0,
            confirmations: 1,
            pending: 0,
        }
    );
}

fn missing_installation_id(s: &Stack) {
    let p = prepare(s, "tenant-setup-no-id", 1307);
    for id in [None, Some(""), Some("abc"), Some("0"), Some("-5")] {
        let mut params = vec![("setup_action", "install"), ("state", p.state.as_str())];
        if let Some(id) = id {
            params.push(("installation_id", id));
        }
        p.refused_without_trace(s, &s.setup_url(&params), "missing_parameters");
    }
    p.genuine_still_connects(s);
}

fn bad_setup_action(s: &Stack) {
    let p = prepare(s, "tenant-setup-bad-action", 1308);
    let id = p.id();
    for action in [None, Some(""), Some("delete"), Some("INSTALL")] {
        let mut params = vec![
            ("installation_id", id.as_str()),
            ("state", p.state.as_str()),
        ];
        if let Some(action) = action {
            params.push(("setup_action", action));
        }
        p.refused_without_trace(s, &s.setup_url(&params), "missing_parameters");
    }
    p.genuine_still_connects(s);
}
