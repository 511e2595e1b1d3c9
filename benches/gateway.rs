//! `scripts/bench`: the gateway's figures, printed (nothing is asserted: correctness is the
//! test suite's job). It reuses the end-to-end fixture (`tests/e2e/harness`): the GitHub
//! emulator and the worker under `wrangler dev`, built with the `bench` feature, on loopback.
//!
//! 1. Bundle: raw and gzipped size of the deployable bundle (built without the feature).
//! 2. App JWT: WebCrypto vs pure-Rust RS256 inside workerd, per signature, and whether both
//!    produce the same token (`GET /_bench/sign`). workerd's clock does not advance during CPU
//!    work, so times are taken from outside: (n signatures - 0 signatures) / n.
//! 3. Connect callback for 200, 1,000 and 10,000 repositories: the callback's wall time, its
//!    subrequests (the worker's own count), GitHub calls per invocation (the emulator's log),
//!    the time until enumeration completes and until every backup job is received.
//! 4. Webhooks: signed deliveries of a ~25 KB `push` and a small `repository.created`, from 4
//!    client threads: requests per second and p50/p99 latency; and the CPU time of verifying
//!    and parsing one delivery (native Rust, the same code the worker runs).
//! 5. Backups: an incremental after 10 small commits against its full (bytes, time); one large
//!    repository (a pack of about 1 GB of incompressible content, `ONECODE_BENCH_LARGE_MB` to
//!    change it) through the worker into R2, first on a fresh workerd: MB/s, workerd CPU ms per
//!    MB and its resident memory (sampled every 50 ms), beside `git clone --mirror` of the same
//!    repository from the same emulator (wall time, peak RSS via `/usr/bin/time`), and the
//!    worker's wasm heap after it (its own log line in `bench` builds): the bound that matters
//!    for the 128 MB isolate. Each 8 MiB part is a subrequest: with the free plan's budget (45)
//!    one invocation carries about 330 MB; `ONECODE_E2E_SUBREQUEST_LIMIT=950` runs the worker
//!    with a paid plan's budget (`SUBREQUEST_LIMIT`). The page's promise (an org of 200 repositories with
//!    history, until every one has an ok snapshot) is the 200-repository connect of section 3.
//! 6. OAuth connects: the GitLab callback for a group of 1,000 projects and the Azure DevOps
//!    callback for an organization of 60 projects × 5 repositories (wall time, subrequests,
//!    until enumeration completes); a sync whose token must be refreshed first against one that
//!    need not; and the native cost of sealing and opening a token (AES-256-GCM).
//! 7. Access audit: the access snapshot of a GitHub org of 1,000 members (50 admins, 10 outside
//!    collaborators) and 500 repositories (100 with classic protection), taken by a sync: wall
//!    time until it is stored, GitHub reads, and the invocations (steps) they took.

// The shared end-to-end fixture; the benchmark uses only part of it.
#[allow(dead_code)]
#[path = "../tests/e2e/harness/mod.rs"]
mod harness;

// The benchmarks' shared helpers (the workerd processes, the padded push delivery).
#[path = "support/mod.rs"]
mod support;

// `ONECODE_BENCH_PROFILE=1`: the isolate's CPU profile during the webhook section.
#[path = "support/profile.rs"]
mod profile;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use harness::emulator::Inst;
use harness::Stack;
use onecode_edge::github::webhook_signature;
use serde_json::{json, Value};
use support::{push_payload, workerds};

fn main() {
    // `cargo bench` passes `--bench`; there are no options. `ONECODE_BENCH_ONLY=backups` (or
    // `signing`, `connect`, `webhooks`, `oauth`, `access`) runs one section.
    let only = std::env::var("ONECODE_BENCH_ONLY").ok();
    let run = |section: &str| only.as_deref().is_none_or(|o| o == section);
    if only.is_none() {
        bundle();
    }
    std::env::set_var("ONECODE_BENCH_FEATURES", "bench");
    let s = harness::stack();
    if run("signing") {
        signing(s);
    }
    // First, on a fresh workerd: its memory figure is this backup's.
    if run("backups") {
        incremental(s);
        backups(s);
    }
    if run("connect") {
        // The larger orgs' repositories are empty (their backups are `empty` snapshots): these
        // figures are about enumeration and the queue; section 5 is about backups.
        s.emulator.empty_git("github/bench-1000/");
        s.emulator.empty_git("github/bench-10000/");
        for (i, repos) in [200u32, 1_000, 10_000].into_iter().enumerate() {
            callback(s, 9_100 + i as u64, repos);
        }
    }
    if run("webhooks") {
        webhooks(s);
    }
    if run("oauth") {
        oauth(s);
    }
    if run("access") {
        access(s);
    }
    harness::shutdown(false);
}

fn gzip_len(bytes: &[u8]) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip").len()
}

