//! CORS for the portal, and only for it: a browser on one of the `PORTAL_ORIGINS` may call the
//! `/v1/*` API with a bearer token; nothing else changes.
//!
//! - `OPTIONS /v1/…` (a preflight) from an allowed origin: 204 with the allowed methods, the
//!   request headers a client sends (`authorization`, `content-type`) and a max-age; from any
//!   other origin (or none): 403 with no CORS header, so the browser refuses the call.
//! - Every other `/v1/*` answer (problem+json errors included) carries
//!   `Access-Control-Allow-Origin: <that exact origin>` when the request's `Origin` is allowed,
//!   the headers a client may read (`Access-Control-Expose-Headers`), and `Vary: Origin` in
//!   every case (caches must not hand one origin's answer to another).
//! - Never `*`, never `Access-Control-Allow-Credentials`: the portal sends a bearer token, not
//!   cookies. Webhooks, OAuth callbacks and pages are same-origin or server-to-server and get
//!   nothing.
//!
//! `PORTAL_ORIGINS` is a comma-separated list of origins (`https://portal.example.com`,
//! `http://localhost:3000`); when it is empty, the origin of `PORTAL_URL` (if any) is allowed.
//! The edge ([`crate::edge`]) applies what these functions compute.

use crate::api::problem::Problem;
use url::Url;

/// The methods the `/v1/*` routes take (see `routes::ROUTES`).
pub const ALLOW_METHODS: &str = "GET, POST, PATCH";
/// What a browser client sends besides the CORS-safelisted headers.
pub const ALLOW_HEADERS: &str = "authorization, content-type";
/// How long a browser may reuse a preflight answer, in seconds (Chromium caps it at 7200).
pub const MAX_AGE: &str = "600";
/// Response headers a client may read beyond the safelisted ones: a snapshot bundle's `ETag`
/// (its SHA-256), `Content-Length` and `Content-Disposition` (its file name). The list routes
/// page with a cursor in the JSON body, so there is no pagination header.
pub const EXPOSE_HEADERS: &str = "etag, content-length, content-disposition";

/// Whether a path is one CORS applies to: the portal API.
pub fn applies(path: &str) -> bool {
    path.starts_with("/v1/")
}

/// The origins allowed to call the API from a browser, each as a browser serializes it in the
/// `Origin` header (`scheme://host[:port]`, the default port left out, no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origins(Vec<String>);

/// `scheme://host[:port]` of an `http(s)` URL with nothing after the origin but an optional
/// path (the origin of `PORTAL_URL` may have one); `None` for anything else, `*` included.
fn origin_of(value: &str, allow_path: bool) -> Option<String> {
    let url = Url::parse(value.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || (!allow_path && url.path() != "/")
    {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

impl Origins {
    /// From `PORTAL_ORIGINS` and `PORTAL_URL` as set (either may be missing or empty). An entry
    /// of `PORTAL_ORIGINS` that is not an origin (`*`, a path, another scheme) makes it
    /// unusable: better no browser access than a silently different list.
    pub fn from_vars(
        portal_origins: Option<&str>,
        portal_url: Option<&str>,
    ) -> Result<Origins, Problem> {
        let listed = portal_origins.unwrap_or("").trim();
        if listed.is_empty() {
            let from_url = portal_url
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .and_then(|u| origin_of(u, true));
            return Ok(Origins(from_url.into_iter().collect()));
        }
        let mut origins = Vec::new();
        for entry in listed.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let origin = origin_of(entry.trim_end_matches('/'), false)
                .or_else(|| origin_of(entry, false))
                .ok_or_else(|| Problem::Misconfigured("PORTAL_ORIGINS".into()))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Origins(origins))
    }

    /// Whether a request's `Origin` header is exactly one of the allowed origins (`null`,
    /// another port or scheme, a case variant of the host as a browser would never send: no).
    pub fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == origin)
    }
}

