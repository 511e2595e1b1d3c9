//! Real git against the real binary over HTTP on 127.0.0.1: `git ls-remote`, `git clone` and
//! `git fetch` of GitHub, GitLab and Azure DevOps repositories with each service's
//! credentials (passed as `http.extraHeader`), refusals, the credential ledger, admin changes
//! seen by git, a pack truncated by a fault rule, and a large incompressible commit.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use jwt_compact::{alg::Rsa, AlgorithmExt, Claims, Header};
use rsa::pkcs1::DecodeRsaPrivateKey;
use serde_json::{json, Value};

const APP_ID: &str = "424242";
const DEV_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dev/github-app-dev-key.pem");
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CALLBACK: &str = "http://127.0.0.1:8787/oauth/callback";
const AZURE_DEV: &str = "0d5e1c9a-0000-4000-8000-00000000d001";

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "github-emulator-test-{name}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The running binary with its own git root; killed when dropped.
struct Emulator {
    child: Child,
    base: String,
    agent: ureq::Agent,
    scratch: Scratch,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    fn start(name: &str) -> Self {
        let scratch = Scratch::new(name);
        let mut child = Command::new(env!("CARGO_BIN_EXE_github-emulator"))
            .args(["--port", "0", "--app-id", APP_ID, "--app-key", DEV_KEY])
            .arg("--git-root")
            .arg(scratch.0.join("repos"))
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
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        Emulator {
            child,
            base,
            agent,
            scratch,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `method path` with an optional JSON body: status and JSON answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.agent.request(method, &self.url(path));
        if let Some(auth) = auth {
            request = request.set("Authorization", auth);
        }
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        (
            response.status(),
            response.into_json().unwrap_or(Value::Null),
        )
    }

    fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(method, &format!("/_emulator/{path}"), None, Some(body));
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer
    }

    /// `refs` of `GET /_emulator/git/{key}/refs`.
    fn refs(&self, key: &str) -> BTreeMap<String, String> {
        let answer = self.admin("GET", &format!("git/{key}/refs"), Value::Null);
        serde_json::from_value(answer["refs"].clone()).unwrap()
    }

    /// An installation of `acme` with `repositories` generated repositories, and a token.
    fn github(&self, repositories: u32) -> String {
        self.admin(
            "PUT",
            "installations/77",
            json!({"account": {"login": "acme", "id": 1001}, "repositories": repositories}),
        );
        let (status, minted) = self.call(
            "POST",
            "/app/installations/77/access_tokens",
            Some(&app_jwt()),
            None,
        );
        assert_eq!(status, 201, "{minted}");
        minted["token"].as_str().unwrap().to_string()
    }

    fn misplaced(&self) -> Value {
        self.admin("GET", "credentials/misplaced", Value::Null)["misplaced"].clone()
    }

