//! Portcullis' own HTTP endpoints under the reserved prefix, as an axum
//! router that the proxy calls in-process (no second server, no loopback
//! hop). The proxy resolves the session and hands it in as an extension, so
//! cookie handling lives in one place.

mod dev_idp;
mod handlers;
mod oidc;
pub(crate) mod pages;
mod platform;
mod saml;
mod sso;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::json;

use crate::generation::Generation;
use crate::session::ActiveSession;

/// The caller's session, resolved by the proxy before routing here.
#[derive(Clone, Debug, Default)]
pub(crate) struct CurrentSession(pub Option<Arc<ActiveSession>>);

/// The request id, for pages that show it.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestId(pub String);

/// Routes, mounted at the configured internal prefix.
pub(crate) fn router(state: Arc<Generation>) -> Router {
    let limit = state.config.server.max_internal_body_bytes;
    let prefix = state.auth.urls.mount().to_owned();
    let inner = Router::new()
        .route(
            "/login",
            get(handlers::login_page).post(handlers::login_submit),
        )
        .route(
            "/logout",
            get(handlers::logout_page).post(handlers::logout_submit),
        )
        .route("/jwks.json", get(handlers::jwks))
        .route("/session", get(handlers::whoami))
        .route("/step-up", get(sso::step_up))
        .route("/sso/{id}/start", get(sso::start))
        .route("/sso/{id}/test", get(sso::test))
        .route("/sso/{id}/callback", get(sso::callback).post(sso::callback))
        .route("/saml/{id}/metadata", get(sso::saml_metadata))
        .route("/saml/{id}/acs", post(saml::acs))
        .route("/saml/{id}/slo", get(saml::slo))
        .route("/oidc/{id}/callback", get(sso::callback))
        .route(
            "/platform/{provider}/callback",
            get(platform::callback).post(platform::callback),
        )
        .route(
            "/oidc/{id}/backchannel-logout",
            post(oidc::backchannel_logout),
        )
        .route("/dev-idp/metadata", get(dev_idp::metadata))
        .route("/dev-idp/sso", get(dev_idp::sso))
        .route("/dev-idp/pick", post(dev_idp::pick))
        .fallback(handlers::not_found)
        .with_state(state);
    Router::new()
        .nest(&prefix, inner)
        .fallback(handlers::not_found)
        .layer(middleware::from_fn_with_state(limit, body_limit))
}

/// Refuses a body over `[server] max_internal_body_bytes` before any
/// handler reads it: a `400`, the answer to every request these endpoints
/// won't interpret. Outermost, so every path is covered.
async fn body_limit(
    State(limit): State<usize>,
    request_id: Option<Extension<RequestId>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => next.run(Request::from_parts(parts, bytes.into())).await,
        Err(_) => {
            let id = request_id.map(|r| r.0.0).unwrap_or_default();
            let body = json!({
                "error": "bad_request",
                "message": "request body too large",
                "request_id": id,
            });
            (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
    }
}
