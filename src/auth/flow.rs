//! Login flow state bound to the browser: an encrypted, short-lived cookie
//! per flow (`portcullis_flow_<relay>`), never trusted from the query
//! string. The relay value round-trips through the IdP and names the cookie,
//! so parallel logins in several tabs don't clobber each other, and a
//! callback replayed in another browser finds no cookie.

use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{Deserialize, Serialize};

use crate::config::SessionConfig;

/// How long a login may take at the IdP.
pub const FLOW_LIFETIME_SECONDS: i64 = 600;
const PREFIX: &str = "portcullis_flow_";

/// What is remembered between `start` and the callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowState {
    pub connection: String,
    pub return_to: String,
    /// Protocol state (request id, nonce, PKCE verifier…).
    pub state: serde_json::Value,
    pub created_at: i64,
    /// A test sign-in: show the result, create nothing.
    #[serde(default)]
    pub test: bool,
}

/// Seals and opens flow cookies with the session keys (the cookie name is
/// authenticated too, so a session cookie can't pose as a flow cookie).
pub struct FlowCodec {
    keys: Vec<Key>,
    secure: bool,
    path: String,
}

impl FlowCodec {
    /// `keys` were validated by the session codec (32+ bytes each).
    pub fn new(session: &SessionConfig, internal_prefix: &str) -> Self {
        Self {
            keys: session
                .keys
                .iter()
                .map(|k| Key::derive_from(k.as_bytes()))
                .collect(),
            secure: session.secure,
            path: internal_prefix.to_owned(),
        }
    }

    /// A fresh relay value: 128 random bits, hex.
    pub fn new_relay() -> Option<String> {
        crate::secret::random_bytes::<16>().ok().map(hex::encode)
    }

    /// `Set-Cookie` for a new flow.
    pub fn seal(&self, relay: &str, flow: &FlowState) -> Option<String> {
        let key = self.keys.first()?;
        let name = format!("{PREFIX}{relay}");
        let json = serde_json::to_string(flow).ok()?;
        let mut jar = CookieJar::new();
        jar.private_mut(key).add(Cookie::new(name.clone(), json));
        let sealed = jar.get(&name)?.value().to_owned();
        let mut c = self.attributes(Cookie::new(name, sealed));
        c.set_max_age(CookieDuration::seconds(FLOW_LIFETIME_SECONDS));
        Some(c.to_string())
    }

    /// `Set-Cookie` that removes a flow cookie (flows are single use).
    pub fn clear(&self, relay: &str) -> String {
        let mut c = self.attributes(Cookie::new(format!("{PREFIX}{relay}"), ""));
        c.set_max_age(CookieDuration::ZERO);
        c.to_string()
    }

    fn attributes(&self, mut c: Cookie<'static>) -> Cookie<'static> {
        c.set_path(self.path.clone());
        c.set_http_only(true);
        c.set_secure(self.secure);
        // SAML's HTTP-POST binding is a cross-site POST: only SameSite=None
        // cookies come along (and browsers require Secure for that).
        c.set_same_site(if self.secure {
            SameSite::None
        } else {
            SameSite::Lax
        });
        c
    }

    /// Opens the flow cookie for `relay` from the `Cookie` headers; `None`
    /// if absent, forged, from another flow, or expired.
    pub fn open<'a>(
        &self,
        relay: &str,
        cookie_headers: impl Iterator<Item = &'a [u8]>,
        now: i64,
    ) -> Option<FlowState> {
        if relay.len() != 32 || !relay.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let name = format!("{PREFIX}{relay}");
        for header in cookie_headers {
            let Ok(header) = std::str::from_utf8(header) else {
                continue;
            };
            for c in Cookie::split_parse(header).flatten() {
                if c.name() != name || c.value().len() > 8192 {
                    continue;
                }
                for key in &self.keys {
                    let mut jar = CookieJar::new();
                    jar.add_original(Cookie::new(name.clone(), c.value().to_owned()));
                    if let Some(plain) = jar.private(key).get(&name)
                        && let Ok(flow) = serde_json::from_str::<FlowState>(plain.value())
                        && now - flow.created_at < FLOW_LIFETIME_SECONDS
                        && now >= flow.created_at - 60
                    {
                        return Some(flow);
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> FlowCodec {
        let cfg = SessionConfig {
            keys: vec!["flow-key-flow-key-flow-key-flow-key-0123".into()],
            ..SessionConfig::default()
        };
        FlowCodec::new(&cfg, "/.portcullis/")
    }

    fn flow(now: i64) -> FlowState {
        FlowState {
            connection: "c1".into(),
            return_to: "/x".into(),
            state: serde_json::json!({"nonce": "n"}),
            created_at: now,
            test: false,
        }
    }

    fn header(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_owned()
    }

    #[test]
    fn round_trip_bound_to_relay_and_time() {
        let c = codec();
        let relay = FlowCodec::new_relay().unwrap();
        let set = c.seal(&relay, &flow(1000)).unwrap();
        assert!(
            set.contains("Path=/.portcullis/")
                && set.contains("HttpOnly")
                && set.contains("SameSite=None")
                && set.contains("Secure"),
            "{set}"
        );
        let h = header(&set);
        assert_eq!(
            c.open(&relay, [h.as_bytes()].into_iter(), 1100),
            Some(flow(1000))
        );
        // expired
        assert_eq!(
            c.open(
                &relay,
                [h.as_bytes()].into_iter(),
                1000 + FLOW_LIFETIME_SECONDS
            ),
            None
        );
        // another relay's cookie does not open this flow
        let other = FlowCodec::new_relay().unwrap();
        let renamed = h.replacen(&relay, &other, 1);
        assert_eq!(c.open(&other, [renamed.as_bytes()].into_iter(), 1100), None);
        // hostile relay values
        assert_eq!(c.open("../x", [h.as_bytes()].into_iter(), 1100), None);
        assert!(c.clear(&relay).contains("Max-Age=0"));
    }
}
