//! The webhook outbox: events written in the same transaction as the change
//! they announce, then delivered in order per tenant by `webhook::`.
//!
//! This file numbers and persists; what an event says (its type, envelope
//! and data) is `crate::events`. The stored payload is the exact body sent
//! (envelope included), built at write time so every retry and replay is
//! byte-identical and the signature a receiver checks never depends on when
//! it was sent.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch;
use super::write::WriteTx;
use super::{Inner, StoreError, check_text};
use crate::events::{Envelope, EventType, message_id};

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Not yet acknowledged; retried until acknowledged or too old.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the maximum age; the tenant's queue moved on.
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => OutboxState::Pending,
            "delivered" => OutboxState::Delivered,
            "dead" => OutboxState::Dead,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "webhook_outbox.state {other:?} is not a known state"
                )));
            }
        })
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub tenant: String,
    /// Gap-free per tenant, in commit order.
    pub seq: i64,
    /// The Standard Webhooks message id (`msg_…`).
    pub id: String,
    pub event_type: String,
    /// The exact JSON body to send.
    pub payload: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub state: OutboxState,
    pub attempts: i64,
    /// Unix milliseconds; a pending event is not retried before this.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// A tenant's queue at a glance, for `webhooks status` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxTenantStatus {
    pub tenant: String,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
    /// Highest delivered sequence number.
    pub last_delivered_seq: Option<i64>,
    /// Unix milliseconds of the oldest pending event.
    pub oldest_pending_at: Option<i64>,
}

macro_rules! outbox_columns {
    () => {
        "tenant, seq, id, event_type, payload, created_at, state, attempts, next_attempt_at, \
         last_error, delivered_at"
    };
}

/// Bounds what goes into the error column (receivers may answer with pages).
const MAX_ERROR_LEN: usize = 500;

fn decode(row: &AnyRow) -> Result<OutboxEvent, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(OutboxEvent {
        tenant: row.try_get("tenant")?,
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        event_type: row.try_get("event_type")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        state: OutboxState::parse(&state)?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(MAX_ERROR_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].replace('\0', "")
}

/// An event appended in a transaction and not yet written: its sequence
/// number is only known when the transaction's events are written together.
#[derive(Debug)]
pub(super) struct PendingEvent {
    event_type: EventType,
    data: serde_json::Value,
    now_ms: i64,
}

/// Pending events held in memory before they are written early (a PATCH
/// adding tens of thousands of members). Early writes only happen where a
/// savepoint rollback cannot reach back past them.
pub(super) const MAX_PENDING: usize = 1024;

/// The outbox view of a [`WriteTx`]: `tx.outbox()`.
pub struct OutboxTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl OutboxTx<'_> {
    /// Appends an event announcing a change made in this transaction.
    ///
    /// Events are buffered and written together just before the commit
    /// (or earlier for very large changes): one sequence upsert and a few
    /// multi-row INSERTs per transaction instead of two statements per
    /// event, which is what lets a 100-operation SCIM Bulk request run at
    /// thousands of users per second. The sequence row's lock is taken by
    /// that write and held until commit, so numbers stay gap-free and in
    /// commit order across replicas; a rolled-back savepoint (a failed
    /// Bulk operation) drops the events it appended.
    pub async fn emit(
        &mut self,
        event_type: EventType,
        data: serde_json::Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let w = &mut *self.write;
        w.pending_events.push(PendingEvent {
            event_type,
            data,
            now_ms,
        });
        if w.pending_events.len() >= MAX_PENDING && w.pending_mark == 0 {
            w.flush_events().await?;
        }
        Ok(())
    }
}

