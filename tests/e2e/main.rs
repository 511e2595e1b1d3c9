//! End-to-end tests of onecode-edge: the real worker under `wrangler dev` (workerd with local
//! D1, KV and Queues) against the project's GitHub emulator, driven over HTTP on 127.0.0.1.
//!
//! Run with `cargo test --test e2e` (or `scripts/test --test e2e`); filters work as usual
//! (`cargo test --test e2e -- state_`). The first run builds the worker, which is slow.
//! Set `ONECODE_E2E_KEEP=1` to keep the run's temporary directory (logs, D1, KV).
//!
//! - `harness/`: the shared fixture (processes, HTTP, emulator admin, D1/KV reads, polling);
//! - `connect.rs`: connecting installations of 0 to 10,000 repositories, update, reconnect,
//!   pending approval, claimed and unknown installations;
//! - `state.rs`: every way a state token can be refused, replays included;
//! - `portal.rs`: portal authentication failures and API routing errors;
//! - `faults.rs`: the fault matrix: GitHub, git over HTTP, GitLab and Azure DevOps failing, rate
//!   limiting, timing out, answering malformed or cut-off bodies; the worker's own D1, KV, R2 and queue bindings
//!   failing (`harness/binding_faults.rs`);
//! - `webhooks.rs`: `POST /github/webhooks` (every octokit example payload, signatures and
//!   rotation, request errors, redelivery, out-of-order events, pushes, answer time) and the
//!   activity API;
//! - `orgs.rs`: organizations over time: several per tenant and their settings, lists and
//!   filters, sync of added and removed repositories, disconnect and reconnect, the cron
//!   triggers (scheduled sync, scheduled backups, snapshot expiry), dead letters, tenant
//!   isolation, the OpenAPI document;
//! - `oauth.rs`: GitLab groups and Azure DevOps organizations through OAuth: connecting, PKCE,
//!   refused callbacks, sync, disconnect and reconnect, and the tokens (sealed at rest, refresh
//!   before expiry and under concurrency, revocation, moved ciphertexts, key rotation);
//! - `access.rs`: access audit and posture: findings appear and clear with the emulator's
//!   state, webhooks applied once, unknown 2FA, the portfolio as JSON and CSV;
//! - `posture.rs`: the backup rules of the posture (`backup_failed`, `backup_stale`) appear and
//!   clear;
//! - `backups.rs`: real backups of real git repositories, restored through the API with `git`;
//! - `retention.rs`: expiry keeps the bundles a kept restore chain needs and deletes the rest
//!   from R2;
//! - `security.rs`: configured GitLab instances only, proof of installation ownership,
//!   confirmation by the technician who started a connection, OAuth states at the GitHub
//!   callback, relabelled webhooks, redirects, a retired GitLab instance (issue #13);
//! - `approval.rs`: an owner's approval (`installation.created`) linked to the pending request
//!   of the tenant whose GitHub user asked (OAuth during installation);
//! - `hygiene.rs`: run last, over everything the suite did: no installation token stored or
//!   logged, the right credential on every GitHub call, no invocation over the subrequest limit;
//! - `console.rs`: CORS for the portal's origin on the API, and the console (`/console`) in
//!   headless Chromium: it loads cleanly, connects an org through the redirect flow, syncs it,
//!   shows problem details; a page of another origin cannot call the API (issue #12);
//! - `sql_plans.rs`: the D1 page statements' query plans (native, no worker).
//!
//! Scheduling: the tests share one worker and one emulator and run in parallel
//! (`--test-threads`, default: the number of CPUs). Fault rules are global to the emulator, cron
//! triggers reach every organization, direct D1 writes can collide with the worker's, and some
//! checks count global state, so such tests hold a write lock that keeps every other worker test
//! out while they run, and start once the queued work earlier tests left is done (see
//! `Stack::queues_quiet`); `hygiene` tests start only once every other selected test has
//! finished.

mod access;
mod approval;
mod backups;
mod connect;
mod console;
mod faults;
mod harness;
mod hygiene;
mod oauth;
mod orgs;
mod portal;
mod posture;
mod retention;
mod security;
mod sql_plans;
mod state;
mod webhooks;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use harness::Stack;
use libtest_mimic::{Arguments, Trial};

/// How a test may overlap with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Changes or counts state global to the stack (fault rules, all KV entries): runs alone.
    Exclusive,
    /// Uses its own tenants and installations: runs alongside other shared tests.
    Shared,
    /// Needs no worker.
    Native,
    /// Inspects everything the other tests did: runs after all of them, alone.
    Last,
}

