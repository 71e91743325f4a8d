//! Turning the configured store URL into connected pools.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AnyPool, Executor};

use super::StoreError;

/// How long any caller waits for a pooled connection (and how long `open`
/// waits for an unreachable server) before giving up with an error.
pub(super) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL lets readers proceed while one writer commits; more connections than
/// this only add lock contention on one file.
const SQLITE_MAX_CONNECTIONS: u32 = 8;

/// All of SQLite's memory in this process, bytes: a soft limit
/// (`PRAGMA soft_heap_limit`), past which SQLite recycles the least
/// recently used page of *any* connection instead of allocating one. The
/// bundled SQLite is built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`, so the
/// pool's connections share one page LRU, and memory statistics are on,
/// which is what the limit reads.
///
/// Why a shared limit rather than per-connection caches that add up:
/// random lookups (a session walk, SCIM filters) fill every connection's
/// cache with the same pages, so a per-connection budget is paid eight
/// times; a process holding 100,000 sessions spent its whole 32 MiB
/// (8 × 4 MiB) on them. With the limit, the one connection a SCIM bulk
/// job writes through may use [`SQLITE_CONNECTION_CACHE`] alone, while
/// all of them together stay near this figure. 16 MiB: schema, statements
/// and lookaside of 8 connections take ~2 MiB, the rest is pages; the
/// indexes of 100,000 sessions or users fit.
const SQLITE_SOFT_HEAP_LIMIT: i64 = 16 * 1024 * 1024;

/// One connection's page cache, KiB (negative in the pragma: KiB, not
/// pages). SCIM Bulk provisioning of 100,000 users
/// (`cargo bench --bench scim -- bulk`, one session): 6,297 users per CPU
/// second with 4 MiB, 7,746 with 8 MiB, 6,743 with 16 MiB — within this
/// machine's noise, but never worse with 8.
const SQLITE_CONNECTION_CACHE: &str = "PRAGMA cache_size = -8192";

const SQLITE_HEAP_PRAGMA: &str = "PRAGMA soft_heap_limit = 16777216";
const _: () = assert!(SQLITE_SOFT_HEAP_LIMIT == 16_777_216);

/// Default until the config exposes it.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

/// Where the store lives, decided from the URL alone.
#[derive(Debug)]
pub(super) enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Classifies the URL without ever echoing it in errors: it may carry a
/// password.
pub(super) fn parse_target(url: &str) -> Result<Target, StoreError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(StoreError::InvalidUrl("the store URL is empty".into()));
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::InvalidUrl("not a valid postgres:// connection URL".into()))?;
        return Ok(Target::Postgres(url.to_owned()));
    }
    if lower.starts_with("sqlite:") {
        let rest = &url["sqlite:".len()..];
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = match rest.split_once('?') {
            None => rest,
            // sqlx users habitually append `?mode=rwc`; we always create.
            Some((path, "mode=rwc")) => path,
            Some(_) => {
                return Err(StoreError::InvalidUrl(
                    "sqlite URL parameters are not supported (only mode=rwc)".into(),
                ));
            }
        };
        return sqlite_path(path);
    }
    if let Some((scheme, _)) = url.split_once("://") {
        let scheme: String = scheme.chars().take(20).collect();
        return Err(StoreError::InvalidUrl(format!(
            "unsupported scheme `{scheme}` (expected sqlite:// or postgres://)"
        )));
    }
    sqlite_path(url)
}

