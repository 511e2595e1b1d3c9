//! The only place that touches the JavaScript platform directly: the clock, randomness and
//! WebCrypto. Each returns plain Rust results.

use js_sys::{Array, Object, Reflect, Uint8Array};
use std::cell::RefCell;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto, WorkerGlobalScope};

/// Unix seconds. Read once per invocation and passed down.
pub fn now() -> i64 {
    (worker::Date::now().as_millis() / 1000) as i64
}

/// Cryptographically random bytes (`crypto.getRandomValues` through getrandom's js backend).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("getrandom: {e}"))?;
    Ok(bytes)
}

/// A random UUID (v4), hyphenated: ids for organizations and enumeration runs.
pub fn random_uuid() -> Result<String, String> {
    Ok(uuid::Builder::from_random_bytes(random_bytes()?)
        .into_uuid()
        .to_string())
}

fn subtle() -> Result<SubtleCrypto, String> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(scope
        .crypto()
        .map_err(|_| "crypto unavailable".to_string())?
        .subtle())
}

fn js_err(context: &str, e: JsValue) -> String {
    format!(
        "{context}: {}",
        e.as_string().unwrap_or_else(|| format!("{e:?}"))
    )
}

thread_local! {
    /// Imported keys, kept for the isolate's life and keyed by algorithm and key bytes: the App
    /// key (RS256, PKCS#8 DER) and the webhook secrets (HMAC, one per configured secret, two
    /// during a rotation). A rotated secret arrives with a new isolate anyway, and a key is never
    /// used for other bytes.
    static KEYS: RefCell<Vec<(&'static str, Vec<u8>, CryptoKey)>> = const { RefCell::new(Vec::new()) };
}

/// The key `bytes` (in `format`) imported for `algorithm` with SHA-256, for one `usage`: from
/// [`KEYS`], or imported once and kept there.
async fn import_key(
    format: &str,
    bytes: &[u8],
    algorithm: &'static str,
    usage: &str,
) -> Result<CryptoKey, String> {
    let kept = KEYS.with(|keys| {
        keys.borrow()
            .iter()
            .find(|(a, b, _)| *a == algorithm && b == bytes)
            .map(|(_, _, key)| key.clone())
    });
    if let Some(key) = kept {
        return Ok(key);
    }
    let params = Object::new();
    Reflect::set(&params, &"name".into(), &algorithm.into()).map_err(|e| js_err("algorithm", e))?;
    Reflect::set(&params, &"hash".into(), &"SHA-256".into()).map_err(|e| js_err("algorithm", e))?;
    let promise = subtle()?
        .import_key_with_object(
            format,
            &Uint8Array::from(bytes),
            &params,
            false,
            &Array::of1(&usage.into()),
        )
        .map_err(|e| js_err("importKey", e))?;
    let key: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|e| js_err("importKey", e))?
        .unchecked_into();
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        // Keys only change with a new isolate; the bound only guards against surprises.
        if keys.len() >= 8 {
            keys.clear();
        }
        keys.push((algorithm, bytes.to_vec(), key.clone()));
    });
    Ok(key)
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over `input` (RS256), with the App key in PKCS#8 DER.
pub async fn sign_rs256(pkcs8_der: &[u8], input: &[u8]) -> Result<Vec<u8>, String> {
    let key = import_key("pkcs8", pkcs8_der, "RSASSA-PKCS1-v1_5", "sign").await?;
    let promise = subtle()?
        .sign_with_str_and_u8_array("RSASSA-PKCS1-v1_5", &key, input)
        .map_err(|e| js_err("sign", e))?;
    let signature = JsFuture::from(promise)
        .await
        .map_err(|e| js_err("sign", e))?;
    Ok(Uint8Array::new(&signature).to_vec())
}

/// Whether `mac` is the HMAC-SHA256 of `data` under `secret`: WebCrypto's `verify`, which
/// compares in constant time.
pub async fn hmac_sha256_verify(secret: &[u8], mac: &[u8], data: &[u8]) -> Result<bool, String> {
    let key = import_key("raw", secret, "HMAC", "verify").await?;
    let promise = subtle()?
        .verify_with_str_and_u8_array_and_u8_array("HMAC", &key, mac, data)
        .map_err(|e| js_err("verify", e))?;
    let verified = JsFuture::from(promise)
        .await
        .map_err(|e| js_err("verify", e))?;
    Ok(verified.as_bool() == Some(true))
}
