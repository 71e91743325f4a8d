//! One configuration generation, compiled for the hot path. Swapped whole on
//! reload, so a request sees one consistent generation from start to end.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::AuthContext;
use crate::config::Config;
use crate::endpoints::{self, EndpointState};
use crate::identity::{AssertionSigner, HeaderPlan};
use crate::metrics::Metrics;
use crate::session::{CookieCodec, CookieError, Sessions};

use super::enforce::PasswordEndpoints;
use super::routes::RouteTable;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("upstream.address `{0}` does not resolve: {1}")]
    Resolve(String, String),
    #[error("headers: {0}")]
    Header(#[from] http::header::InvalidHeaderName),
    #[error("session: {0}")]
    Cookie(#[from] CookieError),
    #[error("{0}")]
    Connection(#[from] crate::auth::ConnectionError),
}

/// Where and how to reach the app.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub tls: bool,
    pub sni: String,
    pub verify_cert: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Everything a request needs, compiled once per configuration.
pub struct ProxyState {
    pub config: Arc<Config>,
    pub routes: RouteTable,
    pub password_endpoints: PasswordEndpoints,
    pub plan: HeaderPlan,
    pub codec: Arc<CookieCodec>,
    pub sessions: Sessions,
    pub signer: Arc<AssertionSigner>,
    pub upstream: Upstream,
    pub router: axum::Router,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<AuthContext>,
    /// `{internal_prefix}login`, precomputed.
    pub login_path: String,
    /// The SCIM server, when `[scim] enabled`: its base path and router.
    pub scim: Option<(String, axum::Router)>,
}

impl ProxyState {
    /// Compiles `config`. `sessions` and `signer` come from the caller
    /// because they outlive a generation (cache, store-held key).
    pub fn build(
        config: Arc<Config>,
        sessions: Sessions,
        signer: Arc<AssertionSigner>,
        metrics: Arc<Metrics>,
        auth: Arc<AuthContext>,
    ) -> Result<Self, StateError> {
        let u = &config.upstream;
        // Resolved once per generation: DNS on the hot path would add latency
        // and a failure mode to every request. Reload picks up DNS changes.
        let addr = u
            .address
            .to_socket_addrs()
            .map_err(|e| StateError::Resolve(u.address.clone(), e.to_string()))?
            .next()
            .ok_or_else(|| StateError::Resolve(u.address.clone(), "no addresses".into()))?;
        let host = u
            .address
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&u.address);
        let upstream = Upstream {
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
        };
        let codec = Arc::new(CookieCodec::new(&config.session)?);
        let plan = HeaderPlan::compile(&config.headers)?;
        let router = endpoints::router(Arc::new(EndpointState {
            config: config.clone(),
            codec: codec.clone(),
            sessions: sessions.clone(),
            signer: signer.clone(),
            metrics: metrics.clone(),
            auth: auth.clone(),
        }));
        let scim = config.scim.enabled.then(|| {
            let path = config.scim.path.trim_end_matches('/').to_owned();
            let service = crate::scim::Scim {
                store: sessions.store().clone(),
                sessions: sessions.clone(),
                config: config.clone(),
                metrics: metrics.clone(),
                base: format!("{}{path}", config.server.public_url.trim_end_matches('/')),
                max_matches: crate::scim::service::MAX_MATCHES,
            };
            (path, crate::scim::http::router(Arc::new(service)))
        });
        Ok(Self {
            scim,
            routes: RouteTable::compile(&config),
            password_endpoints: PasswordEndpoints::compile(&config.login),
            login_path: format!("{}login", config.server.internal_prefix),
            config,
            plan,
            codec,
            sessions,
            signer,
            upstream,
            router,
            metrics,
            auth,
        })
    }

    /// Is `path` under the SCIM base path? Then the SCIM router answers it.
    pub fn is_scim(&self, path: &str) -> bool {
        self.scim.as_ref().is_some_and(|(base, _)| {
            path.strip_prefix(base.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// How long a body Portcullis reads itself may take to arrive.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.config.limits.body_timeout_ms)
    }

    /// Is `path` one of ours? `/.portcullis` itself counts too.
    pub fn is_internal(&self, path: &str) -> bool {
        let p = &self.config.server.internal_prefix;
        path.starts_with(p.as_str()) || path == p.trim_end_matches('/')
    }
}
