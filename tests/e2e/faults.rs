//! GitHub failing in the middle of an enumeration (page 2 of 3): server errors and a short
//! secondary rate limit are retried inside the confirmation that links the org; a long rate limit hands the rest to
//! the sync queue, which resumes after the `retry-after`. Either way every repository ends up
//! recorded exactly once with one job each.
//!
//! Fault rules are global to the emulator, so these tests run alone (`Kind::Exclusive`); a
//! guard clears the rules even when a test fails.

use std::time::{Duration, Instant};

use serde_json::json;

use onecode_edge::auth::state_token;

use crate::harness::auth::{now, state_of};
use crate::harness::checks::{self, describe};
use crate::harness::emulator::Faults;
use crate::harness::emulator::Inst;
use crate::harness::store::Footprint;
use crate::harness::Stack;
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        Case::exclusive("faults::server_errors_on_page_2_are_retried", server_errors),
        Case::exclusive(
            "faults::secondary_rate_limit_on_page_2_is_waited_out",
            secondary_rate_limit,
        ),
        Case::exclusive(
            "faults::long_rate_limit_continues_in_the_background",
            long_rate_limit,
        ),
        Case::exclusive(
            "faults::github_down_during_the_callback_writes_nothing",
            github_down,
        ),
        Case::exclusive(
            "faults::retry_on_the_last_page_the_callback_can_afford",
            retry_at_the_budget_edge,
        ),
    ]
}

fn page_rule(page: u32, status: u16, times: u32, headers: serde_json::Value) -> serde_json::Value {
    json!([{
        "method": "GET",
        "path_prefix": "/installation/repositories",
        "query_contains": format!("&page={page}"),
        "status": status,
        "times": times,
        "headers": headers,
    }])
}

/// Everything recorded once, all jobs received.
#[track_caller]
fn all_recorded(s: &Stack, tenant: &str, inst: &Inst, org_id: &str) {
    checks::org_recorded(s, tenant, inst, org_id);
    assert_eq!(
        checks::repositories_recorded(s, org_id, inst.id),
        inst.repos as usize
    );
    checks::jobs_received(s, org_id, inst.repos as usize);
}

fn statuses_of_page(calls: &[crate::harness::emulator::Logged], page: u32) -> Vec<u16> {
    calls
        .iter()
        .filter(|c| c.is_page() && c.page() == page)
        .map(|c| c.status)
        .collect()
}

fn server_errors(s: &Stack) {
    let tenant = "tenant-fault-502";
    let inst = Inst::org(1400, "e2e-fault-502", 250);
    s.emulator.put_installation(&inst);
    let _faults = Faults::install(&s.emulator, page_rule(2, 502, 2, json!({})));
    let callback = s.connect_and_install(tenant, inst.id);
    let done = callback.done();
    assert_eq!(
        (done.repos, done.added, done.complete),
        (250, 250, true),
        "Location: {}",
        callback.location
    );
    let invocations = checks::after_callback(s, inst.id);
    assert_eq!(invocations.len(), 1, "retried inline");
    assert_eq!(statuses_of_page(&invocations[0], 2), [502, 502, 200]);
    assert_eq!(statuses_of_page(&invocations[0], 3), [200]);
    all_recorded(s, tenant, &inst, &done.org_id);
}

fn secondary_rate_limit(s: &Stack) {
    let tenant = "tenant-fault-secondary";
    let inst = Inst::org(1401, "e2e-fault-secondary", 250);
    s.emulator.put_installation(&inst);
    let _faults = Faults::install(
        &s.emulator,
        json!([{
            "method": "GET",
            "path_prefix": "/installation/repositories",
            "query_contains": "&page=2",
            "status": 403,
            "times": 1,
            "headers": { "retry-after": "1" },
            "body": {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
            }
        }]),
    );
    let t0 = Instant::now();
    let callback = s.connect_and_install(tenant, inst.id);
    let elapsed = t0.elapsed();
    let done = callback.done();
    assert_eq!(
        (done.repos, done.added, done.complete),
        (250, 250, true),
        "Location: {}",
        callback.location
    );
    assert!(
        elapsed >= Duration::from_secs(1),
        "retry-after: 1 is honoured ({elapsed:?})"
    );
    let invocations = checks::after_callback(s, inst.id);
    assert_eq!(invocations.len(), 1, "waited out inline");
    assert_eq!(statuses_of_page(&invocations[0], 2), [403, 200]);
    all_recorded(s, tenant, &inst, &done.org_id);
}

