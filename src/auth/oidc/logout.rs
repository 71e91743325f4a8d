//! OIDC Back-Channel Logout 1.0 (§2.6): the provider POSTs a signed
//! logout token naming a user (`sub`) and/or a session (`sid`); we check it
//! like an ID token — same keys, algorithm allow-list, issuer, audience —
//! plus what makes it a logout token: the `events` member, no `nonce`, a
//! fresh `iat` and a one-time `jti`.

use openidconnect::core::CoreJsonWebKeySet;
use serde_json::{Map, Value};

use super::jws::{self, Envelope};
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

/// Verifies `token`; returns its claims. `unknown_key` means no key of
/// `jwks` has the token's `kid` (the caller may fetch the keys again).
pub(super) fn verify_logout_token(
    token: &str,
    jwks: &CoreJsonWebKeySet,
    e: &Expect<'_>,
) -> Result<Map<String, Value>, ConnectionError> {
    let envelope = Envelope {
        what: "logout token",
        max_bytes: MAX_LOGOUT_TOKEN_BYTES,
        too_large_reason: "too_large",
        typs: &["logout+jwt", "application/logout+jwt", "jwt"],
        algs: e.algs,
    };
    let claims = jws::verify(token, jwks, &envelope)?;
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    if str_claim("iss") != Some(e.issuer) {
        return Err(fail("issuer", format!("iss {:?}", str_claim("iss"))));
    }
    let auds = jws::audiences(&claims);
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
