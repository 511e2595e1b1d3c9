//! The Microsoft identity platform (Entra ID) and Azure DevOps, for connecting Azure DevOps
//! organizations. One directory of users (GUIDs) and organizations serves every tenant
//! segment; the gateway's `AZURE_AUTHORITY_URL` is `{emulator}/microsoft/organizations`,
//! `AZURE_VSSPS_URL` `{emulator}/vssps`, `AZURE_DEVOPS_API_URL` `{emulator}/azure` and the
//! user entitlements host (`https://vsaex.dev.azure.com`) `{emulator}/vsaex`.
//!
//! | Method and path | Answer |
//! | --- | --- |
//! | `GET /microsoft/{tenant}/oauth2/v2.0/authorize` | authorization code + PKCE (see `oauth.rs`), `response_mode=query` only; `scope` must hold `499b84ac-1321-427f-aa17-267ca6975798/.default` and may hold `offline_access`, `openid`, `profile`, `email` |
//! | `POST /microsoft/{tenant}/oauth2/v2.0/token` | `{"token_type":"Bearer","scope":"499b84ac-…/user_impersonation","expires_in","ext_expires_in","access_token":"azemu-at-…","refresh_token":"azemu-rt-…"}` (refresh token only with `offline_access`); errors `{"error","error_description":"AADSTS…","error_codes","timestamp","trace_id","correlation_id","error_uri"}` |
//! | `GET /vssps/_apis/profile/profiles/me` | `{"id","displayName","emailAddress","publicAlias",…}` |
//! | `GET /vssps/_apis/accounts?memberId=<caller's id>` | `{"count","value":[{"accountId","accountUri","accountName","properties"}]}`; another user's id → 401 |
//! | `GET /azure/{org}/_apis/projects` | `$top` (default 100), `$skip`, `continuationToken`; header `x-ms-continuationtoken` while more remain; projects by name |
//! | `GET /azure/{org}/_apis/projects/{project}` | one project (id or name) |
//! | `GET /azure/{org}[/{project}]/_apis/git/repositories` | `{"count","value":[{"id","name","url","project","defaultBranch","size","remoteUrl","sshUrl","webUrl","isDisabled"}]}`, unpaginated; `remoteUrl` is the emulator's git URL `{emulator}/azure/{org}/{project}/_git/{repo}` (without the user info dev.azure.com puts in it) |
//!
//! | `GET /vsaex/{org}/_apis/userentitlements?api-version=7.1-preview.3` | `{"members":[{"id","user":{"subjectKind":"user","metaType","directoryAlias","domain","principalName","mailAddress","origin":"aad","originId","displayName","_links","url","descriptor"},"accessLevel":{"licensingSource":"account","accountLicenseType","msdnLicenseType","gitHubLicenseType","licenseDisplayName","status":"active","statusMessage","assignmentSource"},"lastAccessedDate","dateCreated","projectEntitlements","extensions","groupAssignments"}],"continuationToken":null or "…","totalCount"}`: the organization's members by display name, 100 a page (pass `continuationToken` back); an organization with `entitlements_denied` answers 401 `TF400813` or 403 `AccessCheckException` instead; `$filter`, `$orderBy`, `top` and `skip` are not emulated (400) |
//! | `GET /azure/{org}/{project}/_apis/git/policy/configurations?repositoryId&refName&policyType&$top&continuationToken&api-version=7.1` (also `…/_apis/policy/configurations`) | `{"count","value":[{"createdBy","createdDate","isEnabled","isBlocking","isDeleted":false,"settings":{…,"scope":[{"refName","matchKind":"Exact"or"Prefix","repositoryId"}]},"isEnterpriseManaged","_links","revision","id","url","type":{"id","url","displayName"}}]}` by id: with `repositoryId` that repository's, with `refName` those whose scope covers the ref, without either every policy of the project; `continuationToken` is a policy id (the page starts after it), sent back in `x-ms-continuationtoken` while `$top` leaves more |
//!
//! Both new endpoints require `api-version` (400 `VssVersionNotSpecifiedException`). Policy
//! type ids: Minimum number of reviewers `fa4e907d-c16b-4a4c-9dfa-4906e5d171dd`, Build
//! `0609b952-1397-4640-95ec-e00a01b2c241`, Require a merge strategy
//! `fa4e907d-c16b-4a4c-9dfa-4916e5d171ab`, Comment requirements
//! `c6a1889d-b943-4856-b76f-9e46bb6b0df2`, Work item linking
//! `40e92b44-2fe1-4dd6-b3d8-74a9c21d0c6e`, Required reviewers
//! `fd2167ab-b0be-447a-8ec8-39368250530e`.
//!
//! Azure DevOps requests need `Authorization: Bearer <access token>`; none, unknown, revoked,
//! rotated out or expired → 401 `TF400813` with `WWW-Authenticate: Bearer`. An organization
//! that does not exist or that the user is not a member of → 404; an unknown project → 404
//! `TF200016`.

