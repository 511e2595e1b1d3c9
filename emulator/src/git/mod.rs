//! Real git over smart HTTP (protocol v0/v1) for every repository the emulator lists, served
//! from real bare repositories that the `git` binary makes and reads (`repos.rs`), so backups
//! that speak the protocol themselves can be tested end to end and restores checked with `git`.
//!
//! | Service | Listed as | Repository URL (`{repo url}`) |
//! | --- | --- | --- |
//! | GitHub | `clone_url` | `{emulator}/{owner}/{repo}.git` (also without `.git`) |
//! | GitLab | `http_url_to_repo` | `{emulator}/gitlab/{instance}/{path_with_namespace}.git` (also without `.git`) |
//! | Azure DevOps | `remoteUrl` (no user info) | `{emulator}/azure/{org}/{project}/_git/{repo}` (segments percent-encoded) |
//!
//! Names match case-insensitively; an Azure DevOps project or repository may also be named by
//! its id.
//!
//! | Method and path | Answer |
//! | --- | --- |
//! | `GET {repo url}/info/refs?service=git-upload-pack` | `200`, `application/x-git-upload-pack-advertisement`: pkt-line `# service=git-upload-pack`, flush, then `git upload-pack --stateless-rpc --advertise-refs` |
//! | `POST {repo url}/git-upload-pack` | `application/x-git-upload-pack-request` body (`content-encoding: gzip` accepted) piped to `git upload-pack --stateless-rpc`; `200`, `application/x-git-upload-pack-result`, the output streamed (chunked) as git writes it |
//! | `GET {repo url}/info/refs` without `service`, or for `git-receive-pack`; `POST {repo url}/git-receive-pack` | `403`: no dumb protocol, no pushes |
//!
//! Always protocol v0: a `Git-Protocol: version=2` header is ignored (git falls back to v0 when
//! the advertisement starts with `# service=`). Another request `content-type` on the POST
//! answers `415`, a body that does not decompress `400`.
//!
//! Credentials come first (`401` before any lookup), then the repository (`404` when unknown
//! or not the caller's). Credentials are required even for public repositories.
//!
//! | Service | Credential | Refusals |
//! | --- | --- | --- |
//! | GitHub | `Authorization: Basic base64(x-access-token:<installation token>)` (any user name; or the token as user name with an empty or `x-oauth-basic` password), or `token <t>` / `Bearer <t>` | none, invalid, expired, App JWT or user token → `401` with `WWW-Authenticate: Basic realm="GitHub"`; suspended installation → `403`; a repository outside the token's installation, or unknown → `404` `Repository not found.` |
//! | GitLab | `Authorization: Basic base64(oauth2:<access token>)` of that instance | none, unknown, expired, revoked, another user name → `401` with `WWW-Authenticate: Basic realm="GitLab"`; a token with neither `read_repository` nor `api` → `403`; a project in no group the user belongs to (any access level, as the API listing), or unknown → `404` |
//! | Azure DevOps | `Authorization: Bearer <Microsoft access token>` | none, unknown, expired, revoked, Basic → `401` `TF400813` with `WWW-Authenticate: Bearer`; an organization the user is not a member of, unknown project or repository → `404` `TF401019` |
//!
//! Like Azure DevOps, the Azure DevOps routes refuse an upload-pack POST whose first `want`
//! line asks for neither `multi_ack` nor `multi_ack_detailed`: HTTP `400`, `text/plain`, naming
//! the missing capability (before git runs).
//!
//! Every git request goes through the same pipeline as the APIs (`server.rs`): the request log
//! (`auth` `installation_token` or `bearer` …), fault rules by path prefix (including
//! `truncate_after_bytes`, see `faults.rs`) and the credential ledger (the Basic password is
//! the credential; `x-access-token` and `oauth2` are not secrets).
//!
//! Bare repositories are created lazily, on the first git request or admin call for them (see
//! `repos.rs` for their initial content); the admin API (`admin.rs`, under `/_emulator/git/`)
//! reads their refs and adds commits, branches, tags and forced updates.
//!
//! Repositories under a key prefix registered with `POST /_emulator/git/empty` (scale fixtures
//! of thousands) start empty instead: no refs, and until an admin call changes them no
//! directory and no git process per advertisement, the cached advertisement of one shared
//! empty repository being served (see `repos.rs`). Credentials, 404s, fault rules, the request
//! log and the ledger apply to them exactly as to the others; only the content differs.

