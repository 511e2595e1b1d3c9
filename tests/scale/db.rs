//! The simulation's database: SQLite (the engine under D1) with every file of `migrations/`
//! applied in order, and a tally of what the gateway's flows ask of it — statements, writes,
//! rows changed, bytes bound — per flow and per simulated hour. Sizes come from SQLite's
//! `dbstat` virtual table (pages per table and index, and the bytes in use on them).

use rusqlite::{Connection, Row, ToSql};
use std::collections::BTreeMap;
use std::time::Instant;

/// SQLite's default page size, which D1 uses.
pub const PAGE_SIZE: u64 = 4096;

/// What the gateway was doing when it ran a statement (`src/edge/…`, named in the simulation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flow {
    /// Connect callback, confirmation and the first enumeration (`edge::connect`).
    Connect,
    /// A `push` delivery (`edge::webhooks`).
    Push,
    /// A `repository` delivery (`edge::webhooks`).
    RepositoryEvent,
    /// An `organization` member delivery (`edge::access::webhook`).
    MemberEvent,
    /// The backup consumer (`edge::backup::executor`).
    Backup,
    /// The analysis consumer (`edge::queues`).
    Analysis,
    /// The scheduled sync: fan-out and enumeration (`edge::sync`, `edge::enumerate`).
    Sync,
    /// The access snapshot each sync starts (`edge::access::snapshot`).
    Access,
    /// Sending queued backup jobs (`edge::sync::dispatch`).
    Dispatch,
    /// The hourly cron's own statements: scheduled jobs, purges, retention, sweeps, connections.
    Hourly,
}

impl Flow {
    /// The flows of the 4-hourly scheduled sync.
    pub fn is_sync_run(self) -> bool {
        matches!(self, Flow::Sync | Flow::Access)
    }

    /// Statements whose number does not grow with the fleet (one pass per hour, whatever it
    /// holds); their cost per statement does.
    pub fn is_fleet_wide(self) -> bool {
        self == Flow::Hourly
    }
}

/// What statements asked of the database.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Work {
    /// Statements (D1 queries), reads and writes.
    pub statements: u64,
    /// Of those, statements that may write (not read-only to SQLite).
    pub writes: u64,
    /// Rows inserted, updated or deleted (SQLite's `changes()`; index entries not counted).
    pub rows_changed: u64,
    /// Bytes of text and blobs bound to write statements (what crosses to D1 and is written).
    pub bound_bytes: u64,
    /// Native execution time, for orientation only (not D1's, not checked).
    pub nanos: u64,
}

impl Work {
    pub fn add(&mut self, other: &Work) {
        self.statements += other.statements;
        self.writes += other.writes;
        self.rows_changed += other.rows_changed;
        self.bound_bytes += other.bound_bytes;
        self.nanos += other.nanos;
    }
}

/// One table with its indexes, as `dbstat` sees it.
#[derive(Clone, Copy, Default, Debug)]
pub struct TableSize {
    pub rows: u64,
    /// Pages × page size: what the table and its indexes take in the file.
    pub bytes: u64,
    /// Of those, bytes in use (cells, headers): what it would take packed.
    pub used: u64,
    pub pages: u64,
}

impl TableSize {
    /// Bytes per row: the pages' bytes once the table spans enough pages for their fill to be
    /// the table's own; below that (a handful of rows in a sample), the bytes in use.
    pub fn bytes_per_row(&self) -> f64 {
        const ENOUGH_PAGES: u64 = 16;
        let bytes = if self.pages >= ENOUGH_PAGES {
            self.bytes
        } else {
            self.used
        };
        bytes as f64 / self.rows.max(1) as f64
    }
}

pub struct Db {
    conn: Connection,
    flow: Flow,
    hour: i64,
    /// Per (simulated hour since the epoch, flow).
    pub work: BTreeMap<(i64, Flow), Work>,
}

fn bound_bytes(params: &[&dyn ToSql]) -> u64 {
    use rusqlite::types::{ToSqlOutput, Value, ValueRef};
    params
        .iter()
        .map(|p| match p.to_sql() {
            Ok(ToSqlOutput::Borrowed(ValueRef::Text(b) | ValueRef::Blob(b))) => b.len() as u64,
            Ok(ToSqlOutput::Owned(Value::Text(s))) => s.len() as u64,
            Ok(ToSqlOutput::Owned(Value::Blob(b))) => b.len() as u64,
            _ => 0,
        })
        .sum()
}

