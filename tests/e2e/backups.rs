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
//! - another tenant sees none of it;
//! - GitLab projects (merge-request heads kept) and Azure DevOps repositories connected through
//!   OAuth back up and restore the same way, over Basic `oauth2` and Bearer credentials;
//! - a pack cut off mid-stream, a 502 on `git-upload-pack`, a 503 on `info/refs`, an expired
//!   and a revoked GitLab authorization: failed attempts (with a reason, never a secret), no
//!   `ok` snapshot that does not restore, recovery once the fault clears, and no orphaned R2
//!   object or multipart upload;
//! - a repository of several 8 MiB parts round-trips byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::emulator::{Faults, Inst, Logged};
use crate::harness::portal::{assert_problem, Portal};
use crate::harness::{poll_until, technician, Stack, GITLAB_INSTANCE};
use crate::oauth::{gitlab_group, gitlab_user};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        Case::shared(
            "backups::full_then_incremental_restore_with_git",
            full_then_incremental,
        ),
        Case::shared(
            "backups::gitlab_and_azure_devops_back_up_and_restore_like_github",
            gitlab_and_azure,
        ),
        Case::exclusive(
            "backups::git_faults_and_lost_credentials_fail_cleanly_then_recover",
            faults,
        ),
        Case::shared(
            "backups::a_repository_of_several_parts_round_trips_byte_for_byte",
            several_parts,
        ),
    ]
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
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
pub(crate) fn refs_of(dir: &Path) -> BTreeMap<String, String> {
    git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, o)| (r.to_string(), o.to_string()))
        .collect()
}

/// The source repository's refs that a backup keeps (the emulator's admin view).
pub(crate) fn source_refs(s: &Stack, key: &str) -> (BTreeMap<String, String>, String) {
    let resp = s
        .http
        .get(&format!("{}/_emulator/git/{key}/refs", s.emulator.base));
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

pub(crate) fn admin(s: &Stack, key: &str, path: &str, body: Value) {
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

/// Waits until the repository's backup jobs have all ended (an attempt that failed and will be
/// retried, e.g. when the backups sharing an invocation ran out of subrequests, leaves its job
/// running) and it has at least `n` snapshots, the newest not running; returns the newest.
#[track_caller]
pub(crate) fn settled(api: &Portal, org: &str, repo: &str, n: usize) -> Value {
    poll_until(Duration::from_secs(120), "the backup", || {
        let waiting: Vec<String> = api
            .s
            .store
            .jobs(org)
            .into_iter()
            .filter(|j| j.repository_id == repo && (j.status == "queued" || j.status == "running"))
            .map(|j| format!("job {} {}", j.id, j.status))
            .collect();
        let all = snapshots(api, org, repo);
        match all.first() {
            Some(newest)
                if waiting.is_empty() && all.len() >= n && newest["status"] != "running" =>
            {
                Ok(newest.clone())
            }
            _ => Err(format!("{waiting:?} {all:?}")),
        }
    })
}

/// Restores `snapshot` through the API into a fresh repository under `dir`, checking each
/// bundle's SHA-256; returns the restored repository.
pub(crate) fn restore(s: &Stack, api: &Portal, jwt: &str, snapshot: &str, dir: &Path) -> PathBuf {
    let answer = api.get(&format!("/v1/snapshots/{snapshot}/restore"));
    let chain = answer["bundles"].as_array().cloned().expect("bundles");
    let head = answer["head"]
        .as_str()
        .unwrap_or_else(|| panic!("the branch HEAD named: {answer}"));
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
            git(
                dir,
                &[
                    "clone",
                    "--quiet",
                    "--mirror",
                    &file,
                    &repo.to_string_lossy(),
                ],
            );
        } else {
            git(&repo, &["bundle", "verify", "--quiet", &file]);
            git(
                &repo,
                &["fetch", "--quiet", "--prune", &file, "+refs/*:refs/*"],
            );
        }
    }
    // A bundle cannot say which branch HEAD names; the snapshot recorded it.
    git(&repo, &["symbolic-ref", "HEAD", head]);
    repo
}

/// `scripts/restore` as a user runs it: a working clone of `snapshot` in `dir/name`.
pub(crate) fn restore_with_script(s: &Stack, jwt: &str, snapshot: &str, target: &Path) {
    let out = Command::new(s.root.join("scripts/restore"))
        .args([snapshot, &target.to_string_lossy()])
        .env("ONECODE_TOKEN", jwt)
        .env("ONECODE_URL", &s.worker)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("scripts/restore runs");
    assert!(
        out.status.success(),
        "scripts/restore {snapshot}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        target.to_string_lossy(),
        "it prints the clone's directory"
    );
}

