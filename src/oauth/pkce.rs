//! PKCE (RFC 7636) for the provider authorization flows (GitLab, Microsoft Entra), `S256` only.
//!
//! The edge draws 32 random bytes per authorization, keeps the verifier server-side with the
//! state, sends the challenge with the authorization request and the verifier with the token
//! request, so an intercepted authorization code is useless on its own:
//!
//! ```text
//! code_verifier  = BASE64URL-NOPAD(32 random bytes)            (43 characters)
//! code_challenge = BASE64URL-NOPAD(SHA-256(ASCII(code_verifier)))
//! ```
//!
//! `plain` is never offered: every provider we talk to supports `S256`, and `plain` only guards
//! against the weaker threat model. The randomness comes from the caller (the platform RNG at the
//! edge) so everything here is deterministic and tested natively.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The `code_challenge_method` sent with the authorization request.
pub const METHOD: &str = "S256";
/// Shortest verifier RFC 7636 §4.1 allows.
pub const MIN_VERIFIER_LEN: usize = 43;
/// Longest verifier RFC 7636 §4.1 allows.
pub const MAX_VERIFIER_LEN: usize = 128;

/// A verifier and its `S256` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

/// The verifier for 32 random bytes (43 characters) and its challenge.
pub fn from_random(bytes: [u8; 32]) -> Pkce {
    let verifier = B64.encode(bytes);
    let challenge = challenge_s256(&verifier);
    Pkce {
        verifier,
        challenge,
    }
}

/// `BASE64URL-NOPAD(SHA-256(ASCII(verifier)))` (RFC 7636 §4.2).
pub fn challenge_s256(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// 43 to 128 characters of the unreserved set `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
pub fn is_valid_verifier(v: &str) -> bool {
    (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const RFC_BYTES: [u8; 32] = [
        116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37,
        77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
    ];
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        let p = from_random(RFC_BYTES);
        assert_eq!(p.verifier, RFC_VERIFIER);
        assert_eq!(p.challenge, RFC_CHALLENGE);
        assert_eq!(challenge_s256(RFC_VERIFIER), RFC_CHALLENGE);
        assert_eq!(METHOD, "S256");
    }

    #[test]
    fn generated_verifiers_are_valid_and_distinct() {
        for seed in [[0u8; 32], [0xff; 32], RFC_BYTES] {
            let p = from_random(seed);
            assert_eq!(p.verifier.len(), 43);
            assert!(is_valid_verifier(&p.verifier), "{}", p.verifier);
            assert_eq!(p.challenge.len(), 43);
            assert!(!p.challenge.contains(['=', '+', '/']));
        }
        assert_ne!(from_random([0; 32]), from_random([1; 32]));
    }

    #[test]
    fn verifier_length_bounds() {
        assert!(!is_valid_verifier(""));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"a".repeat(128)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
    }

    #[test]
    fn verifier_alphabet_is_the_unreserved_set() {
        let all_unreserved = format!("{}-._~", "AZaz09".repeat(7));
        assert!(is_valid_verifier(&all_unreserved));
        for bad in ['+', '/', '=', ' ', '%', '\n', 'é'] {
            let v = format!("{}{bad}", "a".repeat(43));
            assert!(!is_valid_verifier(&v), "{bad:?}");
        }
        // 43 bytes but fewer characters: a multibyte character is still refused.
        assert!(!is_valid_verifier(&format!("{}é", "a".repeat(41))));
    }
}
