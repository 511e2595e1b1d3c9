//! `scripts/bench-console`: the console's figures, and the README's screenshot of it. It reuses
//! the end-to-end fixture (`tests/e2e/harness`: the emulator and the worker under `wrangler dev`
//! on loopback) and drives Debian's headless Chromium with `tests/browser/console.mjs`.
//!
//! 1. Page weight: the bytes of `/console`, `/console/app.js` and `/console/app.css` as served
//!    (uncompressed; nothing else is loaded).
//! 2. Screenshot (`docs/console.png`): a tenant with the emulator's demo organizations
//!    `acme-demo` (25 repositories) and `globex-demo` (60) connected through the API, their first
//!    backups done, `acme-demo` opened.
//! 3. First render of 500 organizations: a tenant with 500 orgs written straight into the local
//!    D1 (the worker is idle then); the time from navigation to the first row and to all 500
//!    rows (five pages of 100 from `GET /v1/orgs`), over five fresh page loads.

// The shared end-to-end fixture; the benchmark uses only part of it.
#[allow(dead_code)]
#[path = "../tests/e2e/harness/mod.rs"]
mod harness;

use std::process::Command;

use harness::emulator::Inst;
use harness::{technician, Stack};
use serde_json::{json, Value};

const ORGS: usize = 500;

fn browser(s: &Stack, scenario: &str, args: Value) -> Value {
    let output = Command::new("node")
        .current_dir(&s.root)
        .arg(s.root.join("tests/browser/console.mjs"))
        .arg(scenario)
        .arg(args.to_string())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{scenario}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON from the browser")
}

fn page_weight(s: &Stack) -> usize {
    let mut total = 0;
    for path in ["/console", "/console/app.js", "/console/app.css"] {
        let r = s.http.get(&format!("{}{path}", s.worker));
        assert_eq!(r.status, 200, "{path}");
        println!("  {path}: {} bytes", r.body.len());
        total += r.body.len();
    }
    total
}

fn screenshot(s: &Stack) {
    let tenant = "msp-demo";
    let token = s.portal_jwt(tenant, &technician(tenant));
    let mut orgs = Vec::new();
    for (id, login, name, repos, client) in [
        (1_001, "acme-demo", "Acme (demo)", 25, "Acme Corp"),
        (1_002, "globex-demo", "Globex (demo)", 60, "Globex"),
    ] {
        let mut inst = Inst::org(id, login, repos);
        inst.name = Some(name.to_string());
        s.emulator.put_installation(&inst);
        let done = s.connect_and_install(tenant, id).done();
        let r = s.http.request(
            "PATCH",
            &format!("{}/v1/orgs/{}", s.worker, done.org_id),
            &[("authorization", &format!("Bearer {token}"))],
            Some(&json!({ "client": client }).to_string()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        orgs.push(done.org_id);
    }
    s.queues_settled("the demo orgs' first backups", |body| {
        orgs.iter().any(|id| body.contains(id.as_str()))
    });
    let path = s.root.join("docs/console.png");
    let seen = browser(
        s,
        "screenshot",
        json!({ "worker": s.worker, "token": token, "login": "acme-demo", "path": path }),
    );
    println!("  {} ({:?})", path.display(), seen["errors"]);
}

fn seed(s: &Stack, tenant: &str) {
    let providers = ["github", "gitlab", "azure_devops"];
    let clients = ["Acme Corp", "Globex", "Initech", "Hooli", "Umbrella"];
    for i in 0..ORGS {
        s.store.execute(
            "INSERT INTO organizations (id, tenant_id, provider, account_id, login, display_name, \
                 account_type, installation_id, status, client_label, connected_by, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'Organization', ?7, 'active', ?8, 'bench', \
                 '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            rusqlite::params![
                format!("bench-org-{i:04}"),
                tenant,
                providers[i % 3],
                9_000_000 + i as i64,
                format!("bench-org-{i:04}"),
                format!("Bench organization {i}"),
                // OAuth orgs have no installation: 0, as `UPSERT_OAUTH_ORG` writes.
                if providers[i % 3] == "github" { 9_000_000 + i as i64 } else { 0 },
                clients[i % clients.len()],
            ],
        );
    }
}

fn main() {
    let s = harness::stack();
    println!("1. console page weight");
    println!("  total: {} bytes", page_weight(s));

    println!("2. screenshot");
    screenshot(s);

    println!("3. first render of {ORGS} organizations (headless Chromium, 5 loads)");
    let tenant = "tenant-bench-console";
    seed(s, tenant);
    let token = s.portal_jwt(tenant, &technician(tenant));
    let seen = browser(
        s,
        "bench",
        json!({ "worker": s.worker, "token": token, "orgs": ORGS, "runs": 5 }),
    );
    let runs = seen["runs"].as_array().expect("runs");
    let mut first: Vec<i64> = runs
        .iter()
        .map(|r| r["first_row_ms"].as_i64().unwrap())
        .collect();
    let mut all: Vec<i64> = runs
        .iter()
        .map(|r| r["all_rows_ms"].as_i64().unwrap())
        .collect();
    first.sort();
    all.sort();
    println!(
        "  first row: median {} ms ({first:?})",
        first[first.len() / 2]
    );
    println!(
        "  all {ORGS} rows: median {} ms ({all:?})",
        all[all.len() / 2]
    );
    harness::shutdown(false);
}
