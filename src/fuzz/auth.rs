//! What authenticates a caller or protects a secret: connect state tokens, the portal's JWTs and
//! provider tokens sealed at rest.

use super::{tamper, Input};
use crate::auth::state_token::{self, StateError, MAX_ID_LEN, STATE_TTL_SECS};
use crate::auth::token_crypto::{self, Binding, OpenError, TokenKeys};
use crate::auth::{portal_auth, state_token::StateClaims};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

/// An HMAC key that is not equivalent to `key` (HMAC pads short keys with zeros, so appending a
/// zero byte would give the same MACs): one bit flipped, or `[1]` for the empty key.
fn other_key(key: &[u8], bit: u8) -> Vec<u8> {
    let mut other = key.to_vec();
    match other.get_mut(usize::from(bit) % key.len().max(1)) {
        Some(b) => *b ^= 1 << (bit % 8),
        None => other.push(1),
    }
    other
}

/// [`state_token::verify`] on any text, and on tokens [`state_token::issue`] made.
///
/// - Nothing forged verifies: text the fuzzer made is never `Ok`.
/// - An issued token verifies to its claims until its expiry, then is `Expired`; at any other
///   time, one or the other.
/// - The token with one character changed, removed or added, cut or extended, never verifies;
///   neither does it under another key.
pub fn state_token(data: &[u8]) {
    let mut input = Input::new(data);
    let key = input.bytes(80).to_vec();
    let now = input.i64();
    if input.bool() {
        let token = input.text(700);
        let verified = state_token::verify(&key, &token, now);
        assert!(verified.is_err(), "forged state token {token:?} verified");
        return;
    }
    let tenant = input.text_bytes(MAX_ID_LEN);
    let technician = input.text_bytes(MAX_ID_LEN);
    let nonce = input.array::<16>();
    let issued_at = input.clock();
    let (token, claims) = state_token::issue(&key, &tenant, &technician, nonce, issued_at);
    assert_eq!(
        claims,
        StateClaims {
            tenant,
            technician,
            nonce,
            expires_at: issued_at + STATE_TTL_SECS
        }
    );
    assert_eq!(
        state_token::verify(&key, &token, issued_at),
        Ok(claims.clone())
    );
    assert_eq!(
        state_token::verify(&key, &token, claims.expires_at),
        Err(StateError::Expired)
    );
    match state_token::verify(&key, &token, now) {
        Ok(c) => assert!(c == claims && now < claims.expires_at),
        Err(e) => assert!(e == StateError::Expired && now >= claims.expires_at),
    }
    let tampered = tamper(&mut input, &token);
    if tampered != token {
        let verified = state_token::verify(&key, &tampered, issued_at);
        assert!(verified.is_err(), "tampered {tampered:?} verified");
    }
    let other = other_key(&key, input.byte());
    assert!(state_token::verify(&other, &token, issued_at).is_err());
}

/// `header.claims.signature` signed with HS256 under `key`.
fn hs256(header: &str, claims: &str, key: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// [`portal_auth::authenticate`] on any `Authorization` value, and on tokens signed with the
/// portal's secret whose header and claims are hostile (another `alg`, claims of the wrong
/// type, huge or negative times, control characters, long ids).
///
/// - Nothing forged authenticates.
/// - A token authenticates only when signed with the secret, `alg` is `HS256`, `exp` is after
///   `now`, `iat` at most 60 s ahead, and `tid` / `sub` are 1-128 characters without control
///   characters; the principal is then exactly `tid` and `sub`.
/// - The token with one character changed (other than surrounding whitespace) never does.
pub fn portal_jwt(data: &[u8]) {
    let mut input = Input::new(data);
    let secret = input.bytes(80).to_vec();
    let now = input.clock();
    if input.one_in(3) {
        let header = input.text(1200);
        let result = portal_auth::authenticate(&secret, Some(&header), now);
        assert!(result.is_err(), "forged Authorization {header:?} accepted");
        return;
    }
    let alg = match input.byte() % 4 {
        0 | 1 => "HS256".to_string(),
        2 if input.bool() => "HS256".to_string(),
        2 => input
            .pick(&["none", "HS384", "RS256", "hs256", "HS256 ", ""])
            .to_string(),
        _ => input.text(10),
    };
    let header = match input.byte() % 8 {
        0 => input.json(2).to_string(),
        1 => input.text(40),
        _ => json!({"alg": alg, "typ": "JWT"}).to_string(),
    };
    let templated = !input.one_in(4);
    let claims: Map<String, Value> = if templated {
        let mut claims = Map::new();
        for name in ["tid", "sub", "iat", "exp"] {
            if input.one_in(8) {
                continue;
            }
            let realistic = match name {
                "tid" | "sub" if input.bool() => Value::String(format!("id-{}", input.u16())),
                "tid" | "sub" => Value::String(input.text(140)),
                "iat" => json!(now - i64::from(input.u16())),
                _ => json!(now + i64::from(input.u16()) - 100),
            };
            let value = input.or_junk(realistic);
            claims.insert(name.to_string(), value);
        }
        claims
    } else {
        match input.json(3) {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    };
    let signed_right = !input.one_in(4);
    let key = if signed_right {
        secret.clone()
    } else {
        other_key(&secret, input.byte())
    };
    let token = hs256(&header, &Value::Object(claims.clone()).to_string(), &key);
    let scheme = input.pick(&[
        "Bearer ", "bearer ", "BEARER  ", "Bearer\t", "Token ", "Bearer",
    ]);
    let result = portal_auth::authenticate(&secret, Some(&format!("{scheme}{token}")), now);
    if let Ok(principal) = &result {
        assert!(
            signed_right,
            "a token signed with another key authenticated"
        );
        let claims = Value::Object(claims);
        // jwt-compact reads times given as floats too, truncated.
        let secs = |v: &Value| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64));
        let header: Value = serde_json::from_str(&header).expect("a header that authenticated");
        assert_eq!(header["alg"], "HS256");
        let id_ok = |v: &Value| {
            v.as_str().is_some_and(|s| {
                !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control)
            })
        };
        assert!(id_ok(&claims["tid"]) && id_ok(&claims["sub"]));
        assert_eq!(claims["tid"], principal.tenant.as_str());
        assert_eq!(claims["sub"], principal.technician.as_str());
        assert!(secs(&claims["exp"]).is_some_and(|exp| exp > now));
        assert!(secs(&claims["iat"]).is_some_and(|iat| iat <= now + 60));
        let tampered = tamper(&mut input, &token);
        if tampered.trim() != token {
            let header = format!("Bearer {tampered}");
            let result = portal_auth::authenticate(&secret, Some(&header), now);
            assert!(result.is_err(), "tampered token {tampered:?} authenticated");
        }
    }
}

