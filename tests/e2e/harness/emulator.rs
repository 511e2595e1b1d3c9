//! The GitHub emulator as the suite drives it: its admin API (`/_emulator/…`: installations,
//! repositories, faults, the request log, issued tokens; GitLab instances and the Microsoft /
//! Azure DevOps directory with their OAuth applications, the OAuth grants log and every
//! provider token issued) and, as a ground truth to compare D1 with, its repository listing
//! fetched the way GitHub clients do (App JWT → installation token →
//! `GET /installation/repositories` following `Link`).

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

/// One entry of `GET /_emulator/requests` (every emulated service: GitHub, `/gitlab/…`,
/// `/microsoft/…`, `/vssps/…`, `/azure/…`).
#[derive(Debug, Clone, Deserialize)]
pub struct Logged {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// `app_jwt`, `installation_token`, `user_token`, `none` or `invalid`; on GitLab and
    /// Microsoft / Azure DevOps paths also `bearer` (a live access token), `expired` and
    /// `oauth_token` (a token endpoint request).
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

/// One entry of `GET /_emulator/oauth-grants`: a GitLab or Microsoft token request.
#[derive(Debug, Clone, Deserialize)]
pub struct Grant {
    /// `gitlab` or `azure`.
    pub provider: String,
    /// The GitLab instance (`com`, …) or the Microsoft tenant segment (`organizations`).
    pub instance: String,
    /// `authorization_code`, `refresh_token`, another value sent, or absent.
    pub grant_type: Option<String>,
    /// The user of the code or refresh token presented (GitLab ids as strings), when known.
    pub user_id: Option<String>,
    /// The refresh token a `refresh_token` grant presented.
    pub presented_refresh_token: Option<String>,
    /// `ok` or the OAuth `error` answered (`invalid_grant`, `invalid_client`, …).
    pub outcome: String,
    /// RFC 3339.
    pub at: String,
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

