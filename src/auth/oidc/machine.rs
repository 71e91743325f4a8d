//! Client-credentials access tokens (machine access): a JWT the provider
//! issued to a machine client for the connection's `machine_audience`.
//! Checked like an ID token where it matters — the provider's keys (the
//! connection's JWKS cache), the connection's algorithm allow-list (never
//! `none` or HMAC), the key's type and `alg` pinned, the exact issuer —
//! plus what makes it an access token for us: `aud` names the configured
//! audience, `exp` is required, `nbf` and `iat` are not in the future
//! (all with the connection's clock skew), and a subject is named.

use openidconnect::core::CoreJsonWebKeySet;
use serde_json::{Map, Value};

use super::jws::{self, Envelope};
use super::verify::Expect;
use crate::auth::ConnectionError;

/// Largest access token accepted.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 8 * 1024;

fn fail(reason: &'static str, detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new(reason, detail)
}

/// The `iss` and audiences a token claims, before anything is verified:
/// only to find the one connection that may verify it.
pub(crate) fn unverified_issuer_and_audiences(
    token: &str,
) -> Result<(String, Vec<String>), ConnectionError> {
    if token.len() > MAX_ACCESS_TOKEN_BYTES {
        return Err(fail("malformed", "access token too large"));
    }
    let [_, p, _] = jws::split(token)?;
    let claims = jws::json_part(p, "payload")?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("issuer", "no iss"))?
        .to_owned();
    let auds = jws::audiences(&claims)
        .into_iter()
        .map(str::to_owned)
        .collect();
    Ok((iss, auds))
}

