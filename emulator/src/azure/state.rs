//! The Microsoft directory as the emulator knows it: users (by GUID) and Azure DevOps
//! organizations with their members, projects and Git repositories.
//!
//! Organization names are matched case-insensitively, as Azure DevOps does, and so are
//! project names within an organization. Generated repositories are named
//! `{project}-repo-{n:03}`, numbering continued per project; every id is a random GUID.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};

use crate::oauth::random_bytes;

pub const VISIBILITIES: [&str; 2] = ["private", "public"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub display_name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub id: String,
    pub name: String,
    pub size: u64,
    /// Branch policies scoped to this repository (`audit.rs`).
    pub policies: Vec<Policy>,
}

/// A branch policy configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: u64,
    /// The policy type's id and display name.
    pub type_id: &'static str,
    pub type_name: &'static str,
    pub enabled: bool,
    pub blocking: bool,
    /// `refs/heads/…`.
    pub ref_name: String,
    /// `Exact` or `Prefix`.
    pub match_kind: &'static str,
    /// The type's settings, without `scope`.
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub visibility: String,
    pub last_update: DateTime<Utc>,
    pub repos: Vec<Repo>,
    next_generated: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub members: BTreeSet<String>,
    pub projects: Vec<Project>,
    /// Members' access levels (`accountLicenseType`) other than `express` (Basic).
    pub licenses: BTreeMap<String, String>,
    /// What `GET /vsaex/{org}/_apis/userentitlements` answers instead (401 or 403).
    pub entitlements_denied: Option<u16>,
    /// Last branch policy id.
    pub last_policy_id: u64,
}

/// A project to create through the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewProject {
    pub name: String,
    pub id: Option<String>,
    pub visibility: Option<String>,
    /// Generated repositories to add.
    pub generated: u32,
    pub named: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Directory {
    users: BTreeMap<String, User>,
    default_user: Option<String>,
    /// By lowercase name.
    orgs: BTreeMap<String, Org>,
}

impl Directory {
    /// Creates or replaces a user; the first one becomes the default user.
    pub fn put_user(&mut self, user: User) {
        self.default_user.get_or_insert_with(|| user.id.clone());
        self.users.insert(user.id.clone(), user);
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(&id.to_ascii_lowercase())
    }

    pub fn set_default_user(&mut self, id: &str) -> bool {
        let known = self.user(id).is_some();
        if known {
            self.default_user = Some(id.to_ascii_lowercase());
        }
        known
    }

    pub fn default_user(&self) -> Option<&User> {
        self.default_user.as_deref().and_then(|id| self.user(id))
    }

    pub fn org(&self, name: &str) -> Option<&Org> {
        self.orgs.get(&name.to_ascii_lowercase())
    }

    /// The organizations a user is a member of, by name.
    pub fn orgs_of<'d>(&'d self, user_id: &'d str) -> impl Iterator<Item = &'d Org> {
        self.orgs
            .values()
            .filter(move |o| o.members.contains(user_id))
    }

    /// Creates or replaces an organization (a replaced one keeps its id unless given one).
    pub fn put_org(
        &mut self,
        name: &str,
        id: Option<String>,
        members: Vec<String>,
        projects: Vec<NewProject>,
    ) -> Result<&Org, String> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("bad organization name {name:?}"));
        }
        let id = match id {
            Some(id) => checked_guid(&id)?,
            None => self.org(name).map_or_else(new_guid, |o| o.id.clone()),
        };
        let members: BTreeSet<String> = members.iter().map(|m| m.to_ascii_lowercase()).collect();
        if let Some(unknown) = members.iter().find(|m| !self.users.contains_key(*m)) {
            return Err(format!("no user {unknown}"));
        }
        let mut org = Org {
            id,
            name: name.to_string(),
            members,
            projects: Vec::new(),
            licenses: BTreeMap::new(),
            entitlements_denied: None,
            last_policy_id: 0,
        };
        for spec in projects {
            if org.project(&spec.name).is_some() {
                return Err(format!("two projects named {:?}", spec.name));
            }
            let visibility = spec.visibility.unwrap_or_else(|| "private".into());
            if !VISIBILITIES.contains(&visibility.as_str()) {
                return Err(format!("bad visibility {visibility:?}"));
            }
            let mut project = Project {
                id: spec
                    .id
                    .as_deref()
                    .map_or_else(|| Ok(new_guid()), checked_guid)?,
                name: spec.name,
                visibility,
                last_update: Utc::now(),
                repos: Vec::new(),
                next_generated: 1,
            };
            project.add_generated(spec.generated);
            spec.named.into_iter().for_each(|n| project.add_named(n));
            org.projects.push(project);
        }
        let key = name.to_ascii_lowercase();
        self.orgs.insert(key.clone(), org);
        Ok(&self.orgs[&key])
    }

    pub fn delete_org(&mut self, name: &str) -> bool {
        self.orgs.remove(&name.to_ascii_lowercase()).is_some()
    }

    pub fn org_mut(&mut self, name: &str) -> Option<&mut Org> {
        self.orgs.get_mut(&name.to_ascii_lowercase())
    }

    pub fn project_mut(&mut self, org: &str, project: &str) -> Option<&mut Project> {
        self.orgs
            .get_mut(&org.to_ascii_lowercase())?
            .projects
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(project) || p.id.eq_ignore_ascii_case(project))
    }
}