    /// Follows nothing: the `code` of the authorize redirect.
    fn code(&self, path: &str) -> String {
        let response = match self.agent.get(&self.url(path)).call() {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("{path}: {e}"),
        };
        assert_eq!(response.status(), 302);
        let location = url::Url::parse(response.header("location").unwrap()).unwrap();
        location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    fn exchange(&self, path: &str, form: &str) -> String {
        let response = self
            .agent
            .post(&self.url(path))
            .set("content-type", "application/x-www-form-urlencoded")
            .send_string(form)
            .unwrap();
        let body: Value = response.into_json().unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }
}

fn app_jwt() -> String {
    let pem = std::fs::read_to_string(DEV_KEY).unwrap();
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap();
    let now = Utc::now();
    let mut claims = Claims::new(json!({ "iss": APP_ID }));
    claims.issued_at = Some(now - chrono::Duration::seconds(60));
    claims.expiration = Some(now + chrono::Duration::seconds(540));
    format!(
        "Bearer {}",
        Rsa::rs256().token(&Header::empty(), &claims, &key).unwrap()
    )
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// The git CLI with no user or system configuration and no prompts, sending `authorization`
/// (if any) with every request.
fn git(home: &Path, authorization: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new("git");
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C");
    if let Some(authorization) = authorization {
        command.args([
            "-c",
            &format!("http.extraHeader=Authorization: {authorization}"),
        ]);
    }
    command.args(args).output().expect("run git")
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "git failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `git ls-remote` output as a map, without `HEAD` and peeled entries.
fn ls_remote(home: &Path, authorization: &str, url: &str) -> BTreeMap<String, String> {
    ok(git(home, Some(authorization), &["ls-remote", url]))
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, name)| *name != "HEAD" && !name.ends_with("^{}"))
        .map(|(oid, name)| (name.to_string(), oid.to_string()))
        .collect()
}

/// The refs of a local repository, as `for-each-ref` lists them.
fn local_refs(home: &Path, repo: &Path) -> BTreeMap<String, String> {
    let dir = repo.to_str().unwrap();
    ok(git(
        home,
        None,
        &[
            "--git-dir",
            dir,
            "for-each-ref",
            "--format=%(objectname) %(refname)",
        ],
    ))
    .lines()
    .filter_map(|line| line.split_once(' '))
    .map(|(oid, name)| (name.to_string(), oid.to_string()))
    .collect()
}

#[test]
fn github_clone_with_installation_token() {
    let emulator = Emulator::start("github");
    let home = emulator.scratch.0.clone();
    let token = emulator.github(3);
    let (_, listed) = emulator.call(
        "GET",
        "/installation/repositories",
        Some(&format!("token {token}")),
        None,
    );
    let url = listed["repositories"][0]["clone_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(url, emulator.url("/acme/acme-repo-00001.git"));
    let auth = basic("x-access-token", &token);

    let expected = emulator.refs("github/acme/acme-repo-00001");
    assert!(expected.contains_key("refs/pull/1/head") && expected.contains_key("refs/tags/v1.0"));
    assert_eq!(ls_remote(&home, &auth, &url), expected);

    // A mirror clone holds exactly the source's refs; a normal clone checks out main.
    let mirror = home.join("mirror.git");
    ok(git(
        &home,
        Some(&auth),
        &[
            "clone",
            "--quiet",
            "--mirror",
            &url,
            mirror.to_str().unwrap(),
        ],
    ));
    assert_eq!(local_refs(&home, &mirror), expected);
    let work = home.join("work");
    ok(git(
        &home,
        Some(&auth),
        &["clone", "--quiet", &url, work.to_str().unwrap()],
    ));
    let readme = std::fs::read_to_string(work.join("README.md")).unwrap();
    assert!(readme.starts_with("# acme/acme-repo-00001"), "{readme}");
    let log = ok(git(
        &home,
        None,
        &["-C", work.to_str().unwrap(), "log", "--format=%s"],
    ));
    assert_eq!(log, "Update README\nAdd source\nInitial commit\n");

    // Missing or wrong credentials: git fails, the server says 401 / 404.
    let refused = git(&home, None, &["ls-remote", &url]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("terminal prompts disabled"));
    assert!(!git(
        &home,
        Some(&basic("x-access-token", "ghs_wrong")),
        &["ls-remote", &url]
    )
    .status
    .success());
    let info_refs = "/acme/acme-repo-00001.git/info/refs?service=git-upload-pack";
    assert_eq!(emulator.call("GET", info_refs, None, None).0, 401);
    assert_eq!(
        emulator
            .call("GET", info_refs, Some(&basic("x", "ghs_wrong")), None)
            .0,
        401
    );
    let foreign = "/other/repo.git/info/refs?service=git-upload-pack";
    assert_eq!(emulator.call("GET", foreign, Some(&auth), None).0, 404);
    let missing = emulator.url("/acme/acme-repo-00099.git");
    let not_found = git(&home, Some(&auth), &["ls-remote", &missing]);
    assert!(String::from_utf8_lossy(&not_found.stderr).contains("not found"));

    // Correct use left no misplaced credential; the request log shows who fetched.
    assert_eq!(emulator.misplaced(), json!([]));
    let seen = emulator.admin("GET", "credentials/seen", Value::Null);
    assert!(seen["github"].as_u64().unwrap() >= 8, "{seen}");
    let log = emulator.admin("GET", "requests", Value::Null);
    let posts: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/acme/acme-repo-00001.git/git-upload-pack")
        .collect();
    assert_eq!(posts.len(), 2, "two clones");
    assert!(posts.iter().all(|r| r["status"] == 200
        && r["auth"] == "installation_token"
        && r["installation_id"] == 77));
}

#[test]
fn gitlab_and_azure_clone_with_their_tokens() {
    let emulator = Emulator::start("providers");
    let home = emulator.scratch.0.clone();

    // GitLab: Basic oauth2:<access token>.
    emulator.admin(
        "PUT",
        "gitlab/com/oauth",
        json!({"client_id": "gl", "client_secret": "s", "redirect_uris": [CALLBACK]}),
    );
    emulator.admin("PUT", "gitlab/com/users/7001", json!({"username": "dev"}));
    emulator.admin(
        "PUT",
        "gitlab/com/groups/1",
        json!({"name": "Initech", "path": "initech", "members": [7001], "projects": 2}),
    );
    let code = emulator.code(&format!(
        "/gitlab/com/oauth/authorize?client_id=gl&redirect_uri={CALLBACK}&response_type=code\
         &scope=read_api+read_repository&code_challenge={CHALLENGE}&code_challenge_method=S256"
    ));
    let gitlab_token = emulator.exchange(
        "/gitlab/com/oauth/token",
        &format!("grant_type=authorization_code&client_id=gl&client_secret=s&code={code}&redirect_uri={CALLBACK}&code_verifier={VERIFIER}"),
    );
    let (_, projects) = emulator.call(
        "GET",
        "/gitlab/com/api/v4/groups/1/projects",
        Some(&format!("Bearer {gitlab_token}")),
        None,
    );
    let url = projects[0]["http_url_to_repo"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        url,
        emulator.url("/gitlab/com/initech/initech-repo-002.git")
    );
    let auth = basic("oauth2", &gitlab_token);
    let expected = emulator.refs("gitlab/com/initech/initech-repo-002");
    assert!(expected.contains_key("refs/merge-requests/1/head"));
    assert_eq!(ls_remote(&home, &auth, &url), expected);
    let mirror = home.join("gitlab.git");
    ok(git(
        &home,
        Some(&auth),
        &[
            "clone",
            "--quiet",
            "--mirror",
            &url,
            mirror.to_str().unwrap(),
        ],
    ));
    assert_eq!(local_refs(&home, &mirror), expected);
    assert!(!git(
        &home,
        Some(&basic("oauth2", "glemu-at-wrong")),
        &["ls-remote", &url]
    )
    .status
    .success());
    let info_refs = "/gitlab/com/initech/initech-repo-002.git/info/refs?service=git-upload-pack";
    assert_eq!(emulator.call("GET", info_refs, None, None).0, 401);

    // Azure DevOps: Bearer <Microsoft access token>.
    emulator.admin(
        "PUT",
        "azure/oauth",
        json!({"client_id": "az", "client_secret": "s", "redirect_uris": [CALLBACK]}),
    );
    emulator.admin(
        "PUT",
        &format!("azure/users/{AZURE_DEV}"),
        json!({"displayName": "Dev"}),
    );
    emulator.admin(
        "PUT",
        "azure/orgs/contoso",
        json!({"members": [AZURE_DEV], "projects": [{"name": "Fabrikam Fiber", "repositories": ["web"]}]}),
    );
    let code = emulator.code(&format!(
        "/microsoft/organizations/oauth2/v2.0/authorize?client_id=az&redirect_uri={CALLBACK}&response_type=code\
         &scope=499b84ac-1321-427f-aa17-267ca6975798%2F.default&code_challenge={CHALLENGE}&code_challenge_method=S256"
    ));
    let azure_token = emulator.exchange(
        "/microsoft/organizations/oauth2/v2.0/token",
        &format!("grant_type=authorization_code&client_id=az&client_secret=s&code={code}&redirect_uri={CALLBACK}&code_verifier={VERIFIER}"),
    );
    let bearer = format!("Bearer {azure_token}");
    let (_, repos) = emulator.call(
        "GET",
        "/azure/contoso/_apis/git/repositories",
        Some(&bearer),
        None,
    );
    let url = repos["value"][0]["remoteUrl"].as_str().unwrap().to_string();
    assert_eq!(
        url,
        emulator.url("/azure/contoso/Fabrikam%20Fiber/_git/web")
    );
    let expected = emulator.refs("azure/contoso/Fabrikam%20Fiber/web");
    assert_eq!(ls_remote(&home, &bearer, &url), expected);
    let mirror = home.join("azure.git");
    ok(git(
        &home,
        Some(&bearer),
        &[
            "clone",
            "--quiet",
            "--mirror",
            &url,
            mirror.to_str().unwrap(),
        ],
    ));
    assert_eq!(local_refs(&home, &mirror), expected);
    assert!(
        !git(&home, Some(&basic("x", &azure_token)), &["ls-remote", &url])
            .status
            .success()
    );

    // A client without multi_ack is refused; with it, the pack comes.
    let main = &expected["refs/heads/main"];
    let fetch = |capabilities: &str| {
        let line = format!("want {main} {capabilities}\n");
        let body = format!("{:04x}{line}00000009done\n", line.len() + 4);
        let result = emulator
            .agent
            .post(&format!("{url}/git-upload-pack"))
            .set("Authorization", &bearer)
            .set("Content-Type", "application/x-git-upload-pack-request")
            .send_bytes(body.as_bytes());
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("{e}"),
        };
        let status = response.status();
        let mut bytes = Vec::new();
        response.into_reader().read_to_end(&mut bytes).unwrap();
        (status, bytes)
    };
    let (status, body) = fetch("side-band-64k ofs-delta");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("multi_ack"));
    let (status, body) = fetch("multi_ack_detailed ofs-delta");
    assert_eq!(status, 200);
    assert!(body.starts_with(b"0008NAK\nPACK"));

