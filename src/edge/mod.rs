//! The Workers entry points and routing. Everything here is thin: read the request, build a
//! [`bindings::Ctx`], call the flow, turn its result into a response.
//!
//! | route | who | answers |
//! |---|---|---|
//! | `POST /v1/connect/github` | portal (JWT) | 200 `{install_url, expires_at}`, 401, 503 |
//! | `GET /github/setup` | browser from GitHub | 303 to the portal or our pages |
//! | `POST /v1/connect/{gitlab,azure-devops}` | portal (JWT) | 200 `{authorize_url, expires_at}`, 401, 415, 422, 503 |
//! | `GET /{gitlab,azure-devops}/callback` | browser from GitLab / Microsoft | 303 to the portal or our pages |
//! | `POST /v1/connect/confirm` `{"pending"}` | portal (JWT of the technician who started it) | 200 `{provider, org_ids, org, orgs, repos, added, complete, done_url}`, 404, 410 |
//! | `GET /connect/{provider}/{done,pending,error,confirm}` | browser (no `PORTAL_URL`) | HTML |
//! | `GET /connect/confirm.js` | the confirm page | its script |
//! | `GET /console`, `/console/app.js`, `/console/app.css` | a person with a portal token | the console (`api::console`) |
//! | `OPTIONS /v1/*` | a browser on the portal's origin | 204 preflight, 403 from other origins (`api::cors`) |
//! | `POST /github/webhooks` | GitHub | 200 / 202 JSON; 400, 401, 413, 415, 503 problem+json |
//! | `GET /v1/orgs/{id}/activity` | portal (JWT) | 200 activity page, 404 |
//! | `GET /v1/orgs/{id}/repos/{repo_id}/snapshots`, `GET /v1/snapshots/{id}[/restore,/bundle]`, `POST /v1/orgs/{id}/backup` | portal (JWT) | backups: see `backup::snapshots` |
//! | `GET /v1/orgs/{id}/access[/events]`, `GET /v1/orgs/{id}/posture`, `GET /v1/posture` | portal (JWT) | access audit and posture: see `access` |
//! | `GET /health` | monitoring | 200 `{"ok":true}` |
//!
//! API errors are problem+json; unknown routes 404, wrong methods 405. Every `/v1/*` answer
//! carries the CORS headers `api::cors` computes for its `Origin` ([`fetch`]). A panic would
//! hang the request and reset the isolate, so nothing below unwraps.
//!
//! Where each flow lives: `connect/` (GitHub App connect and install callback, GitLab / Azure
//! DevOps OAuth, the technician's confirmation), `providers/` (every outbound call, the App's
//! calls, GitLab / Azure DevOps APIs and their tokens), `backup/` (the executor, retention, the
//! snapshot routes), `access/` (access snapshots, access webhooks, the audit and posture
//! routes); `enumerate` and `sync` (listing repositories, syncs, dispatch), `orgs`
//! (the organization API), `webhooks`, `queues` (consumers and crons), and the platform
//! bindings in `bindings` and `platform`.

mod access;
mod backup;
#[cfg(feature = "bench")]
mod bench;
mod binding_faults;
mod bindings;
mod connect;
mod enumerate;
mod orgs;
mod platform;
mod providers;
mod queue_trace;
mod queues;
mod sync;
mod webhooks;

use crate::api::cors::{self, Preflight};
use crate::api::problem::Problem;
use crate::api::routes::{self, Resolved, RouteId};
use crate::api::{console, pages};
use crate::auth::portal_auth;
use crate::auth::portal_auth::Principal;
use crate::github::setup::redirect_location;
use crate::provider::Provider;
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

/// Benchmark builds tell how many subrequests the invocation made (`x-onecode-subrequests`);
/// others answer as they are.
fn counted(ctx: &Ctx, response: Result<Response>) -> Result<Response> {
    #[cfg(feature = "bench")]
    if let Ok(r) = &response {
        r.headers()
            .set("x-onecode-subrequests", &ctx.budget.used().to_string())?;
    }
    #[cfg(not(feature = "bench"))]
    let _ = ctx;
    response
}

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
    routes::query_param(query, name).unwrap_or("")
}

