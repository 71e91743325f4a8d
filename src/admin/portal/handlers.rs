//! The portal's pages, one handler per page and form. Each starts from the
//! [`Access`] its layer made, refuses a page the link was not given, and
//! makes its change through [`ops`]; a refused change shows the page again
//! with the submitted values and the messages next to their fields.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::idps::{self, Idp, Kind};
use super::pages::{
    Chrome, ConnFields, ConnRow, ConnectionPage, DomainRow, DomainsPage, EnforcePage, Errs,
    NewConnectionPage, OverviewPage, ProvisioningPage, RolesPage, SsoPage, Step, when,
};
use super::{
    Access, Fields, Portal, SCRIPT, SECTIONS, html, message, portal_cookie, read_only, refused,
    see_other, unavailable,
};
use crate::admin::ops::{self, AdminCtx, DomainInput, OpError, SetupLinkRefusal};
use crate::config::{ConnectionConfig, FieldError, PlatformKind, SamlConfig, TenantConfig};

type Acc = Extension<Access>;
type Form = Extension<Fields>;

fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(h) => html(status, h),
        Err(e) => {
            tracing::error!(error = %e, "setup portal: a page did not render");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "This page could not be shown. Try again in a moment.",
            )
        }
    }
}

fn chrome(a: &Access, ctx: &AdminCtx, current: &str, title: &str) -> Chrome {
    let tenant_name = tenant(ctx, &a.tenant)
        .and_then(|t| t.name.clone())
        .unwrap_or_else(|| a.tenant.clone());
    let mut nav = vec![(a.page(""), "Overview".to_owned(), current.is_empty())];
    for (intent, page, label) in SECTIONS {
        if a.allows(intent) {
            nav.push((a.page(page), (*label).to_owned(), current == *page));
        }
    }
    Chrome {
        title: title.to_owned(),
        tenant: a.tenant.clone(),
        tenant_name,
        who: a.who.clone(),
        nav,
        csrf: a.csrf.clone(),
        read_only: read_only(ctx, &a.tenant),
        script: SCRIPT,
    }
}

fn tenant<'a>(ctx: &'a AdminCtx, id: &str) -> Option<&'a TenantConfig> {
    ctx.config.tenants.iter().find(|t| t.id == id)
}

/// A page the link was not given: refused, saying which.
fn not_granted(a: &Access, intent: &str) -> Option<Response> {
    if a.allows(intent) {
        return None;
    }
    let label = SECTIONS
        .iter()
        .find(|(i, _, _)| *i == intent)
        .map_or(intent, |(_, _, l)| *l);
    tracing::info!(tenant = %a.tenant, intent, "setup portal: page outside the link's intents refused");
    refused(a.cur.as_ref(), "intent_not_granted");
    Some(message(
        StatusCode::FORBIDDEN,
        "Not part of this setup link",
        &format!(
            "This setup link does not include “{label}”. Ask the person who sent it for a link that does."
        ),
    ))
}

fn gone() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Organisation not found",
        "This organisation no longer exists here.",
    )
}

/// An operation's refusal as a status and messages for the page.
fn failure(e: OpError) -> (StatusCode, Errs) {
    let one = |m: String| Errs(vec![FieldError::new("", m)]);
    match e {
        OpError::Invalid(v) => (StatusCode::BAD_REQUEST, Errs(v)),
        OpError::NotFound(m) => (StatusCode::NOT_FOUND, one(m)),
        OpError::Conflict(m) => (StatusCode::CONFLICT, one(m)),
        OpError::Internal(m) => {
            tracing::error!(error = %m, "setup portal: an operation failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                one("Something went wrong on our side and nothing was changed. Try again in a moment.".into()),
            )
        }
    }
}

fn field_error(field: &str, message: &str) -> Errs {
    Errs(vec![FieldError::new(field, message)])
}

// ---------------------------------------------------------------- redeem

