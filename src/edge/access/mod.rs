//! Access audit and compliance posture at the edge (issue #10): snapshots read at each sync
//! (`snapshot`), webhooks applied as they come (`webhook`), and the portal's routes, tenant-scoped
//! like every `/v1` route (another tenant's org answers 404):
//!
//! - `GET /v1/orgs/{id}/access` → the org's current access state (`access::model`), with
//!   `read_at` (the last complete snapshot, `null` before the first), `reading` (a snapshot is
//!   under way) and `unknown` (what could not be read, and why). Times are RFC 3339.
//! - `GET /v1/orgs/{id}/access/events?since=&until=&kind=&cursor=&limit=` → `{items, next_cursor}`,
//!   newest first; `kind` is a kind (`member.added`) or its family (`member`).
//! - `GET /v1/orgs/{id}/posture` → `{org_id, read_at, findings, counts, unknown}`.
//! - `GET /v1/posture?client=` → every org of the tenant (or one client's) with its counts by
//!   severity: JSON `{orgs, totals}`, or CSV with `Accept: text/csv`.

pub mod snapshot;
pub mod webhook;

use crate::access::model::{AccessState, Unknown};
use crate::access::posture::{self, BackupFacts, Finding, RepositoryBackup};
use crate::access::report::{self, PortfolioRow};
use crate::api::org_settings;
use crate::api::problem::Problem;
use crate::api::routes::query_param;
use crate::auth::portal_auth::Principal;
use crate::edge::bindings::{Ctx, Param};
use crate::edge::orgs;
use crate::sql;
use serde::Deserialize;
use serde_json::{json, Value};

/// `backup_stale` fires after twice this without an ok backup; `None` (schedule `off`): not
/// evaluated, and said so in `unknown`.
fn schedule_secs(schedule: &str) -> Option<i64> {
    match schedule {
        "daily" => Some(24 * 3600),
        "weekly" => Some(7 * 24 * 3600),
        _ => None,
    }
}

/// Unix seconds under any `since` key become RFC 3339, as every time in the API.
fn with_times(mut value: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    match (key.as_str(), child.as_i64()) {
                        ("since", Some(secs)) => *child = Value::from(crate::time::rfc3339(secs)),
                        _ => walk(child),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

fn never_read() -> Unknown {
    Unknown {
        part: "all".into(),
        reason: "not read yet: the first access snapshot follows the organization's next sync"
            .into(),
    }
}

pub async fn access(ctx: &Ctx, principal: &Principal, org_id: &str) -> Result<Value, Problem> {
    orgs::owned(ctx, principal, org_id).await?;
    let stored = snapshot::stored(ctx, org_id).await?;
    let reading = !ctx
        .rows::<Value>(sql::ACCESS_RUN_UNDER_WAY, &[Param::from(org_id)])
        .await?
        .is_empty();
    let (state, read_at) = match stored {
        Some((state, row)) => (state, Some(row.read_at)),
        None => (
            AccessState {
                unknown: vec![never_read()],
                ..AccessState::default()
            },
            None,
        ),
    };
    let mut body = serde_json::to_value(&state)
        .map_err(|e| Problem::from(crate::edge::bindings::Internal::new("access state JSON", e)))?;
    if let Value::Object(map) = &mut body {
        map.insert("org_id".into(), json!(org_id));
        map.insert("read_at".into(), json!(read_at));
        map.insert("reading".into(), json!(reading));
    }
    Ok(with_times(body))
}

pub async fn events(
    ctx: &Ctx,
    principal: &Principal,
    org_id: &str,
    query: &[(String, String)],
) -> Result<Value, Problem> {
    #[derive(Deserialize, serde::Serialize)]
    struct Item {
        id: i64,
        kind: String,
        subject: String,
        detail: String,
        source: String,
        delivery_id: Option<String>,
        occurred_at: String,
    }
    orgs::owned(ctx, principal, org_id).await?;
    let (limit, _) = org_settings::page(query)?;
    let time = |name: &str| -> Result<String, Problem> {
        match query_param(query, name) {
            None => Ok(String::new()),
            Some(v) => crate::time::parse_rfc3339(v)
                .map(crate::time::rfc3339)
                .ok_or_else(|| Problem::BadRequest(format!("`{name}` must be an RFC 3339 time"))),
        }
    };
    let (since, until) = (time("since")?, time("until")?);
    let kind = query_param(query, "kind").unwrap_or("");
    if !kind
        .chars()
        .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_' || c.is_ascii_digit())
    {
        return Err(Problem::BadRequest(
            "`kind` is an event kind such as `member.added`, or its family such as `member`".into(),
        ));
    }
    // Ids are below 2^53: D1 binds numbers as f64.
    let before = match query_param(query, "cursor") {
        None => (1 << 53) - 1,
        Some(v) => v.parse::<i64>().map_err(|_| {
            Problem::BadRequest("`cursor` must be the `next_cursor` of a page".into())
        })?,
    };
    let items: Vec<Item> = ctx
        .rows(
            sql::LIST_ACCESS_EVENTS,
            &[
                Param::from(org_id),
                Param::from(&since),
                Param::from(&until),
                Param::from(kind),
                Param::from(before),
                Param::from(limit),
            ],
        )
        .await?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| i.id.to_string()))
        .flatten();
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| {
            json!({
                "id": i.id,
                "kind": i.kind,
                "subject": i.subject,
                "detail": serde_json::from_str::<Value>(&i.detail).unwrap_or(Value::Null),
                "source": i.source,
                "delivery_id": i.delivery_id,
                "occurred_at": i.occurred_at,
            })
        })
        .collect();
    Ok(json!({ "items": items, "next_cursor": next_cursor }))
}