mod admin;
mod protocol;
mod repos;

use std::borrow::Cow;

pub use admin::route as admin_route;
pub use repos::Repos;

use crate::http::{percent_decode, Reply, Request};
use crate::server::{Caller, Emulator};
use crate::state::{Installation, Store};

/// `content-type` of the upload-pack request body.
const REQUEST_TYPE: &str = "application/x-git-upload-pack-request";

/// The repository a git URL names, as written in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    GitHub {
        owner: String,
        repo: String,
    },
    GitLab {
        instance: String,
        path: String,
    },
    Azure {
        org: String,
        project: String,
        repo: String,
    },
}

/// What is asked of the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `…/info/refs`.
    InfoRefs,
    /// `…/git-upload-pack`.
    UploadPack,
    /// `…/git-receive-pack`.
    ReceivePack,
}

/// A request for git's smart HTTP protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRequest {
    pub host: Host,
    pub endpoint: Endpoint,
}

impl GitRequest {
    /// The git request a path makes, if it is one (see the module header for the URL forms).
    pub fn parse(path: &str) -> Option<GitRequest> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let (endpoint, base) = match segments.as_slice() {
            [base @ .., "info", "refs"] => (Endpoint::InfoRefs, base),
            [base @ .., "git-upload-pack"] => (Endpoint::UploadPack, base),
            [base @ .., "git-receive-pack"] => (Endpoint::ReceivePack, base),
            _ => return None,
        };
        if base.iter().any(|s| s.is_empty()) {
            return None;
        }
        let decoded: Vec<String> = base.iter().map(|s| percent_decode(s)).collect();
        let without_git = |name: &str| name.strip_suffix(".git").unwrap_or(name).to_string();
        let host = match base {
            ["gitlab", instance, first, _, ..]
                if crate::gitlab::valid_instance(instance) && !["api", "oauth"].contains(first) =>
            {
                Host::GitLab {
                    instance: instance.to_string(),
                    path: without_git(&decoded[2..].join("/")),
                }
            }
            ["azure", _, _, "_git", _] => Host::Azure {
                org: decoded[1].clone(),
                project: decoded[2].clone(),
                repo: decoded[4].clone(),
            },
            [first, _] if !RESERVED.contains(first) => Host::GitHub {
                owner: decoded[0].clone(),
                repo: without_git(&decoded[1]),
            },
            _ => return None,
        };
        Some(GitRequest { host, endpoint })
    }
}

/// The user name and password of a `Basic` `Authorization` header, if it is one that decodes.
pub fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let (scheme, encoded) = header?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = crate::oauth::decode_base64(encoded.trim())?;
    let pair = String::from_utf8(decoded).ok()?;
    let (user, password) = pair.split_once(':').unwrap_or((&pair, ""));
    Some((user.to_string(), password.to_string()))
}

/// First path segments of the other services, never a GitHub owner here.
const RESERVED: [&str; 6] = ["gitlab", "azure", "vssps", "microsoft", "sink", "_emulator"];

/// Which service's rules a repository follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    GitHub,
    GitLab,
    Azure,
}

/// A listed repository: where it is stored and what it starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub flavor: Flavor,
    /// `github/{owner}/{repo}`, `gitlab/{instance}/{path}`, `azure/{org}/{project}/{repo}`,
    /// lowercase: the storage key, which also seeds the initial content.
    pub key: String,
    /// The name people know it by, as listed (`acme/repo`, `group/sub/project`, …).
    pub display: String,
    pub default_branch: String,
}

fn located(flavor: Flavor, parts: &[&str], display: String, default_branch: &str) -> Located {
    let prefix = match flavor {
        Flavor::GitHub => "github",
        Flavor::GitLab => "gitlab",
        Flavor::Azure => "azure",
    };
    let mut key = prefix.to_string();
    for part in parts {
        key.push('/');
        key.push_str(&part.to_lowercase());
    }
    Located {
        flavor,
        key,
        display,
        default_branch: default_branch.to_string(),
    }
}

/// One of an installation's repositories, by owner and name.
fn github_repo(inst: &Installation, owner: &str, name: &str) -> Option<Located> {
    if !inst.account.login.eq_ignore_ascii_case(owner) {
        return None;
    }
    let details = inst.repo_named(name)?;
    let login = &inst.account.login;
    Some(located(
        Flavor::GitHub,
        &[login, &details.name],
        format!("{login}/{}", details.name),
        &details.default_branch,
    ))
}

