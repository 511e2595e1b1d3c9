//! A plan past one database (docs/scale.md): days of the gateway's work simulated on the real
//! schema (every file of `migrations/`) with the real statements (`onecode_edge::sql`), natively
//! in SQLite, the engine under D1. It measures rows, bytes and statements per tenant, org,
//! repository, delivery and snapshot, extrapolates them to 1,000 MSPs × 100 orgs × 500
//! repositories, and checks the figures docs/scale.md states.
//!
//! - `cargo test --test scale`: a small sample, checked against the document with a wide
//!   tolerance (a schema or statement change that moves a figure fails here).
//! - `scripts/scale`: the full sample, its figures printed and checked with a narrow one.

mod db;
mod doc;
mod figures;
mod github;
mod sim;

use sim::Sample;

/// The document's figures come from this sample (`scripts/scale`).
const FULL: Sample = Sample {
    tenants: 2,
    orgs_per_tenant: 2,
    repositories_per_org: 500,
    days: 15,
};
const FULL_TOLERANCE: f64 = 0.05;

/// Small enough for every `cargo test`; orgs of the fleet's size, so per-org figures compare.
const SMALL: Sample = Sample {
    tenants: 1,
    orgs_per_tenant: 1,
    repositories_per_org: 500,
    days: 2,
};
/// Its tables are small: their pages fill differently (the delivery ids' by about 15%).
const SMALL_TOLERANCE: f64 = 0.2;

#[test]
fn the_documented_figures_hold_for_a_small_sample() {
    let measured = figures::measure(&SMALL);
    doc::check(&measured.figures(), SMALL_TOLERANCE);
}

#[test]
#[ignore = "minutes: scripts/scale runs it"]
fn the_documented_figures_hold_for_the_full_sample() {
    let measured = figures::measure(&FULL);
    let figures = measured.figures();
    println!("{}\n{}\n", measured.report(), doc::table(&figures));
    doc::check(&figures, FULL_TOLERANCE);
}
