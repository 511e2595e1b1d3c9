//! The fault matrix (README, "Fault matrix"): each outbound dependency failing, one test per
//! cell, each asserting the outcome (retried, deferred through the queue, or failed clearly)
//! and that nothing was half-written.
//!
//! - GitHub failing in the middle of an enumeration (page 2 of 3): server errors, a short
//!   secondary rate limit, a 429, a timeout (an answer past the 10 s per attempt) and a body
//!   cut off are retried inside the confirmation that links the org; a long rate limit hands
//!   the rest to the sync queue, which resumes after the `retry-after`. Either way every
//!   repository ends up recorded exactly once with one job each. GitHub down at the callback
//!   writes nothing; a malformed listing fails a sync with a clear 502 and removes nothing.
//! - git over HTTP rate limited or too slow: the attempt fails with its reason and the queue
//!   retries the job to an `ok` snapshot (5xx and cut-off packs: `backups.rs`).
//! - A GitLab group's and an Azure DevOps organization's listing during a sync: 5xx, 429, a
//!   body cut off and a timeout retried inline; a malformed page a clear 502.
//! - The worker's own bindings failing (`harness::binding_faults`: KV at connect and callback,
//!   D1 at the confirmation, R2 writing and reading a bundle, the queue at "back up now"; D1 at
//!   a webhook and the queue at a push are in `webhooks.rs`).
//!
//! Fault rules (the emulator's and the worker's) are global, so these tests run alone
//! (`Kind::Exclusive`); guards clear them even when a test fails.

use std::time::{Duration, Instant};

use serde_json::json;

use onecode_edge::auth::state_token;

use crate::backups;
use crate::harness::auth::{now, state_of};
use crate::harness::binding_faults::BindingFaults;
use crate::harness::checks::{self, describe};
use crate::harness::emulator::Faults;
use crate::harness::emulator::Inst;
use crate::harness::http::Done;
use crate::harness::portal::{assert_problem, Portal};
use crate::harness::store::{Footprint, JobRow};
use crate::harness::{poll_until, technician, Stack, GITLAB_INSTANCE};
use crate::oauth;
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
        Case::exclusive(
            "faults::rate_limit_429_on_page_2_is_waited_out",
            rate_limit_429,
        ),
        Case::exclusive("faults::timeout_on_page_2_is_retried", timeout),
        Case::exclusive("faults::truncated_page_2_is_retried", truncated_page),
        Case::exclusive(
            "faults::malformed_listing_on_sync_is_a_clear_502",
            malformed_listing,
        ),
        Case::exclusive(
            "faults::git_rate_limit_and_timeout_are_retried_through_the_queue",
            git_rate_limit_and_timeout,
        ),
        Case::exclusive(
            "faults::gitlab_and_azure_devops_listing_faults_on_sync",
            gitlab_and_azure_listing,
        ),
        Case::exclusive(
            "faults::kv_failing_on_connect_start_is_a_clear_500",
            kv_put_fails,
        ),
        Case::exclusive(
            "faults::kv_failing_at_the_callback_connects_nothing_until_retried",
            kv_get_fails,
        ),
        Case::exclusive(
            "faults::d1_failing_at_the_confirmation_links_nothing_until_retried",
            d1_fails_at_confirmation,
        ),
        Case::exclusive(
            "faults::r2_failing_fails_the_attempt_and_the_queue_retries_it",
            r2_put_fails,
        ),
        Case::exclusive(
            "faults::r2_failing_on_a_bundle_download_is_a_clear_500",
            r2_get_fails,
        ),
        Case::exclusive(
            "faults::queue_failing_on_backup_now_leaves_the_job_to_the_next_request",
            queue_fails_on_backup_now,
        ),
        Case::exclusive(
            "faults::queue_failing_during_a_connect_leaves_the_jobs_to_the_dispatcher",
            queue_fails_during_a_connect,
        ),
    ]
}

