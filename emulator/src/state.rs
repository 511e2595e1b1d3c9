//! In-memory state: installations and their repositories, issued tokens, the request log
//! and the setup URL; and, kept by their own modules, the GitLab instances (`gitlab`), the
//! Microsoft / Azure DevOps directory (`azure`), their OAuth clients, codes and tokens
//! (`oauth`), the credential ledger (`ledger`), which every issued or configured credential is
//! indexed in, and the webhook target with its deliveries (`webhooks`). Each installation keeps
//! its organization's access state (`access/`).
//!
//! Generated repositories are stored as their index only (`{login}-repo-{i:05}`, id
//! `installation_id * 1_000_000 + i`), so installations with tens of thousands of
//! repositories stay small; their JSON is rendered per page in `github.rs`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::auth::new_installation_token;
use crate::ledger::{Family, Kind, Ledger};

/// Lifetime of installation access tokens, as on GitHub.
pub const TOKEN_LIFETIME: Duration = Duration::hours(1);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountType {
    #[default]
    Organization,
    User,
}

/// The organization or user an installation belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub login: String,
    pub id: u64,
    #[serde(rename = "type", default)]
    pub kind: AccountType,
    /// Display name (`name` in `GET /orgs/{login}`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A repository given by name through the admin API; omitted fields get defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoSpec {
    pub name: String,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub fork: bool,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub size: u64,
}

/// The attributes of one repository, stored for named ones and derived for generated ones.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoDetails {
    pub id: u64,
    pub name: String,
    pub private: bool,
    pub description: Option<String>,
    pub default_branch: String,
    pub archived: bool,
    pub fork: bool,
    pub language: Option<String>,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Repo {
    /// Generated repository number `i` (1-based).
    Generated(u32),
    Named(Box<RepoDetails>),
}

/// `i` when `name` is `{login}-repo-{i:05}`, the name of generated repository `i` (any case).
fn generated_index(login: &str, name: &str) -> Option<u32> {
    let split = login.len() + "-repo-".len();
    let (head, digits) = (name.get(..split)?, name.get(split..)?);
    let expected = login.bytes().chain(*b"-repo-");
    if !head
        .bytes()
        .zip(expected)
        .all(|(a, b)| a.eq_ignore_ascii_case(&b))
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let i: u32 = digits.parse().ok()?;
    (format!("{i:05}") == digits).then_some(i)
}

/// Languages cycled through by generated repositories.
const LANGUAGES: [Option<&str>; 5] = [
    Some("Rust"),
    Some("TypeScript"),
    Some("Go"),
    Some("Python"),
    None,
];

impl Repo {
    /// The repository id; generated ones derive it from the installation id.
    pub fn id(&self, installation_id: u64) -> u64 {
        match self {
            Repo::Generated(i) => generated_repo_id(installation_id, *i),
            Repo::Named(details) => details.id,
        }
    }
}

/// Id of generated repository `index` of an installation.
fn generated_repo_id(installation_id: u64, index: u32) -> u64 {
    installation_id * 1_000_000 + u64::from(index)
}

#[derive(Debug, Clone)]
pub struct Installation {
    pub id: u64,
    pub account: Account,
    /// `"all"` or `"selected"`.
    pub repository_selection: String,
    pub suspended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    repos: Vec<Repo>,
    /// Next index for generated repositories and generated ids.
    next_index: u32,
    /// Members, collaborators, settings, granted permissions, protections (`access/`).
    pub access: crate::access::Access,
}

impl Installation {
    pub fn new(
        id: u64,
        account: Account,
        repository_selection: String,
        now: DateTime<Utc>,
    ) -> Self {
        Installation {
            id,
            account,
            repository_selection,
            suspended_at: None,
            created_at: now,
            updated_at: now,
            repos: Vec::new(),
            next_index: 1,
            access: crate::access::Access::default(),
        }
    }

    pub fn repos(&self) -> &[Repo] {
        &self.repos
    }

    /// Appends `count` generated repositories, continuing the numbering.
    pub fn add_generated(&mut self, count: u32) {
        self.repos.reserve(count as usize);
        for _ in 0..count {
            self.repos.push(Repo::Generated(self.next_index));
            self.next_index += 1;
        }
    }

