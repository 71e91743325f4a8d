//! `{prefix}platform/{provider}/callback`: the one redirect URI of each
//! pre-configured provider, shared by every tenant that picked it. Which
//! connection (and so which tenant) the login belongs to comes only from
//! the flow cookie its start sealed; the path names the provider, which
//! must be that connection's. A forged or missing `state` finds no flow.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;

use super::sso::{Refuser, callback_request, finish_flow, open_flow};
use super::{CurrentSession, RequestId};
use crate::config::PlatformKind;
use crate::generation::Generation;

#[allow(clippy::too_many_arguments)]
pub(super) async fn callback(
    State(state): State<Arc<Generation>>,
    Path(provider): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Extension(current): Extension<CurrentSession>,
    request_id: Option<Extension<RequestId>>,
    body: Bytes,
) -> Response {
    let rid = request_id.map(|r| r.0.0).unwrap_or_default();
    let unknown = Refuser {
        state: &state,
        rid: &rid,
        tenant: "unknown",
        connection: "unknown",
    };
    let Some(kind) = PlatformKind::parse(&provider) else {
        return unknown.refuse(
            "unknown_connection",
            &format!(
                "no provider {:?}",
                provider.chars().take(32).collect::<String>()
            ),
            None,
        );
    };
    let req = callback_request(&method, query.as_deref(), &body);
    let now = crate::clock::now();
    let (relay, flow) = match open_flow(&state, &req, &headers, now) {
        Ok(f) => f,
        Err((reason, detail, relay)) => return unknown.refuse(reason, detail, relay.as_deref()),
    };
    let Some(reg) = state.auth.registry.get(&flow.connection) else {
        return unknown.refuse(
            "unknown_connection",
            &format!("the flow's connection {:?} is gone", flow.connection),
            Some(&relay),
        );
    };
    let refuser = Refuser {
        state: &state,
        rid: &rid,
        tenant: &reg.tenant,
        connection: &reg.config.id,
    };
    if reg.config.platform != Some(kind) {
        return refuser.refuse(
            "state_mismatch",
            &format!(
                "a flow of connection {:?} returned at the {} callback",
                reg.config.id,
                kind.as_str()
            ),
            Some(&relay),
        );
    }
    finish_flow(&refuser, reg, &req, &relay, flow, current, now).await
}
