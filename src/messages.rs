//! Queue messages, versioned and tagged so messages in flight still decode after a deploy.
//!
//! Messages travel as JSON text (not through serde-wasm-bindgen), so what a test serializes here
//! is byte for byte what the queue carries. They hold ids only: never a token or secret.

use crate::github::webhook_events::ChangedFile;
use serde::{Deserialize, Serialize};

/// `onecode-backup-jobs`: one message per repository to back up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BackupMessage {
    #[serde(rename = "backup_job.v1")]
    BackupJobV1(BackupJob),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupJob {
    pub job_id: String,
    pub org_id: String,
    pub repository_id: String,
    /// `github`, `gitlab` or `azure_devops` (absent in messages sent before GitLab and Azure
    /// DevOps existed: those are GitHub's).
    #[serde(default = "github")]
    pub provider: String,
    /// GitHub: the installation the executor mints a token for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
    /// GitLab / Azure DevOps: the connection whose encrypted tokens the executor reads (an id,
    /// never a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    pub priority: String,
}

fn github() -> String {
    "github".into()
}

/// `onecode-sync`: work that must not grow with the size of an org or the number of orgs, cut
/// into one bounded step per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SyncMessage {
    /// Continue enumerating an installation where the previous invocation stopped.
    #[serde(rename = "enumerate.v1")]
    EnumerateV1(EnumerateContinuation),
    /// Sync one organization (scheduled sync fans out one per org).
    #[serde(rename = "sync_org.v1")]
    SyncOrgV1 { org_id: String },
    /// Send one `sync_org.v1` per active org after `after` (a page of them), then continue.
    #[serde(rename = "fanout.v1")]
    FanoutV1 { after: String },
    /// Send the queued backup jobs that need sending (of one org, or all), a bounded batch at a
    /// time, then continue.
    #[serde(rename = "dispatch.v1")]
    DispatchV1 { org_id: Option<String> },
    /// Another retention pass (the previous one found as many repositories as it could take).
    #[serde(rename = "retention.v1")]
    RetentionV1 {},
    /// One step of an org's access snapshot (`access_runs`): the run and the step it expects to
    /// find (a redelivered step finds the run moved on and does nothing).
    #[serde(rename = "access.v1")]
    AccessV1 {
        org_id: String,
        run_id: String,
        step: i64,
    },
    /// Read one repository's default-branch protection again, because a webhook
    /// (`branch_protection_rule`, `repository_ruleset`) said it changed; its events name the
    /// delivery.
    #[serde(rename = "access_repository.v1")]
    AccessRepositoryV1 {
        org_id: String,
        /// The repository's full name (`owner/name`); `None`: every repository (an org ruleset).
        repository: Option<String>,
        delivery_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumerateContinuation {
    pub org_id: String,
    /// The enumeration run this page belongs to; a message from a superseded run is dropped.
    pub run_id: String,
    /// The `rel="next"` URL to fetch; it must equal the run's stored cursor to be processed.
    pub next_url: String,
}

/// `onecode-analysis-jobs`: a push changed dependency or structure files of a repository.
/// `F` is how `files` is held: as [`ChangedFile`]s (what a consumer reads), or as the JSON the
/// job's row already holds (`Box<RawValue>`), so that a producer does not write it twice. Both
/// serialize to the same message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AnalysisMessage<F = Vec<ChangedFile>> {
    #[serde(rename = "analysis_job.v1")]
    AnalysisJobV1(AnalysisJob<F>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisJob<F = Vec<ChangedFile>> {
    pub job_id: String,
    pub org_id: String,
    pub repository_id: String,
    pub installation_id: u64,
    pub git_ref: String,
    pub head_commit: String,
    pub files: F,
    /// More relevant files changed than the job lists.
    pub truncated: bool,
}

/// Cloudflare's per-message ceiling.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// Cloudflare's per-`sendBatch` ceilings: messages, and bytes in all.
pub const MAX_BATCH_MESSAGES: usize = 100;
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Splits messages, in order, into `sendBatch`es within both ceilings (each message itself
/// within [`MAX_MESSAGE_BYTES`]): a few analysis jobs near their cap fill a batch's bytes
/// long before its count.
pub fn send_batches<M: Serialize>(messages: &[M]) -> Result<Vec<&[M]>, serde_json::Error> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let len = serde_json::to_vec(m)?.len();
        if i > start && (i - start == MAX_BATCH_MESSAGES || bytes + len > MAX_BATCH_BYTES) {
            batches.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < messages.len() {
        batches.push(&messages[start..]);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_and_round_trip() {
        let m = BackupMessage::BackupJobV1(BackupJob {
            job_id: "j".into(),
            org_id: "o".into(),
            repository_id: "r".into(),
            provider: "github".into(),
            installation_id: Some(42),
            connection_id: None,
            priority: "normal".into(),
        });
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.starts_with(r#"{"type":"backup_job.v1","#), "{json}");
        assert!(!json.contains("connection_id"), "{json}");
        assert_eq!(serde_json::from_str::<BackupMessage>(&json).unwrap(), m);
        // A message from before the provider field still reads as GitHub's.
        let old = r#"{"type":"backup_job.v1","job_id":"j","org_id":"o","repository_id":"r","installation_id":42,"priority":"normal"}"#;
        assert_eq!(serde_json::from_str::<BackupMessage>(old).unwrap(), m);
        let gitlab = BackupMessage::BackupJobV1(BackupJob {
            provider: "gitlab".into(),
            installation_id: None,
            connection_id: Some("c1".into()),
            ..match m {
                BackupMessage::BackupJobV1(j) => j,
            }
        });
        let json = serde_json::to_string(&gitlab).unwrap();
        assert!(!json.contains("installation_id"), "{json}");
        assert_eq!(
            serde_json::from_str::<BackupMessage>(&json).unwrap(),
            gitlab
        );
        let s = SyncMessage::EnumerateV1(EnumerateContinuation {
            org_id: "o".into(),
            run_id: "r".into(),
            next_url: "http://127.0.0.1/installation/repositories?page=2".into(),
        });
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""type":"enumerate.v1""#));
        assert_eq!(serde_json::from_str::<SyncMessage>(&json).unwrap(), s);
    }

    #[test]
    fn the_largest_analysis_job_fits_a_queue_message() {
        use crate::github::dependency_files::Kind;
        use crate::github::webhook_events::{cap, ChangedFile, MAX_CHANGED_FILES};
        let long_path = format!("{}/package-lock.json", "d".repeat(1000));
        let (files, truncated) = cap(vec![
            ChangedFile {
                path: long_path,
                change: "modified".into(),
                kind: Kind::Npm
            };
            MAX_CHANGED_FILES
        ]);
        assert!(truncated);
        let m = AnalysisMessage::AnalysisJobV1(AnalysisJob {
            job_id: "j".repeat(36),
            org_id: "o".repeat(36),
            repository_id: "r".repeat(32),
            installation_id: u64::MAX >> 12,
            git_ref: format!("refs/heads/{}", "b".repeat(240)),
            head_commit: "c".repeat(40),
            files,
            truncated,
        });
        assert!(serde_json::to_string(&m).unwrap().len() < MAX_MESSAGE_BYTES);
    }

    #[test]
    fn an_analysis_job_with_its_files_as_written_json_is_the_same_message() {
        use crate::github::dependency_files::Kind;
        use serde_json::value::{to_raw_value, RawValue};
        let files = vec![
            ChangedFile {
                path: "services/a \"quoted\"/Cargo.toml".into(),
                change: "modified".into(),
                kind: Kind::Cargo,
            },
            ChangedFile {
                path: "web/package.json".into(),
                change: "removed".into(),
                kind: Kind::Npm,
            },
        ];
        fn job<F>(files: F) -> AnalysisJob<F> {
            AnalysisJob {
                job_id: "j".into(),
                org_id: "o".into(),
                repository_id: "r".into(),
                installation_id: 42,
                git_ref: "refs/heads/main".into(),
                head_commit: "c".repeat(40),
                files,
                truncated: true,
            }
        }
        let typed = AnalysisMessage::AnalysisJobV1(job(files.clone()));
        let raw: AnalysisMessage<Box<RawValue>> =
            AnalysisMessage::AnalysisJobV1(job(to_raw_value(&files).unwrap()));
        let json = serde_json::to_string(&raw).unwrap();
        assert_eq!(json, serde_json::to_string(&typed).unwrap());
        assert_eq!(
            serde_json::from_str::<AnalysisMessage>(&json).unwrap(),
            typed
        );
    }

    #[test]
    fn send_batches_keep_order_and_both_ceilings() {
        let none: Vec<String> = Vec::new();
        assert!(send_batches(&none).unwrap().is_empty());
        // Small messages: split by count.
        let small: Vec<u32> = (0..250).collect();
        let sizes: Vec<usize> = send_batches(&small)
            .unwrap()
            .iter()
            .map(|b| b.len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        // Large ones (100 KB each as JSON strings): split by bytes, two per batch.
        let large: Vec<String> = (0..5)
            .map(|i| i.to_string().repeat(100 * 1024 - 2))
            .collect();
        let batches = send_batches(&large).unwrap();
        assert_eq!(
            batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        for batch in &batches {
            let bytes: usize = batch
                .iter()
                .map(|m| serde_json::to_vec(m).unwrap().len())
                .sum();
            assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
        }
        assert_eq!(batches.concat(), large, "every message once, in order");
    }

    #[test]
    fn unknown_versions_are_refused_not_misread() {
        assert!(
            serde_json::from_str::<BackupMessage>(r#"{"type":"backup_job.v9","job_id":"j"}"#)
                .is_err()
        );
    }
}
