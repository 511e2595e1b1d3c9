//! The portal's side (issue #12): CORS on the API and the console, over HTTP and in a real
//! browser.
//!
//! - over HTTP: preflights from the portal's origin (`PORTAL_ORIGINS`, the suite's
//!   [`Stack::portal_origin`]) answer 204 with the allowed methods and headers, from any other
//!   origin (or none) 403 without CORS headers; answers (errors included) name the exact origin,
//!   expose `etag`/`content-length`/`content-disposition` and vary on `Origin`; webhooks, pages,
//!   the console and `/health` carry no CORS header; the console's files come with their policy;
//! - in headless Chromium (Debian's `chromium`, driven by `tests/browser/console.mjs` through
//!   playwright-core): the console loads without a console error; it connects an emulator
//!   installation through the whole redirect flow (console → install page → setup callback →
//!   confirm page → done page) and shows its repository count; it runs a sync and shows found /
//!   added; it shows a refused setting as its problem detail; a page on another origin cannot
//!   call the API while one on the portal's origin can.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::emulator::Inst;
use crate::harness::http::Resp;
use crate::harness::{technician, Stack};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        Case::shared(
            "console::cors_preflights_answer_the_portals_origin_only",
            preflights,
        ),
        Case::shared(
            "console::cors_headers_are_on_api_answers_only",
            answer_headers,
        ),
        Case::shared(
            "console::the_console_is_served_with_a_strict_policy",
            served,
        ),
        Case::shared(
            "console::browser_loads_the_console_without_errors",
            browser_loads,
        ),
        Case::shared(
            "console::browser_connects_an_org_and_syncs_it",
            browser_connects_and_syncs,
        ),
        Case::shared(
            "console::browser_another_origin_cannot_call_the_api",
            browser_cross_origin,
        ),
    ]
}

const EVIL: &str = "http://127.0.0.1:9";

fn with_origin(s: &Stack, method: &str, path: &str, origin: &str, token: Option<&str>) -> Resp {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("origin", origin)];
    if method == "OPTIONS" {
        headers.push(("access-control-request-method", "POST"));
        headers.push((
            "access-control-request-headers",
            "authorization,content-type",
        ));
    }
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    s.http
        .request(method, &format!("{}{path}", s.worker), &headers, None)
}

fn cors_headers(r: &Resp) -> Vec<&(String, String)> {
    r.headers
        .iter()
        .filter(|(k, _)| k.starts_with("access-control-"))
        .collect()
}

fn preflights(s: &Stack) {
    for path in ["/v1/orgs", "/v1/connect/github", "/v1/orgs/some-id/sync"] {
        let r = with_origin(s, "OPTIONS", path, &s.portal_origin, None);
        assert_eq!(r.status, 204, "{path}: {}", r.body);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some(s.portal_origin.as_str())
        );
        assert_eq!(
            r.header("access-control-allow-methods"),
            Some("GET, POST, PATCH")
        );
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("authorization, content-type")
        );
        assert_eq!(r.header("access-control-max-age"), Some("600"));
        assert_eq!(r.header("vary"), Some("Origin"));
        assert_eq!(r.header("access-control-allow-credentials"), None);
        assert!(r.body.is_empty(), "{}", r.body);
    }
    // Another origin (even on the same host), another scheme, `null`: 403 and nothing to go on.
    let other_port = s.portal_origin.replace("127.0.0.1", "localhost");
    for origin in [EVIL, other_port.as_str(), "null", &s.worker] {
        let r = with_origin(s, "OPTIONS", "/v1/orgs", origin, None);
        assert_eq!(r.status, 403, "{origin}: {}", r.body);
        assert!(cors_headers(&r).is_empty(), "{origin}: {:?}", r.headers);
        assert_eq!(r.json()["code"], "forbidden");
    }
    let r = s.http.request(
        "OPTIONS",
        &format!("{}/v1/orgs", s.worker),
        &[("access-control-request-method", "GET")],
        None,
    );
    assert_eq!(r.status, 403, "no Origin: {}", r.body);
    assert!(cors_headers(&r).is_empty());
}

