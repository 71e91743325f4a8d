//! Operator configuration: one TOML file, every error reported at once with
//! file, line and key, secrets interpolated from the environment.

mod egress;
mod error;
mod forward_auth;
mod interpolate;
mod json;
mod limits;
mod load;
mod platform;
mod schema;
mod scim_extensions;
mod step_up;
mod upstreams;
mod urls;
mod validate;

#[cfg(test)]
mod tests;

/// The rule lives in [`crate::names`]; this path remains for callers that
/// have not moved to it yet.
pub use egress::{EgressConfig, EgressRules, REFUSED_PREFIX, UrlRefusal};
pub use error::{ConfigError, ConfigErrors};
pub use forward_auth::{
    Convention, ForwardAuthConfig, ForwardAuthEndpoint, INTERNAL_SEGMENTS, ReturnTargets,
    parse_proxy,
};
pub use interpolate::{InterpolateError, interpolate};
pub use json::{
    FieldError, Probe, connection_from_json, merge_store_tenants, no_probe, tenant_from_json,
    to_document,
};
pub use limits::{LimitsConfig, Rate, RateLimitsConfig};
pub use load::{from_str, from_str_probed, load, load_probed};
pub use schema::*;
pub use scim_extensions::{
    ScimAttributeConfig, ScimAttributeType, ScimExtensionConfig, ScimResource,
};
pub use step_up::{
    Duration as StepUpDuration, MAX_STEP_UP_AGE_SECONDS, acr_from_idp, acr_to_idp, is_acr,
};
pub use upstreams::DEFAULT_UPSTREAM;
pub use urls::PublicUrls;
pub use validate::{
    MIN_SESSION_KEY_BYTES, OIDC_SIGNING_ALGS, PRESETS, parse_nameserver, parse_sha256_fingerprint,
};

pub use platform::*;
