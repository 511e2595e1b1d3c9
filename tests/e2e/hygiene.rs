//! Checks over everything the run did, once every other test has finished (`Kind::Last`):
//!
//! - no installation token, and no GitLab / Microsoft access or refresh token, the emulator ever
//!   issued appears in the clear in any file the worker's platform wrote — D1 (database and
//!   WAL), KV, R2 (the bundles and their metadata), caches, wrangler's own logs — nor in the
//!   worker's log, which holds every queue message body (the test first connects an
//!   installation large enough to need a continuation, so tokens minted by the queue consumer
//!   are covered even when run alone, and a GitLab group whose tokens are refreshed);
//! - every GitHub call carried the right credential: the App JWT on `/app/…`, an installation
//!   token on `/installation/…`, `/orgs/…`, `/users/…` and the git routes (Basic
//!   `x-access-token`, with git's user agent); nothing the emulator rejected;
//! - no worker invocation made more GitHub calls than the 50-subrequest limit.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::harness::checks::{self, SUBREQUEST_LIMIT};
use crate::harness::emulator::Inst;
use crate::harness::portal::Portal;
use crate::harness::store::files_under;
use crate::harness::{Stack, GITLAB_INSTANCE, SELF_MANAGED_GITLAB};
use crate::Case;
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        Case::last(
            "hygiene::no_installation_token_is_stored_or_logged",
            no_token_anywhere,
        ),
        Case::last(
            "hygiene::github_calls_carry_the_right_credentials",
            credentials,
        ),
        Case::last(
            "hygiene::no_invocation_exceeds_the_subrequest_limit",
            subrequest_limit,
        ),
        Case::last(
            "hygiene::no_credential_reached_a_service_it_does_not_belong_to",
            credentials_stay_home,
        ),
    ]
}

/// The emulator recorded every credential presented to each of its services (GitHub, each
/// GitLab instance, Microsoft with Azure DevOps, and a sink standing for anywhere else): over
/// the whole run, none went anywhere but to the service that issued it. The run first makes
/// sure each family was really exercised.
fn credentials_stay_home(s: &Stack) {
    let tenant = "hygiene-credentials";
    // Each family at work at least once, even when this test runs alone.
    let inst = Inst::org(1_910, "e2e-hygiene-credentials", 2);
    s.emulator.put_installation(&inst);
    s.connect_and_install(tenant, inst.id).done();
    let (instance, client_id, secret) = SELF_MANAGED_GITLAB[0];
    s.emulator.gitlab_oauth(instance, client_id, secret, None);
    for (instance, base_url) in [
        (GITLAB_INSTANCE, None),
        (
            instance,
            Some(format!("{}/gitlab/{instance}", s.emulator.base)),
        ),
    ] {
        s.emulator
            .gitlab_user(instance, 1_911, "hygiene-ledger", "Hygiene Ledger");
        s.emulator.gitlab_group(
            instance,
            1_911,
            json!({"name": "Ledger", "path": "hygiene-ledger", "members": [1_911], "projects": 1}),
        );
        let body = base_url.map(|url| json!({ "base_url": url }));
        s.oauth_connect_as("gitlab", tenant, "1911", body.as_ref())
            .connected("gitlab");
    }
    let azure_user = "0d5e1c9a-0000-4000-8000-000000001911";
    s.emulator.azure_user(azure_user, "Hygiene Ledger", None);
    s.emulator.azure_org(
        "hygiene-ledger-1911",
        json!({"members": [azure_user], "projects": [{"name": "p", "repositories": 1}]}),
    );
    s.oauth_connect_as(
        "azure-devops",
        tenant,
        azure_user,
        Some(&json!({"organizations": ["hygiene-ledger-1911"]})),
    )
    .connected("azure-devops");

    let seen = s.emulator.credentials_seen();
    for family in [
        "github",
        "microsoft",
        "gitlab:com",
        "gitlab:selfmanaged-e2e",
    ] {
        assert!(
            seen[family].as_u64().unwrap_or(0) > 0,
            "the ledger saw {family} credentials at home: {seen}"
        );
    }
    let ledger = s.emulator.misplaced_credentials();
    assert!(ledger["checked"].as_u64().unwrap_or(0) > 0, "{ledger}");
    assert_eq!(
        ledger["misplaced"],
        json!([]),
        "credentials presented where they were not issued"
    );
}

