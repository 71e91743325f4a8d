//! `[limits]`: what a slow or greedy client may cost the process — time to
//! send a request header or a body Portcullis reads itself, open
//! connections, and per-client rates on the endpoints an attacker would
//! hammer (login starts, ACS/callback posts, SCIM token guessing).

use serde::Deserialize;

use super::load::Collector;
use super::schema::Config;

/// `[limits]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open downstream connections on all public listeners together; a
    /// connection beyond it gets a `503` and is closed at once. Restart to
    /// change.
    pub max_connections: usize,
    /// Requests being worked on at once, all public listeners together:
    /// from a complete request header until the app's response header
    /// arrives (or Portcullis' own answer is sent). Further requests wait
    /// their turn, in arrival order, holding only their header bytes; see
    /// `proxy::admission`. Unset: [`ACTIVE_REQUESTS_PER_THREAD`] per
    /// worker thread (see [`Config::max_active_requests`]). Restart to
    /// change.
    pub max_active_requests: Option<usize>,
    /// How long a request may wait for its turn before it is answered
    /// `503` with `retry-after: 1`. `0`: refuse at once when all
    /// `max_active_requests` are taken.
    pub queue_timeout_ms: u64,
    /// A request stops counting against `max_active_requests` between one
    /// and two of this after its admission even if the app has not
    /// answered yet, so long polls and slowly sent bodies cannot keep
    /// everyone else waiting. Restart to change.
    pub active_request_hold_ms: u64,
    /// From the first byte of a request (or from the moment a new connection
    /// is handed to HTTP) until its header is complete. Slower clients get a
    /// `408` and are disconnected.
    pub header_timeout_ms: u64,
    /// How long a kept-alive connection may wait, silent, for its next
    /// request before it is closed quietly.
    pub keepalive_timeout_seconds: u64,
    /// From the end of the header until the whole body Portcullis reads
    /// itself (internal endpoints, SCIM, SSO-enforced password logins) has
    /// arrived; otherwise `408` and the connection is closed.
    pub body_timeout_ms: u64,
    /// Per-client request rates (`[limits.rate]`).
    pub rate: RateLimitsConfig,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_active_requests: None,
            queue_timeout_ms: 5_000,
            active_request_hold_ms: 20,
            header_timeout_ms: 10_000,
            keepalive_timeout_seconds: 75,
            body_timeout_ms: 20_000,
            rate: RateLimitsConfig::default(),
        }
    }
}

/// The default bound on active requests, per worker thread. A thread
/// proxies ~20,000 small requests a second, so 128 requests in flight keep
/// it busy with room for an app a few milliseconds away, and take ~6 ms to
/// clear when it is saturated: well inside the 20 ms default hold. With
/// 1,024 instead, a saturated thread spent ~50 % more CPU per request at
/// 5,000 connections (larger working set, see `benches/results`).
pub(super) const ACTIVE_REQUESTS_PER_THREAD: usize = 128;

impl Config {
    /// `limits.max_active_requests`, or its default for `server.threads`.
    pub fn max_active_requests(&self) -> usize {
        self.limits
            .max_active_requests
            .unwrap_or(ACTIVE_REQUESTS_PER_THREAD.saturating_mul(self.server.threads.max(1)))
    }
}

/// `[limits.rate]`: fixed windows per client IP (IPv6 per /64).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// `{internal_prefix}sso/{id}/start` and the login page's email POST.
    pub login_start: Rate,
    /// SAML ACS posts and OIDC/SSO callbacks: each one costs a signature
    /// verification or a token exchange.
    pub login_callback: Rate,
    /// Failed SCIM bearer-token checks. Once over the limit every SCIM
    /// request from that client gets `429` (valid token or not) until the
    /// window ends.
    pub scim_auth_failure: Rate,
    /// Clients remembered at once, all limits together; the least recently
    /// seen are forgotten first. Bounds memory whatever number of addresses
    /// an attacker rotates through. Restart to change.
    pub max_tracked_clients: u64,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            // 5 a second per address, sustained: far above any person,
            // room for an office behind one NAT, and one address still
            // gets only a sliver of the ~4,000 signature checks a core
            // does per second.
            login_start: Rate {
                max: 300,
                window_seconds: 60,
            },
            login_callback: Rate {
                max: 300,
                window_seconds: 60,
            },
            scim_auth_failure: Rate {
                max: 10,
                window_seconds: 60,
            },
            max_tracked_clients: 65_536,
        }
    }
}

/// At most `max` per client in a window of `window_seconds`; `max = 0`
/// turns the limit off.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub max: u32,
    pub window_seconds: u64,
}

/// Semantic checks of `[limits]`.
pub(crate) fn validate(cfg: &Config, c: &mut Collector<'_>) {
    let l = &cfg.limits;
    if l.max_connections == 0 {
        c.push("limits.max_connections", "must be greater than 0");
    }
    if l.max_active_requests
        .is_some_and(|n| !(1..=1_000_000).contains(&n))
    {
        c.push(
            "limits.max_active_requests",
            "must be between 1 and 1000000",
        );
    }
    if l.queue_timeout_ms > 600_000 {
        c.push(
            "limits.queue_timeout_ms",
            "must be at most 600000 (milliseconds)",
        );
    }
    if !(1..=600_000).contains(&l.active_request_hold_ms) {
        c.push(
            "limits.active_request_hold_ms",
            "must be between 1 and 600000 (milliseconds)",
        );
    }
    // Below 100 ms even a healthy client on a slow link is cut off; above
    // ten minutes the bound protects nothing.
    for (key, v) in [
        ("limits.header_timeout_ms", l.header_timeout_ms),
        ("limits.body_timeout_ms", l.body_timeout_ms),
    ] {
        if !(100..=600_000).contains(&v) {
            c.push(key, "must be between 100 and 600000 (milliseconds)");
        }
    }
    if !(1..=3600).contains(&l.keepalive_timeout_seconds) {
        c.push(
            "limits.keepalive_timeout_seconds",
            "must be between 1 and 3600",
        );
    }
    for (name, r) in [
        ("login_start", &l.rate.login_start),
        ("login_callback", &l.rate.login_callback),
        ("scim_auth_failure", &l.rate.scim_auth_failure),
    ] {
        if !(1..=86_400).contains(&r.window_seconds) {
            c.push(
                format!("limits.rate.{name}.window_seconds"),
                "must be between 1 and 86400",
            );
        }
    }
    if l.rate.max_tracked_clients < 1024 {
        c.push("limits.rate.max_tracked_clients", "must be at least 1024");
    }
}
