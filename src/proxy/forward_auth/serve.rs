//! The forward-auth endpoint as a pingora phase: gather the facts, ask
//! the pure functions beside it and the gate, translate.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Version};
use pingora::proxy::Session;

use crate::config::{Convention, Policy};

use super::super::canon;
use super::super::ctx::{Ctx, OutcomeKind, RouteKind};
use super::super::enforce;
use super::super::gate::{self, Ambiguous, Identity, Outcome, RequestFacts, Submission};
use super::super::host;
use super::super::respond::{self, Reply};
use super::super::service::{PortcullisProxy, assertion_for, own_answer};
use super::super::state::ProxyState;
use super::{Answer, Endpoint, LOGIN_HEADER, Plan, Refusal, allow_headers, answer, original};

impl PortcullisProxy {
    /// Decides the request a host proxy asks about, exactly as proxy mode
    /// would decide it, and answers in the endpoint's convention. Always
    /// answers itself (`Ok(true)`).
    pub(in crate::proxy) async fn serve_forward_auth(
        &self,
        session: &mut Session,
        st: &ProxyState,
        plan: &Plan,
        ep: &Endpoint,
        rest: &str,
        ctx: &mut Ctx,
    ) -> pingora::Result<bool> {
        let g = &st.generation;
        // 1. Trust: the TCP peer only, before any header is read.
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if !plan.trusts(peer) {
            return refuse(session, st, ctx, ep.convention, Refusal::Untrusted).await;
        }
        // 2. The original request, from this convention's headers only.
        let head = session.req_header();
        let orig = match original(
            ep.convention,
            &head.method,
            rest,
            head.uri.query(),
            &head.headers,
            &plan.default_scheme,
        ) {
            Ok(o) => o,
            Err(r) => return refuse(session, st, ctx, ep.convention, r).await,
        };
        ctx.original_path = Some(orig.path().to_owned());
        // 3. Canonicalise as a proxied request: every reading, the host.
        let readings = match canon::readings(orig.path()) {
            Ok(r) => r,
            Err(a) => {
                let outcome = Outcome::Ambiguous(Ambiguous::Path(a));
                return self
                    .respond(session, st, ctx, (plan, ep), &orig, outcome)
                    .await;
            }
        };
        let mut host_header = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&orig.host) {
            host_header.insert(http::header::HOST, v);
        }
        let hosts = match host::request_hosts(
            Version::HTTP_11,
            orig.path_and_query.as_bytes(),
            &host_header,
            false,
        ) {
            Ok(h) => h,
            Err(e) => {
                let outcome = Outcome::Ambiguous(Ambiguous::Host(e));
                return self
                    .respond(session, st, ctx, (plan, ep), &orig, outcome)
                    .await;
            }
        };
        // 4. Decide: SSO enforcement fails closed (the body is never seen)...
        let headers = &session.req_header().headers;
        if st.password_endpoints.find(&readings).is_some()
            && enforce::inspects(&orig.method, headers)
        {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let browser = gate::is_browser_form(ctx.wants_html, ct);
            let refused = Submission::Refused(enforce::Refusal::ForwardAuth);
            if let Some(outcome) = gate::decide_login(&refused, browser, &g.login_path) {
                return self
                    .respond(session, st, ctx, (plan, ep), &orig, outcome)
                    .await;
            }
        }
        // ...then the route table.
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let route = st.routes.requirement(&hosts, &readings);
        ctx.policy = route.policy().into();
        if let Some(outcome) = gate::screen(&route, readings.encoded_separator()) {
            return self
                .respond(session, st, ctx, (plan, ep), &orig, outcome)
                .await;
        }
        let who = match route.policy() {
            Policy::Public => Identity::Anonymous,
            _ => self.identify(session, st, ctx).await,
        };
        let facts = RequestFacts {
            path_and_query: &orig.path_and_query,
            wants_html: ctx.wants_html,
            now: crate::clock::now(),
        };
        let outcome = gate::decide(&route, &facts, &who, &g.login_path);
        // 5. Translate.
        self.respond(session, st, ctx, (plan, ep), &orig, outcome)
            .await
    }

    async fn respond(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ctx: &mut Ctx,
        (plan, ep): (&Plan, &Endpoint),
        orig: &super::Original,
        outcome: Outcome,
    ) -> pingora::Result<bool> {
        let g = &st.generation;
        let (kind, reply) = match answer(
            ep.convention,
            outcome,
            orig,
            plan,
            &g.login_path,
            &g.returns,
        ) {
            Answer::Allow(p) => {
                ctx.principal = p;
                let assertion = assertion_for(st, ctx);
                let headers = allow_headers(
                    ep.convention,
                    &g.plan,
                    ctx.principal.as_deref(),
                    assertion.as_deref(),
                );
                let mut reply =
                    Reply::new(StatusCode::OK, "text/plain; charset=utf-8", Bytes::new());
                reply.headers.extend(headers);
                (OutcomeKind::ForwardAuthAllow, reply)
            }
            Answer::Own {
                outcome,
                status,
                login,
            } => {
                let (kind, mut reply) = match own_answer(st, ctx, outcome) {
                    Ok(a) => a,
                    // `answer` turns every forward into `Allow`
                    Err(_) => (
                        OutcomeKind::Error,
                        respond::bad_request("bad request", &ctx.request_id),
                    ),
                };
                if let Some(s) = status.and_then(|s| StatusCode::from_u16(s).ok()) {
                    reply.status = s;
                }
                if let Some(l) = login {
                    reply = reply.header(http::HeaderName::from_static(LOGIN_HEADER), &l);
                }
                (kind, reply)
            }
        };
        ctx.outcome = kind;
        ctx.status = Some(reply.send(session, &ctx.request_id).await?);
        Ok(true)
    }
}

/// Refused before any decision: counted by reason, logged with the peer,
/// and answered 403 (untrusted, and anything in the nginx convention, where
/// other statuses become 500s) or 400 (a malformed description).
async fn refuse(
    session: &mut Session,
    st: &ProxyState,
    ctx: &mut Ctx,
    convention: Convention,
    r: Refusal,
) -> pingora::Result<bool> {
    let g = &st.generation;
    let rid = ctx.request_id.clone();
    g.metrics
        .requests_refused
        .with_label_values(&[r.label()])
        .inc();
    let peer = session
        .client_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::warn!(
        request_id = %rid,
        peer = %peer,
        convention = convention.as_str(),
        reason = %r,
        "forward-auth request refused"
    );
    ctx.policy = RouteKind::None;
    ctx.outcome = OutcomeKind::Refused;
    let mut reply = if r == Refusal::Untrusted {
        respond::deny(
            gate::Deny::Forbidden,
            false,
            &rid,
            &g.login_path,
            &g.config.server.public_url,
        )
    } else {
        respond::bad_request("malformed forward-auth request", &rid)
    };
    if convention == Convention::Nginx {
        reply.status = StatusCode::FORBIDDEN;
    }
    ctx.status = Some(reply.send(session, &rid).await?);
    Ok(true)
}
