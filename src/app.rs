//! Wiring: builds the state from a `Config`, registers the pingora services
//! (public proxy, admin), runs background loops, and swaps state on reload.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::ServerConf;
use pingora::server::{
    ListenFds, RunArgs, RuntimeOpts, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch,
};
use pingora::services::listening::Service;
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};

use crate::auth::saml::dev_idp::DevIdp;
use crate::auth::saml::{MetadataCache, SamlFactory};
use crate::auth::{AuthContext, ConnectionError, Factories};
use crate::config::{self, Config, ConfigErrors};
use crate::domains::{DomainError, Domains};
use crate::generation::Generation;
use crate::identity::{AssertionError, AssertionSigner, HeaderPlan, generate_signing_key};
use crate::metrics::Metrics;
use crate::proxy::ratelimit::RateLimiter;
use crate::proxy::{
    Admission, ConnectionLimit, HeaderDeadline, Mount, PortcullisProxy, ProxyState, ScimMount,
    StateError,
};
use crate::session::{CookieCodec, CookieError, Sessions};
use crate::store::SessionSelector;
use crate::store::{Store, StoreError};

mod admin;
mod tenants;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("assertion key: {0}")]
    Assertion(#[from] AssertionError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("headers: {0}")]
    Header(#[from] http::header::InvalidHeaderName),
    #[error("session: {0}")]
    Cookie(#[from] CookieError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("listener `{0}`: {1}")]
    Listener(String, String),
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("{0} cannot change on reload; restart Portcullis to apply it")]
    NeedsRestart(&'static str),
    #[error("domains: {0}")]
    Domains(#[from] DomainError),
    #[error("{0}")]
    Connection(#[from] ConnectionError),
    #[error("dev_idp: {0}")]
    DevIdp(String),
}

/// Per-connection L4 buffers of the public listeners. The read buffer is
/// for TLS listeners only: rustls reads a record at a time, and the buffer
/// saves syscalls there. Over plain TCP pingora's HTTP/1 reader already
/// reads into its own header and body buffers, so an L4 read buffer would
/// only add a copy per read. Neither buffer costs memory while it is empty
/// (vendored pingora-core, patches 4 and 7): an idle keep-alive connection
/// holds none of it (issue 14: with buffers held for the life of each
/// connection, 5,000 connections took the process to ~650 MB).
const DOWNSTREAM_TLS_READ_BUFFER: usize = 64 * 1024;
const DOWNSTREAM_WRITE_BUFFER: usize = 16 * 1024;

/// The largest answer of the internal endpoints relayed (pages, JWKS).
const INTERNAL_RESPONSE_LIMIT: usize = 1 << 20;

/// The largest SCIM answer relayed: a 50,000-member group is a few MiB.
const SCIM_RESPONSE_LIMIT: usize = 256 << 20;

/// The store key purpose under which the generated assertion key is kept.
const ASSERTION_KEY_PURPOSE: &str = "assertion-es256";

/// Process-lifetime parts: they survive reloads.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub sessions: Sessions,
    /// The generation in force.
    pub state: Arc<ArcSwap<ProxyState>>,
    /// Per-client rate-limit windows: they survive reloads.
    pub rate_limits: Arc<RateLimiter>,
    config_path: Option<PathBuf>,
    factories: Factories,
    /// Remote SAML metadata last fetched, for the next generation; per
    /// instance, so two servers in one process never share it.
    saml_metadata: MetadataCache,
    /// The store tenants merged with the file (see `app/tenants.rs`).
    tenants: tenants::TenantSync,
    /// This server, for the setup portal's routers (see `app/admin.rs`).
    portal: admin::PortalHost,
}

impl Shared {
    /// Opens the store and compiles the first generation.
    pub async fn new(
        config: Config,
        config_path: Option<PathBuf>,
        factories: Factories,
    ) -> Result<Arc<Self>, AppError> {
        let metrics = Arc::new(Metrics::new()?);
        let store = Store::open_sealed(
            &config.store.url,
            &config
                .store
                .encryption_keys()
                .map_err(StoreError::Sealing)?,
        )
        .await?;
        let sessions = Sessions::new(
            store.clone(),
            config.session.cache_capacity,
            Duration::from_secs(config.session.cache_ttl_seconds),
            metrics.clone(),
        );
        sessions.spawn_event_listener();
        let rate_limits = Arc::new(RateLimiter::new(config.limits.rate.max_tracked_clients));
        let saml_metadata = MetadataCache::default();
        let (tenants, config) = tenants::TenantSync::start(config, &store, &metrics).await?;
        let portal = admin::PortalHost::default();
        let state = build_state(
            Arc::new(config),
            &store,
            &sessions,
            &metrics,
            &factories,
            &saml_metadata,
            &portal,
        )
        .await?;
        tenants.unbuilt(&state.generation.auth.unbuilt, &metrics);
        use_directory(&sessions, &store, &state.generation.config);
        let shared = Arc::new(Self {
            metrics,
            store,
            sessions,
            state: Arc::new(ArcSwap::from_pointee(state)),
            rate_limits,
            config_path,
            factories,
            saml_metadata,
            tenants,
            portal,
        });
        shared.portal.bind(&shared);
        Ok(shared)
    }

    pub fn config(&self) -> Arc<Config> {
        self.state.load().generation.config.clone()
    }

    /// The generation in force.
    pub fn generation(&self) -> Arc<Generation> {
        self.state.load().generation.clone()
    }

    /// Builds a new generation from the config file and swaps it in. On any
    /// failure the old generation keeps serving; the failure is logged and
    /// counted.
    pub async fn reload(&self) -> Result<(), AppError> {
        let result = self.try_reload().await;
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .config_reloads
            .with_label_values(&[label])
            .inc();
        self.metrics
            .config_last_reload_success
            .set(i64::from(result.is_ok()));
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; still serving the previous configuration")
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<(), AppError> {
        let path = self.config_path.as_deref().ok_or(AppError::NeedsRestart(
            "a configuration given without a file",
        ))?;
        let new = config::load(path)?;
        log_warnings(&new);
        self.swap(new).await
    }

    /// Swaps in the configuration file `new` (merged with the tenants kept
    /// in the store) if it can be applied without a restart.
    pub async fn swap(&self, new: Config) -> Result<(), AppError> {
        let _guard = self.tenants.rebuild_lock.lock().await;
        let file = new.clone();
        let (new, version) = self.tenants.merge(new, &self.store, &self.metrics).await?;
        let old = self.config();
        if new.store != old.store {
            return Err(AppError::NeedsRestart("store.url"));
        }
        if new.listeners != old.listeners {
            return Err(AppError::NeedsRestart("listeners"));
        }
        if new.admin != old.admin {
            return Err(AppError::NeedsRestart("admin.address"));
        }
        if new.limits.max_connections != old.limits.max_connections {
            return Err(AppError::NeedsRestart("limits.max_connections"));
        }
        // The raw setting: a default derived from `server.threads` follows
        // that key, which a reload does not apply either.
        if new.limits.max_active_requests != old.limits.max_active_requests {
            return Err(AppError::NeedsRestart("limits.max_active_requests"));
        }
        if new.limits.active_request_hold_ms != old.limits.active_request_hold_ms {
            return Err(AppError::NeedsRestart("limits.active_request_hold_ms"));
        }
        if new.limits.rate.max_tracked_clients != old.limits.rate.max_tracked_clients {
            return Err(AppError::NeedsRestart("limits.rate.max_tracked_clients"));
        }
        if keepalive_pool_size(&new) != keepalive_pool_size(&old) {
            tracing::warn!(
                now = keepalive_pool_size(&old),
                configured = keepalive_pool_size(&new),
                "the upstream keep-alive pool is sized at start: the new size applies after a restart"
            );
        }
        let new = Arc::new(new);
        let state = build_state(
            new.clone(),
            &self.store,
            &self.sessions,
            &self.metrics,
            &self.factories,
            &self.saml_metadata,
            &self.portal,
        )
        .await?;
        self.tenants
            .unbuilt(&state.generation.auth.unbuilt, &self.metrics);
        use_directory(&self.sessions, &self.store, &new);
        self.state.store(Arc::new(state));
        self.tenants.applied(file, version);
        // "Configuring a new SSO provider logs everyone out of it": sessions
        // of a connection whose settings changed, or that is gone, end now.
        // Connections kept in the store are revoked by whoever changed them,
        // in the change's transaction.
        for id in changed_connections(&old, &new) {
            match self
                .sessions
                .revoke(&SessionSelector::Connection(id.clone()))
                .await
            {
                Ok(n) => {
                    tracing::info!(connection = %id, sessions = n, "connection changed: its sessions ended")
                }
                Err(e) => {
                    tracing::error!(connection = %id, error = %e, "could not end the sessions of a changed connection")
                }
            }
        }
        Ok(())
    }
}

/// Sessions compose principals under this generation's tenants (groups
/// source, group roles); cached ones composed under the last are dropped.
fn use_directory(sessions: &Sessions, store: &Store, config: &Arc<Config>) {
    sessions.set_directory(Box::new(crate::auth::directory::DirectoryView::new(
        config.clone(),
        store.clone(),
    )));
}

/// pingora keeps one keep-alive pool for the whole server (one LRU over
/// every peer, capped at this size times the worker threads), not one per
/// upstream: it is given the sum of the upstreams' `keepalive_pool_size`,
/// room for every app's share at once. The LRU may lend an idle app's share
/// to a busy one; a peer's connections are never handed to another peer.
fn keepalive_pool_size(config: &Config) -> usize {
    config
        .upstreams()
        .iter()
        .map(|u| u.keepalive_pool_size)
        .fold(0, usize::saturating_add)
}

/// Connection ids whose configuration (or tenant) differs between `old` and
/// `new`, including removed ones.
pub fn changed_connections(old: &Config, new: &Config) -> Vec<String> {
    let index = |c: &Config| {
        c.tenants
            .iter()
            .filter(|t| t.origin == config::Origin::File)
            .flat_map(|t| {
                t.connections
                    .iter()
                    .map(move |conn| (conn.id.clone(), (t.id.clone(), conn.clone())))
            })
            .collect::<std::collections::HashMap<_, _>>()
    };
    let (before, after) = (index(old), index(new));
    // A provider's section is part of every connection of that provider.
    let provider_changed = |c: &crate::config::ConnectionConfig| {
        c.platform
            .is_some_and(|k| !old.platform.providers.same(&new.platform.providers, k))
    };
    let mut ids: Vec<String> = before
        .iter()
        .filter(|(id, v)| after.get(*id) != Some(*v) || provider_changed(&v.1))
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    ids
}

async fn build_state(
    config: Arc<Config>,
    store: &Store,
    sessions: &Sessions,
    metrics: &Arc<Metrics>,
    factories: &Factories,
    saml_metadata: &MetadataCache,
    portal: &admin::PortalHost,
) -> Result<ProxyState, AppError> {
    let material = match &config.headers.signing_key {
        Some(pem) => pem.as_bytes().to_vec(),
        None => {
            // First writer wins across replicas; the rest adopt its key.
            let candidate = generate_signing_key()?;
            store
                .keys()
                .get_or_insert(ASSERTION_KEY_PURPOSE, "generated", &candidate)
                .await?
                .material
        }
    };
    let signer = Arc::new(
        AssertionSigner::new(
            &material,
            config.public_urls().origin(),
            &config.headers.assertion_audience,
            config.headers.assertion_lifetime_seconds,
        )?
        .with_claims(&config.headers.assertion_claims)
        .observe_signing({
            let histogram = metrics.assertion_sign.clone();
            move |took| histogram.observe(took.as_secs_f64())
        }),
    );
    let domains = Domains::new(store.clone(), &config.dns)?;
    let dev_idp = DevIdp::from_config(&config)
        .map_err(|e| AppError::DevIdp(e.to_string()))?
        .map(Arc::new);
    if config.dev_idp.is_none() {
        for domain in domains.forget_dev_shortcuts().await? {
            tracing::warn!(domain = %domain, "[dev_idp] is not configured: its development shortcut for this domain was removed; prove it with `portcullis domains add`");
        }
    }
    if let Some(dev) = &config.dev_idp {
        mark_dev_domains_verified(&config, dev, &domains).await?;
    }
    let mut factories = factories.clone();
    // Every IdP fetch of this generation goes through it (`auth::egress`).
    let egress = crate::auth::egress::Egress::new(&config, Some(metrics.clone()))
        .map_err(|e| AppError::Connection(ConnectionError::new("config", e.to_string())))?;
    if factories.saml.is_none() && factories.builtin_saml {
        factories.saml = Some(Arc::new(
            SamlFactory::new(store.clone(), config.public_urls())
                .with_egress(egress.clone())
                .with_dev_idp(dev_idp.clone())
                .with_metrics(metrics.clone())
                .with_metadata_cache(saml_metadata.clone()),
        ));
    }
    if factories.oidc.is_none() && factories.builtin_oidc {
        factories.oidc = Some(Arc::new(
            crate::auth::oidc::OidcFactory::new(
                store.clone(),
                config.public_urls(),
                Some(metrics.clone()),
            )
            .with_clock(factories.clock.clone())
            .with_headers(config.headers.clone())
            .with_egress(egress.clone()),
        ));
    }
    let domains = Arc::new(domains);
    if factories.platform.is_none() && factories.builtin_platform {
        factories.platform = Some(Arc::new(crate::auth::platform::PlatformFactory::new(
            &config.platform,
            store.clone(),
            config.public_urls(),
            Some(metrics.clone()),
            domains.clone(),
            factories.clock.clone(),
            &egress,
        )?));
    }
    let mut auth = AuthContext::build(&config, &factories, domains)?;
    auth.dev_idp = dev_idp;
    // A store tenant that could not be built is not served by anything of
    // this generation (the caller reports it: `TenantSync::unbuilt`).
    let config = match config.without_tenants(auth.unbuilt.iter().map(|u| u.tenant.as_str())) {
        std::borrow::Cow::Borrowed(_) => config,
        std::borrow::Cow::Owned(served) => Arc::new(served),
    };
    let auth = Arc::new(auth);
    crate::auth::saml::expiry::report(&config, metrics, crate::clock::now(), true);
    let generation = Arc::new(Generation {
        codec: Arc::new(CookieCodec::new(&config.session)?),
        plan: HeaderPlan::compile(&config.headers)?,
        login_path: auth.urls.login_path(),
        returns: config.return_targets(),
        sessions: sessions.clone(),
        signer,
        metrics: metrics.clone(),
        auth,
        config: config.clone(),
    });
    let internal = Mount {
        router: admin::internal_router(portal, &generation),
        max_body: config.server.max_internal_body_bytes,
        max_response: INTERNAL_RESPONSE_LIMIT,
    };
    let scim = config.scim.enabled.then(|| {
        let path = config.scim.base_path().to_owned();
        let service = crate::scim::Scim {
            store: store.clone(),
            sessions: sessions.clone(),
            config: config.clone(),
            metrics: metrics.clone(),
            base: generation.auth.urls.scim_base(&config.scim),
            max_matches: crate::scim::service::MAX_MATCHES,
            schemas: crate::scim::schema::Schemas::new(&config.scim.extensions),
        };
        ScimMount {
            mount: Mount {
                router: crate::scim::http::router(Arc::new(service)),
                max_body: config.scim.max_payload_bytes,
                max_response: SCIM_RESPONSE_LIMIT,
            },
            error: crate::scim::http::error,
            path,
        }
    });
    Ok(ProxyState::build(generation, internal, scim)?)
}

/// Development shortcut of `[dev_idp]` (loopback only, enforced by config
/// validation): the dev tenant's configured domains can't be proven by DNS
/// on a laptop, so they are marked verified in the store.
async fn mark_dev_domains_verified(
    config: &Config,
    dev: &crate::config::DevIdpConfig,
    domains: &Domains,
) -> Result<(), AppError> {
    let Some(tenant) = config.tenants.iter().find(|t| t.id == dev.tenant) else {
        return Ok(());
    };
    let now = crate::clock::now();
    for domain in &tenant.domains {
        domains
            .mark_verified_for_dev(&tenant.id, domain, now)
            .await?;
        tracing::warn!(
            tenant = %tenant.id,
            domain = %domain,
            "DEVELOPMENT SHORTCUT: [dev_idp] is configured, so this domain is marked verified without DNS proof; never use [dev_idp] outside local development"
        );
    }
    Ok(())
}

/// `/metrics`, `/healthz`, `/readyz` and the admin API on the admin listener.
struct AdminApp {
    shared: Arc<Shared>,
    /// `/admin/v1/`, unless `[admin] api_enabled = false`.
    api: Option<axum::Router>,
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, http: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = http.req_header().uri.path().to_owned();
        if let Some(api) = &self.api
            && (path == "/admin/v1" || path.starts_with("/admin/v1/"))
        {
            return admin::serve(http, api, self.shared.as_ref()).await;
        }
        let (status, ctype, body) = match path.as_str() {
            "/metrics" => (
                200,
                "text/plain; version=0.0.4",
                self.shared.metrics.render().into_bytes(),
            ),
            "/healthz" => (200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                match tokio::time::timeout(Duration::from_secs(2), self.shared.store.ping()).await {
                    Ok(Ok(())) => (200, "text/plain", b"ready\n".to_vec()),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "readiness: store unreachable");
                        (503, "text/plain", b"store unreachable\n".to_vec())
                    }
                    Err(_) => (503, "text/plain", b"store timed out\n".to_vec()),
                }
            }
            _ => (404, "text/plain", b"not found\n".to_vec()),
        };
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, ctype)
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(body)
            .unwrap_or_default()
    }
}

