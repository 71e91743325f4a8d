//! Server-side session records.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::seal::Column;
use super::write::WriteTx;
use super::{
    Backend, IdpBinding, Inner, SessionRecord, SessionSelector, StoreError, StoreEvent, check_text,
    events,
};

const SELECT_COLUMNS: &str = "SELECT id_hash, user_id, email, name, tenant, connection, \
     groups_json, roles_json, created_at, expires_at, last_seen_at, idp_subject, idp_session, \
     logout_hint, claims_json, acr, amr_json, auth_time FROM sessions WHERE id_hash = $1";

/// The sessions view of a [`Store`](super::Store): `store.sessions()`.
#[derive(Clone, Copy)]
pub struct SessionStore<'a> {
    pub(super) inner: &'a Inner,
}

impl SessionStore<'_> {
    /// Persists a new session so every replica (and a restarted process) can
    /// honour its cookie. Fails if `id_hash` already exists: ids are random,
    /// so a collision means a bug, not something to overwrite silently.
    pub async fn insert(&self, s: &SessionRecord) -> Result<(), StoreError> {
        for (field, value) in [
            ("id_hash", s.id_hash.as_str()),
            ("user_id", s.user_id.as_str()),
            ("email", s.email.as_str()),
        ] {
            check_text(field, value)?;
        }
        for (field, value) in [
            ("name", &s.name),
            ("tenant", &s.tenant),
            ("connection", &s.connection),
            ("idp_subject", &s.idp.as_ref().map(|i| i.subject.clone())),
            (
                "idp_session",
                &s.idp.as_ref().and_then(|i| i.session.clone()),
            ),
            (
                "logout_hint",
                &s.idp.as_ref().and_then(|i| i.logout_hint.clone()),
            ),
        ] {
            if let Some(value) = value {
                check_text(field, value)?;
            }
        }
        let groups = encode_list("groups", &s.groups)?;
        let roles = encode_list("roles", &s.roles)?;
        let amr = encode_list("amr", &s.amr)?;
        let claims = encode_claims(&s.claims)?;
        if let Some(acr) = &s.acr {
            check_text("acr", acr)?;
        }
        // The ID token (or NameID) is a secret at rest: sealed, bound to
        // this row.
        let logout_hint = match s.idp.as_ref().and_then(|i| i.logout_hint.as_deref()) {
            Some(hint) => Some(self.inner.keys()?.seal(
                Column::LogoutHint,
                &s.id_hash,
                hint.as_bytes(),
            )?),
            None => None,
        };
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, email, name, tenant, connection, \
             groups_json, roles_json, created_at, expires_at, last_seen_at, idp_subject, \
             idp_session, logout_hint, claims_json, acr, amr_json, auth_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18)",
        )
        .bind(s.id_hash.as_str())
        .bind(s.user_id.as_str())
        .bind(s.email.as_str())
        .bind(s.name.as_deref())
        .bind(s.tenant.as_deref())
        .bind(s.connection.as_deref())
        .bind(groups)
        .bind(roles)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.last_seen_at)
        .bind(s.idp.as_ref().map(|i| i.subject.as_str()))
        .bind(s.idp.as_ref().and_then(|i| i.session.as_deref()))
        .bind(logout_hint)
        .bind(claims)
        .bind(s.acr.as_deref())
        .bind(amr)
        .bind(s.auth_time)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Loads a session on a cache miss. Expiry is *not* checked here: the
    /// session layer owns the clock and the idle policy.
    pub async fn get(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        check_text("id_hash", id_hash)?;
        let row = sqlx::query(SELECT_COLUMNS)
            .bind(id_hash)
            .fetch_optional(&self.inner.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut record = decode_session(&row)?;
        if let Some(idp) = record.idp.as_mut()
            && let Some(stored) = idp.logout_hint.take()
        {
            let plain =
                self.inner
                    .keys()?
                    .open(Column::LogoutHint, &record.id_hash, stored.as_bytes())?;
            idp.logout_hint = Some(String::from_utf8(plain).map_err(|_| {
                StoreError::Corrupt("sessions.logout_hint is not UTF-8 once opened".into())
            })?);
        }
        Ok(Some(record))
    }

    /// Records activity for idle expiry. Only moves the timestamp forward, so
    /// a slow replica writing an older time cannot make an active session
    /// look idle. A missing session is not an error: it may have just been
    /// revoked or expired.
    pub async fn touch(&self, id_hash: &str, last_seen_at: i64) -> Result<(), StoreError> {
        check_text("id_hash", id_hash)?;
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2",
        )
        .bind(id_hash)
        .bind(last_seen_at)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Revokes sessions (logout, SCIM deprovisioning, admin action) and tells
    /// every cache to forget them. The event is published even when nothing
    /// was deleted, because a cache may still hold a copy. On PostgreSQL the
    /// NOTIFY is sent in the same transaction as the delete, so other
    /// replicas hear about it exactly when the delete becomes visible.
    pub async fn revoke(&self, selector: &SessionSelector) -> Result<u64, StoreError> {
        self.revoke_then(selector, |_| None).await
    }

    /// [`SessionStore::revoke`] with its audit event, in one transaction:
    /// for revocations that belong to no single tenant (a user, every
    /// session), which have no tenant write transaction to ride in.
    /// `audit` makes the event from the number of sessions ended.
    pub async fn revoke_audited(
        &self,
        selector: &SessionSelector,
        audit: impl FnOnce(u64) -> super::AuditRow,
    ) -> Result<u64, StoreError> {
        self.revoke_then(selector, |n| Some(audit(n))).await
    }

    async fn revoke_then(
        &self,
        selector: &SessionSelector,
        audit: impl FnOnce(u64) -> Option<super::AuditRow>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        let deleted = revoke_in(&mut tx, self.inner.backend, selector).await?;
        if let Some(row) = audit(deleted) {
            super::audit::insert_in(&mut tx, &row).await?;
        }
        tx.commit().await?;
        // No receivers is fine: nobody caches anything yet.
        let _ = self
            .inner
            .events
            .send(StoreEvent::SessionsRevoked(selector.clone()));
        Ok(deleted)
    }

    /// Garbage-collects dead sessions so the table does not grow forever.
    /// No event: readers already refuse expired sessions on their own.
    pub async fn delete_expired(&self, now: i64, idle_cutoff: i64) -> Result<u64, StoreError> {
        let result =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
                .bind(now)
                .bind(idle_cutoff)
                .execute(&self.inner.pool)
                .await?;
        Ok(result.rows_affected())
    }

    /// Feeds the active-sessions gauge and admin tooling.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions")
            .fetch_one(&self.inner.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt("negative session count".into()))
    }

    /// A tenant's sessions, newest first, at most `limit` (logout hints
    /// left sealed out: a listing never needs them).
    pub async fn list_tenant(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        check_text("tenant", tenant)?;
        let rows = sqlx::query(
            "SELECT id_hash, user_id, email, name, tenant, connection, groups_json, roles_json, \
             created_at, expires_at, last_seen_at, idp_subject, idp_session, \
             NULL AS logout_hint, claims_json, acr, amr_json, auth_time FROM sessions \
             WHERE tenant = $1 ORDER BY created_at DESC, id_hash LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(decode_session).collect()
    }

    /// Every session's key (the hashed id), sorted. For checks that an
    /// operation added no session: a count can't tell a new row from an
    /// expired one the sweep removed meanwhile. Reads the whole table, so
    /// never on a request path.
    pub async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id_hash FROM sessions ORDER BY id_hash")
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id_hash").map_err(StoreError::from))
            .collect()
    }
}

