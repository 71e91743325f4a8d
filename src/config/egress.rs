//! `[egress]` and the one rule for every URL Portcullis fetches on behalf
//! of a tenant's configuration (SAML `idp_metadata_url`, OIDC `issuer` and
//! the endpoints its discovery document names, the pre-configured
//! providers' test overrides).
//!
//! Those URLs are written by whoever configures a tenant — the operator's
//! file, the admin API, soon a customer's IT admin in the setup portal — and
//! fetched by the server from inside its network. Unchecked, a customer
//! could make Portcullis call the cloud metadata service
//! (`169.254.169.254`), its own admin port, or anything on the operator's
//! private network, and read parts of the answer back in error messages.
//!
//! The rule is written once, here, and applied twice:
//! - at validation ([`EgressRules::check_url`]), on the one path the file's
//!   `check`, the admin API and the portal share: `https://` only, no user
//!   name or password, no fragment, no IP literal outside public ranges, no
//!   local names; ports are free;
//! - at connection time ([`EgressRules::admits`]), by the resolver of the
//!   fetching client (`auth::egress`), for every address a name resolves to
//!   — so a name that resolves (or re-binds) to a private address is
//!   refused too, and the connection uses only the addresses checked.
//!
//! Two relaxations, both explicit:
//! - `[admin] allow_loopback_idp_urls` (tests and local development): http
//!   or https to loopback (127.0.0.0/8, `::1`, `localhost`) from every
//!   source. Nothing else private.
//! - `[egress] allow_private_hosts` / `allow_private_networks`: the
//!   operator's own on-premises IdPs (ADFS on `10.x`). They apply only to
//!   tenants written in the configuration file: a tenant from the admin API
//!   or the portal is never let into the operator's network.

use std::net::IpAddr;

use serde::Deserialize;

use super::load::Collector;
use super::schema::{Config, Origin};
use crate::names::{is_hostname, is_loopback_ip, is_public_ip, special_range};

/// `[egress]`: where the IdPs of the file's tenants may be besides the
/// public internet.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Host names (exact, case-insensitive) of the operator's own IdPs
    /// that resolve to private-use addresses (10/8, 172.16/12, 192.168/16,
    /// 100.64/10, fc00::/7), e.g. `adfs.corp.example`. Never loopback or
    /// link-local. File tenants only.
    pub allow_private_hosts: Vec<String>,
    /// Networks (CIDR or a bare address) the file's tenants' IdP URLs may
    /// reach whatever their range, e.g. `10.20.0.0/16`. File tenants only.
    pub allow_private_networks: Vec<String>,
}

/// Where the IdP URLs of one tenant may point. Built per source by
/// [`EgressRules::for_origin`]; pure, so validation and the resolver agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressRules {
    /// `[admin] allow_loopback_idp_urls`: loopback (and `http://` to it).
    pub allow_loopback: bool,
    /// Lower-case, without a trailing dot.
    private_hosts: Vec<String>,
    private_networks: Vec<ipnet::IpNet>,
}

/// Why a URL is not fetched. `label` is the metric reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("not an absolute http(s) URL with a host")]
    Invalid,
    #[error(
        "must be https:// (plain http only to a loopback host under `[admin] allow_loopback_idp_urls`, for tests)"
    )]
    Scheme,
    #[error("must not carry a user name or password")]
    Userinfo,
    #[error("must not carry a #fragment")]
    Fragment,
    #[error("names an address in a {range} range; IdP URLs must name a public host")]
    Address { range: &'static str },
    #[error("names a local host (`{0}`); IdP URLs must name a public host")]
    LocalName(String),
}

/// What every validation finding about an IdP URL starts with, so the admin
/// API can count them (`UrlRefusal::label_of_finding`).
pub const REFUSED_PREFIX: &str = "not fetched by this server: ";

impl UrlRefusal {
    /// The metric reason (`portcullis_idp_egress_refused_total{reason}`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Invalid | Self::Fragment => "invalid_url",
            Self::Scheme => "scheme",
            Self::Userinfo => "userinfo",
            Self::Address { .. } => "literal_address",
            Self::LocalName(_) => "local_name",
        }
    }

    /// The validation finding for this refusal.
    pub fn finding(&self) -> String {
        format!("{REFUSED_PREFIX}{self}")
    }

    /// The reason of a finding made by [`UrlRefusal::finding`], if it is
    /// one: the message is the only thing a validation finding carries.
    pub fn label_of_finding(message: &str) -> Option<&'static str> {
        let rest = message.strip_prefix(REFUSED_PREFIX)?;
        let probes: [(Self, &str); 6] = [
            (Self::Invalid, ""),
            (Self::Scheme, ""),
            (Self::Userinfo, ""),
            (Self::Fragment, ""),
            (Self::Address { range: "" }, "names an address in a "),
            (Self::LocalName(String::new()), "names a local host ("),
        ];
        probes.into_iter().find_map(|(r, start)| {
            let matched = if start.is_empty() {
                rest == r.to_string()
            } else {
                rest.starts_with(start)
            };
            matched.then(|| r.label())
        })
    }
}

