//! One GitLab instance: users, groups nested by `parent_id`, and projects.
//!
//! A group's `full_path` is its parent's plus `/` and its path; a user's access to a group is
//! the highest level of its memberships in the group and the group's ancestors (subgroups
//! inherit members). Project ids are allocated instance-wide, increasing and never reused;
//! generated projects are named `{group path}-repo-{n:03}`, numbering continued per group.

use std::collections::{BTreeMap, HashSet};

/// Owner, GitLab's highest group access level and the default for admin-created members.
pub const OWNER: u32 = 50;
/// The access levels GitLab knows (`min_access_level` accepts these).
pub const ACCESS_LEVELS: [u32; 6] = [10, 15, 20, 30, 40, 50];
/// The levels a member may hold: those and 5, minimal access.
pub const MEMBER_LEVELS: [u32; 7] = [5, 10, 15, 20, 30, 40, 50];
/// Maintainer: the level protected branches need.
pub const MAINTAINER: u32 = 40;
/// Developer: the level approval rules need.
pub const DEVELOPER: u32 = 30;
/// Guest: the lowest level that sees a group's projects (minimal access does not).
pub const GUEST: u32 = 10;
/// The access levels of protected branches' push and merge rules.
pub const BRANCH_LEVELS: [u32; 4] = [0, 30, 40, 60];
pub const VISIBILITIES: [&str; 3] = ["private", "internal", "public"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: u64,
    pub name: String,
    pub path: String,
    pub parent_id: Option<u64>,
    pub visibility: String,
    /// Direct members: user id → access level.
    pub members: BTreeMap<u64, u32>,
    pub require_two_factor_authentication: bool,
    /// Hours members have to set up 2FA (GitLab's default 48).
    pub two_factor_grace_period: u32,
    /// Next number for generated projects.
    next_generated: u32,
}

/// A protected branch (or wildcard) of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedBranch {
    pub id: u64,
    pub name: String,
    /// `(rule id, access level)`.
    pub push: (u64, u32),
    pub merge: (u64, u32),
    pub allow_force_push: bool,
    pub code_owner_approval_required: bool,
}

/// A project-level merge request approval rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRule {
    pub id: u64,
    pub name: String,
    /// `regular` or `any_approver`.
    pub rule_type: String,
    pub approvals_required: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: u64,
    pub group_id: u64,
    pub name: String,
    pub path: String,
    pub visibility: String,
    pub archived: bool,
    pub default_branch: String,
    pub protected_branches: Vec<ProtectedBranch>,
    pub approval_rules: Vec<ApprovalRule>,
}

/// A group to create through the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewGroup {
    pub name: String,
    pub path: String,
    pub parent_id: Option<u64>,
    pub visibility: Option<String>,
    /// User id → access level.
    pub members: BTreeMap<u64, u32>,
}

/// A project given by name (admin API); `path` defaults to the name made URL-safe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedProject {
    pub name: String,
    pub path: Option<String>,
    pub visibility: Option<String>,
    pub archived: bool,
    pub default_branch: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Instance {
    users: BTreeMap<u64, User>,
    default_user: Option<u64>,
    groups: BTreeMap<u64, Group>,
    projects: BTreeMap<u64, Project>,
    last_project_id: u64,
    /// Last id of protected branches, their access levels and approval rules.
    last_rule_id: u64,
}