impl Db {
    /// An empty database with the real schema.
    pub fn open() -> Db {
        let conn = Connection::open_in_memory().expect("in-memory SQLite");
        // Every statement of the gateway stays prepared (rusqlite keeps 16 by default).
        conn.set_prepared_statement_cache_capacity(256);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut migrations: Vec<_> = std::fs::read_dir(&dir)
            .expect("migrations/")
            .map(|e| e.expect("migrations entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        migrations.sort();
        for migration in &migrations {
            let sql = std::fs::read_to_string(migration).expect("migration text");
            conn.execute_batch(&sql)
                .unwrap_or_else(|e| panic!("{}: {e}", migration.display()));
        }
        Db {
            conn,
            flow: Flow::Connect,
            hour: 0,
            work: BTreeMap::new(),
        }
    }

    /// What the next statements are for, and when (unix seconds).
    pub fn at(&mut self, flow: Flow, now: i64) {
        self.flow = flow;
        self.hour = now.div_euclid(3600);
    }

    fn tally(&mut self, readonly: bool, params: &[&dyn ToSql], started: Instant) {
        let work = self.work.entry((self.hour, self.flow)).or_default();
        work.statements += 1;
        work.nanos += started.elapsed().as_nanos() as u64;
        if !readonly {
            work.writes += 1;
            work.rows_changed += self.conn.changes();
            work.bound_bytes += bound_bytes(params);
        }
    }

    /// Runs one statement of the gateway; the rows it changed.
    pub fn run(&mut self, sql: &str, params: &[&dyn ToSql]) -> u64 {
        let started = Instant::now();
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        let readonly = stmt.readonly();
        stmt.execute(params)
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        drop(stmt);
        self.tally(readonly, params, started);
        self.conn.changes()
    }

    /// Runs one statement of the gateway that answers rows (a read, or a write `RETURNING`).
    pub fn rows<T>(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        let started = Instant::now();
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        let readonly = stmt.readonly();
        let rows: Vec<T> = stmt
            .query_map(params, map)
            .and_then(|rows| rows.collect())
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        drop(stmt);
        self.tally(readonly, params, started);
        rows
    }

    /// Statements D1 runs as one batch (one transaction).
    pub fn batch<R>(&mut self, statements: impl FnOnce(&mut Db) -> R) -> R {
        self.conn.execute_batch("BEGIN").expect("BEGIN");
        let result = statements(self);
        self.conn.execute_batch("COMMIT").expect("COMMIT");
        result
    }

    /// A query of the simulation itself (what it needs to know to play the provider's part),
    /// not the gateway's: not tallied.
    pub fn peek<T>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        let rows = stmt
            .query_map(params, map)
            .and_then(|rows| rows.collect())
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        rows
    }

    /// Every table (and `sqlite_sequence`) with its indexes: rows, pages and bytes.
    pub fn sizes(&self) -> BTreeMap<String, TableSize> {
        let page_size: u64 = self.peek("PRAGMA page_size", &[], |r| r.get(0))[0];
        assert_eq!(page_size, PAGE_SIZE, "D1's page size");
        let mut sizes: BTreeMap<String, TableSize> = self
            .peek(
                "SELECT s.tbl_name, count(*), sum(d.pgsize), sum(d.pgsize - d.unused) \
                 FROM dbstat d JOIN sqlite_schema s ON s.name = d.name GROUP BY s.tbl_name",
                &[],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        TableSize {
                            rows: 0,
                            pages: r.get::<_, i64>(1)? as u64,
                            bytes: r.get::<_, i64>(2)? as u64,
                            used: r.get::<_, i64>(3)? as u64,
                        },
                    ))
                },
            )
            .into_iter()
            .collect();
        for (table, size) in sizes.iter_mut() {
            let rows: i64 = self.peek(&format!("SELECT count(*) FROM \"{table}\""), &[], |r| {
                r.get(0)
            })[0];
            size.rows = rows as u64;
        }
        sizes
    }

    /// The whole file: pages (free ones included) × page size.
    pub fn file_bytes(&self) -> u64 {
        let pages: i64 = self.peek("PRAGMA page_count", &[], |r| r.get(0))[0];
        pages as u64 * PAGE_SIZE
    }
}
