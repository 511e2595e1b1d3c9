//! The GitHub emulator as the suite drives it: its admin API (`/_emulator/…`: installations,
//! repositories, faults, the request log, issued tokens; GitLab instances and the Microsoft /
//! Azure DevOps directory with their OAuth applications, the OAuth grants log and every
//! provider token issued) and, as a ground truth to compare D1 with, its repository listing
//! fetched the way GitHub clients do (App JWT → installation token →
//! `GET /installation/repositories` following `Link`); and the access audit data of each
//! provider (members, collaborators, branch protections, rulesets, GitLab protected branches and
//! approval rules, Azure DevOps entitlements and branch policies) with the signed GitHub
//! webhooks its changes send.

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
/// `/microsoft/…`, `/vssps/…`, `/vsaex/…`, `/azure/…`).
#[derive(Debug, Clone, Deserialize)]
pub struct Logged {
    pub seq: u64,
    /// The `seq` of the last request logged when this one arrived (before a fault rule held
    /// it): see [`Logged::overlapped`].
    pub arrived: u64,
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
    /// Whether the two requests were at the emulator at the same time: each arrived before the
    /// other was answered. Two requests made one after the other never are.
    pub fn overlapped(&self, other: &Logged) -> bool {
        self.arrived < other.seq && other.arrived < self.seq
    }

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
    /// Where browsers reach the worker (its `PUBLIC_URL`): the OAuth applications register
    /// their redirect URIs there.
    public_url: String,
    http: Http,
    signer: AppSigner,
}

