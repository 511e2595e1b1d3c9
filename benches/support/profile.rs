//! V8's sampling CPU profile of the worker's isolate (`ONECODE_BENCH_PROFILE=1`), taken through
//! the harness's DevTools client (`harness::inspector`), summed per function.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::harness::inspector::Inspector;

/// Profiles the isolate while `load` runs (sampling every `interval_us` µs) and prints where its
/// CPU went: the top functions by self time, the top by inclusive time, and the inclusive time of
/// each of `groups` (a label and the substrings of the function names it covers), per unit of
/// `load`'s result (e.g. deliveries).
pub fn profile(
    inspector: &Inspector,
    interval_us: u32,
    groups: &[(&str, &[&str])],
    load: impl FnOnce() -> usize,
) {
    let call = |method: &str, params: Value| {
        inspector
            .call(method, params)
            .unwrap_or_else(|e| panic!("the profiler: {e}"))
    };
    call("Profiler.enable", json!({}));
    call(
        "Profiler.setSamplingInterval",
        json!({ "interval": interval_us }),
    );
    call("Profiler.start", json!({}));
    let units = load().max(1) as f64;
    let stopped = call("Profiler.stop", json!({}));
    call("Profiler.disable", json!({}));
    let summary = Summary::of(&stopped["profile"]);
    let active = summary.active_us();
    println!(
        "isolate CPU (sampled every {interval_us} µs): {:.0} ms busy of {:.0} ms, {:.0} µs per unit; \
         garbage collection {:.1}%, (program) {:.1}%",
        active / 1e3,
        summary.total_us / 1e3,
        active / units,
        100.0 * summary.self_of("(garbage collector)") / active,
        100.0 * summary.self_of("(program)") / active,
    );
    let share = |us: f64| format!("{:5.1}% {:7.1} µs", 100.0 * us / active, us / units);
    println!("\ntop functions by self time (share of busy time, µs per unit):");
    for (name, us) in summary.top(&summary.self_us, 25) {
        println!("  {}  {name}", share(us));
    }
    println!("\ntop functions by inclusive time:");
    for (name, us) in summary.top(&summary.inclusive_us, 40) {
        println!("  {}  {name}", share(us));
    }
    println!("\ninclusive time of groups (a sample counts once per group; groups overlap):");
    for (label, patterns) in groups {
        println!("  {}  {label}", share(summary.matching(patterns)));
    }
}

struct Summary {
    total_us: f64,
    self_us: HashMap<String, f64>,
    inclusive_us: HashMap<String, f64>,
    /// Each sampled stack (its function names, leaf first) and its time.
    stacks: Vec<(Vec<String>, f64)>,
}

impl Summary {
    fn of(profile: &Value) -> Summary {
        let nodes = profile["nodes"].as_array().cloned().unwrap_or_default();
        let mut names = HashMap::new();
        let mut parents = HashMap::new();
        for node in &nodes {
            let id = node["id"].as_u64().unwrap_or(0);
            names.insert(id, frame_name(&node["callFrame"]));
            for child in node["children"].as_array().into_iter().flatten() {
                parents.insert(child.as_u64().unwrap_or(0), id);
            }
        }
        let samples = profile["samples"].as_array().cloned().unwrap_or_default();
        let deltas = profile["timeDeltas"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut summary = Summary {
            total_us: 0.0,
            self_us: HashMap::new(),
            inclusive_us: HashMap::new(),
            stacks: Vec::new(),
        };
        // A sample stands for the time until the next one.
        for (i, sample) in samples.iter().enumerate() {
            let us = deltas.get(i + 1).and_then(Value::as_f64).unwrap_or(0.0);
            let mut id = sample.as_u64().unwrap_or(0);
            let mut stack = vec![names.get(&id).cloned().unwrap_or_default()];
            while let Some(&up) = parents.get(&id) {
                stack.push(names.get(&up).cloned().unwrap_or_default());
                id = up;
            }
            summary.total_us += us;
            *summary.self_us.entry(stack[0].clone()).or_default() += us;
            for name in stack.iter().collect::<HashSet<_>>() {
                *summary.inclusive_us.entry(name.clone()).or_default() += us;
            }
            summary.stacks.push((stack, us));
        }
        summary
    }

    fn self_of(&self, name: &str) -> f64 {
        self.self_us.get(name).copied().unwrap_or(0.0)
    }

    fn active_us(&self) -> f64 {
        (self.total_us - self.self_of("(idle)")).max(1.0)
    }

    fn top(&self, times: &HashMap<String, f64>, n: usize) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = times
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "(root)" | "(idle)"))
            .map(|(name, us)| (name.clone(), *us))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.truncate(n);
        v
    }

    fn matching(&self, patterns: &[&str]) -> f64 {
        self.stacks
            .iter()
            .filter(|(stack, _)| {
                stack
                    .iter()
                    .any(|name| patterns.iter().any(|p| name.contains(p)))
            })
            .map(|(_, us)| us)
            .sum()
    }
}

/// `function (file:line)` for JavaScript; the demangled name without its hash for wasm.
fn frame_name(frame: &Value) -> String {
    let name = frame["functionName"].as_str().unwrap_or("");
    let url = frame["url"].as_str().unwrap_or("");
    let name = match name.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            path
        }
        _ => name,
    };
    let name = if name.is_empty() { "(anonymous)" } else { name };
    if url.is_empty() || url.starts_with("wasm://") {
        name.to_string()
    } else {
        let file = url.rsplit('/').next().unwrap_or(url);
        format!(
            "{name} ({file}:{})",
            frame["lineNumber"].as_i64().unwrap_or(-1) + 1
        )
    }
}
