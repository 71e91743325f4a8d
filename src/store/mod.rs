//! Persistent state shared by all replicas: server-side sessions, shared
//! keys, users, domains, SCIM resources, the webhook outbox, and the events
//! that keep per-replica caches coherent.
//!
//! One API over two backends: SQLite (a single file, the embedded default)
//! and PostgreSQL (for several replicas). Both go through sqlx's `Any` driver
//! with runtime-checked queries, so building the crate needs no database.
//! Queries use `$n` placeholders, which both backends accept.
//!
//! **One view per concern.** [`Store`] itself only opens, migrates, checks
//! and closes the database, hands out event subscriptions and begins write
//! transactions. Everything else is reached through a small borrowed view
//! named after its concern, each defined in that concern's file:
//! `store.sessions()`, `.users()`, `.domains()`, `.one_time()`, `.keys()`,
//! `.scim()`, `.outbox()` and `.directory()`; a [`WriteTx`] has
//! `tx.sessions()`, `.users()`, `.logins()`, `.scim()`, `.outbox()` and
//! `.directory()` for what a provisioning change writes in its
//! transaction. A caller then reads as
//! the concern it touches (`store.outbox().replay(..)`), a concern's whole
//! API is one file, and a new method lands beside its siblings instead of
//! growing one flat list namespaced by prefixes.
//!
//! **Runtime requirement:** [`Store::open`] spawns background work (the
//! PostgreSQL LISTEN task and sqlx's pool maintenance) on the calling tokio
//! runtime, so that runtime must outlive the store. The listener task stops
//! on [`Store::close`] or when the last clone of the store is dropped.

mod admin;
mod audit;
mod batch;
mod connect;
mod directory;
mod domains;
mod error;
mod events;
mod keys;
mod logins;
mod machine;
mod migrate;
mod one_time;
mod outbox;
mod reseal;
mod scim;
mod seal;
mod sessions;
mod tenants;
mod users;
mod write;

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use admin::{
    AdminTokenRow, AdminTokenStore, CredentialTx, SetupLinkRow, SetupLinkStore, SetupLinkTx,
};
pub use audit::{AuditRow, AuditStore, AuditTx};
pub use directory::{DirectoryChange, DirectoryGroup, DirectoryStore, DirectoryTx, DirectoryUser};
pub use domains::{DomainCheck, DomainRecord, DomainStatus, DomainStore, DomainTx, DueCutoffs};
pub use error::StoreError;
pub use keys::KeyStore;
pub use logins::{LoginTx, ScimLogin};
pub use machine::{ServiceAccountKeyRow, ServiceAccountRow, ServiceAccountStore, ServiceAccountTx};
pub use one_time::OneTimeStore;
pub use outbox::{OutboxEvent, OutboxState, OutboxStore, OutboxTenantStatus, OutboxTx};
pub use reseal::ResealReport;
pub use scim::{ScimIndex, ScimKind, ScimMember, ScimRow, ScimStore, ScimTx};
pub use seal::{StoreKeys, key_id};
pub use sessions::{SessionStore, SessionTx};
pub use tenants::{StoredTenant, TenantStore, TenantTx};
pub use users::{UserRecord, UserStore, UserTx};
pub use write::WriteTx;

/// Which database a [`Store`] talks to. Callers use it for the few decisions
/// that really differ (e.g. whether events cross replicas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A local SQLite file: one node, events stay in-process.
    Sqlite,
    /// A PostgreSQL server: many replicas, events travel by LISTEN/NOTIFY.
    Postgres,
}