impl Emulator {
    pub fn new(base: String, public_url: String, http: Http, signer: AppSigner) -> Emulator {
        Emulator {
            base,
            public_url,
            http,
            signer,
        }
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

    /// Adds fault rules after the present ones (`POST /_emulator/faults`): for a shared test
    /// whose rules match only its own requests (its installation, group or path).
    pub fn add_faults(&self, rules: Value) {
        self.admin("POST", "faults", Some(&rules));
    }

    /// The gates fault rules hold requests at: `{"<name>":{"arrived","waiting","open",
    /// "timed_out"}}`.
    pub fn gates(&self) -> Value {
        self.admin("GET", "gates", None).json()
    }

    /// Opens gate `name`: the requests held there go on.
    pub fn open_gate(&self, name: &str) {
        self.admin("POST", &format!("gates/{name}"), None);
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

    /// The last valid App JWTs the emulator was shown, oldest first.
    pub fn app_jwts(&self) -> Vec<String> {
        serde_json::from_value(self.admin("GET", "app-jwts", None).json()).expect("App JWT list")
    }

    /// The App's pure-Rust signer (the harness's own key).
    pub fn signer(&self) -> &AppSigner {
        &self.signer
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
    /// Configures the OAuth application of a GitLab instance (created on first use), with the
    /// worker's `{PUBLIC_URL}/gitlab/callback` as its only redirect URI; `ttl`: access token
    /// lifetime in seconds (default 7200).
    pub fn gitlab_oauth(&self, instance: &str, client_id: &str, secret: &str, ttl: Option<u64>) {
        let callback = format!("{}/gitlab/callback", self.public_url);
        self.admin(
            "PUT",
            &format!("gitlab/{instance}/oauth"),
            Some(&json!({ "client_id": client_id, "client_secret": secret,
                          "access_token_ttl": ttl, "redirect_uris": [callback] })),
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
    /// "members":[user id or {"id","access_level"}],"projects":N or [{"name","visibility"?,
    /// "archived"?,"default_branch"?}]}`. Answers `{"id","full_path","parent_id","members",
    /// "access_levels","require_two_factor_authentication","projects":[{"id","name","path",…}]}`.
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

    /// Configures the Microsoft app registration, with the worker's
    /// `{PUBLIC_URL}/azure-devops/callback` as its only redirect URI; `ttl` defaults to 3599
    /// seconds.
    pub fn azure_oauth(&self, client_id: &str, secret: &str, ttl: Option<u64>) {
        let callback = format!("{}/azure-devops/callback", self.public_url);
        self.admin(
            "PUT",
            "azure/oauth",
            Some(&json!({ "client_id": client_id, "client_secret": secret,
                          "access_token_ttl": ttl, "redirect_uris": [callback] })),
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

    /// Creates or replaces an organization: `spec` is `{"id"?,"members":[guid or {"id",
    /// "access_level"}],"projects":[{"name","visibility"?,"repositories":N or [names]}],
    /// "entitlements_denied"?:true|401|403}` (`access_level` an `accountLicenseType`:
    /// `express` (default), `stakeholder`, `advanced`, …). Answers `{"id","name","members",
    /// "access_levels","entitlements_denied","projects":[{"id","name","visibility",
    /// "repositories":[{"id","name"}]}]}`.
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

/// Access audit data of a GitHub installation's organization and the webhooks its changes send
/// (the emulator's `access/` and `webhooks.rs`; routes in its `admin.rs`). Every change that
/// GitHub would report by webhook answers `{…,"deliveries":[{"id","event","action","status"}]}`:
/// delivered, signed, to the target of [`Emulator::set_webhook_target`] before the call returns
/// (empty without a target).
impl Emulator {
    /// Replaces the organization's members, outside collaborators, pending invitations,
    /// settings and the App's granted permissions (no webhooks). `spec`:
    /// `{"members":[{"login","id"?,"role":"admin"|"member","two_factor"?}],
    /// "outside_collaborators":[{"login","id"?,"two_factor"?,"admin_on":[repo names],
    /// "repositories"?:{"repo":"read"|"triage"|"write"|"maintain"|"admin"}}],
    /// "invitations":[{"login"?|"email"?,"role"?}],"settings":{"two_factor_requirement_enabled"?,
    /// "default_repository_permission"?,"members_can_create_public_repositories"?},
    /// "permissions":{"members"?,"organization_administration"?,"administration"?}}`; a missing
    /// key means empty / defaults (each permission `read`; `null` revokes it). Answers
    /// [`Emulator::github_access`].
    pub fn set_github_access(&self, installation_id: u64, spec: Value) -> Value {
        self.admin(
            "PUT",
            &format!("installations/{installation_id}/access"),
            Some(&spec),
        )
        .json()
    }

    /// The organization's access state: `set_github_access`'s shape with ids, plus
    /// `protections`, `rulesets` (GitHub's ruleset JSON) and `teams`.
    pub fn github_access(&self, installation_id: u64) -> Value {
        self.admin(
            "GET",
            &format!("installations/{installation_id}/access"),
            None,
        )
        .json()
    }

    /// Sets the classic protection of a repository's branch (sends `branch_protection_rule`
    /// `created`, or `edited` when it changes). `spec`: `{"required_reviews"?,
    /// "dismiss_stale_reviews"?,"require_code_owner_reviews"?,"required_checks"?:[..],"strict"?,
    /// "enforce_admins"?,"allow_force_pushes"?,"allow_deletions"?,"required_linear_history"?,
    /// "required_conversation_resolution"?}`. Answers `{"protection":{…},"deliveries":[…]}`.
    pub fn set_protection(
        &self,
        installation_id: u64,
        repo: &str,
        branch: &str,
        spec: Value,
    ) -> Value {
        self.admin(
            "PUT",
            &format!(
                "installations/{installation_id}/repositories/{}/protection/{}",
                segment(repo),
                segment(branch)
            ),
            Some(&spec),
        )
        .json()
    }

    /// Removes a branch's classic protection (`branch_protection_rule` `deleted`).
    pub fn delete_protection(&self, installation_id: u64, repo: &str, branch: &str) -> Value {
        self.admin(
            "DELETE",
            &format!(
                "installations/{installation_id}/repositories/{}/protection/{}",
                segment(repo),
                segment(branch)
            ),
            None,
        )
        .json()
    }

    /// Adds a repository ruleset (`repository_ruleset` `created`) and answers its id. `spec`:
    /// `{"name","enforcement"?:"active"|"disabled"|"evaluate","include"?:["~DEFAULT_BRANCH"],
    /// "exclude"?:[],"rules":[{"type":"pull_request","required_approving_review_count":2},
    /// {"type":"non_fast_forward"},{"type":"deletion"},{"type":"required_status_checks",
    /// "required_status_checks":[{"context":"ci"}]},…]}`.
    pub fn add_ruleset(&self, installation_id: u64, repo: &str, spec: Value) -> u64 {
        let answer = self
            .admin(
                "POST",
                &format!(
                    "installations/{installation_id}/repositories/{}/rulesets",
                    segment(repo)
                ),
                Some(&spec),
            )
            .json();
        answer["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no ruleset id: {answer}"))
    }

    /// Replaces a repository ruleset (`repository_ruleset` `edited`, with `changes`).
    pub fn replace_ruleset(
        &self,
        installation_id: u64,
        repo: &str,
        ruleset_id: u64,
        spec: Value,
    ) -> Value {
        self.admin(
            "PUT",
            &format!(
                "installations/{installation_id}/repositories/{}/rulesets/{ruleset_id}",
                segment(repo)
            ),
            Some(&spec),
        )
        .json()
    }

    /// Deletes a repository ruleset (`repository_ruleset` `deleted`).
    pub fn delete_ruleset(&self, installation_id: u64, repo: &str, ruleset_id: u64) -> Value {
        self.admin(
            "DELETE",
            &format!(
                "installations/{installation_id}/repositories/{}/rulesets/{ruleset_id}",
                segment(repo)
            ),
            None,
        )
        .json()
    }

    /// Adds an organization ruleset (`ruleset_source_type` `Organization`): `add_ruleset`'s
    /// spec plus `"repositories"?:["~ALL"]` and `"exclude_repositories"?:[]`. Answers its id.
    pub fn add_org_ruleset(&self, installation_id: u64, spec: Value) -> u64 {
        let answer = self
            .admin(
                "POST",
                &format!("installations/{installation_id}/rulesets"),
                Some(&spec),
            )
            .json();
        answer["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no ruleset id: {answer}"))
    }

    /// Deletes an organization ruleset.
    pub fn delete_org_ruleset(&self, installation_id: u64, ruleset_id: u64) -> Value {
        self.admin(
            "DELETE",
            &format!("installations/{installation_id}/rulesets/{ruleset_id}"),
            None,
        )
        .json()
    }

    /// Adds an organization member (`organization` `member_added`): `spec`
    /// `{"login","id"?,"role"?:"member"|"admin","two_factor"?:true}`. An outside collaborator
    /// of that login is converted, its invitation accepted. Answers `{"login","id",
    /// "deliveries"}`.
    pub fn add_member(&self, installation_id: u64, spec: Value) -> Value {
        self.admin(
            "POST",
            &format!("installations/{installation_id}/members"),
            Some(&spec),
        )
        .json()
    }

    /// Removes a member (`organization` `member_removed`).
    pub fn remove_member(&self, installation_id: u64, login: &str) -> Value {
        self.admin(
            "DELETE",
            &format!("installations/{installation_id}/members/{}", segment(login)),
            None,
        )
        .json()
    }

    /// Changes a member: `patch` `{"role"?,"two_factor"?}`. A role change sends `organization`
    /// `member_added` with the new role (GitHub has no action of its own for it); a 2FA change
    /// sends nothing.
    pub fn change_member(&self, installation_id: u64, login: &str, patch: Value) -> Value {
        self.admin(
            "PATCH",
            &format!("installations/{installation_id}/members/{}", segment(login)),
            Some(&patch),
        )
        .json()
    }

    /// Invites someone (`organization` `member_invited`): `spec` `{"login"?|"email"?,"role"?}`
    /// (role `direct_member` by default, or `admin`, `billing_manager`, `hiring_manager`).
    pub fn invite(&self, installation_id: u64, spec: Value) -> Value {
        self.admin(
            "POST",
            &format!("installations/{installation_id}/invitations"),
            Some(&spec),
        )
        .json()
    }

    /// Grants an outside collaborator `permission` (`read`, `triage`, `write`, `maintain`,
    /// `admin`) on a repository: `member` `added`, or `edited` when the role changes.
    pub fn add_outside_collaborator(
        &self,
        installation_id: u64,
        repo: &str,
        login: &str,
        permission: &str,
    ) -> Value {
        self.admin(
            "PUT",
            &format!(
                "installations/{installation_id}/repositories/{}/collaborators/{}",
                segment(repo),
                segment(login)
            ),
            Some(&json!({ "permission": permission })),
        )
        .json()
    }

    /// Revokes an outside collaborator's access to a repository (`member` `removed`).
    pub fn remove_outside_collaborator(
        &self,
        installation_id: u64,
        repo: &str,
        login: &str,
    ) -> Value {
        self.admin(
            "DELETE",
            &format!(
                "installations/{installation_id}/repositories/{}/collaborators/{}",
                segment(repo),
                segment(login)
            ),
            None,
        )
        .json()
    }

    /// Creates a team (`team` `created`); answers `{"id","slug","deliveries"}`.
    pub fn add_team(&self, installation_id: u64, name: &str) -> Value {
        self.admin(
            "POST",
            &format!("installations/{installation_id}/teams"),
            Some(&json!({ "name": name })),
        )
        .json()
    }

    /// An organization member joins (`true`, `membership` `added`) or leaves (`removed`) a team.
    pub fn team_membership(
        &self,
        installation_id: u64,
        slug: &str,
        login: &str,
        join: bool,
    ) -> Value {
        self.admin(
            if join { "PUT" } else { "DELETE" },
            &format!(
                "installations/{installation_id}/teams/{}/members/{}",
                segment(slug),
                segment(login)
            ),
            None,
        )
        .json()
    }

    /// Where the emulator POSTs its signed webhook deliveries (`X-Hub-Signature-256` with
    /// `secret`), e.g. the worker's `…/github/webhooks` on 127.0.0.1.
    pub fn set_webhook_target(&self, url: &str, secret: &str) {
        self.admin(
            "PUT",
            "webhooks",
            Some(&json!({ "url": url, "secret": secret })),
        );
    }

    /// Stops sending webhooks (changes still apply).
    pub fn clear_webhook_target(&self) {
        self.admin("DELETE", "webhooks", None);
    }

    /// Every delivery sent, oldest first: `[{"id","event","action","installation_id","url",
    /// "status","error","redelivery","delivered_at","duration_ms","body"}]` (`status` null with
    /// `error` when the receiver could not be reached).
    pub fn webhook_deliveries(&self) -> Value {
        self.admin("GET", "webhooks/deliveries", None).json()
    }

    /// Empties the delivery list.
    pub fn clear_webhook_deliveries(&self) {
        self.admin("DELETE", "webhooks/deliveries", None);
    }

    /// Sends a delivery again, with the same `X-GitHub-Delivery`, body and signature, to the
    /// current target; the receiver's HTTP status (0 when it could not be reached).
    pub fn redeliver(&self, id: &str) -> u16 {
        let answer = self
            .admin(
                "POST",
                &format!("webhooks/deliveries/{}/redeliver", segment(id)),
                None,
            )
            .json();
        answer["status"].as_u64().map_or(0, |status| status as u16)
    }
}

/// Access audit data of GitLab and Azure DevOps (the emulator's `gitlab/audit.rs`,
/// `azure/audit.rs`; routes in its `admin.rs`).
impl Emulator {
    /// Sets a group's 2FA requirement (`require_two_factor_authentication`) and grace period
    /// in hours (GitLab's default 48 when `None`). Answers `{"id",
    /// "require_two_factor_authentication","two_factor_grace_period"}`.
    pub fn gitlab_group_access(
        &self,
        instance: &str,
        group_id: u64,
        require_two_factor: bool,
        grace_period_hours: Option<u32>,
    ) -> Value {
        let mut body = json!({ "require_two_factor_authentication": require_two_factor });
        if let Some(hours) = grace_period_hours {
            body["two_factor_grace_period"] = json!(hours);
        }
        self.admin(
            "PUT",
            &format!("gitlab/{instance}/groups/{group_id}/access"),
            Some(&body),
        )
        .json()
    }

    /// Adds a member to a group or changes its access level (5 minimal access, 10 guest,
    /// 15 planner, 20 reporter, 30 developer, 40 maintainer, 50 owner), keeping the group's
    /// projects. Answers the group's summary.
    pub fn gitlab_member(
        &self,
        instance: &str,
        group_id: u64,
        user_id: u64,
        access_level: u32,
    ) -> Value {
        self.admin(
            "PUT",
            &format!("gitlab/{instance}/groups/{group_id}/members/{user_id}"),
            Some(&json!({ "access_level": access_level })),
        )
        .json()
    }

    /// Removes a direct member of a group.
    pub fn gitlab_remove_member(&self, instance: &str, group_id: u64, user_id: u64) -> Value {
        self.admin(
            "DELETE",
            &format!("gitlab/{instance}/groups/{group_id}/members/{user_id}"),
            None,
        )
        .json()
    }

    /// Protects a branch (or wildcard such as `release/*`) of a project: `spec`
    /// `{"push_access_level"?,"merge_access_level"?,"allow_force_push"?,
    /// "code_owner_approval_required"?}` (levels 0, 30, 40 (default) or 60). Answers it as
    /// `GET /projects/:id/protected_branches` lists it.
    pub fn gitlab_protect_branch(
        &self,
        instance: &str,
        project_id: u64,
        name: &str,
        spec: Value,
    ) -> Value {
        self.admin(
            "PUT",
            &format!(
                "gitlab/{instance}/projects/{project_id}/protected_branches/{}",
                segment(name)
            ),
            Some(&spec),
        )
        .json()
    }

    /// Unprotects a branch (panics if it was not protected).
    pub fn gitlab_unprotect_branch(&self, instance: &str, project_id: u64, name: &str) {
        self.admin(
            "DELETE",
            &format!(
                "gitlab/{instance}/projects/{project_id}/protected_branches/{}",
                segment(name)
            ),
            None,
        );
    }

    /// Replaces a project's merge request approval rules: `rules`
    /// `[{"name","approvals_required","rule_type"?:"regular"|"any_approver"}]`.
    pub fn gitlab_approval_rules(&self, instance: &str, project_id: u64, rules: Value) -> Value {
        self.admin(
            "PUT",
            &format!("gitlab/{instance}/projects/{project_id}/approval_rules"),
            Some(&rules),
        )
        .json()
    }

    /// Replaces a repository's branch policies: `policies` `[{"type":"reviewers",
    /// "minimum_approver_count":2,"enabled"?,"blocking"?,"branch"?:"main","match"?:"exact"|
    /// "prefix"},{"type":"build","name":"ci"},…]` (types `reviewers`, `build`,
    /// `merge_strategy`, `comment_resolution`, `work_item_linking`, `required_reviewers`).
    /// Answers `{"count","value":[{"id","type","isEnabled","isBlocking","refName","matchKind",
    /// "settings"}]}`. Member access levels and denied entitlements are part of
    /// [`Emulator::azure_org`]'s spec (`"members":[guid or {"id","access_level"}]`,
    /// `"entitlements_denied":true|401|403`).
    pub fn azure_policies(&self, org: &str, project: &str, repo: &str, policies: Value) -> Value {
        self.admin(
            "PUT",
            &format!(
                "azure/orgs/{}/projects/{}/repositories/{}/policies",
                segment(org),
                segment(project),
                segment(repo)
            ),
            Some(&policies),
        )
        .json()
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
