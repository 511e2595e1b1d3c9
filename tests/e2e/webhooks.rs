//! GitHub webhooks at the edge (issue #3): `POST /github/webhooks` on the real worker, with the
//! effects read back from D1 and from the portal's activity API.
//!
//! - every payload of `@octokit/webhooks-examples` (329), signed and delivered in file order
//!   with its event name, after connecting the installations the acted-on ones name (1, 2,
//!   957387, 16598467) with the repositories they mention: every answer is 2xx, exactly the 16
//!   acted-on deliveries are applied, and the end state is what they mean in that order
//!   (installation 2 disconnected and its repository removed, 16598467 active after suspend +
//!   unsuspend, `Codertocat/Space` added with its stub and a job that fails for good (GitHub
//!   answers 404: installation 957387's account is not `Codertocat`), the pushes to
//!   `Codertocat/Hello-World` (a tag deleted, two of README.md) a backup job coalesced, no
//!   analysis, a repository renamed and transferred, every delivery in its org's activity log,
//!   and the one `backup.failed` of `Codertocat/Space` besides);
//! - signature faults, one test each (missing, SHA-1 only, another algorithm or no prefix,
//!   wrong length, not hex, wrong secret): 401 `unauthorized` naming the fault, and nothing
//!   recorded; a multi-byte UTF-8 body verifies; secret rotation (the test worker's
//!   `GITHUB_WEBHOOK_SECRET` is `["<rotated>", "<dev>"]`): both verify, a third does not;
//! - 415 (not `application/json`), 400 (malformed JSON; missing event or delivery header),
//!   413 (a `Content-Length` over 25 MB; a chunked body over 25 MB), and exactly 25 MB accepted;
//! - a redelivery answers `{"duplicate": true}` and changes nothing, also when eight copies
//!   arrive at once;
//! - out of order: `repository.deleted` before `created` stays removed; `removed` for an
//!   unknown repository leaves a tombstone; re-adding a removed repository reactivates it and
//!   resumes its paused job;
//! - one `installation_repositories.added` of 1,000 repositories: 1,000 jobs, all received;
//! - `repository.*` changes the record follows (fields a payload omits are kept, unknown
//!   repositories are not created), and re-adding an archived repository keeps it archived;
//! - after `installation.deleted`: the queued job paused, suspend / unsuspend ignored by the
//!   status, nothing queued; events through one installation never change another's org;
//! - deliveries acknowledged without effect: unconnected installation, unhandled events and
//!   actions, unexpected shapes;
//! - pushes: every push queues a backup of its repository (a branch deletion and a push of no
//!   dependency file too), coalesced while one waits (a redelivery adds nothing), and the
//!   consumer backs it up (a snapshot for the job); a push of a dependency file also queues one
//!   analysis job (only the dependency file, its kind, the head commit), received by the
//!   consumer; no job of either kind for an unknown or removed repository, or a suspended org;
//! - a push's backup and analysis jobs are sent after the answer; when those sends fail (the
//!   queue binding failed on purpose: `harness::binding_faults`), the jobs stay queued (the
//!   hourly cron's dispatcher leaves them alone), and once their sends are 15 minutes old (made
//!   so in D1) the dispatcher sends them: one send of each in all, the analysis message as the
//!   push made it, a snapshot and a received analysis job (exclusive: it runs the cron);
//! - D1 failing a push's batch: a 500 problem and nothing written; the redelivery applies it
//!   once;
//! - the answer does not wait on GitHub: with every GitHub route delayed 5 s, deliveries
//!   answer in under 2 s (exclusive: fault rules are global);
//! - `GET /v1/orgs/{id}/activity`: `limit` / `before` / `next_before` paging, bad parameters,
//!   and 404 for another tenant's org.
//!
//! Installations 2100-2124 (tenant `tenant-wh-<id>`) and the examples' own ids; delivery ids
//! are unique per run.
//!
//! Every job is a real backup (`src/edge/backup/executor.rs`) of the repository on the emulator, which
//! serves git only for the repositories an installation lists. So the repositories a test's
//! payloads add to an installation are listed on the emulator too, under the payloads' ids and
//! names ([`list_on_github`]), as on GitHub, where a repository is in the installation before
//! GitHub tells of it; their jobs are then `received`. The backup consumer's `backup.*` entries
//! of the activity log are written when a backup settles, in an order the deliveries do not
//! control: tests whose deliveries make backups wait for them to settle and check those entries
//! apart from the deliveries' ([`Target::new_webhook_activity`],
//! [`Target::new_backup_activity`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use onecode_edge::github::webhook_signature::{self, SignatureError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::binding_faults::BindingFaults;
use crate::harness::emulator::Inst;
use crate::harness::http::Resp;
use crate::harness::portal::assert_problem;
use crate::harness::store::{JobRow, RepoRow};
use crate::harness::{poll_until, technician, Stack, ROTATED_WEBHOOK_SECRET};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        Case::exclusive(
            "webhooks::answers_without_waiting_for_a_slow_github",
            answer_time,
        ),
        // The longest first, so that it overlaps with the others.
        Case::shared(
            "webhooks::every_octokit_example_is_acknowledged_and_applied",
            octokit_examples,
        ),
        Case::shared("webhooks::signature_missing_is_401", signature_missing),
        Case::shared("webhooks::signature_sha1_only_is_401", signature_sha1_only),
        Case::shared(
            "webhooks::signature_other_algorithm_is_401",
            signature_other_algorithm,
        ),
        Case::shared(
            "webhooks::signature_wrong_length_is_401",
            signature_wrong_length,
        ),
        Case::shared("webhooks::signature_not_hex_is_401", signature_not_hex),
        Case::shared(
            "webhooks::signature_wrong_secret_is_401",
            signature_wrong_secret,
        ),
        Case::shared("webhooks::multibyte_utf8_body_verifies", multibyte_body),
        Case::shared("webhooks::rotated_secrets_both_verify", rotation),
        Case::shared("webhooks::content_type_not_json_is_415", content_type),
        Case::shared("webhooks::malformed_json_is_400", malformed_json),
        Case::shared(
            "webhooks::missing_event_or_delivery_header_is_400",
            missing_headers,
        ),
        Case::shared("webhooks::bodies_over_25_mb_are_413", too_large),
        Case::shared("webhooks::redelivery_changes_nothing", redelivery),
        Case::exclusive("webhooks::out_of_order_repository_events", out_of_order),
        Case::exclusive(
            "webhooks::pushes_queue_analysis_of_dependency_files",
            pushes,
        ),
        Case::exclusive(
            "webhooks::queue_faults_on_a_push_leave_its_jobs_to_the_dispatcher",
            lost_send,
        ),
        Case::exclusive(
            "webhooks::d1_faults_answer_500_and_the_redelivery_applies_once",
            d1_fault,
        ),
        Case::shared(
            "webhooks::repository_changes_follow_github",
            repository_changes,
        ),
        Case::shared(
            "webhooks::re_added_archived_repository_stays_archived",
            re_added_archived,
        ),
        Case::shared(
            "webhooks::added_1000_repositories_in_one_delivery",
            added_in_bulk,
        ),
        Case::exclusive("webhooks::uninstalled_org_stays_disconnected", uninstalled),
        Case::shared(
            "webhooks::events_change_only_their_installations_org",
            other_orgs_untouched,
        ),
        Case::shared(
            "webhooks::unconnected_and_unhandled_deliveries_are_ignored",
            ignored_deliveries,
        ),
        Case::shared("webhooks::activity_pages_and_tenant_scope", activity_api),
    ]
}

/// GitHub caps webhook payloads at 25 MB; so does the worker.
const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

// ---- deliveries ----

/// A fresh delivery id, GUID-shaped like GitHub's (unique within the run).
fn delivery_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("{:08x}-e2e0-4000-8000-{n:012x}", std::process::id())
}

fn dev_secret(s: &Stack) -> &str {
    s.secrets
        .get("GITHUB_WEBHOOK_SECRET")
        .expect("GITHUB_WEBHOOK_SECRET in .dev.vars")
}

/// `POST /github/webhooks` with exactly these headers (and GitHub's user agent).
fn post(s: &Stack, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let url = format!("{}/github/webhooks", s.worker);
    let headers = [headers, &[("user-agent", "GitHub-Hookshot/e2e")][..]].concat();
    s.http.post_bytes(&url, &headers, body)
}

/// `body` delivered as `event` under `delivery`, signed with `secret`.
fn deliver_signed(s: &Stack, secret: &str, event: &str, delivery: &str, body: &[u8]) -> Resp {
    let signature = webhook_signature::sign(secret, body);
    post(
        s,
        &[
            ("content-type", "application/json"),
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", &signature),
        ],
        body,
    )
}

/// `payload` delivered as `event` under a fresh delivery id, signed with the dev secret.
fn deliver(s: &Stack, event: &str, payload: &Value) -> (String, Resp) {
    let delivery = delivery_id();
    let body = serde_json::to_vec(payload).expect("payload JSON");
    let resp = deliver_signed(s, dev_secret(s), event, &delivery, &body);
    (delivery, resp)
}

/// An applied delivery: 200 `{"ok": true, "event": <event>, "backup_jobs", "analysis_jobs"}`;
/// returns `(backup_jobs, analysis_jobs)`.
#[track_caller]
fn applied(resp: &Resp, event: &str) -> (u64, u64) {
    assert_eq!(resp.status, 200, "expected {event} applied: {}", resp.body);
    let body = resp.json();
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["event"], event, "{body}");
    let count = |k: &str| {
        body[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in {body}"))
    };
    (count("backup_jobs"), count("analysis_jobs"))
}

