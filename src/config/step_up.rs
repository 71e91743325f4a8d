//! Step-up authentication settings: a route's `acr` (any-of) and
//! `max_age`, and a connection's `acr_map`.
//!
//! Routes name authentication context classes in one vocabulary (the
//! operator's: `"mfa"`, `"phr"`, or the IdP's own values), because one
//! route may be reached by users of several tenants whose IdPs spell the
//! same strength differently — an OIDC provider's `acr` value, a SAML
//! `AuthnContextClassRef` URI. A connection's `acr_map` translates route
//! names to what its IdP sends and expects; a name it does not map is sent
//! and compared as it is. Sessions keep the achieved class in the route
//! vocabulary (translated back at sign-in), so the gate compares strings.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::load::Collector;
use super::schema::{Config, Policy};

/// Longest `max_age`: a step-up requirement looser than this is not one.
pub const MAX_STEP_UP_AGE_SECONDS: u64 = 366 * 24 * 3600;

/// Longest acr name or value: far above real ones (URIs of ~80 bytes),
/// bounded so a header or flow cookie stays small.
const MAX_ACR_BYTES: usize = 256;

/// A duration: whole seconds, or a string of a number with a unit
/// (`"90s"`, `"15m"`, `"12h"`, `"7d"`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}

impl Duration {
    /// Seconds, or why the text is not a duration.
    pub fn seconds(&self) -> Result<u64, String> {
        match self {
            Duration::Seconds(s) => Ok(*s),
            Duration::Text(t) => parse_duration(t),
        }
    }
}

fn parse_duration(t: &str) -> Result<u64, String> {
    let bad = || format!("`{t}` is not a duration: write seconds, or e.g. \"90s\", \"15m\", \"12h\", \"7d\"");
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() || number.len() > 12 {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

/// An acr name or value: printable ASCII without spaces (OIDC
/// `acr_values` is a space-separated list) or quotes (RFC 9470 carries the
/// names in a quoted `WWW-Authenticate` parameter).
pub fn is_acr(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ACR_BYTES
        && s.bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// `[[routes]]` `acr` and `max_age`: only on `required` routes, well
/// formed.
pub(super) fn routes(cfg: &Config, c: &mut Collector<'_>) {
    for (i, r) in cfg.routes.iter().enumerate() {
        let demands = !r.acr.is_empty() || r.max_age.is_some();
        if demands && r.policy != Policy::Required {
            c.push(
                format!("routes[{i}].policy"),
                "acr / max_age (step-up) need `policy = \"required\"`",
            );
        }
        let mut seen = Vec::new();
        for (j, a) in r.acr.iter().enumerate() {
            if !is_acr(a) {
                c.push(
                    format!("routes[{i}].acr[{j}]"),
                    format!(
                        "must be 1 to {MAX_ACR_BYTES} printable ASCII characters without spaces, quotes or backslashes"
                    ),
                );
            } else if seen.contains(&a) {
                c.push(format!("routes[{i}].acr[{j}]"), format!("`{a}` is listed twice"));
            }
            seen.push(a);
        }
        if let Some(d) = &r.max_age {
            match d.seconds() {
                Err(e) => c.push(format!("routes[{i}].max_age"), e),
                Ok(0) => c.push(
                    format!("routes[{i}].max_age"),
                    "must be at least one second",
                ),
                Ok(s) if s > MAX_STEP_UP_AGE_SECONDS => c.push(
                    format!("routes[{i}].max_age"),
                    "must be at most 366 days",
                ),
                Ok(_) => {}
            }
        }
    }
}

/// A connection's `acr_map` at `key`: route names to the IdP's values,
/// both well formed, and no IdP value twice (translating back must be
/// unambiguous).
pub(super) fn acr_map(map: &BTreeMap<String, String>, key: &str, c: &mut Collector<'_>) {
    let mut values: Vec<&str> = Vec::new();
    for (name, value) in map {
        let k = format!("{key}.acr_map.{name}");
        if !is_acr(name) {
            c.push(
                k.clone(),
                "the route's name must be printable ASCII without spaces, quotes or backslashes",
            );
        }
        if !is_acr(value) {
            c.push(
                k,
                format!(
                    "must be 1 to {MAX_ACR_BYTES} printable ASCII characters without spaces, quotes or backslashes"
                ),
            );
        } else if values.contains(&value.as_str()) {
            c.push(
                k,
                format!("`{value}` is mapped from two names; each IdP value names one"),
            );
        } else {
            values.push(value);
        }
    }
}

/// Translation between a route's acr names and one connection's IdP
/// values.
pub fn acr_to_idp<'a>(map: &'a BTreeMap<String, String>, name: &'a str) -> &'a str {
    map.get(name).map_or(name, String::as_str)
}

/// The route name of an IdP's acr value: the name mapped to it, else the
/// value itself.
pub fn acr_from_idp(map: &BTreeMap<String, String>, value: &str) -> String {
    map.iter()
        .find(|(_, v)| v.as_str() == value)
        .map_or_else(|| value.to_owned(), |(k, _)| k.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (t, s) in [("90", 90), ("90s", 90), ("15m", 900), ("12h", 43_200), ("7d", 604_800), (" 5m ", 300)] {
            assert_eq!(Duration::Text(t.into()).seconds(), Ok(s), "{t}");
        }
        assert_eq!(Duration::Seconds(42).seconds(), Ok(42));
        for bad in ["", "m", "15 m", "15M", "1.5h", "-5m", "15mm", "99999999999999d", "1w", "15m3s"] {
            assert!(Duration::Text(bad.into()).seconds().is_err(), "{bad}");
        }
    }

    #[test]
    fn acr_names() {
        assert!(is_acr("urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor"));
        assert!(is_acr("mfa"));
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb", &"x".repeat(257)] {
            assert!(!is_acr(bad), "{bad:?}");
        }
    }

    #[test]
    fn translation_both_ways() {
        let map: BTreeMap<String, String> =
            [("mfa".to_owned(), "urn:x:MultiFactor".to_owned())].into();
        assert_eq!(acr_to_idp(&map, "mfa"), "urn:x:MultiFactor");
        assert_eq!(acr_to_idp(&map, "other"), "other");
        assert_eq!(acr_from_idp(&map, "urn:x:MultiFactor"), "mfa");
        assert_eq!(acr_from_idp(&map, "urn:x:Password"), "urn:x:Password");
    }
}
