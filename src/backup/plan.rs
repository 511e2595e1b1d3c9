//! Pure decisions for incremental backups: what to fetch for a new snapshot, which snapshots a
//! restore needs, and what retention may delete.
//!
//! # What to fetch ([`decide`])
//!
//! Inputs: the refs of the previous `ok` snapshot (name → oid, as [`super::refs::select_refs`]
//! chose them), the refs selected now, how many snapshots were taken since the last full one (0
//! when the previous snapshot is the full one) and `full_every` (a full snapshot every that many;
//! 1, or 0, means always full). In order:
//! 1. same refs as the previous snapshot → [`Decision::Unchanged`]: nothing fetched, nothing
//!    stored (and the count since the last full one does not move);
//! 2. no refs → [`Decision::Empty`]: an empty repository, no bundle (a bundle needs a ref);
//! 3. no previous snapshot, a previous one without refs, or `since_full + 1 >= full_every` →
//!    [`Decision::Full`]: want every distinct tip;
//! 4. otherwise [`Decision::Incremental`]: haves = prerequisites = the previous snapshot's
//!    distinct tips; wants = the current distinct tips that are not haves.
//!
//! An incremental whose wants are empty (a branch deleted, a tag or branch added or moved onto a
//! tip the previous snapshot already had) still changes the refs, so it is still a snapshot. Its
//! bundle needs no objects, and asking upload-pack for no wants is not a fetch, so the caller does
//! not contact the server: it stores the bundle header followed by [`super::pack::empty_pack`]
//! (`PACK`, version 2, 0 objects, SHA-1), which `git bundle verify` and `git fetch` accept (the
//! tests check it with real git). When the wants are not empty but everything they need is
//! already held (a branch moved back to an older commit), upload-pack itself answers with an
//! empty pack: the same outcome.
//!
//! Tags in haves and prerequisites are tag objects: upload-pack peels haves, and git accepts tag
//! objects as bundle prerequisites (checked with real git).
//!
//! Every bundle lists the *complete* selected refs of its snapshot, not only what changed: a
//! restore fetches the chain's bundles in order (`git fetch x.bundle '+refs/*:refs/*'`) and the
//! last one with `--prune` (or reads its ref list) to drop refs deleted along the way.
//!
//! # Restore chains ([`restore_chain`])
//!
//! A full snapshot stands alone; an incremental names the snapshot it was taken against
//! (`base`, the previous `ok` one). The chain of a snapshot is its full ancestor followed by the
//! incrementals down to it, in the order to apply them. Every link must exist and be `ok`.
//!
//! # Retention ([`retention`])
//!
//! A snapshot is *expired* when it finished before the cutoff, except unfinished (running) ones
//! and, while the repository is still connected (`keep_newest_ok`), the newest `ok` snapshot (a
//! repository whose backups stopped keeps its last one; a disconnected org's go with retention). An
//! expired snapshot's stored object may be deleted only when no kept snapshot's base links reach
//! it: a kept incremental keeps its full and every incremental in between alive. Links are
//! followed whatever their status (deleting less is the safe side), cycles and dangling bases
//! included. A running snapshot that will never finish must be marked failed by its caller.

use super::oid::Oid;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Ref name → oid.
pub type RefMap = BTreeMap<String, Oid>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Unchanged,
    Empty,
    Full {
        wants: Vec<Oid>,
    },
    Incremental {
        /// May be empty: see the module docs (store [`super::pack::empty_pack`]).
        wants: Vec<Oid>,
        haves: Vec<Oid>,
        prerequisites: Vec<Oid>,
    },
}

fn distinct(refs: &RefMap) -> Vec<Oid> {
    refs.values()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// What the next snapshot fetches; see the module docs.
pub fn decide(
    previous: Option<&RefMap>,
    current: &RefMap,
    since_full: u32,
    full_every: u32,
) -> Decision {
    if previous == Some(current) {
        return Decision::Unchanged;
    }
    if current.is_empty() {
        return Decision::Empty;
    }
    let wants = distinct(current);
    let previous = match previous {
        Some(p) if !p.is_empty() && since_full.saturating_add(1) < full_every.max(1) => p,
        _ => return Decision::Full { wants },
    };
    let haves = distinct(previous);
    let have_set: BTreeSet<Oid> = haves.iter().copied().collect();
    Decision::Incremental {
        wants: wants
            .into_iter()
            .filter(|w| !have_set.contains(w))
            .collect(),
        prerequisites: haves.clone(),
        haves,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    Full,
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStatus {
    Running,
    Ok,
    Failed,
}

/// What [`restore_chain`] and [`retention`] need of a snapshot record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub id: String,
    pub kind: SnapshotKind,
    /// The snapshot an incremental was taken against (ignored for a full one).
    pub base: Option<String>,
    pub status: SnapshotStatus,
    /// Unix seconds; `None` while running.
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    UnknownSnapshot(String),
    /// A snapshot in the chain is not `ok`.
    NotOk(String),
    /// An incremental without a base, or whose base is not among the records.
    MissingBase(String),
    /// The base links loop.
    Cycle(String),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::UnknownSnapshot(id) => write!(f, "unknown snapshot {id}"),
            ChainError::NotOk(id) => write!(f, "snapshot {id} in the restore chain is not ok"),
            ChainError::MissingBase(id) => {
                write!(f, "the base of incremental snapshot {id} is missing")
            }
            ChainError::Cycle(id) => write!(f, "snapshot base links loop at {id}"),
        }
    }
}