/// 202 `{"ignored": "<why>"}`.
#[track_caller]
fn ignored(resp: &Resp) -> String {
    assert_eq!(resp.status, 202, "expected ignored: {}", resp.body);
    let body = resp.json();
    body["ignored"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {body}"))
        .to_string()
}

/// A problem+json answer with `status` and `code`; returns its `detail`.
#[track_caller]
fn problem(resp: &Resp, status: u16, code: &str) -> String {
    assert_problem(resp, status, code, "webhook delivery")["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ---- payloads (the fields GitHub sends that the worker reads, plus some it does not) ----

fn sender() -> Value {
    json!({ "login": "e2e-admin", "id": 4242, "type": "User" })
}

fn installation_event(action: &str, installation: u64) -> Value {
    json!({
        "action": action,
        "installation": { "id": installation, "app_id": 3034314, "target_type": "Organization" },
        "sender": sender(),
    })
}

/// A repository as webhook payloads carry it.
fn repo(id: u64, owner: &str, name: &str) -> Value {
    json!({
        "id": id,
        "node_id": format!("R_e2e{id}"),
        "name": name,
        "full_name": format!("{owner}/{name}"),
        "private": false,
        "default_branch": "main",
        "html_url": format!("https://github.com/{owner}/{name}"),
        "archived": false,
        "visibility": "public",
    })
}

fn repositories_event(
    action: &str,
    installation: u64,
    added: &[Value],
    removed: &[Value],
) -> Value {
    json!({
        "action": action,
        "installation": { "id": installation },
        "repository_selection": "selected",
        "repositories_added": added,
        "repositories_removed": removed,
        "sender": sender(),
    })
}

fn repository_event(action: &str, installation: u64, repository: &Value) -> Value {
    json!({
        "action": action,
        "installation": { "id": installation },
        "repository": repository,
        "sender": sender(),
    })
}

/// A push of `commits` (`[{added, modified, removed}]`) to `main`, now at `after`.
fn push_event(installation: u64, repository: &Value, after: &str, commits: Value) -> Value {
    json!({
        "ref": "refs/heads/main",
        "before": "1".repeat(40),
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "commits": commits,
        "head_commit": null,
        "repository": repository,
        "installation": { "id": installation },
        "sender": sender(),
    })
}

// ---- organizations and what D1 holds for them ----

/// `(event, delivery id)` of an activity entry.
type Activity = (String, Option<String>);

/// An organization a test connected, and its activity right after connecting.
struct Target {
    tenant: String,
    installation: u64,
    login: String,
    org: String,
    baseline: Vec<Activity>,
}

impl Target {
    /// Installation `id` with `repos` generated repositories (`e2e-wh-<id>-repo-0000i`, id
    /// `id * 1_000_000 + i`), connected for `tenant-wh-<id>`.
    #[track_caller]
    fn connect(s: &Stack, id: u64, repos: u32) -> Target {
        let login = format!("e2e-wh-{id}");
        s.emulator.put_installation(&Inst::org(id, &login, repos));
        Target::connected(s, &format!("tenant-wh-{id}"), id, &login, repos as usize)
    }

    /// Installation `id` of account `login` with these repositories (`{"id", "name", …}` as
    /// the emulator takes them), connected for `tenant`.
    #[track_caller]
    fn connect_named(s: &Stack, tenant: &str, id: u64, login: &str, repos: Value) -> Target {
        let n = match &repos {
            Value::Array(list) => list.len(),
            other => other.as_u64().expect("a count or a list") as usize,
        };
        put_installation(s, id, login, &repos);
        Target::connected(s, tenant, id, login, n)
    }

    #[track_caller]
    fn connected(s: &Stack, tenant: &str, id: u64, login: &str, repos: usize) -> Target {
        let callback = s.connect_and_install(tenant, id);
        let done = callback.done();
        assert_eq!(
            (done.repos, done.complete),
            (repos as u64, true),
            "Location: {}",
            callback.location
        );
        initial_jobs_received(s, &done.org_id, repos);
        let mut target = Target {
            tenant: tenant.to_string(),
            installation: id,
            login: login.to_string(),
            org: done.org_id,
            baseline: Vec::new(),
        };
        target.baseline = target.activity(s);
        assert!(
            target.baseline.iter().any(|(e, _)| e == "org.connected"),
            "the connect is in the activity log: {:?}",
            target.baseline
        );
        target
    }

    fn jwt(&self, s: &Stack) -> String {
        s.portal_jwt(&self.tenant, &technician(&self.tenant))
    }

    /// The whole activity log through the API, oldest first, with each entry's detail.
    #[track_caller]
    fn entries(&self, s: &Stack) -> Vec<(Activity, String)> {
        let resp = activity_page(s, &self.jwt(s), &self.org, "limit=100");
        assert_eq!(resp.status, 200, "activity: {}", resp.body);
        let body = resp.json();
        assert_eq!(body["next_before"], Value::Null, "fits in one page: {body}");
        let mut items: Vec<(Activity, String)> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    (
                        i["event"].as_str().expect("event").to_string(),
                        i["delivery_id"].as_str().map(str::to_string),
                    ),
                    i["detail"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        items.reverse();
        items
    }

    /// The whole activity log through the API, oldest first.
    #[track_caller]
    fn activity(&self, s: &Stack) -> Vec<Activity> {
        self.entries(s).into_iter().map(|(a, _)| a).collect()
    }

    /// What was logged since the test connected the org, with each entry's detail.
    #[track_caller]
    fn new_entries(&self, s: &Stack) -> Vec<(Activity, String)> {
        let mut all = self.entries(s);
        let logged: Vec<&Activity> = all.iter().map(|(a, _)| a).collect();
        assert!(
            logged.len() >= self.baseline.len()
                && logged.iter().zip(&self.baseline).all(|(a, b)| *a == b),
            "the log only grows: {logged:?}"
        );
        all.split_off(self.baseline.len())
    }

    /// Everything logged since the test connected the org (the backups of its repositories
    /// then were all settled, their entries in the baseline).
    #[track_caller]
    fn new_activity(&self, s: &Stack) -> Vec<Activity> {
        self.new_entries(s).into_iter().map(|(a, _)| a).collect()
    }

    /// What was logged since the test connected the org, the backup consumer's `backup.*`
    /// entries aside. Those are written when a backup settles (`backup.first`: a repository's
    /// first ok snapshot; `backup.failed`: a job failed for good), asynchronously, so they
    /// interleave with the deliveries' entries in an order no test controls (tests/e2e/backups.rs
    /// covers them). A test whose deliveries make backups compares the deliveries' entries with
    /// this, waits for its backups to settle and checks theirs with
    /// [`Target::new_backup_activity`]; the other tests compare everything with
    /// [`Target::new_activity`].
    #[track_caller]
    fn new_webhook_activity(&self, s: &Stack) -> Vec<Activity> {
        self.new_activity(s)
            .into_iter()
            .filter(|(event, _)| !is_backup_event(event))
            .collect()
    }

    /// The backup consumer's `backup.*` entries logged since the test connected the org, oldest
    /// first: `(event, detail)`. Final only once the backups that may log one have settled.
    #[track_caller]
    fn new_backup_activity(&self, s: &Stack) -> Vec<(String, String)> {
        self.new_entries(s)
            .into_iter()
            .filter(|((event, _), _)| is_backup_event(event))
            .map(|((event, delivery), detail)| {
                assert_eq!(delivery, None, "{event} is no delivery's: {detail}");
                (event, detail)
            })
            .collect()
    }

    fn status(&self, s: &Stack) -> String {
        org_status(s, &self.org)
    }

    fn repo(&self, s: &Stack, provider_repo_id: u64) -> Option<RepoRow> {
        repo_row(s, &self.org, provider_repo_id)
    }

    /// Id of generated repository `i` on the emulator.
    fn generated(&self, i: u64) -> u64 {
        self.installation * 1_000_000 + i
    }

    /// Generated repository `i` as webhook payloads carry it.
    fn generated_repo(&self, i: u64) -> Value {
        repo(
            self.generated(i),
            &self.login,
            &format!("{}-repo-{i:05}", self.login),
        )
    }
}

/// `backup.first`, `backup.failed`: an entry of the backup consumer, not of a delivery.
fn is_backup_event(event: &str) -> bool {
    event.starts_with("backup.")
}

/// The entries are exactly the `backup.first` of these repositories (full names), in order:
/// their first backups stored an ok snapshot.
#[track_caller]
fn assert_first_backups(entries: &[(String, String)], full_names: &[String]) {
    let ok = entries.len() == full_names.len()
        && entries
            .iter()
            .zip(full_names)
            .all(|((event, detail), name)| {
                event == "backup.first"
                    && detail.starts_with(&format!("first backup of {name} stored"))
            });
    assert!(ok, "the first backups of {full_names:?}: {entries:#?}");
}

/// Creates (or replaces) installation `id` on the emulator: the organization `login` (account
/// id `900_000 + id`, named `"<login> Inc."`, as [`Inst::org`]) with `repos`, a count of
/// generated repositories or a list of `{"id", "name", …}`.
#[track_caller]
fn put_installation(s: &Stack, id: u64, login: &str, repos: &Value) {
    let body = json!({
        "account": { "login": login, "id": 900_000 + id, "type": "Organization", "name": format!("{login} Inc.") },
        "repositories": repos,
    });
    let resp = s.http.request(
        "PUT",
        &format!("{}/_emulator/installations/{id}", s.emulator.base),
        &[],
        Some(&body.to_string()),
    );
    assert_eq!(resp.status, 200, "emulator: {}", resp.body);
}

/// Makes GitHub (the emulator) list `added`, repositories of the target's account as the
/// payloads carry them, in the target's installation, with the payloads' ids and attributes,
/// besides what it lists already: the backups of the repositories the payloads add then find
/// them (the emulator serves git only for the repositories an installation lists, by owner
/// and name), and the installation stays what the payloads say it is.
#[track_caller]
fn list_on_github(s: &Stack, target: &Target, added: &[Value]) {
    let mut repos: Vec<Value> = s
        .emulator
        .repositories(target.installation)
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "private": r.private,
                "default_branch": r.default_branch,
                "archived": r.archived,
            })
        })
        .collect();
    for r in added {
        let name = r["name"].as_str().expect("name");
        assert_eq!(
            r["full_name"],
            json!(format!("{}/{name}", target.login)),
            "a repository of the installation's account"
        );
        repos.push(json!({
            "id": r["id"].as_u64().expect("id"),
            "name": name,
            "private": r["private"].as_bool().unwrap_or(false),
            "default_branch": r["default_branch"].as_str().unwrap_or("main"),
            "archived": r["archived"].as_bool().unwrap_or(false),
        }));
    }
    put_installation(s, target.installation, &target.login, &Value::Array(repos));
}

fn activity_page(s: &Stack, jwt: &str, org: &str, query: &str) -> Resp {
    s.http.request(
        "GET",
        &format!("{}/v1/orgs/{org}/activity?{query}", s.worker),
        &[("authorization", &format!("Bearer {jwt}"))],
        None,
    )
}

fn org_status(s: &Stack, org: &str) -> String {
    s.store
        .query(
            "SELECT status FROM organizations WHERE id = ?1",
            [org],
            |r| r.get(0),
        )
        .pop()
        .unwrap_or_else(|| panic!("no organization {org}"))
}

fn repo_row(s: &Stack, org: &str, provider_repo_id: u64) -> Option<RepoRow> {
    s.store
        .repos(org)
        .into_iter()
        .find(|r| r.provider_repo_id == provider_repo_id as i64)
}

/// `webhook_deliveries` rows for a delivery id.
fn recorded(s: &Stack, delivery: &str) -> i64 {
    s.store.count(
        "SELECT count(*) FROM webhook_deliveries WHERE delivery_id = ?1",
        [delivery],
    )
}

/// The org's `initial` backup jobs (scheduled ones, which other tests' crons may add, aside).
fn initial_jobs(s: &Stack, org: &str) -> Vec<JobRow> {
    s.store
        .jobs(org)
        .into_iter()
        .filter(|j| j.kind == "initial")
        .collect()
}

fn jobs_of(s: &Stack, org: &str, repository_id: &str) -> Vec<JobRow> {
    initial_jobs(s, org)
        .into_iter()
        .filter(|j| j.repository_id == repository_id)
        .collect()
}

/// How long the initial backups of `jobs` repositories may take (each a real backup, a
/// batch of 8 at a time).
fn backups_timeout(jobs: usize) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(250) * jobs as u32
}

/// Waits for the consumer to have received all `expected` initial jobs of the org: each was
/// backed up (or settled without work, for an org or a repository no longer active).
#[track_caller]
fn initial_jobs_received(s: &Stack, org: &str, expected: usize) {
    poll_until(
        backups_timeout(expected),
        "the consumer to receive every initial backup job",
        || {
            let jobs = initial_jobs(s, org);
            let received = jobs.iter().filter(|j| j.status == "received").count();
            if jobs.len() == expected && received == expected {
                Ok(())
            } else {
                Err(format!(
                    "{received} of {} jobs received: {jobs:?}",
                    jobs.len()
                ))
            }
        },
    );
}

/// Waits for the org's `expected` initial jobs to be settled (neither queued nor running);
/// returns them.
#[track_caller]
fn initial_jobs_settled(s: &Stack, org: &str, expected: usize) -> Vec<JobRow> {
    poll_until(
        backups_timeout(expected),
        "the consumer to settle every initial backup job",
        || {
            let jobs = initial_jobs(s, org);
            let settled = jobs
                .iter()
                .filter(|j| j.status != "queued" && j.status != "running")
                .count();
            if jobs.len() == expected && settled == expected {
                Ok(jobs)
            } else {
                Err(format!(
                    "{settled} of {} jobs settled: {jobs:?}",
                    jobs.len()
                ))
            }
        },
    )
}

