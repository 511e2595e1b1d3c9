//! The emulator object, request dispatch and the tiny_http worker pool.
//!
//! [`Emulator::handle`] sends `/_emulator/...` to the admin API and everything else through
//! one pipeline: pick the service by the first path segment (`/gitlab/{instance}/…` GitLab,
//! `/microsoft/{tenant}/…` the Microsoft identity platform, `/vssps/…`, `/vsaex/…` and
//! `/azure/…` Azure DevOps, `/sink/…` the sink, anything else GitHub), collect the credentials it presents,
//! identify the caller, apply a matching fault rule (delay and/or canned response), route, add
//! rate-limit headers (GitHub API only), append to the request log and check the credentials in
//! the credential ledger (see `ledger.rs`, which also describes the sink). Git smart HTTP
//! paths of any service (`git/`) take the same pipeline with the caller identified as each
//! service's git endpoint does (Basic passwords).
//!
//! Replies are sent by tiny_http: in-memory bodies as they are, streamed bodies (git packs)
//! chunked as they are read; a reply a fault rule truncates (`truncate_after_bytes`) announces
//! its full `Content-Length` (a streamed body is spooled to an unlinked temporary file to learn
//! it), sends that many bytes, and the connection is then shut down: tiny_http cannot close a
//! kept-alive connection itself, so on Unix the emulator finds the connection's socket among
//! its open file descriptors by its two addresses and shuts it down.

use std::io::{Read, Seek};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use tiny_http::{Header, Response, Server, StatusCode};
use url::Url;

use crate::auth::{parse_authorization, AppVerifier, Credential};
use crate::faults::{FaultRule, Faults, Gates, GATE_TIMEOUT};
use crate::git::{GitRequest, Host};
use crate::http::{Reply, Request};
use crate::ledger::Family;
use crate::oauth::{Bearer, Holder, Realm};
use crate::state::{LoggedRequest, Store};
use crate::{admin, azure, git, github, gitlab};

/// Who is calling, decided from the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// A valid App JWT.
    App,
    /// A valid installation token of this installation.
    Installation(u64),
    /// A valid user-to-server token of this user (login).
    User(String),
    /// Credentials that failed verification; the 401 message.
    Rejected(&'static str),
    /// A live GitLab or Microsoft access token of the service's realm.
    Provider(Holder),
    /// A GitLab or Microsoft access token past its expiry.
    Expired,
    /// A client at a GitLab or Microsoft token endpoint (checked by the endpoint).
    OAuthClient,
}

impl Caller {
    /// The `auth` value in the request log.
    fn label(&self) -> &'static str {
        match self {
            Caller::Anonymous => "none",
            Caller::App => "app_jwt",
            Caller::Installation(_) => "installation_token",
            Caller::User(_) => "user_token",
            Caller::Rejected(_) => "invalid",
            Caller::Provider(_) => "bearer",
            Caller::Expired => "expired",
            Caller::OAuthClient => "oauth_token",
        }
    }
}

/// The emulated service a (non-admin) request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service<'p> {
    GitHub,
    /// `/gitlab/{instance}/…`.
    GitLab(&'p str),
    /// `/microsoft/{tenant}/…`: the Microsoft identity platform.
    Microsoft,
    /// `/vssps/…`, `/vsaex/…` and `/azure/…`.
    AzureDevOps,
    /// `/sink` and `/sink/…`: another origin that collects credentials (see `ledger.rs`).
    Sink,
}

impl<'p> Service<'p> {
    fn of(path: &'p str) -> Self {
        let mut segments = path.trim_start_matches('/').split('/');
        match (segments.next(), segments.next()) {
            (Some("gitlab"), Some(instance)) if gitlab::valid_instance(instance) => {
                Service::GitLab(instance)
            }
            (Some("microsoft"), Some(_)) => Service::Microsoft,
            (Some("vssps" | "vsaex" | "azure"), _) => Service::AzureDevOps,
            (Some("sink"), _) => Service::Sink,
            _ => Service::GitHub,
        }
    }

    /// The family in the credential ledger.
    fn family(self) -> Family {
        match self {
            Service::GitHub => Family::GitHub,
            Service::GitLab(instance) => Family::GitLab(instance.to_string()),
            Service::Microsoft | Service::AzureDevOps => Family::Microsoft,
            Service::Sink => Family::Sink,
        }
    }

