//! Compact JWS verification against a provider's key set, for the tokens
//! `openidconnect` does not verify for us (back-channel logout tokens,
//! client-credentials access tokens). One verifier, so the rules that keep
//! a forged token out hold for every kind alike: the size is capped before
//! anything is decoded; `crit` is refused (we understand no extension);
//! `alg` must be on the connection's allow-list, which never holds `none`
//! or HMAC (`verify::parse_algs`); the key is chosen by `kid` (a token
//! with a `kid` never falls back to a key without one); and the key's own
//! type and `alg` must fit the token's (`JsonWebKey::verify_signature`).
//! Claim checks stay with each token kind.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openidconnect::JsonWebKey;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use serde_json::{Map, Value};

use crate::auth::ConnectionError;

/// What a token kind asks of its JWS envelope.
pub(super) struct Envelope<'a> {
    /// Name in error details ("logout token", "access token").
    pub what: &'static str,
    pub max_bytes: usize,
    /// Reason when the token is over `max_bytes`.
    pub too_large_reason: &'static str,
    /// Accepted `typ` values, lower case; an absent `typ` is accepted.
    pub typs: &'a [&'a str],
    pub algs: &'a [CoreJwsSigningAlgorithm],
}

fn fail(reason: &'static str, detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new(reason, detail)
}

/// One base64url JSON-object part of a compact JWS.
pub(super) fn json_part(part: &str, what: &str) -> Result<Map<String, Value>, ConnectionError> {
    let bytes = B64
        .decode(part)
        .map_err(|e| fail("malformed", format!("{what}: {e}")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(fail("malformed", format!("{what} is not a JSON object"))),
    }
}

/// The three parts of a compact JWS, or `malformed`.
pub(super) fn split(token: &str) -> Result<[&str; 3], ConnectionError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok([h, p, s]),
        _ => Err(fail("malformed", "not a compact JWS")),
    }
}

/// The `aud` claim as a list (a single string or an array of strings).
pub(super) fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Verifies `token`'s envelope and signature against `jwks`; returns its
/// claims, not yet checked. `unknown_key` means no key of `jwks` has the
/// token's `kid` (the caller may fetch the keys again).
pub(super) fn verify(
    token: &str,
    jwks: &CoreJsonWebKeySet,
    env: &Envelope<'_>,
) -> Result<Map<String, Value>, ConnectionError> {
    if token.len() > env.max_bytes {
        return Err(fail(
            env.too_large_reason,
            format!("{} too large", env.what),
        ));
    }
    let [h, p, s] = split(token)?;
    let header = json_part(h, "header")?;
    if let Some(typ) = header.get("typ") {
        let t = typ.as_str().unwrap_or("").to_ascii_lowercase();
        if !env.typs.contains(&t.as_str()) {
            return Err(fail("malformed", format!("unexpected typ {t:?}")));
        }
    }
    if header.contains_key("crit") {
        return Err(fail("malformed", "crit header not supported"));
    }
    let alg: CoreJwsSigningAlgorithm = header
        .get("alg")
        .cloned()
        .and_then(|a| serde_json::from_value(a).ok())
        .ok_or_else(|| fail("algorithm", "missing or unknown alg"))?;
    if !env.algs.contains(&alg) {
        return Err(fail("algorithm", format!("alg {alg:?} is not allowed")));
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates: Vec<_> = jwks
        .keys()
        .iter()
        .filter(|k| match (kid, k.key_id()) {
            (Some(want), Some(have)) => have.as_str() == want,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(fail("unknown_key", format!("no key with kid {kid:?}")));
    }
    let sig = B64
        .decode(s)
        .map_err(|err| fail("malformed", format!("signature: {err}")))?;
    let input = format!("{h}.{p}");
    if !candidates
        .iter()
        .any(|k| k.verify_signature(&alg, input.as_bytes(), &sig).is_ok())
    {
        return Err(fail(
            "signature",
            format!("{} signature does not verify", env.what),
        ));
    }
    json_part(p, "payload")
}