    // Correct use: no misplaced credential; a GitLab token at a GitHub git URL is caught.
    assert_eq!(emulator.misplaced(), json!([]));
    let wrong = "/acme/repo.git/info/refs?service=git-upload-pack";
    assert_eq!(emulator.call("GET", wrong, Some(&auth), None).0, 401);
    let misplaced = emulator.misplaced();
    assert_eq!(
        (
            &misplaced[0]["presented_to"],
            &misplaced[0]["home"],
            &misplaced[0]["path"]
        ),
        (
            &json!("github"),
            &json!("gitlab:com"),
            &json!("/acme/repo.git/info/refs")
        )
    );
}

#[test]
fn admin_changes_reach_git_clients() {
    let emulator = Emulator::start("admin");
    let home = emulator.scratch.0.clone();
    let token = emulator.github(2);
    let auth = basic("x-access-token", &token);
    let url = emulator.url("/acme/acme-repo-00002.git");
    let key = "git/github/acme/acme-repo-00002";
    let mirror = home.join("backup.git");
    ok(git(
        &home,
        Some(&auth),
        &[
            "clone",
            "--quiet",
            "--mirror",
            &url,
            mirror.to_str().unwrap(),
        ],
    ));
    let first = local_refs(&home, &mirror);
    let old_main = first["refs/heads/main"].clone();

    emulator.admin(
        "POST",
        &format!("{key}/commits"),
        json!({"branch": "main", "count": 3}),
    );
    emulator.admin(
        "POST",
        &format!("{key}/branches"),
        json!({"name": "hotfix", "from": "refs/tags/v0.1"}),
    );
    emulator.admin(
        "POST",
        &format!("{key}/tags"),
        json!({"name": "v2.0", "annotated": true}),
    );
    emulator.admin(
        "POST",
        &format!("{key}/tags"),
        json!({"name": "nightly", "target": "develop"}),
    );
    emulator.admin("DELETE", &format!("{key}/branches/develop"), Value::Null);
    let changed = emulator.admin(
        "POST",
        &format!("{key}/commits"),
        json!({"branch": "topic", "count": 1}),
    );
    let expected: BTreeMap<String, String> =
        serde_json::from_value(changed["refs"].clone()).unwrap();
    assert_eq!(ls_remote(&home, &auth, &url), expected);
    assert_eq!(expected["refs/heads/hotfix"], first["refs/tags/v0.1"]);
    assert!(!expected.contains_key("refs/heads/develop"));
    ok(git(
        &home,
        Some(&auth),
        &[
            "--git-dir",
            mirror.to_str().unwrap(),
            "fetch",
            "--quiet",
            "--prune",
            "origin",
        ],
    ));
    assert_eq!(local_refs(&home, &mirror), expected);
    let ahead = ok(git(
        &home,
        None,
        &[
            "--git-dir",
            mirror.to_str().unwrap(),
            "rev-list",
            "--count",
            &format!("{old_main}..main"),
        ],
    ));
    assert_eq!(ahead.trim(), "3");

    // A forced update rewrites main: the mirror's fetch reports a forced update.
    let pushed = emulator.admin(
        "POST",
        &format!("{key}/force-push"),
        json!({"branch": "main", "to": old_main, "commits": 2}),
    );
    let new_main = pushed["refs"]["refs/heads/main"]
        .as_str()
        .unwrap()
        .to_string();
    let fetched = git(
        &home,
        Some(&auth),
        &["--git-dir", mirror.to_str().unwrap(), "fetch", "origin"],
    );
    let report = String::from_utf8_lossy(&fetched.stderr).into_owned();
    assert!(
        fetched.status.success() && report.contains("(forced update)"),
        "{report}"
    );
    assert_eq!(local_refs(&home, &mirror)["refs/heads/main"], new_main);
    let merge_base = ok(git(
        &home,
        None,
        &[
            "--git-dir",
            mirror.to_str().unwrap(),
            "merge-base",
            &new_main,
            &expected["refs/heads/main"],
        ],
    ));
    assert_eq!(
        merge_base.trim(),
        old_main,
        "history rewritten from the old main"
    );
}

