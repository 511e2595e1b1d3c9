//! The emulated GitHub endpoints and their JSON shapes.
//!
//! - `GET /app/installations/{id}` and `POST /app/installations/{id}/access_tokens` (App JWT)
//! - `GET /installation/repositories` with `Link` pagination (installation token)
//! - `GET /orgs/{login}` and `GET /users/{login}` for the token's own account (an
//!   organization's settings for owners: `access/`)
//! - who can reach the organization's code and how its branches are protected: `access/`
//! - `GET /apps/{slug}/installations/new`: the install page that sends the browser to the
//!   setup URL (or redirects straight there with `&target=<installation id>`), with a one-time
//!   OAuth `code` when "request user authorization during installation" is configured
//! - `POST /login/oauth/access_token` (code → `ghu_` user token), `GET /user` and
//!   `GET /user/installations` (user token)
//!
//! Repositories list `clone_url` as `{emulator}/{owner}/{repo}.git`, served by `git/`.
//!
//! Any other request answers 404 naming the method and path.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use url::Url;

use crate::auth::DECODE_FAILED;
use crate::http::{Reply, Request};
use crate::pagination::Page;
use crate::server::{Caller, Emulator};
use crate::state::{Account, AccountType, Installation, Repo, Store};

/// Answers a GitHub-endpoint request for an already identified caller.
pub fn route(em: &Emulator, request: &Request, caller: &Caller) -> Reply {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let result = match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["app", "installations", id]) => get_installation(em, caller, id),
        ("POST", ["app", "installations", id, "access_tokens"]) => create_token(em, caller, id),
        ("GET", ["installation", "repositories"]) => list_repositories(em, caller, request),
        ("GET", ["orgs", login]) => get_account(em, caller, login, true),
        ("GET", ["users", login]) => get_account(em, caller, login, false),
        ("GET", ["apps", slug, "installations", "new"]) => install_page(em, request, slug),
        ("POST", ["login", "oauth", "access_token"]) => Ok(exchange_code(em, request)),
        ("GET", ["user", "installations"]) => match caller {
            Caller::User(_) => Ok(user_installations(em)),
            Caller::Rejected(message) => Err(Reply::error(401, message)),
            _ => Err(Reply::error(401, "Requires authentication")),
        },
        ("GET", ["user"]) => match caller {
            Caller::User(login) => {
                let store = em.store();
                let user = store
                    .oauth
                    .as_ref()
                    .map(|o| &o.user)
                    .filter(|u| &u.login == login);
                Ok(Reply::json(
                    200,
                    &json!({ "login": login, "id": user.map(|u| u.id), "type": "User" }),
                ))
            }
            Caller::Rejected(message) => Err(Reply::error(401, message)),
            _ => Err(Reply::error(401, "Requires authentication")),
        },
        _ => crate::access::route(em, request, caller, &segments)
            .unwrap_or_else(|| Err(no_route(request))),
    };
    result.unwrap_or_else(|reply| reply)
}

/// The 404 for requests the emulator does not serve.
pub fn no_route(request: &Request) -> Reply {
    Reply::error(
        404,
        &format!(
            "github-emulator: no route for {} {}",
            request.method, request.path
        ),
    )
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn require_app(caller: &Caller) -> Result<(), Reply> {
    match caller {
        Caller::App => Ok(()),
        Caller::Rejected(message) => Err(Reply::error(401, message)),
        _ => Err(Reply::error(401, DECODE_FAILED)),
    }
}

/// The installation the caller's token belongs to; suspended installations answer 403.
pub(crate) fn token_installation<'s>(
    store: &'s Store,
    caller: &Caller,
) -> Result<&'s Installation, Reply> {
    let installation = match caller {
        Caller::Installation(id) => store.installation(*id),
        Caller::Anonymous => return Err(Reply::error(401, "Requires authentication")),
        Caller::Rejected(message) => return Err(Reply::error(401, message)),
        Caller::App
        | Caller::User(_)
        | Caller::Provider(_)
        | Caller::Expired
        | Caller::OAuthClient => None,
    }
    .ok_or_else(|| Reply::error(401, "Bad credentials"))?;
    if installation.suspended_at.is_some() {
        return Err(suspended());
    }
    Ok(installation)
}

fn suspended() -> Reply {
    Reply::error(403, "This installation has been suspended")
}

fn find_installation<'s>(store: &'s Store, id: &str) -> Result<&'s Installation, Reply> {
    id.parse()
        .ok()
        .and_then(|id| store.installation(id))
        .ok_or_else(Reply::not_found)
}

/// The permissions the installation granted the App: `members`, `organization_administration`
/// and `administration` as its access state says (`access/`), the others always `read`.
fn permissions(inst: &Installation) -> Value {
    let granted = &inst.access.permissions;
    let mut permissions = json!({
        "contents": "read",
        "issues": "read",
        "metadata": "read",
        "pull_requests": "read",
    });
    for (name, level) in [
        ("administration", &granted.administration),
        ("members", &granted.members),
        (
            "organization_administration",
            &granted.organization_administration,
        ),
    ] {
        if let Some(level) = level {
            permissions[name] = json!(level);
        }
    }
    permissions
}

