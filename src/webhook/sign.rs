//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>):
//! `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")), one per
//! configured secret, space-separated, so receivers can rotate secrets.

use base64::Engine as _;
use ring::hmac;

/// The configured secrets, decoded once.
#[derive(Clone)]
pub struct Signer {
    keys: Vec<hmac::Key>,
}

impl std::fmt::Debug for Signer {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Signer {
    /// From raw secret bytes (see `config::decode_webhook_secret`).
    pub fn new(secrets: &[Vec<u8>]) -> Self {
        Self {
            keys: secrets
                .iter()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s))
                .collect(),
        }
    }

    /// Checks a received message as a receiver should (the demo app does):
    /// `timestamp` (the `webhook-timestamp` header) within `tolerance_s` of
    /// `now_s`, so a captured message can't be replayed later, and some
    /// `v1,` entry of `header` (the `webhook-signature` value) made by one
    /// of these keys over the raw body. Each tag is compared in constant
    /// time (`ring::hmac::verify`).
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        body: &[u8],
        header: &str,
        now_s: i64,
        tolerance_s: i64,
    ) -> bool {
        let Ok(ts) = timestamp.parse::<i64>() else {
            return false;
        };
        if (now_s - ts).abs() > tolerance_s {
            return false;
        }
        let mut message = Vec::with_capacity(msg_id.len() + timestamp.len() + body.len() + 2);
        message.extend_from_slice(msg_id.as_bytes());
        message.push(b'.');
        message.extend_from_slice(timestamp.as_bytes());
        message.push(b'.');
        message.extend_from_slice(body);
        header
            .split_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .any(|tag| {
                self.keys
                    .iter()
                    .any(|key| hmac::verify(key, &message, &tag).is_ok())
            })
    }

    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        self.keys
            .iter()
            .map(|key| {
                let mut ctx = hmac::Context::with_key(key);
                ctx.update(msg_id.as_bytes());
                ctx.update(b".");
                ctx.update(ts.as_bytes());
                ctx.update(b".");
                ctx.update(body);
                let tag = ctx.sign();
                format!(
                    "v1,{}",
                    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::decode_webhook_secret;

    /// The example from the Standard Webhooks specification, also checked
    /// against its reference Python library (`standardwebhooks` on PyPI).
    #[test]
    fn matches_the_specification_example() {
        let secret = decode_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signer = Signer::new(&[secret]);
        assert_eq!(
            signer.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_receiver_verifies_what_was_signed_and_nothing_else() {
        let a = decode_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = vec![7u8; 32];
        let header = Signer::new(&[a.clone(), b.clone()]).sign("msg_1", 1000, b"{}");
        // Either secret alone accepts a message signed with both (rotation).
        for keys in [vec![a.clone()], vec![b.clone()]] {
            let r = Signer::new(&keys);
            assert!(r.verify("msg_1", "1000", b"{}", &header, 1000, 300));
            assert!(r.verify("msg_1", "1000", b"{}", &header, 1300, 300));
            // Too old or from the future, another id, time or body: refused.
            assert!(!r.verify("msg_1", "1000", b"{}", &header, 1301, 300));
            assert!(!r.verify("msg_1", "1000", b"{}", &header, 699, 300));
            assert!(!r.verify("msg_2", "1000", b"{}", &header, 1000, 300));
            assert!(!r.verify("msg_1", "1001", b"{}", &header, 1000, 300));
            assert!(!r.verify("msg_1", "1000", b"{ }", &header, 1000, 300));
            assert!(!r.verify("msg_1", "x", b"{}", &header, 1000, 300));
        }
        // A receiver with another secret, or a header without v1 entries.
        let other = Signer::new(&[vec![9u8; 32]]);
        assert!(!other.verify("msg_1", "1000", b"{}", &header, 1000, 300));
        let r = Signer::new(&[a]);
        assert!(!r.verify("msg_1", "1000", b"{}", "", 1000, 300));
        let v2 = header.replace("v1,", "v2,");
        assert!(!r.verify("msg_1", "1000", b"{}", &v2, 1000, 300));
    }

    #[test]
    fn every_secret_signs_for_rotation() {
        let a = decode_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = vec![7u8; 32];
        let both = Signer::new(&[a.clone(), b.clone()]).sign("msg_1", 1, b"{}");
        let only_a = Signer::new(&[a]).sign("msg_1", 1, b"{}");
        let only_b = Signer::new(&[b]).sign("msg_1", 1, b"{}");
        assert_eq!(both, format!("{only_a} {only_b}"));
        // Any change to id, time or body changes the signature.
        let s = Signer::new(&[vec![1u8; 24]]);
        let base = s.sign("msg_1", 1, b"{}");
        assert_ne!(base, s.sign("msg_2", 1, b"{}"));
        assert_ne!(base, s.sign("msg_1", 2, b"{}"));
        assert_ne!(base, s.sign("msg_1", 1, b"{ }"));
    }

    #[test]
    fn secrets_are_validated_without_echoing_them() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not*base64",
            "whsec_c2hvcnQ=",
            "whsec_",
        ] {
            let e = decode_webhook_secret(bad).unwrap_err();
            assert!(
                !e.contains(bad.trim_start_matches("whsec_")) || bad == "whsec_",
                "{e}"
            );
        }
        assert!(format!("{:?}", Signer::new(&[vec![9u8; 32]])).contains("keys: 1"));
    }
}