fn download(url: &str, jwt: &str) -> Vec<u8> {
    let resp = ureq::get(url)
        .set("authorization", &format!("Bearer {jwt}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(
        resp.header("content-type"),
        Some("application/x-git-bundle")
    );
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
        assert_eq!(
            (first["status"].as_str(), first["kind"].as_str()),
            (Some("ok"), Some("full")),
            "{first}"
        );
        assert!(first["pack_objects"].as_u64().unwrap_or(0) > 0, "{first}");
        let key = format!("github/{}", repo["full_name"].as_str().expect("full name"));
        let (source, head) = source_refs(s, &key);
        let restored = restore(s, &api, &jwt, first["id"].as_str().expect("id"), &dir);
        assert_eq!(refs_of(&restored), source, "{key}: restored refs");
        assert!(
            source.keys().any(|r| r.starts_with("refs/pull/")),
            "pull heads are kept"
        );
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
    admin(
        s,
        key,
        "branches",
        json!({"name": "feature-x", "from": "main"}),
    );
    admin(
        s,
        key,
        "tags",
        json!({"name": "v2.0", "target": "main", "annotated": true}),
    );
    admin(
        s,
        key,
        "force-push",
        json!({"branch": "develop", "commits": 1}),
    );
    let deleted = s.http.request(
        "DELETE",
        &format!("{}/_emulator/git/{key}/branches/feature-x", s.emulator.base),
        &[],
        None,
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    admin(
        s,
        key,
        "branches",
        json!({"name": "feature-y", "from": "main"}),
    );
    let queued = api.request("POST", &format!("/v1/orgs/{}/backup", done.org_id), None);
    assert_eq!(queued.status, 202, "{}", queued.body);
    assert_eq!(queued.json()["queued"], 2);

    let second = settled(&api, &done.org_id, changed, 2);
    assert_eq!(
        (
            second["status"].as_str(),
            second["kind"].as_str(),
            second["base_snapshot_id"].as_str()
        ),
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
    assert_eq!(
        refs_of(&restored),
        source,
        "the chain restores the new refs"
    );
    git(&restored, &["fsck", "--full", "--no-progress"]);
    let chain = api.get(&format!(
        "/v1/snapshots/{}/restore",
        second["id"].as_str().unwrap_or_default()
    ));
    assert_eq!(
        chain["bundles"].as_array().map(Vec::len),
        Some(2),
        "{chain}"
    );
    // The same with `scripts/restore`, as a user runs it: a working clone on the default
    // branch with every ref the backup holds.
    let working = dir.join("with-the-script");
    restore_with_script(s, &jwt, second["id"].as_str().unwrap_or_default(), &working);
    assert_eq!(refs_of(&working), source, "scripts/restore: the same refs");
    let (_, head) = source_refs(s, key);
    assert_eq!(git(&working, &["symbolic-ref", "HEAD"]).trim(), head);
    assert_eq!(
        git(&working, &["status", "--porcelain"]).trim(),
        "",
        "checked out, clean"
    );
    assert!(
        working.join("README.md").is_file(),
        "the default branch's files are there"
    );
    let bad = Command::new(s.root.join("scripts/restore"))
        .args(["no-such-snapshot", &dir.join("nothing").to_string_lossy()])
        .env("ONECODE_TOKEN", &jwt)
        .env("ONECODE_URL", &s.worker)
        .output()
        .expect("scripts/restore runs");
    assert!(!bad.status.success(), "an unknown snapshot fails");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!dir.join("nothing").exists(), "nothing is left behind");

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

// ---- shared by the tests below ----

/// R2 multipart parts of the executor (`PART_BYTES` in `src/edge/backup/executor.rs`).
const PART_BYTES: u64 = 8 * 1024 * 1024;
const GL: &str = "gitlab";
const AZ: &str = "azure-devops";

/// A temporary directory, removed when dropped (also when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("onecode-backup-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[track_caller]
pub(crate) fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
}

pub(crate) fn org_repos(api: &Portal, org: &str) -> Vec<Value> {
    api.get(&format!("/v1/orgs/{org}/repos?limit=100"))["items"]
        .as_array()
        .cloned()
        .expect("repos")
}

/// Percent-encodes one URL path segment.
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The emulator's key (`/_emulator/git/{key}`) of a repository the portal lists as `full_name`.
fn emulator_key(provider: &str, full_name: &str) -> String {
    match provider {
        "github" => format!("github/{full_name}"),
        "gitlab" => format!("gitlab/{GITLAB_INSTANCE}/{full_name}"),
        _ => format!(
            "azure/{}",
            full_name
                .split('/')
                .map(segment)
                .collect::<Vec<_>>()
                .join("/")
        ),
    }
}

/// Restores an `ok` snapshot through the API (its whole chain) and checks the result with git:
/// exactly the refs the snapshot records, `git fsck --full`. Returns the restored repository.
#[track_caller]
fn restore_checked(s: &Stack, api: &Portal, jwt: &str, snapshot: &Value, dir: &Path) -> PathBuf {
    let id = text(snapshot, "id");
    assert_eq!(snapshot["status"], "ok", "{snapshot}");
    let restored = restore(s, api, jwt, id, dir);
    let recorded: BTreeMap<String, String> = snapshot["refs"]
        .as_object()
        .unwrap_or_else(|| panic!("no refs in {snapshot}"))
        .iter()
        .filter(|(name, _)| *name != "HEAD")
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(
        refs_of(&restored),
        recorded,
        "snapshot {id} restores to the refs it records"
    );
    git(&restored, &["fsck", "--full", "--no-progress"]);
    restored
}

/// Restores `snapshot` and checks it against the source repository `key` as the emulator has it
/// now: the same refs, `HEAD` on the same branch, `git fsck --full`.
#[track_caller]
fn restore_matches_source(
    s: &Stack,
    api: &Portal,
    jwt: &str,
    snapshot: &Value,
    key: &str,
    dir: &Path,
) -> BTreeMap<String, String> {
    let restored = restore_checked(s, api, jwt, snapshot, dir);
    let (source, head) = source_refs(s, key);
    let refs = refs_of(&restored);
    assert_eq!(
        refs, source,
        "{key}: the restore has exactly the source's refs"
    );
    assert_eq!(
        git(&restored, &["symbolic-ref", "HEAD"]).trim(),
        head,
        "{key}: HEAD"
    );
    let _ = std::fs::remove_dir_all(&restored);
    refs
}

fn snapshot_ids(api: &Portal, org: &str, repo: &str) -> BTreeSet<String> {
    snapshots(api, org, repo)
        .iter()
        .map(|s| text(s, "id").to_string())
        .collect()
}

/// The repository's snapshots not in `before`, newest first.
fn snapshots_since(api: &Portal, org: &str, repo: &str, before: &BTreeSet<String>) -> Vec<Value> {
    snapshots(api, org, repo)
        .into_iter()
        .filter(|s| !before.contains(text(s, "id")))
        .collect()
}

/// `POST /v1/orgs/{org}/backup` for every repository of the org: 202 and how many were queued.
#[track_caller]
fn backup_now(api: &Portal, org: &str) -> u64 {
    let resp = api.request("POST", &format!("/v1/orgs/{org}/backup"), None);
    assert_eq!(resp.status, 202, "backup now: {}", resp.body);
    resp.json()["queued"].as_u64().expect("queued")
}

/// The ids of the org's backup jobs for one repository.
fn job_ids(s: &Stack, org: &str, repo: &str) -> BTreeSet<String> {
    s.store
        .jobs(org)
        .into_iter()
        .filter(|j| j.repository_id == repo)
        .map(|j| j.id)
        .collect()
}

/// The one backup job of the repository created since `before`, once it has left `queued` and
/// `running` (retries included: the queue waits 2^attempts seconds between them, and sends a
/// message to the dead-letter queue after 5 retries): `(job id, final status)`.
#[track_caller]
fn job_ends(s: &Stack, org: &str, repo: &str, before: &BTreeSet<String>) -> (String, String) {
    poll_until(Duration::from_secs(240), "the backup job to end", || {
        let jobs: Vec<_> = s
            .store
            .jobs(org)
            .into_iter()
            .filter(|j| j.repository_id == repo && !before.contains(&j.id))
            .collect();
        match jobs.as_slice() {
            [job] if job.status != "queued" && job.status != "running" => {
                Ok((job.id.clone(), job.status.clone()))
            }
            _ => Err(format!("{jobs:?}")),
        }
    })
}

/// The job a snapshot was taken for (D1: the API does not show it).
fn job_of(s: &Stack, snapshot: &Value) -> Option<String> {
    s.store
        .query(
            "SELECT job_id FROM snapshots WHERE id = ?1",
            [text(snapshot, "id")],
            |r| r.get::<_, Option<String>>(0),
        )
        .pop()
        .flatten()
}

/// Every secret the emulator ever issued (installation, user, GitLab and Microsoft tokens).
fn issued_secrets(s: &Stack) -> Vec<String> {
    let mut all = s.emulator.tokens();
    all.extend(s.emulator.provider_tokens());
    all
}

/// A failed snapshot's reason names the problem (every word of `all` and, when given, one of
/// `any`; case-insensitive) and holds no secret; the reason is returned.
#[track_caller]
fn failed_with(s: &Stack, snapshot: &Value, all: &[&str], any: &[&str]) -> String {
    assert_eq!(snapshot["status"], "failed", "{snapshot}");
    let error = snapshot["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a failed snapshot says why: {snapshot}"))
        .to_string();
    let lower = error.to_lowercase();
    for word in all {
        assert!(
            lower.contains(&word.to_lowercase()),
            "{word:?} in {error:?}"
        );
    }
    assert!(
        any.is_empty() || any.iter().any(|w| lower.contains(&w.to_lowercase())),
        "one of {any:?} in {error:?}"
    );
    for secret in issued_secrets(s) {
        assert!(!error.contains(&secret), "a token in the reason {error:?}");
    }
    assert!(
        !lower.contains("x-access-token")
            && !lower.contains("basic ")
            && !lower.contains("bearer "),
        "credentials in the reason {error:?}"
    );
    assert!(snapshot["sha256"].is_null(), "{snapshot}");
    error
}

/// A repository's git URL path as the worker calls it (from D1), e.g. `/owner/repo.git`.
pub(crate) fn git_path(s: &Stack, repo: &str) -> String {
    let url: Option<String> = s
        .store
        .query(
            "SELECT git_url FROM repositories WHERE id = ?1",
            [repo],
            |r| r.get(0),
        )
        .pop()
        .flatten();
    let url = url.unwrap_or_else(|| panic!("repository {repo} has no git URL"));
    url::Url::parse(&url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .path()
        .trim_end_matches('/')
        .to_string()
}

/// The worker's git calls (`info/refs`, `git-upload-pack`) to repositories under `prefix`.
fn git_calls<'a>(log: &'a [Logged], prefix: &str) -> Vec<&'a Logged> {
    log.iter()
        .filter(|r| {
            r.invocation.is_some()
                && r.path.starts_with(prefix)
                && (r.path.ends_with("/info/refs") || r.path.ends_with("/git-upload-pack"))
        })
        .collect()
}

