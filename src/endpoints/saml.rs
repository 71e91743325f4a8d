//! SAML-only endpoints: the ACS and single logout. The ACS tells a solicited response (its RelayState
//! opens this browser's flow cookie: the generic SSO callback) from an
//! unsolicited, IdP-initiated one, which only connections that opt in
//! accept.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::pages::message;
use super::sso::{Refuser, pairs, sign_in};
use super::{CurrentSession, RequestId};
use crate::auth::CallbackRequest;
use crate::generation::Generation;
use crate::redirect::safe_return_to;
use crate::session::SessionSelector;

/// `POST {prefix}saml/{id}/acs`
#[allow(clippy::too_many_arguments)]
pub(super) async fn acs(
    State(state): State<Arc<Generation>>,
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
        Ok((login, return_to)) => {
            sign_in(&refuser, login, current, now, return_to, None, None).await
        }
        Err(e) => refuser.refuse(e.reason, &e.detail, None),
    }
}

/// `GET {prefix}saml/{id}/slo`: the IdP's LogoutRequest (ends the sessions
/// it names, answers with a LogoutResponse) or its LogoutResponse to ours
/// (lands on the RelayState when it is a safe relative path).
pub(super) async fn slo(
    State(state): State<Arc<Generation>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    Extension(current): Extension<CurrentSession>,
    request_id: Option<Extension<RequestId>>,
) -> Response {
    let rid = request_id.map(|r| r.0.0).unwrap_or_default();
    let Some((reg, conn)) = state
        .auth
        .registry
        .get(&id)
        .and_then(|reg| reg.connection.saml().map(|c| (reg, c)))
    else {
        return super::handlers::not_found(Some(Extension(RequestId(rid)))).await;
    };
    let query = query.unwrap_or_default();
    let refuse = |reason: &'static str, detail: &str| {
        state
            .metrics
            .login_failures
            .with_label_values(&[&reg.tenant, &id, reason])
            .inc();
        tracing::warn!(request_id = %rid, tenant = %reg.tenant, connection = %id, reason, detail, "single logout refused");
        let body = message(
            "Sign-out failed",
            "We couldn't process this sign-out request. Please contact your administrator and quote the request ID.",
            None,
            &rid,
        );
        (StatusCode::BAD_REQUEST, Html(body)).into_response()
    };
    let has = |k: &str| query.split('&').any(|p| p.split('=').next() == Some(k));
    if has("SAMLRequest") {
        let (req, answer) = match conn.idp_logout(&query).await {
            Ok(x) => x,
            Err(e) => return refuse(e.reason, &e.detail),
        };
        let indexes: Vec<Option<String>> = if req.session_indexes.is_empty() {
            vec![None]
        } else {
            req.session_indexes.iter().cloned().map(Some).collect()
        };
        let mut revoked = 0;
        for session in indexes {
            let selector = SessionSelector::Idp {
                connection: id.clone(),
                subject: Some(req.name_id.clone()),
                session,
            };
            match state.sessions.revoke(&selector).await {
                Ok(n) => revoked += n,
                Err(e) => return refuse("store", &e.to_string()),
            }
        }
        tracing::info!(request_id = %rid, tenant = %reg.tenant, connection = %id, revoked, "IdP-initiated logout");
        let mut resp = match answer {
            Some(url) => (StatusCode::FOUND, [(header::LOCATION, url)]).into_response(),
            None => Html(message(
                "Signed out",
                "You have been signed out.",
                None,
                &rid,
            ))
            .into_response(),
        };
        // this browser's own session, if it was one of them
        let mine = current.0.as_ref().is_some_and(|s| {
            s.principal.connection.as_deref() == Some(id.as_str())
                && s.idp.as_ref().is_some_and(|b| b.subject == req.name_id)
        });
        if mine && let Ok(v) = HeaderValue::from_str(&state.codec.clear()) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    } else if has("SAMLResponse") {
        match conn.idp_logout_response(&query) {
            Ok(relay) => {
                let to = relay
                    .as_deref()
                    .and_then(safe_return_to)
                    .unwrap_or("/")
                    .to_owned();
                (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
            }
            Err(e) => refuse(e.reason, &e.detail),
        }
    } else {
        refuse("slo_malformed", "neither SAMLRequest nor SAMLResponse")
    }
}