/// `{prefix}setup/{token}`: exchanges the link for a portal cookie and
/// moves on, so the token leaves the address bar.
pub(super) async fn redeem(
    State(p): State<Portal>,
    Path(token): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(cur) = (p.host)() else {
        return unavailable();
    };
    let refusal = match ops::redeem_setup_link(cur.as_ref(), &token).await {
        Ok(Ok(grant)) => {
            let now = crate::clock::now();
            let Some(cookie) = portal_cookie(&p, &grant, now) else {
                return unavailable();
            };
            tracing::info!(tenant = %grant.tenant, link = %grant.link, "setup link redeemed");
            let mut r = see_other(&p.setup_base());
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r.headers_mut()
                .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            return r;
        }
        Ok(Err(r)) => r,
        Err(e) => {
            tracing::error!(error = %e, "setup link redemption failed");
            return unavailable();
        }
    };
    // The same browser coming back through its own (used) link: its
    // portal session is still good, so just go on.
    if refusal == SetupLinkRefusal::Used
        && let Some(grant) = super::cookie_grant(&p, &headers)
        && token.starts_with(&format!("psl_{}_", grant.link))
    {
        return see_other(&p.setup_base());
    }
    let (reason, status, title, text) = match refusal {
        SetupLinkRefusal::Unknown => (
            "link_unknown",
            StatusCode::NOT_FOUND,
            "Setup link not recognised",
            "This setup link is not valid. Check that you opened the whole link, or ask the person who sent it for a new one.",
        ),
        SetupLinkRefusal::Expired => (
            "link_expired",
            StatusCode::GONE,
            "This setup link has expired",
            "Setup links work for a limited time. Ask the person who sent it for a new one.",
        ),
        SetupLinkRefusal::Used => (
            "link_used",
            StatusCode::GONE,
            "This setup link was already used",
            "A setup link opens the setup pages once, in one browser. Ask the person who sent it for a new one; if you did not open it yourself, tell them.",
        ),
        SetupLinkRefusal::Revoked => (
            "link_revoked",
            StatusCode::GONE,
            "This setup link was withdrawn",
            "The setup link is no longer valid. Ask the person who sent it for a new one.",
        ),
    };
    tracing::info!(reason, "setup link refused");
    refused(cur.as_ref(), reason);
    message(status, title, text)
}

// -------------------------------------------------------------- overview

pub(super) async fn overview(Extension(a): Acc) -> Response {
    let ctx = a.cur.ctx();
    let Some(t) = tenant(&ctx, &a.tenant) else {
        return gone();
    };
    let domains = ops::list_domains(&ctx, &a.tenant).await.unwrap_or_default();
    let verified = domains.iter().filter(|d| d.status == "verified").count();
    let mut sections = Vec::new();
    for (intent, page, label) in SECTIONS {
        if !a.allows(intent) {
            continue;
        }
        let state = match *intent {
            "domain" => format!("{verified} of {} verified", domains.len()),
            "sso" => match t.connections.len() {
                0 => "No identity provider connected".to_owned(),
                1 => "1 connection".to_owned(),
                n => format!("{n} connections"),
            },
            "scim" => match t.jit.enabled {
                true => "Just-in-time accounts".to_owned(),
                false => "No just-in-time accounts".to_owned(),
            },
            "enforce" => match t.enforce_sso {
                true => "Enforced".to_owned(),
                false => "Not enforced".to_owned(),
            },
            _ => format!("{} groups mapped", t.group_roles.len()),
        };
        sections.push((a.page(page), (*label).to_owned(), state));
    }
    render(
        StatusCode::OK,
        OverviewPage {
            chrome: chrome(&a, &ctx, "", "Overview"),
            sections,
        },
    )
}

// --------------------------------------------------------------- domains

async fn domains_page(a: &Access, status: StatusCode, input: &str, errs: Errs) -> Response {
    let ctx = a.cur.ctx();
    let list = match ops::list_domains(&ctx, &a.tenant).await {
        Ok(l) => l,
        Err(OpError::NotFound(_)) => return gone(),
        Err(e) => {
            let (s, errs) = failure(e);
            return render(
                s,
                DomainsPage {
                    chrome: chrome(a, &ctx, "domains", "Domains"),
                    action: a.page("domains"),
                    domains: Vec::new(),
                    input: input.to_owned(),
                    errs,
                },
            );
        }
    };
    let domains = list
        .into_iter()
        .map(|d| DomainRow {
            detail: d.detail.unwrap_or_default(),
            checked: d.last_checked_at.map(when).unwrap_or_default(),
            domain: d.domain,
            status: d.status,
            record_name: d.record_name,
            record_value: d.record_value,
        })
        .collect();
    render(
        status,
        DomainsPage {
            chrome: chrome(a, &ctx, "domains", "Domains"),
            action: a.page("domains"),
            domains,
            input: input.to_owned(),
            errs,
        },
    )
}

pub(super) async fn domains(Extension(a): Acc) -> Response {
    if let Some(r) = not_granted(&a, "domain") {
        return r;
    }
    domains_page(&a, StatusCode::OK, "", Errs::default()).await
}

pub(super) async fn add_domain(Extension(a): Acc, Extension(f): Form) -> Response {
    if let Some(r) = not_granted(&a, "domain") {
        return r;
    }
    let input = DomainInput {
        domain: f.get("domain").trim().to_owned(),
    };
    match ops::add_domain(a.cur.as_ref(), &a.actor, &a.tenant, &input).await {
        Ok(_) => see_other(&a.page("domains")),
        Err(e) => {
            let (status, errs) = failure(e);
            domains_page(&a, status, &input.domain, errs).await
        }
    }
}