// ---- GitLab and Azure DevOps ----

fn gitlab_and_azure(s: &Stack) {
    let tenant = "backup-e2e-providers";
    let scratch = Scratch::new("providers");
    // GitLab: a group of three projects on the default instance, one with more history.
    let gl_user = gitlab_user(s, GITLAB_INSTANCE, 76_101);
    let group = s.emulator.gitlab_group(
        GITLAB_INSTANCE,
        76_101,
        json!({"name": "Backups 76101", "path": "bk-76101", "members": [76_101],
               "projects": [{"name": "api"}, {"name": "web"}, {"name": "docs"}]}),
    );
    let gl_path = text(&group, "full_path").to_string();
    let gl_busy = format!(
        "gitlab/{GITLAB_INSTANCE}/{gl_path}/{}",
        text(&group["projects"][0], "path")
    );
    admin(
        s,
        &gl_busy,
        "commits",
        json!({"count": 3, "file_bytes": 65_536, "incompressible": true}),
    );
    admin(
        s,
        &gl_busy,
        "tags",
        json!({"name": "v2.0", "annotated": true}),
    );
    // Azure DevOps: an organization of two projects (one named with a space), three repositories.
    let az_user = "0d5e1c9a-0000-4000-8000-000000076101";
    s.emulator.azure_user(az_user, "Azure 76101", None);
    let az_org = "backups-e2e76101";
    s.emulator.azure_org(
        az_org,
        json!({"members": [az_user], "projects": [
            {"name": "core", "repositories": ["api", "web"]},
            {"name": "Ops Tools", "repositories": ["deploy"]},
        ]}),
    );
    let az_busy = format!("azure/{az_org}/core/api");
    // Branched before main moves on: a bundle cannot say which branch HEAD names, and git
    // guesses among the branches at HEAD's commit.
    admin(s, &az_busy, "branches", json!({"name": "release/1.x"}));
    admin(
        s,
        &az_busy,
        "commits",
        json!({"count": 3, "file_bytes": 65_536, "incompressible": true}),
    );

    let gl = s.oauth_connect_as(GL, tenant, &gl_user, None).connected(GL);
    assert_eq!(
        (gl.orgs.as_slice(), gl.complete),
        ([gl_path.clone()].as_slice(), true),
        "{gl:?}"
    );
    let az = s.oauth_connect_as(AZ, tenant, az_user, None).connected(AZ);
    assert_eq!(
        (az.orgs.as_slice(), az.complete),
        ([az_org.to_string()].as_slice(), true),
        "{az:?}"
    );

    let api = Portal::new(s, tenant);
    let jwt = s.portal_jwt(tenant, &technician(tenant));
    for (provider, org) in [("gitlab", &gl.org_ids[0]), ("azure", &az.org_ids[0])] {
        let repos = org_repos(&api, org);
        assert_eq!(repos.len(), 3, "{provider}: {repos:?}");
        for repo in &repos {
            let id = text(repo, "id");
            let key = emulator_key(provider, text(repo, "full_name"));
            let snapshot = settled(&api, org, id, 1);
            assert_eq!(
                (snapshot["status"].as_str(), snapshot["kind"].as_str()),
                (Some("ok"), Some("full")),
                "{key}: {snapshot}"
            );
            let refs = restore_matches_source(s, &api, &jwt, &snapshot, &key, &scratch.0);
            if provider == "gitlab" {
                assert!(
                    refs.keys()
                        .any(|r| r.starts_with("refs/merge-requests/") && r.ends_with("/head")),
                    "{key}: merge-request heads are kept: {refs:?}"
                );
            }
            if key == gl_busy || key == az_busy {
                assert!(
                    refs.contains_key("refs/tags/v2.0")
                        || refs.contains_key("refs/heads/release/1.x"),
                    "{key}: {refs:?}"
                );
                assert!(
                    snapshot["bytes"].as_u64().unwrap_or(0) > 3 * 65_536,
                    "{snapshot}"
                );
            }
        }
    }

    // The credentials each service's git endpoint takes. The emulator logs `bearer` for a live
    // GitLab or Microsoft access token: on GitLab's git routes only when it came as Basic with
    // the user name `oauth2` (any other `Authorization` is `invalid` there), on Azure DevOps'
    // only as a `Bearer` header (Basic is `invalid` there).
    let log = s.emulator.requests();
    for (prefix, what) in [
        (
            format!("/gitlab/{GITLAB_INSTANCE}/{gl_path}/"),
            "GitLab (Basic oauth2)",
        ),
        (format!("/azure/{az_org}/"), "Azure DevOps (Bearer)"),
    ] {
        let calls = git_calls(&log, &prefix);
        let count = |end: &str| calls.iter().filter(|r| r.path.ends_with(end)).count();
        assert!(
            count("/info/refs") >= 3 && count("/git-upload-pack") >= 3,
            "{what}: an advertisement and a pack per repository: {:?}",
            calls.iter().map(|r| r.short()).collect::<Vec<_>>()
        );
        for call in &calls {
            assert_eq!(
                (call.auth.as_str(), call.status),
                ("bearer", 200),
                "{what}: {}",
                call.short()
            );
        }
    }
}

