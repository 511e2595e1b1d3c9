//! Credentials: the App's public key, App JWT verification and installation tokens.
//!
//! App JWTs must be RS256-signed by the App key, carry `iss` equal to the App id (string or
//! number), an `exp` in the future, an `iat` no more than 60 s ahead, and live at most
//! 600 s (`exp - iat`), as GitHub requires. Installation tokens are `ghs_` plus 36 random
//! alphanumerics and are checked against the store.

use chrono::{DateTime, Duration, Utc};
use jwt_compact::{alg::Rsa, AlgorithmExt, Claims, UntrustedToken, ValidationError};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use serde_json::Value;

/// Prefix of installation access tokens.
pub const TOKEN_PREFIX: &str = "ghs_";
pub const USER_TOKEN_PREFIX: &str = "ghu_";
const TOKEN_RANDOM_LEN: usize = 36;
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// GitHub's maximum App JWT lifetime.
const MAX_JWT_LIFETIME: Duration = Duration::seconds(600);
/// How far `iat` may lie in the future (clock drift allowance).
const MAX_IAT_SKEW: Duration = Duration::seconds(60);
pub const DECODE_FAILED: &str = "A JSON web token could not be decoded";

/// Reads the App key from PEM: a PKCS#1 or PKCS#8 private key (the public half is used) or
/// a SPKI / PKCS#1 public key.
pub fn load_public_key(pem: &str) -> Result<RsaPublicKey, String> {
    let label = pem
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or("no PEM block found")?;
    let parsed = match label {
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_pem(pem)
            .map(|k| k.to_public_key())
            .map_err(|e| e.to_string()),
        "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_pem(pem)
            .map(|k| k.to_public_key())
            .map_err(|e| e.to_string()),
        "PUBLIC KEY" => RsaPublicKey::from_public_key_pem(pem).map_err(|e| e.to_string()),
        "RSA PUBLIC KEY" => RsaPublicKey::from_pkcs1_pem(pem).map_err(|e| e.to_string()),
        other => Err(format!("unsupported PEM block {other:?}")),
    };
    parsed.map_err(|e| format!("cannot parse {label}: {e}"))
}

/// Verifies App JWTs for one App.
pub struct AppVerifier {
    app_id: String,
    key: RsaPublicKey,
}

#[derive(Deserialize)]
struct AppClaims {
    iss: Option<Value>,
}

impl AppVerifier {
    pub fn new(app_id: String, key: RsaPublicKey) -> Self {
        AppVerifier { app_id, key }
    }

    /// Checks an App JWT at time `now`; the error is the message GitHub would send with 401.
    pub fn verify(&self, jwt: &str, now: DateTime<Utc>) -> Result<(), &'static str> {
        let token = UntrustedToken::new(jwt).map_err(|_| DECODE_FAILED)?;
        if token.algorithm() != "RS256" {
            return Err(DECODE_FAILED);
        }
        let token = Rsa::rs256()
            .validator::<AppClaims>(&self.key)
            .validate(&token)
            .map_err(|e| match e {
                ValidationError::MalformedClaims(_) => {
                    "'Issued at' and 'Expiration time' claims must be integers"
                }
                _ => DECODE_FAILED,
            })?;
        let claims: &Claims<AppClaims> = token.claims();
        if !self.is_app_id(&claims.custom.iss) {
            return Err("'Issuer' claim ('iss') must be the App's id");
        }
        let (Some(iat), Some(exp)) = (claims.issued_at, claims.expiration) else {
            return Err("'Issued at' ('iat') and 'Expiration time' ('exp') claims are required");
        };
        if exp <= now {
            return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires");
        }
        if iat > now + MAX_IAT_SKEW {
            return Err("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued");
        }
        if exp - iat > MAX_JWT_LIFETIME {
            return Err("'Expiration time' claim ('exp') is too far in the future");
        }
        Ok(())
    }

    /// Whether a JWT comes from the App, for the credential ledger: its `iss` is the App id
    /// (signed or not), or it is RS256-signed by the App key (expired or not). Reads the
    /// claims first, so the signature is only checked for tokens naming another issuer.
    pub fn issued_by_app(&self, jwt: &str) -> bool {
        let Ok(token) = UntrustedToken::new(jwt) else {
            return false;
        };
        let names_app = token
            .deserialize_claims_unchecked::<AppClaims>()
            .is_ok_and(|claims| self.is_app_id(&claims.custom.iss));
        names_app
            || (token.algorithm() == "RS256"
                && Rsa::rs256()
                    .validator::<AppClaims>(&self.key)
                    .validate(&token)
                    .is_ok())
    }

    /// Whether an `iss` claim (string or number) is the App id.
    fn is_app_id(&self, iss: &Option<Value>) -> bool {
        match iss {
            Some(Value::String(s)) => *s == self.app_id,
            Some(Value::Number(n)) => n.to_string() == self.app_id,
            _ => false,
        }
    }
}

