//! What the benchmarks (`gateway`, `soak`) share beyond the end-to-end harness.

use serde_json::{json, Value};

/// The two workerd processes of this benchmark's `wrangler dev` (descendants of this process):
/// the gateway's, which runs the worker and the local D1, KV, R2 and Queues (its entry socket on
/// a port of its own), and wrangler's proxy, whose entry socket is the public port. The proxy
/// forwards every request to the gateway's workerd and holds wrangler's inspector proxy, which
/// keeps every message the runtime sends it while no DevTools is attached (wrangler 4.86,
/// `templates/startDevWorker/InspectorProxyWorker.ts`, `runtimeMessageBuffer`): its memory grows
/// with traffic whatever the gateway does.
/// `(the gateway's pid, wrangler's proxy's pid)`; `worker_url` is the public
/// `http://127.0.0.1:<port>`.
pub fn workerds(worker_url: &str) -> Option<(u32, Option<u32>)> {
    let port = worker_url.rsplit(':').next()?.trim_end_matches('/');
    let public_entry = format!("--socket-addr=entry=127.0.0.1:{port}");
    let me = std::process::id();
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
    };
    let ours: Vec<(u32, bool)> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let mut args = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy);
            if !args.next()?.ends_with("workerd") {
                return None;
            }
            let public = args.any(|a| a == public_entry);
            let mut p = pid;
            while let Some(up) = parent(p).filter(|&u| u > 1) {
                if up == me {
                    return Some((pid, public));
                }
                p = up;
            }
            None
        })
        .collect();
    Some((
        ours.iter().find(|(_, public)| !public)?.0,
        ours.iter().find(|(_, public)| *public).map(|(pid, _)| *pid),
    ))
}

/// The octokit `push` example for repository `repo_id` of the installation, padded with commits
/// that touch dependency files to ~25 KB.
pub fn push_payload(installation_id: u64, repo_id: i64) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let index: Value = serde_json::from_slice(
        &std::fs::read(
            root.join("node_modules/@octokit/webhooks-examples/api.github.com/index.json"),
        )
        .expect("octokit examples"),
    )
    .expect("examples JSON");
    let mut push = index
        .as_array()
        .and_then(|events| events.iter().find(|e| e["name"] == "push"))
        .and_then(|e| e["examples"].get(0))
        .cloned()
        .expect("a push example");
    push["installation"] = json!({ "id": installation_id });
    push["repository"]["id"] = json!(repo_id);
    let template = push["commits"].get(0).cloned().unwrap_or_else(|| json!({}));
    let mut commits = Vec::new();
    let mut i = 0;
    while serde_json::to_vec(&push).map(|v| v.len()).unwrap_or(0) < 25_000 {
        let mut c = template.clone();
        c["id"] = json!(format!("{i:040x}"));
        c["message"] = json!(format!("Bump dependencies, part {i}"));
        c["modified"] = json!([
            format!("services/s{i}/Cargo.toml"),
            format!("services/s{i}/src/lib.rs")
        ]);
        c["added"] = json!([]);
        c["removed"] = json!([]);
        commits.push(c);
        push["commits"] = json!(commits);
        i += 1;
    }
    serde_json::to_vec(&push).expect("push JSON")
}