    /// Whose OAuth tokens the service accepts (`None`: GitHub's own credentials or the sink).
    fn realm(self) -> Option<Realm> {
        match self {
            Service::GitHub | Service::Sink => None,
            Service::GitLab(instance) => Some(Realm::GitLab(instance.to_string())),
            Service::Microsoft | Service::AzureDevOps => Some(Realm::Azure),
        }
    }

    fn is_token_endpoint(self, request: &Request) -> bool {
        request.method == "POST"
            && match self {
                Service::GitLab(instance) => {
                    request.path == format!("/gitlab/{instance}/oauth/token")
                }
                Service::Microsoft => request.path.ends_with("/oauth2/v2.0/token"),
                Service::GitHub | Service::AzureDevOps | Service::Sink => false,
            }
    }
}

/// Everything one emulator instance knows.
/// How many App JWTs `app_jwts` keeps.
const APP_JWTS_KEPT: usize = 100;

pub struct Emulator {
    /// `http://127.0.0.1:<port>`, used in URLs and `Link` headers.
    pub base_url: String,
    pub slug: String,
    app_id: String,
    verifier: AppVerifier,
    /// The last valid App JWTs the worker presented (requests with `x-onecode-invocation`),
    /// newest last (`GET /_emulator/app-jwts`): tests compare the worker's WebCrypto signatures
    /// with pure-Rust ones.
    app_jwts: Mutex<Vec<String>>,
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    /// Where fault rules with a `gate` hold requests.
    gates: Gates,
    /// The bare repositories behind the git routes.
    git: git::Repos,
}

impl Emulator {
    pub fn new(
        base_url: String,
        app_id: String,
        key: rsa::RsaPublicKey,
        slug: String,
        setup_url: Option<Url>,
        git_root: Option<PathBuf>,
    ) -> Self {
        Emulator {
            base_url,
            slug,
            verifier: AppVerifier::new(app_id.clone(), key),
            app_jwts: Mutex::new(Vec::new()),
            app_id,
            store: Mutex::new(Store::new(setup_url)),
            faults: Mutex::new(Faults::default()),
            gates: Gates::default(),
            git: git::Repos::new(git_root),
        }
    }

    pub fn git(&self) -> &git::Repos {
        &self.git
    }

