//! GitLab groups and Azure DevOps organizations connected through OAuth (issue #5), end to end
//! against the emulator's GitLab, Microsoft identity and Azure DevOps parts:
//!
//! - connecting every readable group (subgroups' projects included, several pages) or the
//!   chosen ones, on gitlab.com's stand-in and on a "self-managed" instance; every Azure DevOps
//!   organization of the user (projects over several continuation pages) or a chosen one;
//! - the records, stubs and backup jobs are those of GitHub orgs, the portal API shows them;
//! - connect requests are validated; a declined consent, a replayed or foreign state and a code
//!   exchanged with the wrong PKCE verifier (refused by the emulator as GitLab would) write
//!   nothing;
//! - sync, disconnect and reconnect;
//! - tokens: sealed at rest under the current key, refreshed before expiry, one refresh for two
//!   concurrent callers, a revoked authorization disconnects its orgs, a ciphertext moved to
//!   another row does not open, `TOKEN_KEYS` rotation with the cron's re-sealing pass, and the
//!   cron refreshing what would expire before its next run.

use std::sync::Barrier;
use std::time::Duration;

use serde_json::{json, Value};

use onecode_edge::auth::token_crypto::{self, Binding, TokenKeys};

use crate::harness::checks;
use crate::harness::emulator::Grant;
use crate::harness::portal::{assert_problem, Portal};
use crate::harness::{poll_until, Stack, CURRENT_TOKEN_KEY, GITLAB_INSTANCE, SELF_MANAGED_GITLAB};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        Case::shared(
            "oauth::gitlab_connects_every_readable_group_with_its_subgroups",
            gitlab_every_group,
        ),
        Case::shared(
            "oauth::gitlab_connects_chosen_groups_of_a_self_managed_instance",
            gitlab_self_managed,
        ),
        Case::shared(
            "oauth::azure_devops_connects_organizations_projects_and_repositories",
            azure_organizations,
        ),
        Case::shared(
            "oauth::azure_devops_chosen_organizations_must_be_the_users",
            azure_chosen,
        ),
        Case::shared(
            "oauth::azure_devops_sync_refresh_deleted_organization_and_revocation",
            azure_over_time,
        ),
        Case::shared("oauth::connect_requests_are_validated", validation),
        Case::shared(
            "oauth::redirect_uris_are_on_public_url_whatever_origin_the_portal_called",
            redirect_uris_on_public_url,
        ),
        Case::shared(
            "oauth::a_wrong_code_verifier_is_refused_and_writes_nothing",
            wrong_verifier,
        ),
        Case::shared(
            "oauth::declined_replayed_and_foreign_states_write_nothing",
            refused_callbacks,
        ),
        Case::shared(
            "oauth::gitlab_sync_disconnect_and_reconnect",
            sync_disconnect_reconnect,
        ),
        Case::shared(
            "oauth::tokens_are_sealed_at_rest_and_refreshed_before_expiry",
            refresh_before_expiry,
        ),
        Case::shared(
            "oauth::two_concurrent_refreshes_spend_one_refresh_token",
            concurrent_refresh,
        ),
        Case::shared(
            "oauth::a_revoked_authorization_disconnects_its_orgs",
            revoked,
        ),
        Case::exclusive(
            "oauth::a_ciphertext_moved_to_another_row_does_not_open",
            swapped_ciphertext,
        ),
        Case::exclusive(
            "oauth::token_keys_rotate_and_the_cron_reseals_old_rows",
            key_rotation,
        ),
        Case::exclusive(
            "oauth::the_cron_refreshes_connections_due_before_its_next_run",
            cron_refresh,
        ),
    ]
}

const GL: &str = "gitlab";
const AZ: &str = "azure-devops";
const HOURLY: &str = "15 * * * *";

// ---- fixtures ----

/// A GitLab user of `instance`, signed in by the emulator as `id`.
pub(crate) fn gitlab_user(s: &Stack, instance: &str, id: u64) -> String {
    s.emulator
        .gitlab_user(instance, id, &format!("user-{id}"), &format!("User {id}"));
    id.to_string()
}

/// A top-level group (`path-<id>`) with `projects` generated projects and the members given.
pub(crate) fn gitlab_group(
    s: &Stack,
    instance: &str,
    id: u64,
    members: &[u64],
    projects: u32,
) -> String {
    let path = format!("grp-{id}");
    s.emulator.gitlab_group(
        instance,
        id,
        json!({"name": format!("Group {id}"), "path": path, "members": members, "projects": projects}),
    );
    path
}

/// An Azure DevOps user (a GUID derived from `n`).
fn azure_user(s: &Stack, n: u32) -> String {
    let id = format!("0d5e1c9a-0000-4000-8000-{n:012}");
    s.emulator.azure_user(&id, &format!("Azure {n}"), None);
    id
}

/// A self-managed GitLab instance the worker is configured for (`GITLAB_INSTANCES`, see
/// `SELF_MANAGED_GITLAB`), with its own OAuth application; `ttl`: its access tokens' lifetime.
pub(crate) fn self_managed(s: &Stack, instance: &str, ttl: Option<u64>) -> String {
    let (_, client_id, secret) = SELF_MANAGED_GITLAB
        .iter()
        .find(|(name, _, _)| *name == instance)
        .unwrap_or_else(|| panic!("{instance} is not in SELF_MANAGED_GITLAB"));
    s.emulator.gitlab_oauth(instance, client_id, secret, ttl);
    format!("{}/gitlab/{instance}", s.emulator.base)
}

/// The tenant's connection rows.
#[derive(Debug, Clone)]
struct Connection {
    id: String,
    provider: String,
    status: String,
    key_id: String,
    access_token: String,
    refresh_token: String,
    expires_at: String,
    version: i64,
    last_error: Option<String>,
}