/// Installation tokens are `ghs_` and 36 alphanumerics, user tokens (OAuth during
/// installation) `ghu_` and 36; the emulator's GitLab and Microsoft tokens `glemu-at-`,
/// `glemu-rt-`, `azemu-at-`, `azemu-rt-` and 32 hex digits.
const TOKEN_KINDS: [(&[u8], usize); 6] = [
    (b"ghs_", 40),
    (b"ghu_", 40),
    (b"glemu-at-", 41),
    (b"glemu-rt-", 41),
    (b"azemu-at-", 41),
    (b"azemu-rt-", 41),
];

/// The length of a token of a known kind starting `bytes`.
fn token_len(bytes: &[u8]) -> Option<usize> {
    TOKEN_KINDS
        .iter()
        .find(|(prefix, _)| bytes.starts_with(prefix))
        .map(|(_, len)| *len)
}

/// The tokens of `tokens` that occur in `bytes`.
fn tokens_in<'t>(bytes: &[u8], tokens: &'t HashSet<Vec<u8>>) -> Vec<&'t [u8]> {
    let mut found = Vec::new();
    for i in 0..bytes.len() {
        if !matches!(bytes[i], b'g' | b'a') {
            continue;
        }
        if let Some(len) = token_len(&bytes[i..]).filter(|len| i + len <= bytes.len()) {
            if let Some(token) = tokens.get(&bytes[i..i + len]) {
                found.push(token.as_slice());
            }
        }
    }
    found
}

fn no_token_anywhere(s: &Stack) {
    let tenant = "tenant-hygiene";
    let inst = Inst::org(1500, "e2e-hygiene", 1_500);
    s.emulator.put_installation(&inst);
    let done = s.connect_and_install(tenant, inst.id).done();
    checks::run_completes(s, &done.org_id, Duration::from_secs(300));
    checks::jobs_received(s, &done.org_id, 1_500);
    assert!(
        checks::invocations(s, inst.id).len() >= 2,
        "a continuation minted a token too"
    );

    // A GitLab group, connected and synced after GitLab expired its token (a refresh).
    s.emulator
        .gitlab_user(GITLAB_INSTANCE, 79001, "hygiene", "Hygiene");
    s.emulator.gitlab_group(
        GITLAB_INSTANCE,
        79001,
        serde_json::json!({"name": "Hygiene", "path": "hygiene-79001", "members": [79001], "projects": 2}),
    );
    let gitlab = s
        .oauth_connect_as("gitlab", tenant, "79001", None)
        .connected("gitlab");
    s.emulator.gitlab_expire(GITLAB_INSTANCE, Some(79001));
    Portal::new(s, tenant).sync(&gitlab.org_ids[0]);

    let provider_tokens = s.emulator.provider_tokens();
    assert!(
        provider_tokens.iter().any(|t| t.starts_with("glemu-rt-")),
        "the run issued GitLab tokens"
    );
    let tokens: HashSet<Vec<u8>> = s
        .emulator
        .tokens()
        .into_iter()
        .chain(provider_tokens)
        .map(String::into_bytes)
        .collect();
    assert!(tokens.len() >= 4, "the run issued tokens");
    assert!(tokens.iter().all(|t| token_len(t) == Some(t.len())));

    let files = files_under(&s.dir);
    let wrangler_log = s.dir.join("wrangler.log");
    assert!(files.contains(&wrangler_log));
    // Queue messages live in workerd's memory; the `e2e` build writes every body sent and
    // handled to the worker's log (`src/edge/queue_trace.rs`), which the scan reads.
    let trace = s.queue_trace();
    for kind in ["backup_job.v1", "enumerate.v1"] {
        assert!(
            trace
                .iter()
                .any(|(event, _, body)| event == "sent" && body.contains(kind)),
            "the log holds the {kind} messages sent"
        );
    }
    assert!(
        files.iter().any(|f| f.starts_with(&s.persist)),
        "the persisted state is scanned"
    );
    // R2: the bundles (blobs) and their records and metadata (miniflare's SQLite) are files
    // under the persisted state, so the scan below reads them all.
    let bundles = s.store.r2_objects();
    assert!(
        bundles
            .iter()
            .any(|o| o.key.ends_with(".bundle") && o.size > 0),
        "the run stored bundles in R2"
    );
    let r2 = s.persist.join("v3/r2");
    assert!(
        files.iter().filter(|f| f.starts_with(&r2)).count() >= 2,
        "R2's blobs and metadata are scanned"
    );
    let mut leaks = Vec::new();
    let mut bytes_scanned = 0usize;
    for file in &files {
        let Ok(bytes) = std::fs::read(file) else {
            continue; // removed meanwhile (a WAL checkpoint, a temporary file)
        };
        bytes_scanned += bytes.len();
        for token in tokens_in(&bytes, &tokens) {
            leaks.push(format!(
                "{}: {}…",
                file.display(),
                String::from_utf8_lossy(&token[..8])
            ));
        }
    }
    assert!(
        leaks.is_empty(),
        "tokens found on disk:\n{}",
        leaks.join("\n")
    );
    eprintln!(
        "hygiene: {} tokens, none in {} files ({} MB)",
        tokens.len(),
        files.len(),
        bytes_scanned / 1_000_000
    );
}