/// A fault rule for page `page` of the installation's repository listing, `times` times:
/// `fault` holds what the emulator does instead (`status`, `headers`, `body`, `delay_ms`,
/// `truncate_after_bytes`; see the emulator's `faults.rs`).
fn page_rule(page: u32, times: u32, fault: serde_json::Value) -> serde_json::Value {
    let mut rule = json!({
        "method": "GET",
        "path_prefix": "/installation/repositories",
        "query_contains": format!("&page={page}"),
        "times": times,
    });
    if let (Some(rule), Some(fault)) = (rule.as_object_mut(), fault.as_object()) {
        rule.extend(fault.clone());
    }
    json!([rule])
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

/// Connects `inst` for `tenant` through the faults installed and asserts that the connect
/// completed with every repository added: where it ended, and how long its requests took.
#[track_caller]
fn connect_completely(s: &Stack, tenant: &str, inst: &Inst) -> (Done, Duration) {
    let t0 = Instant::now();
    let callback = s.connect_and_install(tenant, inst.id);
    let elapsed = t0.elapsed();
    (callback.done_with_all(inst.repos), elapsed)
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
    let _faults = Faults::install(&s.emulator, page_rule(2, 2, json!({ "status": 502 })));
    let (done, _) = connect_completely(s, tenant, &inst);
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
        page_rule(
            2,
            1,
            json!({
                "status": 403,
                "headers": { "retry-after": "1" },
                "body": {
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                }
            }),
        ),
    );
    let (done, elapsed) = connect_completely(s, tenant, &inst);
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
        page_rule(
            2,
            1,
            json!({ "status": 403, "headers": { "retry-after": "5" } }),
        ),
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
    let _faults = Faults::install(&s.emulator, page_rule(11, 1, json!({ "status": 502 })));
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

/// One page of the listing answers 429 with `retry-after: 1`: waited out inline.
fn rate_limit_429(s: &Stack) {
    let tenant = "tenant-fault-429";
    let inst = Inst::org(1410, "e2e-fault-429", 250);
    s.emulator.put_installation(&inst);
    let _faults = Faults::install(
        &s.emulator,
        page_rule(
            2,
            1,
            json!({ "status": 429, "headers": { "retry-after": "1" } }),
        ),
    );
    let (done, _) = connect_completely(s, tenant, &inst);
    let invocations = checks::after_callback(s, inst.id);
    assert_eq!(invocations.len(), 1, "waited out inline");
    assert_eq!(statuses_of_page(&invocations[0], 2), [429, 200]);
    all_recorded(s, tenant, &inst, &done.org_id);
}

/// Page 2 answers after 11 s, past the gateway's 10 s per attempt: that attempt is given up
/// and the page fetched again.
fn timeout(s: &Stack) {
    let tenant = "tenant-fault-timeout";
    let inst = Inst::org(1411, "e2e-fault-timeout", 250);
    s.emulator.put_installation(&inst);
    let _faults = Faults::install(&s.emulator, page_rule(2, 1, json!({ "delay_ms": 11_000 })));
    let (done, elapsed) = connect_completely(s, tenant, &inst);
    assert!(elapsed >= Duration::from_secs(10), "{elapsed:?}");
    // The abandoned attempt is logged when the emulator answers it, a second after it was
    // given up on.
    let invocations = poll_until(
        Duration::from_secs(30),
        "both attempts at page 2 in the emulator's log",
        || {
            let invocations = checks::after_callback(s, inst.id);
            match statuses_of_page(&invocations[0], 2).len() {
                2 => Ok(invocations),
                n => Err(format!("{n}: {:?}", describe(&invocations[0]))),
            }
        },
    );
    assert_eq!(invocations.len(), 1, "retried inline");
    all_recorded(s, tenant, &inst, &done.org_id);
}

/// Page 2's body is cut off after 100 bytes (its full `Content-Length` announced, then the
/// connection closed): a failed attempt, retried like a lost connection.
fn truncated_page(s: &Stack) {
    let tenant = "tenant-fault-truncated";
    let inst = Inst::org(1412, "e2e-fault-truncated", 250);
    s.emulator.put_installation(&inst);
    let _faults = Faults::install(
        &s.emulator,
        page_rule(2, 1, json!({ "truncate_after_bytes": 100 })),
    );
    let (done, _) = connect_completely(s, tenant, &inst);
    let invocations = checks::after_callback(s, inst.id);
    assert_eq!(invocations.len(), 1, "retried inline");
    assert_eq!(
        statuses_of_page(&invocations[0], 2),
        [200, 200],
        "the cut-off page, then the page again"
    );
    all_recorded(s, tenant, &inst, &done.org_id);
}

/// A sync whose first page is not JSON: `502 upstream_unavailable` naming GitHub, and nothing
/// changed (no repository marked removed); the next sync finds everything again.
fn malformed_listing(s: &Stack) {
    let tenant = "tenant-fault-malformed";
    let inst = Inst::org(1413, "e2e-fault-malformed", 3);
    s.emulator.put_installation(&inst);
    let done = s.connect_and_install(tenant, inst.id).done();
    let api = Portal::new(s, tenant);
    let sync = format!("/v1/orgs/{}/sync", done.org_id);
    {
        let _faults = Faults::install(
            &s.emulator,
            json!([{
                "method": "GET",
                "path_prefix": "/installation/repositories",
                "installation_id": inst.id,
                "status": 200,
                "headers": { "content-type": "application/json" },
                "body": "{\"total_count\": 3, \"repositories\": [{\"id\": ",
                "times": 1,
            }]),
        );
        let resp = api.request("POST", &sync, None);
        let problem = assert_problem(&resp, 502, "upstream_unavailable", "sync");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with("GitHub: "), "{detail}");
    }
    let active = |s: &Stack| {
        s.store
            .repos(&done.org_id)
            .iter()
            .filter(|r| r.status == "active")
            .count()
    };
    assert_eq!(active(s), 3, "nothing removed by the failed sync");
    let again = api.ok("POST", &sync, None);
    assert_eq!(
        (&again["found"], &again["added"], &again["removed"]),
        (&json!(3), &json!(0), &json!(0)),
        "{again}"
    );
    assert_eq!(active(s), 3);
}

