//! The setup portal on the public listener: the pages a customer's IT admin
//! opens from a setup link (`{prefix}setup/{token}`), and the same pages for
//! a signed-in admin of a tenant (`{prefix}admin`). Server-rendered
//! (askama), working without JavaScript; every change goes through
//! [`super::ops`], so the portal answers exactly what the admin API and
//! `check` answer, audited with the link (or the admin's email) as actor.
//!
//! `app` mounts the router in front of the internal endpoints (it never
//! reaches `proxy` or `endpoints`) and hands in the running server through
//! [`Host`] and the caller's session as [`Viewer`].
//!
//! Security: the link's token is exchanged once for a cookie (sealed with
//! the session cookie codec, `HttpOnly`, `SameSite=Strict`, path limited to
//! the portal, expiring with the link) and a `303`, so the token does not
//! stay in the address bar or a `Referer`. Every POST carries a CSRF token
//! bound to that portal session (or to the admin's session), compared in
//! constant time; bodies are bounded by `[server] max_internal_body_bytes`.

mod form;
mod handlers;
mod idps;
mod pages;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::audit::Actor;
use super::ops::{self, Current, SetupGrant};
use crate::config::{Origin, PublicUrls, TenantConfig};
use crate::session::{ActiveSession, CookieCodec};

pub use form::Fields;

/// The running server, or `None` while it starts or after it stopped.
pub type Host = Arc<dyn Fn() -> Option<Arc<dyn Current>> + Send + Sync>;

/// The caller's Portcullis session, as the proxy resolved it (inserted by
/// `app`'s bridge; absent means anonymous).
#[derive(Clone, Debug, Default)]
pub struct Viewer(pub Option<Arc<ActiveSession>>);

/// What the portal needs of one configuration generation.
#[derive(Clone)]
pub struct Portal {
    host: Host,
    codec: Arc<CookieCodec>,
    urls: PublicUrls,
    /// `[session] secure`: the portal cookie is `Secure` (and `__Secure-`).
    secure: bool,
    login_path: String,
    max_body: usize,
}

impl Portal {
    pub fn new(
        host: Host,
        codec: Arc<CookieCodec>,
        config: &crate::config::Config,
        max_body: usize,
    ) -> Self {
        let urls = config.public_urls();
        Self {
            host,
            codec,
            login_path: urls.login_path(),
            urls,
            secure: config.session.secure,
            max_body,
        }
    }

    /// `{prefix}setup`: the link's pages and the cookie's path.
    fn setup_base(&self) -> String {
        format!("{}setup", self.urls.prefix())
    }

    /// `{prefix}admin`: the pages for a signed-in tenant admin.
    fn admin_base(&self) -> String {
        format!("{}admin", self.urls.prefix())
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure {
            "__Secure-portcullis_setup"
        } else {
            "portcullis_setup"
        }
    }
}

/// The intents a setup link can grant, with the page each opens.
pub(crate) const SECTIONS: &[(&str, &str, &str)] = &[
    ("domain", "domains", "Domains"),
    ("sso", "sso", "Single sign-on"),
    ("scim", "provisioning", "Provisioning"),
    ("enforce", "enforce", "Enforce SSO"),
    ("roles", "roles", "Group → role mapping"),
];

/// Who is at the portal, for which tenant, allowed to do what. Made by the
/// access layers; every page handler starts from it.
#[derive(Clone)]
pub(crate) struct Access {
    pub cur: Arc<dyn Current>,
    pub tenant: String,
    pub intents: Vec<String>,
    pub actor: Actor,
    /// The CSRF token every form of this portal session carries.
    pub csrf: String,
    /// Where the pages live (`{prefix}setup` or `{prefix}admin`).
    pub base: String,
    /// Said in the header: the link and its expiry, or the admin's email.
    pub who: String,
}

impl Access {
    pub(crate) fn allows(&self, intent: &str) -> bool {
        self.intents.iter().any(|i| i == intent)
    }

    pub(crate) fn page(&self, rest: &str) -> String {
        if rest.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{rest}", self.base)
        }
    }
}

/// The portal cookie's content: the grant and a random id the CSRF token
/// is bound to.
#[derive(Debug, Serialize, Deserialize)]
struct SetupCookie {
    grant: SetupGrant,
    sid: String,
}

/// Copy buttons: the only script, allowed by its hash.
pub(crate) const SCRIPT: &str = "document.querySelectorAll('[data-copy]').forEach(function(el){var b=document.createElement('button');b.type='button';b.className='copy';b.textContent='Copy';b.addEventListener('click',function(){if(navigator.clipboard){navigator.clipboard.writeText(el.textContent).then(function(){b.textContent='Copied';setTimeout(function(){b.textContent='Copy';},1500);});}});el.insertAdjacentElement('afterend',b);});";

