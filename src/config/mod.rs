//! Operator configuration: one TOML file, every error reported at once with
//! file, line and key, secrets interpolated from the environment.

mod error;
mod forward_auth;
mod interpolate;
mod limits;
mod load;
mod schema;
mod upstreams;
mod urls;
mod validate;

#[cfg(test)]
mod tests;

/// The rule lives in [`crate::names`]; this path remains for callers that
/// have not moved to it yet.
pub use error::{ConfigError, ConfigErrors};
pub use forward_auth::{
    Convention, ForwardAuthConfig, ForwardAuthEndpoint, INTERNAL_SEGMENTS, ReturnTargets,
    parse_proxy,
};
pub use interpolate::{InterpolateError, interpolate};
pub use limits::{LimitsConfig, Rate, RateLimitsConfig};
pub use load::{from_str, load};
pub use schema::*;
pub use upstreams::DEFAULT_UPSTREAM;
pub use urls::PublicUrls;
pub use validate::{
    MIN_SESSION_KEY_BYTES, OIDC_SIGNING_ALGS, PRESETS, is_trustworthy_url, parse_nameserver,
    parse_sha256_fingerprint,
};
