//! Days of the gateway's work on one database, statement for statement: the flows of
//! `src/edge/` replayed natively with the statements of `onecode_edge::sql`, in the order and
//! batches the edge runs them, and the simulation playing GitHub, the queues and the clock.
//!
//! Each simulated day, for every org of the sample:
//! - the scheduled sync at 00:00, 04:00, … 20:00 (`0 */4 * * *`): the fan-out, one enumeration
//!   run (a page of 100 repositories per D1 batch), then the access snapshot it starts, step by
//!   step as the subrequest budget allows (`github::AccessAnswers`);
//! - the hourly pass at :15 (`15 * * * *`): scheduled backup jobs (every org backs up daily at
//!   its default hour, 02:00 UTC), purges, the retention query, the sweep of abandoned backups,
//!   the dispatcher (which sends the scheduled jobs), the connections' upkeep;
//! - pushes spread over the day, each a delivery, a backup job (an analysis job for every tenth)
//!   and the backup it queues; `repository` and `organization` member deliveries.
//!
//! Backups run as soon as their job is sent, as the backup consumer takes them: a batch of up
//! to 8 jobs, one claim batch and one finish batch each. A push changes a branch, so its backup
//! is incremental (full every `full_every` ok snapshots, the org default); the scheduled backup
//! that follows finds the same refs and records `unchanged`.
//!
//! Not simulated: failures (retries, dead letters, abandoned runs), GitLab and Azure DevOps
//! orgs (their rows and statements are GitHub's), manual syncs and backups, retention expiring
//! snapshots (the sample stays within the 90-day default).

use crate::db::{Db, Flow};
use crate::github::{self, AccessAnswers};
use onecode_edge::access::diff;
use onecode_edge::access::model::AccessState;
use onecode_edge::access::reading::{self, Progress};
use onecode_edge::backup::oid::Oid;
use onecode_edge::backup::plan::{self, Decision, RefMap};
use onecode_edge::github::dependency_files::Kind;
use onecode_edge::github::webhook_events::ChangedFile;
use onecode_edge::provider::{RepoId, RepositoryRecord};
use onecode_edge::sql::{self, DELIVERED, RUN_PAGE};
use onecode_edge::time::{backup_hour, parse_rfc3339, rfc3339};
use rusqlite::types::Null;
use std::collections::{BTreeMap, HashMap};

/// How much of the fleet is simulated, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub tenants: usize,
    pub orgs_per_tenant: usize,
    pub repositories_per_org: usize,
    /// Day 0 connects every org and takes the first backups; the days after it are measured.
    pub days: i64,
}

impl Sample {
    pub fn orgs(&self) -> usize {
        self.tenants * self.orgs_per_tenant
    }

    pub fn repositories(&self) -> usize {
        self.orgs() * self.repositories_per_org
    }

    /// Days measured (day 0, the connect, is not).
    pub fn measured_days(&self) -> i64 {
        self.days - 1
    }
}

/// What the simulation assumes about the MSPs' clients (docs/scale.md, "Assumptions").
pub struct Assumptions {
    pub pushes_per_repository_day: f64,
    /// Every n-th push changes dependency or structure files (an analysis job).
    pub analysed_push_every: usize,
    pub repository_events_per_org_day: usize,
    pub member_events_per_org_day: usize,
    pub members_per_org: usize,
    /// Refs a backup records per repository: `HEAD`, branches, tags, pull request heads.
    pub branches_per_repository: usize,
    pub tags_per_repository: usize,
    pub pull_requests_per_repository: usize,
    /// `SUBREQUEST_LIMIT`: a paid plan's, as the README advises (the free plan's 45 is also
    /// measured, for the access snapshot: `World::access_reading_cost`).
    pub subrequest_limit: u32,
}

impl Assumptions {
    pub fn refs_per_repository(&self) -> usize {
        1 + self.branches_per_repository
            + self.tags_per_repository
            + self.pull_requests_per_repository
    }
}

pub const ASSUMED: Assumptions = Assumptions {
    pushes_per_repository_day: 0.5,
    analysed_push_every: 10,
    repository_events_per_org_day: 2,
    member_events_per_org_day: 1,
    members_per_org: 50,
    branches_per_repository: 5,
    tags_per_repository: 10,
    pull_requests_per_repository: 24,
    subrequest_limit: 950,
};

/// A Monday, 00:00 UTC.
const START: &str = "2027-01-04T00:00:00Z";
/// Bytes of a full bundle (over 8 MiB: a multipart upload, its id recorded) and of an
/// incremental one; only their numbers reach D1.
const FULL_BUNDLE_BYTES: i64 = 48 << 20;
const INCREMENTAL_BUNDLE_BYTES: i64 = 300 << 10;
/// Backup consumer batch (`wrangler.toml`), dispatch pages of backup and analysis jobs
/// (`edge::sync`), fan-out page.
const BACKUP_BATCH: usize = 8;
const DISPATCH_PAGE: i64 = 1_000;
const ANALYSIS_DISPATCH_PAGE: i64 = 40;
const FANOUT_PAGE: i64 = 1_000;
/// `edge::queues` and `edge::backup::executor` windows.
const DELIVERY_RETENTION_SECS: i64 = 14 * 86_400;
const FAILURE_RETENTION_SECS: i64 = 7 * 86_400;
const ABANDONED_AFTER_SECS: i64 = 20 * 60;
const RESEND_AFTER_SECS: i64 = 15 * 60;
const RETENTION_REPOSITORIES_PER_PASS: i64 = 50;
/// `edge::providers::provider_tokens`: refreshed when expiring within this, this many a run.
const CRON_HORIZON_SECS: i64 = 3_900;
const CRON_REFRESHES: i64 = 20;
const CRON_RESEALS: i64 = 50;
const TOKEN_KEY: &str = "k1";

