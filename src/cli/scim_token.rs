//! `portcullis scim-token create`: the two values a tenant's IdP needs.

use clap::Subcommand;

use super::source::{tenant as find_tenant, with_store};
use super::{CliError, ConfigArg, Output, block_on};
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

/// Replaces the tenant's token; only its hash is stored.
pub(super) async fn create(cfg: &Config, tenant: &str) -> Result<Output, CliError> {
    find_tenant(cfg, tenant)?;
    let Ok(new) = crate::scim::token::generate() else {
        return Err(CliError::Failed("no randomness available".into()));
    };
    let new = &new;
    with_store(cfg, |store| async move {
        Ok(store
            .scim()
            .token_set(tenant, &new.key_id, &new.hash, crate::clock::now())
            .await?)
    })
    .await?;
    let mut out = Output::text(format!(
        "SCIM base URL: {}\nBearer token:  {}\n(shown once; any previous token of tenant `{tenant}` no longer works)",
        cfg.public_urls().scim_base(&cfg.scim),
        new.token
    ));
    if !cfg.scim.enabled {
        out = out.note("warning: [scim] enabled = false; the token works once SCIM is enabled");
    }
    Ok(out)
}
