//! The portal's organization API (DESIGN.md flows 5-7). Every route takes the portal JWT and is
//! scoped to its tenant: another tenant's org id answers 404 exactly like an unknown one.
//!
//! - `GET /v1/orgs?client=&provider=&status=&cursor=&limit=` → `{"items": [Org], "next_cursor"}`
//! - `GET /v1/orgs/{id}` → `Org` (an active GitLab org whose instance is no longer configured
//!   shows `status: "misconfigured"` with a `status_detail`)
//! - `PATCH /v1/orgs/{id}` (`org_settings`) → `Org`; 422 names the invalid field
//! - `GET /v1/orgs/{id}/repos?status=&cursor=&limit=` → `{"items": [Repository], "next_cursor"}`
//! - `POST /v1/orgs/{id}/sync` → `{"found", "added", "removed", "complete"}`; 409 when the org is
//!   not active (or GitHub says the App was uninstalled: the org is then disconnected)
//! - `POST /v1/orgs/{id}/disconnect` → `{"status": "disconnected", "jobs_paused",
//!   "snapshots_kept", "provider_access"}`
//! - `GET /v1/orgs/{id}/activity?before=&limit=` → `{"items": [...], "next_before"}`

use crate::api::org_settings::{self, PROVIDERS, REPOSITORY_STATUSES, STATUSES};
use crate::api::problem::Problem;
use crate::api::routes::query_param;
use crate::auth::portal_auth::Principal;
use crate::edge::bindings::{Ctx, Param};
use crate::edge::providers::outbound::CallError;
use crate::edge::sync::{self, SyncError, SyncOutcome};
use crate::sql;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// An organization as the portal sees it.
#[derive(Serialize, Deserialize)]
pub struct Org {
    pub(crate) id: String,
    pub(crate) provider: String,
    pub(crate) login: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
    account_type: String,
    /// `None` for GitLab and Azure DevOps orgs.
    installation_id: Option<i64>,
    pub(crate) status: String,
    pub(crate) client: Option<String>,
    pub(crate) backup_schedule: String,
    backup_hour: i64,
    retention_days: i64,
    full_every: i64,
    last_synced_at: Option<String>,
    created_at: String,
    updated_at: String,
    repo_count: i64,
    /// Active repositories with an ok backup still kept.
    repos_backed_up: i64,
    /// Why the status is what it is, when that is not plain (e.g. `misconfigured`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status_detail: Option<String>,
    /// The OAuth connection's `base_url` (GitLab: its instance); not shown.
    #[serde(default, skip_serializing)]
    connection_url: Option<String>,
}

impl Org {
    /// An active GitLab org whose instance is no longer configured shows `misconfigured`: it is
    /// neither synced nor refreshed (no credential goes to an unconfigured instance) until an
    /// operator configures it again, and then it shows `active` again by itself.
    fn with_configuration(mut self, ctx: &Ctx) -> Org {
        let Some(url) = self.connection_url.as_deref() else {
            return self;
        };
        if self.provider != "gitlab" || self.status != "active" {
            return self;
        }
        let configured = ctx
            .gitlab_instances()
            .is_ok_and(|all| crate::oauth::gitlab::instance_of(url, all).is_some());
        if !configured {
            self.status = "misconfigured".into();
            self.status_detail = Some(format!(
                "the GitLab instance {url} is no longer configured on this gateway (GITLAB_URL / GITLAB_INSTANCES): nothing is sent to it, and the organization is not synced or backed up until an operator configures it again"
            ));
        }
        self
    }
}

#[derive(Serialize, Deserialize)]
struct Repository {
    id: String,
    provider_repo_id: crate::provider::RepoId,
    name: String,
    full_name: String,
    #[serde(deserialize_with = "sqlite_bool")]
    private: bool,
    default_branch: Option<String>,
    html_url: Option<String>,
    #[serde(deserialize_with = "sqlite_bool")]
    archived: bool,
    visibility: Option<String>,
    status: String,
    created_at: String,
    updated_at: String,
    /// When the last backup settled, and how (`ok`, `unchanged`, `empty`, `failed`).
    last_backup_at: Option<String>,
    last_backup_status: Option<String>,
}

/// SQLite (and so D1) stores booleans as 0 / 1.
fn sqlite_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    f64::deserialize(d).map(|n| n != 0.0)
}

/// The org when it belongs to the principal's tenant, else 404.
pub(crate) async fn owned(ctx: &Ctx, principal: &Principal, org_id: &str) -> Result<Org, Problem> {
    let rows: Vec<Org> = ctx
        .rows(
            sql::GET_ORG,
            &[Param::from(org_id), Param::from(&principal.tenant)],
        )
        .await?;
    rows.into_iter()
        .next()
        .map(|org| org.with_configuration(ctx))
        .ok_or(Problem::NotFound)
}

