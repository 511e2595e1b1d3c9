//! Spawns the real binary on a free loopback port and walks the flows the gateway uses:
//! configure an installation, authenticate as the App, mint an installation token, page
//! through 250 repositories by following `Link` headers, and exercise faults, the
//! install-page redirect, concurrency under a delayed response and the request log; then the
//! GitLab and Microsoft / Azure DevOps connect flows (authorization code + PKCE, offset and
//! keyset pagination, accounts, projects, repositories) over real HTTP; and the credential
//! ledger with the sink as the target of a redirect.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use chrono::Utc;
use jwt_compact::{alg::Rsa, AlgorithmExt, Claims, Header};
use rsa::pkcs1::DecodeRsaPrivateKey;
use serde_json::{json, Value};

const APP_ID: &str = "424242";
const DEV_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dev/github-app-dev-key.pem");

/// The running emulator; killed when dropped.
struct Emulator {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    link: Option<String>,
    location: Option<String>,
    body: Value,
}

impl Emulator {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_github-emulator"))
            .args(["--port", "0", "--app-id", APP_ID, "--app-key", DEV_KEY])
            .args(["--setup-url", "http://127.0.0.1:8787/github/setup"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn github-emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("github-emulator listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(base.starts_with("http://127.0.0.1:"));
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        Emulator { child, base, agent }
    }

    fn call(
        &self,
        method: &str,
        path_or_url: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let mut request = self
            .agent
            .request(method, &url)
            .set("x-onecode-invocation", "walkthrough");
        if let Some(auth) = auth {
            request = request.set("Authorization", auth);
        }
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("{method} {url}: {e}"),
        };
        Answer {
            status: response.status(),
            link: response.header("link").map(str::to_string),
            location: response.header("location").map(str::to_string),
            body: response.into_json().unwrap_or(Value::Null),
        }
    }

    fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let answer = self.call(method, path, None, Some(body));
        assert_eq!(answer.status, 200, "{method} {path}: {}", answer.body);
        answer.body
    }
}

fn app_jwt() -> String {
    let pem = std::fs::read_to_string(DEV_KEY).unwrap();
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap();
    let now = Utc::now();
    let mut claims = Claims::new(json!({ "iss": APP_ID }));
    claims.issued_at = Some(now - chrono::Duration::seconds(60));
    claims.expiration = Some(now + chrono::Duration::seconds(540));
    let jwt = Rsa::rs256().token(&Header::empty(), &claims, &key).unwrap();
    format!("Bearer {jwt}")
}

fn next_link(link: &str) -> Option<String> {
    link.split(", ").find_map(|part| {
        let (url, rel) = part.split_once("; ")?;
        (rel == "rel=\"next\"").then(|| url.trim_matches(['<', '>']).to_string())
    })
}

