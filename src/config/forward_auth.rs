//! `[forward_auth]`: Portcullis as the decision endpoint of a host proxy
//! that already runs at the edge (nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `ForwardAuth`, Envoy `ext_authz`), and the hosts
//! a login may send the browser back to.
//!
//! Each endpoint speaks exactly one configured convention: the host proxies
//! copy client headers into the auth request, so a convention guessed from
//! the headers present would let a client pick the one whose headers it
//! controls.

use serde::Deserialize;

use super::load::Collector;
use super::schema::Config;
use crate::names::is_hostname;

/// `[forward_auth]`. Off when it has no endpoints.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// CIDRs (or bare addresses) of the host proxies. The forwarded request
    /// metadata is believed only from a TCP peer inside one of them; anyone
    /// else gets a 403.
    pub trusted_proxies: Vec<String>,
    /// The protected hosts (`app.example.com`, any port): where a login may
    /// return the browser to by absolute URL. The `public_url` host and every
    /// `[[routes]].host` count too. Each must share `session.domain` with
    /// `public_url`, or the session cookie would never reach it.
    pub hosts: Vec<String>,
    /// The decision endpoints (`[[forward_auth.endpoints]]`).
    pub endpoints: Vec<ForwardAuthEndpoint>,
}

impl ForwardAuthConfig {
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }
}

/// One decision endpoint.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthEndpoint {
    /// Under `server.internal_prefix`; default `{internal_prefix}auth`.
    #[serde(default)]
    pub path: Option<String>,
    /// Which host proxy calls it, and so which headers describe the
    /// original request.
    pub convention: Convention,
    /// The host proxy sends the original request's body as the auth
    /// request's own (Traefik `forwardBody: true`; Envoy
    /// `with_request_body` with `allow_partial_message: false`), so SSO
    /// enforcement can read a password-login submission. Without it, and
    /// for nginx and Caddy, which cannot, every request to a `[login]
    /// password_endpoints` path is refused (nginx: unless `X-Original-Body:
    /// none` says the request has no body).
    #[serde(default)]
    pub forwards_body: bool,
}

impl ForwardAuthEndpoint {
    /// The path it is served at.
    pub fn path_in(&self, cfg: &Config) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("{}auth", cfg.server.internal_prefix))
    }
}

/// How a host proxy describes the original request, and which answers it
/// understands.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Convention {
    /// nginx `auth_request` (and ingress-nginx external auth):
    /// `X-Original-Method` and exactly one of `X-Original-URI` (with `Host`)
    /// or `X-Original-URL`. Only 2xx, 401 and 403 work there (anything else
    /// is a 500), so browsers get a 401 naming the login page in
    /// `X-Portcullis-Login`.
    Nginx,
    /// Caddy `forward_auth` and Traefik `ForwardAuth`: `X-Forwarded-Method`,
    /// `-Proto`, `-Host` and `-Uri`, all required. Non-2xx answers reach the
    /// browser as they are, so anonymous browsers get the 302 to the login.
    Forward,
    /// Envoy `ext_authz` over HTTP: the endpoint path is the `path_prefix`,
    /// the original path and query follow it; method and `Host` are the
    /// original ones.
    Envoy,
}

impl Convention {
    pub fn as_str(self) -> &'static str {
        match self {
            Convention::Nginx => "nginx",
            Convention::Forward => "forward",
            Convention::Envoy => "envoy",
        }
    }
}

/// Where a login or logout may send the browser back to: same-origin paths
/// always, absolute `http(s)` URLs only on these hosts (any port), never
/// anywhere else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnTargets {
    hosts: Vec<String>,
    https_only: bool,
}

impl ReturnTargets {
    /// `hosts` are compared lower-case; with `https_only`, an absolute
    /// `http://` target is refused (secure cookies would not go with it).
    pub fn new(hosts: impl IntoIterator<Item = String>, https_only: bool) -> Self {
        let mut out: Vec<String> = Vec::new();
        for h in hosts {
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            if !h.is_empty() && !out.contains(&h) {
                out.push(h);
            }
        }
        Self {
            hosts: out,
            https_only,
        }
    }

