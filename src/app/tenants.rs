//! One configuration from two sources: the file's tenants, then the
//! tenants kept in the store (made through the admin API), validated by the
//! same functions. A change on any replica reaches every replica without a
//! reload: the writer's transaction announces it (PostgreSQL NOTIFY, the
//! SQLite `store_events` table), [`watch`] rebuilds the generation, and a
//! bounded poll of the configuration version catches a lost notification.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::broadcast::error::RecvError;

use super::{AppError, Shared, build_state, use_directory};
use crate::auth::Unbuilt;
use crate::config::{Config, FieldError};
use crate::metrics::Metrics;
use crate::store::{Store, StoreEvent};

/// How often a replica compares the store's configuration version with
/// its own, whatever it heard: the bound on a lost notification.
const VERSION_POLL: Duration = Duration::from_secs(5);

/// Notifications arriving together (the writer's own local event, then
/// its NOTIFY echo) make one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The file's configuration and the store version the running generation
/// was built from.
pub(super) struct TenantSync {
    /// Serialises rebuilds and reloads: each reads the other's result.
    pub(super) rebuild_lock: tokio::sync::Mutex<()>,
    file: ArcSwap<Config>,
    applied_version: AtomicI64,
    invalid: ArcSwap<Vec<(String, Vec<FieldError>)>>,
}

impl TenantSync {
    /// Merges the store's tenants into the first configuration.
    pub(super) async fn start(
        file: Config,
        store: &Store,
        metrics: &Metrics,
    ) -> Result<(Self, Config), AppError> {
        let sync = Self {
            rebuild_lock: tokio::sync::Mutex::new(()),
            file: ArcSwap::from_pointee(file.clone()),
            applied_version: AtomicI64::new(-1),
            invalid: ArcSwap::from_pointee(Vec::new()),
        };
        let (merged, version) = sync.merge(file, store, metrics).await?;
        sync.applied_version.store(version, Ordering::SeqCst);
        Ok((sync, merged))
    }

    /// `file` with the store's tenants; the version read *before* them, so
    /// a change committed meanwhile is seen again by the next poll.
    pub(super) async fn merge(
        &self,
        file: Config,
        store: &Store,
        metrics: &Metrics,
    ) -> Result<(Config, i64), AppError> {
        let version = store.tenants().version().await?;
        let docs = store.tenants().documents().await?;
        let (merged, invalid) =
            crate::config::merge_store_tenants(&file, &docs, &crate::auth::check::check_tenant);
        for (id, errors) in &invalid {
            let summary: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            tracing::error!(
                tenant = %id,
                errors = %summary.join("; "),
                "a tenant kept in the store no longer validates and is not served; fix or delete it through the admin API"
            );
        }
        metrics
            .admin
            .store_tenants_invalid
            .set(i64::try_from(invalid.len()).unwrap_or(i64::MAX));
        self.invalid.store(Arc::new(invalid));
        Ok((merged, version))
    }

    /// Store tenants the new generation left out because a connection
    /// could not be built (say one stored before its checks existed): each
    /// is logged, listed as invalid beside those that no longer validate
    /// and counted in `portcullis_store_tenants_invalid`. The API shows a
    /// generic finding; the precise error is in the log only.
    pub(super) fn unbuilt(&self, unbuilt: &[Unbuilt], metrics: &Metrics) {
        if unbuilt.is_empty() {
            return;
        }
        let mut invalid = (*self.invalid.load_full()).clone();
        for u in unbuilt {
            tracing::error!(
                tenant = %u.tenant,
                connection = %u.connection,
                reason = u.error.reason,
                error = %u.error.detail,
                "a tenant kept in the store could not be built and is not served (every other tenant is); fix or delete it through the admin API"
            );
            invalid.push((
                u.tenant.clone(),
                vec![FieldError::new(
                    "connections",
                    format!(
                        "connection `{}` could not be set up; the server log says why",
                        u.connection
                    ),
                )],
            ));
        }
        metrics
            .admin
            .store_tenants_invalid
            .set(i64::try_from(invalid.len()).unwrap_or(i64::MAX));
        self.invalid.store(Arc::new(invalid));
    }

    /// Records what the running generation was built from.
    pub(super) fn applied(&self, file: Config, version: i64) {
        self.file.store(Arc::new(file));
        self.applied_version.store(version, Ordering::SeqCst);
    }
}

impl Shared {
    /// The last configuration file applied, without the store's tenants.
    pub fn file_config(&self) -> Arc<Config> {
        self.tenants.file.load_full()
    }

    /// Store tenants left out of the running configuration, with why.
    pub fn invalid_store_tenants(&self) -> Arc<Vec<(String, Vec<FieldError>)>> {
        self.tenants.invalid.load_full()
    }

    /// The store's configuration version the running generation reflects.
    pub fn applied_tenant_version(&self) -> i64 {
        self.tenants.applied_version.load(Ordering::SeqCst)
    }

    /// Rebuilds the generation when the store's tenants changed since it
    /// was built; `true` when it did. Sessions are not revoked here: the
    /// replica that made the change revoked them in its transaction, and a
    /// second revocation could end sessions made under the new settings.
    pub async fn rebuild_from_store(&self) -> Result<bool, AppError> {
        let _guard = self.tenants.rebuild_lock.lock().await;
        let version = self.store.tenants().version().await?;
        if version == self.applied_tenant_version() {
            return Ok(false);
        }
        let file = self.file_config();
        let (merged, version) = self
            .tenants
            .merge((*file).clone(), &self.store, &self.metrics)
            .await?;
        let state = build_state(
            Arc::new(merged),
            &self.store,
            &self.sessions,
            &self.metrics,
            &self.factories,
            &self.saml_metadata,
            &self.portal,
        )
        .await?;
        self.tenants
            .unbuilt(&state.generation.auth.unbuilt, &self.metrics);
        // Sessions compose SCIM groups and roles under the new tenants.
        use_directory(&self.sessions, &self.store, &state.generation.config);
        self.state.store(Arc::new(state));
        self.tenants.applied((*file).clone(), version);
        tracing::info!(
            version,
            "tenants kept in the store changed: configuration rebuilt"
        );
        Ok(true)
    }
}

/// Rebuilds on every `TenantsChanged` (and after missed events), and every
/// [`VERSION_POLL`] when the version moved, until `stop`.
pub(super) async fn watch(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut events = shared.store.subscribe();
    let mut poll = tokio::time::interval(VERSION_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            return;
        }
        let wake = tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
            event = events.recv() => match event {
                Ok(StoreEvent::TenantsChanged) | Err(RecvError::Lagged(_)) => true,
                Ok(
                    StoreEvent::SessionsRevoked(_)
                    | StoreEvent::DirectoryChanged { .. }
                    | StoreEvent::ServiceAccountChanged { .. },
                ) => false,
                Err(RecvError::Closed) => return,
            },
            _ = poll.tick() => true,
        };
        if !wake {
            continue;
        }
        tokio::time::sleep(DEBOUNCE).await;
        while events.try_recv().is_ok() {}
        if let Err(e) = shared.rebuild_from_store().await {
            tracing::error!(error = %e, "could not apply the tenants kept in the store; still serving the previous configuration");
        }
    }
}