pub(super) async fn verify_domain(Extension(a): Acc, Extension(f): Form) -> Response {
    if let Some(r) = not_granted(&a, "domain") {
        return r;
    }
    match ops::verify_domain(a.cur.as_ref(), &a.actor, &a.tenant, f.get("domain")).await {
        Ok(_) => see_other(&a.page("domains")),
        Err(e) => {
            let (status, errs) = failure(e);
            domains_page(&a, status, "", errs).await
        }
    }
}

pub(super) async fn remove_domain(Extension(a): Acc, Extension(f): Form) -> Response {
    if let Some(r) = not_granted(&a, "domain") {
        return r;
    }
    match ops::remove_domain(a.cur.as_ref(), &a.actor, &a.tenant, f.get("domain")).await {
        Ok(()) => see_other(&a.page("domains")),
        Err(e) => {
            let (status, errs) = failure(e);
            domains_page(&a, status, "", errs).await
        }
    }
}

// ------------------------------------------------------------------- sso

fn kind_label(c: &ConnectionConfig) -> String {
    match (c.platform, c.protocol) {
        (Some(k), _) => format!("Sign in with {}", k.display_name()),
        (None, Some(crate::config::Protocol::Saml)) => "SAML".to_owned(),
        (None, Some(crate::config::Protocol::Oidc)) => "OpenID Connect".to_owned(),
        _ => String::new(),
    }
}

fn sso_page(a: &Access, status: StatusCode, errs: Errs) -> Response {
    let ctx = a.cur.ctx();
    let Some(t) = tenant(&ctx, &a.tenant) else {
        return gone();
    };
    let connections = t
        .connections
        .iter()
        .map(|c| ConnRow {
            id: c.id.clone(),
            label: c
                .display_name
                .clone()
                .or_else(|| idps::of_connection(&ctx.config, c).map(|i| i.name.to_owned()))
                .unwrap_or_else(|| c.id.clone()),
            kind: kind_label(c),
            href: a.page(&format!("sso/c/{}", c.id)),
        })
        .collect();
    let idps = idps::catalog(&ctx.config)
        .into_iter()
        .map(|i| {
            let kind = match i.kind {
                Kind::Saml => "SAML 2.0".to_owned(),
                Kind::Oidc => "OpenID Connect".to_owned(),
                Kind::Platform(_) => "Pre-configured, nothing to set up".to_owned(),
            };
            (
                a.page(&format!("sso/new/{}", i.key)),
                i.name.to_owned(),
                kind,
            )
        })
        .collect();
    render(
        status,
        SsoPage {
            chrome: chrome(a, &ctx, "sso", "Single sign-on"),
            connections,
            idps,
            reset_action: a.page("sso/reset"),
            errs,
        },
    )
}

pub(super) async fn sso(Extension(a): Acc) -> Response {
    if let Some(r) = not_granted(&a, "sso") {
        return r;
    }
    sso_page(&a, StatusCode::OK, Errs::default())
}

pub(super) async fn reset_sso(Extension(a): Acc, Extension(f): Form) -> Response {
    if let Some(r) = not_granted(&a, "sso") {
        return r;
    }
    if f.get("confirm") != "yes" {
        return sso_page(
            &a,
            StatusCode::BAD_REQUEST,
            field_error(
                "confirm",
                "Tick the box to confirm that everyone will be signed out.",
            ),
        );
    }
    match ops::reset_sso(a.cur.as_ref(), &a.actor, &a.tenant).await {
        Ok(_) => see_other(&a.page("sso")),
        Err(e) => {
            let (status, errs) = failure(e);
            sso_page(&a, status, errs)
        }
    }
}

/// Our values for the steps, by connection id (or the connection's view,
/// which honours its overrides).
fn step_list(
    ctx: &AdminCtx,
    idp: &Idp,
    cid: &str,
    view: Option<&ops::ConnectionView>,
) -> Vec<Step> {
    let urls = ctx.config.public_urls();
    let value = |v: idps::Value| -> (String, &'static str) {
        let from_view = |f: fn(&ops::ConnectionView) -> Option<String>| view.and_then(f);
        match v {
            idps::Value::SpEntityId => (
                from_view(|v| v.sp_entity_id.clone()).unwrap_or_else(|| urls.saml_metadata(cid)),
                "sp-entity-id",
            ),
            idps::Value::AcsUrl => (
                from_view(|v| v.acs_url.clone()).unwrap_or_else(|| urls.saml_acs(cid)),
                "acs-url",
            ),
            idps::Value::MetadataUrl => (urls.saml_metadata(cid), "metadata-url"),
            idps::Value::RedirectUri => (urls.oidc_callback(cid), "redirect-uri"),
            idps::Value::BackchannelLogoutUri => {
                (urls.oidc_backchannel_logout(cid), "backchannel-logout-uri")
            }
        }
    };
    idp.steps
        .iter()
        .map(|(text, values)| Step {
            text: (*text).to_owned(),
            values: values
                .iter()
                .map(|(label, v)| {
                    let (value, id) = value(*v);
                    ((*label).to_owned(), value, id.to_owned())
                })
                .collect(),
        })
        .collect()
}

