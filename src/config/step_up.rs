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
    let bad = || {
        format!("`{t}` is not a duration: write seconds, or e.g. \"90s\", \"15m\", \"12h\", \"7d\"")
    };
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
                c.push(
                    format!("routes[{i}].acr[{j}]"),
                    format!("`{a}` is listed twice"),
                );
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
                Ok(s) if s > MAX_STEP_UP_AGE_SECONDS => {
                    c.push(format!("routes[{i}].max_age"), "must be at most 366 days")
                }
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
        for (t, s) in [
            ("90", 90),
            ("90s", 90),
            ("15m", 900),
            ("12h", 43_200),
            ("7d", 604_800),
            (" 5m ", 300),
        ] {
            assert_eq!(Duration::Text(t.into()).seconds(), Ok(s), "{t}");
        }
        assert_eq!(Duration::Seconds(42).seconds(), Ok(42));
        for bad in [
            "",
            "m",
            "15 m",
            "15M",
            "1.5h",
            "-5m",
            "15mm",
            "99999999999999d",
            "1w",
            "15m3s",
        ] {
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

    fn env(name: &str) -> Option<String> {
        match name {
            "SESSION_KEY" => Some("k".repeat(40)),
            _ => None,
        }
    }

    const MINIMAL: &str = r#"store = { encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE=" }
[[listeners]]
address = "127.0.0.1:8080"

[session]
keys = ["${SESSION_KEY}"]
"#;

    const TENANT: &str = r#"
[[tenants]]
id = "acme"
[[tenants.connections]]
id = "acme-saml"
protocol = "oidc"
[tenants.connections.oidc]
issuer = "https://idp.example.com"
client_id = "c"
client_secret = "s"
"#;

    #[test]
    fn good_settings_load() {
        let text = format!(
            r#"{MINIMAL}
[headers]
acr = "X-Forwarded-Acr"
auth_time = "X-Auth-Time"

[[routes]]
prefix = "/admin"
policy = "required"
acr = ["mfa", "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"]
max_age = "15m"

[[routes]]
prefix = "/pay"
policy = "required"
max_age = 300
{TENANT}[tenants.connections.acr_map]
mfa = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
"#
        );
        let cfg = crate::config::from_str(&text, "t.toml", &env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.routes[0].acr.len(), 2);
        assert_eq!(cfg.routes[0].max_age.as_ref().unwrap().seconds(), Ok(900));
        assert_eq!(cfg.routes[1].max_age.as_ref().unwrap().seconds(), Ok(300));
        assert_eq!(cfg.headers.auth_fact_headers().count(), 2);
        assert_eq!(cfg.tenants[0].connections[0].acr_map.len(), 1);
    }

    /// Every mistake is named with file, line and key.
    #[test]
    fn mistakes_name_file_line_and_key() {
        let text = format!(
            r#"{MINIMAL}
[headers]
acr = "X_Forwarded_Email"
amr = "Not A Header"

[[routes]]
prefix = "/a"
policy = "optional"
acr = ["mfa", "two words", "mfa", ""]
max_age = "15 minutes"

[[routes]]
prefix = "/b"
policy = "required"
max_age = 0

[[routes]]
prefix = "/c"
policy = "required"
max_age = "400d"
{TENANT}[tenants.connections.acr_map]
mfa = "urn:x"
hwk = "urn:x"
"bad name" = "has space"
"#
        );
        let errs: Vec<String> = match crate::config::from_str(&text, "t.toml", &env) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        };
        for expected in [
            "t.toml:9: headers.acr: `X_Forwarded_Email` is used twice",
            "t.toml:10: headers.amr: `Not A Header` is not a valid header name",
            "t.toml:14: routes[0].policy: acr / max_age (step-up) need",
            "t.toml:15: routes[0].acr[1]: must be 1 to 256 printable",
            "t.toml:15: routes[0].acr[2]: `mfa` is listed twice",
            "t.toml:15: routes[0].acr[3]: must be 1 to 256 printable",
            "t.toml:16: routes[0].max_age: `15 minutes` is not a duration",
            "t.toml:21: routes[1].max_age: must be at least one second",
            "t.toml:26: routes[2].max_age: must be at most 366 days",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(expected)),
                "{expected}\n{errs:#?}"
            );
        }
        let map_errs: Vec<&String> = errs.iter().filter(|e| e.contains("acr_map")).collect();
        assert_eq!(map_errs.len(), 3, "{map_errs:#?}");
        assert!(
            map_errs
                .iter()
                .any(|e| e.contains("`urn:x` is mapped from two names")),
            "{map_errs:#?}"
        );
        assert!(
            map_errs.iter().all(|e| e.starts_with("t.toml:")),
            "{map_errs:#?}"
        );
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
