//! The GitHub endpoints of `access/` (see the table in `mod.rs`).

use std::borrow::Cow;

use serde_json::{json, Value};

use super::state::{Permission, Protection, User};
use super::{github_error, not_accessible, user_json};
use crate::github::token_installation;
use crate::http::{percent_decode, Reply, Request};
use crate::pagination::Page;
use crate::server::{Caller, Emulator};
use crate::state::{AccountType, Installation, RepoDetails, Store};

const DOC_MEMBERS: &str = "https://docs.github.com/rest/orgs/members#list-organization-members";
const DOC_OUTSIDE: &str =
    "https://docs.github.com/rest/orgs/outside-collaborators#list-outside-collaborators-for-an-organization";
const DOC_INVITATIONS: &str =
    "https://docs.github.com/rest/orgs/members#list-pending-organization-invitations";
const DOC_PROTECTION: &str =
    "https://docs.github.com/rest/branches/branch-protection#get-branch-protection";
const DOC_COLLABORATORS: &str =
    "https://docs.github.com/rest/collaborators/collaborators#list-repository-collaborators";

/// An organization named in a path.
enum OrgKey<'a> {
    Login(&'a str),
    Id(&'a str),
}

/// A repository named in a path.
enum RepoKey<'a> {
    Name { owner: &'a str, repo: &'a str },
    Id(&'a str),
}

/// Answers the access endpoints; `None` for any other path.
pub fn route(
    em: &Emulator,
    request: &Request,
    caller: &Caller,
    segments: &[&str],
) -> Option<Result<Reply, Reply>> {
    let branch = |parts: &[&str]| {
        parts
            .iter()
            .map(|p| percent_decode(p))
            .collect::<Vec<_>>()
            .join("/")
    };
    let result = match (request.method.as_str(), segments) {
        ("GET", ["orgs", org, list]) if LISTS.contains(list) => {
            org_list(em, request, caller, OrgKey::Login(org), list)
        }
        ("GET", ["organizations", id, list]) if LISTS.contains(list) => {
            org_list(em, request, caller, OrgKey::Id(id), list)
        }
        ("GET", ["repos", owner, repo, "branches", rest @ .., "protection"])
            if !rest.is_empty() =>
        {
            protection(em, caller, RepoKey::Name { owner, repo }, &branch(rest))
        }
        ("GET", ["repos", owner, repo, "rules", "branches", rest @ ..]) if !rest.is_empty() => {
            branch_rules(
                em,
                request,
                caller,
                RepoKey::Name { owner, repo },
                &branch(rest),
            )
        }
        ("GET", ["repositories", id, "rules", "branches", rest @ ..]) if !rest.is_empty() => {
            branch_rules(em, request, caller, RepoKey::Id(id), &branch(rest))
        }
        ("GET", ["repos", owner, repo, "collaborators"]) => {
            collaborators(em, request, caller, RepoKey::Name { owner, repo })
        }
        ("GET", ["repositories", id, "collaborators"]) => {
            collaborators(em, request, caller, RepoKey::Id(id))
        }
        _ => return None,
    };
    Some(result)
}

const LISTS: [&str; 3] = ["members", "outside_collaborators", "invitations"];

fn validation_failed(field: &str, doc: &str) -> Reply {
    Reply::json(
        422,
        &json!({
            "message": "Validation Failed",
            "errors": [{ "field": field, "code": "invalid" }],
            "documentation_url": doc,
            "status": "422",
        }),
    )
}

/// A query parameter that must be one of `allowed` (absent or empty: `default`).
fn one_of<'a>(
    request: &Request,
    name: &str,
    allowed: &[&'a str],
    default: &'a str,
    doc: &str,
) -> Result<&'a str, Reply> {
    match request.query_param(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(value) => allowed
            .iter()
            .find(|a| **a == value)
            .copied()
            .ok_or_else(|| validation_failed(name, doc)),
    }
}

/// The token's installation when `key` names its organization.
fn org_installation<'s>(
    store: &'s Store,
    caller: &Caller,
    key: OrgKey,
) -> Result<&'s Installation, Reply> {
    let inst = token_installation(store, caller)?;
    let account = &inst.account;
    let named = match key {
        OrgKey::Login(login) => account.login.eq_ignore_ascii_case(login),
        OrgKey::Id(id) => id.parse() == Ok(account.id),
    };
    if named && account.kind == AccountType::Organization {
        Ok(inst)
    } else {
        Err(Reply::not_found())
    }
}

