//! The portal's backup API (issue #9). Every route takes the portal JWT and is scoped to its
//! tenant: another tenant's org, repository or snapshot answers 404 like an unknown one.
//!
//! - `GET /v1/orgs/{id}/repos/{repo_id}/snapshots?cursor&limit` → `{"items": [Snapshot],
//!   "next_cursor"}`, newest first;
//! - `GET /v1/snapshots/{id}` → the snapshot's manifest (`Snapshot`);
//! - `GET /v1/snapshots/{id}/restore` → `{"bundles": [{snapshot_id, url, bytes, sha256}]}`: the
//!   restore chain in order, the full bundle first (`git fetch` each in turn, or clone the first
//!   and fetch the rest);
//! - `GET /v1/snapshots/{id}/bundle` → the bundle, streamed from R2 as it is stored (not copied
//!   through wasm), with `content-length` and the `ETag` `"<sha256>"`;
//! - `POST /v1/orgs/{id}/backup` `{"repos"?: [repo_id, …]}` → 202 `{"queued": n}`: a backup now
//!   of the chosen (default: every active) repositories that have none queued; 409 when the org
//!   is not active.

use crate::api::org_settings;
use crate::api::problem::Problem;
use crate::auth::portal_auth::Principal;
use crate::edge::binding_faults::{self, Op};
use crate::edge::bindings::{Ctx, Internal, Param, BACKUPS};
use crate::sql;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{Headers, Response};

/// A snapshot as the portal sees it.
#[derive(Serialize, Deserialize)]
pub struct Snapshot {
    id: String,
    org_id: String,
    repository_id: String,
    /// `running`, `ok`, `unchanged`, `empty` or `failed`.
    status: String,
    /// `full` or `incremental` (for `ok` snapshots).
    kind: Option<String>,
    base_snapshot_id: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    bytes: i64,
    sha256: Option<String>,
    /// Refname → object id, as the bundle holds them (`HEAD` included).
    #[serde(deserialize_with = "json_text", default)]
    refs: Value,
    pack_objects: Option<i64>,
    error: Option<String>,
    /// `available`, or `expired` once the org's retention has passed.
    retention: String,
    #[serde(skip_serializing)]
    object_key: Option<String>,
    /// The branch `HEAD` named (`refs/heads/main`): a restore points `HEAD` at it.
    head: Option<String>,
}

/// `refs` is stored as JSON text.
fn json_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null))
}

pub async fn list(
    ctx: &Ctx,
    principal: &Principal,
    org_id: &str,
    repository_id: &str,
    query: &[(String, String)],
) -> Result<Value, Problem> {
    let (limit, cursor) = org_settings::page(query)?;
    let items: Vec<Snapshot> = ctx
        .rows(
            sql::LIST_SNAPSHOTS,
            &[
                Param::from(org_id),
                Param::from(repository_id),
                Param::from(&principal.tenant),
                Param::from(&cursor),
                Param::from(limit),
            ],
        )
        .await?;
    if items.is_empty() && cursor.is_empty() {
        // An empty first page must still be of a repository the tenant has.
        let known: Vec<Value> = ctx
            .rows(
                sql::GET_ORG,
                &[Param::from(org_id), Param::from(&principal.tenant)],
            )
            .await?;
        let repository: Vec<Value> = ctx
            .rows(
                sql::COUNT_ORG_REPOSITORIES,
                &[
                    Param::from(org_id),
                    Param::from(&json!([repository_id]).to_string()),
                ],
            )
            .await?;
        let has_repository = repository
            .first()
            .and_then(|r| r["n"].as_f64())
            .is_some_and(|n| n > 0.0);
        if known.is_empty() || !has_repository {
            return Err(Problem::NotFound);
        }
    }
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|s| s.id.clone()))
        .flatten();
    Ok(json!({ "items": items, "next_cursor": next_cursor }))
}

async fn owned(ctx: &Ctx, principal: &Principal, id: &str) -> Result<Snapshot, Problem> {
    let rows: Vec<Snapshot> = ctx
        .rows(
            sql::GET_SNAPSHOT,
            &[Param::from(id), Param::from(&principal.tenant)],
        )
        .await?;
    rows.into_iter().next().ok_or(Problem::NotFound)
}

pub async fn get(ctx: &Ctx, principal: &Principal, id: &str) -> Result<Snapshot, Problem> {
    owned(ctx, principal, id).await
}

#[derive(Serialize)]
pub struct Restore {
    /// The branch `HEAD` named when the snapshot was taken (a bundle cannot say it).
    head: Option<String>,
    bundles: Vec<RestoreBundle>,
}

#[derive(Serialize)]
struct RestoreBundle {
    snapshot_id: String,
    url: String,
    bytes: i64,
    sha256: Option<String>,
}

