//! `portcullis audit list`: the audit log of admin changes, newest first.

use std::fmt::Write as _;

use clap::Subcommand;

use super::source::with_store;
use super::{CliError, ConfigArg, Output, block_on, rfc3339};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Show audit events, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

pub(super) fn run(cmd: AuditCommand) -> Result<Output, CliError> {
    match cmd {
        AuditCommand::List {
            config,
            tenant,
            limit,
        } => block_on(list(&config.load()?, tenant.as_deref(), limit)),
    }
}

pub async fn list(cfg: &Config, tenant: Option<&str>, limit: i64) -> Result<Output, CliError> {
    let rows = with_store(cfg, |store| async move {
        Ok(store
            .audit()
            .list(tenant, None, limit.clamp(1, 10_000))
            .await?)
    })
    .await?;
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "{} {} {}:{} {} {} {}",
            rfc3339(r.at_ms / 1000),
            r.tenant.as_deref().unwrap_or("-"),
            r.actor_kind,
            r.actor,
            r.action,
            r.target,
            r.after_json.as_deref().unwrap_or("-"),
        );
    }
    Ok(Output::text(out))
}
