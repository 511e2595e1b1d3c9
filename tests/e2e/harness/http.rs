//! A small HTTP client for the suite (ureq, redirects never followed, loopback only) and the
//! parsing of the setup callback's `303 Location` into an outcome.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

/// One HTTP answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics (with the body) when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "expected a JSON body ({e}); status {} body {:?}",
                self.status, self.body
            )
        })
    }
}

/// How long one attempt of a GET may take before it is sent again, and how many attempts a GET
/// gets (4 × 30 s: the 120 s every other request has).
///
/// Why GETs are sent again: `wrangler dev` answers through its ProxyWorker, which forwards each
/// request to the user worker. When that forward fails with a network error, ProxyWorker
/// (wrangler 4.86, `templates/startDevWorker/ProxyWorker.ts`) parks a GET in its retry queue,
/// meant for a reload in progress, and replays it only when the next request arrives or a reload
/// ends. Its check for "the user worker did not change" compares the request's full URL with the
/// worker's bare origin, so it never matches a path. A GET that hit a failed forward in a quiet
/// moment hangs until some other request comes, while the worker itself never saw it: the
/// suite saw 119.8 s and 122 s for `GET …/snapshots` during a long exclusive test. A GET is
/// read-only, so sending it again changes nothing the tests check and releases the parked one.
const GET_ATTEMPT: Duration = Duration::from_secs(30);
const GET_ATTEMPTS: u32 = 4;

/// What ProxyWorker answers (503, `Retry-After: 0`) to any other method whose forward failed
/// with a network error: the same check misreads every failed forward as a reload. The failure
/// is on the hop between wrangler's two workerd processes (a kept-alive connection closed under
/// the request; the worker logs the same "Network connection lost" for its own fetches now and
/// then): a CI run saw it once in 3,000 requests, for `POST /v1/connect/github`. The request is
/// sent again, as a client honouring `Retry-After: 0` would, at most [`PROXY_RETRIES`] times;
/// every endpoint already has to survive a client's retry (a webhook's redelivery, a browser's
/// resubmission), and the suite's exact counts would show one that did not.
const PROXY_RESTARTED: &str = "Your worker restarted mid-request.";
const PROXY_RETRIES: u32 = 2;

/// Never follows redirects; refuses any URL that is not on 127.0.0.1.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(120))
                .user_agent("onecode-e2e")
                .build(),
        }
    }
}

impl Http {
    /// A request whose body is JSON unless `headers` name another content type.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        let json = [("content-type", "application/json")];
        let headers = match (body, typed) {
            (Some(_), false) => [headers, &json[..]].concat(),
            _ => headers.to_vec(),
        };
        self.send(method, url, &headers, body.map(str::as_bytes))
    }

    /// `POST` of these bytes with exactly these headers (ureq adds `Content-Length`).
    pub fn post_bytes(&self, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.send("POST", url, headers, Some(body))
    }

    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp {
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "the suite only talks to 127.0.0.1, not {url}"
        );
        let idempotent = method == "GET" && body.is_none();
        let (mut attempt, mut proxy_retries) = (1, 0);
        loop {
            let mut request = self.agent.request(method, url);
            if idempotent {
                request = request.timeout(GET_ATTEMPT);
            }
            for (name, value) in headers {
                request = request.set(name, value);
            }
            let result = match body {
                Some(body) => request.send_bytes(body),
                None => request.call(),
            };
            let response = match result {
                Ok(response) | Err(ureq::Error::Status(_, response)) => response,
                Err(e) if idempotent && attempt < GET_ATTEMPTS && timed_out(&e) => {
                    eprintln!(
                        "e2e: GET {url} unanswered after {}s (attempt {attempt}); sending it again",
                        GET_ATTEMPT.as_secs()
                    );
                    attempt += 1;
                    continue;
                }
                Err(e) => panic!("{method} {url}: {e}"),
            };
            let resp = read(method, url, response);
            if resp.status == 503
                && resp.body.starts_with(PROXY_RESTARTED)
                && proxy_retries < PROXY_RETRIES
            {
                eprintln!(
                    "e2e: {method} {url}: wrangler's proxy lost the forward; sending it again"
                );
                proxy_retries += 1;
                continue;
            }
            break resp;
        }
    }

    pub fn get(&self, url: &str) -> Resp {
        self.request("GET", url, &[], None)
    }
}

