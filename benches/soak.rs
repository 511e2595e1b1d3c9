//! `scripts/soak`: the gateway under sustained load, with accounting (issue #11, item 2). It
//! reuses the end-to-end fixture (`tests/e2e/harness`): the emulator and the worker under
//! `wrangler dev` (an `e2e` build, whose queue trace tells when the queues are quiet), on
//! loopback only, started here and stopped at the end.
//!
//! For `ONECODE_SOAK_SECS` seconds (default 600, at most 3,600) or `ONECODE_SOAK_MAX` deliveries
//! (default 2,000,000), whichever comes first, `ONECODE_SOAK_THREADS` client threads (default 6)
//! each send signed ~25 KB `push` deliveries to a connected installation of 50 repositories as
//! fast as the gateway answers them: the highest rate the local stack holds. One delivery in 50
//! is sent a second time with the same delivery id, as GitHub's "Redeliver" does. Meanwhile one
//! more thread connects a new installation, syncs an org and asks for a backup of one, over
//! and over; every push also leaves a backup job and an analysis job for the queues.
//!
//! Then, once the queues are quiet, every delivery id sent is accounted for in D1: **applied**
//! (its `webhook_deliveries` row and exactly one `org_activity` row), **retryable** (never
//! acknowledged: every answer was a 5xx, a 429 or a dropped connection, so GitHub would redeliver
//! it; not applied, or applied once), **duplicated** (more than one activity row) or **lost**
//! (acknowledged with a 2xx but not applied, or refused with another 4xx). It prints sent /
//! applied / retryable / duplicated / lost, latency percentiles per minute, and the memory of
//! the gateway's workerd process (resident, anonymous and file-backed) with the size of the local
//! state on disk, at the start, every minute and at the end, beside the memory of wrangler's
//! proxy workerd (see `support::workerds`). The goal is 0 lost, 0 duplicated and flat memory;
//! the script exits with an error when a delivery is lost or duplicated.

// The shared end-to-end fixture; the soak uses only part of it.
#[allow(dead_code)]
#[path = "../tests/e2e/harness/mod.rs"]
mod harness;

// The benchmarks' shared helpers (the workerd processes, the padded push delivery).
#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::emulator::Inst;
use harness::portal::Portal;
use harness::Stack;
use onecode_edge::github::webhook_signature;
use serde_json::Value;
use support::{push_payload, workerds};

/// The installation the deliveries are for, and its repositories.
const INSTALLATION: u64 = 7_000;
const REPOS: u32 = 50;
const TENANT: &str = "tenant-soak";
/// One delivery in this many is redelivered.
const REDELIVER_EVERY: u64 = 50;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one attempt of a delivery got: the status, or 0 when the connection failed.
struct Attempt {
    delivery: String,
    status: u16,
    /// Since the start of the soak.
    at: Duration,
    ms: f64,
}

