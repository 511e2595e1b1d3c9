//! The backup rules of the posture table, end to end: `backup_failed` while the last backup of a
//! repository failed, `backup_stale` when no ok backup is younger than twice the org's schedule,
//! and both clear once a backup succeeds. Exclusive: it installs fault rules (global to the
//! emulator) and moves backup times into the past in D1 behind the worker.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::emulator::{Faults, Inst};
use crate::harness::portal::Portal;
use crate::harness::{poll_until, Stack};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![Case::exclusive(
        "posture::backup_findings_appear_when_warranted_and_clear_when_fixed",
        backup_findings,
    )]
}

/// The (rule, subject) pairs of the backup findings.
fn backup_findings_of(posture: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = posture["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"].as_str().unwrap_or("").starts_with("backup_"))
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or("").to_string(),
                f["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

/// Asks for a backup of the org and waits until every job settled and the repository's last
/// backup is one of `statuses`.
#[track_caller]
fn backup_until(portal: &Portal<'_>, org: &str, statuses: &[&str]) -> Value {
    let resp = portal.request("POST", &format!("/v1/orgs/{org}/backup"), None);
    assert_eq!(resp.status, 202, "backup now: {}", resp.body);
    poll_until(Duration::from_secs(120), "the backup", || {
        let repos = portal.get(&format!("/v1/orgs/{org}/repos"));
        let repo = repos["items"][0].clone();
        let job_done = portal.s.store.count(
            "SELECT count(*) FROM backup_jobs WHERE org_id = ?1 AND status IN ('queued', 'running')",
            [org],
        ) == 0;
        let status = repo["last_backup_status"].as_str().unwrap_or("");
        if statuses.contains(&status) && job_done {
            Ok(repo)
        } else {
            Err(format!("{}", repo["last_backup_status"]))
        }
    })
}

fn backup_findings(s: &Stack) {
    let tenant = "tenant-posture-backups";
    let portal = Portal::new(s, tenant);
    let inst = Inst::org(10_501, "posture-backups", 1);
    s.emulator.put_installation(&inst);
    let done = s.connect_and_install(tenant, inst.id).done();
    let org = done.org_id;
    let repo = backup_until(&portal, &org, &["ok", "unchanged"]);
    let full_name = repo["full_name"].as_str().expect("full name").to_string();
    let posture = || portal.get(&format!("/v1/orgs/{org}/posture"));
    assert_eq!(backup_findings_of(&posture()), vec![], "backed up just now");

    // The repository's git answers 404 from now on: the backup fails for good.
    let git_url: String = s
        .store
        .query(
            "SELECT git_url FROM repositories WHERE org_id = ?1",
            [org.as_str()],
            |r| r.get(0),
        )
        .pop()
        .expect("git url");
    let path = url::Url::parse(&git_url)
        .expect("git url")
        .path()
        .to_string();
    let faults = Faults::install(
        &s.emulator,
        json!([{"path_prefix": format!("{path}/info/refs"), "status": 404}]),
    );
    backup_until(&portal, &org, &["failed"]);
    let failed = posture();
    assert_eq!(
        backup_findings_of(&failed),
        vec![("backup_failed".to_string(), full_name.clone())],
        "{failed}"
    );
    drop(faults);

    // Its last ok backup is three days old under a daily schedule: stale as well.
    let three_days_ago = crate::harness::auth::now() - 3 * 24 * 3600;
    let old = chrono::DateTime::from_timestamp(three_days_ago, 0)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let moved = s.store.execute(
        "UPDATE snapshots SET finished_at = ?2, taken_at = ?2 \
         WHERE org_id = ?1 AND outcome IN ('ok', 'unchanged', 'empty')",
        [org.as_str(), old.as_str()],
    );
    assert!(moved >= 1, "the ok snapshot moved back");
    s.store.execute(
        "UPDATE repositories SET created_at = ?2 WHERE org_id = ?1",
        [org.as_str(), old.as_str()],
    );
    let stale = posture();
    assert_eq!(
        backup_findings_of(&stale),
        vec![
            ("backup_failed".to_string(), full_name.clone()),
            ("backup_stale".to_string(), full_name.clone()),
        ],
        "{stale}"
    );
    let since = stale["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "backup_stale")
        .and_then(|f| f["since"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .expect("since");
    assert_eq!(
        since.timestamp(),
        three_days_ago + 2 * 24 * 3600,
        "stale since twice the schedule after the last ok backup"
    );

    // A backup that works clears both.
    backup_until(&portal, &org, &["ok", "unchanged"]);
    let fixed = posture();
    assert_eq!(backup_findings_of(&fixed), vec![], "{fixed}");
}