pub async fn restore(ctx: &Ctx, principal: &Principal, id: &str) -> Result<Restore, Problem> {
    let chain: Vec<Snapshot> = ctx
        .rows(
            sql::SNAPSHOT_CHAIN,
            &[Param::from(id), Param::from(&principal.tenant)],
        )
        .await?;
    let Some(last) = chain.last() else {
        return Err(Problem::NotFound);
    };
    let bundles: Vec<&Snapshot> = chain.iter().filter(|s| s.status == "ok").collect();
    let starts_full = bundles
        .first()
        .is_some_and(|s| s.kind.as_deref() == Some("full"));
    // The snapshot itself must still be offered; the bundles of its chain are kept (even past
    // retention) as long as it is (`retention`).
    let restorable =
        matches!(last.status.as_str(), "ok" | "unchanged") && last.retention == "available";
    if !restorable || !starts_full || bundles.iter().any(|s| s.object_key.is_none()) {
        return Err(Problem::Conflict(format!(
            "snapshot {id} cannot be restored: it is {} and its chain of {} bundles {}",
            last.status,
            bundles.len(),
            if starts_full {
                "is not all kept"
            } else {
                "has no full bundle"
            }
        )));
    }
    Ok(Restore {
        head: last.head.clone(),
        bundles: bundles
            .into_iter()
            .map(|s| RestoreBundle {
                snapshot_id: s.id.clone(),
                url: format!("/v1/snapshots/{}/bundle", s.id),
                bytes: s.bytes,
                sha256: s.sha256.clone(),
            })
            .collect(),
    })
}

/// The bundle, streamed from R2 without passing through wasm.
pub async fn bundle(ctx: &Ctx, principal: &Principal, id: &str) -> Result<Response, Problem> {
    let snapshot = owned(ctx, principal, id).await?;
    let key = match (&snapshot.object_key, snapshot.status.as_str()) {
        (Some(key), "ok") => key.clone(),
        _ => {
            return Err(Problem::Conflict(format!(
                "snapshot {id} has no bundle (it is {})",
                snapshot.status
            )))
        }
    };
    let bucket = ctx
        .env
        .bucket(BACKUPS)
        .map_err(|e| Internal::new("R2 binding", e))?;
    ctx.budget
        .spend()
        .map_err(|_| Internal("subrequest budget exhausted before an R2 get".into()))?;
    binding_faults::check(Op::R2Get).map_err(|e| Internal::new("R2 get", e))?;
    let object = bucket
        .get(&key)
        .execute()
        .await
        .map_err(|e| Internal::new("R2 get", e))?
        .ok_or_else(|| Internal(format!("snapshot {id}: its object {key} is missing")))?;
    let size = object.size();
    let body = object
        .body()
        .ok_or_else(|| Internal("R2 object without a body".into()))?
        .response_body()
        .map_err(|e| Internal::new("R2 body", e))?;
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| Internal::new("header", e));
    set("content-type", "application/x-git-bundle")?;
    set("content-length", &size.to_string())?;
    set(
        "content-disposition",
        &format!("attachment; filename=\"{id}.bundle\""),
    )?;
    set("cache-control", "private, no-store")?;
    if let Some(sha) = &snapshot.sha256 {
        set("etag", &format!("\"{sha}\""))?;
    }
    Ok(Response::from_body(body)
        .map_err(|e| Internal::new("response", e))?
        .with_headers(headers))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    repos: Option<Vec<String>>,
}

/// `POST /v1/orgs/{id}/backup`: jobs are created, then sent by the dispatcher.
pub async fn backup_now(
    ctx: &Ctx,
    principal: &Principal,
    org_id: &str,
    body: &[u8],
) -> Result<(u16, Value), Problem> {
    let request: BackupRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BackupRequest::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Problem::BadRequest(format!("invalid body: {e}")))?
    };
    #[derive(Deserialize)]
    struct Status {
        status: String,
    }
    let orgs: Vec<Status> = ctx
        .rows(
            sql::GET_ORG,
            &[Param::from(org_id), Param::from(&principal.tenant)],
        )
        .await?;
    let org = orgs.into_iter().next().ok_or(Problem::NotFound)?;
    if org.status != "active" {
        return Err(Problem::Conflict(format!(
            "the organization is {}; connect it again to back it up",
            org.status
        )));
    }
    let repos = match &request.repos {
        None => None,
        Some(ids) if ids.is_empty() || ids.len() > 1000 => {
            return Err(Problem::Unprocessable {
                field: "repos".into(),
                detail: "name 1 to 1000 repository ids, or leave it out for all".into(),
            })
        }
        Some(ids) => {
            let json = serde_json::to_string(ids).map_err(|e| Internal::new("ids JSON", e))?;
            let counted: Vec<Value> = ctx
                .rows(
                    sql::COUNT_ORG_REPOSITORIES,
                    &[Param::from(org_id), Param::from(&json)],
                )
                .await?;
            let mut distinct = ids.clone();
            distinct.sort();
            distinct.dedup();
            let n = counted.first().and_then(|r| r["n"].as_f64()).unwrap_or(0.0);
            if n as usize != distinct.len() {
                return Err(Problem::Unprocessable {
                    field: "repos".into(),
                    detail: "every id must be one of the organization's repositories".into(),
                });
            }
            Some(json)
        }
    };
    let now = crate::time::rfc3339(ctx.now);
    let created: Vec<Value> = ctx
        .rows(
            sql::INSERT_MANUAL_JOBS,
            &[
                Param::from(org_id),
                Param::from(repos.as_deref()),
                Param::from(&now),
                Param::from(&ctx.invocation),
            ],
        )
        .await?;
    // The jobs are committed: they are sent now, with any of the org's jobs whose send failed
    // before. A failed send leaves them queued for the next request or the dispatcher (cron),
    // so the answer is still 202.
    if let Err(e) = crate::edge::sync::dispatch(ctx, Some(org_id)).await {
        worker::console_warn!(
            "backup jobs of org {org_id} left to the dispatcher: {}",
            e.0
        );
    }
    Ok((202, json!({ "queued": created.len() })))
}