fn credentials(s: &Stack) {
    let requests = s.emulator.requests();
    assert!(!requests.is_empty());
    let mut wrong = Vec::new();
    for r in &requests {
        // Every provider's git routes speak with git's user agent; GitHub's
        // (`/{owner}/{repo}.git/…`) carry the installation token, GitLab's and Azure DevOps'
        // their own credentials (`credentials_stay_home`).
        let git = r.path.contains("/info/refs") || r.path.ends_with("/git-upload-pack");
        let github_git = git && !r.path.starts_with("/gitlab/") && !r.path.starts_with("/azure/");
        let expected = if github_git {
            // The backup consumer's git calls: Basic `x-access-token:<installation token>`.
            Some("installation_token")
        } else if r.path.starts_with("/app/") {
            Some("app_jwt")
        } else if ["/installation/", "/orgs/", "/users/"]
            .iter()
            .any(|p| r.path.starts_with(p))
        {
            Some("installation_token")
        } else {
            None // the install page (`/apps/…`), which the browser opens
        };
        if let Some(expected) = expected {
            if r.auth != expected || r.status == 401 {
                wrong.push(format!("{} ({}, expected {expected})", r.short(), r.auth));
            }
        }
        let agent = if git {
            format!("git/2.0 (onecode-edge/{})", env!("CARGO_PKG_VERSION"))
        } else {
            "onecode-edge".to_string()
        };
        if r.invocation.is_some() && r.user_agent.as_deref() != Some(agent.as_str()) {
            wrong.push(format!("{} with user-agent {:?}", r.short(), r.user_agent));
        }
    }
    assert!(
        wrong.is_empty(),
        "GitHub calls with the wrong credential:\n{}",
        wrong.join("\n")
    );
}

fn subrequest_limit(s: &Stack) {
    let mut per_invocation: HashMap<String, usize> = HashMap::new();
    for r in s.emulator.requests() {
        if let Some(invocation) = r.invocation {
            *per_invocation.entry(invocation).or_default() += 1;
        }
    }
    assert!(!per_invocation.is_empty(), "the worker called GitHub");
    let max = per_invocation.values().copied().max().unwrap_or(0);
    let over: Vec<_> = per_invocation
        .iter()
        .filter(|(_, n)| **n > SUBREQUEST_LIMIT)
        .collect();
    assert!(
        over.is_empty(),
        "invocations over {SUBREQUEST_LIMIT} GitHub calls: {over:?}"
    );
    eprintln!(
        "hygiene: {} worker invocations called GitHub, at most {max} calls each",
        per_invocation.len()
    );
}
