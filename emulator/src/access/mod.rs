//! Who can reach an organization's code on GitHub and how its branches are protected: the
//! endpoints an access audit reads with an installation token, and the admin routes that
//! change what they answer (sending the webhooks GitHub would, see `webhooks.rs`).
//!
//! | Method and path | Answer | Needs (installation permission) |
//! | --- | --- | --- |
//! | `GET /orgs/{org}` | gains `two_factor_requirement_enabled`, `default_repository_permission`, `members_can_create_public_repositories` | the three only with `organization_administration` |
//! | `GET /orgs/{org}/members?role=all\|admin\|member&filter=all\|2fa_disabled\|2fa_insecure` | simple users, by login | `members`; the 2FA filters also `organization_administration` (else 422 `Only owners can use this filter.`) |
//! | `GET /orgs/{org}/outside_collaborators?filter=all\|2fa_disabled\|2fa_insecure` | simple users, by login | as above |
//! | `GET /orgs/{org}/invitations?role=all\|admin\|direct_member\|billing_manager\|hiring_manager` | `[{"id","node_id","login","email","role","created_at","failed_at","failed_reason","inviter","team_count","invitation_teams_url","invitation_source"}]`, oldest first | `members` |
//! | `GET /repos/{owner}/{repo}/branches/{branch}/protection` | classic protection (`url`, `required_status_checks`?, `required_pull_request_reviews`?, `required_signatures`, `enforce_admins`, `required_linear_history`, `allow_force_pushes`, `allow_deletions`, `block_creations`, `required_conversation_resolution`, `lock_branch`, `allow_fork_syncing`); 404 `Branch not protected` | `administration` |
//! | `GET /repos/{owner}/{repo}/rules/branches/{branch}` | `[{"type","parameters"?,"ruleset_source_type","ruleset_source","ruleset_id"}]`: the rules of every active ruleset targeting the branch (see `rulesets.rs`), by ruleset id | none beyond the token |
//! | `GET /repos/{owner}/{repo}/collaborators?affiliation=all\|outside\|direct&permission=pull\|triage\|push\|maintain\|admin` | simple users with `permissions{admin,maintain,push,triage,pull}` and `role_name`, by login: `outside` and `direct` the outside collaborators granted the repository, `all` also the members (owners `admin`, others the base permission unless it is `none`); `permission` keeps those holding at least that role | `members` |
//!
//! Lists take `per_page` (≤ 100) and `page`; their `Link` headers point at
//! `/organizations/{account id}/…` and `/repositories/{repo id}/collaborators` as GitHub's do
//! (both served too), keeping the other query parameters. Without a needed permission: 403
//! `Resource not accessible by integration`; an organization or repository not the token's own:
//! 404. Bad parameter values: 422 `Validation Failed`. Branch names may hold `/` (raw or `%2F`).
//!
//! Admin routes (`admin.rs`) are listed in `crate::admin`'s table.

mod admin;
mod api;
mod events;
mod protections;
mod rulesets;
mod state;

pub use admin::route as admin_route;
pub use api::route;
pub use state::Access;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::http::Reply;
use crate::server::Emulator;
use crate::state::{Account, AccountType, Installation};
use state::User;

pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    crate::github::timestamp(t)
}

/// The simple user object GitHub embeds everywhere.
fn user_json(em: &Emulator, user: &User) -> Value {
    let api = format!("{}/users/{}", em.base_url, user.login);
    json!({
        "login": user.login,
        "id": user.id,
        "node_id": crate::github::node_id("U", user.id),
        "avatar_url": crate::github::avatar_url(user.id),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("https://github.com/{}", user.login),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": "User",
        "user_view_type": "public",
        "site_admin": false,
    })
}

/// Who the admin API acts as: the `sender` of webhooks and the `inviter` of invitations.
fn admin_user() -> User {
    User {
        login: "emulator-admin".into(),
        id: 1,
    }
}

/// The organization object of webhook payloads.
fn org_json(em: &Emulator, account: &Account) -> Value {
    let api = format!("{}/orgs/{}", em.base_url, account.login);
    json!({
        "login": account.login,
        "id": account.id,
        "node_id": crate::github::node_id("O", account.id),
        "url": api,
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events"),
        "hooks_url": format!("{api}/hooks"),
        "issues_url": format!("{api}/issues"),
        "members_url": format!("{api}/members{{/member}}"),
        "public_members_url": format!("{api}/public_members{{/member}}"),
        "avatar_url": crate::github::avatar_url(account.id),
        "description": account.description,
    })
}

/// Adds the settings `GET /orgs/{org}` shows when the App may administer the organization.
pub fn add_org_settings(body: &mut Value, inst: &Installation) {
    let access = &inst.access;
    if inst.account.kind != AccountType::Organization
        || access.permissions.organization_administration.is_none()
    {
        return;
    }
    let settings = &access.settings;
    body["two_factor_requirement_enabled"] = json!(settings.two_factor_requirement_enabled);
    body["default_repository_permission"] = json!(settings.default_repository_permission);
    body["members_can_create_public_repositories"] =
        json!(settings.members_can_create_public_repositories);
}

/// A GitHub error with its own documentation link and status (as GitHub's bodies now carry).
fn github_error(status: u16, message: &str, doc: &str) -> Reply {
    Reply::json(
        status,
        &json!({ "message": message, "documentation_url": doc, "status": status.to_string() }),
    )
}

/// 403 for a token whose installation lacks a permission.
fn not_accessible(doc: &str) -> Reply {
    github_error(403, "Resource not accessible by integration", doc)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod webhook_tests;
