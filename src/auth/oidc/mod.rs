//! OpenID Connect relying party: authorization code with PKCE (S256),
//! `state` bound to the browser's flow cookie and burnt once, nonce, ID
//! token verification with openidconnect plus the checks it leaves to the
//! caller, userinfo fallback, provider presets as data, RP-initiated and
//! back-channel logout. Everything a provider sends is fetched with a
//! client that follows no redirects, times out and caps bodies.

mod claims;
mod client_auth;
mod connection;
pub(crate) mod http;
mod issuer;
mod jws;
mod logout;
mod machine;
mod presets;
mod provider;
mod verify;

// For the pre-configured providers (`auth::platform`).
pub(crate) use claims::as_bool;
pub(crate) use client_auth::ClientKey;
pub(crate) use connection::{ClaimRules, PlatformOidc, SecretSource};
pub(crate) use http::ProviderHttp;
pub(crate) use issuer::{IssuerRule, TENANT_PLACEHOLDER};
pub(crate) use provider::ProviderCache;

pub use claims::{ClaimMap, Mapped, to_login};
pub use connection::{OidcConnection, OidcFactory, STATE_KIND};
pub use logout::{EVENT as BACKCHANNEL_EVENT, JTI_KIND, MAX_LOGOUT_TOKEN_BYTES};
pub use machine::MAX_ACCESS_TOKEN_BYTES;
pub(crate) use machine::unverified_issuer_and_audiences;
pub use presets::{EmailVerified, Preset, preset};

/// Whether `pem` is a usable `private_key_jwt` key; the message says why not.
pub(crate) fn check_private_key(pem: &str) -> Result<(), String> {
    client_auth::ClientKey::from_pem(pem, None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
