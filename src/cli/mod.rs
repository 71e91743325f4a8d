//! The command line, one file per command group: `serve` (`run`, `check`,
//! `demo`), `sessions`, `domains`, `users`, `connections`, `webhooks`,
//! `scim_token`, `admin_token`, `service_accounts`, `audit`.
//!
//! Each command returns what it has to say — an [`Output`] (stdout and
//! stderr text) or a [`CliError`] — and only [`main`] prints, so a
//! command's text can be tested without running the binary.
//!
//! Every command that reads a configuration takes either `--config FILE` or
//! `--demo[=DIR]` ([`ConfigArg`]), never both: `--demo` is the configuration,
//! data directory (default `data/demo`) and keys of `portcullis demo`, built
//! by [`crate::demo::demo_config`], so a newcomer can run any command
//! against the running demo.
//!
//! # Exit status
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | runtime error: the store unreachable, a listener address in use, a duplicate, nothing to remove |
//! | 64 (`EX_USAGE`) | the command line is wrong: an unknown command or flag, a missing argument, `--config` with `--demo`, a tenant or connection the configuration doesn't have, an argument that can't be right (not an email address, a public mail domain) |
//! | 78 (`EX_CONFIG`) | the configuration can't be used: an unreadable `--config` file, invalid TOML, a failed validation (printed as `FILE:LINE: key: message`, every one of them) |
//!
//! The numbers are BSD `sysexits.h`'s, so scripts can tell "fix the
//! command" and "fix the file" from "try again later".

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod admin_token;
pub mod audit;
mod connections;
pub mod domains;
mod error;
mod local;
mod output;
mod scim_token;
mod serve;
pub mod service_accounts;
mod sessions;
mod source;
mod users;
mod webhooks;

pub use error::{CliError, EX_CONFIG, EX_USAGE, FAILURE};
pub use output::{Output, rfc3339};
pub use source::ConfigArg;

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve: proxy and admin listeners. SIGHUP reloads, SIGTERM drains.
    Run(ConfigArg),
    /// Validate a configuration file; prints every error as FILE:LINE: key: message.
    Check(ConfigArg),
    /// Run the demo: proxy on 127.0.0.1:8080 in front of a built-in app.
    Demo(serve::DemoArgs),
    /// Manage sessions in the store.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
    /// Prove tenants own their email domains (DNS TXT records).
    #[command(subcommand)]
    Domains(domains::DomainsCommand),
    /// Users who may sign in (invitations when JIT is off).
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// SSO connections.
    #[command(subcommand)]
    Connections(connections::ConnectionsCommand),
    /// The webhook outbox: queue status, replay, dead letters.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// SCIM bearer tokens.
    #[command(subcommand, name = "scim-token")]
    ScimToken(scim_token::ScimTokenCommand),
    /// Service accounts: a tenant's machine callers (bearer tokens).
    #[command(subcommand, name = "service-accounts")]
    ServiceAccounts(service_accounts::ServiceAccountsCommand),
    /// Operator tokens of the admin API.
    #[command(subcommand, name = "admin-token")]
    AdminToken(admin_token::AdminTokenCommand),
    /// The audit log of admin changes.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run only the built-in echo app (benchmarks, experiments).
    #[command(hide = true)]
    Upstream {
        #[arg(long, default_value_t = crate::demo::DEFAULT_UPSTREAM)]
        listen: std::net::SocketAddr,
        /// Answer every request with this many bytes of HTML instead of
        /// echoing it (a benchmark upstream whose work does not depend on
        /// what the proxy adds).
        #[arg(long, value_name = "BYTES",
              value_parser = clap::value_parser!(u64).range(0..=crate::demo::MAX_FIXED_BYTES))]
        fixed: Option<u64>,
    },
}

/// Entry point of the binary: parse, run, print, exit with the documented
/// status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are answers, not errors.
            let _ = e.print();
            return if e.exit_code() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EX_USAGE)
            };
        }
    };
    // pingora-rustls and reqwest both use ring; make that explicit so a
    // future dependency can't leave rustls without a default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match dispatch(cli.command) {
        Ok(out) => {
            out.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            e.print();
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(cmd: Command) -> Result<Output, CliError> {
    match cmd {
        Command::Run(source) => serve::run(&source),
        Command::Check(source) => serve::check(&source),
        Command::Demo(args) => serve::demo(args),
        Command::Upstream { listen, fixed } => serve::upstream(listen, fixed),
        Command::Sessions(cmd) => sessions::run(cmd),
        Command::Domains(cmd) => domains::run(cmd),
        Command::Users(cmd) => users::run(cmd),
        Command::Connections(cmd) => connections::run(cmd),
        Command::Webhooks(cmd) => webhooks::run(cmd),
        Command::ScimToken(cmd) => scim_token::run(cmd),
        Command::AdminToken(cmd) => admin_token::run(cmd),
        Command::ServiceAccounts(cmd) => service_accounts::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
    }
}

/// Runs `f` on a one-thread runtime: each command is one short conversation
/// with the store.
fn block_on<T>(f: impl Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("portcullis").chain(args.iter().copied()))
    }

    #[test]
    fn config_and_demo_are_alternatives() {
        let both = parse(&["users", "list", "--config", "p.toml", "--demo"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        let neither = parse(&["users", "list"]).unwrap_err();
        assert_eq!(neither.kind(), ErrorKind::MissingRequiredArgument);
        assert!(parse(&["users", "list", "--config", "p.toml"]).is_ok());
    }

    #[test]
    fn bare_demo_means_the_demo_data_dir_and_takes_no_separate_value() {
        let Command::Users(users::UsersCommand::List { config, .. }) =
            parse(&["users", "list", "--demo"]).unwrap().command
        else {
            panic!("users list");
        };
        assert_eq!(
            config.demo.as_deref(),
            Some(std::path::Path::new(crate::demo::DEFAULT_DATA_DIR))
        );
        let Command::Domains(domains::DomainsCommand::Verify { config, domain }) =
            parse(&["domains", "verify", "--demo", "acme.com"])
                .unwrap()
                .command
        else {
            panic!("domains verify");
        };
        assert_eq!(domain, "acme.com", "the positional is not taken as DIR");
        assert_eq!(
            config.demo.as_deref(),
            Some(std::path::Path::new(crate::demo::DEFAULT_DATA_DIR))
        );
        let Command::Check(config) = parse(&["check", "--demo=/tmp/d"]).unwrap().command else {
            panic!("check");
        };
        assert_eq!(config.demo.as_deref(), Some(std::path::Path::new("/tmp/d")));
    }

    #[test]
    fn sessions_revoke_needs_exactly_one_selector() {
        let none = parse(&["sessions", "revoke", "--config", "p.toml"]).unwrap_err();
        assert_eq!(none.kind(), ErrorKind::MissingRequiredArgument);
        let two = parse(&[
            "sessions", "revoke", "--config", "p.toml", "--all", "--user", "u",
        ])
        .unwrap_err();
        assert_eq!(two.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
