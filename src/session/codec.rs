//! The session cookie: AES-256-GCM via the `cookie` crate's private jar
//! (the cookie name is bound as associated data). The first configured key
//! seals, every key opens, so keys rotate without logging anyone out.
//!
//! Cookie names: with `secure = true` and no `domain`, the session and flow
//! cookies carry the `__Host-` prefix, which makes browsers refuse them
//! unless they are Secure, host-only and Path=/ — so a sibling subdomain
//! (or a plain-HTTP response on the same host) can't plant or overwrite
//! them. This module owns the names so the session and flow codecs agree.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, Key, SameSite as CookieSameSite};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{MIN_SESSION_KEY_BYTES, SameSite, SessionConfig};
use crate::secret::{constant_time_eq, sha256};

/// The browser-enforced prefix for host-only, Secure, Path=/ cookies.
pub const HOST_PREFIX: &str = "__Host-";

/// Flow cookies are this prefix plus the relay (see `auth::flow`).
const FLOW_NAME: &str = "portcullis_flow_";

/// Whether our cookies can carry `__Host-`: browsers accept it only on a
/// Secure cookie without `Domain` (and with Path=/, which we then use).
pub fn host_prefixed(cfg: &SessionConfig) -> bool {
    cfg.secure && cfg.domain.is_none()
}

/// The session cookie's name as sent: `__Host-` + `cookie_name` when
/// [`host_prefixed`] (unless the operator already wrote the prefix).
pub fn session_cookie_name(cfg: &SessionConfig) -> String {
    if host_prefixed(cfg) && !cfg.cookie_name.starts_with(HOST_PREFIX) {
        format!("{HOST_PREFIX}{}", cfg.cookie_name)
    } else {
        cfg.cookie_name.clone()
    }
}

/// The name prefix of flow cookies (the relay follows).
pub fn flow_cookie_prefix(cfg: &SessionConfig) -> &'static str {
    if host_prefixed(cfg) {
        "__Host-portcullis_flow_"
    } else {
        FLOW_NAME
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CookieError {
    #[error("session key {index} is {len} bytes, need at least {MIN_SESSION_KEY_BYTES}")]
    ShortKey { index: usize, len: usize },
    #[error("no session key configured")]
    NoKey,
    #[error("session key {index} cannot key AES-256-GCM")]
    Cipher { index: usize },
}

/// What the cookie carries: the raw session id and the absolute expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    pub id: [u8; 32],
    pub expires_at: i64,
}

/// A session cookie as opened: its token, and the token's store and
/// cache key (the SHA-256 of its id), computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub token: SessionToken,
    pub key: [u8; 32],
}

impl From<SessionToken> for Opened {
    fn from(token: SessionToken) -> Self {
        Self {
            key: sha256(&token.id),
            token,
        }
    }
}

/// The session cookie a connection last presented, as it opened.
///
/// A keep-alive client sends the same cookie with every request of a
/// connection, and opening it (two base64 decodes, AES-256-GCM, then the
/// SHA-256 of the id for the cache key) was ~6,500 of a request's ~91,000
/// instructions (callgrind). The connection keeps this, and
/// [`CookieCodec::open`] answers from it only for the very same
/// bytes (compared in constant time: a connection a balancer shares
/// between clients must not tell one how close its guess is to another's
/// cookie) under the very same codec (a reload that retires a key makes a
/// new codec, so nothing opened under the old keys is answered again).
/// What it answers is what opening would give: the same bytes open to the
/// same token. The session itself is looked up on every request, so a
/// revocation or an expiry is seen as before.
pub struct CookieMemo {
    codec: u64,
    sealed: Box<str>,
    opened: Opened,
}

/// Distinguishes codecs (one per configuration generation) for [`CookieMemo`].
static NEXT_CODEC_ID: AtomicU64 = AtomicU64::new(1);