// ---- faults ----

/// One fault round on a repository whose source changed: `rules` installed, a backup asked for,
/// a failed attempt awaited; then the rules cleared (`clear`, else they ran out by themselves),
/// and the job awaited to its end, which must be an `ok` snapshot after nothing but failed
/// ones, for the same job. Returns `(the first failed attempt, the ok snapshot)`.
#[track_caller]
pub(crate) fn fault_round(
    s: &Stack,
    api: &Portal,
    org: &str,
    repo: &str,
    rules: Value,
    clear: bool,
) -> (Value, Value) {
    let before = snapshot_ids(api, org, repo);
    let jobs = job_ids(s, org, repo);
    let mut guard = Some(Faults::install(&s.emulator, rules));
    assert_eq!(backup_now(api, org), 1);
    let failed = poll_until(Duration::from_secs(120), "a failed attempt", || {
        let new = snapshots_since(api, org, repo, &before);
        new.iter()
            .rev()
            .find(|s| s["status"] == "failed")
            .cloned()
            .ok_or_else(|| format!("{new:?}"))
    });
    if clear {
        guard = None;
    }
    let (job, status) = job_ends(s, org, repo, &jobs);
    drop(guard);
    let new = snapshots_since(api, org, repo, &before);
    assert_eq!(
        status, "received",
        "the job ends ok once the fault clears: {new:?}"
    );
    let (ok, attempts) = new.split_first().expect("snapshots");
    assert_eq!(ok["status"], "ok", "the last attempt: {new:?}");
    assert!(
        attempts.iter().all(|a| a["status"] == "failed"),
        "only failed attempts before: {new:?}"
    );
    for snapshot in &new {
        assert_eq!(
            job_of(s, snapshot).as_deref(),
            Some(job.as_str()),
            "{snapshot}"
        );
    }
    (failed, ok.clone())
}

