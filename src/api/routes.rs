//! Every HTTP route of the gateway in one table. The edge dispatches on [`RouteId`]; the OpenAPI
//! document (`openapi.json`, served at `GET /v1/openapi.json`) must describe every `documented`
//! route, which a test checks in both directions.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Health,
    OpenApi,
    ConnectGithub,
    GithubSetup,
    ConnectGitlab,
    GitlabCallback,
    ConnectAzureDevops,
    AzureDevopsCallback,
    GithubWebhooks,
    ConnectDonePage,
    ConnectPendingPage,
    ConnectErrorPage,
    ConnectConfirmPage,
    ConfirmScript,
    Console,
    ConsoleScript,
    ConsoleStyle,
    ConfirmConnection,
    ListOrgs,
    GetOrg,
    PatchOrg,
    ListRepos,
    SyncOrg,
    DisconnectOrg,
    OrgActivity,
    BackupOrg,
    ListSnapshots,
    GetSnapshot,
    RestoreSnapshot,
    SnapshotBundle,
    OrgAccess,
    OrgAccessEvents,
    OrgPosture,
    Posture,
}

pub struct Route {
    pub method: &'static str,
    /// `{id}` stands for one path segment; a second placeholder (`{repo_id}`) for another.
    pub template: &'static str,
    pub id: RouteId,
    /// In the OpenAPI document (browser pages are not).
    pub documented: bool,
}

const fn route(
    method: &'static str,
    template: &'static str,
    id: RouteId,
    documented: bool,
) -> Route {
    Route {
        method,
        template,
        id,
        documented,
    }
}

pub const ROUTES: &[Route] = &[
    route("GET", "/health", RouteId::Health, true),
    route("GET", "/v1/openapi.json", RouteId::OpenApi, true),
    route("POST", "/v1/connect/github", RouteId::ConnectGithub, true),
    route("GET", "/github/setup", RouteId::GithubSetup, true),
    route("POST", "/github/webhooks", RouteId::GithubWebhooks, true),
    route("POST", "/v1/connect/gitlab", RouteId::ConnectGitlab, true),
    route("GET", "/gitlab/callback", RouteId::GitlabCallback, true),
    route(
        "POST",
        "/v1/connect/azure-devops",
        RouteId::ConnectAzureDevops,
        true,
    ),
    route(
        "GET",
        "/azure-devops/callback",
        RouteId::AzureDevopsCallback,
        true,
    ),
    // `{id}` is the provider: `github`, `gitlab` or `azure-devops`.
    route("GET", "/connect/{id}/done", RouteId::ConnectDonePage, false),
    route(
        "GET",
        "/connect/{id}/pending",
        RouteId::ConnectPendingPage,
        false,
    ),
    route(
        "GET",
        "/connect/{id}/error",
        RouteId::ConnectErrorPage,
        false,
    ),
    // The gateway's own confirm page (no `PORTAL_URL`) and its script.
    route(
        "GET",
        "/connect/{id}/confirm",
        RouteId::ConnectConfirmPage,
        false,
    ),
    route("GET", "/connect/confirm.js", RouteId::ConfirmScript, false),
    // The console (`api::console`): a page driving the API by hand, its script and stylesheet.
    route("GET", "/console", RouteId::Console, false),
    route("GET", "/console/app.js", RouteId::ConsoleScript, false),
    route("GET", "/console/app.css", RouteId::ConsoleStyle, false),
    route(
        "POST",
        "/v1/connect/confirm",
        RouteId::ConfirmConnection,
        true,
    ),
    route("GET", "/v1/orgs", RouteId::ListOrgs, true),
    route("GET", "/v1/orgs/{id}", RouteId::GetOrg, true),
    route("PATCH", "/v1/orgs/{id}", RouteId::PatchOrg, true),
    route("GET", "/v1/orgs/{id}/repos", RouteId::ListRepos, true),
    route("POST", "/v1/orgs/{id}/sync", RouteId::SyncOrg, true),
    route(
        "POST",
        "/v1/orgs/{id}/disconnect",
        RouteId::DisconnectOrg,
        true,
    ),
    route("GET", "/v1/orgs/{id}/activity", RouteId::OrgActivity, true),
    route("POST", "/v1/orgs/{id}/backup", RouteId::BackupOrg, true),
    route(
        "GET",
        "/v1/orgs/{id}/repos/{repo_id}/snapshots",
        RouteId::ListSnapshots,
        true,
    ),
    route("GET", "/v1/snapshots/{id}", RouteId::GetSnapshot, true),
    route(
        "GET",
        "/v1/snapshots/{id}/restore",
        RouteId::RestoreSnapshot,
        true,
    ),
    route(
        "GET",
        "/v1/snapshots/{id}/bundle",
        RouteId::SnapshotBundle,
        true,
    ),
    route("GET", "/v1/orgs/{id}/access", RouteId::OrgAccess, true),
    route(
        "GET",
        "/v1/orgs/{id}/access/events",
        RouteId::OrgAccessEvents,
        true,
    ),
    route("GET", "/v1/orgs/{id}/posture", RouteId::OrgPosture, true),
    route("GET", "/v1/posture", RouteId::Posture, true),
];

