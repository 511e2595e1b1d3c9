//! CSRF state tokens for the connect flow (DESIGN.md flow 1).
//!
//! A token binds a tenant, a technician, a random 128-bit nonce and an expiry, authenticated with
//! HMAC-SHA256 under `STATE_SECRET` (a key only the edge holds):
//!
//! ```text
//! v1.<base64url(payload)>.<base64url(HMAC-SHA256(key, "onecode-state-v1" || payload))>
//! payload = u16be(len tenant) tenant || u16be(len technician) technician || nonce[16] || i64be(expires_at)
//! ```
//!
//! The length prefixes make the encoding unambiguous (no two field tuples share a payload). The
//! edge also stores the nonce in KV with a 600 s TTL and consumes it once in D1; this module only
//! issues and verifies the token itself, with `now` passed in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Lifetime of a state token and of its KV record.
pub const STATE_TTL_SECS: i64 = 600;
const DOMAIN: &[u8] = b"onecode-state-v1";
const PREFIX: &str = "v1.";
/// Longest token accepted: two 128-byte ids, the nonce, the expiry and the MAC, encoded.
const MAX_TOKEN_LEN: usize = 512;
/// Longest tenant or technician id (bytes).
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateClaims {
    pub tenant: String,
    pub technician: String,
    pub nonce: [u8; 16],
    pub expires_at: i64,
}

impl StateClaims {
    /// The KV key under which the issued state is remembered.
    pub fn kv_key(&self) -> String {
        format!("state:{}", hex::encode(self.nonce))
    }

    pub fn nonce_hex(&self) -> String {
        hex::encode(self.nonce)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// Not a token this gateway could have issued (wrong shape, encoding or lengths).
    Malformed,
    /// Well-formed, but the MAC does not match: forged or issued under another key.
    BadSignature,
    /// Authentic but past its expiry.
    Expired,
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(DOMAIN);
    mac
}

fn encode_payload(claims: &StateClaims) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + claims.tenant.len() + claims.technician.len() + 24);
    for field in [&claims.tenant, &claims.technician] {
        out.extend_from_slice(&(field.len() as u16).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out.extend_from_slice(&claims.nonce);
    out.extend_from_slice(&claims.expires_at.to_be_bytes());
    out
}

fn decode_payload(bytes: &[u8]) -> Option<StateClaims> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Some(head)
    }
    let mut rest = bytes;
    let field = |rest: &mut &[u8]| -> Option<String> {
        let len = u16::from_be_bytes(take(rest, 2)?.try_into().ok()?) as usize;
        String::from_utf8(take(rest, len)?.to_vec()).ok()
    };
    let tenant = field(&mut rest)?;
    let technician = field(&mut rest)?;
    let nonce: [u8; 16] = take(&mut rest, 16)?.try_into().ok()?;
    let expires_at = i64::from_be_bytes(take(&mut rest, 8)?.try_into().ok()?);
    rest.is_empty().then_some(StateClaims {
        tenant,
        technician,
        nonce,
        expires_at,
    })
}

/// Issues a token for `tenant` / `technician`, valid for [`STATE_TTL_SECS`] from `now`.
/// Ids longer than [`MAX_ID_LEN`] bytes are the caller's to refuse (portal auth does).
pub fn issue(
    key: &[u8],
    tenant: &str,
    technician: &str,
    nonce: [u8; 16],
    now: i64,
) -> (String, StateClaims) {
    let claims = StateClaims {
        tenant: tenant.to_string(),
        technician: technician.to_string(),
        nonce,
        expires_at: now + STATE_TTL_SECS,
    };
    let payload = encode_payload(&claims);
    let mut m = mac(key);
    m.update(&payload);
    let tag = m.finalize().into_bytes();
    let token = format!("{PREFIX}{}.{}", B64.encode(&payload), B64.encode(tag));
    (token, claims)
}

