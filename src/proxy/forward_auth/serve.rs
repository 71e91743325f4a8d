//! The forward-auth endpoint as a pingora phase: gather the facts, ask
//! the pure functions beside it and the gate, translate.

use bytes::Bytes;
use http::StatusCode;
use pingora::proxy::Session;

use crate::config::Convention;

use super::super::ctx::{Ctx, OutcomeKind, RouteKind};
use super::super::decide::{self, Known, Need, RequestView};
use super::super::gate::{self, Outcome};
use super::super::respond::{self, Reply};
use super::super::service::{Asked, Gathered, PortcullisProxy, assertion_for, own_answer};
use super::super::state::ProxyState;
use super::{
    Answer, Endpoint, LOGIN_HEADER, Plan, Refusal, allow_headers, answer, body_sight, hosts,
    original,
};

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
        let described = original(
            ep.convention,
            &head.method,
            rest,
            head.uri.query(),
            &head.headers,
            &plan.default_scheme,
        )
        .and_then(|o| {
            Ok((
                body_sight(ep.convention, ep.forwards_body, &head.headers)?,
                o,
            ))
        });
        let (sight, orig) = match described {
            Ok(d) => d,
            Err(r) => return refuse(session, st, ctx, ep.convention, r).await,
        };
        ctx.original_path = Some(orig.path().to_owned());
        // 3. Decide it as proxy mode decides a request with these bytes
        //    (`decide`): readings, hosts, SSO enforcement, routes, gate.
        let content_type = session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let view = RequestView {
            path: orig.path(),
            path_and_query: &orig.path_and_query,
            hosts: hosts(ep.convention, &orig, &session.req_header().headers),
            wants_html: ctx.wants_html,
            content_type: content_type.as_deref(),
            now: crate::clock::now(),
        };
        let mut known = Known::default();
        let decided = loop {
            match decide::decide_request(&view, st.tables(), &known) {
                Ok(d) => break d,
                Err(Need::Submission(pe)) => {
                    let asked = Asked {
                        method: orig.method.clone(),
                        query: orig.query().map(str::to_owned),
                        replay: false,
                        body: sight,
                    };
                    known.submission =
                        Some(match self.submission(session, st, pe, ctx, asked).await? {
                            Gathered::Submission(s) => s,
                            Gathered::Answered(status) => {
                                ctx.status = Some(status);
                                return Ok(true);
                            }
                        });
                }
                Err(Need::Identity(pending)) => {
                    let who = self.identify_caller(session, st, ctx).await;
                    break pending.decide(&view, st.tables(), &who);
                }
            }
        };
        if let Some(p) = decided.policy {
            ctx.policy = p.into();
        }
        // 4. Translate (the host proxy picks the upstream itself).
        self.respond(session, st, ctx, (plan, ep), &orig, decided.outcome)
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
                let headers =
                    allow_headers(ep.convention, &g.plan, ctx.principal.as_deref(), assertion);
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