/// git over HTTP: the ref advertisement answers 429 once, then the pack answers after 11 s
/// (past the 10 s per attempt) once: each fails its attempt (a `failed` snapshot with the
/// reason) and the queue retries the job to an `ok` one.
fn git_rate_limit_and_timeout(s: &Stack) {
    let tenant = "tenant-fault-git";
    let inst = Inst::org(1414, "e2e-fault-git", 1);
    s.emulator.put_installation(&inst);
    let key = with_history(s, &inst);
    let done = s.connect_and_install(tenant, inst.id).done();
    let org = done.org_id.as_str();
    let api = Portal::new(s, tenant);
    let repo = backups::text(&backups::org_repos(&api, org).remove(0), "id").to_string();
    assert_eq!(backups::settled(&api, org, &repo, 1)["status"], "ok");
    let path = backups::git_path(s, &repo);
    backups::admin(s, &key, "commits", json!({"count": 1}));
    let (limited, _) = backups::fault_round(
        s,
        &api,
        org,
        &repo,
        json!([{
            "method": "GET",
            "path_prefix": format!("{path}/info/refs"),
            "status": 429,
            "headers": { "retry-after": "1" },
            "times": 1,
        }]),
        false,
    );
    let reason = limited["error"].as_str().unwrap_or_default();
    assert!(reason.contains("429"), "{limited}");
    backups::admin(s, &key, "commits", json!({"count": 1}));
    let (slow, _) = backups::fault_round(
        s,
        &api,
        org,
        &repo,
        json!([{
            "method": "POST",
            "path_prefix": format!("{path}/git-upload-pack"),
            "delay_ms": 11_000,
            "times": 1,
        }]),
        false,
    );
    let reason = slow["error"].as_str().unwrap_or_default();
    assert!(reason.contains("did not answer in time"), "{slow}");
}

/// KV refuses the state token's `put`: `POST /v1/connect/github` is a 500 problem, and
/// nothing is written; the next connect works.
fn kv_put_fails(s: &Stack) {
    let tenant = "tenant-fault-kv-put";
    let inst = Inst::org(1415, "e2e-fault-kv-put", 2);
    s.emulator.put_installation(&inst);
    let kv_before = s.store.kv_count();
    {
        let faults = BindingFaults::arm(s, json!([{ "binding": "kv", "op": "put", "times": 1 }]));
        let jwt = s.portal_jwt(tenant, &technician(tenant));
        let resp = s.connect_raw(Some(&format!("Bearer {jwt}")));
        assert_problem(&resp, 500, "internal", "connect");
        assert_eq!(faults.armed(), 0, "the connect met the fault");
    }
    assert_eq!(s.store.kv_count(), kv_before, "no state stored");
    assert_eq!(s.store.footprint(tenant), Footprint::default());
    let done = s.connect_and_install(tenant, inst.id).done();
    assert_eq!((done.repos, done.added, done.complete), (2, 2, true));
    all_recorded(s, tenant, &inst, &done.org_id);
}

