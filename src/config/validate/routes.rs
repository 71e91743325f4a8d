//! `[[routes]]` and `[login]`: which paths need a login, and where the
//! app takes passwords.

use std::collections::HashSet;

use crate::config::load::Collector;
use crate::config::schema::{Config, Policy, RouteConfig};

pub(super) fn routes(cfg: &Config, c: &mut Collector<'_>) {
    let mut seen = HashSet::new();
    let internal = cfg.public_urls();
    for (i, r) in cfg.routes.iter().enumerate() {
        if !r.prefix.starts_with('/') || r.prefix.contains(['?', '#']) {
            c.push(
                format!("routes[{i}].prefix"),
                "must be a path starting with `/`",
            );
        }
        if r.prefix.starts_with(internal.mount()) {
            c.push(
                format!("routes[{i}].prefix"),
                "overlaps the reserved internal prefix (server.internal_prefix)",
            );
        }
        if let Some(h) = &r.host
            && (h.is_empty() || h.contains(['/', ' ', ':']))
        {
            c.push(
                format!("routes[{i}].host"),
                "must be a bare host name, e.g. `app.example.com`",
            );
        }
        let key = (
            r.host.as_ref().map(|h| h.to_ascii_lowercase()),
            r.prefix.to_lowercase(),
        );
        if !seen.insert(key) {
            c.push(
                format!("routes[{i}].prefix"),
                "the same host and prefix appear in an earlier route",
            );
        }
        if r.policy != Policy::Required
            && (!r.allowed_groups.is_empty()
                || !r.allowed_roles.is_empty()
                || !r.allowed_tenants.is_empty())
        {
            c.push(
                format!("routes[{i}].policy"),
                "allowed_groups / allowed_roles / allowed_tenants need `policy = \"required\"`",
            );
        }
        route_tenants(cfg, i, r, c);
    }
}

/// Tenant scoping of a route's conditions. A group or role name without a
/// tenant matches that name from *any* tenant's IdP, so with more than one
/// tenant, tenant B's administrator could open a route meant for tenant A's
/// `admins`: worth a warning that names the fix.
fn route_tenants(cfg: &Config, i: usize, r: &RouteConfig, c: &mut Collector<'_>) {
    let known = |t: &str| cfg.tenants.iter().any(|x| x.id == t);
    for (j, t) in r.allowed_tenants.iter().enumerate() {
        if !known(t) {
            c.push(
                format!("routes[{i}].allowed_tenants[{j}]"),
                format!("no tenant `{t}` is configured"),
            );
        }
    }
    if cfg.tenants.len() < 2 {
        return;
    }
    for (list, names) in [
        ("allowed_groups", &r.allowed_groups),
        ("allowed_roles", &r.allowed_roles),
    ] {
        for (j, name) in names.iter().enumerate() {
            let qualified = name.split_once(':').is_some_and(|(t, _)| known(t));
            if !qualified && r.allowed_tenants.len() != 1 {
                c.warn(
                    format!("routes[{i}].{list}[{j}]"),
                    format!(
                        "route `{}`: `{name}` is not tied to a tenant, so any tenant's IdP \
                         can assert it; write `<tenant>:{name}` or set allowed_tenants",
                        r.prefix
                    ),
                );
            }
        }
    }
}

pub(super) fn login(cfg: &Config, c: &mut Collector<'_>) {
    if let Some(url) = &cfg.login.app_login_url {
        let ok = (url.starts_with('/') && !url.starts_with("//"))
            || url.starts_with("https://")
            || url.starts_with("http://");
        if !ok {
            c.push(
                "login.app_login_url",
                "must be a path like `/login` or an http(s) URL",
            );
        }
    }
    for (i, e) in cfg.login.password_endpoints.iter().enumerate() {
        if !e.path.starts_with('/') {
            c.push(
                format!("login.password_endpoints[{i}].path"),
                "must be a path starting with `/`",
            );
        }
        if http::Method::from_bytes(e.method.as_bytes()).is_err()
            || e.method != e.method.to_ascii_uppercase()
        {
            c.push(
                format!("login.password_endpoints[{i}].method"),
                "must be an upper-case HTTP method such as `POST`",
            );
        }
        if e.email_field.is_some() && e.email_json_pointer.is_some() {
            c.push(
                format!("login.password_endpoints[{i}].email_json_pointer"),
                "set either email_field or email_json_pointer, not both",
            );
        }
        if let Some(p) = &e.email_json_pointer
            && !p.starts_with('/')
        {
            c.push(
                format!("login.password_endpoints[{i}].email_json_pointer"),
                "a JSON pointer starts with `/`, e.g. `/user/email`",
            );
        }
    }
}
