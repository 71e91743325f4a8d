//! The protocol-independent SSO endpoints: start a login at a connection,
//! and finish it at the callback — flow cookie, protocol verification,
//! policy, session. SAML's ACS and OIDC's callback route here too.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::pages::message;
use super::{CurrentSession, RequestId};
use crate::generation::Generation;
use askama::Template;

use super::pages::TestSignInPage;
use crate::auth::{self, CallbackRequest, FlowCodec, FlowState, Mode, StartContext, TestLinks};
use crate::session::{IdpBinding, SessionSelector};

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).collect()
}

/// `{prefix}sso/{id}/start?return_to=…&login_hint=…`
pub(super) fn start_url(state: &Generation, id: &str, return_to: &str, login_hint: &str) -> String {
    let mut url = format!(
        "{}?return_to={}",
        state.auth.urls.sso_start_path(&enc(id)),
        enc(return_to)
    );
    if !login_hint.is_empty() {
        url.push_str("&login_hint=");
        url.push_str(&enc(login_hint));
    }
    url
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct StartQuery {
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    login_hint: Option<String>,
}

/// The labels of one callback's refusals, so each refusal site names only
/// what differs: the reason, the detail and the flow to clear.
pub(super) struct Refuser<'a> {
    pub(super) state: &'a Generation,
    pub(super) rid: &'a str,
    pub(super) tenant: &'a str,
    pub(super) connection: &'a str,
}

impl Refuser<'_> {
    pub(super) fn refuse(
        &self,
        reason: &'static str,
        detail: &str,
        relay: Option<&str>,
    ) -> Response {
        refuse(
            self.state,
            self.rid,
            self.tenant,
            self.connection,
            reason,
            detail,
            relay,
        )
    }
}

