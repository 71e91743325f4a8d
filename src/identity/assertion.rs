//! `X-Portcullis-Assertion`: an ES256 JWT (RFC 7519/7515) over the principal,
//! so an app can verify identity cryptographically instead of trusting that
//! nothing but Portcullis can reach it.
//!
//! The JWS is assembled here around ring's ECDSA P-256 signer — the same
//! crypto provider rustls already uses — rather than pulling a second crypto
//! stack in through a JWT crate. Tests verify the output with the independent
//! `jsonwebtoken` crate against the published JWKS.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;

use super::principal::Principal;

/// Machine credentials whose assertion is kept (least recently used go).
const KEYED_SLOTS: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("signing key is not a PKCS#8 PEM or DER P-256 key: {0}")]
    BadKey(String),
    #[error("signing failed")]
    Sign,
}

/// Generates a fresh P-256 key as PKCS#8 DER (what the store keeps).
pub fn generate_signing_key() -> Result<Vec<u8>, AssertionError> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| AssertionError::Sign)
}

/// One holder's last assertion. A session keeps its own (in the
/// [`ActiveSession`](crate::session::ActiveSession) the session cache
/// holds), so the hot path signs once per half lifetime rather than per
/// request, and the assertion lives and dies with the cached session: no
/// second cache keyed by the session id, no second copy of that key, and
/// nothing to invalidate when a session ends. The price: a session refilled
/// from the store (every `cache_ttl_seconds`, 30 s by default) starts with
/// an empty slot, so with `assertion_lifetime_seconds` above twice the
/// cache TTL it signs more often than the lifetime would allow (at the
/// defaults, 60 s, the two coincide). Machine callers, which have no
/// session object, use the signer's keyed slots ([`AssertionSigner::slot`]).
///
/// A token is sent again only in the first half of its lifetime; after
/// that the slot's ~600 bytes are dead weight until the holder's next
/// request, so the session cache's housekeeping empties such slots
/// ([`AssertionSlot::release_stale`]): a cache of mostly idle sessions
/// keeps no tokens.
#[derive(Debug, Default)]
pub struct AssertionSlot(ArcSwapOption<Signed>);

impl AssertionSlot {
    /// Empties the slot if its token is no longer sent again at `now`
    /// (unix seconds); the next request signs a fresh one, as it would
    /// have anyway.
    pub fn release_stale(&self, now: i64) {
        if self.0.load().as_ref().is_some_and(|s| now >= s.renew_at) {
            self.0.rcu(|current| match current {
                Some(s) if now >= s.renew_at => None,
                other => other.clone(),
            });
        }
    }
}

/// A signed assertion: who signed it, until when it is sent again, whom it
/// describes.
#[derive(Debug)]
struct Signed {
    /// [`AssertionSigner::id`]: a reload may change the key, issuer,
    /// audience or copied claims, so another signer's token is never reused.
    signer: u64,
    /// Unix seconds from which the token is not sent again: half its
    /// lifetime, so the app never receives one about to expire.
    renew_at: i64,
    /// The token as the header value it is sent as: checked once when
    /// signed, then cloned per request by reference count (a `&str` made
    /// into a `HeaderValue` per request is a byte check and a copy of
    /// ~600 bytes each time).
    token: HeaderValue,
    principal: Arc<Principal>,
}

/// Distinct per signer made in this process.
static SIGNERS: AtomicU64 = AtomicU64::new(0);

/// Signs assertions and publishes the matching JWKS.
pub struct AssertionSigner {
    id: u64,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
    jwk: serde_json::Value,
    issuer: String,
    audience: String,
    lifetime: u64,
    /// IdP claims copied in as top-level claims (`[headers]
    /// assertion_claims`).
    claims: Vec<String>,
    /// Slots of machine callers, by credential (service-account key id,
    /// hash of a machine JWT); sessions hold their own slot.
    keyed: moka::sync::Cache<String, Arc<AssertionSlot>>,
    /// Told how long each signature took (the metrics' histogram). Only
    /// signing is timed: a request served a held token reads no clock.
    on_sign: Option<Box<dyn Fn(Duration) + Send + Sync>>,
}

