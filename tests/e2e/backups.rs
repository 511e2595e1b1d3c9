//! Real backups (issue #9), end to end with real git on both sides: the emulator serves real
//! bare repositories over smart HTTP; the worker's backup consumer stores verified bundles in
//! (local) R2; restores go through the portal API and are checked with the real `git`.
//!
//! - connecting an installation backs every repository up: a full bundle each, whose clone has
//!   exactly the source's refs (branches, tags, pull heads; not `refs/pull/*/merge`), checks out
//!   the default branch and passes `git fsck --full`;
//! - new commits, a new branch, a deleted branch and a force-push: an incremental bundle, much
//!   smaller than the full one, whose chain restores to exactly the new refs; an untouched
//!   repository is `unchanged`;
//! - another tenant sees none of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::emulator::Inst;
use crate::harness::portal::{assert_problem, Portal};
use crate::harness::{poll_until, technician, Stack};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![Case::shared(
        "backups::full_then_incremental_restore_with_git",
        full_then_incremental,
    )]
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `refname → oid` of a repository (no HEAD), as `git for-each-ref` lists them.
fn refs_of(dir: &Path) -> BTreeMap<String, String> {
    git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, o)| (r.to_string(), o.to_string()))
        .collect()
}

/// The source repository's refs that a backup keeps (the emulator's admin view).
fn source_refs(s: &Stack, key: &str) -> (BTreeMap<String, String>, String) {
    let resp = s.http.get(&format!("{}/_emulator/git/{key}/refs", s.emulator.base));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    let refs = body["refs"]
        .as_object()
        .expect("refs")
        .iter()
        .filter(|(name, _)| !name.ends_with("/merge"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    (refs, body["head"].as_str().unwrap_or_default().to_string())
}

fn admin(s: &Stack, key: &str, path: &str, body: Value) {
    let resp = s.http.request(
        "POST",
        &format!("{}/_emulator/git/{key}/{path}", s.emulator.base),
        &[],
        Some(&body.to_string()),
    );
    assert_eq!(resp.status, 200, "{path}: {}", resp.body);
}

fn snapshots(api: &Portal, org: &str, repo: &str) -> Vec<Value> {
    api.get(&format!("/v1/orgs/{org}/repos/{repo}/snapshots"))["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits for the repository's newest snapshot to be settled (not running) and `n` in number.
#[track_caller]
fn settled(api: &Portal, org: &str, repo: &str, n: usize) -> Value {
    poll_until(Duration::from_secs(120), "the backup", || {
        let all = snapshots(api, org, repo);
        match all.first() {
            Some(newest) if all.len() >= n && newest["status"] != "running" => Ok(newest.clone()),
            _ => Err(format!("{all:?}")),
        }
    })
}

/// Restores `snapshot` through the API into a fresh repository under `dir`, checking each
/// bundle's SHA-256; returns the restored repository.
fn restore(s: &Stack, api: &Portal, jwt: &str, snapshot: &str, dir: &Path) -> PathBuf {
    let chain = api.get(&format!("/v1/snapshots/{snapshot}/restore"))["bundles"]
        .as_array()
        .cloned()
        .expect("bundles");
    let repo = dir.join(format!("restored-{snapshot}"));
    for (i, bundle) in chain.iter().enumerate() {
        let url = format!("{}{}", s.worker, bundle["url"].as_str().expect("url"));
        let bytes = download(&url, jwt);
        assert_eq!(bytes.len() as u64, bundle["bytes"].as_u64().unwrap_or(0));
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            bundle["sha256"].as_str().unwrap_or_default(),
            "the bundle's SHA-256"
        );
        let file = dir.join(format!("{i}.bundle"));
        std::fs::write(&file, &bytes).expect("bundle written");
        let file = file.to_string_lossy().to_string();
        if i == 0 {
            git(dir, &["clone", "--quiet", "--mirror", &file, &repo.to_string_lossy()]);
        } else {
            git(&repo, &["bundle", "verify", "--quiet", &file]);
            git(&repo, &["fetch", "--quiet", "--prune", &file, "+refs/*:refs/*"]);
        }
    }
    repo
}

fn download(url: &str, jwt: &str) -> Vec<u8> {
    let resp = ureq::get(url)
        .set("authorization", &format!("Bearer {jwt}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.header("content-type"), Some("application/x-git-bundle"));
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes).expect("body");
    bytes
}

fn full_then_incremental(s: &Stack) {
    let tenant = "backup-e2e";
    let inst = Inst::org(6_101, "e2e-backup", 2);
    s.emulator.put_installation(&inst);
    // Some history worth backing up incrementally: 8 commits of 64 KiB of random bytes.
    let first_repo = s.emulator.repositories(inst.id).remove(0).full_name;
    admin(
        s,
        &format!("github/{first_repo}"),
        "commits",
        json!({"branch": "main", "count": 8, "file_bytes": 65_536, "incompressible": true}),
    );
    let done = s.connect_and_install(tenant, inst.id).done();
    let api = Portal::new(s, tenant);
    let jwt = s.portal_jwt(tenant, &technician(tenant));
    let repos = api.get(&format!("/v1/orgs/{}/repos", done.org_id))["items"]
        .as_array()
        .cloned()
        .expect("repos");
    assert_eq!(repos.len(), 2);
    let dir = std::env::temp_dir().join(format!("onecode-backup-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");

    // Every repository's first backup: full, verified, restorable to exactly the source.
    let mut firsts = Vec::new();
    for repo in &repos {
        let id = repo["id"].as_str().expect("id");
        let first = settled(&api, &done.org_id, id, 1);
        assert_eq!((first["status"].as_str(), first["kind"].as_str()), (Some("ok"), Some("full")), "{first}");
        assert!(first["pack_objects"].as_u64().unwrap_or(0) > 0, "{first}");
        let key = format!("github/{}", repo["full_name"].as_str().expect("full name"));
        let (source, head) = source_refs(s, &key);
        let restored = restore(s, &api, &jwt, first["id"].as_str().expect("id"), &dir);
        assert_eq!(refs_of(&restored), source, "{key}: restored refs");
        assert!(source.keys().any(|r| r.starts_with("refs/pull/")), "pull heads are kept");
        assert_eq!(git(&restored, &["symbolic-ref", "HEAD"]).trim(), head);
        git(&restored, &["fsck", "--full", "--no-progress"]);
        firsts.push((id.to_string(), key, first));
    }

    // Change one repository every way; back both up again.
    let (changed, key, first) = firsts
        .iter()
        .find(|(_, key, _)| *key == format!("github/{first_repo}"))
        .expect("the repository with history");
    let untouched = &firsts
        .iter()
        .find(|(id, _, _)| id != changed)
        .expect("the other repository")
        .0;
    admin(s, key, "commits", json!({"branch": "main", "count": 3}));
    admin(s, key, "branches", json!({"name": "feature-x", "from": "main"}));
    admin(s, key, "tags", json!({"name": "v2.0", "target": "main", "annotated": true}));
    admin(s, key, "force-push", json!({"branch": "develop", "commits": 1}));
    let deleted = s.http.request(
        "DELETE",
        &format!("{}/_emulator/git/{key}/branches/feature-x", s.emulator.base),
        &[],
        None,
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    admin(s, key, "branches", json!({"name": "feature-y", "from": "main"}));
    let queued = api.request("POST", &format!("/v1/orgs/{}/backup", done.org_id), None);
    assert_eq!(queued.status, 202, "{}", queued.body);
    assert_eq!(queued.json()["queued"], 2);

    let second = settled(&api, &done.org_id, changed, 2);
    assert_eq!(
        (second["status"].as_str(), second["kind"].as_str(), second["base_snapshot_id"].as_str()),
        (Some("ok"), Some("incremental"), first["id"].as_str()),
        "{second}"
    );
    assert!(
        first["bytes"].as_u64().unwrap_or(0) > 500_000,
        "the full bundle holds the history: {first}"
    );
    assert!(
        second["bytes"].as_u64().unwrap_or(u64::MAX) * 20 < first["bytes"].as_u64().unwrap_or(0),
        "the incremental is much smaller than the full: {} vs {} bytes",
        second["bytes"],
        first["bytes"]
    );
    let (source, _) = source_refs(s, key);
    let restored = restore(s, &api, &jwt, second["id"].as_str().expect("id"), &dir);
    assert_eq!(refs_of(&restored), source, "the chain restores the new refs");
    git(&restored, &["fsck", "--full", "--no-progress"]);
    let chain = api.get(&format!("/v1/snapshots/{}/restore", second["id"].as_str().unwrap_or_default()));
    assert_eq!(chain["bundles"].as_array().map(Vec::len), Some(2), "{chain}");

    let again = settled(&api, &done.org_id, untouched, 2);
    assert_eq!(again["status"], "unchanged", "{again}");

    // Another tenant sees none of it.
    let other = Portal::new(s, "backup-e2e-other");
    let snapshot = second["id"].as_str().unwrap_or_default();
    for path in [
        format!("/v1/snapshots/{snapshot}"),
        format!("/v1/snapshots/{snapshot}/restore"),
        format!("/v1/snapshots/{snapshot}/bundle"),
        format!("/v1/orgs/{}/repos/{changed}/snapshots", done.org_id),
    ] {
        assert_problem(&other.request("GET", &path, None), 404, "not_found", &path);
    }
    assert_problem(
        &other.request("POST", &format!("/v1/orgs/{}/backup", done.org_id), None),
        404,
        "not_found",
        "backup now",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
