//! The TXT lookup and its classification into found / missing / error.
//!
//! The distinction between "missing" and "error" is the point of this file:
//! only an authoritative answer that the record is absent (NXDOMAIN, or TXT
//! records without our token) may ever lapse a verified domain; a timeout
//! or SERVFAIL says nothing about the zone's content.

use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{ResolverBuilder, TokioResolver};

use super::DomainError;
use crate::config::{DnsConfig, parse_nameserver};

/// What one lookup established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    /// A TXT record at the name carries the expected value.
    Found,
    /// The name does not exist or has no matching TXT record; the text says which.
    Missing(String),
    /// The resolver could not answer; proves nothing either way.
    Error(String),
}

/// A hickory builder for the `[dns]` section: its nameservers (each on
/// its own port, over UDP and TCP), else the system's configuration. The
/// one place that reads `[dns]`, so the domain checks and the egress guard
/// (`auth::egress`) always ask the same servers; each sets its own options.
pub(crate) fn resolver_builder(
    dns: &DnsConfig,
) -> Result<ResolverBuilder<TokioRuntimeProvider>, String> {
    if dns.nameservers.is_empty() {
        return TokioResolver::builder_tokio().map_err(|e| format!("system configuration: {e}"));
    }
    let mut servers = Vec::with_capacity(dns.nameservers.len());
    for ns in &dns.nameservers {
        let addr = parse_nameserver(ns)
            .ok_or_else(|| format!("nameserver `{ns}` is not IP or IP:PORT"))?;
        // The port is per connection in hickory 0.26; set it on both so a
        // resolver on a non-standard port works over UDP and TCP.
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = addr.port();
        servers.push(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
    }
    Ok(TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    ))
}

/// A resolver configured for ownership checks: no cache (every check must
/// see the zone as it is now, including a record deleted a minute ago), no
/// hosts file, and a hard deadline per lookup.
#[derive(Clone)]
pub(crate) struct TxtResolver {
    resolver: TokioResolver,
    timeout: Duration,
}

impl TxtResolver {
    pub(crate) fn new(dns: &DnsConfig, timeout: Duration) -> Result<Self, DomainError> {
        let mut builder = resolver_builder(dns).map_err(DomainError::Resolver)?;
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        let resolver = builder
            .build()
            .map_err(|e| DomainError::Resolver(e.to_string()))?;
        Ok(TxtResolver { resolver, timeout })
    }

    /// Looks up TXT at `name` and compares every record (its character
    /// strings joined, as RFC 7208 does for long SPF values) with
    /// `expected` in constant time. Any one match is enough: zones often
    /// hold several verification records for different services.
    pub(crate) async fn check(&self, name: &str, expected: &str) -> LookupOutcome {
        // Fully qualified: no search-domain suffixes are ever tried.
        let fqdn = format!("{name}.");
        let lookup = match tokio::time::timeout(self.timeout, self.resolver.txt_lookup(fqdn)).await
        {
            Err(_) => return LookupOutcome::Error("timeout".into()),
            Ok(Err(error)) => return classify(&error),
            Ok(Ok(lookup)) => lookup,
        };
        let mut others = 0usize;
        let mut found = false;
        for record in lookup.answers() {
            let RData::TXT(txt) = &record.data else {
                continue;
            };
            let joined: Vec<u8> = txt
                .txt_data
                .iter()
                .flat_map(|s| s.iter().copied())
                .collect();
            // No early exit: every record is compared, so timing does not
            // reveal which one matched.
            if crate::secret::constant_time_eq(joined.trim_ascii(), expected.as_bytes()) {
                found = true;
            } else {
                others += 1;
            }
        }
        if found {
            LookupOutcome::Found
        } else if others > 0 {
            LookupOutcome::Missing(format!(
                "found other tokens ({others} TXT record{}, none with this token)",
                if others == 1 { "" } else { "s" }
            ))
        } else {
            LookupOutcome::Missing("no TXT record".into())
        }
    }
}

/// Sorts resolver errors into "the zone says no" and "no answer".
fn classify(error: &NetError) -> LookupOutcome {
    if error.is_nx_domain() {
        return LookupOutcome::Missing("NXDOMAIN".into());
    }
    if error.is_no_records_found() {
        return LookupOutcome::Missing("no TXT record".into());
    }
    match error {
        NetError::Timeout => LookupOutcome::Error("timeout".into()),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            LookupOutcome::Error("SERVFAIL".into())
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => {
            LookupOutcome::Error("REFUSED".into())
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            LookupOutcome::Error(format!("DNS error: {}", code.to_str()))
        }
        other => LookupOutcome::Error(format!("resolver error: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A nameserver that never answers (UDP read by no one, TCP accepted
    /// by no one): the lookup ends with "timeout" at the configured
    /// timeout. Measured on tokio's paused clock, which moves only when
    /// every task waits: exact on any machine, however loaded.
    #[tokio::test(start_paused = true)]
    async fn a_silent_nameserver_ends_the_lookup_at_the_timeout() {
        let (udp, _tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            // Same port over TCP too: hickory may try it, and a refused
            // connection would be a different error.
            if let Ok(tcp) = std::net::TcpListener::bind(udp.local_addr().unwrap()) {
                break (udp, tcp);
            }
        };
        let dns = DnsConfig {
            nameservers: vec![udp.local_addr().unwrap().to_string()],
            ..DnsConfig::default()
        };
        let timeout = Duration::from_millis(400);
        let resolver = TxtResolver::new(&dns, timeout).unwrap();
        let started = tokio::time::Instant::now();
        let outcome = resolver
            .check("_portcullis-challenge.example.com", "value")
            .await;
        assert_eq!(outcome, LookupOutcome::Error("timeout".into()));
        let took = started.elapsed();
        assert!(
            took >= timeout && took < 2 * timeout,
            "{took:?} on the paused clock"
        );
    }
}