fn faults(s: &Stack) {
    let tenant = "backup-e2e-faults";
    let scratch = Scratch::new("faults");
    let inst = Inst::org(6_102, "e2e-backup-faults", 1);
    s.emulator.put_installation(&inst);
    let full_name = s.emulator.repositories(inst.id).remove(0).full_name;
    let key = format!("github/{full_name}");
    admin(
        s,
        &key,
        "commits",
        json!({"count": 4, "file_bytes": 65_536, "incompressible": true}),
    );
    let done = s.connect_and_install(tenant, inst.id).done();
    let org = done.org_id.as_str();
    let api = Portal::new(s, tenant);
    let jwt = s.portal_jwt(tenant, &technician(tenant));
    let repo = org_repos(&api, org).remove(0);
    let repo_id = text(&repo, "id").to_string();
    let first = settled(&api, org, &repo_id, 1);
    assert_eq!(first["status"], "ok", "{first}");
    let path = git_path(s, &repo_id);
    let pack = format!("{path}/git-upload-pack");
    let advertisement = format!("{path}/info/refs");

    // (a) The pack is cut off mid-stream (the full Content-Length announced), after the first
    // 8 MiB part went to R2: the multipart upload is aborted, nothing is recorded as ok.
    admin(
        s,
        &key,
        "commits",
        json!({"count": 2, "file_bytes": 6_000_000, "incompressible": true}),
    );
    let (failed, ok) = fault_round(
        s,
        &api,
        org,
        &repo_id,
        json!([{"method": "POST", "path_prefix": pack, "truncate_after_bytes": 10_000_000, "times": 1}]),
        false,
    );
    let truncated = failed_with(
        s,
        &failed,
        &[],
        &["upload-pack", "pack", "truncat", "ended early"],
    );
    let failed_key = format!("{tenant}/{org}/{repo_id}/{}.bundle", text(&failed, "id"));
    assert_eq!(
        s.store.r2_uploads(&failed_key),
        [(failed_key.clone(), 2)],
        "the cut-off attempt had started a multipart upload, aborted since"
    );
    assert!(ok["bytes"].as_u64().unwrap_or(0) > 12_000_000, "{ok}");

    // (b) 502 on git-upload-pack until the rule is removed.
    admin(s, &key, "commits", json!({"count": 1}));
    let (failed, _) = fault_round(
        s,
        &api,
        org,
        &repo_id,
        json!([{"method": "POST", "path_prefix": pack, "status": 502}]),
        true,
    );
    let bad_gateway = failed_with(s, &failed, &["502", "git-upload-pack"], &[]);

    // (c) 503 on the ref advertisement, once.
    admin(s, &key, "commits", json!({"count": 1}));
    let (failed, _) = fault_round(
        s,
        &api,
        org,
        &repo_id,
        json!([{"method": "GET", "path_prefix": advertisement, "status": 503, "times": 1}]),
        false,
    );
    let unavailable = failed_with(s, &failed, &["503", "info/refs"], &[]);
    eprintln!("backups::faults: reasons {truncated:?}, {bad_gateway:?}, {unavailable:?}");

    // No ok snapshot that does not restore: each restores to the refs it records; the newest to
    // the source.
    let all = snapshots(&api, org, &repo_id);
    let oks: Vec<&Value> = all.iter().filter(|s| s["status"] == "ok").collect();
    assert_eq!(oks.len(), 4, "the first backup and one per round: {all:?}");
    for snapshot in &oks {
        let restored = restore_checked(s, &api, &jwt, snapshot, &scratch.0);
        let _ = std::fs::remove_dir_all(restored);
    }
    restore_matches_source(s, &api, &jwt, oks[0], &key, &scratch.0);

    // GitLab: the user revokes the authorization; the backup fails, nothing is stored.
    let (gl_org, gl_repo_id, gl_key) = gitlab_backed_up(s, &api, tenant, 76_201);
    admin(s, &gl_key, "commits", json!({"count": 1}));
    s.emulator.gitlab_revoke_user(GITLAB_INSTANCE, 76_201);
    let seq = s.emulator.requests().last().map_or(0, |r| r.seq);
    let before = snapshot_ids(&api, &gl_org, &gl_repo_id);
    let jobs = job_ids(s, &gl_org, &gl_repo_id);
    assert_eq!(backup_now(&api, &gl_org), 1);
    let (_, status) = job_ends(s, &gl_org, &gl_repo_id, &jobs);
    let new = snapshots_since(&api, &gl_org, &gl_repo_id, &before);
    for snapshot in &new {
        failed_with(s, snapshot, &[], &[]);
    }
    let org_status = s
        .store
        .query(
            "SELECT status FROM organizations WHERE id = ?1",
            [&gl_org],
            |r| r.get::<_, String>(0),
        )
        .pop()
        .unwrap_or_default();
    assert!(
        status == "failed" || status == "paused" || org_status != "active",
        "the backup of a revoked authorization fails: job {status}, org {org_status}, {new:?}"
    );
    let log = s.emulator.requests();
    let served: Vec<String> = git_calls(&log, &git_path(s, &gl_repo_id))
        .into_iter()
        .filter(|r| r.seq > seq && r.status == 200)
        .map(Logged::short)
        .collect();
    assert!(served.is_empty(), "git served a revoked token: {served:?}");
    eprintln!(
        "backups::faults: revoked: job {status}, org {org_status}, attempts {:?}",
        new.iter().map(|n| n["error"].clone()).collect::<Vec<_>>()
    );
    no_orphans(s, tenant, 4 + 1);

    // GitLab: the access token expires early (GitLab answers 401 before the expiry the worker
    // was told); the worker refreshes it and the backup is ok.
    let expiring = "backup-e2e-expired";
    let api = Portal::new(s, expiring);
    let jwt = s.portal_jwt(expiring, &technician(expiring));
    let (gl_org, gl_repo_id, gl_key) = gitlab_backed_up(s, &api, expiring, 76_301);
    let refreshes = || {
        s.emulator
            .oauth_grants()
            .into_iter()
            .filter(|g| {
                g.user_id.as_deref() == Some("76301")
                    && g.grant_type.as_deref() == Some("refresh_token")
            })
            .collect::<Vec<_>>()
    };
    let refreshed_before = refreshes().len();
    admin(s, &gl_key, "commits", json!({"count": 2}));
    s.emulator.gitlab_expire(GITLAB_INSTANCE, Some(76_301));
    let before = snapshot_ids(&api, &gl_org, &gl_repo_id);
    let jobs = job_ids(s, &gl_org, &gl_repo_id);
    assert_eq!(backup_now(&api, &gl_org), 1);
    let (_, status) = job_ends(s, &gl_org, &gl_repo_id, &jobs);
    let new = snapshots_since(&api, &gl_org, &gl_repo_id, &before);
    assert_eq!(
        (status.as_str(), new.first().map(|n| &n["status"])),
        ("received", Some(&json!("ok"))),
        "an expired access token is refreshed and the backup is ok: {new:?}"
    );
    let grants = refreshes();
    assert!(
        grants[refreshed_before..].iter().any(|g| g.outcome == "ok"),
        "the worker refreshed the connection: {grants:?}"
    );
    restore_matches_source(s, &api, &jwt, &new[0], &gl_key, &scratch.0);
    no_orphans(s, expiring, 2);
}

