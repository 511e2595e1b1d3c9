//! GitLab instances at `/gitlab/{instance}`: any `[a-z0-9-]+` name, created on first use, each
//! with its own users, groups, projects, OAuth application and tokens (the gateway's
//! `GITLAB_URL` is `{emulator}/gitlab/com`).
//!
//! | Method and path under `/gitlab/{instance}` | Answer |
//! | --- | --- |
//! | `GET /oauth/authorize` | authorization code + PKCE (see `oauth.rs`); scopes from `api`, `read_api`, `read_user`, `read_repository` |
//! | `POST /oauth/token` | `{"access_token":"glemu-at-…","token_type":"Bearer","expires_in","refresh_token":"glemu-rt-…","scope","created_at"}`; errors `{"error","error_description"}`: 401 `invalid_client`, 400 `invalid_grant` / `invalid_request` / `unsupported_grant_type` |
//! | `GET /api/v4/user` | the token's user `{"id","username","name","state","avatar_url","web_url",…}` |
//! | `GET /api/v4/groups` | the user's groups (`top_level_only`, `min_access_level`, `search`, `order_by` = `name` (default) / `path` / `id`, `sort`), offset pagination |
//! | `GET /api/v4/groups/:id` | by numeric id or URL-encoded full path, with `require_two_factor_authentication` and `two_factor_grace_period`; 404 `{"message":"404 Group Not Found"}` when unknown or not a member |
//! | `GET /api/v4/groups/:id/members` | direct members: the user fields plus `access_level` (5 minimal access, 10 guest, 15 planner, 20 reporter, 30 developer, 40 maintainer, 50 owner), `expires_at`, `membership_state`; by user id, offset pagination |
//! | `GET /api/v4/groups/:id/members/all` | the same with members of every ancestor group, each at their highest level |
//! | `GET /api/v4/projects/:id` | a project by id or URL-encoded `path_with_namespace` (with its `default_branch`); 404 `{"message":"404 Project Not Found"}` unless the user is at least a guest of its group (inherited) |
//! | `GET /api/v4/projects/:id/protected_branches` | `[{"id","name","push_access_levels":[{"id","access_level","access_level_description","deploy_key_id","user_id","group_id"}],"merge_access_levels":[…],"unprotect_access_levels":[],"allow_force_push","code_owner_approval_required","inherited"}]`, offset pagination; 403 `{"message":"403 Forbidden"}` below Maintainer |
//! | `GET /api/v4/projects/:id/approval_rules` | `[{"id","name","rule_type","report_type","eligible_approvers","approvals_required","users","groups","contains_hidden_groups","protected_branches","applies_to_all_protected_branches"}]` (empty unless set), offset pagination; 403 below Developer |
//! | `GET /api/v4/groups/:id/projects` | `include_subgroups`, `archived`, `search`, `id_after`, `id_before`, `order_by` (default `created_at`), `sort` (default `desc`); offset pagination, or keyset with `pagination=keyset&order_by=id` (only `Link: <…id_after=…>; rel="next"`; other orders answer 405) |
//!
//! API requests need `Authorization: Bearer <access token>`: none, unknown, revoked or rotated
//! out → 401 `{"message":"401 Unauthorized"}`; expired → 401 `{"error":"invalid_token",…}`
//! with `WWW-Authenticate`; a token without `api`/`read_api` (`read_user` too for `/user`) →
//! 403 `insufficient_scope`. Offset pagination: `per_page` 20 by default, at most 100, with
//! `X-Total`, `X-Total-Pages`, `X-Page`, `X-Per-Page`, `X-Next-Page`, `X-Prev-Page` and `Link`
//! (see `pagination.rs`). Bad parameter values answer 400 `{"error":"<name> …"}` as Grape does.
//!
//! Projects list `http_url_to_repo` as `{emulator}/gitlab/{instance}/{path_with_namespace}.git`,
//! served over git smart HTTP by `git/`.

mod admin;
mod api;
mod audit;
mod state;

pub use admin::route as admin_route;
pub use state::Instance;

use crate::github::no_route;
use crate::http::{Reply, Request};
use crate::oauth;
use crate::server::{Caller, Emulator};

