//! Access to what the worker persisted under `wrangler dev --persist-to`: the D1 database (a
//! SQLite file in WAL mode that workerd keeps writing while tests read, and in which a test may
//! write the rows the worker has no API for yet) and the KV namespace (miniflare's
//! `_mf_entries` table plus value blobs), read-only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Params};

/// Finds the one `*.sqlite` file of a miniflare object directory that is not `metadata.sqlite`.
pub fn object_sqlite(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "sqlite")
                && p.file_name().is_some_and(|n| n != "metadata.sqlite")
        })
        .collect();
    found.sort();
    (found.len() == 1).then(|| found.remove(0))
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// A read-write connection, for the few rows tests write behind the worker's back. It never
/// checkpoints the WAL (workerd does).
fn open_rw(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// Runs `f` on a fresh read-only connection, retrying transient errors (the writer holds the
/// WAL index for a moment, a checkpoint is under way).
fn with_retry<T>(path: &Path, f: impl FnMut(&Connection) -> rusqlite::Result<T>) -> T {
    with_retry_on(path, open, f)
}

fn with_retry_on<T>(
    path: &Path,
    open: fn(&Path) -> rusqlite::Result<Connection>,
    mut f: impl FnMut(&Connection) -> rusqlite::Result<T>,
) -> T {
    let mut last = None;
    for _ in 0..50 {
        match open(path).and_then(|conn| f(&conn)) {
            Ok(value) => return value,
            Err(e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    panic!("reading {}: {:?}", path.display(), last)
}

/// What a tenant has in D1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    pub orgs: i64,
    pub repos: i64,
    pub profiles: i64,
    pub jobs: i64,
    /// States spent (connect callbacks).
    pub consumed_states: i64,
    pub installation_requests: i64,
    /// Pending connections spent by their confirmation (`confirm:<id>` nonces).
    pub confirmations: i64,
    /// Connections held for confirmation, not yet confirmed or purged.
    pub pending: i64,
}

#[derive(Debug, Clone)]
pub struct OrgRow {
    pub id: String,
    pub tenant_id: String,
    pub provider: String,
    pub account_id: i64,
    pub login: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub account_type: String,
    pub installation_id: i64,
    pub status: String,
    pub backup_schedule: String,
    pub retention_days: i64,
    pub connected_by: String,
    pub created_at: String,
    pub last_synced_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RepoRow {
    pub id: String,
    pub provider_repo_id: i64,
    pub name: String,
    pub full_name: String,
    pub private: i64,
    pub default_branch: Option<String>,
    pub html_url: Option<String>,
    pub archived: i64,
    pub visibility: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub repository_id: String,
    pub kind: String,
    pub priority: String,
    pub status: String,
    pub run_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunRow {
    pub run_id: String,
    pub status: String,
    pub next_url: Option<String>,
    pub pages: i64,
    pub found: i64,
    pub added: i64,
    pub last_error: Option<String>,
}

pub struct Store {
    d1: PathBuf,
    kv_dir: PathBuf,
}

impl Store {
    pub fn new(d1: PathBuf, kv_dir: PathBuf) -> Store {
        Store { d1, kv_dir }
    }

    /// A single integer from D1.
    pub fn count<P: Params + Clone>(&self, sql: &str, params: P) -> i64 {
        with_retry(&self.d1, |c| {
            c.query_row(sql, params.clone(), |row| row.get::<_, i64>(0))
        })
    }

    /// Any query's rows, mapped by `f`.
    pub fn query<T, P: Params + Clone>(
        &self,
        sql: &str,
        params: P,
        f: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        with_retry(&self.d1, |c| {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt.query_map(params.clone(), &f)?;
            rows.collect()
        })
    }

    /// Writes to D1 behind the worker's back (rows it has no API for yet, such as snapshots),
    /// in one statement (its own transaction), retried while workerd holds the write lock.
    /// Returns the rows changed.
    ///
    /// Only while the worker is idle, in an exclusive test: workerd waits for no lock, so a
    /// statement of the worker's that meets this write fails (`SQLITE_BUSY`, a 500).
    pub fn execute<P: Params + Clone>(&self, sql: &str, params: P) -> usize {
        with_retry_on(&self.d1, open_rw, |c| c.execute(sql, params.clone()))
    }

    pub fn footprint(&self, tenant: &str) -> Footprint {
        with_retry(&self.d1, |c| {
            let one = |sql: &str| c.query_row(sql, [tenant], |row| row.get::<_, i64>(0));
            Ok(Footprint {
                orgs: one("SELECT count(*) FROM organizations WHERE tenant_id = ?1")?,
                repos: one(
                    "SELECT count(*) FROM repositories r JOIN organizations o ON o.id = r.org_id \
                     WHERE o.tenant_id = ?1",
                )?,
                profiles: one("SELECT count(*) FROM application_profiles p \
                     JOIN repositories r ON r.id = p.repository_id \
                     JOIN organizations o ON o.id = r.org_id WHERE o.tenant_id = ?1")?,
                jobs: one(
                    "SELECT count(*) FROM backup_jobs j JOIN organizations o ON o.id = j.org_id \
                     WHERE o.tenant_id = ?1",
                )?,
                consumed_states: one("SELECT count(*) FROM consumed_states WHERE tenant_id = ?1 \
                     AND nonce NOT LIKE 'confirm:%'")?,
                installation_requests: one(
                    "SELECT count(*) FROM installation_requests WHERE tenant_id = ?1",
                )?,
                confirmations: one("SELECT count(*) FROM consumed_states WHERE tenant_id = ?1 \
                     AND nonce LIKE 'confirm:%'")?,
                pending: one("SELECT count(*) FROM pending_connections WHERE tenant_id = ?1")?,
            })
        })
    }

    pub fn orgs(&self, tenant: &str) -> Vec<OrgRow> {
        with_retry(&self.d1, |c| {
            let mut stmt = c.prepare(
                "SELECT id, tenant_id, provider, account_id, login, display_name, avatar_url, \
                     account_type, installation_id, status, backup_schedule, retention_days, \
                     connected_by, created_at, last_synced_at \
                 FROM organizations WHERE tenant_id = ?1 ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([tenant], |r| {
                Ok(OrgRow {
                    id: r.get(0)?,
                    tenant_id: r.get(1)?,
                    provider: r.get(2)?,
                    account_id: r.get(3)?,
                    login: r.get(4)?,
                    display_name: r.get(5)?,
                    avatar_url: r.get(6)?,
                    account_type: r.get(7)?,
                    installation_id: r.get(8)?,
                    status: r.get(9)?,
                    backup_schedule: r.get(10)?,
                    retention_days: r.get(11)?,
                    connected_by: r.get(12)?,
                    created_at: r.get(13)?,
                    last_synced_at: r.get(14)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Organizations (any tenant) holding an installation.
    pub fn orgs_with_installation(&self, installation_id: u64) -> Vec<(String, String)> {
        with_retry(&self.d1, |c| {
            let mut stmt =
                c.prepare("SELECT id, tenant_id FROM organizations WHERE installation_id = ?1")?;
            let rows = stmt.query_map([installation_id as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    pub fn repos(&self, org_id: &str) -> Vec<RepoRow> {
        with_retry(&self.d1, |c| {
            let mut stmt = c.prepare(
                "SELECT id, provider_repo_id, name, full_name, private, default_branch, html_url, \
                     archived, visibility, status \
                 FROM repositories WHERE org_id = ?1 ORDER BY provider_repo_id",
            )?;
            let rows = stmt.query_map([org_id], |r| {
                Ok(RepoRow {
                    id: r.get(0)?,
                    provider_repo_id: r.get(1)?,
                    name: r.get(2)?,
                    full_name: r.get(3)?,
                    private: r.get(4)?,
                    default_branch: r.get(5)?,
                    html_url: r.get(6)?,
                    archived: r.get(7)?,
                    visibility: r.get(8)?,
                    status: r.get(9)?,
                })
            })?;
            rows.collect()
        })
    }

    pub fn jobs(&self, org_id: &str) -> Vec<JobRow> {
        with_retry(&self.d1, |c| {
            let mut stmt = c.prepare(
                "SELECT id, repository_id, kind, priority, status, run_id \
                 FROM backup_jobs WHERE org_id = ?1",
            )?;
            let rows = stmt.query_map([org_id], |r| {
                Ok(JobRow {
                    id: r.get(0)?,
                    repository_id: r.get(1)?,
                    kind: r.get(2)?,
                    priority: r.get(3)?,
                    status: r.get(4)?,
                    run_id: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Repository ids of the org that have an application-profile stub.
    pub fn profiled_repos(&self, org_id: &str) -> Vec<(String, String)> {
        with_retry(&self.d1, |c| {
            let mut stmt = c.prepare(
                "SELECT p.repository_id, p.status FROM application_profiles p \
                 JOIN repositories r ON r.id = p.repository_id WHERE r.org_id = ?1",
            )?;
            let rows = stmt.query_map([org_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    pub fn run(&self, org_id: &str) -> Option<RunRow> {
        with_retry(&self.d1, |c| {
            let mut stmt = c.prepare(
                "SELECT run_id, status, next_url, pages, found, added, last_error \
                 FROM enumeration_runs WHERE org_id = ?1",
            )?;
            let mut rows = stmt.query_map([org_id], |r| {
                Ok(RunRow {
                    run_id: r.get(0)?,
                    status: r.get(1)?,
                    next_url: r.get(2)?,
                    pages: r.get(3)?,
                    found: r.get(4)?,
                    added: r.get(5)?,
                    last_error: r.get(6)?,
                })
            })?;
            rows.next().transpose()
        })
    }

    /// `(technician_id, status)` of the tenant's pending installation requests.
    pub fn installation_requests(&self, tenant: &str) -> Vec<(String, String, String)> {
        with_retry(&self.d1, |c| {
            let mut stmt = c.prepare(
                "SELECT nonce, technician_id, status FROM installation_requests WHERE tenant_id = ?1",
            )?;
            let rows = stmt.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// Nonces the tenant has spent.
    pub fn consumed_nonces(&self, tenant: &str) -> Vec<String> {
        with_retry(&self.d1, |c| {
            let mut stmt = c.prepare("SELECT nonce FROM consumed_states WHERE tenant_id = ?1")?;
            let rows = stmt.query_map([tenant], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn kv_sqlite(&self) -> Option<PathBuf> {
        object_sqlite(&self.kv_dir.join("miniflare-KVNamespaceObject"))
    }

    /// Entries in the KV namespace (0 before the first write).
    pub fn kv_count(&self) -> i64 {
        match self.kv_sqlite() {
            None => 0,
            Some(path) => with_retry(&path, |c| {
                c.query_row("SELECT count(*) FROM _mf_entries", [], |r| r.get(0))
            }),
        }
    }

    /// Whether KV holds `key`.
    pub fn kv_has(&self, key: &str) -> bool {
        match self.kv_sqlite() {
            None => false,
            Some(path) => {
                with_retry(&path, |c| {
                    c.query_row(
                        "SELECT count(*) FROM _mf_entries WHERE key = ?1",
                        [key],
                        |r| r.get::<_, i64>(0),
                    )
                }) > 0
            }
        }
    }

    /// Whether any file of the KV store (keys, values, their WAL) contains `needle`.
    pub fn kv_mentions(&self, needle: &str) -> bool {
        files_under(&self.kv_dir).iter().any(|path| {
            std::fs::read(path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
    }
}

/// Every regular file under `dir`, recursively (symlinks not followed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// An object of the local R2 bucket (`BACKUPS`), as miniflare records it in `_mf_objects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct R2Object {
    /// The object key (`{tenant}/{org}/{repository}/{snapshot}.bundle` for bundles).
    pub key: String,
    /// Bytes (for a completed multipart upload, the sum of its parts).
    pub size: i64,
    /// The ETag R2 answers (a multipart one ends in `-<parts>`).
    pub etag: String,
    /// When it was stored, in milliseconds since the epoch.
    pub uploaded: i64,
    /// The object's HTTP metadata, as the JSON text miniflare stores (`{}` when none).
    pub http_metadata: String,
    /// Its custom metadata, as the JSON text miniflare stores (`{}` when none).
    pub custom_metadata: String,
}

/// The local R2 state, under `--persist-to`'s `v3/r2/`: miniflare keeps one SQLite file per
/// bucket in `v3/r2/miniflare-R2BucketObject/` (the bucket's metadata) and the bytes in
/// `v3/r2/{bucket}/blobs/`. Its schema (miniflare's `r2/schemas.worker.ts`):
///
/// ```sql
/// CREATE TABLE _mf_objects (key TEXT PRIMARY KEY, blob_id TEXT, version TEXT NOT NULL,
///     size INTEGER NOT NULL, etag TEXT NOT NULL, uploaded INTEGER NOT NULL,
///     checksums TEXT NOT NULL, http_metadata TEXT NOT NULL, custom_metadata TEXT NOT NULL);
/// -- state: 0 in progress, 1 completed, 2 aborted
/// CREATE TABLE _mf_multipart_uploads (upload_id TEXT PRIMARY KEY, key TEXT NOT NULL,
///     http_metadata TEXT NOT NULL, custom_metadata TEXT NOT NULL, state TINYINT DEFAULT 0 NOT NULL);
/// -- object_key: set once the part belongs to a completed object (its blob_id NULL then)
/// CREATE TABLE _mf_multipart_parts (upload_id TEXT NOT NULL, part_number INTEGER NOT NULL,
///     blob_id TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
///     checksum_md5 TEXT NOT NULL, object_key TEXT, PRIMARY KEY (upload_id, part_number));
/// ```
///
/// An aborted upload's parts are deleted; a completed one's stay, linked to their object.
impl Store {
    fn r2_sqlite(&self) -> Option<PathBuf> {
        let r2 = self.kv_dir.parent()?.join("r2");
        object_sqlite(&r2.join("miniflare-R2BucketObject"))
    }

    /// Every object of the local R2 bucket (all tenants), by key; none before the first write.
    /// Objects only: uploads in progress are [`Store::r2_pending_uploads`].
    pub fn r2_objects(&self) -> Vec<R2Object> {
        let Some(path) = self.r2_sqlite() else {
            return Vec::new();
        };
        with_retry(&path, |c| {
            let mut stmt = c.prepare(
                "SELECT key, size, etag, uploaded, http_metadata, custom_metadata \
                 FROM _mf_objects ORDER BY key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(R2Object {
                    key: r.get(0)?,
                    size: r.get(1)?,
                    etag: r.get(2)?,
                    uploaded: r.get(3)?,
                    http_metadata: r.get(4)?,
                    custom_metadata: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The keys of the multipart uploads neither completed nor aborted (all tenants; a key once
    /// per such upload), by key: each holds parts that no object owns.
    pub fn r2_pending_uploads(&self) -> Vec<String> {
        let Some(path) = self.r2_sqlite() else {
            return Vec::new();
        };
        with_retry(&path, |c| {
            let mut stmt =
                c.prepare("SELECT key FROM _mf_multipart_uploads WHERE state = 0 ORDER BY key")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// `(key, state)` of every multipart upload ever started for a key starting with `prefix`
    /// (state `0` in progress, `1` completed, `2` aborted), by key.
    pub fn r2_uploads(&self, prefix: &str) -> Vec<(String, i64)> {
        let Some(path) = self.r2_sqlite() else {
            return Vec::new();
        };
        with_retry(&path, |c| {
            let mut stmt = c.prepare(
                "SELECT key, state FROM _mf_multipart_uploads \
                 WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key, upload_id",
            )?;
            let rows = stmt.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }
}