/// A console file: its content type and a Content-Security-Policy (scripts and styles of its own
/// origin only, so an injected tag cannot run).
fn console_file(body: &str, content_type: &str) -> Result<Response> {
    let response = with_type(body.to_string(), 200, content_type)?;
    let headers = response.headers();
    headers.set("content-security-policy", console::CSP)?;
    // The token may be in the URL fragment, which is never sent; the rest goes nowhere either.
    headers.set("referrer-policy", "no-referrer")?;
    headers.set("x-content-type-options", "nosniff")?;
    Ok(response)
}

/// Every request: `/v1/*` ones get their CORS answer (preflights here, headers on whatever
/// [`serve`] answers); everything else goes to [`serve`] as it came.
#[event(fetch)]
async fn fetch(req: Request, env: Env, context: Context) -> Result<Response> {
    if !cors::applies(&req.path()) {
        return serve(req, env, context).await;
    }
    let origin = req.headers().get("origin").ok().flatten();
    let origins = match cors::Origins::from_vars(
        bindings::lookup(&env, "PORTAL_ORIGINS").as_deref(),
        bindings::lookup(&env, "PORTAL_URL").as_deref(),
    ) {
        Ok(origins) => origins,
        Err(p) => return problem(&p),
    };
    let response = if req.method() == Method::Options {
        match cors::preflight(&origins, origin.as_deref()) {
            Preflight::Allowed(headers) => {
                let response = Response::empty()?.with_status(204);
                for (name, value) in headers {
                    response.headers().set(name, &value)?;
                }
                return Ok(response);
            }
            Preflight::Refused => return problem(&Problem::Forbidden(
                "cross-origin calls are allowed from the portal's origins (PORTAL_ORIGINS) only"
                    .into(),
            )),
        }
    } else {
        serve(req, env, context).await?
    };
    for (name, value) in cors::answer_headers(&origins, origin.as_deref()) {
        response.headers().set(name, &value)?;
    }
    Ok(response)
}