/// A server-side session. The cookie carries only the (encrypted) session id;
/// everything needed to rebuild the principal lives here, so large group
/// sets never bloat headers. `Default` lets each literal name only what it
/// cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRecord {
    /// Lowercase hex SHA-256 of the session id; the store never sees raw ids.
    pub id_hash: String,
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub connection: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Absolute expiry, unix seconds.
    pub expires_at: i64,
    /// Unix seconds, for idle expiry.
    pub last_seen_at: i64,
    /// What the IdP knows this session by; `None` for sessions not made by
    /// an SSO login.
    pub idp: Option<IdpBinding>,
    /// IdP claims selected at sign-in for headers and the assertion, by the
    /// IdP's name for them.
    pub claims: std::collections::BTreeMap<String, Vec<String>>,
    /// The authentication context class the IdP reported (OIDC `acr`, SAML
    /// `AuthnContextClassRef`).
    pub acr: Option<String>,
    /// The authentication methods (OIDC `amr`).
    pub amr: Vec<String>,
    /// When the IdP authenticated the user, unix seconds.
    pub auth_time: Option<i64>,
}

/// The IdP's names for a session: enough to find it again when the IdP
/// asks for a logout, and to ask the IdP for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpBinding {
    /// SAML NameID or OIDC `sub`.
    pub subject: String,
    /// SAML `SessionIndex` or OIDC `sid`, when the IdP sent one.
    pub session: Option<String>,
    /// Protocol-private data for starting a logout at the IdP (OIDC: the ID
    /// token for `id_token_hint`; SAML: the NameID with its qualifiers).
    pub logout_hint: Option<String>,
}

/// Which sessions to revoke: the granularities the admin, logout and SCIM
/// deprovisioning paths need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionSelector {
    /// One session, by `id_hash`.
    Id(String),
    /// Every session of a user id.
    User(String),
    /// Every session in a tenant.
    Tenant(String),
    /// Every session established through an IdP connection.
    Connection(String),
    /// Sessions of one connection that the IdP names by subject and/or its
    /// own session id (IdP-initiated logout). At least one must be given.
    Idp {
        connection: String,
        subject: Option<String>,
        session: Option<String>,
    },
    /// Everything.
    All,
}

/// A shared secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub material: Vec<u8>,
    /// Unix seconds, set by the store when the key was first inserted.
    pub created_at: i64,
}

/// Cache-invalidation events delivered by [`Store::subscribe`].
///
/// `SessionsRevoked(SessionSelector::All)` is also published when the
/// PostgreSQL listener had to reconnect, because notifications sent during
/// the outage are lost and caches must assume the worst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Sessions matching the selector were deleted; drop cached copies.
    SessionsRevoked(SessionSelector),
    /// The tenants kept in the store changed (or, after a lost connection,
    /// may have): rebuild the configuration if the version moved.
    TenantsChanged,
    /// The directory changed for these users of a tenant (`None`: possibly
    /// anyone in it): recompose their cached principals.
    DirectoryChanged {
        tenant: String,
        users: Option<Vec<String>>,
    },
    /// A service account was rotated or revoked: cached tokens of it are
    /// stale.
    ServiceAccountChanged { account: String },
}

/// Handle to the store. Cloning is cheap (an `Arc`) and all clones share one
/// pool and one event channel.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    events: broadcast::Sender<StoreEvent>,
    /// Dropping this (with the last `Store`) or sending `true` stops the
    /// listener task; the task only holds the receiver, never the store.
    shutdown: watch::Sender<bool>,
    listener: Mutex<Option<JoinHandle<()>>>,
    /// Wakes the webhook deliverer when a local commit appended events.
    outbox: Arc<tokio::sync::Notify>,
    /// Seal the secret columns (see `seal`); `None` for a store opened
    /// without keys, which can then neither write nor read secrets.
    keys: Option<StoreKeys>,
}

impl std::fmt::Debug for Store {
    /// Shows only the backend: the pool's options include the URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

static INSTALL_DRIVERS: Once = Once::new();

impl Store {
    /// Connects and migrates in one step so no caller can ever query an
    /// out-of-date schema.
    ///
    /// `url` is `sqlite://PATH` (file and parent directory created if
    /// missing; WAL, `synchronous=NORMAL`, foreign keys on, 5 s busy
    /// timeout), a bare filesystem path (treated as SQLite), or
    /// `postgres://...` / `postgresql://...`. On PostgreSQL the LISTEN
    /// connection is established before this returns, so no event published
    /// afterwards is missed. Must be called inside a tokio runtime that
    /// outlives the store.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with_keys(url, None).await
    }