static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = ring::digest::digest(&ring::digest::SHA256, SCRIPT.as_bytes());
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        base64::engine::general_purpose::STANDARD.encode(hash.as_ref())
    )
});

/// A rendered page with the security headers every portal page carries.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    for (k, v) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    if let Ok(v) = HeaderValue::from_str(&CSP) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// A message page (refusals, expired links) with `status`.
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html(status, pages::message(title, text))
}

pub(crate) fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again shortly",
        "The server is starting or stopping. Reload this page in a moment.",
    )
}

/// The portal's routes (full paths). `app` puts the internal endpoints
/// behind them as the fallback.
pub fn router(portal: Portal) -> Router {
    let setup = portal.setup_base();
    let admin = portal.admin_base();
    let limit = portal.max_body;
    Router::new()
        .route(&format!("{setup}/{{token}}"), get(handlers::redeem))
        .nest(
            &setup,
            pages().layer(middleware::from_fn_with_state(portal.clone(), setup_access)),
        )
        .nest(
            &admin,
            pages().layer(middleware::from_fn_with_state(portal.clone(), admin_access)),
        )
        .route_layer(middleware::from_fn_with_state(limit, form::read_form))
        .with_state(portal)
}

fn pages() -> Router<Portal> {
    Router::new()
        .route("/", get(handlers::overview))
        .route(
            "/domains",
            get(handlers::domains).post(handlers::add_domain),
        )
        .route("/domains/verify", post(handlers::verify_domain))
        .route("/domains/remove", post(handlers::remove_domain))
        .route("/sso", get(handlers::sso))
        .route("/sso/reset", post(handlers::reset_sso))
        .route(
            "/sso/new/{idp}",
            get(handlers::new_connection).post(handlers::create_connection),
        )
        .route("/sso/c/{cid}", get(handlers::connection))
        .route("/sso/c/{cid}/update", post(handlers::update_connection))
        .route("/sso/c/{cid}/test", get(handlers::test_sign_in))
        .route(
            "/provisioning",
            get(handlers::provisioning).post(handlers::set_provisioning),
        )
        .route(
            "/provisioning/scim-token",
            post(handlers::rotate_scim_token),
        )
        .route(
            "/enforce",
            get(handlers::enforce).post(handlers::set_enforce),
        )
        .route("/roles", get(handlers::roles).post(handlers::set_roles))
}

fn cookie_value<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The portal cookie of this request, opened.
fn portal_session(p: &Portal, headers: &axum::http::HeaderMap) -> Option<SetupCookie> {
    cookie_value(headers, p.cookie_name())
        .and_then(|v| p.codec.open_named(p.cookie_name(), v))
        .and_then(|plain| serde_json::from_str::<SetupCookie>(&plain).ok())
}

/// The grant of this request's portal cookie, if it opens and is unexpired.
pub(crate) fn cookie_grant(p: &Portal, headers: &axum::http::HeaderMap) -> Option<SetupGrant> {
    portal_session(p, headers)
        .map(|c| c.grant)
        .filter(|g| g.expires_at > crate::clock::now())
}

/// Pages opened from a setup link: the portal cookie must open, its link
/// must still be in force (not revoked, not expired, tenant still there).
async fn setup_access(State(p): State<Portal>, req: Request, next: Next) -> Response {
    let Some(cur) = (p.host)() else {
        return unavailable();
    };
    let opened = portal_session(&p, req.headers());
    let Some(c) = opened else {
        refused(cur.as_ref(), "no_portal_session");
        return message(
            StatusCode::UNAUTHORIZED,
            "Open your setup link",
            "This page is opened from a setup link. Open the link you were sent again; if it was already used, ask for a new one.",
        );
    };
    match ops::setup_grant_active(&cur.ctx(), &c.grant).await {
        Ok(true) => {}
        Ok(false) => {
            refused(cur.as_ref(), "session_ended");
            return message(
                StatusCode::UNAUTHORIZED,
                "This setup session has ended",
                "The setup link behind this session expired or was withdrawn. Ask for a new setup link.",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "setup portal: link lookup failed");
            return unavailable();
        }
    }
    let access = Access {
        cur,
        tenant: c.grant.tenant.clone(),
        intents: c.grant.intents.clone(),
        actor: Actor::SetupLink {
            id: c.grant.link.clone(),
        },
        csrf: p.codec.logout_token(&format!("portal-setup:{}", c.sid)),
        base: p.setup_base(),
        who: format!(
            "Setup link {} · valid until {}",
            c.grant.link,
            pages::when(c.grant.expires_at)
        ),
    };
    guard(&p, access, &format!("portal-setup:{}", c.sid), req, next).await
}

