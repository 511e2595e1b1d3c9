//! The git part of the admin API, under `/_emulator/git/{key}` (see `admin.rs` for the table).
//!
//! `{key}` is `github/{owner}/{repo}`, `gitlab/{instance}/{path_with_namespace}` or
//! `azure/{org}/{project}/{repo}`, one URL path segment per part (percent-decoded, matched
//! case-insensitively like the git routes); a repository the emulator does not list answers
//! 404. Every route answers the repository's refs after the change, creating it first if
//! needed: `{"refs":{"refs/heads/main":"<oid>",…},"head":"refs/heads/main","path":"<bare
//! repository directory>"}` (`refs` as `git for-each-ref` lists them: annotated tags by their
//! tag object, no peeled entries, no `HEAD`). Branch names with a `/` are percent-encoded in
//! `DELETE …/branches/{name}`.
//!
//! `POST /_emulator/git/empty` `{"prefix"}` registers a key prefix (lowercased; it must start
//! with `github/`, `gitlab/` or `azure/`, else 400) of repositories that start empty (see
//! `repos.rs`) and answers every prefix registered so far, `{"prefixes":[…]}` (also what
//! `GET /_emulator/git/empty` answers). Prefixes last as long as the emulator: the suite shares
//! one across parallel tests, so they are only ever added.

use serde::Deserialize;
use serde_json::{json, Value};

use super::repos::{GitError, NewCommits};
use super::{find, Host};
use crate::http::{parse_body, parse_optional_body, percent_decode, Reply, Request};
use crate::server::Emulator;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptySpec {
    prefix: String,
}

/// Service parts a repository key starts with.
const KEY_STARTS: [&str; 3] = ["github/", "gitlab/", "azure/"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitsSpec {
    #[serde(default)]
    branch: Option<String>,
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    file_bytes: u64,
    #[serde(default)]
    incompressible: bool,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BranchSpec {
    name: String,
    #[serde(default)]
    from: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagSpec {
    name: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    annotated: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForcePushSpec {
    branch: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default = "one")]
    commits: u32,
    #[serde(default)]
    file_bytes: u64,
    #[serde(default)]
    incompressible: bool,
}

/// The operation a path names after the repository key.
enum Operation<'p> {
    Refs,
    Commits,
    Branches,
    DeleteBranch(&'p str),
    Tags,
    ForcePush,
}

/// Splits `rest` (after `/_emulator/git/`) into the repository and the operation.
fn parse<'p>(method: &str, rest: &[&'p str]) -> Option<(Host, String, Operation<'p>)> {
    let (key, operation) = match (method, rest) {
        ("GET", [key @ .., "refs"]) => (key, Operation::Refs),
        ("POST", [key @ .., "commits"]) => (key, Operation::Commits),
        ("POST", [key @ .., "branches"]) => (key, Operation::Branches),
        ("DELETE", [key @ .., "branches", name]) => (key, Operation::DeleteBranch(name)),
        ("POST", [key @ .., "tags"]) => (key, Operation::Tags),
        ("POST", [key @ .., "force-push"]) => (key, Operation::ForcePush),
        _ => return None,
    };
    let shown = key.join("/");
    let key: Vec<String> = key.iter().map(|s| percent_decode(s)).collect();
    let host = match key.as_slice() {
        [service, owner, repo] if service == "github" => Host::GitHub {
            owner: owner.clone(),
            repo: repo.clone(),
        },
        [service, instance, path @ ..]
            if service == "gitlab"
                && crate::gitlab::valid_instance(instance)
                && path.len() >= 2 =>
        {
            Host::GitLab {
                instance: instance.clone(),
                path: path.join("/"),
            }
        }
        [service, org, project, repo] if service == "azure" => Host::Azure {
            org: org.clone(),
            project: project.clone(),
            repo: repo.clone(),
        },
        _ => return None,
    };
    Some((host, shown, operation))
}

fn error(e: GitError) -> Reply {
    Reply::error(e.status, &format!("github-emulator: {}", e.message))
}

/// `POST /_emulator/git/empty`: registers a prefix of repositories that start empty.
fn add_empty_prefix(em: &Emulator, request: &Request) -> Result<Value, Reply> {
    let EmptySpec { prefix } = parse_body(request)?;
    let prefix = prefix.to_lowercase();
    if !KEY_STARTS.iter().any(|start| prefix.starts_with(start)) {
        return Err(Reply::error(
            400,
            &format!(
                "github-emulator: an empty prefix must start with github/, gitlab/ or azure/, \
                 not {prefix:?}"
            ),
        ));
    }
    Ok(json!({ "prefixes": em.git().add_empty_prefix(&prefix) }))
}

/// Answers `/_emulator/git/{rest}`.
pub fn route(em: &Emulator, request: &Request, rest: &[&str]) -> Reply {
    match (request.method.as_str(), rest) {
        ("POST", ["empty"]) => {
            return add_empty_prefix(em, request)
                .map_or_else(|reply| reply, |answer| Reply::json(200, &answer))
        }
        ("GET", ["empty"]) => {
            return Reply::json(200, &json!({ "prefixes": em.git().empty_prefixes() }))
        }
        _ => {}
    }
    let Some((host, shown, operation)) = parse(&request.method, rest) else {
        return crate::github::no_route(request);
    };
    let Some(found) = find(&em.store(), &host) else {
        return Reply::error(
            404,
            &format!("github-emulator: no listed repository {shown}"),
        );
    };
    let repos = em.git();
    let result: Result<Value, Reply> = match operation {
        Operation::Refs => repos.refs(&found).map_err(error),
        Operation::Commits => parse_optional_body::<CommitsSpec>(request).and_then(|spec| {
            let branch = spec.branch.unwrap_or_else(|| found.default_branch.clone());
            let commits = NewCommits {
                count: spec.count,
                file_bytes: spec.file_bytes,
                incompressible: spec.incompressible,
            };
            repos.add_commits(&found, &branch, &commits).map_err(error)
        }),
        Operation::Branches => parse_optional_body::<BranchSpec>(request).and_then(|spec| {
            repos
                .create_branch(&found, &spec.name, spec.from.as_deref())
                .map_err(error)
        }),
        Operation::DeleteBranch(name) => repos
            .delete_branch(&found, &percent_decode(name))
            .map_err(error),
        Operation::Tags => parse_optional_body::<TagSpec>(request).and_then(|spec| {
            repos
                .create_tag(&found, &spec.name, spec.target.as_deref(), spec.annotated)
                .map_err(error)
        }),
        Operation::ForcePush => parse_optional_body::<ForcePushSpec>(request).and_then(|spec| {
            let commits = NewCommits {
                count: spec.commits,
                file_bytes: spec.file_bytes,
                incompressible: spec.incompressible,
            };
            repos
                .force_push(&found, &spec.branch, spec.to.as_deref(), &commits)
                .map_err(error)
        }),
    };
    result.map_or_else(|reply| reply, |refs| Reply::json(200, &refs))
}
