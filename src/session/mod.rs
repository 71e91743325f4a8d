//! Server-side sessions. The browser holds only an encrypted, authenticated
//! session id and its absolute expiry; everything else (the principal, idle
//! time) lives in the store behind a read-through cache, so revocation is a
//! delete plus a cache invalidation and large group sets never bloat cookies.

mod cache;
mod codec;
mod machine;
mod service;

/// The session vocabulary callers need (which sessions to end, what the IdP
/// calls one) is the store's, named here so that modules above `session`
/// (the endpoints) work with sessions without reaching into the store.
pub use crate::store::{IdpBinding, SessionSelector};
pub use codec::{
    CookieCodec, CookieError, CookieMemo, HOST_PREFIX, Opened, SessionToken, flow_cookie_prefix,
    host_prefixed, session_cookie_name,
};
pub use machine::{
    ACCOUNT_PREFIX, NewServiceToken, NoRandomness, ServiceAccounts, ServiceCaller, TOKEN_PREFIX,
    TokenRejection, generate_token, is_service_token, new_account_id,
};
pub use service::{ActiveSession, Directory, Lookup, SessionError, Sessions};
