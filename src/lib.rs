//! Portcullis: a reverse-proxy authentication sidecar. `docs/architecture.md`
//! has the module map; dependencies point down only (`tests/it/ops/architecture.rs`
//! enforces it).
//!
//! The public modules are the surface the binary, the integration tests and
//! the benches use (configuration, store, protocols, CLI); the rest is
//! `pub(crate)`, and inside every module items are `pub(super)` or
//! `pub(crate)` unless that surface needs them (`unreachable_pub` is on).

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domains;
pub(crate) mod endpoints;
pub mod events;
pub(crate) mod generation;
pub mod identity;
pub(crate) mod logging;
pub mod metrics;
pub(crate) mod names;
pub mod proxy;
pub(crate) mod redirect;
pub mod scim;
pub mod secret;
pub mod session;
pub mod store;
pub mod webhook;

#[cfg(test)]
mod tests {
    /// The leaf rule, checked: a leaf module's code (above its tests) names
    /// no other module of this crate, so anything may import it.
    #[test]
    fn leaf_modules_import_nothing_of_this_crate() {
        for (file, src) in [
            ("events.rs", include_str!("events.rs")),
            ("names.rs", include_str!("names.rs")),
        ] {
            let code = src.split("#[cfg(test)]").next().unwrap_or_default();
            for word in ["crate::", "super::"] {
                assert!(!code.contains(word), "{file} imports `{word}`");
            }
        }
    }
}
