//! The audit log: one row per admin change, written in the change's own
//! transaction (so a change without its event, or an event without its
//! change, can't exist). Redaction happens before a row gets here.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::write::WriteTx;
use super::{Inner, StoreError, check_text};

/// One audit event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Assigned by the store; ignored on insert.
    pub id: i64,
    pub at_ms: i64,
    pub tenant: Option<String>,
    /// `operator_token`, `setup_link`, `tenant_admin` or `cli`.
    pub actor_kind: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub request_id: Option<String>,
}

/// The audit view of a [`Store`](super::Store): `store.audit()`.
#[derive(Clone, Copy)]
pub struct AuditStore<'a> {
    pub(super) inner: &'a Inner,
}

impl AuditStore<'_> {
    /// Newest first: at most `limit` events older than `before` (an id),
    /// of one tenant or all.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let before = before.unwrap_or(i64::MAX);
        let rows = match tenant {
            Some(t) => {
                check_text("tenant", t)?;
                sqlx::query(
                    "SELECT id, at_ms, tenant, actor_kind, actor, action, target, before_json, \
                     after_json, request_id FROM audit_events WHERE tenant = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(t)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.inner.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, at_ms, tenant, actor_kind, actor, action, target, before_json, \
                     after_json, request_id FROM audit_events WHERE id < $1 \
                     ORDER BY id DESC LIMIT $2",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(&self.inner.pool)
                .await?
            }
        };
        rows.iter().map(decode).collect()
    }
}

/// The audit view of a [`WriteTx`]: `tx.audit()`.
pub struct AuditTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl AuditTx<'_> {
    /// Adds the event to this transaction: it commits with the change.
    pub async fn record(&mut self, row: &AuditRow) -> Result<(), StoreError> {
        insert_in(&mut self.write.tx, row).await
    }
}

pub(super) async fn insert_in(
    conn: &mut sqlx::AnyConnection,
    r: &AuditRow,
) -> Result<(), StoreError> {
    for (field, value) in [
        ("actor_kind", Some(r.actor_kind.as_str())),
        ("actor", Some(r.actor.as_str())),
        ("action", Some(r.action.as_str())),
        ("target", Some(r.target.as_str())),
        ("tenant", r.tenant.as_deref()),
        ("before_json", r.before_json.as_deref()),
        ("after_json", r.after_json.as_deref()),
        ("request_id", r.request_id.as_deref()),
    ] {
        if let Some(v) = value {
            check_text(field, v)?;
        }
    }
    sqlx::query(
        "INSERT INTO audit_events (at_ms, tenant, actor_kind, actor, action, target, \
         before_json, after_json, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(r.at_ms)
    .bind(r.tenant.as_deref())
    .bind(r.actor_kind.as_str())
    .bind(r.actor.as_str())
    .bind(r.action.as_str())
    .bind(r.target.as_str())
    .bind(r.before_json.as_deref())
    .bind(r.after_json.as_deref())
    .bind(r.request_id.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn decode(row: &AnyRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: row.try_get("id")?,
        at_ms: row.try_get("at_ms")?,
        tenant: row.try_get("tenant")?,
        actor_kind: row.try_get("actor_kind")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        before_json: row.try_get("before_json")?,
        after_json: row.try_get("after_json")?,
        request_id: row.try_get("request_id")?,
    })
}
