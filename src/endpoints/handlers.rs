use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use super::pages::{ChooserPage, ContinuePage, LoginPage, LogoutPage, message};
use super::sso;
use super::{CurrentSession, RequestId};
use crate::auth::Discovery;
use crate::generation::Generation;
use crate::session::SessionSelector;

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

fn login_action(state: &Generation) -> String {
    state.auth.urls.login_path()
}

pub(super) async fn login_page(
    State(state): State<Arc<Generation>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let bookmark = q
        .use_sso
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if bookmark && !q.email.trim().is_empty() {
        return route_email(&state, &q, Via::Link).await;
    }
    render_login(&state, &q, None)
}

pub(super) async fn login_submit(
    State(state): State<Arc<Generation>>,
    Form(q): Form<LoginQuery>,
) -> Response {
    route_email(&state, &q, Via::Form).await
}

/// How the email reached discovery, which decides how the browser is sent
/// on to a single connection (see [`ContinuePage`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A bookmarked or linked `GET` (`use_sso=true`): a plain redirect.
    Link,
    /// The login form's `POST`: a page that moves on by itself, since a
    /// redirect would stay part of the form submission.
    Form,
}

/// Discovery: send the browser to its tenant's IdP, offer a choice, or say
/// clearly why there is no SSO for this email.
async fn route_email(state: &Generation, q: &LoginQuery, via: Via) -> Response {
    let email = q.email.trim();
    let return_to = state.returns.check(&q.return_to).unwrap_or("/");
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
                let href = start(&only.config.id);
                if via == Via::Link {
                    return (StatusCode::SEE_OTHER, [(header::LOCATION, href)]).into_response();
                }
                let page = ContinuePage {
                    email,
                    label: only.display_name(),
                    href: &href,
                };
                return html(page.render());
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

fn render_login(state: &Generation, q: &LoginQuery, notice: Option<String>) -> Response {
    let action = login_action(state);
    let email: String = q.email.chars().take(320).collect();
    let page = LoginPage {
        action: &action,
        email: &email,
        return_to: state.returns.check(&q.return_to).unwrap_or("/"),
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

fn logout_action(state: &Generation) -> String {
    state.auth.urls.logout_path()
}

/// `GET {prefix}logout`: a confirmation page whose button POSTs the
/// session's CSRF token. A GET ends nothing, so an `<img src>` or a link on
/// another site can't sign anyone out. Without a session there is nothing
/// to confirm: straight on to `return_to`, cookies untouched.
pub(super) async fn logout_page(
    State(state): State<Arc<Generation>>,
    Extension(current): Extension<CurrentSession>,
    Query(q): Query<LogoutQuery>,
) -> Response {
    let return_to = state.returns.check(&q.return_to).unwrap_or("/");
    let Some(s) = current.0 else {
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, return_to.to_owned())],
        )
            .into_response();
    };
    let action = logout_action(&state);
    let csrf = state.codec.logout_token(&s.id_hash());
    let page = LogoutPage {
        action: &action,
        email: &s.principal.email,
        csrf: &csrf,
        return_to,
    };
    let mut resp = html(page.render());
    // The POST answers with a redirect to the IdP's logout endpoint when
    // the session's connection has one, and browsers apply `form-action` to
    // a form's redirects too: allow that one origin, nothing else.
    let idp_origin = match idp_logout_url(&state, &s).await {
        Some(url) => origin_of(&url),
        None => None,
    };
    // An absolute `return_to` (a protected host other than this one) is
    // where the POST redirects when the IdP has no logout endpoint.
    let form_action = ["'self'".to_owned()]
        .into_iter()
        .chain(idp_origin)
        .chain(state.returns.origin_of(return_to))
        .collect::<Vec<_>>()
        .join(" ");
    let form_action = format!("form-action {form_action}");
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// The IdP's logout URL for this session (RP-/SP-initiated logout), when
/// its connection offers one. The binding comes from the store: the cached
/// session leaves out its logout hint.
async fn idp_logout_url(state: &Generation, s: &crate::session::ActiveSession) -> Option<String> {
    let conn = s.principal.connection.as_deref()?;
    let reg = state.auth.registry.get(conn)?;
    let binding = match state.sessions.idp_binding(s).await {
        Ok(b) => b?,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the session's IdP binding: no IdP logout");
            return None;
        }
    };
    reg.connection.logout_redirect(&binding).await
}

/// `scheme://authority` of an absolute http(s) URL, for a CSP source.
fn origin_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    let authority = uri.authority()?;
    // A CSP source can't carry userinfo; such a URL gets no exception.
    if authority.as_str().contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

/// `POST {prefix}logout` with `csrf` (the session's token) and
/// `return_to`: ends the caller's session (store + every replica's cache),
/// clears the cookie, and sends the browser to the IdP's logout endpoint
/// when the session's connection has one, else to `return_to`. A missing or
/// wrong token ends nothing (403 page with a fresh sign-out link; reason in
/// the log and `portcullis_logout_refused_total`).
pub(super) async fn logout_submit(
    State(state): State<Arc<Generation>>,
    Extension(current): Extension<CurrentSession>,
    request_id: Option<Extension<RequestId>>,
    body: axum::body::Bytes,
) -> Response {
    let form = std::str::from_utf8(&body)
        .map(sso::pairs)
        .unwrap_or_default();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let return_to = state
        .returns
        .check(field("return_to").unwrap_or_default())
        .unwrap_or("/");
    let Some(s) = current.0 else {
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, return_to.to_owned())],
        )
            .into_response();
    };
    let reason = match field("csrf") {
        None | Some("") => Some("csrf_missing"),
        Some(token) if !state.codec.verify_logout_token(&s.id_hash(), token) => {
            Some("csrf_invalid")
        }
        Some(_) => None,
    };
    if let Some(reason) = reason {
        let rid = request_id.map(|r| r.0.0).unwrap_or_default();
        state
            .metrics
            .logout_refused
            .with_label_values(&[reason])
            .inc();
        tracing::warn!(request_id = %rid, user = %s.principal.user_id, reason, "logout refused: no valid CSRF token; the session goes on");
        let again = format!(
            "{}?return_to={}",
            logout_action(&state),
            percent_encoding::utf8_percent_encode(return_to, percent_encoding::NON_ALPHANUMERIC)
        );
        let body = message(
            "Sign-out not confirmed",
            "This sign-out request could not be verified, so you are still signed in.",
            Some((&again, "Sign out")),
            &rid,
        );
        return (StatusCode::FORBIDDEN, Html(body)).into_response();
    }
    // RP-initiated logout: the IdP ends its session too, when the
    // session's connection offers it (OIDC `end_session_endpoint`, SAML
    // LogoutRequest).
    let idp_logout = idp_logout_url(&state, &s).await;
    match state
        .sessions
        .revoke(&SessionSelector::Id(s.id_hash()))
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
    let to = idp_logout.unwrap_or_else(|| return_to.to_owned());
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Ok(v) = HeaderValue::from_str(&state.codec.clear()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

pub(super) async fn jwks(State(state): State<Arc<Generation>>) -> Response {
    let mut resp = Json(state.signer.jwks()).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// Who am I — for single-page apps that want the identity in the browser.
pub(super) async fn whoami(
    State(state): State<Arc<Generation>>,
    Extension(current): Extension<CurrentSession>,
) -> Response {
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
            // For an app's own sign-out button: POST it as `csrf` to
            // `{prefix}logout`. Same-origin reads only (no CORS here).
            "logout_token": state.codec.logout_token(&s.id_hash()),
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
