//! The GitHub App JWT (DESIGN.md flow 3): RS256 over `{"alg":"RS256","typ":"JWT"}` and
//! `{"exp","iat","iss"}`, with `iat` 60 s in the past (clock drift) and `exp` 9 minutes ahead
//! (GitHub refuses more than 10 minutes), `iss` the App id.
//!
//! In the worker the signature comes from WebCrypto (`edge::platform::sign_rs256`, about 1 ms)
//! because pure-Rust RSA in wasm costs 15-30 ms of CPU. This module holds everything around the
//! signature — the claims, the exact signing input, the PEM handling (GitHub hands out PKCS#1,
//! WebCrypto imports PKCS#8) — plus, natively, a `jwt-compact` signer that the tests use to
//! prove both paths produce byte-identical tokens (PKCS#1 v1.5 signatures are deterministic).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use pkcs8::der::asn1::AnyRef;
use pkcs8::der::{Decode, Encode};
use pkcs8::{AlgorithmIdentifierRef, ObjectIdentifier, PrivateKeyInfo};
use serde::Serialize;

/// `iat` is back-dated this much to absorb clock drift between us and GitHub.
pub const IAT_BACKDATE_SECS: i64 = 60;
/// `exp` is this far ahead of `now` (GitHub's ceiling is 600 s).
pub const EXP_AHEAD_SECS: i64 = 540;

const HEADER_JSON: &str = r#"{"alg":"RS256","typ":"JWT"}"#;
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppJwtClaims {
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
}

impl AppJwtClaims {
    pub fn new(app_id: &str, now: i64) -> Self {
        AppJwtClaims {
            exp: now + EXP_AHEAD_SECS,
            iat: now - IAT_BACKDATE_SECS,
            iss: app_id.to_string(),
        }
    }

    /// `base64url(header) . base64url(claims)`: the bytes RS256 signs.
    pub fn signing_input(&self) -> String {
        let claims = serde_json::to_string(self).expect("claims serialize");
        format!("{}.{}", B64.encode(HEADER_JSON), B64.encode(claims))
    }
}

/// The complete compact JWT from the signing input and the raw signature bytes.
pub fn assemble(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", B64.encode(signature))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Not PEM, or a PEM block of another kind.
    NotPem,
    /// PEM, but not an RSA private key in PKCS#1 or PKCS#8.
    NotRsaPrivateKey,
}

/// Accepts the App private key as GitHub hands it out (PKCS#1, `BEGIN RSA PRIVATE KEY`) or as
/// PKCS#8 (`BEGIN PRIVATE KEY`) and returns PKCS#8 DER for WebCrypto's `importKey("pkcs8")`.
/// A key pasted into a secret with literal `\n` sequences is accepted too.
pub fn pkcs8_der_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let normalized = pem.trim().replace("\\n", "\n").replace("\r\n", "\n");
    let (label, der) =
        pkcs8::der::pem::decode_vec(normalized.as_bytes()).map_err(|_| KeyError::NotPem)?;
    match label {
        "RSA PRIVATE KEY" => {
            // Check it is a PKCS#1 RSAPrivateKey before wrapping it.
            rsa_private_key_sequence(&der)?;
            let info = PrivateKeyInfo {
                algorithm: AlgorithmIdentifierRef {
                    oid: RSA_ENCRYPTION,
                    parameters: Some(AnyRef::NULL),
                },
                private_key: &der,
                public_key: None,
            };
            info.to_der().map_err(|_| KeyError::NotRsaPrivateKey)
        }
        "PRIVATE KEY" => {
            let info = PrivateKeyInfo::from_der(&der).map_err(|_| KeyError::NotRsaPrivateKey)?;
            if info.algorithm.oid != RSA_ENCRYPTION {
                return Err(KeyError::NotRsaPrivateKey);
            }
            rsa_private_key_sequence(info.private_key)?;
            Ok(der)
        }
        _ => Err(KeyError::NotPem),
    }
}

/// A light structural check of PKCS#1 `RSAPrivateKey`: a SEQUENCE of nine INTEGERs.
fn rsa_private_key_sequence(der: &[u8]) -> Result<(), KeyError> {
    use pkcs8::der::asn1::UintRef;
    use pkcs8::der::{Reader, SliceReader};
    let mut reader = SliceReader::new(der).map_err(|_| KeyError::NotRsaPrivateKey)?;
    reader
        .sequence(|seq| {
            for _ in 0..9 {
                UintRef::decode(seq)?;
            }
            Ok(())
        })
        .map_err(|_| KeyError::NotRsaPrivateKey)
}

