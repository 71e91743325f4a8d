//! One-time test sign-in links (`portcullis connections test`): an operator
//! runs the real flow against a connection and sees what the IdP sent, the
//! mapped principal and the policy verdict, without creating a session.
//! The link is sealed with the session keys, expires in ten minutes and is
//! single use (its nonce is consumed in the store on every replica).

use cookie::{Cookie, CookieJar, Key};
use serde::{Deserialize, Serialize};

use crate::config::{PublicUrls, SessionConfig};

pub const TEST_LINK_SECONDS: i64 = 600;
/// Associated data of the sealed ticket: it can't be confused with a cookie.
const NAME: &str = "portcullis_test_signin";
/// The `one_time` kind under which used links are remembered.
pub const ONE_TIME_KIND: &str = "test-signin";

/// What a test link grants: one flow against one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestTicket {
    pub connection: String,
    pub expires_at: i64,
    pub nonce: String,
}

pub struct TestLinks {
    keys: Vec<Key>,
}

impl TestLinks {
    pub fn new(session: &SessionConfig) -> Self {
        Self {
            keys: session
                .keys
                .iter()
                .map(|k| Key::derive_from(k.as_bytes()))
                .collect(),
        }
    }

    /// A sealed ticket for `connection`, valid for ten minutes from `now`.
    pub fn mint(&self, connection: &str, now: i64) -> Option<String> {
        let ticket = TestTicket {
            connection: connection.to_owned(),
            expires_at: now + TEST_LINK_SECONDS,
            nonce: hex::encode(crate::secret::random_bytes::<16>().ok()?),
        };
        let mut jar = CookieJar::new();
        jar.private_mut(self.keys.first()?)
            .add(Cookie::new(NAME, serde_json::to_string(&ticket).ok()?));
        Some(jar.get(NAME)?.value().to_owned())
    }

    /// The one-time test sign-in URL for `connection` (the one spelling
    /// of it: the admin API, the portal and the CLI hand out this), and
    /// when it expires.
    pub fn url(&self, urls: &PublicUrls, connection: &str, now: i64) -> Option<(String, i64)> {
        let token = self.mint(connection, now)?;
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        Some((
            format!("{}?token={}", urls.sso_test(&enc(connection)), enc(&token)),
            now + TEST_LINK_SECONDS,
        ))
    }

    /// Opens a ticket; `None` if forged, from other keys, or expired.
    pub fn open(&self, sealed: &str, now: i64) -> Option<TestTicket> {
        if sealed.len() > 1024 {
            return None;
        }
        self.keys.iter().find_map(|key| {
            let mut jar = CookieJar::new();
            jar.add_original(Cookie::new(NAME, sealed.to_owned()));
            let plain = jar.private(key).get(NAME)?;
            let t: TestTicket = serde_json::from_str(plain.value()).ok()?;
            (t.expires_at > now).then_some(t)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_sealed_and_expire() {
        let cfg = SessionConfig {
            keys: vec!["test-link-key-0123456789-0123456789-01".into()],
            ..SessionConfig::default()
        };
        let links = TestLinks::new(&cfg);
        let sealed = links.mint("acme-idp", 1000).unwrap();
        let t = links.open(&sealed, 1100).unwrap();
        assert_eq!(t.connection, "acme-idp");
        assert_eq!(t.expires_at, 1000 + TEST_LINK_SECONDS);
        assert!(links.open(&sealed, 1000 + TEST_LINK_SECONDS).is_none());
        let mut forged = sealed.into_bytes();
        forged[4] ^= 1;
        assert!(
            links
                .open(&String::from_utf8_lossy(&forged), 1100)
                .is_none()
        );
        assert!(links.open("", 1100).is_none());
    }
}
