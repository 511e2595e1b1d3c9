//! Issue #13: credentials only where they were issued, connections only for the technician who
//! started them.
//!
//! - `POST /v1/connect/gitlab` names only configured instances: an unconfigured https host, the
//!   configured instance on another port or path, or one with credentials in its URL is 422
//!   (`field: base_url`), with no state stored and no request sent anywhere;
//! - install callbacks must prove installation ownership (no, an empty or an oversized `code`
//!   is `installation_forbidden`), and a refused one spends its state;
//! - callbacks hold what they verified; only the technician who started the flow can confirm
//!   it, within its 10 minutes; another technician, another tenant (a callback completed in
//!   someone else's browser) or a late confirmation links nothing and keeps no token, and a
//!   confirmation links once;
//! - an OAuth state at `/github/setup`, and a signed webhook body relabelled as another event,
//!   are refused;
//! - redirects are never followed with a credential (the emulator's sink sees nothing);
//! - a connection whose GitLab instance is no longer configured shows `misconfigured` and sends
//!   nothing to it;
//! - (in `hygiene`, over the whole run) no credential reached a service it does not belong to.

use serde_json::{json, Value};

use crate::harness::auth::{now, query_param, state_of};
use crate::harness::emulator::Faults;
use crate::harness::emulator::Inst;
use crate::harness::portal::{assert_problem, Portal};
use crate::harness::store::Footprint;
use crate::harness::{technician, Stack, GITLAB_INSTANCE, SELF_MANAGED_GITLAB};
use crate::oauth::{gitlab_group, gitlab_user, self_managed};
use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![
        // Counts every KV entry and the requests to refused URLs: nothing else may run meanwhile.
        Case::exclusive(
            "security::gitlab_base_url_must_name_a_configured_instance",
            unconfigured_instances,
        ),
        Case::shared(
            "security::install_callbacks_must_prove_installation_ownership",
            ownership,
        ),
        Case::shared(
            "security::only_the_technician_who_started_a_connection_confirms_it",
            only_the_starter_confirms,
        ),
        Case::shared(
            "security::gitlab_and_azure_devops_link_nothing_before_confirmation",
            oauth_held_until_confirmed,
        ),
        // Ages a pending connection behind the worker's back (a direct D1 write).
        Case::exclusive(
            "security::a_late_confirmation_links_nothing_and_drops_the_tokens",
            late_confirmation,
        ),
        Case::shared(
            "security::an_oauth_state_is_refused_at_the_github_callback",
            oauth_state_at_github,
        ),
        Case::shared(
            "security::a_signed_webhook_relabelled_as_another_event_is_refused",
            relabelled_webhook,
        ),
        // Fault rules are global to the emulator.
        Case::exclusive(
            "security::redirects_never_carry_a_credential_elsewhere",
            redirects,
        ),
        // Points a connection at a retired instance behind the worker's back.
        Case::exclusive(
            "security::a_connection_of_an_unconfigured_instance_sends_nothing",
            retired_instance,
        ),
    ]
}

const GL: &str = "gitlab";
const AZ: &str = "azure-devops";

fn tenant_connections(s: &Stack, tenant: &str) -> i64 {
    s.store.count(
        "SELECT count(*) FROM provider_connections WHERE tenant_id = ?1",
        [tenant],
    )
}

