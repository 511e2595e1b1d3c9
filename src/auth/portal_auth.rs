//! Portal authentication for every `/v1/*` route.
//!
//! The portal calls the edge with `Authorization: Bearer <JWT>`, HS256-signed with
//! `PORTAL_JWT_SECRET`, claims `tid` (tenant id), `sub` (technician id), `iat` and `exp`.
//! Anything else — no header, another scheme, a malformed token, another `alg`, a bad
//! signature, a missing claim, an expired token or one issued in the future — is a 401 and the
//! request goes no further. `now` is passed in.

use crate::api::problem::Problem;
use crate::auth::state_token::MAX_ID_LEN;
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::prelude::*;
use jwt_compact::ValidationError;
use serde::Deserialize;

/// Who is calling: every query the request makes is scoped to `tenant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub technician: String,
}

#[derive(Deserialize)]
struct PortalClaims {
    tid: String,
    sub: String,
}

/// Clock skew tolerated between the portal and the edge for `iat`.
const MAX_SKEW_SECS: i64 = 60;

fn unauthorized(detail: &str) -> Problem {
    Problem::Unauthorized(detail.to_string())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control)
}

/// Authenticates an `Authorization` header value.
pub fn authenticate(
    secret: &[u8],
    authorization: Option<&str>,
    now: i64,
) -> Result<Principal, Problem> {
    let header = authorization.ok_or_else(|| unauthorized("missing Authorization header"))?;
    let (scheme, token) = header
        .split_once(' ')
        .ok_or_else(|| unauthorized("Authorization must be `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized("Authorization must be `Bearer <token>`"));
    }
    let untrusted =
        UntrustedToken::new(token.trim()).map_err(|_| unauthorized("malformed token"))?;
    if untrusted.algorithm() != "HS256" {
        return Err(unauthorized("token must be signed with HS256"));
    }
    let key = Hs256Key::new(secret);
    let token: Token<PortalClaims> =
        Hs256
            .validator(&key)
            .validate(&untrusted)
            .map_err(|e| match e {
                ValidationError::InvalidSignature => unauthorized("bad token signature"),
                _ => unauthorized("token claims are missing or malformed"),
            })?;
    let claims = token.claims();
    let exp = claims
        .expiration
        .ok_or_else(|| unauthorized("token has no `exp`"))?
        .timestamp();
    let iat = claims
        .issued_at
        .ok_or_else(|| unauthorized("token has no `iat`"))?
        .timestamp();
    if now >= exp {
        return Err(unauthorized("token expired"));
    }
    if iat > now + MAX_SKEW_SECS {
        return Err(unauthorized("token issued in the future"));
    }
    let PortalClaims { tid, sub } = &claims.custom;
    if !valid_id(tid) || !valid_id(sub) {
        return Err(unauthorized("`tid` and `sub` must be 1-128 characters"));
    }
    Ok(Principal {
        tenant: tid.clone(),
        technician: sub.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    const SECRET: &[u8] = b"portal-secret";

    /// Builds a token by hand so tests can craft any header/claims, including broken ones.
    fn token(header: &str, claims: &str, secret: &[u8]) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    const HS: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn a_valid_token_names_tenant_and_technician() {
        let t = token(
            HS,
            r#"{"tid":"t1","sub":"tech","iat":1000,"exp":2000}"#,
            SECRET,
        );
        let p = authenticate(SECRET, Some(&bearer(&t)), 1500).unwrap();
        assert_eq!(
            p,
            Principal {
                tenant: "t1".into(),
                technician: "tech".into()
            }
        );
    }

    #[test]
    fn every_failure_is_a_401() {
        let good = r#"{"tid":"t1","sub":"tech","iat":1000,"exp":2000}"#;
        let cases: Vec<(Option<String>, &str)> = vec![
            (None, "missing"),
            (Some("Basic abc".into()), "Bearer"),
            (Some("Bearer".into()), "Bearer"),
            (Some(bearer("not.a.jwt")), "malformed"),
            (Some(bearer(&token(HS, good, b"wrong"))), "signature"),
            (
                Some(bearer(&token(r#"{"alg":"none"}"#, good, SECRET))),
                "HS256",
            ),
            (
                Some(bearer(&token(r#"{"alg":"HS512"}"#, good, SECRET))),
                "HS256",
            ),
            (
                Some(bearer(&token(
                    HS,
                    r#"{"tid":"t1","sub":"tech","iat":1000,"exp":1500}"#,
                    SECRET,
                ))),
                "expired",
            ),
            (
                Some(bearer(&token(
                    HS,
                    r#"{"tid":"t1","sub":"tech","iat":1000}"#,
                    SECRET,
                ))),
                "exp",
            ),
            (
                Some(bearer(&token(
                    HS,
                    r#"{"tid":"t1","sub":"tech","exp":2000}"#,
                    SECRET,
                ))),
                "iat",
            ),
            (
                Some(bearer(&token(
                    HS,
                    r#"{"sub":"tech","iat":1000,"exp":2000}"#,
                    SECRET,
                ))),
                "claims",
            ),
            (
                Some(bearer(&token(
                    HS,
                    r#"{"tid":"","sub":"tech","iat":1000,"exp":2000}"#,
                    SECRET,
                ))),
                "tid",
            ),
            (
                Some(bearer(&token(
                    HS,
                    r#"{"tid":"t","sub":"tech","iat":1900,"exp":2000}"#,
                    SECRET,
                ))),
                "future",
            ),
        ];
        for (header, expect) in cases {
            let err = authenticate(SECRET, header.as_deref(), 1500).unwrap_err();
            assert_eq!(err.status(), 401);
            assert!(
                err.detail().contains(expect),
                "{header:?}: {} lacks {expect}",
                err.detail()
            );
        }
    }
}
