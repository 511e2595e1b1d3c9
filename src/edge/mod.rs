//! The Workers entry points and routing. Everything here is thin: read the request, build a
//! [`bindings::Ctx`], call the flow, turn its result into a response.
//!
//! | route | who | answers |
//! |---|---|---|
//! | `POST /v1/connect/github` | portal (JWT) | 200 `{install_url, expires_at}`, 401, 503 |
//! | `GET /github/setup` | browser from GitHub | 303 to the portal or our pages |
//! | `GET /connect/github/{done,pending,error}` | browser (no `PORTAL_URL`) | HTML |
//! | `POST /github/webhooks` | GitHub | 200 / 202 JSON; 400, 401, 413, 415, 503 problem+json |
//! | `GET /v1/orgs/{id}/activity` | portal (JWT) | 200 activity page, 404 |
//! | `GET /health` | monitoring | 200 `{"ok":true}` |
//!
//! API errors are problem+json; unknown routes 404, wrong methods 405. A panic would hang the
//! request and reset the isolate, so nothing below unwraps.

#[cfg(feature = "bench-signing")]
mod bench;
mod bindings;
mod connect;
mod enumerate;
mod github_client;
mod orgs;
mod platform;
mod queues;
mod webhooks;

use crate::pages;
use crate::portal_auth;
use crate::portal_auth::Principal;
use crate::problem::Problem;
use crate::setup::redirect_location;
use bindings::Ctx;
use worker::{
    event, Context, Env, Headers, MessageBatch, Method, Request, Response, Result, ScheduleContext,
    ScheduledEvent,
};

fn with_type(body: String, status: u16, content_type: &str) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::from_bytes(body.into_bytes())?
        .with_status(status)
        .with_headers(headers))
}

fn problem(p: &Problem) -> Result<Response> {
    with_type(p.to_json(), p.status(), "application/problem+json")
}

fn json<T: serde::Serialize>(value: &T) -> Result<Response> {
    with_type(serde_json::to_string(value)?, 200, "application/json")
}

fn html(body: String, status: u16) -> Result<Response> {
    with_type(body, status, "text/html; charset=utf-8")
}

fn see_other(location: &str) -> Result<Response> {
    let headers = Headers::new();
    headers.set("location", location)?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::empty()?.with_status(303).with_headers(headers))
}

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.url()
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn authenticate(ctx: &Ctx, req: &Request) -> std::result::Result<Principal, Problem> {
    let secret = ctx.secret("PORTAL_JWT_SECRET")?;
    let auth = req.headers().get("authorization").ok().flatten();
    portal_auth::authenticate(secret.expose().as_bytes(), auth.as_deref(), ctx.now)
}

fn answer<T: serde::Serialize>(result: std::result::Result<T, Problem>) -> Result<Response> {
    match result {
        Ok(value) => json(&value),
        Err(p) => problem(&p),
    }
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    let method = req.method();
    match (method.clone(), path.as_str()) {
        (Method::Get, "/health") => return json(&serde_json::json!({ "ok": true })),
        (Method::Get, "/connect/github/done") => {
            let q = query_pairs(&req);
            let get = |k: &str| {
                q.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            };
            return html(
                pages::connected(
                    get("org"),
                    get("repos"),
                    get("added"),
                    get("complete") == "true",
                ),
                200,
            );
        }
        (Method::Get, "/connect/github/pending") => return html(pages::pending(), 200),
        (Method::Get, "/connect/github/error") => {
            let q = query_pairs(&req);
            let reason = q
                .iter()
                .find(|(n, _)| n == "reason")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            return html(pages::refused(reason), 400);
        }
        _ => {}
    }
    let ctx = match Ctx::new(env) {
        Ok(ctx) => ctx,
        Err(p) if path.starts_with("/github/") => {
            worker::console_error!("configuration: {}", p.detail());
            return html(pages::refused("misconfigured"), 503);
        }
        Err(p) => return problem(&p),
    };
    match (method, path.as_str()) {
        (Method::Post, "/v1/connect/github") => {
            let principal = match authenticate(&ctx, &req) {
                Ok(p) => p,
                Err(p) => return problem(&p),
            };
            answer(connect::start(&ctx, &principal).await)
        }
        (Method::Post, "/github/webhooks") => match webhooks::receive(&ctx, &mut req).await {
            Ok((status, body)) => {
                with_type(serde_json::to_string(&body)?, status, "application/json")
            }
            Err(p) => problem(&p),
        },
        (method, p) if p.starts_with("/v1/orgs/") => {
            let principal = match authenticate(&ctx, &req) {
                Ok(p) => p,
                Err(p) => return problem(&p),
            };
            let segments: Vec<&str> = p.trim_start_matches("/v1/orgs/").split('/').collect();
            match (method, segments.as_slice()) {
                (Method::Get, [org_id, "activity"]) => {
                    answer(orgs::activity(&ctx, &principal, org_id, &query_pairs(&req)).await)
                }
                (_, [_, "activity"]) => problem(&Problem::MethodNotAllowed),
                _ => problem(&Problem::NotFound),
            }
        }
        (Method::Get, "/github/setup") => {
            let outcome = connect::setup(&ctx, &query_pairs(&req)).await;
            see_other(&redirect_location(ctx.config.portal_url.as_ref(), &outcome))
        }
        #[cfg(feature = "bench-signing")]
        (Method::Get, "/_bench/sign") => match bench::sign(&ctx, &query_pairs(&req)).await {
            Ok(answer) => json(&answer),
            Err(p) => problem(&p),
        },
        (_, "/v1/connect/github" | "/github/setup" | "/github/webhooks") => {
            problem(&Problem::MethodNotAllowed)
        }
        (_, p) if p.starts_with("/v1/") => problem(&Problem::NotFound),
        _ => html(pages::not_found(), 404),
    }
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    let ctx = match Ctx::new(env) {
        Ok(ctx) => ctx,
        Err(p) => {
            worker::console_error!("queue consumer: {}", p.detail());
            batch.retry_all();
            return Ok(());
        }
    };
    if let Err(e) = queues::consume(&ctx, batch).await {
        worker::console_error!("queue consumer: {}", e.0);
    }
    Ok(())
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    match Ctx::new(env) {
        Ok(ctx) => {
            if let Err(e) = queues::scheduled(&ctx, &event.cron()).await {
                worker::console_error!("cron {}: {}", event.cron(), e.0);
            }
        }
        Err(p) => worker::console_error!("cron: {}", p.detail()),
    }
}