    /// The last valid App JWTs the worker presented, oldest first.
    pub fn app_jwts(&self) -> Vec<String> {
        self.app_jwts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn gates(&self) -> &Gates {
        &self.gates
    }

    /// The App id as configured.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The App id as GitHub shows it: a number when it is one.
    pub fn app_id_json(&self) -> Value {
        self.app_id
            .parse::<u64>()
            .map_or_else(|_| json!(self.app_id), |id| json!(id))
    }

    /// Answers one request (admin or emulated endpoint).
    pub fn handle(&self, request: &Request) -> Reply {
        if request.path == "/_emulator" || request.path.starts_with("/_emulator/") {
            admin::route(self, request)
        } else {
            self.handle_service(request)
        }
    }

    fn handle_service(&self, request: &Request) -> Reply {
        // Before anything can hold it: requests logged after this one arrived have a larger seq.
        let arrived = self.store().last_seq();
        let service = Service::of(&request.path);
        let presented = crate::ledger::presented(request, |jwt| self.verifier.issued_by_app(jwt));
        let git = GitRequest::parse(&request.path).filter(|_| service != Service::Sink);
        let caller = match (&git, service.realm()) {
            (Some(git), _) => self.identify_git(&git.host, request),
            (None, None) if service == Service::Sink => Caller::Anonymous,
            (None, None) => self.identify(request),
            (None, Some(_)) if service.is_token_endpoint(request) => Caller::OAuthClient,
            (None, Some(realm)) => self.identify_bearer(&realm, request),
        };
        let installation_id = logged_installation(&caller, request);
        let fault = self.faults().take(request, installation_id);
        if let Some(rule) = &fault {
            if let Some(gate) = &rule.gate {
                self.gates.wait(gate, rule.barrier, GATE_TIMEOUT);
            }
            std::thread::sleep(rule.delay());
        }
        let mut reply = fault
            .as_ref()
            .and_then(FaultRule::reply)
            .unwrap_or_else(|| {
                let mut reply = match service {
                    _ if git.is_some() => {
                        git::serve(self, request, git.as_ref().expect("checked"), &caller)
                    }
                    Service::GitHub => github::route(self, request, &caller),
                    Service::GitLab(instance) => gitlab::route(self, request, instance, &caller),
                    Service::Microsoft => azure::route_identity(self, request),
                    Service::AzureDevOps => azure::route(self, request, &caller),
                    Service::Sink => Reply::json(200, &json!({ "ok": true })),
                };
                if let Some(rule) = &fault {
                    rule.apply(&mut reply);
                }
                reply
            });
        if service == Service::GitHub && git.is_none() {
            add_rate_limit_headers(&mut reply);
        }
        let auth = match service {
            Service::Sink if !presented.is_empty() => "collected",
            _ => caller.label(),
        };
        let mut store = self.store();
        let seq = store.log_request(LoggedRequest {
            seq: 0,
            arrived,
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            status: reply.status,
            auth,
            installation_id,
            invocation: request.header("x-onecode-invocation").map(str::to_string),
            user_agent: request.header("user-agent").map(str::to_string),
        });
        store
            .ledger
            .check(seq, request, &service.family(), &presented);
        reply
    }

    fn identify(&self, request: &Request) -> Caller {
        match parse_authorization(request.header("authorization")) {
            Credential::None => Caller::Anonymous,
            Credential::Jwt(jwt) => match self.verifier.verify(jwt, Utc::now()) {
                Ok(()) => {
                    let mut seen = self.app_jwts.lock().unwrap_or_else(PoisonError::into_inner);
                    let from_worker = request.header("x-onecode-invocation").is_some();
                    if from_worker && !seen.iter().any(|known| known == jwt) {
                        seen.push(jwt.to_string());
                        let excess = seen.len().saturating_sub(APP_JWTS_KEPT);
                        seen.drain(..excess);
                    }
                    Caller::App
                }
                Err(message) => Caller::Rejected(message),
            },
            Credential::Token(token) => self.identify_token(token),
            Credential::Malformed => Caller::Rejected("Bad credentials"),
        }
    }

    /// A GitHub installation or user-to-server token.
    fn identify_token(&self, token: &str) -> Caller {
        if token.starts_with(crate::auth::USER_TOKEN_PREFIX) {
            return self
                .store()
                .token_user(token)
                .map_or(Caller::Rejected("Bad credentials"), |u| {
                    Caller::User(u.login.clone())
                });
        }
        self.store()
            .token_installation(token, Utc::now())
            .map_or(Caller::Rejected("Bad credentials"), Caller::Installation)
    }

    /// The caller of a git request, as each service's git endpoint reads credentials: GitHub
    /// the password of Basic (or `token`/`Bearer` like its API), GitLab the password of Basic
    /// with user name `oauth2`, Azure DevOps a Bearer token (see `git/mod.rs`).
    fn identify_git(&self, host: &Host, request: &Request) -> Caller {
        let basic = git::basic_credentials(request.header("authorization"));
        match (host, basic) {
            // `x-access-token:<token>`, or the token as user name (`<token>:x-oauth-basic`).
            (Host::GitHub { .. }, Some((user, password)))
                if password.is_empty() || password == "x-oauth-basic" =>
            {
                self.identify_token(&user)
            }
            (Host::GitHub { .. }, Some((_, password))) => self.identify_token(&password),
            (Host::GitHub { .. }, None) => self.identify(request),
            (Host::GitLab { instance, .. }, Some((user, password))) if user == "oauth2" => {
                let realm = Realm::GitLab(instance.clone());
                self.bearer_caller(&realm, &password)
            }
            (Host::GitLab { .. }, _) if request.header("authorization").is_none() => {
                Caller::Anonymous
            }
            (Host::GitLab { .. }, _) => Caller::Rejected("HTTP Basic: Access denied"),
            (Host::Azure { .. }, _) => self.identify_bearer(&Realm::Azure, request),
        }
    }

    /// What an access token is in `realm`.
    fn bearer_caller(&self, realm: &Realm, token: &str) -> Caller {
        match self.store().provider_oauth.bearer(realm, token, Utc::now()) {
            Bearer::Live(holder) => Caller::Provider(holder),
            Bearer::Expired => Caller::Expired,
            Bearer::Unknown => Caller::Rejected("Bad credentials"),
        }
    }

    /// A GitLab or Microsoft bearer token, checked against the realm's tokens.
    fn identify_bearer(&self, realm: &Realm, request: &Request) -> Caller {
        match parse_authorization(request.header("authorization")) {
            Credential::None => Caller::Anonymous,
            Credential::Jwt(token) | Credential::Token(token) => self.bearer_caller(realm, token),
            Credential::Malformed => Caller::Rejected("Bad credentials"),
        }
    }
}

/// The installation a request concerns: the token's, or the one in an `/app/installations/{id}` path.
fn logged_installation(caller: &Caller, request: &Request) -> Option<u64> {
    match caller {
        Caller::Installation(id) => Some(*id),
        _ => request
            .path
            .strip_prefix("/app/installations/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|id| id.parse().ok()),
    }
}

/// GitHub's rate-limit headers with generous fixed values, unless already set by a fault.
fn add_rate_limit_headers(reply: &mut Reply) {
    let reset = (Utc::now() + Duration::hours(1)).timestamp().to_string();
    let defaults = [
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4999"),
        ("x-ratelimit-used", "1"),
        ("x-ratelimit-resource", "core"),
        ("x-ratelimit-reset", reset.as_str()),
    ];
    for (name, value) in defaults {
        if reply.header(name).is_none() {
            reply.headers.push((name.into(), value.into()));
        }
    }
}

/// Serves requests on `threads` worker threads until the server stops.
pub fn serve(server: &Server, emulator: &Emulator, threads: usize) {
    let local = server.server_addr().to_ip();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                server
                    .incoming_requests()
                    .for_each(|r| serve_one(emulator, r, local))
            });
        }
    });
}