    /// Appends a named repository; without an id it gets the next generated one.
    pub fn add_named(&mut self, spec: RepoSpec) {
        let id = spec.id.unwrap_or_else(|| {
            let id = generated_repo_id(self.id, self.next_index);
            self.next_index += 1;
            id
        });
        self.repos.push(Repo::Named(Box::new(RepoDetails {
            id,
            name: spec.name,
            private: spec.private,
            description: spec.description,
            default_branch: spec.default_branch.unwrap_or_else(|| "main".into()),
            archived: spec.archived,
            fork: spec.fork,
            language: spec.language,
            size: spec.size,
        })));
    }

    /// The attributes of one of this installation's repositories. Generated repository `i`
    /// is named `{login}-repo-{i:05}`, private when `i` is odd, on branch `main`.
    pub fn repo_details<'a>(&self, repo: &'a Repo) -> Cow<'a, RepoDetails> {
        match repo {
            Repo::Named(details) => Cow::Borrowed(details),
            Repo::Generated(i) => Cow::Owned(RepoDetails {
                id: generated_repo_id(self.id, *i),
                name: format!("{}-repo-{i:05}", self.account.login),
                private: i % 2 == 1,
                description: Some(format!(
                    "Generated repository {i} of {}",
                    self.account.login
                )),
                default_branch: "main".into(),
                archived: false,
                fork: false,
                language: LANGUAGES[*i as usize % LANGUAGES.len()].map(str::to_string),
                size: u64::from(i % 1000) * 64,
            }),
        }
    }

    /// The first repository named `name` (case-insensitively), described as `repo_details`
    /// would, without describing the others: generated names are matched by number, so a
    /// lookup among 10,000 generated repositories allocates nothing per repository.
    pub fn repo_named(&self, name: &str) -> Option<Cow<'_, RepoDetails>> {
        let generated = generated_index(&self.account.login, name);
        self.repos
            .iter()
            .find(|repo| match repo {
                Repo::Generated(i) => generated == Some(*i),
                Repo::Named(details) => details.name.eq_ignore_ascii_case(name),
            })
            .map(|repo| self.repo_details(repo))
    }

    pub fn remove_ids(&mut self, ids: &HashSet<u64>) {
        let id = self.id;
        self.repos.retain(|r| !ids.contains(&r.id(id)));
    }

    pub fn set_suspended(&mut self, suspended: bool, now: DateTime<Utc>) {
        if suspended != self.suspended_at.is_some() {
            self.suspended_at = suspended.then_some(now);
            self.updated_at = now;
        }
    }
}

struct IssuedToken {
    installation_id: u64,
    expires_at: DateTime<Utc>,
}

/// One GitHub-endpoint request as shown by `GET /_emulator/requests`.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub seq: u64,
    /// The `seq` of the last request logged when this one arrived, before any fault rule held
    /// it: a request that arrived before request `n` was answered has `arrived < n` (so two
    /// requests overlapped when each arrived before the other was logged).
    pub arrived: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// `app_jwt`, `installation_token`, `user_token`, `none` or `invalid`; for GitLab and
    /// Microsoft / Azure DevOps: `bearer` (live access token), `expired`, `invalid`, `none`, or
    /// `oauth_token` (a token endpoint request); for the sink: `collected` (it carried
    /// credentials) or `none`. Git smart HTTP requests use their service's labels.
    pub auth: &'static str,
    pub installation_id: Option<u64>,
    pub invocation: Option<String>,
    pub user_agent: Option<String>,
}

/// The user the install page acts as when OAuth during installation is on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthUser {
    pub login: String,
    pub id: u64,
    /// The installations this user can access (`GET /user/installations`); absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installations: Option<Vec<u64>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    pub user: OAuthUser,
}

