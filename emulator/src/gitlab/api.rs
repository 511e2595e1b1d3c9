//! GitLab's OAuth wording (Doorkeeper's) and the REST API v4 answers.

use std::collections::HashSet;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::state::{Group, Instance, Project, User, ACCESS_LEVELS};
use crate::http::{percent_decode, Reply, Request};
use crate::oauth::{AuthorizeProblem, GrantError, Issued, PageProblem, Provider, Realm};
use crate::pagination::{gitlab_link, Page, GITLAB_DEFAULT_PER_PAGE};
use crate::server::{Caller, Emulator};
use crate::state::Store;

/// Access token lifetime unless the admin API sets another (GitLab's default).
pub const DEFAULT_TOKEN_TTL: i64 = 7200;
/// The scopes an authorize request may ask for.
pub const SCOPES: [&str; 4] = ["api", "read_api", "read_user", "read_repository"];
/// Scopes that open the group and project endpoints.
pub(super) const API_SCOPES: [&str; 2] = ["api", "read_api"];
/// Scopes that open `GET /user`.
const USER_SCOPES: [&str; 3] = ["api", "read_api", "read_user"];

pub const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, \
     does not match the redirection URI used in the authorization request, or was issued to \
     another client.";
pub const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client \
     authentication included, or unsupported authentication method.";
pub const EXPIRED: &str = "Token is expired. You can either do re-authorization or token refresh.";
const INSUFFICIENT_SCOPE: &str =
    "The request requires higher privileges than provided by the access token.";

/// The OAuth provider of one instance.
pub struct GitLabOAuth<'a> {
    pub instance: &'a str,
}

impl Provider for GitLabOAuth<'_> {
    fn realm(&self) -> Realm {
        Realm::GitLab(self.instance.to_string())
    }

    fn instance(&self) -> &str {
        self.instance
    }

    fn check_scopes(&self, scopes: &[String]) -> Result<(), String> {
        if !scopes.is_empty() && scopes.iter().all(|s| SCOPES.contains(&s.as_str())) {
            Ok(())
        } else {
            Err("The requested scope is invalid, unknown, or malformed.".into())
        }
    }

    fn describe(&self, problem: &AuthorizeProblem) -> String {
        match problem {
            AuthorizeProblem::UnsupportedResponseType(_) => {
                "The authorization server does not support this response type.".into()
            }
            AuthorizeProblem::MissingChallenge => {
                "Missing required parameter: code_challenge.".into()
            }
            AuthorizeProblem::UnsupportedChallengeMethod(_) => {
                "The code challenge method must be S256.".into()
            }
        }
    }

    fn page_message(&self, problem: &PageProblem) -> String {
        match problem {
            PageProblem::UnknownClient(_) => INVALID_CLIENT.into(),
            PageProblem::BadRedirectUri | PageProblem::UnregisteredRedirectUri(..) => {
                "The redirect URI included is not valid.".into()
            }
        }
    }

    fn sign_in(&self, store: &Store, requested: Option<&str>) -> Result<String, String> {
        let inst = store.gitlab.get(self.instance);
        let user = match requested {
            Some(id) => id
                .parse()
                .ok()
                .and_then(|id| inst?.user(id))
                .ok_or_else(|| {
                    format!(
                        "github-emulator: no user {id} on GitLab instance {}",
                        self.instance
                    )
                })?,
            None => inst.and_then(Instance::default_user).ok_or_else(|| {
                format!(
                    "github-emulator: GitLab instance {} has no users to sign in",
                    self.instance
                )
            })?,
        };
        Ok(user.id.to_string())
    }

    fn issues_refresh_token(&self, _scopes: &[String]) -> bool {
        true
    }

    fn grant_error(&self, error: &GrantError) -> (u16, &'static str, String) {
        match error {
            GrantError::UnknownClient(_) | GrantError::WrongSecret(_) => {
                (401, "invalid_client", INVALID_CLIENT.into())
            }
            GrantError::Missing(name) => (
                400,
                "invalid_request",
                format!("Missing required parameter: {name}."),
            ),
            GrantError::UnsupportedGrantType => (
                400,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.".into(),
            ),
            _ => (400, "invalid_grant", INVALID_GRANT.into()),
        }
    }

    fn error_body(&self, error: &str, description: &str) -> Value {
        json!({ "error": error, "error_description": description })
    }

    fn token_body(&self, issued: &Issued) -> Value {
        json!({
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "refresh_token": issued.refresh_token,
            "scope": issued.scopes.join(" "),
            "created_at": issued.created_at,
        })
    }
}