/// KV fails reading the state back at the install callback: the browser lands on the
/// `internal` error page, nothing is written and the state is not spent, so the same link
/// works once KV is back.
fn kv_get_fails(s: &Stack) {
    let tenant = "tenant-fault-kv-get";
    let inst = Inst::org(1416, "e2e-fault-kv-get", 2);
    s.emulator.put_installation(&inst);
    let setup = s.walk_install(&s.connect(tenant), inst.id);
    {
        let faults = BindingFaults::arm(s, json!([{ "binding": "kv", "op": "get", "times": 1 }]));
        s.callback(&setup).assert_refused("internal");
        assert_eq!(faults.armed(), 0, "the callback met the fault");
    }
    assert_eq!(s.store.footprint(tenant), Footprint::default());
    let done = s.callback(&setup).done();
    assert_eq!((done.repos, done.added, done.complete), (2, 2, true));
    all_recorded(s, tenant, &inst, &done.org_id);
}

/// D1 fails the confirmation's linking transaction: a 500 problem, nothing linked and the
/// pending connection kept, so confirming again links it once.
fn d1_fails_at_confirmation(s: &Stack) {
    let tenant = "tenant-fault-d1-confirm";
    let inst = Inst::org(1417, "e2e-fault-d1-confirm", 2);
    s.emulator.put_installation(&inst);
    let setup = s.walk_install(&s.connect(tenant), inst.id);
    let held = s.callback_held(&setup);
    let pending = held.held.expect("held for confirmation").pending;
    {
        let faults = BindingFaults::arm(s, json!([{ "binding": "d1", "op": "batch", "times": 1 }]));
        let resp = s.confirm_as(tenant, &technician(tenant), &pending);
        assert_problem(&resp, 500, "internal", "confirm");
        assert_eq!(faults.armed(), 0, "the confirmation met the fault");
    }
    let footprint = s.store.footprint(tenant);
    assert_eq!(
        (
            footprint.orgs,
            footprint.repos,
            footprint.jobs,
            footprint.confirmations
        ),
        (0, 0, 0, 0),
        "nothing linked: {footprint:?}"
    );
    let resp = s.confirm_as(tenant, &technician(tenant), &pending);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let org_id = resp.json()["org_ids"][0]
        .as_str()
        .expect("the org linked")
        .to_string();
    all_recorded(s, tenant, &inst, &org_id);
    let again = s.confirm_as(tenant, &technician(tenant), &pending);
    assert_eq!(again.status, 404, "confirmed once: {}", again.body);
}

/// Commits on the installation's first repository (generated ones are empty, and an empty
/// repository's backup stores nothing): its emulator key.
fn with_history(s: &Stack, inst: &Inst) -> String {
    let key = format!(
        "github/{}",
        s.emulator.repositories(inst.id).remove(0).full_name
    );
    backups::admin(s, &key, "commits", json!({"count": 2}));
    key
}

