//! Organizations over time (issue #4): the portal's org API, the cron triggers and the queues,
//! end to end.
//!
//! - several organizations per tenant, each with its own settings (`PATCH /v1/orgs/{id}`),
//!   listed with each filter (`client`, `provider`, `status`) and walked page by page; one org
//!   read back; its repositories listed by status and page by page; the answers have exactly the
//!   fields `openapi.json` describes;
//! - invalid settings (out of range, wrong type, unknown field, empty object) are a 422 naming
//!   the field, a body that is not JSON a 400, and nothing changes;
//! - a sync after repositories were added and removed on GitHub: exact counts, removed
//!   repositories kept as `removed` with their queued jobs paused, new ones with stubs and jobs;
//!   a second sync finds nothing to do; a repository given back is active again and its paused
//!   job is not left paused; syncing an uninstalled org disconnects it (409);
//! - two syncs of one org at once record every repository and job once;
//! - disconnect (queued jobs paused, snapshots kept, GitHub not called, sync refused), then a
//!   reconnect through the connect flow: same org and settings, only new repositories counted as
//!   added, paused jobs resumed and received;
//! - the scheduled sync (`0 */4 * * *`) disconnects an uninstalled org, suspends one whose
//!   installation is suspended, and then leaves both alone;
//! - scheduled backups (`15 * * * *`): one job per active repository of each org due this hour,
//!   once per hour, none for `off`, removed repositories or disconnected orgs;
//! - snapshots expire by their org's retention, a disconnected org's too;
//! - another tenant's org id is a 404 on every `/v1/orgs/{id}…` route and changes nothing;
//! - a `sync_org.v1` message that fails every time ends in `dead_letters` with its reason; a
//!   later failure of the same message (it recurs every four hours) is counted from 1 again;
//! - `GET /v1/openapi.json` describes the org API.
//!
//! The cron triggers reach every organization on the stack (the scheduled sync re-enumerates all
//! active ones; the hourly pass schedules every org due that hour), which would disturb other
//! tests' counts, so the tests that fire them run alone (`Kind::Exclusive`) and wait for the work
//! they started before they end. Rows the worker has no API for yet (snapshots, jobs waiting for
//! the backup executor) are written into D1 directly, also alone and while the worker is idle:
//! workerd waits for no lock, so a statement of its meeting such a write fails.
//! Installation ids 3100-3199.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Barrier;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use onecode_edge::api::routes::ROUTES;
use onecode_edge::messages::SyncMessage;
use onecode_edge::time::{backup_hour, parse_rfc3339, rfc3339};

use crate::harness::auth::now;
use crate::harness::checks;
use crate::harness::emulator::Faults;
use crate::harness::emulator::Inst;
use crate::harness::portal::{assert_problem, Portal};
use crate::harness::{poll_until, Stack};
use crate::Case;

/// The worker's cron triggers (`wrangler.toml`).
const SYNC_CRON: &str = "0 */4 * * *";
const HOURLY_CRON: &str = "15 * * * *";

pub fn cases() -> Vec<Case> {
    vec![
        Case::exclusive("orgs::dead_letters_keep_the_last_failure", dead_letters),
        Case::exclusive(
            "orgs::a_new_failure_of_the_same_message_counts_from_one",
            failures_count_per_streak,
        ),
        Case::exclusive(
            "orgs::scheduled_sync_disconnects_uninstalled_and_skips_suspended",
            scheduled_sync,
        ),
        Case::exclusive(
            "orgs::scheduled_backups_once_per_hour_for_the_orgs_due",
            scheduled_backups,
        ),
        Case::exclusive(
            "orgs::snapshots_expire_by_their_orgs_retention",
            snapshot_expiry,
        ),
        Case::exclusive(
            "orgs::sync_records_added_and_removed_repositories",
            sync_added_and_removed,
        ),
        Case::exclusive(
            "orgs::disconnect_pauses_jobs_and_reconnect_resumes_them",
            disconnect_reconnect,
        ),
        Case::exclusive(
            "orgs::a_repository_back_on_github_resumes_its_paused_job",
            repository_back,
        ),
        Case::shared(
            "orgs::several_orgs_per_tenant_with_their_own_settings",
            several_orgs,
        ),
        Case::shared(
            "orgs::repositories_are_listed_by_status_and_page",
            repositories_listed,
        ),
        Case::shared(
            "orgs::invalid_settings_are_refused_and_change_nothing",
            invalid_settings,
        ),
        Case::shared(
            "orgs::settings_of_the_wrong_type_name_their_field",
            wrong_types,
        ),
        Case::shared(
            "orgs::sync_of_an_uninstalled_org_disconnects_it",
            sync_uninstalled,
        ),
        Case::shared(
            "orgs::concurrent_syncs_record_each_repository_once",
            concurrent_syncs,
        ),
        Case::shared(
            "orgs::another_tenants_org_is_not_found_and_unchanged",
            cross_tenant,
        ),
        Case::shared("orgs::openapi_document_describes_the_org_api", openapi),
    ]
}

// ---- helpers ----

/// Connects a fresh installation for `tenant` and waits for its initial jobs; the org id.
#[track_caller]
fn connect(s: &Stack, tenant: &str, inst: &Inst) -> String {
    s.emulator.put_installation(inst);
    let done = s
        .connect_and_install(tenant, inst.id)
        .done_with_all(inst.repos);
    checks::jobs_received(s, &done.org_id, inst.repos as usize);
    done.org_id
}

/// GitHub id of generated repository `n` of an installation.
fn repo_id(installation_id: u64, n: u64) -> i64 {
    (installation_id * 1_000_000 + n) as i64
}

/// `provider_repo_id → status` of the org's repository rows (asserting one row per GitHub id).
#[track_caller]
fn repo_statuses(s: &Stack, org_id: &str) -> BTreeMap<i64, String> {
    let rows = s.store.repos(org_id);
    let statuses: BTreeMap<i64, String> = rows
        .iter()
        .map(|r| (r.provider_repo_id, r.status.clone()))
        .collect();
    assert_eq!(statuses.len(), rows.len(), "duplicate repository rows");
    statuses
}

/// The GitHub ids with `status`.
fn with_status(statuses: &BTreeMap<i64, String>, status: &str) -> BTreeSet<i64> {
    statuses
        .iter()
        .filter(|(_, s)| *s == status)
        .map(|(id, _)| *id)
        .collect()
}

/// `(kind, status) → count` of the org's backup jobs.
fn job_counts(s: &Stack, org_id: &str) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for job in s.store.jobs(org_id) {
        *counts.entry((job.kind, job.status)).or_default() += 1;
    }
    counts
}

fn counts(entries: &[(&str, &str, usize)]) -> BTreeMap<(String, String), usize> {
    entries
        .iter()
        .map(|(k, s, n)| ((k.to_string(), s.to_string()), *n))
        .collect()
}

/// `provider_repo_id → job statuses` of the org's jobs.
fn jobs_by_repo(s: &Stack, org_id: &str) -> BTreeMap<i64, Vec<String>> {
    let repos: BTreeMap<String, i64> = s
        .store
        .repos(org_id)
        .into_iter()
        .map(|r| (r.id, r.provider_repo_id))
        .collect();
    let mut jobs: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for job in s.store.jobs(org_id) {
        jobs.entry(repos[&job.repository_id])
            .or_default()
            .push(job.status);
    }
    jobs.values_mut().for_each(|v| v.sort());
    jobs
}

/// Backup jobs queued for these repositories and not received yet, as the backup scheduler
/// will leave them (it does not exist yet): inserted into D1 directly. The job ids.
#[track_caller]
fn insert_queued_jobs(s: &Stack, org_id: &str, provider_repo_ids: &[i64]) -> Vec<String> {
    let at = rfc3339(now());
    provider_repo_ids
        .iter()
        .map(|provider_repo_id| {
            let id = format!("e2e0{provider_repo_id:028x}");
            let inserted = s.store.execute(
                "INSERT INTO backup_jobs (id, org_id, repository_id, kind, priority, status, \
                     dedupe_key, created_at, dispatched_at) \
                 SELECT ?1, org_id, id, 'scheduled', 'normal', 'queued', \
                     'scheduled:' || id || ':2000-01-01T00', ?2, ?2 \
                 FROM repositories WHERE org_id = ?3 AND provider_repo_id = ?4",
                rusqlite::params![id, at, org_id, provider_repo_id],
            );
            assert_eq!(
                inserted, 1,
                "a queued job for repository {provider_repo_id}"
            );
            id
        })
        .collect()
}

