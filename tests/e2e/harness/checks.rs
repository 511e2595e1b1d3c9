//! Assertions several tests share: an organization recorded as the emulator describes it,
//! exactly one repository / profile stub / backup job per emulator repository, jobs received
//! by the queue consumer, background enumeration finished, and GitHub calls per invocation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::emulator::{Inst, Logged};
use super::store::{OrgRow, RunRow};
use super::{poll_until, technician, Stack};

/// Cloudflare's subrequest limit per invocation on the free plan.
pub const SUBREQUEST_LIMIT: usize = 50;

/// The tenant's single organization, checked field by field against the emulator's account.
#[track_caller]
pub fn org_recorded(s: &Stack, tenant: &str, inst: &Inst, org_id: &str) -> OrgRow {
    let orgs = s.store.orgs(tenant);
    assert_eq!(
        orgs.len(),
        1,
        "tenant {tenant} should have exactly one organization: {orgs:#?}"
    );
    let org = orgs.into_iter().next().expect("one org");
    assert_eq!(org.id, org_id, "the redirect's org_id is the org's id");
    assert_eq!(org.tenant_id, tenant);
    assert_eq!(org.provider, "github");
    assert_eq!(org.login, inst.login);
    assert_eq!(org.account_id, inst.account_id as i64);
    assert_eq!(org.display_name, inst.name, "display name from GET /orgs");
    assert_eq!(org.avatar_url.as_deref(), Some(inst.avatar_url().as_str()));
    assert_eq!(org.installation_id, inst.id as i64);
    assert_eq!(org.account_type, inst.kind);
    assert_eq!(org.status, "active");
    assert_eq!(org.backup_schedule, "daily");
    assert_eq!(org.retention_days, 90);
    assert_eq!(org.connected_by, technician(tenant));
    org
}

/// Exactly one repository row, one profile stub and one initial backup job per repository the
/// emulator lists for the installation, with GitHub's fields. Returns the emulator's count.
#[track_caller]
pub fn repositories_recorded(s: &Stack, org_id: &str, installation_id: u64) -> usize {
    let expected = s.emulator.repositories(installation_id);
    let rows = s.store.repos(org_id);
    assert_eq!(
        rows.len(),
        expected.len(),
        "repository rows vs the emulator's repositories"
    );
    let by_provider_repo_id: HashMap<i64, _> =
        rows.iter().map(|r| (r.provider_repo_id, r)).collect();
    assert_eq!(
        by_provider_repo_id.len(),
        rows.len(),
        "duplicate provider_repo_id rows"
    );
    for repo in &expected {
        let row = by_provider_repo_id
            .get(&repo.id)
            .unwrap_or_else(|| panic!("no repository row for {} ({})", repo.full_name, repo.id));
        assert_eq!(row.name, repo.name);
        assert_eq!(row.full_name, repo.full_name);
        assert_eq!(row.private, i64::from(repo.private), "{}", repo.full_name);
        assert_eq!(row.default_branch, repo.default_branch);
        assert_eq!(row.html_url, repo.html_url);
        assert_eq!(row.archived, i64::from(repo.archived));
        assert_eq!(row.visibility, repo.visibility);
        assert_eq!(row.status, "active");
    }

    let repo_ids: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let profiles = s.store.profiled_repos(org_id);
    assert_eq!(
        profiles.len(),
        rows.len(),
        "one profile stub per repository"
    );
    for (repository_id, status) in &profiles {
        assert!(repo_ids.contains(repository_id.as_str()));
        assert_eq!(status, "stub");
    }

    let jobs = s.store.jobs(org_id);
    assert_eq!(jobs.len(), rows.len(), "one backup job per repository");
    let job_repos: HashSet<&str> = jobs.iter().map(|j| j.repository_id.as_str()).collect();
    assert_eq!(job_repos, repo_ids, "every repository has its job");
    for job in &jobs {
        assert_eq!(
            (job.kind.as_str(), job.priority.as_str()),
            ("initial", "normal")
        );
        assert!(job.run_id.is_some(), "job {} names its run", job.id);
    }
    expected.len()
}

