//! The portal's organization API (portal JWT, scoped to the caller's tenant: another tenant's
//! org id answers 404 exactly like an unknown one).
//!
//! - `GET /v1/orgs/{id}/activity?before=&limit=` → `{"items":[{id, delivery_id, event, detail,
//!   created_at}], "next_before": id | null}`, newest first, `limit` 1-100 (default 50).

use super::bindings::{Ctx, Param};
use crate::portal_auth::Principal;
use crate::problem::Problem;
use crate::sql;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// 404 unless `org_id` belongs to the principal's tenant.
async fn ensure_owned(ctx: &Ctx, principal: &Principal, org_id: &str) -> Result<(), Problem> {
    let rows: Vec<Value> = ctx
        .rows(
            sql::ORG_OF_TENANT,
            &[Param::from(org_id), Param::from(&principal.tenant)],
        )
        .await?;
    if rows.is_empty() {
        return Err(Problem::NotFound);
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct ActivityItem {
    id: i64,
    delivery_id: Option<String>,
    event: String,
    detail: String,
    created_at: String,
}

fn int_param(query: &[(String, String)], name: &str) -> Result<Option<i64>, Problem> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| {
            v.parse::<i64>()
                .map_err(|_| Problem::BadRequest(format!("`{name}` must be an integer")))
        })
        .transpose()
}

pub async fn activity(
    ctx: &Ctx,
    principal: &Principal,
    org_id: &str,
    query: &[(String, String)],
) -> Result<Value, Problem> {
    ensure_owned(ctx, principal, org_id).await?;
    let limit = int_param(query, "limit")?.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Problem::BadRequest(
            "`limit` must be between 1 and 100".into(),
        ));
    }
    // Ids are below 2^53: D1 binds numbers as f64.
    let before = int_param(query, "before")?.unwrap_or((1 << 53) - 1);
    let items: Vec<ActivityItem> = ctx
        .rows(
            sql::LIST_ACTIVITY,
            &[Param::from(org_id), Param::from(before), Param::from(limit)],
        )
        .await?;
    let next_before = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| i.id))
        .flatten();
    Ok(json!({ "items": items, "next_before": next_before }))
}
