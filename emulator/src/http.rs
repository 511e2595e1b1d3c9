//! Transport-neutral request and reply types.
//!
//! Handlers work on [`Request`] and return [`Reply`]; `server.rs` converts to and from
//! tiny_http, so routing, auth, faults and handlers can be unit-tested without sockets. A
//! reply's body is in memory, or a [`BodyStream`] (a git pack piped from `git upload-pack`)
//! that is never held in memory as a whole.

use std::fmt;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

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

/// A response body read from a source (a child process's output) instead of memory. Clones
/// share the one source, which [`BodyStream::take`] hands out once.
#[derive(Clone)]
pub struct BodyStream {
    reader: Arc<Mutex<Option<Box<dyn Read + Send>>>>,
    /// The body's length, when known in advance.
    pub len: Option<u64>,
}

impl BodyStream {
    pub fn new(reader: impl Read + Send + 'static, len: Option<u64>) -> Self {
        BodyStream {
            reader: Arc::new(Mutex::new(Some(Box::new(reader)))),
            len,
        }
    }

    /// The source, the first time only.
    pub fn take(&self) -> Option<Box<dyn Read + Send>> {
        self.reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Reads the whole body into memory (tests only: packs can be large).
    #[cfg(test)]
    pub fn read_all(&self) -> Vec<u8> {
        let mut body = Vec::new();
        if let Some(mut reader) = self.take() {
            reader.read_to_end(&mut body).expect("stream readable");
        }
        body
    }
}

impl PartialEq for BodyStream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.reader, &other.reader)
    }
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BodyStream(len: {:?})", self.len)
    }
}

/// A response about to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, unless `stream` is set (then empty).
    pub body: Vec<u8>,
    /// A body streamed from its source instead of `body`.
    pub stream: Option<BodyStream>,
    /// Fault injection (`faults.rs`): announce the full length but send only this many bytes
    /// of the body, then close the connection.
    pub truncate_after: Option<u64>,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body,
            stream: None,
            truncate_after: None,
        }
    }

    /// A streamed body of `content_type`.
    pub fn streamed(status: u16, content_type: &str, stream: BodyStream) -> Self {
        Reply {
            stream: Some(stream),
            ..Reply::new(status, content_type, Vec::new())
        }
    }

    pub fn json(status: u16, value: &Value) -> Self {
        Reply::new(
            status,
            "application/json; charset=utf-8",
            serde_json::to_vec(value).expect("JSON values always serialize"),
        )
    }

    /// A `text/plain` body.
    pub fn text(status: u16, text: &str) -> Self {
        Reply::new(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        )
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
        Reply::new(status, "text/html; charset=utf-8", body.into_bytes())
    }

    pub fn redirect(location: &str) -> Self {
        let mut reply = Reply::new(302, "", Vec::new());
        reply.headers = vec![("location".into(), location.into())];
        reply
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
