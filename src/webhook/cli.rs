//! `portcullis webhooks …`: what operators need when an app was down, lost
//! data or rejected events.

use std::fmt::Write as _;

use crate::store::{Store, StoreError};

/// Per-tenant queue table.
pub async fn status(store: &Store) -> Result<String, StoreError> {
    let rows = store.outbox_status().await?;
    if rows.is_empty() {
        return Ok("no webhook events recorded\n".into());
    }
    let now = crate::clock::now_ms();
    let mut out = format!(
        "{:<24} {:>9} {:>10} {:>6} {:>15} {:>12}\n",
        "TENANT", "PENDING", "DELIVERED", "DEAD", "LAST DELIVERED", "OLDEST AGE"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>10} {:>6} {:>15} {:>12}",
            r.tenant,
            r.pending,
            r.delivered,
            r.dead,
            r.last_delivered_seq
                .map_or("-".to_owned(), |s| format!("#{s}")),
            r.oldest_pending_at.map_or("-".to_owned(), |t| format!(
                "{}s",
                ((now - t) / 1000).max(0)
            )),
        );
    }
    Ok(out)
}

pub async fn replay(store: &Store, tenant: &str, from_seq: i64) -> Result<String, StoreError> {
    let n = store
        .outbox_replay(tenant, from_seq.max(1), crate::clock::now_ms())
        .await?;
    Ok(format!(
        "{n} event(s) of tenant {tenant} from #{} queued again (same ids; a running server sends them in order)\n",
        from_seq.max(1)
    ))
}

pub async fn retry_dead(store: &Store, tenant: Option<&str>) -> Result<String, StoreError> {
    let n = store
        .outbox_retry_dead(tenant, crate::clock::now_ms())
        .await?;
    Ok(format!("{n} dead event(s) queued again\n"))
}
