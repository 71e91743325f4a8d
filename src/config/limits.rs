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
            header_timeout_ms: 10_000,
            keepalive_timeout_seconds: 75,
            body_timeout_ms: 20_000,
            rate: RateLimitsConfig::default(),
        }
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
