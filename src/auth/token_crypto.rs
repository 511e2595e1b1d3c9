//! Provider OAuth tokens (GitLab, Microsoft Entra) at rest in D1, sealed with AES-256-GCM.
//!
//! A database dump alone must not yield a usable token, and a sealed token must only open in the
//! exact place it was written: the row, the provider and the field (access or refresh token).
//!
//! # `TOKEN_KEYS`
//!
//! The Worker secret `TOKEN_KEYS` holds the key set, newest first:
//!
//! ```text
//! kid:BASE64KEY[,kid:BASE64KEY...]
//! ```
//!
//! - entries are separated by commas; whitespace and newlines around entries are ignored, and so
//!   are empty entries (a trailing comma);
//! - `kid` is a key id of 1 to 32 characters from `A-Z a-z 0-9 _ -`, unique within the set;
//! - `BASE64KEY` is standard base64 (`+` and `/`, padding optional) of exactly 32 random bytes.
//!   Generate one with `openssl rand -base64 32`;
//! - the **first** entry is the current key: it seals every new token. Every entry opens.
//!
//! For example `TOKEN_KEYS="k2025b:3q2+7w...=,k2025a:AAECAwQF...="`.
//!
//! Rotation: put a new key first and keep the old ones after it; records sealed under an old kid
//! still open, [`needs_reseal`] tells the re-encryption pass which ones to open and seal again
//! under the current key; once none is left under an old kid, drop that key from the secret.
//!
//! # Envelope
//!
//! ```text
//! v1.<kid>.<BASE64URL-NOPAD(nonce[12] || ciphertext || tag[16])>
//! aad = lp("onecode-token") || lp("v1") || lp(kid) || lp(provider) || lp(record_id) || lp(field)
//! lp(x) = u32be(len x) || x
//! ```
//!
//! The associated data binds the envelope version, the key id and the [`Binding`] with length
//! prefixes (no two tuples share an encoding), so a ciphertext copied to another row, another
//! provider or the other token field, or relabelled with another kid, fails authentication. The
//! 96-bit nonce is the caller's: a fresh random value per seal from the platform RNG. With random
//! nonces one key must seal fewer than 2^32 tokens, far beyond any rotation period here.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use std::fmt;

/// The envelope version, first segment of every envelope and part of the associated data.
pub const VERSION: &str = "v1";
/// Longest key id.
pub const MAX_KID_LEN: usize = 32;
const DOMAIN: &[u8] = b"onecode-token";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Standard base64, with or without padding, for the keys in `TOKEN_KEYS`.
const KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The key set from `TOKEN_KEYS`. Its `Debug` output shows the key ids only.
#[derive(Clone)]
pub struct TokenKeys {
    /// Newest first; never empty, ids unique.
    keys: Vec<(String, [u8; KEY_LEN])>,
}

/// Why `TOKEN_KEYS` was refused. Entries are numbered from 1; no message echoes key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysError {
    /// No entry at all.
    Empty,
    /// An entry without the `:` between key id and key.
    MissingSeparator { entry: usize },
    /// A key id that is empty, longer than 32 characters or outside `A-Z a-z 0-9 _ -`.
    BadKeyId { entry: usize },
    /// A key that is not standard base64.
    BadBase64 { entry: usize },
    /// A key that does not decode to exactly 32 bytes.
    WrongKeyLength { entry: usize, bytes: usize },
    /// A key id already used by an earlier entry.
    DuplicateKeyId { entry: usize, kid: String },
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeysError::Empty => {
                f.write_str("TOKEN_KEYS is empty: expected `kid:BASE64KEY[,kid:BASE64KEY...]`")
            }
            KeysError::MissingSeparator { entry } => write!(
                f,
                "TOKEN_KEYS entry {entry}: expected `kid:BASE64KEY` (no `:` found)"
            ),
            KeysError::BadKeyId { entry } => write!(
                f,
                "TOKEN_KEYS entry {entry}: the key id must be 1 to {MAX_KID_LEN} characters \
                 of A-Z a-z 0-9 _ -"
            ),
            KeysError::BadBase64 { entry } => write!(
                f,
                "TOKEN_KEYS entry {entry}: the key is not standard base64 \
                 (generate one with `openssl rand -base64 32`)"
            ),
            KeysError::WrongKeyLength { entry, bytes } => write!(
                f,
                "TOKEN_KEYS entry {entry}: the key must decode to {KEY_LEN} bytes, not {bytes} \
                 (generate one with `openssl rand -base64 32`)"
            ),
            KeysError::DuplicateKeyId { entry, kid } => write!(
                f,
                "TOKEN_KEYS entry {entry}: key id `{kid}` is already used by an earlier entry"
            ),
        }
    }
}