const KEY_A: [u8; 32] = [7; 32];
const KEY_B: [u8; 32] = [9; 32];

fn key_set(input: &mut Input<'_>) -> (TokenKeys, bool) {
    if input.one_in(4) {
        // `TOKEN_KEYS` as configured: any text, sometimes built from valid-looking entries.
        let text = if input.bool() {
            input.text(300)
        } else {
            let n = input.below(4);
            (0..n)
                .map(|_| {
                    let kid = input.text(36);
                    let key = input.bytes(40);
                    let engine = if input.bool() { STANDARD } else { URL_SAFE };
                    format!("{kid}:{}", engine.encode(key))
                })
                .collect::<Vec<_>>()
                .join(input.pick(&[",", ", ", ",\n", ",,", ";"]))
        };
        if let Ok(keys) = TokenKeys::parse(&text) {
            let kids: Vec<&str> = keys.kids().collect();
            assert_eq!(kids.first().copied(), Some(keys.current_kid()));
            for (i, kid) in kids.iter().enumerate() {
                assert!((1..=token_crypto::MAX_KID_LEN).contains(&kid.len()));
                assert!(kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                assert!(!kids[..i].contains(kid), "duplicate key id {kid}");
            }
            return (keys, true);
        }
    }
    let text = format!(
        "k2:{},k1:{}",
        STANDARD.encode(KEY_B),
        STANDARD.encode(KEY_A)
    );
    (TokenKeys::parse(&text).expect("a valid key set"), false)
}

/// [`token_crypto::open`] on any envelope, and on envelopes [`token_crypto::seal`] made; with
/// `TOKEN_KEYS` parsed from any text too.
///
/// - A parsed key set has 1-32 character ids of `A-Z a-z 0-9 _ -`, unique, the first current.
/// - Nothing forged opens.
/// - A sealed token opens to its plaintext, under the current kid, for its own binding only:
///   any other provider, row or field is `Forged`; without its key it is `UnknownKey`.
/// - The envelope with one character changed, removed or added, cut or extended never opens.
pub fn token_envelope(data: &[u8]) {
    let mut input = Input::new(data);
    let (keys, _) = key_set(&mut input);
    let provider = input.text(12);
    let record_id = input.text(40);
    let field = input.text(14);
    let binding = Binding {
        provider: &provider,
        record_id: &record_id,
        field: &field,
    };
    if input.bool() {
        let envelope = input.text(400);
        assert!(token_crypto::open(&keys, &binding, &envelope).is_err());
        let reseal = token_crypto::needs_reseal(&keys, &envelope);
        assert_eq!(
            reseal,
            token_crypto::key_id(&envelope) != Some(keys.current_kid())
        );
        return;
    }
    let plaintext = input.text(300);
    let nonce = input.array::<12>();
    let envelope = token_crypto::seal(&keys, nonce, &binding, &plaintext);
    assert_eq!(
        token_crypto::open(&keys, &binding, &envelope).as_deref(),
        Ok(plaintext.as_str())
    );
    assert_eq!(token_crypto::key_id(&envelope), Some(keys.current_kid()));
    assert!(!token_crypto::needs_reseal(&keys, &envelope));
    let changed = format!("{}x", input.pick(&[&provider, &record_id, &field]));
    for other in [
        Binding {
            provider: &changed,
            ..binding
        },
        Binding {
            record_id: &changed,
            ..binding
        },
        Binding {
            field: &changed,
            ..binding
        },
    ] {
        if other != binding {
            assert_eq!(
                token_crypto::open(&keys, &other, &envelope),
                Err(OpenError::Forged)
            );
        }
    }
    let tampered = tamper(&mut input, &envelope);
    if tampered != envelope {
        let opened = token_crypto::open(&keys, &binding, &tampered);
        assert!(opened.is_err(), "tampered envelope {tampered:?} opened");
    }
    let stranger = TokenKeys::parse(&format!("zz:{}", STANDARD.encode([3u8; 32]))).unwrap();
    assert_eq!(
        token_crypto::open(&stranger, &binding, &envelope),
        Err(OpenError::UnknownKey(keys.current_kid().to_string()))
    );
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bytes, config};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config(1000))]

        #[test]
        fn state_token(data in bytes(600)) {
            super::state_token(&data);
        }

        #[test]
        fn portal_jwt(data in bytes(600)) {
            super::portal_jwt(&data);
        }

        #[test]
        fn token_envelope(data in bytes(600)) {
            super::token_envelope(&data);
        }
    }
}
