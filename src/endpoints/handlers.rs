use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use super::pages::{ChooserPage, LoginPage, message};
use super::sso;
use super::{CurrentSession, EndpointState, RequestId};
use crate::auth::Discovery;
use crate::redirect::safe_return_to;
use crate::store::SessionSelector;

#[derive(Debug, Deserialize, Default)]
pub(super) struct LoginQuery {
    #[serde(default)]
    email: String,
    #[serde(default)]
    return_to: String,
    /// The bookmark link IT puts in IdP portals: go straight to the IdP.
    #[serde(default)]
    use_sso: Option<String>,
}

fn login_action(state: &EndpointState) -> String {
    format!("{}login", state.config.server.internal_prefix)
}

pub(super) async fn login_page(
    State(state): State<Arc<EndpointState>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let bookmark = q
        .use_sso
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if bookmark && !q.email.trim().is_empty() {
        return route_email(&state, &q).await;
    }
    render_login(&state, &q, None)
}

pub(super) async fn login_submit(
    State(state): State<Arc<EndpointState>>,
    Form(q): Form<LoginQuery>,
) -> Response {
    route_email(&state, &q).await
}

/// Discovery: send the browser to its tenant's IdP, offer a choice, or say
/// clearly why there is no SSO for this email.
async fn route_email(state: &EndpointState, q: &LoginQuery) -> Response {
    let email = q.email.trim();
    let return_to = safe_return_to(&q.return_to).unwrap_or("/");
    match state.auth.discover(email).await {
        Discovery::Invalid => render_login(state, q, Some("Enter your work email address.".into())),
        Discovery::Unrouted { domain } => render_login(
            state,
            q,
            Some(format!("Single sign-on isn't set up for {domain}.")),
        ),
        Discovery::NoConnections { .. } => render_login(
            state,
            q,
            Some("Your organisation hasn't connected its identity provider yet. Contact your administrator.".into()),
        ),
        Discovery::Connections { list, .. } => {
            let start = |id: &str| sso::start_url(state, id, return_to, email);
            if let [only] = list.as_slice() {
                return (StatusCode::SEE_OTHER, [(header::LOCATION, start(&only.config.id))]).into_response();
            }
            let choices = list
                .iter()
                .map(|r| (start(&r.config.id), format!("Continue with {}", r.display_name())))
                .collect();
            let back = format!(
                "{}?return_to={}",
                login_action(state),
                percent_encoding::utf8_percent_encode(return_to, percent_encoding::NON_ALPHANUMERIC)
            );
            let page = ChooserPage {
                email,
                choices,
                back: &back,
            };
            html(page.render())
        }
    }
}

fn html(rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(h) => Html(h).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn render_login(state: &EndpointState, q: &LoginQuery, notice: Option<String>) -> Response {
    let action = login_action(state);
    let email: String = q.email.chars().take(320).collect();
    let page = LoginPage {
        action: &action,
        email: &email,
        return_to: safe_return_to(&q.return_to).unwrap_or("/"),
        notice: notice.as_deref(),
        has_connections: !state
            .config
            .tenants
            .iter()
            .all(|t| t.connections.is_empty()),
        app_login_url: state.config.login.app_login_url.as_deref(),
    };
    html(page.render())
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct LogoutQuery {
    #[serde(default)]
    return_to: String,
}

/// Ends the caller's session (store + every replica's cache) and clears the
/// cookie. Always succeeds from the browser's point of view.
pub(super) async fn logout(
    State(state): State<Arc<EndpointState>>,
    Extension(current): Extension<CurrentSession>,
    Query(q): Query<LogoutQuery>,
) -> Response {
    let mut idp_logout = None;
    if let Some(s) = current.0 {
        // RP-initiated logout: the IdP ends its session too, when the
        // session's connection offers it (OIDC `end_session_endpoint`).
        if let (Some(conn), Some(binding)) = (s.principal.connection.as_deref(), s.idp.as_ref())
            && let Some(reg) = state.auth.registry.get(conn)
        {
            idp_logout = reg.connection.logout_redirect(binding).await;
        }
        match state
            .sessions
            .revoke(&SessionSelector::Id(s.id_hash.clone()))
            .await
        {
            Ok(_) => {
                state
                    .metrics
                    .sessions_revoked
                    .with_label_values(&["logout"])
                    .inc();
                tracing::info!(user = %s.principal.user_id, "logout");
            }
            Err(e) => tracing::error!(error = %e, "logout could not revoke the session"),
        }
    }
    let to = idp_logout.unwrap_or_else(|| safe_return_to(&q.return_to).unwrap_or("/").to_owned());
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Ok(v) = HeaderValue::from_str(&state.codec.clear()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

pub(super) async fn jwks(State(state): State<Arc<EndpointState>>) -> Response {
    let mut resp = Json(state.signer.jwks()).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// Who am I — for single-page apps that want the identity in the browser.
pub(super) async fn whoami(Extension(current): Extension<CurrentSession>) -> Response {
    match current.0 {
        Some(s) => Json(json!({
            "authenticated": true,
            "user_id": s.principal.user_id,
            "email": s.principal.email,
            "name": s.principal.name,
            "groups": s.principal.groups,
            "roles": s.principal.roles,
            "tenant": s.principal.tenant,
            "expires_at": s.expires_at,
        }))
        .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"authenticated": false})),
        )
            .into_response(),
    }
}

pub(super) async fn not_found(request_id: Option<Extension<RequestId>>) -> Response {
    let id = request_id.map(|r| r.0.0).unwrap_or_default();
    (
        StatusCode::NOT_FOUND,
        Html(message("Not found", "There is nothing here.", None, &id)),
    )
        .into_response()
}