/// A GitLab user `id` of the default instance, owner of a group `id` of one project, connected
/// for `tenant` through OAuth, and the project's first backup ok: `(org, repository, key)`.
#[track_caller]
fn gitlab_backed_up(s: &Stack, api: &Portal, tenant: &str, id: u64) -> (String, String, String) {
    let user = gitlab_user(s, GITLAB_INSTANCE, id);
    gitlab_group(s, GITLAB_INSTANCE, id, &[id], 1);
    let connected = s.oauth_connect_as(GL, tenant, &user, None).connected(GL);
    let org = connected.org_ids[0].clone();
    let repo = org_repos(api, &org).remove(0);
    let repo_id = text(&repo, "id").to_string();
    let key = emulator_key("gitlab", text(&repo, "full_name"));
    let first = settled(api, &org, &repo_id, 1);
    assert_eq!(first["status"], "ok", "{first}");
    (org, repo_id, key)
}

/// No orphan: the tenant's R2 objects are exactly the bundles of its `ok` snapshots (`oks` of
/// them, with their sizes), no multipart upload of the tenant is left in progress, and no backup
/// is left running.
#[track_caller]
fn no_orphans(s: &Stack, tenant: &str, oks: usize) {
    let prefix = format!("{tenant}/");
    let stored: BTreeMap<String, i64> = s
        .store
        .r2_objects()
        .into_iter()
        .filter(|o| o.key.starts_with(&prefix))
        .map(|o| (o.key, o.size))
        .collect();
    let recorded: BTreeMap<String, i64> = s
        .store
        .query(
            "SELECT s.id, s.object_key, s.size_bytes FROM snapshots s \
             JOIN organizations o ON o.id = s.org_id WHERE o.tenant_id = ?1 AND s.outcome = 'ok'",
            [tenant],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )
        .into_iter()
        .map(|(id, key, size)| {
            (
                key.unwrap_or_else(|| format!("(no key for ok snapshot {id})")),
                size,
            )
        })
        .collect();
    assert_eq!(stored, recorded, "{tenant}: R2 objects vs ok snapshots");
    assert_eq!(recorded.len(), oks, "{tenant}: ok snapshots");
    let pending: Vec<String> = s
        .store
        .r2_pending_uploads()
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .collect();
    assert!(
        pending.is_empty(),
        "{tenant}: multipart uploads left in progress: {pending:?}"
    );
    let running = s.store.count(
        "SELECT count(*) FROM snapshots s JOIN organizations o ON o.id = s.org_id \
         WHERE o.tenant_id = ?1 AND s.outcome = 'running'",
        [tenant],
    );
    assert_eq!(running, 0, "{tenant}: no backup left running");
}