/// URLs of one instance on the emulator's origin.
pub(super) struct Site<'a> {
    /// `{emulator}/gitlab/{instance}`.
    base: String,
    inst: &'a Instance,
}

impl Site<'_> {
    pub(super) fn user_json(&self, user: &User) -> Value {
        json!({
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": "active",
            "locked": false,
            "avatar_url": format!("{}/uploads/-/system/user/avatar/{}/avatar.png", self.base, user.id),
            "web_url": format!("{}/{}", self.base, user.username),
            "created_at": timestamp(user.id),
            "public_email": null,
        })
    }

    fn group_json(&self, group: &Group) -> Value {
        let full_path = self.inst.full_path(group.id);
        json!({
            "id": group.id,
            "web_url": format!("{}/groups/{full_path}", self.base),
            "name": group.name,
            "path": group.path,
            "description": "",
            "visibility": group.visibility,
            "avatar_url": null,
            "full_name": self.inst.full_name(group.id),
            "full_path": full_path,
            "parent_id": group.parent_id,
            "created_at": timestamp(group.id),
            "require_two_factor_authentication": group.require_two_factor_authentication,
            "two_factor_grace_period": group.two_factor_grace_period,
        })
    }

    pub(super) fn project_json(&self, project: &Project) -> Value {
        let namespace = self.inst.group(project.group_id);
        let namespace_path = self.inst.full_path(project.group_id);
        let path_with_namespace = format!("{namespace_path}/{}", project.path);
        let web_url = format!("{}/{path_with_namespace}", self.base);
        let created = DateTime::<Utc>::from_timestamp(1_577_836_800, 0).expect("valid timestamp")
            + Duration::minutes(project.id as i64);
        let host = self.base.split('/').nth(2).unwrap_or("127.0.0.1");
        json!({
            "id": project.id,
            "description": null,
            "name": project.name,
            "name_with_namespace": format!("{} / {}", self.inst.full_name(project.group_id), project.name),
            "path": project.path,
            "path_with_namespace": path_with_namespace,
            "created_at": created.to_rfc3339_opts(SecondsFormat::Millis, true),
            "default_branch": project.default_branch,
            "visibility": project.visibility,
            "archived": project.archived,
            "empty_repo": false,
            "web_url": web_url,
            "http_url_to_repo": format!("{web_url}.git"),
            "ssh_url_to_repo": format!("git@{}:{path_with_namespace}.git", host.split(':').next().unwrap_or(host)),
            "avatar_url": null,
            "topics": [],
            "star_count": 0,
            "forks_count": 0,
            "last_activity_at": (created + Duration::days(30)).to_rfc3339_opts(SecondsFormat::Millis, true),
            "namespace": {
                "id": project.group_id,
                "name": namespace.map(|g| g.name.as_str()),
                "path": namespace.map(|g| g.path.as_str()),
                "kind": "group",
                "full_path": namespace_path,
                "parent_id": namespace.and_then(|g| g.parent_id),
                "avatar_url": null,
                "web_url": format!("{}/groups/{namespace_path}", self.base),
            },
        })
    }
}

/// Fixed, distinct timestamps: 2020-01-01 plus one hour per id.
pub(super) fn timestamp(id: u64) -> String {
    let epoch = DateTime::<Utc>::from_timestamp(1_577_836_800, 0).expect("valid timestamp");
    (epoch + Duration::hours(id as i64)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn unauthorized() -> Reply {
    Reply::json(401, &json!({ "message": "401 Unauthorized" }))
}

fn oauth_error(status: u16, error: &str, description: &str, scope: Option<&str>) -> Reply {
    let mut body = json!({ "error": error, "error_description": description });
    let mut challenge = format!(
        "Bearer realm=\"Protected by OAuth 2.0\", error=\"{error}\", error_description=\"{description}\""
    );
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
        challenge.push_str(&format!(", scope=\"{scope}\""));
    }
    let mut reply = Reply::json(status, &body);
    reply.set_header("www-authenticate", challenge);
    reply
}

fn group_not_found() -> Reply {
    Reply::json(404, &json!({ "message": "404 Group Not Found" }))
}

/// Grape's answer to a bad parameter value.
fn bad_param(message: String) -> Reply {
    Reply::json(400, &json!({ "error": message }))
}

/// The instance and the token's user, if the token carries one of `scopes`.
pub(super) fn authenticate<'s>(
    store: &'s Store,
    instance: &str,
    caller: &Caller,
    scopes: &[&str],
) -> Result<(&'s Instance, &'s User), Reply> {
    let holder = match caller {
        Caller::Provider(holder) => holder,
        Caller::Expired => return Err(oauth_error(401, "invalid_token", EXPIRED, None)),
        _ => return Err(unauthorized()),
    };
    let inst = store.gitlab.get(instance).ok_or_else(unauthorized)?;
    let user = holder
        .user_id
        .parse()
        .ok()
        .and_then(|id| inst.user(id))
        .ok_or_else(unauthorized)?;
    if !holder.scopes.iter().any(|s| scopes.contains(&s.as_str())) {
        let needed = scopes.join(" ");
        return Err(oauth_error(
            403,
            "insufficient_scope",
            INSUFFICIENT_SCOPE,
            Some(&needed),
        ));
    }
    Ok((inst, user))
}