/// Waits for the backup consumer to have settled every backup job of the org (`received`: a
/// snapshot recorded it, `ok`, `unchanged` or `empty`).
#[track_caller]
pub fn jobs_received(s: &Stack, org_id: &str, expected: usize) {
    poll_until(
        Duration::from_secs(180),
        "the consumer to receive every backup job",
        || {
            let jobs = s.store.jobs(org_id);
            let received = jobs.iter().filter(|j| j.status == "received").count();
            if jobs.len() == expected && received == expected {
                Ok(())
            } else {
                Err(format!("{received} of {} jobs received", jobs.len()))
            }
        },
    );
}

/// Waits for the org's enumeration run to complete (background continuations included).
#[track_caller]
pub fn run_completes(s: &Stack, org_id: &str, timeout: Duration) -> RunRow {
    poll_until(timeout, "the enumeration run to complete", || {
        match s.store.run(org_id) {
            Some(run) if run.status == "complete" => Ok(run),
            Some(run) if run.status == "failed" => {
                panic!(
                    "the enumeration run failed: {run:?}\n{}",
                    s.wrangler_tail(30)
                )
            }
            other => Err(format!("{other:?}")),
        }
    })
}

/// The worker's GitHub calls for an installation, grouped by invocation (in order of first
/// call); asserts that none exceeds the subrequest limit.
#[track_caller]
pub fn invocations(s: &Stack, installation_id: u64) -> Vec<Vec<Logged>> {
    let mut groups: BTreeMap<u64, Vec<Logged>> = BTreeMap::new();
    let mut first_seq: HashMap<String, u64> = HashMap::new();
    for r in s.emulator.worker_requests(installation_id) {
        let invocation = r.invocation.clone().expect("worker requests carry one");
        let seq = *first_seq.entry(invocation).or_insert(r.seq);
        groups.entry(seq).or_default().push(r);
    }
    let groups: Vec<Vec<Logged>> = groups.into_values().collect();
    for calls in &groups {
        assert!(
            calls.len() <= SUBREQUEST_LIMIT,
            "invocation {:?} made {} GitHub calls (limit {SUBREQUEST_LIMIT})",
            calls[0].invocation,
            calls.len()
        );
    }
    groups
}

/// Whether an invocation's calls are a backup consumer's: installation tokens minted and git
/// smart-HTTP calls, nothing else.
pub fn is_backup(calls: &[Logged]) -> bool {
    calls
        .iter()
        .all(|c| (c.method == "POST" && c.path.ends_with("/access_tokens")) || is_git(c))
}

/// A git smart-HTTP call (`info/refs` or `git-upload-pack`).
pub fn is_git(call: &Logged) -> bool {
    call.path.contains("/info/refs") || call.path.ends_with("/git-upload-pack")
}

/// The backup consumer's invocations for an installation: each mints one installation token
/// for its batch, first, then speaks git.
#[track_caller]
pub fn backup_invocations(s: &Stack, installation_id: u64) -> Vec<Vec<Logged>> {
    let backups: Vec<Vec<Logged>> = invocations(s, installation_id)
        .into_iter()
        .filter(|calls| is_backup(calls))
        .collect();
    for calls in &backups {
        assert_eq!(
            describe(&calls[..1]),
            [format!(
                "POST /app/installations/{installation_id}/access_tokens -> 201"
            )],
            "a backup batch mints its token first: {:?}",
            describe(calls)
        );
        assert!(
            calls[1..].iter().all(is_git),
            "one token per batch: {:?}",
            describe(calls)
        );
    }
    backups
}

/// The worker's GitHub calls for an installation after its install callback, grouped by
/// invocation, without the backup consumer's (`backup_invocations`): the callback only verifies
/// the installation (its one call tagged with it, `GET /app/installations/{id}`), the
/// confirmation and what follows do the work.
#[track_caller]
pub fn after_callback(s: &Stack, installation_id: u64) -> Vec<Vec<Logged>> {
    let mut all: Vec<Vec<Logged>> = invocations(s, installation_id)
        .into_iter()
        .filter(|calls| !is_backup(calls))
        .collect();
    assert!(
        !all.is_empty(),
        "no call for installation {installation_id}"
    );
    let callback = all.remove(0);
    assert_eq!(
        describe(&callback),
        [format!("GET /app/installations/{installation_id} -> 200")],
        "the install callback verifies the installation and nothing more"
    );
    all
}

/// `method path?query -> status` lines, for readable assertions.
pub fn describe(calls: &[Logged]) -> Vec<String> {
    calls.iter().map(Logged::short).collect()
}