/// A snapshot of the org's first repository taken `days_ago` days ago, inserted into D1
/// directly (the backup executor does not exist yet).
#[track_caller]
fn insert_snapshot(s: &Stack, org_id: &str, id: &str, days_ago: i64) {
    let taken_at = rfc3339(now() - days_ago * 86_400);
    let inserted = s.store.execute(
        "INSERT INTO snapshots (id, org_id, repository_id, taken_at, size_bytes) \
         SELECT ?1, org_id, id, ?2, 4096 FROM repositories WHERE org_id = ?3 \
         ORDER BY provider_repo_id LIMIT 1",
        rusqlite::params![id, taken_at, org_id],
    );
    assert_eq!(inserted, 1, "snapshot {id}");
}

/// `snapshot id → status` of the org's snapshots that `insert_snapshot` made.
fn snapshot_statuses(s: &Stack, org_id: &str) -> BTreeMap<String, String> {
    s.store
        .query(
            "SELECT id, status FROM snapshots WHERE org_id = ?1 AND id LIKE 'e2e-snap-%'",
            [org_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .into_iter()
        .collect()
}

/// The org's status in D1.
fn org_status(s: &Stack, org_id: &str) -> String {
    s.store
        .query(
            "SELECT status FROM organizations WHERE id = ?1",
            [org_id],
            |r| r.get(0),
        )
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no organization {org_id}"))
}

/// The emulator's request log entries for an installation after `seq` (every caller but the
/// backup consumer).
fn calls_since(s: &Stack, installation_id: u64, seq: u64) -> Vec<String> {
    let calls: Vec<_> = s
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.seq > seq && r.installation_id == Some(installation_id))
        .collect();
    // The backup consumer's invocations (a token, then git) are not the flow under test.
    let mut by_invocation: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for call in &calls {
        if let Some(invocation) = &call.invocation {
            by_invocation
                .entry(invocation.clone())
                .or_default()
                .push(call.clone());
        }
    }
    calls
        .iter()
        .filter(|r| {
            r.invocation
                .as_ref()
                .and_then(|i| by_invocation.get(i))
                .is_none_or(|group| !checks::is_backup(group))
        })
        .map(|r| r.short())
        .collect()
}

/// The last sequence number of the emulator's request log.
fn last_seq(s: &Stack) -> u64 {
    s.emulator.requests().last().map_or(0, |r| r.seq)
}

/// Each org's current enumeration run id, to tell the runs a scheduled sync starts from those
/// before it (ids, not start times: those have whole seconds).
fn run_ids(s: &Stack) -> HashMap<String, String> {
    s.store
        .query("SELECT org_id, run_id FROM enumeration_runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .into_iter()
        .collect()
}

/// Waits until the scheduled sync fired after `before` was read has visited every active org
/// (each has a run other than the one it had then, no longer in progress) and the access
/// snapshots those syncs started are finished, so that no sync of it outlives the test (an
/// access snapshot mints installation tokens too). `failing` orgs are left out: their sync
/// fails before it starts a run.
#[track_caller]
fn scheduled_sync_done(s: &Stack, before: &HashMap<String, String>, failing: &[&str]) {
    poll_until(
        Duration::from_secs(300),
        "the scheduled sync to visit every active organization",
        || {
            let pending: Vec<String> = s
                .store
                .query(
                    "SELECT o.id, o.login, coalesce(r.run_id, ''), coalesce(r.status, '') \
                     FROM organizations o LEFT JOIN enumeration_runs r ON r.org_id = o.id \
                     WHERE o.status = 'active'",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    },
                )
                .into_iter()
                .filter(|(id, _, run, status)| {
                    !failing.contains(&id.as_str())
                        && (run.is_empty()
                            || before.get(id) == Some(run)
                            || status == "in_progress")
                })
                .map(|(_, login, run, status)| format!("{login}: run {run} {status}"))
                .collect();
            let reading = s.store.count(
                "SELECT count(*) FROM access_runs a JOIN organizations o ON o.id = a.org_id \
                 WHERE o.status = 'active'",
                [],
            );
            if pending.is_empty() && reading == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{}; {reading} access snapshots under way",
                    pending.join(", ")
                ))
            }
        },
    );
}

// ---- several orgs, settings, lists ----

