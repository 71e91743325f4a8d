//! Session records in the store, behind a read-through cache
//! ([`super::cache`]) that is invalidated by revocation and directory
//! events (local and, on PostgreSQL, from other replicas via
//! LISTEN/NOTIFY). A cache fill composes the principal through the
//! generation's [`Directory`]. The cache TTL bounds staleness if an event
//! is ever missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::cache::{SessionCache, Source};
use super::codec::{Opened, SessionToken};
use crate::identity::{AssertionSlot, AuthFacts, Principal};
use crate::metrics::Metrics;
use crate::secret::{digest_hex, random_bytes, sha256_hex};
use crate::store::{IdpBinding, SessionRecord, SessionSelector, Store, StoreError, StoreEvent};
use arc_swap::ArcSwapOption;

/// How often the session caches drop expired entries and sessions let go
/// of assertions too old to send again (see
/// [`Sessions::spawn_event_listener`]).
const HOUSEKEEPING: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(#[from] StoreError),
    #[error("no randomness available")]
    Random,
}

/// A live session as the proxy sees it.
#[derive(Debug)]
pub struct ActiveSession {
    /// SHA-256 of the session id, the cache key: 32 bytes here, where
    /// 100,000 cached sessions would spend ~9 MB on hex strings; the store
    /// key is its hex ([`ActiveSession::id_hash`]).
    key: [u8; 32],
    pub principal: Arc<Principal>,
    pub created_at: i64,
    pub expires_at: i64,
    /// What the IdP calls this session (subject, session index), for
    /// IdP-initiated logout — *without* its logout hint: that can be a
    /// whole ID token (1–3 KB, more than everything else a cached session
    /// holds) and is needed only when this user signs out, so
    /// [`Sessions::idp_binding`] reads it from the store then.
    pub idp: Option<IdpBinding>,
    last_seen_at: AtomicI64,
    /// The session's signed assertion, kept as long as the session is
    /// cached (see [`AssertionSlot`]).
    pub assertion: AssertionSlot,
}

impl ActiveSession {
    /// `r` as read by `key` (whose hex is `r.id_hash`).
    fn from_record(key: [u8; 32], r: SessionRecord) -> Self {
        Self {
            principal: Arc::new(Principal {
                user_id: r.user_id,
                email: r.email,
                name: r.name,
                groups: r.groups,
                roles: r.roles,
                tenant: r.tenant,
                connection: r.connection,
                claims: r.claims,
                auth: AuthFacts {
                    acr: r.acr,
                    amr: r.amr,
                    auth_time: r.auth_time,
                },
                ..Principal::default()
            }),
            key,
            created_at: r.created_at,
            expires_at: r.expires_at,
            idp: r.idp.map(|b| IdpBinding {
                logout_hint: None,
                ..b
            }),
            last_seen_at: AtomicI64::new(r.last_seen_at),
            assertion: AssertionSlot::default(),
        }
    }

    #[cfg(test)]
    pub(super) fn for_tests(principal: Principal) -> Self {
        Self {
            key: [0; 32],
            principal: Arc::new(principal),
            created_at: 0,
            expires_at: i64::MAX,
            idp: None,
            last_seen_at: AtomicI64::new(0),
            assertion: AssertionSlot::default(),
        }
    }

    /// The store's key of this session (lowercase hex SHA-256 of its id).
    pub fn id_hash(&self) -> String {
        digest_hex(&self.key)
    }

    pub fn last_seen_at(&self) -> i64 {
        self.last_seen_at.load(Ordering::Relaxed)
    }
}

/// The outcome of looking a cookie's session up.
#[derive(Debug)]
pub enum Lookup {
    Active(Arc<ActiveSession>),
    /// Anonymous, with the reason for metrics and logs.
    Rejected(&'static str),
}

/// Composes what a request sees from what a session recorded at sign-in:
/// the directory's current view of the user (SCIM groups, roles, name,
/// email). `session` defines it and `auth` implements it, under the
/// configuration generation in force, so sessions need no configuration.
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    /// The principal a request of this session carries now; `recorded`
    /// unchanged for a user the directory does not manage.
    async fn principal(&self, recorded: Principal) -> Result<Principal, StoreError>;
}

/// Creates, resolves and revokes sessions.
#[derive(Clone)]
pub struct Sessions {
    store: Store,
    /// By the SHA-256 of the session id (the bytes, 32 inline; the store
    /// keeps its hex).
    cache: Arc<SessionCache>,
    metrics: Arc<Metrics>,
    /// The generation's directory view; `None`: principals as recorded.
    directory: Arc<ArcSwapOption<Box<dyn Directory>>>,
    /// Service-account tokens, kept coherent by the same event listener.
    machine: super::ServiceAccounts,
}