/// Verifies the MAC (in constant time) before looking at any field, then the expiry.
pub fn verify(key: &[u8], token: &str, now: i64) -> Result<StateClaims, StateError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(StateError::Malformed);
    }
    let body = token.strip_prefix(PREFIX).ok_or(StateError::Malformed)?;
    let (payload_b64, tag_b64) = body.split_once('.').ok_or(StateError::Malformed)?;
    let payload = B64.decode(payload_b64).map_err(|_| StateError::Malformed)?;
    let tag = B64.decode(tag_b64).map_err(|_| StateError::Malformed)?;
    if tag.len() != 32 {
        return Err(StateError::Malformed);
    }
    let mut m = mac(key);
    m.update(&payload);
    m.verify_slice(&tag).map_err(|_| StateError::BadSignature)?;
    let claims = decode_payload(&payload).ok_or(StateError::Malformed)?;
    if now >= claims.expires_at {
        return Err(StateError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"state-key-for-tests";
    const NONCE: [u8; 16] = [7; 16];

    #[test]
    fn issued_token_verifies_until_expiry() {
        let (token, claims) = issue(KEY, "tenant-1", "tech-9", NONCE, 1_000);
        assert_eq!(claims.expires_at, 1_600);
        assert_eq!(verify(KEY, &token, 1_000), Ok(claims.clone()));
        assert_eq!(verify(KEY, &token, 1_599), Ok(claims));
        assert_eq!(verify(KEY, &token, 1_600), Err(StateError::Expired));
    }

    #[test]
    fn another_key_or_a_flipped_bit_is_a_bad_signature() {
        let (token, _) = issue(KEY, "tenant-1", "tech-9", NONCE, 1_000);
        assert_eq!(
            verify(b"other", &token, 1_000),
            Err(StateError::BadSignature)
        );
        // Re-encode a payload with the tenant changed, keeping the old MAC.
        let (forged, _) = issue(b"attacker", "tenant-2", "tech-9", NONCE, 1_000);
        let forged_payload = forged.split('.').nth(1).unwrap();
        let tag = token.split('.').nth(2).unwrap();
        let spliced = format!("v1.{forged_payload}.{tag}");
        assert_eq!(verify(KEY, &spliced, 1_000), Err(StateError::BadSignature));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let (a, _) = issue(KEY, "ab", "c", NONCE, 0);
        let (b, _) = issue(KEY, "a", "bc", NONCE, 0);
        assert_ne!(a, b);
        assert_eq!(verify(KEY, &a, 0).unwrap().tenant, "ab");
        assert_eq!(verify(KEY, &b, 0).unwrap().technician, "bc");
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        for bad in [
            "",
            "v1.",
            "v1..",
            "v2.AAAA.AAAA",
            "v1.!!!.AAAA",
            "v1.AAAA.AAAA",
            "v1.AAAA",
        ] {
            assert_eq!(verify(KEY, bad, 0), Err(StateError::Malformed), "{bad:?}");
        }
        let long = format!("v1.{}.x", "A".repeat(600));
        assert_eq!(verify(KEY, &long, 0), Err(StateError::Malformed));
        // Authentic MAC over a payload with trailing garbage is still refused as malformed.
        let mut payload = encode_payload(&StateClaims {
            tenant: "t".into(),
            technician: "u".into(),
            nonce: NONCE,
            expires_at: 10,
        });
        payload.push(0);
        let mut m = mac(KEY);
        m.update(&payload);
        let token = format!(
            "v1.{}.{}",
            B64.encode(&payload),
            B64.encode(m.finalize().into_bytes())
        );
        assert_eq!(verify(KEY, &token, 0), Err(StateError::Malformed));
    }

    #[test]
    fn kv_key_is_derived_from_the_nonce() {
        let (_, claims) = issue(KEY, "t", "u", NONCE, 0);
        assert_eq!(claims.kv_key(), format!("state:{}", "07".repeat(16)));
    }
}