// ---- several parts ----

/// `GET` a bundle: its bytes, `ETag` and `Content-Length`.
fn download_with_headers(url: &str, jwt: &str) -> (Vec<u8>, Option<String>, Option<u64>) {
    let resp = ureq::get(url)
        .set("authorization", &format!("Bearer {jwt}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(
        resp.header("content-type"),
        Some("application/x-git-bundle")
    );
    let etag = resp.header("etag").map(str::to_string);
    let length = resp.header("content-length").and_then(|l| l.parse().ok());
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes).expect("body");
    (bytes, etag, length)
}

fn several_parts(s: &Stack) {
    let tenant = "backup-e2e-parts";
    let scratch = Scratch::new("parts");
    let inst = Inst::org(6_103, "e2e-backup-parts", 1);
    s.emulator.put_installation(&inst);
    let full_name = s.emulator.repositories(inst.id).remove(0).full_name;
    let key = format!("github/{full_name}");
    // 32 MB of random bytes: no compression or delta makes the pack smaller.
    admin(
        s,
        &key,
        "commits",
        json!({"count": 4, "file_bytes": 8_000_000, "incompressible": true}),
    );
    let done = s.connect_and_install(tenant, inst.id).done();
    let org = done.org_id.as_str();
    let api = Portal::new(s, tenant);
    let jwt = s.portal_jwt(tenant, &technician(tenant));
    let repo = org_repos(&api, org).remove(0);
    let repo_id = text(&repo, "id");
    let snapshot = settled(&api, org, repo_id, 1);
    assert_eq!(
        (snapshot["status"].as_str(), snapshot["kind"].as_str()),
        (Some("ok"), Some("full")),
        "{snapshot}"
    );
    let bytes = snapshot["bytes"].as_u64().expect("bytes");
    assert!(
        bytes > 3 * PART_BYTES,
        "more than three parts: {bytes} bytes"
    );
    let sha256 = text(&snapshot, "sha256");

    // Stored as one multipart upload of equal parts, completed; the object is the snapshot's.
    let object_key = format!("{tenant}/{org}/{repo_id}/{}.bundle", text(&snapshot, "id"));
    let object = s
        .store
        .r2_objects()
        .into_iter()
        .find(|o| o.key == object_key)
        .unwrap_or_else(|| panic!("no R2 object {object_key}"));
    assert_eq!(object.size as u64, bytes, "{object:?}");
    let parts = bytes.div_ceil(PART_BYTES);
    assert!(
        object.etag.ends_with(&format!("-{parts}")),
        "a multipart ETag of {parts} parts: {object:?}"
    );
    assert_eq!(s.store.r2_uploads(&object_key), [(object_key.clone(), 1)]);

    // The bundle through the API, byte for byte.
    let url = format!("{}/v1/snapshots/{}/bundle", s.worker, text(&snapshot, "id"));
    let (body, etag, length) = download_with_headers(&url, &jwt);
    assert_eq!((body.len() as u64, length), (bytes, Some(bytes)));
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        sha256,
        "the bundle's SHA-256"
    );
    assert_eq!(etag.as_deref(), Some(format!("\"{sha256}\"").as_str()));
    drop(body);

    // And with git: exactly the source.
    restore_matches_source(s, &api, &jwt, &snapshot, &key, &scratch.0);
}
