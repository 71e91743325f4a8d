//! Pingora phases. Each is short: gather facts, ask `gate`, translate.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::ErrorType;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::identity::Principal;
use crate::session::Lookup;

use super::body::{self, Body, Received};
use super::ctx::{BodyStage, CookieRejection, Ctx, OutcomeKind, RouteKind, UpstreamFailure};
use super::decide::{self, BodySight, Known, Need, RequestView};
use super::enforce;
use super::forward::{Downstream, rewrite, tag_response};
use super::gate::{self, Identity, Outcome, Routing, Submission};
use super::host;
use super::mount::ScimMount;
use super::ratelimit::{self, RateLimiter};
use super::respond::{self, Reply};
use super::state::ProxyState;

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

fn wants_html(req: &RequestHeader) -> bool {
    req.headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn header(session: &Session, name: http::HeaderName) -> Option<String> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The request a password-endpoint submission belongs to.
pub(super) struct Asked {
    pub(super) method: http::Method,
    pub(super) query: Option<String>,
    /// Replay the body to the app (proxy mode); forward-auth never
    /// forwards.
    pub(super) replay: bool,
    pub(super) body: BodySight,
}

/// A submission to a password endpoint, or the status it was already
/// answered with (its body did not arrive in time).
pub(super) enum Gathered {
    Submission(Submission),
    Answered(u16),
}

impl PortcullisProxy {
    /// Cookie → session. Never fails the request: a bad cookie is anonymous;
    /// a store outage is `Unknown` (the gate turns that into 503 on
    /// `required` routes instead of logging everyone out).
    pub(super) async fn identify(
        &self,
        session: &Session,
        st: &ProxyState,
        ctx: &mut Ctx,
    ) -> Identity {
        let g = &st.generation;
        let cookies = session.req_header().headers.get_all(http::header::COOKIE);
        let opened = super::conn::with_cookie_memo(|memo| {
            g.codec.open(cookies.iter().map(|v| v.as_bytes()), memo)
        });
        let opened = match opened {
            Ok(Some(o)) => o,
            Ok(None) => return Identity::Anonymous,
            Err(()) => {
                g.metrics
                    .session_rejected
                    .with_label_values(&[CookieRejection::Undecryptable.as_str()])
                    .inc();
                return Identity::Anonymous;
            }
        };
        let idle = g.config.session.idle_lifetime_seconds as i64;
        match g.sessions.resolve(&opened, crate::clock::now(), idle).await {
            Ok(Lookup::Active(s)) => {
                let p = s.principal.clone();
                ctx.session = Some(s);
                Identity::Authenticated(p)
            }
            Ok(Lookup::Rejected(reason)) => {
                g.metrics
                    .session_rejected
                    .with_label_values(&[reason])
                    .inc();
                Identity::Anonymous
            }
            Err(e) => {
                g.metrics
                    .session_rejected
                    .with_label_values(&[CookieRejection::StoreError.as_str()])
                    .inc();
                tracing::error!(request_id = %ctx.request_id, error = %e, "session lookup failed");
                Identity::Unknown
            }
        }
    }

    /// Reads a submission to a password endpoint the way `enforce` says:
    /// the query, then (if it could carry credentials) the body — with
    /// pingora's retry buffer on when it is to be replayed to the app byte
    /// for byte — then its email's domain. `asked` is the request the
    /// submission belongs to: this one in proxy mode, the described one in
    /// forward-auth (whose body, when the host proxy forwards it, is this
    /// request's).
    pub(super) async fn submission(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ep: &enforce::Endpoint,
        ctx: &mut Ctx,
        asked: Asked,
    ) -> pingora::Result<Gathered> {
        let refused = |r| Ok(Gathered::Submission(Submission::Refused(r)));
        if let Err(r) = ep.check_query(asked.query.as_deref()) {
            return refused(r);
        }
        match asked.body {
            BodySight::Seen => {}
            BodySight::Unseen => return refused(enforce::Refusal::ForwardAuth),
            BodySight::Partial => return refused(enforce::Refusal::TooLarge),
        }
        if !enforce::inspects(&asked.method, &session.req_header().headers) {
            return Ok(Gathered::Submission(Submission::Uninspected));
        }
        if asked.replay {
            session.as_downstream_mut().enable_retry_buffering();
        }
        let received =
            body::receive(session, st, ctx, enforce::MAX_LOGIN_BODY, BodyStage::Login).await?;
        let body = match received {
            Received::Body(Body::Whole(b)) => b,
            Received::Body(Body::TooLarge(_)) => return refused(enforce::Refusal::TooLarge),
            Received::Answered(status) => return Ok(Gathered::Answered(status)),
        };
        let ct = header(session, http::header::CONTENT_TYPE);
        let ce = header(session, http::header::CONTENT_ENCODING);
        let email = match ep.submitted_email(ct.as_deref(), ce.as_deref(), body).await {
            Ok(e) => e,
            Err(r) => return refused(r),
        };
        Ok(Gathered::Submission(
            routed(st, &ctx.request_id, email).await,
        ))
    }

    /// Translates an outcome: `Ok(false)` forwards to the app; anything
    /// else is Portcullis' own answer, counted and logged here.
    async fn answer(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ctx: &mut Ctx,
        outcome: Outcome,
    ) -> pingora::Result<bool> {
        let (kind, reply) = match own_answer(st, ctx, outcome) {
            Err(p) => {
                ctx.principal = p;
                return Ok(false);
            }
            Ok(answer) => answer,
        };
        ctx.outcome = kind;
        ctx.status = Some(reply.send(session, &ctx.request_id).await?);
        Ok(true)
    }

    /// The SCIM API: its rate limit (checked before, a `401` counted
    /// after), then its router.
    async fn serve_scim(
        &self,
        session: &mut Session,
        st: &ProxyState,
        scim: &ScimMount,
        ctx: &mut Ctx,
    ) -> pingora::Result<u16> {
        if let Some(status) =
            ratelimit::limit_scim(&self.limiter, session, st, scim, &ctx.request_id).await?
        {
            ctx.outcome = OutcomeKind::RateLimited;
            return Ok(status);
        }
        let client = ratelimit::request_client(session, st);
        scim.mount
            .serve(session, st, ctx, BodyStage::Scim, |status| {
                ratelimit::scim_answered(&self.limiter, st, client, status)
            })
            .await
    }

    /// The internal endpoints: the rate limit of their class, the session
    /// (logout needs it; a store outage just means "anonymous" here), then
    /// their router.
    async fn serve_internal(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ctx: &mut Ctx,
        path: &str,
    ) -> pingora::Result<u16> {
        let mount = st.generation.auth.urls.mount();
        if let Some(limit) = ratelimit::internal_limit(mount, &session.req_header().method, path)
            && let Some(status) = ratelimit::limit_internal(
                &self.limiter,
                session,
                st,
                limit,
                ctx.wants_html,
                &ctx.request_id,
            )
            .await?
        {
            ctx.outcome = OutcomeKind::RateLimited;
            return Ok(status);
        }
        let _ = self.identify(session, st, ctx).await;
        st.internal
            .serve(session, st, ctx, BodyStage::Internal, |_| {})
            .await
    }
}

/// A submitted email and where its domain routes: the last step of
/// reading a submission, in proxy mode and forward-auth alike.
pub(super) async fn routed(st: &ProxyState, request_id: &str, email: enforce::Email) -> Submission {
    let tenant = match st.generation.auth.routed_tenant(&email.domain).await {
        Ok(Some(t)) => Routing::Tenant {
            id: t.id.clone(),
            enforces_sso: t.enforce_sso,
        },
        Ok(None) => Routing::Unrouted,
        Err(e) => {
            tracing::error!(request_id = %request_id, error = %e, "domain lookup failed during SSO enforcement");
            Routing::Failed
        }
    };
    Submission::Email {
        address: email.address,
        tenant,
    }
}

/// The signed assertion over the request's principal, when there is one
/// (with its session, or a machine caller's credential) and signing is on.
pub(super) fn assertion_for(st: &ProxyState, ctx: &Ctx) -> Option<http::HeaderValue> {
    let (Some(p), Some(_)) = (&ctx.principal, st.generation.plan.assertion_header()) else {
        return None;
    };
    let signer = &st.generation.signer;
    let keyed;
    let slot = match (&ctx.session, ctx.assertion_key.as_deref()) {
        (Some(s), _) => &s.assertion,
        (None, Some(key)) => {
            keyed = signer.slot(key);
            &*keyed
        }
        (None, None) => return None,
    };
    match signer.assertion_in(slot, p, crate::clock::now()) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!(request_id = %ctx.request_id, error = %e, "assertion signing failed");
            None
        }
    }
}