fn connections(s: &Stack, tenant: &str) -> Vec<Connection> {
    s.store.query(
        "SELECT id, provider, status, key_id, access_token, refresh_token, expires_at, version, last_error \
         FROM provider_connections WHERE tenant_id = ?1 ORDER BY id",
        [tenant],
        |r| {
            Ok(Connection {
                id: r.get(0)?,
                provider: r.get(1)?,
                status: r.get(2)?,
                key_id: r.get(3)?,
                access_token: r.get(4)?,
                refresh_token: r.get(5)?,
                expires_at: r.get(6)?,
                version: r.get(7)?,
                last_error: r.get(8)?,
            })
        },
    )
}

#[track_caller]
fn connection(s: &Stack, tenant: &str) -> Connection {
    let mut all = connections(s, tenant);
    assert_eq!(all.len(), 1, "one connection for {tenant}: {all:?}");
    all.remove(0)
}

/// `(status, provider, installation_id, connection_id)` of an org.
fn org_row(s: &Stack, org_id: &str) -> (String, String, i64, Option<String>) {
    s.store
        .query(
            "SELECT status, provider, installation_id, connection_id FROM organizations WHERE id = ?1",
            [org_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .pop()
        .expect("the org row")
}

fn count(s: &Stack, sql: &str, org_id: &str) -> i64 {
    s.store.count(sql, [org_id])
}

fn active_repos(s: &Stack, org_id: &str) -> i64 {
    count(
        s,
        "SELECT count(*) FROM repositories WHERE org_id = ?1 AND status = 'active'",
        org_id,
    )
}

/// Waits until the consumer has received every backup job of the org, and there are `n`.
#[track_caller]
fn jobs_received(s: &Stack, org_id: &str, n: usize) {
    checks::jobs_received(s, org_id, n);
}

/// The keys the test worker holds: the current (`CURRENT_TOKEN_KEY`) and the dev ones.
fn worker_keys(s: &Stack) -> TokenKeys {
    let dev = s.secrets.get("TOKEN_KEYS").expect("TOKEN_KEYS");
    TokenKeys::parse(&format!("{CURRENT_TOKEN_KEY},{dev}")).expect("the worker's keys parse")
}

fn open(keys: &TokenKeys, c: &Connection, field: &str, envelope: &str) -> Result<String, String> {
    let binding = Binding {
        provider: &c.provider,
        record_id: &c.id,
        field,
    };
    token_crypto::open(keys, &binding, envelope).map_err(|e| e.to_string())
}

fn grants_of(s: &Stack, user: &str) -> Vec<Grant> {
    s.emulator
        .oauth_grants()
        .into_iter()
        .filter(|g| g.user_id.as_deref() == Some(user))
        .collect()
}

fn refreshes(grants: &[Grant]) -> Vec<&Grant> {
    grants
        .iter()
        .filter(|g| g.grant_type.as_deref() == Some("refresh_token"))
        .collect()
}

/// Every refresh token was presented at most once, and none was refused.
#[track_caller]
fn each_refresh_token_spent_once(grants: &[Grant]) {
    let refreshes = refreshes(grants);
    let mut presented: Vec<&str> = refreshes
        .iter()
        .filter_map(|g| g.presented_refresh_token.as_deref())
        .collect();
    let n = presented.len();
    presented.sort_unstable();
    presented.dedup();
    assert_eq!(
        presented.len(),
        n,
        "a refresh token was presented twice: {refreshes:?}"
    );
    assert!(
        refreshes.iter().all(|g| g.outcome == "ok"),
        "a refresh was refused: {refreshes:?}"
    );
}

// ---- connecting ----

fn gitlab_every_group(s: &Stack) {
    let tenant = "oauth-gl-every";
    let user = gitlab_user(s, GITLAB_INSTANCE, 71001);
    let initech = gitlab_group(s, GITLAB_INSTANCE, 71001, &[71001], 5);
    s.emulator.gitlab_group(
        GITLAB_INSTANCE,
        71002,
        json!({"name": "Platform", "path": "platform", "parent_id": 71001, "projects": 3}),
    );
    let hooli = gitlab_group(s, GITLAB_INSTANCE, 71003, &[71001], 130);
    // Not a member: not connected.
    gitlab_group(s, GITLAB_INSTANCE, 71004, &[], 2);

    let callback = s.oauth_connect_as(GL, tenant, &user, None);
    let connected = callback.connected(GL);
    assert_eq!(connected.orgs, [initech.clone(), hooli.clone()]);
    assert_eq!(
        (connected.repos, connected.added, connected.complete),
        (138, 138, true),
        "{connected:?}"
    );
    let (initech_id, hooli_id) = (&connected.org_ids[0], &connected.org_ids[1]);
    assert_eq!(
        active_repos(s, initech_id),
        8,
        "5 projects + 3 of the subgroup"
    );
    assert_eq!(active_repos(s, hooli_id), 130);
    jobs_received(s, initech_id, 8);
    jobs_received(s, hooli_id, 130);
    assert_eq!(
        count(
            s,
            "SELECT count(*) FROM application_profiles p JOIN repositories r ON r.id = p.repository_id \
             WHERE r.org_id = ?1",
            hooli_id
        ),
        130
    );
    let c = connection(s, tenant);
    for org in &connected.org_ids {
        let (status, provider, installation_id, connection_id) = org_row(s, org);
        assert_eq!(
            (status.as_str(), provider.as_str(), installation_id),
            ("active", "gitlab", 0)
        );
        assert_eq!(connection_id.as_deref(), Some(c.id.as_str()));
    }
    // Sealed under the current key, for this row; opening it gives a token the emulator issued.
    assert_eq!((c.status.as_str(), c.key_id.as_str()), ("active", "e2e2"));
    let keys = worker_keys(s);
    let access = open(&keys, &c, "access_token", &c.access_token).expect("the access token opens");
    let refresh =
        open(&keys, &c, "refresh_token", &c.refresh_token).expect("the refresh token opens");
    assert!(access.starts_with("glemu-at-") && refresh.starts_with("glemu-rt-"));
    assert!(!c.access_token.contains(&access) && !c.refresh_token.contains(&refresh));

    // The portal sees them like GitHub orgs.
    let portal = Portal::new(s, tenant);
    let list = portal.get("/v1/orgs?provider=gitlab");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{list}");
    for item in items {
        assert_eq!(item["installation_id"], Value::Null, "{item}");
        assert_eq!(item["account_type"], "Group", "{item}");
        assert_eq!(item["status"], "active", "{item}");
    }
    let repos = portal.get(&format!("/v1/orgs/{initech_id}/repos?limit=100"));
    let repos = repos["items"].as_array().expect("repos");
    assert_eq!(repos.len(), 8);
    assert!(
        repos.iter().all(|r| r["provider_repo_id"].is_u64()),
        "{repos:?}"
    );
    assert!(
        repos
            .iter()
            .filter(|r| r["full_name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("{initech}/platform/"))))
            .count()
            == 3,
        "the subgroup's projects keep their path: {repos:?}"
    );
    let events = portal.events(initech_id);
    assert_eq!(
        events.first().map(String::as_str),
        Some("sync.completed"),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e == "org.connected"), "{events:?}");
    // Backup jobs name the connection, never a token.
    assert!(!s.store.kv_mentions(&access) && !s.store.kv_mentions(&refresh));
}

fn gitlab_self_managed(s: &Stack) {
    let tenant = "oauth-gl-selfmanaged";
    let instance = "selfmanaged-e2e";
    let base_url = self_managed(s, instance, None);
    let user = gitlab_user(s, instance, 9);
    let acme = gitlab_group(s, instance, 2, &[9], 4);
    s.emulator.gitlab_group(
        instance,
        3,
        json!({"name": "Sub", "path": "sub", "parent_id": 2, "projects": 6}),
    );
    gitlab_group(s, instance, 4, &[9], 1);
    let body = json!({"base_url": base_url, "groups": [format!("{acme}/sub")]});
    let authorize = s.oauth_connect(GL, tenant, Some(&body));
    assert!(
        authorize.starts_with(&format!("{base_url}/oauth/authorize?")),
        "{authorize}"
    );
    for expected in [
        "response_type=code",
        "scope=read_api+read_repository",
        "code_challenge_method=S256",
    ] {
        assert!(authorize.contains(expected), "{expected} in {authorize}");
    }
    let callback = s.callback(&s.walk_authorize(&authorize, &user));
    let connected = callback.connected(GL);
    assert_eq!(connected.orgs, [format!("{acme}/sub")]);
    assert_eq!((connected.repos, connected.complete), (6, true));
    jobs_received(s, &connected.org_ids[0], 6);
    // The account key names the instance: group 2 of another instance is another org.
    let account: String = s
        .store
        .query(
            "SELECT account_id FROM organizations WHERE id = ?1",
            [&connected.org_ids[0]],
            |r| r.get(0),
        )
        .pop()
        .expect("account_id");
    assert_eq!(account, format!("{base_url}/api/v4/groups/3"));
}

fn azure_organizations(s: &Stack) {
    let tenant = "oauth-az-orgs";
    let user = azure_user(s, 72001);
    let mut projects: Vec<Value> = (1..=23)
        .map(|n| json!({"name": format!("proj-{n:02}"), "repositories": 1}))
        .collect();
    projects.push(
        json!({"name": "web", "visibility": "public", "repositories": ["site", "api", "docs"]}),
    );
    s.emulator.azure_org(
        "contoso-e2e72001",
        json!({"members": [user], "projects": projects}),
    );
    s.emulator.azure_org(
        "fabrikam-e2e72001",
        json!({"members": [user], "projects": [{"name": "platform", "repositories": 2}]}),
    );
    s.emulator.azure_org(
        "other-e2e72001",
        json!({"members": [], "projects": [{"name": "x", "repositories": 1}]}),
    );
    let authorize = s.oauth_connect(AZ, tenant, None);
    assert!(
        authorize.starts_with(&format!(
            "{}/microsoft/organizations/oauth2/v2.0/authorize?",
            s.emulator.base
        )),
        "{authorize}"
    );
    assert!(
        authorize.contains("scope=499b84ac-1321-427f-aa17-267ca6975798%2F.default+offline_access"),
        "{authorize}"
    );
    let connected = s
        .callback(&s.walk_authorize(&authorize, &user))
        .connected(AZ);
    let mut orgs = connected.orgs.clone();
    orgs.sort();
    assert_eq!(orgs, ["contoso-e2e72001", "fabrikam-e2e72001"]);
    // A page of 20 projects costs 23 subrequests: the rest continues through the sync queue.
    assert!(connected.repos <= 28, "{connected:?}");
    let at = |name: &str| {
        connected.org_ids[connected.orgs.iter().position(|o| o == name).expect(name)].clone()
    };
    let (contoso, fabrikam) = (&at("contoso-e2e72001"), &at("fabrikam-e2e72001"));
    checks::run_completes(s, contoso, Duration::from_secs(60));
    checks::run_completes(s, fabrikam, Duration::from_secs(60));
    assert_eq!(
        active_repos(s, contoso),
        26,
        "23 projects of one + 3, over two project pages"
    );
    assert_eq!(active_repos(s, fabrikam), 2);
    jobs_received(s, contoso, 26);
    let portal = Portal::new(s, tenant);
    let repos = portal.get(&format!("/v1/orgs/{contoso}/repos?limit=100"));
    let repos = repos["items"].as_array().expect("repos");
    let site = repos
        .iter()
        .find(|r| r["full_name"] == "contoso-e2e72001/web/site")
        .unwrap_or_else(|| panic!("web/site in {repos:?}"));
    assert_eq!(site["private"], false, "the project is public: {site}");
    assert_eq!(site["default_branch"], "main", "{site}");
    assert!(
        site["provider_repo_id"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "a GUID: {site}"
    );
    let summary = s.emulator.azure_org_summary("contoso-e2e72001");
    let org = portal.org(contoso);
    assert_eq!(org["provider"], "azure_devops");
    assert_eq!(org["login"], "contoso-e2e72001");
    assert_eq!(org["repo_count"], 26);
    let account: String = s
        .store
        .query(
            "SELECT account_id FROM organizations WHERE id = ?1",
            [contoso],
            |r| r.get(0),
        )
        .pop()
        .expect("account_id");
    assert_eq!(
        Value::String(account),
        summary["id"],
        "the organization's GUID"
    );
    let c = connection(s, tenant);
    assert_eq!(c.provider, "azure_devops");
    let access = open(&worker_keys(s), &c, "access_token", &c.access_token).expect("opens");
    assert!(access.starts_with("azemu-at-"));
}

fn azure_chosen(s: &Stack) {
    let tenant = "oauth-az-chosen";
    let user = azure_user(s, 72002);
    for name in ["northwind-e2e72002", "tailspin-e2e72002"] {
        s.emulator.azure_org(
            name,
            json!({"members": [user], "projects": [{"name": "p", "repositories": 2}]}),
        );
    }
    s.emulator.azure_org(
        "foreign-e2e72002",
        json!({"members": [], "projects": [{"name": "p", "repositories": 1}]}),
    );
    let foreign = json!({"organizations": ["foreign-e2e72002"]});
    s.oauth_connect_as(AZ, tenant, &user, Some(&foreign))
        .assert_oauth_refused(AZ, "group_not_found");
    assert_eq!(s.store.footprint(tenant).orgs, 0);
    assert!(connections(s, tenant).is_empty(), "nothing written");
    let chosen = json!({"organizations": ["tailspin-e2e72002"]});
    let connected = s
        .oauth_connect_as(AZ, tenant, &user, Some(&chosen))
        .connected(AZ);
    assert_eq!(connected.orgs, ["tailspin-e2e72002"]);
    assert_eq!(connected.repos, 2);
}

/// The suite runs the worker with `PUBLIC_URL` set to its address, and the emulator's OAuth
/// applications register only `{PUBLIC_URL}/{gitlab,azure-devops}/callback`, as GitLab and
/// Entra ID require. A portal that calls the gateway under another name (`Host:
/// localhost:<port>`) still gets authorize URLs whose redirect URI is on `PUBLIC_URL`, and the
/// connection completes; the calling origin's own callback, what the worker would send without
/// `PUBLIC_URL`, is refused by both providers before any redirect.
fn redirect_uris_on_public_url(s: &Stack) {
    let tenant = "oauth-public-url";
    let port = s.worker.rsplit(':').next().expect("a port");
    let other_name = format!("localhost:{port}");
    let jwt = s.portal_jwt(tenant, &crate::harness::technician(tenant));
    let authorization = format!("Bearer {jwt}");
    let gitlab_user = gitlab_user(s, GITLAB_INSTANCE, 71801);
    gitlab_group(s, GITLAB_INSTANCE, 71801, &[71801], 2);
    let azure_user = azure_user(s, 72801);
    s.emulator.azure_org(
        "adatum-e2e72801",
        json!({"members": [azure_user], "projects": [{"name": "p", "repositories": 3}]}),
    );
    for (slug, user, repos) in [(GL, &gitlab_user, 2), (AZ, &azure_user, 3)] {
        let resp = s.http.request(
            "POST",
            &format!("{}/v1/connect/{slug}", s.worker),
            &[
                ("authorization", authorization.as_str()),
                ("host", other_name.as_str()),
            ],
            None,
        );
        assert_eq!(resp.status, 200, "{slug}: {}", resp.body);
        let authorize_url = resp.json()["authorize_url"]
            .as_str()
            .expect("authorize_url")
            .to_string();
        let parsed = url::Url::parse(&authorize_url).expect("an absolute authorize URL");
        let redirect_uri = parsed
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| v.into_owned());
        assert_eq!(
            redirect_uri,
            Some(format!("{}/{slug}/callback", s.worker)),
            "{slug}: the redirect URI is on PUBLIC_URL, not on {other_name}"
        );

        // The calling origin's callback instead: the provider shows an error page.
        let mut elsewhere = parsed.clone();
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "redirect_uri" {
                    format!("http://{other_name}/{slug}/callback")
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        elsewhere.query_pairs_mut().clear().extend_pairs(&pairs);
        let refused = s.http.get(elsewhere.as_str());
        assert_eq!(
            (refused.status, refused.header("location")),
            (400, None),
            "{slug}: an unregistered redirect URI: {}",
            refused.body
        );

        let connected = s
            .callback(&s.walk_authorize(&authorize_url, user))
            .connected(slug);
        assert_eq!(connected.repos, repos, "{slug}");
    }
    assert_eq!(s.store.footprint(tenant).orgs, 2);
}

fn azure_over_time(s: &Stack) {
    let tenant = "oauth-az-time";
    let user = azure_user(s, 72003);
    let (app_org, ops_org) = ("woodgrove-e2e72003", "litware-e2e72003");
    let summary = s.emulator.azure_org(
        app_org,
        json!({"members": [user], "projects": [{"name": "app", "repositories": 3}]}),
    );
    s.emulator.azure_org(
        ops_org,
        json!({"members": [user], "projects": [{"name": "ops", "repositories": 1}]}),
    );
    let connected = s.oauth_connect_as(AZ, tenant, &user, None).connected(AZ);
    let at = |name: &str| {
        connected.org_ids[connected.orgs.iter().position(|o| o == name).expect(name)].clone()
    };
    let (app, ops) = (at(app_org), at(ops_org));
    checks::run_completes(s, &app, Duration::from_secs(60));
    jobs_received(s, &app, 3);
    let portal = Portal::new(s, tenant);

    // Repositories added and removed on Azure DevOps; Microsoft expires the access token early.
    let gone = summary["projects"][0]["repositories"][0]["id"]
        .as_str()
        .expect("a repository GUID")
        .to_string();
    s.emulator
        .azure_change_repos(app_org, "app", 2, &[], &[gone.as_str()]);
    s.emulator.azure_expire(Some(&user));
    let synced = portal.sync(&app);
    assert_eq!(
        (&synced["found"], &synced["added"], &synced["removed"]),
        (&json!(4), &json!(2), &json!(1)),
        "{synced}"
    );
    let removed = s.store.count(
        "SELECT count(*) FROM repositories WHERE org_id = ?1 AND provider_repo_id = ?2 AND status = 'removed'",
        rusqlite::params![app, gone],
    );
    assert_eq!(removed, 1);
    let grants = grants_of(s, &user);
    assert_eq!(
        refreshes(&grants).len(),
        1,
        "refreshed after the 401: {grants:?}"
    );
    each_refresh_token_spent_once(&grants);

    // The organization is deleted: its org is disconnected, the other stays.
    s.emulator.azure_delete_org(app_org);
    let resp = portal.request("POST", &format!("/v1/orgs/{app}/sync"), None);
    assert_problem(&resp, 409, "conflict", "sync of a deleted organization");
    assert_eq!(org_row(s, &app).0, "disconnected");
    assert!(portal.events(&app).iter().any(|e| e == "provider.gone"));
    assert_eq!(org_row(s, &ops).0, "active");

    // The user revokes the app's consent: the refresh is refused, the connection revoked.
    s.emulator.azure_revoke_user(&user);
    let resp = portal.request("POST", &format!("/v1/orgs/{ops}/sync"), None);
    assert_problem(&resp, 409, "conflict", "sync after revocation");
    assert_eq!(org_row(s, &ops).0, "disconnected");
    assert_eq!(connection(s, tenant).status, "revoked");
}

fn validation(s: &Stack) {
    let tenant = "oauth-validation";
    let problem = |slug: &str, body: Option<&str>, content_type: Option<&str>| {
        let jwt = s.portal_jwt(tenant, "tech");
        let auth = format!("Bearer {jwt}");
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(t) = content_type {
            headers.push(("content-type", t));
        }
        s.http.request(
            "POST",
            &format!("{}/v1/connect/{slug}", s.worker),
            &headers,
            body,
        )
    };
    let json_type = Some("application/json");
    let field = |slug: &str, body: Value, field: &str| {
        let resp = problem(slug, Some(&body.to_string()), json_type);
        let p = assert_problem(&resp, 422, "invalid_field", &body.to_string());
        assert_eq!(p["field"], field, "{p}");
    };
    field(
        GL,
        json!({"base_url": "http://gitlab.example.com"}),
        "base_url",
    );
    field(
        GL,
        json!({"base_url": "https://u:p@gitlab.example.com"}),
        "base_url",
    );
    field(GL, json!({"base_url": "gitlab.example.com"}), "base_url");
    field(GL, json!({"groups": [""]}), "groups");
    field(
        GL,
        json!({"groups": (0..51).map(|i| format!("g{i}")).collect::<Vec<_>>()}),
        "groups",
    );
    field(AZ, json!({"organizations": ["a/b"]}), "organizations");
    assert_problem(
        &problem(GL, Some(r#"{"group": ["x"]}"#), json_type),
        400,
        "bad_request",
        "unknown field",
    );
    assert_problem(
        &problem(GL, Some("groups=x"), Some("text/plain")),
        415,
        "unsupported_media_type",
        "text",
    );
    let unauthenticated = s.http.request(
        "POST",
        &format!("{}/v1/connect/gitlab", s.worker),
        &[],
        None,
    );
    assert_problem(&unauthenticated, 401, "unauthorized", "no JWT");
    // An empty body is every group of the configured instance.
    let ok = problem(GL, None, None);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        s.store.footprint(tenant).orgs,
        0,
        "nothing is written before the callback"
    );
}

fn wrong_verifier(s: &Stack) {
    let tenant = "oauth-verifier";
    let user = gitlab_user(s, GITLAB_INSTANCE, 71101);
    gitlab_group(s, GITLAB_INSTANCE, 71101, &[71101], 2);
    // Two connects: each state has its own verifier.
    let first = s.oauth_connect(GL, tenant, None);
    let second = s.oauth_connect(GL, tenant, None);
    let first_callback = s.walk_authorize(&first, &user);
    let code = crate::harness::auth::query_param(&first_callback, "code").expect("code");
    let second_state = crate::harness::auth::query_param(&second, "state").expect("state");
    // The first's code with the second's state: exchanged with the wrong verifier.
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &second_state)
        .finish();
    s.callback(&format!("/gitlab/callback?{query}"))
        .assert_oauth_refused(GL, "authorization_refused");
    assert_eq!(s.store.footprint(tenant).orgs, 0);
    assert!(connections(s, tenant).is_empty());
    let grants = grants_of(s, &user);
    assert!(
        grants
            .iter()
            .any(|g| g.grant_type.as_deref() == Some("authorization_code")
                && g.outcome == "invalid_grant"),
        "the emulator refused the verifier: {grants:?}"
    );
    // The right pair still connects.
    let connected = s.callback(&first_callback).connected(GL);
    assert_eq!(connected.repos, 2);
}

fn refused_callbacks(s: &Stack) {
    let tenant = "oauth-refused";
    let user = gitlab_user(s, GITLAB_INSTANCE, 71201);
    gitlab_group(s, GITLAB_INSTANCE, 71201, &[71201], 1);
    let authorize = s.oauth_connect(GL, tenant, None);
    let state = crate::harness::auth::query_param(&authorize, "state").expect("state");
    let declined = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("error", "access_denied")
        .append_pair(
            "error_description",
            "The resource owner denied the request.",
        )
        .append_pair("state", &state)
        .finish();
    s.callback(&format!("/gitlab/callback?{declined}"))
        .assert_oauth_refused(GL, "authorization_denied");
    s.callback("/gitlab/callback?code=abc")
        .assert_oauth_refused(GL, "missing_parameters");
    // A GitLab state at the Azure DevOps callback, and a GitHub state at GitLab's.
    let callback = s.walk_authorize(&authorize, &user);
    let at_azure = callback.replacen("/gitlab/callback", "/azure-devops/callback", 1);
    s.callback(&at_azure)
        .assert_oauth_refused(AZ, "state_invalid");
    let github_state =
        crate::harness::auth::query_param(&s.connect(tenant), "state").expect("GitHub state");
    s.callback(&format!("/gitlab/callback?code=abc&state={github_state}"))
        .assert_oauth_refused(GL, "state_invalid");
    assert_eq!(s.store.footprint(tenant).orgs, 0);
    // Used once; the same URL again is refused and changes nothing.
    s.callback(&callback).connected(GL);
    let footprint = s.store.footprint(tenant);
    s.callback(&callback).assert_oauth_refused(GL, "state_used");
    assert_eq!(s.store.footprint(tenant), footprint);
}

// ---- over time ----

fn sync_disconnect_reconnect(s: &Stack) {
    let tenant = "oauth-lifecycle";
    let user = gitlab_user(s, GITLAB_INSTANCE, 71301);
    gitlab_group(s, GITLAB_INSTANCE, 71301, &[71301], 4);
    let connected = s.oauth_connect_as(GL, tenant, &user, None).connected(GL);
    let org_id = connected.org_ids[0].clone();
    jobs_received(s, &org_id, 4);
    let portal = Portal::new(s, tenant);

    let projects = s.emulator.gitlab_projects(GITLAB_INSTANCE, Some(71301));
    let first = projects
        .as_array()
        .and_then(|p| p.first())
        .expect("a project")["id"]
        .as_u64()
        .expect("project id");
    s.emulator
        .gitlab_change_projects(GITLAB_INSTANCE, 71301, 2, &[], &[first]);
    let synced = portal.sync(&org_id);
    assert_eq!(
        (
            &synced["found"],
            &synced["added"],
            &synced["removed"],
            &synced["complete"]
        ),
        (&json!(5), &json!(2), &json!(1), &json!(true)),
        "{synced}"
    );
    assert_eq!(active_repos(s, &org_id), 5);
    jobs_received(s, &org_id, 6);

    s.emulator
        .gitlab_change_projects(GITLAB_INSTANCE, 71301, 1, &[], &[]);
    let disconnected = portal.disconnect(&org_id);
    assert_eq!(disconnected["status"], "disconnected");
    assert_eq!(org_row(s, &org_id).0, "disconnected");
    let conflict = portal.request("POST", &format!("/v1/orgs/{org_id}/sync"), None);
    assert_problem(&conflict, 409, "conflict", "sync of a disconnected org");

    let again = s.oauth_connect_as(GL, tenant, &user, None).connected(GL);
    assert_eq!(
        again.org_ids,
        std::slice::from_ref(&org_id),
        "the same org comes back"
    );
    assert_eq!(
        (again.repos, again.added),
        (6, 1),
        "only the new project is added"
    );
    assert_eq!(org_row(s, &org_id).0, "active");
    assert_eq!(connections(s, tenant).len(), 1, "the same connection row");
    jobs_received(s, &org_id, 7);

    // The group is deleted on GitLab: the next sync disconnects the org.
    s.emulator.gitlab_delete_group(GITLAB_INSTANCE, 71301);
    let gone = portal.request("POST", &format!("/v1/orgs/{org_id}/sync"), None);
    assert_problem(&gone, 409, "conflict", "sync of a deleted group");
    assert_eq!(org_row(s, &org_id).0, "disconnected");
    assert!(portal.events(&org_id).iter().any(|e| e == "provider.gone"));
    assert_eq!(
        connection(s, tenant).status,
        "active",
        "the connection is fine"
    );
}

fn refresh_before_expiry(s: &Stack) {
    let tenant = "oauth-refresh";
    let instance = "short-e2e";
    // Access tokens live 200 s: within the 5-minute margin from the start.
    let base_url = self_managed(s, instance, Some(200));
    let user = gitlab_user(s, instance, 5);
    gitlab_group(s, instance, 6, &[5], 3);
    let body = json!({"base_url": base_url});
    let connected = s
        .oauth_connect_as(GL, tenant, &user, Some(&body))
        .connected(GL);
    let before = connection(s, tenant);
    let synced = Portal::new(s, tenant).sync(&connected.org_ids[0]);
    assert_eq!(synced["found"], 3, "{synced}");
    let after = connection(s, tenant);
    assert!(after.version > before.version, "{before:?} → {after:?}");
    assert!(after.expires_at >= before.expires_at);
    assert_ne!(after.access_token, before.access_token);
    assert_ne!(after.refresh_token, before.refresh_token);
    let keys = worker_keys(s);
    assert_ne!(
        open(&keys, &after, "refresh_token", &after.refresh_token),
        open(&keys, &before, "refresh_token", &before.refresh_token),
        "GitLab rotated the refresh token"
    );
    let grants = grants_of(s, &user);
    assert!(!refreshes(&grants).is_empty(), "{grants:?}");
    each_refresh_token_spent_once(&grants);
    // Refreshed before expiry: GitLab never saw an expired token.
    let expired: Vec<_> = s
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&format!("/gitlab/{instance}/")) && r.auth == "expired")
        .collect();
    assert!(expired.is_empty(), "{expired:?}");
}

fn concurrent_refresh(s: &Stack) {
    let tenant = "oauth-concurrent";
    let user = gitlab_user(s, GITLAB_INSTANCE, 71401);
    gitlab_group(s, GITLAB_INSTANCE, 71401, &[71401], 2);
    gitlab_group(s, GITLAB_INSTANCE, 71402, &[71401], 3);
    let connected = s.oauth_connect_as(GL, tenant, &user, None).connected(GL);
    assert_eq!(connected.org_ids.len(), 2);
    // The connect's backups use the connection's token too (a 401 refreshes it): they finish
    // first, so that only the two syncs can meet the expired token.
    for org in &connected.org_ids {
        poll_until(Duration::from_secs(180), "the connect's backups", || {
            let jobs = s.store.jobs(org);
            let settled = jobs.iter().all(|j| j.status == "received");
            if !jobs.is_empty() && settled {
                Ok(())
            } else {
                Err(format!("{jobs:?}"))
            }
        });
    }
    // GitLab expires the access token early: both syncs meet a 401 and need a refresh.
    s.emulator.gitlab_expire(GITLAB_INSTANCE, Some(71401));
    // Force the overlap: the emulator holds each sync's first request to its group until both
    // have arrived, so both present the expired access token before either can refresh it.
    let gate = "oauth-concurrent-refresh";
    let groups = format!("/gitlab/{GITLAB_INSTANCE}/api/v4/groups/7140");
    s.emulator.add_faults(json!([{
        "path_prefix": groups, "gate": gate, "barrier": 2, "times": 2
    }]));
    let seq = s.emulator.requests().last().map_or(0, |r| r.seq);
    let barrier = Barrier::new(2);
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = connected
            .org_ids
            .iter()
            .map(|org| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let portal = Portal::new(s, tenant);
                    barrier.wait();
                    let resp = portal.request("POST", &format!("/v1/orgs/{org}/sync"), None);
                    (resp.status, resp.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sync thread"))
            .collect()
    });
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}\n{}", s.wrangler_tail(20));
    }
    // Both syncs presented the expired token, each before the other was answered: they raced
    // for the refresh (one after the other, the second would have used the refreshed token).
    let expired: Vec<_> = s
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.seq > seq && r.path.starts_with(&groups) && r.auth == "expired")
        .collect();
    assert_eq!(
        expired.len(),
        2,
        "each sync met the expired token once: {expired:?}"
    );
    assert_ne!(
        expired[0].path, expired[1].path,
        "one per group: {expired:?}"
    );
    assert!(
        expired[0].overlapped(&expired[1]),
        "the two syncs overlapped at GitLab: {expired:?}; gate: {}",
        s.emulator.gates()[gate]
    );
    let grants = grants_of(s, &user);
    assert_eq!(
        refreshes(&grants).len(),
        1,
        "one refresh for both: {grants:?}"
    );
    each_refresh_token_spent_once(&grants);
    assert_eq!(connection(s, tenant).status, "active");
}

