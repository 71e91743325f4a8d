//! ID token checks. openidconnect verifies the signature against the
//! provider's keys with our algorithm allow-list, the issuer, the audience
//! (extra audiences only when trusted), `exp` and the nonce; here we add
//! what it leaves to the caller: skew on `exp`, a bounded `iat`, `azp`, and
//! `at_hash`. Every failure maps to one closed `reason`.

use std::collections::HashSet;

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
pub(super) const MAX_ID_TOKEN_AGE_SECONDS: i64 = 600;

pub(super) struct Expect<'a> {
    pub client_id: &'a str,
    pub issuer: &'a str,
    pub algs: &'a [CoreJwsSigningAlgorithm],
    pub trusted_audiences: &'a [String],
    pub skew: i64,
    pub now: i64,
}

/// Parses the algorithm names of the configuration (validated already).
pub(super) fn parse_algs(names: &[String]) -> Vec<CoreJwsSigningAlgorithm> {
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
pub(super) fn verifier<'a>(
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
pub(super) fn reason(e: &ClaimsVerificationError) -> &'static str {
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
pub(super) fn verify(
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
pub(super) fn payload(compact: &str) -> Result<Map<String, Value>, ConnectionError> {
    let [_, p, _] = super::jws::split(compact)?;
    super::jws::json_part(p, "payload")
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use std::sync::OnceLock;

    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://idp.example.com";
    const CLIENT: &str = "portcullis";
    const NOW: i64 = 1_700_000_000;
    const SKEW: i64 = 60;

    /// One RSA key for the whole module (generating one is the slow part).
    fn key() -> &'static PKey<Private> {
        static KEY: OnceLock<PKey<Private>> = OnceLock::new();
        KEY.get_or_init(|| PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap())
    }

    fn jwks() -> CoreJsonWebKeySet {
        let rsa = key().rsa().unwrap();
        serde_json::from_value(json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
            "n": B64.encode(rsa.n().to_vec()), "e": B64.encode(rsa.e().to_vec()),
        }]}))
        .unwrap()
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": CLIENT, "sub": "u1", "nonce": "n1",
            "iat": NOW, "exp": NOW + 300, "email": "a@acme.com", "custom": "kept",
        })
    }

    /// An RS256 JWT over `claims` (`kid` in the header).
    fn sign(claims: &Value, kid: &str) -> CoreIdToken {
        let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let mut s = Signer::new(MessageDigest::sha256(), key()).unwrap();
        s.update(input.as_bytes()).unwrap();
        let sig = B64.encode(s.sign_to_vec().unwrap());
        format!("{input}.{sig}").parse().unwrap()
    }

    fn with(change: impl FnOnce(&mut Map<String, Value>)) -> CoreIdToken {
        let mut c = claims();
        change(c.as_object_mut().unwrap());
        sign(&c, "k1")
    }

    fn expect<'a>(algs: &'a [CoreJwsSigningAlgorithm], trusted: &'a [String]) -> Expect<'a> {
        Expect {
            client_id: CLIENT,
            issuer: ISSUER,
            algs,
            trusted_audiences: trusted,
            skew: SKEW,
            now: NOW,
        }
    }

    const RS256: &[CoreJwsSigningAlgorithm] = &[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256];

    fn check(token: &CoreIdToken) -> Result<Map<String, Value>, &'static str> {
        verify(
            token,
            &jwks(),
            &expect(RS256, &[]),
            &Nonce::new("n1".into()),
            None,
        )
        .map_err(|e| e.reason)
    }

    #[test]
    fn a_valid_token_yields_every_claim() {
        let c = check(&with(|_| {})).unwrap();
        assert_eq!(c.get("sub"), Some(&json!("u1")));
        assert_eq!(c.get("custom"), Some(&json!("kept")));
    }

    #[test]
    fn refusals_name_their_reason() {
        let nonce = Nonce::new("n1".into());
        let t = with(|_| {});
        let other_nonce = verify(
            &t,
            &jwks(),
            &expect(RS256, &[]),
            &Nonce::new("n2".into()),
            None,
        );
        assert_eq!(other_nonce.unwrap_err().reason, "nonce");
        assert_eq!(
            check(&with(|c| {
                c.insert("aud".into(), json!("someone-else"));
            })),
            Err("audience")
        );
        assert_eq!(
            check(&with(|c| {
                c.insert("iss".into(), json!("https://evil.example.com"));
            })),
            Err("issuer")
        );
        assert_eq!(check(&sign(&claims(), "unknown-kid")), Err("unknown_key"));
        let mut forged = with(|_| {}).to_string();
        forged.truncate(forged.len() - 4);
        forged.push_str("AAAA");
        assert_eq!(check(&forged.parse().unwrap()), Err("signature"));
        // RS256 is not on this connection's list.
        let es_only = [CoreJwsSigningAlgorithm::EcdsaP256Sha256];
        let r = verify(&t, &jwks(), &expect(&es_only, &[]), &nonce, None);
        assert_eq!(r.unwrap_err().reason, "algorithm");
    }

    /// `exp` and `iat` with the configured skew, at the exact edges.
    #[test]
    fn the_time_window_and_its_edges() {
        let at = |exp: i64, iat: i64| {
            check(&with(|c| {
                c.insert("exp".into(), json!(exp));
                c.insert("iat".into(), json!(iat));
            }))
            .map(|_| ())
        };
        // expired, but within the skew
        assert_eq!(at(NOW - SKEW + 1, NOW - 100), Ok(()));
        assert_eq!(at(NOW - SKEW, NOW - 100), Err("expired"));
        // issued in the future: tolerated up to the skew
        assert_eq!(at(NOW + 900, NOW + SKEW), Ok(()));
        assert_eq!(at(NOW + 900, NOW + SKEW + 1), Err("not_yet_valid"));
        // issued long ago: up to the maximum age plus the skew
        let oldest = NOW - SKEW - MAX_ID_TOKEN_AGE_SECONDS;
        assert_eq!(at(NOW + 900, oldest), Ok(()));
        assert_eq!(at(NOW + 900, oldest - 1), Err("expired"));
    }

    /// Core §3.1.3.7: `azp`, when present, is us; several audiences need it.
    #[test]
    fn authorized_party() {
        let trusted = ["other-api".to_owned()];
        let nonce = Nonce::new("n1".into());
        let two = |azp: Option<&str>| {
            let t = with(|c| {
                c.insert("aud".into(), json!([CLIENT, "other-api"]));
                if let Some(a) = azp {
                    c.insert("azp".into(), json!(a));
                }
            });
            verify(&t, &jwks(), &expect(RS256, &trusted), &nonce, None)
                .map(|_| ())
                .map_err(|e| e.reason)
        };
        assert_eq!(two(Some(CLIENT)), Ok(()));
        assert_eq!(two(None), Err("azp"));
        assert_eq!(two(Some("other-api")), Err("azp"));
        // one audience: azp optional, but when present it must be us
        assert_eq!(
            check(&with(|c| {
                c.insert("azp".into(), json!(CLIENT));
            }))
            .map(|_| ()),
            Ok(())
        );
        assert_eq!(
            check(&with(|c| {
                c.insert("azp".into(), json!("other-api"));
            }))
            .map(|_| ()),
            Err("azp")
        );
    }

    #[test]
    fn at_hash_binds_the_access_token() {
        let at = AccessToken::new("access-token-1".into());
        let digest = ring::digest::digest(&ring::digest::SHA256, b"access-token-1");
        let hash = B64.encode(&digest.as_ref()[..16]);
        let t = with(|c| {
            c.insert("at_hash".into(), json!(hash));
        });
        let nonce = Nonce::new("n1".into());
        let e = expect(RS256, &[]);
        assert!(verify(&t, &jwks(), &e, &nonce, Some(&at)).is_ok());
        let other = AccessToken::new("access-token-2".into());
        let r = verify(&t, &jwks(), &e, &nonce, Some(&other));
        assert_eq!(r.unwrap_err().reason, "at_hash");
    }

    #[test]
    fn only_asymmetric_algorithms_are_configurable() {
        let names = ["RS256", "HS256", "none", "ES256", "HS512", "bogus"].map(String::from);
        assert_eq!(
            parse_algs(&names),
            [
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256
            ]
        );
    }

    #[test]
    fn payload_is_the_claims_object() {
        let p = payload(&format!("x.{}.y", B64.encode(r#"{"a":1}"#))).unwrap();
        assert_eq!(p.get("a"), Some(&json!(1)));
        for bad in [
            "no-dots".to_owned(),
            "x.!!.y".to_owned(),
            format!("x.{}.y", B64.encode("[1]")),
        ] {
            assert_eq!(payload(&bad).unwrap_err().reason, "malformed", "{bad}");
        }
    }
}