#[derive(Default)]
pub struct Store {
    installations: BTreeMap<u64, Installation>,
    tokens: HashMap<String, IssuedToken>,
    /// "Request user authorization (OAuth) during installation": the App's OAuth credentials
    /// and the GitHub user who is clicking through the install page.
    pub oauth: Option<OAuthApp>,
    codes: HashMap<String, (OAuthUser, DateTime<Utc>)>,
    user_tokens: HashMap<String, OAuthUser>,
    issued: Vec<String>,
    requests: Vec<LoggedRequest>,
    next_seq: u64,
    pub setup_url: Option<Url>,
    /// OAuth clients, codes, tokens and grants of the GitLab instances and Microsoft.
    pub provider_oauth: crate::oauth::OAuthStore,
    /// GitLab instances by name.
    pub gitlab: BTreeMap<String, crate::gitlab::Instance>,
    pub azure: crate::azure::Directory,
    /// Which credential reached which service (`ledger.rs`).
    pub ledger: Ledger,
    /// The webhook target and every delivery sent (`webhooks.rs`).
    pub webhooks: crate::webhooks::Hooks,
}

impl Store {
    pub fn new(setup_url: Option<Url>) -> Self {
        Store {
            setup_url,
            ..Store::default()
        }
    }

    pub fn installation(&self, id: u64) -> Option<&Installation> {
        self.installations.get(&id)
    }

    pub fn installation_mut(&mut self, id: u64) -> Option<&mut Installation> {
        self.installations.get_mut(&id)
    }

    pub fn installations(&self) -> impl Iterator<Item = &Installation> {
        self.installations.values()
    }

    /// Creates or replaces an installation.
    pub fn put_installation(&mut self, installation: Installation) {
        self.installations.insert(installation.id, installation);
    }

    /// Removes an installation; its tokens stop working. Returns whether it existed.
    pub fn remove_installation(&mut self, id: u64) -> bool {
        self.installations.remove(&id).is_some()
    }

