//! The git routes in process (through `Emulator::handle`, real `git` underneath).

use base64::Engine;
use serde_json::{json, Value};

use super::protocol::{pkt_line, FLUSH};
use super::*;
use crate::http::Request;
use crate::oauth::s256_challenge;
use crate::server::tests::{
    admin_call, call, emulator, install, jwt, location_params, token_for, ACME,
};

const VERIFIER: &str = "git-tests-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const CALLBACK: &str = "http://127.0.0.1:8787/oauth/callback";
const DEVOPS: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default";
const AZURE_DEV: &str = "0d5e1c9a-0000-4000-8000-00000000d001";
const AZURE_OTHER: &str = "0d5e1c9a-0000-4000-8000-00000000d002";

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn get_refs(em: &Emulator, repo_url: &str, auth: Option<&str>) -> Reply {
    let mut request = Request::new(
        "GET",
        &format!("{repo_url}/info/refs?service=git-upload-pack"),
    )
    .with_header("Git-Protocol", "version=2");
    if let Some(auth) = auth {
        request = request.with_header("Authorization", auth);
    }
    em.handle(&request)
}

/// A v0 fetch of `oid` asking for `capabilities`.
fn fetch_body(oid: &str, capabilities: &str) -> Vec<u8> {
    let mut body = pkt_line(&format!("want {oid} {capabilities}\n"));
    body.extend_from_slice(FLUSH);
    body.extend(pkt_line("done\n"));
    body
}

fn upload_pack(em: &Emulator, repo_url: &str, auth: &str, body: Vec<u8>, gzip: bool) -> Reply {
    let mut request = Request::new("POST", &format!("{repo_url}/git-upload-pack"))
        .with_header("Authorization", auth)
        .with_header("Content-Type", "application/x-git-upload-pack-request");
    request.body = body;
    if gzip {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&request.body).unwrap();
        request.body = encoder.finish().unwrap();
        request = request.with_header("Content-Encoding", "gzip");
    }
    em.handle(&request)
}

/// The body of a reply, streamed or not.
fn body(reply: &Reply) -> Vec<u8> {
    match &reply.stream {
        Some(stream) => stream.read_all(),
        None => reply.body.clone(),
    }
}

/// The refs an advertisement lists (without capabilities or peeled entries).
fn advertised(reply: &Reply) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    text.split('\n')
        .filter_map(|line| {
            let line = line.get(4..)?.split('\0').next()?;
            let (oid, name) = line.split_once(' ')?;
            (oid.len() == 40 && !name.ends_with("^{}")).then(|| (name.to_string(), oid.to_string()))
        })
        .collect()
}

fn refs(em: &Emulator, key: &str) -> Value {
    admin_call(em, "GET", &format!("git/{key}/refs"), Value::Null)
}

#[test]
fn git_urls_parse_per_service() {
    let parse = |path: &str| GitRequest::parse(path);
    assert_eq!(
        parse("/acme/repo.git/info/refs"),
        Some(GitRequest {
            host: Host::GitHub {
                owner: "acme".into(),
                repo: "repo".into()
            },
            endpoint: Endpoint::InfoRefs
        })
    );
    assert_eq!(
        parse("/acme/repo/git-upload-pack").map(|g| g.endpoint),
        Some(Endpoint::UploadPack)
    );
    assert_eq!(
        parse("/gitlab/com/initech/platform/app.git/git-upload-pack").map(|g| g.host),
        Some(Host::GitLab {
            instance: "com".into(),
            path: "initech/platform/app".into()
        })
    );
    assert_eq!(
        parse("/azure/contoso/Fabrikam%20Fiber/_git/web/info/refs").map(|g| g.host),
        Some(Host::Azure {
            org: "contoso".into(),
            project: "Fabrikam Fiber".into(),
            repo: "web".into()
        })
    );
    for not_git in [
        "/installation/repositories",
        "/gitlab/com/api/v4/info/refs",
        "/sink/x/info/refs",
        "/a/b/c/info/refs",
        "/acme//info/refs",
        "/azure/contoso/_apis/git/repositories",
    ] {
        assert_eq!(parse(not_git), None, "{not_git}");
    }
    assert_eq!(
        basic_credentials(Some(&basic("x-access-token", "ghs_a:b"))),
        Some(("x-access-token".into(), "ghs_a:b".into()))
    );
    assert_eq!(basic_credentials(Some("Bearer x")), None);
}