/// The outcome, error and object key of each snapshot of `repo`, oldest first.
fn snapshot_rows(s: &Stack, repo: &str) -> Vec<(String, Option<String>, Option<String>)> {
    s.store.query(
        "SELECT outcome, error, object_key FROM snapshots WHERE repository_id = ?1 \
         ORDER BY started_at, rowid",
        [repo],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// R2 refuses the first backup's bundle: that attempt fails (a `failed` snapshot naming R2, no
/// object), the queue retries the job, and the retry stores an `ok` snapshot: the only object.
fn r2_put_fails(s: &Stack) {
    let tenant = "tenant-fault-r2-put";
    let inst = Inst::org(1418, "e2e-fault-r2-put", 1);
    s.emulator.put_installation(&inst);
    with_history(s, &inst);
    let faults = BindingFaults::arm(s, json!([{ "binding": "r2", "op": "put", "times": 1 }]));
    let done = s.connect_and_install(tenant, inst.id).done();
    let api = Portal::new(s, tenant);
    let repo = backups::text(&backups::org_repos(&api, &done.org_id).remove(0), "id").to_string();
    let newest = backups::settled(&api, &done.org_id, &repo, 2);
    assert_eq!(faults.armed(), 0, "the backup met the fault");
    assert_eq!(newest["status"], "ok", "{newest}");
    let rows = snapshot_rows(s, &repo);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (outcome, error, key) = &rows[0];
    assert_eq!(outcome, "failed", "{rows:?}");
    assert!(
        error.as_deref().unwrap_or_default().contains("R2"),
        "{rows:?}"
    );
    assert_eq!(key, &None, "{rows:?}");
    let ok_key = rows[1].2.clone().expect("the ok snapshot's object");
    let prefix = format!("{tenant}/");
    let objects: Vec<String> = s
        .store
        .r2_objects()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.starts_with(&prefix))
        .collect();
    assert_eq!(objects, [ok_key], "no object of the failed attempt");
    let job = s.store.jobs(&done.org_id).remove(0);
    assert_eq!(job.status, "received", "{job:?}");
    // The worker's log reaches the file a little behind: wait for the retry's line.
    let retried = poll_until(
        Duration::from_secs(30),
        "the retry in the queue trace",
        || match s
            .queue_trace()
            .into_iter()
            .filter(|(event, _, body)| event == "retried" && body.contains(&job.id))
            .count()
        {
            0 => Err("not yet".to_string()),
            n => Ok(n),
        },
    );
    assert_eq!(retried, 1, "retried once through the queue");
}

/// R2 fails reading a bundle: `GET /v1/snapshots/{id}/bundle` is a 500 problem; the next
/// download streams it.
fn r2_get_fails(s: &Stack) {
    let tenant = "tenant-fault-r2-get";
    let inst = Inst::org(1419, "e2e-fault-r2-get", 1);
    s.emulator.put_installation(&inst);
    with_history(s, &inst);
    let done = s.connect_and_install(tenant, inst.id).done();
    let api = Portal::new(s, tenant);
    let repo = backups::text(&backups::org_repos(&api, &done.org_id).remove(0), "id").to_string();
    let snapshot = backups::settled(&api, &done.org_id, &repo, 1);
    assert_eq!(snapshot["status"], "ok", "{snapshot}");
    let bundle = format!("/v1/snapshots/{}/bundle", backups::text(&snapshot, "id"));
    {
        let faults = BindingFaults::arm(s, json!([{ "binding": "r2", "op": "get", "times": 1 }]));
        assert_problem(
            &api.request("GET", &bundle, None),
            500,
            "internal",
            "bundle",
        );
        assert_eq!(faults.armed(), 0, "the download met the fault");
    }
    let jwt = s.portal_jwt(tenant, &technician(tenant));
    let resp = ureq::get(&format!("{}{bundle}", s.worker))
        .set("authorization", &format!("Bearer {jwt}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {bundle}: {e}"));
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes).expect("the bundle");
    assert_eq!(
        Some(bytes.len() as u64),
        snapshot["bytes"].as_u64(),
        "the whole bundle"
    );
}