mod admin;
mod audit;
mod devops;
mod entra;
mod state;

pub use admin::route as admin_route;
pub use state::{new_guid, Directory};

use crate::github::no_route;
use crate::http::{Reply, Request};
use crate::oauth::{self, error_page};
use crate::server::{Caller, Emulator};

/// Answers a request under `/microsoft/{tenant}/`.
pub fn route_identity(em: &Emulator, request: &Request) -> Reply {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let (method, tenant, rest) = match segments.as_slice() {
        ["microsoft", tenant, rest @ ..] => (request.method.as_str(), *tenant, rest),
        _ => return no_route(request),
    };
    let provider = entra::EntraOAuth { tenant };
    match (method, rest) {
        ("GET", ["oauth2", "v2.0", "authorize"]) => {
            match request.query_param("response_mode").as_deref() {
                None | Some("" | "query") => oauth::authorize(em, &provider, request),
                Some(mode) => error_page(&format!(
                    "github-emulator: response_mode={mode} is not emulated; use response_mode=query"
                )),
            }
        }
        ("POST", ["oauth2", "v2.0", "token"]) => oauth::token(em, &provider, request),
        _ => no_route(request),
    }
}

/// Answers a request under `/vssps/`, `/vsaex/` or `/azure/`.
pub fn route(em: &Emulator, request: &Request, caller: &Caller) -> Reply {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let result = match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["vssps", "_apis", "profile", "profiles", "me"]) => devops::profile(em, caller),
        ("GET", ["vssps", "_apis", "accounts"]) => devops::accounts(em, request, caller),
        ("GET", ["azure", org, "_apis", "projects"]) => {
            devops::list_projects(em, request, caller, org)
        }
        ("GET", ["azure", org, "_apis", "projects", project]) => {
            devops::get_project(em, caller, org, project)
        }
        ("GET", ["azure", org, "_apis", "git", "repositories"]) => {
            devops::list_repositories(em, caller, org, None)
        }
        ("GET", ["azure", org, project, "_apis", "git", "repositories"]) => {
            devops::list_repositories(em, caller, org, Some(project))
        }
        ("GET", ["vsaex", org, "_apis", "userentitlements"]) => {
            audit::user_entitlements(em, request, caller, org)
        }
        ("GET", ["azure", org, project, "_apis", "git", "policy", "configurations"])
        | ("GET", ["azure", org, project, "_apis", "policy", "configurations"]) => {
            audit::policy_configurations(em, request, caller, org, project)
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

    use crate::http::{Reply, Request};
    use crate::oauth::s256_challenge;
    use crate::server::tests::{admin_call, call, emulator, location_params};
    use crate::server::Emulator;

    pub(super) const DEV: &str = "0d5e1c9a-0000-4000-8000-00000000d001";
    pub(super) const OTHER: &str = "0d5e1c9a-0000-4000-8000-00000000d002";
    const CLIENT: &str = "00000000-0000-0000-0000-0000000dev01";
    const VERIFIER: &str = "azure-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    const CALLBACK: &str = "http://127.0.0.1:8787/azure/callback";
    const DEVOPS: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default";

    pub(super) fn admin(em: &Emulator, method: &str, path: &str, body: Value) -> Value {
        admin_call(em, method, &format!("azure/{path}"), body)
    }

    /// Users DEV (default) and OTHER; `contoso` (DEV; projects `web` 4 repos, `infra` 3), and
    /// `fabrikam` (OTHER only).
    pub(super) fn setup(em: &Emulator) {
        admin(
            em,
            "PUT",
            "oauth",
            json!({"client_id": CLIENT, "client_secret": "az-secret", "redirect_uris": [CALLBACK]}),
        );
        admin(
            em,
            "PUT",
            &format!("users/{DEV}"),
            json!({"displayName": "Dev Azure", "emailAddress": "dev@example.com"}),
        );
        admin(
            em,
            "PUT",
            &format!("users/{OTHER}"),
            json!({"displayName": "Other"}),
        );
        admin(
            em,
            "PUT",
            "orgs/contoso",
            json!({"members": [DEV], "projects": [
            {"name": "web", "repositories": 4}, {"name": "infra", "visibility": "public", "repositories": 3}]}),
        );
        admin(
            em,
            "PUT",
            "orgs/fabrikam",
            json!({"members": [OTHER], "projects": [{"name": "x", "repositories": 1}]}),
        );
    }

    fn authorize(em: &Emulator, scope: &str, extra: &str) -> Reply {
        let target = format!(
            "/microsoft/organizations/oauth2/v2.0/authorize?client_id={CLIENT}&response_type=code&redirect_uri={CALLBACK}\
             &response_mode=query&scope={}&state=xyz{extra}",
            url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>()
        );
        em.handle(&Request::new("GET", &target))
    }

    fn pkce() -> String {
        format!(
            "&code_challenge={}&code_challenge_method=S256",
            s256_challenge(VERIFIER)
        )
    }

    fn code(em: &Emulator, scope: &str, extra: &str) -> String {
        let reply = authorize(em, scope, &format!("{}{extra}", pkce()));
        assert_eq!(reply.status, 302);
        let params = location_params(&reply);
        assert_eq!(params["state"], "xyz");
        params
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("no code: {params:?}"))
    }

    fn token(em: &Emulator, form: &str) -> (u16, Value) {
        let (status, body, _) = call(
            em,
            "POST",
            "/microsoft/organizations/oauth2/v2.0/token",
            None,
            &format!("client_id={CLIENT}&scope={DEVOPS}%20offline_access&{form}"),
        );
        (status, body)
    }

    fn exchange(em: &Emulator, code: &str, verifier: &str) -> (u16, Value) {
        token(
            em,
            &format!("client_secret=az-secret&grant_type=authorization_code&code={code}&redirect_uri={CALLBACK}&code_verifier={verifier}"),
        )
    }

    fn refresh(em: &Emulator, refresh_token: &str) -> (u16, Value) {
        token(
            em,
            &format!(
                "client_secret=az-secret&grant_type=refresh_token&refresh_token={refresh_token}"
            ),
        )
    }

    pub(super) fn tokens(em: &Emulator, extra: &str) -> (String, String) {
        let (status, body) = exchange(
            em,
            &code(em, &format!("{DEVOPS} offline_access openid"), extra),
            VERIFIER,
        );
        assert_eq!(status, 200, "{body}");
        let get = |k: &str| body[k].as_str().unwrap().to_string();
        (get("access_token"), get("refresh_token"))
    }

    pub(super) fn get(em: &Emulator, target: &str, token: &str) -> (u16, Value, Reply) {
        call(em, "GET", target, Some(&format!("Bearer {token}")), "")
    }

    /// `error` and the AADSTS code of a refused token request.
    fn refused(answer: (u16, Value)) -> (u16, String, u64) {
        let (status, body) = answer;
        let code = body["error_codes"][0].as_u64().unwrap_or_default();
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.starts_with(&format!("AADSTS{code}: ")),
            "{body}"
        );
        assert!(
            body["trace_id"].is_string()
                && body["correlation_id"].is_string()
                && body["timestamp"].is_string()
        );
        (status, body["error"].as_str().unwrap().to_string(), code)
    }

    #[test]
    fn entra_code_flow_checks_the_verifier_and_spends_codes_once() {
        let em = emulator();
        setup(&em);
        let code = code(&em, &format!("{DEVOPS} offline_access"), "");
        assert_eq!(
            refused(exchange(&em, &code, &VERIFIER.replace('a', "b"))),
            (400, "invalid_grant".into(), 501481)
        );
        let (_, body) = exchange(&em, &code, "short");
        assert!(body["error_description"].as_str().unwrap().starts_with(
            "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request."
        ));
        let wrong_secret = token(&em, &format!("client_secret=nope&grant_type=authorization_code&code={code}&redirect_uri={CALLBACK}&code_verifier={VERIFIER}"));
        assert_eq!(
            refused(wrong_secret),
            (401, "invalid_client".into(), 7000215)
        );
        assert_eq!(
            refused(token(&em, "client_secret=az-secret&grant_type=password")),
            (400, "unsupported_grant_type".into(), 70003)
        );
        assert_eq!(
            refused(token(
                &em,
                "client_secret=az-secret&grant_type=authorization_code"
            )),
            (400, "invalid_request".into(), 900144)
        );

        let (status, body) = exchange(&em, &code, VERIFIER);
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap();
        let refresh_token = body["refresh_token"].as_str().unwrap();
        assert!(access.starts_with("azemu-at-") && refresh_token.starts_with("azemu-rt-"));
        assert_eq!(
            body,
            json!({"token_type": "Bearer", "scope": "499b84ac-1321-427f-aa17-267ca6975798/user_impersonation",
                   "expires_in": 3599, "ext_expires_in": 3599, "access_token": access, "refresh_token": refresh_token})
        );
        assert_eq!(
            refused(exchange(&em, &code, VERIFIER)),
            (400, "invalid_grant".into(), 54005)
        );
        assert_eq!(
            refused(exchange(&em, "nope", VERIFIER)),
            (400, "invalid_grant".into(), 70000)
        );

        // No offline_access: no refresh token.
        let (_, body) = exchange(&em, &self::code(&em, DEVOPS, ""), VERIFIER);
        assert!(
            body["access_token"].is_string() && body.get("refresh_token").is_none(),
            "{body}"
        );

        let (_, grants, _) = call(&em, "GET", "/_emulator/oauth-grants", None, "");
        let grants = grants.as_array().unwrap();
        assert_eq!(
            (
                &grants[0]["provider"],
                &grants[0]["instance"],
                &grants[0]["user_id"],
                &grants[0]["outcome"]
            ),
            (
                &json!("azure"),
                &json!("organizations"),
                &json!(DEV),
                &json!("invalid_grant")
            )
        );
        let outcomes: Vec<&str> = grants
            .iter()
            .map(|g| g["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            outcomes,
            [
                "invalid_grant",
                "invalid_grant",
                "invalid_client",
                "unsupported_grant_type",
                "invalid_request",
                "ok",
                "invalid_grant",
                "invalid_grant",
                "ok"
            ]
        );
    }

    #[test]
    fn entra_authorize_refuses_scopes_pkce_and_unknown_clients() {
        let em = emulator();
        setup(&em);
        let error = |scope: &str, extra: &str| {
            let reply = authorize(&em, scope, extra);
            assert_eq!(reply.status, 302);
            let params = location_params(&reply);
            assert_eq!(params["state"], "xyz");
            (
                params["error"].clone(),
                params["error_description"][..12].to_string(),
            )
        };
        assert_eq!(
            error("openid profile", &pkce()),
            ("invalid_scope".into(), "AADSTS70011:".into())
        );
        assert_eq!(
            error(&format!("{DEVOPS} User.Read"), &pkce()),
            ("invalid_scope".into(), "AADSTS70011:".into())
        );
        assert_eq!(
            error(DEVOPS, ""),
            ("invalid_request".into(), "AADSTS50148:".into())
        );
        assert_eq!(
            error(
                DEVOPS,
                &format!(
                    "&code_challenge={}&code_challenge_method=plain",
                    s256_challenge(VERIFIER)
                )
            )
            .0,
            "invalid_request"
        );
        let implicit = em.handle(&Request::new(
            "GET",
            &format!(
                "/microsoft/common/oauth2/v2.0/authorize?client_id={CLIENT}&response_type=token&redirect_uri={CALLBACK}&scope={DEVOPS}{}",
                pkce()
            ),
        ));
        let params = location_params(&implicit);
        assert_eq!(params["error"], "unsupported_response_type");
        assert!(params["error_description"].starts_with("AADSTS700054: response_type 'token'"));
        assert!(!params.contains_key("state"), "no state given, none echoed");
        let unknown = em.handle(&Request::new(
            "GET",
            &format!("/microsoft/common/oauth2/v2.0/authorize?client_id=nope&response_type=code&redirect_uri={CALLBACK}&scope={DEVOPS}"),
        ));
        assert_eq!((unknown.status, unknown.header("location")), (400, None));
        assert!(String::from_utf8(unknown.body)
            .unwrap()
            .contains("AADSTS700016"));
        // A redirect URI the app registration does not list: an error page, no redirect.
        let elsewhere = "http://127.0.0.1:8788/azure/callback";
        let unregistered = em.handle(&Request::new(
            "GET",
            &format!(
                "/microsoft/common/oauth2/v2.0/authorize?client_id={CLIENT}&response_type=code\
                 &redirect_uri={elsewhere}&scope={DEVOPS}{}",
                pkce()
            ),
        ));
        assert_eq!(
            (unregistered.status, unregistered.header("location")),
            (400, None)
        );
        assert!(String::from_utf8(unregistered.body)
            .unwrap()
            .contains(&format!(
                "AADSTS50011: The redirect URI '{elsewhere}' specified in the request does \
             not match the redirect URIs configured for the application"
            )));
        let form_post = em.handle(&Request::new(
            "GET",
            &format!(
                "/microsoft/common/oauth2/v2.0/authorize?client_id={CLIENT}&response_type=code&redirect_uri={CALLBACK}\
                 &response_mode=form_post&scope={DEVOPS}{}",
                pkce()
            ),
        ));
        assert_eq!(
            form_post.status, 400,
            "only response_mode=query is emulated"
        );
        let (status, body, _) = call(
            &em,
            "POST",
            "/microsoft/common/oauth2/v2.0/token",
            None,
            "client_id=nope&client_secret=x&grant_type=refresh_token&refresh_token=x",
        );
        assert_eq!(
            refused((status, body)),
            (400, "unauthorized_client".into(), 700016)
        );

        // emulator_user signs in someone else.
        let (access, _) = tokens(&em, &format!("&emulator_user={}", OTHER.to_uppercase()));
        let (_, me, _) = get(
            &em,
            "/vssps/_apis/profile/profiles/me?api-version=7.1",
            &access,
        );
        assert_eq!(me["displayName"], "Other");
        assert_eq!(
            authorize(
                &em,
                DEVOPS,
                &format!(
                    "{}&emulator_user={}",
                    pkce(),
                    "0d5e1c9a-0000-4000-8000-00000000ffff"
                )
            )
            .status,
            400
        );
    }

    #[test]
    fn refresh_rotation_revoke_and_expire() {
        let em = emulator();
        setup(&em);
        let (access, refresh_token) = tokens(&em, "");
        let (status, body) = refresh(&em, &refresh_token);
        assert_eq!(status, 200, "{body}");
        let new_access = body["access_token"].as_str().unwrap().to_string();
        let new_refresh = body["refresh_token"].as_str().unwrap().to_string();
        assert_eq!(
            refused(refresh(&em, &refresh_token)),
            (400, "invalid_grant".into(), 70000)
        );
        let (status, body, reply) = get(&em, "/vssps/_apis/profile/profiles/me", &access);
        assert_eq!(
            (status, reply.header("www-authenticate")),
            (401, Some("Bearer"))
        );
        assert_eq!(
            body["message"],
            "TF400813: The user '' is not authorized to access this resource."
        );
        assert_eq!(
            get(&em, "/vssps/_apis/profile/profiles/me", &new_access).0,
            200
        );

        admin(
            &em,
            "POST",
            "expire",
            json!({"user_id": DEV.to_uppercase()}),
        );
        assert_eq!(
            get(&em, "/azure/contoso/_apis/projects", &new_access).0,
            401
        );
        let (status, body) = refresh(&em, &new_refresh);
        assert_eq!(status, 200);
        let latest = body["access_token"].as_str().unwrap().to_string();
        assert_eq!(get(&em, "/azure/contoso/_apis/projects", &latest).0, 200);

        assert_eq!(
            admin(&em, "POST", &format!("users/{DEV}/revoke"), json!({})),
            json!({"revoked": 2})
        );
        assert_eq!(get(&em, "/azure/contoso/_apis/projects", &latest).0, 401);
        let leftover = body["refresh_token"].as_str().unwrap();
        assert_eq!(refused(refresh(&em, leftover)).1, "invalid_grant");

        let (_, grants, _) = call(&em, "GET", "/_emulator/oauth-grants", None, "");
        let ok_spends = grants
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| {
                g["presented_refresh_token"] == json!(refresh_token) && g["outcome"] == "ok"
            })
            .count();
        assert_eq!(ok_spends, 1);
        let (_, issued, _) = call(&em, "GET", "/_emulator/provider-tokens", None, "");
        let issued: Vec<&str> = issued
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(issued.len(), 6);
        assert!(issued.contains(&access.as_str()) && issued.contains(&leftover));

        admin(
            &em,
            "PUT",
            "oauth",
            json!({"client_id": CLIENT, "client_secret": "az-secret", "access_token_ttl": 120, "redirect_uris": [CALLBACK]}),
        );
        let (_, body) = exchange(&em, &code(&em, DEVOPS, ""), VERIFIER);
        assert_eq!(
            (&body["expires_in"], &body["ext_expires_in"]),
            (&json!(120), &json!(120))
        );
    }

    #[test]
    fn vssps_profile_and_accounts_by_member_id() {
        let em = emulator();
        setup(&em);
        let (access, _) = tokens(&em, "");
        let (status, me, _) = get(
            &em,
            "/vssps/_apis/profile/profiles/me?api-version=7.1",
            &access,
        );
        assert_eq!(status, 200);
        assert_eq!(
            (
                &me["id"],
                &me["publicAlias"],
                &me["displayName"],
                &me["emailAddress"]
            ),
            (
                &json!(DEV),
                &json!(DEV),
                &json!("Dev Azure"),
                &json!("dev@example.com")
            )
        );
        let contoso = admin(&em, "GET", "orgs/contoso", json!(null));
        let (status, accounts, _) = get(
            &em,
            &format!("/vssps/_apis/accounts?memberId={DEV}&api-version=7.1"),
            &access,
        );
        assert_eq!(status, 200);
        assert_eq!(
            accounts,
            json!({"count": 1, "value": [{"accountId": contoso["id"], "accountUri": "http://127.0.0.1:1/vssps/contoso/",
                                          "accountName": "contoso", "properties": {}}]})
        );
        assert_eq!(
            get(
                &em,
                &format!("/vssps/_apis/accounts?memberId={OTHER}"),
                &access
            )
            .0,
            401
        );
        assert_eq!(get(&em, "/vssps/_apis/accounts", &access).0, 400);
        assert_eq!(
            call(&em, "GET", "/vssps/_apis/profile/profiles/me", None, "").0,
            401
        );
        // A GitLab token is no Microsoft token.
        assert_eq!(
            get(&em, "/vssps/_apis/profile/profiles/me", "glemu-at-00").0,
            401
        );
    }

    #[test]
    fn projects_page_by_continuation_token_and_repositories_list_whole() {
        let em = emulator();
        setup(&em);
        let projects: Vec<Value> = ["e", "Fabrikam Fiber", "a", "c", "b"]
            .iter()
            .map(|name| json!({"name": name, "repositories": ["Zeta", "alpha"]}))
            .collect();
        admin(
            &em,
            "PUT",
            "orgs/big",
            json!({"members": [DEV], "projects": projects}),
        );
        let (access, _) = tokens(&em, "");
        let mut target = "/azure/big/_apis/projects?api-version=7.1&$top=2".to_string();
        let mut pages = Vec::new();
        loop {
            let (status, body, reply) = get(&em, &target, &access);
            assert_eq!(status, 200, "{body}");
            let names: Vec<String> = body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().into())
                .collect();
            assert_eq!(body["count"], names.len());
            pages.push(names);
            match reply.header("x-ms-continuationtoken") {
                Some(token) => {
                    target = format!(
                    "/azure/big/_apis/projects?api-version=7.1&$top=2&continuationToken={token}"
                )
                }
                None => break,
            }
        }
        assert_eq!(
            pages,
            [vec!["a", "b"], vec!["c", "e"], vec!["Fabrikam Fiber"]]
        );
        let (_, all, reply) = get(&em, "/azure/BIG/_apis/projects", &access);
        assert_eq!(
            (
                all["count"].as_u64(),
                reply.header("x-ms-continuationtoken")
            ),
            (Some(5), None)
        );
        let project = &all["value"][0];
        assert_eq!(
            (
                &project["state"],
                &project["visibility"],
                &project["revision"]
            ),
            (&json!("wellFormed"), &json!("private"), &json!(1))
        );
        assert!(project["lastUpdateTime"].as_str().unwrap().ends_with('Z'));
        assert_eq!(get(&em, "/azure/big/_apis/projects?$top=x", &access).0, 400);

        let (status, repos, _) = get(
            &em,
            "/azure/big/Fabrikam%20Fiber/_apis/git/repositories?api-version=7.1",
            &access,
        );
        assert_eq!(status, 200);
        assert_eq!(repos["count"], 2);
        let alpha = &repos["value"][0];
        assert_eq!(alpha["name"], "alpha", "by name, case-insensitively");
        assert_eq!(
            (&alpha["remoteUrl"], &alpha["webUrl"], &alpha["sshUrl"]),
            (
                &json!("http://127.0.0.1:1/azure/big/Fabrikam%20Fiber/_git/alpha"),
                &json!("https://dev.azure.com/big/Fabrikam%20Fiber/_git/alpha"),
                &json!("git@ssh.dev.azure.com:v3/big/Fabrikam%20Fiber/alpha")
            )
        );
        assert_eq!(
            (&alpha["defaultBranch"], &alpha["isDisabled"]),
            (&json!("refs/heads/main"), &json!(false))
        );
        assert_eq!(alpha["project"]["name"], "Fabrikam Fiber");
        let project_id = alpha["project"]["id"].as_str().unwrap();
        assert_eq!(
            get(
                &em,
                &format!("/azure/big/{project_id}/_apis/git/repositories"),
                &access
            )
            .1["count"],
            2
        );
        assert_eq!(
            get(&em, "/azure/big/_apis/git/repositories", &access).1["count"],
            10
        );
        let (_, one, _) = get(
            &em,
            &format!("/azure/big/_apis/projects/{project_id}"),
            &access,
        );
        assert_eq!(one["name"], "Fabrikam Fiber");

        // Admin changes to repositories.
        let web = admin(&em, "GET", "orgs/contoso", json!(null))["projects"][0].clone();
        let first = web["repositories"][0]["id"].as_str().unwrap();
        let changed = admin(
            &em,
            "POST",
            "orgs/contoso/projects/web/repositories",
            json!({"add": 1, "add_names": ["docs"], "remove_ids": [first]}),
        );
        let names: Vec<&str> = changed["projects"][0]["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "web-repo-002",
                "web-repo-003",
                "web-repo-004",
                "web-repo-005",
                "docs"
            ]
        );

        // Unknown organizations, organizations of others and unknown projects: 404.
        for target in [
            "/azure/nope/_apis/projects",
            "/azure/fabrikam/_apis/projects",
            "/azure/contoso/nope/_apis/git/repositories",
        ] {
            let (status, body, _) = get(&em, target, &access);
            assert_eq!(status, 404, "{target}");
            assert!(body["message"].is_string() && body["typeKey"].is_string());
        }
        assert_eq!(
            admin(&em, "DELETE", "orgs/contoso", json!(null)),
            json!({"deleted": true})
        );
        assert_eq!(get(&em, "/azure/contoso/_apis/projects", &access).0, 404);
        assert_eq!(
            call(&em, "GET", "/_emulator/azure/orgs/contoso", None, "").0,
            404
        );
    }
}