fn revoked(s: &Stack) {
    let tenant = "oauth-revoked";
    let user = gitlab_user(s, GITLAB_INSTANCE, 71501);
    gitlab_group(s, GITLAB_INSTANCE, 71501, &[71501], 2);
    gitlab_group(s, GITLAB_INSTANCE, 71502, &[71501], 1);
    let connected = s.oauth_connect_as(GL, tenant, &user, None).connected(GL);
    for org in &connected.org_ids {
        jobs_received(s, org, if org == &connected.org_ids[0] { 2 } else { 1 });
    }
    let portal = Portal::new(s, tenant);
    let c = connection(s, tenant);
    let refresh_token =
        open(&worker_keys(s), &c, "refresh_token", &c.refresh_token).expect("opens");
    s.emulator.gitlab_revoke_user(GITLAB_INSTANCE, 71501);
    let resp = portal.request(
        "POST",
        &format!("/v1/orgs/{}/sync", connected.org_ids[0]),
        None,
    );
    let problem = assert_problem(&resp, 409, "conflict", "sync after revocation");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("revoked")),
        "{problem}"
    );
    let c = connection(s, tenant);
    assert_eq!(c.status, "revoked");
    assert!(
        c.last_error
            .as_deref()
            .is_some_and(|e| e.contains("invalid_grant")),
        "{c:?}"
    );
    for org in &connected.org_ids {
        assert_eq!(org_row(s, org).0, "disconnected", "{org}");
        assert!(
            portal.events(org).iter().any(|e| e == "connection.revoked"),
            "{org}"
        );
    }
    // The refresh token was presented once, and refused.
    let presented: Vec<Grant> = s
        .emulator
        .oauth_grants()
        .into_iter()
        .filter(|g| g.presented_refresh_token.as_deref() == Some(refresh_token.as_str()))
        .collect();
    assert_eq!(presented.len(), 1, "{presented:?}");
    assert_eq!(presented[0].outcome, "invalid_grant");
    // The technician connects again: everything is active once more.
    let again = s.oauth_connect_as(GL, tenant, &user, None).connected(GL);
    assert_eq!(again.org_ids.len(), 2);
    assert_eq!(connection(s, tenant).status, "active");
    for org in &again.org_ids {
        assert_eq!(org_row(s, org).0, "active");
    }
}