/// The token's installation and one of its repositories.
fn repo_of<'s>(
    store: &'s Store,
    caller: &Caller,
    key: RepoKey,
) -> Result<(&'s Installation, RepoDetails), Reply> {
    let inst = token_installation(store, caller)?;
    let details = match key {
        RepoKey::Name { owner, repo } if inst.account.login.eq_ignore_ascii_case(owner) => {
            inst.repo_named(&percent_decode(repo))
        }
        RepoKey::Name { .. } => None,
        RepoKey::Id(id) => id.parse::<u64>().ok().and_then(|id| {
            inst.repos()
                .iter()
                .find(|r| r.id(inst.id) == id)
                .map(|r| inst.repo_details(r))
        }),
    };
    details
        .map(|d| (inst, Cow::into_owned(d)))
        .ok_or_else(Reply::not_found)
}

fn page(request: &Request) -> Page {
    Page::from_query(
        request.query_param("per_page").as_deref(),
        request.query_param("page").as_deref(),
    )
}

/// One page of `items` with GitHub's `Link` header pointing at `endpoint`.
fn paginated(request: &Request, endpoint: &str, items: Vec<Value>) -> Reply {
    let page = page(request);
    let total = items.len();
    let shown: Vec<Value> = items
        .into_iter()
        .skip(page.range(total).start)
        .take(page.range(total).len())
        .collect();
    let mut reply = Reply::json(200, &json!(shown));
    if let Some(link) = page.link_header_keeping(endpoint, &request.query, total) {
        reply.set_header("link", link);
    }
    reply
}

fn by_login(mut users: Vec<&User>) -> Vec<&User> {
    users.sort_by_key(|u| (u.login.to_ascii_lowercase(), u.id));
    users
}

/// The 2FA `filter` of members and outside collaborators: `Some(false)` keeps those without
/// 2FA, `Some(true)` those with an insecure method (none are), `None` everyone.
fn two_factor_filter(
    request: &Request,
    inst: &Installation,
    doc: &str,
) -> Result<Option<bool>, Reply> {
    let filter = one_of(
        request,
        "filter",
        &["all", "2fa_disabled", "2fa_insecure"],
        "all",
        doc,
    )?;
    if filter == "all" {
        return Ok(None);
    }
    if inst
        .access
        .permissions
        .organization_administration
        .is_none()
    {
        return Err(github_error(422, "Only owners can use this filter.", doc));
    }
    Ok(Some(filter == "2fa_insecure"))
}

fn org_list(
    em: &Emulator,
    request: &Request,
    caller: &Caller,
    key: OrgKey,
    list: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let inst = org_installation(&store, caller, key)?;
    let access = &inst.access;
    let doc = match list {
        "members" => DOC_MEMBERS,
        "outside_collaborators" => DOC_OUTSIDE,
        _ => DOC_INVITATIONS,
    };
    if access.permissions.members.is_none() {
        return Err(not_accessible(doc));
    }
    let endpoint = format!("{}/organizations/{}/{list}", em.base_url, inst.account.id);
    let items: Vec<Value> = match list {
        "members" => {
            let role = one_of(request, "role", &["all", "admin", "member"], "all", doc)?;
            let insecure = two_factor_filter(request, inst, doc)?;
            let users = access
                .members
                .iter()
                .filter(|m| role == "all" || m.role.as_str() == role)
                .filter(|m| insecure.is_none_or(|insecure| !insecure && !m.two_factor))
                .map(|m| &m.user)
                .collect();
            by_login(users)
                .into_iter()
                .map(|u| user_json(em, u))
                .collect()
        }
        "outside_collaborators" => {
            let insecure = two_factor_filter(request, inst, doc)?;
            let users = access
                .outside
                .iter()
                .filter(|o| insecure.is_none_or(|insecure| !insecure && !o.two_factor))
                .map(|o| &o.user)
                .collect();
            by_login(users)
                .into_iter()
                .map(|u| user_json(em, u))
                .collect()
        }
        _ => {
            let role = one_of(
                request,
                "role",
                &[
                    "all",
                    "admin",
                    "direct_member",
                    "billing_manager",
                    "hiring_manager",
                ],
                "all",
                doc,
            )?;
            one_of(
                request,
                "invitation_source",
                &["all", "member", "scim"],
                "all",
                doc,
            )?;
            access
                .invitations
                .iter()
                .filter(|i| role == "all" || i.role == role)
                .map(|i| super::events::invitation_json(em, &inst.account, i))
                .collect()
        }
    };
    Ok(paginated(request, &endpoint, items))
}

