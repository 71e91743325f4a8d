//! One configuration generation: everything built from a `Config` that the
//! proxy and the internal endpoints both read, built once by `app` and
//! handed to both.
//!
//! Rule: a request sees one generation from start to end, and there is one
//! of each part per generation. It is its own module, not part of `app`,
//! `proxy` or `endpoints`, because both `proxy` and `endpoints` need it and
//! neither may import the other or `app`; it imports only modules below
//! them (`config`, `auth`, `session`, `identity`, `metrics`).

use std::sync::Arc;

use crate::auth::AuthContext;
use crate::config::{Config, ReturnTargets};
use crate::identity::{AssertionSigner, HeaderPlan};
use crate::metrics::Metrics;
use crate::session::{CookieCodec, Sessions};

/// A configuration generation. Swapped whole on reload (inside the proxy's
/// state); the parts that outlive a generation (`sessions`' cache and
/// store, `metrics`) are shared by reference.
pub struct Generation {
    pub config: Arc<Config>,
    pub codec: Arc<CookieCodec>,
    pub sessions: Sessions,
    pub signer: Arc<AssertionSigner>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<AuthContext>,
    /// The identity headers, compiled once.
    pub plan: HeaderPlan,
    /// `{internal_prefix}login`, precomputed.
    pub login_path: String,
    /// Where a login or logout may send the browser back to.
    pub returns: ReturnTargets,
}
