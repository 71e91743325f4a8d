//! `--config FILE` or `--demo[=DIR]`: where a command's configuration comes
//! from, and opening the store it names.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::config::{self, Config};
use crate::demo::{self, DemoOptions};
use crate::store::{Store, StoreError};

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ConfigArg {
    /// Path to the TOML configuration file.
    #[arg(long, short, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Instead of --config: the configuration, data directory and keys of
    /// `portcullis demo` (DIR defaults to data/demo, as for the demo).
    #[arg(
        long,
        value_name = "DIR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = demo::DEFAULT_DATA_DIR
    )]
    pub(super) demo: Option<PathBuf>,
}

/// The configuration a command runs with.
pub(super) enum Source {
    File(PathBuf),
    Demo(DemoOptions),
}

impl ConfigArg {
    pub(super) fn source(&self) -> Result<Source, CliError> {
        match (&self.config, &self.demo) {
            (Some(path), None) => Ok(Source::File(path.clone())),
            (None, Some(dir)) => Ok(Source::Demo(DemoOptions::for_data_dir(dir))),
            // clap's group refuses both and neither; this is for callers
            // that build the arguments themselves.
            _ => Err(CliError::Usage(
                "give either --config FILE or --demo[=DIR]".into(),
            )),
        }
    }

    /// Loads and validates the configuration, then parses every tenant's
    /// IdP metadata and keys as the server would (`check`).
    pub fn load_checked(&self) -> Result<Config, CliError> {
        match self.source()? {
            Source::File(path) => Ok(config::load_probed(
                &path,
                &crate::auth::check::check_tenant,
            )?),
            Source::Demo(opts) => Ok(demo::demo_config(&opts)?),
        }
    }

    /// Loads and validates the configuration.
    pub fn load(&self) -> Result<Config, CliError> {
        match self.source()? {
            Source::File(path) => Ok(config::load(&path)?),
            Source::Demo(opts) => Ok(demo::demo_config(&opts)?),
        }
    }
}

/// Opens the configured store with the configured sealing keys.
pub(super) async fn open_store(cfg: &Config) -> Result<Store, StoreError> {
    Store::open_sealed(
        &cfg.store.url,
        &cfg.store.encryption_keys().map_err(StoreError::Sealing)?,
    )
    .await
}

/// Opens the store, runs `f`, and closes the store whatever `f` returned, so
/// a CLI run never leaves SQLite's WAL un-checkpointed.
pub(super) async fn with_store<T, F, Fut>(cfg: &Config, f: F) -> Result<T, CliError>
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = Result<T, CliError>>,
{
    let store = open_store(cfg).await?;
    let result = f(store.clone()).await;
    store.close().await;
    result
}

/// The configuration's tenant `id`, or the usage error that names it.
pub(super) fn tenant<'a>(cfg: &'a Config, id: &str) -> Result<&'a config::TenantConfig, CliError> {
    cfg.tenants
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| CliError::Usage(format!("no tenant with id `{id}` in the configuration")))
}