impl std::error::Error for ChainError {}

/// The snapshots to apply, in order, to restore snapshot `id`: its full ancestor first.
pub fn restore_chain<'a>(
    records: &'a [SnapshotRecord],
    id: &str,
) -> Result<Vec<&'a SnapshotRecord>, ChainError> {
    let by_id: BTreeMap<&str, &SnapshotRecord> =
        records.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut current = *by_id
        .get(id)
        .ok_or_else(|| ChainError::UnknownSnapshot(id.to_string()))?;
    let mut chain = Vec::new();
    let mut seen = BTreeSet::new();
    loop {
        if !seen.insert(current.id.as_str()) {
            return Err(ChainError::Cycle(current.id.clone()));
        }
        if current.status != SnapshotStatus::Ok {
            return Err(ChainError::NotOk(current.id.clone()));
        }
        chain.push(current);
        if current.kind == SnapshotKind::Full {
            break;
        }
        current = current
            .base
            .as_deref()
            .and_then(|b| by_id.get(b).copied())
            .ok_or_else(|| ChainError::MissingBase(current.id.clone()))?;
    }
    chain.reverse();
    Ok(chain)
}

/// What retention does with a set of snapshot records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Snapshots past retention: no longer offered for restore.
    pub expired: Vec<String>,
    /// Expired snapshots whose stored objects (bundles) may be deleted, and their records.
    pub delete: Vec<String>,
    /// Expired snapshots kept because a kept snapshot's chain needs them.
    pub kept_for_chains: Vec<String>,
}