/// The queue refuses "back up now"'s send: the job is committed, so the answer is still 202
/// and the job waits, unsent; the next request sends it (the hourly dispatcher would too), and
/// it is backed up once.
fn queue_fails_on_backup_now(s: &Stack) {
    let tenant = "tenant-fault-queue";
    let inst = Inst::org(1420, "e2e-fault-queue", 1);
    s.emulator.put_installation(&inst);
    with_history(s, &inst);
    let done = s.connect_and_install(tenant, inst.id).done();
    let org = done.org_id.as_str();
    let api = Portal::new(s, tenant);
    let repo = backups::text(&backups::org_repos(&api, org).remove(0), "id").to_string();
    backups::settled(&api, org, &repo, 1);
    let backup = format!("/v1/orgs/{org}/backup");
    let job = {
        let faults =
            BindingFaults::arm(s, json!([{ "binding": "queue", "op": "send", "times": 1 }]));
        let resp = api.request("POST", &backup, None);
        assert_eq!(resp.status, 202, "the job is committed: {}", resp.body);
        assert_eq!(resp.json()["queued"], 1, "{}", resp.body);
        assert_eq!(faults.armed(), 0, "the send met the fault");
        let waiting: Vec<JobRow> = s
            .store
            .jobs(org)
            .into_iter()
            .filter(|j| j.status == "queued")
            .collect();
        assert_eq!(waiting.len(), 1, "{waiting:?}");
        waiting[0].id.clone()
    };
    // A job is stamped when its send succeeds (`MARK_DISPATCHED`).
    let stamped = || {
        s.store.count(
            "SELECT count(*) FROM backup_jobs WHERE id = ?1 AND dispatched_at IS NOT NULL",
            [job.as_str()],
        )
    };
    assert_eq!(stamped(), 0, "not sent");
    let resp = api.request("POST", &backup, None);
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(
        resp.json()["queued"],
        0,
        "one job waits already: {}",
        resp.body
    );
    assert_eq!(stamped(), 1, "sent by the next request");
    poll_until(
        Duration::from_secs(120),
        "the job to be received",
        || match s.store.jobs(org).into_iter().find(|j| j.id == job) {
            Some(j) if j.status == "received" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    // The worker's log reaches the file a little behind: wait for the send's line.
    let sends = poll_until(
        Duration::from_secs(30),
        "the send in the queue trace",
        || match s
            .queue_trace()
            .into_iter()
            .filter(|(event, _, body)| event == "sent" && body.contains(&job))
            .count()
        {
            0 => Err("not yet".to_string()),
            n => Ok(n),
        },
    );
    assert_eq!(sends, 1, "sent once");
}

/// A GitLab group's and an Azure DevOps organization's listing during a sync: two 502s, a
/// 429 with `retry-after: 1`, a body cut off and an answer past the 10 s per attempt are each
/// retried inline (the sync finds everything); a malformed page is `502 upstream_unavailable`
/// naming the provider and removes nothing.
fn gitlab_and_azure_listing(s: &Stack) {
    let tenant = "tenant-fault-oauth";
    let api = Portal::new(s, tenant);
    let user = oauth::gitlab_user(s, GITLAB_INSTANCE, 71_401);
    oauth::gitlab_group(s, GITLAB_INSTANCE, 71_401, &[71_401], 3);
    let gitlab = s
        .oauth_connect_as("gitlab", tenant, &user, None)
        .connected("gitlab")
        .org_ids[0]
        .clone();
    let azure_user = "0d5e1c9a-0000-4000-8000-000000071402";
    s.emulator.azure_user(azure_user, "Azure 71402", None);
    s.emulator.azure_org(
        "contoso-e2e71402",
        json!({"members": [azure_user], "projects": [{"name": "platform", "repositories": 3}]}),
    );
    let azure = s
        .oauth_connect_as("azure-devops", tenant, azure_user, None)
        .connected("azure-devops")
        .org_ids[0]
        .clone();
    for (org, name, listing) in [
        (
            &gitlab,
            "GitLab",
            "/gitlab/com/api/v4/groups/71401/projects".to_string(),
        ),
        (
            &azure,
            "Azure DevOps",
            "/azure/contoso-e2e71402/_apis/projects".to_string(),
        ),
    ] {
        let sync = format!("/v1/orgs/{org}/sync");
        let settle = || s.queues_settled("the org's queued work", |b| b.contains(org.as_str()));
        let active = || {
            s.store.count(
                "SELECT count(*) FROM repositories WHERE org_id = ?1 AND status = 'active'",
                [org.as_str()],
            )
        };
        // The statuses of the listing's requests logged since `from` by the invocation that
        // made the first of them (the sync's: the access snapshot it queues may list too).
        let listing_statuses = |from: u64| -> Vec<u16> {
            let requests: Vec<_> = s
                .emulator
                .requests()
                .into_iter()
                .filter(|r| r.seq > from && r.method == "GET" && r.path.starts_with(&listing))
                .collect();
            let sync = requests.first().and_then(|r| r.invocation.clone());
            requests
                .into_iter()
                .filter(|r| r.invocation == sync)
                .map(|r| r.status)
                .collect()
        };
        let last_seq = || s.emulator.requests().last().map_or(0, |r| r.seq);
        // Each fault, once or twice, then the page: the sync finds everything, the listing
        // having been asked for as shown (the abandoned slow attempt is logged last).
        let retried: [(&str, serde_json::Value, &[u16]); 4] = [
            (
                "502 twice",
                json!({ "status": 502, "times": 2 }),
                &[502, 502, 200],
            ),
            (
                "429, retry-after: 1",
                json!({ "status": 429, "headers": { "retry-after": "1" }, "times": 1 }),
                &[429, 200],
            ),
            (
                "a body cut off",
                json!({ "truncate_after_bytes": 20, "times": 1 }),
                &[200, 200],
            ),
            (
                "an answer after 11 s",
                json!({ "delay_ms": 11_000, "times": 1 }),
                &[200, 200],
            ),
        ];
        for (fault, rule, statuses) in retried {
            settle();
            let mut rule = rule;
            rule["method"] = json!("GET");
            rule["path_prefix"] = json!(listing);
            let from = last_seq();
            let _faults = Faults::install(&s.emulator, json!([rule]));
            let synced = api.ok("POST", &sync, None);
            assert_eq!(
                (&synced["found"], &synced["added"], &synced["removed"]),
                (&json!(3), &json!(0), &json!(0)),
                "{name}, {fault}: {synced}"
            );
            poll_until(
                Duration::from_secs(30),
                "the listing's requests",
                || match listing_statuses(from) {
                    seen if seen == statuses => Ok(()),
                    seen => Err(format!("{name}, {fault}: {seen:?}")),
                },
            );
        }
        settle();
        {
            let _faults = Faults::install(
                &s.emulator,
                json!([{
                    "method": "GET",
                    "path_prefix": listing,
                    "status": 200,
                    "headers": { "content-type": "application/json" },
                    "body": "[{\"id\": ",
                    "times": 1,
                }]),
            );
            let resp = api.request("POST", &sync, None);
            let problem = assert_problem(&resp, 502, "upstream_unavailable", name);
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.starts_with(&format!("{name}: ")), "{detail}");
        }
        assert_eq!(active(), 3, "{name}: nothing removed");
        settle();
    }
}

/// The queue refuses the initial backup jobs of a connect: the connection still completes
/// (the jobs are committed, stamped as sent) and nothing is sent; once the stamps are past
/// the dispatcher's cutoff (made so in D1), the next dispatch ("back up now" runs one) sends
/// each job once, and each is received.
fn queue_fails_during_a_connect(s: &Stack) {
    let tenant = "tenant-fault-queue-connect";
    let inst = Inst::org(1421, "e2e-fault-queue-connect", 3);
    s.emulator.put_installation(&inst);
    let done = {
        let faults =
            BindingFaults::arm(s, json!([{ "binding": "queue", "op": "send", "times": 1 }]));
        let callback = s.connect_and_install(tenant, inst.id);
        assert_eq!(faults.armed(), 0, "the connect met the fault");
        callback.done()
    };
    assert_eq!((done.repos, done.added, done.complete), (3, 3, true));
    let org = done.org_id.as_str();
    checks::org_recorded(s, tenant, &inst, org);
    assert_eq!(checks::repositories_recorded(s, org, inst.id), 3);
    let jobs: Vec<String> = s.store.jobs(org).into_iter().map(|j| j.id).collect();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let sends = |job: &str| {
        s.queue_trace()
            .into_iter()
            .filter(|(event, _, body)| event == "sent" && body.contains(job))
            .count()
    };
    assert!(jobs.iter().all(|j| sends(j) == 0), "none sent");
    let twenty_minutes_ago = onecode_edge::time::rfc3339(now() - 20 * 60);
    assert_eq!(
        s.store.execute(
            "UPDATE backup_jobs SET dispatched_at = ?2 WHERE org_id = ?1 AND status = 'queued'",
            [org, twenty_minutes_ago.as_str()],
        ),
        3
    );
    let resp = Portal::new(s, tenant).request("POST", &format!("/v1/orgs/{org}/backup"), None);
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(
        resp.json()["queued"],
        0,
        "every repository has a job waiting"
    );
    checks::jobs_received(s, org, 3);
    // The worker's log reaches the file a little behind: wait for the sends' lines.
    poll_until(
        Duration::from_secs(30),
        "the sends in the queue trace",
        || {
            let counts: Vec<usize> = jobs.iter().map(|j| sends(j)).collect();
            if counts.iter().all(|&n| n > 0) {
                Ok(())
            } else {
                Err(format!("{counts:?}"))
            }
        },
    );
    assert!(
        jobs.iter().all(|j| sends(j) == 1),
        "each sent once, by the dispatch"
    );
}