/// Seals and opens session cookies.
pub struct CookieCodec {
    /// Unique per codec, see [`CookieMemo`].
    id: u64,
    keys: Vec<Key>,
    /// The session cookie's opener under each key, made once. The `cookie`
    /// crate's private jar builds a jar, copies the cookie and keys a new
    /// cipher for every cookie it opens: most of the cost of reading a
    /// session cookie, on every authenticated request. The sealing is the
    /// jar's (standard base64 of nonce ‖ ciphertext ‖ tag, AES-256-GCM
    /// under the key's encryption half, the cookie name as associated
    /// data), so what the jar seals opens here; tested below.
    openers: Vec<LessSafeKey>,
    /// One HMAC key per session key, for logout CSRF tokens.
    csrf: Vec<hmac::Key>,
    name: String,
    flow_prefix: &'static str,
    /// Searchers for `name` and `flow_prefix` in `Cookie` headers, built
    /// once: building one costs more than searching a header with it.
    mentions: [memchr::memmem::Finder<'static>; 2],
    secure: bool,
    same_site: CookieSameSite,
    domain: Option<String>,
}

impl std::fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieCodec")
            .field("name", &self.name)
            .field("keys", &self.keys.len())
            .finish()
    }
}

const VERSION: &str = "v1";

/// Derivation label of the logout CSRF key.
const CSRF_LABEL: &[u8] = b"portcullis logout csrf v1";

