//! `portcullis connections list | test`.

use std::fmt::Write as _;

use clap::Subcommand;

use super::{CliError, ConfigArg, Output};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub(super) enum ConnectionsCommand {
    /// Every configured connection with its tenant and protocol.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print a one-time link (10 minutes) that runs the real flow and shows
    /// the claims, the mapped principal and the verdict, creating nothing.
    Test {
        #[command(flatten)]
        config: ConfigArg,
        connection: String,
    },
}

pub(super) fn run(cmd: ConnectionsCommand) -> Result<Output, CliError> {
    match cmd {
        ConnectionsCommand::List { config } => Ok(list(&config.load()?)),
        ConnectionsCommand::Test { config, connection } => {
            test_link(&config.load()?, &connection, crate::clock::now())
        }
    }
}

pub(super) fn list(cfg: &Config) -> Output {
    let mut out = format!(
        "{:<16} {:<24} {:<9} {:<10} name\n",
        "tenant", "connection", "kind", "preset"
    );
    for t in &cfg.tenants {
        for c in &t.connections {
            let _ = writeln!(
                out,
                "{:<16} {:<24} {:<9} {:<10} {}",
                t.id,
                c.id,
                c.kind().map_or("-", crate::config::ConnectionKind::label),
                c.preset.as_deref().unwrap_or("-"),
                c.display_name.as_deref().unwrap_or("-")
            );
        }
    }
    // What the operator registers once at each pre-configured provider.
    let urls = cfg.public_urls();
    for kind in crate::config::PlatformKind::ALL {
        if cfg.platform.providers.has(kind) {
            let _ = writeln!(
                out,
                "\n{} redirect URI: {}",
                kind.display_name(),
                urls.platform_callback(kind)
            );
        }
    }
    Output::text(out)
}

/// The test sign-in link for `connection`, valid from `now`.
pub(super) fn test_link(cfg: &Config, connection: &str, now: i64) -> Result<Output, CliError> {
    if !cfg
        .tenants
        .iter()
        .any(|t| t.connections.iter().any(|c| c.id == connection))
    {
        return Err(CliError::Usage(format!(
            "no connection `{connection}` in the configuration"
        )));
    }
    let Some((url, _)) =
        crate::auth::TestLinks::new(&cfg.session).url(&cfg.public_urls(), connection, now)
    else {
        return Err(CliError::Failed(
            "could not create a test link (no session key or randomness)".into(),
        ));
    };
    Ok(Output::text(url).note("Open it in a browser within 10 minutes; it works once."))
}