/// A project of a GitLab instance by `path_with_namespace`, and its group.
fn gitlab_project(
    inst: &crate::gitlab::Instance,
    instance: &str,
    path: &str,
) -> Option<(Located, u64)> {
    inst.projects().find_map(|p| {
        // Cheap first (thousands of projects): the path must end with `/{project path}`,
        // compared from the end, where generated names differ.
        let tail = path.len().checked_sub(p.path.len() + 1)?;
        let ends_with_project = path.as_bytes()[tail] == b'/'
            && path
                .bytes()
                .rev()
                .zip(p.path.bytes().rev())
                .all(|(a, b)| a.eq_ignore_ascii_case(&b));
        if !ends_with_project {
            return None;
        }
        let full = format!("{}/{}", inst.full_path(p.group_id), p.path);
        full.eq_ignore_ascii_case(path).then(|| {
            let parts: Vec<&str> = std::iter::once(instance).chain(full.split('/')).collect();
            (
                located(Flavor::GitLab, &parts, full.clone(), &p.default_branch),
                p.group_id,
            )
        })
    })
}

/// An Azure DevOps repository by organization, project (name or id) and repository (name or id),
/// and the organization's members.
fn azure_repo<'s>(
    store: &'s Store,
    org: &str,
    project: &str,
    repo: &str,
) -> Option<(Located, &'s std::collections::BTreeSet<String>)> {
    let org = store.azure.org(org)?;
    let project = org.project(project)?;
    let repo = project
        .repos
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(repo) || r.id.eq_ignore_ascii_case(repo))?;
    let display = format!("{}/{}/{}", org.name, project.name, repo.name);
    let parts = [org.name.as_str(), project.name.as_str(), repo.name.as_str()];
    Some((
        located(Flavor::Azure, &parts, display, "main"),
        &org.members,
    ))
}

/// The listed repository `host` names, whoever asks (the admin API).
pub fn find(store: &Store, host: &Host) -> Option<Located> {
    match host {
        Host::GitHub { owner, repo } => store
            .installations()
            .find_map(|inst| github_repo(inst, owner, repo)),
        Host::GitLab { instance, path } => store
            .gitlab
            .get(instance)
            .and_then(|inst| gitlab_project(inst, instance, path))
            .map(|(found, _)| found),
        Host::Azure { org, project, repo } => {
            azure_repo(store, org, project, repo).map(|(found, _)| found)
        }
    }
}

fn plain(status: u16, message: &str) -> Reply {
    Reply::text(status, &format!("{message}\n"))
}

fn challenge(mut reply: Reply, value: &str) -> Reply {
    reply.set_header("www-authenticate", value);
    reply
}

fn github_unauthorized() -> Reply {
    challenge(
        plain(
            401,
            "Invalid username or token. Password authentication is not supported for Git operations.",
        ),
        "Basic realm=\"GitHub\"",
    )
}

fn gitlab_unauthorized() -> Reply {
    challenge(
        plain(
            401,
            "HTTP Basic: Access denied. The provided password or token is incorrect.",
        ),
        "Basic realm=\"GitLab\"",
    )
}

fn azure_unauthorized(user: &str) -> Reply {
    challenge(
        plain(
            401,
            &format!("TF400813: The user '{user}' is not authorized to access this resource."),
        ),
        "Bearer",
    )
}