fn answer_headers(s: &Stack) {
    let tenant = "tenant-console-cors";
    let token = s.portal_jwt(tenant, &technician(tenant));
    let allowed = |r: &Resp, what: &str| {
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some(s.portal_origin.as_str()),
            "{what}: {:?}",
            r.headers
        );
        assert_eq!(
            r.header("access-control-expose-headers"),
            Some("etag, content-length, content-disposition"),
            "{what}"
        );
        assert_eq!(r.header("vary"), Some("Origin"), "{what}");
        assert_eq!(r.header("access-control-allow-credentials"), None, "{what}");
    };
    let ok = with_origin(s, "GET", "/v1/orgs", &s.portal_origin, Some(&token));
    assert_eq!(ok.status, 200, "{}", ok.body);
    allowed(&ok, "200");
    // Errors too: a browser client reads the problem detail only if it may read the answer.
    let unauthorized = with_origin(s, "GET", "/v1/orgs", &s.portal_origin, None);
    assert_eq!(unauthorized.status, 401);
    assert_eq!(
        unauthorized.header("content-type"),
        Some("application/problem+json")
    );
    allowed(&unauthorized, "401");
    for (method, path, status) in [
        ("GET", "/v1/nope", 404),
        ("DELETE", "/v1/orgs", 405),
        ("GET", "/v1/orgs/unknown-org", 404),
    ] {
        let r = with_origin(s, method, path, &s.portal_origin, Some(&token));
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        allowed(&r, path);
    }
    // Another origin's request is answered (the browser withholds it): no CORS header but Vary.
    let evil = with_origin(s, "GET", "/v1/orgs", EVIL, Some(&token));
    assert_eq!(evil.status, 200);
    assert!(cors_headers(&evil).is_empty(), "{:?}", evil.headers);
    assert_eq!(evil.header("vary"), Some("Origin"));
    // Outside the API: nothing, whatever the Origin.
    for (method, path) in [
        ("POST", "/github/webhooks"),
        ("GET", "/health"),
        ("GET", "/console"),
        ("GET", "/connect/github/done"),
        ("GET", "/github/setup"),
        ("OPTIONS", "/github/webhooks"),
    ] {
        let r = with_origin(s, method, path, &s.portal_origin, None);
        assert!(
            cors_headers(&r).is_empty(),
            "{method} {path} ({}): {:?}",
            r.status,
            r.headers
        );
        assert_ne!(r.status, 204, "{method} {path}");
    }
}

fn served(s: &Stack) {
    for (path, content_type, marker) in [
        (
            "/console",
            "text/html; charset=utf-8",
            "<script src=\"/console/app.js\"",
        ),
        (
            "/console/app.js",
            "text/javascript; charset=utf-8",
            "/v1/orgs",
        ),
        ("/console/app.css", "text/css; charset=utf-8", "table{"),
    ] {
        let r = s.http.get(&format!("{}{path}", s.worker));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert!(r.body.contains(marker), "{path}");
    }
}

// ---- in the browser ----

/// Runs a scenario of `tests/browser/console.mjs` and returns what it printed.
#[track_caller]
fn browser(root: &Path, scenario: &str, args: Value) -> Value {
    let output = Command::new("node")
        .current_dir(root)
        .arg(root.join("tests/browser/console.mjs"))
        .arg(scenario)
        .arg(args.to_string())
        .output()
        .unwrap_or_else(|e| panic!("node: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tests/browser/console.mjs {scenario} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{scenario}: {e}: {stdout}"))
}

#[track_caller]
fn no_errors(what: &str, seen: &Value) {
    assert_eq!(seen["errors"], json!([]), "{what}: {seen}");
}

