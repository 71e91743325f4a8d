//! The SCIM service of one configuration generation, and its façade: the
//! HTTP layer, Bulk and the wiring hold a [`Scim`] and call its methods,
//! which live by job — reads in `query`, writes in `write` — while what
//! both need (authentication, "not found") stays here.
//!
//! The rule: callers name `scim::Scim` and `scim::service::*`, never the
//! files behind them. The reason: the reads and the writes can be reshaped
//! (or given their own store views) without touching the proxy, the CLI,
//! the benches or the tests that build a service.

use std::sync::Arc;

use super::error::ScimError;
use super::schema::{Kind, Schemas};
use super::token;
use super::wire::clip;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::session::Sessions;
use crate::store::Store;

pub use super::query::ListQuery;

/// The SCIM service of one configuration generation.
pub struct Scim {
    pub store: Store,
    pub sessions: Sessions,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// `{public_url}{path}`, no trailing slash: the base of `location`s.
    pub base: String,
    /// Most resources a filtered or sorted query may match before it is
    /// refused with `tooMany` (they are held in memory to sort and page).
    pub max_matches: usize,
    /// The schemas served: built-in plus `[[scim.extensions]]`
    /// (`Schemas::new(&config.scim.extensions)`).
    pub schemas: Schemas,
}

/// The default of [`Scim::max_matches`].
pub const MAX_MATCHES: usize = 250_000;

impl Scim {
    /// The tenant a bearer token belongs to, or 401. The tenant must still
    /// be configured.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<String, ScimError> {
        let Some((tok, key_id)) = authorization.and_then(token::parse) else {
            return Err(ScimError::unauthorized());
        };
        let row = self.store.scim().token_lookup(key_id).await?;
        // Hash and compare even when the key id is unknown, so timing
        // does not tell a valid key id from an invalid one.
        let (tenant, hash) = row.unwrap_or_else(|| (String::new(), "0".repeat(64)));
        if !token::matches(tok, &hash) || tenant.is_empty() {
            return Err(ScimError::unauthorized());
        }
        if !self.config.tenants.iter().any(|t| t.id == tenant) {
            tracing::warn!(tenant = %tenant, "SCIM token of a tenant that is no longer configured");
            return Err(ScimError::unauthorized());
        }
        Ok(tenant)
    }
}

/// The 404 of a resource id, reads and writes alike: the same words
/// whether the id never existed or belongs to another tenant, so ids don't
/// leak across tenants.
pub(super) fn not_found(kind: Kind, id: &str) -> ScimError {
    ScimError::not_found(format!("{} {} not found", kind.name(), clip(id)))
}