impl EgressRules {
    /// Public hosts over https only: the strictest rules, for tenants of
    /// the store without the test allowance.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Public hosts, plus loopback over http or https (tests).
    pub fn with_loopback() -> Self {
        Self {
            allow_loopback: true,
            ..Self::default()
        }
    }

    /// The rules for a tenant of `origin` under `cfg`: the operator's
    /// private allowances apply to the file's tenants only.
    pub fn for_origin(cfg: &Config, origin: Origin) -> Self {
        let mut rules = Self {
            allow_loopback: cfg.admin.allow_loopback_idp_urls,
            ..Self::default()
        };
        if origin == Origin::File {
            rules.private_hosts = cfg
                .egress
                .allow_private_hosts
                .iter()
                .map(|h| normalize_host(h))
                .collect();
            rules.private_networks = cfg
                .egress
                .allow_private_networks
                .iter()
                .filter_map(|n| parse_network(n))
                .collect();
        }
        rules
    }

    /// The syntactic check of a URL before it is accepted or fetched. The
    /// URL is parsed as the HTTP client parses it (WHATWG, `url` crate), so
    /// `https://2130706433/` is 127.0.0.1 here exactly as it is there.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, UrlRefusal> {
        let u = url::Url::parse(raw).map_err(|_| UrlRefusal::Invalid)?;
        let host = u.host().ok_or(UrlRefusal::Invalid)?.to_owned();
        if !u.username().is_empty() || u.password().is_some() {
            return Err(UrlRefusal::Userinfo);
        }
        if u.fragment().is_some() {
            return Err(UrlRefusal::Fragment);
        }
        let loopback = match &host {
            url::Host::Domain(d) => is_localhost_name(&normalize_host(d)),
            url::Host::Ipv4(ip) => is_loopback_ip(IpAddr::V4(*ip)),
            url::Host::Ipv6(ip) => is_loopback_ip(IpAddr::V6(*ip)),
        };
        match u.scheme() {
            "https" => {}
            "http" if self.allow_loopback && loopback => {}
            _ => return Err(UrlRefusal::Scheme),
        }
        match host {
            url::Host::Ipv4(ip) => self.admits_literal(IpAddr::V4(ip))?,
            url::Host::Ipv6(ip) => self.admits_literal(IpAddr::V6(ip))?,
            url::Host::Domain(d) => {
                let name = normalize_host(&d);
                let local = if is_localhost_name(&name) {
                    !self.allow_loopback
                } else {
                    // A single label is completed by the server's search
                    // domains: an internal name by construction.
                    !name.contains('.') && !self.private_hosts.contains(&name)
                };
                if local {
                    return Err(UrlRefusal::LocalName(name));
                }
            }
        }
        Ok(u)
    }

    fn admits_literal(&self, ip: IpAddr) -> Result<(), UrlRefusal> {
        self.admits("", ip)
            .map_err(|range| UrlRefusal::Address { range })
    }

    /// Whether a connection to `ip`, an address of `host`, is allowed; the
    /// refused address's range otherwise.
    pub fn admits(&self, host: &str, ip: IpAddr) -> Result<(), &'static str> {
        if is_public_ip(ip)
            || (self.allow_loopback && is_loopback_ip(ip))
            || self.private_networks.iter().any(|n| n.contains(&ip))
        {
            return Ok(());
        }
        let host = normalize_host(host);
        if !host.is_empty() && self.private_hosts.contains(&host) && is_private_use(ip) {
            return Ok(());
        }
        Err(special_range(ip).unwrap_or("non-public"))
    }
}

/// `localhost` and its RFC 6761 subdomains (`*.localhost`).
fn is_localhost_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