impl CookieCodec {
    pub fn new(cfg: &SessionConfig) -> Result<Self, CookieError> {
        if cfg.keys.is_empty() {
            return Err(CookieError::NoKey);
        }
        let mut keys = Vec::with_capacity(cfg.keys.len());
        let mut csrf = Vec::with_capacity(cfg.keys.len());
        let mut openers = Vec::with_capacity(cfg.keys.len());
        for (index, k) in cfg.keys.iter().enumerate() {
            if k.len() < MIN_SESSION_KEY_BYTES {
                return Err(CookieError::ShortKey {
                    index,
                    len: k.len(),
                });
            }
            // HKDF expansion: operators supply passphrase-like strings, the
            // jar needs 512 bits of key material.
            let key = Key::derive_from(k.as_bytes());
            let unbound = UnboundKey::new(&AES_256_GCM, key.encryption())
                .map_err(|_| CookieError::Cipher { index })?;
            openers.push(LessSafeKey::new(unbound));
            keys.push(key);
            // A key of its own for CSRF tokens, derived so a token never
            // says anything about the cookie keys.
            let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k.as_bytes()), CSRF_LABEL);
            csrf.push(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()));
        }
        let name = session_cookie_name(cfg);
        let flow_prefix = flow_cookie_prefix(cfg);
        let mentions = [
            memchr::memmem::Finder::new(name.as_bytes()).into_owned(),
            memchr::memmem::Finder::new(flow_prefix.as_bytes()).into_owned(),
        ];
        Ok(Self {
            id: NEXT_CODEC_ID.fetch_add(1, Ordering::Relaxed),
            keys,
            openers,
            csrf,
            name,
            flow_prefix,
            mentions,
            secure: cfg.secure,
            same_site: match cfg.same_site {
                SameSite::Strict => CookieSameSite::Strict,
                SameSite::Lax => CookieSameSite::Lax,
                SameSite::None => CookieSameSite::None,
            },
            domain: cfg.domain.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Set-Cookie` value for a new session.
    pub fn seal(&self, token: &SessionToken, now: i64) -> String {
        let plain = format!("{VERSION}.{}.{}", B64.encode(token.id), token.expires_at);
        let mut jar = cookie::CookieJar::new();
        jar.private_mut(&self.keys[0])
            .add(Cookie::new(self.name.clone(), plain));
        let sealed = jar
            .get(&self.name)
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        let mut c = self.attributes(Cookie::new(self.name.clone(), sealed));
        c.set_max_age(CookieDuration::seconds((token.expires_at - now).max(0)));
        c.to_string()
    }

    /// A `Set-Cookie` value that deletes the cookie.
    pub fn clear(&self) -> String {
        let mut c = self.attributes(Cookie::new(self.name.clone(), ""));
        c.set_max_age(CookieDuration::ZERO);
        c.set_expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
        c.to_string()
    }

    fn attributes(&self, mut c: Cookie<'static>) -> Cookie<'static> {
        c.set_path("/");
        c.set_http_only(true);
        c.set_secure(self.secure);
        c.set_same_site(self.same_site);
        if let Some(d) = &self.domain {
            c.set_domain(d.clone());
        }
        c
    }

    /// Finds and opens our cookie among `Cookie` header values, answered
    /// from `memo` when it holds this very cookie (see [`CookieMemo`]; a
    /// caller without one passes `&mut None`); a cookie that opens is
    /// remembered there. Our cookies are tried in the order sent and the
    /// first that opens wins. Returns `Ok(None)` when the request carries
    /// no session cookie and `Err(())` when it carries one that doesn't
    /// open (garbled, forged, old key) — the caller treats both as
    /// anonymous but counts the latter.
    #[allow(clippy::result_unit_err)]
    pub fn open<'a>(
        &self,
        cookie_headers: impl Iterator<Item = &'a [u8]>,
        memo: &mut Option<Box<CookieMemo>>,
    ) -> Result<Option<Opened>, ()> {
        let mut seen = false;
        for header in cookie_headers {
            let Ok(header) = std::str::from_utf8(header) else {
                continue;
            };
            for (name, value) in pairs(header) {
                if name != self.name {
                    continue;
                }
                seen = true;
                if let Some(m) = memo.as_deref()
                    && m.codec == self.id
                    && constant_time_eq(m.sealed.as_bytes(), value.as_bytes())
                {
                    return Ok(Some(m.opened.clone()));
                }
                if let Some(token) = self.open_value(value) {
                    let opened = Opened::from(token);
                    *memo = Some(Box::new(CookieMemo {
                        codec: self.id,
                        sealed: value.into(),
                        opened: opened.clone(),
                    }));
                    return Ok(Some(opened));
                }
            }
        }
        if seen { Err(()) } else { Ok(None) }
    }

    fn open_value(&self, value: &str) -> Option<SessionToken> {
        // Bound before decrypting: a session cookie is ~100 bytes.
        if value.len() > 512 {
            return None;
        }
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let mut buf = Vec::with_capacity(ciphertext.len());
        for key in &self.openers {
            buf.clear();
            buf.extend_from_slice(ciphertext);
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            if let Ok(plain) = key.open_in_place(nonce, Aad::from(self.name.as_bytes()), &mut buf) {
                return parse_plain(std::str::from_utf8(plain).ok()?);
            }
        }
        None
    }

    /// Seals `plain` as the value of a cookie named `name` (the name is the
    /// associated data, so a value sealed for one cookie never opens as
    /// another, the session cookie included). For the setup portal's own
    /// cookie, whose attributes its owner sets.
    pub fn seal_named(&self, name: &str, plain: &str) -> Option<String> {
        let mut jar = cookie::CookieJar::new();
        jar.private_mut(self.keys.first()?)
            .add(Cookie::new(name.to_owned(), plain.to_owned()));
        jar.get(name).map(|c| c.value().to_owned())
    }

    /// Opens a value sealed by [`CookieCodec::seal_named`] for `name` under
    /// any key (rotation); `None` if forged, garbled, too long or sealed for
    /// another name.
    pub fn open_named(&self, name: &str, sealed: &str) -> Option<String> {
        if sealed.len() > 4096 {
            return None;
        }
        self.keys.iter().find_map(|key| {
            let mut jar = cookie::CookieJar::new();
            jar.add_original(Cookie::new(name.to_owned(), sealed.to_owned()));
            jar.private(key).get(name).map(|c| c.value().to_owned())
        })
    }

    /// The logout CSRF token of the session `id_hash`: an HMAC under the
    /// first key, so it is bound to that session and useless for any other.
    pub fn logout_token(&self, id_hash: &str) -> String {
        self.csrf
            .first()
            .map(|k| B64.encode(hmac::sign(k, id_hash.as_bytes())))
            .unwrap_or_default()
    }

    /// Whether `token` is the logout token of `id_hash` under any key
    /// (rotation), compared in constant time.
    pub fn verify_logout_token(&self, id_hash: &str, token: &str) -> bool {
        let Ok(given) = B64.decode(token.as_bytes()) else {
            return false;
        };
        let mut ok = false;
        for k in &self.csrf {
            let expected = hmac::sign(k, id_hash.as_bytes());
            ok |= constant_time_eq(expected.as_ref(), &given);
        }
        ok
    }

    /// Whether a `Cookie` header may hold one of our cookies (session or
    /// flow); a cheap check before [`CookieCodec::kept_pairs`].
    pub fn mentioned_in(&self, header: &[u8]) -> bool {
        self.mentions.iter().any(|f| f.find(header).is_some())
    }

    /// The pairs of a `Cookie` header that are not ours (the session
    /// cookie, any flow cookie), trimmed, in order; nothing from a header
    /// that is not UTF-8. The upstream app never sees our cookies: the
    /// session cookie is a credential, and `__Host-` flow cookies are
    /// Path=/ and so ride along with app requests.
    pub fn kept_pairs<'h>(&self, header: &'h [u8]) -> impl Iterator<Item = &'h str> {
        pieces(std::str::from_utf8(header).unwrap_or_default()).filter(move |pair| {
            let name = memchr::memchr(b'=', pair.as_bytes()).map_or(*pair, |eq| &pair[..eq]);
            let name = name.trim();
            name != self.name.as_str() && !name.starts_with(self.flow_prefix)
        })
    }
}

/// The pieces of a `Cookie` header between its `;`s, trimmed, the empty
/// ones left out. Found with `memchr`: `str::split(';')` and the `cookie`
/// crate's parser search with `core`'s scalar `memchr`, which was most of
/// the ~1,300 instructions an authenticated request spent reading its
/// `Cookie` header twice (to open the session, to withhold it). The
/// separators are ASCII, so every cut is on a character boundary.
fn pieces(header: &str) -> impl Iterator<Item = &str> {
    let mut rest = header;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let (piece, after) = match memchr::memchr(b';', rest.as_bytes()) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            };
            rest = after;
            let piece = piece.trim();
            if !piece.is_empty() {
                return Some(piece);
            }
        }
        None
    })
}

/// The `(name, value)` pairs of a `Cookie` header as the `cookie` crate's
/// `Cookie::split_parse` reads them (a test holds the two together): each
/// piece split at its first `=`, both sides trimmed, the value as sent
/// (quotes and all); a piece without `=` or with an empty name is none.
fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    pieces(header).filter_map(|piece| {
        let eq = memchr::memchr(b'=', piece.as_bytes())?;
        let name = piece[..eq].trim();
        (!name.is_empty()).then(|| (name, piece[eq + 1..].trim()))
    })
}

fn parse_plain(plain: &str) -> Option<SessionToken> {
    let mut parts = plain.split('.');
    if parts.next()? != VERSION {
        return None;
    }
    let id = B64.decode(parts.next()?).ok()?;
    let expires_at = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(SessionToken {
        id: id.try_into().ok()?,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(keys: &[&str]) -> SessionConfig {
        SessionConfig {
            keys: keys.iter().map(|s| s.to_string()).collect(),
            ..SessionConfig::default()
        }
    }

    /// The name the default config gives the session cookie.
    const NAME: &str = "__Host-portcullis_session";

    fn value_of(set_cookie: &str) -> String {
        Cookie::parse(set_cookie.to_owned())
            .unwrap()
            .value()
            .to_owned()
    }

    /// The token our cookie in `header` opens to, with no memo.
    fn opened(codec: &CookieCodec, header: &[u8]) -> Result<Option<SessionToken>, ()> {
        Ok(codec
            .open([header].into_iter(), &mut None)?
            .map(|o| o.token))
    }

    const K1: &str = "key-one-key-one-key-one-key-one-key-one";
    const K2: &str = "key-two-key-two-key-two-key-two-key-two";

    #[test]
    fn seals_and_opens_with_attributes() {
        let codec = CookieCodec::new(&cfg(&[K1])).unwrap();
        let token = SessionToken {
            id: [7; 32],
            expires_at: 2000,
        };
        let set = codec.seal(&token, 1000);
        assert!(
            set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Lax"),
            "{set}"
        );
        assert!(
            set.contains("Max-Age=1000") && set.contains("Path=/"),
            "{set}"
        );
        let header = format!("a=b; {NAME}={}; c=d", value_of(&set));
        assert_eq!(opened(&codec, header.as_bytes()), Ok(Some(token)));
        assert_eq!(opened(&codec, b"a=b".as_slice()), Ok(None));
    }

    #[test]
    fn a_remembered_cookie_answers_only_for_its_bytes_under_its_codec() {
        let codec = CookieCodec::new(&cfg(&[K1])).unwrap();
        let token = |b| SessionToken {
            id: [b; 32],
            expires_at: 2_000_000_000,
        };
        let header = |c: &CookieCodec, t| format!("{}={}", c.name(), value_of(&c.seal(&t, 0)));
        let open = |c: &CookieCodec, h: &str, memo: &mut Option<Box<CookieMemo>>| {
            c.open([h.as_bytes()].into_iter(), memo)
        };
        let mut memo = None;
        let first = header(&codec, token(1));
        let opened = open(&codec, &first, &mut memo).unwrap().unwrap();
        assert_eq!(opened.token, token(1));
        assert_eq!(opened.key, sha256(&[1; 32]));
        // Answered from the memo: mark its answer and see it come back.
        memo.as_mut().unwrap().opened.token.expires_at = 7;
        let again = open(&codec, &first, &mut memo).unwrap().unwrap();
        assert_eq!(again.token.expires_at, 7, "the same bytes, remembered");
        // Other bytes are opened: another session, a tampered copy, a
        // sealing of the same token with another nonce.
        let second = header(&codec, token(2));
        assert_eq!(
            open(&codec, &second, &mut memo).unwrap().unwrap().token,
            token(2)
        );
        assert_eq!(
            memo.as_ref().unwrap().opened.token,
            token(2),
            "remembered in turn"
        );
        let mut tampered = second.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(open(&codec, &tampered, &mut memo), Err(()));
        let resealed = header(&codec, token(2));
        assert_ne!(resealed, second);
        assert_eq!(
            open(&codec, &resealed, &mut memo).unwrap().unwrap().token,
            token(2)
        );
        // A new codec (a reload) never answers from an older one's memo,
        // even with the same keys; with the key retired, nothing opens.
        memo.as_mut().unwrap().opened.token.expires_at = 7;
        let reloaded = CookieCodec::new(&cfg(&[K1])).unwrap();
        let fresh = open(&reloaded, &resealed, &mut memo).unwrap().unwrap();
        assert_eq!(fresh.token, token(2));
        let rotated = CookieCodec::new(&cfg(&[K2])).unwrap();
        assert_eq!(open(&rotated, &resealed, &mut memo), Err(()));
        // Of two cookies of ours, the first that opens counts, memo or not.
        let two = format!("{}=garbage; {first}", codec.name());
        for _ in 0..2 {
            assert_eq!(
                open(&codec, &two, &mut memo).unwrap().unwrap().token,
                token(1)
            );
        }
    }

    #[test]
    fn named_values_are_bound_to_their_name_and_keys() {
        let codec = CookieCodec::new(&cfg(&[K1])).unwrap();
        let sealed = codec.seal_named("portal", "hello").unwrap();
        assert_eq!(
            codec.open_named("portal", &sealed).as_deref(),
            Some("hello")
        );
        assert_eq!(codec.open_named("other", &sealed), None);
        assert_eq!(codec.open_named("portal", "garbage"), None);
        assert_eq!(codec.open_named("portal", &"A".repeat(5000)), None);
        let rotated = CookieCodec::new(&cfg(&[K2, K1])).unwrap();
        assert_eq!(
            rotated.open_named("portal", &sealed).as_deref(),
            Some("hello")
        );
        let other = CookieCodec::new(&cfg(&[K2])).unwrap();
        assert_eq!(other.open_named("portal", &sealed), None);
    }

    #[test]
    fn rotation_old_key_still_opens_new_key_seals() {
        let old = CookieCodec::new(&cfg(&[K1])).unwrap();
        let rotated = CookieCodec::new(&cfg(&[K2, K1])).unwrap();
        let only_new = CookieCodec::new(&cfg(&[K2])).unwrap();
        let token = SessionToken {
            id: [1; 32],
            expires_at: 99,
        };
        let old_cookie = format!("{NAME}={}", value_of(&old.seal(&token, 0)));
        assert_eq!(
            opened(&rotated, old_cookie.as_bytes()),
            Ok(Some(token.clone()))
        );
        assert_eq!(opened(&only_new, old_cookie.as_bytes()), Err(()));
        let new_cookie = format!("{NAME}={}", value_of(&rotated.seal(&token, 0)));
        assert_eq!(opened(&only_new, new_cookie.as_bytes()), Ok(Some(token)));
    }

    #[test]
    fn tampered_or_hostile_cookies_do_not_open() {
        let codec = CookieCodec::new(&cfg(&[K1])).unwrap();
        let v = value_of(&codec.seal(
            &SessionToken {
                id: [3; 32],
                expires_at: 5,
            },
            0,
        ));
        let mut flipped = v.clone().into_bytes();
        flipped[10] ^= 1;
        let flipped = String::from_utf8_lossy(&flipped).into_owned();
        for bad in [
            flipped,
            "".into(),
            "x".repeat(5000),
            "%%%".into(),
            v[..v.len() - 2].to_string(),
        ] {
            let h = format!("{NAME}={bad}");
            assert_eq!(opened(&codec, h.as_bytes()), Err(()), "{bad}");
        }
        // a second, valid cookie of the same name still wins
        let h = format!("{NAME}=garbage; {NAME}={v}");
        assert!(matches!(opened(&codec, h.as_bytes()), Ok(Some(_))));
        assert_eq!(opened(&codec, [0xff, 0xfe].as_slice()), Ok(None));
    }

    /// A `Cookie` header as the app gets it: the kept pairs joined (as
    /// `proxy::forward` joins them); `None` if nothing is left.
    fn stripped(codec: &CookieCodec, header: &[u8]) -> Option<String> {
        let kept: Vec<&str> = codec.kept_pairs(header).collect();
        (!kept.is_empty()).then(|| kept.join("; "))
    }

    #[test]
    fn strips_only_our_cookies() {
        let codec = CookieCodec::new(&cfg(&[K1])).unwrap();
        let header = format!("a=1; {NAME}=x; b=2; __Host-portcullis_flow_0f=y");
        assert!(codec.mentioned_in(header.as_bytes()));
        assert_eq!(
            stripped(&codec, header.as_bytes()).as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(stripped(&codec, format!("{NAME}=x").as_bytes()), None);
        assert_eq!(
            stripped(
                &codec,
                b"__Host-portcullis_session_other=1; portcullis_session=2"
            )
            .as_deref(),
            Some("__Host-portcullis_session_other=1; portcullis_session=2")
        );
        assert!(!codec.mentioned_in(b"a=1; portcullis_flow_x=2"));
    }

    #[test]
    fn host_prefix_when_secure_and_host_only() {
        let secure = CookieCodec::new(&cfg(&[K1])).unwrap();
        assert_eq!(secure.name(), NAME);
        let set = secure.seal(
            &SessionToken {
                id: [1; 32],
                expires_at: 10,
            },
            0,
        );
        assert!(
            set.starts_with("__Host-portcullis_session=")
                && set.contains("Path=/")
                && set.contains("Secure")
                && !set.contains("Domain"),
            "{set}"
        );
        // Not Secure, or with a Domain: browsers would drop a `__Host-`
        // cookie, so the configured name is used as is.
        let plain = CookieCodec::new(&SessionConfig {
            secure: false,
            ..cfg(&[K1])
        })
        .unwrap();
        assert_eq!(plain.name(), "portcullis_session");
        let domain = CookieCodec::new(&SessionConfig {
            domain: Some("example.com".into()),
            ..cfg(&[K1])
        })
        .unwrap();
        assert_eq!(domain.name(), "portcullis_session");
        // An operator who wrote the prefix doesn't get it twice.
        let written = CookieCodec::new(&SessionConfig {
            cookie_name: "__Host-s".into(),
            ..cfg(&[K1])
        })
        .unwrap();
        assert_eq!(written.name(), "__Host-s");
    }

    /// The cookie name is associated data. A value sealed under
    /// one name (another deployment's cookie, or the unprefixed name of
    /// before) does not open under another, with the same keys.
    #[test]
    fn the_cookie_name_is_bound_as_associated_data() {
        let prefixed = CookieCodec::new(&cfg(&[K1])).unwrap();
        let other = CookieCodec::new(&SessionConfig {
            cookie_name: "other_app_session".into(),
            ..cfg(&[K1])
        })
        .unwrap();
        let token = SessionToken {
            id: [9; 32],
            expires_at: 99,
        };
        let sealed_other = value_of(&other.seal(&token, 0));
        let moved = format!("{NAME}={sealed_other}");
        assert_eq!(opened(&prefixed, moved.as_bytes()), Err(()));
        // Control: under its own name it opens.
        let own = format!("__Host-other_app_session={sealed_other}");
        assert_eq!(opened(&other, own.as_bytes()), Ok(Some(token)));
    }

    #[test]
    fn logout_tokens_are_bound_to_the_session_and_rotate() {
        let old = CookieCodec::new(&cfg(&[K1])).unwrap();
        let rotated = CookieCodec::new(&cfg(&[K2, K1])).unwrap();
        let t = old.logout_token("hash-a");
        assert!(old.verify_logout_token("hash-a", &t));
        assert!(!old.verify_logout_token("hash-b", &t));
        assert!(rotated.verify_logout_token("hash-a", &t));
        assert!(
            !CookieCodec::new(&cfg(&[K2]))
                .unwrap()
                .verify_logout_token("hash-a", &t)
        );
        for bad in ["", "x", "%%%", &t[..t.len() - 2]] {
            assert!(!old.verify_logout_token("hash-a", bad), "{bad}");
        }
    }

    #[test]
    fn clearing_expires_the_same_cookie_at_once() {
        let codec = CookieCodec::new(&SessionConfig {
            same_site: SameSite::Strict,
            ..cfg(&[K1])
        })
        .unwrap();
        let clear = Cookie::parse(codec.clear()).unwrap();
        assert_eq!(clear.name(), NAME);
        assert_eq!(clear.value(), "");
        assert_eq!(clear.max_age(), Some(CookieDuration::ZERO));
        assert_eq!(
            clear.expires_datetime(),
            Some(cookie::time::OffsetDateTime::UNIX_EPOCH)
        );
        // Same attributes as the cookie it replaces, or browsers keep both.
        assert_eq!(clear.path(), Some("/"));
        assert_eq!(clear.secure(), Some(true));
        assert_eq!(clear.http_only(), Some(true));
        assert_eq!(clear.same_site(), Some(CookieSameSite::Strict));
        let scoped = CookieCodec::new(&SessionConfig {
            domain: Some("example.com".into()),
            ..cfg(&[K1])
        })
        .unwrap();
        let clear = Cookie::parse(scoped.clear()).unwrap();
        assert_eq!(clear.domain(), Some("example.com"));
        assert_eq!(clear.name(), "portcullis_session");
    }

    /// Debug output (logs, panics) names the cookie and never shows keys.
    #[test]
    fn debug_output_shows_no_key_material() {
        let codec = CookieCodec::new(&cfg(&[K1, K2])).unwrap();
        let shown = format!("{codec:?}");
        assert!(
            shown.contains("CookieCodec") && shown.contains(NAME),
            "{shown}"
        );
        assert!(shown.contains("keys: 2"), "{shown}");
        assert!(
            !shown.contains("key-one") && !shown.contains("Key"),
            "{shown}"
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            CookieCodec::new(&cfg(&["short"])),
            Err(CookieError::ShortKey { .. })
        ));
        assert!(matches!(
            CookieCodec::new(&cfg(&[])),
            Err(CookieError::NoKey)
        ));
    }

    /// The `Cookie` header read as the `cookie` crate reads it, and the
    /// pairs withheld as the `str`-splitting code before `pieces` kept
    /// them, for any header over an alphabet of the bytes that matter
    /// (separators, both kinds of blank, quotes, a non-ASCII letter and a
    /// non-ASCII space).
    mod reading {
        use super::super::{pairs, pieces};
        use proptest::prelude::*;

        fn header() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "=", ";", " ", "\t", "\"", "é", "\u{a0}"]),
                0..40,
            )
            .prop_map(|parts| parts.concat())
        }

        proptest! {
            #[test]
            fn pairs_are_the_cookie_crates(h in header()) {
                let ours: Vec<(&str, &str)> = pairs(&h).collect();
                let theirs: Vec<(String, String)> = cookie::Cookie::split_parse(h.as_str())
                    .flatten()
                    .map(|c| (c.name().to_owned(), c.value().to_owned()))
                    .collect();
                let theirs: Vec<(&str, &str)> =
                    theirs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                prop_assert_eq!(ours, theirs);
            }

            #[test]
            fn pieces_are_the_trimmed_splits(h in header()) {
                let ours: Vec<&str> = pieces(&h).collect();
                let split: Vec<&str> =
                    h.split(';').map(str::trim).filter(|p| !p.is_empty()).collect();
                prop_assert_eq!(ours, split);
            }
        }
    }
}