    /// Makes every repository whose key starts with `prefix` (`github/{owner}/{repo}`,
    /// `gitlab/{instance}/{path}`, `azure/{org}/{project}/{repo}`, compared lowercase, e.g.
    /// `"github/e2e-huge/"`) start empty, like a freshly created repository: no refs, served
    /// from a cached advertisement without a git process or directory per repository, so
    /// backing up thousands of them is cheap. Repositories already created keep their content;
    /// the emulator's admin git calls (commits, …) still work on them. Prefixes last for the
    /// emulator's lifetime (it is shared by parallel tests), so use one unique to the test.
    pub fn empty_git(&self, prefix: &str) {
        let answer = self
            .admin("POST", "git/empty", Some(&json!({ "prefix": prefix })))
            .json();
        let registered = answer["prefixes"].as_array().expect("registered prefixes");
        assert!(
            registered.contains(&json!(prefix.to_lowercase())),
            "emulator did not register empty prefix {prefix}: {answer}"
        );
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

    /// A fresh installation token, minted as the App (for the harness's own calls, e.g. a
    /// `git clone` to compare with).
    pub fn installation_token(&self, installation_id: u64) -> String {
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
        minted.json()["token"]
            .as_str()
            .expect("token string")
            .to_string()
    }

    /// The installation's repositories as GitHub lists them (the ground truth for D1).
    pub fn repositories(&self, installation_id: u64) -> Vec<GhRepo> {
        let token = self.installation_token(installation_id);
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

/// Fault rules for the duration of a test (exclusive tests only: the rules are global),
/// cleared when the guard drops, even when the test fails.
pub struct Faults<'a>(&'a Emulator);

impl<'a> Faults<'a> {
    pub fn install(emulator: &'a Emulator, rules: Value) -> Faults<'a> {
        emulator.set_faults(rules);
        Faults(emulator)
    }
}

impl Drop for Faults<'_> {
    fn drop(&mut self) {
        self.0.clear_faults();
    }
}

/// GitHub's OAuth during installation (the emulator's `PUT /_emulator/oauth`).
impl Emulator {
    /// Turns OAuth during installation on: every install link carries a one-time code of
    /// `user`, who can access `installations` (every installation when `None`).
    pub fn github_oauth(
        &self,
        client_id: &str,
        secret: &str,
        user: &str,
        installations: Option<&[u64]>,
    ) {
        self.admin(
            "PUT",
            "oauth",
            Some(&json!({
                "client_id": client_id,
                "client_secret": secret,
                "user": { "login": user, "id": 4_242, "installations": installations },
            })),
        );
    }

    /// A fresh one-time code of the OAuth user, as the install page hands them out (taken from
    /// its "request approval" link).
    #[track_caller]
    pub fn github_code(&self) -> String {
        let page = self.http.get(&format!(
            "{}/apps/{}/installations/new?state=code",
            self.base,
            super::APP_SLUG
        ));
        assert_eq!(page.status, 200, "install page: {}", page.body);
        page.body
            .split("code=")
            .nth(1)
            .and_then(|rest| rest.split(['"', '&']).next())
            .filter(|code| !code.is_empty())
            .unwrap_or_else(|| panic!("no code on the install page (is OAuth on?): {}", page.body))
            .to_string()
    }
}

/// The credential ledger (`GET /_emulator/credentials/…`): which credential reached which
/// service.
impl Emulator {
    /// `{"misplaced": [{"seq", "method", "path", "presented_to", "home", "kind", "via"}], "checked"}`:
    /// every credential presented to a service other than the one that issued it (or to the
    /// sink), and how many credentials were examined.
    pub fn misplaced_credentials(&self) -> Value {
        self.admin("GET", "credentials/misplaced", None).json()
    }

    /// `{"github": n, "microsoft": n, "gitlab:{instance}": n, …}`: recognised credentials
    /// presented to their own service.
    pub fn credentials_seen(&self) -> Value {
        self.admin("GET", "credentials/seen", None).json()
    }
}

/// The GitLab and Microsoft / Azure DevOps parts of the admin API (see the emulator's
/// `admin.rs`). Ids: GitLab users, groups and projects are numbers; Microsoft users,
/// organizations, projects and repositories GUIDs.
impl Emulator {
    /// Configures the OAuth application of a GitLab instance (created on first use);
    /// `ttl`: access token lifetime in seconds (default 7200).
    pub fn gitlab_oauth(&self, instance: &str, client_id: &str, secret: &str, ttl: Option<u64>) {
        self.admin(
            "PUT",
            &format!("gitlab/{instance}/oauth"),
            Some(&json!({ "client_id": client_id, "client_secret": secret, "access_token_ttl": ttl })),
        );
    }

    /// Creates or replaces a GitLab user (the instance's first user signs in by default).
    pub fn gitlab_user(&self, instance: &str, id: u64, username: &str, name: &str) {
        self.admin(
            "PUT",
            &format!("gitlab/{instance}/users/{id}"),
            Some(&json!({ "username": username, "name": name })),
        );
    }

    /// Creates or replaces a group: `spec` is `{"name","path","parent_id"?,"visibility"?,
    /// "members":[user ids],"projects":N or [{"name","visibility"?,"archived"?}]}`. Answers
    /// `{"id","full_path","parent_id","members","projects":[{"id","name","path",…}]}`.
    pub fn gitlab_group(&self, instance: &str, id: u64, spec: Value) -> Value {
        self.admin(
            "PUT",
            &format!("gitlab/{instance}/groups/{id}"),
            Some(&spec),
        )
        .json()
    }

    /// Removes projects of a group by id, then adds `add` generated and `add_names` named
    /// ones (new ids continue instance-wide). Answers the group's summary.
    pub fn gitlab_change_projects(
        &self,
        instance: &str,
        group_id: u64,
        add: u32,
        add_names: &[&str],
        remove_ids: &[u64],
    ) -> Value {
        self.admin(
            "POST",
            &format!("gitlab/{instance}/groups/{group_id}/projects"),
            Some(&json!({ "add": add, "add_names": add_names, "remove_ids": remove_ids })),
        )
        .json()
    }

    /// Deletes a group with its subgroups and their projects.
    pub fn gitlab_delete_group(&self, instance: &str, id: u64) {
        self.admin("DELETE", &format!("gitlab/{instance}/groups/{id}"), None);
    }

    /// `[{"id","group_id","name","path_with_namespace","visibility","archived"}]`: every
    /// project of the instance, or those of a group and its subgroups.
    pub fn gitlab_projects(&self, instance: &str, group_id: Option<u64>) -> Value {
        let query = group_id.map_or_else(String::new, |g| format!("?group={g}"));
        self.admin("GET", &format!("gitlab/{instance}/projects{query}"), None)
            .json()
    }

    /// Revokes every token of a GitLab user: refreshing answers `invalid_grant`, the API 401.
    pub fn gitlab_revoke_user(&self, instance: &str, user_id: u64) {
        self.admin(
            "POST",
            &format!("gitlab/{instance}/users/{user_id}/revoke"),
            None,
        );
    }

    /// Makes the live access tokens of a user (or everyone's) expired now; refresh tokens
    /// keep working.
    pub fn gitlab_expire(&self, instance: &str, user_id: Option<u64>) {
        self.admin(
            "POST",
            &format!("gitlab/{instance}/expire"),
            Some(&json!({ "user_id": user_id })),
        );
    }

    /// Configures the Microsoft app registration; `ttl` defaults to 3599 seconds.
    pub fn azure_oauth(&self, client_id: &str, secret: &str, ttl: Option<u64>) {
        self.admin(
            "PUT",
            "azure/oauth",
            Some(&json!({ "client_id": client_id, "client_secret": secret, "access_token_ttl": ttl })),
        );
    }

    /// Creates or replaces a Microsoft user (the first one signs in by default).
    pub fn azure_user(&self, id: &str, display_name: &str, email: Option<&str>) {
        self.admin(
            "PUT",
            &format!("azure/users/{id}"),
            Some(&json!({ "displayName": display_name, "emailAddress": email })),
        );
    }

    /// Creates or replaces an organization: `spec` is `{"id"?,"members":[guids],"projects":
    /// [{"name","visibility"?,"repositories":N or [names]}]}`. Answers `{"id","name","members",
    /// "projects":[{"id","name","visibility","repositories":[{"id","name"}]}]}`.
    pub fn azure_org(&self, name: &str, spec: Value) -> Value {
        self.admin("PUT", &format!("azure/orgs/{}", segment(name)), Some(&spec))
            .json()
    }

    /// The summary `azure_org` answers, as it is now.
    pub fn azure_org_summary(&self, name: &str) -> Value {
        self.admin("GET", &format!("azure/orgs/{}", segment(name)), None)
            .json()
    }

    /// Removes repositories of a project by id, then adds `add` generated and `add_names`
    /// named ones. Answers the organization's summary.
    pub fn azure_change_repos(
        &self,
        org: &str,
        project: &str,
        add: u32,
        add_names: &[&str],
        remove_ids: &[&str],
    ) -> Value {
        self.admin(
            "POST",
            &format!(
                "azure/orgs/{}/projects/{}/repositories",
                segment(org),
                segment(project)
            ),
            Some(&json!({ "add": add, "add_names": add_names, "remove_ids": remove_ids })),
        )
        .json()
    }

    pub fn azure_delete_org(&self, name: &str) {
        self.admin("DELETE", &format!("azure/orgs/{}", segment(name)), None);
    }

    /// Revokes every token of a Microsoft user.
    pub fn azure_revoke_user(&self, id: &str) {
        self.admin("POST", &format!("azure/users/{id}/revoke"), None);
    }

    /// Makes the live Microsoft access tokens of a user (or everyone's) expired now.
    pub fn azure_expire(&self, user_id: Option<&str>) {
        self.admin("POST", "azure/expire", Some(&json!({ "user_id": user_id })));
    }

    /// Every GitLab and Microsoft token request, oldest first.
    pub fn oauth_grants(&self) -> Vec<Grant> {
        serde_json::from_value(self.admin("GET", "oauth-grants", None).json())
            .expect("grant log entries")
    }

    /// Every GitLab and Microsoft access and refresh token ever issued (for leak scans).
    pub fn provider_tokens(&self) -> Vec<String> {
        serde_json::from_value(self.admin("GET", "provider-tokens", None).json())
            .expect("provider token list")
    }
}

/// Percent-encodes one path segment (organization and project names may hold spaces).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
