//! Compliance posture: one table of rules ([`RULES`]) evaluated over an org's [`AccessState`]
//! and its backups' facts ([`findings`]).
//!
//! A finding is only ever drawn from a known value: `None` (unknown) never fires a rule, and the
//! absence of findings for an unknown part is no claim either — the caller shows
//! [`AccessState::unknown`] beside the findings.

use super::model::AccessState;
use serde::{Deserialize, Serialize};

/// Ordered by urgency: `Critical < High < Medium < Low`, so an ascending sort puts critical
/// first. Serialized in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A [`Rule::id`].
    pub rule: &'static str,
    pub severity: Severity,
    /// The org's login, a member's or collaborator's login, or a repository's full name (see
    /// each rule).
    pub subject: String,
    /// Since when it holds (unix seconds), as far as the gateway saw.
    pub since: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub description: &'static str,
}

pub const ORG_2FA_NOT_REQUIRED: &str = "org_2fa_not_required";
pub const ADMIN_WITHOUT_2FA: &str = "admin_without_2fa";
pub const MEMBER_WITHOUT_2FA: &str = "member_without_2fa";
pub const OUTSIDE_COLLABORATOR_ADMIN: &str = "outside_collaborator_admin";
pub const DEFAULT_BRANCH_UNPROTECTED: &str = "default_branch_unprotected";
pub const DEFAULT_BRANCH_FORCE_PUSH: &str = "default_branch_force_push";
pub const DEFAULT_BRANCH_NO_REQUIRED_REVIEWS: &str = "default_branch_no_required_reviews";
pub const BACKUP_STALE: &str = "backup_stale";
pub const BACKUP_FAILED: &str = "backup_failed";

/// Every rule, in the order findings of equal severity are listed.
pub const RULES: &[Rule] = &[
    Rule {
        id: ORG_2FA_NOT_REQUIRED,
        severity: Severity::High,
        description: "The organization does not require two-factor authentication of its members. \
                      Subject: the org; since: when its settings were first seen so.",
    },
    Rule {
        id: ADMIN_WITHOUT_2FA,
        severity: Severity::Critical,
        description: "An administrator (GitHub owner, GitLab owner) has no two-factor \
                      authentication. Subject: their login.",
    },
    Rule {
        id: MEMBER_WITHOUT_2FA,
        severity: Severity::High,
        description: "A member who is not an administrator has no two-factor authentication. \
                      Subject: their login.",
    },
    Rule {
        id: OUTSIDE_COLLABORATOR_ADMIN,
        severity: Severity::High,
        description: "Someone outside the organization administers at least one of its \
                      repositories. Subject: their login (one finding per collaborator).",
    },
    Rule {
        id: DEFAULT_BRANCH_UNPROTECTED,
        severity: Severity::High,
        description: "A repository's default branch has no protection: anyone who can push can \
                      rewrite it. Subject: the repository.",
    },
    Rule {
        id: DEFAULT_BRANCH_FORCE_PUSH,
        severity: Severity::High,
        description: "A repository's protected default branch still allows force pushes. \
                      Subject: the repository.",
    },
    Rule {
        id: DEFAULT_BRANCH_NO_REQUIRED_REVIEWS,
        severity: Severity::Medium,
        description: "A repository's protected default branch requires no approving review \
                      (an unprotected branch has its own finding). Subject: the repository.",
    },
    Rule {
        id: BACKUP_STALE,
        severity: Severity::High,
        description: "No successful backup of the repository within two backup intervals. \
                      Subject: the repository; since: when the second interval ended.",
    },
    Rule {
        id: BACKUP_FAILED,
        severity: Severity::High,
        description: "The repository's last backup failed. Subject: the repository; since: \
                      that attempt.",
    },
];

/// The rule named `id` (the table's ids are constants of this module).
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// One repository's backups, as D1 knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryBackup {
    pub full_name: String,
    /// Since when the repository is backed up (connected or reactivated).
    pub active_since: i64,
    /// The last successful backup.
    pub last_ok_at: Option<i64>,
    /// The last attempt's status (`ok`, `failed`, …) and time.
    pub last_status: Option<String>,
    pub last_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFacts {
    /// The org's backup interval (seconds).
    pub schedule_secs: i64,
    /// The org's active repositories.
    pub repositories: Vec<RepositoryBackup>,
}

fn finding(id: &'static str, subject: &str, since: i64) -> Finding {
    let severity = rule(id).map_or(Severity::High, |r| r.severity);
    Finding {
        rule: id,
        severity,
        subject: subject.to_string(),
        since,
    }
}

