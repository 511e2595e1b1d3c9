//! What an installation's organization grants and protects: members, outside collaborators,
//! pending invitations, teams, organization settings, the App's granted permissions, classic
//! branch protections and rulesets. Kept in its [`crate::state::Installation`] (replacing or
//! deleting the installation drops it).
//!
//! Users are named by login (compared case-insensitively); a user given without an id gets
//! [`user_id`] of its login, the same in every organization. Invitation, team, protection and
//! ruleset ids come from one emulator-wide counter ([`next_id`]).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The next id for an invitation, team, protection rule or ruleset.
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(700_001);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The id of a user given without one: 60,000,000 plus the 64-bit FNV-1a hash of the lowercase
/// login modulo 10,000,000.
pub fn user_id(login: &str) -> u64 {
    let hash = login
        .to_ascii_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    60_000_000 + hash % 10_000_000
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub login: String,
    pub id: u64,
}

impl User {
    pub fn new(login: String, id: Option<u64>) -> Self {
        let id = id.unwrap_or_else(|| user_id(&login));
        User { login, id }
    }

    pub fn is(&self, login: &str) -> bool {
        self.login.eq_ignore_ascii_case(login)
    }
}

/// An organization role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    Admin,
    Member,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Admin => "admin",
            OrgRole::Member => "member",
        }
    }
}

/// A repository role, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::Read,
        Permission::Triage,
        Permission::Write,
        Permission::Maintain,
        Permission::Admin,
    ];

    /// `role_name`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Triage => "triage",
            Permission::Write => "write",
            Permission::Maintain => "maintain",
            Permission::Admin => "admin",
        }
    }

    /// The key of the `permissions` hash (`pull`, `triage`, `push`, `maintain`, `admin`).
    pub fn key(self) -> &'static str {
        match self {
            Permission::Read => "pull",
            Permission::Write => "push",
            other => other.as_str(),
        }
    }

    /// A `permission` query value (`pull`, `triage`, `push`, `maintain`, `admin`).
    pub fn from_key(key: &str) -> Option<Self> {
        Permission::ALL.into_iter().find(|p| p.key() == key)
    }

    /// The legacy `permission` of `member` webhooks: maintain maps to write, triage to read.
    pub fn legacy(self) -> &'static str {
        match self {
            Permission::Read | Permission::Triage => "read",
            Permission::Write | Permission::Maintain => "write",
            Permission::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub user: User,
    pub role: OrgRole,
    pub two_factor: bool,
}

/// An outside collaborator and the repositories they were granted (canonical name and role).
#[derive(Debug, Clone, PartialEq)]
pub struct Outside {
    pub user: User,
    pub two_factor: bool,
    pub repositories: Vec<(String, Permission)>,
}

impl Outside {
    pub fn on(&self, repo: &str) -> Option<Permission> {
        self.repositories
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(repo))
            .map(|(_, p)| *p)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub id: u64,
    pub login: Option<String>,
    pub user_id: Option<u64>,
    pub email: Option<String>,
    /// `direct_member`, `admin`, `billing_manager`, …
    pub role: String,
    pub created_at: DateTime<Utc>,
}

/// Organization settings `GET /orgs/{org}` shows to owners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub two_factor_requirement_enabled: bool,
    #[serde(default = "read")]
    pub default_repository_permission: String,
    #[serde(default = "yes")]
    pub members_can_create_public_repositories: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            two_factor_requirement_enabled: false,
            default_repository_permission: read(),
            members_can_create_public_repositories: true,
        }
    }
}

fn read() -> String {
    "read".into()
}

fn granted() -> Option<String> {
    Some(read())
}

fn yes() -> bool {
    true
}

/// The App's permissions this installation was granted (`null`: not granted; a missing key:
/// `read`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    #[serde(default = "granted")]
    pub members: Option<String>,
    #[serde(default = "granted")]
    pub organization_administration: Option<String>,
    #[serde(default = "granted")]
    pub administration: Option<String>,
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions {
            members: granted(),
            organization_administration: granted(),
            administration: granted(),
        }
    }
}

/// Classic branch protection as the admin API sets it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionSpec {
    #[serde(default)]
    pub required_reviews: Option<u32>,
    #[serde(default)]
    pub dismiss_stale_reviews: bool,
    #[serde(default)]
    pub require_code_owner_reviews: bool,
    #[serde(default)]
    pub require_last_push_approval: bool,
    #[serde(default)]
    pub required_checks: Option<Vec<String>>,
    /// Branches must be up to date before merging.
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub enforce_admins: bool,
    #[serde(default)]
    pub allow_force_pushes: bool,
    #[serde(default)]
    pub allow_deletions: bool,
    #[serde(default)]
    pub required_linear_history: bool,
    #[serde(default)]
    pub required_conversation_resolution: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Protection {
    pub id: u64,
    /// Canonical repository name.
    pub repository: String,
    pub branch: String,
    pub spec: ProtectionSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One rule of a ruleset: its type and parameters (`None` for types without any).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub kind: String,
    pub parameters: Option<Value>,
}

