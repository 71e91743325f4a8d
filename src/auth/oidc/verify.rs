//! ID token checks. openidconnect verifies the signature against the
//! provider's keys with our algorithm allow-list, the issuer, the audience
//! (extra audiences only when trusted), `exp` and the nonce; here we add
//! what it leaves to the caller: skew on `exp`, a bounded `iat`, `azp`, and
//! `at_hash`. Every failure maps to one closed `reason`.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, TimeZone, Utc};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AccessTokenHash, ClaimsVerificationError, ClientId, IdTokenVerifier, IssuerUrl,
    Nonce, SignatureVerificationError,
};
use serde_json::{Map, Value};

use crate::auth::ConnectionError;

/// How old an ID token may be when it reaches us (on top of the skew): it
/// is minted by the token endpoint a moment before.
pub const MAX_ID_TOKEN_AGE_SECONDS: i64 = 600;

pub struct Expect<'a> {
    pub client_id: &'a str,
    pub issuer: &'a str,
    pub algs: &'a [CoreJwsSigningAlgorithm],
    pub trusted_audiences: &'a [String],
    pub skew: i64,
    pub now: i64,
}

/// Parses the algorithm names of the configuration (validated already).
pub fn parse_algs(names: &[String]) -> Vec<CoreJwsSigningAlgorithm> {
    names
        .iter()
        .filter_map(|n| serde_json::from_value(Value::String(n.clone())).ok())
        .filter(|a: &CoreJwsSigningAlgorithm| {
            !matches!(
                a,
                CoreJwsSigningAlgorithm::None
                    | CoreJwsSigningAlgorithm::HmacSha256
                    | CoreJwsSigningAlgorithm::HmacSha384
                    | CoreJwsSigningAlgorithm::HmacSha512
            )
        })
        .collect()
}

fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// A verifier over `jwks`. It is a *public-client* verifier on purpose:
/// it never holds the client secret, so no HMAC key exists to verify with.
pub fn verifier<'a>(
    e: &Expect<'a>,
    jwks: CoreJsonWebKeySet,
) -> Result<IdTokenVerifier<'a, CoreJsonWebKey>, ConnectionError> {
    let skew = e.skew;
    let now = e.now;
    let trusted: HashSet<String> = e.trusted_audiences.iter().cloned().collect();
    let issuer = IssuerUrl::new(e.issuer.to_owned())
        .map_err(|err| ConnectionError::new("config", format!("issuer: {err}")))?;
    Ok(
        IdTokenVerifier::new_public_client(ClientId::new(e.client_id.to_owned()), issuer, jwks)
            .set_allowed_algs(e.algs.iter().cloned())
            .require_issuer_match(true)
            .require_audience_match(true)
            .set_other_audience_verifier_fn(move |aud| trusted.contains(aud.as_str()))
            // `exp` with skew: the library compares `now >= exp`.
            .set_time_fn(move || ts(now - skew))
            .set_issue_time_verifier_fn(move |iat| {
                let iat = iat.timestamp();
                if iat > now + skew {
                    Err(format!("iat {iat} is in the future (now {now})"))
                } else if iat < now - skew - MAX_ID_TOKEN_AGE_SECONDS {
                    Err(format!("iat {iat} is too old (now {now})"))
                } else {
                    Ok(())
                }
            }),
    )
}

/// The closed reason for a library verification error.
pub fn reason(e: &ClaimsVerificationError) -> &'static str {
    match e {
        ClaimsVerificationError::Expired(m) if m.contains("future") => "not_yet_valid",
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidNonce(_) => "nonce",
        ClaimsVerificationError::SignatureVerification(s) => match s {
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_)
            | SignatureVerificationError::NoSignature => "algorithm",
            SignatureVerificationError::NoMatchingKey => "unknown_key",
            _ => "signature",
        },
        _ => "malformed",
    }
}

/// Verifies `token`; on success returns the verified claims as JSON (every
/// claim, including the ones openidconnect has no field for).
pub fn verify(
    token: &CoreIdToken,
    jwks: &CoreJsonWebKeySet,
    e: &Expect<'_>,
    nonce: &Nonce,
    access_token: Option<&AccessToken>,
) -> Result<Map<String, Value>, ConnectionError> {
    let v = verifier(e, jwks.clone())?;
    let claims: &CoreIdTokenClaims = token
        .claims(&v, nonce)
        .map_err(|err| ConnectionError::new(reason(&err), err.to_string()))?;
    // azp (Core §3.1.3.7 items 4-5): with several audiences it must be
    // present; when present it must be us.
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != e.client_id => {
            return Err(ConnectionError::new(
                "azp",
                format!("azp {:?} is not this client", azp.as_str()),
            ));
        }
        None if claims.audiences().len() > 1 => {
            return Err(ConnectionError::new("azp", "several audiences and no azp"));
        }
        _ => {}
    }
    if let (Some(expected), Some(at)) = (claims.access_token_hash(), access_token) {
        let alg = token
            .signing_alg()
            .map_err(|err| ConnectionError::new("algorithm", err.to_string()))?;
        let key = token
            .signing_key(&v)
            .map_err(|err| ConnectionError::new("signature", err.to_string()))?;
        let actual = AccessTokenHash::from_token(at, alg, key)
            .map_err(|err| ConnectionError::new("at_hash", err.to_string()))?;
        if actual != *expected {
            return Err(ConnectionError::new(
                "at_hash",
                "at_hash does not match the access token",
            ));
        }
    }
    payload(&token.to_string())
}

/// The payload of a compact JWS as a JSON object. Only call it on a token
/// whose signature was verified.
pub fn payload(compact: &str) -> Result<Map<String, Value>, ConnectionError> {
    let part = compact
        .split('.')
        .nth(1)
        .ok_or_else(|| ConnectionError::new("malformed", "not a compact JWS"))?;
    let bytes = B64
        .decode(part)
        .map_err(|err| ConnectionError::new("malformed", format!("payload: {err}")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ConnectionError::new(
            "malformed",
            "payload is not a JSON object",
        )),
    }
}