/// Portcullis' own answer to `outcome`, counted and logged; `Err` with the
/// principal (if any) when the outcome is to forward.
pub(super) fn own_answer(
    st: &ProxyState,
    ctx: &Ctx,
    outcome: Outcome,
) -> Result<(OutcomeKind, Reply), Option<Arc<Principal>>> {
    let g = &st.generation;
    let rid = ctx.request_id.as_str();
    let (kind, reply) = match outcome {
        Outcome::Forward(p) => return Err(p),
        Outcome::Redirect(location) => (OutcomeKind::Redirect, respond::redirect(&location)),
        Outcome::Deny(d) => (
            OutcomeKind::Deny,
            respond::deny(
                d,
                ctx.wants_html,
                rid,
                &g.login_path,
                &g.config.server.public_url,
            ),
        ),
        Outcome::Ambiguous(a) => {
            g.metrics
                .requests_refused
                .with_label_values(&[a.label()])
                .inc();
            tracing::info!(request_id = %rid, reason = %a, "request refused before routing");
            (
                OutcomeKind::Refused,
                respond::bad_request("ambiguous request", rid),
            )
        }
        Outcome::SsoRequired {
            tenant,
            login_url,
            browser,
        } => {
            g.metrics.sso_enforced.with_label_values(&[&tenant]).inc();
            tracing::info!(request_id = %rid, tenant = %tenant, "password login stopped: tenant enforces SSO");
            (
                OutcomeKind::SsoRequired,
                respond::sso_required(browser, &login_url, rid),
            )
        }
        Outcome::LoginRefused {
            reason,
            login_url,
            browser,
        } => {
            g.metrics
                .login_refused
                .with_label_values(&[reason.label()])
                .inc();
            tracing::info!(request_id = %rid, reason = %reason, "password login refused");
            let reply = if reason == enforce::Refusal::TooLarge {
                respond::too_large(rid)
            } else {
                respond::login_refused(browser, &login_url, rid)
            };
            (OutcomeKind::LoginRefused, reply)
        }
        Outcome::StepUp(c) => {
            let to = crate::redirect::safe_return_to(&c.return_to).unwrap_or("/");
            let location = gate::step_up_redirect(&g.auth.urls.step_up_path(), to, &c.need);
            tracing::info!(request_id = %rid, browser = c.browser, "session too weak for the route: step-up");
            (
                OutcomeKind::StepUp,
                respond::step_up(&c, &location, ctx.wants_html, rid),
            )
        }
    };
    Ok((kind, reply))
}

