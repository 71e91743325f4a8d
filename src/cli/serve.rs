//! `portcullis run`, `check`, `demo` and the hidden `upstream`: the
//! commands that serve (and the one that says whether a configuration
//! would).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::source::Source;
use super::{CliError, ConfigArg, Output};
use crate::app;
use crate::demo::{self, DemoOptions};

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Where the demo keeps its SQLite store and keys (what `--demo` means
    /// to the other commands).
    #[arg(long, default_value = demo::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Public listener of the proxy.
    #[arg(long, default_value_t = demo::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Admin listener (metrics, health).
    #[arg(long, default_value_t = demo::DEFAULT_ADMIN)]
    admin: SocketAddr,
    /// Where the built-in demo app listens.
    #[arg(long, default_value_t = demo::DEFAULT_UPSTREAM)]
    upstream: SocketAddr,
}

/// Serves until SIGTERM/SIGINT. With `--config`, SIGHUP reloads the file;
/// with `--demo`, the demo's proxy runs without its demo app.
pub(super) fn run(source: &ConfigArg) -> Result<Output, CliError> {
    match source.source()? {
        Source::File(path) => app::run(&path)?,
        Source::Demo(opts) => {
            let config = demo::demo_config(&opts)?;
            crate::logging::init(&config.log);
            app::prepare(config, None)?.run(app::Stop::Signals);
        }
    }
    Ok(Output::default())
}

/// `ok` and the warnings, or every error (exit status 78).
pub(super) fn check(source: &ConfigArg) -> Result<Output, CliError> {
    let cfg = source.load_checked()?;
    let mut warnings = String::new();
    for w in &cfg.warnings {
        let _ = writeln!(warnings, "warning: {w}");
    }
    Ok(Output {
        stdout: "ok\n".into(),
        stderr: warnings,
    })
}

/// Runs until Ctrl-C; the demo prints its own banner once it listens.
pub(super) fn demo(args: DemoArgs) -> Result<Output, CliError> {
    demo::run_demo(&DemoOptions {
        data_dir: args.data_dir,
        listen: args.listen,
        admin: args.admin,
        upstream: args.upstream,
    })?;
    Ok(Output::default())
}

pub(super) fn upstream(listen: SocketAddr, fixed: Option<u64>) -> Result<Output, CliError> {
    // Bounded by the argument's parser (`MAX_FIXED_BYTES`).
    demo::run_upstream(listen, fixed.map(|b| b as usize))?;
    Ok(Output::default())
}