fn long_rate_limit(s: &Stack) {
    let tenant = "tenant-fault-long";
    let inst = Inst::org(1402, "e2e-fault-long", 250);
    s.emulator.put_installation(&inst);
    let _faults = Faults::install(
        &s.emulator,
        page_rule(2, 403, 1, json!({ "retry-after": "5" })),
    );
    let callback = s.connect_and_install(tenant, inst.id);
    let redirected = Instant::now();
    let done = callback.done();
    assert_eq!(
        (done.repos, done.added, done.complete),
        (100, 100, false),
        "page 1 recorded, the rest in the background: {}",
        callback.location
    );
    let run = checks::run_completes(s, &done.org_id, Duration::from_secs(120));
    let waited = redirected.elapsed();
    assert_eq!((run.found, run.added, run.pages), (250, 250, 3), "{run:?}");
    assert!(
        waited >= Duration::from_secs(4),
        "the continuation waited for retry-after: 5 (finished {waited:?} after the redirect)"
    );
    all_recorded(s, tenant, &inst, &done.org_id);

    let invocations = checks::after_callback(s, inst.id);
    let shapes: Vec<Vec<String>> = invocations.iter().map(|c| describe(c)).collect();
    assert_eq!(
        shapes,
        [
            vec![
                "GET /app/installations/1402 -> 200",
                "POST /app/installations/1402/access_tokens -> 201",
                "GET /orgs/e2e-fault-long -> 200",
                "GET /installation/repositories?per_page=100 -> 200",
                "GET /installation/repositories?per_page=100&page=2 -> 403",
            ],
            vec![
                "POST /app/installations/1402/access_tokens -> 201",
                "GET /installation/repositories?per_page=100&page=2 -> 200",
                "GET /installation/repositories?per_page=100&page=3 -> 200",
            ],
        ]
    );
}

/// 1,100 repositories are 11 pages: within what the confirmation's budget affords after its
/// own calls (45 subrequests: 6 of its own, 3 per page, 3 kept back), so page 11 is the last
/// page of the run and fetched by the confirmation. One 502 on it
/// costs one more subrequest; the connection must still end as connected (the pages are all
/// written and the jobs sent), either complete or continued in the background.
fn retry_at_the_budget_edge(s: &Stack) {
    let tenant = "tenant-fault-edge";
    let inst = Inst::org(1403, "e2e-fault-edge", 1_100);
    s.emulator.put_installation(&inst);
    let _faults = Faults::install(&s.emulator, page_rule(11, 502, 1, json!({})));
    let callback = s.connect_and_install(tenant, inst.id);
    let calls = checks::after_callback(s, inst.id);
    assert_eq!(
        statuses_of_page(&calls[0], 11),
        [502, 200],
        "the confirmation fetched page 11 twice: {:?}",
        describe(&calls[0])
    );
    let done = callback.done();
    assert_eq!(done.added, done.repos, "Location: {}", callback.location);
    let run = checks::run_completes(s, &done.org_id, Duration::from_secs(120));
    assert_eq!((run.found, run.added), (1_100, 1_100), "{run:?}");
    all_recorded(s, tenant, &inst, &done.org_id);
}

/// GitHub answers 502 to every attempt at `GET /app/installations/{id}`: the callback gives up
/// after its retries with `github_unavailable` and writes nothing but its spent state (a
/// refused link is used up); a new connect works once GitHub is back.
fn github_down(s: &Stack) {
    let tenant = "tenant-fault-down";
    let inst = Inst::org(1404, "e2e-fault-down", 3);
    s.emulator.put_installation(&inst);
    let setup = s.walk_install(&s.connect(tenant), inst.id);
    let claims = state_token::verify(s.state_secret().as_bytes(), &state_of(&setup), now())
        .expect("valid state");
    {
        let _faults = Faults::install(
            &s.emulator,
            json!([{
                "path_prefix": "/app/installations/1404",
                "status": 502,
            }]),
        );
        s.callback(&setup).assert_refused("github_unavailable");
        assert_eq!(
            s.store.footprint(tenant),
            Footprint {
                consumed_states: 1,
                ..Footprint::default()
            }
        );
        assert!(!s.store.kv_has(&claims.kv_key()), "the state is spent");
        let calls = describe(&checks::invocations(s, inst.id)[0]);
        assert!(
            calls.len() > 1
                && calls
                    .iter()
                    .all(|c| c == "GET /app/installations/1404 -> 502"),
            "retried, then gave up, and nothing else: {calls:?}"
        );
    }
    s.callback(&setup).assert_refused("state_used");
    let done = s.connect_and_install(tenant, inst.id).done();
    assert_eq!((done.repos, done.added, done.complete), (3, 3, true));
    all_recorded(s, tenant, &inst, &done.org_id);
}
