//! Pingora phases. Each is short: gather facts, ask `gate`, act.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::ErrorType;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use tower::ServiceExt;

use crate::config::Policy;
use crate::endpoints::{CurrentSession, RequestId};
use crate::identity::Principal;
use crate::metrics::status_class;
use crate::session::{ActiveSession, Lookup};

use super::body::{self, Body};
use super::enforce;
use super::forward::{Downstream, rewrite};
use super::gate::{Deny, Identity, Outcome, RequestFacts, decide};
use super::ratelimit::{self, RateLimiter};
use super::respond::{self, Reply};
use super::state::ProxyState;
use super::{canon, host};

/// The proxy. Holds the current configuration generation; a reload swaps it.
pub struct PortcullisProxy {
    state: Arc<ArcSwap<ProxyState>>,
    /// Per-client windows; outlives configuration generations.
    limiter: Arc<RateLimiter>,
}

impl PortcullisProxy {
    pub fn new(state: Arc<ArcSwap<ProxyState>>) -> Self {
        let tracked = state
            .load()
            .generation
            .config
            .limits
            .rate
            .max_tracked_clients;
        Self {
            state,
            limiter: Arc::new(RateLimiter::new(tracked)),
        }
    }

    /// Shares `limiter` (the process-lifetime one) instead of a private one.
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }
}

/// Per-request context.
pub struct Ctx {
    state: Option<Arc<ProxyState>>,
    request_id: String,
    start: Instant,
    policy: &'static str,
    wants_html: bool,
    session: Option<Arc<ActiveSession>>,
    principal: Option<Arc<Principal>>,
    /// Set when Portcullis answered itself.
    status: Option<u16>,
    outcome: &'static str,
}

/// A unique request id without a syscall per request: a random per-process
/// prefix and a counter (ids need to be unique and unguessable across
/// processes, not secret).
fn next_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        crate::secret::random_bytes::<8>()
            .map(u64::from_le_bytes)
            .unwrap_or_else(|_| uuid::Uuid::new_v4().as_u64_pair().0)
    });
    format!(
        "{prefix:016x}{:016x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A browser posting a form gets a redirect, an API client a JSON 403.
fn is_browser_form(ctx: &Ctx, content_type: Option<&str>) -> bool {
    ctx.wants_html
        || content_type.is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/x-www-form-urlencoded")
                || ct.starts_with("multipart/form-data")
        })
}

