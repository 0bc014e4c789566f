//! Helpers for the schemes' unit tests.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use hmac::Mac;
use sluice_core::hooks::HookConfig;

use super::{Scheme, Verifier};

/// The verifier `scheme` builds from a `[hooks.t]` table written in TOML.
pub fn verifier(scheme: &dyn Scheme, toml: &str) -> Box<dyn Verifier> {
    let config = sluice_core::Config::from_toml(&format!("[hooks.t]\n{toml}")).unwrap();
    let table: &HookConfig = &config.hooks["t"];
    scheme.build("t", table).unwrap()
}

pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        })
        .collect()
}

/// HMAC-SHA256 of `parts` under `key`, as bytes.
pub fn sign(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    super::mac(key, parts).finalize().into_bytes().to_vec()
}
