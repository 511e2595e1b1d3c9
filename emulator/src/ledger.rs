//! The credential ledger: which credential reached which service, and the sink.
//!
//! Every non-admin request is checked, whatever it is answered (faults included). The
//! credentials it presents are:
//!
//! - each `Authorization` header: what follows `Bearer`, `token` or any other scheme; for
//!   `Basic`, the decoded password, and the user name too when it looks like a secret (a
//!   credential the emulator knows, a JWT, or a value with a GitHub, GitLab or emulator token
//!   prefix; `x-access-token`, `oauth2` or a client id is not one), which is how git smart
//!   HTTP requests (`git/`) present `x-access-token:<token>` and `oauth2:<token>`;
//! - in an `application/x-www-form-urlencoded` body (or one without `content-type`, which the
//!   token endpoints read as a form too): the fields `client_secret`, `refresh_token`, `code` and
//!   `access_token`.
//!
//! Each is looked up for its **home**, the service family that issued it or was configured
//! with it (`kind` is what the credential is):
//!
//! | Home | Credentials and their `kind` |
//! | --- | --- |
//! | `github` | App JWTs, valid or expired: RS256-signed by the App key, or naming the App id as `iss` (`app_jwt`); installation tokens (`installation_token`); user-to-server tokens (`user_token`); the install page's OAuth codes (`code`); the App's OAuth client secret (`client_secret`) |
//! | `gitlab:{instance}` | that instance's access tokens (`bearer`, as the request log calls them), refresh tokens (`refresh_token`), codes (`code`) and OAuth client secret (`client_secret`) |
//! | `microsoft` | the same for the Microsoft identity platform, whose access tokens also open `/vssps`, `/vsaex` and `/azure` |
//!
//! Credentials are indexed (one hash map, one lookup per presented value) when they are issued
//! or configured, and stay known after they expire, are spent, rotated out or revoked, or the
//! client is reconfigured. A value several families were configured with (one client secret
//! used twice) is at home in each. The family a request was presented to comes from its path in
//! the same words: `gitlab:{instance}` for `/gitlab/{instance}/…`, `microsoft` for
//! `/microsoft/…`, `/vssps/…`, `/vsaex/…` and `/azure/…`, `sink` for the sink, `github` for the
//! rest.
//!
//! A known credential presented to its home counts in `GET /_emulator/credentials/seen`;
//! presented to any other family it is a **misplacement**. Unknown credentials are ignored,
//! except at the sink.
//!
//! **The sink**, `/sink` and every path under `/sink/` (any method), answers `200 {"ok":true}`
//! and stands for another origin: every credential presented there is a misplacement with
//! `presented_to` `"sink"` and `home` its home or `"unknown"`. Sink requests are in the request
//! log (`auth` `none`, or `collected` when they carried credentials). Tests make it the target
//! of a fault rule's redirect, e.g. `{"path_prefix":"/gitlab/com/api/v4/user","status":307,
//! "headers":{"location":"http://127.0.0.1:PORT/sink/collect"}}`, to prove the gateway does not
//! follow redirects with credentials.
//!
//! A misplacement is `{"seq","method","path","presented_to","home","kind","via"}`: `seq` is the
//! request's in the request log (`GET /_emulator/requests`); `kind` as in the table, or for an
//! unknown credential at the sink how it came: `bearer`, `token`, `basic`, `authorization`
//! (another scheme) or the form field's name; `via` where it was: `authorization:bearer`,
//! `authorization:token`, `authorization:basic` (the password), `authorization:basic-username`,
//! `authorization:other` or `form:{field}`. An entry never holds the credential itself, nor the
//! query string.
//!
//! Admin API (`admin.rs`): `GET /_emulator/credentials/misplaced` →
//! `{"misplaced":[…],"checked":N}`, `N` counting every credential examined so far at any
//! service (known or not, at home or not); `DELETE` of it clears the list, not the counter, and
//! answers `{"cleared":n,"checked":N}`; `GET /_emulator/credentials/seen` →
//! `{"github":n,"microsoft":n,"gitlab:{instance}":n,…}`, known credentials presented to their
//! own home, per family (`github` and `microsoft` always listed, GitLab instances once seen).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;
use serde_json::{json, Value};