/// xorshift64*: deterministic, so a sample is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.next() as u8))
            .collect()
    }

    fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes.iter_mut().for_each(|b| *b = self.next() as u8);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn oid(&mut self) -> Oid {
        Oid::from_hex(&self.hex(20)).expect("40 hex digits")
    }
}

struct Repository {
    provider_id: u64,
    full_name: String,
    /// Ours (`repositories.id`), once enumerated.
    id: String,
    refs: RefMap,
}

struct Org {
    id: String,
    tenant: String,
    login: String,
    account_id: u64,
    installation_id: i64,
    repositories: Vec<Repository>,
    members: Vec<String>,
    members_added: usize,
}

/// What happens at a moment of a simulated day.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    ScheduledSync,
    Hourly,
    Push {
        org: usize,
        repository: usize,
        serial: usize,
    },
    RepositoryChanged {
        org: usize,
        repository: usize,
    },
    MemberChanged {
        org: usize,
    },
}

pub struct World {
    pub db: Db,
    rng: Rng,
    orgs: Vec<Org>,
    /// Our repository id → (org, repository) indexes.
    by_id: HashMap<String, (usize, usize)>,
    pub start: i64,
}

fn ids_json(ids: &[String]) -> String {
    serde_json::to_string(ids).expect("ids JSON")
}

/// A job a statement returned (`id`, `repository_id`).
fn job(row: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
    row.get("id")
}

impl World {
    pub fn new(sample: &Sample) -> World {
        let mut rng = Rng(0x5ca1_ab1e_d1d1_0001);
        let mut orgs = Vec::new();
        for t in 0..sample.tenants {
            let tenant = rng.uuid();
            for o in 0..sample.orgs_per_tenant {
                let n = t * sample.orgs_per_tenant + o;
                let login = format!("client-{n:05}-eng");
                let repositories = (0..sample.repositories_per_org)
                    .map(|r| {
                        let mut refs = RefMap::new();
                        let head = rng.oid();
                        refs.insert("HEAD".into(), head);
                        refs.insert("refs/heads/main".into(), head);
                        for b in 1..ASSUMED.branches_per_repository {
                            refs.insert(format!("refs/heads/feature/change-{b:03}"), rng.oid());
                        }
                        for v in 0..ASSUMED.tags_per_repository {
                            refs.insert(format!("refs/tags/v1.{v}.0"), rng.oid());
                        }
                        for p in 0..ASSUMED.pull_requests_per_repository {
                            refs.insert(format!("refs/pull/{}/head", 100 + p), rng.oid());
                        }
                        Repository {
                            provider_id: 700_000_000 + (n * 10_000 + r) as u64,
                            full_name: format!("{login}/service-{r:04}-api"),
                            id: String::new(),
                            refs,
                        }
                    })
                    .collect();
                orgs.push(Org {
                    id: String::new(),
                    tenant: tenant.clone(),
                    login,
                    account_id: 90_000_000 + n as u64,
                    installation_id: 50_000_000 + n as i64,
                    repositories,
                    members: (0..ASSUMED.members_per_org)
                        .map(|m| format!("engineer-{n:05}-{m:03}"))
                        .collect(),
                    members_added: 0,
                });
            }
        }
        World {
            db: Db::open(),
            rng,
            orgs,
            by_id: HashMap::new(),
            start: parse_rfc3339(START).expect("start time"),
        }
    }

    /// Day 0, midnight: every tenant's OAuth connection, every org connected (its first
    /// enumeration and first backups); the day's work follows (`day(0)`).
    pub fn connect_all(&mut self) {
        let at = self.start;
        let tenants: Vec<String> = self.orgs.iter().map(|o| o.tenant.clone()).collect();
        let mut seen = std::collections::BTreeSet::new();
        for tenant in tenants {
            if seen.insert(tenant.clone()) {
                self.connect_provider(&tenant, at);
            }
        }
        for org in 0..self.orgs.len() {
            self.connect(org, at + org as i64);
        }
    }