impl WriteTx {
    /// Writes the buffered events: reserves their sequence numbers with one
    /// upsert of the tenant's row (taking its lock), then inserts them in
    /// order. The stored payload is the exact body that will be sent.
    pub(super) async fn flush_events(&mut self) -> Result<(), StoreError> {
        if self.pending_events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending_events);
        let n = i64::try_from(events.len())
            .map_err(|_| StoreError::InvalidInput("too many events in one transaction".into()))?;
        let tenant = self.tenant().to_owned();
        let row = sqlx::query(
            "INSERT INTO webhook_sequences (tenant, last_seq) VALUES ($1, $2) \
             ON CONFLICT (tenant) DO UPDATE SET last_seq = webhook_sequences.last_seq + $2 \
             RETURNING last_seq",
        )
        .bind(tenant.as_str())
        .bind(n)
        .fetch_one(&mut *self.tx)
        .await?;
        let last: i64 = row.try_get("last_seq")?;
        let mut seq = last - n + 1;
        let mut rest: &[PendingEvent] = &events;
        while !rest.is_empty() {
            let size = batch::next_size(rest.len());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut rows = Vec::with_capacity(size);
            for e in chunk {
                let id = message_id();
                let payload = Envelope::new(&id, e.event_type, &tenant, seq, e.now_ms, &e.data)
                    .body()
                    .map_err(|e| StoreError::InvalidInput(format!("event payload: {e}")))?;
                check_text("payload", &payload)?;
                rows.push((seq, id, e.event_type.as_str(), payload, e.now_ms));
                seq += 1;
            }
            let sql = batch::values_sql(
                concat!(
                    "INSERT INTO webhook_outbox (",
                    outbox_columns!(),
                    ") VALUES "
                ),
                "(?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?6, NULL, NULL)",
                6,
                size,
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (seq, id, event_type, payload, created_at) in rows {
                q = q
                    .bind(tenant.clone())
                    .bind(seq)
                    .bind(id)
                    .bind(event_type)
                    .bind(payload)
                    .bind(created_at);
            }
            q.execute(&mut *self.tx).await?;
        }
        self.emitted = true;
        Ok(())
    }
}

/// The outbox view of a [`Store`](super::Store): `store.outbox()`.
#[derive(Clone, Copy)]
pub struct OutboxStore<'a> {
    pub(super) inner: &'a Inner,
}

