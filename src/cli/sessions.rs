//! `portcullis sessions mint | revoke`.

use clap::Subcommand;

use super::local::with_ops;
use super::source::open_store;
use super::{CliError, ConfigArg, Output, block_on};
use crate::admin::{Actor, operator};
use crate::config::Config;
use crate::identity::Principal;
use crate::metrics::Metrics;
use crate::session::{CookieCodec, Sessions};
use crate::store::SessionSelector;

#[derive(Debug, Subcommand)]
pub(super) enum SessionsCommand {
    /// Create a real session and print a `Cookie:` header value (smoke tests, benchmarks).
    Mint {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        email: String,
        /// Defaults to the lower-cased email.
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Comma-separated.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// How many sessions (one cookie per line): `benches/load.sh` fills
        /// the session cache with 100,000 of them for its memory figure.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        count: u32,
    },
    /// End sessions now, on every replica.
    #[command(group(clap::ArgGroup::new("who").required(true)))]
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, group = "who")]
        user: Option<String>,
        #[arg(long, group = "who")]
        tenant: Option<String>,
        #[arg(long, group = "who")]
        connection: Option<String>,
        #[arg(long, group = "who")]
        all: bool,
    },
}

pub(super) fn run(cmd: SessionsCommand) -> Result<Output, CliError> {
    match cmd {
        SessionsCommand::Mint {
            config,
            email,
            user_id,
            name,
            tenant,
            groups,
            roles,
            count,
        } => {
            let cfg = config.load()?;
            let principal = Principal {
                user_id: user_id.unwrap_or_else(|| email.to_lowercase()),
                email,
                name,
                groups: groups.into_iter().filter(|g| !g.is_empty()).collect(),
                roles: roles.into_iter().filter(|r| !r.is_empty()).collect(),
                tenant,
                connection: None,
                ..Principal::default()
            };
            block_on(mint(&cfg, &principal, count))
        }
        SessionsCommand::Revoke {
            config,
            user,
            tenant,
            connection,
            all,
        } => {
            let selector = match (user, tenant, connection, all) {
                (Some(u), _, _, _) => SessionSelector::User(u),
                (_, Some(t), _, _) => SessionSelector::Tenant(t),
                (_, _, Some(c), _) => SessionSelector::Connection(c),
                (_, _, _, true) => SessionSelector::All,
                _ => {
                    return Err(CliError::Usage(
                        "say whose sessions: --user ID, --tenant T, --connection C or --all".into(),
                    ));
                }
            };
            let cfg = config.load()?;
            block_on(revoke(&cfg, &selector))
        }
    }
}

/// `count` sessions for `principal` in the configured store, each as the
/// `name=value` pair of a `Cookie:` header, one per line.
pub(super) async fn mint(
    cfg: &Config,
    principal: &Principal,
    count: u32,
) -> Result<Output, CliError> {
    let codec = CookieCodec::new(&cfg.session)?;
    let store = open_store(cfg).await?;
    let sessions = Sessions::new(
        store.clone(),
        1,
        std::time::Duration::from_secs(1),
        Metrics::new()?.into(),
    );
    let now = crate::clock::now();
    let mut lines = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let token = sessions
            .create(
                principal,
                None,
                cfg.session.absolute_lifetime_seconds as i64,
                now,
            )
            .await;
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        };
        let cookie = codec.seal(&token, now);
        // `Set-Cookie` → `Cookie`: name=value only.
        lines.push(cookie.split(';').next().unwrap_or_default().to_owned());
    }
    store.close().await;
    Ok(Output::text(lines.join("\n")))
}

/// Through `admin::operator` (actor `cli`): audited like the API's.
pub(super) async fn revoke(cfg: &Config, selector: &SessionSelector) -> Result<Output, CliError> {
    let n = with_ops(cfg, |cur| async move {
        operator::revoke_sessions(&cur, &Actor::cli(), selector).await
    })
    .await?;
    Ok(Output::text(format!("revoked {n} session(s)")))
}