/// The sessions view of a [`WriteTx`]: `tx.sessions()`.
pub struct SessionTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl SessionTx<'_> {
    /// Ends sessions as part of this transaction (deprovisioning). Other
    /// processes and replicas learn at commit; this process' subscribers get
    /// the event from [`WriteTx::commit`].
    pub async fn revoke(&mut self, selector: &SessionSelector) -> Result<u64, StoreError> {
        let w = &mut *self.write;
        let backend = w.store.inner.backend;
        let n = revoke_in(&mut w.tx, backend, selector).await?;
        w.revoked.push(selector.clone());
        Ok(n)
    }
}

/// Deletes the selected sessions and records the cross-process event inside
/// the caller's transaction, so an event exists iff the revocation commits.
/// SQLite: other processes on the same file poll `store_events` (see
/// `events::poll_sqlite`). PostgreSQL: the NOTIFY is delivered at commit, so
/// other replicas hear about it exactly when the delete becomes visible. The
/// caller publishes the in-process event after committing.
pub(super) async fn revoke_in(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    selector: &SessionSelector,
) -> Result<u64, StoreError> {
    let (sql, values): (&'static str, Vec<&str>) = match selector {
        SessionSelector::Id(v) => ("DELETE FROM sessions WHERE id_hash = $1", vec![v]),
        SessionSelector::User(v) => ("DELETE FROM sessions WHERE user_id = $1", vec![v]),
        SessionSelector::Tenant(v) => ("DELETE FROM sessions WHERE tenant = $1", vec![v]),
        SessionSelector::Connection(v) => ("DELETE FROM sessions WHERE connection = $1", vec![v]),
        SessionSelector::Idp {
            connection,
            subject,
            session,
        } => match (subject, session) {
            (Some(sub), Some(sid)) => (
                "DELETE FROM sessions WHERE connection = $1 AND idp_subject = $2 \
                 AND idp_session = $3",
                vec![connection, sub, sid],
            ),
            (Some(sub), None) => (
                "DELETE FROM sessions WHERE connection = $1 AND idp_subject = $2",
                vec![connection, sub],
            ),
            (None, Some(sid)) => (
                "DELETE FROM sessions WHERE connection = $1 AND idp_session = $2",
                vec![connection, sid],
            ),
            // Would mean "every session of the connection": an IdP
            // logout message must name whom it means.
            (None, None) => {
                return Err(StoreError::InvalidInput(
                    "an IdP session selector needs a subject or a session".into(),
                ));
            }
        },
        SessionSelector::All => ("DELETE FROM sessions", vec![]),
    };
    for value in &values {
        check_text("selector", value)?;
    }
    let mut query = sqlx::query(sql);
    for value in values {
        query = query.bind(value);
    }
    let event = StoreEvent::SessionsRevoked(selector.clone());
    let deleted = query.execute(&mut *conn).await?.rows_affected();
    match backend {
        Backend::Sqlite => {
            sqlx::query("INSERT INTO store_events (payload, created_at) VALUES ($1, $2)")
                .bind(events::encode(&event))
                .bind(super::unix_now())
                .execute(&mut *conn)
                .await?;
        }
        Backend::Postgres => {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(events::CHANNEL)
                .bind(events::encode(&event))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(deleted)
}

/// Lists are stored as JSON text because the Any driver has no array type.
fn encode_list(field: &str, list: &[String]) -> Result<String, StoreError> {
    for item in list {
        check_text(field, item)?;
    }
    serde_json::to_string(list)
        .map_err(|_| StoreError::InvalidInput(format!("{field} cannot be encoded as JSON")))
}

/// Decodes a JSON list column; the message names the column, never the data.
fn decode_list(row: &AnyRow, column: &str) -> Result<Vec<String>, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text)
        .map_err(|_| StoreError::Corrupt(format!("sessions.{column} is not a JSON string array")))
}