fn swapped_ciphertext(s: &Stack) {
    let (a, b) = ("oauth-swap-a", "oauth-swap-b");
    let user_a = gitlab_user(s, GITLAB_INSTANCE, 71601);
    let user_b = gitlab_user(s, GITLAB_INSTANCE, 71602);
    gitlab_group(s, GITLAB_INSTANCE, 71601, &[71601], 1);
    gitlab_group(s, GITLAB_INSTANCE, 71602, &[71602], 1);
    let org_a = s
        .oauth_connect_as(GL, a, &user_a, None)
        .connected(GL)
        .org_ids[0]
        .clone();
    s.oauth_connect_as(GL, b, &user_b, None).connected(GL);
    jobs_received(s, &org_a, 1);
    let (ca, cb) = (connection(s, a), connection(s, b));
    let set = |c: &Connection, access: &str, refresh: &str| {
        s.store.execute(
            "UPDATE provider_connections SET access_token = ?2, refresh_token = ?3 WHERE id = ?1",
            rusqlite::params![c.id, access, refresh],
        )
    };
    let portal = Portal::new(s, a);
    let sync = |what: &str| {
        let resp = portal.request("POST", &format!("/v1/orgs/{org_a}/sync"), None);
        assert_problem(&resp, 500, "internal", what);
        assert!(!resp.body.contains("glemu-"), "{}", resp.body);
    };
    // B's (valid) ciphertexts in A's row.
    set(&ca, &cb.access_token, &cb.refresh_token);
    sync("B's tokens in A's row");
    // A's own, each in the other's column.
    set(&ca, &ca.refresh_token, &ca.access_token);
    sync("access and refresh swapped");
    assert_eq!(
        connection(s, a).status,
        "active",
        "not taken for a revocation"
    );
    set(&ca, &ca.access_token, &ca.refresh_token);
    assert_eq!(portal.sync(&org_a)["found"], 1, "restored, it works again");
}