#[test]
fn github_repositories_serve_git_to_their_installation_only() {
    let em = emulator();
    install(&em, 5, ACME);
    install(
        &em,
        6,
        r#"{"account":{"login":"octo","id":2},"repositories":[{"name":"Site","default_branch":"trunk"}]}"#,
    );
    let token = token_for(&em, 5);
    let raw = token.trim_start_matches("token ");
    let git_auth = basic("x-access-token", raw);

    // The listing points at the emulator.
    let (_, listed, _) = call(&em, "GET", "/installation/repositories", Some(&token), "");
    let clone_url = listed["repositories"][0]["clone_url"].as_str().unwrap();
    assert_eq!(clone_url, "http://127.0.0.1:1/acme/acme-repo-00001.git");
    let repo_url = clone_url.trim_start_matches("http://127.0.0.1:1");

    let reply = get_refs(&em, repo_url, Some(&git_auth));
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/x-git-upload-pack-advertisement")
    );
    assert!(reply
        .body
        .starts_with(b"001e# service=git-upload-pack\n0000"));
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(text.contains("symref=HEAD:refs/heads/main"), "{text}");
    assert!(!text.contains("version 2"), "always protocol v0: {text}");
    let admin = refs(&em, "github/acme/acme-repo-00001");
    let expected: Vec<(String, String)> = admin["refs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, oid)| (name.clone(), oid.as_str().unwrap().to_string()))
        .collect();
    let mut listed_refs = advertised(&reply);
    listed_refs.retain(|(name, _)| name != "HEAD");
    assert_eq!(listed_refs, expected);
    let names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "refs/heads/develop",
            "refs/heads/main",
            "refs/pull/1/head",
            "refs/pull/1/merge",
            "refs/tags/v0.1",
            "refs/tags/v1.0"
        ]
    );
    assert_eq!(admin["head"], "refs/heads/main");

    // A fetch streams the pack; gzip request bodies and the `token` scheme work too.
    let main = admin["refs"]["refs/heads/main"].as_str().unwrap();
    for (auth, gzip) in [(git_auth.as_str(), false), (token.as_str(), true)] {
        let reply = upload_pack(
            &em,
            repo_url,
            auth,
            fetch_body(main, "multi_ack_detailed ofs-delta"),
            gzip,
        );
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some("application/x-git-upload-pack-result")
        );
        assert!(reply.stream.is_some(), "streamed, not buffered");
        let pack = body(&reply);
        assert!(
            pack.starts_with(b"0008NAK\nPACK"),
            "{:?}",
            &pack[..pack.len().min(16)]
        );
    }

    // Refusals: no or bad credentials, an App JWT, another installation's or an unknown repo.
    let unauthenticated = get_refs(&em, repo_url, None);
    assert_eq!(
        (
            unauthenticated.status,
            unauthenticated.header("www-authenticate")
        ),
        (401, Some("Basic realm=\"GitHub\""))
    );
    assert_eq!(
        get_refs(&em, repo_url, Some(&basic("x-access-token", "ghs_nope"))).status,
        401
    );
    assert_eq!(get_refs(&em, repo_url, Some(&jwt())).status, 401);
    let foreign = get_refs(&em, "/octo/site.git", Some(&git_auth));
    assert_eq!(
        (foreign.status, foreign.body.as_slice()),
        (404, &b"Repository not found.\n"[..])
    );
    assert_eq!(
        get_refs(&em, "/acme/acme-repo-00009.git", Some(&git_auth)).status,
        404
    );
    let octo = token_for(&em, 6);
    let site = get_refs(
        &em,
        "/OCTO/site",
        Some(&basic("x", octo.trim_start_matches("token "))),
    );
    assert_eq!(site.status, 200, "any user name, any case, no .git");
    let as_user = basic(octo.trim_start_matches("token "), "x-oauth-basic");
    assert_eq!(get_refs(&em, "/octo/site.git", Some(&as_user)).status, 200);
    assert!(String::from_utf8_lossy(&site.body).contains("symref=HEAD:refs/heads/trunk"));
    let wrong_type = em.handle(
        &Request::new("POST", &format!("{repo_url}/git-upload-pack"))
            .with_header("Authorization", &git_auth)
            .with_body(fetch_body(main, "multi_ack")),
    );
    assert_eq!(wrong_type.status, 415);
    assert_eq!(
        get_refs(&em, &format!("{repo_url}/x"), Some(&git_auth)).status,
        404
    );
    let push = em.handle(
        &Request::new(
            "GET",
            &format!("{repo_url}/info/refs?service=git-receive-pack"),
        )
        .with_header("Authorization", &git_auth),
    );
    assert_eq!(push.status, 403);

    // Suspension closes git too.
    call(
        &em,
        "PATCH",
        "/_emulator/installations/5",
        None,
        r#"{"suspended":true}"#,
    );
    assert_eq!(get_refs(&em, repo_url, Some(&git_auth)).status, 403);

    // The log names the caller; the ledger saw every token at home.
    let log = admin_call(&em, "GET", "requests", Value::Null);
    let git_rows: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .starts_with("/acme/acme-repo-00001.git/")
        })
        .collect();
    assert_eq!(
        (
            &git_rows[0]["auth"],
            &git_rows[0]["installation_id"],
            &git_rows[0]["query"]
        ),
        (
            &json!("installation_token"),
            &json!(5),
            &json!("service=git-upload-pack")
        )
    );
    let misplaced = admin_call(&em, "GET", "credentials/misplaced", Value::Null);
    assert_eq!(misplaced["misplaced"], json!([]));
    assert!(
        admin_call(&em, "GET", "credentials/seen", Value::Null)["github"]
            .as_u64()
            .unwrap()
            >= 8
    );
}

