//! `portcullis service-accounts create | list | rotate | revoke`: a
//! tenant's machine callers. The CLI runs the admin API's operations
//! (`admin::service_accounts`) with the actor `cli` (the local user), so
//! every change is audited and announced to running replicas the same way;
//! a token is printed once, the store keeps its hash.

use std::fmt::Write as _;

use clap::Subcommand;

use super::local::{admin_ctx, op_error};
use super::source::with_store;
use super::{CliError, ConfigArg, Output, block_on, rfc3339};
use crate::admin::Actor;
use crate::admin::service_accounts::{
    self, DEFAULT_OVERLAP_SECONDS, RotateInput, ServiceAccountInput, ServiceAccountToken,
};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub(super) enum ServiceAccountsCommand {
    /// Create service account NAME in TENANT and print its token (once).
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// The role its requests carry.
        #[arg(long)]
        role: Option<String>,
        /// Days until the account stops working (default: never).
        #[arg(long, value_name = "DAYS")]
        expires: Option<i64>,
    },
    /// List TENANT's service accounts: name, id, role, status, tokens.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
    },
    /// Print a new token for NAME; the previous one keeps working for the
    /// overlap, then stops.
    Rotate {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Seconds the previous token keeps working (0: stops at once).
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_OVERLAP_SECONDS)]
        overlap: i64,
    },
    /// Revoke NAME: every token of it stops at once, on every replica.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
    },
}

pub(super) fn run(cmd: ServiceAccountsCommand) -> Result<Output, CliError> {
    match cmd {
        ServiceAccountsCommand::Create {
            config,
            tenant,
            name,
            role,
            expires,
        } => {
            let input = ServiceAccountInput {
                name,
                role,
                expires_days: expires,
            };
            block_on(create(&config.load()?, &tenant, &input))
        }
        ServiceAccountsCommand::List { config, tenant } => block_on(list(&config.load()?, &tenant)),
        ServiceAccountsCommand::Rotate {
            config,
            tenant,
            name,
            overlap,
        } => block_on(rotate(&config.load()?, &tenant, &name, overlap)),
        ServiceAccountsCommand::Revoke {
            config,
            tenant,
            name,
        } => block_on(revoke(&config.load()?, &tenant, &name)),
    }
}

fn printed(t: &ServiceAccountToken, what: &str) -> Output {
    Output::text(t.token.clone()).note(format!(
        "{what} service account `{}` of tenant `{}` (id {}); send it as `Authorization: Bearer <token>`; shown once, the store keeps only its hash",
        t.account.name, t.account.tenant, t.account.id
    ))
}

pub async fn create(
    cfg: &Config,
    tenant: &str,
    input: &ServiceAccountInput,
) -> Result<Output, CliError> {
    let t = with_store(cfg, |store| async move {
        let ctx = admin_ctx(cfg, &store).await?;
        service_accounts::create(&ctx, &Actor::cli(), tenant, input)
            .await
            .map_err(op_error)
    })
    .await?;
    Ok(printed(&t, "token of the new"))
}

pub async fn list(cfg: &Config, tenant: &str) -> Result<Output, CliError> {
    let all = with_store(cfg, |store| async move {
        let ctx = admin_ctx(cfg, &store).await?;
        service_accounts::list(&ctx, tenant).await.map_err(op_error)
    })
    .await?;
    let mut out = format!(
        "{:<24} {:<19} {:<12} {:<8} {:<20} {:<20} tokens (key id, retires)\n",
        "name", "id", "role", "status", "expires", "last used"
    );
    for a in all {
        let keys = a
            .keys
            .iter()
            .map(|k| match k.retires_at {
                Some(r) => format!("{} (until {})", k.key_id, rfc3339(r)),
                None => k.key_id.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "{:<24} {:<19} {:<12} {:<8} {:<20} {:<20} {}",
            a.name,
            a.id,
            a.role.as_deref().unwrap_or("-"),
            a.status,
            a.expires_at.map_or_else(|| "-".into(), rfc3339),
            a.last_used_at.map_or_else(|| "-".into(), rfc3339),
            if keys.is_empty() { "-".into() } else { keys },
        );
    }
    Ok(Output::text(out))
}

pub async fn rotate(
    cfg: &Config,
    tenant: &str,
    name: &str,
    overlap: i64,
) -> Result<Output, CliError> {
    let input = RotateInput {
        overlap_seconds: Some(overlap),
    };
    let input = &input;
    let t = with_store(cfg, |store| async move {
        let ctx = admin_ctx(cfg, &store).await?;
        service_accounts::rotate(&ctx, &Actor::cli(), tenant, name, input)
            .await
            .map_err(op_error)
    })
    .await?;
    Ok(printed(&t, "new token of the").note(format!(
        "the previous token works for {overlap} more seconds"
    )))
}

pub async fn revoke(cfg: &Config, tenant: &str, name: &str) -> Result<Output, CliError> {
    with_store(cfg, |store| async move {
        let ctx = admin_ctx(cfg, &store).await?;
        service_accounts::revoke(&ctx, &Actor::cli(), tenant, name)
            .await
            .map_err(op_error)
    })
    .await?;
    Ok(Output::text(format!(
        "service account `{name}` of tenant `{tenant}` revoked; its tokens stop working at once"
    )))
}