#[derive(Debug, PartialEq, Eq)]
pub enum Resolved<'a> {
    /// The route with its `{id}` segment and its second placeholder's, if any.
    Found(RouteId, Option<&'a str>, Option<&'a str>),
    /// The path exists for other methods.
    MethodNotAllowed,
    NotFound,
}

/// The `{id}` segment and the second placeholder's of `path` when it fits `template`.
type Ids<'a> = (Option<&'a str>, Option<&'a str>);

fn fit<'a>(template: &str, path: &'a str) -> Option<Ids<'a>> {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    let (mut id, mut sub) = (None, None);
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some((id, sub)),
            (Some("{id}"), Some(seg)) if !seg.is_empty() => id = Some(seg),
            (Some(a), Some(seg)) if a.starts_with('{') && !seg.is_empty() => sub = Some(seg),
            (Some(a), Some(b)) if a == b => {}
            _ => return None,
        }
    }
}

pub fn resolve<'a>(method: &str, path: &'a str) -> Resolved<'a> {
    let mut path_known = false;
    for r in ROUTES {
        if let Some((id, sub)) = fit(r.template, path) {
            if r.method.eq_ignore_ascii_case(method) {
                return Resolved::Found(r.id, id, sub);
            }
            path_known = true;
        }
    }
    if path_known {
        Resolved::MethodNotAllowed
    } else {
        Resolved::NotFound
    }
}