/// The SAML attribute names a connection reads, by claim.
fn attributes(idp: &Idp, saml: Option<&SamlConfig>) -> Vec<(String, String)> {
    if idp.kind != Kind::Saml {
        return Vec::new();
    }
    let default: Option<SamlConfig> = serde_json::from_value(json!({})).ok();
    let Some(cfg) = saml.or(default.as_ref()) else {
        return Vec::new();
    };
    let map = crate::auth::saml::preset_attributes(idp.preset, cfg);
    [
        ("Email (or NameID)", map.email),
        ("Display name", map.name),
        ("First name", map.first_name),
        ("Last name", map.last_name),
        ("Groups", map.groups),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.join(" or ")))
    .collect()
}

/// The connection id a new connection of `idp` gets: `{tenant}-{idp}`,
/// numbered if taken anywhere.
fn new_connection_id(ctx: &AdminCtx, tenant: &str, idp: &str) -> String {
    let short: String = tenant.chars().take(40).collect();
    let base = format!("{short}-{}", idp.trim_start_matches("platform-"));
    let taken = |id: &str| {
        ctx.config
            .tenants
            .iter()
            .flat_map(|t| t.connections.iter())
            .any(|c| c.id == id)
    };
    (1..100)
        .map(|n| match n {
            1 => base.clone(),
            n => format!("{base}-{n}"),
        })
        .find(|id| !taken(id))
        .unwrap_or(base)
}

fn form_kind(idp: &Idp) -> &'static str {
    match idp.kind {
        Kind::Saml => "saml",
        Kind::Oidc => "oidc",
        Kind::Platform(PlatformKind::Microsoft) => "microsoft",
        Kind::Platform(PlatformKind::Github) => "github",
        Kind::Platform(_) => "platform",
    }
}

fn new_connection_page(
    a: &Access,
    idp: &Idp,
    cid: &str,
    status: StatusCode,
    f: ConnFields,
    errs: Errs,
) -> Response {
    let ctx = a.cur.ctx();
    render(
        status,
        NewConnectionPage {
            chrome: chrome(a, &ctx, "sso", &format!("Connect {}", idp.name)),
            idp_name: idp.name.to_owned(),
            kind: form_kind(idp).to_owned(),
            cid: cid.to_owned(),
            steps: step_list(&ctx, idp, cid, None),
            attributes: attributes(idp, None),
            issuer_hint: idp.issuer_hint.to_owned(),
            action: a.page(&format!("sso/new/{}", idp.key)),
            back: a.page("sso"),
            f,
            errs,
        },
    )
}

fn find_idp(ctx: &AdminCtx, key: &str) -> Option<Idp> {
    idps::catalog(&ctx.config)
        .into_iter()
        .find(|i| i.key == key)
}

fn unknown_idp() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Unknown identity provider",
        "Pick an identity provider from the list on the single sign-on page.",
    )
}

pub(super) async fn new_connection(Extension(a): Acc, Path(key): Path<String>) -> Response {
    if let Some(r) = not_granted(&a, "sso") {
        return r;
    }
    let ctx = a.cur.ctx();
    let Some(idp) = find_idp(&ctx, &key) else {
        return unknown_idp();
    };
    let cid = new_connection_id(&ctx, &a.tenant, idp.key);
    new_connection_page(
        &a,
        &idp,
        &cid,
        StatusCode::OK,
        ConnFields::default(),
        Errs::default(),
    )
}

/// The metadata a SAML form gave: an uploaded file wins over pasted text.
fn metadata_xml(f: &Fields) -> Option<String> {
    f.opt("metadata_file").or_else(|| f.opt("idp_metadata_xml"))
}

fn submitted(f: &Fields) -> ConnFields {
    ConnFields {
        display_name: f.get("display_name").to_owned(),
        idp_metadata_url: f.get("idp_metadata_url").to_owned(),
        idp_metadata_xml: f.get("idp_metadata_xml").to_owned(),
        issuer: f.get("issuer").to_owned(),
        client_id: f.get("client_id").to_owned(),
        scopes: f.get("scopes").to_owned(),
        groups_claim: f.get("groups_claim").to_owned(),
        tenant_ids: f.get("tenant_ids").to_owned(),
        github_org: f.get("github_org").to_owned(),
        teams_as_groups: f.get("teams_as_groups") == "yes",
    }
}