/// A refused login: generic to the browser, precise in the log and metrics.
fn refuse(
    state: &Generation,
    request_id: &str,
    tenant: &str,
    connection: &str,
    reason: &'static str,
    detail: &str,
    relay: Option<&str>,
) -> Response {
    state
        .metrics
        .login_failures
        .with_label_values(&[tenant, connection, reason])
        .inc();
    tracing::warn!(
        request_id,
        tenant,
        connection,
        reason,
        detail,
        "login refused"
    );
    let login = state.auth.urls.login_path();
    // The user proved who they are; for these two outcomes saying why helps
    // them and reveals nothing to an attacker. Everything else stays generic.
    let text = match reason {
        "not_provisioned" => {
            "Your account isn't set up for this application yet. Ask your administrator for access."
        }
        "deactivated" => "Your account has been deactivated. Contact your administrator.",
        _ => {
            "We couldn't sign you in. Please try again, or contact your administrator and quote the request ID."
        }
    };
    let body = message(
        "Sign-in failed",
        text,
        Some((&login, "Back to sign-in")),
        request_id,
    );
    let mut resp = (StatusCode::FORBIDDEN, Html(body)).into_response();
    if let Some(relay) = relay
        && let Ok(v) = HeaderValue::from_str(&state.auth.flow.clear(relay))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub(super) async fn start(
    State(state): State<Arc<Generation>>,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
) -> Response {
    let rid = request_id.map(|r| r.0.0).unwrap_or_default();
    let return_to = state.returns.check(&q.return_to).unwrap_or("/").to_owned();
    begin(
        &state,
        &rid,
        &id,
        return_to,
        q.login_hint,
        false,
        &headers,
        None,
    )
    .await
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct StepUpQuery {
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    acr_values: Option<String>,
    #[serde(default)]
    max_age: Option<String>,
}

/// Most acr names a step-up may ask for.
const MAX_STEP_UP_ACR: usize = 16;

/// What `acr_values` and `max_age` ask for, or why they can't be read.
fn step_up_demand(q: &StepUpQuery) -> Result<(Vec<String>, Option<u64>), &'static str> {
    let acr: Vec<String> = match &q.acr_values {
        None => Vec::new(),
        Some(v) => v.split(' ').map(str::to_owned).collect(),
    };
    if acr.len() > MAX_STEP_UP_ACR || acr.iter().any(|a| !crate::config::is_acr(a)) {
        return Err("acr_values");
    }
    let max_age = match &q.max_age {
        None => None,
        Some(m) => match m.parse::<u64>() {
            Ok(s)
                if (1..=crate::config::MAX_STEP_UP_AGE_SECONDS).contains(&s)
                    && !m.starts_with('+') =>
            {
                Some(s)
            }
            _ => return Err("max_age"),
        },
    };
    if acr.is_empty() && max_age.is_none() {
        return Err("nothing asked");
    }
    Ok((acr, max_age))
}

/// `GET {prefix}step-up?return_to=…&acr_values=…&max_age=…`: where the
/// gate sends a browser whose session is too weak for a route. A fresh
/// login at the session's own connection (so its tenant), asking the IdP
/// for the route's acr and max_age; the callback checks what the IdP
/// achieved and replaces the session. Without a session this is the
/// login page's job. The query only says what to ask for: the gate checks
/// the new session against the route again, so asking for less gains
/// nothing.
pub(super) async fn step_up(
    State(state): State<Arc<Generation>>,
    Query(q): Query<StepUpQuery>,
    headers: HeaderMap,
    Extension(current): Extension<CurrentSession>,
    request_id: Option<Extension<RequestId>>,
) -> Response {
    let rid = request_id.map(|r| r.0.0).unwrap_or_default();
    let return_to = state.returns.check(&q.return_to).unwrap_or("/").to_owned();
    let Some(session) = current.0 else {
        let login = format!(
            "{}?return_to={}",
            state.auth.urls.login_path(),
            enc(&return_to)
        );
        return (StatusCode::FOUND, [(header::LOCATION, login)]).into_response();
    };
    let (acr, max_age) = match step_up_demand(&q) {
        Ok(d) => d,
        Err(what) => {
            tracing::info!(request_id = %rid, what, "step-up request not understood");
            let body = message("Bad request", "This sign-in link is not valid.", None, &rid);
            return (StatusCode::BAD_REQUEST, Html(body)).into_response();
        }
    };
    let p = &session.principal;
    let connection = p.connection.clone().unwrap_or_default();
    let tenant = p.tenant.clone().unwrap_or_else(|| "unknown".into());
    match state.auth.registry.get(&connection) {
        Some(reg) if p.tenant.as_deref() == Some(reg.tenant.as_str()) => {}
        _ => {
            return refuse(
                &state,
                &rid,
                &tenant,
                "unknown",
                "step_up_unsupported",
                "the session was not made by a configured SSO connection of its tenant",
                None,
            );
        }
    }
    let flow = crate::auth::StepUpFlow {
        acr,
        max_age,
        user_id: p.user_id.clone(),
        subject: session.idp.as_ref().map(|i| i.subject.clone()),
    };
    let hint = Some(p.email.clone());
    begin(
        &state,
        &rid,
        &connection,
        return_to,
        hint,
        false,
        &headers,
        Some(flow),
    )
    .await
}

/// `GET {prefix}saml/{id}/metadata`: this SP's metadata for the IdP admin.
pub(super) async fn saml_metadata(
    State(state): State<Arc<Generation>>,
    Path(id): Path<String>,
    request_id: Option<Extension<RequestId>>,
) -> Response {
    let reg = state
        .auth
        .registry
        .get(&id)
        .filter(|r| r.config.kind() == Some(crate::config::ConnectionKind::Saml));
    let Some(reg) = reg else {
        return super::handlers::not_found(request_id).await;
    };
    let Some(saml) = reg.connection.saml() else {
        return super::handlers::not_found(request_id).await;
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        saml.sp_metadata_xml(),
    )
        .into_response()
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct TestQuery {
    #[serde(default)]
    token: String,
}

/// Follows a one-time test sign-in link (`portcullis connections test`).
pub(super) async fn test(
    State(state): State<Arc<Generation>>,
    Path(id): Path<String>,
    Query(q): Query<TestQuery>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
) -> Response {
    let rid = request_id.map(|r| r.0.0).unwrap_or_default();
    let now = crate::clock::now();
    let tenant = state
        .auth
        .registry
        .get(&id)
        .map(|r| r.tenant.clone())
        .unwrap_or_else(|| "unknown".into());
    let ticket = match TestLinks::new(&state.config.session).open(&q.token, now) {
        Some(t) if t.connection == id => t,
        _ => {
            return refuse(
                &state,
                &rid,
                &tenant,
                "unknown",
                "test_link_invalid",
                "forged, expired or for another connection",
                None,
            );
        }
    };
    match state
        .sessions
        .store()
        .one_time()
        .consume(
            auth::testlink::ONE_TIME_KIND,
            &ticket.nonce,
            ticket.expires_at,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                &state,
                &rid,
                &tenant,
                &id,
                "test_link_reused",
                "test link already used",
                None,
            );
        }
        Err(e) => return refuse(&state, &rid, &tenant, &id, "store", &e.to_string(), None),
    }
    begin(&state, &rid, &id, "/".into(), None, true, &headers, None).await
}

