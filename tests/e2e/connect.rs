//! Connecting GitHub installations end to end (issue #2): connect → install page → setup
//! callback (which only verifies and holds) → the technician's confirmation → D1 rows, backup
//! jobs received by the queue consumer, and the GitHub calls made.
//!
//! - installations of 0, 1, 250 and 10,000 repositories (10,000 continue through the sync
//!   queue: the redirect says `complete=false`, the background finishes the run), and a
//!   personal (User) account;
//! - `setup_action=update` and reconnects add only new repositories, never duplicates;
//! - `setup_action=request` records a pending request and spends the state;
//! - an installation another tenant holds, one the returning user cannot access (an unknown
//!   id among them) and a suspended one are refused with nothing written but the spent state;
//!   a new connect works once the installation is unsuspended.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use onecode_edge::auth::state_token;

use crate::harness::auth::{now, state_of};
use crate::harness::checks::{self, describe};
use crate::harness::emulator::Inst;
use crate::harness::http::{Done, Outcome};
use crate::harness::store::{Footprint, OrgRow};
use crate::harness::{technician, Stack};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        Case::shared(
            "connect::the_workers_app_jwt_is_byte_identical_to_a_pure_rust_one",
            app_jwt_identical,
        ),
        // First: the longest test, so that it overlaps with the others.
        Case::shared(
            "connect::repositories_10000_continue_in_the_background",
            repositories_10000,
        ),
        Case::shared("connect::repositories_0", repositories_0),
        Case::shared("connect::repositories_1", repositories_1),
        Case::shared(
            "connect::repositories_250_in_six_github_calls",
            repositories_250,
        ),
        Case::shared("connect::personal_account", personal_account),
        Case::shared("connect::update_adds_only_new_repositories", update),
        Case::shared("connect::reconnect_adds_only_new_repositories", reconnect),
        Case::shared(
            "connect::request_records_a_pending_approval",
            request_pending,
        ),
        Case::shared(
            "connect::installation_of_another_tenant_is_refused",
            claimed,
        ),
        Case::shared(
            "connect::an_installation_the_user_cannot_see_is_refused_and_spends_the_state",
            unknown_installation,
        ),
        Case::shared(
            "connect::suspended_installation_is_refused_until_unsuspended",
            suspended,
        ),
    ]
}