pub async fn list(
    ctx: &Ctx,
    principal: &Principal,
    query: &[(String, String)],
) -> Result<Value, Problem> {
    let client = query_param(query, "client");
    let provider = org_settings::filter(query, "provider", &PROVIDERS)?;
    let status = org_settings::filter(query, "status", &STATUSES)?;
    let (limit, cursor) = org_settings::page(query)?;
    let items: Vec<Org> = ctx
        .rows::<Org>(
            sql::LIST_ORGS,
            &[
                Param::from(&principal.tenant),
                Param::from(client),
                Param::from(provider),
                Param::from(status),
                Param::from(&cursor),
                Param::from(limit),
            ],
        )
        .await?
        .into_iter()
        .map(|org| org.with_configuration(ctx))
        .collect();
    Ok(cursor_page(items, limit, |o| o.id.clone()))
}

/// `{"items", "next_cursor"}`: a full page names its last id as the cursor of the next.
pub(crate) fn cursor_page<T: Serialize>(
    items: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> String,
) -> Value {
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(id))
        .flatten();
    json!({ "items": items, "next_cursor": next_cursor })
}

pub async fn get(ctx: &Ctx, principal: &Principal, org_id: &str) -> Result<Org, Problem> {
    owned(ctx, principal, org_id).await
}

pub async fn patch(
    ctx: &Ctx,
    principal: &Principal,
    org_id: &str,
    body: &[u8],
) -> Result<Org, Problem> {
    let change = org_settings::parse_change(body)?;
    owned(ctx, principal, org_id).await?;
    let now = crate::time::rfc3339(ctx.now);
    let client = change.client.as_ref().and_then(|c| c.as_deref());
    ctx.run(
        sql::UPDATE_ORG_SETTINGS,
        &[
            Param::from(org_id),
            Param::from(&principal.tenant),
            Param::from(change.client.is_some() as i64),
            Param::from(client),
            Param::from(change.backup_schedule.as_deref()),
            Param::from(change.backup_hour),
            Param::from(change.retention_days),
            Param::from(&now),
            Param::from(change.full_every),
        ],
    )
    .await?;
    owned(ctx, principal, org_id).await
}

pub async fn repos(
    ctx: &Ctx,
    principal: &Principal,
    org_id: &str,
    query: &[(String, String)],
) -> Result<Value, Problem> {
    owned(ctx, principal, org_id).await?;
    let status = org_settings::filter(query, "status", &REPOSITORY_STATUSES)?;
    let (limit, cursor) = org_settings::page(query)?;
    let items: Vec<Repository> = ctx
        .rows(
            sql::LIST_REPOS,
            &[
                Param::from(org_id),
                Param::from(status),
                Param::from(&cursor),
                Param::from(limit),
            ],
        )
        .await?;
    Ok(cursor_page(items, limit, |r| r.id.clone()))
}

pub async fn sync(ctx: &Ctx, principal: &Principal, org_id: &str) -> Result<Value, Problem> {
    owned(ctx, principal, org_id).await?;
    match sync::sync_org(ctx, org_id).await {
        Ok(SyncOutcome::Synced(p)) => {
            Ok(json!({ "found": p.found, "added": p.added, "removed": p.removed, "complete": p.complete }))
        }
        Ok(SyncOutcome::Skipped(why)) => Err(Problem::Conflict(format!("not synced: {why}"))),
        Ok(SyncOutcome::Uninstalled) => Err(Problem::Conflict(
            "the GitHub App was uninstalled, or the GitLab group / Azure DevOps organization is no longer readable; the organization is now disconnected. Connect it again to resume".into(),
        )),
        Err(SyncError::NotFound) => Err(Problem::NotFound),
        Err(SyncError::Upstream(_, CallError::Internal(e))) | Err(SyncError::Internal(e)) => Err(e.into()),
        Err(SyncError::Upstream(provider, e)) => Err(Problem::Upstream(format!("{}: {e}", provider.name()))),
        Err(SyncError::Token(failure)) => Err(failure.into()),
    }
}

pub async fn disconnect(ctx: &Ctx, principal: &Principal, org_id: &str) -> Result<Value, Problem> {
    owned(ctx, principal, org_id).await?;
    let done = sync::disconnect(
        ctx,
        org_id,
        "org.disconnected",
        &format!(
            "disconnected by {}: backup jobs paused, snapshots kept until retention expiry",
            principal.technician
        ),
    )
    .await?;
    Ok(json!({
        "status": "disconnected",
        "jobs_paused": done.jobs_paused,
        "snapshots_kept": done.snapshots_kept,
        "provider_access": "unchanged: uninstall the GitHub App, or revoke the GitLab / Azure DevOps authorization, on the provider if desired",
    }))
}

#[derive(Serialize, Deserialize)]
struct ActivityItem {
    id: i64,
    delivery_id: Option<String>,
    event: String,
    detail: String,
    created_at: String,
}

pub async fn activity(
    ctx: &Ctx,
    principal: &Principal,
    org_id: &str,
    query: &[(String, String)],
) -> Result<Value, Problem> {
    owned(ctx, principal, org_id).await?;
    let (limit, _) = org_settings::page(query)?;
    // Ids are below 2^53: D1 binds numbers as f64.
    let before = match query_param(query, "before") {
        None => (1 << 53) - 1,
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| Problem::BadRequest("`before` must be an integer".into()))?,
    };
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