use crate::http::{percent_decode, Request};
use crate::oauth::{decode_base64, Realm};

/// A service family: where a credential is at home, or where a request went.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Family {
    GitHub,
    GitLab(String),
    /// The Microsoft identity platform and Azure DevOps.
    Microsoft,
    /// `/sink/…`: another origin, home to nothing.
    Sink,
}

impl Family {
    pub fn of_realm(realm: &Realm) -> Self {
        match realm {
            Realm::GitLab(instance) => Family::GitLab(instance.clone()),
            Realm::Azure => Family::Microsoft,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Family::GitHub => f.write_str("github"),
            Family::GitLab(instance) => write!(f, "gitlab:{instance}"),
            Family::Microsoft => f.write_str("microsoft"),
            Family::Sink => f.write_str("sink"),
        }
    }
}

/// What a known credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AppJwt,
    InstallationToken,
    UserToken,
    /// A GitLab or Microsoft access token.
    Bearer,
    RefreshToken,
    Code,
    ClientSecret,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::AppJwt => "app_jwt",
            Kind::InstallationToken => "installation_token",
            Kind::UserToken => "user_token",
            Kind::Bearer => "bearer",
            Kind::RefreshToken => "refresh_token",
            Kind::Code => "code",
            Kind::ClientSecret => "client_secret",
        }
    }
}

/// The form fields that carry credentials, and their `via`.
const FORM_FIELDS: [(&str, &str); 4] = [
    ("client_secret", "form:client_secret"),
    ("refresh_token", "form:refresh_token"),
    ("code", "form:code"),
    ("access_token", "form:access_token"),
];

/// Token prefixes that make a Basic user name look like a secret.
const TOKEN_PREFIXES: [&str; 9] = [
    "ghs_",
    "ghu_",
    "gho_",
    "ghp_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "glemu-",
    "azemu-",
];

/// Where in the request a credential was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Bearer,
    Token,
    /// The password of `Basic` (or the whole value when it does not decode).
    Basic,
    BasicUsername,
    OtherScheme,
    /// Index into [`FORM_FIELDS`].
    Form(usize),
}

impl Via {
    fn label(self) -> &'static str {
        match self {
            Via::Bearer => "authorization:bearer",
            Via::Token => "authorization:token",
            Via::Basic => "authorization:basic",
            Via::BasicUsername => "authorization:basic-username",
            Via::OtherScheme => "authorization:other",
            Via::Form(i) => FORM_FIELDS[i].1,
        }
    }

    /// The `kind` of an unknown credential at the sink.
    fn unknown_kind(self) -> &'static str {
        match self {
            Via::Bearer => "bearer",
            Via::Token => "token",
            Via::Basic | Via::BasicUsername => "basic",
            Via::OtherScheme => "authorization",
            Via::Form(i) => FORM_FIELDS[i].0,
        }
    }
}

/// One credential a request presents.
#[derive(Debug)]
pub struct Presented<'r> {
    value: Cow<'r, str>,
    via: Via,
    /// A JWT of the App (decided by the caller, which holds the App key).
    app_jwt: bool,
}

/// The credentials a request presents (see the module header). `is_app_jwt` is asked about
/// JWT-shaped values only.
pub fn presented<'r>(
    request: &'r Request,
    is_app_jwt: impl Fn(&str) -> bool,
) -> Vec<Presented<'r>> {
    let mut found = Vec::new();
    let mut push = |value: Cow<'r, str>, via| {
        if !value.is_empty() {
            found.push(Presented {
                value,
                via,
                app_jwt: false,
            });
        }
    };
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("authorization") {
            authorization(value.trim(), &mut push);
        }
    }
    if is_form(request) {
        for (name, value) in url::form_urlencoded::parse(&request.body) {
            if let Some(i) = FORM_FIELDS.iter().position(|(field, _)| *field == name) {
                push(value, Via::Form(i));
            }
        }
    }
    for credential in &mut found {
        credential.app_jwt = jwt_shaped(&credential.value) && is_app_jwt(&credential.value);
    }
    found
}