/// The connection document a new-connection form describes (the keys of
/// the configuration file, as the admin API takes them).
fn connection_doc(idp: &Idp, cid: &str, f: &Fields) -> Value {
    let mut doc = Map::new();
    doc.insert("id".into(), json!(cid));
    if let Some(n) = f.opt("display_name") {
        doc.insert("display_name".into(), json!(n));
    }
    match idp.kind {
        Kind::Saml | Kind::Oidc => {
            let saml = idp.kind == Kind::Saml;
            doc.insert("protocol".into(), json!(if saml { "saml" } else { "oidc" }));
            if let Some(p) = idp.preset {
                doc.insert("preset".into(), json!(p));
            }
            let mut inner = Map::new();
            if saml {
                if let Some(xml) = metadata_xml(f) {
                    inner.insert("idp_metadata_xml".into(), json!(xml));
                }
                if let Some(url) = f.opt("idp_metadata_url") {
                    inner.insert("idp_metadata_url".into(), json!(url));
                }
                doc.insert("saml".into(), Value::Object(inner));
            } else {
                for k in ["issuer", "client_id", "client_secret", "groups_claim"] {
                    if let Some(v) = f.opt(k) {
                        inner.insert(k.into(), json!(v));
                    }
                }
                // Space- or comma-separated, as IdP consoles list them;
                // unset keeps the preset's (a generic provider asks for
                // `openid email profile`, which carries no groups).
                let scopes: Vec<&str> = f
                    .get("scopes")
                    .split([' ', ',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                if !scopes.is_empty() {
                    inner.insert("scopes".into(), json!(scopes));
                }
                doc.insert("oidc".into(), Value::Object(inner));
            }
        }
        Kind::Platform(k) => {
            doc.insert("platform".into(), json!(k.as_str()));
            match k {
                PlatformKind::Microsoft => {
                    let ids: Vec<&str> = f
                        .get("tenant_ids")
                        .split([',', ' ', '\n'])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect();
                    if !ids.is_empty() {
                        doc.insert("microsoft".into(), json!({"tenant_ids": ids}));
                    }
                }
                PlatformKind::Github => {
                    let mut rules = Map::new();
                    if let Some(org) = f.opt("github_org") {
                        rules.insert("org".into(), json!(org));
                    }
                    if f.get("teams_as_groups") == "yes" {
                        rules.insert("teams_as_groups".into(), json!(true));
                    }
                    if !rules.is_empty() {
                        doc.insert("github".into(), Value::Object(rules));
                    }
                }
                _ => {}
            }
        }
    }
    Value::Object(doc)
}

pub(super) async fn create_connection(
    Extension(a): Acc,
    Path(key): Path<String>,
    Extension(f): Form,
) -> Response {
    if let Some(r) = not_granted(&a, "sso") {
        return r;
    }
    let ctx = a.cur.ctx();
    let Some(idp) = find_idp(&ctx, &key) else {
        return unknown_idp();
    };
    let cid = f.opt("id").unwrap_or_default();
    if idp.kind == Kind::Saml && metadata_xml(&f).is_none() && f.opt("idp_metadata_url").is_none() {
        return new_connection_page(
            &a,
            &idp,
            &cid,
            StatusCode::BAD_REQUEST,
            submitted(&f),
            field_error(
                "idp_metadata_xml",
                "Paste or upload the identity provider's metadata, or give its URL.",
            ),
        );
    }
    let doc = connection_doc(&idp, &cid, &f);
    match ops::put_connection(a.cur.as_ref(), &a.actor, &a.tenant, None, &doc).await {
        Ok(view) => see_other(&a.page(&format!("sso/c/{}", view.connection.id))),
        Err(e) => {
            let (status, errs) = failure(e);
            new_connection_page(&a, &idp, &cid, status, submitted(&f), errs)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Saved {
    #[serde(default)]
    saved: Option<String>,
}

fn connection_page(
    a: &Access,
    cid: &str,
    status: StatusCode,
    notice: Option<String>,
    f: ConnFields,
    errs: Errs,
) -> Response {
    let ctx = a.cur.ctx();
    let Some(c) = tenant(&ctx, &a.tenant).and_then(|t| t.connections.iter().find(|c| c.id == cid))
    else {
        return message(
            StatusCode::NOT_FOUND,
            "Connection not found",
            "There is no such connection. It may have been reset.",
        );
    };
    let view = ops::get_connection(&ctx, &a.tenant, cid).ok();
    let idp = idps::of_connection(&ctx.config, c);
    let kind = match (c.platform, c.protocol) {
        (Some(_), _) => "platform",
        (None, Some(crate::config::Protocol::Saml)) => "saml",
        _ => "oidc",
    };
    let label = c
        .display_name
        .clone()
        .or_else(|| idp.as_ref().map(|i| i.name.to_owned()))
        .unwrap_or_else(|| c.id.clone());
    let mut f = f;
    if f.idp_metadata_url.is_empty() {
        f.idp_metadata_url = c
            .saml
            .as_ref()
            .and_then(|s| s.idp_metadata_url.clone())
            .unwrap_or_default();
    }
    render(
        status,
        ConnectionPage {
            chrome: chrome(a, &ctx, "sso", &label),
            cid: cid.to_owned(),
            kind: kind.to_owned(),
            steps: idp
                .as_ref()
                .map(|i| step_list(&ctx, i, cid, view.as_ref()))
                .unwrap_or_default(),
            attributes: idp
                .as_ref()
                .map(|i| attributes(i, c.saml.as_ref()))
                .unwrap_or_default(),
            label,
            test_href: a.page(&format!("sso/c/{cid}/test")),
            update_action: a.page(&format!("sso/c/{cid}/update")),
            back: a.page("sso"),
            f,
            notice,
            errs,
        },
    )
}

pub(super) async fn connection(
    Extension(a): Acc,
    Path(cid): Path<String>,
    Query(q): Query<Saved>,
) -> Response {
    if let Some(r) = not_granted(&a, "sso") {
        return r;
    }
    let notice = q.saved.map(|_| {
        "Saved. Run Test sign-in to check the connection with your identity provider.".to_owned()
    });
    connection_page(
        &a,
        &cid,
        StatusCode::OK,
        notice,
        ConnFields::default(),
        Errs::default(),
    )
}

/// Update certificate (SAML: new metadata, pasted, uploaded or by URL) or
/// client secret (OIDC).
pub(super) async fn update_connection(
    Extension(a): Acc,
    Path(cid): Path<String>,
    Extension(f): Form,
) -> Response {
    if let Some(r) = not_granted(&a, "sso") {
        return r;
    }
    let ctx = a.cur.ctx();
    let Some(c) = tenant(&ctx, &a.tenant).and_then(|t| t.connections.iter().find(|c| c.id == cid))
    else {
        return connection_page(
            &a,
            &cid,
            StatusCode::NOT_FOUND,
            None,
            ConnFields::default(),
            Errs::default(),
        );
    };
    let patch = if c.saml.is_some() {
        match (metadata_xml(&f), f.opt("idp_metadata_url")) {
            (Some(xml), _) => {
                json!({"saml": {"idp_metadata_xml": xml, "idp_metadata_url": null, "idp_metadata_file": null}})
            }
            (None, Some(url)) => {
                json!({"saml": {"idp_metadata_url": url, "idp_metadata_xml": null, "idp_metadata_file": null}})
            }
            (None, None) => {
                return connection_page(
                    &a,
                    &cid,
                    StatusCode::BAD_REQUEST,
                    None,
                    submitted(&f),
                    field_error(
                        "idp_metadata_xml",
                        "Paste or upload the new metadata, or give its URL.",
                    ),
                );
            }
        }
    } else if c.oidc.is_some() {
        match f.opt("client_secret") {
            Some(s) => json!({"oidc": {"client_secret": s}}),
            None => {
                return connection_page(
                    &a,
                    &cid,
                    StatusCode::BAD_REQUEST,
                    None,
                    submitted(&f),
                    field_error("client_secret", "Enter the new client secret."),
                );
            }
        }
    } else {
        return connection_page(
            &a,
            &cid,
            StatusCode::BAD_REQUEST,
            None,
            ConnFields::default(),
            field_error("", "This connection has nothing to update here."),
        );
    };
    match ops::put_connection(a.cur.as_ref(), &a.actor, &a.tenant, Some(&cid), &patch).await {
        Ok(_) => see_other(&format!("{}?saved=1", a.page(&format!("sso/c/{cid}")))),
        Err(e) => {
            let (status, errs) = failure(e);
            connection_page(&a, &cid, status, None, submitted(&f), errs)
        }
    }
}

/// Test sign-in: a plain link (GET) that mints a one-time test link and
/// moves on to it; the flow then goes to the IdP as a navigation, not as a
/// form's redirect (which `form-action 'self'` would stop in Chrome).
pub(super) async fn test_sign_in(Extension(a): Acc, Path(cid): Path<String>) -> Response {
    if let Some(r) = not_granted(&a, "sso") {
        return r;
    }
    match ops::test_link(&a.cur.ctx(), &a.tenant, &cid) {
        Ok(link) => see_other(&link.url),
        Err(e) => {
            let (status, errs) = failure(e);
            message(status, "Test sign-in unavailable", &errs.all().join(" "))
        }
    }
}

// ---------------------------------------------------------- provisioning

async fn provisioning_page(
    a: &Access,
    status: StatusCode,
    mode: Option<&str>,
    token: Option<String>,
    errs: Errs,
) -> Response {
    let ctx = a.cur.ctx();
    let Some(t) = tenant(&ctx, &a.tenant) else {
        return gone();
    };
    let scim_users = ctx
        .store
        .scim()
        .count(crate::store::ScimKind::User, &a.tenant)
        .await
        .unwrap_or(0);
    // SCIM is the mode exactly while the tenant has a SCIM token (saving
    // another mode deletes it), so the page shows what was chosen even
    // before the IdP has provisioned anyone.
    let scim_token = ctx
        .store
        .scim()
        .token_exists(&a.tenant)
        .await
        .unwrap_or(false);
    let current = if t.jit.enabled {
        "jit"
    } else if scim_token {
        "scim"
    } else {
        "manual"
    };
    render(
        status,
        ProvisioningPage {
            chrome: chrome(a, &ctx, "provisioning", "Provisioning"),
            action: a.page("provisioning"),
            token_action: a.page("provisioning/scim-token"),
            mode: mode.unwrap_or(current).to_owned(),
            default_role: t.jit.default_role.clone().unwrap_or_default(),
            scim_enabled: ctx.config.scim.enabled,
            scim_on: current == "scim",
            scim_base: ctx.config.public_urls().scim_base(&ctx.config.scim),
            scim_users,
            token,
            errs,
        },
    )
}

pub(super) async fn provisioning(Extension(a): Acc) -> Response {
    if let Some(r) = not_granted(&a, "scim") {
        return r;
    }
    provisioning_page(&a, StatusCode::OK, None, None, Errs::default()).await
}

pub(super) async fn set_provisioning(Extension(a): Acc, Extension(f): Form) -> Response {
    if let Some(r) = not_granted(&a, "scim") {
        return r;
    }
    let mode = f.get("mode");
    if !["manual", "jit", "scim"].contains(&mode) {
        return provisioning_page(
            &a,
            StatusCode::BAD_REQUEST,
            None,
            None,
            field_error("mode", "Choose Manual, Just-in-time or SCIM."),
        )
        .await;
    }
    if mode == "scim" && !a.cur.ctx().config.scim.enabled {
        return provisioning_page(
            &a,
            StatusCode::BAD_REQUEST,
            None,
            None,
            field_error("mode", "SCIM is not enabled on this service."),
        )
        .await;
    }
    let patch = json!({"jit": {"enabled": mode == "jit", "default_role": f.opt("default_role")}});
    if let Err(e) = ops::update_tenant(a.cur.as_ref(), &a.actor, &a.tenant, &patch).await {
        let (status, errs) = failure(e);
        return provisioning_page(&a, status, Some(mode), None, errs).await;
    }
    // SCIM on: a token to give the IdP, unless one is already live (a
    // repeated save must not break a working integration). SCIM off: the
    // token goes, so the IdP can no longer create or change accounts.
    let ctx = a.cur.ctx();
    let has_token = match ctx.store.scim().token_exists(&a.tenant).await {
        Ok(b) => b,
        Err(e) => {
            let (status, errs) = failure(OpError::from(e));
            return provisioning_page(&a, status, Some(mode), None, errs).await;
        }
    };
    let changed = match (mode == "scim", has_token) {
        (true, false) => ops::rotate_scim_token(a.cur.as_ref(), &a.actor, &a.tenant)
            .await
            .map(|creds| Some(creds.token)),
        (false, true) => ops::revoke_scim_token(a.cur.as_ref(), &a.actor, &a.tenant)
            .await
            .map(|_| None),
        _ => Ok(None),
    };
    match changed {
        Ok(Some(token)) => {
            provisioning_page(&a, StatusCode::OK, None, Some(token), Errs::default()).await
        }
        Ok(None) => see_other(&a.page("provisioning")),
        Err(e) => {
            let (status, errs) = failure(e);
            provisioning_page(&a, status, Some(mode), None, errs).await
        }
    }
}

pub(super) async fn rotate_scim_token(Extension(a): Acc) -> Response {
    if let Some(r) = not_granted(&a, "scim") {
        return r;
    }
    if !a.cur.ctx().config.scim.enabled {
        return provisioning_page(
            &a,
            StatusCode::BAD_REQUEST,
            None,
            None,
            field_error("", "SCIM is not enabled on this service."),
        )
        .await;
    }
    // Rotation only: a token is made by choosing SCIM, so the mode shown
    // is always the mode in force.
    match a.cur.ctx().store.scim().token_exists(&a.tenant).await {
        Ok(true) => {}
        Ok(false) => {
            return provisioning_page(
                &a,
                StatusCode::BAD_REQUEST,
                None,
                None,
                field_error("mode", "Choose SCIM and save first."),
            )
            .await;
        }
        Err(e) => {
            let (status, errs) = failure(OpError::from(e));
            return provisioning_page(&a, status, None, None, errs).await;
        }
    }
    match ops::rotate_scim_token(a.cur.as_ref(), &a.actor, &a.tenant).await {
        Ok(creds) => {
            provisioning_page(&a, StatusCode::OK, None, Some(creds.token), Errs::default()).await
        }
        Err(e) => {
            let (status, errs) = failure(e);
            provisioning_page(&a, status, None, None, errs).await
        }
    }
}

// --------------------------------------------------------------- enforce

async fn enforce_page(a: &Access, status: StatusCode, errs: Errs) -> Response {
    let ctx = a.cur.ctx();
    let Some(t) = tenant(&ctx, &a.tenant) else {
        return gone();
    };
    let domains = ops::list_domains(&ctx, &a.tenant).await.unwrap_or_default();
    let (verified, unverified): (Vec<_>, Vec<_>) =
        domains.into_iter().partition(|d| d.status == "verified");
    render(
        status,
        EnforcePage {
            chrome: chrome(a, &ctx, "enforce", "Enforce SSO"),
            action: a.page("enforce"),
            enforce: t.enforce_sso,
            verified: verified.into_iter().map(|d| d.domain).collect(),
            unverified: unverified.into_iter().map(|d| d.domain).collect(),
            connections: t.connections.len(),
            errs,
        },
    )
}

pub(super) async fn enforce(Extension(a): Acc) -> Response {
    if let Some(r) = not_granted(&a, "enforce") {
        return r;
    }
    enforce_page(&a, StatusCode::OK, Errs::default()).await
}

pub(super) async fn set_enforce(Extension(a): Acc, Extension(f): Form) -> Response {
    if let Some(r) = not_granted(&a, "enforce") {
        return r;
    }
    let on = match f.get("enforce") {
        "on" => true,
        "off" => false,
        _ => {
            return enforce_page(
                &a,
                StatusCode::BAD_REQUEST,
                field_error("enforce", "Turn enforcement on or off."),
            )
            .await;
        }
    };
    if on && f.get("confirm") != "yes" {
        return enforce_page(
            &a,
            StatusCode::BAD_REQUEST,
            field_error("confirm", "Tick the box to confirm."),
        )
        .await;
    }
    match ops::update_tenant(
        a.cur.as_ref(),
        &a.actor,
        &a.tenant,
        &json!({"enforce_sso": on}),
    )
    .await
    {
        Ok(_) => see_other(&a.page("enforce")),
        Err(e) => {
            let (status, errs) = failure(e);
            enforce_page(&a, status, errs).await
        }
    }
}

// ----------------------------------------------------------------- roles

/// Rows to fill in below the mapping.
const BLANK_ROWS: usize = 3;

fn roles_page(a: &Access, status: StatusCode, rows: Vec<(String, String)>, errs: Errs) -> Response {
    let ctx = a.cur.ctx();
    let mut rows = rows;
    rows.extend((0..BLANK_ROWS).map(|_| (String::new(), String::new())));
    render(
        status,
        RolesPage {
            chrome: chrome(a, &ctx, "roles", "Group → role mapping"),
            action: a.page("roles"),
            rows,
            errs,
        },
    )
}

pub(super) async fn roles(Extension(a): Acc) -> Response {
    if let Some(r) = not_granted(&a, "roles") {
        return r;
    }
    let ctx = a.cur.ctx();
    let Some(t) = tenant(&ctx, &a.tenant) else {
        return gone();
    };
    let rows = t
        .group_roles
        .iter()
        .map(|(g, r)| (g.clone(), r.join(", ")))
        .collect();
    roles_page(&a, StatusCode::OK, rows, Errs::default())
}

pub(super) async fn set_roles(Extension(a): Acc, Extension(f): Form) -> Response {
    if let Some(r) = not_granted(&a, "roles") {
        return r;
    }
    let (groups, roles) = (f.all("group"), f.all("roles"));
    let rows: Vec<(String, String)> = groups
        .iter()
        .zip(roles.iter())
        .map(|(g, r)| (g.trim().to_owned(), r.trim().to_owned()))
        .filter(|(g, r)| !(g.is_empty() && r.is_empty()))
        .collect();
    if groups.len() != roles.len() {
        return roles_page(
            &a,
            StatusCode::BAD_REQUEST,
            rows,
            field_error("group_roles", "Each group needs its roles field."),
        );
    }
    let mut mapping: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, r) in &rows {
        let list: Vec<String> = r
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if g.is_empty() || list.is_empty() {
            continue;
        }
        if mapping.insert(g.clone(), list).is_some() {
            return roles_page(
                &a,
                StatusCode::BAD_REQUEST,
                rows.clone(),
                field_error("group_roles", &format!("Group “{g}” is listed twice.")),
            );
        }
    }
    let ctx = a.cur.ctx();
    let Some(t) = tenant(&ctx, &a.tenant) else {
        return gone();
    };
    // A merge patch: groups no longer listed are removed with `null`.
    let mut patch = Map::new();
    for old in t.group_roles.keys() {
        if !mapping.contains_key(old) {
            patch.insert(old.clone(), Value::Null);
        }
    }
    for (g, r) in &mapping {
        patch.insert(g.clone(), json!(r));
    }
    match ops::update_tenant(
        a.cur.as_ref(),
        &a.actor,
        &a.tenant,
        &json!({"group_roles": patch}),
    )
    .await
    {
        Ok(_) => see_other(&a.page("roles")),
        Err(e) => {
            let (status, errs) = failure(e);
            roles_page(&a, status, rows, errs)
        }
    }
}
