//! `GET /_bench/sign?impl=webcrypto|rust|compare&n=N`: only in the `bench` build that
//! `scripts/bench` runs, never deployed. Signs `n` App JWTs with one implementation so the
//! benchmark can time pure-Rust RS256 against WebCrypto inside workerd (from outside: workerd's
//! clock does not advance during CPU work); `compare` signs the same claims both ways and says
//! whether the tokens are byte-identical.
//!
//! `GET /_bench/memory`: the size of this isolate's wasm linear memory (it grows, never shrinks),
//! so `scripts/soak` can tell the gateway's own heap from the rest of workerd's memory.

use crate::api::problem::Problem;
use crate::edge::bindings::Ctx;
use crate::edge::platform;
use crate::github::app_jwt::{assemble, native, pkcs8_der_from_pem, AppJwtClaims};

pub async fn sign(ctx: &Ctx, query: &[(String, String)]) -> Result<serde_json::Value, Problem> {
    let get = |k: &str| crate::api::routes::query_param(query, k);
    let n: i64 = get("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(0, 1000);
    let pem = ctx.secret("GITHUB_APP_PRIVATE_KEY")?;
    let der = pkcs8_der_from_pem(pem.expose())
        .map_err(|_| Problem::Misconfigured("GITHUB_APP_PRIVATE_KEY".into()))?;
    let webcrypto = |claims: AppJwtClaims| {
        let der = der.clone();
        async move {
            let input = claims.signing_input();
            let signature = platform::sign_rs256(&der, input.as_bytes())
                .await
                .map_err(|e| Problem::from(crate::edge::bindings::Internal(e)))?;
            Ok::<_, Problem>(assemble(&input, &signature))
        }
    };
    let claims = |i: i64| AppJwtClaims::new(&ctx.config.app_id, ctx.now + i);
    match get("impl") {
        Some("webcrypto") => {
            for i in 0..n {
                webcrypto(claims(i)).await?;
            }
        }
        Some("rust") => {
            let key = native::private_key(&der);
            for i in 0..n {
                native::sign(&key, &claims(i));
            }
        }
        Some("compare") => {
            let ours = webcrypto(claims(0)).await?;
            let reference = native::sign(&native::private_key(&der), &claims(0));
            return Ok(serde_json::json!({ "identical": ours == reference }));
        }
        _ => {
            return Err(Problem::BadRequest(
                "impl must be webcrypto, rust or compare".into(),
            ))
        }
    }
    Ok(serde_json::json!({ "signed": n }))
}

/// `{"wasm_memory_bytes": …}`: the current size of the module's linear memory.
pub fn memory() -> serde_json::Value {
    use wasm_bindgen::JsCast;
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    let buffer: js_sys::ArrayBuffer = memory.buffer().unchecked_into();
    serde_json::json!({ "wasm_memory_bytes": buffer.byte_length() })
}
