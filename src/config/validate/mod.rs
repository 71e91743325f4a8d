//! Semantic checks that serde can't express, one file per section. Each
//! names the key so the operator gets `file:line: key: message`.

mod connections;
mod headers;
mod listen;
mod oidc;
mod platform;
mod routes;
mod saml;
mod scim;
mod session;
mod store;
mod tenants;
mod upstreams;
mod webhook;

pub use connections::PRESETS;
pub use oidc::OIDC_SIGNING_ALGS;
pub use saml::parse_sha256_fingerprint;
pub use session::MIN_SESSION_KEY_BYTES;
pub use tenants::parse_nameserver;

use std::collections::HashSet;

use super::load::Collector;
use super::schema::Config;
use crate::names::is_slug;

/// Every check, in the order findings on one line are listed (they are
/// sorted by line afterwards, stably).
const CHECKS: &[fn(&Config, &mut Collector<'_>)] = &[
    listen::server,
    listen::listeners,
    upstreams::upstreams,
    routes::routes,
    super::step_up::routes,
    upstreams::routes,
    session::session,
    session::headers,
    headers::extra,
    store::store,
    log,
    tenants::dns,
    tenant_checks,
    routes::login,
    webhook::webhook,
    scim::scim,
    super::limits::validate,
    super::forward_auth::validate,
    super::egress::validate,
];

/// Every check that reads `[[tenants]]`: for the file (through
/// [`CHECKS`]) and for a tenant that comes from the store
/// (`config::json`) alike, so an admin API document is held to exactly
/// what `check` holds the file to, with the same messages. A check that
/// looks at tenants belongs here, never in [`CHECKS`] directly: a tenant
/// the store accepted but the file would refuse (say a `platform`
/// connection without its provider) fails to build on every replica.
const TENANT_CHECKS: &[fn(&Config, &mut Collector<'_>)] =
    &[tenants::tenants, platform::platform, tenants::dev_idp];

/// Runs [`TENANT_CHECKS`].
pub(crate) fn tenant_checks(cfg: &Config, c: &mut Collector<'_>) {
    for check in TENANT_CHECKS {
        check(cfg, c);
    }
}

/// The rules only a tenant from the admin API is held to, for tenant `i`.
pub(crate) fn store_source(cfg: &Config, i: usize, c: &mut Collector<'_>) {
    tenants::store_source(cfg, i, c);
}

pub(crate) fn validate(cfg: &Config, c: &mut Collector<'_>) {
    for check in CHECKS {
        check(cfg, c);
    }
}

fn log(cfg: &Config, c: &mut Collector<'_>) {
    if tracing_subscriber::EnvFilter::try_new(&cfg.log.level).is_err() {
        c.push(
            "log.level",
            "not a valid log filter (try `info` or `portcullis=debug,info`)",
        );
    }
}

/// `{section}.{field}: must be greater than 0` for each field that is 0.
fn nonzero<const N: usize>(section: &str, fields: [(&str, u64); N], c: &mut Collector<'_>) {
    for (k, v) in fields {
        if v == 0 {
            c.push(format!("{section}.{k}"), "must be greater than 0");
        }
    }
}

/// A tenant or connection id at `key`: a slug not in `seen` yet;
/// `duplicate` says what a repeat breaks.
fn unique_id<'a>(
    id: &'a str,
    key: String,
    seen: &mut HashSet<&'a str>,
    duplicate: &str,
    c: &mut Collector<'_>,
) {
    if !is_slug(id) {
        c.push(key, "use 1-64 characters from a-z, 0-9, `-` and `_`");
    } else if !seen.insert(id) {
        c.push(key, format!("duplicate {duplicate}"));
    }
}