    /// Simulates `day` (0 = the start's), every event in time order.
    pub fn day(&mut self, day: i64) {
        let midnight = self.start + day * 86_400;
        let mut events: Vec<(i64, Event)> = Vec::new();
        for hour in 0..24 {
            if hour % 4 == 0 {
                events.push((midnight + hour * 3600, Event::ScheduledSync));
            }
            events.push((midnight + hour * 3600 + 15 * 60, Event::Hourly));
        }
        let mut serial = 0;
        for org in 0..self.orgs.len() {
            let repositories = self.orgs[org].repositories.len() as u64;
            let pushes = (ASSUMED.pushes_per_repository_day * repositories as f64).round() as usize;
            for _ in 0..pushes {
                let repository = self.rng.below(repositories) as usize;
                serial += 1;
                let at = midnight + self.rng.below(86_400) as i64;
                events.push((
                    at,
                    Event::Push {
                        org,
                        repository,
                        serial,
                    },
                ));
            }
            for _ in 0..ASSUMED.repository_events_per_org_day {
                let repository = self.rng.below(repositories) as usize;
                let at = midnight + self.rng.below(86_400) as i64;
                events.push((at, Event::RepositoryChanged { org, repository }));
            }
            for _ in 0..ASSUMED.member_events_per_org_day {
                let at = midnight + self.rng.below(86_400) as i64;
                events.push((at, Event::MemberChanged { org }));
            }
        }
        events.sort();
        for (at, event) in events {
            match event {
                Event::ScheduledSync => self.scheduled_sync(at),
                Event::Hourly => self.hourly(at),
                Event::Push {
                    org,
                    repository,
                    serial,
                } => self.push(org, repository, serial, at),
                Event::RepositoryChanged { org, repository } => {
                    self.repository_changed(org, repository, at)
                }
                Event::MemberChanged { org } => self.member_changed(org, at),
            }
        }
    }

    // ---- connect (`edge::connect`) ----

    /// A GitLab / Azure DevOps connection of the tenant (`edge::connect::oauth`): its sealed
    /// tokens. (Its orgs are simulated as GitHub orgs: their rows and statements are the same.)
    fn connect_provider(&mut self, tenant: &str, now: i64) {
        self.db.at(Flow::Connect, now);
        let nonce = self.rng.hex(16);
        let invocation = self.rng.uuid();
        let id = self.rng.hex(16);
        let user = self.rng.below(10_000_000).to_string();
        let access = format!("v1.{TOKEN_KEY}.{}", self.rng.hex(62));
        let refresh = format!("v1.{TOKEN_KEY}.{}", self.rng.hex(70));
        let (now_text, expires) = (rfc3339(now), rfc3339(now + 7_200));
        self.db.batch(|db| {
            db.run(
                sql::CONSUME_STATE,
                rusqlite::params![nonce, tenant, now_text, rfc3339(now + 600), invocation],
            );
            db.run(
                sql::UPSERT_CONNECTION,
                rusqlite::params![
                    id,
                    tenant,
                    "gitlab",
                    "https://gitlab.com/",
                    user,
                    "Technician Name",
                    TOKEN_KEY,
                    access,
                    refresh,
                    expires,
                    "technician-0001",
                    now_text,
                    nonce,
                    invocation
                ],
            );
        });
    }