#[test]
fn truncated_pack_fails_the_clone() {
    let emulator = Emulator::start("truncate");
    let home = emulator.scratch.0.clone();
    let token = emulator.github(1);
    let auth = basic("x-access-token", &token);
    let key = "git/github/acme/acme-repo-00001";
    // Enough content that the pack is well over the cut.
    emulator.admin(
        "POST",
        &format!("{key}/commits"),
        json!({"count": 2, "file_bytes": 300000, "incompressible": true}),
    );
    let pack_path = "/acme/acme-repo-00001.git/git-upload-pack";
    emulator.admin(
        "PUT",
        "faults",
        json!([{"path_prefix": pack_path, "truncate_after_bytes": 4096, "times": 2}]),
    );

    // By hand: the full length announced, 4096 bytes sent, then the connection closes.
    let main = &emulator.refs("github/acme/acme-repo-00001")["refs/heads/main"];
    let line = format!("want {main} multi_ack_detailed ofs-delta\n");
    let body = format!("{:04x}{line}00000009done\n", line.len() + 4);
    let started = Instant::now();
    let patient = ureq::AgentBuilder::new()
        .timeout_read(Duration::from_secs(30))
        .build();
    let response = patient
        .post(&emulator.url(pack_path))
        .set("Authorization", &auth)
        .set("Content-Type", "application/x-git-upload-pack-request")
        .send_bytes(body.as_bytes())
        .unwrap();
    let announced: usize = response.header("content-length").unwrap().parse().unwrap();
    assert!(announced > 600_000, "the whole pack: {announced}");
    assert_eq!(response.header("transfer-encoding"), None);
    let mut received = Vec::new();
    let read = response.into_reader().read_to_end(&mut received);
    assert!(read.is_err(), "a short body is an error");
    assert_eq!(received.len(), 4096);
    assert!(received.starts_with(b"0008NAK\nPACK"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the connection was closed, not left waiting for the rest"
    );

    // git itself: the clone fails while the rule lasts, then succeeds.
    let target = home.join("clone.git");
    let failed = git(
        &home,
        Some(&auth),
        &[
            "-c",
            "http.lowSpeedLimit=1",
            "-c",
            "http.lowSpeedTime=30",
            "clone",
            "--bare",
            "--quiet",
            &emulator.url("/acme/acme-repo-00001.git"),
            target.to_str().unwrap(),
        ],
    );
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert!(
        stderr.contains("transfer closed") || stderr.contains("early EOF"),
        "{stderr}"
    );
    ok(git(
        &home,
        Some(&auth),
        &[
            "clone",
            "--bare",
            "--quiet",
            &emulator.url("/acme/acme-repo-00001.git"),
            target.to_str().unwrap(),
        ],
    ));
    assert_eq!(local_refs(&home, &target)["refs/heads/main"], *main);
    // Other requests on the emulator were not disturbed.
    assert_eq!(emulator.call("GET", "/_emulator/health", None, None).0, 200);
}

#[test]
fn large_incompressible_commit_is_quick_to_make_and_clone() {
    let emulator = Emulator::start("large");
    let home = emulator.scratch.0.clone();
    let token = emulator.github(1);
    let auth = basic("x-access-token", &token);
    let key = "git/github/acme/acme-repo-00001";
    emulator.admin("GET", &format!("{key}/refs"), Value::Null);
    let started = Instant::now();
    let answer = emulator.admin(
        "POST",
        &format!("{key}/commits"),
        json!({"count": 1, "file_bytes": 20_000_000, "incompressible": true}),
    );
    let made = started.elapsed();
    assert!(made < Duration::from_secs(4), "20 MB commit took {made:?}");
    let work = home.join("large");
    ok(git(
        &home,
        Some(&auth),
        &[
            "clone",
            "--quiet",
            &emulator.url("/acme/acme-repo-00001.git"),
            work.to_str().unwrap(),
        ],
    ));
    let blob = std::fs::metadata(work.join("data/blob-000001.bin")).unwrap();
    assert_eq!(blob.len(), 20_000_000);
    let head = ok(git(
        &home,
        None,
        &["-C", work.to_str().unwrap(), "rev-parse", "HEAD"],
    ));
    assert_eq!(
        head.trim(),
        answer["refs"]["refs/heads/main"].as_str().unwrap()
    );
    // Random bytes: the served pack could not shrink them.
    let path = Path::new(answer["path"].as_str().unwrap());
    let packs: u64 = std::fs::read_dir(path.join("objects/pack"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(packs > 20_000_000, "{packs}");
}