/// The repository a caller may read, or the refusal (see the module header).
fn authorize(em: &Emulator, host: &Host, caller: &Caller) -> Result<Located, Reply> {
    let store = em.store();
    match host {
        Host::GitHub { owner, repo } => {
            let Caller::Installation(id) = caller else {
                return Err(github_unauthorized());
            };
            let inst = store.installation(*id).ok_or_else(github_unauthorized)?;
            if inst.suspended_at.is_some() {
                return Err(plain(403, "This installation has been suspended"));
            }
            github_repo(inst, owner, repo).ok_or_else(|| plain(404, "Repository not found."))
        }
        Host::GitLab { instance, path } => {
            let holder = match caller {
                Caller::Provider(holder) => holder,
                _ => return Err(gitlab_unauthorized()),
            };
            let inst = store.gitlab.get(instance).ok_or_else(gitlab_unauthorized)?;
            let user = holder
                .user_id
                .parse()
                .ok()
                .and_then(|id| inst.user(id))
                .ok_or_else(gitlab_unauthorized)?;
            if !holder
                .scopes
                .iter()
                .any(|s| s == "read_repository" || s == "api")
            {
                return Err(plain(
                    403,
                    "The OAuth token needs the read_repository or api scope to read repositories.",
                ));
            }
            gitlab_project(inst, instance, path)
                .filter(|(_, group)| inst.access_level(*group, user.id).is_some())
                .map(|(found, _)| found)
                .ok_or_else(|| {
                    plain(
                        404,
                        "The project you were looking for could not be found or you don't have \
                         permission to view it.",
                    )
                })
        }
        Host::Azure { org, project, repo } => {
            let Caller::Provider(holder) = caller else {
                return Err(azure_unauthorized(""));
            };
            let user = store
                .azure
                .user(&holder.user_id)
                .ok_or_else(|| azure_unauthorized(&holder.user_id))?;
            azure_repo(&store, org, project, repo)
                .filter(|(_, members)| members.contains(&user.id))
                .map(|(found, _)| found)
                .ok_or_else(|| {
                    plain(
                        404,
                        &format!(
                            "TF401019: The Git repository with name or identifier {repo} does not \
                             exist or you do not have permissions for the operation you are \
                             attempting."
                        ),
                    )
                })
        }
    }
}

/// Answers a git smart HTTP request for an already identified caller.
pub fn serve(em: &Emulator, request: &Request, git: &GitRequest, caller: &Caller) -> Reply {
    let found = match authorize(em, &git.host, caller) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let service = request.query_param("service");
    let mut reply = match (request.method.as_str(), git.endpoint) {
        ("GET", Endpoint::InfoRefs) => match service.as_deref() {
            Some("git-upload-pack") => advertise(em, &found),
            Some("git-receive-pack") => push_refused(),
            _ => plain(
                403,
                "github-emulator: the dumb HTTP protocol is not served; ask for \
                 ?service=git-upload-pack",
            ),
        },
        ("POST", Endpoint::UploadPack) => upload_pack(em, request, &found),
        ("POST", Endpoint::ReceivePack) => push_refused(),
        _ => crate::github::no_route(request),
    };
    reply.set_header("cache-control", "no-cache, max-age=0, must-revalidate");
    reply
}

fn push_refused() -> Reply {
    plain(403, "github-emulator: pushing is not supported")
}

fn server_error(message: &str) -> Reply {
    eprintln!("github-emulator: git: {message}");
    plain(500, &format!("github-emulator: {message}"))
}

fn advertise(em: &Emulator, found: &Located) -> Reply {
    match em.git().advertisement(found) {
        Ok(refs) => {
            let mut body = protocol::pkt_line("# service=git-upload-pack\n");
            body.extend_from_slice(protocol::FLUSH);
            body.extend_from_slice(&refs);
            Reply::new(200, "application/x-git-upload-pack-advertisement", body)
        }
        Err(message) => server_error(&message),
    }
}

fn upload_pack(em: &Emulator, request: &Request, found: &Located) -> Reply {
    let media = request
        .header("content-type")
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media.is_some_and(|m| m.eq_ignore_ascii_case(REQUEST_TYPE)) {
        return plain(
            415,
            &format!("github-emulator: git-upload-pack takes content-type {REQUEST_TYPE}"),
        );
    }
    let body: Cow<'_, [u8]> = match request.header("content-encoding").map(str::trim) {
        None | Some("") => Cow::Borrowed(&request.body),
        Some(e) if e.eq_ignore_ascii_case("identity") => Cow::Borrowed(&request.body),
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => {
            match protocol::gunzip(&request.body) {
                Ok(body) => Cow::Owned(body),
                Err(e) => return plain(400, &format!("github-emulator: bad gzip body: {e}")),
            }
        }
        Some(other) => {
            return plain(
                415,
                &format!("github-emulator: unsupported content-encoding {other}"),
            )
        }
    };
    if found.flavor == Flavor::Azure {
        if let Some(caps) = protocol::first_want_capabilities(&body) {
            if !caps
                .iter()
                .any(|c| c == "multi_ack" || c == "multi_ack_detailed")
            {
                return plain(
                    400,
                    "github-emulator: Azure DevOps requires the multi_ack or multi_ack_detailed \
                     capability on the first want line",
                );
            }
        }
    }
    match em.git().upload_pack(found, body.into_owned()) {
        Ok(stream) => Reply::streamed(200, "application/x-git-upload-pack-result", stream),
        Err(message) => server_error(&message),
    }
}

#[cfg(test)]
mod tests;
