//! Per-client rate limits on the endpoints an attacker hammers: login
//! starts, ACS/callback posts (each costs a signature check or a token
//! exchange) and SCIM bearer-token guessing.
//!
//! The decision is a pure function of a client's window and the time
//! ([`count`], [`check`]); [`RateLimiter`] only keeps the windows. Fixed
//! windows rather than a token bucket because the promise to operators is
//! "at most N per window, then `429` until the window ends", which is what
//! a fixed window does and what `Retry-After` can state exactly.
//!
//! The windows live in a `moka` cache (as do the proxy's other bounded
//! caches) bounded by `max_tracked_clients` with least-recently-used
//! eviction, so an attacker rotating through addresses costs bounded
//! memory: at worst it pushes out clients that have been quiet the
//! longest, which are the ones nearest to being allowed again anyway.
//! `governor` was the alternative; its keyed store grows without bound
//! between manual sweeps and has no "look without counting", which the
//! SCIM limit (count failures only, refuse everyone once over) needs.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use moka::policy::EvictionPolicy;
use serde_json::json;

use crate::config::{Rate, RateLimitsConfig};

use pingora::proxy::Session;

use super::mount::ScimMount;
use super::respond::{Reply, from_router};
use super::state::ProxyState;

/// The limited endpoint classes (also the `limit` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    LoginStart,
    LoginCallback,
    ScimAuthFailure,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::LoginStart => "login_start",
            Limit::LoginCallback => "login_callback",
            Limit::ScimAuthFailure => "scim_auth_failure",
        }
    }

    fn rate(self, cfg: &RateLimitsConfig) -> Rate {
        match self {
            Limit::LoginStart => cfg.login_start,
            Limit::LoginCallback => cfg.login_callback,
            Limit::ScimAuthFailure => cfg.scim_auth_failure,
        }
    }
}

/// Which limit, if any, an internal endpoint falls under. Segments are
/// compared case-insensitively and empty ones skipped: a spelling the
/// router would not serve is limited too, which costs nothing.
/// `mount` is the internal prefix without its trailing slash.
pub fn internal_limit(mount: &str, method: &Method, path: &str) -> Option<Limit> {
    let rest = path.strip_prefix(mount)?;
    let mut segs = rest.split('/').filter(|s| !s.is_empty());
    let (a, b, c, d) = (segs.next(), segs.next(), segs.next(), segs.next());
    let is = |s: Option<&str>, want: &str| s.is_some_and(|s| s.eq_ignore_ascii_case(want));
    match (a, b, c, d) {
        (Some(_), None, None, None) if is(a, "login") && method == Method::POST => {
            Some(Limit::LoginStart)
        }
        (Some(_), None, None, None) if is(a, "step-up") => Some(Limit::LoginStart),
        (Some(_), Some(_), Some(_), None) if is(a, "sso") && is(c, "start") => {
            Some(Limit::LoginStart)
        }
        // Redeeming a setup link (`setup/psl_…`): a token lookup each.
        (Some(_), Some(b), None, None)
            if is(a, "setup") && b.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("psl_")) =>
        {
            Some(Limit::LoginStart)
        }
        (Some(_), Some(_), Some(_), None)
            if (is(a, "saml") && is(c, "acs"))
                || ((is(a, "sso") || is(a, "oidc") || is(a, "platform")) && is(c, "callback")) =>
        {
            Some(Limit::LoginCallback)
        }
        _ => None,
    }
}

/// The client a limit applies to: the socket peer, or — only with
/// `[server] trust_forwarded_headers` — the right-most `X-Forwarded-For`
/// entry, the one the trusted balancer in front appended (entries to its
/// left were written by the client and prove nothing).
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trust_forwarded: bool,
) -> Option<IpAddr> {
    if trust_forwarded
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(parse_forwarded_ip)
    {
        return Some(ip);
    }
    peer
}

fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse().ok())
        })
}

/// Whom a window belongs to. IPv6 clients are counted per /64: one host
/// usually holds a whole /64, and counting single addresses would let it
/// take 2^64 fresh windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(u32),
    V6Net(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(u32::from(v4)),
                None => ClientKey::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// One client's current window for one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Instant,
    pub len: Duration,
    pub count: u32,
}

