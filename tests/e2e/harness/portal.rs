//! The portal's organization API as one tenant's technician calls it, and problem+json checks.

use serde_json::Value;

use super::http::Resp;
use super::{technician, Stack};

/// The portal API as one tenant's technician calls it (a fresh JWT per request).
pub struct Portal<'a> {
    pub s: &'a Stack,
    pub tenant: &'a str,
}

impl<'a> Portal<'a> {
    pub fn new(s: &'a Stack, tenant: &'a str) -> Portal<'a> {
        Portal { s, tenant }
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let jwt = self.s.portal_jwt(self.tenant, &technician(self.tenant));
        self.s.http.request(
            method,
            &format!("{}{path}", self.s.worker),
            &[("authorization", &format!("Bearer {jwt}"))],
            body,
        )
    }

    /// A 200 JSON answer.
    #[track_caller]
    pub fn ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let resp = self.request(method, path, body);
        assert_eq!(resp.status, 200, "{method} {path}: {}", resp.body);
        assert!(
            resp.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{method} {path}: content-type {:?}",
            resp.header("content-type")
        );
        resp.json()
    }

    #[track_caller]
    pub fn get(&self, path: &str) -> Value {
        self.ok("GET", path, None)
    }

    #[track_caller]
    pub fn org(&self, org_id: &str) -> Value {
        self.get(&format!("/v1/orgs/{org_id}"))
    }

    #[track_caller]
    pub fn patch(&self, org_id: &str, body: Value) -> Value {
        self.ok(
            "PATCH",
            &format!("/v1/orgs/{org_id}"),
            Some(&body.to_string()),
        )
    }

    #[track_caller]
    pub fn sync(&self, org_id: &str) -> Value {
        self.ok("POST", &format!("/v1/orgs/{org_id}/sync"), None)
    }

    #[track_caller]
    pub fn disconnect(&self, org_id: &str) -> Value {
        self.ok("POST", &format!("/v1/orgs/{org_id}/disconnect"), None)
    }

    /// The org's activity events, newest first (one page of 100).
    #[track_caller]
    pub fn events(&self, org_id: &str) -> Vec<String> {
        self.get(&format!("/v1/orgs/{org_id}/activity?limit=100"))["items"]
            .as_array()
            .expect("activity items")
            .iter()
            .map(|i| i["event"].as_str().expect("event").to_string())
            // Backups log asynchronously (`backup.first`, `backup.failed`): tests/e2e/backups.rs
            // checks them; the other flows' sequences are compared without them.
            .filter(|event| !event.starts_with("backup."))
            .collect()
    }

    /// Every item of a paginated list, following `next_cursor` `limit` at a time; the items
    /// and the number of pages requested.
    #[track_caller]
    pub fn walk(&self, path: &str, limit: u32) -> (Vec<Value>, usize) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for pages in 1..=1_000 {
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&url);
            let got = page["items"].as_array().expect("items").clone();
            assert!(got.len() <= limit as usize, "{url}: {} items", got.len());
            items.extend(got);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => {
                    assert!(page["next_cursor"].is_null(), "{url}: {page}");
                    return (items, pages);
                }
            }
        }
        panic!("the pages of {path} never end");
    }
}

/// A problem+json answer (RFC 9457) with this status and code; its body.
#[track_caller]
pub fn assert_problem(resp: &Resp, status: u16, code: &str, what: &str) -> Value {
    assert_eq!(resp.status, status, "{what}: {}", resp.body);
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("application/problem+json")),
        "{what}: content-type {:?}",
        resp.header("content-type")
    );
    let body = resp.json();
    assert_eq!(body["status"], status, "{what}: {body}");
    assert_eq!(body["code"], code, "{what}: {body}");
    assert_eq!(body["type"], format!("/problems/{code}"), "{what}: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{what}: {body}"
    );
    body
}
