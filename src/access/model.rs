//! What the gateway knows about who can reach an organization's code and how its default
//! branches are protected: one [`AccessState`] per org, read from the provider at each sync and
//! kept current by webhooks. Plain data, serialized as JSON (in D1 and in the API).
//!
//! `None` always means *unknown* (the provider refused or does not expose it), never "no" or
//! "none": every part that could not be read is also listed in [`AccessState::unknown`] with the
//! reason, so posture never reports "no findings" for data it did not see.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessState {
    /// Sorted by `login`.
    pub members: Vec<Member>,
    /// People with access to some repository without being members (GitHub outside
    /// collaborators). Sorted by `login`.
    pub outside_collaborators: Vec<Collaborator>,
    /// Pending invitations (GitHub). Sorted by `login`.
    pub invitations: Vec<Invitation>,
    pub settings: OrgSettings,
    /// One per active repository. Sorted by `full_name`.
    pub repositories: Vec<RepositoryProtection>,
    /// What could not be read, and why.
    pub unknown: Vec<Unknown>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub login: String,
    /// The provider's own word: GitHub `admin` / `member`; GitLab `owner`, `maintainer`,
    /// `developer`, `reporter`, `guest`, `minimal_access`; Azure DevOps the access level
    /// (`basic`, `stakeholder`, `visual_studio_subscriber`, …).
    pub role: String,
    /// Can administer the org: GitHub `admin`, GitLab `owner`. Azure DevOps: `false` (its
    /// administrators are a group, not an access level).
    pub admin: bool,
    /// `None`: unknown (see [`AccessState::unknown`]).
    pub two_factor: Option<bool>,
    /// When the gateway first saw this member with this role and 2FA status (unix seconds).
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collaborator {
    pub login: String,
    /// Repositories (full names) where this collaborator has admin rights. `None`: not read.
    pub admin_on: Option<Vec<String>>,
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The invitee's login, or their email when they have no account yet.
    pub login: String,
    pub role: String,
    pub since: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSettings {
    /// Members must have 2FA (GitHub `two_factor_requirement_enabled`, GitLab
    /// `require_two_factor_authentication`). `None`: unknown.
    pub two_factor_required: Option<bool>,
    /// GitHub `default_repository_permission` (`read`, `write`, `admin`, `none`).
    pub default_repository_permission: Option<String>,
    /// GitHub `members_can_create_public_repositories`.
    pub members_can_create_public_repositories: Option<bool>,
    /// When these values were first seen as they are.
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryProtection {
    /// The gateway's repository id.
    pub repository_id: String,
    pub full_name: String,
    pub default_branch: Option<String>,
    /// `None`: the protection could not be read (see [`AccessState::unknown`]).
    pub protection: Option<Protection>,
    /// When this protection was first seen as it is.
    pub since: i64,
}

/// The effective protection of one branch, classic rules and rulesets combined (the strictest
/// wins, as the provider enforces them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Any rule applies to the branch.
    pub protected: bool,
    /// Approving reviews required before merging. `None`: unknown.
    pub required_reviews: Option<u32>,
    /// Status checks (contexts) required to pass.
    pub required_checks: Vec<String>,
    /// Force pushes allowed. `None`: unknown.
    pub allows_force_pushes: Option<bool>,
    /// Deleting the branch allowed. `None`: unknown.
    pub allows_deletions: Option<bool>,
    /// The rules bind administrators too. `None`: unknown.
    pub enforce_admins: Option<bool>,
    /// Where the rules come from: `branch_protection`, `ruleset:<id>`, `protected_branch`,
    /// `policy:<id>`.
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    /// `members.two_factor`, `members`, `outside_collaborators`, `invitations`, `settings`,
    /// `repositories.protection` or `repository:<full_name>.protection`, …
    pub part: String,
    /// Why: the provider's status and message, or what it does not expose.
    pub reason: String,
}

/// One change in who can reach the code or how it is protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEvent {
    /// `member.added`, `member.removed`, `member.role_changed`, `member.2fa_disabled`,
    /// `member.2fa_enabled`, `outside_collaborator.added`, `outside_collaborator.removed`,
    /// `outside_collaborator.admin_granted`, `invitation.created`, `invitation.removed`,
    /// `settings.changed`, `protection.added`, `protection.removed`, `protection.weakened`,
    /// `protection.strengthened`, `team.changed`, `ruleset.changed`.
    pub kind: String,
    /// The login, repository full name or org the event is about.
    pub subject: String,
    /// Before / after values, as JSON.
    pub detail: serde_json::Value,
}