/// Configures `instance` (client, user 7001 in group `initech` with one project, user 7002
/// outside it) and signs a user in with `scope`: the access token.
fn gitlab_token(em: &Emulator, user: u64, scope: &str) -> String {
    admin_call(
        em,
        "PUT",
        "gitlab/com/oauth",
        json!({"client_id": "gl", "client_secret": "s", "redirect_uris": [CALLBACK]}),
    );
    admin_call(
        em,
        "PUT",
        "gitlab/com/users/7001",
        json!({"username": "dev"}),
    );
    admin_call(
        em,
        "PUT",
        "gitlab/com/users/7002",
        json!({"username": "other"}),
    );
    if admin_call(em, "GET", "gitlab/com/projects", Value::Null)
        .as_array()
        .unwrap()
        .is_empty()
    {
        admin_call(
            em,
            "PUT",
            "gitlab/com/groups/1",
            json!({"name": "Initech", "path": "initech", "members": [7001], "projects": 1}),
        );
        admin_call(
            em,
            "PUT",
            "gitlab/com/groups/2",
            json!({"name": "Platform", "path": "platform", "parent_id": 1, "projects": 1}),
        );
    }
    let (status, _, reply) = call(
        em,
        "GET",
        &format!(
            "/gitlab/com/oauth/authorize?client_id=gl&redirect_uri={CALLBACK}&response_type=code\
             &scope={scope}&code_challenge={}&code_challenge_method=S256&emulator_user={user}",
            s256_challenge(VERIFIER)
        ),
        None,
        "",
    );
    assert_eq!(status, 302);
    let code = location_params(&reply)["code"].clone();
    let (status, body, _) = call(
        em,
        "POST",
        "/gitlab/com/oauth/token",
        None,
        &format!(
            "grant_type=authorization_code&client_id=gl&client_secret=s&code={code}\
             &redirect_uri={CALLBACK}&code_verifier={VERIFIER}"
        ),
    );
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

#[test]
fn gitlab_projects_serve_git_to_members_with_oauth2_basic() {
    let em = emulator();
    let access = gitlab_token(&em, 7001, "read_api+read_repository");
    let (_, projects, _) = call(
        &em,
        "GET",
        "/gitlab/com/api/v4/groups/1/projects?include_subgroups=true",
        Some(&format!("Bearer {access}")),
        "",
    );
    let http_url = projects[0]["http_url_to_repo"].as_str().unwrap();
    assert_eq!(
        http_url,
        "http://127.0.0.1:1/gitlab/com/initech/platform/platform-repo-001.git"
    );
    let repo_url = http_url.trim_start_matches("http://127.0.0.1:1");
    let auth = basic("oauth2", &access);
    let reply = get_refs(&em, repo_url, Some(&auth));
    assert_eq!(reply.status, 200);
    let names: Vec<String> = advertised(&reply).into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"refs/merge-requests/1/head".to_string()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("refs/pull/")));
    let admin = refs(&em, "gitlab/com/initech/platform/platform-repo-001");
    let main = admin["refs"]["refs/heads/main"].as_str().unwrap();
    let fetched = upload_pack(&em, repo_url, &auth, fetch_body(main, "ofs-delta"), false);
    assert!(body(&fetched).starts_with(b"0008NAK\nPACK"));

    for (who, expected) in [
        (Some(basic("oauth2", "glemu-at-nope")), 401),
        (Some(basic("dev", &access)), 401),
        (Some(format!("Bearer {access}")), 401),
        (None, 401),
    ] {
        let reply = get_refs(&em, repo_url, who.as_deref());
        assert_eq!(reply.status, expected, "{who:?}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Basic realm=\"GitLab\"")
        );
    }
    assert_eq!(
        get_refs(&em, "/gitlab/com/initech/nope.git", Some(&auth)).status,
        404
    );
    assert_eq!(
        get_refs(
            &em,
            "/gitlab/other/initech/platform/platform-repo-001.git",
            Some(&auth)
        )
        .status,
        401
    );
    let outsider = gitlab_token(&em, 7002, "read_repository");
    assert_eq!(
        get_refs(&em, repo_url, Some(&basic("oauth2", &outsider))).status,
        404
    );
    let narrow = gitlab_token(&em, 7001, "read_api");
    assert_eq!(
        get_refs(&em, repo_url, Some(&basic("oauth2", &narrow))).status,
        403
    );
    admin_call(&em, "POST", "gitlab/com/expire", json!({}));
    assert_eq!(get_refs(&em, repo_url, Some(&auth)).status, 401);
    let log = admin_call(&em, "GET", "requests", Value::Null);
    let last = log.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["auth"], "expired");
    // Only the request to another instance misplaced the token (the ledger covers git).
    let misplaced = admin_call(&em, "GET", "credentials/misplaced", Value::Null);
    let misplaced = misplaced["misplaced"].as_array().unwrap().clone();
    assert_eq!(misplaced.len(), 1, "{misplaced:?}");
    assert_eq!(
        (
            &misplaced[0]["presented_to"],
            &misplaced[0]["home"],
            &misplaced[0]["via"]
        ),
        (
            &json!("gitlab:other"),
            &json!("gitlab:com"),
            &json!("authorization:basic")
        )
    );
}

