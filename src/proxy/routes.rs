//! The route table: host + path prefix → policy. Matching is done on the raw
//! path *and* on a normalised one (percent-decoded, dot-segments resolved,
//! repeated slashes collapsed) and the stricter policy wins, so
//! `/public/..%2Fadmin` or `//admin` can't borrow a public route's policy
//! when the app behind normalises paths differently from us.

use std::borrow::Cow;

use crate::config::{Config, Policy, RouteConfig};

/// What a request must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub policy: Policy,
    pub allowed_groups: Vec<String>,
    pub allowed_roles: Vec<String>,
}

#[derive(Debug, Clone)]
struct Route {
    host: Option<String>,
    prefix: String,
    target: RouteMatch,
}

/// Compiled routes, most specific first.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    default: RouteMatch,
}

impl RouteTable {
    pub fn compile(cfg: &Config) -> Self {
        let mut routes: Vec<Route> = cfg.routes.iter().map(compile_route).collect();
        // Host-specific before host-agnostic, then longest prefix first.
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.prefix.len().cmp(&a.prefix.len()))
        });
        Self {
            routes,
            default: RouteMatch {
                policy: cfg.server.default_policy,
                allowed_groups: Vec::new(),
                allowed_roles: Vec::new(),
            },
        }
    }

    /// The route for `host` (may carry a port) and `path` (no query).
    pub fn lookup(&self, host: Option<&str>, path: &str) -> &RouteMatch {
        let host = host.map(strip_port);
        let raw = self.lookup_exact(host, path);
        let normalized = normalize_path(path);
        if normalized == path {
            return raw;
        }
        let norm = self.lookup_exact(host, &normalized);
        if stricter(norm, raw) { norm } else { raw }
    }

    fn lookup_exact(&self, host: Option<&str>, path: &str) -> &RouteMatch {
        self.routes
            .iter()
            .find(|r| {
                r.host
                    .as_deref()
                    .is_none_or(|h| host.is_some_and(|rh| rh.eq_ignore_ascii_case(h)))
                    && prefix_matches(&r.prefix, path)
            })
            .map(|r| &r.target)
            .unwrap_or(&self.default)
    }
}

fn compile_route(r: &RouteConfig) -> Route {
    Route {
        host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
        prefix: r.prefix.clone(),
        target: RouteMatch {
            policy: r.policy,
            allowed_groups: r.allowed_groups.clone(),
            allowed_roles: r.allowed_roles.clone(),
        },
    }
}

/// Stricter = higher policy, or same policy with a membership requirement.
fn stricter(a: &RouteMatch, b: &RouteMatch) -> bool {
    let restricted = |m: &RouteMatch| !m.allowed_groups.is_empty() || !m.allowed_roles.is_empty();
    a.policy > b.policy || (a.policy == b.policy && restricted(a) && !restricted(b))
}

/// `/api` matches `/api` and `/api/…` but not `/apix`; `/api/` matches
/// everything below it.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix) || path == prefix.trim_end_matches('/')
    } else {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: `[::1]:8080`
        return host
            .split_once(']')
            .map(|(h, _)| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// Percent-decodes (repeatedly, to defeat double encoding), turns `\` into
/// `/`, collapses `//` and resolves `.`/`..` segments.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let needs = path.contains(['%', '\\']) || path.contains("//") || path.contains("/.");
    if !needs {
        return Cow::Borrowed(path);
    }
    let mut decoded = path.to_owned();
    for _ in 0..3 {
        let next = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let decoded = decoded.replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(decoded.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() || (decoded.ends_with('/') && !out.is_empty()) {
        s.push('/');
    }
    Cow::Owned(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let cfg = crate::config::from_str(
            r#"
[[listeners]]
address = "127.0.0.1:1"
[session]
keys = ["0123456789012345678901234567890123456789"]
[store]
encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE="
[server]
default_policy = "public"
[[routes]]
prefix = "/"
policy = "optional"
[[routes]]
prefix = "/admin"
policy = "required"
allowed_groups = ["admins"]
[[routes]]
prefix = "/public/"
policy = "public"
[[routes]]
prefix = "/"
host = "api.example.com"
policy = "required"
"#,
            "t",
            &|_| None,
        )
        .unwrap();
        RouteTable::compile(&cfg)
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let t = table();
        assert_eq!(t.lookup(None, "/admin").policy, Policy::Required);
        assert_eq!(t.lookup(None, "/admin/x").policy, Policy::Required);
        assert_eq!(t.lookup(None, "/adminx").policy, Policy::Optional);
        assert_eq!(t.lookup(None, "/public/a.css").policy, Policy::Public);
        assert_eq!(t.lookup(None, "/public").policy, Policy::Public);
        assert_eq!(
            t.lookup(Some("API.example.com:443"), "/public/a").policy,
            Policy::Required
        );
        assert_eq!(t.lookup(Some("other.com"), "/x").policy, Policy::Optional);
    }

    #[test]
    fn traversal_tricks_get_the_stricter_policy() {
        let t = table();
        for p in [
            "/public/../admin",
            "/public/..%2Fadmin",
            "/public/%2e%2e/admin",
            "/public/%252e%252e/admin",
            "/public/..\\admin",
            "//admin",
            "/public/./../admin/",
            "/%61dmin",
        ] {
            let m = t.lookup(None, p);
            assert_eq!(m.policy, Policy::Required, "{p}");
            assert_eq!(m.allowed_groups, vec!["admins".to_string()], "{p}");
        }
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize_path("/a/b"), "/a/b");
        assert_eq!(normalize_path("/a//b/../c/"), "/a/c/");
        assert_eq!(normalize_path("/../../"), "/");
        assert_eq!(normalize_path("/%2F%2Fx"), "/x");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("h:80"), "h");
    }
}