/// How the server learns it should stop.
pub enum Stop {
    /// SIGTERM: graceful (in-flight requests get the grace period);
    /// SIGINT: fast. For the real binary.
    Signals,
    /// A channel: for tests and embedding.
    Channel(tokio::sync::mpsc::Receiver<ShutdownSignal>),
}

struct SignalWatch;

#[async_trait]
impl ShutdownSignalWatch for SignalWatch {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: graceful shutdown"); ShutdownSignal::GracefulTerminate }
            _ = int.recv() => { tracing::info!("SIGINT: fast shutdown"); ShutdownSignal::FastShutdown }
        }
    }
}

struct ChannelWatch(tokio::sync::Mutex<tokio::sync::mpsc::Receiver<ShutdownSignal>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelWatch {
    async fn recv(&self) -> ShutdownSignal {
        self.0
            .lock()
            .await
            .recv()
            .await
            .unwrap_or(ShutdownSignal::FastShutdown)
    }
}

/// A prepared server: run it (blocking) with [`Prepared::run`].
pub struct Prepared {
    server: Server,
    pub shared: Arc<Shared>,
    /// Runs the store's connections and background loops; lives as long as
    /// the server.
    background: tokio::runtime::Runtime,
    /// Stops the DNS re-verification loop.
    checks_stop: tokio::sync::watch::Sender<bool>,
}

/// Builds everything and binds every listener (public and admin), so an
/// address in use fails here, at once and by name, instead of inside
/// pingora's start (which retries for 30 s and then leaves the process
/// running without that listener while `/readyz` still says ready).
pub fn prepare(config: Config, config_path: Option<PathBuf>) -> Result<Prepared, AppError> {
    prepare_with(config, config_path, Factories::builtin())
}

/// [`prepare`] with SSO protocol implementations (tests inject their own).
pub fn prepare_with(
    config: Config,
    config_path: Option<PathBuf>,
    factories: Factories,
) -> Result<Prepared, AppError> {
    prepare_with_listeners(config, config_path, factories, Vec::new())
}

/// [`prepare_with`] serving some addresses on sockets the caller already
/// bound: each configured address (`[[listeners]]` or `[admin]`) equal to
/// one of `bound`'s local addresses is served on that socket instead of
/// being bound here. Tests bind `127.0.0.1:0`, write the port into the
/// configuration and hand the socket over, so no port is ever released
/// and bound again (another process could take it in between). A socket
/// that matches no configured address is an error.
pub fn prepare_with_listeners(
    config: Config,
    config_path: Option<PathBuf>,
    factories: Factories,
    mut bound: Vec<StdListener>,
) -> Result<Prepared, AppError> {
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portcullis-bg")
        .enable_all()
        .build()?;
    let shared = background.block_on(Shared::new(config.clone(), config_path, factories))?;
    // After the configuration is known good (its errors come first), before
    // anything serves.
    let mut public = Vec::with_capacity(config.listeners.len());
    for l in &config.listeners {
        public.push((l.address.clone(), listener_socket(&l.address, &mut bound)?));
    }
    let admin_socket = listener_socket(&config.admin.address, &mut bound)?;
    if let Some(extra) = bound.first() {
        let addr = extra
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        return Err(AppError::Listener(
            addr,
            "handed over, but no listener or admin address is configured there".into(),
        ));
    }
    background.spawn(sweep_expired_sessions(shared.clone()));
    background.spawn(purge_freed_memory());
    let (checks_stop, checks_rx) = tokio::sync::watch::channel(false);
    let domains = background.block_on(async { Domains::new(shared.store.clone(), &config.dns) })?;
    background.spawn(crate::domains::run_checks(
        domains,
        Duration::from_secs(config.dns.check_interval_seconds),
        checks_rx.clone(),
    ));
    background.spawn(tenants::watch(shared.clone(), checks_rx.clone()));
    background.spawn(supervise_webhooks(shared.clone(), checks_rx));

    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(5),
        upstream_keepalive_pool_size: keepalive_pool_size(&config),
        work_stealing: config.server.work_stealing,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    // The proxy inside the slow-client guards (see `proxy::conn`): a cap on
    // open connections, a deadline for every request header, then the
    // bound on requests worked on at once (`proxy::admission`).
    let app = pingora::proxy::http_proxy(
        &server.configuration,
        PortcullisProxy::new(shared.state.clone()).with_rate_limiter(shared.rate_limits.clone()),
    );
    let admission = Admission::new(
        config.max_active_requests(),
        Duration::from_millis(config.limits.active_request_hold_ms),
        shared.state.clone(),
        shared.metrics.clone(),
    );
    let app = ConnectionLimit::new(
        HeaderDeadline::new(app, admission, shared.state.clone(), shared.metrics.clone()),
        config.limits.max_connections,
        shared.metrics.clone(),
    );
    let mut proxy = Service::new("portcullis proxy".into(), app);
    for l in &config.listeners {
        // pingora's default 1460-byte write buffer flushes a response header
        // on its own as soon as the body doesn't fit beside it: one extra
        // send per request. 16 KiB lets typical responses leave in one.
        let read_buffer = if l.tls.is_some() {
            DOWNSTREAM_TLS_READ_BUFFER
        } else {
            0
        };
        let mut listener = ListenerConfig::tcp(l.address.clone())
            .l4_buffer(L4BufferSettings::new(read_buffer, DOWNSTREAM_WRITE_BUFFER));
        if let Some(tls) = &l.tls {
            let settings = TlsSettings::intermediate(&tls.cert, &tls.key)
                .map_err(|e| AppError::Listener(l.address.clone(), e.to_string()))?;
            listener = listener.tls(settings);
        }
        proxy.endpoints().add_listener(listener);
    }
    let mut admin = Service::new(
        "portcullis admin".into(),
        AdminApp {
            shared: shared.clone(),
            api: config
                .admin
                .api_enabled
                .then(|| crate::admin::api::router(shared.clone())),
        },
    );
    admin.add_tcp(&config.admin.address);
    server.add_service(Prebound {
        inner: proxy,
        sockets: public,
    });
    server.add_service(Prebound {
        inner: admin,
        sockets: vec![(config.admin.address.clone(), admin_socket)],
    });
    Ok(Prepared {
        server,
        shared,
        background,
        checks_stop,
    })
}

/// The socket for `address`: the caller's if one of `bound` has that local
/// address, else bound here (std sets `SO_REUSEADDR`, as pingora would).
fn listener_socket(address: &str, bound: &mut Vec<StdListener>) -> Result<StdListener, AppError> {
    let fail = |e: std::io::Error| AppError::Listener(address.to_owned(), e.to_string());
    let addr: SocketAddr = address
        .parse()
        .map_err(|_| AppError::Listener(address.to_owned(), "not `IP:PORT`".into()))?;
    let socket = match bound
        .iter()
        .position(|l| l.local_addr().is_ok_and(|a| a == addr))
    {
        Some(i) => bound.swap_remove(i),
        None => StdListener::bind(addr).map_err(fail)?,
    };
    // pingora wraps the socket in tokio, which needs it non-blocking.
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(socket)
}

/// A pingora service whose listening sockets were bound in [`prepare`].
/// pingora looks every listener address up in its table of inherited
/// sockets (meant for zero-downtime upgrades) before binding it, so
/// putting ours there, keyed by the same address string, makes it serve
/// exactly these sockets.
struct Prebound<S> {
    inner: S,
    sockets: Vec<(String, StdListener)>,
}

#[async_trait]
impl<S: ServiceWithDependents> ServiceWithDependents for Prebound<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        let sockets = std::mem::take(&mut self.sockets);
        // pingora always passes the table on Unix; without one, the sockets
        // close here and pingora binds the addresses itself.
        if let Some(fds) = &fds {
            let mut table = fds.lock();
            for (address, socket) in sockets {
                // The table owns the descriptor from here on.
                table.add(address, socket.into_raw_fd());
            }
        }
        self.inner
            .start_service(fds, shutdown, listeners_per_fd, ready_notifier)
            .await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn runtime_opts_override(&self, global: &RuntimeOpts) -> Option<RuntimeOpts> {
        self.inner.runtime_opts_override(global)
    }

    fn on_startup_delay(&self, time_waited: Duration) {
        self.inner.on_startup_delay(time_waited)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}

impl Prepared {
    /// Serves until told to stop. With `Stop::Signals`, SIGHUP reloads the
    /// configuration file.
    pub fn run(self, stop: Stop) {
        let watch: Box<dyn ShutdownSignalWatch> = match stop {
            Stop::Signals => {
                self.background.spawn(reload_on_sighup(self.shared.clone()));
                Box::new(SignalWatch)
            }
            Stop::Channel(rx) => Box::new(ChannelWatch(tokio::sync::Mutex::new(rx))),
        };
        self.server.run(RunArgs {
            shutdown_signal: watch,
        });
        self.checks_stop.send_replace(true);
        let store = self.shared.store.clone();
        self.background.block_on(async move { store.close().await });
        self.background.shutdown_timeout(Duration::from_secs(2));
    }
}

/// What `check` would print as warnings, in the log.
fn log_warnings(config: &Config) {
    for w in &config.warnings {
        tracing::warn!(file = %w.file, line = w.line, key = %w.key, "{}", w.message);
    }
}

/// Loads `path` and serves until SIGTERM/SIGINT; SIGHUP reloads.
pub fn run(path: &Path) -> Result<(), AppError> {
    let config = config::load(path)?;
    crate::logging::init(&config.log);
    log_warnings(&config);
    let prepared = prepare(config, Some(path.to_path_buf()))?;
    tracing::info!(config = %path.display(), "portcullis starting");
    prepared.run(Stop::Signals);
    Ok(())
}

async fn reload_on_sighup(shared: Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install SIGHUP handler; reload disabled");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading configuration");
        let _ = shared.reload().await;
    }
}