#[derive(Deserialize)]
struct BackupRow {
    #[serde(default)]
    org_id: Option<String>,
    full_name: String,
    created_at: String,
    last_backup_at: Option<String>,
    last_backup_status: Option<String>,
    last_ok_at: Option<String>,
}

impl BackupRow {
    fn fact(&self) -> RepositoryBackup {
        let time = |t: &Option<String>| t.as_deref().and_then(crate::time::parse_rfc3339);
        RepositoryBackup {
            full_name: self.full_name.clone(),
            active_since: crate::time::parse_rfc3339(&self.created_at).unwrap_or(0),
            last_ok_at: time(&self.last_ok_at),
            last_status: self.last_backup_status.clone(),
            last_at: time(&self.last_backup_at),
        }
    }
}

/// The findings of one org and what could not be evaluated.
fn evaluate(
    org: &str,
    state: Option<&AccessState>,
    schedule: &str,
    repositories: Vec<RepositoryBackup>,
    now: i64,
) -> (Vec<Finding>, Vec<Unknown>) {
    let secs = schedule_secs(schedule);
    let facts = BackupFacts {
        schedule_secs: secs.unwrap_or(i64::MAX / 4),
        repositories,
    };
    let mut findings = posture::findings(org, state, &facts, now);
    let mut unknown = state
        .map(|s| s.unknown.clone())
        .unwrap_or_else(|| vec![never_read()]);
    if secs.is_none() {
        findings.retain(|f| f.rule != "backup_stale");
        unknown.push(Unknown {
            part: "backup_stale".into(),
            reason: "the backup schedule is off: staleness is not evaluated".into(),
        });
    }
    (findings, unknown)
}

pub async fn org_posture(ctx: &Ctx, principal: &Principal, org_id: &str) -> Result<Value, Problem> {
    let org = orgs::owned(ctx, principal, org_id).await?;
    let stored = snapshot::stored(ctx, org_id).await?;
    let rows: Vec<BackupRow> = ctx
        .rows(sql::ACCESS_REPOSITORIES, &[Param::from(org_id)])
        .await?;
    let (findings, unknown) = evaluate(
        &org.login,
        stored.as_ref().map(|(s, _)| s),
        &org.backup_schedule,
        rows.iter().map(BackupRow::fact).collect(),
        ctx.now,
    );
    Ok(with_times(json!({
        "org_id": org_id,
        "read_at": stored.map(|(_, row)| row.read_at),
        "counts": posture::counts(&findings),
        "findings": findings,
        "unknown": unknown,
    })))
}

/// The portfolio: JSON, or CSV when `csv`.
pub async fn portfolio(
    ctx: &Ctx,
    principal: &Principal,
    query: &[(String, String)],
) -> Result<(Vec<PortfolioRow>, Value), Problem> {
    #[derive(Deserialize)]
    struct OrgRow {
        id: String,
        provider: String,
        login: String,
        client: Option<String>,
        backup_schedule: String,
        state: Option<String>,
    }
    let client = query_param(query, "client");
    let params = [Param::from(&principal.tenant), Param::from(client)];
    let orgs: Vec<OrgRow> = ctx.rows(sql::PORTFOLIO_ORGS, &params).await?;
    let repositories: Vec<BackupRow> = ctx.rows(sql::PORTFOLIO_REPOSITORIES, &params).await?;
    let mut rows = Vec::with_capacity(orgs.len());
    for org in orgs {
        let state: Option<AccessState> = match org.state.as_deref() {
            Some(json) => Some(serde_json::from_str(json).map_err(|e| {
                Problem::from(crate::edge::bindings::Internal::new(
                    "stored access state",
                    e,
                ))
            })?),
            None => None,
        };
        let facts = repositories
            .iter()
            .filter(|r| r.org_id.as_deref() == Some(org.id.as_str()))
            .map(BackupRow::fact)
            .collect();
        let (findings, unknown) = evaluate(
            &org.login,
            state.as_ref(),
            &org.backup_schedule,
            facts,
            ctx.now,
        );
        rows.push(PortfolioRow {
            org_id: org.id,
            provider: org.provider,
            org: org.login,
            client: org.client,
            counts: posture::counts(&findings),
            unknown: unknown.len(),
            findings,
        });
    }
    let all: Vec<Finding> = rows
        .iter()
        .flat_map(|r| r.findings.iter().cloned())
        .collect();
    let body = with_times(json!({
        "client": client,
        "orgs": rows,
        "totals": posture::counts(&all),
    }));
    Ok((rows, body))
}

/// The portfolio as CSV (`report::csv`).
pub fn portfolio_csv(rows: &[PortfolioRow]) -> String {
    report::csv(rows)
}