pub(crate) fn avatar_url(account_id: u64) -> String {
    format!("https://avatars.githubusercontent.com/u/{account_id}?v=4")
}

pub(crate) fn node_id(prefix: &str, id: u64) -> String {
    format!("{prefix}_emu{id}")
}

fn account_type(account: &Account) -> &'static str {
    match account.kind {
        AccountType::Organization => "Organization",
        AccountType::User => "User",
    }
}

/// The short account object embedded in installations and repositories.
pub(crate) fn account_summary(em: &Emulator, account: &Account) -> Value {
    json!({
        "login": account.login,
        "id": account.id,
        "node_id": node_id(if account.kind == AccountType::User { "U" } else { "O" }, account.id),
        "type": account_type(account),
        "avatar_url": avatar_url(account.id),
        "html_url": format!("https://github.com/{}", account.login),
        "url": format!("{}/users/{}", em.base_url, account.login),
        "site_admin": false,
    })
}

pub fn installation_json(em: &Emulator, inst: &Installation) -> Value {
    let html_url = match inst.account.kind {
        AccountType::Organization => format!(
            "https://github.com/organizations/{}/settings/installations/{}",
            inst.account.login, inst.id
        ),
        AccountType::User => format!("https://github.com/settings/installations/{}", inst.id),
    };
    json!({
        "id": inst.id,
        "account": account_summary(em, &inst.account),
        "repository_selection": inst.repository_selection,
        "access_tokens_url": format!("{}/app/installations/{}/access_tokens", em.base_url, inst.id),
        "repositories_url": format!("{}/installation/repositories", em.base_url),
        "html_url": html_url,
        "app_id": em.app_id_json(),
        "app_slug": em.slug,
        "target_id": inst.account.id,
        "target_type": account_type(&inst.account),
        "permissions": permissions(inst),
        "events": [
            "branch_protection_rule", "installation_repositories", "member", "membership",
            "organization", "push", "repository", "repository_ruleset", "team",
        ],
        "created_at": timestamp(inst.created_at),
        "updated_at": timestamp(inst.updated_at),
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_at": inst.suspended_at.map(timestamp),
        "suspended_by": inst.suspended_at.map(|_| json!({
            "login": "emulator-admin", "id": 1, "type": "User",
        })),
    })
}

fn get_installation(em: &Emulator, caller: &Caller, id: &str) -> Result<Reply, Reply> {
    require_app(caller)?;
    let store = em.store();
    let inst = find_installation(&store, id)?;
    Ok(Reply::json(200, &installation_json(em, inst)))
}

fn create_token(em: &Emulator, caller: &Caller, id: &str) -> Result<Reply, Reply> {
    require_app(caller)?;
    let mut store = em.store();
    let inst = find_installation(&store, id)?;
    if inst.suspended_at.is_some() {
        return Err(suspended());
    }
    let (inst_id, selection) = (inst.id, inst.repository_selection.clone());
    let permissions = permissions(inst);
    let (token, expires_at) = store.issue_token(inst_id, Utc::now());
    Ok(Reply::json(
        201,
        &json!({
            "token": token,
            "expires_at": timestamp(expires_at),
            "permissions": permissions,
            "repository_selection": selection,
        }),
    ))
}

pub(crate) fn repository_json(em: &Emulator, inst: &Installation, repo: &Repo) -> Value {
    let repo = inst.repo_details(repo);
    // Fixed, distinct timestamps: 2020-01-01 plus one minute per repository number.
    let epoch = DateTime::<Utc>::from_timestamp(1_577_836_800, 0).expect("valid timestamp");
    let created = epoch + Duration::minutes((repo.id % 1_000_000) as i64);
    let updated = created + Duration::days(365);
    let full_name = format!("{}/{}", inst.account.login, repo.name);
    json!({
        "id": repo.id,
        "node_id": node_id("R", repo.id),
        "name": repo.name,
        "full_name": full_name,
        "private": repo.private,
        "owner": account_summary(em, &inst.account),
        "html_url": format!("https://github.com/{full_name}"),
        "description": repo.description,
        "fork": repo.fork,
        "url": format!("{}/repos/{full_name}", em.base_url),
        "clone_url": format!("{}/{full_name}.git", em.base_url),
        "default_branch": repo.default_branch,
        "archived": repo.archived,
        "disabled": false,
        "visibility": if repo.private { "private" } else { "public" },
        "pushed_at": timestamp(updated),
        "created_at": timestamp(created),
        "updated_at": timestamp(updated),
        "size": repo.size,
        "language": repo.language,
    })
}