/// The classic protection of a branch as `GET …/branches/{branch}/protection` shows it.
pub fn protection_json(em: &Emulator, owner: &str, protection: &Protection) -> Value {
    let spec = &protection.spec;
    let url = format!(
        "{}/repos/{owner}/{}/branches/{}/protection",
        em.base_url, protection.repository, protection.branch
    );
    let enabled = |on: bool| json!({ "enabled": on });
    let mut body = json!({
        "url": url,
        "required_signatures": { "url": format!("{url}/required_signatures"), "enabled": false },
        "enforce_admins": { "url": format!("{url}/enforce_admins"), "enabled": spec.enforce_admins },
        "required_linear_history": enabled(spec.required_linear_history),
        "allow_force_pushes": enabled(spec.allow_force_pushes),
        "allow_deletions": enabled(spec.allow_deletions),
        "block_creations": enabled(false),
        "required_conversation_resolution": enabled(spec.required_conversation_resolution),
        "lock_branch": enabled(false),
        "allow_fork_syncing": enabled(false),
    });
    if let Some(checks) = &spec.required_checks {
        let checks_url = format!("{url}/required_status_checks");
        body["required_status_checks"] = json!({
            "url": checks_url,
            "strict": spec.strict,
            "contexts": checks,
            "contexts_url": format!("{checks_url}/contexts"),
            "checks": checks.iter().map(|c| json!({ "context": c, "app_id": null })).collect::<Vec<_>>(),
        });
    }
    if let Some(count) = spec.required_reviews {
        body["required_pull_request_reviews"] = json!({
            "url": format!("{url}/required_pull_request_reviews"),
            "dismiss_stale_reviews": spec.dismiss_stale_reviews,
            "require_code_owner_reviews": spec.require_code_owner_reviews,
            "required_approving_review_count": count,
            "require_last_push_approval": spec.require_last_push_approval,
        });
    }
    body
}

fn protection(em: &Emulator, caller: &Caller, key: RepoKey, branch: &str) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, repo) = repo_of(&store, caller, key)?;
    if inst.access.permissions.administration.is_none() {
        return Err(not_accessible(DOC_PROTECTION));
    }
    let protection = inst
        .access
        .protection(&repo.name, branch)
        .ok_or_else(|| github_error(404, "Branch not protected", DOC_PROTECTION))?;
    Ok(Reply::json(
        200,
        &protection_json(em, &inst.account.login, protection),
    ))
}

fn branch_rules(
    em: &Emulator,
    request: &Request,
    caller: &Caller,
    key: RepoKey,
    branch: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, repo) = repo_of(&store, caller, key)?;
    let org = &inst.account.login;
    let mut rulesets: Vec<_> = inst
        .access
        .rulesets
        .iter()
        .filter(|r| r.applies(&repo.name, &repo.default_branch, branch))
        .collect();
    rulesets.sort_by_key(|r| r.id);
    let rules: Vec<Value> = rulesets
        .iter()
        .flat_map(|ruleset| {
            let (source_type, source) = ruleset.source_fields(org);
            ruleset.rules.iter().map(move |rule| {
                let mut json = rule.json();
                json["ruleset_source_type"] = json!(source_type);
                json["ruleset_source"] = json!(source);
                json["ruleset_id"] = json!(ruleset.id);
                json
            })
        })
        .collect();
    let endpoint = format!(
        "{}/repositories/{}/rules/branches/{}",
        em.base_url,
        repo.id,
        crate::http::encode_segment(branch)
    );
    Ok(paginated(request, &endpoint, rules))
}

fn collaborators(
    em: &Emulator,
    request: &Request,
    caller: &Caller,
    key: RepoKey,
) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, repo) = repo_of(&store, caller, key)?;
    let access = &inst.access;
    if access.permissions.members.is_none() {
        return Err(not_accessible(DOC_COLLABORATORS));
    }
    let affiliation = one_of(
        request,
        "affiliation",
        &["all", "outside", "direct"],
        "all",
        DOC_COLLABORATORS,
    )?;
    let wanted = match request.query_param("permission").filter(|p| !p.is_empty()) {
        None => Permission::Read,
        Some(key) => Permission::from_key(&key)
            .ok_or_else(|| validation_failed("permission", DOC_COLLABORATORS))?,
    };
    let mut users: Vec<(&User, Permission)> = access
        .outside
        .iter()
        .filter_map(|o| o.on(&repo.name).map(|p| (&o.user, p)))
        .collect();
    if affiliation == "all" {
        users.extend(access.members.iter().filter_map(|m| {
            access
                .role_on(&repo.name, &m.user.login)
                .map(|p| (&m.user, p))
        }));
    }
    users.retain(|(_, p)| *p >= wanted);
    users.sort_by_key(|(u, _)| (u.login.to_ascii_lowercase(), u.id));
    let items = users
        .into_iter()
        .map(|(user, role)| {
            let mut json = user_json(em, user);
            json["permissions"] = Permission::ALL
                .iter()
                .map(|p| (p.key().to_string(), json!(role >= *p)))
                .collect::<serde_json::Map<_, _>>()
                .into();
            json["role_name"] = json!(role.as_str());
            json
        })
        .collect();
    let endpoint = format!("{}/repositories/{}/collaborators", em.base_url, repo.id);
    Ok(paginated(request, &endpoint, items))
}
