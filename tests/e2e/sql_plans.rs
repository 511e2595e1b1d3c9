//! The D1 statements that write a page of repositories (`onecode_edge::sql::RUN_PAGE`), planned
//! by SQLite against the real schema (every file of `migrations/`), natively — no worker needed.
//!
//! A page is applied with `json_each(?page) JOIN repositories`: per page, the work must scale
//! with the page (100 repositories), not with the organization. If SQLite drives the join from
//! `repositories` (every row of the org) and scans the JSON array for each, a page of a
//! 10,000-repository org costs about a million `json_extract` calls per statement, and the
//! whole enumeration becomes quadratic (it shows in `wrangler dev` as sync-queue invocations
//! growing from milliseconds to tens of seconds as the org fills up).

use rusqlite::Connection;

use crate::Case;

pub fn cases() -> Vec<Case> {
    vec![Case::native(
        "sql::page_statements_look_repositories_up_per_page_entry",
        page_statements_look_repositories_up_per_page_entry,
    )]
}

fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    let rows = stmt
        .query_map(
            rusqlite::params!["org", "[]", "now", "run", "http://127.0.0.1/x"],
            |row| row.get::<_, String>(3),
        )
        .expect("plan");
    rows.collect::<Result<_, _>>().expect("plan rows")
}

fn page_statements_look_repositories_up_per_page_entry() {
    let conn = Connection::open_in_memory().expect("in-memory SQLite");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut migrations: Vec<_> = std::fs::read_dir(&dir)
        .expect("migrations/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    migrations.sort();
    for migration in &migrations {
        let sql = std::fs::read_to_string(migration).expect("migration text");
        conn.execute_batch(&sql)
            .unwrap_or_else(|e| panic!("{}: {e}", migration.display()));
    }
    let page = &onecode_edge::sql::RUN_PAGE;
    for (what, sql) in [
        ("application_profiles", page.insert_profiles()),
        ("backup_jobs", page.insert_initial_jobs()),
    ] {
        let plan = plan(&conn, &sql);
        // The repositories of the page must be found by (org_id, provider_repo_id), one index probe
        // per JSON element, with json_each as the outer loop.
        let by_both = plan.iter().position(|line| {
            line.starts_with("SEARCH r ") && line.contains("org_id=? AND provider_repo_id=?")
        });
        let json_scan = plan.iter().position(|line| line.starts_with("SCAN j"));
        assert!(
            matches!((json_scan, by_both), (Some(j), Some(r)) if j < r),
            "the {what} page statement walks every repository of the org and rescans the \
             page's JSON for each (quadratic in the org's size); plan:\n  {}\n(sqlite {})",
            plan.join("\n  "),
            rusqlite::version()
        );
    }
}