/// An organization `contoso` (member AZURE_DEV) with project `Fabrikam Fiber` and repository
/// `web`, and the access token of `user`.
fn azure_token(em: &Emulator, user: &str) -> String {
    admin_call(
        em,
        "PUT",
        "azure/oauth",
        json!({"client_id": "az", "client_secret": "s", "redirect_uris": [CALLBACK]}),
    );
    admin_call(
        em,
        "PUT",
        &format!("azure/users/{AZURE_DEV}"),
        json!({"displayName": "Dev"}),
    );
    admin_call(
        em,
        "PUT",
        &format!("azure/users/{AZURE_OTHER}"),
        json!({"displayName": "Other"}),
    );
    if em.store().azure.org("contoso").is_none() {
        admin_call(
            em,
            "PUT",
            "azure/orgs/contoso",
            json!({"members": [AZURE_DEV], "projects": [{"name": "Fabrikam Fiber", "repositories": ["web"]}]}),
        );
    }
    let (_, _, reply) = call(
        em,
        "GET",
        &format!(
            "/microsoft/organizations/oauth2/v2.0/authorize?client_id=az&response_type=code\
             &redirect_uri={CALLBACK}&scope={DEVOPS}&code_challenge={}&code_challenge_method=S256\
             &emulator_user={user}",
            s256_challenge(VERIFIER)
        ),
        None,
        "",
    );
    let code = location_params(&reply)["code"].clone();
    let (status, body, _) = call(
        em,
        "POST",
        "/microsoft/organizations/oauth2/v2.0/token",
        None,
        &format!(
            "client_id=az&client_secret=s&grant_type=authorization_code&code={code}\
             &redirect_uri={CALLBACK}&code_verifier={VERIFIER}"
        ),
    );
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

#[test]
fn azure_repositories_need_a_member_bearer_and_multi_ack() {
    let em = emulator();
    let access = azure_token(&em, AZURE_DEV);
    let bearer = format!("Bearer {access}");
    let (_, listed, _) = call(
        &em,
        "GET",
        "/azure/contoso/_apis/git/repositories",
        Some(&bearer),
        "",
    );
    let remote = listed["value"][0]["remoteUrl"].as_str().unwrap();
    assert_eq!(
        remote,
        "http://127.0.0.1:1/azure/contoso/Fabrikam%20Fiber/_git/web"
    );
    let repo_url = remote.trim_start_matches("http://127.0.0.1:1");
    let reply = get_refs(&em, repo_url, Some(&bearer));
    assert_eq!(reply.status, 200);
    let admin = refs(&em, "azure/contoso/Fabrikam%20Fiber/web");
    let main = admin["refs"]["refs/heads/main"].as_str().unwrap();
    assert!(advertised(&reply).contains(&("refs/heads/main".to_string(), main.to_string())));

    let refused = upload_pack(
        &em,
        repo_url,
        &bearer,
        fetch_body(main, "side-band-64k ofs-delta"),
        false,
    );
    assert_eq!(refused.status, 400);
    assert!(String::from_utf8_lossy(&refused.body).contains("multi_ack"));
    for caps in ["multi_ack ofs-delta", "multi_ack_detailed no-done"] {
        let accepted = upload_pack(&em, repo_url, &bearer, fetch_body(main, caps), true);
        assert_eq!(accepted.status, 200, "{caps}");
        let pack = body(&accepted);
        assert!(pack.windows(4).any(|w| w == b"PACK"), "{caps}");
    }

    let by_id = format!(
        "/azure/contoso/{}/_git/WEB/info/refs?service=git-upload-pack",
        listed["value"][0]["project"]["id"].as_str().unwrap()
    );
    assert_eq!(
        em.handle(&Request::new("GET", &by_id).with_header("Authorization", &bearer))
            .status,
        200
    );
    let unauthorized = get_refs(&em, repo_url, Some(&basic("x", &access)));
    assert_eq!(
        (unauthorized.status, unauthorized.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    assert_eq!(get_refs(&em, repo_url, None).status, 401);
    let other = azure_token(&em, AZURE_OTHER);
    assert_eq!(
        get_refs(&em, repo_url, Some(&format!("Bearer {other}"))).status,
        404
    );
    assert_eq!(
        get_refs(
            &em,
            "/azure/contoso/Fabrikam%20Fiber/_git/nope",
            Some(&bearer)
        )
        .status,
        404
    );
    let seen = admin_call(&em, "GET", "credentials/seen", Value::Null);
    assert!(seen["microsoft"].as_u64().unwrap() >= 6, "{seen}");
    assert_eq!(
        admin_call(&em, "GET", "credentials/misplaced", Value::Null)["misplaced"],
        json!([])
    );
}

#[test]
fn admin_changes_show_in_the_advertisement() {
    let em = emulator();
    install(&em, 5, ACME);
    let token = token_for(&em, 5);
    let key = "github/acme/acme-repo-00002";
    let before = refs(&em, key);
    let path = before["path"].as_str().unwrap();
    assert!(std::path::Path::new(path).join("HEAD").is_file(), "{path}");
    let old_main = before["refs"]["refs/heads/main"]
        .as_str()
        .unwrap()
        .to_string();

    let added = admin_call(
        &em,
        "POST",
        &format!("git/{key}/commits"),
        json!({"count": 2}),
    );
    let new_main = added["refs"]["refs/heads/main"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_main, old_main);
    let branched = admin_call(
        &em,
        "POST",
        &format!("git/{key}/branches"),
        json!({"name": "release/1", "from": old_main}),
    );
    assert_eq!(branched["refs"]["refs/heads/release/1"], json!(old_main));
    let tagged = admin_call(
        &em,
        "POST",
        &format!("git/{key}/tags"),
        json!({"name": "v2", "annotated": true}),
    );
    let tag = tagged["refs"]["refs/tags/v2"].as_str().unwrap();
    assert_ne!(tag, new_main, "an annotated tag is its own object");
    let light = admin_call(
        &em,
        "POST",
        &format!("git/{key}/tags"),
        json!({"name": "light", "target": "refs/heads/develop"}),
    );
    assert_eq!(
        light["refs"]["refs/tags/light"],
        before["refs"]["refs/heads/develop"]
    );
    let deleted = admin_call(
        &em,
        "DELETE",
        &format!("git/{key}/branches/develop"),
        Value::Null,
    );
    assert!(deleted["refs"].get("refs/heads/develop").is_none());
    let pushed = admin_call(
        &em,
        "POST",
        &format!("git/{key}/force-push"),
        json!({"branch": "main", "to": old_main, "commits": 1}),
    );
    let rewritten = pushed["refs"]["refs/heads/main"].as_str().unwrap();
    assert!(![old_main.as_str(), new_main.as_str()].contains(&rewritten));

    let reply = get_refs(&em, "/acme/acme-repo-00002.git", Some(&token));
    let listed: std::collections::BTreeMap<String, String> = advertised(&reply)
        .into_iter()
        .filter(|(name, _)| name != "HEAD")
        .collect();
    let expected: std::collections::BTreeMap<String, String> =
        serde_json::from_value(pushed["refs"].clone()).unwrap();
    assert_eq!(listed, expected);

    // Refusals.
    let status = |method: &str, path: &str, body: Value| {
        call(
            &em,
            method,
            &format!("/_emulator/git/{path}"),
            None,
            &body.to_string(),
        )
        .0
    };
    assert_eq!(
        status("POST", &format!("{key}/branches"), json!({"name": "main"})),
        409
    );
    assert_eq!(
        status(
            "POST",
            &format!("{key}/branches"),
            json!({"name": "bad..name"})
        ),
        400
    );
    assert_eq!(
        status(
            "POST",
            &format!("{key}/branches"),
            json!({"name": "x", "from": "nope"})
        ),
        400
    );
    assert_eq!(
        status("POST", &format!("{key}/tags"), json!({"name": "v2"})),
        409
    );
    assert_eq!(
        status("DELETE", &format!("{key}/branches/main"), Value::Null),
        400
    );
    assert_eq!(
        status("DELETE", &format!("{key}/branches/gone"), Value::Null),
        404
    );
    assert_eq!(
        status(
            "POST",
            &format!("{key}/force-push"),
            json!({"branch": "gone"})
        ),
        404
    );
    assert_eq!(status("GET", "github/acme/nope/refs", Value::Null), 404);
    assert_eq!(status("GET", "gitlab/com/a/refs", Value::Null), 404);
    assert_eq!(status("PUT", &format!("{key}/refs"), Value::Null), 404);
    let slash = admin_call(
        &em,
        "DELETE",
        &format!("git/{key}/branches/release%2F1"),
        Value::Null,
    );
    assert!(slash["refs"].get("refs/heads/release/1").is_none());
}

#[test]
fn initial_content_is_deterministic_and_created_lazily() {
    let (a, b) = (emulator(), emulator());
    for em in [&a, &b] {
        install(
            em,
            5,
            r#"{"account":{"login":"acme","id":1},"repositories":10000}"#,
        );
    }
    assert_eq!(refs(&a, "github/acme/acme-repo-00042"), {
        let mut other = refs(&b, "github/acme/acme-repo-00042");
        other["path"] = refs(&a, "github/acme/acme-repo-00042")["path"].clone();
        other
    });
    assert_ne!(
        refs(&a, "github/acme/acme-repo-00042")["refs"]["refs/heads/main"],
        refs(&a, "github/acme/acme-repo-00043")["refs"]["refs/heads/main"]
    );
    let path = refs(&a, "github/ACME/acme-repo-00042")["path"]
        .as_str()
        .unwrap()
        .to_string();
    let root = std::path::Path::new(&path).parent().unwrap();
    let created: Vec<_> = std::fs::read_dir(root).unwrap().flatten().collect();
    assert_eq!(
        created.len(),
        2,
        "only the repositories asked for, of 10,000 listed"
    );
    // Dropping an emulator removes its temporary git root.
    drop(a);
    assert!(!root.exists());
}

#[test]
fn faults_cover_git_routes() {
    let em = emulator();
    install(&em, 5, ACME);
    let token = token_for(&em, 5);
    admin_call(
        &em,
        "PUT",
        "faults",
        json!([{"path_prefix": "/acme/acme-repo-00001.git/info/refs", "status": 503, "times": 1},
               {"path_prefix": "/acme/acme-repo-00001.git/git-upload-pack", "truncate_after_bytes": 100}]),
    );
    assert_eq!(
        get_refs(&em, "/acme/acme-repo-00001.git", Some(&token)).status,
        503
    );
    assert_eq!(
        get_refs(&em, "/acme/acme-repo-00001.git", Some(&token)).status,
        200
    );
    let main = refs(&em, "github/acme/acme-repo-00001")["refs"]["refs/heads/main"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = upload_pack(
        &em,
        "/acme/acme-repo-00001.git",
        &token,
        fetch_body(&main, "multi_ack"),
        false,
    );
    assert_eq!((reply.status, reply.truncate_after), (200, Some(100)));
}

/// `git` with no user or system configuration, `HOME` at `home`.
fn real_git(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new("git");
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .args(args)
        .output()
        .expect("run git")
}

/// A scratch directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "github-emulator-unit-{name}-{}-{}",
            std::process::id(),
            crate::oauth::random_hex(4)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What real git answers to `GET info/refs?service=git-upload-pack` for an empty bare
/// repository (initial branch `branch`): the service line, a flush, then its advertisement.
fn empty_advertisement(branch: &str) -> Vec<u8> {
    let scratch = Scratch::new("empty");
    let bare = scratch.0.join("e.git");
    let bare = bare.to_str().unwrap();
    let init = real_git(
        &scratch.0,
        &[
            "init",
            "--bare",
            "--quiet",
            &format!("--initial-branch={branch}"),
            bare,
        ],
    );
    assert!(init.status.success());
    let refs = real_git(
        &scratch.0,
        &["upload-pack", "--stateless-rpc", "--advertise-refs", bare],
    );
    assert!(refs.status.success());
    let mut expected = pkt_line("# service=git-upload-pack\n");
    expected.extend_from_slice(FLUSH);
    expected.extend(refs.stdout);
    expected
}

fn register_empty(em: &Emulator, prefix: &str) -> Value {
    admin_call(em, "POST", "git/empty", json!({ "prefix": prefix }))
}

#[test]
fn empty_prefix_repositories_advertise_like_empty_git_repositories() {
    let em = emulator();
    install(&em, 5, ACME);
    install(
        &em,
        6,
        r#"{"account":{"login":"octo","id":2},"repositories":[{"name":"Site","default_branch":"trunk"}]}"#,
    );
    let token = token_for(&em, 5);
    let auth = basic("x-access-token", token.trim_start_matches("token "));
    assert_eq!(
        register_empty(&em, "GitHub/Acme/acme-repo-00002"),
        json!({"prefixes": ["github/acme/acme-repo-00002"]})
    );
    assert_eq!(
        register_empty(&em, "github/octo/"),
        json!({"prefixes": ["github/acme/acme-repo-00002", "github/octo/"]}),
        "prefixes only add"
    );
    assert_eq!(
        admin_call(&em, "GET", "git/empty", Value::Null)["prefixes"],
        json!(["github/acme/acme-repo-00002", "github/octo/"])
    );

    // Byte for byte what git says for an empty repository, whatever the default branch.
    let expected = empty_advertisement("main");
    assert_eq!(expected, empty_advertisement("trunk"));
    let text = String::from_utf8_lossy(&expected).into_owned();
    assert!(text.contains(" capabilities^{}\0"), "{text}");
    assert!(!text.contains("symref="), "v0 shows no unborn HEAD: {text}");
    for _ in 0..2 {
        let reply = get_refs(&em, "/acme/acme-repo-00002.git", Some(&auth));
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some("application/x-git-upload-pack-advertisement")
        );
        assert_eq!(reply.body, expected);
    }

    // A repository outside the prefix keeps its history; the empty one has no directory.
    let full = refs(&em, "github/acme/acme-repo-00001");
    assert!(full["refs"]["refs/heads/main"].is_string(), "{full}");
    assert!(advertised(&get_refs(&em, "/acme/acme-repo-00003.git", Some(&auth))).len() > 5);
    let owner_dir = std::path::Path::new(full["path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(!owner_dir.join("acme-repo-00002.git").exists());
    let root = owner_dir.parent().unwrap().parent().unwrap();
    assert!(root.join(".empty.git").join("HEAD").is_file());

    // Upload-pack is git's own answer for an empty repository.
    let flush_only = upload_pack(
        &em,
        "/acme/acme-repo-00002.git",
        &auth,
        FLUSH.to_vec(),
        false,
    );
    assert_eq!((flush_only.status, body(&flush_only)), (200, Vec::new()));
    let oid = "1".repeat(40);
    let wanting = upload_pack(
        &em,
        "/acme/acme-repo-00002.git",
        &auth,
        fetch_body(&oid, "multi_ack_detailed"),
        false,
    );
    assert_eq!(wanting.status, 200);
    let answer = String::from_utf8_lossy(&body(&wanting)).into_owned();
    assert_eq!(answer, format!("0049ERR upload-pack: not our ref {oid}"));
    assert!(!owner_dir.join("acme-repo-00002.git").exists());

    // Credentials, unknown repositories and faults as for any repository; the log shows it.
    assert_eq!(get_refs(&em, "/acme/acme-repo-00002.git", None).status, 401);
    assert_eq!(
        get_refs(&em, "/acme/acme-repo-000020.git", Some(&auth)).status,
        404
    );
    assert_eq!(get_refs(&em, "/octo/site.git", Some(&auth)).status, 404);
    admin_call(
        &em,
        "PUT",
        "faults",
        json!([{"path_prefix": "/acme/acme-repo-00002.git/info/refs", "status": 503, "times": 1}]),
    );
    assert_eq!(
        get_refs(&em, "/acme/acme-repo-00002.git", Some(&auth)).status,
        503
    );
    let log = admin_call(&em, "GET", "requests", Value::Null);
    let last = log.as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["path"], &last["status"], &last["auth"]),
        (
            &json!("/acme/acme-repo-00002.git/info/refs"),
            &json!(503),
            &json!("installation_token")
        )
    );

    // The admin API creates the empty repository itself, with HEAD on the default branch.
    let octo = token_for(&em, 6);
    let octo_auth = basic("x", octo.trim_start_matches("token "));
    assert_eq!(
        get_refs(&em, "/octo/site.git", Some(&octo_auth)).body,
        expected
    );
    let site = refs(&em, "github/octo/site");
    assert_eq!(
        (&site["refs"], &site["head"]),
        (&json!({}), &json!("refs/heads/trunk"))
    );
    let site_dir = std::path::Path::new(site["path"].as_str().unwrap());
    assert!(site_dir.join("HEAD").is_file());
    assert_eq!(
        get_refs(&em, "/octo/site.git", Some(&octo_auth)).body,
        expected
    );
    let status = |method: &str, path: &str, body: Value| {
        call(
            &em,
            method,
            &format!("/_emulator/git/{path}"),
            None,
            &body.to_string(),
        )
        .0
    };
    assert_eq!(
        status("POST", "github/octo/site/branches", json!({"name": "x"})),
        400,
        "HEAD names no commit yet"
    );
    assert_eq!(
        status(
            "POST",
            "github/octo/site/force-push",
            json!({"branch": "trunk"})
        ),
        404
    );

    // Commits on an empty repository start the default branch from nothing.
    let added = admin_call(
        &em,
        "POST",
        "git/github/acme/acme-repo-00002/commits",
        json!({"count": 2}),
    );
    assert_eq!(added["head"], "refs/heads/main");
    let names: Vec<&String> = added["refs"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["refs/heads/main"]);
    let main = added["refs"]["refs/heads/main"].as_str().unwrap();
    let reply = get_refs(&em, "/acme/acme-repo-00002.git", Some(&auth));
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(text.contains(&format!("{main} HEAD\0")), "{text}");
    assert!(text.contains("symref=HEAD:refs/heads/main"), "{text}");
    assert_eq!(
        advertised(&reply),
        [("refs/heads/main".to_string(), main.to_string())]
    );
    let path = added["path"].as_str().unwrap();
    let log = real_git(
        std::path::Path::new(path),
        &["--git-dir", path, "log", "--format=%s", "main"],
    );
    assert_eq!(
        String::from_utf8_lossy(&log.stdout),
        "Commit 2 on main\nCommit 1 on main\n",
        "two commits, the first a root commit"
    );
    // Another branch of a still empty repository is a root commit too.
    let feature = admin_call(
        &em,
        "POST",
        "git/github/octo/site/commits",
        json!({"branch": "feature"}),
    );
    assert_eq!(feature["head"], "refs/heads/trunk");
    assert!(feature["refs"]["refs/heads/feature"].is_string());
}

#[test]
fn bad_empty_prefixes_are_refused() {
    let em = emulator();
    for body in [
        json!({"prefix": ""}),
        json!({"prefix": "acme/"}),
        json!({"prefix": "/github/acme/"}),
        json!({"prefix": "github"}),
        json!({"prefix": "bitbucket/x/"}),
        json!({}),
        json!({"prefix": "github/x/", "other": 1}),
    ] {
        let (status, answer, _) =
            call(&em, "POST", "/_emulator/git/empty", None, &body.to_string());
        assert_eq!(status, 400, "{body}: {answer}");
    }
    assert_eq!(
        admin_call(&em, "GET", "git/empty", Value::Null),
        json!({"prefixes": []})
    );
    for good in ["gitlab/com/hooli/", "AZURE/contoso/", "github/e2e-huge/"] {
        register_empty(&em, good);
    }
    assert_eq!(
        admin_call(&em, "GET", "git/empty", Value::Null)["prefixes"],
        json!(["azure/contoso/", "github/e2e-huge/", "gitlab/com/hooli/"])
    );
}

/// Runs `body` with the emulator served over HTTP on 127.0.0.1 (its base URL), so the real git
/// can fetch from it.
fn over_http<T>(em: &Emulator, body: impl FnOnce(&str) -> T) -> T {
    const THREADS: usize = 2;
    /// Stops the serving threads however `body` ends.
    struct Stop<'s>(&'s tiny_http::Server);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            for _ in 0..THREADS {
                self.0.unblock();
            }
        }
    }
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    std::thread::scope(|scope| {
        scope.spawn(|| crate::server::serve(&server, em, THREADS));
        let _stop = Stop(&server);
        body(&base)
    })
}