fn normalize_host(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Ranges an organisation numbers its own hosts from: RFC 1918, shared
/// address space, unique local. Not loopback, link-local or anything else.
fn is_private_use(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..=127).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// A CIDR or a bare address.
fn parse_network(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

/// Semantic checks of `[egress]`.
pub(crate) fn validate(cfg: &Config, c: &mut Collector<'_>) {
    for (i, h) in cfg.egress.allow_private_hosts.iter().enumerate() {
        let key = format!("egress.allow_private_hosts[{i}]");
        let name = normalize_host(h);
        if !is_hostname(&name) || name.parse::<IpAddr>().is_ok() {
            c.push(
                key,
                format!("`{h}` is not a host name (put addresses in `allow_private_networks`)"),
            );
        } else if is_localhost_name(&name) {
            c.push(
                key,
                "loopback is never an IdP's address; only `[admin] allow_loopback_idp_urls` (tests) allows it",
            );
        }
    }
    for (i, n) in cfg.egress.allow_private_networks.iter().enumerate() {
        let key = format!("egress.allow_private_networks[{i}]");
        match parse_network(n) {
            None => c.push(
                key,
                format!("`{n}` is not an address or CIDR, e.g. `10.20.0.0/16`"),
            ),
            Some(net) if net.prefix_len() == 0 => c.push(
                key,
                "allows every address: list the networks your IdPs are in",
            ),
            Some(net) => {
                let metadata: [IpAddr; 2] = [
                    IpAddr::from([169, 254, 169, 254]),
                    IpAddr::from([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]),
                ];
                if metadata.iter().any(|ip| net.contains(ip))
                    || net.contains(&IpAddr::from([127, 0, 0, 1]))
                    || net.contains(&IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]))
                {
                    c.warn(
                        key,
                        "includes loopback or the cloud metadata address: the file's IdP URLs may reach them",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(rules: &EgressRules, url: &str) -> Option<&'static str> {
        rules.check_url(url).err().map(|e| e.label())
    }

    #[test]
    fn public_https_urls_pass() {
        let r = EgressRules::public_only();
        for ok in [
            "https://login.example.com/tenant/v2.0",
            "https://idp.example.com:8443/metadata?x=1",
            "https://8.8.8.8/md",
            "https://[2001:4860::1]/md",
            "https://IDP.Example.COM./md",
        ] {
            assert_eq!(refusal(&r, ok), None, "{ok}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_its_reason() {
        let r = EgressRules::public_only();
        for (bad, reason) in [
            ("not a url", "invalid_url"),
            ("https://", "invalid_url"),
            ("mailto:a@example.com", "invalid_url"),
            ("file:///etc/passwd", "invalid_url"),
            ("https://idp.example.com/md#x", "invalid_url"),
            ("http://idp.example.com/md", "scheme"),
            ("ftp://idp.example.com/md", "scheme"),
            ("gopher://idp.example.com/", "scheme"),
            ("http://127.0.0.1:9090/admin", "scheme"),
            ("https://user@idp.example.com/md", "userinfo"),
            ("https://user:pw@idp.example.com/md", "userinfo"),
            ("https://:pw@idp.example.com/md", "userinfo"),
            ("https://127.0.0.1/md", "literal_address"),
            ("https://127.1/md", "literal_address"),
            ("https://2130706433/md", "literal_address"),
            ("https://0x7f000001/md", "literal_address"),
            ("https://0177.0.0.1/md", "literal_address"),
            ("https://10.1.2.3/md", "literal_address"),
            ("https://172.16.0.1/md", "literal_address"),
            ("https://192.168.0.1/md", "literal_address"),
            (
                "https://169.254.169.254/latest/meta-data",
                "literal_address",
            ),
            ("https://100.64.0.1/md", "literal_address"),
            ("https://0.0.0.0/md", "literal_address"),
            ("https://198.18.0.1/md", "literal_address"),
            ("https://255.255.255.255/md", "literal_address"),
            ("https://224.0.0.1/md", "literal_address"),
            ("https://[::1]/md", "literal_address"),
            ("https://[::]/md", "literal_address"),
            ("https://[fd00::1]/md", "literal_address"),
            ("https://[fe80::1]/md", "literal_address"),
            ("https://[::ffff:10.0.0.1]/md", "literal_address"),
            ("https://[::ffff:7f00:1]/md", "literal_address"),
            ("https://[64:ff9b::a9fe:a9fe]/md", "literal_address"),
            ("https://[2002:a9fe:a9fe::]/md", "literal_address"),
            ("https://localhost/md", "local_name"),
            ("https://LOCALHOST./md", "local_name"),
            ("https://admin.localhost/md", "local_name"),
            ("https://intranet/md", "local_name"),
        ] {
            assert_eq!(refusal(&r, bad), Some(reason), "{bad}");
        }
    }

    #[test]
    fn the_test_allowance_admits_loopback_and_nothing_else() {
        let r = EgressRules::with_loopback();
        for ok in [
            "http://127.0.0.1:8080/md",
            "https://127.0.0.1:8443/md",
            "http://[::1]:8080/md",
            "http://localhost:8080/md",
            "http://127.9.9.9/md",
        ] {
            assert_eq!(refusal(&r, ok), None, "{ok}");
        }
        for (bad, reason) in [
            ("http://10.0.0.1/md", "scheme"),
            ("http://idp.example.com/md", "scheme"),
            ("https://10.0.0.1/md", "literal_address"),
            ("https://169.254.169.254/md", "literal_address"),
            ("https://[fe80::1]/md", "literal_address"),
            ("http://user@127.0.0.1/md", "userinfo"),
        ] {
            assert_eq!(refusal(&r, bad), Some(reason), "{bad}");
        }
        assert!(r.admits("x", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(r.admits("x", "::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(r.admits("x", "10.0.0.1".parse().unwrap()).is_err());
    }

    fn file_rules(hosts: &[&str], nets: &[&str]) -> (EgressRules, EgressRules) {
        let mut cfg = Config::default();
        cfg.egress.allow_private_hosts = hosts.iter().map(|s| s.to_string()).collect();
        cfg.egress.allow_private_networks = nets.iter().map(|s| s.to_string()).collect();
        (
            EgressRules::for_origin(&cfg, Origin::File),
            EgressRules::for_origin(&cfg, Origin::Store),
        )
    }

    #[test]
    fn operator_allowances_apply_to_file_tenants_only() {
        let (file, store) = file_rules(
            &["ADFS.corp.example.", "adfs"],
            &["10.20.0.0/16", "fd12::7"],
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A named host: private-use addresses only.
        assert!(file.admits("adfs.corp.example", ip("10.1.2.3")).is_ok());
        assert!(file.admits("adfs.corp.example.", ip("192.168.1.1")).is_ok());
        assert!(file.admits("adfs.corp.example", ip("fd00::1")).is_ok());
        assert!(
            file.admits("adfs.corp.example", ip("169.254.169.254"))
                .is_err()
        );
        assert!(file.admits("adfs.corp.example", ip("127.0.0.1")).is_err());
        assert!(file.admits("other.corp.example", ip("10.1.2.3")).is_err());
        // A network: whatever is inside it, for any host.
        assert!(file.admits("x.example", ip("10.20.3.4")).is_ok());
        assert!(file.admits("x.example", ip("fd12::7")).is_ok());
        assert!(file.admits("x.example", ip("10.21.0.1")).is_err());
        assert_eq!(refusal(&file, "https://10.20.0.5/md"), None);
        assert_eq!(refusal(&file, "https://adfs/md"), None);
        assert_eq!(
            refusal(&file, "https://10.21.0.5/md"),
            Some("literal_address")
        );
        // The store's tenants get none of it.
        assert!(store.admits("adfs.corp.example", ip("10.1.2.3")).is_err());
        assert!(store.admits("x.example", ip("10.20.3.4")).is_err());
        assert_eq!(
            refusal(&store, "https://10.20.0.5/md"),
            Some("literal_address")
        );
        assert_eq!(refusal(&store, "https://adfs/md"), Some("local_name"));
    }

    #[test]
    fn findings_carry_their_reason() {
        let r = EgressRules::public_only();
        for url in [
            "x",
            "http://a.example/",
            "https://u@a.example/",
            "https://a.example/#f",
            "https://10.0.0.1/",
            "https://intranet/",
        ] {
            let e = r.check_url(url).unwrap_err();
            assert_eq!(
                UrlRefusal::label_of_finding(&e.finding()),
                Some(e.label()),
                "{url}"
            );
        }
        assert_eq!(UrlRefusal::label_of_finding("must not be empty"), None);
        assert_eq!(
            UrlRefusal::label_of_finding(&format!("{REFUSED_PREFIX}something else")),
            None
        );
    }

    #[test]
    fn egress_section_is_checked() {
        let text = r#"
[[listeners]]
address = "127.0.0.1:8080"
[session]
keys = ["0123456789abcdef0123456789abcdef"]
[store]
encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE="
[egress]
allow_private_hosts = ["adfs.corp.example", "10.0.0.1", "bad host", "localhost"]
allow_private_networks = ["10.20.0.0/16", "nope", "0.0.0.0/0"]
"#;
        let e = crate::config::from_str(text, "t.toml", &|_| None).unwrap_err();
        let keys: Vec<(String, usize)> = e.0.iter().map(|e| (e.key.clone(), e.line)).collect();
        for k in [
            "egress.allow_private_hosts[1]",
            "egress.allow_private_hosts[2]",
            "egress.allow_private_hosts[3]",
            "egress.allow_private_networks[1]",
            "egress.allow_private_networks[2]",
        ] {
            assert!(
                keys.iter().any(
                    |(key, line)| key == k && *line == if k.contains("hosts") { 9 } else { 10 }
                ),
                "{k}: {keys:?}"
            );
        }
        assert_eq!(keys.len(), 5, "{keys:?}");
        let unknown = text.replace("allow_private_networks", "allow_private_netwrks");
        let e = crate::config::from_str(&unknown, "t.toml", &|_| None).unwrap_err();
        assert!(e.to_string().contains("allow_private_netwrks"), "{e}");
    }
}
