//! From a simulated sample to the figures docs/scale.md states: bytes per row and per entity
//! (tenant, org, repository, delivery, snapshot), rows and statements per repository and day,
//! and their extrapolation to the fleet (1,000 MSPs × 100 orgs × 500 repositories) against one
//! D1 database's limits.

use crate::db::{Flow, TableSize, Work};
use crate::sim::{Sample, World, ASSUMED};
use onecode_edge::budget::INVOCATION_LIMIT;
use std::collections::BTreeMap;

/// The fleet the plan is for.
pub const FLEET_TENANTS: f64 = 1_000.0;
pub const FLEET_ORGS_PER_TENANT: f64 = 100.0;
pub const FLEET_REPOSITORIES_PER_ORG: f64 = 500.0;
/// One D1 database: 10 GB (Cloudflare's D1 limits page), and the statements per second one
/// database runs at 1 ms each ("If your average query takes 1 ms, you can run approximately
/// 1,000 queries per second", the same page's FAQ).
pub const D1_BYTES: f64 = 10e9;
pub const D1_STATEMENTS_PER_SECOND: f64 = 1_000.0;

/// How a table's size behaves over time.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Lifetime {
    /// One row per tenant (OAuth connection), org or repository, updated in place.
    PerTenant,
    PerOrg,
    PerRepository,
    /// Rows purged after so many days by the hourly cron (0: within the hour, or by the flow
    /// that wrote them).
    Kept(u32),
    /// Rows never deleted: the table grows every day.
    Growing,
    /// SQLite's own bookkeeping (`sqlite_sequence`: a row per AUTOINCREMENT table).
    Fixed,
}

/// Every table of the schema; a table a migration adds must be placed here.
const TABLES: [(&str, Lifetime); 19] = [
    ("provider_connections", Lifetime::PerTenant),
    ("organizations", Lifetime::PerOrg),
    ("enumeration_runs", Lifetime::PerOrg),
    ("access_states", Lifetime::PerOrg),
    ("repositories", Lifetime::PerRepository),
    ("application_profiles", Lifetime::PerRepository),
    ("webhook_deliveries", Lifetime::Kept(14)),
    ("message_failures", Lifetime::Kept(7)),
    ("consumed_states", Lifetime::Kept(0)),
    ("pending_connections", Lifetime::Kept(0)),
    ("access_runs", Lifetime::Kept(0)),
    ("installation_requests", Lifetime::Growing),
    ("snapshots", Lifetime::Growing),
    ("backup_jobs", Lifetime::Growing),
    ("org_activity", Lifetime::Growing),
    ("access_events", Lifetime::Growing),
    ("analysis_jobs", Lifetime::Growing),
    ("dead_letters", Lifetime::Growing),
    ("sqlite_sequence", Lifetime::Fixed),
];

fn lifetime(table: &str) -> Lifetime {
    TABLES
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, lifetime)| *lifetime)
        .unwrap_or_else(|| {
            panic!("table {table} is not placed in tests/scale/figures.rs TABLES: how long do its rows live?")
        })
}

/// What a sample measured.
pub struct Measured {
    pub sample: Sample,
    /// After day 0 (connect, first backups) and at the end.
    pub before: BTreeMap<String, TableSize>,
    pub after: BTreeMap<String, TableSize>,
    pub file_bytes: u64,
    /// Per flow, over the measured days.
    pub work: BTreeMap<Flow, Work>,
    /// Per hour of the day (0-23, UTC), over the measured days, every flow.
    pub by_hour: [Work; 24],
    /// Deliveries recorded per day (from the delivery log, within its 14 days).
    pub deliveries_per_day: f64,
    /// Bytes of a snapshot's `refs` JSON, on average.
    pub refs_bytes: f64,
    /// An access snapshot's steps and the progress JSON they write, under the simulated
    /// `SUBREQUEST_LIMIT` and under the free plan's default.
    pub access_reading: (u64, u64),
    pub access_reading_free_plan: (u64, u64),
}