async fn serve(mut req: Request, env: Env, context: Context) -> Result<Response> {
    let path = req.path();
    let method = req.method().to_string();
    let query = query_pairs(&req);
    let (route, id, sub) = match routes::resolve(&method, &path) {
        Resolved::Found(route, id, sub) => (
            route,
            id.unwrap_or_default().to_string(),
            sub.unwrap_or_default().to_string(),
        ),
        Resolved::MethodNotAllowed => return problem(&Problem::MethodNotAllowed),
        #[cfg(feature = "bench")]
        Resolved::NotFound if path == "/_bench/memory" => {
            return answer(Ok::<_, Problem>(bench::memory()))
        }
        #[cfg(feature = "bench")]
        Resolved::NotFound if path == "/_bench/sign" => match Ctx::new(env) {
            Ok(ctx) => return answer(bench::sign(&ctx, &query).await),
            Err(p) => return problem(&p),
        },
        #[cfg(feature = "e2e")]
        Resolved::NotFound if path == "/_e2e/faults" => {
            return answer(match method.as_str() {
                "POST" => binding_faults::arm(&req.bytes().await.unwrap_or_default())
                    .map(|armed| serde_json::json!({ "armed": armed }))
                    .map_err(Problem::BadRequest),
                "GET" => Ok(serde_json::json!({ "armed": binding_faults::armed() })),
                "DELETE" => {
                    binding_faults::clear();
                    Ok(serde_json::json!({ "armed": 0 }))
                }
                _ => Err(Problem::MethodNotAllowed),
            })
        }
        Resolved::NotFound if path.starts_with("/v1/") => return problem(&Problem::NotFound),
        Resolved::NotFound => return html(pages::not_found(), 404),
    };
    // Routes that need no configuration. Result pages exist per provider.
    let page_provider = Provider::from_slug(&id);
    if matches!(
        route,
        RouteId::ConnectDonePage
            | RouteId::ConnectPendingPage
            | RouteId::ConnectErrorPage
            | RouteId::ConnectConfirmPage
    ) && page_provider.is_none()
    {
        return html(pages::not_found(), 404);
    }
    match route {
        RouteId::Health => return json(&serde_json::json!({ "ok": true })),
        RouteId::OpenApi => {
            return with_type(routes::OPENAPI_JSON.to_string(), 200, "application/json")
        }
        RouteId::ConnectDonePage => {
            let get = |k| query_value(&query, k);
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
        RouteId::ConnectPendingPage => return html(pages::pending(), 200),
        RouteId::ConnectConfirmPage => {
            let name = page_provider.map_or("The provider", |p| p.name());
            let response = html(pages::confirm(name, query_value(&query, "pending")), 200)?;
            let headers = response.headers();
            headers.set("content-security-policy", pages::CONFIRM_CSP)?;
            // The pending id is in the URL: it goes nowhere else.
            headers.set("referrer-policy", "no-referrer")?;
            return Ok(response);
        }
        RouteId::ConfirmScript => {
            return with_type(
                pages::CONFIRM_SCRIPT.to_string(),
                200,
                "text/javascript; charset=utf-8",
            )
        }
        RouteId::ConnectErrorPage => {
            return html(pages::refused(query_value(&query, "reason")), 400)
        }
        RouteId::Console => return console_file(console::PAGE, "text/html; charset=utf-8"),
        RouteId::ConsoleScript => {
            return console_file(console::SCRIPT, "text/javascript; charset=utf-8")
        }
        RouteId::ConsoleStyle => return console_file(console::STYLE, "text/css; charset=utf-8"),
        _ => {}
    }
    let callback = match route {
        RouteId::GithubSetup => Some(Provider::GitHub),
        RouteId::GitlabCallback => Some(Provider::GitLab),
        RouteId::AzureDevopsCallback => Some(Provider::AzureDevOps),
        _ => None,
    };
    let ctx = match Ctx::new(env) {
        Ok(ctx) => ctx,
        Err(p) if callback.is_some() => {
            worker::console_error!("configuration: {}", p.detail());
            return html(pages::refused("misconfigured"), 503);
        }
        Err(p) => return problem(&p),
    };
    if let Some(provider) = callback {
        let outcome = match provider {
            Provider::GitHub => connect::github::setup(&ctx, &query).await,
            oauth => connect::oauth::callback(&ctx, oauth, &query).await,
        };
        let response = see_other(&redirect_location(
            ctx.config.portal_url.as_ref(),
            provider,
            &outcome,
        ));
        return counted(&ctx, response);
    }
    if route == RouteId::GithubWebhooks {
        return match webhooks::receive(&ctx, &mut req).await {
            Ok(answer) => {
                let response = with_type(
                    serde_json::to_string(&answer.body)?,
                    answer.status,
                    "application/json",
                );
                // The jobs are committed and stamped as sent: their send follows the answer.
                if answer.has_jobs() {
                    context.wait_until(async move {
                        webhooks::send_later(&ctx, &answer).await;
                    });
                }
                response
            }
            Err(p) => problem(&p),
        };
    }
    // The portal API.
    let principal = match authenticate(&ctx, &req) {
        Ok(p) => p,
        Err(p) => return problem(&p),
    };
    match route {
        RouteId::ConnectGithub => answer(connect::github::start(&ctx, &principal).await),
        RouteId::ConnectGitlab | RouteId::ConnectAzureDevops => {
            let provider = if route == RouteId::ConnectGitlab {
                Provider::GitLab
            } else {
                Provider::AzureDevOps
            };
            // The redirect URI is on the origin the portal called (unless PUBLIC_URL is set).
            let origin = match req.url() {
                Ok(mut url) => {
                    url.set_path("");
                    url.set_query(None);
                    url
                }
                Err(_) => return problem(&Problem::Internal),
            };
            let content_type = req.headers().get("content-type").ok().flatten();
            let body = req.bytes().await.unwrap_or_default();
            answer(
                connect::oauth::start(
                    &ctx,
                    &principal,
                    provider,
                    &origin,
                    content_type.as_deref(),
                    &body,
                )
                .await,
            )
        }
        RouteId::ConfirmConnection => {
            let content_type = req.headers().get("content-type").ok().flatten();
            let body = req.bytes().await.unwrap_or_default();
            let confirmed =
                connect::confirm::confirm(&ctx, &principal, content_type.as_deref(), &body).await;
            counted(&ctx, answer(confirmed))
        }
        RouteId::ListOrgs => answer(orgs::list(&ctx, &principal, &query).await),
        RouteId::GetOrg => answer(orgs::get(&ctx, &principal, &id).await),
        RouteId::PatchOrg => {
            let body = req.bytes().await.unwrap_or_default();
            answer(orgs::patch(&ctx, &principal, &id, &body).await)
        }
        RouteId::ListRepos => answer(orgs::repos(&ctx, &principal, &id, &query).await),
        RouteId::SyncOrg => answer(orgs::sync(&ctx, &principal, &id).await),
        RouteId::DisconnectOrg => answer(orgs::disconnect(&ctx, &principal, &id).await),
        RouteId::OrgActivity => answer(orgs::activity(&ctx, &principal, &id, &query).await),
        RouteId::ListSnapshots => {
            answer(backup::snapshots::list(&ctx, &principal, &id, &sub, &query).await)
        }
        RouteId::GetSnapshot => answer(backup::snapshots::get(&ctx, &principal, &id).await),
        RouteId::RestoreSnapshot => answer(backup::snapshots::restore(&ctx, &principal, &id).await),
        RouteId::SnapshotBundle => match backup::snapshots::bundle(&ctx, &principal, &id).await {
            Ok(response) => Ok(response),
            Err(p) => problem(&p),
        },
        RouteId::BackupOrg => {
            let body = req.bytes().await.unwrap_or_default();
            match backup::snapshots::backup_now(&ctx, &principal, &id, &body).await {
                Ok((status, value)) => {
                    with_type(serde_json::to_string(&value)?, status, "application/json")
                }
                Err(p) => problem(&p),
            }
        }
        RouteId::OrgAccess => answer(access::access(&ctx, &principal, &id).await),
        RouteId::OrgAccessEvents => answer(access::events(&ctx, &principal, &id, &query).await),
        RouteId::OrgPosture => answer(access::org_posture(&ctx, &principal, &id).await),
        RouteId::Posture => match access::portfolio(&ctx, &principal, &query).await {
            Ok((rows, body)) => {
                let accept = req
                    .headers()
                    .get("accept")
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                if accept.to_ascii_lowercase().contains("text/csv") {
                    with_type(access::portfolio_csv(&rows), 200, "text/csv; charset=utf-8")
                } else {
                    json(&body)
                }
            }
            Err(p) => problem(&p),
        },
        RouteId::Health
        | RouteId::OpenApi
        | RouteId::GithubSetup
        | RouteId::GitlabCallback
        | RouteId::AzureDevopsCallback
        | RouteId::GithubWebhooks
        | RouteId::ConnectDonePage
        | RouteId::ConnectPendingPage
        | RouteId::ConnectErrorPage
        | RouteId::ConnectConfirmPage
        | RouteId::ConfirmScript
        | RouteId::Console
        | RouteId::ConsoleScript
        | RouteId::ConsoleStyle => problem(&Problem::Internal),
    }
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    let ctx = match Ctx::new(env) {
        Ok(ctx) => ctx,
        Err(p) => {
            worker::console_error!("queue consumer: {}", p.detail());
            let messages = batch.messages().unwrap_or_default();
            let bodies = || messages.iter().map(|m| m.body().as_str());
            queue_trace::retried(&batch.queue(), bodies());
            queue_trace::ended(&batch.queue(), bodies());
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