/// Runs the webhook deliverer while `[webhook]` is configured, restarting it
/// when a reload changes the section (the outbox keeps events meanwhile, so
/// nothing is lost across a restart of the deliverer).
async fn supervise_webhooks(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut current: Option<(
        crate::config::WebhookConfig,
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )> = None;
    loop {
        let wanted = shared.config().webhook.clone();
        if current.as_ref().map(|c| &c.0) != wanted.as_ref() {
            if let Some((_, tx, handle)) = current.take() {
                tx.send_replace(true);
                let _ = handle.await;
            }
            if let Some(cfg) = wanted {
                let (tx, rx) = tokio::sync::watch::channel(false);
                match crate::webhook::spawn(
                    shared.store.clone(),
                    cfg.clone(),
                    shared.metrics.clone(),
                    rx,
                ) {
                    Ok(handle) => current = Some((cfg, tx, handle)),
                    Err(e) => tracing::error!(error = %e, "webhook deliverer not started"),
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    if let Some((_, tx, handle)) = current.take() {
        tx.send_replace(true);
        let _ = handle.await;
    }
}

/// Webhook retention. Delivered and dead events are kept for the replay
/// window (`retention_days`). Without `[webhook]` nobody will ever take the
/// pending ones either, so they go after the default window too instead of
/// piling up forever (`webhooks resync` rebuilds an app that starts
/// listening later).
async fn prune_webhook_events(
    store: &crate::store::Store,
    webhook: Option<&crate::config::WebhookConfig>,
    now: i64,
) {
    let days = webhook.map_or(crate::config::DEFAULT_WEBHOOK_RETENTION_DAYS, |w| {
        w.retention_days
    });
    let cutoff_ms = (now - days as i64 * 86_400) * 1000;
    if let Err(e) = store.outbox().prune(cutoff_ms).await {
        tracing::warn!(error = %e, "could not prune delivered webhook events");
    }
    if webhook.is_none() {
        match store.outbox().prune_pending(cutoff_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                dropped = n,
                retention_days = days,
                "webhook events older than the retention dropped undelivered: no [webhook] \
                 is configured (`portcullis webhooks resync` sends an app the current state)"
            ),
            Err(e) => tracing::warn!(error = %e, "could not prune undelivered webhook events"),
        }
    }
}

/// How often freed memory is offered back to the OS (see `purge_freed_memory`).
const PURGE_EVERY: Duration = Duration::from_secs(5);

/// Returns memory freed after a burst of connections to the OS once the
/// process is quiet: the allocator does so only when called again, and an
/// idle proxy calls it rarely (see `portcullis_alloc`).
async fn purge_freed_memory() {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        portcullis_alloc::purge();
    }
}

/// Deletes expired and idle sessions so the store doesn't grow forever.
async fn sweep_expired_sessions(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        let cfg = shared.config();
        let now = crate::clock::now();
        let idle_cutoff = now - cfg.session.idle_lifetime_seconds as i64;
        match shared
            .store
            .sessions()
            .delete_expired(now, idle_cutoff)
            .await
        {
            Ok(n) if n > 0 => tracing::debug!(deleted = n, "expired sessions removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not remove expired sessions"),
        }
        if let Err(e) = shared.store.one_time().delete_expired(now).await {
            tracing::warn!(error = %e, "could not remove expired one-time values");
        }
        prune_webhook_events(&shared.store, cfg.webhook.as_ref(), now).await;
        // Keep the certificate-expiry gauge current; log warnings daily.
        crate::auth::saml::expiry::report(&cfg, &shared.metrics, now, ticks.is_multiple_of(1440));
    }
}