/// The org's findings: every rule of [`RULES`] over the access state (`None`: never read, then
/// only the backup rules) and the backups, at `now`.
///
/// - `org_2fa_not_required`: `settings.two_factor_required == Some(false)`; since the settings'.
/// - `admin_without_2fa` / `member_without_2fa`: a member with `two_factor == Some(false)`,
///   by `admin`; since the member's.
/// - `outside_collaborator_admin`: a collaborator whose `admin_on` lists a repository; since
///   the collaborator's.
/// - For each repository with a default branch and a known protection (since the
///   repository's): `default_branch_unprotected` (not protected); `default_branch_force_push`
///   (protected, force pushes `Some(true)`); `default_branch_no_required_reviews` (protected,
///   reviews `Some(0)`; an unprotected branch only has `default_branch_unprotected`).
/// - `backup_stale`: no successful backup within `2 * schedule_secs` of the last one (or of
///   `active_since` when there never was one): since that deadline, once it is `<= now` (no
///   interval configured, `schedule_secs <= 0`: never stale).
/// - `backup_failed`: `last_status == Some("failed")`; since `last_at` (`now` when unknown).
///
/// Sorted by severity (critical first), then the rule's place in [`RULES`], then subject.
pub fn findings(
    org: &str,
    state: Option<&AccessState>,
    backups: &BackupFacts,
    now: i64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(state) = state {
        if state.settings.two_factor_required == Some(false) {
            out.push(finding(ORG_2FA_NOT_REQUIRED, org, state.settings.since));
        }
        for m in &state.members {
            if m.two_factor == Some(false) {
                let id = if m.admin {
                    ADMIN_WITHOUT_2FA
                } else {
                    MEMBER_WITHOUT_2FA
                };
                out.push(finding(id, &m.login, m.since));
            }
        }
        for c in &state.outside_collaborators {
            if c.admin_on.as_ref().is_some_and(|a| !a.is_empty()) {
                out.push(finding(OUTSIDE_COLLABORATOR_ADMIN, &c.login, c.since));
            }
        }
        for r in &state.repositories {
            let (Some(_), Some(p)) = (&r.default_branch, &r.protection) else {
                continue;
            };
            if !p.protected {
                out.push(finding(DEFAULT_BRANCH_UNPROTECTED, &r.full_name, r.since));
                continue;
            }
            if p.allows_force_pushes == Some(true) {
                out.push(finding(DEFAULT_BRANCH_FORCE_PUSH, &r.full_name, r.since));
            }
            if p.required_reviews == Some(0) {
                out.push(finding(
                    DEFAULT_BRANCH_NO_REQUIRED_REVIEWS,
                    &r.full_name,
                    r.since,
                ));
            }
        }
    }
    for r in &backups.repositories {
        if backups.schedule_secs > 0 {
            let due = r
                .last_ok_at
                .unwrap_or(r.active_since)
                .saturating_add(backups.schedule_secs.saturating_mul(2));
            if due <= now {
                out.push(finding(BACKUP_STALE, &r.full_name, due));
            }
        }
        if r.last_status.as_deref() == Some("failed") {
            out.push(finding(
                BACKUP_FAILED,
                &r.full_name,
                r.last_at.unwrap_or(now),
            ));
        }
    }
    let place = |id: &str| RULES.iter().position(|r| r.id == id).unwrap_or(RULES.len());
    out.sort_by(|a, b| {
        (a.severity, place(a.rule), &a.subject, a.since).cmp(&(
            b.severity,
            place(b.rule),
            &b.subject,
            b.since,
        ))
    });
    out
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

/// How many findings of each severity.
pub fn counts(findings: &[Finding]) -> SeverityCounts {
    let mut c = SeverityCounts::default();
    for f in findings {
        match f.severity {
            Severity::Critical => c.critical += 1,
            Severity::High => c.high += 1,
            Severity::Medium => c.medium += 1,
            Severity::Low => c.low += 1,
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::diff::tests::{collaborator, member, protected, repository, state};
    use crate::access::github::unprotected;
    use crate::access::model::Protection;

    const NOW: i64 = 1_000_000;
    const DAY: i64 = 86_400;

    fn no_backups() -> BackupFacts {
        BackupFacts {
            schedule_secs: DAY,
            repositories: vec![],
        }
    }

    /// The findings of one rule for a state.
    fn of(rule: &str, state: &AccessState) -> Vec<(String, i64)> {
        findings("acme", Some(state), &no_backups(), NOW)
            .into_iter()
            .filter(|f| f.rule == rule)
            .map(|f| (f.subject, f.since))
            .collect()
    }

    fn empty() -> AccessState {
        AccessState::default()
    }

    #[test]
    fn the_table_has_exactly_the_rules() {
        let ids: Vec<(&str, Severity)> = RULES.iter().map(|r| (r.id, r.severity)).collect();
        assert_eq!(
            ids,
            vec![
                ("org_2fa_not_required", Severity::High),
                ("admin_without_2fa", Severity::Critical),
                ("member_without_2fa", Severity::High),
                ("outside_collaborator_admin", Severity::High),
                ("default_branch_unprotected", Severity::High),
                ("default_branch_force_push", Severity::High),
                ("default_branch_no_required_reviews", Severity::Medium),
                ("backup_stale", Severity::High),
                ("backup_failed", Severity::High),
            ]
        );
        assert!(RULES.iter().all(|r| !r.description.is_empty()));
        assert_eq!(
            rule("backup_failed").map(|r| r.severity),
            Some(Severity::High)
        );
        assert_eq!(rule("nope"), None);
        assert!(Severity::Critical < Severity::High && Severity::Medium < Severity::Low);
        assert_eq!(
            serde_json::to_value(Severity::Critical).unwrap(),
            "critical"
        );
    }

    #[test]
    fn org_2fa_not_required() {
        for (required, expected) in [
            (Some(false), vec![("acme".to_string(), 77)]),
            (Some(true), vec![]),
            (None, vec![]),
        ] {
            let mut s = empty();
            s.settings.two_factor_required = required;
            s.settings.since = 77;
            assert_eq!(of(ORG_2FA_NOT_REQUIRED, &s), expected, "{required:?}");
        }
    }

    #[test]
    fn two_factor_of_admins_and_members() {
        let mut s = empty();
        s.members = vec![
            member("root", "admin", Some(false), 5),
            member("ok_admin", "admin", Some(true), 6),
            member("who", "admin", None, 7),
            member("bob", "member", Some(false), 8),
            member("fine", "member", Some(true), 9),
            member("unknown", "member", None, 10),
        ];
        assert_eq!(of(ADMIN_WITHOUT_2FA, &s), vec![("root".to_string(), 5)]);
        assert_eq!(of(MEMBER_WITHOUT_2FA, &s), vec![("bob".to_string(), 8)]);
        // Fixed: cleared.
        for m in &mut s.members {
            m.two_factor = Some(true);
        }
        assert!(of(ADMIN_WITHOUT_2FA, &s).is_empty() && of(MEMBER_WITHOUT_2FA, &s).is_empty());
    }

    #[test]
    fn outside_collaborator_admin() {
        let mut s = empty();
        s.outside_collaborators = vec![
            collaborator("dave", Some(&["acme/api", "acme/web"]), 3),
            collaborator("erin", Some(&[]), 4),
            collaborator("fay", None, 5),
        ];
        // One finding per collaborator, however many repositories.
        assert_eq!(
            of(OUTSIDE_COLLABORATOR_ADMIN, &s),
            vec![("dave".to_string(), 3)]
        );
        s.outside_collaborators[0].admin_on = Some(vec![]);
        assert!(of(OUTSIDE_COLLABORATOR_ADMIN, &s).is_empty());
    }

    #[test]
    fn default_branch_rules() {
        let forceable = Protection {
            allows_force_pushes: Some(true),
            ..protected(1, &[])
        };
        let unknowns = Protection {
            allows_force_pushes: None,
            required_reviews: None,
            ..protected(1, &[])
        };
        let mut s = empty();
        s.repositories = vec![
            repository("1", "acme/open", Some(unprotected()), 11),
            repository("2", "acme/force", Some(forceable), 12),
            repository("3", "acme/noreview", Some(protected(0, &["ci"])), 13),
            repository("4", "acme/good", Some(protected(2, &["ci"])), 14),
            repository("5", "acme/unread", None, 15),
            repository("6", "acme/unknowns", Some(unknowns), 16),
        ];
        let mut empty_repo = repository("7", "acme/empty", Some(unprotected()), 17);
        empty_repo.default_branch = None;
        s.repositories.push(empty_repo);
        assert_eq!(
            of(DEFAULT_BRANCH_UNPROTECTED, &s),
            vec![("acme/open".to_string(), 11)]
        );
        assert_eq!(
            of(DEFAULT_BRANCH_FORCE_PUSH, &s),
            vec![("acme/force".to_string(), 12)]
        );
        // Only for protected branches: acme/open has no such finding.
        assert_eq!(
            of(DEFAULT_BRANCH_NO_REQUIRED_REVIEWS, &s),
            vec![("acme/noreview".to_string(), 13)]
        );
        // Fixed: cleared.
        for r in &mut s.repositories {
            r.protection = Some(protected(1, &[]));
        }
        let all = findings("acme", Some(&s), &no_backups(), NOW);
        assert_eq!(all, vec![]);
    }

    fn backup(
        last_ok_at: Option<i64>,
        status: Option<&str>,
        last_at: Option<i64>,
    ) -> RepositoryBackup {
        RepositoryBackup {
            full_name: "acme/api".into(),
            active_since: NOW - 10 * DAY,
            last_ok_at,
            last_status: status.map(str::to_string),
            last_at,
        }
    }

    fn backup_findings(b: RepositoryBackup, schedule_secs: i64) -> Vec<(&'static str, i64)> {
        let facts = BackupFacts {
            schedule_secs,
            repositories: vec![b],
        };
        findings("acme", None, &facts, NOW)
            .into_iter()
            .map(|f| {
                assert_eq!(f.subject, "acme/api");
                (f.rule, f.since)
            })
            .collect()
    }

    #[test]
    fn backup_stale_and_failed() {
        for (b, schedule, expected) in [
            // Backed up an hour ago: fine.
            (
                backup(Some(NOW - 3600), Some("ok"), Some(NOW - 3600)),
                DAY,
                vec![],
            ),
            // Exactly two intervals ago: stale since now.
            (
                backup(Some(NOW - 2 * DAY), Some("ok"), Some(NOW - 2 * DAY)),
                DAY,
                vec![(BACKUP_STALE, NOW)],
            ),
            // Three days ago, daily: stale for a day.
            (
                backup(Some(NOW - 3 * DAY), Some("ok"), Some(NOW - 3 * DAY)),
                DAY,
                vec![(BACKUP_STALE, NOW - DAY)],
            ),
            // Never backed up, active for 10 days: stale since day 2.
            (
                backup(None, None, None),
                DAY,
                vec![(BACKUP_STALE, NOW - 8 * DAY)],
            ),
            // Weekly: not yet stale.
            (backup(None, None, None), 7 * DAY, vec![]),
            // No interval: never stale.
            (backup(None, None, None), 0, vec![]),
            // Last attempt failed, a success before within the window.
            (
                backup(Some(NOW - DAY), Some("failed"), Some(NOW - 60)),
                DAY,
                vec![(BACKUP_FAILED, NOW - 60)],
            ),
            // Failed and stale: both.
            (
                backup(Some(NOW - 5 * DAY), Some("failed"), Some(NOW - 60)),
                DAY,
                vec![(BACKUP_STALE, NOW - 3 * DAY), (BACKUP_FAILED, NOW - 60)],
            ),
            (
                backup(Some(NOW - 60), Some("failed"), None),
                DAY,
                vec![(BACKUP_FAILED, NOW)],
            ),
        ] {
            assert_eq!(
                backup_findings(b.clone(), schedule),
                expected,
                "{b:?} {schedule}"
            );
        }
    }

    #[test]
    fn never_read_means_only_backup_findings_and_order_is_by_severity() {
        let s = {
            let mut s = state();
            s.settings.since = 1;
            s
        };
        let facts = BackupFacts {
            schedule_secs: DAY,
            repositories: vec![backup(None, Some("failed"), Some(NOW))],
        };
        let none = findings("acme", None, &facts, NOW);
        assert!(none.iter().all(|f| f.rule.starts_with("backup_")));
        assert_eq!(none.len(), 2);

        let all = findings("acme", Some(&s), &facts, NOW);
        let view: Vec<(Severity, &str, &str)> = all
            .iter()
            .map(|f| (f.severity, f.rule, f.subject.as_str()))
            .collect();
        assert_eq!(
            view,
            vec![
                (Severity::High, ORG_2FA_NOT_REQUIRED, "acme"),
                (Severity::High, MEMBER_WITHOUT_2FA, "bob"),
                (Severity::High, OUTSIDE_COLLABORATOR_ADMIN, "dave"),
                (Severity::High, DEFAULT_BRANCH_UNPROTECTED, "acme/web"),
                (Severity::High, BACKUP_STALE, "acme/api"),
                (Severity::High, BACKUP_FAILED, "acme/api"),
            ]
        );
        let mut with_admin = s.clone();
        with_admin.members[0].two_factor = Some(false);
        with_admin.repositories[0].protection = Some(protected(0, &[]));
        let all = findings("acme", Some(&with_admin), &facts, NOW);
        assert_eq!(all[0].rule, ADMIN_WITHOUT_2FA);
        assert_eq!(
            all.last().map(|f| f.rule),
            Some(DEFAULT_BRANCH_NO_REQUIRED_REVIEWS)
        );
        assert_eq!(
            counts(&all),
            SeverityCounts {
                critical: 1,
                high: 6,
                medium: 1,
                low: 0
            }
        );
        assert_eq!(
            serde_json::to_value(&all[0]).unwrap(),
            serde_json::json!({"rule": "admin_without_2fa", "severity": "critical", "subject": "alice", "since": 0})
        );
    }
}
