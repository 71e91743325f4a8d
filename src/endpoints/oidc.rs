//! OIDC endpoints besides the callback (which is the generic SSO
//! callback): back-channel logout, where the provider tells us a user or
//! session has signed out.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use super::RequestId;
use crate::auth::oidc::MAX_LOGOUT_TOKEN_BYTES;
use crate::config::ConnectionKind;
use crate::generation::Generation;
use crate::session::SessionSelector;

/// The answer to the provider (Back-Channel Logout 1.0 §2.8): 200 when the
/// sessions are gone, 400 `invalid_request` otherwise; never cached.
fn answer(status: StatusCode) -> Response {
    let mut resp = if status == StatusCode::OK {
        status.into_response()
    } else {
        (status, Json(json!({"error": "invalid_request"}))).into_response()
    };
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

fn refuse(
    state: &Generation,
    rid: &str,
    tenant: &str,
    connection: &str,
    reason: &'static str,
    detail: &str,
) -> Response {
    state
        .metrics
        .oidc_backchannel_logouts
        .with_label_values(&[tenant, connection, reason])
        .inc();
    tracing::warn!(
        request_id = rid,
        tenant,
        connection,
        reason,
        detail,
        "back-channel logout refused"
    );
    answer(StatusCode::BAD_REQUEST)
}

/// `POST {prefix}oidc/{id}/backchannel-logout` with `logout_token=…`.
pub(super) async fn backchannel_logout(
    State(state): State<Arc<Generation>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    body: Bytes,
) -> Response {
    let rid = request_id.map(|r| r.0.0).unwrap_or_default();
    let Some(reg) = state
        .auth
        .registry
        .get(&id)
        .filter(|r| r.config.kind() == Some(ConnectionKind::Oidc))
    else {
        return refuse(
            &state,
            &rid,
            "unknown",
            "unknown",
            "unknown_connection",
            &format!("no OIDC connection {id:?}"),
        );
    };
    let tenant = reg.tenant.clone();
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return refuse(&state, &rid, &tenant, &id, "malformed", "not a form post");
    }
    if body.len() > MAX_LOGOUT_TOKEN_BYTES + 64 {
        return refuse(&state, &rid, &tenant, &id, "too_large", "body too large");
    }
    let tokens: Vec<String> = form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .collect();
    let [token] = tokens.as_slice() else {
        return refuse(
            &state,
            &rid,
            &tenant,
            &id,
            "malformed",
            "exactly one logout_token expected",
        );
    };
    let (subject, session) = match reg.connection.backchannel_logout(token).await {
        Ok(named) => named,
        Err(e) => return refuse(&state, &rid, &tenant, &id, e.reason, &e.detail),
    };
    let selector = SessionSelector::Idp {
        connection: id.clone(),
        subject,
        session,
    };
    match state.sessions.revoke(&selector).await {
        Ok(n) => {
            state
                .metrics
                .oidc_backchannel_logouts
                .with_label_values(&[&tenant, &id, "ok"])
                .inc();
            tracing::info!(request_id = %rid, tenant = %tenant, connection = %id, sessions = n, "back-channel logout");
            answer(StatusCode::OK)
        }
        Err(e) => {
            state
                .metrics
                .oidc_backchannel_logouts
                .with_label_values(&[&tenant, &id, "store"])
                .inc();
            tracing::error!(request_id = %rid, error = %e, "back-channel logout could not revoke");
            // 501/5xx tells the provider to retry later; the token's jti is
            // burnt, but a provider retries with a new token.
            answer(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}