/// Applies the retention cutoff (unix seconds); see the module docs. Lists are sorted by id.
pub fn retention(records: &[SnapshotRecord], cutoff: i64, keep_newest_ok: bool) -> RetentionPlan {
    let newest_ok = records
        .iter()
        .filter(|r| keep_newest_ok && r.status == SnapshotStatus::Ok)
        .max_by(|a, b| (a.finished_at, &a.id).cmp(&(b.finished_at, &b.id)))
        .map(|r| r.id.as_str());
    let is_expired = |r: &SnapshotRecord| {
        Some(r.id.as_str()) != newest_ok && r.finished_at.is_some_and(|t| t < cutoff)
    };
    let by_id: BTreeMap<&str, &SnapshotRecord> =
        records.iter().map(|r| (r.id.as_str(), r)).collect();
    // Everything reachable over base links from a kept snapshot.
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&SnapshotRecord> = records.iter().filter(|r| !is_expired(r)).collect();
    while let Some(r) = stack.pop() {
        if !needed.insert(r.id.as_str()) {
            continue;
        }
        if r.kind == SnapshotKind::Incremental {
            if let Some(base) = r.base.as_deref().and_then(|b| by_id.get(b)) {
                stack.push(base);
            }
        }
    }
    let mut plan = RetentionPlan::default();
    let expired: BTreeSet<&str> = records
        .iter()
        .filter(|r| is_expired(r))
        .map(|r| r.id.as_str())
        .collect();
    for id in expired {
        plan.expired.push(id.to_string());
        if needed.contains(id) {
            plan.kept_for_chains.push(id.to_string());
        } else {
            plan.delete.push(id.to_string());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> Oid {
        Oid::from_bytes([n; 20])
    }

    fn refs(list: &[(&str, u8)]) -> RefMap {
        list.iter().map(|(n, o)| (n.to_string(), oid(*o))).collect()
    }

    #[test]
    fn unchanged_empty_and_full() {
        let a = refs(&[("HEAD", 1), ("refs/heads/main", 1), ("refs/tags/v1", 2)]);
        assert_eq!(decide(Some(&a), &a, 0, 7), Decision::Unchanged);
        assert_eq!(decide(Some(&a), &a, 99, 1), Decision::Unchanged);
        assert_eq!(
            decide(Some(&RefMap::new()), &RefMap::new(), 0, 7),
            Decision::Unchanged
        );
        assert_eq!(decide(None, &RefMap::new(), 0, 7), Decision::Empty);
        assert_eq!(decide(Some(&a), &RefMap::new(), 0, 7), Decision::Empty);
        assert_eq!(
            decide(None, &a, 0, 7),
            Decision::Full {
                wants: vec![oid(1), oid(2)]
            }
        );
        // After an empty snapshot there is nothing to build on.
        assert_eq!(
            decide(Some(&RefMap::new()), &a, 0, 7),
            Decision::Full {
                wants: vec![oid(1), oid(2)]
            }
        );
    }

    #[test]
    fn full_every_counts_the_chain() {
        let a = refs(&[("refs/heads/main", 1)]);
        let b = refs(&[("refs/heads/main", 2)]);
        let is_full =
            |since, every| matches!(decide(Some(&a), &b, since, every), Decision::Full { .. });
        // 1 (and 0): always full.
        assert!(is_full(0, 1) && is_full(5, 1) && is_full(0, 0));
        // 3: a full, then two incrementals, then a full.
        assert!(!is_full(0, 3));
        assert!(!is_full(1, 3));
        assert!(is_full(2, 3));
        assert!(is_full(3, 3));
        assert!(!is_full(u32::MAX - 2, u32::MAX));
        assert!(is_full(u32::MAX - 1, u32::MAX));
        assert!(is_full(u32::MAX, u32::MAX));
    }

    #[test]
    fn incremental_wants_new_tips_only() {
        let prev = refs(&[
            ("HEAD", 1),
            ("refs/heads/main", 1),
            ("refs/heads/dev", 2),
            ("refs/tags/v1", 3),
        ]);
        let cur = refs(&[
            ("HEAD", 4),
            ("refs/heads/main", 4),
            ("refs/heads/dev", 2),
            ("refs/tags/v1", 3),
            ("refs/tags/v2", 5),
        ]);
        assert_eq!(
            decide(Some(&prev), &cur, 0, 10),
            Decision::Incremental {
                wants: vec![oid(4), oid(5)],
                haves: vec![oid(1), oid(2), oid(3)],
                prerequisites: vec![oid(1), oid(2), oid(3)],
            }
        );
    }

    #[test]
    fn deleted_branch_and_force_push() {
        let prev = refs(&[("refs/heads/main", 1), ("refs/heads/gone", 2)]);
        // Deleted branch only: a snapshot with nothing to fetch.
        let cur = refs(&[("refs/heads/main", 1)]);
        assert_eq!(
            decide(Some(&prev), &cur, 0, 10),
            Decision::Incremental {
                wants: vec![],
                haves: vec![oid(1), oid(2)],
                prerequisites: vec![oid(1), oid(2)]
            }
        );
        // A new branch on an existing tip: same.
        let cur = refs(&[
            ("refs/heads/main", 1),
            ("refs/heads/gone", 2),
            ("refs/heads/copy", 2),
        ]);
        assert!(
            matches!(decide(Some(&prev), &cur, 0, 10), Decision::Incremental { wants, .. } if wants.is_empty())
        );
        // Force-push: main rewritten to an unrelated commit; the old tip is still a have.
        let cur = refs(&[("refs/heads/main", 9), ("refs/heads/gone", 2)]);
        assert_eq!(
            decide(Some(&prev), &cur, 0, 10),
            Decision::Incremental {
                wants: vec![oid(9)],
                haves: vec![oid(1), oid(2)],
                prerequisites: vec![oid(1), oid(2)]
            }
        );
    }

    fn rec(
        id: &str,
        kind: SnapshotKind,
        base: Option<&str>,
        status: SnapshotStatus,
        at: Option<i64>,
    ) -> SnapshotRecord {
        SnapshotRecord {
            id: id.into(),
            kind,
            base: base.map(Into::into),
            status,
            finished_at: at,
        }
    }

    use SnapshotKind::{Full, Incremental as Inc};
    use SnapshotStatus::{Failed, Ok as Good, Running};

    fn history() -> Vec<SnapshotRecord> {
        vec![
            rec("f1", Full, None, Good, Some(100)),
            rec("i1", Inc, Some("f1"), Good, Some(200)),
            rec("x1", Inc, Some("i1"), Failed, Some(250)),
            rec("i2", Inc, Some("i1"), Good, Some(300)),
            rec("f2", Full, None, Good, Some(400)),
            rec("i3", Inc, Some("f2"), Good, Some(500)),
        ]
    }

    fn ids(chain: &[&SnapshotRecord]) -> Vec<String> {
        chain.iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn chains() {
        let h = history();
        assert_eq!(ids(&restore_chain(&h, "f1").unwrap()), ["f1"]);
        assert_eq!(ids(&restore_chain(&h, "i2").unwrap()), ["f1", "i1", "i2"]);
        assert_eq!(ids(&restore_chain(&h, "i3").unwrap()), ["f2", "i3"]);
        assert_eq!(
            restore_chain(&h, "nope"),
            Err(ChainError::UnknownSnapshot("nope".into()))
        );
        assert_eq!(restore_chain(&h, "x1"), Err(ChainError::NotOk("x1".into())));
        let mut broken = h.clone();
        broken.retain(|r| r.id != "i1");
        assert_eq!(
            restore_chain(&broken, "i2"),
            Err(ChainError::MissingBase("i2".into()))
        );
        let mut bad_base = h.clone();
        bad_base[3].base = Some("x1".into());
        assert_eq!(
            restore_chain(&bad_base, "i2"),
            Err(ChainError::NotOk("x1".into()))
        );
        let mut no_base = h.clone();
        no_base[1].base = None;
        assert_eq!(
            restore_chain(&no_base, "i1"),
            Err(ChainError::MissingBase("i1".into()))
        );
        let looped = vec![
            rec("a", Inc, Some("b"), Good, Some(1)),
            rec("b", Inc, Some("a"), Good, Some(2)),
        ];
        assert_eq!(
            restore_chain(&looped, "a"),
            Err(ChainError::Cycle("a".into()))
        );
    }

    #[test]
    fn retention_keeps_what_kept_chains_need() {
        let h = history();
        // Cutoff 350: f1, i1, x1, i2 expire; nothing kept needs them (f2 is full).
        let p = retention(&h, 350, true);
        assert_eq!(p.expired, ["f1", "i1", "i2", "x1"]);
        assert_eq!(p.delete, ["f1", "i1", "i2", "x1"]);
        assert!(p.kept_for_chains.is_empty());
        // Cutoff 250: f1 and i1 expire, but kept i2 needs both; x1 (failed, 250) is not expired.
        let p = retention(&h, 250, true);
        assert_eq!(p.expired, ["f1", "i1"]);
        assert!(p.delete.is_empty());
        assert_eq!(p.kept_for_chains, ["f1", "i1"]);
        // Cutoff 260: the failed x1 expires and goes; f1, i1 are still needed by i2.
        let p = retention(&h, 260, true);
        assert_eq!(p.delete, ["x1"]);
        assert_eq!(p.kept_for_chains, ["f1", "i1"]);
        // Cutoff 450: f2 expired but kept alive by i3.
        let p = retention(&h, 450, true);
        assert_eq!(p.kept_for_chains, ["f2"]);
        assert_eq!(p.delete, ["f1", "i1", "i2", "x1"]);
    }

    #[test]
    fn a_disconnected_repository_keeps_nothing_past_retention() {
        let h = history();
        let p = retention(&h, 10_000, false);
        assert_eq!(p.expired, p.delete, "everything finished expires and goes");
        assert!(p.kept_for_chains.is_empty());
        assert_eq!(p.expired.len(), h.len());
        // Within retention, chains are still whole.
        assert_eq!(retention(&h, 250, false), retention(&h, 250, true));
    }

    #[test]
    fn retention_never_drops_the_newest_ok_or_running_snapshots() {
        let mut h = history();
        h.push(rec("r1", Inc, Some("i3"), Running, None));
        h.push(rec("x2", Full, None, Failed, Some(600)));
        // Everything finished before the cutoff; i3 is the newest ok one and stays with f2.
        let p = retention(&h, 10_000, true);
        assert!(!p.expired.contains(&"i3".to_string()));
        assert_eq!(p.kept_for_chains, ["f2"]);
        assert!(p.delete.contains(&"x2".to_string()));
        assert!(!p.expired.contains(&"r1".to_string()));
        // A running incremental keeps its base chain even when nothing else does.
        let h = vec![
            rec("f", Full, None, Good, Some(1)),
            rec("i", Inc, Some("f"), Good, Some(2)),
            rec("g", Full, None, Good, Some(3)),
            rec("r", Inc, Some("i"), Running, None),
        ];
        let p = retention(&h, 100, true);
        assert_eq!(p.expired, ["f", "i"]);
        assert_eq!(p.kept_for_chains, ["f", "i"]);
        assert!(p.delete.is_empty());
        // Loops and dangling bases do not hang or panic.
        let h = vec![
            rec("a", Inc, Some("b"), Good, Some(1)),
            rec("b", Inc, Some("a"), Good, Some(2)),
            rec("c", Inc, Some("a"), Running, None),
            rec("d", Inc, Some("zz"), Good, Some(4)),
        ];
        let p = retention(&h, 100, true);
        assert_eq!(p.expired, ["a", "b"]);
        assert_eq!(p.kept_for_chains, ["a", "b"]);
        assert!(p.delete.is_empty());
        // The loop alone: b is the newest ok snapshot and its base link keeps a.
        let p = retention(&h[..2], 100, true);
        assert_eq!(p.expired, ["a"]);
        assert_eq!(p.kept_for_chains, ["a"]);
    }
}