    /// Issues a one-hour token for an installation.
    pub fn issue_token(
        &mut self,
        installation_id: u64,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let token = new_installation_token();
        let expires_at = now + TOKEN_LIFETIME;
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                installation_id,
                expires_at,
            },
        );
        self.issued.push(token.clone());
        self.ledger
            .remember(&token, Family::GitHub, Kind::InstallationToken);
        (token, expires_at)
    }

    /// A one-time code for the configured user, valid 10 minutes (`None` without OAuth).
    pub fn issue_code(&mut self, now: DateTime<Utc>) -> Option<String> {
        let user = self.oauth.as_ref()?.user.clone();
        let code = crate::auth::new_oauth_code();
        self.ledger.remember(&code, Family::GitHub, Kind::Code);
        self.codes
            .insert(code.clone(), (user, now + Duration::minutes(10)));
        Some(code)
    }

    /// Exchanges a code for a user token, as `POST /login/oauth/access_token` does: the App's
    /// client credentials must match; a code works once.
    pub fn redeem_code(
        &mut self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<String, &'static str> {
        let app = self.oauth.as_ref().ok_or("incorrect_client_credentials")?;
        if app.client_id != client_id || app.client_secret != client_secret {
            return Err("incorrect_client_credentials");
        }
        let (user, expires) = self.codes.remove(code).ok_or("bad_verification_code")?;
        if expires <= now {
            return Err("bad_verification_code");
        }
        let token = crate::auth::new_user_token();
        self.user_tokens.insert(token.clone(), user);
        self.issued.push(token.clone());
        self.ledger
            .remember(&token, Family::GitHub, Kind::UserToken);
        Ok(token)
    }

    pub fn token_user(&self, token: &str) -> Option<&OAuthUser> {
        self.user_tokens.get(token)
    }

    /// The installation an unexpired token belongs to, if it still exists.
    pub fn token_installation(&self, token: &str, now: DateTime<Utc>) -> Option<u64> {
        self.tokens
            .get(token)
            .filter(|t| t.expires_at > now && self.installations.contains_key(&t.installation_id))
            .map(|t| t.installation_id)
    }

    /// Every token ever issued, oldest first.
    pub fn issued_tokens(&self) -> &[String] {
        &self.issued
    }

    /// The sequence number of the latest logged request (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends to the request log, assigning the next sequence number, which it returns.
    pub fn log_request(&mut self, mut entry: LoggedRequest) -> u64 {
        self.next_seq += 1;
        entry.seq = self.next_seq;
        self.requests.push(entry);
        self.next_seq
    }

    pub fn requests(&self) -> &[LoggedRequest] {
        &self.requests
    }

    pub fn clear_requests(&mut self) {
        self.requests.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> Installation {
        let account = Account {
            login: "acme".into(),
            id: 1001,
            kind: AccountType::Organization,
            name: Some("Acme Corp".into()),
            description: None,
        };
        Installation::new(7, account, "all".into(), Utc::now())
    }

    fn named(name: &str, id: Option<u64>) -> RepoSpec {
        RepoSpec {
            name: name.into(),
            id,
            ..RepoSpec::default()
        }
    }

    #[test]
    fn generated_numbering_continues_across_adds_and_names() {
        let mut inst = acme();
        inst.add_generated(3);
        inst.add_named(named("docs", None));
        inst.add_named(named("site", Some(55)));
        inst.add_generated(1);
        let ids: Vec<u64> = inst.repos().iter().map(|r| r.id(7)).collect();
        assert_eq!(
            ids,
            [7_000_001, 7_000_002, 7_000_003, 7_000_004, 55, 7_000_005]
        );

        inst.remove_ids(&HashSet::from([7_000_002, 55]));
        let ids: Vec<u64> = inst.repos().iter().map(|r| r.id(7)).collect();
        assert_eq!(ids, [7_000_001, 7_000_003, 7_000_004, 7_000_005]);
    }

    #[test]
    fn generated_repositories_alternate_visibility() {
        let mut inst = acme();
        inst.add_generated(2);
        let first = inst.repo_details(&inst.repos()[0]).into_owned();
        let second = inst.repo_details(&inst.repos()[1]);
        assert_eq!(
            (first.id, first.name.as_str(), first.private),
            (7_000_001, "acme-repo-00001", true)
        );
        assert_eq!(
            (
                second.name.as_str(),
                second.private,
                second.default_branch.as_str()
            ),
            ("acme-repo-00002", false, "main")
        );
    }

    #[test]
    fn repositories_are_found_by_name() {
        let mut inst = acme();
        inst.add_generated(2);
        inst.add_named(named("Docs", None));
        inst.add_generated(120_000);
        let found = |name: &str| inst.repo_named(name).map(|d| d.id);
        assert_eq!(found("acme-repo-00002"), Some(7_000_002));
        assert_eq!(found("ACME-Repo-00001"), Some(7_000_001));
        assert_eq!(found("docs"), Some(7_000_003));
        assert_eq!(found("acme-repo-00004"), Some(7_000_004));
        assert_eq!(found("acme-repo-100003"), Some(7_100_003));
        for missing in [
            "acme-repo-00003",
            "acme-repo-0002",
            "acme-repo-000002",
            "acme-repo-+0002",
            "acme-repo-",
            "acme-repo-99999999999",
            "other-repo-00001",
            "acme",
        ] {
            assert_eq!(found(missing), None, "{missing}");
        }
        for repo in inst.repos().iter().step_by(997) {
            let details = inst.repo_details(repo);
            assert_eq!(found(&details.name), Some(details.id));
        }
    }

    #[test]
    fn large_installations_stay_compact() {
        let mut inst = acme();
        inst.add_generated(20_000);
        assert_eq!(inst.repos().len(), 20_000);
        assert!(std::mem::size_of::<Repo>() <= 16);
    }

    #[test]
    fn tokens_expire_and_die_with_their_installation() {
        let mut store = Store::default();
        store.put_installation(acme());
        let now = Utc::now();
        let (token, expires_at) = store.issue_token(7, now);
        assert_eq!(expires_at - now, TOKEN_LIFETIME);
        assert_eq!(store.token_installation(&token, now), Some(7));
        assert_eq!(store.token_installation(&token, expires_at), None);
        assert_eq!(store.token_installation("ghs_unknown", now), None);
        assert!(store.remove_installation(7));
        assert_eq!(store.token_installation(&token, now), None);
        assert_eq!(store.issued_tokens(), [token]);
    }

    #[test]
    fn suspension_sets_and_clears_timestamp() {
        let mut inst = acme();
        let now = Utc::now();
        inst.set_suspended(true, now);
        assert_eq!(inst.suspended_at, Some(now));
        inst.set_suspended(true, now + Duration::seconds(5));
        assert_eq!(inst.suspended_at, Some(now));
        inst.set_suspended(false, now);
        assert_eq!(inst.suspended_at, None);
    }
}
