//! The startup step that keeps every sealed column under the first
//! configured key: legacy plaintext rows (written before sealing existed)
//! are sealed, rows sealed under an older key are re-sealed, and a row
//! sealed under a key that is not configured stops startup with a message
//! naming the key id. It runs on every open, costs one indexed-free scan
//! that matches nothing once everything is current, and needs no schema
//! change (the sealed text fits the existing columns), so it is a step of
//! `Store::open` rather than a numbered SQL migration: a SQL migration
//! can't hold the key.
//!
//! Replicas may run it at once: each rewrite is a compare-and-set on the
//! old value, so the loser's update matches nothing and changes nothing.

use sqlx::{AnyPool, Row};

use super::StoreError;
use super::seal::{Column, StoreKeys, Stored, classify};

/// Rows re-sealed per transaction.
const BATCH: i64 = 500;

/// What the step changed, for the startup log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResealReport {
    /// Legacy plaintext values that are now sealed.
    pub sealed: u64,
    /// Values moved from an older key to the first one.
    pub resealed: u64,
}

/// Brings `keys.material`, `sessions.logout_hint` and
/// `tenant_connections.doc` under the first key.
pub(super) async fn run(pool: &AnyPool, keys: &StoreKeys) -> Result<ResealReport, StoreError> {
    let mut report = ResealReport::default();
    keys_table(pool, keys, &mut report).await?;
    sessions_table(pool, keys, &mut report).await?;
    connections_table(pool, keys, &mut report).await?;
    if report != ResealReport::default() {
        tracing::info!(
            sealed = report.sealed,
            resealed = report.resealed,
            key_id = keys.sealing_id(),
            "store secrets sealed under the first [store] encryption_key"
        );
    }
    Ok(report)
}

/// The few long-lived keys. Every one is opened, even when already under
/// the first key, so a wrong key is a startup error rather than a failure
/// at the first request that needs the key.
async fn keys_table(
    pool: &AnyPool,
    keys: &StoreKeys,
    report: &mut ResealReport,
) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT purpose, material FROM keys ORDER BY purpose")
        .fetch_all(pool)
        .await?;
    for row in rows {
        let purpose: String = row.try_get("purpose")?;
        let material: Vec<u8> = row.try_get("material")?;
        let plain = match classify(&material) {
            Stored::Plain => {
                report.sealed += 1;
                material.clone()
            }
            Stored::Sealed { key_id, .. } => {
                let current = key_id == keys.sealing_id();
                let plain = keys.open(Column::KeyMaterial, &purpose, &material)?;
                if current {
                    continue;
                }
                report.resealed += 1;
                plain
            }
        };
        let sealed = keys.seal(Column::KeyMaterial, &purpose, &plain)?;
        sqlx::query("UPDATE keys SET material = $1 WHERE purpose = $2 AND material = $3")
            .bind(sealed.into_bytes())
            .bind(purpose.as_str())
            .bind(material)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Sessions can be many: keyset batches, one transaction each.
async fn sessions_table(
    pool: &AnyPool,
    keys: &StoreKeys,
    report: &mut ResealReport,
) -> Result<(), StoreError> {
    let current = format!("pcs1:{}:%", keys.sealing_id());
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT id_hash, logout_hint FROM sessions \
             WHERE logout_hint IS NOT NULL AND logout_hint NOT LIKE $1 AND id_hash > $2 \
             ORDER BY id_hash LIMIT $3",
        )
        .bind(current.as_str())
        .bind(after.as_str())
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.try_get("id_hash")?;
        let mut tx = pool.begin().await?;
        for row in &rows {
            let id_hash: String = row.try_get("id_hash")?;
            let hint: String = row.try_get("logout_hint")?;
            let plain = match classify(hint.as_bytes()) {
                Stored::Plain => {
                    report.sealed += 1;
                    hint.clone().into_bytes()
                }
                Stored::Sealed { .. } => {
                    report.resealed += 1;
                    keys.open(Column::LogoutHint, &id_hash, hint.as_bytes())?
                }
            };
            let sealed = keys.seal(Column::LogoutHint, &id_hash, &plain)?;
            sqlx::query(
                "UPDATE sessions SET logout_hint = $1 WHERE id_hash = $2 AND logout_hint = $3",
            )
            .bind(sealed)
            .bind(id_hash.as_str())
            .bind(hint.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
}

/// Connections made through the admin API: few, opened one by one (a
/// wrong key stops startup here rather than at the first rebuild).
async fn connections_table(
    pool: &AnyPool,
    keys: &StoreKeys,
    report: &mut ResealReport,
) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT id, doc FROM tenant_connections ORDER BY id")
        .fetch_all(pool)
        .await?;
    for row in rows {
        let id: String = row.try_get("id")?;
        let doc: String = row.try_get("doc")?;
        let plain = match classify(doc.as_bytes()) {
            Stored::Plain => {
                report.sealed += 1;
                doc.clone().into_bytes()
            }
            Stored::Sealed { key_id, .. } => {
                let current = key_id == keys.sealing_id();
                let plain = keys.open(Column::ConnectionDoc, &id, doc.as_bytes())?;
                if current {
                    continue;
                }
                report.resealed += 1;
                plain
            }
        };
        let sealed = keys.seal(Column::ConnectionDoc, &id, &plain)?;
        sqlx::query("UPDATE tenant_connections SET doc = $1 WHERE id = $2 AND doc = $3")
            .bind(sealed)
            .bind(id.as_str())
            .bind(doc.as_str())
            .execute(pool)
            .await?;
    }
    Ok(())
}
