//! GitHub webhooks that announce access changes, applied as they come (`webhooks` hands them
//! over after the signature and the org are checked).
//!
//! - `organization` (members added, removed, invited), `member`, `membership`, `team`: applied to
//!   the stored state by `access::webhook::apply`; the state (compare-and-set), the delivery
//!   record and the events are one D1 batch, so a redelivery (its delivery id is taken) applies
//!   nothing, and the next sync, reading the same truth, finds nothing new to report. Before the
//!   org's first snapshot there is no state to change: the events are recorded on their own.
//! - `branch_protection_rule`, `repository_ruleset`: the payload does not say what the branch's
//!   protection now is (rulesets and classic rules combine), so the repository's protection is
//!   read again through the sync queue (`access_repository.v1`), its events naming the delivery;
//!   an org-level ruleset starts a whole snapshot.

use crate::access;
use crate::access::model::AccessEvent;
use crate::api::problem::Problem;
use crate::edge::bindings::{Ctx, Param, SYNC_QUEUE};
use crate::edge::webhooks::apply_once;
use crate::messages::SyncMessage;
use crate::sql;
use serde_json::{json, Value};

pub struct Delivery<'a> {
    pub id: &'a str,
    pub event: &'a str,
    pub action: &'a str,
    pub installation_id: u64,
    pub org_id: &'a str,
    pub org_login: &'a str,
    pub payload: &'a Value,
}

pub async fn receive(ctx: &Ctx, d: &Delivery<'_>) -> Result<(u16, Value), Problem> {
    let name = if d.action.is_empty() {
        d.event.to_string()
    } else {
        format!("{}.{}", d.event, d.action)
    };
    let now = crate::time::rfc3339(ctx.now);
    let action = Some(d.action).filter(|a| !a.is_empty());
    let installation = d.installation_id as i64;
    // The delivery record: on its own (its primary key stops a redelivery), or only after the
    // state write it goes with (`RECORD_ACCESS_DELIVERY`, which also takes the org).
    let record = |after_state_write: bool| {
        let mut params = vec![
            Param::from(d.id),
            Param::from(d.event),
            Param::from(action),
            Param::from(installation),
            Param::from(&now),
        ];
        if after_state_write {
            params.insert(0, Param::from(d.org_id));
            ctx.statement(sql::RECORD_ACCESS_DELIVERY, &params)
        } else {
            ctx.statement(sql::RECORD_DELIVERY, &params)
        }
    };
    if matches!(d.event, "branch_protection_rule" | "repository_ruleset") {
        // The delivery is recorded first (a redelivery stops here), then the re-read is queued.
        let statements = vec![record(false)?];
        if apply_once(ctx, d.id, statements).await?.is_none() {
            return Ok((200, json!({ "duplicate": true, "delivery": d.id })));
        }
        let repository = d.payload["repository"]["full_name"]
            .as_str()
            .map(str::to_string);
        let message = SyncMessage::AccessRepositoryV1 {
            org_id: d.org_id.into(),
            repository: repository.clone(),
            delivery_id: d.id.into(),
        };
        ctx.send_batch(SYNC_QUEUE, &[message], 0).await?;
        return Ok((
            200,
            json!({ "ok": true, "event": name, "access": { "rereading": repository.unwrap_or_else(|| "every repository".into()) } }),
        ));
    }
    for _ in 0..3 {
        let stored = super::snapshot::stored(ctx, d.org_id).await?;
        let (events, statements) = match stored {
            Some((mut state, row)) => {
                let events =
                    access::webhook::apply(d.org_login, d.event, d.payload, &mut state, ctx.now);
                let state_json = serde_json::to_string(&state)
                    .map_err(|e| crate::edge::bindings::Internal::new("access state", e))?;
                let events_json = events_json(&events)?;
                (
                    events.len(),
                    vec![
                        ctx.statement(
                            sql::UPDATE_ACCESS_STATE,
                            &[
                                Param::from(d.org_id),
                                Param::from(&state_json),
                                Param::from(row.version),
                                Param::from(&now),
                                Param::from(0),
                            ],
                        )?,
                        record(true)?,
                        events_statement(ctx, d, &events_json, &now)?,
                    ],
                )
            }
            None => {
                let mut state = Default::default();
                let events =
                    access::webhook::apply(d.org_login, d.event, d.payload, &mut state, ctx.now);
                let events_json = events_json(&events)?;
                (
                    events.len(),
                    vec![
                        record(false)?,
                        events_statement(ctx, d, &events_json, &now)?,
                    ],
                )
            }
        };
        let Some(results) = apply_once(ctx, d.id, statements).await? else {
            return Ok((200, json!({ "duplicate": true, "delivery": d.id })));
        };
        // With a state: recorded only when the compare-and-set won; else read it again.
        let recorded = results.len() == 2 || crate::edge::bindings::changes(&results, 1) == 1;
        if recorded {
            return Ok((
                200,
                json!({ "ok": true, "event": name, "access_events": events }),
            ));
        }
    }
    Err(Problem::Conflict(
        "the organization's access state kept changing; deliver again".into(),
    ))
}

fn events_json(events: &[AccessEvent]) -> Result<String, Problem> {
    serde_json::to_string(events)
        .map_err(|e| crate::edge::bindings::Internal::new("access events", e).into())
}

fn events_statement(
    ctx: &Ctx,
    d: &Delivery<'_>,
    events_json: &str,
    now: &str,
) -> Result<worker::D1PreparedStatement, crate::edge::bindings::Internal> {
    ctx.statement(
        sql::INSERT_ACCESS_EVENTS,
        &[
            Param::from(d.org_id),
            Param::from(events_json),
            Param::from("webhook"),
            Param::from(d.id),
            Param::from(now),
        ],
    )
}