/// A fresh installation token: `ghs_` + 36 alphanumerics from the OS RNG.
pub fn new_installation_token() -> String {
    new_token(TOKEN_PREFIX)
}

/// A fresh user-to-server token (OAuth during installation): `ghu_` + 36 alphanumerics.
pub fn new_user_token() -> String {
    new_token(USER_TOKEN_PREFIX)
}

/// A one-time OAuth code (the emulator's own format: `code_` + 36 alphanumerics).
pub fn new_oauth_code() -> String {
    new_token("code_")
}

fn new_token(prefix: &str) -> String {
    // Bytes at or above the largest multiple of 62 are rejected to keep the choice uniform.
    const ACCEPT_BELOW: usize = 256 / TOKEN_ALPHABET.len() * TOKEN_ALPHABET.len();
    let mut token = String::from(prefix);
    let mut buf = [0u8; 64];
    while token.len() < prefix.len() + TOKEN_RANDOM_LEN {
        getrandom::getrandom(&mut buf).expect("OS random number generator unavailable");
        let symbols = buf
            .iter()
            .map(|&b| usize::from(b))
            .filter(|&b| b < ACCEPT_BELOW)
            .map(|b| char::from(TOKEN_ALPHABET[b % TOKEN_ALPHABET.len()]));
        token.extend(symbols.take(prefix.len() + TOKEN_RANDOM_LEN - token.len()));
    }
    token
}