impl std::error::Error for KeysError {}

fn is_valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl TokenKeys {
    /// Parses `TOKEN_KEYS` (format in the module documentation).
    pub fn parse(secret: &str) -> Result<TokenKeys, KeysError> {
        let mut keys: Vec<(String, [u8; KEY_LEN])> = Vec::new();
        for (index, raw) in secret.split(',').enumerate() {
            let entry = index + 1;
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let (kid, key) = raw
                .split_once(':')
                .ok_or(KeysError::MissingSeparator { entry })?;
            let (kid, key) = (kid.trim(), key.trim());
            if !is_valid_kid(kid) {
                return Err(KeysError::BadKeyId { entry });
            }
            let bytes = KEY_B64
                .decode(key)
                .map_err(|_| KeysError::BadBase64 { entry })?;
            let key: [u8; KEY_LEN] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeysError::WrongKeyLength {
                        entry,
                        bytes: bytes.len(),
                    })?;
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(KeysError::DuplicateKeyId {
                    entry,
                    kid: kid.to_string(),
                });
            }
            keys.push((kid.to_string(), key));
        }
        if keys.is_empty() {
            return Err(KeysError::Empty);
        }
        Ok(TokenKeys { keys })
    }

    /// The id of the key that seals (the first entry).
    pub fn current_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// Every key id, current first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    fn key(&self, kid: &str) -> Option<&[u8; KEY_LEN]> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Where a sealed token lives; part of the associated data, so it must be identical at
/// [`seal`] and [`open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// `gitlab`, `entra`, …
    pub provider: &'a str,
    /// The id of the D1 row holding the token.
    pub record_id: &'a str,
    /// The column: `access_token` or `refresh_token`.
    pub field: &'a str,
}

/// Why an envelope did not open. Messages never include the plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Not an envelope this module writes (version, shape, key id or encoding).
    Malformed,
    /// Sealed under a key id that is not in `TOKEN_KEYS` (any more).
    UnknownKey(String),
    /// Authentication failed: another row, provider, field or key, or tampered with.
    Forged,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Malformed => f.write_str("sealed token is malformed"),
            OpenError::UnknownKey(kid) => write!(
                f,
                "sealed token uses key id `{kid}`, which is not in TOKEN_KEYS"
            ),
            OpenError::Forged => f.write_str(
                "sealed token failed authentication (another record, provider, field or key, \
                 or tampered with)",
            ),
        }
    }
}

impl std::error::Error for OpenError {}

fn aad(kid: &str, binding: &Binding) -> Vec<u8> {
    let fields: [&[u8]; 6] = [
        DOMAIN,
        VERSION.as_bytes(),
        kid.as_bytes(),
        binding.provider.as_bytes(),
        binding.record_id.as_bytes(),
        binding.field.as_bytes(),
    ];
    let mut out = Vec::with_capacity(fields.iter().map(|f| 4 + f.len()).sum());
    for field in fields {
        let len = u32::try_from(field.len()).expect("binding fields are far below 4 GiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// Splits `v1.<kid>.<body>`, checking the version and the key id's alphabet.
fn split(envelope: &str) -> Option<(&str, &str)> {
    let rest = envelope.strip_prefix(VERSION)?.strip_prefix('.')?;
    let (kid, body) = rest.split_once('.')?;
    is_valid_kid(kid).then_some((kid, body))
}

/// Seals `plaintext` under the current key with `nonce`, which must be fresh and random for every
/// call (the platform RNG at the edge).
pub fn seal(keys: &TokenKeys, nonce: [u8; 12], binding: &Binding, plaintext: &str) -> String {
    let (kid, key) = &keys.keys[0];
    let cipher = Aes256Gcm::new(key.into());
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: &aad(kid, binding),
            },
        )
        .expect("AES-GCM seals any token (far below 64 GiB)");
    let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&sealed);
    format!("{VERSION}.{kid}.{}", URL_SAFE_NO_PAD.encode(body))
}

