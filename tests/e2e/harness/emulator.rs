//! The GitHub emulator as the suite drives it: its admin API (`/_emulator/…`: installations,
//! repositories, faults, the request log, issued tokens) and, as a ground truth to compare D1
//! with, its repository listing fetched the way GitHub clients do (App JWT → installation
//! token → `GET /installation/repositories` following `Link`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::AppSigner;
use super::http::{Http, Resp};

/// An installation the suite creates on the emulator.
#[derive(Debug, Clone)]
pub struct Inst {
    pub id: u64,
    pub login: String,
    pub account_id: u64,
    /// Display name (`name` of `GET /orgs/{login}`).
    pub name: Option<String>,
    /// `Organization` or `User`.
    pub kind: &'static str,
    /// Generated repositories.
    pub repos: u32,
}

impl Inst {
    /// An organization `login` with `repos` generated repositories; account id `900_000 + id`
    /// and display name `"<login> Inc."`.
    pub fn org(id: u64, login: &str, repos: u32) -> Inst {
        Inst {
            id,
            login: login.to_string(),
            account_id: 900_000 + id,
            name: Some(format!("{login} Inc.")),
            kind: "Organization",
            repos,
        }
    }

    /// GitHub's avatar URL for the account, as the emulator renders it.
    pub fn avatar_url(&self) -> String {
        format!(
            "https://avatars.githubusercontent.com/u/{}?v=4",
            self.account_id
        )
    }
}

/// One entry of `GET /_emulator/requests`.
#[derive(Debug, Clone, Deserialize)]
pub struct Logged {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// `app_jwt`, `installation_token`, `none` or `invalid`.
    pub auth: String,
    pub installation_id: Option<u64>,
    /// The worker's `x-onecode-invocation` (absent on the harness's own calls).
    pub invocation: Option<String>,
    pub user_agent: Option<String>,
}

impl Logged {
    /// `GET /installation/repositories?…` (a page of the listing).
    pub fn is_page(&self) -> bool {
        self.method == "GET" && self.path == "/installation/repositories"
    }

    /// `page=N` of a listing request (1 when absent).
    pub fn page(&self) -> u32 {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1)
    }

    pub fn short(&self) -> String {
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        format!("{} {}{} -> {}", self.method, self.path, query, self.status)
    }
}

/// A repository as `GET /installation/repositories` lists it (the fields the gateway keeps).
#[derive(Debug, Clone, Deserialize)]
pub struct GhRepo {
    pub id: i64,
    pub name: String,
    pub full_name: String,
    pub private: bool,
    pub default_branch: Option<String>,
    pub html_url: Option<String>,
    pub archived: bool,
    pub visibility: Option<String>,
}

pub struct Emulator {
    pub base: String,
    http: Http,
    signer: AppSigner,
}

impl Emulator {
    pub fn new(base: String, http: Http, signer: AppSigner) -> Emulator {
        Emulator { base, http, signer }
    }

    fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let body = body.map(Value::to_string);
        let resp = self.http.request(
            method,
            &format!("{}/_emulator/{path}", self.base),
            &[],
            body.as_deref(),
        );
        assert_eq!(
            resp.status, 200,
            "emulator admin {method} {path}: {}",
            resp.body
        );
        resp
    }

    /// Creates (or replaces) an installation with generated repositories.
    pub fn put_installation(&self, inst: &Inst) {
        let account = json!({
            "login": inst.login,
            "id": inst.account_id,
            "type": inst.kind,
            "name": inst.name,
        });
        self.admin(
            "PUT",
            &format!("installations/{}", inst.id),
            Some(&json!({ "account": account, "repositories": inst.repos })),
        );
    }

    /// Creates (or replaces) an installation whose repositories are exactly `(id, name)`
    /// (named ones: public, branch `main`); `inst.repos` is ignored.
    pub fn put_named_installation(&self, inst: &Inst, repos: &[(i64, String)]) {
        let account = json!({
            "login": inst.login,
            "id": inst.account_id,
            "type": inst.kind,
            "name": inst.name,
        });
        let repos: Vec<Value> = repos
            .iter()
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect();
        self.admin(
            "PUT",
            &format!("installations/{}", inst.id),
            Some(&json!({ "account": account, "repositories": repos })),
        );
    }

    pub fn set_suspended(&self, id: u64, suspended: bool) {
        self.admin(
            "PATCH",
            &format!("installations/{id}"),
            Some(&json!({ "suspended": suspended })),
        );
    }

    /// Adds `count` generated repositories to an installation.
    pub fn add_repos(&self, id: u64, count: u32) {
        self.admin(
            "POST",
            &format!("installations/{id}/repositories"),
            Some(&json!({ "add": count })),
        );
    }

    /// Removes the repositories with these GitHub ids, then adds `add` generated ones.
    /// Generated repository `n` (from 1, numbering continued across additions) has the id
    /// `installation_id * 1_000_000 + n`.
    pub fn change_repos(&self, id: u64, add: u32, remove_ids: &[i64]) {
        self.admin(
            "POST",
            &format!("installations/{id}/repositories"),
            Some(&json!({ "add": add, "remove_ids": remove_ids })),
        );
    }

    /// Uninstalls the App: GitHub answers 404 for the installation from now on.
    pub fn delete_installation(&self, id: u64) {
        self.admin("DELETE", &format!("installations/{id}"), None);
    }

    /// Replaces the fault rules (see the emulator's `faults.rs`).
    pub fn set_faults(&self, rules: Value) {
        self.admin("PUT", "faults", Some(&rules));
    }

    pub fn clear_faults(&self) {
        self.admin("DELETE", "faults", None);
    }

    /// The whole request log (GitHub endpoints only), oldest first.
    pub fn requests(&self) -> Vec<Logged> {
        serde_json::from_value(self.admin("GET", "requests", None).json())
            .expect("request log entries")
    }

    /// The worker's requests (those carrying an invocation id) concerning one installation.
    pub fn worker_requests(&self, installation_id: u64) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|r| r.invocation.is_some() && r.installation_id == Some(installation_id))
            .collect()
    }

    /// Every installation token the emulator ever issued.
    pub fn tokens(&self) -> Vec<String> {
        serde_json::from_value(self.admin("GET", "tokens", None).json()).expect("token list")
    }

    /// The installation's repositories as GitHub lists them (the ground truth for D1).
    pub fn repositories(&self, installation_id: u64) -> Vec<GhRepo> {
        let jwt = self.signer.jwt();
        let minted = self.http.request(
            "POST",
            &format!(
                "{}/app/installations/{installation_id}/access_tokens",
                self.base
            ),
            &[("authorization", &format!("Bearer {jwt}"))],
            None,
        );
        assert_eq!(minted.status, 201, "token for the harness: {}", minted.body);
        let token = minted.json()["token"]
            .as_str()
            .expect("token string")
            .to_string();
        let auth = format!("token {token}");
        let mut url = format!("{}/installation/repositories?per_page=100", self.base);
        let mut repos = Vec::new();
        loop {
            let page = self
                .http
                .request("GET", &url, &[("authorization", &auth)], None);
            assert_eq!(page.status, 200, "listing {url}: {}", page.body);
            let body = page.json();
            let items: Vec<GhRepo> =
                serde_json::from_value(body["repositories"].clone()).expect("repository page");
            repos.extend(items);
            match page.header("link").and_then(next_link) {
                Some(next) => url = next,
                None => return repos,
            }
        }
    }
}

/// The `rel="next"` target of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}