#[test]
fn gateway_flows_against_the_binary() {
    let emulator = Emulator::start();
    assert_eq!(
        emulator.call("GET", "/_emulator/health", None, None).body,
        json!({"ok": true})
    );

    let summary = emulator.admin(
        "PUT",
        "/_emulator/installations/77",
        json!({"account": {"login": "acme", "id": 1001, "type": "Organization", "name": "Acme Corp"},
               "repositories": 250}),
    );
    assert_eq!(summary["repository_count"], 250);

    // App JWT: installation lookup and token minting.
    let jwt = app_jwt();
    let installation = emulator.call("GET", "/app/installations/77", Some(&jwt), None);
    assert_eq!(installation.status, 200);
    assert_eq!(installation.body["account"]["login"], "acme");
    assert_eq!(installation.body["repository_selection"], "all");
    assert_eq!(
        emulator
            .call("GET", "/app/installations/78", Some(&jwt), None)
            .status,
        404
    );
    assert_eq!(
        emulator
            .call("GET", "/app/installations/77", Some("Bearer a.b.c"), None)
            .status,
        401
    );

    let minted = emulator.call(
        "POST",
        "/app/installations/77/access_tokens",
        Some(&jwt),
        None,
    );
    assert_eq!(minted.status, 201);
    let token = minted.body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ghs_") && token.len() == 40);
    assert!(minted.body["expires_at"].as_str().unwrap().ends_with('Z'));
    let auth = format!("token {token}");

    // 502 twice on page 2, then success: the retry sees the same page.
    emulator.admin(
        "PUT",
        "/_emulator/faults",
        json!([{"method": "GET", "path_prefix": "/installation/repositories",
                "query_contains": "page=2", "status": 502, "times": 2}]),
    );

    // Page through all repositories following Link headers.
    let mut url = format!("{}/installation/repositories?per_page=100", emulator.base);
    let mut names = Vec::new();
    let mut pages = 0;
    let mut failures = 0;
    loop {
        let page = emulator.call("GET", &url, Some(&auth), None);
        if page.status == 502 {
            failures += 1;
            continue;
        }
        assert_eq!(page.status, 200, "{url}: {}", page.body);
        assert_eq!(page.body["total_count"], 250);
        pages += 1;
        names.extend(
            page.body["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string()),
        );
        if pages == 1 {
            assert_eq!(
                page.link.as_deref(),
                Some(
                    format!(
                        "<{0}/installation/repositories?per_page=100&page=2>; rel=\"next\", \
                         <{0}/installation/repositories?per_page=100&page=3>; rel=\"last\"",
                        emulator.base
                    )
                    .as_str()
                )
            );
        }
        match page.link.as_deref().and_then(next_link) {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!((pages, failures, names.len()), (3, 2, 250));
    assert_eq!(names[0], "acme-repo-00001");
    assert_eq!(names[249], "acme-repo-00250");

    // The org itself, through the installation token.
    let org = emulator.call("GET", "/orgs/acme", Some(&auth), None);
    assert_eq!((org.status, &org.body["name"]), (200, &json!("Acme Corp")));

    // The install page redirects straight to the gateway's setup URL with `target`.
    let redirect = emulator.call(
        "GET",
        "/apps/the-one-code/installations/new?state=st8&target=77",
        None,
        None,
    );
    assert_eq!(redirect.status, 302);
    assert_eq!(
        redirect.location.as_deref(),
        Some(
            "http://127.0.0.1:8787/github/setup?installation_id=77&setup_action=install&state=st8"
        )
    );

    // A slow response does not hold up other requests: one held at a gate (in flight, as the
    // gate shows) while another is answered, and only then let go.
    emulator.admin(
        "PUT",
        "/_emulator/faults",
        json!([{"path_prefix": "/users/", "gate": "slow", "times": 1}]),
    );
    let held = |emulator: &Emulator| {
        emulator.call("GET", "/_emulator/gates", None, None).body["slow"]["waiting"].clone()
    };
    let (slow, other) = thread::scope(|scope| {
        let slow = scope.spawn(|| emulator.call("GET", "/users/acme", Some(&auth), None));
        let deadline = Instant::now() + Duration::from_secs(30);
        while held(&emulator) != json!(1) {
            assert!(
                Instant::now() < deadline,
                "the slow request never reached its gate"
            );
            thread::yield_now();
        }
        let other = emulator.call("GET", "/orgs/acme", Some(&auth), None);
        assert_eq!(other.status, 200);
        assert_eq!(held(&emulator), json!(1), "the slow request is still held");
        assert!(!slow.is_finished());
        emulator.call("POST", "/_emulator/gates/slow", None, None);
        (slow.join().unwrap(), other)
    });
    assert_eq!((slow.status, other.status), (200, 200));
    // The log agrees: the other request arrived after the slow one and was answered first.
    let log = emulator.call("GET", "/_emulator/requests", None, None).body;
    let entry = |path: &str| {
        log.as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r["path"] == path)
            .cloned()
            .unwrap()
    };
    let (slow_entry, other_entry) = (entry("/users/acme"), entry("/orgs/acme"));
    assert!(other_entry["seq"].as_u64() < slow_entry["seq"].as_u64());
    assert!(slow_entry["arrived"].as_u64() < other_entry["seq"].as_u64());
    emulator.call("DELETE", "/_emulator/faults", None, None);

    // The request log and token list.
    let log = emulator.call("GET", "/_emulator/requests", None, None).body;
    let log = log.as_array().unwrap();
    let repo_calls = log
        .iter()
        .filter(|r| r["path"] == "/installation/repositories")
        .count();
    assert_eq!(repo_calls, 5);
    assert!(log.iter().all(|r| r["invocation"] == "walkthrough"));
    assert!(log
        .iter()
        .filter(|r| r["path"] == "/installation/repositories")
        .all(|r| r["auth"] == "installation_token" && r["installation_id"] == 77));
    assert_eq!(
        emulator.call("GET", "/_emulator/tokens", None, None).body,
        json!([token])
    );

    let unknown = emulator.call("GET", "/repos/acme/x", Some(&auth), None);
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.body["message"],
        "github-emulator: no route for GET /repos/acme/x"
    );
}

/// RFC 7636 appendix B: a PKCE verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

impl Emulator {
    /// Follows nothing: the `Location` of a 302 answer to `GET path`, and its `code`.
    fn authorize(&self, path: &str) -> String {
        let answer = self.call("GET", path, None, None);
        assert_eq!(answer.status, 302, "{path}: {}", answer.body);
        let location = url::Url::parse(answer.location.as_deref().unwrap()).unwrap();
        location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"))
    }

    /// `POST path` with a form body; status and JSON.
    fn form(&self, path: &str, form: &str) -> (u16, Value) {
        let result = self
            .agent
            .post(&format!("{}{path}", self.base))
            .set("content-type", "application/x-www-form-urlencoded")
            .send_string(form);
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("POST {path}: {e}"),
        };
        (response.status(), response.into_json().unwrap())
    }

    /// `GET url` with a bearer token: status, chosen headers and JSON.
    fn bearer(
        &self,
        url: &str,
        token: &str,
        headers: &[&str],
    ) -> (u16, Vec<Option<String>>, Value) {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let response = match self
            .agent
            .get(&url)
            .set("Authorization", &format!("Bearer {token}"))
            .call()
        {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("GET {url}: {e}"),
        };
        let picked = headers
            .iter()
            .map(|h| response.header(h).map(str::to_string))
            .collect();
        (response.status(), picked, response.into_json().unwrap())
    }
}