    /// `s` when it is a safe return target, else `None` (callers fall back
    /// to `/`).
    pub fn check<'a>(&self, s: &'a str) -> Option<&'a str> {
        crate::redirect::safe_return_target(s, &self.hosts, self.https_only)
    }

    /// `scheme://authority` of an absolute target `check` accepted, for a
    /// CSP `form-action` source; `None` for a path.
    pub fn origin_of(&self, target: &str) -> Option<String> {
        let target = self.check(target)?;
        let (scheme, rest) = target.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Some(format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            &rest[..end]
        ))
    }
}

impl Config {
    /// The hosts a login may return to: `public_url`'s, every
    /// `[[routes]].host` and `[forward_auth] hosts`.
    pub fn return_targets(&self) -> ReturnTargets {
        let public = public_host(&self.server.public_url);
        let hosts = public
            .into_iter()
            .chain(self.routes.iter().filter_map(|r| r.host.clone()))
            .chain(self.forward_auth.hosts.iter().cloned());
        ReturnTargets::new(hosts, self.session.secure)
    }
}

/// The host of `public_url`, lower-case, without port.
fn public_host(public_url: &str) -> Option<String> {
    let uri: http::Uri = public_url.parse().ok()?;
    uri.host()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
}

/// The first path segments of the internal router. A forward-auth endpoint
/// must not shadow one of them (it is matched before the router).
pub const INTERNAL_SEGMENTS: &[&str] = &[
    "login",
    "logout",
    "jwks.json",
    "session",
    "sso",
    "saml",
    "oidc",
    "dev-idp",
];

/// Semantic checks of `[forward_auth]`.
pub(crate) fn validate(cfg: &Config, c: &mut Collector<'_>) {
    let fa = &cfg.forward_auth;
    for (i, p) in fa.trusted_proxies.iter().enumerate() {
        match parse_proxy(p) {
            None => c.push(
                format!("forward_auth.trusted_proxies[{i}]"),
                format!("`{p}` is not an address or CIDR, e.g. `10.0.0.0/8` or `127.0.0.1`"),
            ),
            Some(net) if net.prefix_len() == 0 => c.warn(
                format!("forward_auth.trusted_proxies[{i}]"),
                "trusts every address: any client can then describe any request it likes",
            ),
            Some(_) => {}
        }
    }
    if fa.enabled() && fa.trusted_proxies.is_empty() {
        c.push(
            "forward_auth.trusted_proxies",
            "list the host proxies' addresses (CIDRs); without them every forward-auth request is refused",
        );
    }
    let prefix = cfg.server.internal_prefix.as_str();
    let mut seen: Vec<String> = Vec::new();
    for (i, ep) in fa.endpoints.iter().enumerate() {
        let key = format!("forward_auth.endpoints[{i}].path");
        let path = ep.path_in(cfg);
        let rest = path.strip_prefix(prefix);
        match rest {
            None | Some("") => c.push(
                key,
                format!(
                    "must be a path under server.internal_prefix (`{prefix}`), e.g. `{prefix}auth`"
                ),
            ),
            Some(rest) => {
                let first = rest.split('/').next().unwrap_or_default();
                if INTERNAL_SEGMENTS.contains(&first) {
                    c.push(
                        key,
                        format!(
                            "`{path}` would shadow Portcullis' own `{prefix}{first}` endpoints"
                        ),
                    );
                } else if rest.contains(['?', '#', '%', ' ']) || rest.contains("//") {
                    c.push(
                        key,
                        "must be a plain path (no query, fragment, `%` or empty segment)",
                    );
                } else if ep.forwards_body && ep.convention == Convention::Nginx {
                    c.push(
                        format!("forward_auth.endpoints[{i}].forwards_body"),
                        "nginx `auth_request` never sends the request body; set `X-Original-Body` as in examples/nginx instead",
                    );
                } else if ep.convention == Convention::Envoy && path.ends_with('/') {
                    c.push(key, "an envoy `path_prefix` must not end with `/`: the original path, which starts with `/`, is appended to it");
                } else if seen.contains(&path) {
                    c.push(key, "the same path is used by an earlier endpoint");
                }
            }
        }
        seen.push(path);
    }
    let public = public_host(&cfg.server.public_url);
    let domain = cfg
        .session
        .domain
        .as_deref()
        .map(|d| d.trim_start_matches('.').to_ascii_lowercase());
    for (i, h) in fa.hosts.iter().enumerate() {
        let key = format!("forward_auth.hosts[{i}]");
        let host = h.trim_end_matches('.').to_ascii_lowercase();
        if !is_hostname(&host) {
            c.push(
                key,
                format!(
                    "`{h}` is not a host name, e.g. `app.example.com` (no scheme, port or path)"
                ),
            );
            continue;
        }
        if public.as_deref() == Some(host.as_str()) {
            continue;
        }
        let shared = domain
            .as_deref()
            .is_some_and(|d| host == d || host.ends_with(&format!(".{d}")));
        if !shared {
            c.push(
                key,
                match &domain {
                    None => format!("`{h}` is not the public_url host: set session.domain to a parent of both (e.g. `example.com`), or the session cookie never reaches `{h}` and every login loops"),
                    Some(d) => format!("`{h}` is outside session.domain `{d}`: the session cookie never reaches it and every login loops"),
                },
            );
        }
    }
    let blind: Vec<&str> = fa
        .endpoints
        .iter()
        .filter(|e| !e.forwards_body)
        .map(|e| e.convention.as_str())
        .collect();
    if !blind.is_empty() && !cfg.login.password_endpoints.is_empty() {
        c.warn(
            "forward_auth",
            format!(
                "an endpoint without `forwards_body` ({}) never sees a request body, so every request to a [login] password endpoint through it is refused (SSO enforcement fails closed) — nginx: except one `X-Original-Body: none` says has no body",
                blind.join(", ")
            ),
        );
    }
}

