//! Tenant-scoped write transactions.
//!
//! A provisioning change (a SCIM write or a JIT user, with its webhook
//! outbox row) must be all-or-nothing: the resource, the login identity, the
//! memberships, the ended sessions and the event that announces them commit
//! together or not at all. [`WriteTx`] is that unit. Dropping it without
//! [`WriteTx::commit`] rolls everything back.

use sqlx::{Any, Row, Transaction};

use super::{
    AuditTx, Backend, CredentialTx, DomainTx, LoginTx, OutboxTx, ScimTx, SessionSelector,
    SessionTx, SetupLinkTx, Store, StoreError, StoreEvent, TenantTx, UserTx, check_text,
};

/// One open write transaction for one tenant. Other writers of the same
/// tenant wait until it commits or rolls back.
pub struct WriteTx {
    pub(super) tx: Transaction<'static, Any>,
    pub(super) store: Store,
    tenant: String,
    seq: i64,
    /// Resources created so far in this transaction (their listing order).
    created: i64,
    /// A savepoint is open whose work is kept (released lazily).
    in_savepoint: bool,
    pub(super) revoked: Vec<SessionSelector>,
    /// Users whose principals the changes may alter (`tx.directory()`).
    pub(super) directory: super::directory::Touched,
    /// Whether outbox events were written, to wake the deliverer at commit.
    pub(super) emitted: bool,
    /// Events appended and not yet written (see [`OutboxTx::emit`]).
    pub(super) pending_events: Vec<super::outbox::PendingEvent>,
    /// How many of `pending_events` predate the open savepoint: a rollback
    /// keeps those and drops the rest.
    pub(super) pending_mark: usize,
    /// Service accounts rotated or revoked (`tx.service_accounts()`),
    /// announced to this process at commit.
    pub(super) accounts_changed: Vec<String>,
    /// Opened by [`Store::begin_config`]: the tenant configuration version
    /// it wrote, announced to this process at commit.
    config_version: Option<i64>,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("tenant", &self.tenant)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a write transaction for `tenant`. Its first statement bumps the
    /// tenant's sequence number: on SQLite that takes the write lock at once
    /// (a deferred read-then-write transaction could fail to upgrade), on
    /// PostgreSQL it locks the tenant's row, so a tenant's writers are
    /// serialised and uniqueness checks inside the transaction hold. The
    /// number orders the tenant's changes (webhook events).
    pub async fn begin_write(&self, tenant: &str) -> Result<WriteTx, StoreError> {
        check_text("tenant", tenant)?;
        let tx = self.inner.pool.begin().await?;
        self.write_in(tx, tenant, None).await
    }

    /// Opens a write transaction that changes the tenants kept in the store
    /// (or anything an admin change audits). Its first statement bumps the
    /// one-row tenant configuration version: every such writer is
    /// serialised by that row (SQLite: the write lock, PostgreSQL: the row
    /// lock), so validation against the tenants read inside the
    /// transaction still holds at commit; then the tenant's row as in
    /// [`Store::begin_write`]. Lock order is always version row, then
    /// tenant row, and SCIM writers take only the latter, so the two can't
    /// deadlock. The change is announced to other processes and replicas
    /// inside the transaction (delivered at commit) and to this one by
    /// [`WriteTx::commit`].
    pub async fn begin_config(&self, tenant: &str) -> Result<WriteTx, StoreError> {
        check_text("tenant", tenant)?;
        let mut tx = self.inner.pool.begin().await?;
        let version: i64 = sqlx::query(
            "UPDATE tenant_config_version SET version = version + 1 WHERE id = 1 RETURNING version",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("version")?;
        super::events::publish_in(&mut tx, self.inner.backend, &StoreEvent::TenantsChanged).await?;
        self.write_in(tx, tenant, Some(version)).await
    }

    async fn write_in(
        &self,
        mut tx: Transaction<'static, Any>,
        tenant: &str,
        config_version: Option<i64>,
    ) -> Result<WriteTx, StoreError> {
        let row = sqlx::query(
            "INSERT INTO scim_tenants (tenant, seq) VALUES ($1, 1) \
             ON CONFLICT (tenant) DO UPDATE SET seq = scim_tenants.seq + 1 RETURNING seq",
        )
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await?;
        let seq: i64 = row.try_get("seq")?;
        Ok(WriteTx {
            tx,
            store: self.clone(),
            tenant: tenant.to_owned(),
            seq,
            created: 0,
            in_savepoint: false,
            revoked: Vec::new(),
            directory: Default::default(),
            emitted: false,
            pending_events: Vec::new(),
            pending_mark: 0,
            accounts_changed: Vec::new(),
            config_version,
        })
    }
}

impl WriteTx {
    /// The tenant this transaction writes for.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// This transaction's position in the tenant's change sequence.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// A position in the tenant's creation order for the next resource this
    /// transaction creates: the sequence number scaled, plus a counter, so
    /// resources created by one Bulk request keep their request order.
    pub fn next_position(&mut self) -> i64 {
        self.created += 1;
        self.seq
            .saturating_mul(1 << 20)
            .saturating_add(self.created)
    }