    /// The install callback holds the installation; the technician confirms; the org is linked
    /// and enumerated; its first backups are taken.
    fn connect(&mut self, org: usize, now: i64) {
        self.db.at(Flow::Connect, now);
        let state_nonce = self.rng.hex(16);
        let invocation = self.rng.uuid();
        let pending = self.rng.hex(16);
        let (tenant, installation, account, login) = {
            let o = &self.orgs[org];
            (
                o.tenant.clone(),
                o.installation_id,
                o.account_id as i64,
                o.login.clone(),
            )
        };
        let now_text = rfc3339(now);
        let expires = rfc3339(now + 600);
        // The callback: the state spent, the installation checked, the result held.
        self.db.batch(|db| {
            db.run(
                sql::CONSUME_STATE,
                rusqlite::params![state_nonce, tenant, now_text, expires, invocation],
            )
        });
        self.db.rows(
            sql::ORG_BY_INSTALLATION,
            rusqlite::params![installation],
            |_| Ok(()),
        );
        let held = serde_json::json!({"kind": "github.v1", "installation_id": installation, "update": false})
            .to_string();
        self.db.batch(|db| {
            db.run(
                sql::INSERT_PENDING_CONNECTION,
                rusqlite::params![
                    pending,
                    tenant,
                    "technician-0001",
                    "github",
                    held,
                    now_text,
                    expires,
                    state_nonce,
                    invocation
                ],
            )
        });
        // The confirmation: one transaction spends the pending id and links the org.
        let invocation = self.rng.uuid();
        let confirm_nonce = format!("confirm:{pending}");
        let (new_id, run) = (self.rng.uuid(), self.rng.uuid());
        self.db
            .rows(sql::PENDING_CONNECTION, rusqlite::params![pending], |_| {
                Ok(())
            });
        self.db.rows(
            sql::ORG_BY_INSTALLATION,
            rusqlite::params![installation],
            |_| Ok(()),
        );
        let first_page = first_page_url();
        let detail = format!(
            "connected by technician-0001 (installation {installation}, setup_action=install)"
        );
        let org_id: String = self.db.batch(|db| {
            db.run(
                sql::CONSUME_STATE,
                rusqlite::params![confirm_nonce, tenant, now_text, expires, invocation],
            );
            let id = db.rows(
                sql::UPSERT_ORG,
                rusqlite::params![
                    new_id,
                    tenant,
                    account,
                    login,
                    format!("Client {login}"),
                    format!("https://avatars.githubusercontent.com/u/{account}?v=4"),
                    "Organization",
                    installation,
                    "active",
                    "technician-0001",
                    now_text,
                    confirm_nonce,
                    invocation
                ],
                |r| r.get(0),
            );
            db.run(
                sql::START_RUN,
                rusqlite::params![
                    tenant,
                    account,
                    run,
                    first_page,
                    now_text,
                    confirm_nonce,
                    invocation,
                    "github"
                ],
            );
            db.run(
                sql::RESUME_ORG_JOBS_ON_CONNECT,
                rusqlite::params![
                    tenant,
                    account,
                    now_text,
                    confirm_nonce,
                    invocation,
                    "github"
                ],
            );
            db.run(
                sql::RECORD_CONNECT_ACTIVITY,
                rusqlite::params![
                    tenant,
                    account,
                    detail,
                    now_text,
                    confirm_nonce,
                    invocation,
                    "github"
                ],
            );
            db.run(
                sql::SPEND_PENDING_CONNECTION,
                rusqlite::params![pending, confirm_nonce, invocation],
            );
            id.into_iter().next().expect("the org's id")
        });
        self.orgs[org].id = org_id.clone();
        let jobs = self.enumerate(org, &run, now);
        let known: Vec<(String, i64)> = self.db.peek(
            "SELECT id, provider_repo_id FROM repositories WHERE org_id = ?1",
            rusqlite::params![org_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        );
        let position: HashMap<u64, usize> = self.orgs[org]
            .repositories
            .iter()
            .enumerate()
            .map(|(i, r)| (r.provider_id, i))
            .collect();
        for (id, provider_id) in known {
            let i = position[&(provider_id as u64)];
            self.orgs[org].repositories[i].id = id.clone();
            self.by_id.insert(id, (org, i));
        }
        // The initial jobs were sent as each page committed: the consumer takes them.
        self.back_up(&jobs, now + 60);
    }

    // ---- enumeration and sync (`edge::enumerate`, `edge::sync`) ----

    /// The run's pages, each one D1 batch, then its record; the backup jobs created.
    fn enumerate(&mut self, org: usize, run: &str, now: i64) -> Vec<String> {
        let org_id = self.orgs[org].id.clone();
        let records: Vec<RepositoryRecord> = self.orgs[org]
            .repositories
            .iter()
            .map(|r| RepositoryRecord {
                id: RepoId::Number(r.provider_id),
                name: r
                    .full_name
                    .split('/')
                    .nth(1)
                    .unwrap_or_default()
                    .to_string(),
                full_name: r.full_name.clone(),
                private: true,
                default_branch: Some("main".into()),
                html_url: Some(format!("https://github.com/{}", r.full_name)),
                archived: false,
                visibility: Some("private".into()),
                git_url: Some(format!("https://github.com/{}.git", r.full_name)),
            })
            .collect();
        let total = records.len() as i64;
        let pages: Vec<&[RepositoryRecord]> = records.chunks(100).collect();
        let now_text = rfc3339(now);
        let mut jobs = Vec::new();
        for (n, page) in pages.iter().enumerate() {
            let url = page_url(n);
            let next = (n + 1 < pages.len()).then(|| page_url(n + 1));
            let json = serde_json::to_string(page).expect("page JSON");
            let page_params = rusqlite::params![org_id, json, now_text, run, url];
            self.db.batch(|db| {
                db.run(&RUN_PAGE.upsert_active(), page_params);
                db.run(&RUN_PAGE.insert_profiles(), page_params);
                jobs.extend(db.rows(&RUN_PAGE.insert_initial_jobs(), page_params, job));
                jobs.extend(db.rows(&RUN_PAGE.resume_jobs(), page_params, job));
                db.run(
                    sql::ADVANCE_RUN,
                    rusqlite::params![org_id, run, url, next, page.len() as i64, now_text],
                );
                db.run(sql::STAMP_SYNCED, rusqlite::params![org_id, run, now_text]);
                if next.is_none() {
                    let unseen = rusqlite::params![org_id, run, now_text, total];
                    db.run(sql::PAUSE_UNSEEN_JOBS, unseen);
                    db.run(sql::REMOVE_UNSEEN, unseen);
                }
            });
        }
        let finish = rusqlite::params![org_id, run, 0.0_f64, now_text];
        self.db.batch(|db| {
            db.run(sql::SET_RUN_REMOVED, finish);
            db.run(sql::RECORD_RUN_ACTIVITY, finish);
        });
        jobs
    }

    /// The 4-hourly cron: the fan-out pages, then each org's sync and access snapshot.
    fn scheduled_sync(&mut self, now: i64) {
        self.db.at(Flow::Sync, now);
        let mut orgs: Vec<String> = Vec::new();
        loop {
            let after = orgs.last().cloned().unwrap_or_default();
            let page: Vec<String> = self.db.rows(
                sql::ACTIVE_ORGS_AFTER,
                rusqlite::params![after, FANOUT_PAGE],
                |r| r.get(0),
            );
            let full = page.len() as i64 == FANOUT_PAGE;
            orgs.extend(page);
            if !full {
                break;
            }
        }
        for org_id in orgs {
            let org = self
                .orgs
                .iter()
                .position(|o| o.id == org_id)
                .expect("a simulated org");
            self.sync_org(org, now);
        }
    }

    fn sync_org(&mut self, org: usize, now: i64) {
        self.db.at(Flow::Sync, now);
        let org_id = self.orgs[org].id.clone();
        self.db
            .rows(sql::ORG_FOR_SYNC, rusqlite::params![org_id], |_| Ok(()));
        let run = self.rng.uuid();
        self.db.run(
            sql::START_SYNC_RUN,
            rusqlite::params![org_id, run, first_page_url(), rfc3339(now)],
        );
        let jobs = self.enumerate(org, &run, now);
        assert!(jobs.is_empty(), "a sync of a steady org adds nothing");
        self.access_snapshot(org, now);
    }

    // ---- access snapshots (`edge::access::snapshot`) ----

    fn access_snapshot(&mut self, org: usize, now: i64) {
        self.db.at(Flow::Access, now);
        let org_id = self.orgs[org].id.clone();
        let run = self.rng.uuid();
        let fresh = serde_json::to_string(&Progress::default()).expect("progress JSON");
        self.db.rows(
            sql::START_ACCESS_RUN,
            rusqlite::params![org_id, run, fresh, rfc3339(now)],
            |_| Ok(()),
        );
        let api = url::Url::parse("https://api.github.com").expect("API URL");
        let mut progress = Progress::default();
        let mut step: i64 = 0;
        loop {
            // A step a few seconds after the last (queue latency).
            let at = now + 5 * step;
            self.db
                .rows(sql::ACCESS_ORG, rusqlite::params![org_id], |_| Ok(()));
            self.db
                .rows(sql::ACCESS_RUN, rusqlite::params![org_id, run], |_| Ok(()));
            let repositories: Vec<reading::Repository> =
                self.db
                    .rows(sql::ACCESS_REPOSITORIES, rusqlite::params![org_id], |r| {
                        Ok(reading::Repository {
                            id: r.get(0)?,
                            full_name: r.get(1)?,
                            default_branch: r.get(2)?,
                            provider_repo_id: r.get::<_, i64>(3)?.to_string(),
                        })
                    });
            let o = &self.orgs[org];
            let reading_org = reading::Org {
                provider: onecode_edge::provider::Provider::GitHub,
                login: &o.login,
                is_organization: true,
                api_url: &api,
                entitlements_url: None,
            };
            let answers = AccessAnswers {
                login: &o.login,
                members: &o.members,
            };
            if step == 0 {
                progress = Progress::start(&reading_org);
            }
            let done = answers.step(
                ASSUMED.subrequest_limit,
                &reading_org,
                &repositories,
                &mut progress,
                at,
            );
            if done {
                let read = progress.finish(&reading_org, at);
                let login = o.login.clone();
                self.finish_access_snapshot(&org_id, &login, &run, step, read, at);
                return;
            }
            let json = serde_json::to_string(&progress).expect("progress JSON");
            self.db.run(
                sql::ADVANCE_ACCESS_RUN,
                rusqlite::params![org_id, run, step, json, rfc3339(at)],
            );
            step += 1;
        }
    }

    /// `edge::access::snapshot::finish` and `write_state`: the stored state read, the new one
    /// reconciled with it and written with its events and the run's end in one batch.
    fn finish_access_snapshot(
        &mut self,
        org_id: &str,
        login: &str,
        run: &str,
        step: i64,
        mut read: AccessState,
        now: i64,
    ) {
        let stored = self.stored_access_state(org_id);
        let events = diff::reconcile(login, stored.as_ref().map(|(s, _)| s), &mut read, now);
        let state_json = serde_json::to_string(&read).expect("access state JSON");
        let events_json = serde_json::to_string(&events).expect("access events JSON");
        let now_text = rfc3339(now);
        self.db.batch(|db| {
            let written = match &stored {
                None => db.run(
                    sql::INSERT_ACCESS_STATE,
                    rusqlite::params![org_id, state_json, now_text],
                ),
                Some((_, version)) => db.run(
                    sql::UPDATE_ACCESS_STATE,
                    rusqlite::params![org_id, state_json, version, now_text, 1],
                ),
            };
            assert_eq!(written, 1, "nothing else writes the state meanwhile");
            db.run(sql::FINISH_ACCESS_RUN, rusqlite::params![org_id, run, step]);
            db.run(
                sql::INSERT_ACCESS_EVENTS,
                rusqlite::params![org_id, events_json, "sync", Null, now_text],
            );
        });
    }

    fn stored_access_state(&mut self, org_id: &str) -> Option<(AccessState, i64)> {
        self.db
            .rows(sql::ACCESS_STATE, rusqlite::params![org_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .into_iter()
            .next()
            .map(|(json, version)| {
                (
                    serde_json::from_str(&json).expect("stored access state"),
                    version,
                )
            })
    }

    /// The first org's access reading under `subrequest_limit`, without the database: its
    /// steps per snapshot and the progress JSON they write.
    pub fn access_reading_cost(&self, subrequest_limit: u32) -> (u64, u64) {
        let o = &self.orgs[0];
        let api = url::Url::parse("https://api.github.com").expect("API URL");
        let org = reading::Org {
            provider: onecode_edge::provider::Provider::GitHub,
            login: &o.login,
            is_organization: true,
            api_url: &api,
            entitlements_url: None,
        };
        let mut repositories: Vec<reading::Repository> = o
            .repositories
            .iter()
            .map(|r| reading::Repository {
                id: r.id.clone(),
                full_name: r.full_name.clone(),
                default_branch: Some("main".into()),
                provider_repo_id: r.provider_id.to_string(),
            })
            .collect();
        repositories.sort_by(|a, b| a.full_name.cmp(&b.full_name));
        let answers = AccessAnswers {
            login: &o.login,
            members: &o.members,
        };
        github::reading_cost(&answers, subrequest_limit, &org, &repositories, self.start)
    }

    // ---- webhooks (`edge::webhooks`, `edge::access::webhook`) ----

    fn push(&mut self, org: usize, repository: usize, serial: usize, now: i64) {
        self.db.at(Flow::Push, now);
        let delivery = self.rng.uuid();
        let (installation, provider_id, full_name) = {
            let o = &self.orgs[org];
            let r = &o.repositories[repository];
            (o.installation_id, r.provider_id as i64, r.full_name.clone())
        };
        // The push moves a branch: `main` (and `HEAD`) or one of the others.
        let branch = self.rng.below(ASSUMED.branches_per_repository as u64);
        let head = self.rng.oid();
        let refs = &mut self.orgs[org].repositories[repository].refs;
        let git_ref = if branch == 0 {
            refs.insert("HEAD".into(), head);
            "refs/heads/main".to_string()
        } else {
            format!("refs/heads/feature/change-{branch:03}")
        };
        refs.insert(git_ref.clone(), head);
        let analysed = serial.is_multiple_of(ASSUMED.analysed_push_every);
        let files = if analysed {
            vec![ChangedFile {
                path: "package-lock.json".into(),
                change: "modified".into(),
                kind: Kind::Npm,
            }]
        } else {
            Vec::new()
        };
        let now_text = rfc3339(now);
        let detail = format!(
            "push to {full_name} {git_ref}: {} dependency or structure files changed",
            files.len()
        );
        let analysis_id = self.rng.uuid();
        // One round trip: the org is found through the installation inside the batch.
        let (jobs, analyses) = self.db.batch(|db| {
            db.rows(
                sql::RECORD_CONNECTED_DELIVERY,
                rusqlite::params![delivery, "push", Null, installation, now_text],
                |_| Ok(()),
            );
            let jobs = db.rows(
                sql::INSERT_PUSH_BACKUP_JOB,
                rusqlite::params![installation, provider_id, delivery, now_text],
                job,
            );
            db.run(
                sql::RECORD_INSTALLATION_ACTIVITY,
                rusqlite::params![installation, delivery, "push", detail, now_text],
            );
            let analyses = if analysed {
                let files = serde_json::to_string(&files).expect("files JSON");
                db.rows(
                    sql::INSERT_ANALYSIS_JOB,
                    rusqlite::params![
                        analysis_id,
                        installation,
                        provider_id,
                        delivery,
                        git_ref,
                        head.to_hex(),
                        files,
                        now_text,
                        0
                    ],
                    job,
                )
            } else {
                Vec::new()
            };
            (jobs, analyses)
        });
        if !analyses.is_empty() {
            self.db.at(Flow::Analysis, now + 1);
            self.db.run(
                sql::MARK_ANALYSIS_RECEIVED,
                rusqlite::params![ids_json(&analyses), rfc3339(now + 1)],
            );
        }
        self.back_up(&jobs, now + 2);
    }

    fn repository_changed(&mut self, org: usize, repository: usize, now: i64) {
        self.db.at(Flow::RepositoryEvent, now);
        let delivery = self.rng.uuid();
        let o = &self.orgs[org];
        let r = &o.repositories[repository];
        let (org_id, installation) = (o.id.clone(), o.installation_id);
        let record = RepositoryRecord {
            id: RepoId::Number(r.provider_id),
            name: r
                .full_name
                .split('/')
                .nth(1)
                .unwrap_or_default()
                .to_string(),
            full_name: r.full_name.clone(),
            private: true,
            default_branch: Some("main".into()),
            html_url: Some(format!("https://github.com/{}", r.full_name)),
            archived: false,
            visibility: Some("private".into()),
            git_url: Some(format!("https://github.com/{}.git", r.full_name)),
        };
        let json = serde_json::to_string(&[record]).expect("repository JSON");
        let detail = format!("repository {} edited on GitHub", r.full_name);
        let now_text = rfc3339(now);
        self.db.rows(
            sql::ORG_FOR_INSTALLATION,
            rusqlite::params![installation],
            |_| Ok(()),
        );
        self.db.batch(|db| {
            db.run(
                sql::RECORD_DELIVERY,
                rusqlite::params![delivery, "repository", "edited", installation, now_text],
            );
            db.run(
                &DELIVERED.follow(),
                rusqlite::params![org_id, json, now_text],
            );
            db.run(
                sql::RECORD_ACTIVITY,
                rusqlite::params![org_id, delivery, "repository.edited", detail, now_text],
            );
        });
    }

    /// `organization.member_added` / `member_removed`, in turn: the stored state changed as
    /// the next sync will read it (so that sync finds nothing new).
    fn member_changed(&mut self, org: usize, now: i64) {
        self.db.at(Flow::MemberEvent, now);
        let delivery = self.rng.uuid();
        let o = &mut self.orgs[org];
        let added = o.members_added.is_multiple_of(2);
        let member = format!("contractor-{:05}", o.members_added / 2);
        o.members_added += 1;
        if added {
            o.members.push(member.clone());
        } else {
            o.members.retain(|m| *m != member);
        }
        let (org_id, installation) = (o.id.clone(), o.installation_id);
        let action = if added {
            "member_added"
        } else {
            "member_removed"
        };
        let payload = serde_json::json!({
            "action": action,
            "membership": {"user": {"login": member}, "role": "member", "state": "active"},
        });
        let now_text = rfc3339(now);
        self.db.rows(
            sql::ORG_FOR_INSTALLATION,
            rusqlite::params![installation],
            |_| Ok(()),
        );
        let (mut state, version) = self
            .stored_access_state(&org_id)
            .expect("an org's first snapshot precedes its member deliveries");
        let events = onecode_edge::access::webhook::apply(
            &self.orgs[org].login,
            "organization",
            &payload,
            &mut state,
            now,
        );
        let state_json = serde_json::to_string(&state).expect("access state JSON");
        let events_json = serde_json::to_string(&events).expect("access events JSON");
        self.db.batch(|db| {
            db.run(
                sql::UPDATE_ACCESS_STATE,
                rusqlite::params![org_id, state_json, version, now_text, 0],
            );
            db.run(
                sql::RECORD_ACCESS_DELIVERY,
                rusqlite::params![
                    org_id,
                    delivery,
                    "organization",
                    action,
                    installation,
                    now_text
                ],
            );
            db.run(
                sql::INSERT_ACCESS_EVENTS,
                rusqlite::params![org_id, events_json, "webhook", delivery, now_text],
            );
        });
    }

    // ---- the hourly cron (`edge::queues::hourly`) ----

    fn hourly(&mut self, now: i64) {
        self.db.at(Flow::Hourly, now);
        let now_text = rfc3339(now);
        let hour = backup_hour(now);
        self.db.batch(|db| {
            db.run(
                sql::CREATE_SCHEDULED_JOBS,
                rusqlite::params![now_text, hour.hour as i64, hour.weekly_day as i64, hour.key],
            );
            db.run(sql::PURGE_CONSUMED_STATES, rusqlite::params![now_text]);
            db.run(
                sql::PURGE_DELIVERIES,
                rusqlite::params![rfc3339(now - DELIVERY_RETENTION_SECS)],
            );
            db.run(
                sql::PURGE_MESSAGE_FAILURES,
                rusqlite::params![rfc3339(now - FAILURE_RETENTION_SECS)],
            );
            db.run(sql::PURGE_PENDING_CONNECTIONS, rusqlite::params![now_text]);
        });
        let retention = self.db.rows(
            sql::RETENTION_RECORDS,
            rusqlite::params![now_text, RETENTION_REPOSITORIES_PER_PASS],
            |_| Ok(()),
        );
        assert!(
            retention.is_empty(),
            "the sample stays within the 90-day retention"
        );
        self.db.rows(
            sql::ABANDON_STALE_SNAPSHOTS,
            rusqlite::params![Null, rfc3339(now - ABANDONED_AFTER_SECS), now_text, Null],
            |_| Ok(()),
        );
        self.dispatch(now);
        self.db.at(Flow::Hourly, now);
        let known = serde_json::json!([TOKEN_KEY]).to_string();
        self.db.rows(
            sql::CONNECTIONS_DUE,
            rusqlite::params![rfc3339(now + CRON_HORIZON_SECS), CRON_REFRESHES, known],
            |_| Ok(()),
        );
        self.db.rows(
            sql::CONNECTIONS_TO_RESEAL,
            rusqlite::params![TOKEN_KEY, CRON_RESEALS, known],
            |_| Ok(()),
        );
        self.db.batch(|db| {
            db.run(
                sql::RECORD_UNUSABLE_KEY_ACTIVITY,
                rusqlite::params![known, now_text],
            )
        });
    }

    /// `edge::sync::dispatch`: pages of queued jobs sent, then taken by the backup consumer. Each
    /// step also looks for analysis jobs whose send was lost (none here: the simulation loses
    /// no send).
    fn dispatch(&mut self, now: i64) {
        loop {
            self.db.at(Flow::Dispatch, now);
            let cutoff = rfc3339(now - RESEND_AFTER_SECS);
            let jobs: Vec<String> = self.db.rows(
                sql::DISPATCHABLE_JOBS,
                rusqlite::params![Null, cutoff, DISPATCH_PAGE],
                |r| r.get(0),
            );
            let lost_analyses = self.db.rows(
                sql::DISPATCHABLE_ANALYSIS_JOBS,
                rusqlite::params![Null, cutoff, ANALYSIS_DISPATCH_PAGE],
                |_| Ok(()),
            );
            assert!(lost_analyses.is_empty(), "every analysis send arrives");
            if jobs.is_empty() {
                return;
            }
            self.db.run(
                sql::MARK_DISPATCHED,
                rusqlite::params![ids_json(&jobs), rfc3339(now)],
            );
            self.back_up(&jobs, now + 30);
            if (jobs.len() as i64) < DISPATCH_PAGE {
                return;
            }
        }
    }

    // ---- backups (`edge::backup::executor`) ----

    /// The backup consumer: batches of up to 8 jobs; per job a claim, the backup, its record.
    fn back_up(&mut self, jobs: &[String], now: i64) {
        self.db.at(Flow::Backup, now);
        for batch in jobs.chunks(BACKUP_BATCH) {
            let targets: Vec<Target> = self.db.rows(
                sql::BACKUP_TARGETS,
                rusqlite::params![ids_json(batch)],
                |r| {
                    Ok(Target {
                        job_id: r.get("job_id")?,
                        job_status: r.get("job_status")?,
                        repository_id: r.get("repository_id")?,
                        org_id: r.get("org_id")?,
                        tenant_id: r.get("tenant_id")?,
                        full_every: r.get("full_every")?,
                    })
                },
            );
            for target in targets {
                assert_eq!(target.job_status, "queued", "jobs run once");
                self.take(&target, now);
            }
        }
    }

    fn take(&mut self, target: &Target, now: i64) {
        let now_text = rfc3339(now);
        let snapshot = format!("{:012x}{}", now * 1000, self.rng.hex(8));
        let key = format!(
            "{}/{}/{}/{snapshot}.bundle",
            target.tenant_id, target.org_id, target.repository_id
        );
        let repository = &target.repository_id;
        let (claimed, previous) = self.db.batch(|db| {
            db.rows(
                sql::ABANDON_STALE_SNAPSHOTS,
                rusqlite::params![
                    repository,
                    rfc3339(now - ABANDONED_AFTER_SECS),
                    now_text,
                    target.job_id
                ],
                |_| Ok(()),
            );
            let claimed = db.run(
                sql::CLAIM_SNAPSHOT,
                rusqlite::params![
                    snapshot,
                    target.org_id,
                    repository,
                    now_text,
                    target.job_id,
                    key
                ],
            );
            db.run(
                sql::START_JOB,
                rusqlite::params![target.job_id, snapshot, now_text],
            );
            db.rows(
                sql::OTHER_RUNNING_SNAPSHOT,
                rusqlite::params![repository, snapshot],
                |_| Ok(()),
            );
            let previous = db.rows(sql::LAST_OK_SNAPSHOT, rusqlite::params![repository], |r| {
                Ok((
                    r.get::<_, String>("id")?,
                    r.get::<_, Option<String>>("refs")?,
                    r.get::<_, Option<i64>>("since_full")?,
                ))
            });
            (claimed, previous.into_iter().next())
        });
        assert_eq!(claimed, 1, "one backup of a repository at a time");
        let (org, index) = self.by_id[repository];
        let current = self.orgs[org].repositories[index].refs.clone();
        let previous_refs: Option<RefMap> = previous.as_ref().and_then(|(_, refs, _)| {
            let map: BTreeMap<String, String> = serde_json::from_str(refs.as_deref()?).ok()?;
            map.into_iter()
                .map(|(name, hex)| Some((name, Oid::from_hex(&hex)?)))
                .collect()
        });
        let since_full = previous.as_ref().and_then(|p| p.2).unwrap_or(0) as u32;
        let base = previous.map(|p| p.0);
        let decision = plan::decide(
            previous_refs.as_ref(),
            &current,
            since_full,
            target.full_every.max(1) as u32,
        );
        let (outcome, kind, bytes) = match decision {
            Decision::Unchanged => ("unchanged", None, 0),
            Decision::Empty => ("empty", None, 0),
            Decision::Full { .. } => ("ok", Some("full"), FULL_BUNDLE_BYTES),
            Decision::Incremental { .. } => ("ok", Some("incremental"), INCREMENTAL_BUNDLE_BYTES),
        };
        let finished = now + 20;
        let finished_text = rfc3339(finished);
        if kind == Some("full") {
            // Over 8 MiB: a multipart upload, its id recorded before the first part.
            let upload = self.rng.hex(48);
            self.db
                .run(sql::RECORD_UPLOAD, rusqlite::params![snapshot, key, upload]);
        }
        let refs: BTreeMap<&str, String> = current
            .iter()
            .map(|(name, oid)| (name.as_str(), oid.to_hex()))
            .collect();
        let refs = serde_json::to_string(&refs).expect("refs JSON");
        let stored = outcome == "ok";
        let (object_key, sha256) = if stored {
            (Some(key.clone()), Some(self.rng.hex(32)))
        } else {
            (None, None)
        };
        let base = match (outcome, kind) {
            ("unchanged", _) | ("ok", Some("incremental")) => base,
            _ => None,
        };
        let objects: i64 = if stored { 1 + (bytes >> 12) } else { 0 };
        self.db.batch(|db| {
            db.run(
                sql::FINISH_SNAPSHOT,
                rusqlite::params![
                    snapshot,
                    outcome,
                    kind,
                    base,
                    refs,
                    object_key,
                    bytes,
                    sha256,
                    objects,
                    finished_text,
                    "refs/heads/main"
                ],
            );
            db.run(
                sql::RECORD_LAST_BACKUP,
                rusqlite::params![repository, outcome, finished_text],
            );
            db.run(
                sql::SETTLE_JOBS,
                rusqlite::params![
                    ids_json(std::slice::from_ref(&target.job_id)),
                    finished_text
                ],
            );
            if stored {
                db.run(
                    sql::RECORD_FIRST_BACKUP_ACTIVITY,
                    rusqlite::params![target.org_id, repository, snapshot, finished_text],
                );
            }
        });
        self.db.rows(
            sql::NEXT_WAITING_JOB,
            rusqlite::params![repository, finished_text],
            |_| Ok(()),
        );
    }
}

/// What `BACKUP_TARGETS` tells the executor about a job (the columns the simulation uses).
struct Target {
    job_id: String,
    job_status: String,
    repository_id: String,
    org_id: String,
    tenant_id: String,
    full_every: i64,
}

fn first_page_url() -> String {
    page_url(0)
}

/// GitHub's pages of `GET /installation/repositories`.
fn page_url(n: usize) -> String {
    let base = "https://api.github.com/installation/repositories?per_page=100";
    match n {
        0 => base.to_string(),
        n => format!("{base}&page={}", n + 1),
    }
}