fn wants_html(req: &RequestHeader) -> bool {
    req.headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

impl PortcullisProxy {
    /// Cookie → session. Never fails the request: a bad cookie is anonymous;
    /// a store outage is `Unknown` (the gate turns that into 503 on
    /// `required` routes instead of logging everyone out).
    async fn identify(&self, session: &Session, st: &ProxyState, ctx: &mut Ctx) -> Identity {
        let cookies = session.req_header().headers.get_all(http::header::COOKIE);
        let token = match st
            .generation
            .codec
            .open(cookies.iter().map(|v| v.as_bytes()))
        {
            Ok(Some(t)) => t,
            Ok(None) => return Identity::Anonymous,
            Err(()) => {
                st.generation
                    .metrics
                    .session_rejected
                    .with_label_values(&["undecryptable"])
                    .inc();
                return Identity::Anonymous;
            }
        };
        let idle = st.generation.config.session.idle_lifetime_seconds as i64;
        match st
            .generation
            .sessions
            .resolve(&token, crate::clock::now(), idle)
            .await
        {
            Ok(Lookup::Active(s)) => {
                let p = s.principal.clone();
                ctx.session = Some(s);
                Identity::Authenticated(p)
            }
            Ok(Lookup::Rejected(reason)) => {
                st.generation
                    .metrics
                    .session_rejected
                    .with_label_values(&[reason])
                    .inc();
                Identity::Anonymous
            }
            Err(e) => {
                st.generation
                    .metrics
                    .session_rejected
                    .with_label_values(&["store_error"])
                    .inc();
                tracing::error!(request_id = %ctx.request_id, error = %e, "session lookup failed");
                Identity::Unknown
            }
        }
    }

    /// SSO enforcement on a password-login endpoint: `Some(status)` when
    /// Portcullis answered, `None` to forward (the body read here is
    /// replayed to the app from pingora's retry buffer).
    async fn enforce(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ep: &enforce::Endpoint,
        ctx: &mut Ctx,
    ) -> pingora::Result<Option<u16>> {
        let head = session.req_header();
        if let Err(r) = ep.check_query(head.uri.query()) {
            return self.login_refused(session, st, ctx, r).await.map(Some);
        }
        if !enforce::inspects(&head.method, &head.headers) {
            return Ok(None);
        }
        session.as_downstream_mut().enable_retry_buffering();
        let body = match body::read_body(session, enforce::MAX_LOGIN_BODY, st.body_timeout()).await
        {
            Ok(Body::Whole(b)) => b,
            Ok(Body::TooLarge(_)) => {
                return self
                    .login_refused(session, st, ctx, enforce::Refusal::TooLarge)
                    .await
                    .map(Some);
            }
            Err(e) => {
                ctx.outcome = "timeout";
                return body::refuse(
                    session,
                    &st.generation.metrics,
                    "login_body",
                    e,
                    &ctx.request_id,
                )
                .await
                .map(Some);
            }
        };
        let header = |name| {
            session
                .req_header()
                .headers
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let ct = header(http::header::CONTENT_TYPE);
        let ce = header(http::header::CONTENT_ENCODING);
        let email = match ep.submitted_email(ct.as_deref(), ce.as_deref(), body).await {
            Ok(e) => e,
            Err(r) => return self.login_refused(session, st, ctx, r).await.map(Some),
        };
        let tenant = match st.generation.auth.routed_tenant(&email.domain).await {
            Ok(Some(t)) => t.id.clone(),
            Ok(None) => return Ok(None),
            Err(e) => {
                // Enforcement is a security control: fail closed.
                tracing::error!(request_id = %ctx.request_id, error = %e, "domain lookup failed during SSO enforcement");
                ctx.outcome = "deny";
                return respond::deny(
                    Deny::Unavailable,
                    ctx.wants_html,
                    &ctx.request_id,
                    &st.generation.login_path,
                    &st.generation.config.server.public_url,
                )
                .send(session, &ctx.request_id)
                .await
                .map(Some);
            }
        };
        if !st
            .generation
            .auth
            .tenant(&tenant)
            .is_some_and(|t| t.enforce_sso)
        {
            return Ok(None);
        }
        st.generation
            .metrics
            .sso_enforced
            .with_label_values(&[&tenant])
            .inc();
        tracing::info!(request_id = %ctx.request_id, tenant = %tenant, "password login stopped: tenant enforces SSO");
        ctx.outcome = "sso_required";
        let login_url = format!(
            "{}?use_sso=true&email={}",
            st.generation.login_path,
            percent_encoding::utf8_percent_encode(
                &email.address,
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        respond::sso_required(
            is_browser_form(ctx, ct.as_deref()),
            &login_url,
            &ctx.request_id,
        )
        .send(session, &ctx.request_id)
        .await
        .map(Some)
    }

    /// A password-login submission Portcullis could not vouch for: one
    /// generic answer to the client, the precise reason to log and metrics.
    async fn login_refused(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ctx: &mut Ctx,
        reason: enforce::Refusal,
    ) -> pingora::Result<u16> {
        st.generation
            .metrics
            .login_refused
            .with_label_values(&[reason.label()])
            .inc();
        tracing::info!(request_id = %ctx.request_id, reason = %reason, "password login refused");
        ctx.outcome = "login_refused";
        let ct = session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let login_url = format!("{}?use_sso=true", st.generation.login_path);
        let reply = if reason == enforce::Refusal::TooLarge {
            respond::too_large(&ctx.request_id)
        } else {
            respond::login_refused(
                is_browser_form(ctx, ct.as_deref()),
                &login_url,
                &ctx.request_id,
            )
        };
        reply.send(session, &ctx.request_id).await
    }

    /// A request refused before routing: its path or host stays ambiguous.
    async fn refuse_ambiguous(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ctx: &mut Ctx,
        label: &'static str,
        reason: &(dyn std::fmt::Display + Sync),
    ) -> pingora::Result<bool> {
        st.generation
            .metrics
            .requests_refused
            .with_label_values(&[label])
            .inc();
        tracing::info!(request_id = %ctx.request_id, reason = %reason, "request refused before routing");
        ctx.outcome = "refused";
        ctx.status = Some(
            respond::bad_request("ambiguous request", &ctx.request_id)
                .send(session, &ctx.request_id)
                .await?,
        );
        Ok(true)
    }

    /// Serves the SCIM API through its in-process router. A body beyond
    /// its limit is handed over as read, for the router's 413.
    async fn serve_scim(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ctx: &mut Ctx,
    ) -> pingora::Result<u16> {
        let Some(scim) = &st.scim else {
            return Ok(0);
        };
        if let Some(status) =
            ratelimit::limit_scim(&self.limiter, session, st, scim, &ctx.request_id).await?
        {
            ctx.outcome = "rate_limited";
            return Ok(status);
        }
        let body = match body::read_body(session, scim.mount.max_body, st.body_timeout()).await {
            Ok(Body::Whole(b) | Body::TooLarge(b)) => b,
            Err(e) => {
                ctx.outcome = "timeout";
                return body::refuse(
                    session,
                    &st.generation.metrics,
                    "scim_body",
                    e,
                    &ctx.request_id,
                )
                .await;
            }
        };
        let head = session.req_header();
        let mut builder = http::Request::builder()
            .method(head.method.clone())
            .uri(head.uri.clone());
        for (k, v) in head.headers.iter() {
            builder = builder.header(k, v);
        }
        let req = match builder.body(axum::body::Body::from(body)) {
            Ok(r) => r,
            Err(_) => {
                return respond::bad_request("malformed request", &ctx.request_id)
                    .send(session, &ctx.request_id)
                    .await;
            }
        };
        let resp = match scim.mount.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        ratelimit::scim_answered(&self.limiter, session, st, resp.status());
        respond::from_router(resp, scim.mount.max_response)
            .await
            .send(session, &ctx.request_id)
            .await
    }

    /// Serves `/.portcullis/...` through the in-process router.
    async fn serve_internal(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ctx: &mut Ctx,
    ) -> pingora::Result<u16> {
        let limit = st.internal.max_body;
        let body = match body::read_body(session, limit, st.body_timeout()).await {
            Ok(Body::Whole(b)) => b,
            Ok(Body::TooLarge(_)) => {
                return respond::bad_request("request body too large", &ctx.request_id)
                    .send(session, &ctx.request_id)
                    .await;
            }
            Err(e) => {
                ctx.outcome = "timeout";
                return body::refuse(
                    session,
                    &st.generation.metrics,
                    "internal_body",
                    e,
                    &ctx.request_id,
                )
                .await;
            }
        };
        let head = session.req_header();
        let mut builder = http::Request::builder()
            .method(head.method.clone())
            .uri(head.uri.clone());
        for (k, v) in head.headers.iter() {
            builder = builder.header(k, v);
        }
        let mut req = match builder.body(axum::body::Body::from(body)) {
            Ok(r) => r,
            Err(_) => {
                return respond::bad_request("malformed request", &ctx.request_id)
                    .send(session, &ctx.request_id)
                    .await;
            }
        };
        req.extensions_mut()
            .insert(CurrentSession(ctx.session.clone()));
        req.extensions_mut()
            .insert(RequestId(ctx.request_id.clone()));
        let resp = match st.internal.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        respond::from_router(resp, st.internal.max_response)
            .await
            .send(session, &ctx.request_id)
            .await
    }
}

#[async_trait]
impl ProxyHttp for PortcullisProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            state: None,
            request_id: next_request_id(),
            start: Instant::now(),
            policy: "none",
            wants_html: false,
            session: None,
            principal: None,
            status: None,
            outcome: "forward",
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let st = self.state.load_full();
        ctx.state = Some(st.clone());
        ctx.start = Instant::now();
        let head = session.req_header();
        ctx.wants_html = wants_html(head);
        let path = head.uri.path().to_owned();

        if st.is_scim(&path) {
            // SCIM: bearer-token API served in-process, never forwarded and
            // never looking at browser sessions.
            ctx.policy = "internal";
            ctx.outcome = "scim";
            ctx.status = Some(self.serve_scim(session, &st, ctx).await?);
            return Ok(true);
        }

        if st.is_internal(&path) {
            ctx.policy = "internal";
            ctx.outcome = "internal";
            let method = &session.req_header().method;
            if let Some(limit) = ratelimit::internal_limit(
                &st.generation.config.server.internal_prefix,
                method,
                &path,
            ) && let Some(status) = ratelimit::limit_internal(
                &self.limiter,
                session,
                &st,
                limit,
                ctx.wants_html,
                &ctx.request_id,
            )
            .await?
            {
                ctx.outcome = "rate_limited";
                ctx.status = Some(status);
                return Ok(true);
            }
            // Endpoints like logout need the session; a store outage just
            // means "anonymous" here.
            let _ = self.identify(session, &st, ctx).await;
            ctx.status = Some(self.serve_internal(session, &st, ctx).await?);
            return Ok(true);
        }

        // Everything else may reach the app: canonicalise, and refuse a path
        // or host that no reading makes unambiguous before any route (or
        // password endpoint) applies. SCIM and internal requests above are
        // never forwarded; their routers read the raw path themselves.
        let head = session.req_header();
        let readings = match canon::readings(&path) {
            Ok(r) => r,
            Err(a) => {
                return self
                    .refuse_ambiguous(session, &st, ctx, a.label(), &a)
                    .await;
            }
        };
        let hosts = match host::request_hosts(
            head.version,
            &head.uri,
            &head.headers,
            st.generation.config.server.trust_forwarded_headers,
        ) {
            Ok(h) => h,
            Err(e) => {
                return self
                    .refuse_ambiguous(session, &st, ctx, e.label(), &e)
                    .await;
            }
        };

        if let Some(ep) = st.password_endpoints.find(&readings)
            && let Some(status) = self.enforce(session, &st, ep, ctx).await?
        {
            ctx.status = Some(status);
            return Ok(true);
        }

        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let route = st.routes.requirement(&hosts, &readings);
        ctx.policy = route.policy().as_str();
        if readings.encoded_separator() && route.policy() != Policy::Public {
            // `%2F` inside a protected prefix: servers disagree on whether
            // it separates segments, so no reading is safe to act on.
            return self
                .refuse_ambiguous(
                    session,
                    &st,
                    ctx,
                    "path_encoded_separator",
                    &"encoded path separator under a protected route",
                )
                .await;
        }
        if route.is_ambiguous() {
            tracing::debug!(request_id = %ctx.request_id, "path readings selected several routes; all apply");
        }
        let path_and_query = session
            .req_header()
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let who = match route.policy() {
            Policy::Public => Identity::Anonymous,
            _ => self.identify(session, &st, ctx).await,
        };
        let facts = RequestFacts {
            path_and_query: &path_and_query,
            wants_html: ctx.wants_html,
        };
        match decide(&route, &facts, &who, &st.generation.login_path) {
            Outcome::Forward(p) => {
                ctx.principal = p;
                Ok(false)
            }
            Outcome::Redirect(location) => {
                ctx.outcome = "redirect";
                ctx.status = Some(
                    respond::redirect(&location)
                        .send(session, &ctx.request_id)
                        .await?,
                );
                Ok(true)
            }
            Outcome::Deny(d) => {
                ctx.outcome = "deny";
                let reply = respond::deny(
                    d,
                    ctx.wants_html,
                    &ctx.request_id,
                    &st.generation.login_path,
                    &st.generation.config.server.public_url,
                );
                ctx.status = Some(reply.send(session, &ctx.request_id).await?);
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let st = ctx.state.clone().unwrap_or_else(|| self.state.load_full());
        let u = &st.upstream;
        let mut peer = HttpPeer::new(u.addr, u.tls, u.sni.clone());
        peer.options.connection_timeout = Some(u.connect_timeout);
        peer.options.total_connection_timeout = Some(u.connect_timeout + Duration::from_secs(2));
        peer.options.read_timeout = Some(u.read_timeout);
        peer.options.idle_timeout = Some(u.idle_timeout);
        peer.options.verify_cert = u.verify_cert;
        peer.options.verify_hostname = u.verify_cert;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let st = ctx.state.clone().unwrap_or_else(|| self.state.load_full());
        let assertion = match (
            &ctx.principal,
            &ctx.session,
            st.generation.plan.assertion_header(),
        ) {
            (Some(p), Some(s), Some(_)) => {
                let timer = st.generation.metrics.assertion_sign.start_timer();
                let a = st
                    .generation
                    .signer
                    .assertion(&s.id_hash, p, crate::clock::now());
                timer.observe_duration();
                match a {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::error!(request_id = %ctx.request_id, error = %e, "assertion signing failed");
                        None
                    }
                }
            }
            _ => None,
        };
        let down = Downstream {
            client_ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            port: session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.port()),
            tls: session
                .digest()
                .and_then(|d| d.ssl_digest.as_ref())
                .is_some(),
            request_id: &ctx.request_id,
        };
        rewrite(
            upstream_request,
            &st.generation,
            ctx.principal.as_deref(),
            assertion.as_deref(),
            &down,
        )
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        upstream_response.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    /// A client that hangs up mid-request (load generators at the end of a
    /// run, browsers navigating away) is not an error worth a log line each.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &pingora::Error) -> bool {
        matches!(e.esource(), pingora::ErrorSource::Downstream)
            && matches!(
                e.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut Ctx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                pingora::ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        if matches!(e.esource(), pingora::ErrorSource::Upstream) {
            let kind = match e.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    "timeout"
                }
                ErrorType::ConnectRefused | ErrorType::ConnectError | ErrorType::ConnectNoRoute => {
                    "connect"
                }
                _ => "other",
            };
            if let Some(st) = &ctx.state {
                st.generation
                    .metrics
                    .upstream_errors
                    .with_label_values(&[kind])
                    .inc();
            }
            tracing::warn!(request_id = %ctx.request_id, error = %e, "upstream failed");
        }
        if code > 0 {
            ctx.outcome = "error";
            let reply: Reply = if code >= 500 {
                respond::bad_gateway(code, ctx.wants_html, &ctx.request_id)
            } else {
                respond::bad_request("bad request", &ctx.request_id)
            };
            if let Err(err) = reply.send(session, &ctx.request_id).await {
                tracing::debug!(error = %err, "could not send error page");
            }
            ctx.status = Some(code);
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&pingora::Error>, ctx: &mut Ctx) {
        let Some(st) = &ctx.state else { return };
        let status = ctx
            .status
            .or_else(|| session.response_written().map(|r| r.status.as_u16()))
            .unwrap_or(0);
        let elapsed = ctx.start.elapsed();
        st.generation
            .metrics
            .requests
            .with_label_values(&[ctx.policy, status_class(status)])
            .inc();
        st.generation
            .metrics
            .request_duration
            .with_label_values(&[ctx.policy])
            .observe(elapsed.as_secs_f64());
        if st.generation.config.log.access_log {
            let req = session.req_header();
            tracing::info!(
                target: "access",
                request_id = %ctx.request_id,
                method = %req.method,
                // Path only: query strings carry tokens and codes.
                path = %req.uri.path(),
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                policy = ctx.policy,
                outcome = ctx.outcome,
                user = ctx.principal.as_ref().map(|p| p.user_id.as_str()).unwrap_or("-"),
                client = %session.client_addr().map(|a| a.to_string()).unwrap_or_default(),
                error = e.map(|e| e.etype().as_str()).unwrap_or("-"),
            );
        }
    }
}
