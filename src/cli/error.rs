//! Why a command failed, and the exit status that says so (see the table in
//! the module above).

use crate::app::AppError;
use crate::config::ConfigErrors;
use crate::domains::DomainError;
use crate::session::{CookieError, SessionError};
use crate::store::StoreError;

/// `EX_USAGE` (sysexits.h): the command line is wrong.
pub const EX_USAGE: u8 = 64;
/// `EX_CONFIG` (sysexits.h): the configuration can't be used.
pub const EX_CONFIG: u8 = 78;
/// Anything that went wrong while doing the work.
pub const FAILURE: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument the configuration or the command can't accept.
    #[error("{0}")]
    Usage(String),
    /// Every problem of the configuration, each naming file, line and key.
    #[error("{0}")]
    Config(ConfigErrors),
    /// The work could not be done; the message says what stands in the way.
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    App(AppError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("domains: {0}")]
    Domains(#[from] DomainError),
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// `[session]` can't make a cookie codec.
    #[error("session: {0}")]
    Cookie(#[from] CookieError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("runtime: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ConfigErrors> for CliError {
    fn from(e: ConfigErrors) -> Self {
        Self::Config(e)
    }
}

/// A configuration error stays one, whoever found it (`run` loads the file
/// itself), so it keeps its exit status.
impl From<AppError> for CliError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Config(errors) => Self::Config(errors),
            AppError::Store(e) => Self::Store(e),
            AppError::Domains(e) => Self::Domains(e),
            other => Self::App(other),
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EX_USAGE,
            Self::Config(_) | Self::Cookie(_) => EX_CONFIG,
            Self::Domains(
                DomainError::Invalid { .. }
                | DomainError::PublicMail(_)
                | DomainError::UnknownTenant(_)
                | DomainError::NotInConfig { .. },
            ) => EX_USAGE,
            Self::Failed(_)
            | Self::App(_)
            | Self::Store(_)
            | Self::Domains(_)
            | Self::Session(_)
            | Self::Metrics(_)
            | Self::Io(_) => FAILURE,
        }
    }

    /// The message for stderr. Configuration errors go out as they are,
    /// one `FILE:LINE: key: message` per line, for editors to jump to.
    pub fn message(&self) -> String {
        match self {
            Self::Config(errors) => errors.to_string(),
            other => format!("error: {other}"),
        }
    }

    pub(super) fn print(&self) {
        eprintln!("{}", self.message());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    #[test]
    fn exit_codes_by_kind() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 64);
        let config = ConfigErrors(vec![ConfigError {
            file: "p.toml".into(),
            line: 3,
            key: "session.keys".into(),
            message: "missing".into(),
        }]);
        assert_eq!(CliError::from(config.clone()).exit_code(), 78);
        assert_eq!(
            CliError::from(AppError::Config(config.clone())).exit_code(),
            78,
            "a configuration error found by `run` is still one"
        );
        assert_eq!(
            CliError::from(config).message(),
            "p.toml:3: session.keys: missing"
        );
        assert_eq!(
            CliError::from(AppError::Listener("127.0.0.1:1".into(), "in use".into())).exit_code(),
            1
        );
        assert_eq!(
            CliError::from(StoreError::InvalidUrl("x".into())).exit_code(),
            1
        );
        assert_eq!(
            CliError::from(DomainError::UnknownTenant("t".into())).exit_code(),
            64
        );
        assert_eq!(
            CliError::from(DomainError::NotFound("a.com".into())).exit_code(),
            1
        );
        assert_eq!(
            CliError::Failed("nope".into()).message(),
            "error: nope".to_owned()
        );
    }
}