/// The first value of query parameter `name` (the edge hands every route its query as pairs).
pub fn query_param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The OpenAPI 3.1 document, kept next to the code.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn paths_resolve_with_their_id() {
        assert_eq!(
            resolve("GET", "/v1/orgs"),
            Resolved::Found(RouteId::ListOrgs, None, None)
        );
        assert_eq!(
            resolve("PATCH", "/v1/orgs/abc"),
            Resolved::Found(RouteId::PatchOrg, Some("abc"), None)
        );
        assert_eq!(
            resolve("POST", "/v1/orgs/abc/sync"),
            Resolved::Found(RouteId::SyncOrg, Some("abc"), None)
        );
        assert_eq!(
            resolve("DELETE", "/v1/orgs/abc"),
            Resolved::MethodNotAllowed
        );
        assert_eq!(resolve("GET", "/v1/orgs/abc/nope"), Resolved::NotFound);
        assert_eq!(
            resolve("GET", "/connect/azure-devops/done"),
            Resolved::Found(RouteId::ConnectDonePage, Some("azure-devops"), None)
        );
        assert_eq!(
            resolve("POST", "/v1/connect/azure-devops"),
            Resolved::Found(RouteId::ConnectAzureDevops, None, None)
        );
        assert_eq!(
            resolve("POST", "/v1/connect/confirm"),
            Resolved::Found(RouteId::ConfirmConnection, None, None)
        );
        assert_eq!(
            resolve("GET", "/connect/gitlab/confirm"),
            Resolved::Found(RouteId::ConnectConfirmPage, Some("gitlab"), None)
        );
        assert_eq!(
            resolve("GET", "/connect/confirm.js"),
            Resolved::Found(RouteId::ConfirmScript, None, None)
        );
        assert_eq!(
            resolve("GET", "/v1/orgs/o1/repos/r1/snapshots"),
            Resolved::Found(RouteId::ListSnapshots, Some("o1"), Some("r1"))
        );
        assert_eq!(
            resolve("GET", "/v1/snapshots/s1/bundle"),
            Resolved::Found(RouteId::SnapshotBundle, Some("s1"), None)
        );
        assert_eq!(
            resolve("GET", "/v1/orgs/o1/repos//snapshots"),
            Resolved::NotFound
        );
        assert_eq!(resolve("GET", "/v1/orgs//repos"), Resolved::NotFound);
        assert_eq!(resolve("GET", "/v1/orgs/abc/"), Resolved::NotFound);
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_documented_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert_eq!(
            doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
            Some(true)
        );
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
            {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let routes: BTreeSet<(String, String)> = ROUTES
            .iter()
            .filter(|r| r.documented)
            .map(|r| (r.method.to_string(), r.template.to_string()))
            .collect();
        let missing: Vec<_> = routes.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&routes).collect();
        assert!(
            missing.is_empty(),
            "routes missing from openapi.json: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "openapi.json documents routes that do not exist: {stale:?}"
        );
    }

    #[test]
    fn query_params_are_found_by_name_first_wins() {
        let query: Vec<(String, String)> = [("a", "1"), ("b", ""), ("a", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(query_param(&query, "a"), Some("1"));
        assert_eq!(query_param(&query, "b"), Some(""));
        assert_eq!(query_param(&query, "c"), None);
    }

    /// The variants of [`RouteId`], read from this file's source: Rust cannot list an enum's
    /// variants, and a hand-kept list would go stale exactly when it matters.
    fn declared_route_ids() -> BTreeSet<String> {
        let source = include_str!("routes.rs");
        let body = source
            .split_once("pub enum RouteId {")
            .and_then(|(_, rest)| rest.split_once('}'))
            .expect("the RouteId declaration")
            .0;
        body.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('#'))
            .map(|l| l.trim_end_matches(',').to_string())
            .collect()
    }

    /// A concrete path for `template`: each placeholder filled with a value of its own.
    fn example_path(template: &str) -> String {
        template
            .replace("{id}", "the-id")
            .replace("{repo_id}", "the-repo")
    }

    #[test]
    fn every_route_id_is_reachable() {
        // Each route answers its own method and template (not shadowed by an earlier one),
        // with its placeholders' values.
        for r in ROUTES {
            let path = example_path(r.template);
            let id = r.template.contains("{id}").then_some("the-id");
            let sub = r.template.contains("{repo_id}").then_some("the-repo");
            assert_eq!(
                resolve(r.method, &path),
                Resolved::Found(r.id, id, sub),
                "{} {} ({path})",
                r.method,
                r.template
            );
        }
        // Each id has exactly one route, and every RouteId has one: none is dead.
        let routed: Vec<String> = ROUTES.iter().map(|r| format!("{:?}", r.id)).collect();
        let unique: BTreeSet<String> = routed.iter().cloned().collect();
        assert_eq!(unique.len(), routed.len(), "each route id appears once");
        let declared = declared_route_ids();
        assert!(declared.contains("Health") && declared.contains("Posture"));
        assert_eq!(unique, declared, "every RouteId appears in ROUTES");
    }
}