fn list_repositories(em: &Emulator, caller: &Caller, request: &Request) -> Result<Reply, Reply> {
    let store = em.store();
    let inst = token_installation(&store, caller)?;
    let page = Page::from_query(
        request.query_param("per_page").as_deref(),
        request.query_param("page").as_deref(),
    );
    let total = inst.repos().len();
    let repositories: Vec<Value> = inst.repos()[page.range(total)]
        .iter()
        .map(|repo| repository_json(em, inst, repo))
        .collect();
    let mut reply = Reply::json(
        200,
        &json!({
            "total_count": total,
            "repository_selection": inst.repository_selection,
            "repositories": repositories,
        }),
    );
    let endpoint = format!("{}/installation/repositories", em.base_url);
    if let Some(link) = page.link_header(&endpoint, total) {
        reply.set_header("link", link);
    }
    Ok(reply)
}

fn get_account(
    em: &Emulator,
    caller: &Caller,
    login: &str,
    orgs_only: bool,
) -> Result<Reply, Reply> {
    let store = em.store();
    let installation = token_installation(&store, caller)?;
    let account = &installation.account;
    if !account.login.eq_ignore_ascii_case(login)
        || (orgs_only && account.kind != AccountType::Organization)
    {
        return Err(Reply::not_found());
    }
    let mut body = account_summary(em, account);
    body["name"] = json!(account.name);
    body["description"] = json!(account.description);
    if orgs_only {
        crate::access::add_org_settings(&mut body, installation);
    }
    Ok(Reply::json(200, &body))
}

/// `setup_url` with extra query parameters appended.
fn setup_link(setup_url: &Url, params: &[(&str, &str)]) -> String {
    let mut url = setup_url.clone();
    url.query_pairs_mut().extend_pairs(params);
    url.into()
}

fn escape_html(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(text)
}

/// `GET /user/installations`: the installations of this App the OAuth user can access (one
/// page: the emulator's users see few).
fn user_installations(em: &Emulator) -> Reply {
    let store = em.store();
    let allowed = store
        .oauth
        .as_ref()
        .and_then(|o| o.user.installations.clone());
    let visible: Vec<Value> = store
        .installations()
        .filter(|inst| allowed.as_ref().is_none_or(|ids| ids.contains(&inst.id)))
        .map(|inst| installation_json(em, inst))
        .collect();
    Reply::json(
        200,
        &json!({ "total_count": visible.len(), "installations": visible }),
    )
}

/// `POST /login/oauth/access_token` with `client_id`, `client_secret` and `code` (form body or
/// query, as GitHub accepts). Like GitHub, a refused exchange answers 200 with an `error`.
fn exchange_code(em: &Emulator, request: &Request) -> Reply {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(request.query.as_bytes())
        .into_owned()
        .chain(url::form_urlencoded::parse(&request.body).into_owned())
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    match em.store().redeem_code(
        get("client_id"),
        get("client_secret"),
        get("code"),
        Utc::now(),
    ) {
        Ok(token) => Reply::json(
            200,
            &json!({ "access_token": token, "token_type": "bearer", "scope": "" }),
        ),
        Err(error) => Reply::json(200, &json!({ "error": error })),
    }
}

fn install_page(em: &Emulator, request: &Request, slug: &str) -> Result<Reply, Reply> {
    if slug != em.slug {
        return Err(Reply::not_found());
    }
    let state = request.query_param("state").unwrap_or_default();
    let mut store = em.store();
    // Each link carries its own one-time code when OAuth during installation is on.
    let codes: Vec<Option<String>> = (0..=store.installations().count())
        .map(|_| store.issue_code(Utc::now()))
        .collect();
    let setup_url = store.setup_url.as_ref().ok_or_else(|| {
        Reply::error(
            500,
            "github-emulator: no setup URL configured; start with --setup-url or PUT /_emulator/setup-url",
        )
    })?;
    let with_code = |mut params: Vec<(&'static str, String)>, code: &Option<String>| {
        if let Some(code) = code {
            params.push(("code", code.clone()));
        }
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        setup_link(setup_url, &pairs)
    };
    let install_link = |id: u64, code: &Option<String>| {
        with_code(
            vec![
                ("installation_id", id.to_string()),
                ("setup_action", "install".into()),
                ("state", state.clone()),
            ],
            code,
        )
    };
    if let Some(target) = request.query_param("target") {
        let inst = find_installation(&store, &target).map_err(|_| {
            Reply::error(
                404,
                &format!("github-emulator: no installation {target} to install"),
            )
        })?;
        return Ok(Reply::redirect(&install_link(inst.id, &codes[0])));
    }
    let items: String = store
        .installations()
        .zip(codes.iter().skip(1))
        .map(|(inst, code)| {
            format!(
                "<li><a href=\"{}\">Install on {}</a></li>\n",
                escape_html(&install_link(inst.id, code)),
                escape_html(&inst.account.login)
            )
        })
        .collect();
    let request_link = with_code(
        vec![("setup_action", "request".into()), ("state", state.clone())],
        &codes[0],
    );
    let slug = escape_html(&em.slug);
    Ok(Reply::html(
        200,
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Install {slug}</title></head>\n\
             <body><h1>Install {slug}</h1>\n<ul>\n{items}</ul>\n\
             <p><a href=\"{}\">Request approval from an owner</a></p>\n</body></html>\n",
            escape_html(&request_link)
        ),
    ))
}