/// Answers one tiny_http request and logs `METHOD target -> status` to stderr.
fn serve_one(emulator: &Emulator, mut incoming: tiny_http::Request, local: Option<SocketAddr>) {
    let started = Instant::now();
    let mut request = Request::new(incoming.method().as_str(), incoming.url());
    request.headers = incoming
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.to_string(),
            )
        })
        .collect();
    let reply = match incoming.as_reader().read_to_end(&mut request.body) {
        Ok(_) => emulator.handle(&request),
        Err(e) => Reply::error(400, &format!("github-emulator: cannot read body: {e}")),
    };
    eprintln!(
        "{} {} -> {} ({} ms)",
        request.method,
        request.target(),
        reply.status,
        started.elapsed().as_millis()
    );
    let peer = incoming.remote_addr().copied();
    let truncated = reply.truncate_after.is_some();
    let sent = into_response(reply).and_then(|response| incoming.respond(response));
    if let Err(e) = sent {
        eprintln!("github-emulator: failed to send response: {e}");
    }
    if truncated {
        if let (Some(local), Some(peer)) = (local, peer) {
            close_connection(local, peer);
        }
    }
}

type Body = Box<dyn Read + Send>;

/// The tiny_http response of a reply: its body from memory or its stream; truncated by a fault
/// rule, the full length announced and only the first bytes sent.
fn into_response(reply: Reply) -> std::io::Result<Response<Body>> {
    let stream = reply
        .stream
        .as_ref()
        .and_then(|s| s.take().map(|r| (r, s.len)));
    let (body, len): (Body, Option<u64>) = match stream {
        Some((reader, len)) => (reader, len),
        None => {
            let len = reply.body.len() as u64;
            (Box::new(std::io::Cursor::new(reply.body)), Some(len))
        }
    };
    let mut headers: Vec<Header> = Vec::new();
    for (name, value) in &reply.headers {
        match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(header) => headers.push(header),
            Err(()) => eprintln!("github-emulator: dropping invalid header {name:?}"),
        }
    }
    let status = StatusCode(reply.status);
    let Some(limit) = reply.truncate_after else {
        let len = len.and_then(|l| usize::try_from(l).ok());
        return Ok(Response::new(status, headers, body, len, None));
    };
    let (body, full) = match len {
        Some(full) => (body, full),
        None => spool(body)?,
    };
    headers.push(Header::from_bytes("connection", "close").expect("valid header"));
    let full = usize::try_from(full).unwrap_or(usize::MAX);
    let cut: Body = Box::new(body.take(limit));
    Ok(Response::new(status, headers, cut, Some(full), None).with_chunked_threshold(usize::MAX))
}

