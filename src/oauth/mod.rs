//! OAuth 2.0 token endpoint plumbing shared by GitLab and Microsoft Entra (RFC 6749): the form
//! bodies of the two grants we use, the classification of the endpoint's answer, token expiry,
//! and the error a provider redirects back with. Provider URLs and scopes live with each provider.
//!
//! Requests are `application/x-www-form-urlencoded` with the client authenticating in the body
//! (`client_secret_post`, which both providers accept) and PKCE's `code_verifier` on the code
//! redemption (see [`crate::oauth::pkce`]).
//!
//! Responses are sorted so the caller knows what to do next:
//! - 2xx with an `access_token` (and a `token_type` of `Bearer`, if given): a [`TokenGrant`];
//! - `invalid_grant` (and Entra's "the user must sign in again" codes): [`TokenError::Revoked`],
//!   the code or refresh token is dead; for a refresh, the connection must be re-authorized;
//! - any other OAuth error (`invalid_client`, `unauthorized_client`, `invalid_request`,
//!   `invalid_scope`, …): [`TokenError::Rejected`], a configuration problem on our side;
//! - 429, 5xx, or the `temporarily_unavailable` / `server_error` codes:
//!   [`TokenError::Unavailable`], retry later;
//! - anything else: [`TokenError::Malformed`].
//!
//! Error descriptions carry only the provider's `error` code and `error_description` (truncated,
//! control characters removed), never the request or a token. Tokens are held in
//! [`Secret`]s, whose `Debug` output is redacted.

pub mod azure_devops;
pub mod gitlab;
pub mod pkce;

use crate::api::routes::query_param;
use crate::config::Secret;
use serde_json::{Map, Value};
use std::fmt;
use url::form_urlencoded::Serializer;

/// Refresh an access token this many seconds before it expires.
pub const REFRESH_MARGIN_SECS: i64 = 300;
/// The longest lifetime believed from an `expires_in`.
pub const MAX_EXPIRES_IN_SECS: i64 = 365 * 24 * 3600;
/// Longest `error_description` kept, in characters.
const MAX_DESCRIPTION_CHARS: usize = 200;
/// Longest `error` code kept, in characters.
const MAX_CODE_CHARS: usize = 64;

/// A successful token response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: Secret,
    /// Absent when the provider does not rotate or issue refresh tokens.
    pub refresh_token: Option<Secret>,
    /// Seconds from now, as the provider said (see [`expires_at`]).
    pub expires_in: Option<i64>,
    /// The granted scopes (space-separated), when the provider says.
    pub scope: Option<String>,
}

/// Why the token endpoint did not give us a token. Each carries a short, safe description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The authorization code or refresh token is no longer valid (`invalid_grant`): the
    /// connection must be authorized again.
    Revoked(String),
    /// Any other OAuth error: the client id, secret, redirect URI or scopes are wrong.
    Rejected(String),
    /// The provider is overloaded or down (429, 5xx): retry later.
    Unavailable(String),
    /// Not a token response nor an OAuth error.
    Malformed(String),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Revoked(d) => write!(
                f,
                "the authorization is no longer valid and must be granted again ({d})"
            ),
            TokenError::Rejected(d) => write!(f, "the token request was rejected ({d})"),
            TokenError::Unavailable(d) => {
                write!(f, "the token endpoint is unavailable, retry later ({d})")
            }
            TokenError::Malformed(d) => {
                write!(f, "unexpected answer from the token endpoint ({d})")
            }
        }
    }
}

impl std::error::Error for TokenError {}

fn form(pairs: &[(&str, &str)], scope: Option<&str>) -> String {
    let mut s = Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    if let Some(scope) = scope {
        s.append_pair("scope", scope);
    }
    s.finish()
}

/// The body redeeming an authorization code (RFC 6749 §4.1.3 with RFC 7636 §4.5).
pub fn authorization_code_form(
    code: &str,
    redirect_uri: &str,
    client_id: &str,
    client_secret: &str,
    code_verifier: &str,
    scope: Option<&str>,
) -> String {
    form(
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("code_verifier", code_verifier),
        ],
        scope,
    )
}

/// The body exchanging a refresh token for a new access token (RFC 6749 §6).
pub fn refresh_form(
    refresh_token: &str,
    client_id: &str,
    client_secret: &str,
    scope: Option<&str>,
) -> String {
    form(
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ],
        scope,
    )
}