/// The credential found in an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    None,
    /// `Bearer <jwt>`: looks like a JWT (three dot-separated parts).
    Jwt(&'a str),
    /// `token <t>` or `Bearer <t>` for anything that is not a JWT.
    Token(&'a str),
    /// A header with an unknown scheme.
    Malformed,
}

/// Splits an `Authorization` header value into its credential.
pub fn parse_authorization(header: Option<&str>) -> Credential<'_> {
    let Some(value) = header else {
        return Credential::None;
    };
    let Some((scheme, credential)) = value.trim().split_once(' ') else {
        return Credential::Malformed;
    };
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("bearer") && credential.split('.').count() == 3 {
        Credential::Jwt(credential)
    } else if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        Credential::Token(credential)
    } else {
        Credential::Malformed
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jwt_compact::alg::{Hs256, Hs256Key};
    use jwt_compact::Header;
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use serde::Serialize;

    pub const APP_ID: &str = "424242";

    pub fn dev_key() -> RsaPrivateKey {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dev/github-app-dev-key.pem");
        let pem = std::fs::read_to_string(path).expect("dev key");
        RsaPrivateKey::from_pkcs1_pem(&pem).unwrap()
    }

    #[derive(Serialize)]
    struct Iss<T> {
        iss: T,
    }

    /// Claims with `iat`/`exp` given as offsets in seconds from one instant, `now`: both are
    /// taken from the same reading of the clock, so `exp - iat` is exactly `exp` minus `iat`
    /// whatever second boundary the test crosses.
    fn claims_at<T>(
        now: DateTime<Utc>,
        iss: T,
        iat: Option<i64>,
        exp: Option<i64>,
    ) -> Claims<Iss<T>> {
        let at = |offset: i64| now + Duration::seconds(offset);
        let mut claims = Claims::new(Iss { iss });
        claims.issued_at = iat.map(at);
        claims.expiration = exp.map(at);
        claims
    }

    /// Claims with `iat`/`exp` given as offsets from now in seconds (the clock read once).
    fn claims<T>(iss: T, iat: Option<i64>, exp: Option<i64>) -> Claims<Iss<T>> {
        claims_at(Utc::now(), iss, iat, exp)
    }

    /// Signs an RS256 App JWT with `iat`/`exp` offsets in seconds from `now`.
    fn sign_at<T: Serialize>(
        key: &RsaPrivateKey,
        now: DateTime<Utc>,
        iss: T,
        iat: i64,
        exp: i64,
    ) -> String {
        let claims = claims_at(now, iss, Some(iat), Some(exp));
        Rsa::rs256().token(&Header::empty(), &claims, key).unwrap()
    }

    /// Signs an RS256 App JWT with `iat`/`exp` offsets from now in seconds (the clock read
    /// once).
    pub fn sign<T: Serialize>(key: &RsaPrivateKey, iss: T, iat: i64, exp: i64) -> String {
        sign_at(key, Utc::now(), iss, iat, exp)
    }

    fn verifier() -> AppVerifier {
        AppVerifier::new(APP_ID.into(), dev_key().to_public_key())
    }

    #[test]
    fn valid_jwt_with_string_or_numeric_iss() {
        let key = dev_key();
        let v = verifier();
        assert_eq!(v.verify(&sign(&key, APP_ID, -60, 540), Utc::now()), Ok(()));
        assert_eq!(v.verify(&sign(&key, 424242, 0, 600), Utc::now()), Ok(()));
    }

    /// A JWT living exactly the maximum 600 s is accepted even when it is signed in the last
    /// nanosecond of a second: `iat` and `exp` come from one reading of the clock, so the
    /// whole-second claims cannot straddle a boundary and come out 601 s apart.
    #[test]
    fn full_lifetime_signed_at_a_second_boundary_is_accepted() {
        let key = dev_key();
        let v = verifier();
        let now = DateTime::from_timestamp(1_700_000_000, 999_999_999).unwrap();
        let jwt = sign_at(&key, now, APP_ID, 0, 600);
        let claims = UntrustedToken::new(&jwt)
            .unwrap()
            .deserialize_claims_unchecked::<Value>()
            .unwrap();
        let (iat, exp) = (claims.issued_at.unwrap(), claims.expiration.unwrap());
        assert_eq!(exp - iat, MAX_JWT_LIFETIME);
        assert_eq!(v.verify(&jwt, now), Ok(()));
        assert_eq!(v.verify(&jwt, now + Duration::seconds(599)), Ok(()));
    }

    #[test]
    fn wrong_signature_or_key_is_refused() {
        let key = dev_key();
        let v = verifier();
        let jwt = sign(&key, APP_ID, -60, 540);
        let (signed, signature) = jwt.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{signed}.{flipped}{}", &signature[1..]);
        assert_eq!(v.verify(&tampered, Utc::now()), Err(DECODE_FAILED));

        let other = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let foreign = sign(&other, APP_ID, -60, 540);
        assert_eq!(v.verify(&foreign, Utc::now()), Err(DECODE_FAILED));
    }

    #[test]
    fn wrong_or_missing_iss_is_refused() {
        let key = dev_key();
        let v = verifier();
        assert!(v.verify(&sign(&key, "1", -60, 540), Utc::now()).is_err());
        assert!(v.verify(&sign(&key, 1, -60, 540), Utc::now()).is_err());
        let now = Utc::now();
        let mut no_iss = Claims::empty();
        no_iss.issued_at = Some(now);
        no_iss.expiration = Some(now + Duration::seconds(60));
        let no_iss = Rsa::rs256().token(&Header::empty(), &no_iss, &key).unwrap();
        assert!(v.verify(&no_iss, Utc::now()).is_err());
    }

    #[test]
    fn time_claims_are_enforced() {
        let key = dev_key();
        let v = verifier();
        // Expired.
        assert!(v
            .verify(&sign(&key, APP_ID, -700, -100), Utc::now())
            .is_err());
        // Lifetime over 10 minutes.
        assert_eq!(
            v.verify(&sign(&key, APP_ID, -60, 600), Utc::now()),
            Err("'Expiration time' claim ('exp') is too far in the future")
        );
        // Issued in the future beyond the allowed skew.
        assert!(v.verify(&sign(&key, APP_ID, 120, 300), Utc::now()).is_err());
        // Missing exp or iat.
        for (iat, exp) in [(Some(0), None), (None, Some(60))] {
            let jwt = Rsa::rs256()
                .token(&Header::empty(), &claims(APP_ID, iat, exp), &key)
                .unwrap();
            assert!(v.verify(&jwt, Utc::now()).is_err());
        }
    }

    #[test]
    fn other_algorithms_and_garbage_are_refused() {
        let v = verifier();
        let public_der = dev_key().to_public_key().to_public_key_der().unwrap();
        let hs_key = Hs256Key::new(public_der.as_bytes());
        let hs256 = Hs256
            .token(
                &Header::empty(),
                &claims(APP_ID, Some(0), Some(60)),
                &hs_key,
            )
            .unwrap();
        assert_eq!(v.verify(&hs256, Utc::now()), Err(DECODE_FAILED));

        let rs = sign(&dev_key(), APP_ID, -60, 540);
        let (_, rest) = rs.split_once('.').unwrap();
        // {"alg":"none"}
        let alg_none = format!("eyJhbGciOiJub25lIn0.{rest}");
        assert_eq!(v.verify(&alg_none, Utc::now()), Err(DECODE_FAILED));
        assert_eq!(v.verify("not.a.jwt", Utc::now()), Err(DECODE_FAILED));
    }

    #[test]
    fn key_formats_all_yield_the_same_public_key() {
        let private = dev_key();
        let public = private.to_public_key();
        let pkcs1 = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../dev/github-app-dev-key.pem"
        ))
        .unwrap();
        let pkcs8 = private.to_pkcs8_pem(LineEnding::LF).unwrap();
        let spki = public.to_public_key_pem(LineEnding::LF).unwrap();
        let rsa_public = public.to_pkcs1_pem(LineEnding::LF).unwrap();
        for pem in [
            pkcs1.as_str(),
            pkcs8.as_str(),
            spki.as_str(),
            rsa_public.as_str(),
        ] {
            assert_eq!(load_public_key(pem).unwrap(), public);
        }
        assert!(
            load_public_key("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
                .is_err()
        );
        assert!(load_public_key("nothing here").is_err());
    }

    #[test]
    fn installation_tokens_look_like_githubs() {
        let a = new_installation_token();
        let b = new_installation_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 40);
        assert!(a.starts_with("ghs_"));
        assert!(a[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn authorization_header_parsing() {
        assert_eq!(parse_authorization(None), Credential::None);
        assert_eq!(
            parse_authorization(Some("Bearer a.b.c")),
            Credential::Jwt("a.b.c")
        );
        assert_eq!(
            parse_authorization(Some("token ghs_x")),
            Credential::Token("ghs_x")
        );
        assert_eq!(
            parse_authorization(Some("Bearer ghs_x")),
            Credential::Token("ghs_x")
        );
        assert_eq!(
            parse_authorization(Some("Basic abc")),
            Credential::Malformed
        );
        assert_eq!(parse_authorization(Some("garbage")), Credential::Malformed);
    }
}