fn key_rotation(s: &Stack) {
    let tenant = "oauth-rotation";
    let user = gitlab_user(s, GITLAB_INSTANCE, 71701);
    gitlab_group(s, GITLAB_INSTANCE, 71701, &[71701], 2);
    let org = s
        .oauth_connect_as(GL, tenant, &user, None)
        .connected(GL)
        .org_ids[0]
        .clone();
    jobs_received(s, &org, 2);
    let c = connection(s, tenant);
    let keys = worker_keys(s);
    let access = open(&keys, &c, "access_token", &c.access_token).expect("opens");
    let refresh = open(&keys, &c, "refresh_token", &c.refresh_token).expect("opens");
    // As if sealed before the rotation: under the dev key, which is now second in TOKEN_KEYS.
    let old = TokenKeys::parse(s.secrets.get("TOKEN_KEYS").expect("TOKEN_KEYS")).expect("parse");
    let old_kid = old.current_kid().to_string();
    assert_ne!(old_kid, "e2e2");
    let seal = |field: &str, value: &str, nonce: u8| {
        let binding = Binding {
            provider: &c.provider,
            record_id: &c.id,
            field,
        };
        token_crypto::seal(&old, [nonce; 12], &binding, value)
    };
    s.store.execute(
        "UPDATE provider_connections SET key_id = ?2, access_token = ?3, refresh_token = ?4 WHERE id = ?1",
        rusqlite::params![c.id, old_kid, seal("access_token", &access, 1), seal("refresh_token", &refresh, 2)],
    );
    // Still readable: every listed key decrypts.
    assert_eq!(Portal::new(s, tenant).sync(&org)["found"], 2);
    // A row under a key no longer listed cannot be opened, and is left as it is.
    let (gone_tenant, gone_user) = (
        "oauth-rotation-gone",
        gitlab_user(s, GITLAB_INSTANCE, 71702),
    );
    gitlab_group(s, GITLAB_INSTANCE, 71702, &[71702], 1);
    let gone_org = s
        .oauth_connect_as(GL, gone_tenant, &gone_user, None)
        .connected(GL)
        .org_ids[0]
        .clone();
    let gone = connection(s, gone_tenant);
    let unknown =
        TokenKeys::parse("retired:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("parse");
    let binding = Binding {
        provider: &gone.provider,
        record_id: &gone.id,
        field: "access_token",
    };
    let sealed_gone = token_crypto::seal(&unknown, [3; 12], &binding, "glemu-at-unknown");
    s.store.execute(
        "UPDATE provider_connections SET key_id = 'retired', access_token = ?2 WHERE id = ?1",
        rusqlite::params![gone.id, sealed_gone],
    );

    s.trigger_cron(HOURLY);
    let resealed = poll_until(Duration::from_secs(30), "the re-sealing pass", || {
        let c = connection(s, tenant);
        if c.key_id == "e2e2" {
            Ok(c)
        } else {
            Err(format!("{c:?}"))
        }
    });
    // Now under the current key only: the old key can be dropped.
    let current = TokenKeys::parse(CURRENT_TOKEN_KEY).expect("parse");
    assert_eq!(token_crypto::key_id(&resealed.access_token), Some("e2e2"));
    let opened = open(&current, &resealed, "access_token", &resealed.access_token);
    assert!(
        opened.as_deref().is_ok_and(|t| t.starts_with("glemu-at-")),
        "{opened:?}"
    );
    assert!(open(
        &current,
        &resealed,
        "refresh_token",
        &resealed.refresh_token
    )
    .is_ok());
    assert_eq!(connection(s, gone_tenant).key_id, "retired", "left alone");
    // Its org is told (in the batch that re-sealed the other row), once, that it must be
    // connected again.
    let told = Portal::new(s, gone_tenant).events(&gone_org);
    assert_eq!(
        told.iter().filter(|e| *e == "connection.unusable").count(),
        1,
        "{told:?}"
    );
    assert_eq!(Portal::new(s, tenant).sync(&org)["found"], 2);
}

fn cron_refresh(s: &Stack) {
    let tenant = "oauth-cron-refresh";
    let instance = "cron-e2e";
    // 50-minute tokens: they would expire before the hourly cron runs again.
    let base_url = self_managed(s, instance, Some(3000));
    let user = gitlab_user(s, instance, 8);
    gitlab_group(s, instance, 9, &[8], 1);
    let body = json!({"base_url": base_url});
    s.oauth_connect_as(GL, tenant, &user, Some(&body))
        .connected(GL);
    let before = connection(s, tenant);
    s.trigger_cron(HOURLY);
    let after = poll_until(Duration::from_secs(30), "the cron's refresh", || {
        let c = connection(s, tenant);
        if c.version > before.version && c.refresh_token != before.refresh_token {
            Ok(c)
        } else {
            Err(format!("{c:?}"))
        }
    });
    assert!(after.expires_at >= before.expires_at);
    let grants = grants_of(s, &user);
    assert_eq!(refreshes(&grants).len(), 1, "{grants:?}");
    each_refresh_token_spent_once(&grants);
}