/// Where a ruleset is defined.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A repository's own ruleset (canonical name).
    Repository(String),
    /// The organization's, for the repositories its `repository_name` condition matches.
    Organization {
        include: Vec<String>,
        exclude: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ruleset {
    pub id: u64,
    pub name: String,
    /// `active`, `disabled` or `evaluate`.
    pub enforcement: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub rules: Vec<Rule>,
    pub source: Source,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: u64,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    /// `closed` or `secret`.
    pub privacy: String,
    pub members: Vec<User>,
}

/// Everything the access audit reads of one organization.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    pub members: Vec<Member>,
    pub outside: Vec<Outside>,
    pub invitations: Vec<Invitation>,
    pub settings: Settings,
    pub permissions: Permissions,
    pub protections: Vec<Protection>,
    pub rulesets: Vec<Ruleset>,
    pub teams: Vec<Team>,
}

impl Access {
    pub fn member(&self, login: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.user.is(login))
    }

    pub fn outside(&self, login: &str) -> Option<&Outside> {
        self.outside.iter().find(|o| o.user.is(login))
    }

    pub fn protection(&self, repo: &str, branch: &str) -> Option<&Protection> {
        self.protections
            .iter()
            .find(|p| p.repository.eq_ignore_ascii_case(repo) && p.branch == branch)
    }

    pub fn team(&self, slug: &str) -> Option<&Team> {
        self.teams
            .iter()
            .find(|t| t.slug.eq_ignore_ascii_case(slug))
    }

    /// The role a user holds on a repository: owners admin, outside collaborators their grant,
    /// members the base permission (none when it is `none`).
    pub fn role_on(&self, repo: &str, login: &str) -> Option<Permission> {
        if let Some(member) = self.member(login) {
            return match member.role {
                OrgRole::Admin => Some(Permission::Admin),
                OrgRole::Member => base_permission(&self.settings.default_repository_permission),
            };
        }
        self.outside(login).and_then(|o| o.on(repo))
    }

    /// Drops a user from every team (after leaving the organization).
    pub fn leave_teams(&mut self, login: &str) {
        for team in &mut self.teams {
            team.members.retain(|u| !u.is(login));
        }
    }
}

/// The repository role of `default_repository_permission` (`none`: no access).
pub fn base_permission(setting: &str) -> Option<Permission> {
    match setting {
        "read" => Some(Permission::Read),
        "write" => Some(Permission::Write),
        "admin" => Some(Permission::Admin),
        _ => None,
    }
}

/// Whether a `default_repository_permission` value is one GitHub knows.
pub fn valid_base_permission(setting: &str) -> bool {
    ["read", "write", "admin", "none"].contains(&setting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_stable_per_login() {
        assert_eq!(user_id("Octocat"), user_id("octocat"));
        assert_ne!(user_id("octocat"), user_id("hubot"));
        assert!((60_000_000..70_000_000).contains(&user_id("x")));
        assert_eq!(User::new("a".into(), Some(5)).id, 5);
    }

    #[test]
    fn roles_follow_membership_and_grants() {
        let mut access = Access::default();
        access.members.push(Member {
            user: User::new("owner".into(), None),
            role: OrgRole::Admin,
            two_factor: true,
        });
        access.members.push(Member {
            user: User::new("dev".into(), None),
            role: OrgRole::Member,
            two_factor: false,
        });
        access.outside.push(Outside {
            user: User::new("contractor".into(), None),
            two_factor: true,
            repositories: vec![("Site".into(), Permission::Admin)],
        });
        assert_eq!(access.role_on("x", "OWNER"), Some(Permission::Admin));
        assert_eq!(access.role_on("x", "dev"), Some(Permission::Read));
        assert_eq!(
            access.role_on("site", "contractor"),
            Some(Permission::Admin)
        );
        assert_eq!(access.role_on("other", "contractor"), None);
        access.settings.default_repository_permission = "none".into();
        assert_eq!(access.role_on("x", "dev"), None);
        assert!(Permission::Admin > Permission::Maintain);
        assert_eq!(Permission::from_key("push"), Some(Permission::Write));
        assert_eq!(Permission::Maintain.legacy(), "write");
    }
}