fn browser_loads(s: &Stack) {
    let tenant = "tenant-console-load";
    let token = s.portal_jwt(tenant, &technician(tenant));
    let seen = browser(
        &s.root,
        "load",
        json!({ "worker": s.worker, "token": token }),
    );
    no_errors("load", &seen);
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["orgs"], 0, "{seen}");
    assert_eq!(
        seen["token_in_url"], false,
        "the fragment is dropped: {seen}"
    );
    assert_eq!(
        seen["who"],
        format!("tenant {tenant} · {}", technician(tenant)),
        "{seen}"
    );
    assert!(
        seen["csp"]
            .as_str()
            .is_some_and(|c| c.contains("script-src 'self'")),
        "{seen}"
    );
}

fn browser_connects_and_syncs(s: &Stack) {
    let tenant = "tenant-console-connect";
    let token = s.portal_jwt(tenant, &technician(tenant));
    let inst = Inst::org(8_121, "console-demo-acme", 5);
    s.emulator.put_installation(&inst);
    let seen = browser(
        &s.root,
        "connect",
        json!({ "worker": s.worker, "token": token, "login": inst.login, "repos": 5 }),
    );
    no_errors("connect", &seen);
    assert_eq!(
        seen["prefilled"], true,
        "the confirm page had the token: {seen}"
    );
    let done = seen["done"].as_str().unwrap_or_default();
    assert!(
        done.contains("console-demo-acme") && done.contains("5 repositories recorded (5 new)"),
        "{done}"
    );
    // Organization, provider, client, status, repositories, backed up, last sync.
    let cells = &seen["cells"];
    assert_eq!(
        cells[0], "console-demo-acme (console-demo-acme Inc.)",
        "{seen}"
    );
    assert_eq!(cells[1], "github");
    assert_eq!(cells[3], "active");
    assert_eq!(cells[4], "5", "the repository count: {seen}");
    assert_eq!(seen["repos"], 5, "{seen}");

    // Three more repositories on GitHub: the console's sync finds 8 and adds 3.
    s.emulator.add_repos(inst.id, 3);
    let seen = browser(
        &s.root,
        "sync",
        json!({ "worker": s.worker, "token": token, "login": inst.login }),
    );
    no_errors("sync", &seen);
    assert_eq!(seen["sync"], "Sync: found 8, added 3, removed 0", "{seen}");
    assert_eq!(
        seen["cells"][4], "8",
        "the list shows the new count: {seen}"
    );

    // A setting the API refuses is shown as its problem detail.
    let seen = browser(
        &s.root,
        "problem",
        json!({ "worker": s.worker, "token": token, "login": inst.login }),
    );
    let error = seen["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Invalid field (422, invalid_field): `retention_days`"),
        "{seen}"
    );
}

/// Serves `page` to every request on `listener`, from a thread that lives as long as the run.
fn serve_forever(listener: TcpListener, page: &'static str) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
}

fn browser_cross_origin(s: &Stack) {
    let tenant = "tenant-console-origins";
    let token = s.portal_jwt(tenant, &technician(tenant));
    const PAGE: &str = "<!doctype html><title>a portal</title><p>portal</p>";
    // The portal's origin (in PORTAL_ORIGINS) and another loopback one (not).
    serve_forever(
        s.portal_listener.try_clone().expect("the portal listener"),
        PAGE,
    );
    let other = TcpListener::bind(("127.0.0.1", 0)).expect("a loopback port");
    let other_origin = format!("http://127.0.0.1:{}", other.local_addr().unwrap().port());
    serve_forever(other, PAGE);
    let seen = browser(
        &s.root,
        "cors",
        json!({
            "worker": s.worker,
            "token": token,
            "origins": { "portal": s.portal_origin, "other": other_origin },
        }),
    );
    assert_eq!(seen["portal"]["status"], 200, "{seen}");
    assert_eq!(seen["portal"]["orgs"], 0, "{seen}");
    no_errors("the portal's page", &seen["portal"]);
    // The browser refuses the other page's call (its preflight got 403): no answer at all.
    assert_eq!(
        seen["other"]["error"], "TypeError: Failed to fetch",
        "{seen}"
    );
    assert!(seen["other"].get("status").is_none(), "{seen}");
}
