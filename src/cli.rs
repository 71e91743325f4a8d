//! The command line. Thin: each command loads config and calls into the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app::{self, AppError};
use crate::config;
use crate::identity::Principal;
use crate::metrics::Metrics;
use crate::session::{CookieCodec, Sessions};
use crate::store::{SessionSelector, Store};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Authentication sidecar: SSO and SCIM in front of an unchanged app"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// Path to the TOML configuration file.
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve: proxy and admin listeners. SIGHUP reloads, SIGTERM drains.
    Run(ConfigArg),
    /// Validate a configuration file; prints every error as FILE:LINE: key: message.
    Check(ConfigArg),
    /// Run the demo: proxy on 127.0.0.1:8080 in front of a built-in app.
    Demo {
        /// Where the demo keeps its SQLite store and session key.
        #[arg(long, default_value = "data/demo")]
        data_dir: PathBuf,
        /// Public listener of the proxy.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Admin listener (metrics, health).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
        /// Where the built-in demo app listens.
        #[arg(long, default_value = "127.0.0.1:8081")]
        upstream: std::net::SocketAddr,
    },
    /// Manage sessions in the store.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Run only the built-in echo app (benchmarks, experiments).
    #[command(hide = true)]
    Upstream {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
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
    },
    /// End sessions now, on every replica.
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

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Command) -> Result<ExitCode, AppError> {
    // pingora-rustls and reqwest both use ring; make that explicit so a
    // future dependency can't leave rustls without a default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cmd {
        Command::Run(c) => app::run(&c.config).map(|()| ExitCode::SUCCESS),
        Command::Check(c) => match config::load(&c.config) {
            Ok(_) => {
                println!("ok");
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("{e}");
                }
                Ok(ExitCode::from(1))
            }
        },
        Command::Demo {
            data_dir,
            listen,
            admin,
            upstream,
        } => crate::demo::run_demo(&crate::demo::DemoOptions {
            data_dir,
            listen,
            admin,
            upstream,
        })
        .map(|()| ExitCode::SUCCESS),
        Command::Upstream { listen } => {
            crate::demo::run_upstream(listen).map(|()| ExitCode::SUCCESS)
        }
        Command::Sessions(s) => sessions(s),
    }
}

fn sessions(cmd: SessionsCommand) -> Result<ExitCode, AppError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        SessionsCommand::Mint {
            config,
            email,
            user_id,
            name,
            tenant,
            groups,
            roles,
        } => {
            let cfg = config::load(&config.config)?;
            let codec = CookieCodec::new(&cfg.session).map_err(crate::proxy::StateError::from)?;
            let cookie = rt.block_on(async {
                let store = Store::open(&cfg.store.url).await?;
                let sessions = Sessions::new(
                    store.clone(),
                    1,
                    std::time::Duration::from_secs(1),
                    Metrics::new()?.into(),
                );
                let principal = Principal {
                    user_id: user_id.unwrap_or_else(|| email.to_lowercase()),
                    email,
                    name,
                    groups: groups.into_iter().filter(|g| !g.is_empty()).collect(),
                    roles: roles.into_iter().filter(|r| !r.is_empty()).collect(),
                    tenant,
                    connection: None,
                };
                let now = crate::clock::now();
                let token = sessions
                    .create(
                        &principal,
                        cfg.session.absolute_lifetime_seconds as i64,
                        now,
                    )
                    .await
                    .map_err(|e| AppError::Listener("session".into(), e.to_string()))?;
                store.close().await;
                Ok::<_, AppError>(codec.seal(&token, now))
            })?;
            // `Set-Cookie` → `Cookie`: name=value only.
            let pair = cookie.split(';').next().unwrap_or_default();
            println!("{pair}");
            Ok(ExitCode::SUCCESS)
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
                    eprintln!(
                        "error: say whose sessions: --user ID, --tenant T, --connection C or --all"
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            let cfg = config::load(&config.config)?;
            let n = rt.block_on(async {
                let store = Store::open(&cfg.store.url).await?;
                let n = store.revoke_sessions(&selector).await?;
                store.close().await;
                Ok::<_, AppError>(n)
            })?;
            println!("revoked {n} session(s)");
            Ok(ExitCode::SUCCESS)
        }
    }
}