/// Simulates the sample: day 0 connects everything, the following days are measured.
pub fn measure(sample: &Sample) -> Measured {
    let mut world = World::new(sample);
    world.connect_all();
    world.day(0);
    let before = world.db.sizes();
    let measured_from = (world.start + 86_400).div_euclid(3600);
    for day in 1..sample.days {
        world.day(day);
    }
    let after = world.db.sizes();
    let mut work: BTreeMap<Flow, Work> = BTreeMap::new();
    let mut by_hour = [Work::default(); 24];
    for (&(hour, flow), w) in world.db.work.range((measured_from, Flow::Connect)..) {
        work.entry(flow).or_default().add(w);
        by_hour[hour.rem_euclid(24) as usize].add(w);
    }
    // The delivery log keeps 14 days: count the days it still holds whole.
    let end = world.start + sample.days * 86_400;
    let whole_days = sample.measured_days().min(13);
    let since = onecode_edge::time::rfc3339(end - whole_days * 86_400);
    let deliveries: i64 = world.db.peek(
        "SELECT count(*) FROM webhook_deliveries WHERE received_at >= ?1",
        rusqlite::params![since],
        |r| r.get(0),
    )[0];
    let refs_bytes: f64 = world
        .db
        .peek("SELECT avg(length(refs)) FROM snapshots", &[], |r| r.get(0))[0];
    for table in after.keys() {
        lifetime(table);
    }
    Measured {
        sample: *sample,
        before,
        after,
        file_bytes: world.db.file_bytes(),
        work,
        by_hour,
        deliveries_per_day: deliveries as f64 / whole_days as f64,
        refs_bytes,
        access_reading: world.access_reading_cost(ASSUMED.subrequest_limit),
        access_reading_free_plan: world.access_reading_cost(INVOCATION_LIMIT),
    }
}

/// One figure of docs/scale.md.
pub struct Figure {
    pub name: &'static str,
    pub value: f64,
    pub unit: &'static str,
    pub what: &'static str,
}

impl Measured {
    fn table(&self, name: &str) -> TableSize {
        self.after.get(name).copied().unwrap_or_default()
    }

    fn bytes_per_row(&self, name: &str) -> f64 {
        self.table(name).bytes_per_row()
    }

    fn days(&self) -> f64 {
        self.sample.measured_days() as f64
    }

    fn repositories(&self) -> f64 {
        self.sample.repositories() as f64
    }

    /// Rows a growing table gains per repository and day.
    fn rows_per_repository_day(&self, name: &str) -> f64 {
        let before = self.before.get(name).map_or(0, |t| t.rows);
        (self.table(name).rows - before) as f64 / self.days() / self.repositories()
    }

    fn sum_bytes_per_row(&self, lifetime_of: Lifetime) -> f64 {
        TABLES
            .iter()
            .filter(|(_, l)| *l == lifetime_of)
            .map(|(name, _)| self.bytes_per_row(name))
            .sum()
    }

    /// Work of the flows that grow with the fleet (all but the hourly pass's own statements),
    /// per repository and day.
    fn per_repository_day(&self, pick: impl Fn(&Work) -> u64) -> f64 {
        self.work
            .iter()
            .filter(|(flow, _)| !flow.is_fleet_wide())
            .map(|(_, w)| pick(w) as f64)
            .sum::<f64>()
            / self.days()
            / self.repositories()
    }

    fn fleet_wide_per_day(&self) -> f64 {
        self.work
            .iter()
            .filter(|(flow, _)| flow.is_fleet_wide())
            .map(|(_, w)| w.statements as f64)
            .sum::<f64>()
            / self.days()
    }

    /// One scheduled sync run (fan-out, enumeration, access snapshot), per repository.
    fn sync_run(&self, pick: impl Fn(&Work) -> u64) -> f64 {
        let runs = self.days() * 6.0;
        self.work
            .iter()
            .filter(|(flow, _)| flow.is_sync_run())
            .map(|(_, w)| pick(w) as f64)
            .sum::<f64>()
            / runs
    }

    /// The hour of the day with the most statements, and its statements per repository and day
    /// (the hourly pass's own left out: they do not grow with the fleet).
    fn busiest_hour(&self) -> (usize, f64) {
        let fleet_wide_per_hour = self.fleet_wide_per_day() / 24.0;
        let (hour, work) = self
            .by_hour
            .iter()
            .enumerate()
            .max_by_key(|(_, w)| w.statements)
            .expect("24 hours");
        let statements = work.statements as f64 / self.days() - fleet_wide_per_hour;
        (hour, statements / self.repositories())
    }

