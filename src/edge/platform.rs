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

fn rsassa_params() -> Result<Object, String> {
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &"RSASSA-PKCS1-v1_5".into())
        .map_err(|e| js_err("algorithm", e))?;
    Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into())
        .map_err(|e| js_err("algorithm", e))?;
    Ok(algorithm)
}

thread_local! {
    /// The imported App key, kept for the isolate's life; keyed by the DER so a rotated secret
    /// (which arrives with a new isolate anyway) is never signed with the old key.
    static APP_KEY: RefCell<Option<(Vec<u8>, CryptoKey)>> = const { RefCell::new(None) };
}

async fn import_rsa_key(pkcs8_der: &[u8]) -> Result<CryptoKey, String> {
    if let Some(key) = APP_KEY.with(|k| {
        k.borrow()
            .as_ref()
            .filter(|(der, _)| der == pkcs8_der)
            .map(|(_, key)| key.clone())
    }) {
        return Ok(key);
    }
    let data = Uint8Array::from(pkcs8_der);
    let usages = Array::of1(&"sign".into());
    let promise = subtle()?
        .import_key_with_object("pkcs8", &data, &rsassa_params()?, false, &usages)
        .map_err(|e| js_err("importKey", e))?;
    let key: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|e| js_err("importKey", e))?
        .unchecked_into();
    APP_KEY.with(|k| *k.borrow_mut() = Some((pkcs8_der.to_vec(), key.clone())));
    Ok(key)
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over `input` (RS256), with the App key in PKCS#8 DER.
pub async fn sign_rs256(pkcs8_der: &[u8], input: &[u8]) -> Result<Vec<u8>, String> {
    let key = import_rsa_key(pkcs8_der).await?;
    let promise = subtle()?
        .sign_with_str_and_u8_array("RSASSA-PKCS1-v1_5", &key, input)
        .map_err(|e| js_err("sign", e))?;
    let signature = JsFuture::from(promise)
        .await
        .map_err(|e| js_err("sign", e))?;
    Ok(Uint8Array::new(&signature).to_vec())
}

thread_local! {
    /// Imported webhook secrets (HMAC-SHA256 verify keys), kept for the isolate's life: one per
    /// configured secret (two during a rotation), keyed by the secret itself.
    static HMAC_KEYS: RefCell<Vec<(Vec<u8>, CryptoKey)>> = const { RefCell::new(Vec::new()) };
}

async fn import_hmac_key(secret: &[u8]) -> Result<CryptoKey, String> {
    if let Some(key) = HMAC_KEYS.with(|keys| {
        keys.borrow()
            .iter()
            .find(|(s, _)| s == secret)
            .map(|(_, key)| key.clone())
    }) {
        return Ok(key);
    }
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &"HMAC".into()).map_err(|e| js_err("algorithm", e))?;
    Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into())
        .map_err(|e| js_err("algorithm", e))?;
    let promise = subtle()?
        .import_key_with_object(
            "raw",
            &Uint8Array::from(secret),
            &algorithm,
            false,
            &Array::of1(&"verify".into()),
        )
        .map_err(|e| js_err("importKey", e))?;
    let key: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|e| js_err("importKey", e))?
        .unchecked_into();
    HMAC_KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        // Secrets only change with a new isolate; the bound only guards against surprises.
        if keys.len() >= 8 {
            keys.clear();
        }
        keys.push((secret.to_vec(), key.clone()));
    });
    Ok(key)
}

/// Whether `mac` is the HMAC-SHA256 of `data` under `secret`: WebCrypto's `verify`, which
/// compares in constant time.
pub async fn hmac_sha256_verify(secret: &[u8], mac: &[u8], data: &[u8]) -> Result<bool, String> {
    let key = import_hmac_key(secret).await?;
    let promise = subtle()?
        .verify_with_str_and_u8_array_and_u8_array("HMAC", &key, mac, data)
        .map_err(|e| js_err("verify", e))?;
    let verified = JsFuture::from(promise)
        .await
        .map_err(|e| js_err("verify", e))?;
    Ok(verified.as_bool() == Some(true))
}
