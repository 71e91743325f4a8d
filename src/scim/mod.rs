//! SCIM 2.0 server (RFC 7643/7644) for what Entra ID, Okta and OneLogin
//! really send. Served in-process at `[scim] path` (default `/scim/v2`),
//! authenticated by a per-tenant bearer token, never by a browser session.

pub mod bulk;
mod directory;
pub mod discovery;
pub mod emails;
pub mod error;
pub mod events;
pub mod filter;
pub mod http;
pub mod patch;
mod query;
pub mod resource;
pub mod schema;
pub mod service;
pub mod token;
mod wire;
mod write;

pub use service::Scim;