impl Window {
    fn active(&self, now: Instant) -> bool {
        now < self.start + self.len
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refuse; the window ends after this long.
    Limited {
        retry_after: Duration,
    },
}

impl Decision {
    /// `Retry-After` in whole seconds, rounded up (never 0: "now" would
    /// invite an immediate retry that is still refused).
    pub fn retry_after_seconds(&self) -> u64 {
        match self {
            Decision::Allow => 0,
            Decision::Limited { retry_after } => {
                let s = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                s.max(1)
            }
        }
    }
}

/// Counts one event at `now` against `prev` (the client's window, if any):
/// the new window and whether this event is within the limit.
pub fn count(prev: Option<Window>, rate: Rate, now: Instant) -> (Window, Decision) {
    let len = Duration::from_secs(rate.window_seconds);
    let w = match prev {
        Some(w) if w.active(now) => Window {
            count: w.count.saturating_add(1),
            ..w
        },
        _ => Window {
            start: now,
            len,
            count: 1,
        },
    };
    let decision = if w.count > rate.max {
        Decision::Limited {
            retry_after: (w.start + w.len).saturating_duration_since(now),
        }
    } else {
        Decision::Allow
    };
    (w, decision)
}

/// Whether a client that has already used `prev` may go on, without
/// counting anything (the SCIM limit counts only failures, but refuses
/// every request once they are over the limit).
pub fn check(prev: Option<Window>, rate: Rate, now: Instant) -> Decision {
    match prev {
        Some(w) if w.active(now) && w.count >= rate.max => Decision::Limited {
            retry_after: (w.start + w.len).saturating_duration_since(now),
        },
        _ => Decision::Allow,
    }
}

/// Where "now" comes from; tests move it by hand instead of sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The monotonic clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to (tests).
pub struct ManualClock {
    base: Instant,
    offset_ms: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            offset_ms: AtomicU64::new(0),
        }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// Entries leave the cache once their window is over (memory goes back
/// after an attack), whatever the capacity.
struct WindowExpiry;

impl moka::Expiry<(Limit, ClientKey), Window> for WindowExpiry {
    fn expire_after_create(
        &self,
        _: &(Limit, ClientKey),
        w: &Window,
        _: Instant,
    ) -> Option<Duration> {
        Some(w.len)
    }

    fn expire_after_update(
        &self,
        _: &(Limit, ClientKey),
        w: &Window,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(w.len)
    }
}

/// The clients' windows. Process-lifetime (a reload keeps the counts); the
/// rates come from the configuration generation of each request.
pub struct RateLimiter {
    windows: moka::sync::Cache<(Limit, ClientKey), Window>,
    clock: ArcSwap<Arc<dyn Clock>>,
    logged: super::conn::LogGate,
}

impl RateLimiter {
    pub fn new(max_tracked_clients: u64) -> Self {
        Self {
            windows: moka::sync::Cache::builder()
                .max_capacity(max_tracked_clients)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(WindowExpiry)
                .build(),
            clock: ArcSwap::from_pointee(Arc::new(SystemClock)),
            logged: super::conn::LogGate::default(),
        }
    }

    /// Replaces the clock (tests).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        self.clock.store(Arc::new(clock));
    }

    fn now(&self) -> Instant {
        self.clock.load().now()
    }

    /// Counts a request of `ip` under `limit` and decides it.
    pub fn hit(&self, cfg: &RateLimitsConfig, limit: Limit, ip: Option<IpAddr>) -> Decision {
        let rate = limit.rate(cfg);
        let Some(ip) = ip.filter(|_| rate.max > 0) else {
            return Decision::Allow;
        };
        let now = self.now();
        let mut decision = Decision::Allow;
        // Read-modify-write under the entry's lock: concurrent requests of
        // one client can't both see the last free slot.
        self.windows
            .entry((limit, ClientKey::from(ip)))
            .and_compute_with(|prev| {
                let (w, d) = count(prev.map(|e| *e.value()), rate, now);
                decision = d;
                moka::ops::compute::Op::Put(w)
            });
        decision
    }

    /// Records an event of `ip` under `limit` without deciding anything.
    pub fn record(&self, cfg: &RateLimitsConfig, limit: Limit, ip: Option<IpAddr>) {
        let _ = self.hit(cfg, limit, ip);
    }

    /// Whether `ip` is over `limit`, without counting.
    pub fn check(&self, cfg: &RateLimitsConfig, limit: Limit, ip: Option<IpAddr>) -> Decision {
        let rate = limit.rate(cfg);
        let Some(ip) = ip.filter(|_| rate.max > 0) else {
            return Decision::Allow;
        };
        check(
            self.windows.get(&(limit, ClientKey::from(ip))),
            rate,
            self.now(),
        )
    }
}

