//! `[scim]`: the provisioning server's path and limits.

use crate::config::load::Collector;
use crate::config::schema::Config;

/// `[scim]`: a path of its own, sane limits.
pub(super) fn scim(cfg: &Config, c: &mut Collector<'_>) {
    let s = &cfg.scim;
    let p = s.base_path();
    if !p.starts_with('/') || p.len() < 2 || p.contains(['?', '#', '{', '}', '*', ' ']) {
        c.push("scim.path", "must be an absolute path such as `/scim/v2`");
    } else if format!("{p}/").starts_with(&cfg.server.internal_prefix)
        || cfg.server.internal_prefix.starts_with(&format!("{p}/"))
    {
        c.push("scim.path", "must not overlap server.internal_prefix");
    }
    if s.max_payload_bytes < 1024 {
        c.push("scim.max_payload_bytes", "must be at least 1024");
    }
    if s.max_operations == 0 {
        c.push("scim.max_operations", "must be greater than 0");
    }
    if s.max_results == 0 {
        c.push("scim.max_results", "must be greater than 0");
    }
}
