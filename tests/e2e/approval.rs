//! Installations an organization owner must approve (issue #3: `installation.created` linked
//! to a pending `setup_action=request`).
//!
//! With OAuth during installation on (the emulator's `PUT /_emulator/oauth`, the worker's
//! `GITHUB_CLIENT_ID` / `GITHUB_CLIENT_SECRET` from `.dev.vars`), the request link carries a
//! one-time code; the callback records who asked. The owner's approval arrives as
//! `installation.created` with that `requester`: the installation becomes the asking tenant's
//! organization and a sync enumerates it. A requester with no pending request, or pending
//! requests in two tenants, links nothing. With OAuth on, an install callback whose GitHub
//! user cannot access the installation (a spoofed `installation_id`) is refused.

use serde_json::json;

use crate::harness::emulator::Inst;
use crate::harness::http::Outcome;
use crate::harness::{poll_until, Stack};
use crate::Case;
use std::time::Duration;

pub fn cases() -> Vec<Case> {
    // OAuth configuration is global to the emulator: these run alone.
    vec![
        Case::exclusive(
            "approval::owner_approval_links_the_request_of_the_tenant_that_asked",
            approval_links,
        ),
        Case::exclusive(
            "approval::an_installation_the_user_cannot_access_is_refused",
            spoofed_installation,
        ),
    ]
}

/// Turns OAuth during installation on for `user`; off again when dropped.
struct OAuth<'a>(&'a Stack);