/// The fields of an `Org` answer.
const ORG_FIELDS: [&str; 18] = [
    "id",
    "provider",
    "login",
    "display_name",
    "avatar_url",
    "account_type",
    "installation_id",
    "status",
    "client",
    "backup_schedule",
    "backup_hour",
    "retention_days",
    "full_every",
    "last_synced_at",
    "created_at",
    "updated_at",
    "repo_count",
    "repos_backed_up",
];

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn several_orgs(s: &Stack) {
    let tenant = "tenant-orgs-several";
    let api = Portal::new(s, tenant);
    let insts = [
        Inst::org(3100, "e2e-orgs-acme", 4),
        Inst::org(3101, "e2e-orgs-globex", 2),
        Inst::org(3102, "e2e-orgs-initech", 3),
    ];
    let org_ids: Vec<String> = insts.iter().map(|i| connect(s, tenant, i)).collect();
    let (acme, globex, initech) = (&org_ids[0], &org_ids[1], &org_ids[2]);

    // Freshly connected: the defaults, GitHub's account, the repositories counted.
    let openapi = s.http.get(&format!("{}/v1/openapi.json", s.worker)).json();
    let schema_fields = |name: &str| keys(&openapi["components"]["schemas"][name]["properties"]);
    for (inst, id) in insts.iter().zip(&org_ids) {
        let org = api.org(id);
        assert_eq!(
            keys(&org),
            ORG_FIELDS.iter().map(|f| f.to_string()).collect(),
            "{org}"
        );
        assert_eq!(keys(&org), schema_fields("Org"), "Org as openapi.json says");
        assert_eq!(org["id"], id.as_str());
        assert_eq!(org["provider"], "github");
        assert_eq!(org["login"], inst.login.as_str());
        assert_eq!(org["display_name"], json!(inst.name));
        assert_eq!(org["avatar_url"], inst.avatar_url());
        assert_eq!(org["account_type"], "Organization");
        assert_eq!(org["installation_id"], inst.id);
        assert_eq!(org["status"], "active");
        assert_eq!(org["client"], Value::Null);
        assert_eq!(
            (
                &org["backup_schedule"],
                &org["backup_hour"],
                &org["retention_days"]
            ),
            (&json!("daily"), &json!(2), &json!(90)),
            "defaults"
        );
        assert!(org["last_synced_at"].is_string(), "{org}");
        assert_eq!(org["repo_count"], inst.repos);
        assert_eq!(
            org["repos_backed_up"], inst.repos,
            "every repository's first backup is ok: {org}"
        );
    }

    // Each org its own settings.
    let before = api.org(acme);
    // The test's clock read just before the PATCH is sent and just after its answer: the
    // worker's clock is the same machine's, read during the request, so a stamp written by this
    // PATCH lies between them.
    let sent = now();
    let patched = api.patch(
        acme,
        json!({ "client": "Acme Corp", "backup_schedule": "weekly", "backup_hour": 5,
                "retention_days": 30 }),
    );
    let answered = now();
    assert_eq!(
        (
            &patched["client"],
            &patched["backup_schedule"],
            &patched["backup_hour"],
            &patched["retention_days"]
        ),
        (&json!("Acme Corp"), &json!("weekly"), &json!(5), &json!(30))
    );
    // updated_at moves forward: it becomes this PATCH's time. Stored times are whole seconds,
    // so what is guaranteed, and asserted, is `sent <= updated_at <= answered` (seconds,
    // floored; parsed, not compared as text). The previous stamp was written before `before`
    // was read, so it is `<= sent`: the new one is never older, and is strictly newer whenever
    // the previous one is from an earlier second; a product that left updated_at alone fails
    // then. Only a previous stamp in the very second the PATCH was sent cannot be told apart
    // from a new one, and no test can, short of waiting for the next second.
    let stamp = |org: &Value| {
        let text = org["updated_at"].as_str().expect("updated_at");
        parse_rfc3339(text).unwrap_or_else(|| panic!("updated_at is RFC 3339: {text}"))
    };
    let (was, is) = (stamp(&before), stamp(&patched));
    assert!(
        (sent..=answered).contains(&is),
        "updated_at moves forward to the PATCH's time: {is} within [{sent}, {answered}], \
         before {was}"
    );
    assert_eq!(
        api.org(acme)["updated_at"],
        patched["updated_at"],
        "the new updated_at is stored, not only answered"
    );
    for field in ["id", "login", "status", "created_at", "repo_count"] {
        assert_eq!(patched[field], before[field], "{field} unchanged by PATCH");
    }
    let patched = api.patch(
        globex,
        json!({ "client": "Globex", "backup_schedule": "off" }),
    );
    assert_eq!(
        (
            &patched["client"],
            &patched["backup_schedule"],
            &patched["backup_hour"],
            &patched["retention_days"]
        ),
        (&json!("Globex"), &json!("off"), &json!(2), &json!(90)),
        "only the named fields change"
    );
    // A label is trimmed; null clears it.
    let patched = api.patch(
        initech,
        json!({ "client": "  Temp  ", "retention_days": 365 }),
    );
    assert_eq!(patched["client"], "Temp");
    let patched = api.patch(initech, json!({ "client": null }));
    assert_eq!(
        (&patched["client"], &patched["retention_days"]),
        (&Value::Null, &json!(365)),
        "null clears the label and keeps the rest"
    );
    // Boundaries are accepted.
    let patched = api.patch(
        initech,
        json!({ "backup_hour": 23, "retention_days": 3650 }),
    );
    assert_eq!(
        (&patched["backup_hour"], &patched["retention_days"]),
        (&json!(23), &json!(3650))
    );
    let patched = api.patch(initech, json!({ "backup_hour": 0, "retention_days": 1 }));
    assert_eq!(
        (&patched["backup_hour"], &patched["retention_days"]),
        (&json!(0), &json!(1))
    );
    // The settings are the org's own.
    assert_eq!(api.org(acme)["client"], "Acme Corp");
    assert_eq!(api.org(globex)["backup_schedule"], "off");
    assert_eq!(api.org(initech)["retention_days"], 1);

    // The list, and each filter.
    let all = sorted(org_ids.clone());
    let list = |query: &str| {
        let page = api.get(&format!("/v1/orgs{query}"));
        assert!(page["next_cursor"].is_null(), "{query}: one page: {page}");
        let items = page["items"].as_array().expect("items").clone();
        for item in &items {
            assert_eq!(
                *item,
                api.org(item["id"].as_str().expect("id")),
                "{query}: the list item is GET's Org"
            );
        }
        ids(&items)
    };
    assert_eq!(list(""), all, "every org, by id");
    assert_eq!(list("?client=Acme%20Corp"), [acme.as_str()]);
    assert_eq!(list("?client=Globex"), [globex.as_str()]);
    assert_eq!(
        list("?client=Temp"),
        Vec::<String>::new(),
        "a cleared label"
    );
    assert_eq!(
        list("?client=acme%20corp"),
        Vec::<String>::new(),
        "labels are exact"
    );
    assert_eq!(list("?provider=github"), all);
    assert_eq!(list("?provider=gitlab"), Vec::<String>::new());
    assert_eq!(list("?status=active"), all);
    assert_eq!(list("?status=disconnected"), Vec::<String>::new());
    for bad in [
        "?provider=bitbucket",
        "?status=gone",
        "?limit=0",
        "?limit=101",
        "?limit=x",
    ] {
        assert_problem(
            &api.request("GET", &format!("/v1/orgs{bad}"), None),
            400,
            "bad_request",
            bad,
        );
    }

    // Page by page.
    let (walked, pages) = api.walk("/v1/orgs", 1);
    assert_eq!(ids(&walked), all, "limit=1 visits every org once, in order");
    assert!((3..=4).contains(&pages), "{pages} pages of one");
    let (walked, _) = api.walk("/v1/orgs", 2);
    assert_eq!(ids(&walked), all, "limit=2");
    let (walked, _) = api.walk("/v1/orgs?provider=github&status=active", 1);
    assert_eq!(ids(&walked), all, "filters and cursor together");

    // A disconnected org is filtered by status.
    let answer = api.disconnect(initech);
    assert_eq!(answer["status"], "disconnected");
    assert_eq!(list("?status=disconnected"), [initech.as_str()]);
    assert_eq!(
        list("?status=active"),
        sorted(vec![acme.clone(), globex.clone()])
    );
    assert_eq!(
        list("?status=active&client=Acme%20Corp"),
        [acme.as_str()],
        "filters combine"
    );
    assert_eq!(api.org(initech)["status"], "disconnected");

    // The repositories' query parameters are checked like the list's.
    for bad in ["?status=archived", "?limit=0"] {
        assert_problem(
            &api.request("GET", &format!("/v1/orgs/{acme}/repos{bad}"), None),
            400,
            "bad_request",
            bad,
        );
    }
}

/// `GET /v1/orgs/{id}/repos`: every repository as GitHub describes it, removed ones included,
/// by status and page by page.
fn repositories_listed(s: &Stack) {
    let tenant = "tenant-orgs-repos";
    let api = Portal::new(s, tenant);
    let inst = Inst::org(3103, "e2e-orgs-repos", 5);
    let org_id = connect(s, tenant, &inst);
    let other = connect(s, tenant, &Inst::org(3104, "e2e-orgs-repos-other", 2));
    let gone = repo_id(inst.id, 3);
    s.emulator.change_repos(inst.id, 0, &[gone]);
    assert_eq!(api.sync(&org_id)["removed"], 1);

    let openapi = s.http.get(&format!("{}/v1/openapi.json", s.worker)).json();
    let github = s.emulator.repositories(inst.id);
    let (repos, pages) = api.walk(&format!("/v1/orgs/{org_id}/repos"), 1);
    assert!((5..=6).contains(&pages), "{pages} pages of one");
    assert_eq!(repos.len(), 5, "removed repositories are listed too");
    assert_eq!(
        keys(&repos[0]),
        keys(&openapi["components"]["schemas"]["Repository"]["properties"]),
        "Repository as openapi.json says"
    );
    let by_provider_repo_id: BTreeMap<i64, &Value> = repos
        .iter()
        .map(|r| (r["provider_repo_id"].as_i64().expect("provider_repo_id"), r))
        .collect();
    assert_eq!(
        by_provider_repo_id.len(),
        repos.len(),
        "each repository once"
    );
    assert_eq!(by_provider_repo_id[&gone]["status"], "removed");
    for repo in &github {
        let item = by_provider_repo_id
            .get(&repo.id)
            .unwrap_or_else(|| panic!("{} is not listed", repo.full_name));
        assert_eq!(item["name"], repo.name.as_str());
        assert_eq!(item["full_name"], repo.full_name.as_str());
        assert_eq!(item["private"], repo.private);
        assert_eq!(item["archived"], repo.archived);
        assert_eq!(item["default_branch"], json!(repo.default_branch));
        assert_eq!(item["html_url"], json!(repo.html_url));
        assert_eq!(item["visibility"], json!(repo.visibility));
        assert_eq!(item["status"], "active");
    }
    let (all, _) = api.walk(&format!("/v1/orgs/{org_id}/repos"), 100);
    assert_eq!(
        sorted(ids(&all)),
        sorted(ids(&repos)),
        "limit=100: one page"
    );
    let (active, _) = api.walk(&format!("/v1/orgs/{org_id}/repos?status=active"), 3);
    let active: BTreeSet<i64> = active
        .iter()
        .map(|r| r["provider_repo_id"].as_i64().expect("provider_repo_id"))
        .collect();
    assert_eq!(active, github.iter().map(|r| r.id).collect());
    let (removed, _) = api.walk(&format!("/v1/orgs/{org_id}/repos?status=removed"), 1);
    assert_eq!(
        ids(&removed),
        [by_provider_repo_id[&gone]["id"].as_str().expect("id")]
    );
    let (theirs, _) = api.walk(&format!("/v1/orgs/{other}/repos"), 100);
    assert_eq!(theirs.len(), 2, "each org lists its own repositories");
}

// ---- invalid settings ----