#[test]
fn real_git_clones_empty_repositories_empty_until_commits_are_added() {
    let em = emulator();
    install(&em, 5, ACME);
    let token = token_for(&em, 5);
    let header = format!(
        "http.extraHeader=Authorization: {}",
        basic("x-access-token", token.trim_start_matches("token "))
    );
    register_empty(&em, "github/acme/acme-repo-00001");
    let scratch = Scratch::new("clone");
    let home = scratch.0.as_path();
    let clone = |base: &str, repo: &str, into: &str| {
        let target = home.join(into);
        let out = real_git(
            home,
            &[
                "-c",
                &header,
                "clone",
                &format!("{base}/acme/{repo}.git"),
                target.to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        (target, stderr)
    };
    let git_in = |dir: &std::path::Path, args: &[&str]| {
        let mut all = vec!["-C", dir.to_str().unwrap()];
        all.extend_from_slice(args);
        String::from_utf8(real_git(home, &all).stdout).unwrap()
    };
    over_http(&em, |base| {
        let (empty, stderr) = clone(base, "acme-repo-00001", "empty");
        assert!(
            stderr.contains("You appear to have cloned an empty repository"),
            "{stderr}"
        );
        assert_eq!(git_in(&empty, &["for-each-ref"]), "");
        let (full, _) = clone(base, "acme-repo-00002", "full");
        assert_eq!(
            git_in(&full, &["log", "--format=%s"]),
            "Update README\nAdd source\nInitial commit\n"
        );
        // git asked for the advertisement only: nothing to fetch from an empty repository.
        let log = admin_call(&em, "GET", "requests", Value::Null);
        let asked: Vec<String> = log
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["path"].as_str())
            .filter(|p| p.starts_with("/acme/acme-repo-00001.git/"))
            .map(str::to_string)
            .collect();
        assert_eq!(asked, ["/acme/acme-repo-00001.git/info/refs"]);

        admin_call(
            &em,
            "POST",
            "git/github/acme/acme-repo-00001/commits",
            json!({"count": 2}),
        );
        let (now, stderr) = clone(base, "acme-repo-00001", "now");
        assert!(!stderr.contains("empty repository"), "{stderr}");
        assert_eq!(
            git_in(&now, &["log", "--format=%s"]),
            "Commit 2 on main\nCommit 1 on main\n"
        );
        assert_eq!(git_in(&now, &["branch", "--show-current"]), "main\n");
    });
}

#[test]
fn gitlab_and_azure_repositories_start_empty_under_their_prefixes() {
    let em = emulator();
    let expected = empty_advertisement("main");
    let access = gitlab_token(&em, 7001, "read_repository");
    register_empty(&em, "gitlab/com/initech/platform/");
    let gitlab = basic("oauth2", &access);
    let platform = get_refs(
        &em,
        "/gitlab/com/initech/platform/platform-repo-001.git",
        Some(&gitlab),
    );
    assert_eq!(platform.body, expected);
    let initech = get_refs(
        &em,
        "/gitlab/com/initech/initech-repo-001.git",
        Some(&gitlab),
    );
    assert!(advertised(&initech)
        .iter()
        .any(|(name, _)| name == "refs/merge-requests/1/head"));

    let bearer = format!("Bearer {}", azure_token(&em, AZURE_DEV));
    register_empty(&em, "Azure/Contoso/Fabrikam Fiber/");
    let repo_url = "/azure/contoso/Fabrikam%20Fiber/_git/web";
    assert_eq!(get_refs(&em, repo_url, Some(&bearer)).body, expected);
    // Azure DevOps still wants multi_ack before git runs.
    let oid = "2".repeat(40);
    let refused = upload_pack(&em, repo_url, &bearer, fetch_body(&oid, "ofs-delta"), false);
    assert_eq!(refused.status, 400);
    let other = azure_token(&em, AZURE_OTHER);
    assert_eq!(
        get_refs(&em, repo_url, Some(&format!("Bearer {other}"))).status,
        404
    );
    let made = refs(&em, "azure/contoso/Fabrikam%20Fiber/web");
    assert_eq!(
        (&made["refs"], &made["head"]),
        (&json!({}), &json!("refs/heads/main"))
    );
}
