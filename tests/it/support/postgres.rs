//! A throwaway PostgreSQL server for integration tests.
//!
//! One cluster per test process, started lazily on first use from the local
//! PostgreSQL binaries (`/usr/lib/postgresql/*/bin`, newest first, or the
//! directory in `PORTCULLIS_PG_BIN`). Every test gets its own database from
//! [`PgCluster::fresh_database`], so tests never see each other's rows.
//!
//! Statics are never dropped, so the server cannot be stopped from a `Drop`
//! impl. Instead it runs in the foreground under a tiny shell wrapper that
//! blocks reading our piped stdin; when the test process exits (however it
//! exits) the pipe closes, the wrapper stops postgres and deletes the data
//! directory.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection, Executor};
use tokio::sync::OnceCell;

/// Upper bound for the server to accept connections after spawn.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for `initdb` and other one-shot commands.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

static CLUSTER: OnceCell<PgCluster> = OnceCell::const_new();

/// A running throwaway PostgreSQL server.
pub(crate) struct PgCluster {
    port: u16,
    next_db: AtomicU64,
    /// Held only so the pipe stays open for the life of the test process.
    _stdin: Mutex<ChildStdin>,
    _wrapper: Mutex<Child>,
}

impl PgCluster {
    /// The process-wide cluster, started on first call. Panics with the
    /// reason (missing binaries, initdb output, server log) if it cannot
    /// start: these are tests, and a clear failure beats a hang.
    pub(crate) async fn shared() -> &'static PgCluster {
        match CLUSTER.get_or_try_init(PgCluster::start).await {
            Ok(cluster) => cluster,
            Err(message) => panic!("could not start the test PostgreSQL cluster: {message}"),
        }
    }

    /// Creates a new, uniquely named, empty database and returns its URL.
    pub(crate) async fn fresh_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("portcullis_test_{}_{n}", std::process::id());
        let mut admin = sqlx::postgres::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"));
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let _ = admin.close().await;
        self.url(&name)
    }

    /// Trust auth on loopback, so the URL needs no password.
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// [`PgCluster::start_on`] a port picked just before: postgres binds it
    /// itself, so another process may take it first. Then postgres fails
    /// (address in use) and we start again on another port, at most 5
    /// times.
    async fn start() -> Result<PgCluster, String> {
        let mut taken = Vec::new();
        for _ in 0..5 {
            match Self::start_on(free_port()?).await {
                Ok(cluster) => return Ok(cluster),
                Err(Start::PortTaken(log)) => taken.push(log),
                Err(Start::Failed(message)) => return Err(message),
            }
        }
        Err(format!("every port tried was taken:\n{}", taken.join("\n")))
    }

    /// initdb + foreground postgres under the stdin-watching wrapper.
    async fn start_on(port: u16) -> Result<PgCluster, Start> {
        let bin = find_bin_dir()?;
        let root = tempfile::Builder::new()
            .prefix("portcullis-pg-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir: {e}"))?
            // The wrapper script deletes it when postgres stops.
            .keep();
        let data = root.join("data");
        let as_postgres = running_as_root();
        if as_postgres {
            run_bounded(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&root),
                "chown",
            )
            .await?;
        }

        let mut initdb = user_command(as_postgres, &bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        run_bounded(&mut initdb, "initdb").await?;

        let log = root.join("postgres.log");
        let script = format!(
            "{postgres} -D {data} -p {port} -c listen_addresses=127.0.0.1 \
             -c unix_socket_directories={root} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300 >{log} 2>&1 & \
             pid=$!; cat >/dev/null; kill -INT $pid; wait $pid; rm -rf {root}",
            postgres = sh_quote(&bin.join("postgres")),
            data = sh_quote(&data),
            root = sh_quote(&root),
            log = sh_quote(&log),
        );
        let mut wrapper = user_command(as_postgres, Path::new("/bin/sh"));
        wrapper
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = wrapper
            .spawn()
            .map_err(|e| format!("spawning postgres: {e}"))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| "postgres wrapper has no stdin pipe".to_string())?;
        let cluster = PgCluster {
            port,
            next_db: AtomicU64::new(0),
            _stdin: Mutex::new(stdin),
            _wrapper: Mutex::new(child),
        };
        cluster.wait_ready(&log, &data).await?;
        Ok(cluster)
    }

    /// Polls until *our* server answers (its `data_directory` is `data`:
    /// on a port someone else took, another server may answer), failing
    /// early if the log shows a fatal error and at the latest after
    /// [`READY_TIMEOUT`].
    async fn wait_ready(&self, log: &Path, data: &Path) -> Result<(), Start> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                let attempt = tokio::time::timeout(Duration::from_secs(5), async {
                    let mut conn =
                        sqlx::postgres::PgConnection::connect(&self.url("postgres")).await?;
                    let dir: String =
                        sqlx::query_scalar("SELECT current_setting('data_directory')")
                            .fetch_one(&mut conn)
                            .await?;
                    conn.close().await?;
                    Ok::<_, sqlx::Error>(dir)
                })
                .await;
                if let Ok(Ok(dir)) = attempt
                    && Path::new(&dir) == data
                {
                    return Ok(());
                }
            }
            let log_text = read_log(log);
            if log_text.contains("could not bind") || log_text.contains("Address already in use") {
                return Err(Start::PortTaken(log_text));
            }
            // "FATAL: the database system is starting up" is the answer to
            // a connection that raced the startup (seen on a loaded
            // machine): transient, keep polling.
            let fatal = log_text.lines().any(|l| {
                (l.contains("FATAL") || l.contains("PANIC"))
                    && !l.contains("the database system is starting up")
            });
            if fatal {
                return Err(Start::Failed(format!(
                    "postgres failed to start; log:\n{log_text}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(Start::Failed(format!(
                    "postgres did not accept connections on port {} within {READY_TIMEOUT:?}; log:\n{log_text}",
                    self.port
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A PostgreSQL server of one test's own, for outages: it listens only on
/// a Unix socket in its own directory (no TCP port), so it can be stopped
/// and started again at the same address without anyone taking it in
/// between. A wrapper shell reads `start`/`stop` lines from our stdin; when
/// the pipe closes (the value is dropped or the process ends) it stops the
/// server and deletes the directory.
pub(crate) struct PgServer {
    root: PathBuf,
    stdin: ChildStdin,
    _wrapper: Child,
}

impl PgServer {
    /// initdb, then starts the server and waits until it answers.
    pub(crate) async fn start() -> PgServer {
        match Self::init().await {
            Ok(server) => server,
            Err(message) => panic!("could not start a test PostgreSQL server: {message}"),
        }
    }

    async fn init() -> Result<PgServer, String> {
        let bin = find_bin_dir()?;
        let root = tempfile::Builder::new()
            .prefix("pcpg-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir: {e}"))?
            .keep();
        let data = root.join("data");
        let as_postgres = running_as_root();
        if as_postgres {
            run_bounded(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&root),
                "chown",
            )
            .await?;
        }
        let mut initdb = user_command(as_postgres, &bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        run_bounded(&mut initdb, "initdb").await?;
        let script = format!(
            "pid=; while read -r cmd; do case \"$cmd\" in \
             start) {postgres} -D {data} -c listen_addresses= -c unix_socket_directories={root} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off >>{log} 2>&1 & pid=$! ;; \
             stop) kill -INT $pid; wait $pid; pid= ;; esac; done; \
             if [ -n \"$pid\" ]; then kill -INT $pid; wait $pid; fi; rm -rf {root}",
            postgres = sh_quote(&bin.join("postgres")),
            data = sh_quote(&data),
            root = sh_quote(&root),
            log = sh_quote(&root.join("postgres.log")),
        );
        let mut child = user_command(as_postgres, Path::new("/bin/sh"))
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning postgres: {e}"))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| "postgres wrapper has no stdin pipe".to_string())?;
        let mut server = PgServer {
            root,
            stdin,
            _wrapper: child,
        };
        server.up().await;
        Ok(server)
    }

    /// The URL of `database` (trust auth, over the socket).
    pub(crate) fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.root.display()
        )
    }

    /// Stops the server (fast shutdown: sessions are ended) and returns once
    /// it no longer accepts connections.
    pub(crate) async fn down(&mut self) {
        self.send("stop");
        self.wait_until(false).await;
    }

    /// Starts the server (again) and returns once it answers.
    pub(crate) async fn up(&mut self) {
        self.send("start");
        self.wait_until(true).await;
    }

    fn send(&mut self, command: &str) {
        use std::io::Write;
        writeln!(self.stdin, "{command}").expect("postgres wrapper gone");
        self.stdin.flush().expect("postgres wrapper gone");
    }

    async fn wait_until(&self, answering: bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(5), async {
                let mut conn = sqlx::postgres::PgConnection::connect(&self.url("postgres")).await?;
                conn.execute("SELECT 1").await?;
                conn.close().await
            })
            .await;
            if matches!(attempt, Ok(Ok(()))) == answering {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not {} within {READY_TIMEOUT:?}; log:\n{}",
                if answering { "start" } else { "stop" },
                read_log(&self.root.join("postgres.log"))
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Why a start failed: a port someone else took (try another) or anything
/// else (report it).
enum Start {
    PortTaken(String),
    Failed(String),
}

impl From<String> for Start {
    fn from(message: String) -> Self {
        Start::Failed(message)
    }
}

/// Newest installed major version first, so upgrades of the image need no
/// code change.
fn find_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PORTCULLIS_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "PORTCULLIS_PG_BIN={} has no initdb/postgres",
                dir.display()
            ))
        };
    }
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(base)
        .map_err(|e| {
            format!(
                "no PostgreSQL found under {} ({e}); install postgresql (e.g. apt-get install \
                 postgresql-15) or set PORTCULLIS_PG_BIN",
                base.display()
            )
        })?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    versions.into_iter().next().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "no initdb/postgres binaries under {}/*/bin; install postgresql or set PORTCULLIS_PG_BIN",
            base.display()
        )
    })
}

/// initdb and postgres refuse to run as root; the owner of /proc/self is our
/// effective uid.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A command run directly, or as the `postgres` OS user when we are root.
fn user_command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Runs a one-shot command to completion with a deadline, returning its
/// output as the error if it fails.
async fn run_bounded(cmd: &mut Command, what: &str) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {what}: {e}"))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {COMMAND_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut output = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut output);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut output);
    }
    Err(format!("{what} failed ({status}):\n{output}"))
}

/// Asks the kernel for a free port. postgres binds it itself, so another
/// process may take it first: [`PgCluster::start`] retries then.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// The server log is the only useful diagnostic when startup fails.
fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Single-quotes a path for `sh -c`.
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