fn bundle() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new(root.join("scripts/build-worker"))
        .current_dir(root)
        .env_remove("ONECODE_FEATURES")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("scripts/build-worker");
    assert!(status.success(), "scripts/build-worker failed");
    println!("\n## Bundle (release, deployable: build/)");
    let mut total = (0, 0);
    for file in ["index_bg.wasm", "index.js", "worker/shim.mjs"] {
        let bytes = std::fs::read(root.join("build").join(file)).expect("bundle file");
        let gz = gzip_len(&bytes);
        println!("{file:>16}: {:>9} bytes, gzip {:>8} bytes", bytes.len(), gz);
        total = (total.0 + bytes.len(), total.1 + gz);
    }
    println!(
        "{:>16}: {:>9} bytes, gzip {:>8} bytes ({:.0} KiB gzipped)",
        "total",
        total.0,
        total.1,
        total.1 as f64 / 1024.0
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn timed_get(s: &Stack, url: &str) -> (f64, harness::http::Resp) {
    let t0 = Instant::now();
    let resp = s.http.get(url);
    (t0.elapsed().as_secs_f64() * 1000.0, resp)
}

fn signing(s: &Stack) {
    println!("\n## App JWT signature inside workerd (wall time from outside, median)");
    let url = |imp: &str, n: u32| format!("{}/_bench/sign?impl={imp}&n={n}", s.worker);
    let compare = s.http.get(&url("compare", 1)).json();
    println!(
        "WebCrypto and pure-Rust tokens identical: {}",
        compare["identical"]
    );
    const N: u32 = 40;
    for imp in ["webcrypto", "rust"] {
        s.http.get(&url(imp, 2)); // warm-up: key import, code paths
        let base = median((0..9).map(|_| timed_get(s, &url(imp, 0)).0).collect());
        let full = median((0..5).map(|_| timed_get(s, &url(imp, N)).0).collect());
        println!(
            "{imp:>10}: {:.2} ms per signature ({N} in {full:.1} ms, empty request {base:.1} ms)",
            (full - base) / N as f64
        );
    }
}

/// Confirms the connection a timed callback held, as the technician who started it:
/// (the callback's ms and subrequests, the confirmation's ms and subrequests, its answer).
fn held_and_confirmed(
    s: &Stack,
    tenant: &str,
    callback_url: &str,
) -> (f64, String, f64, String, Value) {
    let (callback_ms, resp) = timed_get(s, callback_url);
    let location = resp.header("location").unwrap_or_default().to_string();
    let held = harness::http::Held::from_location(&location)
        .unwrap_or_else(|| panic!("not held for confirmation: {location}"));
    let subrequests =
        |r: &harness::http::Resp| r.header("x-onecode-subrequests").unwrap_or("?").to_string();
    let t0 = Instant::now();
    let confirmed = s.confirm_as(tenant, &harness::technician(tenant), &held.pending);
    let confirm_ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    (
        callback_ms,
        subrequests(&resp),
        confirm_ms,
        subrequests(&confirmed),
        confirmed.json(),
    )
}

fn callback(s: &Stack, installation_id: u64, repos: u32) {
    let login = format!("bench-{repos}");
    let tenant = format!("tenant-bench-{repos}");
    s.emulator
        .put_installation(&Inst::org(installation_id, &login, repos));
    let install_url = s.connect(&tenant);
    let setup = s.walk_install(&install_url, installation_id);
    let (ms, subrequests, confirm_ms, confirm_subrequests, answer) =
        held_and_confirmed(s, &tenant, &setup);
    let redirected = Instant::now();
    let org_id = answer["org_ids"][0]
        .as_str()
        .unwrap_or_else(|| panic!("not connected: {answer}"))
        .to_string();
    let (recorded, complete) = (answer["repos"].clone(), answer["complete"].clone());
    let run = harness::poll_until(Duration::from_secs(600), "enumeration complete", || {
        s.store
            .run(&org_id)
            .filter(|r| r.status == "complete")
            .ok_or_else(|| format!("{:?}", s.store.run(&org_id)))
    });
    let enumerated = redirected.elapsed();
    harness::poll_until(Duration::from_secs(600), "every job received", || {
        let received = s.store.count(
            "SELECT count(*) FROM backup_jobs WHERE org_id = ?1 AND status = 'received'",
            [org_id.as_str()],
        );
        (received == i64::from(repos))
            .then_some(())
            .ok_or(format!("{received} received"))
    });
    let received = redirected.elapsed();
    let ok = s.store.count(
        "SELECT count(DISTINCT repository_id) FROM snapshots WHERE org_id = ?1 AND outcome IN ('ok', 'empty')",
        [org_id.as_str()],
    );
    let mut per_invocation: HashMap<String, usize> = HashMap::new();
    for call in s.emulator.worker_requests(installation_id) {
        *per_invocation
            .entry(call.invocation.unwrap_or_default())
            .or_default() += 1;
    }
    let max_calls = per_invocation.values().max().copied().unwrap_or(0);
    println!("\n## Connect callback and confirmation, {repos} repositories");
    println!("callback (verify and hold): {ms:.0} ms wall, {subrequests} subrequests (worker's count, limit 50)");
    println!("confirmation (link and enumerate): {confirm_ms:.0} ms wall, {confirm_subrequests} subrequests; it said repos={recorded} complete={complete}");
    println!(
        "enumeration complete {:.1} s after the confirmation ({} pages, {} found); every repository backed up ({ok} with an ok or empty snapshot) after {:.1} s",
        enumerated.as_secs_f64(),
        run.pages,
        run.found,
        received.as_secs_f64()
    );
    println!(
        "GitHub calls: {} invocations, at most {max_calls} calls in one",
        per_invocation.len()
    );
}

/// `(user + system CPU seconds, VmRSS KiB)` of a process.
fn cpu_and_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (11 and 12 after the command name), in ticks of
    // 1/100 s on Linux.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

/// Waits for the repository's newest settled snapshot beyond `after` snapshots.
fn settled_snapshot(s: &Stack, repository_id: &str, after: i64) -> Value {
    harness::poll_until(Duration::from_secs(900), "the backup", || {
        let n = s.store.count(
            "SELECT count(*) FROM snapshots WHERE repository_id = ?1 AND outcome <> 'running'",
            [repository_id],
        );
        if n <= after {
            return Err(format!("{n} settled"));
        }
        let rows: Vec<Value> = s.store.query(
            "SELECT id, outcome, kind, size_bytes, started_at, coalesce(finished_at, ''), error \
                 FROM snapshots WHERE repository_id = ?1 AND outcome <> 'running' \
                 ORDER BY rowid DESC LIMIT 1",
            [repository_id],
            |r| {
                Ok(json!({
                    "id": r.get::<_, String>(0)?,
                    "outcome": r.get::<_, String>(1)?,
                    "kind": r.get::<_, Option<String>>(2)?,
                    "bytes": r.get::<_, i64>(3)?,
                    "started_at": r.get::<_, String>(4)?,
                    "finished_at": r.get::<_, String>(5)?,
                    "error": r.get::<_, Option<String>>(6)?,
                }))
            },
        );
        rows.into_iter().next().ok_or_else(|| "none".to_string())
    })
}

/// Adds commits to a repository of the emulator (`POST /_emulator/git/{key}/commits`).
fn add_commits(s: &Stack, key: &str, spec: Value) {
    let added = s.http.request(
        "POST",
        &format!("{}/_emulator/git/{key}/commits", s.emulator.base),
        &[],
        Some(&spec.to_string()),
    );
    assert_eq!(added.status, 200, "{}", added.body);
}

/// Connects installation `inst` (one repository) for `tenant`: `(org id, repository id, when
/// the confirmation was sent)`.
fn connect_one(s: &Stack, tenant: &str, inst: &Inst) -> (String, String, Instant) {
    let install_url = s.connect(tenant);
    let setup = s.walk_install(&install_url, inst.id);
    let started = Instant::now();
    let (_, _, _, _, answer) = held_and_confirmed(s, tenant, &setup);
    let org_id = answer["org_ids"][0].as_str().expect("org").to_string();
    let repository_id: String = s
        .store
        .query(
            "SELECT id FROM repositories WHERE org_id = ?1",
            [org_id.as_str()],
            |r| r.get(0),
        )
        .into_iter()
        .next()
        .expect("the repository");
    (org_id, repository_id, started)
}

fn backups(s: &Stack) {
    // One large repository of incompressible blobs, so the pack is as large: about 1 GB, or
    // `ONECODE_BENCH_LARGE_MB` megabytes.
    let megabytes: u64 = std::env::var("ONECODE_BENCH_LARGE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let inst = Inst::org(9_200, "bench-large", 1);
    s.emulator.put_installation(&inst);
    let name = s.emulator.repositories(inst.id).remove(0).full_name;
    let key = format!("github/{name}");
    let t0 = Instant::now();
    add_commits(
        s,
        &key,
        json!({"count": megabytes.div_ceil(8).max(1), "file_bytes": 8_000_000, "incompressible": true}),
    );
    println!("\n## Backups");
    println!(
        "subrequest budget per invocation: {}",
        std::env::var("ONECODE_E2E_SUBREQUEST_LIMIT").unwrap_or_else(|_| "45 (the default)".into())
    );
    println!(
        "large repository prepared in the emulator ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    // The gateway's workerd, not wrangler's proxy.
    let workerd = workerds(&s.worker).map(|(gateway, _)| gateway);
    let before = workerd.map(cpu_and_rss);
    // workerd's resident memory, sampled every 50 ms while the backup runs.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = workerd.map(|pid| {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(cpu_and_rss(pid).1);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    });
    let tenant = "tenant-bench-large";
    let (_, repository_id, started) = connect_one(s, tenant, &inst);
    let full = settled_snapshot(s, &repository_id, 0);
    let wall = started.elapsed().as_secs_f64();
    if let Some(error) = full["error"].as_str() {
        println!("worker: the backup failed: {error}; the end of wrangler's log:");
        for line in s.wrangler_tail(60).lines() {
            println!("  {line}");
        }
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.and_then(|t| t.join().ok());
    let after = workerd.map(cpu_and_rss);
    let bytes = full["bytes"].as_i64().unwrap_or(0) as f64;
    let mb = bytes / 1e6;
    println!(
        "worker: {} {} snapshot of {:.1} MB in {wall:.1} s from the confirmation: {:.1} MB/s",
        full["outcome"],
        full["kind"],
        mb,
        mb / wall
    );
    match (before, after, peak) {
        (Some((cpu0, rss0)), Some((cpu1, _)), Some(peak)) => println!(
            "workerd: {:.1} CPU ms per MB (the whole process: wasm, JS glue and local R2); RSS {:.0} MiB before, at most {:.0} MiB during the backup",
            (cpu1 - cpu0) * 1000.0 / mb.max(1e-9),
            rss0 as f64 / 1024.0,
            peak as f64 / 1024.0
        ),
        _ => println!("workerd: process not found, no CPU or memory figures"),
    }
    if let Some(line) = s
        .wrangler_tail(1_000_000)
        .lines()
        .rev()
        .find(|l| l.contains("bench: backup of"))
    {
        println!("worker: {}", line.trim_start_matches(|c| c != 'b'));
    }
    // The same repository with git itself.
    let token = s.emulator.installation_token(inst.id);
    let dir = std::env::temp_dir().join(format!("onecode-bench-mirror-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!(
        "{}/{name}.git",
        s.emulator
            .base
            .replace("http://", &format!("http://x-access-token:{token}@"))
    );
    let t0 = Instant::now();
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M %e"])
        .args(["git", "clone", "--quiet", "--mirror", &url])
        .arg(&dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output();
    let git_wall = t0.elapsed().as_secs_f64();
    match out {
        Ok(out) if out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let peak_kib: f64 = stderr
                .lines()
                .last()
                .and_then(|l| l.split(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            println!(
                "git clone --mirror of the same repository: {git_wall:.1} s ({:.1} MB/s of bundle-equivalent), peak RSS {:.0} MiB (git's largest process)",
                mb / git_wall,
                peak_kib / 1024.0
            );
        }
        Ok(out) => println!(
            "git clone --mirror failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("git clone --mirror could not run: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn incremental(s: &Stack) {
    // A repository with some history (2 MB of blobs), then 10 small commits.
    let inst = Inst::org(9_201, "bench-incremental", 1);
    s.emulator.put_installation(&inst);
    let name = s.emulator.repositories(inst.id).remove(0).full_name;
    let key = format!("github/{name}");
    add_commits(
        s,
        &key,
        json!({"count": 8, "file_bytes": 262_144, "incompressible": true}),
    );
    let tenant = "tenant-bench-incremental";
    let (org_id, repository_id, started) = connect_one(s, tenant, &inst);
    let full = settled_snapshot(s, &repository_id, 0);
    let wall = started.elapsed().as_secs_f64();
    let bytes = full["bytes"].as_i64().unwrap_or(0) as f64;
    let key = &key;
    // 10 small commits, then a backup now.
    add_commits(s, key, json!({"count": 10}));
    let api = harness::portal::Portal::new(s, tenant);
    let t0 = Instant::now();
    let queued = api.request("POST", &format!("/v1/orgs/{org_id}/backup"), None);
    assert_eq!(queued.status, 202, "{}", queued.body);
    let incremental = settled_snapshot(s, &repository_id, 1);
    println!(
        "incremental after 10 small commits: {} {} of {} bytes in {:.2} s from the request (the full: {:.0} bytes in {wall:.1} s from the confirmation)",
        incremental["outcome"],
        incremental["kind"],
        incremental["bytes"],
        t0.elapsed().as_secs_f64(),
        bytes
    );
}

/// The secret the benchmark signs with: the first of the fixture's rotation (its `.dev.vars`
/// lists two, the rotated one first), so each delivery costs the gateway one HMAC, as with one
/// secret configured; the JavaScript worker gets the same one.
fn webhook_secret(_s: &Stack) -> String {
    harness::ROTATED_WEBHOOK_SECRET.to_string()
}

/// One signed delivery (raw bytes, so the body is exactly what was signed) to the worker at
/// `base`.
fn deliver(s: &Stack, base: &str, agent: &ureq::Agent, event: &str, body: &[u8]) -> (f64, u16) {
    assert!(base.starts_with("http://127.0.0.1:"), "loopback only");
    let signature = webhook_signature::sign(&webhook_secret(s), body);
    let delivery = format!("bench-{}", uuid_like());
    let t0 = Instant::now();
    let status = match agent
        .post(&format!("{base}/github/webhooks"))
        .set("content-type", "application/json")
        .set("x-github-event", event)
        .set("x-github-delivery", &delivery)
        .set("x-hub-signature-256", &signature)
        .send_bytes(body)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            let _ = r.into_string();
            status
        }
        Err(e) => panic!("delivery: {e}"),
    };
    (t0.elapsed().as_secs_f64() * 1000.0, status)
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deliveries to one worker from `threads` client threads.
struct Load {
    wall: f64,
    latencies: Vec<(f64, u16)>,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall
    }

    /// The latencies in ms, sorted.
    fn sorted_ms(&self) -> Vec<f64> {
        let mut ms: Vec<f64> = self.latencies.iter().map(|(m, _)| *m).collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        ms
    }

    fn statuses(&self) -> std::collections::BTreeMap<u16, usize> {
        self.latencies
            .iter()
            .fold(Default::default(), |mut m, (_, st)| {
                *m.entry(*st).or_default() += 1;
                m
            })
    }

    fn merge(loads: Vec<Load>) -> Load {
        Load {
            wall: loads.iter().map(|l| l.wall).sum(),
            latencies: loads.into_iter().flat_map(|l| l.latencies).collect(),
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn load(s: &Stack, event: &str, bodies: &[Vec<u8>], threads: usize) {
    let l = load_on(s, &s.worker, event, bodies, threads);
    let ms = l.sorted_ms();
    println!(
        "{event} ({} bytes): {} deliveries, {threads} threads: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, statuses {:?}",
        bodies[0].len(),
        bodies.len(),
        l.per_second(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        l.statuses(),
    );
}

fn load_on(s: &Stack, base: &str, event: &str, bodies: &[Vec<u8>], threads: usize) -> Load {
    let t0 = Instant::now();
    let latencies: Vec<(f64, u16)> = std::thread::scope(|scope| {
        let chunks: Vec<_> = bodies.chunks(bodies.len().div_ceil(threads)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new().redirects(0).build();
                    chunk
                        .iter()
                        .map(|b| deliver(s, base, &agent, event, b))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    Load {
        wall: t0.elapsed().as_secs_f64(),
        latencies,
    }
}

fn webhooks(s: &Stack) {
    println!("\n## Webhook deliveries through wrangler dev");
    // The 200-repository org connected above receives them; its first repository is pushed to.
    let installation_id = 9_100;
    let repo_id = (installation_id * 1_000_000 + 1) as i64;
    let push = push_payload(installation_id, repo_id);
    let created: Vec<Vec<u8>> = (0..400)
        .map(|i| {
            serde_json::to_vec(&json!({
                "action": "created",
                "installation": { "id": installation_id },
                "repository": { "id": 800_000_000 + i, "name": format!("new-{i}"), "full_name": format!("bench-200/new-{i}"), "private": true, "default_branch": "main" },
                "sender": { "login": "bench" }
            }))
            .expect("JSON")
        })
        .collect();
    load(s, "push", &vec![push.clone(); 400], 4);
    load(s, "repository", &created, 4);
    against_javascript(s);

    println!("\n## CPU per verified delivery (native, release: verify HMAC + parse)");
    let secrets = vec![webhook_secret(s)];
    for (event, body) in [("push", &push), ("repository", &created[0])] {
        let signature = webhook_signature::sign(&secrets[0], body);
        let n = 2_000;
        let t0 = Instant::now();
        for _ in 0..n {
            webhook_signature::verify(&secrets, Some(&signature), None, body).expect("verifies");
            std::hint::black_box(
                onecode_edge::github::webhook_events::parse(event, body).expect("parses"),
            );
        }
        println!(
            "{event:>10} ({} bytes): {:.1} µs",
            body.len(),
            t0.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}

/// The JavaScript worker of `benches/js-webhook` under its own `wrangler dev` (local D1 and
/// queue, loopback), stopped when dropped (and by a watchdog if this process dies first).
struct JsWorker {
    url: String,
    process: harness::procs::Managed,
    _watchdog: harness::procs::Managed,
}

impl Drop for JsWorker {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }
}

fn js_worker(s: &Stack) -> JsWorker {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("benches/js-webhook/wrangler.toml");
    let dir = std::env::temp_dir().join(format!("onecode-bench-js-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the JS worker's state directory");
    let persist = dir.join("state");
    let migrated = harness::wrangler(root, &dir)
        .args(["d1", "migrations", "apply", "DB", "--local", "--persist-to"])
        .arg(&persist)
        .arg("-c")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("wrangler d1 migrations apply");
    assert!(
        migrated.status.success(),
        "the JS worker's migration: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let port = harness::procs::free_port().expect("a free port");
    let inspector = harness::procs::free_port().expect("a free port");
    let log = std::fs::File::create(dir.join("wrangler.log")).expect("log");
    let mut dev = harness::wrangler(root, &dir);
    dev.arg("dev")
        .arg("-c")
        .arg(&config)
        .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--inspector-port", &inspector.to_string()])
        .arg("--persist-to")
        .arg(&persist)
        .args([
            "--var",
            &format!("GITHUB_WEBHOOK_SECRET:{}", webhook_secret(s)),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let process = harness::procs::Managed::spawn_group("wrangler dev (JS worker)", &mut dev)
        .expect("wrangler dev for the JS worker");
    let watchdog =
        harness::procs::watchdog(&[process.kill_target()], Some(&dir)).expect("watchdog");
    let url = format!("http://127.0.0.1:{port}");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Up once it answers (a GET is a 404 by design).
    while !matches!(agent.get(&url).call(), Ok(_) | Err(ureq::Error::Status(..))) {
        assert!(
            Instant::now() < deadline,
            "the JS worker did not start: {}",
            harness::tail(&dir.join("wrangler.log"), 30)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // As for the gateway's stack: keep wrangler's inspector proxy from buffering every message.
    harness::inspector::drain(inspector);
    JsWorker {
        url,
        process,
        _watchdog: watchdog,
    }
}

/// Issue #11's yardstick: the same signed 25 KB pushes, each with its own delivery id, to the
/// gateway (for a connected installation, so every one is applied: recorded, its org's activity
/// written, its backup and analysis queued) and to the JavaScript worker of `benches/js-webhook`
/// (verify with `@octokit/webhooks-methods`, insert the delivery id into D1, send one queue
/// message), in alternating rounds, each worker idle (queues quiet) when its round starts.
/// Two `wrangler dev`s on one machine: the same workerd build, each its own process.
fn against_javascript(s: &Stack) {
    const ROUNDS: usize = 5;
    const PER_ROUND: usize = 400;
    const THREADS: usize = 4;
    println!("\n## Webhook path against JavaScript (same pushes, alternating rounds)");
    let installation_id = 9_400;
    let inst = Inst::org(installation_id, "bench-js", 1);
    s.emulator.put_installation(&inst);
    let (org_id, _, _) = connect_one(s, "tenant-bench-js", &inst);
    s.queues_quiet(Duration::from_secs(300));
    let js = js_worker(s);
    let push = push_payload(installation_id, (installation_id * 1_000_000 + 1) as i64);
    let bodies = vec![push; PER_ROUND];
    // Warm both isolates first.
    load_on(s, &s.worker, "push", &bodies[..40], THREADS);
    load_on(s, &js.url, "push", &bodies[..40], THREADS);
    // Pushes sent before the rounds (each applied too): the warm-up's, and the profiled ones.
    let mut before_rounds = 40;
    if std::env::var_os("ONECODE_BENCH_PROFILE").is_some() {
        profile_pushes(s, &bodies, THREADS);
        before_rounds += bodies.len();
    }
    // Each stack's two workerd processes (the worker's, wrangler's proxy's), resident KiB.
    let pids = [workerds(&s.worker), workerds(&js.url)];
    let resident =
        || pids.map(|p| p.map(|(worker, proxy)| (cpu_and_rss(worker).1, cpu_and_rss(proxy).1)));
    let before = resident();
    // CPU seconds of each stack's (worker, proxy) workerd: while its rounds ran, and after them
    // until the queues were quiet (the consumers' share).
    let cpu = |i: usize| pids[i].map_or((0.0, 0.0), |(w, p)| (cpu_and_rss(w).0, cpu_and_rss(p).0));
    let mut spent = [[(0.0f64, 0.0f64); 2]; 2];
    let (mut gateway, mut javascript) = (Vec::new(), Vec::new());
    s.queues_quiet(Duration::from_secs(300));
    for round in 0..ROUNDS {
        // Alternate which goes first.
        for gateway_first in [round % 2 == 0, round % 2 == 1] {
            let i = usize::from(!gateway_first);
            let c0 = cpu(i);
            if gateway_first {
                gateway.push(load_on(s, &s.worker, "push", &bodies, THREADS));
            } else {
                javascript.push(load_on(s, &js.url, "push", &bodies, THREADS));
            }
            let c1 = cpu(i);
            s.queues_quiet(Duration::from_secs(300));
            let c2 = cpu(i);
            spent[i][0].0 += c1.0 - c0.0;
            spent[i][0].1 += c1.1 - c0.1;
            spent[i][1].0 += c2.0 - c1.0;
            spent[i][1].1 += c2.1 - c1.1;
        }
    }
    let after = resident();
    let (gateway, javascript) = (Load::merge(gateway), Load::merge(javascript));
    let applied: i64 = s
        .store
        .query(
            "SELECT COUNT(DISTINCT delivery_id) FROM org_activity WHERE org_id = ?1 AND delivery_id LIKE 'bench-%'",
            [org_id.as_str()],
            |r| r.get(0),
        )
        .into_iter()
        .next()
        .unwrap_or(0);
    println!("| worker | deliveries | req/s | p50 ms | p99 ms | statuses |");
    println!("|---|---:|---:|---:|---:|---|");
    for (name, l) in [
        ("gateway (Rust/wasm)", &gateway),
        ("JavaScript", &javascript),
    ] {
        let ms = l.sorted_ms();
        println!(
            "| {name} | {} | {:.0} | {:.1} | {:.1} | {:?} |",
            l.latencies.len(),
            l.per_second(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            l.statuses()
        );
    }
    let (g99, j99) = (
        percentile(&gateway.sorted_ms(), 0.99),
        percentile(&javascript.sorted_ms(), 0.99),
    );
    println!(
        "gateway / JavaScript: {:.2}× the throughput, p99 {:.0} ms against {:.0} ms; goal ≥ 1.2× with a p99 no worse",
        gateway.per_second() / javascript.per_second(),
        g99,
        j99,
    );
    println!(
        "the gateway applied {applied} of its {} pushes (each one org activity row)",
        gateway.latencies.len() + before_rounds
    );
    // Two more rounds each to the gateway alone, each started with its queues quiet.
    let rounds = |event: &str, bodies: &[Vec<u8>], what: &str| {
        let load = Load::merge(
            (0..2)
                .map(|_| {
                    s.queues_quiet(Duration::from_secs(300));
                    load_on(s, &s.worker, event, bodies, THREADS)
                })
                .collect(),
        );
        let ms = load.sorted_ms();
        println!(
            "the gateway, {what}: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, statuses {:?}: {:.2}× the JavaScript worker's full work",
            load.per_second(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            load.statuses(),
            load.per_second() / javascript.per_second(),
        );
    };
    // Its floor on this stack: the same signed bodies as `ping`, which it verifies, parses and
    // answers without touching a binding (no D1, no queue).
    rounds(
        "ping",
        &bodies,
        "its floor, the same bodies as `ping` (verified, parsed, answered; no binding touched)",
    );
    // The same size of push changing no dependency file: no analysis job, and its backup job
    // coalesced with the one waiting; three statements in its batch, no send.
    let plain = support::padded_push(
        installation_id,
        (installation_id * 1_000_000 + 1) as i64,
        false,
    );
    rounds(
        "push",
        &vec![plain.clone(); PER_ROUND],
        &format!(
            "{}-byte pushes changing no dependency file (no analysis job)",
            plain.len()
        ),
    );
    let n = (ROUNDS * PER_ROUND) as f64;
    for (i, name) in ["gateway", "JavaScript"].into_iter().enumerate() {
        let [during, after] = spent[i];
        println!(
            "{name}: CPU per delivery while answering {:.2} ms in its workerd + {:.2} ms in wrangler's proxy; afterwards, until its queues were quiet, {:.2} ms + {:.2} ms",
            during.0 * 1e3 / n,
            during.1 * 1e3 / n,
            after.0 * 1e3 / n,
            after.1 * 1e3 / n,
        );
    }
    // Growth over the rounds, once the queues are quiet: the worker's workerd (the isolate, the
    // local D1/KV/R2/Queues) and wrangler's proxy (forwarding; its inspector buffer is drained,
    // see `harness::inspector`).
    for (i, (name, load)) in [("gateway", &gateway), ("JavaScript", &javascript)]
        .into_iter()
        .enumerate()
    {
        if let (Some((w0, p0)), Some((w1, p1))) = (before[i], after[i]) {
            let n = load.latencies.len().max(1) as f64;
            println!(
                "{name}: its workerd {:.0} → {:.0} MiB ({:.1} KiB per delivery), wrangler's proxy {:.0} → {:.0} MiB ({:.1} KiB per delivery)",
                w0 as f64 / 1024.0,
                w1 as f64 / 1024.0,
                (w1 as f64 - w0 as f64) / n,
                p0 as f64 / 1024.0,
                p1 as f64 / 1024.0,
                (p1 as f64 - p0 as f64) / n,
            );
        }
    }
    drop(js);
}

/// Where the gateway isolate's CPU goes while it takes `bodies` (signed pushes for a connected
/// installation), from V8's sampling profiler.
fn profile_pushes(s: &Stack, bodies: &[Vec<u8>], threads: usize) {
    println!(
        "\n## CPU profile of the gateway's isolate ({} pushes)",
        bodies.len()
    );
    s.queues_quiet(Duration::from_secs(300));
    // Names as V8 reports them (wasm functions keep their Rust paths: the name section stays).
    let groups: &[(&str, &[&str])] = &[
        ("the request's handler (edge::serve)", &["edge::serve::"]),
        (
            "configuration (Ctx::new)",
            &["Ctx::new", "Config::from_lookup"],
        ),
        (
            "request body read",
            &["webhooks::read_body", "Request::bytes", "ByteStream"],
        ),
        (
            "signature check (WebCrypto HMAC)",
            &["hmac_sha256_verify", "sha2::", "hmac::"],
        ),
        ("JSON reading", &["serde_json::de", "serde_json::read"]),
        ("JSON writing", &["serde_json::ser", "Serialize"]),
        (
            "D1 (statements, batches)",
            &["Ctx::batch", "Ctx::statement", "d1-api"],
        ),
        (
            "queue sends",
            &["Ctx::send_batch", "send_raw_batch", "sendBatch"],
        ),
        ("queue consumers (edge::queues)", &["edge::queues::"]),
        ("calls from wasm into JavaScript", &["wasm-to-js"]),
        ("garbage collection", &["(garbage collector)"]),
    ];
    profile::profile(&s.inspector, 100, groups, || {
        load_on(s, &s.worker, "push", bodies, threads)
            .latencies
            .len()
    });
}

/// An OAuth connect's callback and confirmation, timed (see [`held_and_confirmed`]).
fn oauth_callback(
    s: &Stack,
    slug: &str,
    tenant: &str,
    user: &str,
) -> (f64, String, f64, String, Value) {
    let authorize = s.oauth_connect(slug, tenant, None);
    let callback = s.walk_authorize(&authorize, user);
    held_and_confirmed(s, tenant, &callback)
}

/// Waits for the org's run to complete; seconds since `from`.
fn run_complete_after(s: &Stack, org_id: &str, from: Instant) -> f64 {
    harness::poll_until(Duration::from_secs(600), "enumeration complete", || {
        s.store
            .run(org_id)
            .filter(|r| r.status == "complete")
            .ok_or_else(|| format!("{:?}", s.store.run(org_id)))
    });
    from.elapsed().as_secs_f64()
}

fn oauth(s: &Stack) {
    let instance = harness::GITLAB_INSTANCE;
    s.emulator.gitlab_user(instance, 99001, "bench", "Bench");
    s.emulator.gitlab_group(
        instance,
        99001,
        json!({"name": "Bench", "path": "bench-1000", "members": [99001], "projects": 1000}),
    );
    let (ms, subrequests, confirm_ms, confirm_subrequests, answer) =
        oauth_callback(s, "gitlab", "tenant-bench-gitlab", "99001");
    let redirected = Instant::now();
    let org_id = answer["org_ids"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let done = run_complete_after(s, &org_id, redirected);
    println!("\n## GitLab connect, one group of 1,000 projects");
    println!(
        "callback: {ms:.0} ms wall, {subrequests} subrequests; confirmation: {confirm_ms:.0} ms wall, {confirm_subrequests} subrequests, it said repos={} complete={}; enumeration complete {done:.1} s after it",
        answer["repos"], answer["complete"]
    );

    let user = "0d5e1c9a-0000-4000-8000-000000099002";
    s.emulator.azure_user(user, "Bench", None);
    let projects: Vec<Value> = (0..60)
        .map(|i| json!({"name": format!("p{i:02}"), "repositories": 5}))
        .collect();
    s.emulator.azure_org(
        "bench-azure-60",
        json!({"members": [user], "projects": projects}),
    );
    let (ms, subrequests, confirm_ms, confirm_subrequests, answer) =
        oauth_callback(s, "azure-devops", "tenant-bench-azure", user);
    let redirected = Instant::now();
    let done = run_complete_after(
        s,
        answer["org_ids"][0].as_str().unwrap_or_default(),
        redirected,
    );
    println!("\n## Azure DevOps connect, one organization of 60 projects × 5 repositories");
    println!(
        "callback: {ms:.0} ms wall, {subrequests} subrequests; confirmation: {confirm_ms:.0} ms wall, {confirm_subrequests} subrequests, it said repos={} complete={}; enumeration complete {done:.1} s after it",
        answer["repos"], answer["complete"]
    );

    println!("\n## Sync of the 1,000-project group (median of 5)");
    let jwt = s.portal_jwt("tenant-bench-gitlab", "tenant-bench-gitlab-tech");
    let sync = || {
        let t0 = Instant::now();
        let resp = s.http.request(
            "POST",
            &format!("{}/v1/orgs/{org_id}/sync", s.worker),
            &[("authorization", &format!("Bearer {jwt}"))],
            None,
        );
        assert_eq!(resp.status, 200, "{}", resp.body);
        t0.elapsed().as_secs_f64() * 1000.0
    };
    let fresh = median((0..5).map(|_| sync()).collect());
    let refreshed = median(
        (0..5)
            .map(|_| {
                s.emulator.gitlab_expire(instance, Some(99001));
                sync()
            })
            .collect(),
    );
    println!("token still valid: {fresh:.0} ms; token refused first (401, refresh, retry): {refreshed:.0} ms");

    println!("\n## Provider token at rest (native, release: AES-256-GCM, 41-byte token)");
    let keys = onecode_edge::auth::token_crypto::TokenKeys::parse(harness::CURRENT_TOKEN_KEY)
        .expect("key");
    let binding = onecode_edge::auth::token_crypto::Binding {
        provider: "gitlab",
        record_id: "0123456789abcdef0123456789abcdef",
        field: "access_token",
    };
    let token = format!("glemu-at-{}", "0".repeat(32));
    let n = 20_000;
    let t0 = Instant::now();
    let mut envelope = String::new();
    for i in 0..n {
        envelope = onecode_edge::auth::token_crypto::seal(&keys, [i as u8; 12], &binding, &token);
    }
    let seal = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t0 = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            onecode_edge::auth::token_crypto::open(&keys, &binding, &envelope).expect("opens"),
        );
    }
    let open = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "seal {seal:.2} µs, open {open:.2} µs; envelope {} bytes",
        envelope.len()
    );
}

fn access(s: &Stack) {
    const MEMBERS: usize = 1_000;
    const REPOS: u32 = 500;
    println!("\n## Access audit");
    let inst = Inst::org(9_300, "bench-access", REPOS);
    s.emulator.empty_git("github/bench-access/");
    s.emulator.put_installation(&inst);
    let members: Vec<Value> = (0..MEMBERS)
        .map(|i| {
            json!({
                "login": format!("user-{i:04}"),
                "role": if i < 50 { "admin" } else { "member" },
                "two_factor": i % 7 != 0,
            })
        })
        .collect();
    let repos = s.emulator.repositories(inst.id);
    let outside: Vec<Value> = (0..10)
        .map(|i| json!({"login": format!("contractor-{i}"), "admin_on": [repos[i].name]}))
        .collect();
    s.emulator.set_github_access(
        inst.id,
        json!({"members": members, "outside_collaborators": outside,
               "settings": {"two_factor_requirement_enabled": false}}),
    );
    for repo in repos.iter().take(100) {
        s.emulator
            .set_protection(inst.id, &repo.name, "main", json!({"required_reviews": 1}));
    }
    let tenant = "tenant-bench-access";
    let portal = harness::portal::Portal::new(s, tenant);
    let done = s.connect_and_install(tenant, inst.id).done();
    let org_id = done.org_id;
    // The connect's backups first (empty repositories), so the calls counted are the snapshot's.
    harness::poll_until(Duration::from_secs(600), "the connect's backups", || {
        let waiting = s.store.count(
            "SELECT count(*) FROM backup_jobs WHERE org_id = ?1 AND status IN ('queued', 'running')",
            [org_id.as_str()],
        );
        if waiting == 0 {
            Ok(())
        } else {
            Err(format!("{waiting} backup jobs waiting"))
        }
    });
    let before = s.emulator.worker_requests(inst.id).len();
    let t0 = Instant::now();
    portal.sync(&org_id);
    let access = harness::poll_until(Duration::from_secs(600), "the access snapshot", || {
        let access = portal.get(&format!("/v1/orgs/{org_id}/access"));
        if access["reading"] == json!(false) && access["read_at"].is_string() {
            Ok(access)
        } else {
            Err("reading".to_string())
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let calls: Vec<_> = s
        .emulator
        .worker_requests(inst.id)
        .into_iter()
        .skip(before)
        .collect();
    let reads: Vec<_> = calls
        .iter()
        .filter(|r| !r.path.ends_with("/access_tokens") && !r.path.contains(".git/"))
        .collect();
    let steps: std::collections::BTreeSet<&str> = reads
        .iter()
        .filter_map(|r| r.invocation.as_deref())
        .collect();
    let posture = portal.get(&format!("/v1/orgs/{org_id}/posture"));
    println!(
        "snapshot of {} members and {} repositories: {wall:.1} s from the sync request; {} GitHub reads in {} invocations ({:.0} per invocation, within the 45-subrequest budget with the step's own D1, token and queue calls); {} findings",
        access["members"].as_array().map_or(0, Vec::len),
        access["repositories"].as_array().map_or(0, Vec::len),
        reads.len(),
        steps.len(),
        reads.len() as f64 / steps.len().max(1) as f64,
        posture["findings"].as_array().map_or(0, Vec::len),
    );
}