impl Instance {
    /// Creates or replaces a user; the first one becomes the default user.
    pub fn put_user(&mut self, user: User) {
        self.default_user.get_or_insert(user.id);
        self.users.insert(user.id, user);
    }

    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.get(&id)
    }

    /// Chooses the default signed-in user; false when there is no such user.
    pub fn set_default_user(&mut self, id: u64) -> bool {
        let known = self.users.contains_key(&id);
        if known {
            self.default_user = Some(id);
        }
        known
    }

    pub fn default_user(&self) -> Option<&User> {
        self.default_user.and_then(|id| self.users.get(&id))
    }

    pub fn group(&self, id: u64) -> Option<&Group> {
        self.groups.get(&id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// A group by numeric id or by full path (case-insensitive).
    pub fn find_group(&self, key: &str) -> Option<&Group> {
        match key.parse::<u64>() {
            Ok(id) => self.groups.get(&id),
            Err(_) => self
                .groups
                .values()
                .find(|g| self.full_path(g.id).eq_ignore_ascii_case(key)),
        }
    }

    /// The group and its ancestors, nearest first.
    fn lineage(&self, id: u64) -> impl Iterator<Item = &Group> {
        std::iter::successors(self.groups.get(&id), |g| {
            g.parent_id.and_then(|p| self.groups.get(&p))
        })
    }

    pub fn full_path(&self, id: u64) -> String {
        let mut paths: Vec<&str> = self.lineage(id).map(|g| g.path.as_str()).collect();
        paths.reverse();
        paths.join("/")
    }

    /// Names from the top-level group down, joined with ` / ` (GitLab's `full_name`).
    pub fn full_name(&self, id: u64) -> String {
        let mut names: Vec<&str> = self.lineage(id).map(|g| g.name.as_str()).collect();
        names.reverse();
        names.join(" / ")
    }

    /// The user's access level in a group, memberships of ancestors included.
    pub fn access_level(&self, group_id: u64, user_id: u64) -> Option<u32> {
        self.lineage(group_id)
            .filter_map(|g| g.members.get(&user_id).copied())
            .max()
    }

    /// The group and every group below it.
    pub fn subtree(&self, id: u64) -> HashSet<u64> {
        let mut found = HashSet::from([id]);
        loop {
            let before = found.len();
            found.extend(
                self.groups
                    .values()
                    .filter(|g| g.parent_id.is_some_and(|p| found.contains(&p)))
                    .map(|g| g.id)
                    .collect::<Vec<_>>(),
            );
            if found.len() == before {
                return found;
            }
        }
    }

    pub fn projects(&self) -> impl Iterator<Item = &Project> {
        self.projects.values()
    }

    /// Creates or replaces a group (a replaced group loses its projects and keeps its
    /// subgroups). Checks the parent, the members and the path's uniqueness.
    pub fn put_group(&mut self, id: u64, new: NewGroup) -> Result<(), String> {
        let NewGroup {
            name,
            path,
            parent_id,
            visibility,
            members,
        } = new;
        let path_ok = !path.is_empty()
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !path_ok {
            return Err(format!("bad group path {path:?}"));
        }
        if let Some(parent) = parent_id {
            if !self.groups.contains_key(&parent) {
                return Err(format!("no parent group {parent}"));
            }
            if self.lineage(parent).any(|g| g.id == id) {
                return Err(format!("group {parent} is inside group {id}"));
            }
        }
        if let Some(unknown) = members.keys().find(|u| !self.users.contains_key(u)) {
            return Err(format!("no user {unknown}"));
        }
        if let Some(level) = members.values().find(|l| !MEMBER_LEVELS.contains(l)) {
            return Err(format!("bad access level {level}"));
        }
        let visibility = checked_visibility(visibility)?;
        let taken = self
            .groups
            .values()
            .any(|g| g.id != id && g.parent_id == parent_id && g.path.eq_ignore_ascii_case(&path));
        if taken {
            return Err(format!("a sibling group already has the path {path:?}"));
        }
        self.projects.retain(|_, p| p.group_id != id);
        self.groups.insert(
            id,
            Group {
                id,
                name,
                path,
                parent_id,
                visibility,
                members,
                require_two_factor_authentication: false,
                two_factor_grace_period: 48,
                next_generated: 1,
            },
        );
        Ok(())
    }

    /// Deletes a group with its subgroups and their projects; false when unknown.
    pub fn delete_group(&mut self, id: u64) -> bool {
        if !self.groups.contains_key(&id) {
            return false;
        }
        let doomed = self.subtree(id);
        self.groups.retain(|g, _| !doomed.contains(g));
        self.projects.retain(|_, p| !doomed.contains(&p.group_id));
        true
    }

    /// Appends `count` generated projects to a group: `{path}-repo-{n:03}`, visibility
    /// cycling private, internal, public.
    pub fn add_generated(&mut self, group_id: u64, count: u32) -> Result<(), String> {
        for _ in 0..count {
            let group = self.group_mut(group_id)?;
            let n = group.next_generated;
            group.next_generated += 1;
            let name = format!("{}-repo-{n:03}", group.path);
            let visibility = VISIBILITIES[(n as usize + 2) % 3].to_string();
            self.push_project(group_id, name.clone(), name, visibility, false, None);
        }
        Ok(())
    }

    pub fn add_named(&mut self, group_id: u64, spec: NamedProject) -> Result<(), String> {
        self.group_mut(group_id)?;
        let visibility = checked_visibility(spec.visibility)?;
        let path = spec.path.unwrap_or_else(|| slug(&spec.name));
        self.push_project(
            group_id,
            spec.name,
            path,
            visibility,
            spec.archived,
            spec.default_branch,
        );
        Ok(())
    }

    /// Removes projects of a group by id (ids of other groups are ignored).
    pub fn remove_projects(&mut self, group_id: u64, ids: &HashSet<u64>) {
        self.projects
            .retain(|id, p| p.group_id != group_id || !ids.contains(id));
    }

    pub fn group_mut(&mut self, id: u64) -> Result<&mut Group, String> {
        self.groups
            .get_mut(&id)
            .ok_or_else(|| format!("no group {id}"))
    }

    fn push_project(
        &mut self,
        group_id: u64,
        name: String,
        path: String,
        visibility: String,
        archived: bool,
        default_branch: Option<String>,
    ) {
        self.last_project_id += 1;
        let id = self.last_project_id;
        self.projects.insert(
            id,
            Project {
                id,
                group_id,
                name,
                path,
                visibility,
                archived,
                default_branch: default_branch.unwrap_or_else(|| "main".into()),
                protected_branches: Vec::new(),
                approval_rules: Vec::new(),
            },
        );
    }

    pub fn project(&self, id: u64) -> Option<&Project> {
        self.projects.get(&id)
    }

    pub fn project_mut(&mut self, id: u64) -> Result<&mut Project, String> {
        self.projects
            .get_mut(&id)
            .ok_or_else(|| format!("no project {id}"))
    }

    /// A project by numeric id or by `path_with_namespace` (case-insensitive).
    pub fn find_project(&self, key: &str) -> Option<&Project> {
        match key.parse::<u64>() {
            Ok(id) => self.projects.get(&id),
            Err(_) => self.projects.values().find(|p| {
                format!("{}/{}", self.full_path(p.group_id), p.path).eq_ignore_ascii_case(key)
            }),
        }
    }

    /// The next id of a protected branch, one of its access levels or an approval rule.
    pub fn next_rule_id(&mut self) -> u64 {
        self.last_rule_id += 1;
        self.last_rule_id
    }

    /// Sets a member's level in a group (checked like `put_group`'s members).
    pub fn set_member(&mut self, group_id: u64, user_id: u64, level: u32) -> Result<(), String> {
        if !self.users.contains_key(&user_id) {
            return Err(format!("no user {user_id}"));
        }
        if !MEMBER_LEVELS.contains(&level) {
            return Err(format!("bad access level {level}"));
        }
        self.group_mut(group_id)?.members.insert(user_id, level);
        Ok(())
    }

    /// The members of a group and its ancestors, each at their highest level, by user id.
    pub fn inherited_members(&self, group_id: u64) -> Vec<(&User, u32)> {
        let mut levels: BTreeMap<u64, u32> = BTreeMap::new();
        for group in self.lineage(group_id) {
            for (user, level) in &group.members {
                let entry = levels.entry(*user).or_insert(*level);
                *entry = (*entry).max(*level);
            }
        }
        levels
            .into_iter()
            .filter_map(|(id, level)| self.users.get(&id).map(|u| (u, level)))
            .collect()
    }
}

fn checked_visibility(visibility: Option<String>) -> Result<String, String> {
    let visibility = visibility.unwrap_or_else(|| "private".into());
    if VISIBILITIES.contains(&visibility.as_str()) {
        Ok(visibility)
    } else {
        Err(format!("bad visibility {visibility:?}"))
    }
}

/// A project path from its name: lowercase, runs of other characters become `-`.
fn slug(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|p| !p.is_empty())
        .collect();
    parts.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u64) -> User {
        User {
            id,
            username: format!("user{id}"),
            name: format!("User {id}"),
        }
    }

    fn members(ids: &[u64]) -> BTreeMap<u64, u32> {
        ids.iter().map(|&id| (id, OWNER)).collect()
    }

    fn instance() -> Instance {
        let mut inst = Instance::default();
        inst.put_user(user(7));
        inst.put_user(user(8));
        let group = |inst: &mut Instance, id, path: &str, parent_id, who: &[u64]| {
            let new = NewGroup {
                name: path.to_uppercase(),
                path: path.into(),
                parent_id,
                members: members(who),
                ..NewGroup::default()
            };
            inst.put_group(id, new).unwrap()
        };
        group(&mut inst, 1, "acme", None, &[7]);
        group(&mut inst, 2, "sub", Some(1), &[8]);
        group(&mut inst, 3, "deep", Some(2), &[]);
        inst
    }

    #[test]
    fn paths_names_and_inherited_access() {
        let inst = instance();
        assert_eq!(inst.full_path(3), "acme/sub/deep");
        assert_eq!(inst.full_name(3), "ACME / SUB / DEEP");
        assert_eq!(inst.find_group("ACME/sub").map(|g| g.id), Some(2));
        assert_eq!(inst.find_group("2").map(|g| g.id), Some(2));
        assert_eq!(inst.access_level(3, 7), Some(OWNER));
        assert_eq!(inst.access_level(3, 8), Some(OWNER));
        assert_eq!(inst.access_level(1, 8), None);
        assert_eq!(inst.subtree(2), HashSet::from([2, 3]));
        assert_eq!(inst.default_user().map(|u| u.id), Some(7), "first user");
    }

    #[test]
    fn bad_groups_are_refused() {
        let mut inst = instance();
        let mut put = |id, path: &str, parent_id, who: &[u64]| {
            let new = NewGroup {
                name: "x".into(),
                path: path.into(),
                parent_id,
                members: members(who),
                ..NewGroup::default()
            };
            inst.put_group(id, new)
        };
        assert!(put(4, "x", Some(99), &[]).is_err(), "unknown parent");
        assert!(put(1, "acme", Some(3), &[]).is_err(), "cycle");
        assert!(put(4, "x", None, &[99]).is_err(), "unknown member");
        assert!(put(4, "SUB", Some(1), &[]).is_err(), "sibling path taken");
        assert!(put(4, "a/b", None, &[]).is_err());
        assert!(
            put(4, "sub", None, &[]).is_ok(),
            "same path elsewhere is fine"
        );
    }

    #[test]
    fn project_ids_are_never_reused() {
        let mut inst = instance();
        inst.add_generated(1, 3).unwrap();
        inst.add_named(
            2,
            NamedProject {
                name: "My Web App".into(),
                ..NamedProject::default()
            },
        )
        .unwrap();
        inst.remove_projects(1, &HashSet::from([2, 4]));
        inst.add_generated(1, 1).unwrap();
        let listed: Vec<(u64, &str, &str)> = inst
            .projects()
            .map(|p| (p.id, p.path.as_str(), p.visibility.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (1, "acme-repo-001", "private"),
                (3, "acme-repo-003", "public"),
                (4, "my-web-app", "private"),
                (5, "acme-repo-004", "private"),
            ],
            "project 4 belongs to another group and stays"
        );
        assert!(inst.delete_group(2));
        assert_eq!(inst.projects().map(|p| p.id).collect::<Vec<_>>(), [1, 3, 5]);
        assert!(inst.group(3).is_none(), "subgroups go too");
        assert!(!inst.delete_group(2));
        inst.add_generated(1, 1).unwrap();
        assert_eq!(inst.projects().last().unwrap().id, 6);
        assert!(inst.add_generated(9, 1).is_err());
    }
}