/// A boolean parameter as Grape reads it (absent: `None`).
fn flag(request: &Request, name: &str) -> Result<Option<bool>, Reply> {
    match request.query_param(name).as_deref() {
        None | Some("") => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(_) => Err(bad_param(format!("{name} is invalid"))),
    }
}

fn number(request: &Request, name: &str) -> Result<Option<u64>, Reply> {
    request
        .query_param(name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .map_err(|_| bad_param(format!("{name} is invalid")))
        })
        .transpose()
}

/// One of `allowed` (absent: `default`).
fn choice<'a>(
    request: &Request,
    name: &str,
    allowed: &[&'a str],
    default: &'a str,
) -> Result<&'a str, Reply> {
    match request.query_param(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(value) => allowed
            .iter()
            .find(|a| **a == value)
            .copied()
            .ok_or_else(|| bad_param(format!("{name} does not have a valid value"))),
    }
}

pub(super) fn endpoint(em: &Emulator, instance: &str, path: &str) -> String {
    format!("{}/gitlab/{instance}/api/v4/{path}", em.base_url)
}

pub(super) fn site<'a>(em: &Emulator, instance: &str, inst: &'a Instance) -> Site<'a> {
    Site {
        base: format!("{}/gitlab/{instance}", em.base_url),
        inst,
    }
}

/// `GET /api/v4/user`.
pub fn current_user(em: &Emulator, instance: &str, caller: &Caller) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, user) = authenticate(&store, instance, caller, &USER_SCOPES)?;
    Ok(Reply::json(200, &site(em, instance, inst).user_json(user)))
}

/// `GET /api/v4/groups`: the user's groups, offset-paginated.
pub fn list_groups(
    em: &Emulator,
    request: &Request,
    instance: &str,
    caller: &Caller,
) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, user) = authenticate(&store, instance, caller, &API_SCOPES)?;
    let top_level_only = flag(request, "top_level_only")?.unwrap_or(false);
    let min_level = match number(request, "min_access_level")? {
        None => 0,
        Some(level) if ACCESS_LEVELS.contains(&(level as u32)) => level as u32,
        Some(_) => {
            return Err(bad_param(
                "min_access_level does not have a valid value".into(),
            ))
        }
    };
    let order_by = choice(
        request,
        "order_by",
        &["name", "path", "id", "similarity"],
        "name",
    )?;
    let descending = choice(request, "sort", &["asc", "desc"], "asc")? == "desc";
    let search = request.query_param("search").map(|s| s.to_lowercase());
    let mut groups: Vec<&Group> = inst
        .groups()
        .filter(|g| {
            inst.access_level(g.id, user.id)
                .is_some_and(|l| l >= min_level)
        })
        .filter(|g| !top_level_only || g.parent_id.is_none())
        .filter(|g| {
            search.as_ref().is_none_or(|s| {
                g.name.to_lowercase().contains(s) || g.path.to_lowercase().contains(s)
            })
        })
        .collect();
    match order_by {
        "id" => groups.sort_by_key(|g| g.id),
        "path" => groups.sort_by_key(|g| (g.path.to_lowercase(), g.id)),
        _ => groups.sort_by_key(|g| (g.name.to_lowercase(), g.id)),
    }
    if descending {
        groups.reverse();
    }
    let site = site(em, instance, inst);
    Ok(offset_page(
        request,
        &endpoint(em, instance, "groups"),
        &groups,
        |g| site.group_json(g),
    ))
}

/// The group `key` names (id or URL-encoded full path), if the user may see it.
pub(super) fn visible_group<'s>(
    inst: &'s Instance,
    user: &User,
    key: &str,
) -> Result<&'s Group, Reply> {
    inst.find_group(&percent_decode(key))
        .filter(|g| inst.access_level(g.id, user.id).is_some())
        .ok_or_else(group_not_found)
}

