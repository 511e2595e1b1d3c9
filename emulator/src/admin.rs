//! The admin API under `/_emulator/` that tests use to set up and inspect the emulator.
//!
//! | Method and path | Body | Effect |
//! | --- | --- | --- |
//! | `GET /_emulator/health` | | `{"ok":true}` |
//! | `GET /_emulator/installations` | | summaries of all installations |
//! | `PUT /_emulator/installations/{id}` | `{"account":{..},"repositories":N or [..],"suspended":b,"repository_selection":s}` | create or replace |
//! | `PATCH /_emulator/installations/{id}` | `{"suspended":b}` | suspend / unsuspend |
//! | `DELETE /_emulator/installations/{id}` | | uninstall |
//! | `POST /_emulator/installations/{id}/repositories` | `{"add":N,"add_names":[..],"remove_ids":[..]}` | change repositories |
//! | `PUT /_emulator/setup-url` | `{"url":".."}` | where the install page sends the browser |
//! | `PUT /_emulator/oauth` | `{"client_id","client_secret","user":{"login","id"}}` | OAuth during installation: install links carry a code for that user |
//! | `DELETE /_emulator/oauth` | | OAuth off |
//! | `GET`/`PUT`/`DELETE /_emulator/faults` | array of rules `{"method"?,"path_prefix","query_contains"?,"installation_id"?,"status"?,"times"?,"headers"?,"body"?,"delay_ms"?,"truncate_after_bytes"?,"gate"?,"barrier"?}` | see `faults.rs` |
//! | `POST /_emulator/faults` | array of rules | adds them after the present ones (a test's own narrowly matching rules, without replacing another's) |
//! | `GET /_emulator/gates` | | `{"<name>":{"arrived","waiting","open","timed_out"}}` (see `faults.rs`) |
//! | `POST /_emulator/gates/{name}` | | opens the gate: requests held there go on; answers its state |
//! | `GET`/`DELETE /_emulator/requests` | | request log of every emulated endpoint (GitHub, GitLab, Microsoft, Azure DevOps) |
//! | `GET /_emulator/tokens` | | every GitHub installation and user token ever issued |
//! | `GET /_emulator/app-jwts` | | the last 100 distinct valid App JWTs the worker presented (`x-onecode-invocation`), oldest first |
//! | `GET /_emulator/credentials/misplaced` | | the credential ledger (`ledger.rs`): `{"misplaced":[{"seq","method","path","presented_to","home","kind","via"}],"checked":N}`, credentials presented outside their home family or to the sink; `N` counts every credential examined |
//! | `DELETE /_emulator/credentials/misplaced` | | empties the list (not the counter): `{"cleared":n,"checked":N}` |
//! | `GET /_emulator/credentials/seen` | | `{"github":n,"microsoft":n,"gitlab:{instance}":n,…}`: known credentials presented to their own home |
//!
//! Access audit data of an installation's organization (`access/`; ids of users given without
//! one derive from the login, see `access/state.rs`). Every route below that changes what a
//! webhook would report sends it (see `webhooks.rs`) and answers `{…,"deliveries":[{"id","event",
//! "action","status"}]}` (empty without a webhook URL). Repository names are matched
//! case-insensitively; an unknown installation, repository, member or rule answers 404,
//! a duplicate 409, a bad body 400. Replacing an installation (`PUT
//! /_emulator/installations/{id}`) resets its access state.
//!
//! | Method and path | Body | Effect and webhooks |
//! | --- | --- | --- |
//! | `PUT /_emulator/installations/{id}/access` | `{"members":[{"login","id"?,"role":"admin"\|"member","two_factor"?}],"outside_collaborators":[{"login","id"?,"two_factor"?,"admin_on":[repo names],"repositories"?:{"name":"read"\|"triage"\|"write"\|"maintain"\|"admin"}}],"invitations":[{"login"?\|"email"?,"id"?,"role"?}],"settings":{"two_factor_requirement_enabled"?,"default_repository_permission"?,"members_can_create_public_repositories"?},"permissions":{"members"?,"organization_administration"?,"administration"?}}` | replaces members, outside collaborators, invitations, settings and the App's granted permissions (a missing key: empty / defaults: role `member`, `two_factor` true, invitation role `direct_member`, settings `false`/`read`/`true`, each permission `read`; `null` revokes one); protections, rulesets and teams stay; no webhooks; answers the state as `GET` does |
//! | `GET /_emulator/installations/{id}/access` | | that state with ids, plus `protections`, `rulesets` (GitHub's ruleset JSON) and `teams` |
//! | `POST /_emulator/installations/{id}/members` | `{"login","id"?,"role"?,"two_factor"?}` | adds a member (an outside collaborator of that login is converted, its invitation accepted): `organization` `member_added` |
//! | `PATCH /_emulator/installations/{id}/members/{login}` | `{"role"?,"two_factor"?}` | a role change sends `organization` `member_added` with the new role (GitHub has no action of its own for it); a 2FA change sends nothing |
//! | `DELETE /_emulator/installations/{id}/members/{login}` | | removes the member (and from its teams): `organization` `member_removed` |
//! | `POST /_emulator/installations/{id}/invitations` | `{"login"?\|"email"?,"id"?,"role"?}` | a pending invitation: `organization` `member_invited`; answers `{"id"}` |
//! | `PUT /_emulator/installations/{id}/repositories/{name}/collaborators/{login}` | `{"permission"?:"write" (default),"id"?,"two_factor"?}` | grants an outside collaborator (not a member) a repository: `member` `added`, or `edited` when the role changes (nothing when it does not) |
//! | `DELETE /_emulator/installations/{id}/repositories/{name}/collaborators/{login}` | | revokes it (no grants left: no longer an outside collaborator): `member` `removed` |
//! | `PUT /_emulator/installations/{id}/repositories/{name}/protection/{branch}` | `{"required_reviews"?,"dismiss_stale_reviews"?,"require_code_owner_reviews"?,"require_last_push_approval"?,"required_checks"?:[contexts],"strict"?,"enforce_admins"?,"allow_force_pushes"?,"allow_deletions"?,"required_linear_history"?,"required_conversation_resolution"?}` | classic protection of the branch (name may hold `/`): `branch_protection_rule` `created`, or `edited` with `changes` (nothing when unchanged); answers `{"protection":<GET …/protection's JSON>}` |
//! | `DELETE` the same path | | `branch_protection_rule` `deleted` |
//! | `POST /_emulator/installations/{id}/repositories/{name}/rulesets` | `{"name","enforcement"?:"active"\|"disabled"\|"evaluate","include"?:["~DEFAULT_BRANCH"],"exclude"?:[],"rules":[{"type",…parameters}]}` | a repository ruleset (rule types `creation`, `update`, `deletion`, `non_fast_forward`, `required_linear_history`, `required_signatures`, `pull_request`, `required_status_checks`; parameters flat or in `"parameters"`, checked and defaulted as GitHub shows them): `repository_ruleset` `created`; answers `{"id","ruleset"}` |
//! | `PUT`/`DELETE …/repositories/{name}/rulesets/{ruleset_id}` | as `POST` / none | replaces (`repository_ruleset` `edited` with `changes`) / deletes (`deleted`) |
//! | `POST /_emulator/installations/{id}/rulesets`, `PUT`/`DELETE …/rulesets/{ruleset_id}` | as above, plus `"repositories"?:["~ALL"]`, `"exclude_repositories"?:[]` (`repository_name` patterns) | the organization's rulesets (`ruleset_source_type` `Organization`), same webhooks without `repository` |
//! | `POST /_emulator/installations/{id}/teams` | `{"name","slug"?,"description"?,"privacy"?:"closed"\|"secret"}` | `team` `created`; answers `{"id","slug"}` |
//! | `PUT`/`DELETE /_emulator/installations/{id}/teams/{slug}/members/{login}` | | an organization member joins / leaves: `membership` `added` / `removed` (`scope` `team`) |
//!
//! Webhook deliveries (`webhooks.rs`):
//!
//! | Method and path | Body | Effect |
//! | --- | --- | --- |
//! | `PUT /_emulator/webhooks` | `{"url","secret"}` | where signed deliveries go (`http://` only) |
//! | `GET`/`DELETE /_emulator/webhooks` | | `{"url","secret"}` / turn delivery off |
//! | `GET /_emulator/webhooks/deliveries` | | every delivery sent, oldest first: `{"id","event","action","installation_id","url","status","error","redelivery","delivered_at","duration_ms","body"}` |
//! | `DELETE /_emulator/webhooks/deliveries` | | empties that list |
//! | `POST /_emulator/webhooks/deliveries/{id}/redeliver` | | sends it again (same `X-GitHub-Delivery`, body and signature) to the configured URL: `{"id","event","action","status"}` |
//!
//! Families (a credential's `home`, a request's `presented_to`): `github`, `gitlab:{instance}`,
//! `microsoft` (`/microsoft/…`, `/vssps/…`, `/vsaex/…`, `/azure/…`) and `sink`: `/sink` and `/sink/…`
//! answer `200 {"ok":true}` to anything and record every credential they receive, known
//! (`home` its family) or not (`home` `unknown`).
//!
//! GitLab, per instance (`[a-z0-9-]+`, created on first use), under `/_emulator/gitlab/{instance}`:
//!
//! | Method and path | Body | Effect |
//! | --- | --- | --- |
//! | `PUT …/oauth` | `{"client_id","client_secret","access_token_ttl"?,"redirect_uris"}` | the OAuth application (TTL default 7200 s); authorize requests must name one of its redirect URIs exactly |
//! | `PUT …/users/{id}` | `{"username","name"?}` | create or replace a user (the first one is the default user) |
//! | `PUT …/default-user` | `{"id"}` | who signs in at `/oauth/authorize` without `emulator_user` |
//! | `PUT …/groups/{id}` | `{"name","path","parent_id"?,"visibility"?,"members":[user id or {"id","access_level"}],"projects":N or [{"name","path"?,"visibility"?,"archived"?,"default_branch"?}]}` | create or replace a group (members owners by default, `access_level` 5, 10, 15, 20, 30, 40 or 50; subgroups inherit members; 2FA settings reset); answers its summary with project ids and `access_levels` |
//! | `PUT …/groups/{id}/access` | `{"require_two_factor_authentication","two_factor_grace_period"?}` | the group's 2FA requirement (grace period default 48 hours) |
//! | `PUT …/groups/{id}/members/{user id}` | `{"access_level"}` | add a member or change its level, keeping the group's projects; answers the summary |
//! | `DELETE …/groups/{id}/members/{user id}` | | remove a direct member; answers the summary |
//! | `PUT …/projects/{id}/protected_branches/{name}` | `{"push_access_level"?,"merge_access_level"?,"allow_force_push"?,"code_owner_approval_required"?}` | protect a branch or wildcard (name may hold `/`; levels 0, 30, 40 (default) or 60); answers it as the API lists it |
//! | `DELETE …/projects/{id}/protected_branches/{name}` | | unprotect it (400 if it was not) |
//! | `PUT …/projects/{id}/approval_rules` | `[{"name","approvals_required","rule_type"?:"regular"\|"any_approver"}]` | replace the project's approval rules |
//! | `POST …/groups/{id}/projects` | `{"add":N,"add_names":[..],"remove_ids":[..]}` | change its projects; answers its summary |
//! | `DELETE …/groups/{id}` | | delete it with its subgroups and their projects |
//! | `GET …/projects[?group={id}]` | | every project, or those of a group and its subgroups |
//! | `POST …/users/{id}/revoke` | | delete the user's tokens (refresh → `invalid_grant`, API → 401) |
//! | `POST …/expire` | `{"user_id"?}` or empty | expire the live access tokens (of one user); refresh tokens stay good |
//!
//! Microsoft identity platform and Azure DevOps, under `/_emulator/azure`:
//!
//! | Method and path | Body | Effect |
//! | --- | --- | --- |
//! | `PUT …/oauth` | `{"client_id","client_secret","access_token_ttl"?,"redirect_uris"}` | the app registration (TTL default 3599 s); authorize requests must name one of its redirect URIs exactly |
//! | `PUT …/users/{guid}` | `{"displayName","emailAddress"?}` | create or replace a user (the first one is the default user) |
//! | `PUT …/default-user` | `{"id"}` | who signs in without `emulator_user` |
//! | `PUT …/orgs/{name}` | `{"id"?,"members":[guid or {"id","access_level"?}],"projects":[{"name","id"?,"visibility"?,"repositories":N or [names]}],"entitlements_denied"?:true\|401\|403}` | create or replace an organization (ids generated unless given; a replaced one keeps its id); `access_level` is the member's `accountLicenseType` (`express` (Basic, the default), `stakeholder`, `advanced`, `professional`, `earlyAdopter`, `none`); with `entitlements_denied` `GET /vsaex/{org}/_apis/userentitlements` answers 401 (`true`) or 403; answers its summary with every id, `access_levels` and `entitlements_denied` |
//! | `GET …/orgs/{name}` | | that summary |
//! | `DELETE …/orgs/{name}` | | delete it |
//! | `POST …/orgs/{name}/projects/{project}/repositories` | `{"add":N,"add_names":[..],"remove_ids":[guids]}` | change a project's repositories; answers the organization's summary |
//! | `PUT …/orgs/{name}/projects/{project}/repositories/{repo}/policies` | `[{"type":"reviewers"\|"build"\|"merge_strategy"\|"comment_resolution"\|"work_item_linking"\|"required_reviewers","enabled"?,"blocking"?,"branch"?:"main","match"?:"exact"\|"prefix",…settings}]` | replace the repository's branch policies (ids continue per organization). Settings by snake_case name, defaulted: reviewers `minimum_approver_count` (1), `creator_vote_counts`, `allow_downvotes`, `reset_on_source_push`, `require_vote_on_last_iteration`, `reset_rejections_on_source_push`, `block_last_pusher_vote`, `require_vote_on_each_iteration`; build `name` (→ `displayName`), `build_definition_id` (1), `queue_on_source_update_only`, `manual_queue_only`, `valid_duration` (720); merge_strategy `allow_squash`, `allow_no_fast_forward`, `allow_rebase`, `allow_rebase_merge`; required_reviewers `required_reviewer_ids`, `minimum_approver_count`, `creator_vote_counts`; answers `{"count","value":[{"id","type","isEnabled","isBlocking","refName","matchKind","settings"}]}` |
//! | `POST …/users/{guid}/revoke` | | as for GitLab |
//! | `POST …/expire` | `{"user_id"?}` or empty | as for GitLab |
//!
//! Both:
//!
//! | Method and path | Effect |
//! | --- | --- |
//! | `GET /_emulator/oauth-grants` | every GitLab / Microsoft token request, oldest first: `{"provider":"gitlab"or"azure","instance","grant_type","user_id","presented_refresh_token","outcome":"ok"or the error,"at"}` |
//! | `GET /_emulator/provider-tokens` | every GitLab / Microsoft access and refresh token ever issued |
//!
//! Git repositories (`git/`), under `/_emulator/git/{key}` where `{key}` is
//! `github/{owner}/{repo}`, `gitlab/{instance}/{path_with_namespace}` or
//! `azure/{org}/{project}/{repo}` (URL path segments, percent-encoded where needed). A
//! repository the emulator does not list → 404; one not yet created is created first (see
//! `git/repos.rs` for its initial refs; empty under a registered empty prefix). Every route
//! answers the refs after the change:
//! `{"refs":{"refs/heads/main":"<oid>",…},"head":"refs/heads/main","path":"<bare repository
//! directory>"}` (annotated tags by their tag object id, no peeled entries, no `HEAD`).
//!
//! | Method and path | Body | Effect |
//! | --- | --- | --- |
//! | `POST /_emulator/git/empty` | `{"prefix"}` | repositories whose key (`github/{owner}/{repo}`, `gitlab/{instance}/{path}`, `azure/{org}/{project}/{repo}`, compared lowercase) starts with `prefix` start empty: no refs, `HEAD` on the default branch, the cached advertisement of a shared empty repository and no directory until an admin call (scale fixtures); `prefix` must start with `github/`, `gitlab/` or `azure/` (else 400); prefixes last for the emulator's lifetime, only added; answers `{"prefixes":[…every one registered…]}` |
//! | `GET /_emulator/git/empty` | | `{"prefixes":[…]}` |
//! | `GET …/refs` | | the refs (so tests can compare a restore with `git` against `path`); `{"refs":{},…}` for an empty repository |
//! | `POST …/commits` | `{"branch"?,"count"?,"file_bytes"?,"incompressible"?}` | adds `count` (default 1) commits to `branch` (default: the default branch; created from `HEAD` if missing, from nothing, a root commit, in an empty repository); with `file_bytes` > 0 each adds a file of that many bytes, random with `incompressible` (streamed into `git fast-import`, never held in memory) |
//! | `POST …/branches` | `{"name","from"?}` | creates a branch at `from` (object id or ref; default `HEAD`); 409 if it exists |
//! | `DELETE …/branches/{name}` | | deletes a branch (name percent-encoded); 404 unknown, 400 for the default branch |
//! | `POST …/tags` | `{"name","target"?,"annotated"?}` | creates a tag of `target` (default `HEAD`), lightweight unless `annotated`; 409 if it exists |
//! | `POST …/force-push` | `{"branch","to"?,"commits"?,"file_bytes"?,"incompressible"?}` | resets `branch` to `to` (object id or ref; default `{branch}~1`), then adds `commits` (default 1) new commits on top: history rewritten |

