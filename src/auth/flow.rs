//! Login flow state bound to the browser: an encrypted, short-lived cookie
//! per flow (`portcullis_flow_<relay>`, `__Host-portcullis_flow_<relay>`
//! with Path=/ when the session cookie is host-prefixed), never trusted
//! from the query string. The relay value round-trips through the IdP and
//! names the cookie, so parallel logins in several tabs don't clobber each
//! other, and a callback replayed in another browser finds no cookie.
//!
//! A browser keeps at most [`MAX_FLOWS_PER_BROWSER`] of them: each start
//! expires the oldest beyond that, so repeated starts (a reload loop, or a
//! page that fires many login links) can't grow the Cookie header until
//! the browser's or a server's size limit breaks every request.

use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{Deserialize, Serialize};

use crate::config::{PublicUrls, SessionConfig};
use crate::session::{flow_cookie_prefix, host_prefixed};

/// How long a login may take at the IdP.
pub const FLOW_LIFETIME_SECONDS: i64 = 600;

/// Flows one browser may have in progress at once (tabs logging in in
/// parallel); a new start expires the oldest beyond this.
pub const MAX_FLOWS_PER_BROWSER: usize = 4;

/// Flow cookies looked at per start: a hostile Cookie header can't make us
/// decrypt more, nor answer with more `Set-Cookie` lines than this.
const MAX_FLOWS_EXAMINED: usize = 64;

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
    /// A step-up login: what the callback must check the IdP achieved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<super::step_up::StepUpFlow>,
}

/// Seals and opens flow cookies with the session keys (the cookie name is
/// authenticated too, so a session cookie can't pose as a flow cookie).
pub struct FlowCodec {
    keys: Vec<Key>,
    secure: bool,
    path: String,
    prefix: &'static str,
}

impl FlowCodec {
    /// `keys` were validated by the session codec (32+ bytes each).
    pub fn new(session: &SessionConfig, urls: &PublicUrls) -> Self {
        Self {
            keys: session
                .keys
                .iter()
                .map(|k| Key::derive_from(k.as_bytes()))
                .collect(),
            secure: session.secure,
            // `__Host-` requires Path=/; otherwise the cookie stays under
            // the internal prefix, where only our endpoints see it.
            path: if host_prefixed(session) {
                "/".to_owned()
            } else {
                urls.prefix().to_owned()
            },
            prefix: flow_cookie_prefix(session),
        }
    }

    /// A fresh relay value: 128 random bits, hex.
    pub fn new_relay() -> Option<String> {
        crate::secret::random_bytes::<16>().ok().map(hex::encode)
    }

    /// `Set-Cookie` for a new flow.
    pub fn seal(&self, relay: &str, flow: &FlowState) -> Option<String> {
        let key = self.keys.first()?;
        let name = format!("{}{relay}", self.prefix);
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
        self.clear_named(format!("{}{relay}", self.prefix))
    }

    fn clear_named(&self, name: String) -> String {
        let mut c = self.attributes(Cookie::new(name, ""));
        c.set_max_age(CookieDuration::ZERO);
        c.to_string()
    }

