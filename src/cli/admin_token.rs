//! `portcullis admin-token create | list | revoke`: operator tokens of the
//! admin API. The token is printed once; the store keeps its hash. Creating
//! and revoking are audited (actor `cli`, the local user).

use std::fmt::Write as _;

use clap::Subcommand;

use super::source::with_store;
use super::{CliError, ConfigArg, Output, block_on, rfc3339};
use crate::admin::Actor;
use crate::admin::tokens::{self, TokenError};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub(super) enum AdminTokenCommand {
    /// Create a token called NAME and print it (once).
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        name: String,
    },
    /// List tokens: name, key id, created, last used, revoked.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Revoke the active token called NAME (at once, on every replica).
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        name: String,
    },
}

pub(super) fn run(cmd: AdminTokenCommand) -> Result<Output, CliError> {
    match cmd {
        AdminTokenCommand::Create { config, name } => block_on(create(&config.load()?, &name)),
        AdminTokenCommand::List { config } => block_on(list(&config.load()?)),
        AdminTokenCommand::Revoke { config, name } => block_on(revoke(&config.load()?, &name)),
    }
}

fn token_error(e: TokenError) -> CliError {
    match e {
        TokenError::Store(s) => CliError::Store(s),
        TokenError::Name => CliError::Usage(e.to_string()),
        other => CliError::Failed(other.to_string()),
    }
}

pub async fn create(cfg: &Config, name: &str) -> Result<Output, CliError> {
    let new = with_store(cfg, |store| async move {
        tokens::create(&store, name, &Actor::cli())
            .await
            .map_err(token_error)
    })
    .await?;
    Ok(Output::text(new.token).note(format!(
        "admin token `{name}` (key id {}); shown once, the store keeps only its hash",
        new.key_id
    )))
}

pub async fn list(cfg: &Config) -> Result<Output, CliError> {
    let rows = with_store(cfg, |store| async move {
        Ok(store.admin_tokens().list().await?)
    })
    .await?;
    let mut out = format!(
        "{:<24} {:<16} {:<20} {:<20} revoked\n",
        "name", "key id", "created", "last used"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<24} {:<16} {:<20} {:<20} {}",
            r.name,
            r.key_id,
            rfc3339(r.created_at),
            r.last_used_at.map_or_else(|| "-".into(), rfc3339),
            r.revoked_at.map_or_else(|| "-".into(), rfc3339),
        );
    }
    Ok(Output::text(out))
}

pub async fn revoke(cfg: &Config, name: &str) -> Result<Output, CliError> {
    with_store(cfg, |store| async move {
        tokens::revoke(&store, name, &Actor::cli())
            .await
            .map_err(token_error)
    })
    .await?;
    Ok(Output::text(format!("admin token `{name}` revoked")))
}