/// Opens an envelope written by [`seal`] for the same `binding`, with the key its kid names.
pub fn open(keys: &TokenKeys, binding: &Binding, envelope: &str) -> Result<String, OpenError> {
    let (kid, body) = split(envelope).ok_or(OpenError::Malformed)?;
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| OpenError::Malformed)?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed);
    }
    let key = keys
        .key(kid)
        .ok_or_else(|| OpenError::UnknownKey(kid.to_string()))?;
    let (nonce, sealed) = body.split_at(NONCE_LEN);
    let plaintext = Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad(kid, binding),
            },
        )
        .map_err(|_| OpenError::Forged)?;
    // Authentic, so written by `seal` from a `&str`; anything else is not our envelope.
    String::from_utf8(plaintext).map_err(|_| OpenError::Malformed)
}

/// The key id of an envelope, if it has the envelope's shape (the body is not checked).
pub fn key_id(envelope: &str) -> Option<&str> {
    split(envelope).map(|(kid, _)| kid)
}

/// Whether the envelope is not sealed under the current key, so the re-encryption pass should
/// open and seal it again. An envelope without a readable kid also answers `true`: it is not under
/// the current key, and opening it will report what is wrong.
pub fn needs_reseal(keys: &TokenKeys, envelope: &str) -> bool {
    key_id(envelope) != Some(keys.current_kid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 32 bytes 0x00..=0x1f.
    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// 32 bytes 0x20..=0x3f, unpadded.
    const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
    const NONCE: [u8; 12] = [
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
    ];
    const TOKEN: &str = "glpat-very-secret-access-token";

    fn binding() -> Binding<'static> {
        Binding {
            provider: "gitlab",
            record_id: "conn_42",
            field: "access_token",
        }
    }

    fn keys(spec: &str) -> TokenKeys {
        TokenKeys::parse(spec).unwrap()
    }

    #[test]
    fn key_fixtures_are_what_they_claim() {
        let bytes: Vec<u8> = (0u8..32).collect();
        assert_eq!(KEY_B64.decode(KEY_A).unwrap(), bytes);
        let bytes: Vec<u8> = (32u8..64).collect();
        assert_eq!(KEY_B64.decode(KEY_B).unwrap(), bytes);
    }

    #[test]
    fn round_trip() {
        let k = keys(&format!("a:{KEY_A}"));
        let env = seal(&k, NONCE, &binding(), TOKEN);
        assert!(env.starts_with("v1.a."), "{env}");
        assert!(!env.contains(TOKEN));
        assert_eq!(open(&k, &binding(), &env).as_deref(), Ok(TOKEN));
        assert_eq!(key_id(&env), Some("a"));
        assert!(!needs_reseal(&k, &env));
        // Empty and multibyte plaintexts too.
        for pt in ["", "tøken-✓"] {
            let env = seal(&k, NONCE, &binding(), pt);
            assert_eq!(open(&k, &binding(), &env).as_deref(), Ok(pt));
        }
    }

    #[test]
    fn known_answer_pins_cipher_and_associated_data() {
        // Computed independently (Python `cryptography`, AESGCM) from the key, nonce and the
        // associated data below; a change to the envelope or the AAD encoding breaks it.
        let k = keys(&format!("k1:{KEY_A}"));
        let env = seal(&k, NONCE, &binding(), TOKEN);
        assert_eq!(
            env,
            "v1.k1.oKGio6SlpqeoqaqrgXQMTDHmdNoQHKqgYhmyuwSBOHPx0jEfsXpJ7RrFQY_ZXoKFKMr0Ah-OQ7Rk4w"
        );
        assert_eq!(open(&k, &binding(), &env).as_deref(), Ok(TOKEN));
        // The associated data is what the module documentation says it is.
        let mut expected = Vec::new();
        for field in [
            "onecode-token",
            "v1",
            "k1",
            "gitlab",
            "conn_42",
            "access_token",
        ] {
            expected.extend_from_slice(&(field.len() as u32).to_be_bytes());
            expected.extend_from_slice(field.as_bytes());
        }
        assert_eq!(aad("k1", &binding()), expected);
    }

    #[test]
    fn a_different_nonce_gives_a_different_envelope() {
        let k = keys(&format!("a:{KEY_A}"));
        let one = seal(&k, NONCE, &binding(), TOKEN);
        let mut other_nonce = NONCE;
        other_nonce[11] ^= 1;
        let two = seal(&k, other_nonce, &binding(), TOKEN);
        assert_ne!(one, two);
        assert_eq!(open(&k, &binding(), &one), open(&k, &binding(), &two));
    }

    #[test]
    fn moving_the_ciphertext_anywhere_else_fails() {
        let k = keys(&format!("a:{KEY_A}"));
        let env = seal(&k, NONCE, &binding(), TOKEN);
        let elsewhere = [
            Binding {
                record_id: "conn_43",
                ..binding()
            },
            Binding {
                provider: "entra",
                ..binding()
            },
            Binding {
                field: "refresh_token",
                ..binding()
            },
            // Same concatenation, other field boundaries.
            Binding {
                provider: "gitlabc",
                record_id: "onn_42",
                ..binding()
            },
        ];
        for b in elsewhere {
            assert_eq!(open(&k, &b, &env), Err(OpenError::Forged), "{b:?}");
        }
    }

    #[test]
    fn relabelling_the_kid_fails_even_with_the_same_key() {
        // Both kids hold the same key: only the associated data can catch the relabel.
        let k = keys(&format!("a:{KEY_A},b:{KEY_A}"));
        let env = seal(&k, NONCE, &binding(), TOKEN);
        let relabelled = env.replacen("v1.a.", "v1.b.", 1);
        assert_eq!(open(&k, &binding(), &relabelled), Err(OpenError::Forged));
        // And with another key under the other kid.
        let k2 = keys(&format!("a:{KEY_A},b:{KEY_B}"));
        assert_eq!(open(&k2, &binding(), &relabelled), Err(OpenError::Forged));
        // A kid nobody configured.
        let unknown = env.replacen("v1.a.", "v1.zz.", 1);
        assert_eq!(
            open(&k, &binding(), &unknown),
            Err(OpenError::UnknownKey("zz".into()))
        );
    }

    #[test]
    fn a_wrong_key_under_the_right_kid_fails() {
        let env = seal(&keys(&format!("a:{KEY_A}")), NONCE, &binding(), TOKEN);
        let other = keys(&format!("a:{KEY_B}"));
        assert_eq!(open(&other, &binding(), &env), Err(OpenError::Forged));
    }

    #[test]
    fn every_flipped_bit_fails() {
        let k = keys(&format!("a:{KEY_A}"));
        let env = seal(&k, NONCE, &binding(), TOKEN);
        let body = URL_SAFE_NO_PAD.decode(&env["v1.a.".len()..]).unwrap();
        for i in 0..body.len() * 8 {
            let mut tampered = body.clone();
            tampered[i / 8] ^= 1 << (i % 8);
            let forged = format!("v1.a.{}", URL_SAFE_NO_PAD.encode(&tampered));
            assert_eq!(
                open(&k, &binding(), &forged),
                Err(OpenError::Forged),
                "bit {i}"
            );
        }
    }

    #[test]
    fn truncation_fails() {
        let k = keys(&format!("a:{KEY_A}"));
        let env = seal(&k, NONCE, &binding(), TOKEN);
        // Dropping whole bytes leaves valid base64 and enough length: the tag fails.
        let body = URL_SAFE_NO_PAD.decode(&env["v1.a.".len()..]).unwrap();
        for keep in [body.len() - 1, body.len() - 16, NONCE_LEN + TAG_LEN] {
            let cut = format!("v1.a.{}", URL_SAFE_NO_PAD.encode(&body[..keep]));
            assert_eq!(open(&k, &binding(), &cut), Err(OpenError::Forged), "{keep}");
        }
        // Shorter than a nonce and a tag: not an envelope at all.
        let short = format!("v1.a.{}", URL_SAFE_NO_PAD.encode([0u8; 27]));
        assert_eq!(open(&k, &binding(), &short), Err(OpenError::Malformed));
        // One character off leaves an impossible base64 length.
        assert_eq!(
            open(&k, &binding(), &env[..env.len() - 1]),
            Err(OpenError::Malformed)
        );
        assert_eq!(open(&k, &binding(), "v1.a."), Err(OpenError::Malformed));
    }

    #[test]
    fn malformed_envelopes_are_refused_without_panicking() {
        let k = keys(&format!("a:{KEY_A}"));
        let env = seal(&k, NONCE, &binding(), TOKEN);
        let body = &env["v1.a.".len()..];
        for bad in [
            String::new(),
            "v1".into(),
            "v1.".into(),
            "v1.a".into(),
            format!("v2.a.{body}"),
            format!("V1.a.{body}"),
            format!("v1..{body}"),
            format!("v1.a!.{body}"),
            format!("v1.{}.{body}", "a".repeat(33)),
            format!("v1.a.{body}="),
            format!("v1.a.+{}", &body[1..]),
            "v1.a.!!!!".into(),
            format!("v1.a.{body}.extra"),
            format!(" {env}"),
        ] {
            assert_eq!(
                open(&k, &binding(), &bad),
                Err(OpenError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(key_id("v2.a.AAAA"), None);
        assert_eq!(key_id("v1.a!.AAAA"), None);
        assert_eq!(key_id("v1.a"), None);
    }

    #[test]
    fn rotation_opens_old_envelopes_and_reseals_them_under_the_new_key() {
        let old_only = keys(&format!("old:{KEY_A}"));
        let env = seal(&old_only, NONCE, &binding(), TOKEN);
        assert_eq!(key_id(&env), Some("old"));

        let rotated = keys(&format!("new:{KEY_B}, old:{KEY_A}"));
        assert_eq!(rotated.current_kid(), "new");
        assert!(needs_reseal(&rotated, &env));
        let plaintext = open(&rotated, &binding(), &env).unwrap();
        assert_eq!(plaintext, TOKEN);

        let resealed = seal(&rotated, [9; 12], &binding(), &plaintext);
        assert_eq!(key_id(&resealed), Some("new"));
        assert!(!needs_reseal(&rotated, &resealed));

        let new_only = keys(&format!("new:{KEY_B}"));
        assert_eq!(open(&new_only, &binding(), &resealed).as_deref(), Ok(TOKEN));
        assert_eq!(
            open(&new_only, &binding(), &env),
            Err(OpenError::UnknownKey("old".into()))
        );
        // Unreadable envelopes are never "already current".
        assert!(needs_reseal(&rotated, "garbage"));
    }

    #[test]
    fn parse_accepts_whitespace_newlines_padding_and_a_trailing_comma() {
        let k = keys(&format!("\n  new_1 : {KEY_B} ,\n old-0:{KEY_A},\n"));
        assert_eq!(k.current_kid(), "new_1");
        assert_eq!(k.kids().collect::<Vec<_>>(), ["new_1", "old-0"]);
        let unpadded = KEY_A.trim_end_matches('=');
        let k2 = keys(&format!("old-0:{unpadded}"));
        let env = seal(&k2, NONCE, &binding(), TOKEN);
        assert_eq!(open(&k, &binding(), &env).as_deref(), Ok(TOKEN));
        let max_kid = "K".repeat(32);
        assert_eq!(keys(&format!("{max_kid}:{KEY_A}")).current_kid(), max_kid);
    }

    #[test]
    fn parse_errors_are_named_by_entry_and_rule() {
        let short = KEY_B64.encode([7u8; 16]);
        let cases = [
            (String::new(), KeysError::Empty),
            (" , \n ,".into(), KeysError::Empty),
            (KEY_A.into(), KeysError::MissingSeparator { entry: 1 }),
            (format!(":{KEY_A}"), KeysError::BadKeyId { entry: 1 }),
            (
                format!("a:{KEY_A},b.c:{KEY_B}"),
                KeysError::BadKeyId { entry: 2 },
            ),
            (
                format!("{}:{KEY_A}", "k".repeat(33)),
                KeysError::BadKeyId { entry: 1 },
            ),
            ("a:not base64!".into(), KeysError::BadBase64 { entry: 1 }),
            (
                // URL-safe alphabet is not the standard one.
                format!("a:{}", KEY_B64.encode([0xfb; 32]).replace('+', "-")),
                KeysError::BadBase64 { entry: 1 },
            ),
            (
                format!("a:{KEY_A},b:{short}"),
                KeysError::WrongKeyLength {
                    entry: 2,
                    bytes: 16,
                },
            ),
            (
                format!("a:{}", KEY_B64.encode([1u8; 33])),
                KeysError::WrongKeyLength {
                    entry: 1,
                    bytes: 33,
                },
            ),
            (
                // Padding in the middle is not base64.
                format!("a:{KEY_A}AAAA"),
                KeysError::BadBase64 { entry: 1 },
            ),
            (
                format!("a:{KEY_A},b:{KEY_B},a:{KEY_B}"),
                KeysError::DuplicateKeyId {
                    entry: 3,
                    kid: "a".into(),
                },
            ),
        ];
        for (spec, want) in cases {
            let got = TokenKeys::parse(&spec).unwrap_err();
            assert_eq!(got, want, "{spec:?}");
            let msg = got.to_string();
            assert!(msg.starts_with("TOKEN_KEYS"), "{msg}");
            assert!(!msg.contains(KEY_A) && !msg.contains(KEY_B), "{msg}");
        }
        assert!(KeysError::WrongKeyLength {
            entry: 2,
            bytes: 16
        }
        .to_string()
        .contains("entry 2"));
        // A key pasted in the kid's place is not echoed back.
        let err = TokenKeys::parse(&format!("{KEY_A}:a")).unwrap_err();
        assert_eq!(err, KeysError::BadKeyId { entry: 1 });
        assert!(!err.to_string().contains(KEY_A.trim_end_matches('=')));
    }

    #[test]
    fn debug_and_errors_never_show_key_material_or_plaintext() {
        let k = keys(&format!("new:{KEY_B},old:{KEY_A}"));
        let dbg = format!("{k:?}");
        assert!(dbg.contains("new") && dbg.contains("old"), "{dbg}");
        for secret in [KEY_A, KEY_B, KEY_A.trim_end_matches('=')] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert!(!dbg.contains("[0, 1, 2"), "{dbg}");
        assert!(!dbg.contains("32, 33"), "{dbg}");

        let env = seal(&k, NONCE, &binding(), TOKEN);
        let errs = [
            open(
                &k,
                &Binding {
                    field: "x",
                    ..binding()
                },
                &env,
            )
            .unwrap_err(),
            open(&k, &binding(), "v1.gone.AAAA").unwrap_err(),
            open(&k, &binding(), "nope").unwrap_err(),
        ];
        for e in errs {
            assert!(!e.to_string().contains(TOKEN));
            assert!(!format!("{e:?}").contains(TOKEN));
        }
    }
}
