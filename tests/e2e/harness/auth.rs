//! Credentials the suite needs: the local secrets from `.dev.vars`, portal JWTs (valid and
//! deliberately broken ones), state tokens minted outside the worker, and App JWTs for the
//! harness's own calls to the emulator.

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use onecode_edge::github::app_jwt::{self, AppJwtClaims};
use serde_json::json;
use sha2::{Sha256, Sha512};

/// The worker's secrets as `wrangler dev` reads them from `.dev.vars` (dotenv syntax).
#[derive(Clone)]
pub struct DevVars(HashMap<String, String>);

impl DevVars {
    pub fn load(path: &Path) -> Result<DevVars, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(DevVars::parse(&text))
    }

    fn parse(text: &str) -> DevVars {
        let mut vars = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
                value[1..value.len() - 1].replace("\\n", "\n")
            } else if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
                value[1..value.len() - 1].to_string()
            } else {
                value.to_string()
            };
            vars.insert(name.trim().to_string(), value);
        }
        DevVars(vars)
    }

    pub fn get(&self, name: &str) -> Result<&str, String> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!(".dev.vars has no {name}"))
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn b64_json(value: &serde_json::Value) -> String {
    B64.encode(value.to_string())
}

/// A compact JWT from raw header and claims, MAC'd with HMAC-SHA256 under `secret`.
pub fn hs256(secret: &str, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// The same with HMAC-SHA512 (an algorithm the gateway must refuse even with the right key).
pub fn hs512(secret: &str, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// Portal claims: `tid`, `sub`, `iat`, `exp`.
pub fn portal_claims(tenant: &str, technician: &str, iat: i64, exp: i64) -> serde_json::Value {
    json!({ "tid": tenant, "sub": technician, "iat": iat, "exp": exp })
}

pub fn hs256_header() -> serde_json::Value {
    json!({ "alg": "HS256", "typ": "JWT" })
}

/// A valid portal JWT (HS256 under `secret`, five minutes left).
pub fn portal_jwt(secret: &str, tenant: &str, technician: &str) -> String {
    let now = now();
    hs256(
        secret,
        &hs256_header(),
        &portal_claims(tenant, technician, now, now + 300),
    )
}

/// `alg: none` with an empty signature.
pub fn unsigned_jwt(claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.",
        b64_json(&json!({ "alg": "none", "typ": "JWT" })),
        b64_json(claims)
    )
}

/// Signs App JWTs natively (the worker uses WebCrypto; the emulator accepts both).
pub struct AppSigner {
    app_id: String,
    key: jwt_compact::alg::RsaPrivateKey,
}

impl AppSigner {
    pub fn new(app_id: &str, pem: &str) -> Result<AppSigner, String> {
        let der = app_jwt::pkcs8_der_from_pem(pem)
            .map_err(|e| format!("GITHUB_APP_PRIVATE_KEY in .dev.vars: {e:?}"))?;
        Ok(AppSigner {
            app_id: app_id.to_string(),
            key: app_jwt::native::private_key(&der),
        })
    }

    pub fn jwt(&self) -> String {
        self.sign(&AppJwtClaims::new(&self.app_id, now()))
    }

    /// The App JWT of exactly these claims, signed in pure Rust (`jwt-compact`).
    pub fn sign(&self, claims: &AppJwtClaims) -> String {
        app_jwt::native::sign(&self.key, claims)
    }
}

/// The `state` query parameter of a URL.
pub fn state_of(url: &str) -> String {
    query_param(url, "state").unwrap_or_else(|| panic!("no state in {url}"))
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
