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
use crate::store::{SessionSelector, Store, StoreError};

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
    /// Prove tenants own their email domains (DNS TXT records).
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// Users who may sign in (invitations when JIT is off).
    #[command(subcommand)]
    Users(UsersCommand),
    /// SSO connections.
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// The webhook outbox: queue status, replay, dead letters.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// SCIM bearer tokens.
    #[command(subcommand, name = "scim-token")]
    ScimToken(ScimTokenCommand),
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

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Per tenant: pending, delivered and dead events, the last delivered
    /// sequence number and the age of the oldest pending event.
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

#[derive(Debug, Subcommand)]
enum DomainsCommand {
    /// Claim DOMAIN for a tenant and print the TXT record to publish.
    Add {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        domain: String,
    },
    /// Check DOMAIN's TXT record now.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        domain: String,
    },
    /// Show domains and their state (pending, verified, failed, lapsed).
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Forget DOMAIN (it stops routing logins at once).
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        domain: String,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Allow EMAIL into TENANT (needed when JIT is off).
    Invite {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// Defaults to the tenant's `jit.default_role`.
        #[arg(long)]
        role: Option<String>,
    },
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove a user and end their sessions.
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum ScimTokenCommand {
    /// Print the SCIM base URL and a new bearer token for TENANT (shown
    /// once; the store keeps only its hash). The previous token stops working.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConnectionsCommand {
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
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
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
        Command::Domains(d) => domains(d),
        Command::Users(u) => users(u),
        Command::Webhooks(w) => webhooks(w),
        Command::ScimToken(ScimTokenCommand::Create { config, tenant }) => {
            scim_token_create(&config.config, &tenant)
        }
        Command::Connections(ConnectionsCommand::Test { config, connection }) => {
            let cfg = config::load(&config.config)?;
            if !cfg
                .tenants
                .iter()
                .any(|t| t.connections.iter().any(|c| c.id == connection))
            {
                eprintln!("error: no connection `{connection}` in the configuration");
                return Ok(ExitCode::from(2));
            }
            let Some(token) =
                crate::auth::TestLinks::new(&cfg.session).mint(&connection, crate::clock::now())
            else {
                eprintln!("error: could not create a test link (no session key or randomness)");
                return Ok(ExitCode::FAILURE);
            };
            let enc = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            };
            println!(
                "{}{}sso/{}/test?token={}",
                cfg.server.public_url.trim_end_matches('/'),
                cfg.server.internal_prefix,
                enc(&connection),
                enc(&token)
            );
            eprintln!("Open it in a browser within 10 minutes; it works once.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Connections(ConnectionsCommand::List { config }) => {
            let cfg = config::load(&config.config)?;
            println!(
                "{:<16} {:<24} {:<6} {:<10} name",
                "tenant", "connection", "proto", "preset"
            );
            for t in &cfg.tenants {
                for c in &t.connections {
                    println!(
                        "{:<16} {:<24} {:<6} {:<10} {}",
                        t.id,
                        c.id,
                        format!("{:?}", c.protocol).to_lowercase(),
                        c.preset.as_deref().unwrap_or("-"),
                        c.display_name.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
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
                let store = Store::open_sealed(
                    &cfg.store.url,
                    &cfg.store.encryption_keys().map_err(StoreError::Sealing)?,
                )
                .await?;
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
                        None,
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
                let store = Store::open_sealed(
                    &cfg.store.url,
                    &cfg.store.encryption_keys().map_err(StoreError::Sealing)?,
                )
                .await?;
                let n = store.revoke_sessions(&selector).await?;
                store.close().await;
                Ok::<_, AppError>(n)
            })?;
            println!("revoked {n} session(s)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn webhooks(cmd: WebhooksCommand) -> Result<ExitCode, AppError> {
    use crate::webhook::cli;
    let config = match &cmd {
        WebhooksCommand::Status { config }
        | WebhooksCommand::Replay { config, .. }
        | WebhooksCommand::Resync { config, .. }
        | WebhooksCommand::RetryDead { config, .. } => config::load(&config.config)?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(async {
        let store = Store::open_sealed(&config.store.url, &config.store.encryption_keys().map_err(StoreError::Sealing)?).await?;
        let out = match &cmd {
            WebhooksCommand::Status { .. } => cli::status(&store).await,
            WebhooksCommand::Replay {
                tenant, from_seq, ..
            } => cli::replay(&store, tenant, *from_seq).await,
            WebhooksCommand::RetryDead { tenant, .. } => {
                cli::retry_dead(&store, tenant.as_deref()).await
            }
            WebhooksCommand::Resync { tenant, .. } => {
                if !config.tenants.iter().any(|t| &t.id == tenant) {
                    store.close().await;
                    eprintln!("error: no tenant with id `{tenant}` in the configuration");
                    return Ok(None);
                }
                let base = format!(
                    "{}{}",
                    config.server.public_url.trim_end_matches('/'),
                    config.scim.path.trim_end_matches('/')
                );
                // Events mark each address `verified_domain` as of now.
                let tenant_cfg = config.tenants.iter().find(|t| &t.id == tenant);
                match crate::scim::emails::TenantEmails::load(&store, tenant, tenant_cfg).await {
                    Ok(emails) => crate::scim::events::resync(&store, tenant, &base, &emails)
                        .await
                        .map(|r| {
                            format!(
                                "tenant {tenant}: {} user(s), {} group(s), {} membership(s) queued as events\n",
                                r.users, r.groups, r.memberships
                            )
                        }),
                    Err(e) => Err(e),
                }
            }
        };
        store.close().await;
        out.map(Some).map_err(AppError::from)
    })?;
    let Some(out) = out else {
        return Ok(ExitCode::from(2));
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn domains(cmd: DomainsCommand) -> Result<ExitCode, AppError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(async {
        match cmd {
            DomainsCommand::Add {
                config,
                tenant,
                domain,
            } => crate::domains::cli::add(&config::load(&config.config)?, &tenant, &domain).await,
            DomainsCommand::Verify { config, domain } => {
                crate::domains::cli::verify(&config::load(&config.config)?, &domain).await
            }
            DomainsCommand::List { config, tenant } => {
                crate::domains::cli::list(&config::load(&config.config)?, tenant.as_deref()).await
            }
            DomainsCommand::Remove { config, domain } => {
                crate::domains::cli::remove(&config::load(&config.config)?, &domain).await
            }
        }
        .map_err(AppError::from)
    })?;
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

fn users(cmd: UsersCommand) -> Result<ExitCode, AppError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cmd {
            UsersCommand::Invite { config, tenant, email, role } => {
                let cfg = config::load(&config.config)?;
                let Some(t) = cfg.tenants.iter().find(|t| t.id == tenant) else {
                    eprintln!("error: no tenant with id `{tenant}` in the configuration");
                    return Ok(ExitCode::from(2));
                };
                match crate::auth::tenant_email_domain(&email, t.domains.iter().map(String::as_str)) {
                    Ok(_) => {}
                    Err(crate::auth::ForeignEmail::NotAnAddress) => {
                        eprintln!("error: `{email}` is not an email address");
                        return Ok(ExitCode::from(2));
                    }
                    Err(crate::auth::ForeignEmail::OutsideTenant { domain }) => {
                        eprintln!("error: {domain} is not one of tenant `{tenant}`'s domains; its IdP could never sign this user in");
                        return Ok(ExitCode::from(2));
                    }
                }
                let store = Store::open_sealed(&cfg.store.url, &cfg.store.encryption_keys().map_err(StoreError::Sealing)?).await?;
                let now = crate::clock::now();
                let user = crate::store::UserRecord {
                    id: uuid::Uuid::new_v4().to_string(),
                    tenant: tenant.clone(),
                    email: email.clone(),
                    name: None,
                    role: role.or_else(|| t.jit.default_role.clone()),
                    source: "invite".into(),
                    active: true,
                    subject: None,
                    created_at: now,
                    updated_at: now,
                    last_login_at: None,
                };
                let result = store.insert_user(&user).await;
                store.close().await;
                match result {
                    Ok(()) => {
                        println!("invited {email} to {tenant} (user id {})", user.id);
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(crate::store::StoreError::Duplicate(_)) => {
                        eprintln!("error: {email} is already a user of {tenant}");
                        Ok(ExitCode::from(1))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            UsersCommand::List { config, tenant } => {
                let cfg = config::load(&config.config)?;
                let store = Store::open_sealed(&cfg.store.url, &cfg.store.encryption_keys().map_err(StoreError::Sealing)?).await?;
                let list = store.list_users(tenant.as_deref()).await;
                store.close().await;
                println!("{:<16} {:<32} {:<10} {:<7} {:<8} last login", "tenant", "email", "role", "source", "active");
                for u in list? {
                    println!(
                        "{:<16} {:<32} {:<10} {:<7} {:<8} {}",
                        u.tenant,
                        u.email,
                        u.role.as_deref().unwrap_or("-"),
                        u.source,
                        if u.active { "yes" } else { "no" },
                        u.last_login_at.map(|t| t.to_string()).unwrap_or_else(|| "never".into())
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            UsersCommand::Remove { config, tenant, email } => {
                let cfg = config::load(&config.config)?;
                let store = Store::open_sealed(&cfg.store.url, &cfg.store.encryption_keys().map_err(StoreError::Sealing)?).await?;
                let removed = store.delete_user(&tenant, &email).await;
                let result = match removed {
                    Ok(Some(u)) => {
                        let n = store.revoke_sessions(&SessionSelector::User(u.id.clone())).await?;
                        println!("removed {email} from {tenant}; ended {n} session(s)");
                        Ok(ExitCode::SUCCESS)
                    }
                    Ok(None) => {
                        eprintln!("error: {email} is not a user of {tenant}");
                        Ok(ExitCode::from(1))
                    }
                    Err(e) => Err(e.into()),
                };
                store.close().await;
                result
            }
        }
    })
}

fn scim_token_create(path: &std::path::Path, tenant: &str) -> Result<ExitCode, AppError> {
    let cfg = config::load(path)?;
    if !cfg.tenants.iter().any(|t| t.id == tenant) {
        eprintln!("error: no tenant with id `{tenant}` in the configuration");
        return Ok(ExitCode::from(2));
    }
    if !cfg.scim.enabled {
        eprintln!("warning: [scim] enabled = false; the token works once SCIM is enabled");
    }
    let Ok(new) = crate::scim::token::generate() else {
        eprintln!("error: no randomness available");
        return Ok(ExitCode::FAILURE);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Store::open_sealed(
            &cfg.store.url,
            &cfg.store.encryption_keys().map_err(StoreError::Sealing)?,
        )
        .await?;
        let result = store
            .scim_token_set(tenant, &new.key_id, &new.hash, crate::clock::now())
            .await;
        store.close().await;
        result
    })?;
    println!(
        "SCIM base URL: {}{}",
        cfg.server.public_url.trim_end_matches('/'),
        cfg.scim.path.trim_end_matches('/')
    );
    println!("Bearer token:  {}", new.token);
    println!("(shown once; any previous token of tenant `{tenant}` no longer works)");
    Ok(ExitCode::SUCCESS)
}
