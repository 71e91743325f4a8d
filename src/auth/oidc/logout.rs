//! OIDC Back-Channel Logout 1.0 (§2.6): the provider POSTs a signed
//! logout token naming a user (`sub`) and/or a session (`sid`); we check it
//! like an ID token — same keys, algorithm allow-list, issuer, audience —
//! plus what makes it a logout token: the `events` member, no `nonce`, a
//! fresh `iat` and a one-time `jti`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openidconnect::JsonWebKey;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use serde_json::{Map, Value};

use super::verify::Expect;
use crate::auth::ConnectionError;

pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// One-time store kind for logout token ids.
pub const JTI_KIND: &str = "oidc-logout-jti";
/// How old a logout token may be (on top of the clock skew).
pub(super) const MAX_LOGOUT_TOKEN_AGE_SECONDS: i64 = 300;
/// Largest logout token accepted.
pub const MAX_LOGOUT_TOKEN_BYTES: usize = 16 * 1024;

fn fail(reason: &'static str, detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new(reason, detail)
}

fn json_part(part: &str, what: &str) -> Result<Map<String, Value>, ConnectionError> {
    let bytes = B64
        .decode(part)
        .map_err(|e| fail("malformed", format!("{what}: {e}")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(fail("malformed", format!("{what} is not a JSON object"))),
    }
}

/// Verifies `token`; returns its claims. `unknown_key` means no key of
/// `jwks` has the token's `kid` (the caller may fetch the keys again).
pub(super) fn verify_logout_token(
    token: &str,
    jwks: &CoreJsonWebKeySet,
    e: &Expect<'_>,
) -> Result<Map<String, Value>, ConnectionError> {
    if token.len() > MAX_LOGOUT_TOKEN_BYTES {
        return Err(fail("too_large", "logout token too large"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err(fail("malformed", "not a compact JWS"));
    };
    let header = json_part(h, "header")?;
    if let Some(typ) = header.get("typ") {
        let t = typ.as_str().unwrap_or("").to_ascii_lowercase();
        if !matches!(t.as_str(), "logout+jwt" | "application/logout+jwt" | "jwt") {
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
    if !e.algs.contains(&alg) {
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
        return Err(fail("signature", "logout token signature does not verify"));
    }
    let claims = json_part(p, "payload")?;
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    if str_claim("iss") != Some(e.issuer) {
        return Err(fail("issuer", format!("iss {:?}", str_claim("iss"))));
    }
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !auds.contains(&e.client_id)
        || auds
            .iter()
            .any(|a| *a != e.client_id && !e.trusted_audiences.iter().any(|t| t == a))
    {
        return Err(fail("audience", format!("aud {auds:?}")));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| fail("malformed", "no iat"))?;
    if iat > e.now + e.skew {
        return Err(fail("not_yet_valid", format!("iat {iat} in the future")));
    }
    if iat < e.now - e.skew - MAX_LOGOUT_TOKEN_AGE_SECONDS {
        return Err(fail("expired", format!("iat {iat} too old")));
    }
    if let Some(exp) = claims.get("exp") {
        match exp.as_i64() {
            Some(exp) if exp + e.skew > e.now => {}
            _ => return Err(fail("expired", format!("exp {exp}"))),
        }
    }
    match str_claim("jti") {
        Some(j) if !j.is_empty() && j.len() <= 256 => {}
        _ => return Err(fail("malformed", "no usable jti")),
    }
    let event_ok = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|ev| ev.get(EVENT))
        .is_some_and(Value::is_object);
    if !event_ok {
        return Err(fail(
            "malformed",
            "events lacks the back-channel logout event",
        ));
    }
    if claims.contains_key("nonce") {
        return Err(fail("malformed", "a logout token must not carry a nonce"));
    }
    let sub = str_claim("sub").filter(|s| !s.is_empty());
    let sid = str_claim("sid").filter(|s| !s.is_empty());
    if sub.is_none() && sid.is_none() {
        return Err(fail("malformed", "neither sub nor sid"));
    }
    Ok(claims)
}
