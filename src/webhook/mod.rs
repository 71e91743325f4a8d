//! Delivery of user and group events to the upstream app.
//!
//! Changes write their event into the store's outbox in the same
//! transaction (`tx.outbox().emit`); this module only sends what is there: in order per tenant, signed per Standard Webhooks, retried with
//! exponential backoff and full jitter, dead-lettered after a maximum age
//! so one poisoned event cannot stall a tenant forever. One deliverer per
//! tenant at a time across replicas (a lease in the store).
//!
//! Imports `store`, `metrics` and `config` (for `[webhook]`).

mod deliver;
mod sign;

pub use deliver::{Deliverer, spawn};
pub use sign::Signer;

/// Why the deliverer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook.secrets[{index}]: {message}")]
    Secret { index: usize, message: String },
    #[error("webhook.ca_file: {0}")]
    CaFile(String),
    #[error("webhook HTTP client: {0}")]
    Client(String),
}