/// The snapshots taken for a job: `(outcome, error)`, oldest first.
fn job_snapshots(s: &Stack, job_id: &str) -> Vec<(String, Option<String>)> {
    s.store.query(
        "SELECT outcome, error FROM snapshots WHERE job_id = ?1 ORDER BY started_at, rowid",
        [job_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn has_profile(s: &Stack, org: &str, repository_id: &str) -> bool {
    s.store
        .profiled_repos(org)
        .iter()
        .any(|(id, status)| id == repository_id && status == "stub")
}

#[derive(Debug, Clone)]
struct AnalysisRow {
    repository_id: String,
    delivery_id: String,
    git_ref: String,
    head_commit: String,
    files: Value,
    status: String,
}

fn analysis_jobs(s: &Stack, org: &str) -> Vec<AnalysisRow> {
    s.store.query(
        "SELECT repository_id, delivery_id, git_ref, head_commit, files, status \
         FROM analysis_jobs WHERE org_id = ?1 ORDER BY created_at",
        [org],
        |r| {
            Ok(AnalysisRow {
                repository_id: r.get(0)?,
                delivery_id: r.get(1)?,
                git_ref: r.get(2)?,
                head_commit: r.get(3)?,
                files: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or(Value::Null),
                status: r.get(5)?,
            })
        },
    )
}

/// The repository's backup jobs of kind `push`.
fn push_jobs(s: &Stack, org: &str, repository_id: &str) -> Vec<JobRow> {
    s.store
        .jobs(org)
        .into_iter()
        .filter(|j| j.kind == "push" && j.repository_id == repository_id)
        .collect()
}

/// A push to a repository with no backup waiting queues one (`backup_jobs: 1`). The only job
/// that can be waiting once the initial one was received is a scheduled one, which another
/// test's hourly cron makes at the org's backup hour (02:00 UTC unless changed): then the push
/// is coalesced into it (0).
#[track_caller]
fn first_push_backup(s: &Stack, org: &str, repository_id: &str, answered: u64) {
    if answered == 1 {
        return;
    }
    assert_eq!(answered, 0, "a push queues one backup job at most");
    let jobs = s.store.jobs(org);
    assert!(
        jobs.iter()
            .any(|j| j.kind == "scheduled" && j.repository_id == repository_id),
        "the first push was coalesced, yet no scheduled job could have been waiting: {jobs:?}"
    );
}

/// The repository's push jobs agree with the answers to the pushes delivered to it
/// (`answered`: each one's `backup_jobs`): one job per push answered with one, each push
/// answered with one at most, and never more than one job waiting (`queued`): pushes are
/// coalesced. Returns the jobs.
#[track_caller]
fn push_jobs_agree(s: &Stack, org: &str, repository_id: &str, answered: &[u64]) -> Vec<JobRow> {
    assert!(
        answered.iter().all(|&n| n <= 1),
        "one backup job per push at most: {answered:?}"
    );
    let jobs = push_jobs(s, org, repository_id);
    assert_eq!(
        jobs.len() as u64,
        answered.iter().sum::<u64>(),
        "a push job per push answered with one ({answered:?}): {jobs:?}"
    );
    assert!(
        jobs.iter().filter(|j| j.status == "queued").count() <= 1,
        "pushes are coalesced: at most one job waits: {jobs:?}"
    );
    jobs
}

// ---- a lost send ----

/// The hourly cron (`queues::hourly`), whose last step is the dispatcher.
const HOURLY_CRON: &str = "15 * * * *";

fn lost_send(s: &Stack) {
    let target = Target::connect(s, 2125, 1);
    initial_jobs_settled(s, &target.org, 1);
    let repository = target.generated_repo(1);
    let commits = json!([{ "id": "c1", "added": [], "modified": ["README.md", "Cargo.toml"], "removed": [] }]);
    let body = serde_json::to_vec(&push_event(2125, &repository, "c1", commits)).expect("JSON");
    // The queue refuses the next two sends: this delivery's backup and analysis sends, both
    // made after the answer.
    let faults = BindingFaults::arm(s, json!([{ "binding": "queue", "op": "send", "times": 2 }]));
    let delivery = delivery_id();
    let resp = deliver_signed(s, dev_secret(s), "push", &delivery, &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        applied(&resp, "push"),
        (1, 1),
        "a backup (the initial job settled: nothing to coalesce into) and an analysis"
    );
    poll_until(
        Duration::from_secs(30),
        "the failed sends",
        || match faults.armed() {
            0 => Ok(()),
            n => Err(format!("{n} armed")),
        },
    );
    let committed = |sql: &str| {
        s.store
            .query(sql, [delivery.as_str()], |r| r.get::<_, String>(0))
            .pop()
            .expect("the push's job is committed")
    };
    let job = committed("SELECT id FROM backup_jobs WHERE dedupe_key = 'push:' || ?1");
    let analysis = committed("SELECT id FROM analysis_jobs WHERE delivery_id = ?1");
    let sent = |kind: &str, id: &str| {
        s.queue_trace()
            .into_iter()
            .filter(|(event, _, body)| event == "sent" && body.contains(kind) && body.contains(id))
            .map(|(_, _, body)| body)
            .collect::<Vec<_>>()
    };
    let sends = || {
        (
            sent("backup_job.v1", &job).len(),
            sent("analysis_job.v1", &analysis).len(),
        )
    };
    let analysis_status = |s: &Stack| {
        s.store
            .query(
                "SELECT status FROM analysis_jobs WHERE id = ?1",
                [analysis.as_str()],
                |r| r.get::<_, String>(0),
            )
            .pop()
    };
    // The dispatcher leaves a job sent just now alone (its send may still be on its way)…
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let dispatched = |s: &Stack| s.queues_settled("the dispatch", |b| b.contains("dispatch.v1"));
    s.trigger_cron_at(HOURLY_CRON, now);
    dispatched(s);
    let status = |s: &Stack| {
        s.store
            .jobs(&target.org)
            .into_iter()
            .find(|j| j.id == job)
            .map(|j| j.status)
    };
    assert_eq!(status(s).as_deref(), Some("queued"), "the send was lost");
    assert_eq!(analysis_status(s).as_deref(), Some("queued"));
    assert_eq!(sends(), (0, 0), "nothing sent the jobs");
    // …and sends it once the send is older than its cutoff (15 minutes). The dispatch runs in
    // the queue consumer on the real clock, so the send is made 20 minutes old instead.
    let twenty_minutes_ago = onecode_edge::time::rfc3339(now - 20 * 60);
    for (table, id) in [("backup_jobs", &job), ("analysis_jobs", &analysis)] {
        assert_eq!(
            s.store.execute(
                &format!(
                    "UPDATE {table} SET dispatched_at = ?2 WHERE id = ?1 AND status = 'queued'"
                ),
                [id.as_str(), twenty_minutes_ago.as_str()],
            ),
            1
        );
    }
    s.trigger_cron_at(HOURLY_CRON, now);
    dispatched(s);
    s.queues_settled("the dispatched jobs", |body| {
        body.contains(&job) || body.contains(&analysis)
    });
    let settled = poll_until(
        Duration::from_secs(120),
        "the job to settle",
        || match status(s) {
            Some(st) if st == "received" || st == "failed" => Ok(st),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(settled, "received", "backed up");
    assert_eq!(analysis_status(s).as_deref(), Some("received"));
    assert_eq!(sends(), (1, 1), "each sent once, by the dispatcher");
    // The dispatcher rebuilt the analysis message from its row: what the push said.
    let message: Value =
        serde_json::from_str(&sent("analysis_job.v1", &analysis)[0]).expect("JSON");
    assert_eq!(message["head_commit"], "c1", "{message}");
    assert_eq!(message["truncated"], false, "{message}");
    assert_eq!(message["installation_id"], 2125, "{message}");
    assert_eq!(
        message["files"]
            .as_array()
            .map(|f| f.iter().map(|f| f["path"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("Cargo.toml")]),
        "{message}"
    );
    // The repository did not change since its initial backup: `unchanged`, recorded for the job.
    let snapshots = job_snapshots(s, &job);
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert!(
        matches!(snapshots[0].0.as_str(), "ok" | "unchanged"),
        "{snapshots:?}"
    );
}

// ---- D1 failing ----

/// D1 fails the batch that would apply a push: the delivery answers a 500 problem (GitHub
/// counts it failed, to be redelivered) and nothing of it is written; its redelivery applies it
/// once, and a third copy is a duplicate.
fn d1_fault(s: &Stack) {
    let target = Target::connect(s, 2126, 1);
    initial_jobs_settled(s, &target.org, 1);
    let repository = target.generated_repo(1);
    let commits = json!([{ "id": "c1", "added": [], "modified": ["README.md"], "removed": [] }]);
    let body = serde_json::to_vec(&push_event(2126, &repository, "c1", commits)).expect("JSON");
    let delivery = delivery_id();
    let written = || {
        let count = |sql: &str| {
            s.store
                .query(sql, [delivery.as_str()], |r| r.get::<_, i64>(0))
                .pop()
                .unwrap_or_default()
        };
        (
            count("SELECT count(*) FROM webhook_deliveries WHERE delivery_id = ?1"),
            count("SELECT count(*) FROM backup_jobs WHERE dedupe_key = 'push:' || ?1"),
        )
    };
    {
        let faults = BindingFaults::arm(s, json!([{ "binding": "d1", "op": "batch", "times": 1 }]));
        let resp = deliver_signed(s, dev_secret(s), "push", &delivery, &body);
        problem(&resp, 500, "internal");
        assert_eq!(faults.armed(), 0, "the delivery met the fault");
    }
    assert_eq!(
        written(),
        (0, 0),
        "nothing of the failed delivery is written"
    );
    let again = deliver_signed(s, dev_secret(s), "push", &delivery, &body);
    assert_eq!(applied(&again, "push"), (1, 0), "the redelivery applies it");
    let third = deliver_signed(s, dev_secret(s), "push", &delivery, &body);
    assert_eq!(third.status, 200, "{}", third.body);
    assert_eq!(third.json()["duplicate"], true, "{}", third.body);
    assert_eq!(written(), (1, 1), "applied once");
    let job = s
        .store
        .query(
            "SELECT id FROM backup_jobs WHERE dedupe_key = 'push:' || ?1",
            [delivery.as_str()],
            |r| r.get::<_, String>(0),
        )
        .pop()
        .expect("the push's job");
    s.queues_settled("the push's backup", |b| b.contains(&job));
}

// ---- 1. every example payload ----

const EXAMPLES: &str = "node_modules/@octokit/webhooks-examples/api.github.com/index.json";

#[derive(Deserialize)]
struct ExampleGroup {
    name: String,
    examples: Vec<Value>,
}

/// The deliveries among the examples that the worker acts on, in file order: event, action
/// (none for `push`), installation. Everything else is a `ping` (200) or acknowledged and
/// ignored (202).
const APPLIED: [(&str, &str, u64); 16] = [
    ("installation", "deleted", 2),
    ("installation", "created", 957387),
    ("installation", "created", 957387),
    ("installation", "deleted", 2),
    ("installation", "new_permissions_accepted", 957387),
    ("installation", "suspend", 16598467),
    ("installation", "unsuspend", 16598467),
    ("installation_repositories", "added", 957387),
    ("installation_repositories", "added", 957387),
    ("installation_repositories", "removed", 2),
    // `Codertocat/Hello-World`: `simple-tag` deleted, then two pushes to `master` (README.md).
    ("push", "", 1),
    ("push", "", 1),
    ("push", "", 1),
    ("repository", "created", 1),
    ("repository", "renamed", 1),
    ("repository", "transferred", 1),
];

/// Where the examples' pushes are in [`APPLIED`].
const EXAMPLE_PUSHES: std::ops::Range<usize> = 10..13;

/// One example as delivered.
struct Delivered {
    index: usize,
    event: String,
    action: String,
    installation: Option<u64>,
    delivery: String,
    resp: Resp,
}

impl Delivered {
    /// The event as the answer and the activity log name it (`push` has no action).
    fn name(&self) -> String {
        event_name(&self.event, &self.action)
    }
}

/// `event.action`, or `event` alone for an event without action (`push`).
fn event_name(event: &str, action: &str) -> String {
    if action.is_empty() {
        event.to_string()
    } else {
        format!("{event}.{action}")
    }
}

fn octokit_examples(s: &Stack) {
    let path = s.root.join(EXAMPLES);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} (npm ci installs it): {e}", path.display()));
    let groups: Vec<ExampleGroup> = serde_json::from_str(&text).expect("the examples index");
    let total: usize = groups.iter().map(|g| g.examples.len()).sum();
    assert_eq!(total, 329, "examples in {EXAMPLES}");

    // The installations the acted-on examples name, with the repositories they mention:
    // - 1 (no account in the payloads): `Codertocat/Hello-World` (186853002, the pushes'),
    //   and 186853261 under its name before `repository.renamed` / `transferred` made it
    //   `Octocoders/Hello-World` (private, on `main`, so that following GitHub shows);
    // - 2 (`octocat`): `octocat/Hello-World` (1296269), removed by the examples;
    // - 957387 and 16598467: repositories the examples do not name (957387 gets
    //   `Codertocat/Space`, 186853007, from `installation_repositories.added`).
    let tenant = "tenant-wh-examples";
    let one = Target::connect_named(
        s,
        tenant,
        1,
        "Codertocat",
        json!([
            { "id": 186853002, "name": "Hello-World" },
            { "id": 186853261, "name": "Hello-World-old", "private": true, "default_branch": "main" },
        ]),
    );
    let two = Target::connect_named(
        s,
        tenant,
        2,
        "octocat",
        json!([{ "id": 1296269, "name": "Hello-World" }]),
    );
    let space = Target::connect_named(s, tenant, 957387, "e2e-wh-957387", json!(2));
    let suspended = Target::connect_named(s, tenant, 16598467, "e2e-wh-16598467", json!(1));
    let targets = [&one, &two, &space, &suspended];

    // Deliver them all, in file order.
    let mut delivered = Vec::with_capacity(total);
    let examples = groups
        .iter()
        .flat_map(|g| g.examples.iter().map(move |e| (g.name.as_str(), e)));
    for (index, (event, example)) in examples.enumerate() {
        let delivery = delivery_id();
        let body = serde_json::to_vec(example).expect("example JSON");
        let resp = deliver_signed(s, dev_secret(s), event, &delivery, &body);
        delivered.push(Delivered {
            index,
            event: event.to_string(),
            action: example["action"].as_str().unwrap_or_default().to_string(),
            installation: example["installation"]["id"].as_u64(),
            delivery,
            resp,
        });
    }

    // Never a 4xx or 5xx.
    let refused: Vec<String> = delivered
        .iter()
        .filter(|d| !(200..300).contains(&d.resp.status))
        .map(|d| {
            format!(
                "#{} {}.{} -> {} {}",
                d.index, d.event, d.action, d.resp.status, d.resp.body
            )
        })
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {total} examples were not acknowledged:\n{}",
        refused.len(),
        refused.join("\n")
    );

    // Pings answer 200, the acted-on ones are applied in order, the access events (issue #10)
    // of connected installations go to the access audit, everything else is ignored.
    let mut applied_seen = Vec::new();
    let mut access_seen = Vec::new();
    for d in &delivered {
        if d.event == "ping" {
            assert_eq!(d.resp.status, 200, "#{} ping: {}", d.index, d.resp.body);
            assert_eq!(d.resp.json()["event"], "ping");
        } else if d.resp.status == 200
            && onecode_edge::github::webhook_events::ACCESS_EVENTS.contains(&d.event.as_str())
        {
            let body = d.resp.json();
            assert_eq!(body["ok"], true, "#{} {}: {body}", d.index, d.name());
            assert_eq!(body["event"], d.name(), "#{}: {body}", d.index);
            assert!(
                body["access_events"].is_u64() || body["access"].is_object(),
                "#{} {}: applied to the access state or re-read: {body}",
                d.index,
                d.name()
            );
            access_seen.push(d.name());
        } else if d.resp.status == 200 {
            let (backups, analyses) = applied(&d.resp, &d.name());
            applied_seen.push((d, backups, analyses));
        } else {
            ignored(&d.resp);
        }
    }
    let sequence: Vec<(&str, &str, u64)> = applied_seen
        .iter()
        .map(|(d, _, _)| {
            (
                d.event.as_str(),
                d.action.as_str(),
                d.installation.expect("applied events name an installation"),
            )
        })
        .collect();
    assert_eq!(sequence, APPLIED, "the deliveries applied, in order");
    assert!(
        !access_seen.is_empty(),
        "some examples are access events of connected installations"
    );
    // Only the first `added` of `Codertocat/Space` creates an initial job; nothing queues
    // analysis (the pushes change README.md only, or delete a tag). The pushes' backup jobs are
    // checked below: the first one (a tag deleted) queues one, the next two are coalesced into
    // it while it waits (0) but the consumer may have taken it by then (1).
    let mut jobs: Vec<(u64, u64)> = applied_seen.iter().map(|(_, b, a)| (*b, *a)).collect();
    let push_answers: Vec<u64> = jobs[EXAMPLE_PUSHES].iter().map(|(b, _)| *b).collect();
    for (backups, _) in &mut jobs[EXAMPLE_PUSHES] {
        *backups = 0;
    }
    let mut expected_jobs = vec![(0, 0); APPLIED.len()];
    expected_jobs[7] = (1, 0);
    assert_eq!(
        jobs, expected_jobs,
        "(backup_jobs, analysis_jobs) per delivery (the pushes' backups aside)"
    );
    // The pushes' backup jobs: one per push answered with one, all of `Codertocat/Hello-World`
    // (installation 1 has it; its initial job was received when it connected).
    let hello_world = one.repo(s, 186853002).expect("Codertocat/Hello-World");
    first_push_backup(s, &one.org, &hello_world.id, push_answers[0]);
    push_jobs_agree(s, &one.org, &hello_world.id, &push_answers);
    for target in targets {
        let jobs = s.store.jobs(&target.org);
        assert!(
            jobs.iter()
                .filter(|j| j.kind == "push")
                .all(|j| j.repository_id == hello_world.id),
            "installation {}: {jobs:?}",
            target.installation
        );
    }
    for (d, _, _) in &applied_seen {
        assert_eq!(
            recorded(s, &d.delivery),
            1,
            "delivery #{} recorded",
            d.index
        );
    }

    // 957387's job for `Codertocat/Space` fails for good. The payload carries no clone URL,
    // so the worker derives `{GitHub}/Codertocat/Space.git`, and GitHub (the emulator) answers
    // 404 for it to installation 957387: its account is `e2e-wh-957387`, and `Codertocat` is
    // installation 1's. Its other two jobs were received when it connected.
    let space_repo = space.repo(s, 186853007).expect("Codertocat/Space");
    let space_jobs = jobs_of(s, &space.org, &space_repo.id);
    assert_eq!(space_jobs.len(), 1, "one job for Space: {space_jobs:?}");
    for job in initial_jobs_settled(s, &space.org, 3) {
        let expected = if job.id == space_jobs[0].id {
            "failed"
        } else {
            "received"
        };
        assert_eq!(job.status, expected, "{job:?}");
    }
    let snapshots = job_snapshots(s, &space_jobs[0].id);
    assert!(
        matches!(snapshots.as_slice(), [(outcome, Some(error))] if outcome == "failed" && error.contains("404")),
        "one failed snapshot, for GitHub's 404: {snapshots:?}"
    );

    // Every applied delivery is in its org's activity log, in order, and nothing else is but
    // the failure of Space's backup (Hello-World's push backups log nothing: its first backup
    // was logged when installation 1 connected).
    let mut expected: BTreeMap<u64, Vec<Activity>> = BTreeMap::new();
    for (d, _, _) in &applied_seen {
        expected
            .entry(d.installation.expect("installation"))
            .or_default()
            .push((d.name(), Some(d.delivery.clone())));
    }
    for target in targets {
        assert_eq!(
            target.new_webhook_activity(s),
            expected.remove(&target.installation).unwrap_or_default(),
            "activity of installation {}",
            target.installation
        );
        let backups = target.new_backup_activity(s);
        if target.installation == space.installation {
            assert!(
                matches!(backups.as_slice(), [(event, detail)] if event == "backup.failed"
                    && detail.starts_with("backup of Codertocat/Space failed: ")
                    && detail.contains("404")),
                "the failure of Space's backup: {backups:?}"
            );
        } else {
            assert_eq!(
                backups,
                Vec::<(String, String)>::new(),
                "backups of installation {}",
                target.installation
            );
        }
    }

    // Installation 2: deleted (twice: the second changes nothing), then its repository
    // removed while disconnected. Its job had been received before, so stays so.
    assert_eq!(two.status(s), "disconnected");
    let hello = two.repo(s, 1296269).expect("octocat/Hello-World");
    assert_eq!(
        (hello.full_name.as_str(), hello.status.as_str()),
        ("octocat/Hello-World", "removed")
    );
    let jobs = initial_jobs(s, &two.org);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, "received", "a received job is not paused");

    // 16598467: suspended, then unsuspended.
    assert_eq!(suspended.status(s), "active");

    // 957387: created twice and new permissions change nothing; `Codertocat/Space` added
    // (twice: once recorded) with a profile stub and a job (failed for good, see above).
    assert_eq!(space.status(s), "active");
    let repos = s.store.repos(&space.org);
    assert_eq!(repos.len(), 3, "two repositories and Space: {repos:#?}");
    let space_repo = space.repo(s, 186853007).expect("Codertocat/Space");
    assert_eq!(
        (
            space_repo.name.as_str(),
            space_repo.full_name.as_str(),
            space_repo.private,
            space_repo.status.as_str()
        ),
        ("Space", "Codertocat/Space", 0, "active")
    );
    assert!(
        has_profile(s, &space.org, &space_repo.id),
        "Space has its stub"
    );
    assert_eq!(jobs_of(s, &space.org, &space_repo.id).len(), 1);

    // 1: `repository.created` for a repository already recorded adds nothing; `renamed` and
    // `transferred` make the record follow GitHub.
    assert_eq!(one.status(s), "active");
    let repos = s.store.repos(&one.org);
    assert_eq!(repos.len(), 2, "no duplicate: {repos:#?}");
    let moved = one.repo(s, 186853261).expect("the renamed repository");
    assert_eq!(moved.name, "Hello-World");
    assert_eq!(moved.full_name, "Octocoders/Hello-World");
    assert_eq!(moved.private, 0, "public now");
    assert_eq!(moved.default_branch.as_deref(), Some("master"));
    assert_eq!(
        moved.html_url.as_deref(),
        Some("https://github.com/Octocoders/Hello-World")
    );
    assert_eq!(moved.visibility.as_deref(), Some("public"));
    assert_eq!((moved.archived, moved.status.as_str()), (0, "active"));
    let pushed = one.repo(s, 186853002).expect("Codertocat/Hello-World");
    assert_eq!(
        (pushed.full_name.as_str(), pushed.status.as_str()),
        ("Codertocat/Hello-World", "active")
    );
    assert_eq!(s.store.profiled_repos(&one.org).len(), 2);
    assert_eq!(initial_jobs(s, &one.org).len(), 2, "no job for `created`");
    assert!(
        analysis_jobs(s, &one.org).is_empty(),
        "the examples' pushes touch no dependency file (or delete a tag)"
    );
}

// ---- 2. signatures and request errors ----

/// A delivery that would suspend the target's org had it been accepted.
fn suspend_body(target: &Target) -> Vec<u8> {
    serde_json::to_vec(&installation_event("suspend", target.installation)).expect("JSON")
}

/// Sends `body` as an `installation` delivery with a fresh id and `extra` headers (the
/// signature, or its absence); expects a problem with `status` and `code`, and nothing
/// recorded for that delivery. Returns the `detail`.
#[track_caller]
fn refused(s: &Stack, extra: &[(&str, &str)], body: &[u8], status: u16, code: &str) -> String {
    let delivery = delivery_id();
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-github-event", "installation"),
        ("x-github-delivery", delivery.as_str()),
    ];
    headers.extend_from_slice(extra);
    let resp = post(s, &headers, body);
    let detail = problem(&resp, status, code);
    assert_eq!(recorded(s, &delivery), 0, "{delivery} was recorded");
    detail
}

/// Nothing the refused deliveries carried happened.
#[track_caller]
fn untouched(s: &Stack, target: &Target) {
    assert_eq!(target.status(s), "active", "the org was not suspended");
    assert_eq!(target.new_activity(s), Vec::<Activity>::new());
}

#[track_caller]
fn signature_refused(s: &Stack, target: &Target, extra: &[(&str, &str)], fault: SignatureError) {
    let detail = refused(s, extra, &suspend_body(target), 401, "unauthorized");
    assert_eq!(detail, fault.detail(), "headers {extra:?}");
}

fn signature_missing(s: &Stack) {
    let target = Target::connect(s, 2100, 1);
    signature_refused(s, &target, &[], SignatureError::Missing);
    untouched(s, &target);
}

fn signature_sha1_only(s: &Stack) {
    let target = Target::connect(s, 2101, 1);
    // What GitHub sends alongside X-Hub-Signature-256 (the value is not checked).
    let sha1 = format!("sha1={}", "5d61605c3feea9799210ddcb71307d4ba264225f");
    signature_refused(
        s,
        &target,
        &[("x-hub-signature", &sha1)],
        SignatureError::Sha1Only,
    );
    untouched(s, &target);
}

fn signature_other_algorithm(s: &Stack) {
    let target = Target::connect(s, 2102, 1);
    let good = webhook_signature::sign(dev_secret(s), &suspend_body(&target));
    let hex = good.trim_start_matches("sha256=");
    for value in [
        format!("sha512={}", "ab".repeat(64)),
        format!("sha1={}", &hex[..40]),
        hex.to_string(),
        format!("SHA256={hex}"),
        String::new(),
    ] {
        signature_refused(
            s,
            &target,
            &[("x-hub-signature-256", &value)],
            SignatureError::UnsupportedAlgorithm,
        );
    }
    untouched(s, &target);
}

fn signature_wrong_length(s: &Stack) {
    let target = Target::connect(s, 2103, 1);
    let good = webhook_signature::sign(dev_secret(s), &suspend_body(&target));
    for value in [
        good[..good.len() - 2].to_string(),
        format!("{good}00"),
        "sha256=".to_string(),
        format!("sha256={}", "0".repeat(128)),
    ] {
        signature_refused(
            s,
            &target,
            &[("x-hub-signature-256", &value)],
            SignatureError::Malformed,
        );
    }
    untouched(s, &target);
}

fn signature_not_hex(s: &Stack) {
    let target = Target::connect(s, 2104, 1);
    let good = webhook_signature::sign(dev_secret(s), &suspend_body(&target));
    let hex = good.trim_start_matches("sha256=");
    for value in [
        format!("sha256={}", "zz".repeat(32)),
        format!("sha256={}g", &hex[..63]),
        format!("sha256=0x{}", &hex[..62]),
    ] {
        signature_refused(
            s,
            &target,
            &[("x-hub-signature-256", &value)],
            SignatureError::Malformed,
        );
    }
    untouched(s, &target);
}

fn signature_wrong_secret(s: &Stack) {
    let target = Target::connect(s, 2105, 1);
    let body = suspend_body(&target);
    let other = webhook_signature::sign("not-the-webhook-secret", &body);
    // The right secret over other bytes (a tampered body), and the empty secret.
    let tampered = webhook_signature::sign(dev_secret(s), &[&body[..], b" "].concat());
    let empty = webhook_signature::sign("", &body);
    for value in [&other, &tampered, &empty] {
        signature_refused(
            s,
            &target,
            &[("x-hub-signature-256", value)],
            SignatureError::Mismatch,
        );
    }
    untouched(s, &target);
}

fn multibyte_body(s: &Stack) {
    let target = Target::connect(s, 2106, 1);
    let mut repository = target.generated_repo(1);
    repository["name"] = json!("naïve-repo-🚀");
    repository["full_name"] = json!(format!("{}/naïve-repo-🚀", target.login));
    repository["description"] = json!("ship it 🚀 — ünïcode ✓, 中文, emoji 👩‍💻");
    let payload = repository_event("edited", target.installation, &repository);
    let body = serde_json::to_vec(&payload).expect("JSON");
    let text = String::from_utf8(body.clone()).expect("UTF-8");
    assert!(
        body.len() > text.chars().count() && !text.contains("\\u"),
        "the body carries raw multi-byte UTF-8"
    );
    let delivery = delivery_id();
    let resp = deliver_signed(s, dev_secret(s), "repository", &delivery, &body);
    applied(&resp, "repository.edited");
    let row = target.repo(s, target.generated(1)).expect("the repository");
    assert_eq!(row.name, "naïve-repo-🚀", "stored as sent");
    assert_eq!(row.full_name, format!("{}/naïve-repo-🚀", target.login));
    assert_eq!(
        target.new_activity(s),
        vec![("repository.edited".to_string(), Some(delivery))]
    );
}

fn rotation(s: &Stack) {
    let target = Target::connect(s, 2107, 1);
    let body = serde_json::to_vec(&installation_event(
        "new_permissions_accepted",
        target.installation,
    ))
    .expect("JSON");
    let mut accepted = Vec::new();
    for secret in [ROTATED_WEBHOOK_SECRET, dev_secret(s)] {
        let delivery = delivery_id();
        let resp = deliver_signed(s, secret, "installation", &delivery, &body);
        applied(&resp, "installation.new_permissions_accepted");
        accepted.push((
            "installation.new_permissions_accepted".to_string(),
            Some(delivery),
        ));
    }
    let retired = webhook_signature::sign("e2e-retired-webhook-secret", &body);
    let detail = refused(
        s,
        &[("x-hub-signature-256", &retired)],
        &body,
        401,
        "unauthorized",
    );
    assert_eq!(detail, SignatureError::Mismatch.detail());
    assert_eq!(target.new_activity(s), accepted);
}

fn content_type(s: &Stack) {
    let target = Target::connect(s, 2108, 1);
    let body = suspend_body(&target);
    let signature = webhook_signature::sign(dev_secret(s), &body);
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        None,
    ] {
        let delivery = delivery_id();
        let mut headers = vec![
            ("x-github-event", "installation"),
            ("x-github-delivery", delivery.as_str()),
            ("x-hub-signature-256", signature.as_str()),
        ];
        if let Some(t) = content_type {
            headers.push(("content-type", t));
        }
        let resp = post(s, &headers, &body);
        problem(&resp, 415, "unsupported_media_type");
        assert_eq!(recorded(s, &delivery), 0);
    }
    untouched(s, &target);
    // Parameters and case do not matter.
    let delivery = delivery_id();
    let resp = post(
        s,
        &[
            ("content-type", "Application/JSON; charset=utf-8"),
            ("x-github-event", "installation"),
            ("x-github-delivery", &delivery),
            ("x-hub-signature-256", &signature),
        ],
        &body,
    );
    applied(&resp, "installation.suspend");
    assert_eq!(target.status(s), "suspended");
}

fn malformed_json(s: &Stack) {
    let target = Target::connect(s, 2109, 1);
    let body = suspend_body(&target);
    let truncated = &body[..body.len() - 1];
    let trailing = [&body[..], b" {}"].concat();
    for bad in [truncated, &trailing, b"", b"{'action': 'suspend'}"] {
        let signature = webhook_signature::sign(dev_secret(s), bad);
        let detail = refused(
            s,
            &[("x-hub-signature-256", &signature)],
            bad,
            400,
            "bad_request",
        );
        assert!(detail.contains("not valid JSON"), "{detail}");
    }
    untouched(s, &target);
}

fn missing_headers(s: &Stack) {
    let target = Target::connect(s, 2110, 1);
    let body = suspend_body(&target);
    let signature = webhook_signature::sign(dev_secret(s), &body);
    let delivery = delivery_id();
    let long = "d".repeat(129);
    let cases: [(Vec<(&str, &str)>, &str); 4] = [
        (
            vec![("x-github-delivery", delivery.as_str())],
            "X-GitHub-Event",
        ),
        (
            vec![("x-github-event", "installation")],
            "X-GitHub-Delivery",
        ),
        (
            vec![
                ("x-github-event", "installation"),
                ("x-github-delivery", ""),
            ],
            "X-GitHub-Delivery",
        ),
        (
            vec![
                ("x-github-event", "installation"),
                ("x-github-delivery", long.as_str()),
            ],
            "X-GitHub-Delivery",
        ),
    ];
    for (mut headers, named) in cases {
        headers.extend([
            ("content-type", "application/json"),
            ("x-hub-signature-256", signature.as_str()),
        ]);
        let resp = post(s, &headers, &body);
        let detail = problem(&resp, 400, "bad_request");
        assert!(detail.contains(named), "{detail} names {named}");
    }
    assert_eq!(recorded(s, &delivery), 0);
    assert_eq!(recorded(s, &long), 0);
    untouched(s, &target);
}

/// A request written by hand on a loopback socket, for what ureq will not send (a chunked
/// body of a known size). `write_body` may fail once the worker has answered; the answer is
/// read either way. Returns the status and the raw
/// answer (headers and body).
fn raw_post(
    s: &Stack,
    headers: &[(&str, &str)],
    write_body: impl FnOnce(&mut TcpStream) -> std::io::Result<()>,
) -> (u16, String) {
    let addr = s
        .worker
        .strip_prefix("http://")
        .filter(|a| a.starts_with("127.0.0.1:"))
        .expect("a loopback worker");
    let mut stream = TcpStream::connect(addr).expect("connect to the worker");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut head =
        format!("POST /github/webhooks HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("request head");
    let started = Instant::now();
    let written = write_body(&mut stream).and_then(|()| stream.flush());
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no HTTP answer after {:?}: {answer:?} (writing the body: {written:?}, reading: {read:?})",
                started.elapsed()
            )
        });
    (status, answer)
}