fn unconfigured_instances(s: &Stack) {
    let tenant = "sec-instances";
    let port: u16 = s
        .emulator
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the emulator's port");
    let configured = format!("{}/gitlab/{}", s.emulator.base, SELF_MANAGED_GITLAB[0].0);
    let kv_before = s.store.kv_count();
    let requests_before = s.emulator.requests().len();
    for base_url in [
        "https://gitlab.attacker.example".to_string(),
        "https://gitlab.com.attacker.example".to_string(),
        // The configured instance on another port, on another path, and above it.
        format!(
            "http://127.0.0.1:{}/gitlab/{}",
            port + 1,
            SELF_MANAGED_GITLAB[0].0
        ),
        format!("{configured}/sub"),
        format!("{configured}-other"),
        format!("{}/gitlab", s.emulator.base),
        // Credentials, a query or a fragment in the URL.
        configured.replacen("http://", "http://user:secret@", 1),
        configured.replacen("http://", "http://token@", 1),
        format!("{configured}?private_token=x"),
        format!("{configured}#x"),
    ] {
        let resp = s.oauth_start(GL, tenant, Some(&json!({ "base_url": base_url })));
        let problem = assert_problem(&resp, 422, "invalid_field", &base_url);
        assert_eq!(problem["field"], "base_url", "{base_url}: {problem}");
        assert!(
            !resp.body.contains("secret"),
            "the answer does not echo credentials: {}",
            resp.body
        );
    }
    assert_eq!(s.store.kv_count(), kv_before, "no state stored");
    // Nothing went to any of the refused URLs the emulator can see (`{configured}/sub`,
    // `{configured}-other`, `{emulator}/gitlab`). Work other tests left in the background (syncs,
    // access snapshots, backups) may still call the configured instances' APIs and git meanwhile,
    // so those are not counted.
    let configured_roots: Vec<String> = std::iter::once(GITLAB_INSTANCE)
        .chain(SELF_MANAGED_GITLAB.iter().map(|(instance, _, _)| *instance))
        .flat_map(|i| [format!("/gitlab/{i}/api/"), format!("/gitlab/{i}/oauth/")])
        .collect();
    let sent: Vec<String> = s.emulator.requests()[requests_before..]
        .iter()
        .filter(|r| {
            r.path.starts_with("/gitlab")
                && !r.path.contains(".git/")
                && !configured_roots.iter().any(|root| r.path.starts_with(root))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        sent,
        Vec::<String>::new(),
        "no request sent to a refused URL"
    );
    // The configured instance, however it is spelled, is accepted; its own application's
    // client id is in the authorize URL.
    for spelled in [
        configured.clone(),
        format!("{configured}//"),
        configured.replacen("http://", "HTTP://", 1),
    ] {
        let resp = s.oauth_start(GL, tenant, Some(&json!({ "base_url": spelled })));
        assert_eq!(resp.status, 200, "{spelled}: {}", resp.body);
        let url = resp.json()["authorize_url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            url.starts_with(&format!("{configured}/oauth/authorize?")),
            "{url}"
        );
        assert_eq!(
            query_param(&url, "client_id").as_deref(),
            Some(SELF_MANAGED_GITLAB[0].1),
            "the instance's own application"
        );
    }
}

fn ownership(s: &Stack) {
    let tenant = "sec-ownership";
    let inst = Inst::org(5_101, "e2e-sec-ownership", 2);
    s.emulator.put_installation(&inst);
    let id = inst.id.to_string();
    let oversized = "c".repeat(300);
    for (spent, code) in (1..).zip([None, Some(""), Some(oversized.as_str())]) {
        let state = state_of(&s.connect(tenant));
        let mut params = vec![
            ("installation_id", id.as_str()),
            ("setup_action", "install"),
            ("state", state.as_str()),
        ];
        if let Some(code) = code {
            params.push(("code", code));
        }
        let url = s.setup_url_as_sent(&params);
        s.callback(&url).assert_refused("installation_forbidden");
        assert_eq!(
            s.store.footprint(tenant),
            Footprint {
                consumed_states: spent,
                ..Footprint::default()
            },
            "nothing linked or held, the state spent ({code:?})"
        );
        // Used up: the genuine code cannot revive it.
        s.callback(&s.setup_url(&params[..3]))
            .assert_refused("state_used");
    }
    assert!(
        s.emulator.worker_requests(inst.id).is_empty(),
        "GitHub is never asked about the installation without proof"
    );
    let done = s.connect_and_install(tenant, inst.id).done();
    assert_eq!((done.repos, done.complete), (2, true));
}

/// A GitHub installation's callback, held: `(tenant's technician, pending id)`.
fn held_installation(s: &Stack, tenant: &str, inst: &Inst) -> String {
    let setup = s.walk_install(&s.connect(tenant), inst.id);
    let held = s.callback_held(&setup);
    let pending = held
        .held
        .unwrap_or_else(|| panic!("held for confirmation, not {}", held.location))
        .pending;
    assert_eq!(held.status, 303);
    assert_eq!(
        held.location,
        format!("/connect/github/confirm?pending={pending}")
    );
    pending
}

fn only_the_starter_confirms(s: &Stack) {
    let tenant = "sec-confirm";
    let tech = technician(tenant);
    let inst = Inst::org(5_102, "e2e-sec-confirm", 3);
    s.emulator.put_installation(&inst);

    // Held: nothing visible, no job, no token minted.
    let pending = held_installation(s, tenant, &inst);
    assert_eq!(
        s.store.footprint(tenant),
        Footprint {
            consumed_states: 1,
            pending: 1,
            ..Footprint::default()
        }
    );
    assert!(Portal::new(s, tenant).get("/v1/orgs")["items"]
        .as_array()
        .is_some_and(Vec::is_empty));
    assert!(
        !s.emulator
            .worker_requests(inst.id)
            .iter()
            .any(|r| r.path.ends_with("/access_tokens")),
        "no installation token before confirmation"
    );
    // The confirm page (no PORTAL_URL) carries the id and a strict policy.
    let page = s.http.get(&format!(
        "{}/connect/github/confirm?pending={pending}",
        s.worker
    ));
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&pending) && page.body.contains("/connect/confirm.js"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    let script_src: Vec<&str> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| d.starts_with("script-src"))
        .collect();
    assert_eq!(script_src, ["script-src 'self'"], "no inline script: {csp}");
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(s
        .http
        .get(&format!("{}/connect/confirm.js", s.worker))
        .body
        .contains("/v1/connect/confirm"));

    // Another technician of the same tenant: 404, and the pending connection is dropped.
    let other = s.confirm_as(tenant, "someone-else", &pending);
    assert_problem(&other, 404, "not_found", "another technician");
    assert_eq!(s.store.footprint(tenant).pending, 0, "dropped");
    assert_problem(
        &s.confirm_as(tenant, &tech, &pending),
        404,
        "not_found",
        "after a foreign confirmation",
    );
    assert_eq!(s.store.footprint(tenant).orgs, 0);

    // Completed in another tenant's browser: that tenant cannot confirm it either.
    let pending = held_installation(s, tenant, &inst);
    let foreign = s.confirm_as("sec-confirm-other-tenant", &tech, &pending);
    assert_problem(&foreign, 404, "not_found", "another tenant");
    assert_problem(
        &s.confirm_as(tenant, &tech, &pending),
        404,
        "not_found",
        "dropped",
    );
    assert_eq!(s.store.footprint(tenant).orgs, 0);
    assert_eq!(
        s.store.footprint("sec-confirm-other-tenant"),
        Footprint::default()
    );

    // Malformed requests change nothing.
    let pending = held_installation(s, tenant, &inst);
    let jwt = s.portal_jwt(tenant, &tech);
    let bearer = format!("Bearer {jwt}");
    for (body, status) in [
        ("{}", 400),
        (r#"{"pending": 5}"#, 400),
        (r#"{"pending": "x", "extra": 1}"#, 400),
        (r#"{"pending": "not-an-id"}"#, 404),
    ] {
        let resp = s.http.request(
            "POST",
            &format!("{}/v1/connect/confirm", s.worker),
            &[("authorization", &bearer)],
            Some(body),
        );
        assert_eq!(resp.status, status, "{body}: {}", resp.body);
    }
    let unauthenticated = s.http.request(
        "POST",
        &format!("{}/v1/connect/confirm", s.worker),
        &[],
        Some(&json!({ "pending": pending }).to_string()),
    );
    assert_problem(&unauthenticated, 401, "unauthorized", "no JWT");
    assert_eq!(s.store.footprint(tenant).pending, 1, "still held");

    // The technician who started it: linked, once.
    let confirmed = s.confirm_as(tenant, &tech, &pending);
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let answer = confirmed.json();
    assert_eq!(
        (
            answer["provider"].as_str(),
            answer["org"].as_str(),
            answer["orgs"].as_u64()
        ),
        (Some("github"), Some("e2e-sec-confirm"), Some(1))
    );
    assert_eq!(
        (answer["repos"].as_u64(), answer["complete"].as_bool()),
        (Some(3), Some(true))
    );
    let org_id = answer["org_ids"][0].as_str().expect("org id").to_string();
    assert_eq!(
        answer["done_url"].as_str(),
        Some(format!("/connect/github/done?org_id={org_id}&org=e2e-sec-confirm&repos=3&added=3&complete=true").as_str())
    );
    let after = s.store.footprint(tenant);
    assert_eq!(
        (
            after.orgs,
            after.repos,
            after.jobs,
            after.pending,
            after.confirmations
        ),
        (1, 3, 3, 0, 1)
    );
    assert_problem(
        &s.confirm_as(tenant, &tech, &pending),
        404,
        "not_found",
        "a replayed confirmation",
    );
    assert_eq!(s.store.footprint(tenant), after, "a replay changes nothing");
}

fn oauth_held_until_confirmed(s: &Stack) {
    let tenant = "sec-oauth-held";
    let tech = technician(tenant);
    let user = gitlab_user(s, GITLAB_INSTANCE, 75_101);
    gitlab_group(s, GITLAB_INSTANCE, 75_101, &[75_101], 2);
    let azure_user = "0d5e1c9a-0000-4000-8000-000000075102";
    s.emulator.azure_user(azure_user, "Sec Azure", None);
    s.emulator.azure_org(
        "sec-held-e2e75102",
        json!({"members": [azure_user], "projects": [{"name": "p", "repositories": 3}]}),
    );
    for (slug, user, body, repos) in [
        (GL, user.as_str(), None, 2),
        (
            AZ,
            azure_user,
            Some(json!({"organizations": ["sec-held-e2e75102"]})),
            3,
        ),
    ] {
        let authorize = s.oauth_connect(slug, tenant, body.as_ref());
        if slug == AZ {
            assert_eq!(
                query_param(&authorize, "prompt").as_deref(),
                Some("consent")
            );
        }
        let held = s.callback_held(&s.walk_authorize(&authorize, user));
        let pending = held
            .held
            .unwrap_or_else(|| panic!("{slug}: held, not {}", held.location));
        assert_eq!(pending.provider, slug);
        let linked_before = i64::from(slug == AZ);
        assert_eq!(
            s.store.footprint(tenant).orgs,
            linked_before,
            "{slug}: nothing linked"
        );
        assert_eq!(
            tenant_connections(s, tenant),
            linked_before,
            "{slug}: no connection stored before confirmation"
        );
        let pending_detail: String = s
            .store
            .query(
                "SELECT detail FROM pending_connections WHERE id = ?1",
                [&pending.pending],
                |r| r.get(0),
            )
            .pop()
            .expect("the pending row");
        for token in s.emulator.provider_tokens() {
            assert!(
                !pending_detail.contains(&token),
                "{slug}: tokens are held sealed"
            );
        }
        let confirmed = s.confirm_as(tenant, &tech, &pending.pending);
        assert_eq!(confirmed.status, 200, "{}", confirmed.body);
        assert_eq!(
            confirmed.json()["repos"].as_u64(),
            Some(repos),
            "{}",
            confirmed.body
        );
    }
    let after = s.store.footprint(tenant);
    assert_eq!(
        (after.orgs, after.repos, after.pending, after.confirmations),
        (2, 5, 0, 2)
    );
    assert_eq!(tenant_connections(s, tenant), 2);
}

fn late_confirmation(s: &Stack) {
    let tenant = "sec-late";
    let tech = technician(tenant);
    let user = gitlab_user(s, GITLAB_INSTANCE, 75_201);
    gitlab_group(s, GITLAB_INSTANCE, 75_201, &[75_201], 1);
    let authorize = s.oauth_connect(GL, tenant, None);
    let pending = s
        .callback_held(&s.walk_authorize(&authorize, &user))
        .held
        .expect("held")
        .pending;
    // Its ten minutes are over.
    let past = onecode_edge::time::rfc3339(now() - 1);
    assert_eq!(
        s.store.execute(
            "UPDATE pending_connections SET expires_at = ?2 WHERE id = ?1",
            [pending.as_str(), past.as_str()],
        ),
        1
    );
    let late = s.confirm_as(tenant, &tech, &pending);
    let problem = assert_problem(&late, 410, "gone", "a late confirmation");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Start again"),
        "{problem}"
    );
    let footprint = s.store.footprint(tenant);
    assert_eq!(
        (footprint.orgs, footprint.pending, footprint.confirmations),
        (0, 0, 0),
        "nothing linked, the sealed tokens dropped"
    );
    assert_eq!(tenant_connections(s, tenant), 0);
    assert_problem(
        &s.confirm_as(tenant, &tech, &pending),
        404,
        "not_found",
        "gone for good",
    );
}

fn oauth_state_at_github(s: &Stack) {
    let tenant = "sec-oauth-at-github";
    let inst = Inst::org(5_103, "e2e-sec-oauth-state", 1);
    s.emulator.put_installation(&inst);
    let authorize = s.oauth_connect(GL, tenant, None);
    let state = query_param(&authorize, "state").expect("state");
    let id = inst.id.to_string();
    s.callback(&s.setup_url(&[
        ("installation_id", &id),
        ("setup_action", "install"),
        ("state", &state),
    ]))
    .assert_refused("state_invalid");
    assert_eq!(s.store.footprint(tenant), Footprint::default());
    assert!(s.emulator.worker_requests(inst.id).is_empty());
}

fn relabelled_webhook(s: &Stack) {
    let tenant = "sec-relabel";
    let inst = Inst::org(5_104, "e2e-sec-relabel", 2);
    s.emulator.put_installation(&inst);
    let done = s.connect_and_install(tenant, inst.id).done();
    let secret = s
        .secrets
        .get("GITHUB_WEBHOOK_SECRET")
        .expect("webhook secret");
    // A genuine, signed `repository.deleted` of that installation…
    let body = json!({
        "action": "deleted",
        "repository": { "id": 1, "name": "gone", "full_name": "e2e-sec-relabel/gone", "private": true },
        "installation": { "id": inst.id, "account": { "login": inst.login, "id": inst.account_id, "type": "Organization" } },
        "sender": { "login": "someone" },
    })
    .to_string();
    let signature = onecode_edge::github::webhook_signature::sign(secret, body.as_bytes());
    // …resent as `installation` (which would read as installation.deleted).
    let resp = s.http.request(
        "POST",
        &format!("{}/github/webhooks", s.worker),
        &[
            ("x-github-event", "installation"),
            ("x-github-delivery", "sec-relabel-1"),
            ("x-hub-signature-256", &signature),
        ],
        Some(&body),
    );
    let problem = assert_problem(&resp, 400, "bad_request", "a relabelled delivery");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("installation"),
        "{problem}"
    );
    let org = Portal::new(s, tenant).org(&done.org_id);
    assert_eq!(
        org["status"], "active",
        "the org is not disconnected: {org}"
    );
}

fn at_sink(s: &Stack) -> Vec<Value> {
    s.emulator.misplaced_credentials()["misplaced"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["presented_to"] == "sink")
        .collect()
}

fn redirects(s: &Stack) {
    let sink = format!("{}/sink/collect", s.emulator.base);
    let sink_requests = || {
        s.emulator
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/sink"))
            .count()
    };
    let before = sink_requests();
    let redirect = |path: &str, status: u16| json!({"path_prefix": path, "status": status, "headers": {"location": sink}});

    // GitLab: the API answers 307 (the access token would follow), then the token endpoint
    // answers 308 (the client secret and code would follow).
    let user = gitlab_user(s, GITLAB_INSTANCE, 75_301);
    gitlab_group(s, GITLAB_INSTANCE, 75_301, &[75_301], 1);
    for (rule, reason) in [
        (
            redirect("/gitlab/com/api/v4/user", 307),
            "provider_unavailable",
        ),
        (
            redirect("/gitlab/com/oauth/token", 308),
            "provider_unavailable",
        ),
    ] {
        let _faults = Faults::install(&s.emulator, json!([rule]));
        s.oauth_connect_as(GL, "sec-redirect-gl", &user, None)
            .assert_oauth_refused(GL, reason);
    }
    // GitHub: the App's installation lookup answers 302.
    let inst = Inst::org(5_105, "e2e-sec-redirect", 1);
    s.emulator.put_installation(&inst);
    {
        let _faults = Faults::install(
            &s.emulator,
            json!([redirect("/app/installations/5105", 302)]),
        );
        s.connect_and_install("sec-redirect-gh", inst.id)
            .assert_refused("github_unavailable");
    }
    assert_eq!(sink_requests(), before, "no redirect was followed");
    assert_eq!(
        at_sink(s),
        Vec::<Value>::new(),
        "no credential reached the sink"
    );
    assert_eq!(
        s.store.footprint("sec-redirect-gl").orgs + s.store.footprint("sec-redirect-gh").orgs,
        0
    );
}

fn retired_instance(s: &Stack) {
    let tenant = "sec-retired";
    let instance = SELF_MANAGED_GITLAB[0].0;
    let base_url = self_managed(s, instance, None);
    let user = gitlab_user(s, instance, 75_401);
    gitlab_group(s, instance, 75_401, &[75_401], 2);
    let connected = s
        .oauth_connect_as(GL, tenant, &user, Some(&json!({ "base_url": base_url })))
        .connected(GL);
    let org_id = connected.org_ids[0].clone();
    let portal = Portal::new(s, tenant);
    assert_eq!(portal.org(&org_id)["status"], "active");

    // The instance is taken out of the configuration (its connection now names an instance
    // GITLAB_INSTANCES does not list), and its token is due for a refresh.
    let retired = format!("{}/gitlab/retired-e2e", s.emulator.base);
    assert_eq!(
        s.store.execute(
            "UPDATE provider_connections SET base_url = ?2, expires_at = '2000-01-01T00:00:00Z' WHERE tenant_id = ?1",
            [tenant, retired.as_str()],
        ),
        1
    );
    let grants_before = s.emulator.oauth_grants().len();
    let requests_before = s.emulator.requests().len();
    let org = portal.org(&org_id);
    assert_eq!(org["status"], "misconfigured", "{org}");
    assert!(
        org["status_detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer configured"),
        "{org}"
    );
    let listed = portal.get("/v1/orgs");
    assert_eq!(listed["items"][0]["status"], "misconfigured", "{listed}");
    let sync = portal.request("POST", &format!("/v1/orgs/{org_id}/sync"), None);
    let problem = assert_problem(&sync, 409, "conflict", "syncing a retired instance's org");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer configured"),
        "{problem}"
    );
    s.trigger_cron("15 * * * *");
    let sent: Vec<String> = s.emulator.requests()[requests_before..]
        .iter()
        .filter(|r| {
            r.path.starts_with("/gitlab/retired-e2e")
                || r.path.starts_with(&format!("/gitlab/{instance}/"))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        sent,
        Vec::<String>::new(),
        "nothing sent to the retired instance or the old one"
    );
    let refreshed: Vec<_> = s.emulator.oauth_grants()[grants_before..]
        .iter()
        .filter(|g| g.user_id.as_deref() == Some(user.as_str()))
        .cloned()
        .collect();
    assert!(refreshed.is_empty(), "not refreshed: {refreshed:?}");
    // Configured again (the connection's instance is back): it works again by itself.
    assert_eq!(
        s.store.execute(
            "UPDATE provider_connections SET base_url = ?2 WHERE tenant_id = ?1",
            [tenant, base_url.as_str()],
        ),
        1
    );
    assert_eq!(portal.org(&org_id)["status"], "active");
    assert_eq!(portal.sync(&org_id)["found"], 2);
}