impl Sessions {
    pub fn new(store: Store, capacity: u64, ttl: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            machine: super::ServiceAccounts::new(store.clone(), capacity, ttl),
            store,
            cache: Arc::new(SessionCache::new(capacity, ttl)),
            metrics,
            directory: Arc::new(ArcSwapOption::empty()),
        }
    }

    /// Composes principals through `directory` from now on (a new
    /// configuration generation), and forgets every cached principal
    /// composed under the previous one: its groups source or group roles
    /// may differ. Cache only: no session ends.
    pub fn set_directory(&self, directory: Box<dyn Directory>) {
        self.directory.store(Some(Arc::new(directory)));
        self.cache.clear();
    }

    /// `recorded` as a request of its session would see it now (for the
    /// test sign-in page, which creates no session); `recorded` itself
    /// when no directory is installed.
    pub async fn compose(&self, recorded: Principal) -> Result<Principal, SessionError> {
        match self.directory.load_full() {
            Some(directory) => Ok(directory.principal(recorded).await?),
            None => Ok(recorded),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Service-account tokens (machine callers), cached like sessions.
    pub fn service_accounts(&self) -> &super::ServiceAccounts {
        &self.machine
    }

    /// Persists a new session for `principal` and returns the token to seal
    /// into the cookie. `idp` is what the IdP calls the session (SSO logins
    /// only), so an IdP-initiated logout can find it later.
    pub async fn create(
        &self,
        principal: &Principal,
        idp: Option<IdpBinding>,
        absolute_lifetime: i64,
        now: i64,
    ) -> Result<SessionToken, SessionError> {
        let id = random_bytes::<32>().map_err(|_| SessionError::Random)?;
        let expires_at = now + absolute_lifetime;
        let record = SessionRecord {
            id_hash: sha256_hex(&id),
            user_id: principal.user_id.clone(),
            email: principal.email.clone(),
            name: principal.name.clone(),
            tenant: principal.tenant.clone(),
            connection: principal.connection.clone(),
            groups: principal.groups.clone(),
            roles: principal.roles.clone(),
            created_at: now,
            expires_at,
            last_seen_at: now,
            idp,
            claims: principal.claims.clone(),
            acr: principal.auth.acr.clone(),
            amr: principal.auth.amr.clone(),
            auth_time: principal.auth.auth_time,
        };
        self.store.sessions().insert(&record).await?;
        self.metrics.sessions_created.inc();
        Ok(SessionToken { id, expires_at })
    }

    /// Resolves an opened cookie to a live session. Expired, idle, revoked
    /// and unknown sessions are `Rejected`; a store outage is an error the
    /// caller maps to 503 rather than silently logging users out.
    pub async fn resolve(
        &self,
        opened: &Opened,
        now: i64,
        idle_lifetime: i64,
    ) -> Result<Lookup, SessionError> {
        let Opened { token, key } = opened;
        let key = *key;
        if token.expires_at <= now {
            return Ok(Lookup::Rejected("expired"));
        }
        let (entry, source) = self
            .cache
            .get_or_fill(&key, async {
                let Some(record) = self.store.sessions().get(&digest_hex(&key)).await? else {
                    return Ok(None);
                };
                let mut session = ActiveSession::from_record(key, record);
                if let Some(directory) = self.directory.load_full() {
                    let recorded = Arc::unwrap_or_clone(session.principal);
                    session.principal = Arc::new(directory.principal(recorded).await?);
                }
                Ok::<_, StoreError>(Some(Arc::new(session)))
            })
            .await?;
        self.metrics
            .session_cache_lookup(matches!(source, Source::Cache));
        let Some(session) = entry else {
            return Ok(Lookup::Rejected("unknown"));
        };
        // The cookie's expiry is authenticated, but the record is the
        // authority: both must hold.
        if session.expires_at <= now {
            return Ok(Lookup::Rejected("expired"));
        }
        let last = session.last_seen_at();
        if now - last >= idle_lifetime {
            return Ok(Lookup::Rejected("idle"));
        }
        // Write-behind of last-seen, at most once per interval per session,
        // so the idle clock survives restarts without a write per request.
        let interval = (idle_lifetime / 8).clamp(1, 60);
        if now - last >= interval
            && session
                .last_seen_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let store = self.store.clone();
            let id = session.id_hash();
            tokio::spawn(async move {
                if let Err(e) = store.sessions().touch(&id, now).await {
                    tracing::warn!(error = %e, "could not record session activity");
                }
            });
        }
        Ok(Lookup::Active(session))
    }

    /// `session`'s IdP binding with its logout hint, read from the store
    /// (the cache leaves the hint out, see [`ActiveSession::idp`]); `None`
    /// when the session has none or no longer exists.
    pub async fn idp_binding(
        &self,
        session: &ActiveSession,
    ) -> Result<Option<IdpBinding>, SessionError> {
        if session.idp.is_none() {
            return Ok(None);
        }
        let record = self.store.sessions().get(&session.id_hash()).await?;
        Ok(record.and_then(|r| r.idp))
    }

    /// Ends sessions in the store and in this process' cache at once; other
    /// replicas learn through the store's event channel.
    pub async fn revoke(&self, selector: &SessionSelector) -> Result<u64, SessionError> {
        let n = self.store.sessions().revoke(selector).await?;
        self.invalidate(selector).await;
        let scope = match selector {
            SessionSelector::Id(_) => "session",
            SessionSelector::User(_) => "user",
            SessionSelector::Tenant(_) => "tenant",
            SessionSelector::Connection(_) => "connection",
            SessionSelector::Idp { .. } => "idp",
            SessionSelector::All => "all",
        };
        self.metrics
            .sessions_revoked
            .with_label_values(&[scope])
            .inc_by(n);
        Ok(n)
    }

    /// Drops cached entries matching `selector`.
    pub async fn invalidate(&self, selector: &SessionSelector) {
        let pred: Box<dyn Fn(&ActiveSession) -> bool + Send + Sync> = match selector.clone() {
            SessionSelector::Id(h) => {
                // Not hex of 32 bytes: no session has it.
                let mut key = [0u8; 32];
                if hex::decode_to_slice(&h, &mut key).is_ok() {
                    self.cache.remove(&key);
                }
                return;
            }
            SessionSelector::All => {
                self.cache.clear();
                return;
            }
            SessionSelector::User(u) => Box::new(move |s| s.principal.user_id == u),
            SessionSelector::Tenant(t) => {
                Box::new(move |s| s.principal.tenant.as_deref() == Some(&t))
            }
            SessionSelector::Connection(c) => {
                Box::new(move |s| s.principal.connection.as_deref() == Some(&c))
            }
            SessionSelector::Idp {
                connection,
                subject,
                session,
            } => Box::new(move |s| {
                s.principal.connection.as_deref() == Some(&connection)
                    && s.idp.as_ref().is_some_and(|i| {
                        subject.as_ref().is_none_or(|sub| &i.subject == sub)
                            && session
                                .as_ref()
                                .is_none_or(|sid| i.session.as_ref() == Some(sid))
                    })
            }),
        };
        self.cache.remove_sessions(pred);
    }

    /// Drops the cached principals a directory change may have altered
    /// (`users: None`: the whole tenant's); their next request recomposes
    /// them. Nothing is revoked: a change that removes access ends nothing
    /// else, the gate decides on the new principal.
    pub async fn invalidate_directory(&self, tenant: &str, users: Option<&[String]>) {
        self.cache.mark_changed(tenant, users);
    }

    /// Applies one store event to this process' caches.
    async fn apply(&self, event: StoreEvent) {
        match event {
            StoreEvent::SessionsRevoked(sel) => {
                // `All` is also what a reconnected listener says after a
                // gap: service accounts may have changed.
                if sel == SessionSelector::All {
                    self.machine.invalidate_all();
                }
                self.invalidate(&sel).await
            }
            StoreEvent::TenantsChanged => {}
            StoreEvent::DirectoryChanged { tenant, users } => {
                self.invalidate_directory(&tenant, users.as_deref()).await
            }
            StoreEvent::ServiceAccountChanged { account } => {
                self.machine.invalidate_account(&account)
            }
        }
    }

    /// Missed events: we can't know which, so drop everything.
    fn missed_events(&self) {
        self.cache.clear();
        self.machine.invalidate_all();
    }

    /// Applies revocation events from the store (this and other replicas)
    /// until the store's channel closes, and runs the caches' housekeeping
    /// every [`HOUSEKEEPING`]: expired entries are otherwise found only when
    /// their session is next asked for, so a process that goes quiet after
    /// a burst would keep the burst's sessions (and their assertions) for
    /// good; and a live session's assertion too old to be sent again is
    /// ~600 bytes kept for nothing until its next request.
    pub fn spawn_event_listener(&self) -> tokio::task::JoinHandle<()> {
        let mut rx = self.store.subscribe();
        let this = self.clone();
        tokio::spawn(async move {
            let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
            housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let event = tokio::select! {
                    event = rx.recv() => event,
                    _ = housekeeping.tick() => {
                        let now = crate::clock::now();
                        let entries = this.cache.sweep(|s| s.assertion.release_stale(now));
                        this.machine.run_pending_tasks().await;
                        let entries = i64::try_from(entries).unwrap_or(i64::MAX);
                        this.metrics.session_cache_entries.set(entries);
                        continue;
                    }
                };
                match event {
                    Ok(event) => this.apply(event).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        this.missed_events()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}
