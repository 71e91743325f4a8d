//! Routers the proxy serves in-process (no second server, no loopback
//! hop): the internal endpoints and the SCIM API, built by `app` for each
//! generation.
//!
//! Rule: a mounted router answers everything under its path itself,
//! including a body that is too large (its own body-limit layer, in its own
//! error format); the proxy only bounds what it reads for it and relays the
//! answer.

use axum::Router;
use axum::body::Body;
use http::StatusCode;

/// One router and the bounds the proxy applies around it.
pub struct Mount {
    pub router: Router,
    /// The most body bytes read for the router. A longer body is handed
    /// over as read (just over this), for the router's limit to refuse, so
    /// this must be its limit too.
    pub max_body: usize,
    /// The largest answer relayed back.
    pub max_response: usize,
}

/// The SCIM API as mounted: bearer-token clients that expect SCIM error
/// bodies, also from the proxy (its 429).
pub struct ScimMount {
    /// The base path, without a trailing slash.
    pub path: String,
    pub mount: Mount,
    /// The API's error response for a status and detail.
    pub error: fn(StatusCode, &str) -> http::Response<Body>,
}
