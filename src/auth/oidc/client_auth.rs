//! `private_key_jwt` (RFC 7523, OIDC Core §9): instead of a shared secret,
//! the client proves itself with a short-lived JWT signed by its own key,
//! whose public half the provider holds.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;

use crate::auth::ConnectionError;

pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

enum Key {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The client's signing key.
pub(crate) struct ClientKey {
    key: Key,
    kid: Option<String>,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKey(<redacted>)")
    }
}

impl ClientKey {
    /// A PKCS#8 PEM key: P-256 (ES256) or RSA (RS256).
    pub(crate) fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, ConnectionError> {
        let bad = |e: String| ConnectionError::new("config", format!("private_key: {e}"));
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let der = der.secret_pkcs8_der();
        let key = match EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
            &SystemRandom::new(),
        ) {
            Ok(k) => Key::Ec(k),
            Err(_) => Key::Rsa(
                RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| bad(format!("neither P-256 nor RSA: {e}")))?,
            ),
        };
        Ok(Self { key, kid })
    }

    /// A client assertion for `audience` (the token endpoint).
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: i64,
    ) -> Result<String, ConnectionError> {
        let jti = crate::secret::random_bytes::<16>()
            .map(hex::encode)
            .map_err(|_| ConnectionError::new("internal", "no randomness"))?;
        self.sign_claims(&json!({
            "iss": client_id, "sub": client_id, "aud": audience,
            "jti": jti, "iat": now, "exp": now + 60,
        }))
    }

    /// Sign in with Apple's `client_secret`: a JWT from the developer team
    /// (`iss`) for the Services ID (`sub`) to Apple (`aud`). Apple accepts
    /// up to six months; it is minted per token request and lives five
    /// minutes, so a leaked one is soon worthless.
    pub(crate) fn apple_client_secret(
        &self,
        team_id: &str,
        client_id: &str,
        audience: &str,
        now: i64,
    ) -> Result<String, ConnectionError> {
        self.sign_claims(&json!({
            "iss": team_id, "sub": client_id, "aud": audience,
            "iat": now, "exp": now + 300,
        }))
    }

    /// A compact JWS over `claims`, header `alg` by the key type and `kid`
    /// when the key has one.
    pub(crate) fn sign_claims(
        &self,
        claims: &serde_json::Value,
    ) -> Result<String, ConnectionError> {
        let alg = match self.key {
            Key::Ec(_) => "ES256",
            Key::Rsa(_) => "RS256",
        };
        let mut header = json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.key {
            Key::Ec(k) => k
                .sign(&rng, input.as_bytes())
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| ConnectionError::new("internal", "signing failed"))?,
            Key::Rsa(k) => {
                let mut out = vec![0u8; k.public().modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut out)
                    .map_err(|_| ConnectionError::new("internal", "signing failed"))?;
                out
            }
        };
        Ok(format!("{input}.{}", B64.encode(sig)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_assertion_verifies_with_the_public_key() {
        let der = crate::identity::generate_signing_key().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        let key = ClientKey::from_pem(&pem, Some("k1".into())).unwrap();
        let jwt = key.assertion("client", "https://op/token", 1000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://op/token");
        assert_eq!(claims["exp"], 1060);
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
                .unwrap();
        use ring::signature::KeyPair;
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        );
        let input = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(input.as_bytes(), &B64.decode(parts[2]).unwrap())
            .unwrap();
        assert!(
            ClientKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                None
            )
            .is_err()
        );
    }

    #[test]
    fn apple_client_secret_claims() {
        let der = crate::identity::generate_signing_key().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        let key = ClientKey::from_pem(&pem, Some("KEY123ABCD".into())).unwrap();
        let jwt = key
            .apple_client_secret(
                "ABCDE12345",
                "com.example.portcullis",
                "https://appleid.apple.com",
                1000,
            )
            .unwrap();
        let part = |i: usize| -> serde_json::Value {
            serde_json::from_slice(&B64.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
        };
        assert_eq!(
            part(0),
            json!({"alg": "ES256", "typ": "JWT", "kid": "KEY123ABCD"})
        );
        assert_eq!(
            part(1),
            json!({"iss": "ABCDE12345", "sub": "com.example.portcullis",
                "aud": "https://appleid.apple.com", "iat": 1000, "exp": 1300})
        );
    }
}