    /// `Set-Cookie` values that expire this browser's older flows so that,
    /// with the one about to start, at most [`MAX_FLOWS_PER_BROWSER`]
    /// remain. Oldest go first; a flow cookie that no longer opens
    /// (expired, forged, sealed under a retired key) counts as oldest.
    pub fn evict_for_new<'a>(
        &self,
        cookie_headers: impl Iterator<Item = &'a [u8]>,
        now: i64,
    ) -> Vec<String> {
        let mut flows: Vec<(Option<i64>, String)> = Vec::new();
        'headers: for header in cookie_headers {
            let Ok(header) = std::str::from_utf8(header) else {
                continue;
            };
            for c in Cookie::split_parse(header).flatten() {
                let Some(relay) = c.name().strip_prefix(self.prefix) else {
                    continue;
                };
                if flows.iter().any(|(_, name)| name == c.name()) {
                    continue;
                }
                if flows.len() == MAX_FLOWS_EXAMINED {
                    break 'headers;
                }
                let created = self
                    .open_named(relay, c.name(), c.value(), now)
                    .map(|f| f.created_at);
                flows.push((created, c.name().to_owned()));
            }
        }
        let keep = MAX_FLOWS_PER_BROWSER.saturating_sub(1);
        if flows.len() <= keep {
            return Vec::new();
        }
        // Newest first; unopenable (None) sort last, so they go first.
        // Flows started in the same second: browsers send older cookies
        // first, so a later position in the header is the newer one.
        let mut flows: Vec<(Option<i64>, usize, String)> = flows
            .into_iter()
            .enumerate()
            .map(|(i, (created, name))| (created, i, name))
            .collect();
        flows.sort_by_key(|f| std::cmp::Reverse((f.0, f.1)));
        flows
            .into_iter()
            .skip(keep)
            .map(|(_, _, name)| self.clear_named(name))
            .collect()
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
        let name = format!("{}{relay}", self.prefix);
        for header in cookie_headers {
            let Ok(header) = std::str::from_utf8(header) else {
                continue;
            };
            for c in Cookie::split_parse(header).flatten() {
                if c.name() != name {
                    continue;
                }
                if let Some(flow) = self.open_named(relay, &name, c.value(), now) {
                    return Some(flow);
                }
            }
        }
        None
    }

    /// Opens one flow cookie value under the name it came with (the name is
    /// authenticated, so a cookie renamed to another relay does not open).
    fn open_named(&self, relay: &str, name: &str, value: &str, now: i64) -> Option<FlowState> {
        if relay.len() != 32 || !relay.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if value.len() > 8192 {
            return None;
        }
        for key in &self.keys {
            let mut jar = CookieJar::new();
            jar.add_original(Cookie::new(name.to_owned(), value.to_owned()));
            if let Some(plain) = jar.private(key).get(name)
                && let Ok(flow) = serde_json::from_str::<FlowState>(plain.value())
                && now - flow.created_at < FLOW_LIFETIME_SECONDS
                && now >= flow.created_at - 60
            {
                return Some(flow);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> FlowCodec {
        codec_with(true, None)
    }

    fn codec_with(secure: bool, domain: Option<&str>) -> FlowCodec {
        let cfg = SessionConfig {
            keys: vec!["flow-key-flow-key-flow-key-flow-key-0123".into()],
            secure,
            domain: domain.map(str::to_owned),
            ..SessionConfig::default()
        };
        FlowCodec::new(
            &cfg,
            &PublicUrls::new("https://app.example.com", "/.portcullis/"),
        )
    }

    fn flow(now: i64) -> FlowState {
        FlowState {
            connection: "c1".into(),
            return_to: "/x".into(),
            state: serde_json::json!({"nonce": "n"}),
            created_at: now,
            test: false,
            step_up: None,
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
        // Secure, no Domain: `__Host-`, so Path=/ as the prefix requires.
        assert!(
            set.starts_with(&format!("__Host-portcullis_flow_{relay}="))
                && set.contains("Path=/;")
                && !set.contains("Domain")
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
        // The name is authenticated: the same value without the prefix
        // does not open.
        let unprefixed = h.replacen("__Host-", "", 1);
        assert_eq!(
            codec_with(false, None).open(&relay, [unprefixed.as_bytes()].into_iter(), 1100),
            None
        );
    }

    #[test]
    fn host_prefix_only_when_the_browser_accepts_it() {
        let relay = FlowCodec::new_relay().unwrap();
        for (secure, domain) in [(false, None), (true, Some("example.com"))] {
            let set = codec_with(secure, domain).seal(&relay, &flow(1)).unwrap();
            assert!(
                set.starts_with("portcullis_flow_") && set.contains("Path=/.portcullis/"),
                "{set}"
            );
        }
    }

    #[test]
    fn a_new_flow_expires_the_oldest_beyond_the_cap() {
        let c = codec();
        let now = 10_000;
        // Five flows started a second apart, plus one that doesn't open.
        let relays: Vec<String> = (0..5).map(|_| FlowCodec::new_relay().unwrap()).collect();
        let mut pairs: Vec<String> = relays
            .iter()
            .enumerate()
            .map(|(i, r)| header(&c.seal(r, &flow(now - 10 + i as i64)).unwrap()))
            .collect();
        let forged = FlowCodec::new_relay().unwrap();
        pairs.push(format!("__Host-portcullis_flow_{forged}=garbage"));
        pairs.push("app=1".into());
        let cookie = pairs.join("; ");
        let cleared = c.evict_for_new([cookie.as_bytes()].into_iter(), now);
        let names: Vec<&str> = cleared
            .iter()
            .map(|s| s.split('=').next().unwrap())
            .collect();
        // Room for the new one: the 3 newest stay; the forged one and the
        // 2 oldest go, each expired with Max-Age=0 under the same name.
        let expected: Vec<String> = [&relays[1], &relays[0], &forged]
            .iter()
            .map(|r| format!("__Host-portcullis_flow_{r}"))
            .collect();
        assert_eq!(names, expected);
        assert!(
            cleared
                .iter()
                .all(|s| s.contains("Max-Age=0") && s.contains("Path=/;"))
        );
        // Up to 3 existing flows: nothing to expire.
        let few = pairs[2..5].join("; ");
        assert!(
            c.evict_for_new([few.as_bytes()].into_iter(), now)
                .is_empty()
        );
    }
}
