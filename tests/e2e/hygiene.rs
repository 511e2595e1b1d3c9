//! Checks over everything the run did, once every other test has finished (`Kind::Last`):
//!
//! - no installation token the emulator ever issued appears in any file the worker's platform
//!   wrote — D1 (database and WAL), KV, caches, wrangler's own logs — nor in the worker's log
//!   (the test first connects an installation large enough to need a continuation, so tokens
//!   minted by the queue consumer are covered even when run alone);
//! - every GitHub call carried the right credential: the App JWT on `/app/…`, an installation
//!   token on `/installation/…`, `/orgs/…`, `/users/…`; nothing the emulator rejected;
//! - no worker invocation made more GitHub calls than the 50-subrequest limit.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::harness::checks::{self, SUBREQUEST_LIMIT};
use crate::harness::emulator::Inst;
use crate::harness::store::files_under;
use crate::harness::Stack;
use crate::Case;

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
    ]
}

/// Installation tokens are `ghs_` and 36 alphanumerics; user tokens (OAuth during
/// installation) `ghu_` and 36.
const TOKEN_PREFIXES: [&[u8]; 2] = [b"ghs_", b"ghu_"];
const TOKEN_LEN: usize = 40;

fn is_token_start(bytes: &[u8]) -> bool {
    TOKEN_PREFIXES.iter().any(|p| bytes.starts_with(p))
}

/// The tokens of `tokens` that occur in `bytes`.
fn tokens_in<'t>(bytes: &[u8], tokens: &'t HashSet<Vec<u8>>) -> Vec<&'t [u8]> {
    let mut found = Vec::new();
    let mut i = 0;
    while i + TOKEN_LEN <= bytes.len() {
        if bytes[i] == b'g' && is_token_start(&bytes[i..]) {
            if let Some(token) = tokens.get(&bytes[i..i + TOKEN_LEN]) {
                found.push(token.as_slice());
            }
        }
        i += 1;
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

    let tokens: HashSet<Vec<u8>> = s
        .emulator
        .tokens()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    assert!(tokens.len() >= 2, "the run issued tokens");
    assert!(tokens
        .iter()
        .all(|t| t.len() == TOKEN_LEN && is_token_start(t)));

    let files = files_under(&s.dir);
    let wrangler_log = s.dir.join("wrangler.log");
    assert!(files.contains(&wrangler_log));
    assert!(
        files.iter().any(|f| f.starts_with(&s.persist)),
        "the persisted state is scanned"
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
        "installation tokens found on disk:\n{}",
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
        let expected = if r.path.starts_with("/app/") {
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
        if r.invocation.is_some() && r.user_agent.as_deref() != Some("onecode-edge") {
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