/// The answer to a preflight.
#[derive(Debug, PartialEq, Eq)]
pub enum Preflight {
    /// 204 with these headers.
    Allowed(Vec<(&'static str, String)>),
    /// 403, no CORS header.
    Refused,
}

/// The answer to `OPTIONS` on a `/v1/*` path with this `Origin` (if any).
pub fn preflight(origins: &Origins, origin: Option<&str>) -> Preflight {
    match origin.filter(|o| origins.allows(o)) {
        Some(origin) => Preflight::Allowed(vec![
            ("access-control-allow-origin", origin.to_string()),
            ("access-control-allow-methods", ALLOW_METHODS.into()),
            ("access-control-allow-headers", ALLOW_HEADERS.into()),
            ("access-control-max-age", MAX_AGE.into()),
            ("vary", "Origin".into()),
        ]),
        None => Preflight::Refused,
    }
}

/// The headers to add to any other `/v1/*` answer for a request with this `Origin` (if any).
pub fn answer_headers(origins: &Origins, origin: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("vary", "Origin".to_string())];
    if let Some(origin) = origin.filter(|o| origins.allows(o)) {
        headers.push(("access-control-allow-origin", origin.to_string()));
        headers.push(("access-control-expose-headers", EXPOSE_HEADERS.into()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &str) -> Origins {
        Origins::from_vars(Some(list), None).unwrap()
    }

    #[test]
    fn origins_are_parsed_normalized_and_deduplicated() {
        let o = origins(
            " https://portal.example.com/ ,http://localhost:3000,HTTPS://Portal.Example.com:443",
        );
        assert_eq!(
            o,
            Origins(vec![
                "https://portal.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        assert!(o.allows("https://portal.example.com"));
        assert!(o.allows("http://localhost:3000"));
        assert!(!o.allows("http://localhost:3001"));
        assert!(!o.allows("http://portal.example.com"));
        assert!(!o.allows("https://portal.example.com.evil.test"));
        assert!(!o.allows("null"));
        assert!(!o.allows(""));
    }

    #[test]
    fn a_wildcard_or_anything_but_an_origin_makes_the_list_unusable() {
        for bad in [
            "*",
            "https://ok.example, *",
            "https://ok.example/app",
            "ftp://files.example",
            "https://ok.example?x=1",
            "https://user@ok.example",
            "portal.example.com",
        ] {
            assert_eq!(
                Origins::from_vars(Some(bad), Some("https://portal.example.com")),
                Err(Problem::Misconfigured("PORTAL_ORIGINS".into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn without_a_list_the_portal_urls_origin_is_allowed() {
        let o =
            Origins::from_vars(Some("  "), Some("https://portal.example.com/msp/connect")).unwrap();
        assert_eq!(o, Origins(vec!["https://portal.example.com".into()]));
        let o = Origins::from_vars(None, Some("http://127.0.0.1:8080")).unwrap();
        assert!(o.allows("http://127.0.0.1:8080"));
        assert_eq!(Origins::from_vars(None, Some("")).unwrap(), Origins(vec![]));
        assert_eq!(Origins::from_vars(None, None).unwrap(), Origins(vec![]));
        // The list wins over PORTAL_URL.
        let o =
            Origins::from_vars(Some("http://localhost:3000"), Some("https://p.example")).unwrap();
        assert!(!o.allows("https://p.example"));
    }

    #[test]
    fn a_preflight_is_allowed_only_for_a_listed_origin() {
        let o = origins("https://portal.example.com");
        let Preflight::Allowed(headers) = preflight(&o, Some("https://portal.example.com")) else {
            panic!("refused");
        };
        let get = |name| {
            headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("access-control-allow-origin"),
            Some("https://portal.example.com")
        );
        assert_eq!(
            get("access-control-allow-methods"),
            Some("GET, POST, PATCH")
        );
        assert_eq!(
            get("access-control-allow-headers"),
            Some("authorization, content-type")
        );
        assert_eq!(get("access-control-max-age"), Some("600"));
        assert_eq!(get("vary"), Some("Origin"));
        assert_eq!(get("access-control-allow-credentials"), None);
        assert_eq!(
            preflight(&o, Some("https://evil.example")),
            Preflight::Refused
        );
        assert_eq!(preflight(&o, None), Preflight::Refused);
        assert_eq!(
            preflight(&Origins::default(), Some("null")),
            Preflight::Refused
        );
    }

    #[test]
    fn answers_name_the_exact_origin_and_always_vary_on_it() {
        let o = origins("https://portal.example.com,http://localhost:3000");
        let h = answer_headers(&o, Some("http://localhost:3000"));
        assert!(h.contains(&(
            "access-control-allow-origin",
            "http://localhost:3000".into()
        )));
        assert!(h.contains(&("access-control-expose-headers", EXPOSE_HEADERS.into())));
        assert!(h.contains(&("vary", "Origin".into())));
        assert!(!h.iter().any(|(_, v)| v == "*"));
        assert_eq!(
            answer_headers(&o, Some("https://evil.example")),
            vec![("vary", "Origin".to_string())]
        );
        assert_eq!(
            answer_headers(&o, None),
            vec![("vary", "Origin".to_string())]
        );
    }

    #[test]
    fn only_the_api_is_cors_enabled() {
        assert!(applies("/v1/orgs"));
        assert!(applies("/v1/connect/github"));
        for path in [
            "/github/webhooks",
            "/github/setup",
            "/connect/github/done",
            "/console",
            "/health",
            "/v1",
        ] {
            assert!(!applies(path), "{path}");
        }
    }

    #[test]
    fn every_api_method_is_allowed_by_the_preflight() {
        for r in crate::api::routes::ROUTES
            .iter()
            .filter(|r| applies(r.template))
        {
            assert!(
                ALLOW_METHODS.split(", ").any(|m| m == r.method),
                "{}",
                r.method
            );
        }
    }
}
