//! `portcullis scim-token create`: the two values a tenant's IdP needs.

use clap::Subcommand;

use super::local::with_ops;
use super::source::tenant as find_tenant;
use super::{CliError, ConfigArg, Output, block_on};
use crate::admin::{Actor, ops};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub(super) enum ScimTokenCommand {
    /// Print the SCIM base URL and a new bearer token for TENANT (shown
    /// once; the store keeps only its hash). The previous token stops working.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
    },
}

pub(super) fn run(cmd: ScimTokenCommand) -> Result<Output, CliError> {
    match cmd {
        ScimTokenCommand::Create { config, tenant } => {
            let cfg = config.load()?;
            block_on(create(&cfg, &tenant))
        }
    }
}

/// Replaces the tenant's token through `admin::ops` (actor `cli`, audited
/// like the API's); only its hash is stored.
pub(super) async fn create(cfg: &Config, tenant: &str) -> Result<Output, CliError> {
    find_tenant(cfg, tenant)?;
    let new = with_ops(cfg, |cur| async move {
        ops::rotate_scim_token(&cur, &Actor::cli(), tenant).await
    })
    .await?;
    let mut out = Output::text(format!(
        "SCIM base URL: {}\nBearer token:  {}\n(shown once; any previous token of tenant `{tenant}` no longer works)",
        new.base_url, new.token
    ));
    if !cfg.scim.enabled {
        out = out.note("warning: [scim] enabled = false; the token works once SCIM is enabled");
    }
    Ok(out)
}
