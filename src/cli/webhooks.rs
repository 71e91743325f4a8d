//! `portcullis webhooks …`: what operators need when an app was down, lost
//! data or rejected events. Delivery itself is `webhook/`; these only read
//! and requeue the outbox.

use std::fmt::Write as _;

use clap::Subcommand;

use super::source::{tenant as find_tenant, with_store};
use super::{CliError, ConfigArg, Output, block_on};
use crate::config::Config;
use crate::store::{OutboxTenantStatus, Store, StoreError};

#[derive(Debug, Subcommand)]
pub(super) enum WebhooksCommand {
    /// Per tenant: pending, delivered and dead events, the last delivered
    /// sequence number and the oldest pending event (time and age).
    Status {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Send a tenant's events again from sequence number N on, in order.
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        from_seq: i64,
    },
    /// Emit a tenant's whole current state (users, groups, memberships) as
    /// events, so an app can rebuild from scratch.
    Resync {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
    },
    /// Queue dead-lettered events again (all tenants, or one).
    RetryDead {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: Option<String>,
    },
}

pub(super) fn run(cmd: WebhooksCommand) -> Result<Output, CliError> {
    match cmd {
        WebhooksCommand::Status { config } => {
            let cfg = config.load()?;
            block_on(with_store(&cfg, |store| async move {
                Ok(Output::text(status(&store).await?))
            }))
        }
        WebhooksCommand::Replay {
            config,
            tenant,
            from_seq,
        } => {
            let cfg = config.load()?;
            let tenant = &tenant;
            block_on(with_store(&cfg, |store| async move {
                Ok(Output::text(replay(&store, tenant, from_seq).await?))
            }))
        }
        WebhooksCommand::RetryDead { config, tenant } => {
            let cfg = config.load()?;
            let tenant = tenant.as_deref();
            block_on(with_store(&cfg, |store| async move {
                Ok(Output::text(retry_dead(&store, tenant).await?))
            }))
        }
        WebhooksCommand::Resync { config, tenant } => {
            let cfg = config.load()?;
            block_on(resync(&cfg, &tenant))
        }
    }
}

/// Per-tenant queue table.
pub(super) async fn status(store: &Store) -> Result<String, StoreError> {
    Ok(render_status(
        &store.outbox().status().await?,
        crate::clock::now_ms(),
    ))
}

/// The oldest pending event's time in RFC 3339 (like every listing) and
/// its age, the number an operator watches.
fn render_status(rows: &[OutboxTenantStatus], now_ms: i64) -> String {
    if rows.is_empty() {
        return "no webhook events recorded\n".into();
    }
    let mut out = format!(
        "{:<24} {:>9} {:>10} {:>6} {:>15} {:>20} {:>12}\n",
        "TENANT", "PENDING", "DELIVERED", "DEAD", "LAST DELIVERED", "OLDEST PENDING", "OLDEST AGE"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>10} {:>6} {:>15} {:>20} {:>12}",
            r.tenant,
            r.pending,
            r.delivered,
            r.dead,
            r.last_delivered_seq
                .map_or("-".to_owned(), |s| format!("#{s}")),
            r.oldest_pending_at
                .map_or("-".to_owned(), |t| super::rfc3339(t.div_euclid(1000))),
            r.oldest_pending_at.map_or("-".to_owned(), |t| format!(
                "{}s",
                ((now_ms - t) / 1000).max(0)
            )),
        );
    }
    out
}

pub(super) async fn replay(
    store: &Store,
    tenant: &str,
    from_seq: i64,
) -> Result<String, StoreError> {
    let n = store
        .outbox()
        .replay(tenant, from_seq.max(1), crate::clock::now_ms())
        .await?;
    Ok(format!(
        "{n} event(s) of tenant {tenant} from #{} queued again (same ids; a running server sends them in order)\n",
        from_seq.max(1)
    ))
}

pub(super) async fn retry_dead(store: &Store, tenant: Option<&str>) -> Result<String, StoreError> {
    let n = store
        .outbox()
        .retry_dead(tenant, crate::clock::now_ms())
        .await?;
    Ok(format!("{n} dead event(s) queued again\n"))
}

/// The tenant's whole current state as events, behind the pending ones.
pub(super) async fn resync(cfg: &Config, tenant: &str) -> Result<Output, CliError> {
    let tenant_cfg = find_tenant(cfg, tenant)?;
    let base = cfg.public_urls().scim_base(&cfg.scim);
    let base = &base;
    with_store(cfg, |store| async move {
        // Events mark each address `verified_domain` as of now.
        let emails =
            crate::scim::emails::TenantEmails::load(&store, tenant, Some(tenant_cfg)).await?;
        let r = crate::scim::events::resync(&store, tenant, base, &emails).await?;
        Ok(Output::text(format!(
            "tenant {tenant}: {} user(s), {} group(s), {} membership(s) queued as events",
            r.users, r.groups, r.memberships
        )))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_the_oldest_pending_event_as_rfc3339_and_its_age() {
        let rows = [
            OutboxTenantStatus {
                tenant: "acme".into(),
                pending: 2,
                delivered: 5,
                dead: 1,
                last_delivered_seq: Some(5),
                oldest_pending_at: Some(1_700_000_000_500),
            },
            OutboxTenantStatus {
                tenant: "globex".into(),
                pending: 0,
                delivered: 3,
                dead: 0,
                last_delivered_seq: Some(3),
                oldest_pending_at: None,
            },
        ];
        let table = render_status(&rows, 1_700_000_042_000);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cols,
            ["acme", "2", "5", "1", "#5", "2023-11-14T22:13:20Z", "41s"],
            "{table}"
        );
        let cols: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cols, ["globex", "0", "3", "0", "#3", "-", "-"], "{table}");
        assert_eq!(render_status(&[], 0), "no webhook events recorded\n");
    }
}