/// The credentials of one `Authorization` header value.
fn authorization<'r>(header: &'r str, push: &mut impl FnMut(Cow<'r, str>, Via)) {
    let Some((scheme, rest)) = header.split_once(' ') else {
        return push(Cow::Borrowed(header), Via::OtherScheme);
    };
    let rest = rest.trim();
    let via = if scheme.eq_ignore_ascii_case("bearer") {
        Via::Bearer
    } else if scheme.eq_ignore_ascii_case("token") {
        Via::Token
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = decode_base64(rest).and_then(|bytes| String::from_utf8(bytes).ok());
        let Some(pair) = decoded else {
            return push(Cow::Borrowed(rest), Via::Basic);
        };
        let (user, password) = pair.split_once(':').unwrap_or((&pair, ""));
        push(Cow::Owned(user.to_string()), Via::BasicUsername);
        return push(Cow::Owned(password.to_string()), Via::Basic);
    } else {
        Via::OtherScheme
    };
    push(Cow::Borrowed(rest), via);
}

/// A non-empty body with a form `content-type`, or with none.
fn is_form(request: &Request) -> bool {
    !request.body.is_empty()
        && request.header("content-type").is_none_or(|value| {
            let media = value.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Three non-empty dot-separated parts.
fn jwt_shaped(value: &str) -> bool {
    let parts = value.split('.');
    parts.clone().count() == 3 && parts.into_iter().all(|p| !p.is_empty())
}

/// Whether an unknown Basic user name is worth recording at the sink.
fn looks_secret(value: &str) -> bool {
    jwt_shaped(value) || TOKEN_PREFIXES.iter().any(|p| value.starts_with(p))
}

/// One credential presented outside its home (or at the sink).
#[derive(Debug, Clone, Serialize)]
pub struct Misplacement {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub presented_to: String,
    /// The credential's home, or `unknown` (at the sink).
    pub home: String,
    pub kind: &'static str,
    pub via: &'static str,
}

struct Known {
    kind: Kind,
    /// Never empty.
    homes: Vec<Family>,
}

/// The index of known credentials, the misplacements and the counters.
#[derive(Default)]
pub struct Ledger {
    known: HashMap<String, Known>,
    misplaced: Vec<Misplacement>,
    checked: u64,
    /// Known credentials presented to their home, by family name.
    seen: BTreeMap<String, u64>,
}

impl Ledger {
    /// Indexes a credential the emulator issued or was configured with.
    pub fn remember(&mut self, value: &str, home: Family, kind: Kind) {
        if value.is_empty() {
            return;
        }
        match self.known.get_mut(value) {
            Some(known) if !known.homes.contains(&home) => known.homes.push(home),
            Some(_) => {}
            None => {
                let homes = vec![home];
                self.known.insert(value.to_string(), Known { kind, homes });
            }
        }
    }

    /// What a presented credential is and whether `to` is a home of it; else its first home.
    fn identify(&self, credential: &Presented, to: &Family) -> Option<(Kind, Option<String>)> {
        if credential.app_jwt {
            let away = (*to != Family::GitHub).then(|| Family::GitHub.to_string());
            return Some((Kind::AppJwt, away));
        }
        let value = credential.value.as_ref();
        let known = match self.known.get(value) {
            Some(known) => known,
            // Basic client credentials may be form-encoded (RFC 6749 section 2.3.1).
            None if matches!(credential.via, Via::Basic | Via::BasicUsername)
                && value.contains('%') =>
            {
                self.known.get(&percent_decode(value))?
            }
            None => return None,
        };
        let away = (!known.homes.contains(to)).then(|| known.homes[0].to_string());
        Some((known.kind, away))
    }

    /// Examines the credentials of request `seq` (as logged), presented to `to`.
    pub fn check(&mut self, seq: u64, request: &Request, to: &Family, presented: &[Presented]) {
        for credential in presented {
            let found = self.identify(credential, to);
            if found.is_none()
                && credential.via == Via::BasicUsername
                && !looks_secret(&credential.value)
            {
                continue;
            }
            self.checked += 1;
            let (home, kind) = match found {
                Some((_, None)) => {
                    match self.seen.get_mut(&to.to_string()) {
                        Some(count) => *count += 1,
                        None => {
                            self.seen.insert(to.to_string(), 1);
                        }
                    }
                    continue;
                }
                Some((kind, Some(home))) => (home, kind.label()),
                None if *to == Family::Sink => ("unknown".into(), credential.via.unknown_kind()),
                None => continue,
            };
            self.misplaced.push(Misplacement {
                seq,
                method: request.method.clone(),
                path: request.path.clone(),
                presented_to: to.to_string(),
                home,
                kind,
                via: credential.via.label(),
            });
        }
    }

    pub fn misplaced(&self) -> &[Misplacement] {
        &self.misplaced
    }

    /// Empties the misplacement list (the counters stay); returns how many entries it held.
    pub fn clear_misplaced(&mut self) -> usize {
        std::mem::take(&mut self.misplaced).len()
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// `{"github":n,"microsoft":n,"gitlab:{instance}":n,…}`.
    pub fn seen_json(&self) -> Value {
        let mut seen = json!({ "github": 0, "microsoft": 0 });
        for (family, count) in &self.seen {
            seen[family] = json!(count);
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::auth::tests::{dev_key, sign, APP_ID};
    use crate::oauth::s256_challenge;
    use crate::server::tests::{
        admin_call, call, emulator, install, jwt, location_params, token_for, ACME,
    };
    use crate::server::Emulator;

    const VERIFIER: &str = "ledger-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    const CALLBACK: &str = "http://127.0.0.1:8787/oauth/callback";
    const DEVOPS: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default";
    const AZURE_USER: &str = "0d5e1c9a-0000-4000-8000-00000000d001";

    /// The misplacements and the `checked` count, after asserting that none of `secrets`
    /// appears anywhere in the answer.
    fn ledger(em: &Emulator, secrets: &[&str]) -> (Vec<Value>, u64) {
        let answer = admin_call(em, "GET", "credentials/misplaced", Value::Null);
        let text = answer.to_string();
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "the ledger shows a credential: {text}"
            );
        }
        let checked = answer["checked"].as_u64().expect("a checked count");
        (answer["misplaced"].as_array().unwrap().clone(), checked)
    }

    fn seen(em: &Emulator) -> Value {
        admin_call(em, "GET", "credentials/seen", Value::Null)
    }

    /// The sequence number of the latest logged request.
    fn last_seq(em: &Emulator) -> u64 {
        let log = admin_call(em, "GET", "requests", Value::Null);
        log.as_array().unwrap().last().unwrap()["seq"]
            .as_u64()
            .unwrap()
    }

    fn entry(
        seq: u64,
        method: &str,
        path: &str,
        to: &str,
        home: &str,
        kind: &str,
        via: &str,
    ) -> Value {
        json!({"seq": seq, "method": method, "path": path, "presented_to": to, "home": home,
               "kind": kind, "via": via})
    }

    /// Configures GitLab instance `instance` with client `{instance}-app` / `secret` and signs
    /// its default user in: access and refresh token (the exchange presents secret and code).
    fn connect_gitlab(em: &Emulator, instance: &str, secret: &str) -> (String, String) {
        let client = format!("{instance}-app");
        admin_call(
            em,
            "PUT",
            &format!("gitlab/{instance}/oauth"),
            json!({"client_id": client, "client_secret": secret, "redirect_uris": [CALLBACK]}),
        );
        admin_call(
            em,
            "PUT",
            &format!("gitlab/{instance}/users/7001"),
            json!({"username": "dev"}),
        );
        let (status, _, reply) = call(
            em,
            "GET",
            &format!(
                "/gitlab/{instance}/oauth/authorize?client_id={client}&redirect_uri={CALLBACK}\
                 &response_type=code&scope=api&code_challenge={}&code_challenge_method=S256",
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
            &format!("/gitlab/{instance}/oauth/token"),
            None,
            &format!(
                "grant_type=authorization_code&client_id={client}&client_secret={secret}\
                 &code={code}&redirect_uri={CALLBACK}&code_verifier={VERIFIER}"
            ),
        );
        assert_eq!(status, 200, "{body}");
        let get = |k: &str| body[k].as_str().unwrap().to_string();
        (get("access_token"), get("refresh_token"))
    }

    /// The Microsoft app registration `az-app` / `secret`, a signed-in user: access and
    /// refresh token (the exchange presents secret and code).
    fn connect_azure(em: &Emulator, secret: &str) -> (String, String) {
        admin_call(
            em,
            "PUT",
            "azure/oauth",
            json!({"client_id": "az-app", "client_secret": secret, "redirect_uris": [CALLBACK]}),
        );
        admin_call(
            em,
            "PUT",
            &format!("azure/users/{AZURE_USER}"),
            json!({"displayName": "Dev"}),
        );
        let (status, _, reply) = call(
            em,
            "GET",
            &format!(
                "/microsoft/organizations/oauth2/v2.0/authorize?client_id=az-app&response_type=code\
                 &redirect_uri={CALLBACK}&scope={DEVOPS}%20offline_access&code_challenge={}\
                 &code_challenge_method=S256",
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
            "/microsoft/organizations/oauth2/v2.0/token",
            None,
            &format!(
                "client_id=az-app&client_secret={secret}&grant_type=authorization_code&code={code}\
                 &redirect_uri={CALLBACK}&code_verifier={VERIFIER}"
            ),
        );
        assert_eq!(status, 200, "{body}");
        let get = |k: &str| body[k].as_str().unwrap().to_string();
        (get("access_token"), get("refresh_token"))
    }

    fn basic(user: &str, password: &str) -> String {
        use base64::Engine;
        let pair = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    #[test]
    fn a_gitlab_token_presented_to_github_is_misplaced() {
        let em = emulator();
        let (access, refresh) = connect_gitlab(&em, "com", "gl-secret");
        let bearer = format!("Bearer {access}");
        assert_eq!(
            call(&em, "GET", "/gitlab/com/api/v4/user", Some(&bearer), "").0,
            200
        );
        assert_eq!(
            ledger(&em, &[]),
            (vec![], 3),
            "secret, code and token at home"
        );

        assert_eq!(call(&em, "GET", "/user", Some(&bearer), "").0, 401);
        let seq = last_seq(&em);
        let (misplaced, checked) = ledger(&em, &[&access, &refresh, "gl-secret"]);
        assert_eq!(
            misplaced,
            [entry(
                seq,
                "GET",
                "/user",
                "github",
                "gitlab:com",
                "bearer",
                "authorization:bearer"
            )]
        );
        assert_eq!(checked, 4);
        // The refresh token posted to GitHub's OAuth endpoint, a form without content-type.
        call(
            &em,
            "POST",
            "/login/oauth/access_token",
            None,
            &format!("refresh_token={refresh}&grant_type=refresh_token"),
        );
        let (misplaced, _) = ledger(&em, &[&access, &refresh]);
        assert_eq!(
            (
                &misplaced[1]["kind"],
                &misplaced[1]["via"],
                &misplaced[1]["home"]
            ),
            (
                &json!("refresh_token"),
                &json!("form:refresh_token"),
                &json!("gitlab:com")
            )
        );
        assert_eq!(
            seen(&em),
            json!({"github": 0, "microsoft": 0, "gitlab:com": 3})
        );

        // Cleared entries go; the counter stays.
        assert_eq!(
            admin_call(&em, "DELETE", "credentials/misplaced", Value::Null),
            json!({"cleared": 2, "checked": 5})
        );
        assert_eq!(ledger(&em, &[]), (vec![], 5));
    }

    #[test]
    fn github_credentials_presented_to_gitlab_are_misplaced() {
        let em = emulator();
        install(&em, 5, ACME);
        let token = token_for(&em, 5);
        let raw = token.trim_start_matches("token ").to_string();
        assert_eq!(
            call(&em, "GET", "/gitlab/com/api/v4/groups", Some(&token), "").0,
            401
        );
        let first = last_seq(&em);
        // As git would send it: Basic x-access-token:<token>; the user name is no secret.
        let git = basic("x-access-token", &raw);
        call(&em, "GET", "/gitlab/com/api/v4/user", Some(&git), "");
        let second = last_seq(&em);
        let (misplaced, checked) = ledger(&em, &[&raw]);
        assert_eq!(
            misplaced,
            [
                entry(
                    first,
                    "GET",
                    "/gitlab/com/api/v4/groups",
                    "gitlab:com",
                    "github",
                    "installation_token",
                    "authorization:token"
                ),
                entry(
                    second,
                    "GET",
                    "/gitlab/com/api/v4/user",
                    "gitlab:com",
                    "github",
                    "installation_token",
                    "authorization:basic"
                ),
            ]
        );
        // The App JWT minting the token was at home; x-access-token is not counted.
        assert_eq!(checked, 3);

        // App JWTs: valid, expired, signed by the App key for another issuer, or naming the
        // App unsigned; a JWT of neither is nobody's.
        admin_call(&em, "DELETE", "credentials/misplaced", Value::Null);
        let encode = |json: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        };
        let unsigned = |iss: &str| {
            format!(
                "{}.{}.AAAA",
                encode(r#"{"alg":"RS256","typ":"JWT"}"#),
                encode(&format!(r#"{{"iss":{iss},"iat":1,"exp":2}}"#))
            )
        };
        let jwts = [
            sign(&dev_key(), APP_ID, -60, 540),
            sign(&dev_key(), APP_ID, -700, -100),
            sign(&dev_key(), "999", -60, 540),
            unsigned("424242"),
            unsigned("\"1\""),
        ];
        for jwt in &jwts {
            let auth = format!("Bearer {jwt}");
            call(&em, "GET", "/azure/contoso/_apis/projects", Some(&auth), "");
        }
        let (misplaced, checked) =
            ledger(&em, &jwts.iter().map(String::as_str).collect::<Vec<_>>());
        let homes: Vec<(&str, &str, &str)> = misplaced
            .iter()
            .map(|m| {
                (
                    m["presented_to"].as_str().unwrap(),
                    m["home"].as_str().unwrap(),
                    m["kind"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(homes, [("microsoft", "github", "app_jwt"); 4]);
        assert_eq!(checked, 8);
        assert_eq!(seen(&em)["github"], 1, "the JWT that minted the token");
    }

    #[test]
    fn one_gitlab_instances_secret_at_anothers_token_endpoint_is_misplaced() {
        let em = emulator();
        let (_, refresh_a) = connect_gitlab(&em, "a", "secret-a");
        connect_gitlab(&em, "b", "secret-b");
        let (status, _, _) = call(
            &em,
            "POST",
            "/gitlab/b/oauth/token",
            None,
            &format!(
                "grant_type=refresh_token&client_id=b-app&client_secret=secret-a&refresh_token={refresh_a}"
            ),
        );
        assert_eq!(status, 401);
        let seq = last_seq(&em);
        let (misplaced, _) = ledger(&em, &["secret-a", &refresh_a]);
        assert_eq!(
            misplaced,
            [
                entry(
                    seq,
                    "POST",
                    "/gitlab/b/oauth/token",
                    "gitlab:b",
                    "gitlab:a",
                    "client_secret",
                    "form:client_secret"
                ),
                entry(
                    seq,
                    "POST",
                    "/gitlab/b/oauth/token",
                    "gitlab:b",
                    "gitlab:a",
                    "refresh_token",
                    "form:refresh_token"
                ),
            ]
        );
        // HTTP Basic client authentication (form-encoded, as RFC 6749 allows) counts too.
        let request = crate::http::Request::new("POST", "/gitlab/b/oauth/token")
            .with_header("Authorization", &basic("b-app", "secret%2Da"))
            .with_header("Content-Type", "application/x-www-form-urlencoded")
            .with_body("grant_type=client_credentials");
        em.handle(&request);
        let (misplaced, _) = ledger(&em, &["secret-a"]);
        assert_eq!(
            (misplaced.len(), &misplaced[2]["via"], &misplaced[2]["home"]),
            (3, &json!("authorization:basic"), &json!("gitlab:a"))
        );

        // A secret configured for two instances is at home at both.
        admin_call(
            &em,
            "PUT",
            "gitlab/c/oauth",
            json!({"client_id": "c-app", "client_secret": "secret-a", "redirect_uris": [CALLBACK]}),
        );
        call(
            &em,
            "POST",
            "/gitlab/c/oauth/token",
            None,
            "grant_type=refresh_token&client_id=c-app&client_secret=secret-a&refresh_token=nope",
        );
        assert_eq!(ledger(&em, &[]).0.len(), 3);
        assert_eq!(
            seen(&em),
            json!({"github": 0, "microsoft": 0, "gitlab:a": 2, "gitlab:b": 2, "gitlab:c": 1})
        );
    }

    #[test]
    fn the_sink_records_every_credential_it_receives() {
        let em = emulator();
        let (access, _) = connect_gitlab(&em, "com", "gl-secret");
        install(&em, 5, ACME);
        let token = token_for(&em, 5);
        let raw = token.trim_start_matches("token ").to_string();
        let before = last_seq(&em);
        admin_call(&em, "DELETE", "requests", Value::Null);

        let (status, body, _) = call(&em, "GET", "/sink/x", Some("Bearer who-knows"), "");
        assert_eq!((status, body), (200, json!({"ok": true})));
        call(&em, "GET", "/sink/x", Some(&format!("Bearer {access}")), "");
        call(
            &em,
            "POST",
            "/sink/collect",
            Some(&basic(&raw, "x-oauth-basic")),
            "client_secret=gl-secret&code=c0de&grant_type=authorization_code",
        );
        call(&em, "GET", "/sink/clean", None, "");

        let (misplaced, _) = ledger(&em, &["who-knows", &access, &raw, "gl-secret", "c0de"]);
        let rows: Vec<(u64, &str, &str, &str)> = misplaced
            .iter()
            .map(|m| {
                assert_eq!(m["presented_to"], "sink");
                (
                    m["seq"].as_u64().unwrap(),
                    m["home"].as_str().unwrap(),
                    m["kind"].as_str().unwrap(),
                    m["via"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (before + 1, "unknown", "bearer", "authorization:bearer"),
                (before + 2, "gitlab:com", "bearer", "authorization:bearer"),
                (
                    before + 3,
                    "github",
                    "installation_token",
                    "authorization:basic-username"
                ),
                (before + 3, "unknown", "basic", "authorization:basic"),
                (
                    before + 3,
                    "gitlab:com",
                    "client_secret",
                    "form:client_secret"
                ),
                (before + 3, "unknown", "code", "form:code"),
            ]
        );
        let log = admin_call(&em, "GET", "requests", Value::Null);
        let logged: Vec<(&str, &str, u64)> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["path"].as_str().unwrap(),
                    r["auth"].as_str().unwrap(),
                    r["status"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            logged,
            [
                ("/sink/x", "collected", 200),
                ("/sink/x", "collected", 200),
                ("/sink/collect", "collected", 200),
                ("/sink/clean", "none", 200),
            ]
        );

        // A redirect injected by a fault: the credential reached its home, then the sink.
        admin_call(&em, "DELETE", "credentials/misplaced", Value::Null);
        admin_call(
            &em,
            "PUT",
            "faults",
            json!([{"path_prefix": "/gitlab/com/api/v4/user", "status": 307,
                    "headers": {"location": "http://127.0.0.1:1/sink/collect"}}]),
        );
        let bearer = format!("Bearer {access}");
        let (status, _, reply) = call(&em, "GET", "/gitlab/com/api/v4/user", Some(&bearer), "");
        assert_eq!(
            (status, reply.header("location")),
            (307, Some("http://127.0.0.1:1/sink/collect"))
        );
        assert_eq!(ledger(&em, &[]).0, Vec::<Value>::new());
        call(&em, "GET", "/sink/collect", Some(&bearer), "");
        let (misplaced, _) = ledger(&em, &[&access]);
        assert_eq!(
            misplaced,
            [entry(
                last_seq(&em),
                "GET",
                "/sink/collect",
                "sink",
                "gitlab:com",
                "bearer",
                "authorization:bearer"
            )]
        );
    }

    #[test]
    fn correct_uses_are_counted_and_not_recorded() {
        let em = emulator();
        // GitHub: App JWT, installation token, OAuth during installation (secret, code, user
        // token), and a git-style Basic installation token.
        install(&em, 5, ACME);
        let token = token_for(&em, 5);
        assert_eq!(
            call(&em, "GET", "/installation/repositories", Some(&token), "").0,
            200
        );
        assert_eq!(
            call(&em, "GET", "/app/installations/5", Some(&jwt()), "").0,
            200
        );
        let raw = token.trim_start_matches("token ");
        call(
            &em,
            "GET",
            "/installation/repositories",
            Some(&basic("x-access-token", raw)),
            "",
        );
        admin_call(
            &em,
            "PUT",
            "setup-url",
            json!({"url": "http://127.0.0.1:8787/github/setup"}),
        );
        admin_call(
            &em,
            "PUT",
            "oauth",
            json!({"client_id": "Iv1.x", "client_secret": "gh-secret", "user": {"login": "alice", "id": 7}}),
        );
        let (_, _, reply) = call(
            &em,
            "GET",
            "/apps/the-one-code/installations/new?state=s&target=5",
            None,
            "",
        );
        let code = location_params(&reply)["code"].clone();
        let (_, body, _) = call(
            &em,
            "POST",
            "/login/oauth/access_token",
            None,
            &format!("client_id=Iv1.x&client_secret=gh-secret&code={code}"),
        );
        let user_token = body["access_token"].as_str().unwrap().to_string();
        let (status, _, _) = call(
            &em,
            "GET",
            "/user",
            Some(&format!("Bearer {user_token}")),
            "",
        );
        assert_eq!(status, 200);

        // GitLab: secret and code, then the API; Microsoft: the same, Azure DevOps, a refresh.
        let (gl_access, gl_refresh) = connect_gitlab(&em, "com", "gl-secret");
        call(
            &em,
            "GET",
            "/gitlab/com/api/v4/groups",
            Some(&format!("Bearer {gl_access}")),
            "",
        );
        let (az_access, az_refresh) = connect_azure(&em, "az-secret");
        let (status, _, _) = call(
            &em,
            "GET",
            "/vssps/_apis/profile/profiles/me",
            Some(&format!("Bearer {az_access}")),
            "",
        );
        assert_eq!(status, 200);
        call(
            &em,
            "GET",
            "/azure/contoso/_apis/projects",
            Some(&format!("Bearer {az_access}")),
            "",
        );
        let (status, _, _) = call(
            &em,
            "POST",
            "/microsoft/common/oauth2/v2.0/token",
            None,
            &format!(
                "client_id=az-app&client_secret=az-secret&grant_type=refresh_token&refresh_token={az_refresh}"
            ),
        );
        assert_eq!(status, 200);

        let (misplaced, checked) = ledger(
            &em,
            &[
                raw,
                "gh-secret",
                &user_token,
                &gl_access,
                &gl_refresh,
                &az_access,
                &az_refresh,
            ],
        );
        assert_eq!(misplaced, Vec::<Value>::new());
        // github: 2 JWTs, the token twice, secret + code, user token; gitlab:com: secret +
        // code, one API call; microsoft: secret + code, two API calls, secret + refresh token.
        assert_eq!(
            seen(&em),
            json!({"github": 7, "gitlab:com": 3, "microsoft": 6})
        );
        assert_eq!(checked, 16, "x-access-token is not a credential");
    }

    #[test]
    fn credentials_are_found_where_they_are_sent() {
        let request = Request::new("POST", "/sink/x")
            .with_header("Authorization", "Bearer a.b.c")
            .with_header("Authorization", &basic("user", "pass:word"))
            .with_header("Authorization", "Weird")
            .with_header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .with_body("code=x%2By&client_id=id&access_token=&client_secret=s");
        let found: Vec<(String, &str, bool)> = presented(&request, |jwt| jwt == "a.b.c")
            .into_iter()
            .map(|p| (p.value.into_owned(), p.via.label(), p.app_jwt))
            .collect();
        let row = |value: &str, via, app| (value.to_string(), via, app);
        assert_eq!(
            found,
            [
                row("a.b.c", "authorization:bearer", true),
                row("user", "authorization:basic-username", false),
                row("pass:word", "authorization:basic", false),
                row("Weird", "authorization:other", false),
                row("x+y", "form:code", false),
                row("s", "form:client_secret", false),
            ]
        );
        let mut json = request.clone();
        json.headers.retain(|(name, _)| name != "content-type");
        let json = json.with_header("Content-Type", "application/json");
        assert_eq!(
            presented(&json, |_| false).len(),
            4,
            "no form fields in JSON"
        );
    }
}