#[test]
fn gitlab_and_azure_flows_against_the_binary() {
    let emulator = Emulator::start();
    let callback = "http://127.0.0.1:8787/oauth/callback";

    // GitLab: authorize, exchange, then list groups and every project through keyset links.
    emulator.admin(
        "PUT",
        "/_emulator/gitlab/com/oauth",
        json!({"client_id": "gl", "client_secret": "s", "redirect_uris": [callback]}),
    );
    emulator.admin(
        "PUT",
        "/_emulator/gitlab/com/users/7001",
        json!({"username": "dev"}),
    );
    emulator.admin(
        "PUT",
        "/_emulator/gitlab/com/groups/1",
        json!({"name": "Initech", "path": "initech", "members": [7001], "projects": 12}),
    );
    emulator.admin(
        "PUT",
        "/_emulator/gitlab/com/groups/2",
        json!({"name": "Platform", "path": "platform", "parent_id": 1, "projects": 5}),
    );
    let code = emulator.authorize(&format!(
        "/gitlab/com/oauth/authorize?client_id=gl&redirect_uri={callback}&response_type=code&state=s\
         &scope=read_api&code_challenge={CHALLENGE}&code_challenge_method=S256"
    ));
    let (status, tokens) = emulator.form(
        "/gitlab/com/oauth/token",
        &format!("grant_type=authorization_code&client_id=gl&client_secret=s&code={code}&redirect_uri={callback}&code_verifier={VERIFIER}"),
    );
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let (status, headers, groups) = emulator.bearer(
        "/gitlab/com/api/v4/groups?per_page=1&order_by=id",
        access,
        &["x-total", "x-next-page", "link"],
    );
    assert_eq!(
        (status, groups[0]["full_path"].as_str()),
        (200, Some("initech"))
    );
    assert_eq!(headers[..2], [Some("2".to_string()), Some("2".to_string())]);
    assert!(headers[2].as_deref().unwrap().contains("rel=\"last\""));
    let mut url = "/gitlab/com/api/v4/groups/initech/projects?include_subgroups=true&per_page=10&order_by=id&sort=asc&pagination=keyset".to_string();
    let mut projects = 0;
    loop {
        let (status, headers, page) = emulator.bearer(&url, access, &["link"]);
        assert_eq!(status, 200, "{page}");
        projects += page.as_array().unwrap().len();
        match headers[0].as_deref().and_then(next_link) {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(projects, 17);

    // Microsoft and Azure DevOps: authorize, exchange, accounts, projects, repositories.
    let dev = "0d5e1c9a-0000-4000-8000-00000000d001";
    emulator.admin(
        "PUT",
        "/_emulator/azure/oauth",
        json!({"client_id": "az", "client_secret": "s", "redirect_uris": [callback]}),
    );
    emulator.admin(
        "PUT",
        &format!("/_emulator/azure/users/{dev}"),
        json!({"displayName": "Dev Azure"}),
    );
    emulator.admin(
        "PUT",
        "/_emulator/azure/orgs/contoso",
        json!({"members": [dev], "projects": [{"name": "web", "repositories": 4}]}),
    );
    let code = emulator.authorize(&format!(
        "/microsoft/organizations/oauth2/v2.0/authorize?client_id=az&redirect_uri={callback}&response_type=code\
         &response_mode=query&scope=499b84ac-1321-427f-aa17-267ca6975798%2F.default%20offline_access\
         &code_challenge={CHALLENGE}&code_challenge_method=S256"
    ));
    let (status, tokens) = emulator.form(
        "/microsoft/organizations/oauth2/v2.0/token",
        &format!("grant_type=authorization_code&client_id=az&client_secret=s&code={code}&redirect_uri={callback}&code_verifier={VERIFIER}"),
    );
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("azemu-rt-"));
    let access = tokens["access_token"].as_str().unwrap();
    let (status, _, accounts) = emulator.bearer(
        &format!("/vssps/_apis/accounts?memberId={dev}&api-version=7.1"),
        access,
        &[],
    );
    assert_eq!(
        (status, &accounts["value"][0]["accountName"]),
        (200, &json!("contoso"))
    );
    let (_, _, repos) = emulator.bearer(
        "/azure/contoso/web/_apis/git/repositories?api-version=7.1",
        access,
        &[],
    );
    assert_eq!(repos["count"], 4);
    let (status, headers, _) = emulator.bearer(
        "/azure/contoso/_apis/projects",
        "azemu-at-bogus",
        &["www-authenticate"],
    );
    assert_eq!((status, headers[0].as_deref()), (401, Some("Bearer")));

    let log = emulator.call("GET", "/_emulator/requests", None, None).body;
    let auths: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["auth"].as_str().unwrap())
        .collect();
    assert_eq!(auths.iter().filter(|a| **a == "oauth_token").count(), 2);
    assert_eq!(auths.iter().filter(|a| **a == "bearer").count(), 3 + 2);
    let grants = emulator
        .call("GET", "/_emulator/oauth-grants", None, None)
        .body;
    assert_eq!(grants.as_array().unwrap().len(), 2);
}