impl AssertionSigner {
    /// `key` is PKCS#8 DER or PEM.
    pub fn new(
        key: &[u8],
        issuer: &str,
        audience: &str,
        lifetime_seconds: u64,
    ) -> Result<Self, AssertionError> {
        let der: Vec<u8> = if key.starts_with(b"-----BEGIN") {
            PrivatePkcs8KeyDer::from_pem_slice(key)
                .map_err(|e| AssertionError::BadKey(e.to_string()))?
                .secret_pkcs8_der()
                .to_vec()
        } else {
            key.to_vec()
        };
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| AssertionError::BadKey(e.to_string()))?;
        let public = key.public_key().as_ref();
        // Uncompressed SEC1 point: 0x04 || X(32) || Y(32).
        if public.len() != 65 {
            return Err(AssertionError::BadKey(
                "unexpected public key encoding".into(),
            ));
        }
        let (x, y) = (B64.encode(&public[1..33]), B64.encode(&public[33..]));
        // RFC 7638 thumbprint as kid: stable across restarts and replicas.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"});
        let half = Duration::from_secs(lifetime_seconds.div_ceil(2).max(1));
        Ok(Self {
            id: SIGNERS.fetch_add(1, Ordering::Relaxed),
            key,
            rng,
            kid,
            jwk,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetime: lifetime_seconds,
            claims: Vec::new(),
            on_sign: None,
            keyed: moka::sync::Cache::builder()
                .max_capacity(KEYED_SLOTS)
                .time_to_live(half)
                .build(),
        })
    }

    /// Copies these of a principal's claims into its assertions: one value
    /// as a string, several as an array. Configuration validation keeps
    /// them apart from the claims set here.
    pub fn with_claims(mut self, names: &[String]) -> Self {
        self.claims = names.to_vec();
        self
    }

    /// `observe` gets the time of every signature [`Self::assertion_in`]
    /// makes (not of tokens it hands out again).
    pub fn observe_signing(mut self, observe: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.on_sign = Some(Box::new(observe));
        self
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document served at `/.portcullis/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        json!({ "keys": [self.jwk.clone()] })
    }

    /// A signed assertion for `p`, reused from `slot` while at least half
    /// its lifetime remains and only for the principal it was signed for: a
    /// session's principal changes when the directory does (its cache entry
    /// is refilled), and the app must never get a token naming yesterday's
    /// groups. The same `Arc` is the cheap test; an equal principal in a new
    /// `Arc` keeps the token too (a machine caller's principal is rebuilt
    /// per request; a session's is the one its slot sits beside).
    pub fn assertion_in(
        &self,
        slot: &AssertionSlot,
        p: &Arc<Principal>,
        now: i64,
    ) -> Result<HeaderValue, AssertionError> {
        if let Some(signed) = &*slot.0.load()
            && signed.signer == self.id
            && now < signed.renew_at
        {
            if Arc::ptr_eq(&signed.principal, p) {
                return Ok(signed.token.clone());
            }
            if *signed.principal == **p {
                slot.0.store(Some(Arc::new(Signed {
                    signer: self.id,
                    renew_at: signed.renew_at,
                    token: signed.token.clone(),
                    principal: p.clone(),
                })));
                return Ok(signed.token.clone());
            }
        }
        let started = std::time::Instant::now();
        let token = self.sign_value(p, now)?;
        if let Some(observe) = &self.on_sign {
            observe(started.elapsed());
        }
        slot.0.store(Some(Arc::new(Signed {
            signer: self.id,
            renew_at: now + self.lifetime as i64 - (self.lifetime as i64) / 2,
            token: token.clone(),
            principal: p.clone(),
        })));
        Ok(token)
    }

    /// The slot of a machine caller's credential (`key`): such callers
    /// have no session object to hold one.
    pub fn slot(&self, key: &str) -> Arc<AssertionSlot> {
        self.keyed.get_with_by_ref(key, Default::default)
    }

    /// A fresh assertion as a header value, marked sensitive (a bearer
    /// credential to whoever holds it until it expires).
    ///
    /// The bytes are copied into an allocation of exactly their length. The
    /// signed `String` has spare capacity, and shrinking it does not help:
    /// mimalloc shrinks a block in place when the new size is at least half
    /// the old, so a ~600-byte token kept a ~1 KiB block, ~400 bytes wasted
    /// in every active session (+27 MB at 100,000, measured when the token
    /// was first kept this way and reverted, 855c657).
    fn sign_value(&self, p: &Principal, now: i64) -> Result<HeaderValue, AssertionError> {
        let token = self.sign(p, now)?;
        let mut value =
            HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(token.as_bytes()))
                .map_err(|_| AssertionError::Sign)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Signs a fresh assertion.
    pub fn sign(&self, p: &Principal, now: i64) -> Result<String, AssertionError> {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": p.user_id,
            "email": p.email,
            "name": p.name,
            "groups": p.groups,
            "roles": p.roles,
            "tenant": p.tenant,
            "principal_type": p.kind.as_str(),
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.lifetime as i64,
        });
        if let Some(obj) = claims.as_object_mut() {
            // How the user authenticated (step-up), when known.
            if let Some(acr) = &p.auth.acr {
                obj.insert("acr".into(), json!(acr));
            }
            if !p.auth.amr.is_empty() {
                obj.insert("amr".into(), json!(p.auth.amr));
            }
            if let Some(t) = p.auth.auth_time {
                obj.insert("auth_time".into(), json!(t));
            }
            for name in &self.claims {
                let value = match p.claims.get(name).map(Vec::as_slice) {
                    None | Some([]) => continue,
                    Some([one]) => json!(one),
                    Some(many) => json!(many),
                };
                obj.entry(name.clone()).or_insert(value);
            }
        }
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| AssertionError::Sign)?;
        Ok(format!("{signing_input}.{}", B64.encode(sig.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same token object (its bytes shared), not just equal text.
    fn same(a: &HeaderValue, b: &HeaderValue) -> bool {
        a.as_bytes().as_ptr() == b.as_bytes().as_ptr()
    }

    #[test]
    fn key_round_trip_and_stable_kid() {
        let der = generate_signing_key().unwrap();
        let a = AssertionSigner::new(&der, "https://x", "app", 60).unwrap();
        let b = AssertionSigner::new(&der, "https://x", "app", 60).unwrap();
        assert_eq!(a.kid(), b.kid());
        let other =
            AssertionSigner::new(&generate_signing_key().unwrap(), "https://x", "app", 60).unwrap();
        assert_ne!(a.kid(), other.kid());
        assert!(AssertionSigner::new(b"garbage", "i", "a", 60).is_err());
        assert!(
            AssertionSigner::new(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "i",
                "a",
                60
            )
            .is_err()
        );
    }

    #[test]
    fn only_signatures_are_timed_not_tokens_handed_out_again() {
        let signed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = signed.clone();
        let s = AssertionSigner::new(&generate_signing_key().unwrap(), "https://x", "app", 60)
            .unwrap()
            .observe_signing(move |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            });
        let p = Arc::new(Principal::default());
        let slot = AssertionSlot::default();
        s.assertion_in(&slot, &p, 1000).unwrap();
        assert_eq!(signed.load(Ordering::Relaxed), 1);
        for now in 1001..1010 {
            s.assertion_in(&slot, &p, now).unwrap();
        }
        assert_eq!(
            signed.load(Ordering::Relaxed),
            1,
            "held tokens are not signatures"
        );
        s.assertion_in(&slot, &p, 1030).unwrap();
        assert_eq!(signed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_slot_lets_go_of_a_token_it_would_not_send_again() {
        let s =
            AssertionSigner::new(&generate_signing_key().unwrap(), "https://x", "app", 60).unwrap();
        let p = Arc::new(Principal::default());
        let slot = AssertionSlot::default();
        let t1 = s.assertion_in(&slot, &p, 1000).unwrap();
        slot.release_stale(1029);
        assert!(same(&t1, &s.assertion_in(&slot, &p, 1029).unwrap()));
        slot.release_stale(1030);
        assert!(slot.0.load().is_none());
        // the next request signs afresh, as it would have
        assert!(!same(&t1, &s.assertion_in(&slot, &p, 1030).unwrap()));
        assert!(slot.0.load().is_some());
    }

    #[test]
    fn cached_while_fresh() {
        let s =
            AssertionSigner::new(&generate_signing_key().unwrap(), "https://x", "app", 60).unwrap();
        let p = Arc::new(Principal {
            user_id: "u".into(),
            email: "e@x.com".into(),
            ..Principal::default()
        });
        let slot = AssertionSlot::default();
        let t1 = s.assertion_in(&slot, &p, 1000).unwrap();
        assert!(same(&t1, &s.assertion_in(&slot, &p, 1020).unwrap()));
        // the same principal in a new Arc (a refilled session cache)
        let again = Arc::new((*p).clone());
        assert!(same(&t1, &s.assertion_in(&slot, &again, 1021).unwrap()));
        // another holder signs its own
        let other = AssertionSlot::default();
        assert!(!same(&t1, &s.assertion_in(&other, &p, 1022).unwrap()));
        // past half the lifetime, a new one is signed
        assert!(!same(&t1, &s.assertion_in(&slot, &p, 1031).unwrap()));
        assert_eq!(t1.to_str().unwrap().split('.').count(), 3);
    }

    #[test]
    fn another_signer_never_reuses_a_token() {
        // A reload builds a new signer, perhaps with another key, issuer,
        // audience or copied claims: a session's slot signs again for it.
        let key = generate_signing_key().unwrap();
        let a = AssertionSigner::new(&key, "https://x", "app", 60).unwrap();
        let b = AssertionSigner::new(&key, "https://x", "other-app", 60).unwrap();
        let p = Arc::new(Principal {
            user_id: "u".into(),
            ..Principal::default()
        });
        let slot = AssertionSlot::default();
        let ta = a.assertion_in(&slot, &p, 1000).unwrap();
        let tb = b.assertion_in(&slot, &p, 1001).unwrap();
        assert_eq!(payload(&ta)["aud"], "app");
        assert_eq!(payload(&tb)["aud"], "other-app");
        // and the slot now holds b's
        assert!(same(&tb, &b.assertion_in(&slot, &p, 1002).unwrap()));
    }

    #[test]
    fn machine_callers_share_a_slot_per_credential() {
        let s =
            AssertionSigner::new(&generate_signing_key().unwrap(), "https://x", "app", 60).unwrap();
        let p = Arc::new(Principal::default());
        let t = s.assertion_in(&s.slot("sa:k1"), &p, 1000).unwrap();
        assert!(same(
            &t,
            &s.assertion_in(&s.slot("sa:k1"), &p, 1001).unwrap()
        ));
        assert!(!same(
            &t,
            &s.assertion_in(&s.slot("sa:k2"), &p, 1001).unwrap()
        ));
    }

    /// Claims of the token's payload, decoded without checking (the
    /// signature is checked by the integration tests with `jsonwebtoken`).
    fn payload(token: impl AsRef<[u8]>) -> serde_json::Value {
        let token = std::str::from_utf8(token.as_ref()).unwrap();
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn assertion_claims_are_copied_one_as_a_string_several_as_a_list() {
        let s = AssertionSigner::new(&generate_signing_key().unwrap(), "https://x", "app", 60)
            .unwrap()
            .with_claims(&["department".into(), "badges".into(), "absent".into()]);
        let p = Principal {
            user_id: "u".into(),
            email: "e@x.com".into(),
            claims: [
                ("department".to_owned(), vec!["R&D".to_owned()]),
                ("badges".to_owned(), vec!["a".to_owned(), "b".to_owned()]),
                ("unlisted".to_owned(), vec!["x".to_owned()]),
            ]
            .into(),
            ..Principal::default()
        };
        let claims = payload(s.sign(&p, 1000).unwrap());
        assert_eq!(claims["department"], "R&D");
        assert_eq!(claims["badges"], serde_json::json!(["a", "b"]));
        assert!(claims.get("absent").is_none());
        assert!(claims.get("unlisted").is_none());
        assert_eq!(claims["sub"], "u");
        // no authentication facts: no such claims
        for c in ["acr", "amr", "auth_time"] {
            assert!(claims.get(c).is_none(), "{c}");
        }
        let stepped = Principal {
            auth: crate::identity::AuthFacts {
                acr: Some("mfa".into()),
                amr: vec!["pwd".into(), "otp".into()],
                auth_time: Some(990),
            },
            ..p
        };
        let claims = payload(s.sign(&stepped, 1000).unwrap());
        assert_eq!(claims["acr"], "mfa");
        assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]));
        assert_eq!(claims["auth_time"], 990);
    }

    #[test]
    fn a_new_principal_is_signed_again() {
        let s =
            AssertionSigner::new(&generate_signing_key().unwrap(), "https://x", "app", 60).unwrap();
        let before = Arc::new(Principal {
            user_id: "u".into(),
            email: "e@x.com".into(),
            groups: vec!["eng".into()],
            roles: vec!["developer".into()],
            ..Principal::default()
        });
        let slot = AssertionSlot::default();
        let t1 = s.assertion_in(&slot, &before, 1000).unwrap();
        // The directory removed a group: same session, well within the
        // reuse window, and yet a token naming the old groups is never
        // served again.
        let after = Arc::new(Principal {
            groups: vec![],
            roles: vec![],
            ..(*before).clone()
        });
        let t2 = s.assertion_in(&slot, &after, 1001).unwrap();
        assert!(!same(&t1, &t2));
        assert_eq!(payload(&t1)["groups"], serde_json::json!(["eng"]));
        assert_eq!(payload(&t2)["groups"], serde_json::json!([]));
        assert_eq!(payload(&t2)["roles"], serde_json::json!([]));
        // and the new one is what the session reuses from now on
        assert!(same(&t2, &s.assertion_in(&slot, &after, 1002).unwrap()));
    }
}
