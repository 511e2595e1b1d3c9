//! Backups at the edge: the executor that takes each `backup_job.v1` into R2 (`executor`),
//! retention passes that expire snapshots and delete bundles no kept chain needs
//! (`retention`), and the portal's snapshot routes: lists, manifests, restore chains, bundles
//! and "back up now" (`snapshots`). The git protocol itself is plain Rust in `crate::backup`.

pub mod executor;
pub mod retention;
pub mod snapshots;
