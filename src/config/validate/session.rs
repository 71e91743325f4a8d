//! `[session]` and `[headers]`: the cookie browsers carry and the identity
//! headers the app reads.

use std::collections::HashSet;

use crate::config::load::Collector;
use crate::config::schema::{Config, SameSite};
use crate::names::{is_reserved_header, is_token, normalize_header_name};

/// Minimum cookie key length: `cookie::Key::derive_from` needs 256 bits of
/// input keying material.
pub const MIN_SESSION_KEY_BYTES: usize = 32;

pub(super) fn session(cfg: &Config, c: &mut Collector<'_>) {
    let s = &cfg.session;
    if !is_token(&s.cookie_name) {
        c.push(
            "session.cookie_name",
            "must be a cookie name (letters, digits, `-`, `_`, `.`)",
        );
    }
    // Browsers drop prefixed cookies that break the prefix's rules; with
    // `secure = true` and no `domain` Portcullis adds `__Host-` itself.
    if s.cookie_name.starts_with("__Host-") && !(s.secure && s.domain.is_none()) {
        c.push(
            "session.cookie_name",
            "a `__Host-` cookie needs `secure = true` and no `domain` (browsers drop it otherwise)",
        );
    }
    if s.cookie_name.starts_with("__Secure-") && !s.secure {
        c.push(
            "session.cookie_name",
            "a `__Secure-` cookie needs `secure = true` (browsers drop it otherwise)",
        );
    }
    if s.keys.is_empty() {
        c.push(
            "session.keys",
            format!(
                "at least one key of {MIN_SESSION_KEY_BYTES}+ bytes is required, e.g. keys = [\"${{PORTCULLIS_SESSION_KEY}}\"]"
            ),
        );
    }
    for (i, k) in s.keys.iter().enumerate() {
        if k.len() < MIN_SESSION_KEY_BYTES {
            c.push(
                format!("session.keys[{i}]"),
                format!(
                    "too short: {} bytes, need at least {MIN_SESSION_KEY_BYTES}",
                    k.len()
                ),
            );
        }
    }
    if s.absolute_lifetime_seconds == 0 {
        c.push(
            "session.absolute_lifetime_seconds",
            "must be greater than 0",
        );
    }
    if s.idle_lifetime_seconds == 0 || s.idle_lifetime_seconds > s.absolute_lifetime_seconds {
        c.push(
            "session.idle_lifetime_seconds",
            "must be greater than 0 and at most absolute_lifetime_seconds",
        );
    }
    if s.same_site == SameSite::None && !s.secure {
        c.push(
            "session.same_site",
            "`none` requires `secure = true` (browsers drop it otherwise)",
        );
    }
    if s.cache_capacity == 0 {
        c.push("session.cache_capacity", "must be greater than 0");
    }
    if s.cache_ttl_seconds == 0 || s.cache_ttl_seconds > 3600 {
        c.push("session.cache_ttl_seconds", "must be between 1 and 3600");
    }
}

pub(super) fn headers(cfg: &Config, c: &mut Collector<'_>) {
    let h = &cfg.headers;
    let mut seen = HashSet::new();
    let named = [
        ("user", &h.user),
        ("email", &h.email),
        ("name", &h.name),
        ("groups", &h.groups),
        ("roles", &h.roles),
        ("tenant", &h.tenant),
        ("principal_type", &h.principal_type),
        ("assertion", &h.assertion),
    ];
    let strip = h
        .strip
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("strip[{i}]"), n));
    let facts = h.auth_fact_headers().map(|(k, n)| (k.to_string(), n));
    let injected = named.len() + h.auth_fact_headers().count();
    for (i, (k, name)) in named
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .chain(facts)
        .chain(strip)
        .enumerate()
    {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            c.push(
                format!("headers.{k}"),
                format!("`{name}` is not a valid header name"),
            );
        } else if i < injected && is_reserved_header(name) {
            // An injected header is added beside the request's own fields
            // (`proxy::forward`), not in their place: one that frames the
            // message, carries a credential or is set from the connection
            // would reach the app twice, or steer HTTP itself.
            c.push(
                format!("headers.{k}"),
                format!(
                    "`{name}` is reserved (HTTP framing, credentials, forwarding or request rewriting)"
                ),
            );
        } else if !seen.insert(normalize_header_name(name)) {
            c.push(format!("headers.{k}"), format!("`{name}` is used twice"));
        }
    }
    if !(1..=3600).contains(&h.assertion_lifetime_seconds) {
        c.push(
            "headers.assertion_lifetime_seconds",
            "must be between 1 and 3600",
        );
    }
}
