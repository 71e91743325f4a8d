//! The HTTP client every IdP fetch goes through (SAML metadata, OIDC
//! discovery, keys, token, userinfo, the pre-configured providers and
//! GitHub's API): a guard against server-side request forgery through a
//! tenant's configuration.
//!
//! The rule itself is `config::EgressRules` (also applied at validation);
//! this module enforces it where it can't be dodged, at connection time:
//! - the client's DNS resolver ([`GuardedResolver`], a `reqwest::dns::Resolve`)
//!   resolves with the configured `[dns] nameservers` (else the system's)
//!   and refuses when *any* address of the name is not allowed; the client
//!   then connects only to the addresses it returned, so a name that
//!   re-binds between a check and the connection has no window;
//! - every URL is checked again before it is sent ([`Guard::check`]): an IP
//!   literal never reaches a resolver, and an endpoint named by a discovery
//!   document never went through validation;
//! - no redirects are followed (a 3xx is refused and counted), proxies from
//!   the environment are ignored (a proxy would resolve the name itself),
//!   and every request has a timeout.
//!
//! A refusal is logged at WARN with the precise reason (the URL, the
//! addresses, the range) and counted in
//! `portcullis_idp_egress_refused_total{reason}`; what reaches a browser, a
//! test sign-in page or an API client is only [`NOT_REACHABLE`], so nothing
//! about the server's network or the answer is echoed.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::LookupIpStrategy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::{Config, DnsConfig, EgressRules, Origin, TenantConfig};
use crate::metrics::Metrics;

/// What anyone outside the server's log learns about a refused fetch.
pub const NOT_REACHABLE: &str = "the IdP URL is not reachable from this server";

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("IdP resolver: {0}")]
    Resolver(String),
    #[error("IdP HTTP client: {0}")]
    Client(String),
}

/// A fetch the guard refused. Displays as [`NOT_REACHABLE`] only: the
/// reason is the metric label, the details went to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{NOT_REACHABLE}")]
pub struct Refused {
    pub reason: &'static str,
}

/// One configuration generation's egress: its resolver, the rules for the
/// file's tenants and for everyone else, and where refusals are counted.
#[derive(Clone)]
pub struct Egress {
    resolver: Arc<TokioResolver>,
    file: Arc<EgressRules>,
    other: Arc<EgressRules>,
    metrics: Option<Arc<Metrics>>,
}

impl Egress {
    /// From the configuration: `[dns]` for the resolver, `[admin]
    /// allow_loopback_idp_urls` and `[egress]` for the rules.
    pub fn new(cfg: &Config, metrics: Option<Arc<Metrics>>) -> Result<Self, EgressError> {
        Ok(Self {
            resolver: Arc::new(resolver(&cfg.dns)?),
            file: Arc::new(EgressRules::for_origin(cfg, Origin::File)),
            other: Arc::new(EgressRules::for_origin(cfg, Origin::Store)),
            metrics,
        })
    }

    /// The same `rules` for every source, the system resolver, no metrics
    /// (unit tests and factories built without a configuration).
    pub fn with_rules(rules: EgressRules) -> Result<Self, EgressError> {
        let rules = Arc::new(rules);
        Ok(Self {
            resolver: Arc::new(resolver(&DnsConfig::default())?),
            file: rules.clone(),
            other: rules,
            metrics: None,
        })
    }

    /// The guard for the IdP of a connection of tenant `t`; `context` (the
    /// connection id) names it in the log.
    pub(crate) fn for_tenant(&self, t: &TenantConfig, context: &str) -> Guard {
        let rules = match t.origin {
            Origin::File => &self.file,
            Origin::Store => &self.other,
        };
        self.guard(rules.clone(), context)
    }

    /// The guard for a pre-configured provider: public hosts, and loopback
    /// only under the test allowance; never the operator's private ranges.
    pub(crate) fn for_provider(&self, context: &str) -> Guard {
        self.guard(self.other.clone(), context)
    }