/// A nullable JSON column (added after the table), NULL read as empty.
fn decode_optional<T: serde::de::DeserializeOwned + Default>(
    row: &AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    match row.try_get::<Option<String>, _>(column)? {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|_| StoreError::Corrupt(format!("sessions.{column} is not valid JSON"))),
    }
}

/// Selected claims as a JSON object of string lists.
fn encode_claims(
    claims: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<String, StoreError> {
    for (name, values) in claims {
        check_text("claims", name)?;
        for value in values {
            check_text("claims", value)?;
        }
    }
    serde_json::to_string(claims)
        .map_err(|_| StoreError::InvalidInput("claims cannot be encoded as JSON".into()))
}

/// Maps a row to a record, reporting undecodable data as `Corrupt` rather
/// than guessing.
fn decode_session(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id_hash: row.try_get("id_hash")?,
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        tenant: row.try_get("tenant")?,
        connection: row.try_get("connection")?,
        groups: decode_list(row, "groups_json")?,
        roles: decode_list(row, "roles_json")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        idp: row
            .try_get::<Option<String>, _>("idp_subject")?
            .map(|subject| -> Result<IdpBinding, StoreError> {
                Ok(IdpBinding {
                    subject,
                    session: row.try_get("idp_session")?,
                    logout_hint: row.try_get("logout_hint")?,
                })
            })
            .transpose()?,
        claims: decode_optional(row, "claims_json")?,
        acr: row.try_get("acr")?,
        amr: decode_optional(row, "amr_json")?,
        auth_time: row.try_get("auth_time")?,
    })
}
