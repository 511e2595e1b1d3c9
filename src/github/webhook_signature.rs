//! Verifying GitHub webhook deliveries (DESIGN.md flow 4) before anything else happens.
//!
//! `X-Hub-Signature-256: sha256=<64 lowercase hex>` is HMAC-SHA256 of the raw body bytes under
//! the webhook secret, compared in constant time. The body is never decoded before this check.
//! [`claimed_digest`] reads the header; the worker then checks it with WebCrypto's HMAC `verify`
//! (native code, constant time: `edge::platform::hmac_sha256_verify`, about a tenth of the CPU of
//! hashing 25 KB in wasm), and [`verify`] is the same check in plain Rust (`Mac::verify_slice`)
//! for native callers and tests.
//!
//! Secret rotation: `GITHUB_WEBHOOK_SECRET` is either one secret, or a JSON array of secrets
//! (`["new-secret", "old-secret"]`). Any of them verifies, so the App's secret can be changed on
//! GitHub while both are configured here; drop the old one afterwards.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    Missing,
    /// Only the SHA-1 `X-Hub-Signature` header was sent.
    Sha1Only,
    /// The header does not start with `sha256=`.
    UnsupportedAlgorithm,
    /// Not 64 hex digits after `sha256=`.
    Malformed,
    /// Well-formed but does not match under any configured secret.
    Mismatch,
}

impl SignatureError {
    pub fn detail(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing X-Hub-Signature-256 header",
            SignatureError::Sha1Only => {
                "X-Hub-Signature (SHA-1) is not accepted; X-Hub-Signature-256 is required"
            }
            SignatureError::UnsupportedAlgorithm => "X-Hub-Signature-256 must start with `sha256=`",
            SignatureError::Malformed => {
                "X-Hub-Signature-256 must be `sha256=` followed by 64 hex digits"
            }
            SignatureError::Mismatch => "signature does not match the payload",
        }
    }
}

/// The configured secrets, newest first. Empty entries are dropped; an empty list refuses all.
pub fn parse_secrets(value: &str) -> Vec<String> {
    let trimmed = value.trim();
    // A value that merely starts with `[` but is not a JSON array is one plain secret.
    let secrets = match serde_json::from_str::<Vec<String>>(trimmed) {
        Ok(list) if trimmed.starts_with('[') => list,
        _ => vec![trimmed.to_string()],
    };
    secrets.into_iter().filter(|s| !s.is_empty()).collect()
}

/// The HMAC-SHA256 the signature headers claim for the body: a well-formed
/// `X-Hub-Signature-256`, or why there is none.
pub fn claimed_digest(
    sha256_header: Option<&str>,
    sha1_header: Option<&str>,
) -> Result<[u8; 32], SignatureError> {
    let header = match (sha256_header, sha1_header) {
        (Some(h), _) => h.trim(),
        (None, Some(_)) => return Err(SignatureError::Sha1Only),
        (None, None) => return Err(SignatureError::Missing),
    };
    let hex_digest = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::UnsupportedAlgorithm)?;
    if hex_digest.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let mut claimed = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut claimed).map_err(|_| SignatureError::Malformed)?;
    Ok(claimed)
}

/// Checks the signature headers against the raw `body` under any of `secrets`.
pub fn verify(
    secrets: &[String],
    sha256_header: Option<&str>,
    sha1_header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let expected = claimed_digest(sha256_header, sha1_header)?;
    let matches = secrets.iter().any(|secret| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// `sha256=<hex>` for `body` under `secret`: what GitHub sends (used by tests and the benchmark).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
    const GITHUB_EXAMPLE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_claimed_digest_is_the_headers_hex_and_only_a_well_formed_one() {
        let digest = claimed_digest(Some(&format!(" {GITHUB_EXAMPLE} ")), None).unwrap();
        assert_eq!(format!("sha256={}", hex::encode(digest)), GITHUB_EXAMPLE);
        let sha1 = Some("sha1=0000000000000000000000000000000000000000");
        assert_eq!(claimed_digest(None, sha1), Err(SignatureError::Sha1Only));
        assert_eq!(claimed_digest(None, None), Err(SignatureError::Missing));
        assert_eq!(
            claimed_digest(Some("sha512=00"), None),
            Err(SignatureError::UnsupportedAlgorithm)
        );
        let short = &GITHUB_EXAMPLE[..GITHUB_EXAMPLE.len() - 2];
        assert_eq!(
            claimed_digest(Some(short), None),
            Err(SignatureError::Malformed)
        );
        let not_hex = format!("{}zz", short);
        assert_eq!(
            claimed_digest(Some(&not_hex), None),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn githubs_documented_example_verifies() {
        let s = secrets(&["It's a Secret to Everybody"]);
        assert_eq!(sign(&s[0], b"Hello, World!"), GITHUB_EXAMPLE);
        assert_eq!(
            verify(&s, Some(GITHUB_EXAMPLE), None, b"Hello, World!"),
            Ok(())
        );
        assert_eq!(
            verify(&s, Some(GITHUB_EXAMPLE), None, b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn multibyte_bodies_verify_as_bytes() {
        let body = "{\"message\":\"ship it 🚀 — ünïcode\"}".as_bytes();
        let s = secrets(&["k"]);
        assert_eq!(verify(&s, Some(&sign("k", body)), None, body), Ok(()));
    }

    #[test]
    fn each_header_fault_is_named() {
        let s = secrets(&["k"]);
        let good = sign("k", b"x");
        let cases = [
            (None, None, SignatureError::Missing),
            (None, Some("sha1=abcd"), SignatureError::Sha1Only),
            (
                Some("sha1=0123"),
                None,
                SignatureError::UnsupportedAlgorithm,
            ),
            (
                Some("sha512=00"),
                None,
                SignatureError::UnsupportedAlgorithm,
            ),
            (
                Some(good.trim_start_matches("sha256=")),
                None,
                SignatureError::UnsupportedAlgorithm,
            ),
            (Some("sha256=abc"), None, SignatureError::Malformed),
            (Some(&*format!("{good}00")), None, SignatureError::Malformed),
            (
                Some(&*format!("sha256={}", "zz".repeat(32))),
                None,
                SignatureError::Malformed,
            ),
            (Some(&*sign("other", b"x")), None, SignatureError::Mismatch),
        ];
        for (h256, h1, want) in cases {
            assert_eq!(verify(&s, h256, h1, b"x"), Err(want), "{h256:?} {h1:?}");
            assert!(!want.detail().is_empty());
        }
        // Uppercase hex is still hex.
        assert_eq!(
            verify(
                &s,
                Some(&good.to_uppercase().replace("SHA256=", "sha256=")),
                None,
                b"x"
            ),
            Ok(())
        );
    }

    #[test]
    fn rotation_accepts_old_and_new_and_nothing_else() {
        let s = parse_secrets(r#"["new", "old"]"#);
        assert_eq!(s, vec!["new", "old"]);
        assert_eq!(verify(&s, Some(&sign("new", b"b")), None, b"b"), Ok(()));
        assert_eq!(verify(&s, Some(&sign("old", b"b")), None, b"b"), Ok(()));
        assert_eq!(
            verify(&s, Some(&sign("older", b"b")), None, b"b"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(parse_secrets("  plain secret "), vec!["plain secret"]);
        assert!(parse_secrets("").is_empty());
        assert!(parse_secrets("[\"\"]").is_empty());
        assert_eq!(parse_secrets("[not json"), vec!["[not json"]);
        assert_eq!(
            verify(&[], Some(&sign("", b"b")), None, b"b"),
            Err(SignatureError::Mismatch),
            "no secret refuses all"
        );
    }
}