/// A signed `installation.<action>` body of exactly `len` bytes (padded with a field the
/// worker does not read).
fn padded(installation: u64, action: &str, len: usize) -> Vec<u8> {
    let mut payload = installation_event(action, installation);
    payload["padding"] = json!("");
    let base = serde_json::to_vec(&payload).expect("JSON").len();
    payload["padding"] = json!("x".repeat(len - base));
    let body = serde_json::to_vec(&payload).expect("JSON");
    assert_eq!(body.len(), len);
    body
}

fn too_large(s: &Stack) {
    let target = Target::connect(s, 2111, 1);

    // A `Content-Length` over 25 MB is refused. The bytes are really sent: `wrangler dev`
    // reads a request's whole body before the worker sees it, so a length announcing more
    // than is sent would only stall.
    let body = padded(target.installation, "suspend", MAX_BODY_BYTES + 1);
    let delivery = delivery_id();
    let resp = deliver_signed(s, dev_secret(s), "installation", &delivery, &body);
    let detail = problem(&resp, 413, "payload_too_large");
    assert!(detail.contains(&MAX_BODY_BYTES.to_string()), "{detail}");
    assert_eq!(recorded(s, &delivery), 0);

    // Without a length (chunked), the worker stops reading once past 25 MB.
    let signature = webhook_signature::sign(dev_secret(s), &body);
    let delivery = delivery_id();
    let (status, answer) = raw_post(
        s,
        &[
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
            ("x-github-event", "installation"),
            ("x-github-delivery", &delivery),
            ("x-hub-signature-256", &signature),
        ],
        |w| {
            for chunk in body.chunks(1024 * 1024) {
                w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                w.write_all(chunk)?;
                w.write_all(b"\r\n")?;
            }
            w.write_all(b"0\r\n\r\n")
        },
    );
    assert_eq!(status, 413, "{}", &answer[..answer.len().min(2000)]);
    assert!(answer.contains("payload_too_large"));
    assert_eq!(recorded(s, &delivery), 0);
    untouched(s, &target);

    // Exactly 25 MB is within the limit.
    let body = padded(
        target.installation,
        "new_permissions_accepted",
        MAX_BODY_BYTES,
    );
    let delivery = delivery_id();
    let resp = deliver_signed(s, dev_secret(s), "installation", &delivery, &body);
    applied(&resp, "installation.new_permissions_accepted");
    assert_eq!(
        target.new_activity(s),
        vec![(
            "installation.new_permissions_accepted".to_string(),
            Some(delivery)
        )]
    );
}

