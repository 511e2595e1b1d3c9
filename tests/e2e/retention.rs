//! Retention of real backups (issue #9), end to end: the hourly pass expires snapshots past the
//! org's retention, keeps the bundles a kept snapshot's restore chain needs (in R2, restorable
//! with `git`), and deletes them from R2 once nothing kept needs them.
//!
//! It ages snapshots by writing their times in D1 and fires the hourly cron, so it runs alone.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::backups::{admin, git, refs_of, restore, settled, source_refs};
use crate::harness::auth::now;
use crate::harness::emulator::Inst;
use crate::harness::portal::{assert_problem, Portal};
use crate::harness::{technician, Stack};
use crate::Case;

const HOURLY_CRON: &str = "15 * * * *";

pub fn cases() -> Vec<Case> {
    vec![Case::exclusive(
        "retention::bundles_leave_r2_only_when_no_kept_chain_needs_them",
        chains,
    )]
}

/// Moves a snapshot's times `days` into the past.
fn age(s: &Stack, snapshot: &str, days: i64) {
    let at = onecode_edge::time::rfc3339(now() - days * 86_400);
    let changed = s.store.execute(
        "UPDATE snapshots SET taken_at = ?1, started_at = ?1, finished_at = ?1 WHERE id = ?2",
        rusqlite::params![at, snapshot],
    );
    assert_eq!(changed, 1, "snapshot {snapshot} aged");
}

/// The R2 keys of every stored object.
fn stored(s: &Stack) -> BTreeSet<String> {
    s.store.r2_objects().into_iter().map(|o| o.key).collect()
}

fn id(snapshot: &Value) -> String {
    snapshot["id"].as_str().expect("snapshot id").to_string()
}

fn chains(s: &Stack) {
    let tenant = "retention-e2e";
    let inst = Inst::org(6_301, "e2e-retention", 1);
    s.emulator.put_installation(&inst);
    let done = s.connect_and_install(tenant, inst.id).done();
    let api = Portal::new(s, tenant);
    let jwt = s.portal_jwt(tenant, &technician(tenant));
    let org = done.org_id.as_str();
    let repos = api.get(&format!("/v1/orgs/{org}/repos"))["items"]
        .as_array()
        .cloned()
        .expect("repos");
    let repo = repos[0]["id"].as_str().expect("repository id").to_string();
    let key = format!(
        "github/{}",
        repos[0]["full_name"].as_str().expect("full name")
    );
    let dir = std::env::temp_dir().join(format!("onecode-retention-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");

    // A full, then an incremental on it.
    let full = settled(&api, org, &repo, 1);
    assert_eq!(
        (full["status"].as_str(), full["kind"].as_str()),
        (Some("ok"), Some("full"))
    );
    admin(s, &key, "commits", json!({"count": 2}));
    let queued = api.request("POST", &format!("/v1/orgs/{org}/backup"), None);
    assert_eq!(queued.status, 202, "{}", queued.body);
    let incremental = settled(&api, org, &repo, 2);
    assert_eq!(
        (
            incremental["kind"].as_str(),
            incremental["base_snapshot_id"].as_str()
        ),
        (Some("incremental"), Some(id(&full).as_str())),
        "{incremental}"
    );
    let full_object = format!("{tenant}/{org}/{repo}/{}.bundle", id(&full));
    assert!(stored(s).contains(&full_object), "the full bundle is in R2");

    // The full one passes retention (90 days); the incremental needs it, so its bundle stays.
    age(s, &id(&full), 100);
    s.trigger_cron(HOURLY_CRON);
    let expired = api.get(&format!("/v1/snapshots/{}", id(&full)));
    assert_eq!(expired["retention"], "expired", "{expired}");
    assert!(
        stored(s).contains(&full_object),
        "kept for the incremental's chain"
    );
    let restored = restore(s, &api, &jwt, &id(&incremental), &dir);
    assert_eq!(
        refs_of(&restored),
        source_refs(s, &key).0,
        "the kept chain restores"
    );
    git(&restored, &["fsck", "--full", "--no-progress"]);

    // Always full from now on: a new full, then the old chain passes retention and goes.
    api.patch(org, json!({ "full_every": 1 }));
    admin(s, &key, "commits", json!({"count": 1}));
    let queued = api.request("POST", &format!("/v1/orgs/{org}/backup"), None);
    assert_eq!(queued.status, 202, "{}", queued.body);
    let newer = settled(&api, org, &repo, 3);
    assert_eq!(newer["kind"], "full", "{newer}");
    age(s, &id(&incremental), 99);
    s.trigger_cron(HOURLY_CRON);
    let objects = stored(s);
    let prefix = format!("{tenant}/{org}/{repo}/");
    let kept: Vec<&String> = objects.iter().filter(|k| k.starts_with(&prefix)).collect();
    assert_eq!(
        kept,
        [&format!("{prefix}{}.bundle", id(&newer))],
        "only the newest full's bundle is left"
    );
    for gone in [&full, &incremental] {
        let path = format!("/v1/snapshots/{}/bundle", id(gone));
        assert_problem(&api.request("GET", &path, None), 409, "conflict", &path);
        let path = format!("/v1/snapshots/{}/restore", id(gone));
        assert_problem(&api.request("GET", &path, None), 409, "conflict", &path);
    }
    let restored = restore(s, &api, &jwt, &id(&newer), &dir);
    assert_eq!(refs_of(&restored), source_refs(s, &key).0);
    let _ = std::fs::remove_dir_all(&dir);
    // Nothing is left running for the next test.
    crate::harness::poll_until(Duration::from_secs(60), "no backup running", || {
        let running = s.store.count(
            "SELECT count(*) FROM snapshots WHERE org_id = ?1 AND outcome = 'running'",
            [org],
        );
        (running == 0)
            .then_some(())
            .ok_or(format!("{running} running"))
    });
}