/// Keeps at most `max` characters of untrusted text, control characters turned into spaces.
fn clean(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// `code: description` from an OAuth error's `error` and `error_description`.
fn describe(code: &str, description: Option<&str>) -> String {
    let code = clean(code, MAX_CODE_CHARS);
    let code = if code.is_empty() {
        "unspecified error".to_string()
    } else {
        code
    };
    match description.map(|d| clean(d, MAX_DESCRIPTION_CHARS)) {
        Some(d) if !d.is_empty() => format!("{code}: {d}"),
        _ => code,
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    obj.get(name).and_then(Value::as_str)
}

/// `expires_in` as a number, or as a numeric string (older Entra endpoints send strings).
fn seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Error codes after which only a new authorization helps. Entra answers a refresh with
/// `interaction_required` (and the OIDC siblings) when the user must sign in or consent again.
fn is_dead_grant(code: &str) -> bool {
    matches!(
        code,
        "invalid_grant" | "interaction_required" | "consent_required" | "login_required"
    )
}

fn oauth_error(status: u16, obj: &Map<String, Value>) -> Option<TokenError> {
    let code = str_field(obj, "error")?;
    let description = describe(code, str_field(obj, "error_description"));
    Some(if status == 429 || status >= 500 {
        TokenError::Unavailable(format!("HTTP {status}: {description}"))
    } else if matches!(code, "temporarily_unavailable" | "server_error") {
        TokenError::Unavailable(description)
    } else if is_dead_grant(code) {
        TokenError::Revoked(description)
    } else {
        TokenError::Rejected(description)
    })
}

fn grant(obj: &Map<String, Value>) -> Result<TokenGrant, TokenError> {
    let access_token = str_field(obj, "access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::Malformed("no access_token in a successful response".into()))?;
    if let Some(token_type) = obj.get("token_type") {
        let bearer = token_type
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer"));
        if !bearer {
            let shown = token_type
                .as_str()
                .map(|t| clean(t, 32))
                .unwrap_or_default();
            return Err(TokenError::Malformed(format!(
                "token_type `{shown}` is not Bearer"
            )));
        }
    }
    Ok(TokenGrant {
        access_token: Secret::new(access_token.to_string()),
        refresh_token: str_field(obj, "refresh_token")
            .filter(|t| !t.is_empty())
            .map(|t| Secret::new(t.to_string())),
        expires_in: obj.get("expires_in").and_then(seconds),
        scope: str_field(obj, "scope").map(str::to_string),
    })
}

/// Classifies the token endpoint's answer (status and raw body).
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<TokenGrant, TokenError> {
    let json = serde_json::from_slice::<Value>(body).ok();
    let obj = json.as_ref().and_then(Value::as_object);
    match (status, obj) {
        (200..=299, Some(obj)) if obj.contains_key("access_token") => grant(obj),
        // Some servers answer errors with 200; the `error` member decides.
        (200..=299 | 400..=599, Some(obj)) if obj.get("error").is_some_and(Value::is_string) => {
            Err(oauth_error(status, obj).expect("checked: `error` is a string"))
        }
        (200..=299, Some(_)) => Err(TokenError::Malformed(
            "no access_token in a successful response".into(),
        )),
        (429 | 500..=599, _) => Err(TokenError::Unavailable(format!("HTTP {status}"))),
        (200..=299 | 400..=499, _) => Err(TokenError::Malformed(format!(
            "HTTP {status} with a body that is not an OAuth JSON response"
        ))),
        _ => Err(TokenError::Malformed(format!(
            "unexpected HTTP status {status}"
        ))),
    }
}

/// When a token obtained at `now` expires: `now + expires_in`, or `now + default_secs` when the
/// provider did not say. A negative lifetime counts as already expired and one beyond a year as a
/// year, so a broken answer can neither overflow nor keep a token forever.
pub fn expires_at(now: i64, expires_in: Option<i64>, default_secs: i64) -> i64 {
    let secs = expires_in
        .unwrap_or(default_secs)
        .clamp(0, MAX_EXPIRES_IN_SECS);
    now.saturating_add(secs)
}

/// Whether a token expiring at `expires_at` should be refreshed at `now`: within
/// [`REFRESH_MARGIN_SECS`] of expiry, or past it.
pub fn needs_refresh(expires_at: i64, now: i64) -> bool {
    expires_at.saturating_sub(now) <= REFRESH_MARGIN_SECS
}

/// The error a provider redirected back with (`?error=…&error_description=…`, RFC 6749
/// §4.1.2.1), as a short safe description; `None` when the query has no `error`.
pub fn callback_error(query: &[(String, String)]) -> Option<String> {
    let code = query_param(query, "error")?;
    Some(describe(code, query_param(query, "error_description")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCESS: &str = "glpat-ACCESS-abcdef0123456789";
    const REFRESH: &str = "REFRESH-0123456789abcdef";

    #[test]
    fn authorization_code_form_is_exact_and_encoded() {
        let body = authorization_code_form(
            "c0de/+=&x",
            "https://edge.example.com/gitlab/callback?x=1",
            "client id",
            "s3cr&t=%",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            None,
        );
        assert_eq!(
            body,
            "grant_type=authorization_code\
             &code=c0de%2F%2B%3D%26x\
             &redirect_uri=https%3A%2F%2Fedge.example.com%2Fgitlab%2Fcallback%3Fx%3D1\
             &client_id=client+id\
             &client_secret=s3cr%26t%3D%25\
             &code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        let with_scope = authorization_code_form(
            "c",
            "https://e/cb",
            "id",
            "sec",
            "v",
            Some("499b84ac-1321-427f-aa17-267ca6975798/.default offline_access"),
        );
        assert_eq!(
            with_scope,
            "grant_type=authorization_code&code=c&redirect_uri=https%3A%2F%2Fe%2Fcb\
             &client_id=id&client_secret=sec&code_verifier=v\
             &scope=499b84ac-1321-427f-aa17-267ca6975798%2F.default+offline_access"
        );
    }

    #[test]
    fn refresh_form_is_exact_and_encoded() {
        assert_eq!(
            refresh_form("r+t/=", "id", "s é", None),
            "grant_type=refresh_token&refresh_token=r%2Bt%2F%3D&client_id=id\
             &client_secret=s+%C3%A9"
        );
        assert_eq!(
            refresh_form("rt", "id", "s", Some("read_api read_repository")),
            "grant_type=refresh_token&refresh_token=rt&client_id=id&client_secret=s\
             &scope=read_api+read_repository"
        );
    }

    #[test]
    fn gitlab_success() {
        let body = format!(
            r#"{{"access_token":"{ACCESS}","token_type":"Bearer","expires_in":7200,
                "refresh_token":"{REFRESH}","scope":"read_api read_repository",
                "created_at":1607635748}}"#
        );
        let g = parse_token_response(200, body.as_bytes()).unwrap();
        assert_eq!(g.access_token.expose(), ACCESS);
        assert_eq!(g.refresh_token.as_ref().map(Secret::expose), Some(REFRESH));
        assert_eq!(g.expires_in, Some(7200));
        assert_eq!(g.scope.as_deref(), Some("read_api read_repository"));
    }

    #[test]
    fn entra_success() {
        let body = format!(
            r#"{{"token_type":"Bearer",
                "scope":"499b84ac-1321-427f-aa17-267ca6975798/user_impersonation",
                "expires_in":4335,"ext_expires_in":4335,
                "access_token":"{ACCESS}","refresh_token":"{REFRESH}","id_token":"eyJ0.x.y"}}"#
        );
        let g = parse_token_response(200, body.as_bytes()).unwrap();
        assert_eq!(g.access_token.expose(), ACCESS);
        assert_eq!(g.refresh_token.unwrap().expose(), REFRESH);
        assert_eq!(g.expires_in, Some(4335));
        assert_eq!(
            g.scope.as_deref(),
            Some("499b84ac-1321-427f-aa17-267ca6975798/user_impersonation")
        );
    }

    #[test]
    fn minimal_and_lenient_success_shapes() {
        // No refresh token, no expiry, no scope, lowercase bearer, expires_in as a string.
        let g =
            parse_token_response(200, br#"{"access_token":"a","token_type":"bearer"}"#).unwrap();
        assert_eq!((g.refresh_token, g.expires_in, g.scope), (None, None, None));
        let g = parse_token_response(
            201,
            br#"{"access_token":"a","expires_in":"3599","refresh_token":""}"#,
        )
        .unwrap();
        assert_eq!(g.expires_in, Some(3599));
        assert_eq!(g.refresh_token, None, "an empty refresh token is none");
        let g = parse_token_response(200, br#"{"access_token":"a","expires_in":"soon"}"#).unwrap();
        assert_eq!(g.expires_in, None);
    }

    #[test]
    fn success_without_a_usable_token_is_malformed() {
        for body in [
            r#"{"token_type":"Bearer"}"#,
            r#"{"access_token":""}"#,
            r#"{"access_token":42}"#,
            r#"{"access_token":"a","token_type":"mac"}"#,
            r#"{"access_token":"a","token_type":null}"#,
            r#"["access_token"]"#,
            "",
        ] {
            let err = parse_token_response(200, body.as_bytes()).unwrap_err();
            assert!(matches!(err, TokenError::Malformed(_)), "{body}: {err:?}");
        }
    }

    #[test]
    fn gitlab_invalid_grant_is_revoked() {
        let body = br#"{"error":"invalid_grant","error_description":"The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."}"#;
        let err = parse_token_response(400, body).unwrap_err();
        assert_eq!(
            err,
            TokenError::Revoked(
                "invalid_grant: The provided authorization grant is invalid, expired, revoked, \
                 does not match the redirection URI used in the authorization request, or was \
                 issued to another client."
                    .into()
            )
        );
    }

    #[test]
    fn entra_invalid_grant_is_revoked_and_truncated() {
        let long = format!(
            "AADSTS70000: The provided value for the 'code' parameter is not valid. Trace ID: \
             0b9f5f2c-0000-0000-0000-000000000000 Correlation ID: {} Timestamp: 2024-05-01",
            "c".repeat(300)
        );
        let body = serde_json::json!({
            "error": "invalid_grant",
            "error_description": long,
            "error_codes": [70000],
            "timestamp": "2024-05-01 10:00:00Z",
        })
        .to_string();
        let TokenError::Revoked(d) = parse_token_response(400, body.as_bytes()).unwrap_err() else {
            panic!("not revoked");
        };
        assert!(
            d.starts_with("invalid_grant: AADSTS70000: The provided value"),
            "{d}"
        );
        assert_eq!(d.chars().count(), "invalid_grant: ".len() + 200 + 1);
        assert!(d.ends_with('…'));

        let body = br#"{"error":"invalid_grant","error_description":"AADSTS70000: ...","error_codes":[70000]}"#;
        assert_eq!(
            parse_token_response(400, body),
            Err(TokenError::Revoked(
                "invalid_grant: AADSTS70000: ...".into()
            ))
        );
        // Entra's "sign in again" answer to a refresh is as dead as invalid_grant.
        let body = br#"{"error":"interaction_required","error_description":"AADSTS50076: MFA"}"#;
        assert!(matches!(
            parse_token_response(400, body),
            Err(TokenError::Revoked(_))
        ));
    }

    #[test]
    fn other_oauth_errors_are_rejections() {
        let body = br#"{"error":"invalid_client","error_description":"Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."}"#;
        assert!(matches!(
            parse_token_response(401, body),
            Err(TokenError::Rejected(d)) if d.starts_with("invalid_client: Client authentication failed")
        ));
        for code in [
            "unauthorized_client",
            "invalid_request",
            "invalid_scope",
            "unsupported_grant_type",
        ] {
            let body = format!(r#"{{"error":"{code}"}}"#);
            assert_eq!(
                parse_token_response(400, body.as_bytes()),
                Err(TokenError::Rejected(code.into()))
            );
        }
        // An error answered with 200 is still an error.
        assert_eq!(
            parse_token_response(200, br#"{"error":"invalid_grant"}"#),
            Err(TokenError::Revoked("invalid_grant".into()))
        );
    }

    #[test]
    fn overload_and_outages_are_unavailable() {
        assert_eq!(
            parse_token_response(503, b"<html>Service Unavailable</html>"),
            Err(TokenError::Unavailable("HTTP 503".into()))
        );
        assert_eq!(
            parse_token_response(429, b""),
            Err(TokenError::Unavailable("HTTP 429".into()))
        );
        assert_eq!(
            parse_token_response(
                500,
                br#"{"error":"server_error","error_description":"oops"}"#
            ),
            Err(TokenError::Unavailable(
                "HTTP 500: server_error: oops".into()
            ))
        );
        assert_eq!(
            parse_token_response(400, br#"{"error":"temporarily_unavailable"}"#),
            Err(TokenError::Unavailable("temporarily_unavailable".into()))
        );
    }

    #[test]
    fn non_oauth_answers_are_malformed() {
        for (status, body) in [
            (
                200,
                &b"<!DOCTYPE html><html><body>Sign in</body></html>"[..],
            ),
            (400, &b"<html>Bad Request</html>"[..]),
            (404, &br#"{"message":"404 Not Found"}"#[..]),
            (400, &br#"{"error":{"code":"x"}}"#[..]),
            (302, &b""[..]),
        ] {
            let err = parse_token_response(status, body).unwrap_err();
            assert!(matches!(err, TokenError::Malformed(_)), "{status}: {err:?}");
            assert!(!err.to_string().contains("html"), "{err}");
        }
    }

    #[test]
    fn tokens_never_appear_in_debug_or_display() {
        let body = format!(r#"{{"access_token":"{ACCESS}","refresh_token":"{REFRESH}"}}"#);
        let g = parse_token_response(200, body.as_bytes()).unwrap();
        let dbg = format!("{g:?}");
        assert!(!dbg.contains(ACCESS) && !dbg.contains(REFRESH), "{dbg}");

        let bad_type = format!(r#"{{"access_token":"{ACCESS}","token_type":"MAC"}}"#);
        let mut errors = vec![parse_token_response(200, bad_type.as_bytes()).unwrap_err()];
        // The body of a failed response is not echoed either, token or not.
        for status in [200, 400, 503, 302] {
            let body = format!(r#"{{"refresh_token":"{REFRESH}","detail":"{ACCESS}"}}"#);
            errors.push(parse_token_response(status, body.as_bytes()).unwrap_err());
        }
        for e in errors {
            for shown in [e.to_string(), format!("{e:?}")] {
                assert!(
                    !shown.contains(ACCESS) && !shown.contains(REFRESH),
                    "{shown}"
                );
            }
        }
    }

    #[test]
    fn display_says_what_to_do() {
        assert!(TokenError::Revoked("invalid_grant".into())
            .to_string()
            .contains("granted again"));
        assert!(TokenError::Unavailable("HTTP 503".into())
            .to_string()
            .contains("retry later"));
        assert!(TokenError::Rejected("invalid_client".into())
            .to_string()
            .contains("invalid_client"));
        assert!(TokenError::Malformed("x".into())
            .to_string()
            .starts_with("unexpected answer"));
    }

    #[test]
    fn expiry_is_clamped() {
        assert_eq!(expires_at(1_000, Some(7200), 3600), 8_200);
        assert_eq!(expires_at(1_000, None, 3600), 4_600);
        assert_eq!(expires_at(1_000, Some(-5), 3600), 1_000);
        assert_eq!(expires_at(1_000, Some(0), 3600), 1_000);
        assert_eq!(
            expires_at(1_000, Some(MAX_EXPIRES_IN_SECS + 1), 3600),
            1_000 + MAX_EXPIRES_IN_SECS
        );
        assert_eq!(
            expires_at(1_000, Some(i64::MAX), 3600),
            1_000 + 365 * 24 * 3600
        );
        assert_eq!(expires_at(i64::MAX - 1, Some(10), 0), i64::MAX);
        assert_eq!(expires_at(1_000, None, -1), 1_000);
    }

    #[test]
    fn refresh_margin_edges() {
        let exp = 10_000;
        assert!(!needs_refresh(exp, exp - REFRESH_MARGIN_SECS - 1));
        assert!(needs_refresh(exp, exp - REFRESH_MARGIN_SECS));
        assert!(needs_refresh(exp, exp - 1));
        assert!(needs_refresh(exp, exp));
        assert!(needs_refresh(exp, exp + 1_000));
        assert!(!needs_refresh(i64::MAX, 0));
        assert!(needs_refresh(i64::MIN, i64::MAX));
        // A token that was already expired when it arrived is refreshed at once.
        assert!(needs_refresh(expires_at(50, Some(-1), 3600), 50));
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn callback_errors_are_described_safely() {
        assert_eq!(
            callback_error(&query(&[("code", "abc"), ("state", "s")])),
            None
        );
        assert_eq!(
            callback_error(&query(&[
                ("error", "access_denied"),
                (
                    "error_description",
                    "The resource owner or authorization server denied the request."
                ),
                ("state", "s"),
            ])),
            Some(
                "access_denied: The resource owner or authorization server denied the request."
                    .into()
            )
        );
        assert_eq!(
            callback_error(&query(&[
                ("error", "consent_required"),
                ("error_description", "AADSTS65001:\r\nconsent\tneeded"),
            ])),
            Some("consent_required: AADSTS65001:  consent needed".into())
        );
        assert_eq!(
            callback_error(&query(&[("error", "")])),
            Some("unspecified error".into())
        );
        let long = "x".repeat(1_000);
        let d = callback_error(&query(&[("error", &long), ("error_description", &long)])).unwrap();
        assert_eq!(d.chars().count(), 65 + 2 + 201);
    }
}