pub enum Body {
    Stack(fn(&Stack)),
    Native(fn()),
}

pub struct Case {
    pub name: &'static str,
    pub kind: Kind,
    pub body: Body,
}

impl Case {
    pub fn shared(name: &'static str, f: fn(&Stack)) -> Case {
        Case {
            name,
            kind: Kind::Shared,
            body: Body::Stack(f),
        }
    }

    pub fn exclusive(name: &'static str, f: fn(&Stack)) -> Case {
        Case {
            name,
            kind: Kind::Exclusive,
            body: Body::Stack(f),
        }
    }

    pub fn last(name: &'static str, f: fn(&Stack)) -> Case {
        Case {
            name,
            kind: Kind::Last,
            body: Body::Stack(f),
        }
    }

    pub fn native(name: &'static str, f: fn()) -> Case {
        Case {
            name,
            kind: Kind::Native,
            body: Body::Native(f),
        }
    }
}

/// How long a test that runs alone waits for the queues to be quiet before it starts anyway.
const QUIET_LIMIT: Duration = Duration::from_secs(300);

/// Shared tests hold it for reading, exclusive and last ones for writing.
static GATE: RwLock<()> = RwLock::new(());
/// Selected tests that are not `Last` and have not finished yet.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Every failure's name and message, printed again after the wrangler log at the end of the run,
/// where a CI log that keeps only its tail still shows them.
static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Counts a test as finished when dropped (also when the test panics).
struct Finished(Kind);

impl Drop for Finished {
    fn drop(&mut self) {
        if self.0 != Kind::Last {
            PENDING.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn wait_for_the_others() {
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    while PENDING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn trial(case: Case) -> Trial {
    let Case { name, kind, body } = case;
    Trial::test(name, move || {
        let _finished = Finished(kind);
        std::panic::catch_unwind(AssertUnwindSafe(|| run(kind, body))).map_err(|payload| {
            let at = harness::panics::panic_location().unwrap_or_else(|| "?".into());
            let message = format!(
                "{}\n  at {at}",
                harness::panics::panic_message(payload.as_ref())
            );
            FAILURES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("---- {name} ----\n{message}"));
            message.into()
        })
    })
}

fn run(kind: Kind, body: Body) {
    match body {
        Body::Native(f) => f(),
        Body::Stack(f) => {
            if kind == Kind::Last {
                wait_for_the_others();
            }
            let stack = harness::stack();
            let _gate = match kind {
                Kind::Shared => (
                    Some(GATE.read().unwrap_or_else(PoisonError::into_inner)),
                    None,
                ),
                _ => {
                    let gate = GATE.write().unwrap_or_else(PoisonError::into_inner);
                    // Alone means without the queued work earlier tests left behind, too.
                    stack.queues_quiet(QUIET_LIMIT);
                    (None, Some(gate))
                }
            };
            f(stack);
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    harness::panics::quiet_panics();
    let mut cases: Vec<Case> = [
        portal::cases(),
        faults::cases(),
        connect::cases(),
        console::cases(),
        state::cases(),
        sql_plans::cases(),
        webhooks::cases(),
        orgs::cases(),
        approval::cases(),
        oauth::cases(),
        security::cases(),
        backups::cases(),
        access::cases(),
        posture::cases(),
        retention::cases(),
        hygiene::cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Exclusive tests first (short, and then out of the way), then the shared ones (the
    // longest, 10,000 repositories, leads its module), native, and the final inspections.
    cases.sort_by_key(|c| c.kind);
    let kinds: Vec<Kind> = cases.iter().map(|c| c.kind).collect();
    let trials: Vec<Trial> = cases.into_iter().map(trial).collect();
    let pending = trials
        .iter()
        .zip(&kinds)
        .filter(|(t, k)| **k != Kind::Last && !args.is_filtered_out(t) && !args.is_ignored(t))
        .count();
    PENDING.store(pending, Ordering::SeqCst);
    let conclusion = libtest_mimic::run(&args, trials);
    harness::shutdown(conclusion.has_failed());
    let failures = FAILURES.lock().unwrap_or_else(PoisonError::into_inner);
    if !failures.is_empty() {
        eprintln!("\n==== failures (again, after the log) ====");
        for failure in failures.iter() {
            eprintln!("{failure}");
        }
    }
    conclusion.exit();
}
