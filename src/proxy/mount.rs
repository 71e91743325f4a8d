//! Routers the proxy serves in-process (no second server, no loopback
//! hop): the internal endpoints and the SCIM API, built by `app` for each
//! generation.
//!
//! Rule: a mounted router answers everything under its path itself,
//! including a body that is too large (its own body-limit layer, in its own
//! error format); the proxy only bounds what it reads for it and relays the
//! answer.

use axum::Router;
use http::StatusCode;
use pingora::proxy::Session;
use tower::ServiceExt;

use crate::endpoints::{CurrentSession, RequestId};

use super::body::{self, Body, Received};
use super::ctx::{BodyStage, Ctx};
use super::respond;
use super::state::ProxyState;

/// One router and the bounds the proxy applies around it.
pub struct Mount {
    pub router: Router,
    /// The most body bytes read for the router. A longer body is handed
    /// over as read (just over this), for the router's limit to refuse, so
    /// this must be its limit too.
    pub max_body: usize,
    /// The largest answer relayed back.
    pub max_response: usize,
}

/// The SCIM API as mounted: bearer-token clients that expect SCIM error
/// bodies, also from the proxy (its 429).
pub struct ScimMount {
    /// The base path, without a trailing slash.
    pub path: String,
    pub mount: Mount,
    /// The API's error response for a status and detail.
    pub error: fn(StatusCode, &str) -> http::Response<axum::body::Body>,
}

impl Mount {
    /// Serves the request through the router: its body read by
    /// [`body::receive`] (an over-limit one handed over as read), the
    /// request id and the caller's session as extensions, the answer
    /// written back. `answered` sees the router's status before the client
    /// does (the SCIM limit counts `401`s there, so a client's next request
    /// is already judged by it).
    pub(super) async fn serve(
        &self,
        session: &mut Session,
        st: &ProxyState,
        ctx: &mut Ctx,
        stage: BodyStage,
        answered: impl FnOnce(StatusCode),
    ) -> pingora::Result<u16> {
        let body = match body::receive(session, st, ctx, self.max_body, stage).await? {
            Received::Body(Body::Whole(b) | Body::TooLarge(b)) => b,
            Received::Answered(status) => return Ok(status),
        };
        let head = session.req_header();
        let mut builder = http::Request::builder()
            .method(head.method.clone())
            .uri(head.uri.clone());
        for (k, v) in head.headers.iter() {
            builder = builder.header(k, v);
        }
        let Ok(mut req) = builder.body(axum::body::Body::from(body)) else {
            return respond::bad_request("malformed request", &ctx.request_id)
                .send(session, &ctx.request_id)
                .await;
        };
        req.extensions_mut()
            .insert(CurrentSession(ctx.session.clone()));
        req.extensions_mut()
            .insert(RequestId(ctx.request_id.clone()));
        let resp = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        answered(resp.status());
        respond::from_router(resp, self.max_response)
            .await
            .send(session, &ctx.request_id)
            .await
    }
}