impl<'a> OAuth<'a> {
    fn on(s: &'a Stack, user: &str) -> OAuth<'a> {
        OAuth::with_installations(s, user, None)
    }

    /// OAuth on for `user`, who can access only `installations` (all when `None`).
    fn with_installations(s: &'a Stack, user: &str, installations: Option<&[u64]>) -> OAuth<'a> {
        let (id, secret) = client(s);
        s.emulator.github_oauth(id, secret, user, installations);
        OAuth(s)
    }
}

fn client(s: &Stack) -> (&str, &str) {
    (
        s.secrets
            .get("GITHUB_CLIENT_ID")
            .expect("GITHUB_CLIENT_ID in .dev.vars"),
        s.secrets
            .get("GITHUB_CLIENT_SECRET")
            .expect("GITHUB_CLIENT_SECRET in .dev.vars"),
    )
}

impl Drop for OAuth<'_> {
    /// Back to the suite's default user, who can access every installation.
    fn drop(&mut self) {
        let (id, secret) = client(self.0);
        self.0
            .emulator
            .github_oauth(id, secret, crate::harness::GITHUB_USER, None);
    }
}

/// Walks the install page's "Request approval" link for a fresh connect of `tenant`.
fn request_approval(s: &Stack, tenant: &str) {
    let install_url = s.connect(tenant);
    let page = s.http.get(&install_url);
    assert_eq!(page.status, 200, "{}", page.body);
    let link = page
        .body
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&"))
        .find(|href| href.contains("setup_action=request"))
        .unwrap_or_else(|| panic!("no request link on the install page: {}", page.body));
    assert!(
        link.contains("code="),
        "OAuth is on, so the link carries a code: {link}"
    );
    assert_eq!(s.callback(&link).outcome(), Outcome::Pending);
}

fn requester_of(s: &Stack, tenant: &str) -> i64 {
    s.store.count(
        "SELECT count(*) FROM installation_requests WHERE tenant_id = ?1 AND requester_login IS NOT NULL",
        [tenant],
    )
}

fn deliver_created(
    s: &Stack,
    installation: &Inst,
    requester: &str,
    delivery: &str,
) -> (u16, serde_json::Value) {
    let body = json!({
        "action": "created",
        "installation": {
            "id": installation.id,
            "account": { "login": installation.login, "id": installation.account_id, "type": "Organization",
                         "avatar_url": installation.avatar_url() },
            "repository_selection": "all",
        },
        "requester": { "login": requester },
        "sender": { "login": "the-owner" },
    })
    .to_string();
    let secret = s
        .secrets
        .get("GITHUB_WEBHOOK_SECRET")
        .expect("webhook secret");
    let signature = onecode_edge::github::webhook_signature::sign(secret, body.as_bytes());
    let resp = s.http.request(
        "POST",
        &format!("{}/github/webhooks", s.worker),
        &[
            ("x-github-event", "installation"),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", &signature),
        ],
        Some(&body),
    );
    (resp.status, resp.json())
}

fn approval_links(s: &Stack) {
    let _oauth = OAuth::on(s, "e2e-alice");
    let tenant = "tenant-approval";
    request_approval(s, tenant);
    assert_eq!(
        requester_of(s, tenant),
        1,
        "the callback recorded who asked"
    );
    assert!(
        s.store.orgs(tenant).is_empty(),
        "nothing is connected before the approval"
    );

    // The owner approves: GitHub creates the installation and tells us who requested it.
    let inst = Inst::org(3_701, "e2e-approved", 7);
    s.emulator.put_installation(&inst);
    let (status, answer) = deliver_created(s, &inst, "E2E-Alice", "approval-1");
    assert_eq!(status, 200, "{answer}");
    let org_id = answer["linked_org"]
        .as_str()
        .expect("linked_org")
        .to_string();
    let orgs = s.store.orgs(tenant);
    assert_eq!(
        (orgs.len(), orgs[0].id.as_str(), orgs[0].status.as_str()),
        (1, org_id.as_str(), "active")
    );
    assert_eq!(orgs[0].installation_id, 3_701);
    assert_eq!(s.store.installation_requests(tenant)[0].2, "linked");
    // The sync it queued enumerates the installation and queues every backup.
    poll_until(
        Duration::from_secs(60),
        "the approved org's repositories backed up",
        || {
            let received = s.store.count(
                "SELECT count(*) FROM backup_jobs WHERE org_id = ?1 AND status = 'received'",
                [org_id.as_str()],
            );
            if received == 7 {
                Ok(())
            } else {
                Err(format!("{received} of 7 jobs received"))
            }
        },
    );
    // A redelivery changes nothing.
    let (status, answer) = deliver_created(s, &inst, "e2e-alice", "approval-1");
    assert_eq!(
        (status, answer["duplicate"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    assert_eq!(s.store.orgs(tenant).len(), 1);

    // Nobody asked: nothing is linked.
    let stranger = Inst::org(3_702, "e2e-unrequested", 2);
    s.emulator.put_installation(&stranger);
    let (status, answer) = deliver_created(s, &stranger, "e2e-nobody", "approval-2");
    assert_eq!(status, 202, "{answer}");
    assert!(s.store.orgs_with_installation(3_702).is_empty());

    // The same GitHub user asked in two tenants: ambiguous, nothing is linked.
    let _oauth = OAuth::on(s, "e2e-bob");
    request_approval(s, "tenant-approval-x");
    request_approval(s, "tenant-approval-y");
    let shared = Inst::org(3_703, "e2e-ambiguous", 2);
    s.emulator.put_installation(&shared);
    let (status, answer) = deliver_created(s, &shared, "e2e-bob", "approval-3");
    assert_eq!(status, 202, "{answer}");
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap_or_default()
            .contains("several tenants"),
        "{answer}"
    );
    assert!(s.store.orgs_with_installation(3_703).is_empty());
}

fn spoofed_installation(s: &Stack) {
    let tenant = "tenant-spoof";
    let theirs = Inst::org(3_711, "e2e-carols-org", 2);
    let others = Inst::org(3_712, "e2e-someone-elses-org", 2);
    s.emulator.put_installation(&theirs);
    s.emulator.put_installation(&others);
    let _oauth = OAuth::with_installations(s, "e2e-carol", Some(&[3_711]));

    // Carol comes back from GitHub with someone else's installation id.
    let callback = s.connect_and_install(tenant, others.id);
    callback.assert_refused("installation_forbidden");
    assert!(s.store.orgs(tenant).is_empty(), "nothing is written");
    assert!(s.store.orgs_with_installation(3_712).is_empty());

    // Her own installation connects.
    let done = s.connect_and_install(tenant, theirs.id).done();
    assert_eq!((done.repos, done.added, done.complete), (2, 2, true));
}