    pub fn figures(&self) -> Vec<Figure> {
        let fleet_orgs = FLEET_TENANTS * FLEET_ORGS_PER_TENANT;
        let fleet_repositories = fleet_orgs * FLEET_REPOSITORIES_PER_ORG;
        let orgs = self.sample.orgs() as f64;

        let tenant = self.sum_bytes_per_row(Lifetime::PerTenant);
        let org = self.sum_bytes_per_row(Lifetime::PerOrg);
        let repository = self.sum_bytes_per_row(Lifetime::PerRepository);
        let snapshot = self.bytes_per_row("snapshots");
        let job = self.bytes_per_row("backup_jobs");
        let delivery = self.bytes_per_row("webhook_deliveries");
        let activity = self.bytes_per_row("org_activity");
        // Connected and backed up once: its rows, its initial job, its first snapshot.
        let connected = repository + job + snapshot;
        let per_org_repository = org / FLEET_REPOSITORIES_PER_ORG;

        let growing_bytes: f64 = TABLES
            .iter()
            .filter(|(_, l)| *l == Lifetime::Growing)
            .map(|(name, _)| {
                let before = self.before.get(*name).map_or(0, |t| t.bytes);
                self.table(name).bytes as f64 - before as f64
            })
            .sum();
        let growth = growing_bytes / self.days() / self.repositories();
        let deliveries_per_repository_day = self.deliveries_per_day / self.repositories();
        let kept_deliveries = delivery * deliveries_per_repository_day * 14.0;

        let statements = self.per_repository_day(|w| w.statements);
        let writes = self.per_repository_day(|w| w.writes);
        let rows_changed = self.per_repository_day(|w| w.rows_changed);
        let sync_statements = self.sync_run(|w| w.statements) / self.repositories();
        let sync_bound_bytes = self.sync_run(|w| w.bound_bytes) / orgs;
        let (busiest_hour, busiest_statements) = self.busiest_hour();
        let fleet_wide = self.fleet_wide_per_day();

        let tenant_repositories = FLEET_ORGS_PER_TENANT * FLEET_REPOSITORIES_PER_ORG;
        let tenant_connect = tenant
            + FLEET_ORGS_PER_TENANT * org
            + tenant_repositories * (connected + kept_deliveries);
        let org_connect = org + FLEET_REPOSITORIES_PER_ORG * (connected + kept_deliveries);
        let fleet_connect = FLEET_TENANTS * tenant
            + fleet_orgs * org
            + fleet_repositories * (connected + kept_deliveries);
        let fleet_growth = fleet_repositories * growth;
        let at_connect = connected + per_org_repository + kept_deliveries;
        let one_year = at_connect + 365.0 * growth;

        let f = |name, value, unit, what| Figure {
            name,
            value,
            unit,
            what,
        };
        vec![
            f("tenant_bytes", tenant, "bytes", "a tenant's own rows: one OAuth connection"),
            f("org_bytes", org, "bytes", "an org's rows: the org, its enumeration run, its access state (500 repositories, 50 members)"),
            f("repository_bytes", repository, "bytes", "a repository's rows: the repository and its application profile"),
            f("snapshot_bytes", snapshot, "bytes", "one snapshot row with its indexes"),
            f("snapshot_refs_bytes", self.refs_bytes, "bytes", "of which its refs JSON (40 refs), recorded by every snapshot, unchanged ones included"),
            f("backup_job_bytes", job, "bytes", "one backup job row"),
            f("delivery_bytes", delivery, "bytes", "one delivery id (kept 14 days)"),
            f("activity_bytes", activity, "bytes", "one activity log row"),
            f("snapshots_per_repository_day", self.rows_per_repository_day("snapshots"), "rows", "snapshots per repository and day"),
            f("backup_jobs_per_repository_day", self.rows_per_repository_day("backup_jobs"), "rows", "backup jobs per repository and day"),
            f("activity_per_repository_day", self.rows_per_repository_day("org_activity"), "rows", "activity rows per repository and day (its org's share included)"),
            f("deliveries_per_org_day", self.deliveries_per_day / orgs, "deliveries", "webhook deliveries per org and day"),
            f("growth_bytes_per_repository_day", growth, "bytes", "what never-deleted rows add per repository and day"),
            f("statements_per_repository_day", statements, "statements", "D1 statements per repository and day, reads included"),
            f("writes_per_repository_day", writes, "statements", "of which writes"),
            f("rows_written_per_repository_day", rows_changed, "rows", "rows inserted, updated or deleted per repository and day"),
            f("sync_run_statements_per_repository", sync_statements, "statements", "one 4-hourly sync run (enumeration and access snapshot), per repository"),
            f("sync_run_bytes_written_per_org", sync_bound_bytes, "bytes", "bytes bound to a sync run's writes per org: the listing's pages, the access progress and state"),
            f("access_steps_per_sync", self.access_reading.0 as f64, "steps", "invocations an org's access snapshot takes at SUBREQUEST_LIMIT 950"),
            f("access_steps_per_sync_free_plan", self.access_reading_free_plan.0 as f64, "steps", "the same at the free plan's 45: each step re-reads the repositories and rewrites the progress"),
            f("access_progress_bytes_per_sync_free_plan", self.access_reading_free_plan.1 as f64, "bytes", "progress JSON those steps write per org and sync"),
            f("busiest_hour_utc", busiest_hour as f64, "hour", "the hour of the day with the most statements (scheduled backups)"),
            f("busiest_hour_statements_per_repository", busiest_statements, "statements", "statements in that hour per repository"),
            f("hourly_pass_statements_per_day", fleet_wide, "statements", "the hourly pass's own statements per day, whatever the fleet"),
            f("fleet_connect_gb", fleet_connect / 1e9, "GB", "the fleet connected and backed up once, with 14 days of delivery ids"),
            f("fleet_growth_gb_per_day", fleet_growth / 1e9, "GB", "what the fleet adds per day"),
            f("fleet_statements_per_second", (statements * fleet_repositories + fleet_wide) / 86_400.0, "statements/s", "average over the day"),
            f("fleet_writes_per_second", writes * fleet_repositories / 86_400.0, "statements/s", "writes, average over the day"),
            f("fleet_busiest_hour_statements_per_second", busiest_statements * fleet_repositories / 3_600.0, "statements/s", "average over the busiest hour"),
            f("fleet_sync_run_statements_millions", sync_statements * fleet_repositories / 1e6, "million statements", "one 4-hourly sync run of the fleet"),
            f("fleet_sync_bytes_written_gb_per_day", sync_bound_bytes * 6.0 * fleet_orgs / 1e9, "GB", "bytes the fleet's syncs bind to writes per day (listings, access progress and state), storing little new"),
            f("fleet_sync_run_writer_hours", sync_statements * fleet_repositories / D1_STATEMENTS_PER_SECOND / 3_600.0, "hours", "one sync run on one D1 at 1 ms a statement"),
            f("one_d1_repositories_at_connect", D1_BYTES / at_connect, "repositories", "repositories one D1 holds connected and backed up once"),
            f("one_d1_repositories_for_a_year", D1_BYTES / one_year, "repositories", "repositories one D1 holds for a year of history"),
            f("one_d1_repositories_by_average_rate", D1_STATEMENTS_PER_SECOND * 86_400.0 / statements, "repositories", "repositories whose average statement rate one D1 runs"),
            f("one_d1_repositories_by_busiest_hour", D1_STATEMENTS_PER_SECOND * 3_600.0 / busiest_statements, "repositories", "repositories whose busiest hour one D1 runs within the hour"),
            f("fleet_share_one_d1_holds_pct", 100.0 * D1_BYTES / at_connect / fleet_repositories, "%", "share of the fleet one D1 holds at connect"),
            f("tenant_database_days", (D1_BYTES - tenant_connect) / (tenant_repositories * growth), "days", "days until one MSP (100 orgs × 500 repositories) fills a 10 GB database of its own"),
            f("org_database_years", (D1_BYTES - org_connect) / (FLEET_REPOSITORIES_PER_ORG * growth) / 365.0, "years", "years until one org (500 repositories) fills a 10 GB database of its own"),
            f("org_busiest_hour_statements", busiest_statements * FLEET_REPOSITORIES_PER_ORG, "statements", "one org's statements in the busiest hour"),
        ]
    }

