//! What the benchmarks (`gateway`, `soak`) share beyond the end-to-end harness.

use serde_json::{json, Value};

/// `(the worker's workerd, wrangler's proxy's workerd)`: the two processes of the `wrangler dev`
/// serving `worker_url` (`http://127.0.0.1:<port>`). The worker's runs it and the local D1, KV,
/// R2 and Queues. The proxy's entry socket is that public port: it forwards every request to the
/// worker's workerd and holds wrangler's inspector proxy (drained by `harness::inspector`). The
/// worker's workerd is the proxy's sibling (both are children of the same wrangler process).
pub fn workerds(worker_url: &str) -> Option<(u32, u32)> {
    let port = worker_url.rsplit(':').next()?.trim_end_matches('/');
    let public_entry = format!("--socket-addr=entry=127.0.0.1:{port}");
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
    };
    // (pid, parent, whether its entry is the public port) of every workerd.
    let all: Vec<(u32, Option<u32>, bool)> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let mut args = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy);
            if !args.next()?.ends_with("workerd") {
                return None;
            }
            Some((pid, parent(pid), args.any(|a| a == public_entry)))
        })
        .collect();
    let (proxy, wrangler, _) = *all.iter().find(|(_, _, public)| *public)?;
    let worker = all
        .iter()
        .find(|(pid, up, _)| *pid != proxy && *up == wrangler)?
        .0;
    Some((worker, proxy))
}

/// The octokit `push` example for repository `repo_id` of the installation, padded with commits
/// that touch dependency files to ~25 KB.
pub fn push_payload(installation_id: u64, repo_id: i64) -> Vec<u8> {
    padded_push(installation_id, repo_id, true)
}

/// [`push_payload`], its padding commits touching `Cargo.toml`s when `dependencies` (an
/// analysis job per push) or only source files and READMEs otherwise (none).
pub fn padded_push(installation_id: u64, repo_id: i64, dependencies: bool) -> Vec<u8> {
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
        let touched = if dependencies {
            "Cargo.toml"
        } else {
            "README.md"
        };
        c["modified"] = json!([
            format!("services/s{i}/{touched}"),
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