    fn guard(&self, rules: Arc<EgressRules>, context: &str) -> Guard {
        Guard {
            rules,
            resolver: self.resolver.clone(),
            metrics: self.metrics.clone(),
            context: Arc::from(context),
        }
    }
}

/// The `[dns]` resolver: the configured nameservers, else the system's.
/// Its cache is kept (TTLs are the zone's business; a re-bound name is
/// checked again on every resolution).
fn resolver(dns: &DnsConfig) -> Result<TokioResolver, EgressError> {
    let mut builder = crate::domains::resolver_builder(dns).map_err(EgressError::Resolver)?;
    let opts = builder.options_mut();
    opts.timeout = Duration::from_millis(dns.lookup_timeout_ms.max(1));
    opts.attempts = 2;
    // Both families, so a name with a public A and a private AAAA (or the
    // reverse) is refused: any address the client could connect to counts.
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder
        .build()
        .map_err(|e| EgressError::Resolver(e.to_string()))
}

/// The rules, resolver and reporting for one IdP (or provider).
#[derive(Clone)]
pub(crate) struct Guard {
    rules: Arc<EgressRules>,
    resolver: Arc<TokioResolver>,
    metrics: Option<Arc<Metrics>>,
    context: Arc<str>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("rules", &self.rules)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A client that resolves through this guard, follows no redirects,
    /// ignores `HTTP(S)_PROXY`, and gives up after `timeout` (connecting
    /// included).
    pub(crate) fn client(&self, timeout: Duration) -> Result<reqwest::Client, EgressError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                guard: self.clone(),
            }))
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EgressError::Client(e.to_string()))
    }

    /// `url` as the client will fetch it, when its shape is allowed (the
    /// same check as validation, repeated because an IP literal bypasses
    /// the resolver and discovery documents name URLs nobody validated).
    pub(crate) fn check(&self, url: &str) -> Result<reqwest::Url, Refused> {
        self.rules
            .check_url(url)
            .map_err(|e| self.refuse(e.label(), &format_args!("{url}: {e}")))
    }

    /// Whether `url` may be where a browser is sent (an authorization or
    /// end-session endpoint): https, or http to loopback under the test
    /// allowance. Not an egress question — the browser goes, not us.
    pub(crate) fn is_browser_url(&self, url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|u| match u.scheme() {
            "https" => u.host().is_some(),
            "http" => {
                self.rules.allow_loopback
                    && u.host_str().is_some_and(crate::names::is_loopback_host)
            }
            _ => false,
        })
    }

    /// A 3xx answer from `url`: never followed, refused.
    pub(crate) fn redirect(&self, url: &str, status: u16, location: Option<&str>) -> Refused {
        self.refuse(
            "redirect",
            &format_args!(
                "{url}: HTTP {status} to {:?}; redirects are not followed",
                location.unwrap_or("")
            ),
        )
    }

    /// Logs and counts a refusal; what callers show is the [`Refused`].
    fn refuse(&self, reason: &'static str, detail: &dyn fmt::Display) -> Refused {
        tracing::warn!(
            idp = %self.context,
            reason,
            detail = %detail,
            "IdP fetch refused: it would leave for a non-public address or an unsafe URL"
        );
        if let Some(m) = &self.metrics {
            m.idp_egress_refused.with_label_values(&[reason]).inc();
        }
        Refused { reason }
    }

    /// The guard's refusal inside a client error, if that is what it was.
    pub(crate) fn refusal_in(e: &reqwest::Error) -> Option<Refused> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(r) = err.downcast_ref::<Refused>() {
                return Some(r.clone());
            }
            source = err.source();
        }
        None
    }

    /// Resolves `host` and checks every address; the addresses to connect
    /// to, or the refusal.
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        // Fully qualified: the server's search domains never complete it.
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let lookup = self
            .resolver
            .lookup_ip(fqdn)
            .await
            .map_err(|e| ResolveError::Lookup(format!("{host}: {e}")))?;
        let addrs: Vec<IpAddr> = lookup.iter().collect();
        if addrs.is_empty() {
            return Err(ResolveError::Lookup(format!("{host}: no addresses")));
        }
        for ip in &addrs {
            if let Err(range) = self.rules.admits(host, *ip) {
                return Err(ResolveError::Refused(self.refuse(
                    "resolved_address",
                    &format_args!("{host} resolves to {ip} ({range}); all addresses: {addrs:?}"),
                )));
            }
        }
        Ok(addrs)
    }
}