/// `GET /api/v4/groups/:id`.
pub fn get_group(
    em: &Emulator,
    instance: &str,
    caller: &Caller,
    key: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, user) = authenticate(&store, instance, caller, &API_SCOPES)?;
    let group = visible_group(inst, user, key)?;
    Ok(Reply::json(
        200,
        &site(em, instance, inst).group_json(group),
    ))
}

/// `GET /api/v4/groups/:id/projects`: offset or keyset pagination.
pub fn list_projects(
    em: &Emulator,
    request: &Request,
    instance: &str,
    caller: &Caller,
    key: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let (inst, user) = authenticate(&store, instance, caller, &API_SCOPES)?;
    let group = visible_group(inst, user, key)?;
    let include_subgroups = flag(request, "include_subgroups")?.unwrap_or(false);
    let archived = flag(request, "archived")?;
    let order_by = choice(
        request,
        "order_by",
        &[
            "id",
            "name",
            "path",
            "created_at",
            "updated_at",
            "last_activity_at",
            "similarity",
            "star_count",
        ],
        "created_at",
    )?;
    let descending = choice(request, "sort", &["asc", "desc"], "desc")? == "desc";
    let keyset = choice(request, "pagination", &["offset", "keyset"], "offset")? == "keyset";
    let (id_after, id_before) = (number(request, "id_after")?, number(request, "id_before")?);
    let search = request.query_param("search").map(|s| s.to_lowercase());
    let groups: HashSet<u64> = if include_subgroups {
        inst.subtree(group.id)
    } else {
        HashSet::from([group.id])
    };
    let mut projects: Vec<&Project> = inst
        .projects()
        .filter(|p| groups.contains(&p.group_id))
        .filter(|p| archived.is_none_or(|a| p.archived == a))
        .filter(|p| id_after.is_none_or(|after| p.id > after))
        .filter(|p| id_before.is_none_or(|before| p.id < before))
        .filter(|p| {
            search.as_ref().is_none_or(|s| {
                p.name.to_lowercase().contains(s) || p.path.to_lowercase().contains(s)
            })
        })
        .collect();
    match order_by {
        "name" => projects.sort_by_key(|p| (p.name.to_lowercase(), p.id)),
        "path" => projects.sort_by_key(|p| (p.path.to_lowercase(), p.id)),
        // Creation and activity follow the id in the emulator.
        _ => projects.sort_by_key(|p| p.id),
    }
    if descending {
        projects.reverse();
    }
    let site = site(em, instance, inst);
    let url = endpoint(em, instance, &format!("groups/{key}/projects"));
    if !keyset {
        return Ok(offset_page(request, &url, &projects, |p| {
            site.project_json(p)
        }));
    }
    if request.query_param("order_by").as_deref() != Some("id") {
        return Err(Reply::json(
            405,
            &json!({ "message": "Keyset pagination is not yet available for this type of request" }),
        ));
    }
    let per_page = Page::with_default(
        request.query_param("per_page").as_deref(),
        None,
        GITLAB_DEFAULT_PER_PAGE,
    )
    .per_page;
    let shown = &projects[..per_page.min(projects.len())];
    let items: Vec<Value> = shown.iter().map(|p| site.project_json(p)).collect();
    let mut reply = Reply::json(200, &json!(items));
    if let (true, Some(last)) = (projects.len() > per_page, shown.last()) {
        let cursor = if descending { "id_before" } else { "id_after" };
        let next = gitlab_link(&url, &request.query, &[(cursor, last.id.to_string())]);
        reply.set_header("link", format!("<{next}>; rel=\"next\""));
    }
    Ok(reply)
}

/// One offset page of `items` as JSON with GitLab's pagination headers.
pub(super) fn offset_page<T>(
    request: &Request,
    url: &str,
    items: &[T],
    render: impl Fn(&T) -> Value,
) -> Reply {
    let page = Page::with_default(
        request.query_param("per_page").as_deref(),
        request.query_param("page").as_deref(),
        GITLAB_DEFAULT_PER_PAGE,
    );
    let shown: Vec<Value> = items[page.range(items.len())].iter().map(render).collect();
    let mut reply = Reply::json(200, &json!(shown));
    for (name, value) in page.gitlab_headers(url, &request.query, items.len()) {
        reply.set_header(&name, value);
    }
    reply
}