    /// [`Store::open_with_keys`] from raw 32-byte keys (`[store]
    /// encryption_key` decoded, first seals); an empty list opens without
    /// keys.
    pub async fn open_sealed(url: &str, keys: &[[u8; 32]]) -> Result<Store, StoreError> {
        let keys = if keys.is_empty() {
            None
        } else {
            Some(StoreKeys::new(keys)?)
        };
        Self::open_with_keys(url, keys).await
    }

    /// [`Store::open`] with the keys that seal secrets at rest (`[store]
    /// encryption_key`, first key seals). After migrating, every legacy
    /// plaintext secret is sealed and every value under an older key is
    /// re-sealed under the first one; a value under a key that is not given
    /// fails the open, naming the key id (a wrong key is a startup error,
    /// not a failure at the first login). On SQLite the file's directory
    /// must be 0700 and the files 0600 (created so when missing).
    pub async fn open_with_keys(url: &str, keys: Option<StoreKeys>) -> Result<Store, StoreError> {
        INSTALL_DRIVERS.call_once(sqlx::any::install_default_drivers);
        let target = connect::parse_target(url)?;
        let (events_tx, _) = broadcast::channel(events::BROADCAST_CAPACITY);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);

        let mut sqlite_path = None;
        let (pool, backend, listener) = match target {
            connect::Target::Sqlite(path) => {
                let (pool, path) = connect::sqlite_pool(&path).await?;
                sqlite_path = Some(path);
                (pool, Backend::Sqlite, None)
            }
            connect::Target::Postgres(url) => {
                let pool = connect::postgres_pool(&url).await?;
                (pool, Backend::Postgres, Some(url))
            }
        };

        let prepared = async {
            migrate::run(&pool, backend).await?;
            if let Some(keys) = &keys {
                reseal::run(&pool, keys).await?;
            }
            if let Some(path) = &sqlite_path {
                // The -wal/-shm files exist now; SQLite gives them the
                // database file's mode, checked here all the same.
                connect::check_sqlite_files(path)?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(error) = prepared {
            pool.close().await;
            return Err(error);
        }

        let handle = match listener {
            None => {
                let start = match events::sqlite_high_water(&pool).await {
                    Ok(start) => start,
                    Err(error) => {
                        pool.close().await;
                        return Err(StoreError::Query(error));
                    }
                };
                Some(tokio::spawn(events::poll_sqlite(
                    pool.clone(),
                    start,
                    events_tx.clone(),
                    shutdown_rx,
                )))
            }
            Some(url) => {
                let started = async {
                    let listen_pool = connect::listener_pool(&url).await?;
                    match events::listen(&listen_pool).await {
                        Ok(listener) => Ok((listen_pool, listener)),
                        Err(error) => {
                            listen_pool.close().await;
                            Err(StoreError::Connect(error))
                        }
                    }
                }
                .await;
                let (listen_pool, listener) = match started {
                    Ok(started) => started,
                    Err(error) => {
                        pool.close().await;
                        return Err(error);
                    }
                };
                Some(tokio::spawn(events::run_listener(
                    listen_pool,
                    listener,
                    events_tx.clone(),
                    shutdown_rx,
                )))
            }
        };

        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                events: events_tx,
                shutdown: shutdown_tx,
                listener: Mutex::new(handle),
                outbox: Arc::new(tokio::sync::Notify::new()),
                keys,
            }),
        })
    }

    /// Lets callers branch on the few behaviours that differ per backend.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Proves the database answers, for `/readyz`; bounded by the acquire
    /// timeout when the pool is exhausted or the server is gone.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.inner.pool).await?;
        Ok(())
    }

    /// Graceful shutdown: stops the listener and waits (bounded) for pooled
    /// connections to close so SQLite checkpoints the WAL and PostgreSQL sees
    /// clean disconnects. Later calls on any clone fail with a pool-closed
    /// error.
    pub async fn close(&self) {
        self.inner.shutdown.send_replace(true);
        let handle = self.inner.listener.lock().ok().and_then(|mut h| h.take());
        self.inner.pool.close().await;
        if let Some(handle) = handle {
            // The task exits promptly on the signal; the bound only guards
            // against a wedged network close.
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
    }

    /// Gives a cache its own event stream. Subscribe *before* filling the
    /// cache so no revocation can slip in between.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }
}

