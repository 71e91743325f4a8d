//! The development IdP's endpoints (`[dev_idp]`, loopback only):
//! metadata, the HTTP-Redirect SSO endpoint with its pick-a-user page, and
//! the pick that posts a signed response to the ACS.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;

use super::RequestId;
use super::pages::{DEV_IDP_POST_SCRIPT, DevIdpPickPage, DevIdpPostPage, message};
use crate::auth::saml::dev_idp::DevIdpError;
use crate::generation::Generation;

#[derive(Debug, Deserialize, Default)]
pub(super) struct SsoParams {
    #[serde(rename = "SAMLRequest", default)]
    saml_request: String,
    #[serde(rename = "RelayState", default)]
    relay_state: String,
    #[serde(default)]
    email: String,
}

fn refused(e: &DevIdpError, request_id: Option<Extension<RequestId>>) -> Response {
    let id = request_id.map(|r| r.0.0).unwrap_or_default();
    tracing::warn!(error = %e, "dev IdP refused a request");
    (
        StatusCode::BAD_REQUEST,
        Html(message(
            "Sign-in request refused",
            "The development identity provider cannot answer this request.",
            None,
            &id,
        )),
    )
        .into_response()
}

pub(super) async fn metadata(
    State(state): State<Arc<Generation>>,
    request_id: Option<Extension<RequestId>>,
) -> Response {
    let Some(dev) = &state.auth.dev_idp else {
        return super::handlers::not_found(request_id).await;
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        dev.metadata_xml(),
    )
        .into_response()
}

pub(super) async fn sso(
    State(state): State<Arc<Generation>>,
    request_id: Option<Extension<RequestId>>,
    Query(q): Query<SsoParams>,
) -> Response {
    let Some(dev) = &state.auth.dev_idp else {
        return super::handlers::not_found(request_id).await;
    };
    let req = match dev.parse_request(&q.saml_request) {
        Ok(r) => r,
        Err(e) => return refused(&e, request_id),
    };
    let page = DevIdpPickPage {
        action: &dev.pick_path,
        sp: &req.issuer,
        saml_request: &q.saml_request,
        relay_state: &q.relay_state,
        users: dev
            .users
            .iter()
            .map(|u| (u.email.clone(), format!("{} ({})", u.name, u.email)))
            .collect(),
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dev IdP page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(super) async fn pick(
    State(state): State<Arc<Generation>>,
    request_id: Option<Extension<RequestId>>,
    Form(q): Form<SsoParams>,
) -> Response {
    let Some(dev) = state.auth.dev_idp.clone() else {
        return super::handlers::not_found(request_id).await;
    };
    let req = match dev.parse_request(&q.saml_request) {
        Ok(r) => r,
        Err(e) => return refused(&e, request_id),
    };
    let email = q.email.clone();
    let (req2, dev2) = (req.clone(), dev.clone());
    let signed = match tokio::task::spawn_blocking(move || dev2.respond(&req2, &email)).await {
        Ok(Ok(xml)) => xml,
        Ok(Err(e)) => return refused(&e, request_id),
        Err(e) => {
            tracing::error!(error = %e, "dev IdP signing task");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    tracing::info!(user = %q.email, acs = %req.acs_url, "dev IdP: signed a response");
    let saml_response = base64::engine::general_purpose::STANDARD.encode(signed);
    let page = DevIdpPostPage {
        email: &q.email,
        acs: &req.acs_url,
        saml_response: &saml_response,
        relay_state: &q.relay_state,
        script: DEV_IDP_POST_SCRIPT,
    };
    let hash = openssl::sha::sha256(DEV_IDP_POST_SCRIPT.as_bytes());
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        base64::engine::general_purpose::STANDARD.encode(hash)
    );
    match page.render() {
        Ok(html) => ([(header::CONTENT_SECURITY_POLICY, csp)], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dev IdP page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
