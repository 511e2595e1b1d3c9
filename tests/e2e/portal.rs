//! The portal-facing API: `POST /v1/connect/github` authentication and API routing errors.
//!
//! Every authentication failure (no header, another scheme, a bad signature, an expired token,
//! `alg: none`, HS512 even with the right key) is a 401 `application/problem+json` body with
//! `status: 401` and `code: "unauthorized"`, and writes nothing: the KV namespace has exactly
//! as many entries afterwards (checked alone, with no other test running) and none mentions
//! the tenant. A valid token is the control: it adds exactly one entry.

use chrono::DateTime;
use serde_json::json;

use crate::harness::auth::{self, now, portal_claims};
use crate::harness::portal::assert_problem;
use crate::harness::store::Footprint;
use crate::harness::Stack;
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        Case::exclusive(
            "portal::auth_failures_are_401_problems_and_write_nothing",
            auth_failures,
        ),
        Case::exclusive(
            "portal::valid_token_issues_one_state",
            valid_token_issues_one_state,
        ),
        Case::shared("portal::unknown_api_route_is_a_404_problem", unknown_route),
        Case::shared("portal::wrong_method_is_a_405_problem", wrong_method),
    ]
}

fn auth_failures(s: &Stack) {
    let tenant = "tenant-portal-denied";
    let tech = "tech-denied";
    let secret = s.portal_secret();
    let t = now();
    let claims = portal_claims(tenant, tech, t, t + 300);
    let valid = auth::hs256(secret, &auth::hs256_header(), &claims);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("Basic scheme", Some("Basic dGVuYW50OnNlY3JldA==".into())),
        ("Bearer without a token", Some("Bearer".into())),
        (
            "another scheme with a valid token",
            Some(format!("Token {valid}")),
        ),
        ("not a JWT", Some("Bearer not.a.jwt".into())),
        (
            "wrong secret",
            Some(format!(
                "Bearer {}",
                auth::hs256("not-the-portal-secret", &auth::hs256_header(), &claims)
            )),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                auth::hs256(
                    secret,
                    &auth::hs256_header(),
                    &portal_claims(tenant, tech, t - 900, t - 300)
                )
            )),
        ),
        (
            "alg none",
            Some(format!("Bearer {}", auth::unsigned_jwt(&claims))),
        ),
        (
            "HS512 with the right secret",
            Some(format!(
                "Bearer {}",
                auth::hs512(secret, &json!({ "alg": "HS512", "typ": "JWT" }), &claims)
            )),
        ),
        (
            "no tenant claim",
            Some(format!(
                "Bearer {}",
                auth::hs256(
                    secret,
                    &auth::hs256_header(),
                    &json!({ "sub": tech, "iat": t, "exp": t + 300 })
                )
            )),
        ),
    ];

    let kv_before = s.store.kv_count();
    for (what, header) in &cases {
        let resp = s.connect_raw(header.as_deref());
        assert_problem(&resp, 401, "unauthorized", what);
        assert!(
            !resp.body.contains(secret) && !resp.body.contains(&valid),
            "{what}: the answer echoes a credential: {}",
            resp.body
        );
        assert_eq!(
            resp.header("cache-control"),
            Some("no-store"),
            "{what}: errors are not cached"
        );
    }
    assert_eq!(
        s.store.kv_count(),
        kv_before,
        "no state may be stored for a refused request"
    );
    assert!(
        !s.store.kv_mentions(tenant),
        "no KV entry mentions the refused tenant"
    );
    assert_eq!(s.store.footprint(tenant), Footprint::default());
}

fn valid_token_issues_one_state(s: &Stack) {
    let tenant = "tenant-portal-ok";
    let kv_before = s.store.kv_count();
    let jwt = s.portal_jwt(tenant, "tech-ok");
    let t = now();
    let resp = s.connect_raw(Some(&format!("Bearer {jwt}")));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    let body = resp.json();
    let install_url = body["install_url"].as_str().expect("install_url");
    assert!(install_url.starts_with(&format!(
        "{}/apps/the-one-code/installations/new?state=v1.",
        s.emulator.base
    )));
    let expires_at = DateTime::parse_from_rfc3339(body["expires_at"].as_str().expect("expires_at"))
        .expect("RFC 3339 expiry")
        .timestamp();
    assert!(
        (t + 590..=t + 610).contains(&expires_at),
        "the state lives 10 minutes: {expires_at} vs now {t}"
    );
    assert_eq!(
        s.store.kv_count(),
        kv_before + 1,
        "exactly one state stored"
    );
    assert!(
        s.store.kv_mentions(tenant),
        "the stored state names its tenant"
    );
    assert!(
        !s.store.kv_mentions(&jwt),
        "the portal token itself is not stored"
    );
}

fn unknown_route(s: &Stack) {
    for method in ["GET", "POST"] {
        let resp = s
            .http
            .request(method, &format!("{}/v1/nope", s.worker), &[], None);
        assert_problem(&resp, 404, "not_found", &format!("{method} /v1/nope"));
    }
}

fn wrong_method(s: &Stack) {
    for method in ["GET", "PUT", "DELETE"] {
        let resp = s.http.request(
            method,
            &format!("{}/v1/connect/github", s.worker),
            &[],
            None,
        );
        assert_problem(
            &resp,
            405,
            "method_not_allowed",
            &format!("{method} /v1/connect/github"),
        );
    }
}