    /// Starts a savepoint: one operation of a batch (Bulk) that can fail
    /// alone while the others commit together. A kept savepoint is
    /// released here, in the same round trip (or by the commit).
    pub async fn savepoint(&mut self) -> Result<(), StoreError> {
        // Bounded memory for long batches: write what earlier (kept)
        // operations appended before the new savepoint can cover it.
        if self.pending_events.len() >= super::outbox::MAX_PENDING {
            self.flush_events().await?;
        }
        self.pending_mark = self.pending_events.len();
        let sql = if self.in_savepoint {
            "RELEASE SAVEPOINT portcullis_op; SAVEPOINT portcullis_op"
        } else {
            "SAVEPOINT portcullis_op"
        };
        sqlx::raw_sql(sql).execute(&mut *self.tx).await?;
        self.in_savepoint = true;
        Ok(())
    }

    /// Keeps what the operation since [`WriteTx::savepoint`] did. The
    /// release itself is deferred to the next savepoint or the commit,
    /// which saves a round trip per operation.
    pub fn release_savepoint(&mut self) {}

    /// Undoes what the operation since [`WriteTx::savepoint`] did.
    pub async fn rollback_savepoint(&mut self) -> Result<(), StoreError> {
        sqlx::raw_sql("ROLLBACK TO SAVEPOINT portcullis_op; RELEASE SAVEPOINT portcullis_op")
            .execute(&mut *self.tx)
            .await?;
        self.in_savepoint = false;
        self.pending_events.truncate(self.pending_mark);
        self.pending_mark = 0;
        Ok(())
    }

    /// Which backend runs the transaction.
    pub fn backend(&self) -> Backend {
        self.store.inner.backend
    }

    /// Commits, then publishes the in-process revocation events. Returns the
    /// selectors revoked so the caller can drop its own cache entries before
    /// answering (the next request must already see the revocation).
    pub async fn commit(mut self) -> Result<Vec<SessionSelector>, StoreError> {
        self.flush_events().await?;
        self.announce_directory().await?;
        self.tx.commit().await?;
        if self.emitted {
            self.store.inner.outbox.notify_one();
        }
        for selector in &self.revoked {
            let _ = self
                .store
                .inner
                .events
                .send(StoreEvent::SessionsRevoked(selector.clone()));
        }
        if self.config_version.is_some() {
            let _ = self.store.inner.events.send(StoreEvent::TenantsChanged);
        }
        for account in &self.accounts_changed {
            let _ = self
                .store
                .inner
                .events
                .send(StoreEvent::ServiceAccountChanged {
                    account: account.clone(),
                });
        }
        Ok(self.revoked)
    }
}

/// What a transaction writes, one view per concern (see the store's module
/// doc); the transaction itself keeps only its own life cycle above.
impl WriteTx {
    /// Ends sessions in this transaction.
    pub fn sessions(&mut self) -> SessionTx<'_> {
        SessionTx { write: self }
    }

    /// Adds login users in this transaction (JIT provisioning).
    pub fn users(&mut self) -> UserTx<'_> {
        UserTx { write: self }
    }

    /// The `users` rows behind SCIM users: what sign-in finds.
    pub fn logins(&mut self) -> LoginTx<'_> {
        LoginTx { write: self }
    }

    /// SCIM resources and memberships, read and written in this
    /// transaction.
    pub fn scim(&mut self) -> ScimTx<'_> {
        ScimTx { write: self }
    }

    /// Appends the webhook events that announce this transaction's changes.
    pub fn outbox(&mut self) -> OutboxTx<'_> {
        OutboxTx { write: self }
    }

    /// Tenants and connections kept in the store; only in a transaction of
    /// [`Store::begin_config`] (which holds the writers' lock).
    pub fn tenants(&mut self) -> TenantTx<'_> {
        TenantTx { write: self }
    }

    /// The audit event of this transaction's change.
    pub fn audit(&mut self) -> AuditTx<'_> {
        AuditTx { write: self }
    }

    /// Setup links created or redeemed in this transaction.
    pub fn setup_links(&mut self) -> SetupLinkTx<'_> {
        SetupLinkTx { write: self }
    }

    /// Credentials (SCIM tokens) replaced in this transaction.
    pub fn credentials(&mut self) -> CredentialTx<'_> {
        CredentialTx { write: self }
    }

    /// Service accounts created, rotated or revoked in this transaction.
    pub fn service_accounts(&mut self) -> super::ServiceAccountTx<'_> {
        super::ServiceAccountTx { write: self }
    }

    /// Domain claims changed in this transaction.
    pub fn domains(&mut self) -> DomainTx<'_> {
        DomainTx { write: self }
    }

    /// The tenant configuration version this transaction wrote, if it was
    /// opened by [`Store::begin_config`].
    pub fn config_version(&self) -> Option<i64> {
        self.config_version
    }
}