/// Whether `name` can name an instance: `[a-z0-9-]+`.
pub fn valid_instance(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Answers a request under `/gitlab/{instance}/`.
pub fn route(em: &Emulator, request: &Request, instance: &str, caller: &Caller) -> Reply {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').skip(2).collect();
    let provider = api::GitLabOAuth { instance };
    let result = match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["oauth", "authorize"]) => Ok(oauth::authorize(em, &provider, request)),
        ("POST", ["oauth", "token"]) => Ok(oauth::token(em, &provider, request)),
        ("GET", ["api", "v4", "user"]) => api::current_user(em, instance, caller),
        ("GET", ["api", "v4", "groups"]) => api::list_groups(em, request, instance, caller),
        ("GET", ["api", "v4", "groups", key]) => api::get_group(em, instance, caller, key),
        ("GET", ["api", "v4", "groups", key, "projects"]) => {
            api::list_projects(em, request, instance, caller, key)
        }
        ("GET", ["api", "v4", "groups", key, "members"]) => {
            audit::group_members(em, request, instance, caller, key, false)
        }
        ("GET", ["api", "v4", "groups", key, "members", "all"]) => {
            audit::group_members(em, request, instance, caller, key, true)
        }
        ("GET", ["api", "v4", "projects", key]) => audit::get_project(em, instance, caller, key),
        ("GET", ["api", "v4", "projects", key, "protected_branches"]) => {
            audit::protected_branches(em, request, instance, caller, key)
        }
        ("GET", ["api", "v4", "projects", key, "approval_rules"]) => {
            audit::approval_rules(em, request, instance, caller, key)
        }
        _ => Err(no_route(request)),
    };
    result.unwrap_or_else(|reply| reply)
}