#[async_trait]
impl ProxyHttp for PortcullisProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    /// No downstream modules. pingora's default registers a response
    /// compression module (disabled, level 0) whose context every request
    /// builds, runs through each header and body filter and drops; Portcullis
    /// never compresses, so that is pure per-request cost.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let st = self.state.load_full();
        // Every request with a state is counted in `logging`, which lowers
        // this again.
        st.generation.metrics.requests_in_flight.inc();
        ctx.state = Some(st.clone());
        ctx.wants_html = wants_html(session.req_header());
        let path = session.req_header().uri.path().to_owned();

        // Portcullis' own routers, never forwarded; they read the raw path
        // themselves. SCIM is a bearer-token API: no browser session.
        if let Some(scim) = st.scim_at(&path) {
            ctx.policy = RouteKind::Internal;
            ctx.outcome = OutcomeKind::Scim;
            ctx.status = Some(self.serve_scim(session, &st, scim, ctx).await?);
            return Ok(true);
        }
        // Forward-auth endpoints sit under the internal prefix.
        if let Some(fa) = &st.forward_auth
            && let Some((ep, rest)) = fa.endpoint_at(&path)
        {
            return self
                .serve_forward_auth(session, &st, fa, ep, rest, ctx)
                .await;
        }
        if st.is_internal(&path) {
            ctx.policy = RouteKind::Internal;
            ctx.outcome = OutcomeKind::Internal;
            ctx.status = Some(self.serve_internal(session, &st, ctx, &path).await?);
            return Ok(true);
        }

        // Everything else may reach the app: one decision (`decide`), the
        // same forward-auth asks for.
        let head = session.req_header();
        let trust = st.generation.config.server.trust_forwarded_headers;
        let hosts = host::request_hosts(head.version, head.raw_path(), &head.headers, trust);
        let path_and_query = head
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let content_type = header(session, http::header::CONTENT_TYPE);
        let view = RequestView {
            path: &path,
            path_and_query: &path_and_query,
            hosts,
            wants_html: ctx.wants_html,
            content_type: content_type.as_deref(),
            now: crate::clock::now(),
        };
        let tables = st.tables();
        let mut known = Known::default();
        let decided = loop {
            match decide::decide_request(&view, tables, &known) {
                Ok(d) => break d,
                Err(Need::Submission(ep)) => {
                    let asked = Asked {
                        method: session.req_header().method.clone(),
                        query: session.req_header().uri.query().map(str::to_owned),
                        replay: true,
                        body: BodySight::Seen,
                    };
                    known.submission =
                        Some(match self.submission(session, &st, ep, ctx, asked).await? {
                            Gathered::Submission(s) => s,
                            Gathered::Answered(status) => {
                                ctx.status = Some(status);
                                return Ok(true);
                            }
                        });
                }
                Err(Need::Identity(pending)) => {
                    let who = self.identify_caller(session, &st, ctx).await;
                    break pending.decide(&view, tables, &who);
                }
            }
        };
        if let Some(p) = decided.policy {
            ctx.policy = p.into();
        }
        if let Some(u) = decided.upstream {
            ctx.upstream = u;
        }

        // Translate.
        self.answer(session, &st, ctx, decided.outcome).await
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let st = ctx.state.clone().unwrap_or_else(|| self.state.load_full());
        let Some(u) = st.upstream(ctx.upstream) else {
            return Err(pingora::Error::explain(
                ErrorType::InternalError,
                "no upstream at the route table's index",
            ));
        };
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
        let assertion = assertion_for(st.as_ref(), ctx);
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
        // An absolute-form target without Host (HTTP/1.0) was routed on its
        // authority; pingora forwards only the path, so the app gets that
        // authority as Host and reads the host the gate did.
        if upstream_request.headers.get(http::header::HOST).is_none()
            && let Some(authority) = host::target_authority(session.req_header().raw_path())
        {
            upstream_request.insert_header(http::header::HOST, authority.to_owned())?;
        }
        super::conn::with_rendered(|rendered| {
            rewrite(
                upstream_request,
                &st.generation,
                &st.upstream_names,
                ctx.principal.as_ref(),
                assertion,
                &down,
                rendered,
            )
        })
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        // The app has answered: what follows (the body, an upgraded
        // tunnel) no longer counts against `max_active_requests`. A
        // `100 Continue` or `103 Early Hints` is not the answer yet.
        if !upstream_response.status.is_informational()
            || upstream_response.status == http::StatusCode::SWITCHING_PROTOCOLS
        {
            super::admission::release();
        }
        tag_response(upstream_response, &ctx.request_id)
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
                    UpstreamFailure::Timeout
                }
                ErrorType::ConnectRefused | ErrorType::ConnectError | ErrorType::ConnectNoRoute => {
                    UpstreamFailure::Connect
                }
                _ => UpstreamFailure::Other,
            };
            if let Some(st) = &ctx.state {
                st.generation
                    .metrics
                    .upstream_errors
                    .with_label_values(&[kind.as_str()])
                    .inc();
            }
            tracing::warn!(request_id = %ctx.request_id, error = %e, "upstream failed");
        }
        let answer_started = session
            .response_written()
            .is_some_and(|r| !r.status.is_informational() || r.status.as_u16() == 101);
        if code > 0 {
            ctx.outcome = OutcomeKind::Error;
        }
        // Once the app's answer is on its way, a page would be read as the
        // rest of its body (and could complete it): none is written, the
        // connection closes, the client sees an incomplete answer, and the
        // log keeps the status it was sent.
        if code > 0 && !answer_started {
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
        let metrics = &st.generation.metrics;
        metrics.request_done(ctx.policy.label_index(), status, elapsed);
        metrics.requests_in_flight.dec();
        if st.generation.config.log.access_log {
            let req = session.req_header();
            tracing::info!(
                target: "access",
                request_id = %ctx.request_id,
                method = %req.method,
                // Path only: query strings carry tokens and codes.
                path = %ctx.original_path.as_deref().unwrap_or(req.uri.path()),
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                policy = ctx.policy.as_str(),
                outcome = ctx.outcome.as_str(),
                user = ctx.principal.as_ref().map(|p| p.user_id.as_str()).unwrap_or("-"),
                client = %session.client_addr().map(|a| a.to_string()).unwrap_or_default(),
                error = e.map(|e| e.etype().as_str()).unwrap_or("-"),
            );
        }
    }
}