/// Copies a body of unknown length to an unlinked temporary file: the file, rewound, and the
/// length.
fn spool(mut body: Body) -> std::io::Result<(Body, u64)> {
    let path = std::env::temp_dir().join(format!(
        "github-emulator-spool-{}-{}",
        std::process::id(),
        crate::oauth::random_hex(8)
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    let len = std::io::copy(&mut body, &mut file)?;
    file.rewind()?;
    Ok((Box::new(file), len))
}

/// Shuts down the emulator's socket connected from `peer` to `local`, so a client waiting for
/// the rest of a truncated body sees the connection close. tiny_http offers no way to close a
/// kept-alive connection, so the socket is looked up among the process's file descriptors.
#[cfg(unix)]
fn close_connection(local: SocketAddr, peer: SocketAddr) {
    use std::mem::ManuallyDrop;
    use std::net::{Shutdown, TcpStream};
    use std::os::fd::{FromRawFd, RawFd};

    let listing = std::fs::read_dir("/proc/self/fd").or_else(|_| std::fs::read_dir("/dev/fd"));
    let Ok(entries) = listing else {
        return;
    };
    let fds: Vec<RawFd> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        // SAFETY: the descriptor is borrowed, never closed (`ManuallyDrop`), and only used for
        // getsockname/getpeername/shutdown, which fail harmlessly on a descriptor that is not
        // a socket or was closed meanwhile; only the socket with both addresses is shut down.
        let socket = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
        if socket.peer_addr().ok() == Some(peer) && socket.local_addr().ok() == Some(local) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

#[cfg(not(unix))]
fn close_connection(_local: SocketAddr, _peer: SocketAddr) {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::tests::{dev_key, sign, APP_ID};

    pub(crate) fn emulator() -> Emulator {
        Emulator::new(
            "http://127.0.0.1:1".into(),
            APP_ID.into(),
            dev_key().to_public_key(),
            "the-one-code".into(),
            None,
            None,
        )
    }

    /// Sends one request through [`Emulator::handle`]: status, JSON body (or null), reply.
    pub(crate) fn call(
        em: &Emulator,
        method: &str,
        target: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, Value, Reply) {
        let mut request = Request::new(method, target).with_body(body);
        if let Some(auth) = auth {
            request = request.with_header("Authorization", auth);
        }
        let reply = em.handle(&request);
        let json = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (reply.status, json, reply)
    }

    /// The query parameters of a redirect's `Location`.
    /// An admin call (`/_emulator/{path}`) that must succeed; its JSON answer.
    pub(crate) fn admin_call(em: &Emulator, method: &str, path: &str, body: Value) -> Value {
        let (status, reply, _) = call(
            em,
            method,
            &format!("/_emulator/{path}"),
            None,
            &body.to_string(),
        );
        assert_eq!(status, 200, "{method} {path}: {reply}");
        reply
    }

    pub(crate) fn location_params(reply: &Reply) -> std::collections::HashMap<String, String> {
        let location = reply.header("location").expect("a Location header");
        Url::parse(location)
            .expect("an absolute Location")
            .query_pairs()
            .into_owned()
            .collect()
    }

    pub(crate) fn jwt() -> String {
        format!("Bearer {}", sign(&dev_key(), APP_ID, -60, 540))
    }

    pub(crate) fn install(em: &Emulator, id: u64, body: &str) {
        let (status, _, _) = call(
            em,
            "PUT",
            &format!("/_emulator/installations/{id}"),
            None,
            body,
        );
        assert_eq!(status, 200);
    }

    pub(crate) fn token_for(em: &Emulator, id: u64) -> String {
        let (status, body, _) = call(
            em,
            "POST",
            &format!("/app/installations/{id}/access_tokens"),
            Some(&jwt()),
            "",
        );
        assert_eq!(status, 201, "{body}");
        format!("token {}", body["token"].as_str().unwrap())
    }

    pub(crate) const ACME: &str = r#"{"account":{"login":"acme","id":1001,"type":"Organization","name":"Acme Corp"},"repositories":3}"#;

    #[test]
    fn installation_lookup_requires_a_valid_jwt() {
        let em = emulator();
        install(&em, 5, ACME);
        let (status, body, _) = call(&em, "GET", "/app/installations/5", Some(&jwt()), "");
        assert_eq!(status, 200);
        assert_eq!(body["account"]["login"], "acme");
        assert_eq!(body["app_id"], 424242);
        assert_eq!(body["suspended_at"], Value::Null);
        assert_eq!(
            body["account"]["avatar_url"],
            "https://avatars.githubusercontent.com/u/1001?v=4"
        );

        let (status, _, _) = call(&em, "GET", "/app/installations/6", Some(&jwt()), "");
        assert_eq!(status, 404);
        let (status, body, _) = call(&em, "GET", "/app/installations/5", None, "");
        assert_eq!(
            (status, body["message"].as_str()),
            (401, Some(crate::auth::DECODE_FAILED))
        );
        let token = token_for(&em, 5);
        let (status, _, _) = call(&em, "GET", "/app/installations/5", Some(&token), "");
        assert_eq!(status, 401);
    }

    #[test]
    fn suspended_installations_refuse_tokens() {
        let em = emulator();
        install(&em, 5, ACME);
        let token = token_for(&em, 5);
        let (status, body, _) = call(
            &em,
            "PATCH",
            "/_emulator/installations/5",
            None,
            r#"{"suspended":true}"#,
        );
        assert_eq!((status, &body["suspended"]), (200, &json!(true)));
        let (status, body, _) = call(
            &em,
            "POST",
            "/app/installations/5/access_tokens",
            Some(&jwt()),
            "",
        );
        assert_eq!(
            (status, body["message"].as_str()),
            (403, Some("This installation has been suspended"))
        );
        let (status, _, _) = call(&em, "GET", "/installation/repositories", Some(&token), "");
        assert_eq!(status, 403);
        let (_, body, _) = call(&em, "GET", "/app/installations/5", Some(&jwt()), "");
        assert!(body["suspended_at"].is_string());
    }

    #[test]
    fn deleted_installations_disappear_with_their_tokens() {
        let em = emulator();
        install(&em, 5, ACME);
        let token = token_for(&em, 5);
        let (_, body, _) = call(&em, "DELETE", "/_emulator/installations/5", None, "");
        assert_eq!(body["deleted"], true);
        let (status, _, _) = call(&em, "GET", "/app/installations/5", Some(&jwt()), "");
        assert_eq!(status, 404);
        let (status, body, _) = call(&em, "GET", "/installation/repositories", Some(&token), "");
        assert_eq!(
            (status, body["message"].as_str()),
            (401, Some("Bad credentials"))
        );
    }

    #[test]
    fn accounts_are_visible_to_their_own_installation_only() {
        let em = emulator();
        install(&em, 5, ACME);
        install(
            &em,
            6,
            r#"{"account":{"login":"octo","id":2002,"type":"User"}}"#,
        );
        let acme = token_for(&em, 5);
        let octo = token_for(&em, 6);
        let (status, body, _) = call(&em, "GET", "/orgs/ACME", Some(&acme), "");
        assert_eq!(status, 200);
        assert_eq!(
            (body["login"].as_str(), body["name"].as_str()),
            (Some("acme"), Some("Acme Corp"))
        );
        assert_eq!(call(&em, "GET", "/orgs/acme", Some(&octo), "").0, 404);
        assert_eq!(call(&em, "GET", "/orgs/octo", Some(&octo), "").0, 404);
        let (status, body, _) = call(&em, "GET", "/users/octo", Some(&octo), "");
        assert_eq!(
            (status, &body["type"], &body["name"]),
            (200, &json!("User"), &Value::Null)
        );
        assert_eq!(call(&em, "GET", "/orgs/acme", None, "").0, 401);
    }

    #[test]
    fn repository_changes_continue_numbering() {
        let em = emulator();
        install(&em, 5, ACME);
        let (_, body, _) = call(
            &em,
            "POST",
            "/_emulator/installations/5/repositories",
            None,
            r#"{"add":2,"add_names":["docs"],"remove_ids":[5000001]}"#,
        );
        assert_eq!(body["repository_count"], 5);
        let token = token_for(&em, 5);
        let (_, body, reply) = call(&em, "GET", "/installation/repositories", Some(&token), "");
        let names: Vec<&str> = body["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "acme-repo-00002",
                "acme-repo-00003",
                "acme-repo-00004",
                "acme-repo-00005",
                "docs"
            ]
        );
        assert_eq!(body["repositories"][4]["id"], 5_000_006);
        assert_eq!(body["repositories"][0]["full_name"], "acme/acme-repo-00002");
        assert_eq!(reply.header("link"), None);
        assert_eq!(reply.header("x-ratelimit-limit"), Some("5000"));
    }

    #[test]
    fn named_repositories_keep_given_fields() {
        let em = emulator();
        install(
            &em,
            5,
            r#"{"account":{"login":"acme","id":1},"repository_selection":"selected",
                "repositories":[{"name":"a","id":77,"private":true,"default_branch":"trunk"},{"name":"b"}]}"#,
        );
        let token = token_for(&em, 5);
        let (_, body, _) = call(&em, "GET", "/installation/repositories", Some(&token), "");
        assert_eq!(body["repository_selection"], "selected");
        let a = &body["repositories"][0];
        assert_eq!(
            (
                &a["id"],
                &a["private"],
                &a["default_branch"],
                &a["visibility"]
            ),
            (&json!(77), &json!(true), &json!("trunk"), &json!("private"))
        );
        assert_eq!(body["repositories"][1]["id"], 5_000_001);
    }

    #[test]
    fn oauth_during_installation_identifies_the_user_once_per_code() {
        let em = emulator();
        install(&em, 5, ACME);
        call(
            &em,
            "PUT",
            "/_emulator/setup-url",
            None,
            r#"{"url":"http://127.0.0.1:8787/github/setup"}"#,
        );
        call(
            &em,
            "PUT",
            "/_emulator/oauth",
            None,
            r#"{"client_id":"Iv1.x","client_secret":"s3","user":{"login":"alice","id":77}}"#,
        );
        let (status, _, reply) = call(
            &em,
            "GET",
            "/apps/the-one-code/installations/new?state=s&target=5",
            None,
            "",
        );
        assert_eq!(status, 302);
        let location = reply.header("location").unwrap().to_string();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code on the redirect");
        let exchange = |secret: &str, code: &str| {
            call(
                &em,
                "POST",
                "/login/oauth/access_token",
                None,
                &format!("client_id=Iv1.x&client_secret={secret}&code={code}"),
            )
            .1
        };
        assert_eq!(
            exchange("wrong", &code)["error"],
            "incorrect_client_credentials"
        );
        let token = exchange("s3", &code)["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(token.starts_with("ghu_"));
        assert_eq!(
            exchange("s3", &code)["error"],
            "bad_verification_code",
            "a code works once"
        );
        let (status, user, _) = call(&em, "GET", "/user", Some(&format!("Bearer {token}")), "");
        assert_eq!(
            (status, user["login"].as_str(), user["id"].as_u64()),
            (200, Some("alice"), Some(77))
        );
        assert_eq!(
            call(&em, "GET", "/user", Some("Bearer ghu_nope"), "").0,
            401
        );
        assert!(
            em.store().issued_tokens().contains(&token),
            "listed for leak scans"
        );
        let (_, listed, _) = call(
            &em,
            "GET",
            "/user/installations",
            Some(&format!("Bearer {token}")),
            "",
        );
        assert_eq!(listed["total_count"], 1);
        assert_eq!(listed["installations"][0]["id"], 5);
    }

    #[test]
    fn install_page_lists_installations_and_redirects() {
        let em = emulator();
        install(&em, 5, ACME);
        let (status, body, _) = call(
            &em,
            "GET",
            "/apps/the-one-code/installations/new?state=s1",
            None,
            "",
        );
        assert_eq!(status, 500);
        assert!(body["message"].as_str().unwrap().contains("setup URL"));

        call(
            &em,
            "PUT",
            "/_emulator/setup-url",
            None,
            r#"{"url":"http://127.0.0.1:8787/github/setup"}"#,
        );
        let (status, _, reply) = call(
            &em,
            "GET",
            "/apps/the-one-code/installations/new?state=a%20b%26c",
            None,
            "",
        );
        assert_eq!(status, 200);
        let html = String::from_utf8(reply.body).unwrap();
        assert!(html.contains(
            "href=\"http://127.0.0.1:8787/github/setup?installation_id=5&amp;setup_action=install&amp;state=a+b%26c\">Install on acme</a>"
        ), "{html}");
        assert!(html.contains(
            "setup_action=request&amp;state=a+b%26c\">Request approval from an owner</a>"
        ));

        let (status, _, reply) = call(
            &em,
            "GET",
            "/apps/the-one-code/installations/new?state=xyz&target=5",
            None,
            "",
        );
        assert_eq!(status, 302);
        assert_eq!(
            reply.header("location"),
            Some("http://127.0.0.1:8787/github/setup?installation_id=5&setup_action=install&state=xyz")
        );
        assert_eq!(
            call(
                &em,
                "GET",
                "/apps/the-one-code/installations/new?target=9",
                None,
                ""
            )
            .0,
            404
        );
        assert_eq!(
            call(&em, "GET", "/apps/other-app/installations/new", None, "").0,
            404
        );
    }

    #[test]
    fn unknown_routes_name_the_request() {
        let em = emulator();
        let (status, body, _) = call(&em, "GET", "/foo?x=1", None, "");
        assert_eq!(status, 404);
        assert_eq!(body["message"], "github-emulator: no route for GET /foo");
        let (status, body, _) = call(&em, "POST", "/_emulator/nope", None, "");
        assert_eq!(
            (status, body["message"].as_str()),
            (
                404,
                Some("github-emulator: no route for POST /_emulator/nope")
            )
        );
        let (status, _, _) = call(
            &em,
            "PUT",
            "/_emulator/installations/1",
            None,
            r#"{"account":{"login":"x"}}"#,
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn request_log_records_auth_invocation_and_faults() {
        let em = emulator();
        install(&em, 5, ACME);
        let token = token_for(&em, 5);
        call(
            &em,
            "PUT",
            "/_emulator/faults",
            None,
            r#"[{"path_prefix":"/installation/repositories","status":502,"times":1,"headers":{"retry-after":"1"}}]"#,
        );
        let request = Request::new("GET", "/installation/repositories?page=2")
            .with_header("Authorization", &token)
            .with_header("X-OneCode-Invocation", "inv-1")
            .with_header("User-Agent", "onecode-edge/test");
        let faulted = em.handle(&request);
        assert_eq!(
            (faulted.status, faulted.header("retry-after")),
            (502, Some("1"))
        );
        assert_eq!(faulted.header("x-ratelimit-remaining"), Some("4999"));
        assert_eq!(em.handle(&request).status, 200);
        call(
            &em,
            "GET",
            "/installation/repositories",
            Some("token ghs_bogus"),
            "",
        );

        let (_, log, _) = call(&em, "GET", "/_emulator/requests", None, "");
        let log = log.as_array().unwrap();
        assert_eq!(log.len(), 4);
        assert_eq!(log[0]["auth"], "app_jwt");
        assert_eq!(log[0]["installation_id"], 5);
        assert_eq!(
            log[1],
            json!({"seq": 2, "arrived": 1, "method": "GET", "path": "/installation/repositories", "query": "page=2",
                   "status": 502, "auth": "installation_token", "installation_id": 5,
                   "invocation": "inv-1", "user_agent": "onecode-edge/test"})
        );
        assert_eq!(log[2]["status"], 200);
        assert_eq!(
            (
                &log[3]["auth"],
                &log[3]["status"],
                &log[3]["installation_id"]
            ),
            (&json!("invalid"), &json!(401), &Value::Null)
        );

        let (_, tokens, _) = call(&em, "GET", "/_emulator/tokens", None, "");
        assert_eq!(tokens, json!([token.trim_start_matches("token ")]));
        call(&em, "DELETE", "/_emulator/requests", None, "");
        assert_eq!(
            call(&em, "GET", "/_emulator/requests", None, "").1,
            json!([])
        );
    }
}