/// `{prefix}admin`: a signed-in user whose roles include one of their
/// tenant's `admin_roles`, for their own tenant only.
async fn admin_access(
    State(p): State<Portal>,
    viewer: Option<axum::Extension<Viewer>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(cur) = (p.host)() else {
        return unavailable();
    };
    let Some(session) = viewer.and_then(|v| v.0.0.clone()) else {
        let base = p.admin_base();
        let return_to =
            percent_encoding::utf8_percent_encode(&base, percent_encoding::NON_ALPHANUMERIC);
        return see_other(&format!("{}?return_to={return_to}", p.login_path));
    };
    let principal = &session.principal;
    let ctx = cur.ctx();
    let tenant = principal
        .tenant
        .as_deref()
        .and_then(|t| ctx.config.tenants.iter().find(|c| c.id == t));
    let is_admin = tenant.is_some_and(|t| {
        principal
            .roles
            .iter()
            .any(|r| t.admin_roles.iter().any(|a| a == r))
    });
    let Some(t) = tenant.filter(|_| is_admin) else {
        tracing::info!(email = %principal.email, tenant = ?principal.tenant, "tenant admin portal refused: not an admin of a tenant");
        refused(cur.as_ref(), "not_tenant_admin");
        return message(
            StatusCode::FORBIDDEN,
            "Not available",
            "Your account is not an administrator of its organisation here. Ask an administrator to give you an admin role.",
        );
    };
    let binding = format!("portal-admin:{}", session.id_hash());
    let access = Access {
        cur: cur.clone(),
        tenant: t.id.clone(),
        intents: ops::INTENTS.iter().map(|s| s.to_string()).collect(),
        actor: Actor::TenantAdmin {
            email: principal.email.clone(),
        },
        csrf: p.codec.logout_token(&binding),
        base: p.admin_base(),
        who: format!("Signed in as {}", principal.email),
    };
    guard(&p, access, &binding, req, next).await
}

/// Common to both: a POST may not change a tenant of the configuration
/// file, and must carry the CSRF token of this portal session.
async fn guard(
    p: &Portal,
    access: Access,
    binding: &str,
    mut req: Request,
    next: Next,
) -> Response {
    if req.method() == axum::http::Method::POST {
        // A file tenant is refused first: nothing changes either way, and
        // its pages carry no forms (so no token) to begin with.
        let ctx = access.cur.ctx();
        if let Some(reason) = read_only(&ctx, &access.tenant) {
            return message(StatusCode::CONFLICT, "Read-only", &reason);
        }
        let given = req
            .extensions()
            .get::<Fields>()
            .map(|f| f.get("csrf").to_owned())
            .unwrap_or_default();
        if !p.codec.verify_logout_token(binding, &given) {
            tracing::warn!(tenant = %access.tenant, "setup portal: POST refused, CSRF token missing or wrong");
            refused(access.cur.as_ref(), "csrf");
            return message(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form could not be accepted. Go back, reload the page and try again.",
            );
        }
    }
    req.extensions_mut().insert(access);
    next.run(req).await
}

/// Counts a refusal (the reason is also logged where it happens).
pub(crate) fn refused(cur: &dyn Current, reason: &str) {
    cur.ctx()
        .metrics
        .admin
        .portal_refusals
        .with_label_values(&[reason])
        .inc();
}

/// Why a tenant can't be changed here, if it can't.
pub(crate) fn read_only(ctx: &ops::AdminCtx, tenant: &str) -> Option<String> {
    let t: &TenantConfig = ctx.config.tenants.iter().find(|t| t.id == tenant)?;
    (t.origin == Origin::File).then(|| {
        format!(
            "Organisation `{tenant}` is defined in the server's configuration file ({}), so it is read-only here. Ask the operator to change it there.",
            ctx.config_file
        )
    })
}

/// The `Set-Cookie` of a new portal session.
fn portal_cookie(p: &Portal, grant: &SetupGrant, now: i64) -> Option<String> {
    let sid = hex::encode(crate::secret::random_bytes::<16>().ok()?);
    let plain = serde_json::to_string(&SetupCookie {
        grant: grant.clone(),
        sid,
    })
    .ok()?;
    let sealed = p.codec.seal_named(p.cookie_name(), &plain)?;
    let mut c = cookie::Cookie::new(p.cookie_name(), sealed);
    c.set_path(p.setup_base());
    c.set_http_only(true);
    c.set_secure(p.secure);
    c.set_same_site(cookie::SameSite::Strict);
    c.set_max_age(cookie::time::Duration::seconds(
        (grant.expires_at - now).max(0),
    ));
    Some(c.to_string())
}