/// The client of `session` as the limits see it.
pub fn request_client(session: &Session, st: &ProxyState) -> Option<IpAddr> {
    client_ip(
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip()),
        &session.req_header().headers,
        st.generation.config.server.trust_forwarded_headers,
    )
}

/// Counts a request to a limited internal endpoint; `Some(status)` when it
/// was over the limit and answered `429`.
pub async fn limit_internal(
    limiter: &RateLimiter,
    session: &mut Session,
    st: &ProxyState,
    limit: Limit,
    wants_html: bool,
    request_id: &str,
) -> pingora::Result<Option<u16>> {
    let ip = request_client(session, st);
    let decision = limiter.hit(&st.generation.config.limits.rate, limit, ip);
    if decision == Decision::Allow {
        return Ok(None);
    }
    refused(limiter, st, limit, ip, decision, request_id);
    too_many(decision, wants_html, request_id)
        .send(session, request_id)
        .await
        .map(Some)
}

/// Before a SCIM request: `Some(status)` when its client failed to
/// authenticate too often and was answered `429` (in `scim`'s error
/// format).
pub async fn limit_scim(
    limiter: &RateLimiter,
    session: &mut Session,
    st: &ProxyState,
    scim: &ScimMount,
    request_id: &str,
) -> pingora::Result<Option<u16>> {
    let limit = Limit::ScimAuthFailure;
    let ip = request_client(session, st);
    let decision = limiter.check(&st.generation.config.limits.rate, limit, ip);
    if decision == Decision::Allow {
        return Ok(None);
    }
    refused(limiter, st, limit, ip, decision, request_id);
    scim_too_many(decision, scim)
        .await
        .send(session, request_id)
        .await
        .map(Some)
}

/// After a SCIM request from `client`: a `401` counts against it.
pub fn scim_answered(
    limiter: &RateLimiter,
    st: &ProxyState,
    client: Option<IpAddr>,
    status: StatusCode,
) {
    if status == StatusCode::UNAUTHORIZED {
        limiter.record(
            &st.generation.config.limits.rate,
            Limit::ScimAuthFailure,
            client,
        );
    }
}

/// Counts and logs a refusal (at most one line a second: a client over a
/// limit repeats at will; the metric counts every one).
fn refused(
    limiter: &RateLimiter,
    st: &ProxyState,
    limit: Limit,
    ip: Option<IpAddr>,
    d: Decision,
    request_id: &str,
) {
    st.generation
        .metrics
        .limits
        .rate_limited
        .with_label_values(&[limit.as_str()])
        .inc();
    if let Some(suppressed) = limiter.logged.admit() {
        tracing::warn!(
            request_id,
            limit = limit.as_str(),
            client = %ip.map(|i| i.to_string()).unwrap_or_default(),
            retry_after_seconds = d.retry_after_seconds(),
            suppressed,
            "rate limit exceeded: 429"
        );
    }
}

/// The `429` of a browser or API endpoint: generic, with `Retry-After`.
pub fn too_many(decision: Decision, wants_html: bool, request_id: &str) -> Reply {
    let text = "Too many attempts from your network. Please wait a moment and try again.";
    let (content_type, body) = if wants_html {
        (
            "text/html; charset=utf-8",
            crate::endpoints::pages::message("Too many attempts", text, None, request_id),
        )
    } else {
        (
            "application/json",
            json!({"error": "rate_limited", "message": text, "request_id": request_id}).to_string(),
        )
    };
    reply(decision, content_type, body)
}

/// The `429` of the SCIM API, in SCIM's error format (RFC 7644 §3.12).
async fn scim_too_many(decision: Decision, scim: &ScimMount) -> Reply {
    let resp = (scim.error)(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed authentication attempts; retry later",
    );
    from_router(resp, scim.mount.max_response).await.header(
        http::header::RETRY_AFTER,
        &decision.retry_after_seconds().to_string(),
    )
}

fn reply(decision: Decision, content_type: &'static str, body: String) -> Reply {
    Reply {
        status: StatusCode::TOO_MANY_REQUESTS,
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        )],
        body: Bytes::from(body),
    }
    .header(
        http::header::RETRY_AFTER,
        &decision.retry_after_seconds().to_string(),
    )
}

#[cfg(test)]
mod tests;