#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("{0}")]
    Lookup(String),
    #[error(transparent)]
    Refused(Refused),
}

/// `reqwest::dns::Resolve` through a [`Guard`].
struct GuardedResolver {
    guard: Guard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match guard.resolve(&host).await {
                Ok(addrs) => {
                    // Port 0: the client puts the URL's port in.
                    let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
                    Ok(addrs)
                }
                Err(ResolveError::Refused(r)) => Err(Box::new(r) as _),
                Err(e) => Err(Box::new(e) as _),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::UrlRefusal;

    fn guard(rules: EgressRules, metrics: Option<Arc<Metrics>>) -> Guard {
        let mut e = Egress::with_rules(rules).unwrap();
        e.metrics = metrics;
        e.for_provider("test")
    }

    /// A listener that counts the connections it accepts.
    async fn counting_listener() -> (SocketAddr, Arc<AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        let seen = n.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut head = [0u8; 1024];
                let _ = s.read(&mut head).await;
                let _ = s
                    .write_all(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        (addr, n)
    }

    #[test]
    fn every_reason_is_a_metric_label() {
        let labels = [
            UrlRefusal::Invalid.label(),
            UrlRefusal::Scheme.label(),
            UrlRefusal::Userinfo.label(),
            UrlRefusal::Fragment.label(),
            UrlRefusal::Address { range: "" }.label(),
            UrlRefusal::LocalName(String::new()).label(),
            "resolved_address",
            "redirect",
        ];
        for l in labels {
            assert!(crate::metrics::IDP_EGRESS_REASONS.contains(&l), "{l}");
        }
        assert_eq!(Refused { reason: "scheme" }.to_string(), NOT_REACHABLE);
    }

    #[tokio::test]
    async fn literals_are_refused_before_any_connection() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let (addr, seen) = counting_listener().await;
        let g = guard(EgressRules::public_only(), Some(metrics.clone()));
        for url in [
            format!("https://{addr}/md"),
            format!("http://{addr}/md"),
            format!("https://[::ffff:127.0.0.1]:{}/md", addr.port()),
            format!("https://2130706433:{}/md", addr.port()),
        ] {
            assert!(g.check(&url).is_err(), "{url}");
        }
        // The client alone (no `check`) still never reaches a loopback
        // name: `localhost` goes through the guarded resolver.
        let client = g.client(Duration::from_secs(5)).unwrap();
        let e = client
            .get(format!("https://localhost:{}/md", addr.port()))
            .send()
            .await
            .unwrap_err();
        let refused = Guard::refusal_in(&e);
        // A resolver that knows `localhost` refuses it; one that doesn't
        // fails the lookup. Either way, nothing connects.
        if let Some(r) = refused {
            assert_eq!(r.reason, "resolved_address");
        }
        assert_eq!(seen.load(Ordering::SeqCst), 0);
        let text = metrics.render();
        assert!(
            text.contains("portcullis_idp_egress_refused_total{reason=\"literal_address\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("portcullis_idp_egress_refused_total{reason=\"scheme\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (addr, seen) = counting_listener().await;
        let g = guard(EgressRules::with_loopback(), None);
        let url = g.check(&format!("http://{addr}/md")).unwrap();
        let resp = g
            .client(Duration::from_secs(5))
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