/// The pure-Rust signer (`jwt-compact` + `rsa`), for tests and the benchmark. Not compiled into
/// the deployed worker (only into the `bench` benchmark build).
#[cfg(any(not(target_arch = "wasm32"), feature = "bench"))]
pub mod native {
    use super::AppJwtClaims;
    use chrono::{TimeZone, Utc};
    use jwt_compact::alg::{Rsa, RsaPrivateKey};
    use jwt_compact::{AlgorithmExt, Claims, Header};
    use rsa::pkcs8::DecodePrivateKey;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Issuer<'a> {
        iss: &'a str,
    }

    pub fn private_key(pkcs8_der: &[u8]) -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs8_der(pkcs8_der).expect("valid PKCS#8 RSA key")
    }

    pub fn sign(key: &RsaPrivateKey, claims: &AppJwtClaims) -> String {
        let mut jwt_claims = Claims::new(Issuer { iss: &claims.iss });
        jwt_claims.expiration = Utc.timestamp_opt(claims.exp, 0).single();
        jwt_claims.issued_at = Utc.timestamp_opt(claims.iat, 0).single();
        Rsa::rs256()
            .token(&Header::empty().with_token_type("JWT"), &jwt_claims, key)
            .expect("RS256 signing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_KEY: &str = include_str!("../../dev/github-app-dev-key.pem");

    #[test]
    fn claims_are_backdated_and_short_lived() {
        let c = AppJwtClaims::new("3034314", 10_000);
        assert_eq!(c.iat, 9_940);
        assert_eq!(c.exp, 10_540);
        assert!(c.exp - c.iat <= 600);
        let input = c.signing_input();
        let claims = B64.decode(input.split('.').nth(1).unwrap()).unwrap();
        assert_eq!(claims, br#"{"exp":10540,"iat":9940,"iss":"3034314"}"#);
    }

    #[test]
    fn pkcs1_and_pkcs8_give_the_same_pkcs8_der() {
        let from_pkcs1 = pkcs8_der_from_pem(DEV_KEY).unwrap();
        let pem8 = pkcs8::der::pem::encode_string(
            "PRIVATE KEY",
            pkcs8::der::pem::LineEnding::LF,
            &from_pkcs1,
        )
        .unwrap();
        assert_eq!(pkcs8_der_from_pem(&pem8).unwrap(), from_pkcs1);
        // A secret pasted with literal "\n" sequences.
        let escaped = DEV_KEY.trim().replace('\n', "\\n");
        assert_eq!(pkcs8_der_from_pem(&escaped).unwrap(), from_pkcs1);
    }

    #[test]
    fn other_pem_and_garbage_are_refused() {
        assert_eq!(pkcs8_der_from_pem("hello"), Err(KeyError::NotPem));
        let cert = pkcs8::der::pem::encode_string(
            "CERTIFICATE",
            pkcs8::der::pem::LineEnding::LF,
            &[1, 2, 3],
        )
        .unwrap();
        assert_eq!(pkcs8_der_from_pem(&cert), Err(KeyError::NotPem));
        let junk = pkcs8::der::pem::encode_string(
            "RSA PRIVATE KEY",
            pkcs8::der::pem::LineEnding::LF,
            &[0x30, 0x03, 0x02, 0x01, 0x00],
        )
        .unwrap();
        assert_eq!(pkcs8_der_from_pem(&junk), Err(KeyError::NotRsaPrivateKey));
    }

    /// The worker signs `signing_input()` with WebCrypto's RSASSA-PKCS1-v1_5/SHA-256. The same
    /// primitive through the `rsa` crate must reproduce jwt-compact's token byte for byte.
    #[test]
    fn signing_input_path_matches_jwt_compact_byte_for_byte() {
        use rsa::pkcs1v15::SigningKey;
        use rsa::signature::{SignatureEncoding, Signer};
        let der = pkcs8_der_from_pem(DEV_KEY).unwrap();
        let key = native::private_key(&der);
        let claims = AppJwtClaims::new("3034314", 1_700_000_000);
        let reference = native::sign(&key, &claims);
        let signer = SigningKey::<sha2::Sha256>::new(key);
        let input = claims.signing_input();
        let ours = assemble(&input, &signer.sign(input.as_bytes()).to_bytes());
        assert_eq!(ours, reference);
    }
}
