//! Tenants and connections made through the admin API. The store keeps
//! documents (the config file's keys as JSON) and knows nothing of their
//! meaning: `config::merge_store_tenants` validates them into the running
//! configuration. A connection is sealed whole (it may carry a client
//! secret or a private key), bound to its id.

use sqlx::Row;

use super::seal::Column;
use super::write::WriteTx;
use super::{Inner, StoreError, StoreKeys, check_text, unix_now};

/// One stored tenant with its connections (opened), in position order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTenant {
    pub id: String,
    /// The tenant document without `connections`.
    pub doc: serde_json::Value,
    pub connections: Vec<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl StoredTenant {
    /// The whole tenant document, connections included: what the config
    /// loader decodes.
    pub fn document(&self) -> serde_json::Value {
        let mut doc = self.doc.clone();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert(
                "connections".into(),
                serde_json::Value::Array(self.connections.clone()),
            );
        }
        doc
    }
}

/// The tenants view of a [`Store`](super::Store): `store.tenants()`.
#[derive(Clone, Copy)]
pub struct TenantStore<'a> {
    pub(super) inner: &'a Inner,
}

impl TenantStore<'_> {
    /// Every stored tenant in creation order.
    pub async fn load_all(&self) -> Result<Vec<StoredTenant>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        load_all(&mut conn, self.inner.keys()?).await
    }

    /// Every stored tenant as its document (with its `connections`), in
    /// creation order: what `config::merge_store_tenants` takes.
    pub async fn documents(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(self
            .load_all()
            .await?
            .iter()
            .map(StoredTenant::document)
            .collect())
    }

    /// The configuration version: bumped by every tenant write, compared by
    /// replicas to know whether they are behind.
    pub async fn version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT version FROM tenant_config_version WHERE id = 1")
                .fetch_one(&self.inner.pool)
                .await?
                .try_get("version")?,
        )
    }
}

/// The tenants view of a [`WriteTx`] opened by
/// [`Store::begin_config`](super::Store::begin_config): `tx.tenants()`.
pub struct TenantTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl TenantTx<'_> {
    fn locked(&self) -> Result<(), StoreError> {
        match self.write.config_version() {
            Some(_) => Ok(()),
            None => Err(StoreError::InvalidInput(
                "tenant writes need a transaction from begin_config".into(),
            )),
        }
    }

    /// Every stored tenant as this transaction sees it (under the writers'
    /// lock, so what is validated against it still holds at commit).
    pub async fn load_all(&mut self) -> Result<Vec<StoredTenant>, StoreError> {
        let keys = self.write.store.inner.keys()?;
        load_all(&mut self.write.tx, keys).await
    }

    /// [`TenantStore::documents`] as this transaction sees them.
    pub async fn documents(&mut self) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(self
            .load_all()
            .await?
            .iter()
            .map(StoredTenant::document)
            .collect())
    }

    /// Creates or replaces the tenant document (without connections).
    pub async fn put_tenant(
        &mut self,
        id: &str,
        doc: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.locked()?;
        check_text("id", id)?;
        let text = encode(doc)?;
        let now = unix_now();
        sqlx::query(
            "INSERT INTO tenants (id, doc, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(text)
        .bind(now)
        .execute(&mut *self.write.tx)
        .await?;
        Ok(())
    }

    /// Deletes the tenant and (cascade) its connections; whether it existed.
    pub async fn delete_tenant(&mut self, id: &str) -> Result<bool, StoreError> {
        self.locked()?;
        check_text("id", id)?;
        sqlx::query("DELETE FROM tenant_connections WHERE tenant = $1")
            .bind(id)
            .execute(&mut *self.write.tx)
            .await?;
        Ok(sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(&mut *self.write.tx)
            .await?
            .rows_affected()
            > 0)
    }

    /// Creates or replaces connection `id` of `tenant`, sealed. An id held
    /// by another tenant is a [`StoreError::Conflict`] naming it.
    pub async fn put_connection(
        &mut self,
        tenant: &str,
        position: i64,
        id: &str,
        doc: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.locked()?;
        check_text("tenant", tenant)?;
        check_text("id", id)?;
        let owner: Option<String> =
            sqlx::query("SELECT tenant FROM tenant_connections WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *self.write.tx)
                .await?
                .map(|r| r.try_get("tenant"))
                .transpose()?;
        if let Some(owner) = owner
            && owner != tenant
        {
            return Err(StoreError::Conflict { owner });
        }
        let sealed = self.write.store.inner.keys()?.seal(
            Column::ConnectionDoc,
            id,
            encode(doc)?.as_bytes(),
        )?;
        let now = unix_now();
        sqlx::query(
            "INSERT INTO tenant_connections (id, tenant, position, doc, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO UPDATE SET \
             position = excluded.position, doc = excluded.doc, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(tenant)
        .bind(position)
        .bind(sealed)
        .bind(now)
        .execute(&mut *self.write.tx)
        .await?;
        Ok(())
    }

    /// Deletes connection `id` of `tenant`; whether it existed.
    pub async fn delete_connection(&mut self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.locked()?;
        check_text("id", id)?;
        Ok(
            sqlx::query("DELETE FROM tenant_connections WHERE id = $1 AND tenant = $2")
                .bind(id)
                .bind(tenant)
                .execute(&mut *self.write.tx)
                .await?
                .rows_affected()
                > 0,
        )
    }
}

fn encode(doc: &serde_json::Value) -> Result<String, StoreError> {
    let text = serde_json::to_string(doc)
        .map_err(|_| StoreError::InvalidInput("document cannot be encoded as JSON".into()))?;
    check_text("doc", &text)?;
    Ok(text)
}

async fn load_all(
    conn: &mut sqlx::AnyConnection,
    keys: &StoreKeys,
) -> Result<Vec<StoredTenant>, StoreError> {
    let tenants =
        sqlx::query("SELECT id, doc, created_at, updated_at FROM tenants ORDER BY created_at, id")
            .fetch_all(&mut *conn)
            .await?;
    let connections = sqlx::query(
        "SELECT id, tenant, doc FROM tenant_connections ORDER BY tenant, position, created_at, id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(tenants.len());
    for row in tenants {
        let id: String = row.try_get("id")?;
        let doc: String = row.try_get("doc")?;
        out.push(StoredTenant {
            doc: serde_json::from_str(&doc)
                .map_err(|_| StoreError::Corrupt(format!("tenants.doc of `{id}` is not JSON")))?,
            id,
            connections: Vec::new(),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        });
    }
    for row in connections {
        let id: String = row.try_get("id")?;
        let tenant: String = row.try_get("tenant")?;
        let sealed: String = row.try_get("doc")?;
        let plain = keys.open(Column::ConnectionDoc, &id, sealed.as_bytes())?;
        let doc = serde_json::from_slice(&plain).map_err(|_| {
            StoreError::Corrupt(format!("tenant_connections.doc of `{id}` is not JSON"))
        })?;
        if let Some(t) = out.iter_mut().find(|t| t.id == tenant) {
            t.connections.push(doc);
        }
    }
    Ok(out)
}