#[cfg(test)]
mod audit_tests;

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::api::{EXPIRED, INVALID_CLIENT, INVALID_GRANT};
    use crate::http::{Reply, Request};
    use crate::oauth::s256_challenge;
    use crate::server::tests::{admin_call, call, emulator, location_params};
    use crate::server::Emulator;

    pub(super) const VERIFIER: &str = "dev-verifier-0123456789-abcdefghijklmnopqrstuvwxyz~ABC";
    const CALLBACK: &str = "http://127.0.0.1:8787/gitlab/callback";

    pub(super) fn admin(em: &Emulator, method: &str, path: &str, body: Value) -> Value {
        admin_call(em, method, &format!("gitlab/{path}"), body)
    }

    /// Instance `com`: users 7001 (default) and 7002; group 1 `initech` (7001, 3 projects) with
    /// subgroup 2 `initech/platform` (2 projects), group 3 `hooli` (7002 only, 1 project).
    pub(super) fn setup(em: &Emulator) {
        admin(
            em,
            "PUT",
            "com/oauth",
            json!({"client_id": "gl-app", "client_secret": "gl-secret",
                   "redirect_uris": [CALLBACK, format!("{CALLBACK}?keep=1"), "http://127.0.0.1:8787"]}),
        );
        admin(
            em,
            "PUT",
            "com/users/7001",
            json!({"username": "dev-gitlab", "name": "Dev GitLab"}),
        );
        admin(em, "PUT", "com/users/7002", json!({"username": "other"}));
        admin(
            em,
            "PUT",
            "com/groups/1",
            json!({"name": "Initech", "path": "initech", "members": [7001], "projects": 3}),
        );
        admin(
            em,
            "PUT",
            "com/groups/2",
            json!({"name": "Platform", "path": "platform", "parent_id": 1, "projects": 2}),
        );
        admin(
            em,
            "PUT",
            "com/groups/3",
            json!({"name": "Hooli", "path": "hooli", "members": [7002], "projects": 1}),
        );
    }

    fn authorize(em: &Emulator, instance: &str, extra: &str) -> Reply {
        let target = format!(
            "/gitlab/{instance}/oauth/authorize?client_id=gl-app&redirect_uri={}&response_type=code\
             &state=st%20a%26b&scope=read_api+read_repository&code_challenge={}&code_challenge_method=S256{extra}",
            url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>(),
            s256_challenge(VERIFIER)
        );
        em.handle(&Request::new("GET", &target))
    }

    pub(super) fn code(em: &Emulator, extra: &str) -> String {
        let reply = authorize(em, "com", extra);
        assert_eq!(reply.status, 302);
        let params = location_params(&reply);
        assert_eq!(params["state"], "st a&b");
        params["code"].clone()
    }

    fn token(em: &Emulator, form: &str) -> (u16, Value) {
        let (status, body, reply) = call(em, "POST", "/gitlab/com/oauth/token", None, form);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        (status, body)
    }

    pub(super) fn exchange(em: &Emulator, code: &str, verifier: &str) -> (u16, Value) {
        token(
            em,
            &format!(
                "grant_type=authorization_code&client_id=gl-app&client_secret=gl-secret&code={code}\
                 &redirect_uri={CALLBACK}&code_verifier={verifier}"
            ),
        )
    }

    fn refresh(em: &Emulator, refresh_token: &str) -> (u16, Value) {
        token(
            em,
            &format!("grant_type=refresh_token&client_id=gl-app&client_secret=gl-secret&refresh_token={refresh_token}"),
        )
    }

    /// Access and refresh token of a fresh grant for the default user.
    pub(super) fn tokens(em: &Emulator) -> (String, String) {
        let (status, body) = exchange(em, &code(em, ""), VERIFIER);
        assert_eq!(status, 200, "{body}");
        let get = |k: &str| body[k].as_str().unwrap().to_string();
        (get("access_token"), get("refresh_token"))
    }

    pub(super) fn get(em: &Emulator, target: &str, token: &str) -> (u16, Value, Reply) {
        call(
            em,
            "GET",
            &format!("/gitlab/com/api/v4/{target}"),
            Some(&format!("Bearer {token}")),
            "",
        )
    }

    fn invalid_grant() -> Value {
        json!({"error": "invalid_grant", "error_description": INVALID_GRANT})
    }

    pub(super) fn names(body: &Value, field: &str) -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|v| v[field].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn code_flow_needs_client_redirect_and_verifier_and_codes_work_once() {
        let em = emulator();
        setup(&em);
        let reply = authorize(&em, "com", "");
        let location = reply.header("location").unwrap();
        assert!(
            location.starts_with(&format!("{CALLBACK}?code=")),
            "{location}"
        );
        assert!(location.ends_with("&state=st+a%26b"), "{location}");
        let code = location_params(&reply)["code"].clone();

        assert_eq!(
            exchange(&em, &code, &VERIFIER.replace('~', "-")),
            (400, invalid_grant())
        );
        assert_eq!(exchange(&em, &code, ""), (400, invalid_grant()));
        let wrong_secret = format!(
            "grant_type=authorization_code&client_id=gl-app&client_secret=nope&code={code}\
             &redirect_uri={CALLBACK}&code_verifier={VERIFIER}"
        );
        assert_eq!(
            token(&em, &wrong_secret),
            (
                401,
                json!({"error": "invalid_client", "error_description": INVALID_CLIENT})
            )
        );
        let other_redirect = format!(
            "grant_type=authorization_code&client_id=gl-app&client_secret=gl-secret&code={code}\
             &redirect_uri={CALLBACK}/other&code_verifier={VERIFIER}"
        );
        assert_eq!(token(&em, &other_redirect), (400, invalid_grant()));

        let (status, body) = exchange(&em, &code, VERIFIER);
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap();
        let refresh = body["refresh_token"].as_str().unwrap();
        assert!(
            access.starts_with("glemu-at-") && access.len() == 41,
            "{access}"
        );
        assert!(
            refresh.starts_with("glemu-rt-") && refresh.len() == 41,
            "{refresh}"
        );
        assert_eq!(
            (&body["token_type"], &body["expires_in"], &body["scope"]),
            (
                &json!("Bearer"),
                &json!(7200),
                &json!("read_api read_repository")
            )
        );
        assert!(body["created_at"].as_i64().unwrap() > 1_700_000_000);
        assert_eq!(
            exchange(&em, &code, VERIFIER),
            (400, invalid_grant()),
            "a code works once"
        );

        let (status, user, _) = get(&em, "user", access);
        assert_eq!(status, 200);
        assert_eq!(
            (
                &user["id"],
                &user["username"],
                &user["name"],
                &user["state"]
            ),
            (
                &json!(7001),
                &json!("dev-gitlab"),
                &json!("Dev GitLab"),
                &json!("active")
            )
        );
        assert_eq!(user["web_url"], "http://127.0.0.1:1/gitlab/com/dev-gitlab");

        let (_, grants, _) = call(&em, "GET", "/_emulator/oauth-grants", None, "");
        let outcomes: Vec<&str> = grants
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            outcomes,
            [
                "invalid_grant",
                "invalid_grant",
                "invalid_client",
                "invalid_grant",
                "ok",
                "invalid_grant"
            ]
        );
        assert_eq!(
            (
                &grants[0]["provider"],
                &grants[0]["instance"],
                &grants[0]["grant_type"],
                &grants[0]["user_id"]
            ),
            (
                &json!("gitlab"),
                &json!("com"),
                &json!("authorization_code"),
                &json!("7001")
            )
        );
        let (_, issued, _) = call(&em, "GET", "/_emulator/provider-tokens", None, "");
        assert_eq!(issued, json!([access, refresh]));
    }

    #[test]
    fn authorize_refuses_bad_requests_and_signs_in_the_chosen_user() {
        let em = emulator();
        setup(&em);
        let refused = |extra: &str| {
            let target = format!(
                "/gitlab/com/oauth/authorize?client_id=gl-app&redirect_uri={CALLBACK}%3Fkeep%3D1&state=s{extra}"
            );
            let reply = em.handle(&Request::new("GET", &target));
            assert_eq!(reply.status, 302, "{extra}");
            let params = location_params(&reply);
            assert_eq!(
                (params["keep"].as_str(), params["state"].as_str()),
                ("1", "s")
            );
            assert!(!params.contains_key("code"));
            (params["error"].clone(), params["error_description"].clone())
        };
        let challenge = format!("&code_challenge={}", s256_challenge(VERIFIER));
        assert_eq!(
            refused("&response_type=code&scope=api"),
            (
                "invalid_request".into(),
                "Missing required parameter: code_challenge.".into()
            )
        );
        assert_eq!(
            refused(&format!(
                "&response_type=code&scope=api{challenge}&code_challenge_method=plain"
            ))
            .0,
            "invalid_request"
        );
        assert_eq!(
            refused(&format!("&response_type=code&scope=api{challenge}")).0,
            "invalid_request"
        );
        assert_eq!(
            refused(&format!(
                "&response_type=token&scope=api{challenge}&code_challenge_method=S256"
            ))
            .0,
            "unsupported_response_type"
        );
        for scope in ["api+sudo", "", "write_repository"] {
            assert_eq!(
                refused(&format!(
                    "&response_type=code&scope={scope}{challenge}&code_challenge_method=S256"
                ))
                .0,
                "invalid_scope"
            );
        }

        let unknown = em.handle(&Request::new(
            "GET",
            &format!("/gitlab/com/oauth/authorize?client_id=nope&redirect_uri={CALLBACK}&response_type=code"),
        ));
        assert_eq!((unknown.status, unknown.header("location")), (400, None));
        let page = String::from_utf8(unknown.body).unwrap();
        assert!(
            page.contains("Client authentication failed due to unknown client"),
            "{page}"
        );
        assert_eq!(authorize(&em, "com", "&emulator_user=9999").status, 400);
        assert_eq!(
            authorize(&em, "fresh", "").status,
            400,
            "no OAuth application there"
        );

        // The emulator_user parameter picks who signs in; HTTP Basic client credentials work.
        let code = code(&em, "&emulator_user=7002");
        let (status, body, _) = call(
            &em,
            "POST",
            "/gitlab/com/oauth/token",
            None,
            &format!("grant_type=authorization_code&code={code}&redirect_uri={CALLBACK}&code_verifier={VERIFIER}"),
        );
        assert_eq!(
            (status, &body["error"]),
            (401, &json!("invalid_client")),
            "no client credentials"
        );
        let request = Request::new("POST", "/gitlab/com/oauth/token")
            .with_header("Authorization", "Basic Z2wtYXBwOmdsLXNlY3JldA==")
            .with_body(format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
                url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
            ));
        let reply = em.handle(&request);
        assert_eq!(reply.status, 200);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        let (_, user, _) = get(&em, "user", body["access_token"].as_str().unwrap());
        assert_eq!(user["username"], "other");

        admin(&em, "PUT", "com/default-user", json!({"id": 7002}));
        let (_, body) = exchange(&em, &code_fresh(&em), VERIFIER);
        let (_, user, _) = get(&em, "user", body["access_token"].as_str().unwrap());
        assert_eq!(user["id"], 7002);
        let (status, _, _) = call(
            &em,
            "PUT",
            "/_emulator/gitlab/com/default-user",
            None,
            r#"{"id":5}"#,
        );
        assert_eq!(status, 400);
    }

    fn code_fresh(em: &Emulator) -> String {
        code(em, "")
    }

    #[test]
    fn refresh_rotates_both_tokens_and_revoke_and_expire_apply() {
        let em = emulator();
        setup(&em);
        let (access, refresh_token) = tokens(&em);
        let (status, body) = refresh(&em, &refresh_token);
        assert_eq!(status, 200, "{body}");
        let new_access = body["access_token"].as_str().unwrap().to_string();
        let new_refresh = body["refresh_token"].as_str().unwrap().to_string();
        assert_ne!((&new_access, &new_refresh), (&access, &refresh_token));
        assert_eq!(body["scope"], "read_api read_repository");
        assert_eq!(
            refresh(&em, &refresh_token),
            (400, invalid_grant()),
            "the old refresh token died"
        );
        let (status, body, _) = get(&em, "user", &access);
        assert_eq!(
            (status, body),
            (401, json!({"message": "401 Unauthorized"})),
            "so did the old access token"
        );
        assert_eq!(get(&em, "user", &new_access).0, 200);

        // Expired: 401 invalid_token; the refresh token still works.
        assert_eq!(
            admin(&em, "POST", "com/expire", json!({"user_id": 7001})),
            json!({"expired": 1})
        );
        let (status, body, reply) = get(&em, "groups", &new_access);
        assert_eq!(
            (status, body),
            (
                401,
                json!({"error": "invalid_token", "error_description": EXPIRED})
            )
        );
        assert!(reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer realm="));
        let (status, body) = refresh(&em, &new_refresh);
        assert_eq!(status, 200);
        let (latest_access, latest_refresh) = (
            body["access_token"].as_str().unwrap().to_string(),
            body["refresh_token"].as_str().unwrap().to_string(),
        );
        assert_eq!(get(&em, "groups", &latest_access).0, 200);
        // An empty body expires everyone.
        let (status, body, _) = call(&em, "POST", "/_emulator/gitlab/com/expire", None, "");
        assert_eq!((status, body), (200, json!({"expired": 1})));

        // Revoked: the API answers 401 and the refresh token is refused.
        assert_eq!(
            admin(&em, "POST", "com/users/7001/revoke", json!({})),
            json!({"revoked": 2})
        );
        assert_eq!(
            get(&em, "user", &latest_access).1,
            json!({"message": "401 Unauthorized"})
        );
        assert_eq!(refresh(&em, &latest_refresh), (400, invalid_grant()));
        assert_eq!(refresh(&em, "glemu-rt-unknown"), (400, invalid_grant()));

        let (_, grants, _) = call(&em, "GET", "/_emulator/oauth-grants", None, "");
        let spent_once = grants
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["presented_refresh_token"] == json!(refresh_token))
            .map(|g| g["outcome"].as_str().unwrap())
            .collect::<Vec<_>>();
        assert_eq!(spent_once, ["ok", "invalid_grant"]);
        assert_eq!(grants[1]["user_id"], "7001");
        assert_eq!(grants[1]["grant_type"], "refresh_token");

        // The admin-set TTL.
        admin(
            &em,
            "PUT",
            "com/oauth",
            json!({"client_id": "gl-app", "client_secret": "gl-secret", "access_token_ttl": 60, "redirect_uris": [CALLBACK]}),
        );
        let (status, body) = exchange(&em, &code(&em, ""), VERIFIER);
        assert_eq!((status, &body["expires_in"]), (200, &json!(60)));
    }

    #[test]
    fn redirect_uri_must_be_repeated_as_sent() {
        let em = emulator();
        setup(&em);
        let bare = "http://127.0.0.1:8787";
        let reply = em.handle(&Request::new(
            "GET",
            &format!(
                "/gitlab/com/oauth/authorize?client_id=gl-app&redirect_uri={bare}&response_type=code&scope=api\
                 &code_challenge={}&code_challenge_method=S256",
                s256_challenge(VERIFIER)
            ),
        ));
        assert!(reply
            .header("location")
            .unwrap()
            .starts_with("http://127.0.0.1:8787/?code="));
        let code = location_params(&reply)["code"].clone();
        let form = |redirect: &str| {
            format!(
                "grant_type=authorization_code&client_id=gl-app&client_secret=gl-secret&code={code}\
                 &redirect_uri={redirect}&code_verifier={VERIFIER}"
            )
        };
        assert_eq!(
            token(&em, &form("http://127.0.0.1:8787/")),
            (400, invalid_grant())
        );
        assert_eq!(token(&em, &form(bare)).0, 200);
        // Missing, not a URL, or not one the application registered (another port, a path
        // that differs): an error page, never a redirect.
        for bad in [
            "",
            "&redirect_uri=not-a-url",
            "&redirect_uri=http://127.0.0.1:8788/gitlab/callback",
            "&redirect_uri=http://127.0.0.1:8787/gitlab/callback/",
            "&redirect_uri=http://localhost:8787/gitlab/callback",
        ] {
            let reply = em.handle(&Request::new(
                "GET",
                &format!("/gitlab/com/oauth/authorize?client_id=gl-app&response_type=code{bad}"),
            ));
            assert_eq!(
                (reply.status, reply.header("location")),
                (400, None),
                "{bad}"
            );
            assert!(
                String::from_utf8_lossy(&reply.body)
                    .contains("The redirect URI included is not valid."),
                "{bad}"
            );
        }
    }

    #[test]
    fn concurrent_refreshes_spend_the_refresh_token_once() {
        let em = emulator();
        setup(&em);
        let (_, refresh_token) = tokens(&em);
        let barrier = std::sync::Barrier::new(2);
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        refresh(&em, &refresh_token).0
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [200, 400], "{statuses:?}");
        let (_, grants, _) = call(&em, "GET", "/_emulator/oauth-grants", None, "");
        let ok = grants
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| {
                g["presented_refresh_token"] == json!(refresh_token) && g["outcome"] == "ok"
            })
            .count();
        assert_eq!(ok, 1);
    }

    #[test]
    fn groups_paginate_like_gitlab_and_hide_foreign_groups() {
        let em = emulator();
        setup(&em);
        for id in 10..32 {
            admin(
                &em,
                "PUT",
                &format!("com/groups/{id}"),
                json!({"name": format!("G{id}"), "path": format!("g{id}"), "members": [7001]}),
            );
        }
        admin(
            &em,
            "PUT",
            "com/groups/40",
            json!({"name": "Guests", "path": "guests", "members": [{"id": 7001, "access_level": 10}]}),
        );
        let (access, _) = tokens(&em);
        let (status, body, reply) = get(
            &em,
            "groups?top_level_only=true&order_by=id&sort=asc&per_page=10&page=2",
            &access,
        );
        assert_eq!(status, 200);
        let ids: Vec<u64> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_u64().unwrap())
            .collect();
        assert_eq!(
            ids,
            (19..29).collect::<Vec<_>>(),
            "1, then 10 to 31, then 40"
        );
        let header = |name: &str| reply.header(name).unwrap().to_string();
        assert_eq!(
            [
                header("x-total"),
                header("x-total-pages"),
                header("x-page"),
                header("x-per-page"),
                header("x-next-page"),
                header("x-prev-page")
            ],
            ["24", "3", "2", "10", "3", "1"]
        );
        let link = |page: u32| {
            format!("http://127.0.0.1:1/gitlab/com/api/v4/groups?order_by=id&page={page}&per_page=10&sort=asc&top_level_only=true")
        };
        assert_eq!(
            header("link"),
            format!(
                "<{}>; rel=\"prev\", <{}>; rel=\"next\", <{}>; rel=\"first\", <{}>; rel=\"last\"",
                link(1),
                link(3),
                link(1),
                link(3)
            )
        );
        let (_, last, reply) = get(
            &em,
            "groups?top_level_only=true&order_by=id&per_page=10&page=3",
            &access,
        );
        assert_eq!(last.as_array().unwrap().len(), 4);
        assert_eq!(reply.header("x-next-page"), Some(""));

        // Subgroups count unless top_level_only; groups of others never; access levels filter.
        let (_, all, reply) = get(&em, "groups?order_by=id&per_page=100", &access);
        assert_eq!(reply.header("x-total"), Some("25"));
        assert!(names(&all, "full_path").contains(&"initech/platform".to_string()));
        assert!(!names(&all, "path").contains(&"hooli".to_string()));
        let (_, owned, _) = get(&em, "groups?min_access_level=30&per_page=100", &access);
        assert_eq!(owned.as_array().unwrap().len(), 24);
        let (_, by_name, _) = get(&em, "groups?search=T", &access);
        assert_eq!(
            names(&by_name, "name"),
            ["Guests", "Initech", "Platform"],
            "default order: name"
        );
        let (status, body, _) = get(&em, "groups?order_by=size", &access);
        assert_eq!(
            (status, body),
            (
                400,
                json!({"error": "order_by does not have a valid value"})
            )
        );
        assert_eq!(get(&em, "groups?min_access_level=33", &access).0, 400);
        assert_eq!(get(&em, "groups?top_level_only=maybe", &access).0, 400);

        let (status, group, _) = get(&em, "groups/initech%2Fplatform", &access);
        assert_eq!(status, 200);
        assert_eq!(
            group,
            json!({"id": 2, "web_url": "http://127.0.0.1:1/gitlab/com/groups/initech/platform", "name": "Platform",
                   "path": "platform", "description": "", "visibility": "private", "avatar_url": null,
                   "full_name": "Initech / Platform", "full_path": "initech/platform", "parent_id": 1,
                   "created_at": "2020-01-01T02:00:00.000Z", "require_two_factor_authentication": false,
                   "two_factor_grace_period": 48})
        );
        assert_eq!(get(&em, "groups/1", &access).1["full_path"], "initech");
        for hidden in [
            "groups/3",
            "groups/hooli",
            "groups/999",
            "groups/3/projects",
        ] {
            let (status, body, _) = get(&em, hidden, &access);
            assert_eq!(
                (status, body),
                (404, json!({"message": "404 Group Not Found"})),
                "{hidden}"
            );
        }
    }

    #[test]
    fn projects_include_subgroups_with_keyset_or_offset_pagination() {
        let em = emulator();
        setup(&em);
        let (access, _) = tokens(&em);
        let mut target = "groups/initech/projects?include_subgroups=true&per_page=2&order_by=id&sort=asc&pagination=keyset".to_string();
        let mut pages = Vec::new();
        loop {
            let (status, body, reply) = get(&em, &target, &access);
            assert_eq!(status, 200, "{body}");
            assert_eq!(reply.header("x-total"), None);
            pages.push(
                body.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_u64().unwrap())
                    .collect::<Vec<_>>(),
            );
            let Some(link) = reply.header("link") else {
                break;
            };
            let next = link
                .strip_prefix('<')
                .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                .unwrap();
            let last = pages.last().unwrap().last().unwrap();
            assert_eq!(
                next,
                format!("http://127.0.0.1:1/gitlab/com/api/v4/groups/initech/projects?id_after={last}&include_subgroups=true&order_by=id&pagination=keyset&per_page=2&sort=asc")
            );
            target = next
                .trim_start_matches("http://127.0.0.1:1/gitlab/com/api/v4/")
                .to_string();
        }
        assert_eq!(pages, [vec![1, 2], vec![3, 4], vec![5]]);

        let (_, own, reply) = get(&em, "groups/1/projects?order_by=id&sort=asc", &access);
        assert_eq!(
            names(&own, "path"),
            ["initech-repo-001", "initech-repo-002", "initech-repo-003"]
        );
        assert_eq!(
            (reply.header("x-total"), reply.header("x-total-pages")),
            (Some("3"), Some("1"))
        );
        let (_, newest_first, _) = get(&em, "groups/1/projects?include_subgroups=true", &access);
        assert_eq!(newest_first[0]["id"], 5, "default order: created_at desc");
        assert_eq!(
            newest_first[0],
            json!({"id": 5, "description": null, "name": "platform-repo-002", "name_with_namespace": "Initech / Platform / platform-repo-002",
                   "path": "platform-repo-002", "path_with_namespace": "initech/platform/platform-repo-002",
                   "created_at": "2020-01-01T00:05:00.000Z", "default_branch": "main", "visibility": "internal",
                   "archived": false, "empty_repo": false, "web_url": "http://127.0.0.1:1/gitlab/com/initech/platform/platform-repo-002",
                   "http_url_to_repo": "http://127.0.0.1:1/gitlab/com/initech/platform/platform-repo-002.git",
                   "ssh_url_to_repo": "git@127.0.0.1:initech/platform/platform-repo-002.git", "avatar_url": null,
                   "topics": [], "star_count": 0, "forks_count": 0, "last_activity_at": "2020-01-31T00:05:00.000Z",
                   "namespace": {"id": 2, "name": "Platform", "path": "platform", "kind": "group", "full_path": "initech/platform",
                                 "parent_id": 1, "avatar_url": null, "web_url": "http://127.0.0.1:1/gitlab/com/groups/initech/platform"}})
        );
        let (status, body, _) = get(
            &em,
            "groups/1/projects?pagination=keyset&order_by=name",
            &access,
        );
        assert_eq!(status, 405, "{body}");

        // Admin changes: ids continue instance-wide, archived projects filter.
        let changed = admin(
            &em,
            "POST",
            "com/groups/2/projects",
            json!({"add": 1, "add_names": ["Docs Site"], "remove_ids": [4]}),
        );
        assert_eq!(
            names(&changed["projects"], "path"),
            ["platform-repo-002", "platform-repo-003", "docs-site"]
        );
        assert_eq!(
            changed["projects"][2]["id"], 8,
            "ids continue instance-wide (6 is hooli's)"
        );
        admin(
            &em,
            "PUT",
            "com/groups/3",
            json!({"name": "Hooli", "path": "hooli", "members": [7001],
            "projects": [{"name": "old", "archived": true}, {"name": "live", "visibility": "public"}]}),
        );
        let (_, live, _) = get(&em, "groups/hooli/projects?archived=false", &access);
        assert_eq!(names(&live, "name"), ["live"]);
        let (_, listed, _) = call(
            &em,
            "GET",
            "/_emulator/gitlab/com/projects?group=1",
            None,
            "",
        );
        assert_eq!(listed.as_array().unwrap().len(), 6);
        assert_eq!(
            admin(&em, "DELETE", "com/groups/1", json!(null)),
            json!({"deleted": true})
        );
        assert_eq!(
            get(&em, "groups/2/projects", &access).0,
            404,
            "subgroup gone too"
        );
    }

    #[test]
    fn instances_scopes_faults_and_the_request_log() {
        let em = emulator();
        setup(&em);
        admin(
            &em,
            "PUT",
            "self-managed/oauth",
            json!({"client_id": "gl-app", "client_secret": "other", "redirect_uris": [CALLBACK]}),
        );
        admin(
            &em,
            "PUT",
            "self-managed/users/1",
            json!({"username": "root"}),
        );
        admin(
            &em,
            "PUT",
            "self-managed/groups/1",
            json!({"name": "Ops", "path": "ops", "members": [1], "projects": 1}),
        );
        let (access, _) = tokens(&em);
        let (status, _, _) = call(
            &em,
            "GET",
            "/gitlab/self-managed/api/v4/user",
            Some(&format!("Bearer {access}")),
            "",
        );
        assert_eq!(status, 401, "tokens belong to one instance");
        let reply = authorize(&em, "self-managed", "");
        let code = location_params(&reply)["code"].clone();
        let (status, body, _) = call(
            &em,
            "POST",
            "/gitlab/self-managed/oauth/token",
            None,
            &format!("grant_type=authorization_code&client_id=gl-app&client_secret=other&code={code}&redirect_uri={CALLBACK}&code_verifier={VERIFIER}"),
        );
        assert_eq!(status, 200, "{body}");
        let (_, groups, _) = call(
            &em,
            "GET",
            "/gitlab/self-managed/api/v4/groups",
            Some(&format!(
                "Bearer {}",
                body["access_token"].as_str().unwrap()
            )),
            "",
        );
        assert_eq!(names(&groups, "full_path"), ["ops"]);
        assert_eq!(
            call(&em, "GET", "/gitlab/Bad_Name/api/v4/user", None, "").0,
            404
        );

        // A read_user token reaches /user only.
        let user_only = em.handle(&Request::new(
            "GET",
            &format!(
                "/gitlab/com/oauth/authorize?client_id=gl-app&redirect_uri={CALLBACK}&response_type=code&scope=read_user\
                 &code_challenge={}&code_challenge_method=S256",
                s256_challenge(VERIFIER)
            ),
        ));
        let (_, body) = exchange(&em, &location_params(&user_only)["code"], VERIFIER);
        let narrow = body["access_token"].as_str().unwrap();
        assert_eq!(get(&em, "user", narrow).0, 200);
        let (status, body, reply) = get(&em, "groups", narrow);
        assert_eq!(
            (status, &body["error"], &body["scope"]),
            (403, &json!("insufficient_scope"), &json!("api read_api"))
        );
        assert!(reply
            .header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope"));

        // Faults match the new paths; the log labels every kind of caller.
        call(&em, "DELETE", "/_emulator/requests", None, "");
        call(
            &em,
            "PUT",
            "/_emulator/faults",
            None,
            r#"[{"path_prefix":"/gitlab/com/api/v4/groups","status":503,"times":1}]"#,
        );
        assert_eq!(get(&em, "groups", &access).0, 503);
        assert_eq!(get(&em, "groups", &access).0, 200);
        admin(&em, "POST", "com/expire", json!({}));
        get(&em, "user", &access);
        get(&em, "user", "glemu-at-bogus");
        call(&em, "GET", "/gitlab/com/api/v4/user", None, "");
        refresh(&em, "glemu-rt-bogus");
        authorize(&em, "com", "");
        let (_, log, _) = call(&em, "GET", "/_emulator/requests", None, "");
        let seen: Vec<(String, u64, String)> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["path"].as_str().unwrap().to_string(),
                    r["status"].as_u64().unwrap(),
                    r["auth"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let row =
            |path: &str, status: u64, auth: &str| (path.to_string(), status, auth.to_string());
        assert_eq!(
            seen,
            [
                row("/gitlab/com/api/v4/groups", 503, "bearer"),
                row("/gitlab/com/api/v4/groups", 200, "bearer"),
                row("/gitlab/com/api/v4/user", 401, "expired"),
                row("/gitlab/com/api/v4/user", 401, "invalid"),
                row("/gitlab/com/api/v4/user", 401, "none"),
                row("/gitlab/com/oauth/token", 400, "oauth_token"),
                row("/gitlab/com/oauth/authorize", 302, "none"),
            ]
        );
        assert!(log[0].get("installation_id").is_some_and(Value::is_null));
        assert_eq!(
            get(&em, "groups", &access).2.header("x-ratelimit-limit"),
            None,
            "GitHub's headers only on GitHub"
        );
    }
}
