//! GitHub webhook payloads as typed events (DESIGN.md flow 4). The event type comes from
//! `X-GitHub-Event`; only the events the gateway acts on are modelled, everything else is
//! [`Event::Ignored`] (acknowledged, never a 4xx). Bodies are parsed from bytes, after the
//! signature check.
//!
//! - `ping`
//! - `installation`: `created`, `deleted`, `suspend`, `unsuspend`, `new_permissions_accepted`
//! - `installation_repositories`: `added`, `removed`
//! - `repository`: `created`, `deleted`, and the changes the record follows (`renamed`,
//!   `transferred`, `archived`, `unarchived`, `privatized`, `publicized`, `edited`)
//! - `push`: every push with an installation and a repository, including one that deletes its
//!   ref (`deleted`) or changes no dependency file (each queues a backup of the repository);
//!   `files`: the changed paths that `dependency_files` classifies (none for a deletion)

use crate::github::dependency_files::{self, Kind};
use crate::github::{Account, Repository};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many changed files, and this many bytes of their paths, are carried into an
/// analysis job (the queue caps messages at 128 KB); `truncated` says when more changed.
pub const MAX_CHANGED_FILES: usize = 500;
pub const MAX_CHANGED_PATH_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationAction {
    Created,
    Deleted,
    Suspend,
    Unsuspend,
    NewPermissionsAccepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositoryAction {
    Created,
    Deleted,
    /// The record follows GitHub: `renamed`, `transferred`, `archived`, `unarchived`,
    /// `privatized`, `publicized` or `edited` (the action, as GitHub names it).
    Changed(&'static str),
}

const FOLLOWED_REPOSITORY_ACTIONS: [&str; 7] = [
    "renamed",
    "transferred",
    "archived",
    "unarchived",
    "privatized",
    "publicized",
    "edited",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    pub path: String,
    /// `added`, `modified` or `removed` (the last change in the push wins).
    pub change: String,
    pub kind: Kind,
}

/// A push (any ref: a branch or a tag). Every one changes refs, so each is worth a backup; only
/// one that changed dependency or structure files, without deleting its ref, is analysed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub installation_id: u64,
    pub repository: Repository,
    pub git_ref: String,
    /// `after`: the commit the ref now points at (all zeros when `deleted`).
    pub head_commit: String,
    /// The push deleted `git_ref` (a branch or a tag).
    pub deleted: bool,
    /// The dependency or structure files the push changed, if any (none when `deleted`).
    pub files: Vec<ChangedFile>,
    pub truncated: bool,
}

impl Push {
    /// Worth an analysis job: dependency or structure files changed on a ref that still exists.
    pub fn needs_analysis(&self) -> bool {
        !self.deleted && !self.files.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ping,
    Installation {
        installation_id: u64,
        action: InstallationAction,
        /// The account the App is installed on (GitHub sends it with every installation event).
        account: Option<Account>,
        /// Who asked for the installation, when an owner approved a request (`created`).
        requester: Option<String>,
    },
    InstallationRepositories {
        installation_id: u64,
        added: Vec<Repository>,
        removed: Vec<Repository>,
    },
    Repository {
        installation_id: u64,
        action: RepositoryAction,
        repository: Repository,
    },
    Push(Push),
    /// A change of who can reach the org's code or how it is protected (`ACCESS_EVENTS`): the
    /// payload as JSON, for `access::webhook::apply`, or a re-read of the repository's
    /// protection (`branch_protection_rule`, `repository_ruleset`).
    Access {
        installation_id: u64,
        event: String,
        action: String,
        payload: serde_json::Value,
    },
    /// Acknowledged and ignored; the reason is for the answer and the log.
    Ignored(String),
}

impl Event {
    /// The installation the event is about, for those the gateway acts on.
    pub fn installation_id(&self) -> Option<u64> {
        match self {
            Event::Installation {
                installation_id, ..
            }
            | Event::InstallationRepositories {
                installation_id, ..
            }
            | Event::Repository {
                installation_id, ..
            } => Some(*installation_id),
            Event::Push(p) => Some(p.installation_id),
            Event::Access {
                installation_id, ..
            } => Some(*installation_id),
            Event::Ping | Event::Ignored(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

#[derive(Deserialize)]
struct InstallationRef {
    id: u64,
    #[serde(default)]
    account: Option<Account>,
}

#[derive(Deserialize)]
struct Login {
    login: String,
}

/// The top-level members every delivery is read for: its action and installation, and the
/// members that tell one event's payload from another's (see [`shape_fits`]).
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    installation: Option<InstallationRef>,
    #[serde(default)]
    requester: Option<Login>,
    #[serde(default)]
    repository: Option<IgnoredAny>,
    #[serde(default)]
    repositories_added: Option<IgnoredAny>,
    #[serde(default)]
    repositories_removed: Option<IgnoredAny>,
    #[serde(default, rename = "ref")]
    git_ref: Option<IgnoredAny>,
    #[serde(default)]
    commits: Option<IgnoredAny>,
}

/// Only the body is signed, yet `X-GitHub-Event` decides how it is read: a signed body of one
/// event resent under another name must not be applied as that other event (a captured
/// `repository.deleted` read as `installation.deleted` would disconnect an org). So each event
/// the gateway acts on must have its own members and none that only another one has:
///
/// | event | must have | must not have |
/// |---|---|---|
/// | `installation` | `installation` | `repository`, `repositories_added`, `repositories_removed`, `ref`, `commits` |
/// | `installation_repositories` | `repositories_added`, `repositories_removed` | `repository`, `ref`, `commits` |
/// | `repository` | `repository` | `repositories_added`, `repositories_removed`, `ref`, `commits` |
/// | `push` | `ref`, `commits`, `repository` | `repositories_added`, `repositories_removed` |
/// The events that change who can reach an org's code or how it is protected (issue #10).
pub const ACCESS_EVENTS: [&str; 6] = [
    "organization",
    "member",
    "membership",
    "team",
    "branch_protection_rule",
    "repository_ruleset",
];

/// `organization` actions about people (renames and deletions are not access changes).
const ORGANIZATION_ACTIONS: [&str; 3] = ["member_added", "member_removed", "member_invited"];

fn shape_fits(event: &str, e: &Envelope) -> bool {
    let has_repository = e.repository.is_some();
    let has_lists = e.repositories_added.is_some() || e.repositories_removed.is_some();
    let has_push = e.git_ref.is_some() || e.commits.is_some();
    match event {
        "installation" => !has_repository && !has_lists && !has_push,
        "installation_repositories" => {
            e.repositories_added.is_some()
                && e.repositories_removed.is_some()
                && !has_repository
                && !has_push
        }
        "repository" => has_repository && !has_lists && !has_push,
        "push" => e.git_ref.is_some() && e.commits.is_some() && has_repository && !has_lists,
        _ => true,
    }
}

#[derive(Deserialize)]
struct RepositoriesPayload {
    #[serde(default)]
    repositories_added: Vec<Repository>,
    #[serde(default)]
    repositories_removed: Vec<Repository>,
}

#[derive(Deserialize)]
struct RepositoryPayload {
    repository: Repository,
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    commits: Vec<Commit>,
    repository: Repository,
}

/// Valid JSON of an unexpected shape is ignored (GitHub's payloads evolve); invalid JSON is
/// malformed.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Option<T>, Malformed> {
    match serde_json::from_slice::<T>(body) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_data() => Ok(None),
        Err(e) => Err(Malformed(format!("payload is not valid JSON: {e}"))),
    }
}

/// Whether the body's JSON value is an object. Serde reads a struct from a JSON array too (its
/// members in order), so without this an array would pass for a delivery.
fn is_object(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b == b'{')
}

fn ignored(why: impl Into<String>) -> Result<Event, Malformed> {
    Ok(Event::Ignored(why.into()))
}

/// Parses one delivery. `Err` for a body that is not JSON, or one whose members belong to
/// another event than `X-GitHub-Event` names (see `shape_fits`): a 400. Every other
/// well-formed payload is an event or ignored.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, Malformed> {
    if !is_object(body) {
        decode::<IgnoredAny>(body)?;
        return ignored("payload is not a JSON object");
    }
    let Some(envelope) = decode::<Envelope>(body)? else {
        return ignored("payload is not a JSON object");
    };
    let action = envelope.action.as_deref().unwrap_or("");
    if event == "ping" {
        return Ok(Event::Ping);
    }
    if !matches!(
        event,
        "installation" | "installation_repositories" | "repository" | "push"
    ) && !ACCESS_EVENTS.contains(&event)
    {
        decode::<IgnoredAny>(body)?;
        return ignored(format!("event `{event}` is not one the gateway acts on"));
    }
    if !shape_fits(event, &envelope) {
        return Err(Malformed(format!(
            "the payload does not have the shape of a `{event}` event"
        )));
    }
    let Some(InstallationRef {
        id: installation_id,
        account,
    }) = envelope.installation
    else {
        return ignored("delivery is not from a GitHub App installation");
    };
    if ACCESS_EVENTS.contains(&event) {
        if event == "organization" && !ORGANIZATION_ACTIONS.contains(&action) {
            return ignored(format!("organization.{action} is not acted on"));
        }
        let Some(payload) = decode::<serde_json::Value>(body)? else {
            return ignored("payload is not a JSON object");
        };
        return Ok(Event::Access {
            installation_id,
            event: event.to_string(),
            action: action.to_string(),
            payload,
        });
    }
    match event {
        "installation" => {
            let action = match action {
                "created" => InstallationAction::Created,
                "deleted" => InstallationAction::Deleted,
                "suspend" => InstallationAction::Suspend,
                "unsuspend" => InstallationAction::Unsuspend,
                "new_permissions_accepted" => InstallationAction::NewPermissionsAccepted,
                other => return ignored(format!("installation.{other} is not acted on")),
            };
            Ok(Event::Installation {
                installation_id,
                action,
                account,
                requester: envelope.requester.map(|r| r.login),
            })
        }
        "installation_repositories" => {
            if !matches!(action, "added" | "removed") {
                return ignored(format!(
                    "installation_repositories.{action} is not acted on"
                ));
            }
            let Some(p) = decode::<RepositoriesPayload>(body)? else {
                return ignored("unexpected installation_repositories payload");
            };
            Ok(Event::InstallationRepositories {
                installation_id,
                added: p.repositories_added,
                removed: p.repositories_removed,
            })
        }
        "repository" => {
            let action = match action {
                "created" => RepositoryAction::Created,
                "deleted" => RepositoryAction::Deleted,
                other => match FOLLOWED_REPOSITORY_ACTIONS.iter().find(|a| **a == other) {
                    Some(action) => RepositoryAction::Changed(action),
                    None => return ignored(format!("repository.{other} is not acted on")),
                },
            };
            let Some(p) = decode::<RepositoryPayload>(body)? else {
                return ignored("unexpected repository payload");
            };
            Ok(Event::Repository {
                installation_id,
                action,
                repository: p.repository,
            })
        }
        _ => {
            let Some(p) = decode::<PushPayload>(body)? else {
                return ignored("unexpected push payload");
            };
            // A deletion has no commits; its files would be nothing to analyse anyway.
            let (files, truncated) = if p.deleted {
                (Vec::new(), false)
            } else {
                relevant_files(&p.commits)
            };
            Ok(Event::Push(Push {
                installation_id,
                repository: p.repository,
                git_ref: p.git_ref,
                head_commit: p.after,
                deleted: p.deleted,
                files,
                truncated,
            }))
        }
    }
}

fn relevant_files(commits: &[Commit]) -> (Vec<ChangedFile>, bool) {
    let mut latest: BTreeMap<&str, (&'static str, Kind)> = BTreeMap::new();
    for commit in commits {
        for (paths, change) in [
            (&commit.added, "added"),
            (&commit.modified, "modified"),
            (&commit.removed, "removed"),
        ] {
            for path in paths {
                if let Some(kind) = dependency_files::classify(path) {
                    latest.insert(path, (change, kind));
                }
            }
        }
    }
    cap(latest
        .into_iter()
        .map(|(path, (change, kind))| ChangedFile {
            path: path.to_string(),
            change: change.to_string(),
            kind,
        })
        .collect())
}

/// Keeps the first files within [`MAX_CHANGED_FILES`] and [`MAX_CHANGED_PATH_BYTES`]; says
/// whether any were left out.
pub fn cap(files: Vec<ChangedFile>) -> (Vec<ChangedFile>, bool) {
    let total = files.len();
    let mut bytes = 0;
    let kept: Vec<ChangedFile> = files
        .into_iter()
        .take(MAX_CHANGED_FILES)
        .take_while(|f| {
            bytes += f.path.len();
            bytes <= MAX_CHANGED_PATH_BYTES
        })
        .collect();
    let truncated = kept.len() < total;
    (kept, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(commits: &str, deleted: bool) -> String {
        format!(
            r#"{{"ref":"refs/heads/main","before":"a","after":"b","deleted":{deleted},"commits":{commits},
                "repository":{{"id":7,"name":"r","full_name":"o/r","private":false}},"installation":{{"id":42}}}}"#
        )
    }

    #[test]
    fn push_keeps_the_last_change_of_each_relevant_file() {
        let body = push(
            r#"[{"added":["Cargo.toml","src/a.rs"],"removed":[],"modified":[]},
                {"added":[],"removed":["Cargo.toml"],"modified":["web/package.json","README.md"]}]"#,
            false,
        );
        let Event::Push(p) = parse("push", body.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.installation_id, 42);
        assert_eq!(p.head_commit, "b");
        assert_eq!(
            p.files,
            vec![
                ChangedFile {
                    path: "Cargo.toml".into(),
                    change: "removed".into(),
                    kind: Kind::Cargo
                },
                ChangedFile {
                    path: "web/package.json".into(),
                    change: "modified".into(),
                    kind: Kind::Npm
                },
            ]
        );
        assert!(!p.truncated);
    }

    #[test]
    fn irrelevant_and_ref_deleting_pushes_are_pushes_without_files() {
        let only_code = push(
            r#"[{"added":["src/a.rs"],"removed":[],"modified":["README.md"]}]"#,
            false,
        );
        let Event::Push(p) = parse("push", only_code.as_bytes()).unwrap() else {
            panic!("a push that changed no dependency file is still a push")
        };
        assert_eq!((p.deleted, p.files.len(), p.truncated), (false, 0, false));
        assert!(!p.needs_analysis());
        assert_eq!(p.repository.id, 7);

        // A deletion: no files even when commits are listed, and never analysed.
        let deleted = push(r#"[{"added":["Cargo.toml"]}]"#, true);
        let Event::Push(p) = parse("push", deleted.as_bytes()).unwrap() else {
            panic!("a branch deletion is a push")
        };
        assert!(p.deleted && p.files.is_empty() && !p.needs_analysis());
        assert_eq!(p.git_ref, "refs/heads/main");

        // A tag deleted, as GitHub sends it (octokit's example): no commits, `after` all zeros.
        let tag = br#"{"ref":"refs/tags/simple-tag","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after":"0000000000000000000000000000000000000000","created":false,"deleted":true,
            "forced":false,"base_ref":null,"compare":"https://github.com/Codertocat/Hello-World/compare/6113728f27ae...000000000000",
            "commits":[],"head_commit":null,"repository":{"id":186853002,"name":"Hello-World",
            "full_name":"Codertocat/Hello-World","private":false},"installation":{"id":1}}"#;
        let Event::Push(p) = parse("push", tag).unwrap() else {
            panic!("a tag deletion is a push")
        };
        assert_eq!(
            (
                p.installation_id,
                p.repository.id,
                p.git_ref.as_str(),
                p.deleted
            ),
            (1, 186853002, "refs/tags/simple-tag", true)
        );
        assert!(!p.needs_analysis());

        // With dependency files, on a ref that stays: analysed.
        let cargo = push(r#"[{"modified":["Cargo.toml"]}]"#, false);
        let Event::Push(p) = parse("push", cargo.as_bytes()).unwrap() else {
            panic!()
        };
        assert!(p.needs_analysis());
    }

    /// Found by the `webhook_payload` fuzz target: an array was read as an envelope, its
    /// elements taken as `action`, `installation`, … in order, and became an access event.
    #[test]
    fn only_an_object_is_a_delivery() {
        let array = br#"["member_added",[42,null],null,null,null]"#;
        for event in [
            "branch_protection_rule",
            "organization",
            "installation",
            "ping",
        ] {
            assert_eq!(
                parse(event, array),
                Ok(Event::Ignored("payload is not a JSON object".into())),
                "{event}"
            );
        }
        for body in [&b"\"x\""[..], b" 7 ", b"null", b"[]"] {
            assert!(matches!(parse("push", body), Ok(Event::Ignored(_))));
        }
        for body in [&b""[..], b"  ", b"[1,", b"{", b"\x0c{}"] {
            assert!(parse("push", body).is_err(), "{body:?}");
        }
        let object = br#" {"action":"member_added","installation":{"id":42}}"#;
        assert!(matches!(
            parse("organization", object),
            Ok(Event::Access { .. })
        ));
    }

    #[test]
    fn pushes_of_an_unexpected_shape_are_still_ignored() {
        let ignored: [&[u8]; 5] = [
            // No `after`.
            br#"{"ref":"refs/heads/main","commits":[],"repository":{"id":7,"name":"r","full_name":"o/r"},"installation":{"id":42}}"#,
            // A repository id that is not a number.
            br#"{"ref":"refs/heads/main","after":"b","commits":[],"repository":{"id":"x","name":"r","full_name":"o/r"},"installation":{"id":42}}"#,
            // A ref that is not a string.
            br#"{"ref":5,"after":"b","commits":[],"repository":{"id":7,"name":"r","full_name":"o/r"},"installation":{"id":42}}"#,
            // Commits that are not a list.
            br#"{"ref":"refs/heads/main","after":"b","commits":{},"repository":{"id":7,"name":"r","full_name":"o/r"},"installation":{"id":42}}"#,
            // Not from an App installation.
            br#"{"ref":"refs/heads/main","after":"b","deleted":true,"commits":[],"repository":{"id":7,"name":"r","full_name":"o/r"}}"#,
        ];
        for body in ignored {
            assert!(
                matches!(parse("push", body).unwrap(), Event::Ignored(_)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Without `ref`, `commits` or `repository` it is not a push at all (see `shape_fits`).
        for body in [
            &br#"{"after":"b","commits":[],"repository":{"id":7,"name":"r","full_name":"o/r"},"installation":{"id":42}}"#[..],
            br#"{"ref":"refs/heads/main","after":"b","deleted":true,"repository":{"id":7,"name":"r","full_name":"o/r"},"installation":{"id":42}}"#,
            br#"{"ref":"refs/heads/main","after":"b","deleted":true,"commits":[],"installation":{"id":42}}"#,
        ] {
            assert!(
                parse("push", body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn huge_pushes_are_capped() {
        let paths: Vec<String> = (0..MAX_CHANGED_FILES + 5)
            .map(|i| format!("\"m{i}/go.mod\""))
            .collect();
        let body = push(&format!(r#"[{{"added":[{}]}}]"#, paths.join(",")), false);
        let Event::Push(p) = parse("push", body.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.files.len(), MAX_CHANGED_FILES);
        assert!(p.truncated);
    }

    #[test]
    fn installation_and_repository_events_parse() {
        let e = parse(
            "installation",
            br#"{"action":"suspend","installation":{"id":5}}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            Event::Installation {
                installation_id: 5,
                action: InstallationAction::Suspend,
                account: None,
                requester: None,
            }
        );
        let e = parse(
            "installation",
            br#"{"action":"created","installation":{"id":6,"account":{"login":"acme","id":9,"type":"Organization"}},"requester":{"login":"alice"}}"#,
        )
        .unwrap();
        let Event::Installation {
            account, requester, ..
        } = e
        else {
            panic!()
        };
        assert_eq!(
            (account.map(|a| a.login), requester.as_deref()),
            (Some("acme".into()), Some("alice"))
        );
        let e = parse(
            "installation_repositories",
            br#"{"action":"added","installation":{"id":5},"repositories_added":[{"id":1,"name":"a","full_name":"o/a","private":true}],"repositories_removed":[]}"#,
        )
        .unwrap();
        let Event::InstallationRepositories { added, removed, .. } = e else {
            panic!()
        };
        assert_eq!((added.len(), removed.len()), (1, 0));
        let e = parse("repository", br#"{"action":"renamed","installation":{"id":5},"repository":{"id":1,"name":"b","full_name":"o/b"}}"#).unwrap();
        assert!(matches!(
            e,
            Event::Repository {
                action: RepositoryAction::Changed("renamed"),
                ..
            }
        ));
    }

    #[test]
    fn a_signed_body_relabelled_as_another_event_is_malformed() {
        let repository_deleted = br#"{"action":"deleted","installation":{"id":5},"repository":{"id":1,"name":"b","full_name":"o/b"}}"#;
        let repositories_removed = br#"{"action":"removed","installation":{"id":5},"repository_selection":"selected","repositories_added":[],"repositories_removed":[{"id":1,"name":"a","full_name":"o/a"}]}"#;
        let installation_deleted = br#"{"action":"deleted","installation":{"id":5,"account":{"login":"acme","id":9,"type":"Organization"}}}"#;
        let pushed = push(r#"[{"added":["Cargo.toml"]}]"#, false);
        // Each under its own name is an event.
        for (event, body) in [
            ("repository", &repository_deleted[..]),
            ("installation_repositories", &repositories_removed[..]),
            ("installation", &installation_deleted[..]),
            ("push", pushed.as_bytes()),
        ] {
            assert!(
                !matches!(parse(event, body), Err(_) | Ok(Event::Ignored(_))),
                "{event} as itself"
            );
        }
        // Under another acted-on name, none is applied.
        for (event, body) in [
            ("installation", &repository_deleted[..]),
            ("installation", &repositories_removed[..]),
            ("installation", pushed.as_bytes()),
            ("repository", &repositories_removed[..]),
            ("repository", &installation_deleted[..]),
            ("repository", pushed.as_bytes()),
            ("installation_repositories", &repository_deleted[..]),
            ("installation_repositories", &installation_deleted[..]),
            ("push", &repository_deleted[..]),
            ("push", &installation_deleted[..]),
        ] {
            let parsed = parse(event, body);
            assert!(
                matches!(&parsed, Err(Malformed(why)) if why.contains(event)),
                "{event}: {} → {parsed:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn other_events_and_shapes_are_ignored_but_bad_json_is_malformed() {
        assert_eq!(
            parse("ping", br#"{"zen":"x","hook_id":1}"#).unwrap(),
            Event::Ping
        );
        let ignored: [(&str, &[u8]); 5] = [
            ("issues", br#"{"action":"opened","installation":{"id":1}}"#),
            (
                "repository",
                br#"{"action":"created","repository":{"id":1}}"#,
            ),
            (
                "repository",
                br#"{"action":"created","installation":{"id":1},"repository":{"id":"x"}}"#,
            ),
            (
                "installation",
                br#"{"action":"weird","installation":{"id":1}}"#,
            ),
            ("push", b"[1,2]"),
        ];
        for (event, body) in ignored {
            assert!(
                matches!(parse(event, body).unwrap(), Event::Ignored(_)),
                "{event}: {}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(parse("push", b"{not json").is_err());
        assert!(parse("issues", b"{\"a\":1} trailing").is_err());
        assert!(parse("ping", b"").is_err());
    }
}