impl Org {
    /// A member's `accountLicenseType` (`express` unless set).
    pub fn license(&self, user: &str) -> &str {
        self.licenses.get(user).map_or("express", String::as_str)
    }

    /// A project by id or name (case-insensitive).
    pub fn project(&self, key: &str) -> Option<&Project> {
        self.projects
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(key) || p.name.eq_ignore_ascii_case(key))
    }
}

impl Project {
    pub fn add_generated(&mut self, count: u32) {
        for _ in 0..count {
            let n = self.next_generated;
            self.next_generated += 1;
            let name = format!("{}-repo-{n:03}", self.name.replace(' ', "-"));
            self.add_named(name);
        }
    }

    pub fn add_named(&mut self, name: String) {
        let size = 1024 * (self.repos.len() as u64 + 1);
        self.repos.push(Repo {
            id: new_guid(),
            name,
            size,
            policies: Vec::new(),
        });
        self.last_update = Utc::now();
    }

    pub fn remove_ids(&mut self, ids: &HashSet<String>) {
        self.repos.retain(|r| !ids.contains(&r.id));
        self.last_update = Utc::now();
    }
}

/// A random GUID, lowercase 8-4-4-4-12 (version 4).
pub fn new_guid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A GUID in lowercase, or an error naming it.
pub fn checked_guid(text: &str) -> Result<String, String> {
    let groups: Vec<&str> = text.split('-').collect();
    let shaped = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if shaped {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{text:?} is not a GUID"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "0d5e1c9a-0000-4000-8000-00000000d001";

    fn directory() -> Directory {
        let mut dir = Directory::default();
        dir.put_user(User {
            id: ALICE.into(),
            display_name: "Alice".into(),
            email: "alice@example.com".into(),
        });
        dir
    }

    #[test]
    fn guids_are_random_v4_and_checked() {
        let (a, b) = (new_guid(), new_guid());
        assert_ne!(a, b);
        assert_eq!(checked_guid(&a), Ok(a.clone()));
        assert_eq!(&a[14..15], "4");
        assert_eq!(
            checked_guid("0D5E1C9A-0000-4000-8000-00000000D001").unwrap(),
            ALICE
        );
        assert!(checked_guid("0d5e1c9a-0000-4000-8000").is_err());
        assert!(checked_guid("0d5e1c9a-0000-4000-8000-00000000d00g").is_err());
    }

    #[test]
    fn orgs_keep_their_id_and_number_repositories() {
        let mut dir = directory();
        let project = |name: &str, generated| NewProject {
            name: name.into(),
            generated,
            named: vec!["extra".into()],
            ..NewProject::default()
        };
        let id = dir
            .put_org(
                "Contoso",
                None,
                vec![ALICE.to_uppercase()],
                vec![project("Web App", 2)],
            )
            .unwrap()
            .id
            .clone();
        let org = dir
            .put_org("contoso", None, vec![], vec![project("web", 1)])
            .unwrap();
        assert_eq!(org.id, id, "replaced, same id");
        assert_eq!(org.name, "contoso");
        assert!(dir.orgs_of(ALICE).next().is_none());

        let org = dir
            .put_org(
                "contoso",
                None,
                vec![ALICE.into()],
                vec![project("Web App", 2)],
            )
            .unwrap();
        let names: Vec<&str> = org.projects[0]
            .repos
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["Web-App-repo-001", "Web-App-repo-002", "extra"]);
        assert_eq!(dir.orgs_of(ALICE).count(), 1);
        let first = dir.org("CONTOSO").unwrap().projects[0].repos[0].id.clone();
        let web = dir.project_mut("contoso", "web app").unwrap();
        web.remove_ids(&HashSet::from([first]));
        web.add_generated(1);
        let names: Vec<&str> = web.repos.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Web-App-repo-002", "extra", "Web-App-repo-003"]);

        assert!(dir
            .put_org("x", None, vec!["unknown".into()], vec![])
            .is_err());
        assert!(dir.put_org("bad name", None, vec![], vec![]).is_err());
        assert!(dir
            .put_org("x", None, vec![], vec![project("a", 0), project("A", 0)])
            .is_err());
        assert!(dir.delete_org("Contoso"));
        assert!(dir.org("contoso").is_none());
    }
}