/// The status, headers (names lower-cased) and body of an answer.
fn read(method: &str, url: &str, response: ureq::Response) -> Resp {
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_string();
            Some((name.to_ascii_lowercase(), value))
        })
        .collect();
    let mut body = String::new();
    response
        .into_reader()
        .read_to_string(&mut body)
        .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"));
    Resp {
        status,
        headers,
        body,
    }
}

/// Whether a transport error is a timeout (ureq reports it as an I/O error).
fn timed_out(e: &ureq::Error) -> bool {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            );
        }
        source = inner.source();
    }
    false
}

/// `/connect/github/done?…`: what the technician is told after connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub org_id: String,
    pub org: String,
    pub repos: u64,
    pub added: u64,
    pub complete: bool,
}

/// Where the setup callback sent the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(Done),
    Pending,
    Refused(String),
    /// Anything else (the Location, verbatim).
    Other(String),
}

/// Where a browser flow through a connect callback ended: the callback's redirect, or, when
/// the callback held the connection for confirmation and the technician confirmed it (see
/// `Stack::callback`), the confirmation's status and its `done_url`.
#[derive(Debug, Clone)]
pub struct Callback {
    pub status: u16,
    pub location: String,
    /// The pending connection the callback held (`/connect/{provider}/confirm?pending=`),
    /// when it held one.
    pub held: Option<Held>,
}

/// A callback's `303` to the confirm page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// `github`, `gitlab` or `azure-devops`.
    pub provider: String,
    pub pending: String,
}

impl Held {
    /// The confirm redirect's provider and pending id, if `location` is one.
    pub fn from_location(location: &str) -> Option<Held> {
        let (path, query) = location.split_once('?')?;
        let provider = path.strip_prefix("/connect/")?.strip_suffix("/confirm")?;
        let pending = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "pending")
            .map(|(_, v)| v.into_owned())?;
        Some(Held {
            provider: provider.to_string(),
            pending,
        })
    }
}

impl Callback {
    pub fn outcome(&self) -> Outcome {
        if self.status != 303 {
            return Outcome::Other(format!("status {} ({})", self.status, self.location));
        }
        parse_location(&self.location)
    }

    /// The `done` redirect; panics with the Location otherwise.
    #[track_caller]
    pub fn done(&self) -> Done {
        match self.outcome() {
            Outcome::Done(done) => done,
            other => panic!(
                "expected /connect/github/done, got {other:?} (Location: {})",
                self.location
            ),
        }
    }

    /// The `done` redirect of a connect whose callback found and added all `repos`
    /// repositories, its enumeration complete; panics with the Location otherwise.
    #[track_caller]
    pub fn done_with_all(&self, repos: u32) -> Done {
        let done = self.done();
        let n = u64::from(repos);
        assert_eq!(
            (done.repos, done.added, done.complete),
            (n, n, true),
            "Location: {}",
            self.location
        );
        done
    }

    /// Asserts a refusal with `reason`.
    #[track_caller]
    pub fn assert_refused(&self, reason: &str) {
        assert_eq!(
            self.outcome(),
            Outcome::Refused(reason.to_string()),
            "Location: {}",
            self.location
        );
    }
}

fn parse_location(location: &str) -> Outcome {
    let (path, query) = location.split_once('?').unwrap_or((location, ""));
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let number = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    match path {
        "/connect/github/done" => {
            let done = (|| {
                Some(Done {
                    org_id: get("org_id")?,
                    org: get("org")?,
                    repos: number("repos")?,
                    added: number("added")?,
                    complete: match get("complete")?.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return None,
                    },
                })
            })();
            done.map_or_else(|| Outcome::Other(location.to_string()), Outcome::Done)
        }
        "/connect/github/pending" if query.is_empty() => Outcome::Pending,
        "/connect/github/error" => {
            get("reason").map_or_else(|| Outcome::Other(location.to_string()), Outcome::Refused)
        }
        _ => Outcome::Other(location.to_string()),
    }
}