// ---- 3. redelivery ----

fn redelivery(s: &Stack) {
    let target = Target::connect(s, 2112, 1);
    let added = repo(2_112_900_001, &target.login, "redelivered");
    let raced = repo(2_112_900_002, &target.login, "raced");
    // On GitHub, both are in the installation (their backups clone them).
    list_on_github(s, &target, &[added.clone(), raced.clone()]);
    let payload = repositories_event(
        "added",
        target.installation,
        std::slice::from_ref(&added),
        &[],
    );
    let body = serde_json::to_vec(&payload).expect("JSON");
    let delivery = delivery_id();
    let first = deliver_signed(
        s,
        dev_secret(s),
        "installation_repositories",
        &delivery,
        &body,
    );
    assert_eq!(applied(&first, "installation_repositories.added"), (1, 0));
    initial_jobs_received(s, &target.org, 2);

    // GitHub's redelivery: same id, same body.
    let again = deliver_signed(
        s,
        dev_secret(s),
        "installation_repositories",
        &delivery,
        &body,
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["duplicate"], true, "{}", again.body);
    // The same id with another body is still the same delivery: nothing applies.
    let removal = repositories_event("removed", target.installation, &[], &[added]);
    let other = deliver_signed(
        s,
        dev_secret(s),
        "installation_repositories",
        &delivery,
        &serde_json::to_vec(&removal).expect("JSON"),
    );
    assert_eq!(other.json()["duplicate"], true, "{}", other.body);

    assert_eq!(recorded(s, &delivery), 1);
    let mut log = vec![(
        "installation_repositories.added".to_string(),
        Some(delivery),
    )];
    assert_eq!(target.new_webhook_activity(s), log, "one activity row");
    let row = target.repo(s, 2_112_900_001).expect("the added repository");
    assert_eq!(
        row.status, "active",
        "the redelivered removal did not apply"
    );
    assert_eq!(jobs_of(s, &target.org, &row.id).len(), 1, "one job");
    initial_jobs_received(s, &target.org, 2);
    let mut first_backups = vec![format!("{}/redelivered", target.login)];
    assert_first_backups(&target.new_backup_activity(s), &first_backups);

    // The same delivery arriving eight times at once (GitHub retrying while the first is in
    // flight): one applies, the others are duplicates.
    let body = serde_json::to_vec(&repositories_event(
        "added",
        target.installation,
        &[raced],
        &[],
    ))
    .expect("JSON");
    let delivery = delivery_id();
    let answers: Vec<Resp> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    deliver_signed(
                        s,
                        dev_secret(s),
                        "installation_repositories",
                        &delivery,
                        &body,
                    )
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("delivery thread"))
            .collect()
    });
    let mut applied_once = 0;
    for resp in &answers {
        assert_eq!(resp.status, 200, "{}", resp.body);
        if resp.json()["duplicate"] == true {
            continue;
        }
        assert_eq!(applied(resp, "installation_repositories.added"), (1, 0));
        applied_once += 1;
    }
    assert_eq!(applied_once, 1, "{answers:#?}");
    assert_eq!(recorded(s, &delivery), 1);
    let row = target.repo(s, 2_112_900_002).expect("the raced repository");
    assert_eq!(jobs_of(s, &target.org, &row.id).len(), 1, "one job");
    initial_jobs_received(s, &target.org, 3);
    log.push((
        "installation_repositories.added".to_string(),
        Some(delivery),
    ));
    assert_eq!(target.new_webhook_activity(s), log, "one more activity row");
    first_backups.push(format!("{}/raced", target.login));
    assert_first_backups(&target.new_backup_activity(s), &first_backups);
}