/// Connects a fresh installation whose repositories fit in one invocation and checks
/// everything it must record.
#[track_caller]
fn connect_complete(s: &Stack, tenant: &str, inst: &Inst) -> (Done, OrgRow) {
    s.emulator.put_installation(inst);
    let done = s
        .connect_and_install(tenant, inst.id)
        .done_with_all(inst.repos);
    assert_eq!(done.org, inst.login);
    let org = checks::org_recorded(s, tenant, inst, &done.org_id);
    assert!(
        org.last_synced_at.is_some(),
        "a complete run stamps the org"
    );
    let run = s.store.run(&org.id).expect("an enumeration run");
    assert_eq!(run.status, "complete");
    assert_eq!(
        (run.found, run.added),
        (i64::from(inst.repos), i64::from(inst.repos))
    );
    assert_eq!(run.next_url, None);
    assert_eq!(
        checks::repositories_recorded(s, &org.id, inst.id),
        inst.repos as usize
    );
    checks::jobs_received(s, &org.id, inst.repos as usize);
    // Every repository was backed up: one ok snapshot each (`empty` for the scale fixtures'
    // empty repositories), its refs advertised to the backup consumer (more than once only when
    // an attempt failed and was retried, e.g. under load).
    let advertised: BTreeSet<String> = checks::backup_invocations(s, inst.id)
        .iter()
        .flatten()
        .filter(|c| c.path.contains("/info/refs"))
        .map(|c| c.path.clone())
        .collect();
    assert_eq!(
        advertised.len(),
        inst.repos as usize,
        "every repository's refs read"
    );
    let ok: Vec<(String, i64)> = s.store.query(
        "SELECT r.id, (SELECT count(*) FROM snapshots x WHERE x.repository_id = r.id AND x.outcome IN ('ok', 'empty')) \
         FROM repositories r WHERE r.org_id = ?1",
        [org.id.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    assert!(
        ok.len() == inst.repos as usize && ok.iter().all(|(_, n)| *n == 1),
        "one ok backup per repository: {ok:?}"
    );
    let invocations = checks::after_callback(s, inst.id);
    assert_eq!(
        invocations.len(),
        1,
        "everything happens in the confirmation: {:#?}",
        invocations.iter().map(|c| describe(c)).collect::<Vec<_>>()
    );
    (done, org)
}

fn repositories_0(s: &Stack) {
    let inst = Inst::org(1100, "e2e-empty", 0);
    connect_complete(s, "tenant-repos-0", &inst);
    let calls = checks::after_callback(s, inst.id).remove(0);
    assert_eq!(
        describe(&calls),
        [
            "GET /app/installations/1100 -> 200",
            "POST /app/installations/1100/access_tokens -> 201",
            "GET /orgs/e2e-empty -> 200",
            "GET /installation/repositories?per_page=100 -> 200",
        ]
    );
}

fn repositories_1(s: &Stack) {
    let inst = Inst::org(1101, "e2e-single", 1);
    let (done, _) = connect_complete(s, "tenant-repos-1", &inst);
    // The page the browser lands on (no PORTAL_URL: the worker's own) names the org.
    let page = s.http.get(&format!(
        "{}/connect/github/done?org_id={}&org={}&repos=1&added=1&complete=true",
        s.worker, done.org_id, done.org
    ));
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    assert!(page
        .body
        .contains("<strong>e2e-single</strong> connected: 1 repositories"));
}

fn repositories_250(s: &Stack) {
    let inst = Inst::org(1102, "e2e-quarter", 250);
    connect_complete(s, "tenant-repos-250", &inst);
    let calls = checks::after_callback(s, inst.id).remove(0);
    assert_eq!(
        describe(&calls),
        [
            "GET /app/installations/1102 -> 200",
            "POST /app/installations/1102/access_tokens -> 201",
            "GET /orgs/e2e-quarter -> 200",
            "GET /installation/repositories?per_page=100 -> 200",
            "GET /installation/repositories?per_page=100&page=2 -> 200",
            "GET /installation/repositories?per_page=100&page=3 -> 200",
        ]
    );
    let auths: Vec<&str> = calls.iter().map(|c| c.auth.as_str()).collect();
    assert_eq!(
        auths,
        [
            "app_jwt",
            "app_jwt",
            "installation_token",
            "installation_token",
            "installation_token",
            "installation_token"
        ]
    );
}

fn repositories_10000(s: &Stack) {
    let tenant = "tenant-repos-10000";
    let inst = Inst::org(1103, "e2e-huge", 10_000);
    s.emulator.put_installation(&inst);
    let callback = s.connect_and_install(tenant, inst.id);
    let done = callback.done();
    assert!(
        !done.complete && done.repos > 0 && done.repos < 10_000,
        "the callback cannot enumerate 10,000 repositories within one invocation: {}",
        callback.location
    );
    assert_eq!(done.added, done.repos, "Location: {}", callback.location);
    assert_eq!(done.repos % 100, 0, "whole pages: {}", callback.location);
    assert!(
        s.store.footprint(tenant).repos >= done.repos as i64,
        "the redirect counts only what is recorded"
    );

    let t0 = Instant::now();
    let run = checks::run_completes(s, &done.org_id, Duration::from_secs(600));
    eprintln!(
        "connect::repositories_10000: background enumeration finished {:.0?} after the redirect",
        t0.elapsed()
    );
    assert_eq!(
        (run.found, run.added, run.pages),
        (10_000, 10_000, 100),
        "{run:?}"
    );
    assert_eq!(run.next_url, None);
    let org = checks::org_recorded(s, tenant, &inst, &done.org_id);
    assert!(org.last_synced_at.is_some());
    assert_eq!(checks::repositories_recorded(s, &org.id, inst.id), 10_000);
    checks::jobs_received(s, &org.id, 10_000);

    let invocations = checks::after_callback(s, inst.id);
    assert!(invocations.len() >= 2, "continued through the sync queue");
    let pages_in = |calls: &[crate::harness::emulator::Logged]| {
        calls.iter().filter(|c| c.is_page()).count() as u64
    };
    assert_eq!(
        pages_in(&invocations[0]) * 100,
        done.repos,
        "the confirmation reports the pages it applied"
    );
    for continuation in &invocations[1..] {
        assert_eq!(
            describe(&continuation[..1]),
            ["POST /app/installations/1103/access_tokens -> 201"],
            "a continuation mints its own token"
        );
    }
    let mut pages: Vec<u32> = invocations
        .iter()
        .flatten()
        .filter(|c| c.is_page())
        .map(|c| {
            assert_eq!(c.status, 200);
            c.page()
        })
        .collect();
    pages.sort_unstable();
    assert_eq!(
        pages,
        (1..=100).collect::<Vec<u32>>(),
        "every page fetched exactly once"
    );
}

fn personal_account(s: &Stack) {
    let inst = Inst {
        kind: "User",
        name: Some("Octo Person".into()),
        ..Inst::org(1104, "e2e-person", 3)
    };
    connect_complete(s, "tenant-personal", &inst);
    let calls = checks::after_callback(s, inst.id).remove(0);
    assert_eq!(describe(&calls[2..3]), ["GET /users/e2e-person -> 200"]);
}

fn update(s: &Stack) {
    let tenant = "tenant-update";
    let inst = Inst::org(1200, "e2e-update", 20);
    let (first, org) = connect_complete(s, tenant, &inst);
    s.emulator.add_repos(inst.id, 5);

    let state = state_of(&s.connect(tenant));
    let callback = s.callback(&s.setup_url(&[
        ("installation_id", "1200"),
        ("setup_action", "update"),
        ("state", &state),
    ]));
    let done = callback.done();
    assert_eq!(done.org_id, first.org_id, "the same organization");
    assert_eq!(
        (done.repos, done.added, done.complete),
        (25, 5, true),
        "Location: {}",
        callback.location
    );
    let inst = Inst { repos: 25, ..inst };
    let updated = checks::org_recorded(s, tenant, &inst, &done.org_id);
    assert_eq!(updated.created_at, org.created_at);
    assert_eq!(checks::repositories_recorded(s, &org.id, inst.id), 25);
    checks::jobs_received(s, &org.id, 25);
    let run = s.store.run(&org.id).expect("run");
    assert_eq!(
        (run.status.as_str(), run.found, run.added),
        ("complete", 25, 5)
    );
    let new_jobs = s
        .store
        .jobs(&org.id)
        .into_iter()
        .filter(|j| j.run_id.as_deref() == Some(run.run_id.as_str()))
        .count();
    assert_eq!(new_jobs, 5, "only the new repositories get jobs");
    assert_eq!(s.store.footprint(tenant).consumed_states, 2);
}

fn reconnect(s: &Stack) {
    let tenant = "tenant-reconnect";
    let inst = Inst::org(1201, "e2e-reconnect", 30);
    let (first, org) = connect_complete(s, tenant, &inst);

    let again = s.connect_and_install(tenant, inst.id);
    let second = again.done();
    assert_eq!(second.org_id, first.org_id);
    assert_eq!(
        (second.repos, second.added, second.complete),
        (30, 0, true),
        "Location: {}",
        again.location
    );
    let footprint = s.store.footprint(tenant);
    assert_eq!(
        (
            footprint.orgs,
            footprint.repos,
            footprint.profiles,
            footprint.jobs
        ),
        (1, 30, 30, 30),
        "no duplicates: {footprint:?}"
    );
    let same = checks::org_recorded(s, tenant, &inst, &first.org_id);
    assert_eq!(
        same.created_at, org.created_at,
        "the org row is kept, not recreated"
    );

    s.emulator.add_repos(inst.id, 3);
    let third_cb = s.connect_and_install(tenant, inst.id);
    let third = third_cb.done();
    assert_eq!(third.org_id, first.org_id);
    assert_eq!(
        (third.repos, third.added, third.complete),
        (33, 3, true),
        "Location: {}",
        third_cb.location
    );
    let inst = Inst { repos: 33, ..inst };
    checks::org_recorded(s, tenant, &inst, &first.org_id);
    assert_eq!(checks::repositories_recorded(s, &org.id, inst.id), 33);
    checks::jobs_received(s, &org.id, 33);
    assert_eq!(s.store.footprint(tenant).consumed_states, 3);
}

fn request_pending(s: &Stack) {
    let tenant = "tenant-pending";
    let install_url = s.connect(tenant);
    let state = state_of(&install_url);
    let claims = state_token::verify(s.state_secret().as_bytes(), &state, now())
        .expect("the worker's state verifies with STATE_SECRET");
    assert!(s.store.kv_has(&claims.kv_key()), "the state is in KV");

    let url = s.setup_url(&[("setup_action", "request"), ("state", &state)]);
    let callback = s.callback(&url);
    assert_eq!(
        callback.outcome(),
        Outcome::Pending,
        "Location: {}",
        callback.location
    );
    assert_eq!(
        s.store.installation_requests(tenant),
        [(
            claims.nonce_hex(),
            technician(tenant),
            "pending".to_string()
        )]
    );
    assert_eq!(s.store.consumed_nonces(tenant), [claims.nonce_hex()]);
    assert!(!s.store.kv_has(&claims.kv_key()), "the state is spent");
    assert_eq!(
        s.store.footprint(tenant),
        Footprint {
            consumed_states: 1,
            installation_requests: 1,
            ..Footprint::default()
        }
    );

    s.callback(&url).assert_refused("state_used");
    assert_eq!(s.store.installation_requests(tenant).len(), 1);

    let page = s.http.get(&format!("{}/connect/github/pending", s.worker));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Waiting for approval"));
}

fn claimed(s: &Stack) {
    let inst = Inst::org(1202, "e2e-claimed", 3);
    let (_, org) = connect_complete(s, "tenant-claim-owner", &inst);
    let owner = s.store.footprint("tenant-claim-owner");

    let intruder = "tenant-claim-intruder";
    let callback = s.connect_and_install(intruder, inst.id);
    callback.assert_refused("installation_claimed");
    assert_eq!(
        s.store.footprint(intruder),
        Footprint {
            consumed_states: 1,
            ..Footprint::default()
        },
        "nothing written for the refused tenant but its spent state"
    );
    assert_eq!(s.store.footprint("tenant-claim-owner"), owner);
    assert_eq!(
        s.store.orgs_with_installation(inst.id),
        [(org.id.clone(), "tenant-claim-owner".to_string())]
    );
    let invocations: Vec<_> = checks::invocations(s, inst.id)
        .into_iter()
        .filter(|calls| !checks::is_backup(calls))
        .collect();
    assert_eq!(
        invocations.len(),
        3,
        "owner: callback and confirmation; intruder: callback (the owner's backups aside)"
    );
    assert_eq!(
        describe(&invocations[2]),
        ["GET /app/installations/1202 -> 200"],
        "refused before any installation token is minted"
    );
}

fn unknown_installation(s: &Stack) {
    let tenant = "tenant-unknown-installation";
    let inst = Inst::org(1203, "e2e-known", 2);
    s.emulator.put_installation(&inst);
    let state = state_of(&s.connect(tenant));
    let claims =
        state_token::verify(s.state_secret().as_bytes(), &state, now()).expect("valid state");

    // An id nobody can access: the returning user's own installations do not list it, so it
    // is refused before GitHub is asked about it (the answer tells nothing about other ids).
    let url = s.setup_url(&[
        ("installation_id", "999999"),
        ("setup_action", "install"),
        ("state", &state),
    ]);
    s.callback(&url).assert_refused("installation_forbidden");
    assert_eq!(
        s.store.footprint(tenant),
        Footprint {
            consumed_states: 1,
            ..Footprint::default()
        },
        "nothing but the spent state"
    );
    assert!(
        !s.store.kv_has(&claims.kv_key()),
        "a refused callback spends its state"
    );
    assert!(
        s.emulator.worker_requests(999_999).is_empty(),
        "GitHub is not asked about an installation the user cannot access"
    );

    // The same state is used up; a new connect links a real installation.
    let again = s.setup_url(&[
        ("installation_id", "1203"),
        ("setup_action", "install"),
        ("state", &state),
    ]);
    s.callback(&again).assert_refused("state_used");
    let done = s.connect_and_install(tenant, inst.id).done();
    assert_eq!((done.repos, done.added, done.complete), (2, 2, true));
    checks::org_recorded(s, tenant, &inst, &done.org_id);
}

fn suspended(s: &Stack) {
    let tenant = "tenant-suspended";
    let inst = Inst::org(1105, "e2e-suspended", 4);
    s.emulator.put_installation(&inst);
    s.emulator.set_suspended(inst.id, true);
    let state = state_of(&s.connect(tenant));
    let setup = s.setup_url(&[
        ("installation_id", "1105"),
        ("setup_action", "install"),
        ("state", &state),
    ]);
    s.callback(&setup).assert_refused("installation_suspended");
    assert_eq!(
        s.store.footprint(tenant),
        Footprint {
            consumed_states: 1,
            ..Footprint::default()
        },
        "nothing is written but the spent state"
    );
    assert!(
        !describe(&s.emulator.worker_requests(inst.id))
            .iter()
            .any(|c| c.contains("access_tokens")),
        "no token is requested for a suspended installation"
    );

    // The link is used up; once unsuspended on GitHub, a new connect links it.
    s.callback(&setup).assert_refused("state_used");
    s.emulator.set_suspended(inst.id, false);
    let done = s.connect_and_install(tenant, inst.id).done();
    assert_eq!((done.repos, done.added, done.complete), (4, 4, true));
    checks::org_recorded(s, tenant, &inst, &done.org_id);
}

/// The worker signs its App JWT with WebCrypto; RS256 (PKCS#1 v1.5) is deterministic, so the
/// same claims signed in pure Rust (`jwt-compact`, the harness's signer) must give the very same
/// token. The emulator keeps the App JWTs it accepted from the worker; each is compared byte
/// for byte.
fn app_jwt_identical(s: &Stack) {
    use base64::Engine;
    let tenant = "tenant-connect-jwt";
    s.emulator
        .put_installation(&Inst::org(10_601, "e2e-connect-jwt", 1));
    let done = s.connect_and_install(tenant, 10_601).done();
    assert!(done.complete, "{done:?}");
    // The worker's App JWTs of this and every earlier test (a JWT minted in the same second as
    // another is the very same token, so "new since" cannot be told apart; all must match).
    let presented = s.emulator.app_jwts();
    assert!(!presented.is_empty(), "the worker presented App JWTs");
    for jwt in &presented {
        let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64url claims"),
        )
        .expect("JSON claims");
        let claims = onecode_edge::github::app_jwt::AppJwtClaims {
            exp: claims["exp"].as_i64().expect("exp"),
            iat: claims["iat"].as_i64().expect("iat"),
            iss: claims["iss"].as_str().expect("iss").to_string(),
        };
        assert_eq!(
            &s.emulator.signer().sign(&claims),
            jwt,
            "WebCrypto and pure Rust sign {claims:?} alike"
        );
    }
}
