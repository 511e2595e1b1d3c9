//! Transport-neutral request and reply types.
//!
//! Handlers work on [`Request`] and return [`Reply`]; `server.rs` converts to and from
//! tiny_http, so routing, auth, faults and handlers can be unit-tested without sockets.

use serde_json::{json, Value};

/// Documentation link GitHub puts in every error body.
const DOCS_URL: &str = "https://docs.github.com/rest";

/// The parts of an HTTP request the emulator looks at.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string without the leading `?` (empty when absent).
    pub query: String,
    /// Header name (lower-case) and value pairs.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// Splits a request target such as `/a/b?x=1` into path and query.
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            query: query.to_string(),
            ..Request::default()
        }
    }

    #[cfg(test)]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    #[cfg(test)]
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// First value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First value of a query parameter (percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// `path?query`, or just the path when there is no query.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }
}

/// A response about to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Self {
        Reply {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: serde_json::to_vec(value).expect("JSON values always serialize"),
        }
    }

    /// A GitHub-style error: `{"message": ..., "documentation_url": ...}`.
    pub fn error(status: u16, message: &str) -> Self {
        Reply::json(
            status,
            &json!({ "message": message, "documentation_url": DOCS_URL }),
        )
    }

    pub fn not_found() -> Self {
        Reply::error(404, "Not Found")
    }

    pub fn html(status: u16, body: String) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
        }
    }

    pub fn redirect(location: &str) -> Self {
        Reply {
            status: 302,
            headers: vec![("location".into(), location.into())],
            body: Vec::new(),
        }
    }

    /// Sets a header, replacing any existing header of the same name.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_ascii_lowercase(), value.into()));
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a JSON request body into `T`, or answers 400 with the parse error.
pub fn parse_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Reply> {
    serde_json::from_slice(&request.body)
        .map_err(|e| Reply::error(400, &format!("github-emulator: invalid JSON body: {e}")))
}