use std::collections::HashSet;

use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use crate::faults::FaultRule;
use crate::http::{parse_body, Reply, Request};
use crate::ledger::{Family, Kind};
use crate::server::Emulator;
use crate::state::{Account, Installation, RepoSpec};

#[derive(Deserialize)]
#[serde(untagged)]
enum RepositoriesSpec {
    Count(u32),
    Named(Vec<RepoSpec>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallationSpec {
    account: Account,
    #[serde(default)]
    repositories: Option<RepositoriesSpec>,
    #[serde(default)]
    suspended: bool,
    #[serde(default)]
    repository_selection: Option<String>,
}

/// `{"add": N, "add_names": [..], "remove_ids": [..]}`: the repository changes every service's
/// admin API takes (ids are numbers on GitHub and GitLab, GUIDs on Azure DevOps).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryChanges<Id: Eq + std::hash::Hash> {
    #[serde(default)]
    pub add: u32,
    #[serde(default)]
    pub add_names: Vec<String>,
    #[serde(default = "HashSet::new")]
    pub remove_ids: HashSet<Id>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallationPatch {
    suspended: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupUrl {
    url: String,
}

/// Answers a request whose path starts with `/_emulator`.
pub fn route(em: &Emulator, request: &Request) -> Reply {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').skip(1).collect();
    let result = match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["health"]) => Ok(Reply::json(200, &json!({ "ok": true }))),
        ("GET", ["installations"]) => Ok(list_installations(em)),
        ("PUT", ["installations", id]) => {
            parse_id(id).and_then(|id| put_installation(em, request, id))
        }
        ("PATCH", ["installations", id]) => {
            parse_id(id).and_then(|id| patch_installation(em, request, id))
        }
        ("DELETE", ["installations", id]) => parse_id(id).map(|id| delete_installation(em, id)),
        ("POST", ["installations", id, "repositories"]) => {
            parse_id(id).and_then(|id| change_repositories(em, request, id))
        }
        (_, ["installations", id, rest @ ..]) if !rest.is_empty() => {
            parse_id(id).map(|id| crate::access::admin_route(em, request, id, rest))
        }
        ("PUT", ["setup-url"]) => put_setup_url(em, request),
        ("PUT", ["oauth"]) => parse_body::<crate::state::OAuthApp>(request).map(|app| {
            let mut store = em.store();
            let secret = &app.client_secret;
            store
                .ledger
                .remember(secret, Family::GitHub, Kind::ClientSecret);
            store.oauth = Some(app);
            Reply::json(200, &json!({ "oauth": true }))
        }),
        ("DELETE", ["oauth"]) => {
            em.store().oauth = None;
            Ok(Reply::json(200, &json!({ "oauth": false })))
        }
        ("GET", ["faults"]) => Ok(Reply::json(200, &json!(em.faults().rules()))),
        ("PUT", ["faults"]) => parse_body::<Vec<FaultRule>>(request).map(|rules| {
            let count = rules.len();
            em.faults().replace(rules);
            Reply::json(200, &json!({ "rules": count }))
        }),
        ("POST", ["faults"]) => parse_body::<Vec<FaultRule>>(request).map(|rules| {
            let count = rules.len();
            em.faults().append(rules);
            Reply::json(200, &json!({ "added": count }))
        }),
        ("GET", ["gates"]) => Ok(Reply::json(200, &json!(em.gates().states()))),
        ("POST", ["gates", name]) => Ok(Reply::json(200, &json!(em.gates().open(name)))),
        ("DELETE", ["faults"]) => {
            em.faults().replace(Vec::new());
            Ok(Reply::json(200, &json!({ "rules": 0 })))
        }
        ("GET", ["requests"]) => Ok(Reply::json(200, &json!(em.store().requests()))),
        ("DELETE", ["requests"]) => {
            em.store().clear_requests();
            Ok(Reply::json(200, &json!({ "ok": true })))
        }
        ("GET", ["tokens"]) => Ok(Reply::json(200, &json!(em.store().issued_tokens()))),
        ("GET", ["app-jwts"]) => Ok(Reply::json(200, &json!(em.app_jwts()))),
        ("GET", ["oauth-grants"]) => {
            Ok(Reply::json(200, &json!(em.store().provider_oauth.grants())))
        }
        ("GET", ["provider-tokens"]) => Ok(Reply::json(
            200,
            &json!(em.store().provider_oauth.issued_tokens()),
        )),
        ("GET", ["credentials", "misplaced"]) => {
            let store = em.store();
            let ledger = &store.ledger;
            Ok(Reply::json(
                200,
                &json!({ "misplaced": ledger.misplaced(), "checked": ledger.checked() }),
            ))
        }
        ("DELETE", ["credentials", "misplaced"]) => {
            let mut store = em.store();
            let cleared = store.ledger.clear_misplaced();
            let checked = store.ledger.checked();
            Ok(Reply::json(
                200,
                &json!({ "cleared": cleared, "checked": checked }),
            ))
        }
        ("GET", ["credentials", "seen"]) => Ok(Reply::json(200, &em.store().ledger.seen_json())),
        (_, ["gitlab", instance, rest @ ..]) if crate::gitlab::valid_instance(instance) => {
            Ok(crate::gitlab::admin_route(em, request, instance, rest))
        }
        (_, ["azure", rest @ ..]) => Ok(crate::azure::admin_route(em, request, rest)),
        (_, ["git", rest @ ..]) => Ok(crate::git::admin_route(em, request, rest)),
        (_, ["webhooks", rest @ ..]) => Ok(crate::webhooks::admin_route(em, request, rest)),
        _ => Err(crate::github::no_route(request)),
    };
    result.unwrap_or_else(|reply| reply)
}

fn parse_id(id: &str) -> Result<u64, Reply> {
    id.parse()
        .map_err(|_| Reply::error(400, &format!("github-emulator: bad installation id {id:?}")))
}

fn unknown_installation(id: u64) -> Reply {
    Reply::error(404, &format!("github-emulator: no installation {id}"))
}

fn summary(inst: &Installation) -> Value {
    json!({
        "id": inst.id,
        "account": inst.account,
        "repository_count": inst.repos().len(),
        "repository_selection": inst.repository_selection,
        "suspended": inst.suspended_at.is_some(),
    })
}

fn list_installations(em: &Emulator) -> Reply {
    let summaries: Vec<Value> = em.store().installations().map(summary).collect();
    Reply::json(200, &json!(summaries))
}

fn put_installation(em: &Emulator, request: &Request, id: u64) -> Result<Reply, Reply> {
    let spec: InstallationSpec = parse_body(request)?;
    let selection = spec.repository_selection.unwrap_or_else(|| "all".into());
    if selection != "all" && selection != "selected" {
        return Err(Reply::error(
            400,
            "github-emulator: repository_selection must be \"all\" or \"selected\"",
        ));
    }
    let now = Utc::now();
    let mut inst = Installation::new(id, spec.account, selection, now);
    match spec.repositories {
        None => {}
        Some(RepositoriesSpec::Count(count)) => inst.add_generated(count),
        Some(RepositoriesSpec::Named(repos)) => repos.into_iter().for_each(|r| inst.add_named(r)),
    }
    inst.set_suspended(spec.suspended, now);
    let body = summary(&inst);
    em.store().put_installation(inst);
    Ok(Reply::json(200, &body))
}

fn patch_installation(em: &Emulator, request: &Request, id: u64) -> Result<Reply, Reply> {
    let patch: InstallationPatch = parse_body(request)?;
    let mut store = em.store();
    let inst = store
        .installation_mut(id)
        .ok_or_else(|| unknown_installation(id))?;
    inst.set_suspended(patch.suspended, Utc::now());
    Ok(Reply::json(200, &summary(inst)))
}

fn delete_installation(em: &Emulator, id: u64) -> Reply {
    let deleted = em.store().remove_installation(id);
    Reply::json(200, &json!({ "deleted": deleted }))
}

fn change_repositories(em: &Emulator, request: &Request, id: u64) -> Result<Reply, Reply> {
    let changes: RepositoryChanges<u64> = parse_body(request)?;
    let mut store = em.store();
    let inst = store
        .installation_mut(id)
        .ok_or_else(|| unknown_installation(id))?;
    inst.remove_ids(&changes.remove_ids);
    inst.add_generated(changes.add);
    for name in changes.add_names {
        inst.add_named(RepoSpec {
            name,
            ..RepoSpec::default()
        });
    }
    inst.updated_at = Utc::now();
    Ok(Reply::json(
        200,
        &json!({ "repository_count": inst.repos().len() }),
    ))
}

fn put_setup_url(em: &Emulator, request: &Request) -> Result<Reply, Reply> {
    let SetupUrl { url } = parse_body(request)?;
    let parsed = Url::parse(&url)
        .map_err(|e| Reply::error(400, &format!("github-emulator: bad setup URL {url:?}: {e}")))?;
    em.store().setup_url = Some(parsed);
    Ok(Reply::json(200, &json!({ "url": url })))
}
