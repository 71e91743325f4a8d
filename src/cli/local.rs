//! The admin operations (`admin::ops`, `admin::operator`,
//! `admin::service_accounts`) as a CLI run executes them: the same code as
//! the admin API's, with the actor `cli` (the local user), so every change
//! is audited in its own transaction and announced to running servers
//! through the store (their caches and generations follow its events).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::CliError;
use super::source::with_store;
use crate::admin::{AdminCtx, Current, OpError};
use crate::config::{Config, merge_store_tenants, no_probe};
use crate::metrics::Metrics;
use crate::session::Sessions;
use crate::store::Store;

/// This CLI run as the operations' [`Current`]: nothing to rebuild here,
/// running servers learn of the change through the store.
pub(super) struct Local(pub(super) AdminCtx);

#[async_trait]
impl Current for Local {
    fn ctx(&self) -> AdminCtx {
        self.0.clone()
    }

    async fn rebuild(&self) {}
}

/// What the operations need, for one CLI run: the file's tenants merged
/// with the store's (a change may concern either), the store, and a
/// session cache of its own (nothing to invalidate here; running servers
/// learn through the store's events).
pub(super) async fn admin_ctx(cfg: &Config, store: &Store) -> Result<AdminCtx, CliError> {
    let docs = store.tenants().documents().await?;
    let (merged, invalid) = merge_store_tenants(cfg, &docs, &no_probe);
    let metrics = Arc::new(Metrics::new()?);
    Ok(AdminCtx {
        config: Arc::new(merged),
        file_config: Arc::new(cfg.clone()),
        config_file: String::new(),
        store: store.clone(),
        sessions: Sessions::new(store.clone(), 1, Duration::from_secs(1), metrics.clone()),
        metrics,
        invalid: Arc::new(invalid),
    })
}

/// Opens the store, runs `f` with this run as [`Current`], closes the store.
pub(super) async fn with_ops<T, F, Fut>(cfg: &Config, f: F) -> Result<T, CliError>
where
    F: FnOnce(Local) -> Fut,
    Fut: Future<Output = Result<T, OpError>>,
{
    with_store(cfg, |store| async move {
        let local = Local(admin_ctx(cfg, &store).await?);
        f(local).await.map_err(op_error)
    })
    .await
}

/// An operation's refusal as the CLI reports it (usage: 64, else 1).
pub(super) fn op_error(e: OpError) -> CliError {
    match e {
        OpError::Invalid(errors) => CliError::Usage(
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        OpError::NotFound(m) => CliError::Usage(m),
        OpError::Conflict(m) | OpError::Internal(m) => CliError::Failed(m),
    }
}
