//! A configuration generation as the proxy serves it: the shared
//! [`Generation`] plus what only the proxy reads (route table, password
//! endpoints, the upstreams, the mounted routers). Built by `app`, swapped
//! whole on reload, so a request sees one consistent generation from start
//! to end.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, UpstreamConfig};
use crate::generation::Generation;

use super::enforce::PasswordEndpoints;
use super::forward_auth;
use super::mount::{Mount, ScimMount};
use super::routes::RouteTable;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The key (`upstream` or `upstreams[i]`), the address, the error.
    #[error("{0}.address `{1}` does not resolve: {2}")]
    Resolve(String, String, String),
}

/// Where and how to reach the app.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The configured name (what routes call it).
    pub name: String,
    pub addr: SocketAddr,
    pub tls: bool,
    pub sni: String,
    pub verify_cert: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Upstream {
    /// Resolved once per generation: DNS on the hot path would add latency
    /// and a failure mode to every request. Reload picks up DNS changes.
    /// `key` names the entry in errors (`upstream`, `upstreams[1]`).
    pub fn resolve(key: &str, u: &UpstreamConfig) -> Result<Self, StateError> {
        let failed = |e: String| StateError::Resolve(key.to_owned(), u.address.clone(), e);
        let addr = u
            .address
            .to_socket_addrs()
            .map_err(|e| failed(e.to_string()))?
            .next()
            .ok_or_else(|| failed("no addresses".into()))?;
        let host = u
            .address
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&u.address);
        Ok(Self {
            name: u.name.clone(),
            addr,
            tls: u.tls,
            sni: u
                .sni
                .clone()
                .unwrap_or_else(|| host.trim_matches(['[', ']']).to_owned()),
            verify_cert: u.verify_cert,
            connect_timeout: Duration::from_millis(u.connect_timeout_ms),
            read_timeout: Duration::from_millis(u.read_timeout_ms),
            idle_timeout: Duration::from_secs(u.idle_timeout_seconds),
        })
    }
}

/// Everything a request needs, compiled once per configuration.
pub struct ProxyState {
    pub generation: Arc<Generation>,
    pub routes: RouteTable,
    pub password_endpoints: PasswordEndpoints,
    /// The configuration's upstreams in order; the route table picks one
    /// by index.
    pub upstreams: Vec<Upstream>,
    /// The internal endpoints, under `[server] internal_prefix`.
    pub internal: Mount,
    /// The SCIM API, when `[scim] enabled`.
    pub scim: Option<ScimMount>,
    /// The forward-auth endpoints, when `[forward_auth]` has any.
    pub(crate) forward_auth: Option<forward_auth::Plan>,
    /// The identity headers' names, ready for pingora's upstream request.
    pub(crate) upstream_names: super::forward::UpstreamNames,
}

impl ProxyState {
    /// What a decision (`decide::decide_request`) consults.
    pub(super) fn tables(&self) -> super::decide::Tables<'_> {
        super::decide::Tables {
            routes: &self.routes,
            password_endpoints: &self.password_endpoints,
            login_path: &self.generation.login_path,
        }
    }

    /// The proxy's tables for `generation`, serving `internal` and `scim`
    /// (routers `app` built for the same generation).
    pub fn build(
        generation: Arc<Generation>,
        internal: Mount,
        scim: Option<ScimMount>,
    ) -> Result<Self, StateError> {
        let config = &generation.config;
        Ok(Self {
            routes: RouteTable::compile(config),
            password_endpoints: PasswordEndpoints::compile(&config.login),
            forward_auth: forward_auth::Plan::compile(config),
            upstream_names: super::forward::UpstreamNames::compile(&generation.plan),
            upstreams: resolve_all(config)?,
            internal,
            scim,
            generation,
        })
    }

    /// The upstream at `index` (as the route table picked it).
    pub fn upstream(&self, index: usize) -> Option<&Upstream> {
        self.upstreams.get(index)
    }

    /// The SCIM API, if `path` is at or under its base path (a segment
    /// boundary: `/scim/v2x` is the app's).
    pub fn scim_at(&self, path: &str) -> Option<&ScimMount> {
        self.scim.as_ref().filter(|s| {
            path.strip_prefix(s.path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// How long a body Portcullis reads itself may take to arrive.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.generation.config.limits.body_timeout_ms)
    }

    /// Is `path` one of ours? `/.portcullis` itself counts too.
    pub fn is_internal(&self, path: &str) -> bool {
        self.generation.auth.urls.is_internal(path)
    }
}

/// Every upstream of `config`, each error naming its entry.
fn resolve_all(config: &Config) -> Result<Vec<Upstream>, StateError> {
    let several = !config.upstreams.is_empty();
    config
        .upstreams()
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let key = if several {
                format!("upstreams[{i}]")
            } else {
                "upstream".to_owned()
            };
            Upstream::resolve(&key, u)
        })
        .collect()
}