// ---- 4. out of order ----

fn out_of_order(s: &Stack) {
    let target = Target::connect(s, 2113, 2);
    let mut log = Vec::new();
    // The repository `repository.created` adds is on GitHub (its backup clones it); the
    // others below are tombstones, never backed up.
    let fresh = repo(2_113_900_003, &target.login, "created");
    list_on_github(s, &target, std::slice::from_ref(&fresh));

    // `deleted` delivered before `created`: the tombstone wins.
    let late = repo(2_113_900_001, &target.login, "deleted-first");
    let (d, resp) = deliver(s, "repository", &repository_event("deleted", 2113, &late));
    applied(&resp, "repository.deleted");
    log.push(("repository.deleted".to_string(), Some(d)));
    let (d, resp) = deliver(s, "repository", &repository_event("created", 2113, &late));
    assert_eq!(applied(&resp, "repository.created"), (0, 0));
    log.push(("repository.created".to_string(), Some(d)));
    let row = target.repo(s, 2_113_900_001).expect("a tombstone");
    assert_eq!(row.status, "removed", "created after deleted stays removed");
    assert!(!has_profile(s, &target.org, &row.id));
    assert!(jobs_of(s, &target.org, &row.id).is_empty());

    // `repository.created` of a new repository on an active org: row, stub, received job.
    let (d, resp) = deliver(s, "repository", &repository_event("created", 2113, &fresh));
    assert_eq!(applied(&resp, "repository.created"), (1, 0));
    log.push(("repository.created".to_string(), Some(d)));
    let row = target
        .repo(s, 2_113_900_003)
        .expect("the created repository");
    assert_eq!(
        (row.full_name.as_str(), row.status.as_str()),
        (format!("{}/created", target.login).as_str(), "active")
    );
    assert!(has_profile(s, &target.org, &row.id));

    // `installation_repositories.removed` for a repository never recorded: a tombstone.
    let unknown = repo(2_113_900_002, &target.login, "never-seen");
    let (d, resp) = deliver(
        s,
        "installation_repositories",
        &repositories_event("removed", 2113, &[], &[unknown]),
    );
    applied(&resp, "installation_repositories.removed");
    log.push(("installation_repositories.removed".to_string(), Some(d)));
    let row = target.repo(s, 2_113_900_002).expect("a tombstone");
    assert_eq!(
        (row.full_name.as_str(), row.status.as_str()),
        (format!("{}/never-seen", target.login).as_str(), "removed")
    );

    // A repository removed while its job waits in the queue (made so behind the worker's
    // back: the consumer is quicker than any test) pauses the job; re-added, it is active
    // again and the job is resumed, sent and received.
    let known = target.generated_repo(1);
    let known_row = target.repo(s, target.generated(1)).expect("repository 1");
    let job = jobs_of(s, &target.org, &known_row.id).remove(0);
    requeue(s, &job.id);
    let (d, resp) = deliver(
        s,
        "installation_repositories",
        &repositories_event("removed", 2113, &[], std::slice::from_ref(&known)),
    );
    assert_eq!(applied(&resp, "installation_repositories.removed"), (0, 0));
    log.push(("installation_repositories.removed".to_string(), Some(d)));
    assert_eq!(
        target.repo(s, target.generated(1)).expect("row").status,
        "removed"
    );
    assert_eq!(
        jobs_of(s, &target.org, &known_row.id)[0].status,
        "paused",
        "the queued job of a removed repository is paused"
    );
    let (d, resp) = deliver(
        s,
        "installation_repositories",
        &repositories_event("added", 2113, &[known], &[]),
    );
    assert_eq!(
        applied(&resp, "installation_repositories.added"),
        (1, 0),
        "the paused job is sent again"
    );
    log.push(("installation_repositories.added".to_string(), Some(d)));
    assert_eq!(
        target.repo(s, target.generated(1)).expect("row").status,
        "active"
    );
    // 2 connected + the created one; the tombstones have none.
    initial_jobs_received(s, &target.org, 3);
    assert_eq!(
        jobs_of(s, &target.org, &known_row.id).len(),
        1,
        "resumed, not duplicated"
    );

    assert_eq!(target.new_webhook_activity(s), log);
    // The created repository's first backup; repository 1's was logged on connect.
    assert_first_backups(
        &target.new_backup_activity(s),
        &[format!("{}/created", target.login)],
    );
}

// ---- pushes ----