/// The concerns, one view each (see the module doc).
impl Store {
    /// Server-side session records and their revocation.
    pub fn sessions(&self) -> SessionStore<'_> {
        SessionStore { inner: &self.inner }
    }

    /// Users who may sign in, per tenant.
    pub fn users(&self) -> UserStore<'_> {
        UserStore { inner: &self.inner }
    }

    /// Tenant email domains and their DNS proof.
    pub fn domains(&self) -> DomainStore<'_> {
        DomainStore { inner: &self.inner }
    }

    /// Single-use values (replay protection across replicas).
    pub fn one_time(&self) -> OneTimeStore<'_> {
        OneTimeStore { inner: &self.inner }
    }

    /// Long-lived secrets shared by all replicas.
    pub fn keys(&self) -> KeyStore<'_> {
        KeyStore { inner: &self.inner }
    }

    /// SCIM tokens, resources and memberships (reads; writes go through
    /// [`WriteTx::scim`]).
    pub fn scim(&self) -> ScimStore<'_> {
        ScimStore { inner: &self.inner }
    }

    /// The webhook outbox as the deliverer and the operator see it (events
    /// are appended through [`WriteTx::outbox`]).
    pub fn outbox(&self) -> OutboxStore<'_> {
        OutboxStore { inner: &self.inner }
    }

    /// Tenants and connections made through the admin API (writes go
    /// through [`WriteTx::tenants`] of a [`Store::begin_config`]).
    pub fn tenants(&self) -> TenantStore<'_> {
        TenantStore { inner: &self.inner }
    }

    /// The audit log of admin changes (written through [`WriteTx::audit`]).
    pub fn audit(&self) -> AuditStore<'_> {
        AuditStore { inner: &self.inner }
    }

    /// Operator tokens of the admin API.
    pub fn admin_tokens(&self) -> AdminTokenStore<'_> {
        AdminTokenStore { inner: &self.inner }
    }

    /// Setup links (reads; created through [`WriteTx::setup_links`]).
    pub fn setup_links(&self) -> SetupLinkStore<'_> {
        SetupLinkStore { inner: &self.inner }
    }

    /// SCIM-managed users with their (nested) groups, as sessions see them.
    pub fn directory(&self) -> DirectoryStore<'_> {
        DirectoryStore { inner: &self.inner }
    }

    pub fn service_accounts(&self) -> ServiceAccountStore<'_> {
        ServiceAccountStore { inner: &self.inner }
    }
}

impl Inner {
    /// The keys secrets are sealed with, or an error naming what is missing.
    fn keys(&self) -> Result<&StoreKeys, StoreError> {
        self.keys.as_ref().ok_or_else(|| {
            StoreError::Sealing(
                "this store was opened without [store] encryption_key, so it cannot \
                 write or read secrets"
                    .into(),
            )
        })
    }
}

/// Store timestamps come from the wall clock; a clock before 1970 is treated
/// as 0 rather than failing a write.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// PostgreSQL cannot store NUL in TEXT while SQLite can; refusing it on both
/// keeps the backends interchangeable.
fn check_text(field: &str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "{field} contains a NUL character"
        )));
    }
    Ok(())
}
