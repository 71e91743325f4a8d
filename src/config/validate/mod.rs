//! Semantic checks that serde can't express, one file per section. Each
//! names the key so the operator gets `file:line: key: message`.

mod connections;
mod listen;
mod oidc;
mod routes;
mod saml;
mod scim;
mod session;
mod store;
mod tenants;
mod webhook;

pub use connections::{PRESETS, is_trustworthy_url};
pub use oidc::OIDC_SIGNING_ALGS;
pub use saml::parse_sha256_fingerprint;
pub use session::MIN_SESSION_KEY_BYTES;
pub use tenants::parse_nameserver;

use super::load::Collector;
use super::schema::Config;

/// Every check, in an order that keeps findings on the same line in a
/// stable order (they are sorted by line afterwards).
pub(crate) fn validate(cfg: &Config, c: &mut Collector<'_>) {
    listen::server(cfg, c);
    listen::listeners(cfg, c);
    listen::upstream(cfg, c);
    routes::routes(cfg, c);
    session::session(cfg, c);
    session::headers(cfg, c);
    store::store(cfg, c);
    if tracing_subscriber::EnvFilter::try_new(&cfg.log.level).is_err() {
        c.push(
            "log.level",
            "not a valid log filter (try `info` or `portcullis=debug,info`)",
        );
    }
    tenants::dns(cfg, c);
    tenants::tenants(cfg, c);
    routes::login(cfg, c);
    tenants::dev_idp(cfg, c);
    webhook::webhook(cfg, c);
    scim::scim(cfg, c);
    super::limits::validate(cfg, c);
}