impl OutboxStore<'_> {
    /// Wakes this process' deliverer; other replicas find new events on
    /// their next poll.
    pub fn signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.inner.outbox.clone()
    }

    /// Tenants whose head of line (lowest pending event) is due now. A
    /// tenant whose head waits for a retry is not listed, whatever the
    /// state of its later events: order comes first.
    pub async fn due_tenants(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.tenant FROM webhook_outbox o WHERE o.state = 'pending' \
             AND o.next_attempt_at <= $1 AND o.seq = (SELECT MIN(p.seq) FROM webhook_outbox p \
             WHERE p.tenant = o.tenant AND p.state = 'pending') ORDER BY o.tenant",
        )
        .bind(now_ms)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("tenant").map_err(StoreError::from))
            .collect()
    }

    /// The tenant's next pending events in order, head of line first. The
    /// deliverer sends them one by one and stops at the first failure.
    pub async fn pending(&self, tenant: &str, limit: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        check_text("tenant", tenant)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM webhook_outbox WHERE tenant = $1 AND state = 'pending' ORDER BY seq LIMIT $2"
        ))
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Records an acknowledgement. Guarded on the pending state so a late
    /// answer never resurrects an event an operator already dealt with.
    pub async fn delivered(&self, tenant: &str, seq: i64, now_ms: i64) -> Result<bool, StoreError> {
        check_text("tenant", tenant)?;
        let r = sqlx::query(
            "UPDATE webhook_outbox SET state = 'delivered', delivered_at = $3, \
             attempts = attempts + 1, last_error = NULL \
             WHERE tenant = $1 AND seq = $2 AND state = 'pending'",
        )
        .bind(tenant)
        .bind(seq)
        .bind(now_ms)
        .execute(&self.inner.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a failed attempt: retried at `next_attempt_at`, or dead-lettered
    /// when `dead` (too old), which lets the tenant's queue move on.
    pub async fn failed(
        &self,
        tenant: &str,
        seq: i64,
        error: &str,
        next_attempt_at: i64,
        dead: bool,
    ) -> Result<bool, StoreError> {
        check_text("tenant", tenant)?;
        let sql = if dead {
            "UPDATE webhook_outbox SET state = 'dead', attempts = attempts + 1, last_error = $3, \
             next_attempt_at = $4 WHERE tenant = $1 AND seq = $2 AND state = 'pending'"
        } else {
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $3, \
             next_attempt_at = $4 WHERE tenant = $1 AND seq = $2 AND state = 'pending'"
        };
        let r = sqlx::query(sql)
            .bind(tenant)
            .bind(seq)
            .bind(truncate(error))
            .bind(next_attempt_at)
            .execute(&self.inner.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Takes or renews the tenant's delivery lease. Succeeds when nobody
    /// holds it, the holder's lease lapsed, or `owner` already holds it.
    pub async fn lease(
        &self,
        tenant: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        check_text("tenant", tenant)?;
        check_text("owner", owner)?;
        let r = sqlx::query(
            "INSERT INTO webhook_leases (tenant, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant) DO UPDATE SET owner = $2, expires_at = $3 \
             WHERE webhook_leases.expires_at <= $4 OR webhook_leases.owner = $2",
        )
        .bind(tenant)
        .bind(owner)
        .bind(now_ms + ttl_ms)
        .bind(now_ms)
        .execute(&self.inner.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives the lease up so another replica need not wait for it to lapse.
    pub async fn release(&self, tenant: &str, owner: &str) -> Result<(), StoreError> {
        check_text("tenant", tenant)?;
        check_text("owner", owner)?;
        sqlx::query("DELETE FROM webhook_leases WHERE tenant = $1 AND owner = $2")
            .bind(tenant)
            .bind(owner)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    /// Every tenant's queue, for `webhooks status` and the metrics.
    pub async fn status(&self) -> Result<Vec<OutboxTenantStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, \
             SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS pending, \
             SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END) AS delivered, \
             SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) AS dead, \
             MAX(CASE WHEN state = 'delivered' THEN seq END) AS last_delivered_seq, \
             MIN(CASE WHEN state = 'pending' THEN created_at END) AS oldest_pending_at \
             FROM webhook_outbox GROUP BY tenant ORDER BY tenant",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxTenantStatus {
                    tenant: r.try_get("tenant")?,
                    pending: r.try_get("pending")?,
                    delivered: r.try_get("delivered")?,
                    dead: r.try_get("dead")?,
                    last_delivered_seq: r.try_get("last_delivered_seq")?,
                    oldest_pending_at: r.try_get("oldest_pending_at")?,
                })
            })
            .collect()
    }

    /// A tenant's events from `from_seq` on, in order (tests, `status`).
    pub async fn events(
        &self,
        tenant: &str,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        check_text("tenant", tenant)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM webhook_outbox WHERE tenant = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
        ))
        .bind(tenant)
        .bind(from_seq)
        .bind(limit)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Sends a tenant's events again from `from_seq` on (an app rebuilding
    /// after data loss). Same ids and bodies, so receivers that deduplicate
    /// by `webhook-id` must forget them first; the sequence lets them order.
    pub async fn replay(
        &self,
        tenant: &str,
        from_seq: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        check_text("tenant", tenant)?;
        let r = sqlx::query(
            "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = $3, \
             last_error = NULL, delivered_at = NULL, created_at = $3 \
             WHERE tenant = $1 AND seq >= $2",
        )
        .bind(tenant)
        .bind(from_seq)
        .bind(now_ms)
        .execute(&self.inner.pool)
        .await?;
        let n = r.rows_affected();
        self.inner.outbox.notify_one();
        Ok(n)
    }

    /// Puts dead events back in the queue (all tenants, or one). They are
    /// sent in sequence order before any later pending event of the tenant.
    pub async fn retry_dead(&self, tenant: Option<&str>, now_ms: i64) -> Result<u64, StoreError> {
        let r = match tenant {
            Some(t) => {
                check_text("tenant", t)?;
                sqlx::query(
                    "UPDATE webhook_outbox SET state = 'pending', attempts = 0, \
                     next_attempt_at = $2, created_at = $2 WHERE state = 'dead' AND tenant = $1",
                )
                .bind(t)
                .bind(now_ms)
                .execute(&self.inner.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE webhook_outbox SET state = 'pending', attempts = 0, \
                     next_attempt_at = $1, created_at = $1 WHERE state = 'dead'",
                )
                .bind(now_ms)
                .execute(&self.inner.pool)
                .await?
            }
        };
        self.inner.outbox.notify_one();
        Ok(r.rows_affected())
    }

    /// Retention: forgets delivered and dead events older than `cutoff_ms`
    /// (the replay window). Pending events are kept: a configured receiver
    /// still gets them (see [`OutboxStore::prune_pending`] for when none is).
    pub async fn prune(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let r =
            sqlx::query("DELETE FROM webhook_outbox WHERE state <> 'pending' AND created_at < $1")
                .bind(cutoff_ms)
                .execute(&self.inner.pool)
                .await?;
        Ok(r.rows_affected())
    }

    /// Forgets *pending* events older than `cutoff_ms`: only for a
    /// deployment without a receiver (no `[webhook]`), whose events nobody
    /// will ever take, so they don't pile up forever. An app that starts
    /// listening later gets the current state from `webhooks resync`.
    pub async fn prune_pending(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let r =
            sqlx::query("DELETE FROM webhook_outbox WHERE state = 'pending' AND created_at < $1")
                .bind(cutoff_ms)
                .execute(&self.inner.pool)
                .await?;
        Ok(r.rows_affected())
    }
}