/// The credential ledger and the sink over real HTTP: a fault redirects a GitLab API call to
/// the sink; a client that drops `Authorization` on redirects leaves no trace there, one that
/// keeps it for the same host is caught, and a misplaced credential shows up without its value.
#[test]
fn credential_ledger_and_sink_over_http() {
    let emulator = Emulator::start();
    let callback = "http://127.0.0.1:8787/oauth/callback";
    emulator.admin(
        "PUT",
        "/_emulator/gitlab/com/oauth",
        json!({"client_id": "gl", "client_secret": "gl-s3cret", "redirect_uris": [callback]}),
    );
    emulator.admin(
        "PUT",
        "/_emulator/gitlab/com/users/7001",
        json!({"username": "dev"}),
    );
    let code = emulator.authorize(&format!(
        "/gitlab/com/oauth/authorize?client_id=gl&redirect_uri={callback}&response_type=code\
         &scope=api&code_challenge={CHALLENGE}&code_challenge_method=S256"
    ));
    let (status, body) = emulator.form(
        "/gitlab/com/oauth/token",
        &format!(
            "grant_type=authorization_code&client_id=gl&client_secret=gl-s3cret&code={code}\
             &redirect_uri={callback}&code_verifier={VERIFIER}"
        ),
    );
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_string();
    let sink = format!("{}/sink/collect", emulator.base);
    emulator.admin(
        "PUT",
        "/_emulator/faults",
        json!([{"path_prefix": "/gitlab/com/api/v4/user", "status": 307,
                "headers": {"location": sink}}]),
    );

    let get_following = |keep_auth: ureq::RedirectAuthHeaders| {
        let agent = ureq::AgentBuilder::new()
            .redirect_auth_headers(keep_auth)
            .build();
        let response = agent
            .get(&format!("{}/gitlab/com/api/v4/user", emulator.base))
            .set("Authorization", &format!("Bearer {access}"))
            .call()
            .expect("the sink answers 200");
        assert_eq!(response.get_url(), sink);
        response.into_json::<Value>().unwrap()
    };
    assert_eq!(
        get_following(ureq::RedirectAuthHeaders::Never),
        json!({"ok": true})
    );
    let ledger = emulator.call("GET", "/_emulator/credentials/misplaced", None, None);
    assert_eq!(ledger.body["misplaced"], json!([]));
    assert_eq!(ledger.body["checked"], 3, "secret, code, token at home");

    get_following(ureq::RedirectAuthHeaders::SameHost);
    let log = emulator.call("GET", "/_emulator/requests", None, None).body;
    let sink_auth: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/sink/collect")
        .map(|r| r["auth"].as_str().unwrap())
        .collect();
    assert_eq!(sink_auth, ["none", "collected"]);
    let ledger = emulator.call("GET", "/_emulator/credentials/misplaced", None, None);
    let misplaced = &ledger.body["misplaced"];
    assert_eq!(misplaced.as_array().unwrap().len(), 1, "{misplaced}");
    assert_eq!(
        (
            &misplaced[0]["presented_to"],
            &misplaced[0]["home"],
            &misplaced[0]["kind"],
            &misplaced[0]["path"]
        ),
        (
            &json!("sink"),
            &json!("gitlab:com"),
            &json!("bearer"),
            &json!("/sink/collect")
        )
    );
    assert!(!ledger.body.to_string().contains(&access));
    let seen = emulator.call("GET", "/_emulator/credentials/seen", None, None);
    assert_eq!(
        seen.body,
        json!({"github": 0, "microsoft": 0, "gitlab:com": 4})
    );
    let cleared = emulator.call("DELETE", "/_emulator/credentials/misplaced", None, None);
    assert_eq!(cleared.body, json!({"cleared": 1, "checked": 5}));
}