/// A trusted-proxy entry: a CIDR, or one address (`/32`, `/128`).
pub fn parse_proxy(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"store = { encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE=" }
listeners = [{ address = "127.0.0.1:8080" }]
[server]
public_url = "https://auth.example.com"
[session]
keys = ["kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"]
"#;

    fn load(extra: &str) -> Result<Config, Vec<String>> {
        crate::config::from_str(&format!("{BASE}{extra}"), "t.toml", &|_| None)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn absent_is_off_and_a_minimal_section_loads() {
        let cfg = load("").unwrap();
        assert!(!cfg.forward_auth.enabled());
        let cfg = load(
            r#"
[forward_auth]
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
[[forward_auth.endpoints]]
convention = "nginx"
[[forward_auth.endpoints]]
path = "/.portcullis/envoy"
convention = "envoy"
"#,
        )
        .unwrap();
        assert!(cfg.forward_auth.enabled());
        let eps = &cfg.forward_auth.endpoints;
        assert_eq!(eps[0].path_in(&cfg), "/.portcullis/auth");
        assert_eq!(eps[0].convention, Convention::Nginx);
        assert_eq!(eps[1].path_in(&cfg), "/.portcullis/envoy");
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn forward_auth_needs_cidr_trusted_proxies() {
        let errs = load(
            r#"
[forward_auth]
trusted_proxies = ["10.0.0.0/8", "proxy.local", "10.0.0.0/40"]
[[forward_auth.endpoints]]
convention = "forward"
"#,
        )
        .unwrap_err();
        assert_eq!(
            errs,
            [
                "t.toml:9: forward_auth.trusted_proxies[1]: `proxy.local` is not an address or CIDR, e.g. `10.0.0.0/8` or `127.0.0.1`",
                "t.toml:9: forward_auth.trusted_proxies[2]: `10.0.0.0/40` is not an address or CIDR, e.g. `10.0.0.0/8` or `127.0.0.1`",
            ]
        );
        let errs = load(
            r#"
[forward_auth]
[[forward_auth.endpoints]]
convention = "forward"
"#,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("t.toml:8: forward_auth.trusted_proxies: list the host proxies"),
            "{errs:?}"
        );
        let cfg = load(
            r#"
[forward_auth]
trusted_proxies = ["0.0.0.0/0"]
[[forward_auth.endpoints]]
convention = "forward"
"#,
        )
        .unwrap();
        assert!(
            cfg.warnings[0].to_string().contains("trusts every address"),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn unknown_keys_and_conventions_are_named() {
        let errs = load(
            r#"
[forward_auth]
trusted_proxies = ["127.0.0.1"]
trusted_proxy = ["127.0.0.1"]
"#,
        )
        .unwrap_err();
        assert!(
            errs[0].starts_with("t.toml:10: forward_auth.trusted_proxy: unknown field"),
            "{errs:?}"
        );
        let errs = load(
            r#"
[forward_auth]
trusted_proxies = ["127.0.0.1"]
[[forward_auth.endpoints]]
convention = "haproxy"
"#,
        )
        .unwrap_err();
        assert!(
            errs[0].starts_with(
                "t.toml:11: forward_auth.endpoints[0].convention: unknown variant `haproxy`"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn forward_auth_paths_live_under_the_internal_prefix() {
        let errs = load(
            r#"
[forward_auth]
trusted_proxies = ["127.0.0.1"]
[[forward_auth.endpoints]]
path = "/auth"
convention = "nginx"
[[forward_auth.endpoints]]
path = "/.portcullis/"
convention = "nginx"
[[forward_auth.endpoints]]
path = "/.portcullis/login"
convention = "nginx"
[[forward_auth.endpoints]]
path = "/.portcullis/ext/"
convention = "envoy"
[[forward_auth.endpoints]]
path = "/.portcullis/a?b"
convention = "forward"
[[forward_auth.endpoints]]
convention = "forward"
[[forward_auth.endpoints]]
convention = "nginx"
"#,
        )
        .unwrap_err();
        let keys: Vec<String> = errs
            .iter()
            .map(|e| e.splitn(3, ": ").take(2).collect::<Vec<_>>().join(": "))
            .collect();
        assert_eq!(
            keys,
            [
                "t.toml:11: forward_auth.endpoints[0].path",
                "t.toml:14: forward_auth.endpoints[1].path",
                "t.toml:17: forward_auth.endpoints[2].path",
                "t.toml:20: forward_auth.endpoints[3].path",
                "t.toml:23: forward_auth.endpoints[4].path",
                "t.toml:27: forward_auth.endpoints[6].path",
            ],
            "{errs:#?}"
        );
        assert!(errs[2].contains("would shadow"), "{errs:?}");
        assert!(errs[3].contains("must not end with `/`"), "{errs:?}");
        assert!(errs[5].contains("earlier endpoint"), "{errs:?}");
    }

    #[test]
    fn return_hosts_must_share_the_session_domain() {
        let hosts = r#"
[forward_auth]
hosts = ["app.example.com", "auth.example.com", "app.other.org", "https://x.example.com/"]
"#;
        let errs = load(hosts).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs[0].contains(
                "hosts[0]: `app.example.com` is not the public_url host: set session.domain"
            ),
            "{errs:?}"
        );
        assert!(errs[1].contains("hosts[2]"), "{errs:?}");
        assert!(
            errs[2].contains("hosts[3]: `https://x.example.com/` is not a host name"),
            "{errs:?}"
        );
        let text = format!("{BASE}{hosts}")
            .replace("[session]\n", "[session]\ndomain = \".example.com\"\n");
        let errs = crate::config::from_str(&text, "t.toml", &|_| None).unwrap_err();
        let errs: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].contains("hosts[2]: `app.other.org` is outside session.domain `example.com`"),
            "{errs:?}"
        );
        assert!(errs[1].contains("hosts[3]"), "{errs:?}");
    }

    /// The commented block in the shipped example is a valid section once
    /// uncommented (with a session domain its hosts share).
    #[test]
    fn example_section_is_valid_when_uncommented() {
        let example = include_str!("../../config/portcullis.example.toml");
        let start = example.find("# [forward_auth]").unwrap();
        let section: String = example[start..]
            .lines()
            .filter(|l| !l.starts_with("# #"))
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
            .collect();
        let text = format!("{BASE}{section}")
            .replace("[session]\n", "[session]\ndomain = \"example.com\"\n");
        let cfg = crate::config::from_str(&text, "t.toml", &|_| None).unwrap();
        assert!(cfg.forward_auth.enabled());
        assert_eq!(cfg.forward_auth.endpoints[0].convention, Convention::Nginx);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn nginx_cannot_forward_bodies() {
        let errs = load(
            r#"
[forward_auth]
trusted_proxies = ["127.0.0.1"]
[[forward_auth.endpoints]]
convention = "nginx"
forwards_body = true
[[forward_auth.endpoints]]
path = "/.portcullis/traefik"
convention = "forward"
forwards_body = true
[[forward_auth.endpoints]]
path = "/.portcullis/envoy"
convention = "envoy"
forwards_body = true
"#,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("forward_auth.endpoints[0].forwards_body: nginx"),
            "{errs:?}"
        );
    }

    #[test]
    fn endpoints_that_see_bodies_raise_no_warning() {
        let cfg = load(
            r#"
[forward_auth]
trusted_proxies = ["127.0.0.1"]
[[forward_auth.endpoints]]
convention = "forward"
forwards_body = true
[login]
password_endpoints = [{ path = "/login" }]
"#,
        )
        .unwrap();
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn password_endpoints_with_forward_auth_are_a_warning() {
        let cfg = load(
            r#"
[forward_auth]
trusted_proxies = ["127.0.0.1"]
[[forward_auth.endpoints]]
convention = "forward"
[login]
password_endpoints = [{ path = "/login" }]
"#,
        )
        .unwrap();
        assert_eq!(cfg.warnings.len(), 1);
        assert!(cfg.warnings[0].to_string().contains("fails closed"));
    }

    #[test]
    fn return_targets_collect_every_configured_host() {
        let mut cfg = Config::default();
        cfg.server.public_url = "https://auth.example.com:8443".into();
        cfg.forward_auth.hosts = vec!["app1.example.com".into()];
        cfg.routes = vec![crate::config::RouteConfig {
            prefix: "/".into(),
            host: Some("App2.example.com".into()),
            policy: crate::config::Policy::Required,
            allowed_groups: vec![],
            allowed_roles: vec![],
            allowed_tenants: vec![],
            case_sensitive: false,
            upstream: None,
            acr: vec![],
            max_age: None,
        }];
        let t = cfg.return_targets();
        for ok in [
            "https://auth.example.com/x",
            "https://app1.example.com/x",
            "https://app2.example.com/x",
        ] {
            assert_eq!(t.check(ok), Some(ok));
        }
        assert_eq!(t.check("https://app3.example.com/x"), None);
        assert_eq!(
            t.check("http://app1.example.com/x"),
            None,
            "secure by default"
        );
    }

    #[test]
    fn return_targets_are_paths_or_listed_hosts() {
        let t = ReturnTargets::new(["App.Example.com.".to_owned()], false);
        assert_eq!(t.check("/x?y"), Some("/x?y"));
        assert_eq!(
            t.check("http://app.example.com:8443/x"),
            Some("http://app.example.com:8443/x")
        );
        assert_eq!(t.check("https://evil.example/"), None);
        assert_eq!(
            t.origin_of("https://APP.example.com/x?y").as_deref(),
            Some("https://APP.example.com")
        );
        assert_eq!(t.origin_of("/x"), None);
        let secure = ReturnTargets::new(["app.example.com".to_owned()], true);
        assert_eq!(secure.check("http://app.example.com/x"), None);
        assert_eq!(
            secure.check("https://app.example.com/x"),
            Some("https://app.example.com/x")
        );
    }

    #[test]
    fn proxies_are_cidrs_or_addresses() {
        assert_eq!(parse_proxy("10.0.0.0/8").map(|n| n.prefix_len()), Some(8));
        assert_eq!(parse_proxy("127.0.0.1").map(|n| n.prefix_len()), Some(32));
        assert_eq!(parse_proxy("::1").map(|n| n.prefix_len()), Some(128));
        assert_eq!(parse_proxy("10.0.0.0/33"), None);
        assert_eq!(parse_proxy("proxy.local"), None);
    }
}
