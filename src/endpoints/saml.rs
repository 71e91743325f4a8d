//! SAML-only endpoints. The ACS tells a solicited response (its RelayState
//! opens this browser's flow cookie: the generic SSO callback) from an
//! unsolicited, IdP-initiated one, which only connections that opt in
//! accept.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;

use super::sso::{Refuser, pairs, sign_in};
use super::{CurrentSession, EndpointState, RequestId};
use crate::auth::CallbackRequest;

/// `POST {prefix}saml/{id}/acs`
#[allow(clippy::too_many_arguments)]
pub(super) async fn acs(
    State(state): State<Arc<EndpointState>>,
    Path(id): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Extension(current): Extension<CurrentSession>,
    request_id: Option<Extension<RequestId>>,
    body: Bytes,
) -> Response {
    let form = std::str::from_utf8(&body).map(pairs).unwrap_or_default();
    let now = crate::clock::now();
    let relay = form
        .iter()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.as_str());
    let solicited = relay.is_some_and(|r| {
        state
            .auth
            .flow
            .open(
                r,
                headers.get_all(header::COOKIE).iter().map(|v| v.as_bytes()),
                now,
            )
            .is_some()
    });
    let saml = state
        .auth
        .registry
        .get(&id)
        .and_then(|reg| reg.connection.saml().map(|c| (reg, c)));
    let Some((reg, conn)) = saml.filter(|_| !solicited) else {
        return super::sso::callback(
            State(state),
            Path(id),
            method,
            RawQuery(query),
            headers,
            Extension(current),
            request_id,
            body,
        )
        .await;
    };
    let rid = request_id.map(|r| r.0.0).unwrap_or_default();
    let tenant = reg.tenant.clone();
    let refuser = Refuser {
        state: &state,
        rid: &rid,
        tenant: &tenant,
        connection: &id,
    };
    let req = CallbackRequest {
        method: method.to_string(),
        query: Vec::new(),
        form,
    };
    match conn.finish_unsolicited(&req).await {
        Ok((login, return_to)) => sign_in(&refuser, login, current, now, return_to, None).await,
        Err(e) => refuser.refuse(e.reason, &e.detail, None),
    }
}
