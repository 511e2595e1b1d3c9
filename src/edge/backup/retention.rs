//! Retention of backups (hourly, continued through the sync queue): snapshots past their org's
//! `retention_days` stop being offered for restore, and their bundles leave R2 once no kept
//! snapshot's restore chain needs them (`backup::plan::retention` decides; a connected
//! repository keeps its newest ok snapshot, a disconnected org keeps nothing past retention).
//!
//! One pass: the records of up to `REPOSITORIES_PER_PASS` repositories with work
//! (`RETENTION_RECORDS`), one R2 `delete` of the bundles that may go, one D1 batch that expires
//! the snapshots and forgets the deleted objects. Objects are deleted before their records say
//! so: a pass cut short leaves records pointing at deleted objects (the next pass forgets them),
//! never an object no record knows. A full pass asks for another (`retention.v1`).

use crate::backup::plan::{self, SnapshotKind, SnapshotRecord, SnapshotStatus};
use crate::edge::bindings::{Ctx, Internal, Param, BACKUPS};
use crate::sql;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Repositories per pass: their records come in one query; 3 subrequests per pass.
const REPOSITORIES_PER_PASS: usize = 50;
/// R2 deletes at most 1,000 keys per call.
const KEYS_PER_DELETE: usize = 1000;

#[derive(Deserialize)]
struct Row {
    id: String,
    repository_id: String,
    kind: Option<String>,
    base: Option<String>,
    outcome: String,
    finished_at: Option<String>,
    object_key: Option<String>,
    retention_days: f64,
    org_status: String,
}

/// What one pass did.
pub struct Pass {
    pub expired: usize,
    pub deleted: usize,
    /// More repositories may have work: another pass should follow.
    pub more: bool,
}

/// A record as retention sees it: an `unchanged` snapshot restores through its base like an
/// incremental that adds nothing; `empty` and `failed` ones store nothing.
fn record(row: &Row) -> SnapshotRecord {
    let (status, kind) = match (row.outcome.as_str(), row.kind.as_deref()) {
        ("running", _) => (SnapshotStatus::Running, SnapshotKind::Full),
        ("ok", Some("incremental")) => (SnapshotStatus::Ok, SnapshotKind::Incremental),
        ("ok", _) => (SnapshotStatus::Ok, SnapshotKind::Full),
        ("unchanged", _) => (SnapshotStatus::Ok, SnapshotKind::Incremental),
        _ => (SnapshotStatus::Failed, SnapshotKind::Full),
    };
    SnapshotRecord {
        id: row.id.clone(),
        kind,
        base: row.base.clone(),
        status,
        finished_at: if status == SnapshotStatus::Running {
            None
        } else {
            row.finished_at
                .as_deref()
                .and_then(crate::time::parse_rfc3339)
        },
    }
}

/// One retention pass.
pub async fn pass(ctx: &Ctx) -> Result<Pass, Internal> {
    let now = crate::time::rfc3339(ctx.now);
    let rows: Vec<Row> = ctx
        .rows(
            sql::RETENTION_RECORDS,
            &[Param::from(&now), Param::from(REPOSITORIES_PER_PASS as i64)],
        )
        .await?;
    let mut by_repository: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in &rows {
        by_repository
            .entry(row.repository_id.as_str())
            .or_default()
            .push(row);
    }
    let more = by_repository.len() >= REPOSITORIES_PER_PASS;
    let mut expired = Vec::new();
    let mut deleted = Vec::new();
    let mut keys = Vec::new();
    for rows in by_repository.values() {
        let Some(first) = rows.first() else { continue };
        let records: Vec<SnapshotRecord> = rows.iter().map(|r| record(r)).collect();
        let cutoff = ctx.now - (first.retention_days as i64) * 86_400;
        let decided = plan::retention(&records, cutoff, first.org_status != "disconnected");
        let keys_of: BTreeMap<&str, &str> = rows
            .iter()
            .filter_map(|r| Some((r.id.as_str(), r.object_key.as_deref()?)))
            .collect();
        for id in decided.delete {
            if let Some(key) = keys_of.get(id.as_str()) {
                keys.push(key.to_string());
                deleted.push(id);
            }
        }
        expired.extend(decided.expired);
    }
    if !keys.is_empty() {
        let bucket = ctx
            .env
            .bucket(BACKUPS)
            .map_err(|e| Internal::new("R2 binding", e))?;
        for chunk in keys.chunks(KEYS_PER_DELETE) {
            ctx.budget
                .spend()
                .map_err(|_| Internal("subrequest budget exhausted before an R2 delete".into()))?;
            bucket
                .delete_multiple(chunk.to_vec())
                .await
                .map_err(|e| Internal::new("R2 delete", e))?;
        }
    }
    if !expired.is_empty() || !deleted.is_empty() {
        let json = |ids: &[String]| {
            serde_json::to_string(ids).map_err(|e| Internal::new("snapshot ids", e))
        };
        ctx.batch(vec![
            ctx.statement(sql::EXPIRE_SNAPSHOTS, &[Param::from(&json(&expired)?)])?,
            ctx.statement(sql::FORGET_OBJECTS, &[Param::from(&json(&deleted)?)])?,
        ])
        .await?;
    }
    Ok(Pass {
        expired: expired.len(),
        deleted: deleted.len(),
        more,
    })
}