fn main() {
    let secs = env_u64("ONECODE_SOAK_SECS", 600).clamp(10, 3_600);
    let max = env_u64("ONECODE_SOAK_MAX", 2_000_000);
    let threads = env_u64("ONECODE_SOAK_THREADS", 6).clamp(1, 64) as usize;
    // The e2e build (its queue trace tells when the queues are quiet) with the bench feature's
    // `/_bench/memory` (the size of the gateway's wasm memory).
    std::env::set_var("ONECODE_BENCH_FEATURES", "e2e,bench");
    let s = harness::stack();
    assert!(s.worker.starts_with("http://127.0.0.1:"), "loopback only");

    let org_id = connect(s, TENANT, &Inst::org(INSTALLATION, "soak-org", REPOS));
    // The connect's first backups run before the clock starts.
    s.queues_quiet(Duration::from_secs(600));
    let (workerd, proxy) = workerds(&s.worker).expect("the workerd processes of this soak");
    let start = Memory::of(s, workerd, proxy);
    println!("\n## Soak: {secs} s, at most {max} deliveries, {threads} client threads");
    println!(
        "gateway's workerd (pid {workerd}) resident memory at the start: {} KiB; wrangler's proxy \
         workerd (pid {proxy}): {} KiB",
        start.rss, start.proxy_rss
    );

    let secret = s
        .secrets
        .get("GITHUB_WEBHOOK_SECRET")
        .expect("webhook secret")
        .to_string();
    let bodies: Vec<Vec<u8>> = (1..=REPOS as i64)
        .map(|i| push_payload(INSTALLATION, INSTALLATION as i64 * 1_000_000 + i))
        .collect();
    let signatures: Vec<String> = bodies
        .iter()
        .map(|b| webhook_signature::sign(&secret, b))
        .collect();

    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let memory = Mutex::new(vec![(Duration::ZERO, start)]);
    let (attempts, side) = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let agent = ureq::AgentBuilder::new()
                        .redirects(0)
                        .timeout(Duration::from_secs(30))
                        .build();
                    let mut mine = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= max || Instant::now() >= deadline {
                            break;
                        }
                        let k = (n % REPOS as u64) as usize;
                        let delivery = format!("soak-{}-{n}", std::process::id());
                        let sends = if n.is_multiple_of(REDELIVER_EVERY) {
                            2
                        } else {
                            1
                        };
                        for _ in 0..sends {
                            let sent = Instant::now();
                            let status = deliver(s, &agent, &delivery, &bodies[k], &signatures[k]);
                            mine.push(Attempt {
                                delivery: delivery.clone(),
                                status,
                                at: sent - t0,
                                ms: sent.elapsed().as_secs_f64() * 1000.0,
                            });
                        }
                    }
                    mine
                })
            })
            .collect();
        let side = scope.spawn(|| side_traffic(s, &org_id, &stop));
        let sampler = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                // Sampled every 5 s; printed per minute.
                for _ in 0..20 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                let sample = (t0.elapsed(), Memory::of(s, workerd, proxy));
                memory.lock().expect("samples").push(sample);
            }
        });
        let attempts: Vec<Attempt> = clients
            .into_iter()
            .flat_map(|c| c.join().expect("client thread"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        sampler.join().expect("sampler");
        (attempts, side.join().expect("side traffic"))
    });
    let wall = t0.elapsed();

    // Everything the deliveries and the side traffic queued runs to its end before counting.
    let quiet = s.queues_quiet(Duration::from_secs(1_800));
    let end = Memory::of(s, workerd, proxy);

    let tally = account(s, &attempts);
    println!(
        "\n{} attempts in {:.0} s: {:.0} deliveries/s",
        attempts.len(),
        wall.as_secs_f64(),
        attempts.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "side traffic: {} connects, {} syncs, {} backups requested, statuses {:?}",
        side.connects, side.syncs, side.backups, side.statuses
    );
    println!("queues quiet afterwards: {quiet}");
    tally.print();
    latency_table(&attempts, wall);
    let samples = memory.into_inner().expect("samples");
    println!(
        "\nMemory (KiB) per minute. The gateway's workerd: resident, of which anonymous (heaps: \
         V8, wasm, workerd's own, the local D1/KV/R2/queue simulators) and file-backed (mapped \
         files); the gateway isolate's wasm memory; the size of the local state on disk; and \
         the resident memory of wrangler's proxy workerd, which forwards each request (its \
         inspector buffer drained by the harness)"
    );
    println!(
        "| at | resident | anonymous | file-backed | gateway wasm | state on disk | wrangler proxy |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut minute = 0;
    let row = |at: &str, m: &Memory| {
        println!(
            "| {at} | {} | {} | {} | {} | {} | {} |",
            m.rss, m.anon, m.file, m.wasm, m.state_kib, m.proxy_rss
        )
    };
    for (at, m) in &samples {
        if at.as_secs() >= minute * 60 {
            row(&format!("{} s", at.as_secs()), m);
            minute = at.as_secs() / 60 + 1;
        }
    }
    row("end (queues drained)", &end);
    println!(
        "the gateway's workerd: resident {:+.1}%, anonymous {:+.1}% from start to end; \
         wrangler's proxy: resident {:+.1}%",
        (end.rss as f64 - start.rss as f64) * 100.0 / start.rss as f64,
        (end.anon as f64 - start.anon as f64) * 100.0 / start.anon.max(1) as f64,
        (end.proxy_rss as f64 - start.proxy_rss as f64) * 100.0 / start.proxy_rss.max(1) as f64
    );
    harness::shutdown(false);
    if tally.lost > 0 || tally.duplicated > 0 {
        eprintln!(
            "soak: {} lost, {} duplicated (goal: 0 and 0)",
            tally.lost, tally.duplicated
        );
        std::process::exit(1);
    }
}

/// Connects installation `inst` for `tenant` through the install page and the confirmation:
/// the org's id.
fn connect(s: &Stack, tenant: &str, inst: &Inst) -> String {
    s.emulator.put_installation(inst);
    s.connect_and_install(tenant, inst.id).done().org_id
}

/// Counts of the side traffic, and the statuses it got.
struct Side {
    connects: u32,
    syncs: u32,
    backups: u32,
    statuses: BTreeMap<u16, u32>,
}

/// Until `stop`: connect a new installation of 5 repositories, sync the soak's org, ask for a
/// backup of the new one, and again.
fn side_traffic(s: &Stack, org_id: &str, stop: &AtomicBool) -> Side {
    let portal = Portal::new(s, TENANT);
    let mut side = Side {
        connects: 0,
        syncs: 0,
        backups: 0,
        statuses: BTreeMap::new(),
    };
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let inst = Inst::org(INSTALLATION + k, &format!("soak-side-{k}"), 5);
        let new_org = connect(s, TENANT, &inst);
        side.connects += 1;
        for (path, counter) in [
            (format!("/v1/orgs/{org_id}/sync"), &mut side.syncs),
            (format!("/v1/orgs/{new_org}/backup"), &mut side.backups),
        ] {
            let resp = portal.request("POST", &path, None);
            *side.statuses.entry(resp.status).or_default() += 1;
            *counter += 1;
        }
    }
    side
}

