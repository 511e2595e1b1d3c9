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

/// Decodes `%XX` escapes in a path segment (`+` stays a plus); invalid escapes are kept as
/// they are and invalid UTF-8 is replaced.
pub fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for one path segment.
pub fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parses a JSON request body into `T`, or answers 400 with the parse error.
pub fn parse_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Reply> {
    serde_json::from_slice(&request.body)
        .map_err(|e| Reply::error(400, &format!("github-emulator: invalid JSON body: {e}")))
}

/// Like [`parse_body`], with an empty body read as `{}`.
pub fn parse_optional_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Reply> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_value(json!({}))
            .map_err(|e| Reply::error(400, &format!("github-emulator: invalid JSON body: {e}")))
    } else {
        parse_body(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips_path_segments() {
        assert_eq!(percent_decode("acme%2Fsub"), "acme/sub");
        assert_eq!(
            percent_decode("Fabrikam%20Fiber+x%zz%4"),
            "Fabrikam Fiber+x%zz%4"
        );
        assert_eq!(
            encode_segment("Fabrikam Fiber/ü"),
            "Fabrikam%20Fiber%2F%C3%BC"
        );
        assert_eq!(percent_decode(&encode_segment("a b/c~d")), "a b/c~d");
    }
}