/// Verifies `token` for `audience`; returns its claims. `unknown_key`
/// means no key of `jwks` has the token's `kid` (the caller may fetch the
/// keys again).
pub(super) fn verify_access_token(
    token: &str,
    jwks: &CoreJsonWebKeySet,
    e: &Expect<'_>,
    audience: &str,
) -> Result<Map<String, Value>, ConnectionError> {
    let envelope = Envelope {
        what: "access token",
        max_bytes: MAX_ACCESS_TOKEN_BYTES,
        too_large_reason: "malformed",
        typs: &["jwt", "at+jwt", "application/at+jwt"],
        // `e.algs` never holds `none` or HMAC (`parse_algs`).
        algs: e.algs,
    };
    let claims = jws::verify(token, jwks, &envelope)?;
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    if str_claim("iss") != Some(e.issuer) {
        return Err(fail("issuer", format!("iss {:?}", str_claim("iss"))));
    }
    let auds = jws::audiences(&claims);
    if !auds.contains(&audience) {
        return Err(fail("audience", format!("aud {auds:?}")));
    }
    let time = |k: &str| -> Result<Option<i64>, ConnectionError> {
        match claims.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| fail("malformed", format!("{k} is not a number"))),
        }
    };
    match time("exp")? {
        None => return Err(fail("malformed", "no exp")),
        Some(exp) if exp + e.skew <= e.now => {
            return Err(fail("expired", format!("exp {exp} (now {})", e.now)));
        }
        Some(_) => {}
    }
    if let Some(nbf) = time("nbf")?
        && nbf - e.skew > e.now
    {
        return Err(fail("not_yet_valid", format!("nbf {nbf} (now {})", e.now)));
    }
    if let Some(iat) = time("iat")?
        && iat - e.skew > e.now
    {
        return Err(fail(
            "not_yet_valid",
            format!("iat {iat} in the future (now {})", e.now),
        ));
    }
    match str_claim("sub") {
        Some(sub) if !sub.is_empty() && sub.len() <= 256 => {}
        _ => return Err(fail("subject", "no usable sub")),
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use openidconnect::core::CoreJwsSigningAlgorithm;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://idp.example.com";
    const AUD: &str = "api://portcullis";
    const NOW: i64 = 1_700_000_000;

    fn rsa() -> &'static PKey<Private> {
        static KEY: OnceLock<PKey<Private>> = OnceLock::new();
        KEY.get_or_init(|| PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap())
    }

    fn jwks(alg: Option<&str>) -> CoreJsonWebKeySet {
        let r = rsa().rsa().unwrap();
        let mut k = json!({"kty": "RSA", "use": "sig", "kid": "k1",
            "n": B64.encode(r.n().to_vec()), "e": B64.encode(r.e().to_vec())});
        if let Some(a) = alg {
            k["alg"] = json!(a);
        }
        serde_json::from_value(json!({ "keys": [k] })).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": ISSUER, "aud": [AUD, "other"], "sub": "client-1",
            "iat": NOW, "nbf": NOW, "exp": NOW + 300, "client_id": "client-1"})
    }

    fn jws(header: &Value, claims: &Value, key: &PKey<Private>) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
        s.update(input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(s.sign_to_vec().unwrap()))
    }

    fn rs256(claims: &Value) -> String {
        jws(
            &json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}),
            claims,
            rsa(),
        )
    }

    fn check(token: &str, keys: &CoreJsonWebKeySet) -> Result<Map<String, Value>, &'static str> {
        let algs = [
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        ];
        let e = Expect {
            client_id: "portcullis",
            issuer: ISSUER,
            algs: &algs,
            trusted_audiences: &[],
            skew: 60,
            now: NOW,
        };
        verify_access_token(token, keys, &e, AUD).map_err(|e| e.reason)
    }

    #[test]
    fn a_good_token_verifies() {
        let claims = check(&rs256(&claims()), &jwks(Some("RS256"))).unwrap();
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(
            unverified_issuer_and_audiences(&rs256(&claims_value())).unwrap(),
            (ISSUER.to_owned(), vec![AUD.to_owned(), "other".to_owned()])
        );
    }

    fn claims_value() -> Value {
        claims()
    }

    #[test]
    fn each_rule_has_its_reason() {
        let keys = jwks(None);
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            rs256(&c)
        };
        assert_eq!(
            check(&with("iss", json!("https://evil")), &keys),
            Err("issuer")
        );
        assert_eq!(
            check(&with("aud", json!("portcullis")), &keys),
            Err("audience")
        );
        assert_eq!(check(&with("exp", json!(NOW - 61)), &keys), Err("expired"));
        // within the skew
        assert!(check(&with("exp", json!(NOW - 30)), &keys).is_ok());
        assert_eq!(
            check(&with("nbf", json!(NOW + 61)), &keys),
            Err("not_yet_valid")
        );
        assert_eq!(
            check(&with("iat", json!(NOW + 61)), &keys),
            Err("not_yet_valid")
        );
        assert_eq!(check(&with("exp", json!("soon")), &keys), Err("malformed"));
        assert_eq!(check(&with("sub", json!("")), &keys), Err("subject"));
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(check(&rs256(&no_exp), &keys), Err("malformed"));
        // tampered payload
        let good = rs256(&claims());
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(with_sub("admin").to_string()),
            parts[2]
        );
        assert_eq!(check(&forged, &keys), Err("signature"));
        // an unknown kid
        let other_kid = jws(&json!({"alg": "RS256", "kid": "k9"}), &claims(), rsa());
        assert_eq!(check(&other_kid, &keys), Err("unknown_key"));
        // a typ that is not a JWT access token
        let logout = jws(
            &json!({"alg": "RS256", "kid": "k1", "typ": "logout+jwt"}),
            &claims(),
            rsa(),
        );
        assert_eq!(check(&logout, &keys), Err("malformed"));
    }

    fn with_sub(sub: &str) -> Value {
        let mut c = claims();
        c["sub"] = json!(sub);
        c
    }

    #[test]
    fn algorithms_are_pinned() {
        let keys = jwks(None);
        // alg none, with or without a signature
        let header = B64.encode(json!({"alg": "none", "kid": "k1"}).to_string());
        let payload = B64.encode(claims().to_string());
        assert_eq!(
            check(&format!("{header}.{payload}."), &keys),
            Err("algorithm")
        );
        // HS256 keyed with anything: never on the list
        let hs = B64.encode(json!({"alg": "HS256", "kid": "k1"}).to_string());
        assert_eq!(
            check(&format!("{hs}.{payload}.AAAA"), &keys),
            Err("algorithm")
        );
        // ES256 on the list, but the key with this kid is RSA
        let ec = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap();
        let es = jws(&json!({"alg": "ES256", "kid": "k1"}), &claims(), &ec);
        assert_eq!(check(&es, &keys), Err("signature"));
        // an RSA key pinned to RS384 does not verify RS256
        assert_eq!(
            check(&rs256(&claims()), &jwks(Some("RS384"))),
            Err("signature")
        );
        // not JWS at all
        for bad in ["", "a.b", "a.b.c.d", "!!!.e30.AA"] {
            assert_eq!(check(bad, &keys), Err("malformed"), "{bad}");
        }
        assert_eq!(
            check(&"a".repeat(MAX_ACCESS_TOKEN_BYTES + 1), &keys),
            Err("malformed")
        );
    }
}