fn pushes(s: &Stack) {
    let target = Target::connect(s, 2114, 2);
    let repository = target.generated_repo(1);
    let row = target.repo(s, target.generated(1)).expect("repository 1");
    let mut log = Vec::new();
    // `backup_jobs` of each push to repository 1 the worker applied to it.
    let mut answered = Vec::new();

    // Cargo.toml (and README.md, which is not a dependency file) changed: a backup job and an
    // analysis job.
    let head = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    let commits = json!([
        { "id": "c1", "added": ["README.md"], "modified": [], "removed": [] },
        { "id": head, "added": [], "modified": ["Cargo.toml", "README.md"], "removed": [] },
    ]);
    let payload = push_event(2114, &repository, head, commits);
    let body = serde_json::to_vec(&payload).expect("JSON");
    let delivery = delivery_id();
    let resp = deliver_signed(s, dev_secret(s), "push", &delivery, &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let event = resp.json()["event"].as_str().expect("event").to_string();
    assert_eq!(event, "push", "a push has no action: {}", resp.body);
    let (backups, analyses) = applied(&resp, "push");
    assert_eq!(analyses, 1, "{}", resp.body);
    first_push_backup(s, &target.org, &row.id, backups);
    answered.push(backups);
    log.push((event.clone(), Some(delivery.clone())));
    push_jobs_agree(s, &target.org, &row.id, &answered);
    let first_job: Option<String> = s
        .store
        .query(
            "SELECT id FROM backup_jobs WHERE dedupe_key = 'push:' || ?1",
            [delivery.as_str()],
            |r| r.get(0),
        )
        .pop();
    assert_eq!(first_job.is_some(), backups == 1, "the push's job");

    // Redelivered: no second job of either kind.
    let again = deliver_signed(s, dev_secret(s), "push", &delivery, &body);
    assert_eq!(again.json()["duplicate"], true, "{}", again.body);
    push_jobs_agree(s, &target.org, &row.id, &answered);

    // Right away, a push that deletes a branch: applied, no analysis, and a backup job unless
    // coalesced into the one still waiting (whether the consumer took it already is up to the
    // queue).
    let mut deletion = push_event(2114, &repository, &"0".repeat(40), json!([]));
    deletion["deleted"] = json!(true);
    deletion["ref"] = json!("refs/heads/feature");
    let (d, resp) = deliver(s, "push", &deletion);
    let (backups, analyses) = applied(&resp, "push");
    assert_eq!(analyses, 0, "{}", resp.body);
    answered.push(backups);
    log.push((event.clone(), Some(d)));
    push_jobs_agree(s, &target.org, &row.id, &answered);

    let job = poll_until(
        Duration::from_secs(60),
        "the consumer to receive the analysis job",
        || match analysis_jobs(s, &target.org).as_slice() {
            [job] if job.status == "received" => Ok(job.clone()),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(job.repository_id, row.id);
    assert_eq!(job.delivery_id, delivery);
    assert_eq!(job.git_ref, "refs/heads/main");
    assert_eq!(job.head_commit, head);
    assert_eq!(
        job.files,
        json!([{ "path": "Cargo.toml", "change": "modified", "kind": "cargo" }]),
        "only the dependency file"
    );

    // The first push's job is a real backup: the consumer takes it and records a snapshot of
    // the repository for it (unless a scheduled job took its place, see `first_push_backup`).
    let docs = json!([{ "id": "c3", "added": ["docs/guide.md"], "modified": ["src/main.rs", "README.md"], "removed": [] }]);
    let docs = push_event(2114, &repository, head, docs);
    if let Some(job_id) = &first_job {
        let status = poll_until(
            Duration::from_secs(120),
            "the consumer to back up the repository for the push",
            || match push_jobs(s, &target.org, &row.id)
                .into_iter()
                .find(|j| &j.id == job_id)
            {
                Some(j) if j.status == "received" || j.status == "failed" => Ok(j.status),
                other => Err(format!("{other:?}")),
            },
        );
        let snapshots: Vec<(String, Option<String>)> = s.store.query(
            "SELECT outcome, error FROM snapshots WHERE job_id = ?1",
            [job_id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        );
        assert_eq!(status, "received", "the push's backup: {snapshots:?}");
        assert!(
            matches!(snapshots.as_slice(), [(outcome, None)] if outcome == "ok" || outcome == "unchanged"),
            "one snapshot of the repository for the push: {snapshots:?}"
        );

        // Coalesced: while a backup job waits for the repository, a push queues none. The first
        // job is made to wait again behind the worker's back: no message for it is in flight,
        // and the dispatcher leaves a job sent this recently alone, so it stays waiting until
        // put back. A push that touches no dependency file then queues nothing; one that does
        // queues its analysis job alone, and that job is still sent after the answer.
        requeue(s, job_id);
        let (d, resp) = deliver(s, "push", &docs);
        assert_eq!(applied(&resp, "push"), (0, 0), "coalesced: {}", resp.body);
        answered.push(0);
        log.push((event.clone(), Some(d)));
        let manifest =
            json!([{ "id": "c5", "added": [], "modified": ["package.json"], "removed": [] }]);
        let (d, resp) = deliver(s, "push", &push_event(2114, &repository, "c5", manifest));
        assert_eq!(applied(&resp, "push"), (0, 1), "coalesced: {}", resp.body);
        answered.push(0);
        log.push((event.clone(), Some(d.clone())));
        poll_until(
            Duration::from_secs(60),
            "the consumer to receive the second analysis job",
            || match analysis_jobs(s, &target.org)
                .into_iter()
                .find(|j| j.delivery_id == d)
            {
                Some(job) if job.status == "received" => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
        let settled = s.store.execute(
            "UPDATE backup_jobs SET status = 'received', \
                 received_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?1 AND status = 'queued'",
            [job_id.as_str()],
        );
        assert_eq!(settled, 1, "the first job still waited");
    } else {
        let (d, resp) = deliver(s, "push", &docs);
        let (backups, analyses) = applied(&resp, "push");
        assert_eq!(analyses, 0, "{}", resp.body);
        answered.push(backups);
        log.push((event.clone(), Some(d)));
    }
    push_jobs_agree(s, &target.org, &row.id, &answered);

    // Dependency files changed, but no job of either kind: an unknown repository, a removed
    // one, and any repository while the org is suspended.
    let lock = json!([{ "id": "c4", "added": [], "modified": ["Cargo.lock"], "removed": [] }]);
    let unknown = repo(2_114_900_001, &target.login, "not-recorded");
    let (d, resp) = deliver(s, "push", &push_event(2114, &unknown, head, lock.clone()));
    assert_eq!(applied(&resp, "push"), (0, 0), "an unknown repository");
    log.push((event.clone(), Some(d)));

    let second = target.generated_repo(2);
    let second_row = target.repo(s, target.generated(2)).expect("repository 2");
    let (d, resp) = deliver(
        s,
        "installation_repositories",
        &repositories_event("removed", 2114, &[], std::slice::from_ref(&second)),
    );
    applied(&resp, "installation_repositories.removed");
    log.push(("installation_repositories.removed".to_string(), Some(d)));
    let (d, resp) = deliver(s, "push", &push_event(2114, &second, head, lock.clone()));
    assert_eq!(applied(&resp, "push"), (0, 0), "a removed repository");
    log.push((event.clone(), Some(d)));
    assert!(push_jobs(s, &target.org, &second_row.id).is_empty());

    let (d, resp) = deliver(s, "installation", &installation_event("suspend", 2114));
    applied(&resp, "installation.suspend");
    log.push(("installation.suspend".to_string(), Some(d)));
    let (d, resp) = deliver(s, "push", &push_event(2114, &repository, head, lock));
    assert_eq!(applied(&resp, "push"), (0, 0), "a suspended org");
    log.push((event.clone(), Some(d)));
    let (d, resp) = deliver(s, "installation", &installation_event("unsuspend", 2114));
    applied(&resp, "installation.unsuspend");
    log.push(("installation.unsuspend".to_string(), Some(d)));

    push_jobs_agree(s, &target.org, &row.id, &answered);
    assert_eq!(
        analysis_jobs(s, &target.org).len(),
        if first_job.is_some() { 2 } else { 1 },
        "none for these pushes"
    );
    assert_eq!(target.new_activity(s), log);
}

/// One `installation_repositories.added` naming 1,000 repositories: one answer, 1,000 rows,
/// stubs and jobs, sent in several queue batches and all received.
fn added_in_bulk(s: &Stack) {
    let target = Target::connect(s, 2124, 0);
    let added: Vec<Value> = (1..=1_000u64)
        .map(|i| repo(2_124_900_000 + i, &target.login, &format!("bulk-{i:04}")))
        .collect();
    // On GitHub, all in the installation; empty repositories (`github/e2e-wh-2124/` is one of
    // the harness's empty prefixes), so that 1,000 real backups are cheap.
    list_on_github(s, &target, &added);
    let (d, resp) = deliver(
        s,
        "installation_repositories",
        &repositories_event("added", 2124, &added, &[]),
    );
    assert_eq!(
        applied(&resp, "installation_repositories.added"),
        (1_000, 0)
    );
    let rows = s.store.repos(&target.org);
    assert_eq!(rows.len(), 1_000);
    assert!(rows.iter().all(|r| r.status == "active"));
    assert_eq!(s.store.profiled_repos(&target.org).len(), 1_000);
    initial_jobs_received(s, &target.org, 1_000);
    let empty = s.store.count(
        "SELECT count(*) FROM snapshots WHERE org_id = ?1 AND outcome = 'empty' AND error IS NULL",
        [target.org.as_str()],
    );
    assert_eq!(empty, 1_000, "each one backed up: an empty snapshot");
    // An empty snapshot logs no `backup.first`: the delivery is all there is.
    assert_eq!(
        target.new_activity(s),
        vec![("installation_repositories.added".to_string(), Some(d))]
    );
}

/// Puts a received job back in the queue, just sent and not received yet, behind the worker's
/// back (the consumer is quicker than any test; the dispatcher leaves a job sent this recently
/// alone). A write to D1 behind the worker: only from `Case::exclusive` tests.
fn requeue(s: &Stack, job_id: &str) {
    let changed = s.store.execute(
        "UPDATE backup_jobs SET status = 'queued', received_at = NULL, \
             dispatched_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?1",
        [job_id],
    );
    assert_eq!(changed, 1, "job {job_id}");
}

// ---- what an event may change ----

/// The fields of a repository record that follow GitHub: name, full name, private, default
/// branch, URL, archived, visibility, status.
type Fields = (
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    String,
);

fn fields(r: &RepoRow) -> Fields {
    (
        r.name.clone(),
        r.full_name.clone(),
        r.private,
        r.default_branch.clone(),
        r.html_url.clone(),
        r.archived,
        r.visibility.clone(),
        r.status.clone(),
    )
}

/// `repository.*` changes: each makes the record follow the payload; fields a payload leaves
/// out are kept; an unknown repository is not created.
fn repository_changes(s: &Stack) {
    let target = Target::connect(s, 2120, 1);
    let id = target.generated(1);
    let mut repository = target.generated_repo(1);
    // Generated repository 1 is private on the emulator.
    repository["private"] = json!(true);
    repository["visibility"] = json!("private");
    let row = target.repo(s, id).expect("repository 1");
    assert_eq!((row.private, row.archived), (1, 0));
    let mut log = Vec::new();
    let mut change = |action: &str, edit: &dyn Fn(&mut Value)| {
        edit(&mut repository);
        let (d, resp) = deliver(
            s,
            "repository",
            &repository_event(action, 2120, &repository),
        );
        applied(&resp, &format!("repository.{action}"));
        log.push((format!("repository.{action}"), Some(d)));
        target.repo(s, id).expect("the repository")
    };
    let row = change("archived", &|r| r["archived"] = json!(true));
    assert_eq!(row.archived, 1);
    let row = change("unarchived", &|r| r["archived"] = json!(false));
    assert_eq!(row.archived, 0);
    let row = change("publicized", &|r| {
        r["private"] = json!(false);
        r["visibility"] = json!("public");
    });
    assert_eq!(
        (row.private, row.visibility.as_deref()),
        (0, Some("public"))
    );
    let row = change("privatized", &|r| {
        r["private"] = json!(true);
        r["visibility"] = json!("private");
    });
    assert_eq!(
        (row.private, row.visibility.as_deref()),
        (1, Some("private"))
    );
    let row = change("edited", &|r| r["default_branch"] = json!("trunk"));
    assert_eq!(row.default_branch.as_deref(), Some("trunk"));
    let row = change("renamed", &|r| {
        r["name"] = json!("renamed");
        r["full_name"] = json!("e2e-wh-2120/renamed");
        r["html_url"] = json!("https://github.com/e2e-wh-2120/renamed");
    });
    assert_eq!(
        (
            row.name.as_str(),
            row.full_name.as_str(),
            row.html_url.as_deref()
        ),
        (
            "renamed",
            "e2e-wh-2120/renamed",
            Some("https://github.com/e2e-wh-2120/renamed")
        )
    );
    let row = change("transferred", &|r| {
        r["full_name"] = json!("e2e-wh-2120-new-owner/renamed");
        r["html_url"] = json!("https://github.com/e2e-wh-2120-new-owner/renamed");
    });
    assert_eq!(row.full_name, "e2e-wh-2120-new-owner/renamed");
    let before = fields(&row);
    // A payload without the optional fields keeps what is recorded.
    let after = change("edited", &|r| {
        for key in ["default_branch", "html_url", "visibility"] {
            r.as_object_mut().expect("object").remove(key);
        }
    });
    assert_eq!(fields(&after), before, "absent fields are kept");
    assert_eq!(after.status, "active");

    let stranger = repo(2_120_900_001, &target.login, "never-recorded");
    let (d, resp) = deliver(
        s,
        "repository",
        &repository_event("renamed", 2120, &stranger),
    );
    applied(&resp, "repository.renamed");
    log.push(("repository.renamed".to_string(), Some(d)));
    assert!(
        target.repo(s, 2_120_900_001).is_none(),
        "no record is created"
    );
    assert_eq!(s.store.repos(&target.org).len(), 1);
    assert_eq!(target.new_activity(s), log);
}

/// `installation_repositories.added` lists repositories as `{id, node_id, name, full_name,
/// private}` only: re-adding an archived repository must not record it as unarchived.
fn re_added_archived(s: &Stack) {
    let tenant = "tenant-wh-2121";
    let target = Target::connect_named(
        s,
        tenant,
        2121,
        "e2e-wh-2121",
        json!([{ "id": 2_121_000_001u64, "name": "frozen", "archived": true }]),
    );
    let row = target.repo(s, 2_121_000_001).expect("frozen");
    assert_eq!(row.archived, 1, "recorded archived on connect");
    // As GitHub lists repositories in this event (see @octokit/webhooks-examples).
    let listed = json!({
        "id": 2_121_000_001u64,
        "node_id": "R_e2e2121000001",
        "name": "frozen",
        "full_name": "e2e-wh-2121/frozen",
        "private": false,
    });
    let (_, resp) = deliver(
        s,
        "installation_repositories",
        &repositories_event("removed", 2121, &[], std::slice::from_ref(&listed)),
    );
    applied(&resp, "installation_repositories.removed");
    let (_, resp) = deliver(
        s,
        "installation_repositories",
        &repositories_event("added", 2121, &[listed], &[]),
    );
    applied(&resp, "installation_repositories.added");
    let row = target.repo(s, 2_121_000_001).expect("frozen");
    assert_eq!(row.status, "active", "re-added");
    assert_eq!(
        (
            row.default_branch.as_deref(),
            row.html_url.is_some(),
            row.visibility.is_some()
        ),
        (Some("main"), true, true),
        "fields the event leaves out are kept"
    );
    assert_eq!(
        row.archived, 1,
        "the event says nothing about `archived`, yet the record was unarchived: {row:?}"
    );
}

/// After `installation.deleted`: the queued job is paused, received ones stay received;
/// `suspend` / `unsuspend` no longer move the status; nothing new is queued.
fn uninstalled(s: &Stack) {
    let target = Target::connect(s, 2117, 2);
    let waiting_repo = target.repo(s, target.generated(1)).expect("repository 1");
    let waiting = jobs_of(s, &target.org, &waiting_repo.id).remove(0);
    requeue(s, &waiting.id);
    let mut log = Vec::new();
    let (d, resp) = deliver(s, "installation", &installation_event("deleted", 2117));
    assert_eq!(applied(&resp, "installation.deleted"), (0, 0));
    log.push(("installation.deleted".to_string(), Some(d)));
    assert_eq!(target.status(s), "disconnected");
    for job in initial_jobs(s, &target.org) {
        let expected = if job.id == waiting.id {
            "paused"
        } else {
            "received"
        };
        assert_eq!(job.status, expected, "{job:?}");
    }
    for action in ["unsuspend", "suspend", "unsuspend"] {
        let (d, resp) = deliver(s, "installation", &installation_event(action, 2117));
        applied(&resp, &format!("installation.{action}"));
        log.push((format!("installation.{action}"), Some(d)));
        assert_eq!(target.status(s), "disconnected", "after {action}");
    }
    let added = repo(2_117_900_001, &target.login, "added-after-uninstall");
    let (d, resp) = deliver(
        s,
        "installation_repositories",
        &repositories_event("added", 2117, &[added], &[]),
    );
    assert_eq!(applied(&resp, "installation_repositories.added"), (0, 0));
    log.push(("installation_repositories.added".to_string(), Some(d)));
    let lock =
        json!([{ "id": "c1", "added": [], "modified": ["package-lock.json"], "removed": [] }]);
    let (d, resp) = deliver(
        s,
        "push",
        &push_event(2117, &target.generated_repo(1), &"c".repeat(40), lock),
    );
    assert_eq!(
        applied(&resp, "push"),
        (0, 0),
        "nothing for a disconnected org"
    );
    log.push(("push".to_string(), Some(d)));
    assert!(analysis_jobs(s, &target.org).is_empty());
    assert!(
        push_jobs(s, &target.org, &waiting_repo.id).is_empty(),
        "no backup job for the push"
    );
    assert_eq!(
        initial_jobs(s, &target.org).len(),
        2,
        "no job for the added repository"
    );
    assert_eq!(
        jobs_of(s, &target.org, &waiting_repo.id)[0].status,
        "paused",
        "still paused"
    );
    assert_eq!(target.new_activity(s), log);
}

/// Events through one installation that name another installation's repositories change
/// only the first installation's org.
fn other_orgs_untouched(s: &Stack) {
    let a = Target::connect(s, 2118, 1);
    let b = Target::connect(s, 2119, 2);
    let before: Vec<_> = s.store.repos(&b.org).iter().map(fields).collect();
    let (b1, b2) = (b.generated_repo(1), b.generated_repo(2));
    let mut hijacked = b1.clone();
    hijacked["name"] = json!("hijacked");
    hijacked["full_name"] = json!("e2e-wh-2118/hijacked");
    let cargo = json!([{ "id": "c1", "added": ["Cargo.toml"], "modified": [], "removed": [] }]);
    let deliveries = [
        ("repository", repository_event("renamed", 2118, &hijacked)),
        ("repository", repository_event("archived", 2118, &b1)),
        ("push", push_event(2118, &b1, &"d".repeat(40), cargo)),
        ("repository", repository_event("deleted", 2118, &b2)),
        (
            "installation_repositories",
            repositories_event("removed", 2118, &[], std::slice::from_ref(&b1)),
        ),
    ];
    for (event, payload) in &deliveries {
        let (_, resp) = deliver(s, event, payload);
        assert_eq!(resp.status, 200, "{event}: {}", resp.body);
        assert_eq!(resp.json()["backup_jobs"], 0, "{}", resp.body);
        assert_eq!(resp.json()["analysis_jobs"], 0, "{}", resp.body);
    }
    for org in [&a.org, &b.org] {
        let jobs = s.store.jobs(org);
        assert!(
            jobs.iter().all(|j| j.kind != "push"),
            "no backup job for the push: {jobs:?}"
        );
    }
    let after: Vec<_> = s.store.repos(&b.org).iter().map(fields).collect();
    assert_eq!(after, before, "the other org's repositories are untouched");
    assert_eq!(b.new_activity(s), Vec::<Activity>::new());
    assert!(analysis_jobs(s, &b.org).is_empty() && analysis_jobs(s, &a.org).is_empty());
    initial_jobs_received(s, &b.org, 2);
    // A keeps its own repository and tombstones for the ids it was told were removed.
    let rows = s.store.repos(&a.org);
    let statuses: Vec<(i64, &str)> = rows
        .iter()
        .map(|r| (r.provider_repo_id, r.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            (a.generated(1) as i64, "active"),
            (b.generated(1) as i64, "removed"),
            (b.generated(2) as i64, "removed"),
        ]
    );
}

/// Deliveries the worker acknowledges without acting: an installation no tenant connected,
/// events and actions it does not act on (for a connected one), payloads of another shape.
/// Nothing is recorded.
fn ignored_deliveries(s: &Stack) {
    const UNCONNECTED: u64 = 2122;
    let connected = Target::connect(s, 2123, 0);
    let cargo = json!([{ "id": "c1", "added": ["Cargo.toml"], "modified": [], "removed": [] }]);
    let somewhere = repo(2_122_000_001, "e2e-wh-2122", "somewhere");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "installation",
            installation_event("suspend", UNCONNECTED),
            "not connected",
        ),
        (
            "push",
            push_event(UNCONNECTED, &somewhere, &"e".repeat(40), cargo),
            "not connected",
        ),
        (
            "installation_repositories",
            repositories_event("added", UNCONNECTED, std::slice::from_ref(&somewhere), &[]),
            "not connected",
        ),
        (
            "repository",
            repository_event("deleted", UNCONNECTED, &somewhere),
            "not connected",
        ),
        (
            "repository",
            json!({ "action": "created", "repository": somewhere }),
            "not from a GitHub App installation",
        ),
        (
            "issues",
            json!({ "action": "opened", "installation": { "id": connected.installation } }),
            "issues",
        ),
        (
            "installation",
            installation_event("weird", connected.installation),
            "installation.weird",
        ),
        (
            "installation_repositories",
            repositories_event("renamed", connected.installation, &[], &[]),
            "installation_repositories.renamed",
        ),
        (
            "repository",
            repository_event("starred", connected.installation, &somewhere),
            "repository.starred",
        ),
        (
            "repository",
            json!({ "action": "created", "installation": { "id": connected.installation }, "repository": { "id": "x" } }),
            "unexpected repository payload",
        ),
        ("push", json!([1, 2]), "not a JSON object"),
    ];
    for (event, payload, why) in cases {
        let (delivery, resp) = deliver(s, event, &payload);
        let reason = ignored(&resp);
        assert!(reason.contains(why), "{event} {payload}: {reason}");
        assert_eq!(recorded(s, &delivery), 0, "{event} {payload}");
    }
    assert!(s.store.orgs_with_installation(UNCONNECTED).is_empty());
    assert_eq!(connected.new_activity(s), Vec::<Activity>::new());
}

// ---- 5. answer time ----

/// Installs fault rules for the duration of a test.
struct Faults<'a>(&'a Stack);

impl Drop for Faults<'_> {
    fn drop(&mut self) {
        self.0.emulator.clear_faults();
    }
}

fn answer_time(s: &Stack) {
    let target = Target::connect(s, 2115, 1);
    let added = repo(2_115_900_001, &target.login, "while-github-is-slow");
    // On GitHub, the added repository is in the installation (its backup clones it). Listed
    // before GitHub turns slow: the harness's own listing goes through the delayed routes.
    list_on_github(s, &target, std::slice::from_ref(&added));
    let _faults = Faults(s);
    s.emulator
        .set_faults(json!([{ "path_prefix": "/", "delay_ms": 5000 }]));
    // GitHub is slow now.
    let started = Instant::now();
    s.http.get(&format!("{}/zen", s.emulator.base));
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the delay applies"
    );

    let lock = json!([{ "id": "c1", "added": ["go.mod"], "modified": [], "removed": [] }]);
    let deliveries = [
        (
            "installation_repositories",
            repositories_event("added", 2115, std::slice::from_ref(&added), &[]),
        ),
        ("push", push_event(2115, &added, &"b".repeat(40), lock)),
        ("installation", installation_event("suspend", 2115)),
        ("installation", installation_event("unsuspend", 2115)),
        (
            "issues",
            json!({ "action": "opened", "installation": { "id": 2115 } }),
        ),
    ];
    let mut log = Vec::new();
    for (event, payload) in deliveries {
        let started = Instant::now();
        let (delivery, resp) = deliver(s, event, &payload);
        let took = started.elapsed();
        assert!(
            (200..300).contains(&resp.status),
            "{event}: {} {}",
            resp.status,
            resp.body
        );
        assert!(
            took < Duration::from_secs(2),
            "{event} answered in {took:?} while GitHub takes 5 s"
        );
        if resp.status == 200 {
            log.push((
                event_name(event, payload["action"].as_str().unwrap_or_default()),
                Some(delivery),
            ));
        }
    }
    // All but `issues` (not acted on) applied and logged, in order.
    assert_eq!(
        log.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(),
        [
            "installation_repositories.added",
            "push",
            "installation.suspend",
            "installation.unsuspend"
        ]
    );
    assert_eq!(target.new_webhook_activity(s), log);

    // The added repository's job is received, GitHub slow or not (each call takes 5 s of the
    // 10 s an attempt may). Whether it was backed up depends on when the consumer took it: while
    // the org was active (before the suspend, or after the unsuspend), it was, and that first
    // backup is logged; in between, the job was settled without fetching anything (a suspended
    // org's jobs are). Either way nothing failed. A push job, if the push came while the
    // initial backup ran, can only find that backup's snapshot: nothing more is logged.
    initial_jobs_received(s, &target.org, 2);
    let row = target.repo(s, 2_115_900_001).expect("the added repository");
    let job = jobs_of(s, &target.org, &row.id);
    assert_eq!(job.len(), 1, "{job:?}");
    let snapshots = job_snapshots(s, &job[0].id);
    let backups = target.new_backup_activity(s);
    match snapshots.as_slice() {
        [] => assert_eq!(
            backups,
            Vec::<(String, String)>::new(),
            "settled without a backup"
        ),
        [(outcome, None)] if outcome == "ok" => assert_first_backups(
            &backups,
            &[format!("{}/while-github-is-slow", target.login)],
        ),
        other => panic!("the added repository's backup: {other:?}, logged {backups:?}"),
    }
}

// ---- 6. the activity API ----

fn activity_api(s: &Stack) {
    let target = Target::connect(s, 2116, 1);
    let jwt = target.jwt(s);
    let mut deliveries = Vec::new();
    for _ in 0..5 {
        let (d, resp) = deliver(
            s,
            "installation",
            &installation_event("new_permissions_accepted", 2116),
        );
        applied(&resp, "installation.new_permissions_accepted");
        deliveries.push(d);
    }
    let all = target.activity(s);
    assert_eq!(all.len(), target.baseline.len() + 5);

    // Pages of two, newest first, until `next_before` is null.
    let mut pages = Vec::new();
    let mut query = "limit=2".to_string();
    loop {
        let resp = activity_page(s, &jwt, &target.org, &query);
        assert_eq!(resp.status, 200, "{query}: {}", resp.body);
        let body = resp.json();
        let items = body["items"].as_array().expect("items").clone();
        assert!(items.len() <= 2);
        for item in &items {
            assert!(
                item["id"].is_i64() && item["created_at"].is_string(),
                "{item}"
            );
            assert!(
                !item["detail"].as_str().unwrap_or_default().is_empty(),
                "{item}"
            );
        }
        let next = body["next_before"].clone();
        if items.len() == 2 {
            assert_eq!(next, items[1]["id"], "next_before is the last id");
        } else {
            assert_eq!(next, Value::Null, "a short page is the last");
        }
        pages.push(items);
        match next.as_i64() {
            Some(id) => query = format!("limit=2&before={id}"),
            None => break,
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    let items: Vec<Value> = pages.into_iter().flatten().collect();
    let ids: Vec<i64> = items
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let mut paged: Vec<Activity> = items
        .iter()
        .map(|i| {
            (
                i["event"].as_str().expect("event").to_string(),
                i["delivery_id"].as_str().map(str::to_string),
            )
        })
        .collect();
    paged.reverse();
    assert_eq!(paged, all, "the pages cover the log exactly once");
    let newest: Vec<&str> = items[..5]
        .iter()
        .map(|i| i["delivery_id"].as_str().expect("delivery id"))
        .collect();
    let expected: Vec<&str> = deliveries.iter().rev().map(String::as_str).collect();
    assert_eq!(newest, expected);

    // `before` is exclusive: the oldest delivery's id lists only what came before it.
    let oldest = items[4]["id"].as_i64().expect("id");
    let resp = activity_page(s, &jwt, &target.org, &format!("before={oldest}"));
    let earlier = resp.json()["items"].as_array().expect("items").len();
    assert_eq!(earlier, target.baseline.len());

    for bad in ["limit=0", "limit=101", "limit=two", "before=yesterday"] {
        let resp = activity_page(s, &jwt, &target.org, bad);
        problem(&resp, 400, "bad_request");
    }

    // Another tenant's org, and an unknown one, are not found; no token is 401.
    let stranger = s.portal_jwt("tenant-wh-2116-other", "tenant-wh-2116-other-tech");
    let resp = activity_page(s, &stranger, &target.org, "limit=10");
    problem(&resp, 404, "not_found");
    let resp = activity_page(s, &jwt, &"0".repeat(32), "limit=10");
    problem(&resp, 404, "not_found");
    let resp = s
        .http
        .get(&format!("{}/v1/orgs/{}/activity", s.worker, target.org));
    problem(&resp, 401, "unauthorized");
}