/// Starts a flow at connection `id`: protocol redirect plus flow cookie,
/// and the expiry of this browser's oldest flows beyond the per-browser cap.
#[allow(clippy::too_many_arguments)]
async fn begin(
    state: &Generation,
    rid: &str,
    id: &str,
    return_to: String,
    login_hint: Option<String>,
    test: bool,
    headers: &HeaderMap,
    step_up: Option<crate::auth::StepUpFlow>,
) -> Response {
    let Some(reg) = state.auth.registry.get(id) else {
        return refuse(
            state,
            rid,
            "unknown",
            "unknown",
            "unknown_connection",
            &format!("no connection {id:?}"),
            None,
        );
    };
    let Some(relay) = FlowCodec::new_relay() else {
        return refuse(
            state,
            rid,
            &reg.tenant,
            id,
            "internal",
            "no randomness",
            None,
        );
    };
    let ctx = StartContext {
        relay: relay.clone(),
        login_hint: login_hint.filter(|h| !h.is_empty() && h.len() <= 320),
        callback_url: state.auth.urls.sso_callback(id),
        step_up: step_up.as_ref().map(|f| f.ask(&reg.config)),
    };
    let started = match reg.connection.start(&ctx).await {
        Ok(s) => s,
        Err(e) => return refuse(state, rid, &reg.tenant, id, e.reason, &e.detail, None),
    };
    let flow = FlowState {
        connection: id.to_owned(),
        return_to,
        state: started.state,
        created_at: crate::clock::now(),
        test,
        step_up,
    };
    let Some(cookie) = state.auth.flow.seal(&relay, &flow) else {
        return refuse(
            state,
            rid,
            &reg.tenant,
            id,
            "internal",
            "flow cookie could not be sealed",
            None,
        );
    };
    let evicted = state.auth.flow.evict_for_new(
        headers.get_all(header::COOKIE).iter().map(|v| v.as_bytes()),
        flow.created_at,
    );
    let mut resp = (StatusCode::FOUND, [(header::LOCATION, started.redirect_to)]).into_response();
    for c in evicted.iter().chain(std::iter::once(&cookie)) {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The test sign-in result: what the IdP sent, who that maps to, and the
/// verdict. Shown to the operator who followed the link; nothing is
/// created.
async fn test_result(
    state: &Generation,
    rid: &str,
    tenant: &crate::config::TenantConfig,
    id: &str,
    relay: &str,
    login: Result<crate::auth::VerifiedLogin, crate::auth::ConnectionError>,
    now: i64,
) -> Response {
    let (claims, verdict, principal) = match login {
        Err(e) => (
            String::from("{}"),
            format!("Refused by the protocol: {}: {}", e.reason, e.detail),
            None,
        ),
        Ok(l) => {
            let claims = serde_json::to_string_pretty(&serde_json::json!({
                "subject": l.subject,
                "email": l.email,
                "email_verified": l.email_verified,
                "name": l.name,
                "groups": l.groups,
                "raw": l.raw_claims,
            }))
            .unwrap_or_default();
            match auth::complete(
                &l,
                tenant,
                state.auth.domains.as_ref(),
                state.sessions.store(),
                now,
                Mode::DryRun,
            )
            .await
            {
                Ok(p) => (
                    claims,
                    "Allowed: this user would be signed in.".to_owned(),
                    // What the app would receive: the mapped claims, and
                    // a SCIM-managed user's groups and roles from the
                    // directory.
                    serde_json::to_string_pretty(&{
                        let p = crate::identity::Principal {
                            claims: auth::claims::for_session(
                                &l,
                                &state.config.headers,
                                state.auth.registry.get(id).map(|r| &r.config),
                            ),
                            ..p
                        };
                        state.sessions.compose(p.clone()).await.unwrap_or(p)
                    })
                    .ok(),
                ),
                Err(f) => (
                    claims,
                    format!("Refused by policy: {}: {}", f.reason, f.detail),
                    None,
                ),
            }
        }
    };
    tracing::info!(request_id = rid, tenant = %tenant.id, connection = id, verdict = %verdict, "test sign-in");
    let page = TestSignInPage {
        connection: id,
        tenant: &tenant.id,
        verdict: &verdict,
        principal: principal.as_deref(),
        claims: &claims,
        request_id: rid,
    };
    let mut resp = match page.render() {
        Ok(h) => Html(h).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&state.auth.flow.clear(relay)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub(super) fn pairs(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn callback(
    State(state): State<Arc<Generation>>,
    Path(id): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Extension(current): Extension<CurrentSession>,
    request_id: Option<Extension<RequestId>>,
    body: Bytes,
) -> Response {
    let rid = request_id.map(|r| r.0.0).unwrap_or_default();
    let Some(reg) = state.auth.registry.get(&id) else {
        return refuse(
            &state,
            &rid,
            "unknown",
            "unknown",
            "unknown_connection",
            &format!("no connection {id:?}"),
            None,
        );
    };
    let refuser = Refuser {
        state: &state,
        rid: &rid,
        tenant: &reg.tenant,
        connection: &id,
    };
    let req = callback_request(&method, query.as_deref(), &body);
    let now = crate::clock::now();
    let (relay, flow) = match open_flow(&state, &req, &headers, now) {
        Ok(f) => f,
        Err((reason, detail, relay)) => return refuser.refuse(reason, detail, relay.as_deref()),
    };
    if flow.connection != id {
        return refuser.refuse(
            "state_mismatch",
            "flow belongs to another connection",
            Some(&relay),
        );
    }
    // A pre-configured provider's logins return to its one redirect URI.
    if reg.config.platform.is_some() {
        return refuser.refuse(
            "state_mismatch",
            "a platform connection's callback is /platform/{provider}/callback",
            Some(&relay),
        );
    }
    finish_flow(&refuser, reg, &req, &relay, flow, current, now).await
}

/// The IdP's answer as a [`CallbackRequest`]: the query, and the form of a
/// POST (SAML POST binding, OIDC `form_post`).
pub(super) fn callback_request(
    method: &Method,
    query: Option<&str>,
    body: &[u8],
) -> CallbackRequest {
    let form = if method == Method::POST {
        std::str::from_utf8(body).map(pairs).unwrap_or_default()
    } else {
        Vec::new()
    };
    CallbackRequest {
        method: method.to_string(),
        query: query.map(pairs).unwrap_or_default(),
        form,
    }
}

/// A refusal before the flow is known: reason, detail, the relay whose
/// cookie to clear.
pub(super) type FlowRefusal = (&'static str, &'static str, Option<String>);

/// The flow this callback continues: named by its relay (`state` /
/// `RelayState`) and sealed in this browser's cookie, never taken from the
/// URL alone.
pub(super) fn open_flow(
    state: &Generation,
    req: &CallbackRequest,
    headers: &HeaderMap,
    now: i64,
) -> Result<(String, FlowState), FlowRefusal> {
    let Some(relay) = req.relay().map(str::to_owned) else {
        return Err(("missing_state", "callback without state/RelayState", None));
    };
    let cookies = headers.get_all(header::COOKIE);
    match state
        .auth
        .flow
        .open(&relay, cookies.iter().map(|v| v.as_bytes()), now)
    {
        Some(flow) => Ok((relay, flow)),
        None => Err((
            "state_mismatch",
            "no valid flow cookie for this state (expired, other browser, or forged)",
            Some(relay),
        )),
    }
}

/// The rest of a callback once its flow and connection are known: the
/// protocol's verification, then the test sign-in page or a session.
pub(super) async fn finish_flow(
    refuser: &Refuser<'_>,
    reg: &crate::auth::Registered,
    req: &CallbackRequest,
    relay: &str,
    flow: FlowState,
    current: CurrentSession,
    now: i64,
) -> Response {
    let (state, rid, tenant_id, id) = (
        refuser.state,
        refuser.rid,
        refuser.tenant,
        refuser.connection,
    );
    let relay = relay.to_owned();
    if flow.test {
        let login = reg.connection.finish(req, &flow.state).await;
        let Some(tenant) = state.auth.tenant(tenant_id) else {
            return refuser.refuse("internal", "tenant vanished", Some(&relay));
        };
        return test_result(state, rid, tenant, id, &relay, login, now).await;
    }
    let login = match reg.connection.finish(req, &flow.state).await {
        Ok(l) => l,
        Err(e) => {
            return refuser.refuse(e.reason, &e.detail, Some(&relay));
        }
    };
    let step_up = flow.step_up.as_ref();
    sign_in(
        refuser,
        login,
        current,
        now,
        flow.return_to,
        Some(&relay),
        step_up,
    )
    .await
}

/// A verified login becomes a session: policy, a fresh session replacing
/// the browser's old one, the redirect to `return_to`. Shared by the
/// callback and SAML's IdP-initiated ACS.
///
/// A step-up login must meet what was asked (acr, auth_time) and be the
/// same user; it then replaces the weaker session like any login does (a
/// new id, the old record revoked), so the weak session can't open the
/// route, even from a copied cookie.
pub(super) async fn sign_in(
    refuser: &Refuser<'_>,
    mut login: crate::auth::VerifiedLogin,
    current: CurrentSession,
    now: i64,
    return_to: String,
    relay: Option<&str>,
    step_up: Option<&crate::auth::StepUpFlow>,
) -> Response {
    let (state, rid, tenant_id, id) = (
        refuser.state,
        refuser.rid,
        refuser.tenant,
        refuser.connection,
    );
    if login.connection_id != id {
        return refuser.refuse(
            "internal",
            &format!("connection returned a login for {}", login.connection_id),
            relay,
        );
    }
    let Some(tenant) = state.auth.tenant(tenant_id) else {
        return refuser.refuse("internal", "tenant vanished", relay);
    };
    let conn = state.auth.registry.get(id).map(|r| &r.config);
    auth::step_up::normalize(&mut login, conn);
    if let Some(s) = step_up
        && let Err(e) = s.check(&login, now, conn.map_or(120, auth::step_up::skew))
    {
        return refuser.refuse(e.reason, &e.detail, relay);
    }
    if let Some(want) = step_up.and_then(|s| s.subject.as_deref())
        && login.subject != want
    {
        return refuser.refuse(
            "step_up_user",
            &format!(
                "step-up of subject {want:?} answered for {:?}",
                login.subject
            ),
            relay,
        );
    }
    let principal = match auth::complete(
        &login,
        tenant,
        state.auth.domains.as_ref(),
        state.sessions.store(),
        now,
        Mode::Live,
    )
    .await
    {
        Ok(p) => crate::identity::Principal {
            claims: auth::claims::for_session(
                &login,
                &state.config.headers,
                state.auth.registry.get(id).map(|r| &r.config),
            ),
            ..p
        },
        Err(f) => {
            return refuser.refuse(f.reason, &f.detail, relay);
        }
    };
    if let Some(s) = step_up
        && s.user_id != principal.user_id
    {
        return refuser.refuse(
            "step_up_user",
            &format!(
                "step-up of user {} signed in user {}",
                s.user_id, principal.user_id
            ),
            relay,
        );
    }
    // A new login replaces whatever session the browser had (no fixation,
    // no orphans).
    if let Some(old) = current.0 {
        let _ = state
            .sessions
            .revoke(&SessionSelector::Id(old.id_hash()))
            .await;
    }
    let token = match state
        .sessions
        .create(
            &principal,
            Some(IdpBinding {
                subject: login.subject.clone(),
                session: login.idp_session.clone(),
                logout_hint: login.logout_hint.clone(),
            }),
            state.config.session.absolute_lifetime_seconds as i64,
            now,
        )
        .await
    {
        Ok(t) => t,
        Err(e) => {
            return refuser.refuse("store", &e.to_string(), relay);
        }
    };
    state
        .metrics
        .logins
        .with_label_values(&[tenant_id, id])
        .inc();
    tracing::info!(request_id = %rid, tenant = %tenant_id, connection = %id, user = %principal.user_id, "login");
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, return_to)]).into_response();
    let cookies = std::iter::once(state.codec.seal(&token, now))
        .chain(relay.map(|r| state.auth.flow.clear(r)));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}