/// Each body is refused with a 422 naming `field`, and the org is left as it was.
#[track_caller]
fn refused(api: &Portal<'_>, org_id: &str, cases: &[(&str, &str)]) {
    let before = api.org(org_id);
    let mut wrong = Vec::new();
    for (body, field) in cases {
        let resp = api.request("PATCH", &format!("/v1/orgs/{org_id}"), Some(body));
        let problem = assert_problem(&resp, 422, "invalid_field", body);
        if problem["field"] != *field {
            wrong.push(format!(
                "{body} → field {} (want {field:?}): {problem}",
                problem["field"]
            ));
        }
        assert_eq!(api.org(org_id), before, "{body} changed the org");
    }
    assert!(
        wrong.is_empty(),
        "422s not naming the bad field:\n{}",
        wrong.join("\n")
    );
}

fn invalid_settings(s: &Stack) {
    let tenant = "tenant-orgs-invalid";
    let api = Portal::new(s, tenant);
    let org_id = connect(s, tenant, &Inst::org(3105, "e2e-orgs-invalid", 1));
    api.patch(&org_id, json!({ "client": "Before" }));
    let long = format!(r#"{{"client":"{}"}}"#, "x".repeat(129));
    refused(
        &api,
        &org_id,
        &[
            (r#"{"backup_schedule":"hourly"}"#, "backup_schedule"),
            (r#"{"backup_schedule":"Daily"}"#, "backup_schedule"),
            (r#"{"backup_schedule":""}"#, "backup_schedule"),
            (r#"{"backup_hour":24}"#, "backup_hour"),
            (r#"{"backup_hour":-1}"#, "backup_hour"),
            (r#"{"retention_days":0}"#, "retention_days"),
            (r#"{"retention_days":3651}"#, "retention_days"),
            (r#"{"retention_days":-30}"#, "retention_days"),
            (r#"{"client":""}"#, "client"),
            (r#"{"client":"   "}"#, "client"),
            (&long, "client"),
            (r#"{"client":"line\nbreak"}"#, "client"),
            (r#"{"retention":90}"#, "retention"),
            (r#"{"status":"active"}"#, "status"),
            (r#"{"client":"Acme","colour":"red"}"#, "colour"),
            // One bad field refuses the whole change.
            (r#"{"client":"Acme","backup_hour":99}"#, "backup_hour"),
            (
                r#"{"retention_days":30,"backup_schedule":"never"}"#,
                "backup_schedule",
            ),
            (r#"{}"#, "body"),
            (r#"[]"#, "body"),
        ],
    );
    let before = api.org(&org_id);
    for body in ["", "{nope", "client=Acme", r#"{"client":"Acme""#] {
        let resp = api.request("PATCH", &format!("/v1/orgs/{org_id}"), Some(body));
        assert_problem(&resp, 400, "bad_request", &format!("{body:?}"));
        assert_eq!(api.org(&org_id), before, "{body:?} changed the org");
    }
    // 128 characters are fine.
    let ok = api.patch(&org_id, json!({ "client": "y".repeat(128) }));
    assert_eq!(ok["client"], "y".repeat(128));
}

/// A value of the wrong JSON type is as invalid as one out of range: the 422 names its field.
fn wrong_types(s: &Stack) {
    let tenant = "tenant-orgs-wrong-types";
    let api = Portal::new(s, tenant);
    let org_id = connect(s, tenant, &Inst::org(3106, "e2e-orgs-wrong-types", 1));
    refused(
        &api,
        &org_id,
        &[
            (r#"{"retention_days":"90"}"#, "retention_days"),
            (r#"{"retention_days":90.5}"#, "retention_days"),
            (r#"{"backup_hour":2.5}"#, "backup_hour"),
            (r#"{"backup_hour":"2"}"#, "backup_hour"),
            (r#"{"backup_schedule":true}"#, "backup_schedule"),
            (r#"{"backup_schedule":["daily"]}"#, "backup_schedule"),
            (r#"{"client":5}"#, "client"),
            (r#"{"client":{"name":"Acme"}}"#, "client"),
        ],
    );
}

// ---- sync ----

fn sync_added_and_removed(s: &Stack) {
    let tenant = "tenant-orgs-sync";
    let api = Portal::new(s, tenant);
    let inst = Inst::org(3110, "e2e-orgs-sync", 5);
    let org_id = connect(s, tenant, &inst);
    let first_synced = api.org(&org_id)["last_synced_at"].clone();
    let gone = [repo_id(inst.id, 2), repo_id(inst.id, 4)];
    // Jobs still waiting for the backup executor when the repositories go.
    let waiting = insert_queued_jobs(s, &org_id, &gone);

    s.emulator.change_repos(inst.id, 3, &gone);
    let answer = api.sync(&org_id);
    assert_eq!(
        answer,
        json!({ "found": 6, "added": 3, "removed": 2, "complete": true })
    );

    let statuses = repo_statuses(s, &org_id);
    let new: BTreeSet<i64> = (6..=8).map(|n| repo_id(inst.id, n)).collect();
    assert_eq!(statuses.len(), 8, "removed repositories keep their rows");
    assert_eq!(with_status(&statuses, "removed"), BTreeSet::from(gone));
    let active = with_status(&statuses, "active");
    assert_eq!(active.len(), 6);
    assert!(new.is_subset(&active), "the new repositories are recorded");
    let github: BTreeSet<i64> = s
        .emulator
        .repositories(inst.id)
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(active, github, "active = what GitHub lists");
    assert_eq!(
        s.store.profiled_repos(&org_id).len(),
        8,
        "a stub per repository, kept"
    );

    // The removed repositories' waiting jobs are paused; the new ones have their initial job.
    let jobs = s.store.jobs(&org_id);
    for id in &waiting {
        let job = jobs.iter().find(|j| &j.id == id).expect("the waiting job");
        assert_eq!(job.status, "paused", "job {id} of a removed repository");
    }
    poll_until(
        Duration::from_secs(120),
        "the new repositories' jobs to be received",
        || {
            let by_repo = jobs_by_repo(s, &org_id);
            let missing: Vec<_> = new
                .iter()
                .filter(|id| by_repo.get(id) != Some(&vec!["received".to_string()]))
                .map(|id| format!("{id}: {:?}", by_repo.get(id)))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(missing.join(", "))
            }
        },
    );
    assert_eq!(
        job_counts(s, &org_id),
        counts(&[("initial", "received", 8), ("scheduled", "paused", 2)]),
        "8 initial jobs (5 + 3 new), the 2 waiting ones paused"
    );

    // What the portal sees.
    let org = api.org(&org_id);
    assert_eq!(org["repo_count"], 6, "active repositories");
    assert_ne!(
        org["last_synced_at"], first_synced,
        "the sync stamps the org"
    );
    // The newest entry but the new repositories' first backups (they log as they settle).
    let activity = api.get(&format!("/v1/orgs/{org_id}/activity?limit=100"));
    let latest = activity["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| {
            !i["event"]
                .as_str()
                .unwrap_or_default()
                .starts_with("backup.")
        })
        .expect("an entry")
        .clone();
    assert_eq!(latest["event"], "sync.completed");
    let detail = latest["detail"].as_str().unwrap_or_default().to_string();

    // Nothing changed on GitHub: nothing to do.
    let again = api.sync(&org_id);
    assert_eq!(
        again,
        json!({ "found": 6, "added": 0, "removed": 0, "complete": true })
    );
    assert_eq!(
        repo_statuses(s, &org_id),
        statuses,
        "the rows are unchanged"
    );
    assert_eq!(
        job_counts(s, &org_id),
        counts(&[("initial", "received", 8), ("scheduled", "paused", 2)])
    );
    // The first sync's entry in the activity log, as the portal shows it.
    assert_eq!(
        detail, "repositories enumerated: 6 found, 3 new, 2 removed",
        "sync.completed"
    );
}

/// A repository removed from the installation and later given back: active again, and the
/// backup job its removal paused is not left paused (as a `repository` webhook re-adding it
/// resumes it).
fn repository_back(s: &Stack) {
    let tenant = "tenant-orgs-back";
    let api = Portal::new(s, tenant);
    let inst = Inst::org(3170, "e2e-orgs-back", 3);
    let repos: Vec<(i64, String)> = (1..=3)
        .map(|n| (repo_id(inst.id, n), format!("e2e-orgs-back-{n}")))
        .collect();
    s.emulator.put_named_installation(&inst, &repos);
    let done = s.connect_and_install(tenant, inst.id).done();
    assert_eq!((done.repos, done.added), (3, 3));
    let org_id = done.org_id;
    checks::jobs_received(s, &org_id, 3);
    let back = repos[1].0;
    let waiting = insert_queued_jobs(s, &org_id, &[back]);

    let without: Vec<(i64, String)> = repos.iter().filter(|r| r.0 != back).cloned().collect();
    s.emulator.put_named_installation(&inst, &without);
    assert_eq!(api.sync(&org_id)["removed"], 1);
    assert_eq!(jobs_by_repo(s, &org_id)[&back], ["paused", "received"]);

    s.emulator.put_named_installation(&inst, &repos);
    let answer = api.sync(&org_id);
    assert_eq!(
        (&answer["found"], &answer["removed"], &answer["complete"]),
        (&json!(3), &json!(0), &json!(true)),
        "{answer}"
    );
    assert_eq!(repo_statuses(s, &org_id)[&back], "active");
    assert_eq!(api.org(&org_id)["repo_count"], 3);
    poll_until(
        Duration::from_secs(30),
        "the returned repository's paused job to be sent and received",
        || {
            let jobs = s.store.jobs(&org_id);
            let job = jobs.iter().find(|j| j.id == waiting[0]).expect("the job");
            if job.status == "received" {
                Ok(())
            } else {
                Err(format!(
                    "job {} of repository {back} is {}",
                    job.id, job.status
                ))
            }
        },
    );
}

fn sync_uninstalled(s: &Stack) {
    let tenant = "tenant-orgs-sync-uninstalled";
    let api = Portal::new(s, tenant);
    let inst = Inst::org(3112, "e2e-orgs-sync-gone", 2);
    let org_id = connect(s, tenant, &inst);
    s.emulator.delete_installation(inst.id);

    let resp = api.request("POST", &format!("/v1/orgs/{org_id}/sync"), None);
    let problem = assert_problem(&resp, 409, "conflict", "sync of an uninstalled org");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("uninstalled")),
        "{problem}"
    );
    assert_eq!(org_status(s, &org_id), "disconnected");
    assert_eq!(api.events(&org_id)[0], "installation.gone");
    assert_eq!(
        with_status(&repo_statuses(s, &org_id), "active").len(),
        2,
        "the records are kept"
    );
    assert_eq!(
        job_counts(s, &org_id),
        counts(&[("initial", "received", 2)]),
        "the jobs are kept"
    );
    // Disconnected now: refused without asking GitHub.
    let seq = last_seq(s);
    let resp = api.request("POST", &format!("/v1/orgs/{org_id}/sync"), None);
    assert_problem(&resp, 409, "conflict", "sync of a disconnected org");
    assert_eq!(calls_since(s, inst.id, seq), Vec::<String>::new());
}

fn concurrent_syncs(s: &Stack) {
    let tenant = "tenant-orgs-concurrent";
    let api = Portal::new(s, tenant);
    let inst = Inst::org(3115, "e2e-orgs-concurrent", 150);
    let org_id = connect(s, tenant, &inst);
    s.emulator.change_repos(inst.id, 120, &[]);

    // Force the overlap: the emulator holds each sync's first page request until both have
    // arrived (a gate with a barrier of 2, for this installation only).
    let gate = "orgs-concurrent-syncs";
    s.emulator.add_faults(json!([{
        "method": "GET", "path_prefix": "/installation/repositories", "installation_id": inst.id,
        "gate": gate, "barrier": 2, "times": 2
    }]));
    let seq = last_seq(s);
    let barrier = Barrier::new(2);
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    api.sync(&org_id)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    // Both syncs were listing at once: their first page requests each arrived before the other
    // was answered (one after the other, the second would arrive after the first's answer).
    let first_pages: Vec<_> = s
        .emulator
        .worker_requests(inst.id)
        .into_iter()
        .filter(|r| r.seq > seq && r.is_page() && r.page() == 1)
        .collect();
    assert_eq!(
        first_pages.len(),
        2,
        "each sync lists page 1 once: {first_pages:?}"
    );
    assert!(
        first_pages[0].overlapped(&first_pages[1]),
        "the two syncs overlapped at GitHub: {first_pages:?}; gate: {}",
        s.emulator.gates()[gate]
    );
    let added: u64 = answers
        .iter()
        .map(|a| a["added"].as_u64().expect("added"))
        .sum();
    assert_eq!(added, 120, "each new repository counted once: {answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| a["removed"] == 0 && a["found"].as_u64() <= Some(270)),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|a| a["found"] == 270 && a["complete"] == true),
        "the sync that started last completes: {answers:?}"
    );

    let statuses = repo_statuses(s, &org_id);
    assert_eq!(statuses.len(), 270);
    assert_eq!(with_status(&statuses, "active").len(), 270);
    assert_eq!(s.store.profiled_repos(&org_id).len(), 270);
    let jobs = s.store.jobs(&org_id);
    let job_repos: BTreeSet<&str> = jobs.iter().map(|j| j.repository_id.as_str()).collect();
    assert_eq!(jobs.len(), 270, "one job per repository");
    assert_eq!(job_repos.len(), 270, "no repository has two jobs");
    checks::jobs_received(s, &org_id, 270);
    assert_eq!(api.org(&org_id)["repo_count"], 270);

    assert_eq!(
        api.sync(&org_id),
        json!({ "found": 270, "added": 0, "removed": 0, "complete": true })
    );
    assert_eq!(s.store.jobs(&org_id).len(), 270);
}

// ---- disconnect and reconnect ----

fn disconnect_reconnect(s: &Stack) {
    let tenant = "tenant-orgs-reconnect";
    let api = Portal::new(s, tenant);
    let inst = Inst::org(3120, "e2e-orgs-reconnect", 4);
    let org_id = connect(s, tenant, &inst);
    let settings = json!({ "client": "Keep Co", "backup_schedule": "weekly", "backup_hour": 7,
                           "retention_days": 45 });
    api.patch(&org_id, settings.clone());
    let waiting = insert_queued_jobs(
        s,
        &org_id,
        &[
            repo_id(inst.id, 1),
            repo_id(inst.id, 2),
            repo_id(inst.id, 3),
        ],
    );
    insert_snapshot(s, &org_id, "e2e-snap-reconnect", 1);

    let seq = last_seq(s);
    let answer = api.disconnect(&org_id);
    assert_eq!(answer["status"], "disconnected");
    assert_eq!(answer["jobs_paused"], 3, "{answer}");
    assert_eq!(
        answer["snapshots_kept"], 5,
        "the four first backups and the inserted one: {answer}"
    );
    assert!(
        answer["provider_access"]
            .as_str()
            .is_some_and(|t| t.starts_with("unchanged")),
        "{answer}"
    );
    assert_eq!(
        calls_since(s, inst.id, seq),
        Vec::<String>::new(),
        "disconnecting does not touch GitHub"
    );
    assert_eq!(org_status(s, &org_id), "disconnected");
    assert_eq!(
        job_counts(s, &org_id),
        counts(&[("initial", "received", 4), ("scheduled", "paused", 3)])
    );
    assert_eq!(
        snapshot_statuses(s, &org_id)
            .into_values()
            .collect::<Vec<_>>(),
        ["available"],
        "snapshots are kept"
    );
    assert_eq!(api.events(&org_id)[0], "org.disconnected");
    let org = api.org(&org_id);
    assert_eq!(org["status"], "disconnected");
    assert_eq!(org["repo_count"], 4, "the records are kept");

    // Disconnected: no sync; disconnecting again changes nothing.
    let resp = api.request("POST", &format!("/v1/orgs/{org_id}/sync"), None);
    assert_problem(&resp, 409, "conflict", "sync of a disconnected org");
    let again = api.disconnect(&org_id);
    assert_eq!(again["jobs_paused"], 0, "{again}");
    assert_eq!(
        calls_since(s, inst.id, seq),
        Vec::<String>::new(),
        "no GitHub call while disconnected"
    );

    // Two repositories appear meanwhile; the technician connects the org again.
    s.emulator.change_repos(inst.id, 2, &[]);
    let callback = s.connect_and_install(tenant, inst.id);
    let done = callback.done();
    assert_eq!(done.org_id, org_id, "the same org");
    assert_eq!(
        (done.repos, done.added, done.complete),
        (6, 2, true),
        "only the new repositories are added; Location: {}",
        callback.location
    );
    let org = api.org(&org_id);
    assert_eq!(org["status"], "active");
    assert_eq!(org["repo_count"], 6);
    for field in ["client", "backup_schedule", "backup_hour", "retention_days"] {
        assert_eq!(
            org[field], settings[field],
            "{field} kept across the reconnect"
        );
    }
    assert_eq!(s.store.orgs(tenant).len(), 1, "no second org");
    let statuses = repo_statuses(s, &org_id);
    assert_eq!(statuses.len(), 6);
    assert_eq!(with_status(&statuses, "active").len(), 6);
    assert_eq!(s.store.profiled_repos(&org_id).len(), 6);
    poll_until(
        Duration::from_secs(120),
        "the resumed and the new jobs to be received",
        || {
            let now = job_counts(s, &org_id);
            let want = counts(&[("initial", "received", 6), ("scheduled", "received", 3)]);
            if now == want {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        },
    );
    let jobs = s.store.jobs(&org_id);
    assert!(waiting
        .iter()
        .all(|id| jobs.iter().any(|j| &j.id == id && j.status == "received")));
    let events = api.events(&org_id);
    assert_eq!(
        events[..3],
        ["sync.completed", "org.connected", "org.disconnected"],
        "newest first: {events:?}"
    );
    assert_eq!(snapshot_statuses(s, &org_id).len(), 1);
}

// ---- cross-tenant ----

fn cross_tenant(s: &Stack) {
    let owner = Portal::new(s, "tenant-orgs-owner");
    let intruder = Portal::new(s, "tenant-orgs-intruder");
    let inst = Inst::org(3160, "e2e-orgs-owned", 2);
    let org_id = connect(s, owner.tenant, &inst);
    let own = connect(s, intruder.tenant, &Inst::org(3161, "e2e-orgs-intruder", 1));
    owner.patch(&org_id, json!({ "client": "Owner" }));

    let before = owner.org(&org_id);
    let activity_before = owner.events(&org_id);
    let footprint = s.store.footprint(owner.tenant);
    let jobs = job_counts(s, &org_id);
    let seq = last_seq(s);

    let unknown = "0123456789abcdef0123456789abcdef";
    let routes = |id: &str| {
        vec![
            ("GET", format!("/v1/orgs/{id}"), None),
            (
                "PATCH",
                format!("/v1/orgs/{id}"),
                Some(r#"{"client":"Intruder","backup_schedule":"off","retention_days":1}"#),
            ),
            ("GET", format!("/v1/orgs/{id}/repos"), None),
            (
                "GET",
                format!("/v1/orgs/{id}/repos?status=active&limit=1"),
                None,
            ),
            ("POST", format!("/v1/orgs/{id}/sync"), None),
            ("POST", format!("/v1/orgs/{id}/disconnect"), None),
            ("GET", format!("/v1/orgs/{id}/activity"), None),
        ]
    };
    for (who, api, id) in [
        ("another tenant", &intruder, org_id.as_str()),
        ("an unknown id", &owner, unknown),
    ] {
        for (method, path, body) in routes(id) {
            let resp = api.request(method, &path, body);
            assert_problem(&resp, 404, "not_found", &format!("{who}: {method} {path}"));
        }
    }
    // The other tenant's list holds only its own org.
    assert_eq!(ids(&intruder.walk("/v1/orgs", 10).0), [own.as_str()]);
    let listed = intruder.get("/v1/orgs?client=Owner");
    assert_eq!(listed["items"], json!([]));

    assert_eq!(owner.org(&org_id), before, "the org is unchanged");
    assert_eq!(owner.events(&org_id), activity_before, "no activity");
    assert_eq!(s.store.footprint(owner.tenant), footprint);
    assert_eq!(job_counts(s, &org_id), jobs);
    assert_eq!(
        calls_since(s, inst.id, seq),
        Vec::<String>::new(),
        "GitHub not called"
    );
    assert_eq!(
        org_status(s, &own),
        "active",
        "the intruder's own org is untouched"
    );
}

// ---- OpenAPI ----

fn openapi(s: &Stack) {
    let resp = s.http.get(&format!("{}/v1/openapi.json", s.worker));
    assert_eq!(
        resp.status, 200,
        "served without authentication: {}",
        resp.body
    );
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        resp.header("content-type")
    );
    let doc = resp.json();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "openapi: {}",
        doc["openapi"]
    );
    let org_api = [
        ("get", "/v1/orgs", &["200", "400", "401"][..]),
        ("get", "/v1/orgs/{id}", &["200", "401", "404"][..]),
        (
            "patch",
            "/v1/orgs/{id}",
            &["200", "400", "401", "404", "422"][..],
        ),
        (
            "get",
            "/v1/orgs/{id}/repos",
            &["200", "400", "401", "404"][..],
        ),
        (
            "post",
            "/v1/orgs/{id}/sync",
            &["200", "401", "404", "409"][..],
        ),
        (
            "post",
            "/v1/orgs/{id}/disconnect",
            &["200", "401", "404"][..],
        ),
        ("get", "/v1/orgs/{id}/activity", &["200", "401", "404"][..]),
        (
            "post",
            "/v1/orgs/{id}/backup",
            &["202", "401", "404", "409", "422"][..],
        ),
        (
            "get",
            "/v1/orgs/{id}/repos/{repo_id}/snapshots",
            &["200", "400", "401", "404"][..],
        ),
        ("get", "/v1/orgs/{id}/access", &["200", "401", "404"][..]),
        (
            "get",
            "/v1/orgs/{id}/access/events",
            &["200", "400", "401", "404"][..],
        ),
        ("get", "/v1/orgs/{id}/posture", &["200", "401", "404"][..]),
    ];
    for (method, path, statuses) in org_api {
        let op = &doc["paths"][path][method];
        assert!(
            op.is_object(),
            "{} {path} is not documented",
            method.to_uppercase()
        );
        assert!(
            op["security"].is_array(),
            "{method} {path} names its security"
        );
        for status in statuses {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} does not document {status}"
            );
        }
    }
    // Every org route the worker serves is in the document, and no other `/v1/orgs` path.
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|r| r.template.starts_with("/v1/orgs"))
        .map(|r| (r.method.to_lowercase(), r.template.to_string()))
        .collect();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.starts_with("/v1/orgs"))
        .flat_map(|(path, item)| {
            keys(item)
                .into_iter()
                .filter(|m| m != "parameters")
                .map(move |m| (m, path.clone()))
        })
        .collect();
    assert_eq!(documented, served);
    let expected: BTreeSet<(String, String)> = org_api
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(served, expected);
}

// ---- cron: scheduled sync ----

fn scheduled_sync(s: &Stack) {
    let tenant = "tenant-orgs-scheduled-sync";
    let api = Portal::new(s, tenant);
    let gone = Inst::org(3130, "e2e-orgs-cron-gone", 3);
    let suspended = Inst::org(3131, "e2e-orgs-cron-suspended", 2);
    let kept = Inst::org(3132, "e2e-orgs-cron-kept", 2);
    let gone_id = connect(s, tenant, &gone);
    let suspended_id = connect(s, tenant, &suspended);
    let kept_id = connect(s, tenant, &kept);
    let kept_run = s.store.run(&kept_id).expect("a run").run_id;

    s.emulator.delete_installation(gone.id);
    s.emulator.set_suspended(suspended.id, true);
    s.emulator.change_repos(kept.id, 1, &[]);
    let before = run_ids(s);
    let seq = last_seq(s);
    s.trigger_cron(SYNC_CRON);

    poll_until(
        Duration::from_secs(120),
        "the scheduled sync to reach the three orgs",
        || {
            let run = s.store.run(&kept_id).expect("a run");
            let state = (
                org_status(s, &gone_id),
                org_status(s, &suspended_id),
                run.run_id != kept_run && run.status == "complete",
            );
            if state == ("disconnected".into(), "suspended".into(), true) {
                Ok(())
            } else {
                Err(format!("{state:?}"))
            }
        },
    );
    scheduled_sync_done(s, &before, &[]);

    // The uninstalled org: disconnected, records kept.
    assert_eq!(api.events(&gone_id)[0], "installation.gone");
    assert_eq!(with_status(&repo_statuses(s, &gone_id), "active").len(), 3);
    // The suspended one: marked suspended, not enumerated (no token was even minted).
    assert_eq!(api.events(&suspended_id)[0], "sync.suspended");
    assert_eq!(
        calls_since(s, suspended.id, seq),
        [format!("GET /app/installations/{} -> 200", suspended.id)]
    );
    // The others are synced: the new repository recorded, with its job.
    let statuses = repo_statuses(s, &kept_id);
    assert_eq!(with_status(&statuses, "active").len(), 3);
    assert!(statuses.contains_key(&repo_id(kept.id, 3)));
    checks::jobs_received(s, &kept_id, 3);
    assert_eq!(api.events(&kept_id)[0], "sync.completed");

    // Next time, neither the disconnected nor the suspended org is visited: once the pass's
    // fan-out and every message about these orgs is handled, none of them called GitHub.
    let before = run_ids(s);
    let seq = last_seq(s);
    s.trigger_cron(SYNC_CRON);
    scheduled_sync_done(s, &before, &[]);
    s.queues_settled("the scheduled sync's messages", |body| {
        body.contains("\"fanout.v1\"")
            || [&gone_id, &suspended_id, &kept_id]
                .iter()
                .any(|id| body.contains(id.as_str()))
    });
    assert!(
        s.queue_trace()
            .iter()
            .any(|(event, _, body)| event == "ended" && body.contains("\"fanout.v1\"")),
        "the trace shows the fan-out"
    );
    assert_eq!(calls_since(s, gone.id, seq), Vec::<String>::new());
    assert_eq!(calls_since(s, suspended.id, seq), Vec::<String>::new());
    assert_eq!(org_status(s, &gone_id), "disconnected");
    assert_eq!(org_status(s, &suspended_id), "suspended");
    let resp = api.request("POST", &format!("/v1/orgs/{suspended_id}/sync"), None);
    assert_problem(&resp, 409, "conflict", "sync of a suspended org");
}

// ---- cron: scheduled backups ----

/// This week's Monday and the Tuesday before it, each at the current hour and 15 minutes (when
/// the hourly cron fires): the times the test fires the hourly pass as at (the worker's
/// `e2e` build), so that both branches of the weekly schedule run whatever the day, and no pass
/// can straddle an hour.
fn monday_and_another_day(now: i64) -> (i64, i64) {
    let day = now.div_euclid(86_400);
    // 1970-01-01 was a Thursday: Monday is 3 days after a day whose index is a multiple of 7.
    let days_since_monday = (day + 3).rem_euclid(7);
    let hour = now.rem_euclid(86_400) / 3_600;
    let monday = (day - days_since_monday) * 86_400 + hour * 3_600 + 15 * 60;
    (monday, monday - 6 * 86_400)
}

/// What one hourly pass should schedule: its hour's key and the `provider_repo_id`s of the daily
/// and the weekly org's jobs.
struct Pass {
    key: String,
    daily: Vec<i64>,
    weekly: Vec<i64>,
}

/// `provider_repo_id` of each `scheduled` job of the org, with its status and dedupe key.
fn scheduled_jobs(s: &Stack, org_id: &str) -> Vec<(i64, String, String)> {
    s.store.query(
        "SELECT r.provider_repo_id, j.status, j.dedupe_key FROM backup_jobs j \
         JOIN repositories r ON r.id = j.repository_id \
         WHERE j.org_id = ?1 AND j.kind = 'scheduled' ORDER BY r.provider_repo_id",
        [org_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

fn scheduled_backups(s: &Stack) {
    let tenant = "tenant-orgs-hourly";
    let api = Portal::new(s, tenant);
    let daily = Inst::org(3140, "e2e-orgs-hourly-daily", 3);
    let off = Inst::org(3141, "e2e-orgs-hourly-off", 2);
    let weekly = Inst::org(3142, "e2e-orgs-hourly-weekly", 2);
    let disconnected = Inst::org(3143, "e2e-orgs-hourly-disconnected", 2);
    let later = Inst::org(3144, "e2e-orgs-hourly-later", 2);
    let [daily_id, off_id, weekly_id, disconnected_id, later_id] =
        [&daily, &off, &weekly, &disconnected, &later].map(|i| connect(s, tenant, i));
    // One repository of the daily org is gone from GitHub.
    let removed = repo_id(daily.id, 2);
    s.emulator.change_repos(daily.id, 0, &[removed]);
    assert_eq!(api.sync(&daily_id)["removed"], 1);
    api.disconnect(&disconnected_id);

    let (monday, tuesday) = monday_and_another_day(now());
    let (weekly_day, other_day) = (backup_hour(monday), backup_hour(tuesday));
    assert!(
        weekly_day.weekly_day && !other_day.weekly_day,
        "{weekly_day:?} {other_day:?}"
    );
    assert_eq!(weekly_day.hour, other_day.hour);
    let h = i64::from(weekly_day.hour);
    api.patch(
        &daily_id,
        json!({ "backup_hour": h, "backup_schedule": "daily" }),
    );
    api.patch(
        &off_id,
        json!({ "backup_hour": h, "backup_schedule": "off" }),
    );
    api.patch(
        &weekly_id,
        json!({ "backup_hour": h, "backup_schedule": "weekly" }),
    );
    api.patch(&disconnected_id, json!({ "backup_hour": h }));
    api.patch(&later_id, json!({ "backup_hour": (h + 1) % 24 }));

    let daily_repos = vec![repo_id(daily.id, 1), repo_id(daily.id, 3)];
    let weekly_repos = vec![repo_id(weekly.id, 1), repo_id(weekly.id, 2)];
    // Another day, then the Monday, then the Monday again.
    let mut expected: Vec<Pass> = Vec::new();
    for (at, hour) in [(tuesday, &other_day), (monday, &weekly_day)] {
        s.trigger_cron_at(HOURLY_CRON, at);
        let weekly_jobs = if hour.weekly_day {
            weekly_repos.clone()
        } else {
            Vec::new()
        };
        expected.push(Pass {
            key: hour.key.clone(),
            daily: daily_repos.clone(),
            weekly: weekly_jobs,
        });
        // The pass's jobs are written before the handler returns; wait for their delivery.
        let total: usize = expected
            .iter()
            .map(|p| p.daily.len() + p.weekly.len())
            .sum();
        poll_until(
            Duration::from_secs(120),
            "the scheduled jobs to be received",
            || {
                let got = [&daily_id, &weekly_id].map(|id| scheduled_jobs(s, id));
                let done = got.iter().map(Vec::len).sum::<usize>() == total
                    && got
                        .iter()
                        .flatten()
                        .all(|(_, status, _)| status == "received");
                if done {
                    Ok(())
                } else {
                    Err(format!("{got:?}"))
                }
            },
        );
    }
    // Each pass: one job per active repository of the daily org (none for the removed one), and
    // of the weekly org on the Monday only; each job's dedupe key names its pass's hour.
    let by_pass = |org_id: &str| {
        let mut passes: BTreeMap<String, Vec<i64>> = expected
            .iter()
            .map(|pass| (pass.key.clone(), Vec::new()))
            .collect();
        for (provider_repo_id, _, key) in scheduled_jobs(s, org_id) {
            let pass = key.rsplit(':').next().unwrap_or_default().to_string();
            passes.entry(pass).or_default().push(provider_repo_id);
        }
        passes
    };
    let passes = |pick: fn(&Pass) -> &Vec<i64>| {
        expected
            .iter()
            .map(|pass| (pass.key.clone(), pick(pass).clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        by_pass(&daily_id),
        passes(|p| &p.daily),
        "daily: every day, one job per active repository, none for the removed one"
    );
    assert_eq!(
        by_pass(&weekly_id),
        passes(|p| &p.weekly),
        "weekly: on Mondays ({}) only, not on {}",
        weekly_day.key,
        other_day.key
    );
    for (what, id) in [
        ("backup_schedule off", &off_id),
        ("a disconnected org", &disconnected_id),
        ("another hour", &later_id),
    ] {
        assert_eq!(scheduled_jobs(s, id), Vec::new(), "{what}");
    }
    let jobs = s.store.jobs(&daily_id);
    assert!(jobs
        .iter()
        .filter(|j| j.kind == "scheduled")
        .all(|j| j.priority == "normal" && j.run_id.is_none()));

    // Again for the Monday's hour: nothing new. The pass writes its jobs before the handler
    // answers `trigger_cron`, so the counts are final when it returns.
    let before: Vec<_> = [&daily_id, &off_id, &weekly_id, &disconnected_id, &later_id]
        .map(|id| s.store.jobs(id).len())
        .to_vec();
    s.trigger_cron_at(HOURLY_CRON, monday);
    let after: Vec<_> = [&daily_id, &off_id, &weekly_id, &disconnected_id, &later_id]
        .map(|id| s.store.jobs(id).len())
        .to_vec();
    assert_eq!(after, before, "once per hour");
    assert!(scheduled_jobs(s, &daily_id)
        .iter()
        .all(|(_, status, _)| status == "received"));
}

// ---- cron: snapshot expiry ----

fn snapshot_expiry(s: &Stack) {
    let tenant = "tenant-orgs-snapshots";
    let api = Portal::new(s, tenant);
    let active_id = connect(s, tenant, &Inst::org(3150, "e2e-orgs-snapshots-active", 1));
    let gone_id = connect(s, tenant, &Inst::org(3151, "e2e-orgs-snapshots-gone", 1));
    // Each org's first real backup (now) is its repository's newest ok snapshot.
    checks::jobs_received(s, &active_id, 1);
    checks::jobs_received(s, &gone_id, 1);
    api.patch(&active_id, json!({ "retention_days": 30 }));
    api.patch(&gone_id, json!({ "retention_days": 10 }));
    insert_snapshot(s, &active_id, "e2e-snap-active-old", 31);
    insert_snapshot(s, &active_id, "e2e-snap-active-new", 29);
    insert_snapshot(s, &gone_id, "e2e-snap-gone-old", 11);
    insert_snapshot(s, &gone_id, "e2e-snap-gone-new", 9);
    let answer = api.disconnect(&gone_id);
    assert_eq!(answer["snapshots_kept"], 3, "{answer}");

    s.trigger_cron(HOURLY_CRON);
    let want = |old: &str, new: &str| {
        BTreeMap::from([
            (old.to_string(), "expired".to_string()),
            (new.to_string(), "available".to_string()),
        ])
    };
    assert_eq!(
        snapshot_statuses(s, &active_id),
        want("e2e-snap-active-old", "e2e-snap-active-new"),
        "30 days of retention"
    );
    assert_eq!(
        snapshot_statuses(s, &gone_id),
        want("e2e-snap-gone-old", "e2e-snap-gone-new"),
        "a disconnected org's snapshots: kept until its 10 days of retention"
    );
    // Retention lengthened: what expired stays expired, the rest stays.
    api.patch(&active_id, json!({ "retention_days": 365 }));
    s.trigger_cron(HOURLY_CRON);
    assert_eq!(
        snapshot_statuses(s, &active_id),
        want("e2e-snap-active-old", "e2e-snap-active-new")
    );
    // Retention shortened: the next pass expires the newer one too; the real backup of today
    // stays.
    api.patch(&active_id, json!({ "retention_days": 7 }));
    s.trigger_cron(HOURLY_CRON);
    assert!(snapshot_statuses(s, &active_id)
        .values()
        .all(|status| status == "expired"));
    let real: Vec<String> = s.store.query(
        "SELECT status FROM snapshots WHERE org_id = ?1 AND id NOT LIKE 'e2e-snap-%'",
        [&active_id],
        |r| r.get(0),
    );
    assert_eq!(real, ["available"], "today's backup is kept");
    // The dispatches and retention passes the hourly passes queued, and these orgs' backups,
    // finish before other tests run.
    s.queues_settled("the hourly passes' queued work", |body| {
        body.contains("\"dispatch.v1\"")
            || body.contains("\"retention.v1\"")
            || body.contains(&active_id)
            || body.contains(&gone_id)
    });
}

// ---- dead letters ----

/// `(attempts, last_error)` of each failure recorded for a message body, oldest first.
fn failures_of(s: &Stack, body: &str) -> Vec<(i64, String)> {
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    s.store.query(
        "SELECT attempts, last_error FROM message_failures WHERE body_hash = ?1 ORDER BY rowid",
        [&hash],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The same message body comes back (a `sync_org.v1` per org every four hours): a failure of
/// it after an earlier one that was retried successfully is counted from 1 again, so it is
/// retried after 2 s, 4 s, … like any other.
fn failures_count_per_streak(s: &Stack) {
    let tenant = "tenant-orgs-failure-streaks";
    let inst = Inst::org(3191, "e2e-orgs-failure-streaks", 1);
    let org_id = connect(s, tenant, &inst);
    let body = serde_json::to_string(&SyncMessage::SyncOrgV1 {
        org_id: org_id.clone(),
    })
    .expect("message JSON");
    // One delivery's worth of failed token requests (4 tries): the retry succeeds.
    let tokens = format!("/app/installations/{}/access_tokens", inst.id);
    let one_failed_delivery = json!([{ "method": "POST", "path_prefix": tokens, "status": 500,
                                        "times": 4 }]);

    // The org's new run starts only once the retried delivery got its token: by then the
    // failure is recorded.
    let _faults = Faults::install(&s.emulator, one_failed_delivery.clone());
    let before = run_ids(s);
    s.trigger_cron(SYNC_CRON);
    scheduled_sync_done(s, &before, &[]);
    let failures = failures_of(s, &body);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].0, 1, "one failed delivery, then success");
    assert!(failures[0].1.contains(&tokens), "{failures:?}");

    // Four hours later, the same message fails once more.
    s.emulator.set_faults(one_failed_delivery);
    let before = run_ids(s);
    s.trigger_cron(SYNC_CRON);
    scheduled_sync_done(s, &before, &[]);
    let failures = failures_of(s, &body);
    let attempts: Vec<i64> = failures.iter().map(|f| f.0).collect();
    assert_eq!(
        attempts,
        [1, 1],
        "the first failure of a new delivery is attempt 1 (retried after 2 s), not a count \
         carried over from the earlier message with the same body"
    );
}

fn dead_letters(s: &Stack) {
    let tenant = "tenant-orgs-dead-letter";
    let inst = Inst::org(3190, "e2e-orgs-dead-letter", 1);
    let org_id = connect(s, tenant, &inst);
    let tokens = format!("/app/installations/{}/access_tokens", inst.id);
    let _faults = Faults::install(
        &s.emulator,
        json!([{ "method": "POST", "path_prefix": tokens, "status": 500 }]),
    );
    let body = serde_json::to_string(&SyncMessage::SyncOrgV1 {
        org_id: org_id.clone(),
    })
    .expect("message JSON");
    let body_hash = hex::encode(Sha256::digest(body.as_bytes()));
    let before = run_ids(s);
    s.trigger_cron(SYNC_CRON);

    let failures = || {
        s.store.query(
            "SELECT queue, attempts, last_error FROM message_failures WHERE body_hash = ?1",
            [&body_hash],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
    };
    let (message_type, reason, dead_body) = poll_until(
        Duration::from_secs(240),
        "the failing sync_org.v1 message to reach dead_letters",
        || {
            s.store
                .query(
                    "SELECT message_type, reason, body FROM dead_letters WHERE body_hash = ?1",
                    [&body_hash],
                    |r| {
                        Ok((
                            r.get::<_, Option<String>>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    },
                )
                .into_iter()
                .next()
                .ok_or_else(|| format!("failures so far: {:?}", failures()))
        },
    );
    assert_eq!(dead_body, body);
    assert_eq!(message_type.as_deref(), Some("sync_org.v1"));
    assert!(
        reason.contains(&format!("sync of org {org_id}")) && reason.contains(&tokens),
        "the reason names the org and the failing call: {reason}"
    );
    let recorded = failures();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (queue, attempts, last_error) = &recorded[0];
    assert_eq!(queue, "onecode-sync");
    assert_eq!(
        *attempts, 5,
        "max_retries = 4: the first delivery and 4 retries each recorded"
    );
    assert_eq!(
        last_error, &reason,
        "the dead letter carries the last failure"
    );
    let token_calls = s
        .emulator
        .worker_requests(inst.id)
        .into_iter()
        .filter(|r| r.path == tokens && r.status == 500)
        .count();
    assert!(token_calls >= 5, "{token_calls} failed token requests");
    // A failing GitHub is not an uninstall: the org stays as it was.
    assert_eq!(org_status(s, &org_id), "active");
    assert_eq!(with_status(&repo_statuses(s, &org_id), "active").len(), 1);
    scheduled_sync_done(s, &before, &[&org_id]);
}