/// One signed delivery: its status, or 0 when the connection failed or timed out.
fn deliver(s: &Stack, agent: &ureq::Agent, delivery: &str, body: &[u8], signature: &str) -> u16 {
    match agent
        .post(&format!("{}/github/webhooks", s.worker))
        .set("content-type", "application/json")
        .set("x-github-event", "push")
        .set("x-github-delivery", delivery)
        .set("x-hub-signature-256", signature)
        .send_bytes(body)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            let _ = r.into_string();
            status
        }
        Err(_) => 0,
    }
}

#[derive(Default)]
struct Tally {
    sent: usize,
    redelivered: usize,
    applied: usize,
    retryable: usize,
    duplicated: usize,
    lost: usize,
    statuses: BTreeMap<u16, usize>,
}

impl Tally {
    fn print(&self) {
        println!("\n| sent | redelivered | applied | retryable | duplicated | lost |");
        println!("|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            self.sent, self.redelivered, self.applied, self.retryable, self.duplicated, self.lost
        );
        println!("answers by status (0: no answer): {:?}", self.statuses);
    }
}

/// Every delivery id against D1: its rows in the delivery log and in the activity log.
fn account(s: &Stack, attempts: &[Attempt]) -> Tally {
    let mut by_id: HashMap<&str, Vec<u16>> = HashMap::new();
    for a in attempts {
        by_id.entry(&a.delivery).or_default().push(a.status);
    }
    let logged: HashMap<String, i64> = s
        .store
        .query(
            "SELECT delivery_id, count(*) FROM webhook_deliveries WHERE delivery_id LIKE 'soak-%' GROUP BY delivery_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .into_iter()
        .collect();
    let activity: HashMap<String, i64> = s
        .store
        .query(
            "SELECT delivery_id, count(*) FROM org_activity WHERE delivery_id LIKE 'soak-%' GROUP BY delivery_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .into_iter()
        .collect();
    let mut tally = Tally {
        sent: by_id.len(),
        ..Tally::default()
    };
    for a in attempts {
        *tally.statuses.entry(a.status).or_default() += 1;
    }
    for (id, statuses) in &by_id {
        if statuses.len() > 1 {
            tally.redelivered += 1;
        }
        let acknowledged = statuses.iter().any(|st| (200..300).contains(st));
        let retryable = |st: &u16| *st == 0 || *st == 429 || *st >= 500;
        let rows = activity.get(*id).copied().unwrap_or(0);
        let applied = logged.get(*id).copied().unwrap_or(0) == 1 && rows == 1;
        if rows > 1 {
            tally.duplicated += 1;
        } else if applied && acknowledged {
            tally.applied += 1;
        } else if !acknowledged && statuses.iter().all(retryable) {
            tally.retryable += 1;
        } else {
            tally.lost += 1;
        }
    }
    tally
}

/// Latency percentiles of the attempts, per minute of the soak (`wall` long: its last minute's
/// rate is over the seconds it had).
fn latency_table(attempts: &[Attempt], wall: Duration) {
    let mut minutes: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for a in attempts {
        minutes.entry(a.at.as_secs() / 60).or_default().push(a.ms);
    }
    println!("\n| minute | deliveries/s | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (minute, mut ms) in minutes {
        ms.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q) as usize];
        println!(
            "| {minute} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms.len() as f64 / (wall.as_secs_f64() - minute as f64 * 60.0).clamp(1.0, 60.0),
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0)
        );
    }
}

/// The memory of the gateway's workerd process (from `/proc/<pid>/status`, KiB), the size of
/// the local state it persists (`--persist-to`, KiB) and the resident memory of wrangler's proxy.
#[derive(Clone, Copy)]
struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
    /// The gateway isolate's wasm linear memory, KiB.
    wasm: u64,
    state_kib: u64,
    proxy_rss: u64,
}

impl Memory {
    fn of(s: &Stack, pid: u32, proxy: u32) -> Memory {
        let wasm = ureq::get(&format!("{}/_bench/memory", s.worker))
            .timeout(Duration::from_secs(30))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .and_then(|v| v["wasm_memory_bytes"].as_u64())
            .unwrap_or(0)
            / 1024;
        let status =
            |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |status: &str, name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        let gateway = status(pid);
        Memory {
            rss: field(&gateway, "VmRSS:"),
            anon: field(&gateway, "RssAnon:"),
            file: field(&gateway, "RssFile:") + field(&gateway, "RssShmem:"),
            wasm,
            state_kib: dir_bytes(&s.persist) / 1024,
            proxy_rss: field(&status(proxy), "VmRSS:"),
        }
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}