/// Validates a SQLite file path; in-memory databases are refused because
/// each pooled connection would see a different, empty database.
fn sqlite_path(path: &str) -> Result<Target, StoreError> {
    if path.is_empty() {
        return Err(StoreError::InvalidUrl("the sqlite path is empty".into()));
    }
    if path == ":memory:" || path.starts_with(":memory:") {
        return Err(StoreError::InvalidUrl(
            "in-memory SQLite is not supported; use a file path".into(),
        ));
    }
    if path.contains('\0') {
        return Err(StoreError::InvalidUrl(
            "the sqlite path contains a NUL".into(),
        ));
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

/// Opens the SQLite pool, creating the file and its directory so a fresh
/// install needs no setup step; returns the absolute path it opened.
pub(super) async fn sqlite_pool(path: &Path) -> Result<(AnyPool, PathBuf), StoreError> {
    let path = std::path::absolute(path)
        .map_err(|_| StoreError::InvalidUrl("the sqlite path cannot be made absolute".into()))?;
    let prepared = path.clone();
    tokio::task::spawn_blocking(move || prepare_sqlite_files(&prepared))
        .await
        .map_err(|e| StoreError::Connect(sqlx::Error::Io(std::io::Error::other(e))))??;
    let text = path
        .to_str()
        .ok_or_else(|| StoreError::InvalidUrl("the sqlite path is not valid UTF-8".into()))?;
    let options = AnyConnectOptions::from_str(&format!("sqlite://{}?mode=rwc", encode_path(text)))
        .map_err(|_| {
            StoreError::InvalidUrl("the sqlite path cannot be expressed as a URL".into())
        })?;
    AnyPoolOptions::new()
        .max_connections(SQLITE_MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // Per-connection settings; journal_mode is persistent but
                // re-asserting it is a cheap no-op once the file is in WAL.
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute(SQLITE_CONNECTION_CACHE).await?;
                // Process-wide; setting it again is a no-op.
                conn.execute(SQLITE_HEAP_PRAGMA).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map(|pool| (pool, path))
        .map_err(StoreError::Connect)
}

/// Directory mode for a new store directory: the owner only.
const PRIVATE_DIR: u32 = 0o700;
/// File mode for the database (SQLite gives its -wal/-shm the same mode).
const PRIVATE_FILE: u32 = 0o600;

/// Creates the directory (0700) and the database file (0600) when missing,
/// and refuses either when group or others may read or write it: the store
/// holds session records and signing secrets, and the database file is
/// created before SQLite opens it so it never exists with SQLite's default
/// 0644, not even for a moment.
fn prepare_sqlite_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| StoreError::Io { path, source }
    };
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(PRIVATE_DIR)
                .create(dir)
                .map_err(io(dir))?;
        }
        check_private(dir, PRIVATE_DIR)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(path)(e)),
    }
    check_sqlite_files(path)
}

/// Refuses the database file and its `-wal`/`-shm` companions (those that
/// exist) when group or others have any access.
pub(super) fn check_sqlite_files(path: &Path) -> Result<(), StoreError> {
    check_private(path, PRIVATE_FILE)?;
    for suffix in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        let companion = PathBuf::from(companion);
        if companion.exists() {
            check_private(&companion, PRIVATE_FILE)?;
        }
    }
    Ok(())
}

/// One path: no permission bits for group or others.
fn check_private(path: &Path, fix: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| StoreError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(StoreError::Permissions {
            path: path.display().to_string(),
            mode,
            fix,
        });
    }
    Ok(())
}

/// Opens the PostgreSQL pool used for queries.
pub(super) async fn postgres_pool(url: &str) -> Result<AnyPool, StoreError> {
    let options = AnyConnectOptions::from_str(url)
        .map_err(|_| StoreError::InvalidUrl("not a valid postgres:// connection URL".into()))?;
    AnyPoolOptions::new()
        .max_connections(POSTGRES_MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(StoreError::Connect)
}

/// A separate one-connection pool for LISTEN: a listening connection is
/// pinned for the store's lifetime and must not starve the query pool.
pub(super) async fn listener_pool(url: &str) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::InvalidUrl("not a valid postgres:// connection URL".into()))?
        .application_name("portcullis-events");
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(StoreError::Connect)
}

/// Percent-encodes everything but unreserved characters and `/`, because
/// sqlx decodes the path and `?`, `#`, `%` or spaces would otherwise be
/// misread as URL syntax.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_urls() {
        assert!(matches!(
            parse_target("sqlite:///var/lib/p.db"),
            Ok(Target::Sqlite(p)) if p == Path::new("/var/lib/p.db")
        ));
        assert!(matches!(
            parse_target("sqlite://rel/p.db?mode=rwc"),
            Ok(Target::Sqlite(p)) if p == Path::new("rel/p.db")
        ));
        assert!(matches!(parse_target("/data/p.db"), Ok(Target::Sqlite(_))));
        assert!(matches!(
            parse_target("postgres://u:pw@localhost/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(
            parse_target("postgresql://localhost/db"),
            Ok(Target::Postgres(_))
        ));
    }

    #[test]
    fn rejects_bad_urls_without_echoing_them() {
        for bad in [
            "",
            "mysql://root:hunter2@h/db",
            "sqlite://",
            "sqlite::memory:",
            "sqlite://x.db?mode=ro",
        ] {
            match parse_target(bad) {
                Err(StoreError::InvalidUrl(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn encodes_url_syntax_in_paths() {
        assert_eq!(encode_path("/a b/c?d#e%f"), "/a%20b/c%3Fd%23e%25f");
    }
}