    /// What the sample measured, table by table and flow by flow (`scripts/scale` prints it).
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let s = &self.sample;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "sample: {} tenants × {} orgs × {} repositories, {} days measured after the connect day; database file {:.1} MB\n",
            s.tenants,
            s.orgs_per_tenant,
            s.repositories_per_org,
            s.measured_days(),
            self.file_bytes as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "| table | lifetime | rows | bytes | bytes/row | rows/repository/day |\n|---|---|---:|---:|---:|---:|"
        );
        for (name, size) in &self.after {
            let l = lifetime(name);
            let per_day = match l {
                Lifetime::Growing => format!("{:.3}", self.rows_per_repository_day(name)),
                _ => "".to_string(),
            };
            let _ = writeln!(
                out,
                "| {name} | {l:?} | {} | {} | {:.0} | {per_day} |",
                size.rows,
                size.bytes,
                size.bytes_per_row()
            );
        }
        let _ = writeln!(
            out,
            "\n| flow | statements/repository/day | writes | rows changed | bytes bound | native ms/day |\n|---|---:|---:|---:|---:|---:|"
        );
        let repositories = self.repositories();
        for (flow, w) in &self.work {
            let per = |v: u64| v as f64 / self.days() / repositories;
            let _ = writeln!(
                out,
                "| {flow:?} | {:.3} | {:.3} | {:.3} | {:.0} | {:.1} |",
                per(w.statements),
                per(w.writes),
                per(w.rows_changed),
                per(w.bound_bytes),
                w.nanos as f64 / 1e6 / self.days()
            );
        }
        let _ = writeln!(
            out,
            "\nassumed: {} pushes per repository and day, {} members per org, {} refs per repository",
            ASSUMED.pushes_per_repository_day,
            ASSUMED.members_per_org,
            ASSUMED.refs_per_repository()
        );
        out
    }
}
