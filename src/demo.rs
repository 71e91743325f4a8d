//! The demo: a built-in upstream app that shows what it received, and the
//! `portcullis demo` command that runs it behind the proxy with no setup.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{Html, IntoResponse, Json, Response};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::json;

use crate::app::{AppError, Stop, prepare};

pub mod directory;

/// Header names the demo page highlights.
const IDENTITY: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-name",
    "x-forwarded-groups",
    "x-forwarded-roles",
    "x-forwarded-tenant",
    "x-portcullis-assertion",
];

#[derive(Template)]
#[template(path = "demo_upstream.html")]
struct EchoPage {
    email: Option<String>,
    identity: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    claims: Option<String>,
}

/// The echo app: any method, any path. JSON when asked (`Accept:
/// application/json`), else an HTML page. The body is drained and counted
/// as it streams, so large uploads can be checked end to end.
pub fn upstream_router() -> Router {
    Router::new().fallback(echo)
}

async fn echo(req: Request) -> Response {
    let (parts, mut body) = req.into_parts();
    let mut body_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => body_bytes += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
            Err(_) => break,
        }
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let wants_json = parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return Json(json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body_bytes": body_bytes,
        }))
        .into_response();
    }
    let flat: Vec<(String, String)> = headers
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
        .collect();
    let identity = flat
        .iter()
        .filter(|(k, _)| IDENTITY.contains(&k.as_str()))
        .cloned()
        .collect();
    let claims = headers
        .get("x-portcullis-assertion")
        .and_then(|v| v.first())
        .and_then(|jwt| jwt.split('.').nth(1))
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    let page = EchoPage {
        email: headers
            .get("x-forwarded-email")
            .and_then(|v| v.first())
            .cloned(),
        identity,
        headers: flat,
        claims,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => Response::new(Body::from("render error")),
    }
}

/// Serves the echo app on `addr` until the process ends.
pub async fn serve_upstream(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, upstream_router()).await
}

/// The demo app of `portcullis demo`: the echo app plus the webhook
/// receiver and its directory page ([`directory`]), verifying with
/// `secrets` (the decoded `[webhook] secrets`).
pub fn demo_router(secrets: &[Vec<u8>]) -> Router {
    let dir = std::sync::Arc::new(directory::Directory::new(secrets));
    directory::router(dir).fallback(echo)
}

/// The largest answer [`fixed_router`] is asked for from the command line.
pub const MAX_FIXED_BYTES: u64 = 16 << 20;

/// A benchmark's upstream: every request, whatever its method, path or
/// headers, gets the same `200` with `bytes` bytes of HTML. The echo app's
/// answer grows with what the proxy adds (identity headers, the
/// assertion, its decoded claims), so behind it an authenticated request
/// cost the *app* about twice a bare one's work, on the same CPUs as the
/// proxy being measured; this one's work is the same behind any proxy.
pub fn fixed_router(bytes: usize) -> Router {
    const LINE: &str = "<p>portcullis benchmark upstream</p>\n";
    let body: String = LINE.chars().cycle().take(bytes).collect();
    let body = axum::body::Bytes::from(body);
    Router::new().fallback(move || {
        let body = body.clone();
        async move { Html(body) }
    })
}

/// Runs the echo app alone (benchmarks and local experiments), or with
/// `fixed` the constant answer of [`fixed_router`].
pub fn run_upstream(addr: SocketAddr, fixed: Option<usize>) -> Result<(), AppError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        match fixed {
            Some(bytes) => axum::serve(listener, fixed_router(bytes)).await,
            None => serve_upstream(listener).await,
        }
    })?;
    Ok(())
}

const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Where `portcullis demo` keeps its store and keys unless told otherwise;
/// also what a bare `--demo` means to the other commands.
pub const DEFAULT_DATA_DIR: &str = "data/demo";
/// The demo's default addresses (those of `config/demo.toml`).
pub const DEFAULT_LISTEN: SocketAddr = loopback(8080);
pub const DEFAULT_ADMIN: SocketAddr = loopback(9090);
pub const DEFAULT_UPSTREAM: SocketAddr = loopback(8081);

const fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        port,
    ))
}

/// The file in the data directory where a running demo records its
/// addresses, so that `--demo` commands print URLs that match it.
const ADDRESSES_FILE: &str = "addresses";

/// Where the demo runs; defaults match `config/demo.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub upstream: SocketAddr,
}

impl DemoOptions {
    /// The demo in `data_dir` as it last ran: the addresses it recorded at
    /// startup, else the defaults. A demo started with `--listen` elsewhere
    /// is then still the one `scim-token create --demo` prints a URL for.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        let mut opts = Self {
            data_dir: data_dir.to_path_buf(),
            listen: DEFAULT_LISTEN,
            admin: DEFAULT_ADMIN,
            upstream: DEFAULT_UPSTREAM,
        };
        let text = std::fs::read_to_string(data_dir.join(ADDRESSES_FILE)).unwrap_or_default();
        for line in text.lines() {
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let Ok(addr) = value.trim().parse() else {
                continue;
            };
            match name.trim() {
                "listen" => opts.listen = addr,
                "admin" => opts.admin = addr,
                "upstream" => opts.upstream = addr,
                _ => {}
            }
        }
        opts
    }

    fn record_addresses(&self) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.data_dir.join(ADDRESSES_FILE))?;
        write!(
            f,
            "listen={}\nadmin={}\nupstream={}\n",
            self.listen, self.admin, self.upstream
        )
    }
}

/// The demo's configuration: the built-in `config/demo.toml` with the data
/// directory, its keys and `opts`' addresses. Creates the directory (0700)
/// and the keys when missing, so `portcullis demo` and every command run
/// with `--demo` share one store and one session key whichever runs first.
pub fn demo_config(opts: &DemoOptions) -> Result<crate::config::Config, AppError> {
    let data_dir = opts.data_dir.as_path();
    // The store refuses a directory others can read (it holds the session
    // records and the signing key), so the demo creates its own 0700.
    if !data_dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)?;
    }
    let key = demo_key(data_dir, "session.key", hex::encode)?;
    let store_key = demo_key(data_dir, "store.key", |bytes| {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    })?;
    let data = data_dir.display().to_string();
    let env = move |name: &str| match name {
        "PORTCULLIS_SESSION_KEY" => Some(key.clone()),
        "PORTCULLIS_STORE_KEY" => Some(store_key.clone()),
        "PORTCULLIS_DATA_DIR" => Some(data.clone()),
        other => std::env::var(other).ok(),
    };
    let mut config = crate::config::from_str(DEMO_CONFIG, "config/demo.toml (built in)", &env)?;
    // Command-line addresses win over the built-in file.
    config.listeners[0].address = opts.listen.to_string();
    config.admin.address = opts.admin.to_string();
    config.upstream.address = opts.upstream.to_string();
    config.server.public_url = format!("http://{}", opts.listen);
    // The demo app receives the events, wherever it listens.
    if let Some(hook) = config.webhook.as_mut() {
        hook.url = format!("http://{}{}", opts.upstream, directory::WEBHOOK_PATH);
    }
    Ok(config)
}

/// `portcullis demo`: proxy + embedded SQLite + demo upstream, no file needed.
pub fn run_demo(opts: &DemoOptions) -> Result<(), AppError> {
    let config = demo_config(opts)?;
    let mut secrets = Vec::new();
    for s in config.webhook.iter().flat_map(|hook| &hook.secrets) {
        secrets.push(
            crate::config::decode_webhook_secret(s)
                .map_err(|e| std::io::Error::other(format!("webhook.secrets: {e}")))?,
        );
    }
    crate::logging::init(&config.log);

    // Listeners first: a refused configuration never binds anything.
    let prepared = prepare(config.clone(), None)?;
    let std_listener = std::net::TcpListener::bind(opts.upstream)
        .map_err(|e| AppError::Listener(opts.upstream.to_string(), e.to_string()))?;
    std_listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("demo-upstream".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "demo upstream runtime"),
            };
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, demo_router(&secrets)).await {
                            tracing::error!(error = %e, "demo upstream stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "demo upstream listener"),
                }
            });
        })?;
    opts.record_addresses()?;

    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "portcullis".into());
    print!("{}", banner(opts, &config, &program));
    prepared.run(Stop::Signals);
    Ok(())
}

/// What `portcullis demo` prints once it listens: where to look, and
/// ready-to-paste next steps with the addresses it really uses — the SCIM
/// base URL and the command for a token, a session for curl, the metrics
/// and the directory the demo app builds from webhooks. `program` is how
/// the binary was invoked, so the commands work as pasted.
pub fn banner(opts: &DemoOptions, config: &crate::config::Config, program: &str) -> String {
    use std::fmt::Write as _;
    let urls = config.public_urls();
    let url = urls.origin();
    let program = shell_quote(program);
    let demo = if opts.data_dir == Path::new(DEFAULT_DATA_DIR) {
        "--demo".to_owned()
    } else {
        format!(
            "--demo={}",
            shell_quote(&opts.data_dir.display().to_string())
        )
    };
    let tenant = config
        .dev_idp
        .as_ref()
        .map(|d| d.tenant.as_str())
        .or_else(|| config.tenants.first().map(|t| t.id.as_str()))
        .unwrap_or("example");
    let user = config.dev_idp.as_ref().and_then(|d| d.users.first());
    let email = user.map_or("alice@example.com", |u| u.email.as_str());
    let groups = user
        .filter(|u| !u.groups.is_empty())
        .map(|u| format!(" --groups {}", shell_quote(&u.groups.join(","))))
        .unwrap_or_default();
    let mint = format!(
        "{program} sessions mint {demo} --email {} --tenant {}{groups}",
        shell_quote(email),
        shell_quote(tenant)
    );
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(out, "  Portcullis demo is running.");
    let _ = writeln!(out, "  Open {url}/ in your browser.");
    let _ = writeln!(
        out,
        "  Demo app (upstream, unprotected): http://{}/   metrics: http://{}/metrics",
        opts.upstream, opts.admin
    );
    let _ = writeln!(
        out,
        "  Directory the app built from webhooks: {url}{}",
        directory::DIRECTORY_PATH
    );
    let _ = writeln!(
        out,
        "  Data: {}   Stop with Ctrl-C.",
        opts.data_dir.display()
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "  Next steps (in another terminal):");
    let _ = writeln!(out, "    SCIM base URL:  {}", urls.scim_base(&config.scim));
    let _ = writeln!(
        out,
        "    SCIM token:     {program} scim-token create {demo} --tenant {}",
        shell_quote(tenant)
    );
    let _ = writeln!(out, "    A session:      {mint}");
    let _ = writeln!(
        out,
        "    Use it:         curl -H \"Cookie: $({mint})\" {url}/"
    );
    let _ = writeln!(out, "    Metrics:        http://{}/metrics", opts.admin);
    let _ = writeln!(
        out,
        "    Directory:      http://{}{}   (the demo app's own page: users, groups, events)",
        opts.upstream,
        directory::DIRECTORY_PATH
    );
    let _ = writeln!(out);
    out
}

/// `s` as one POSIX shell word: unchanged when it is plainly safe, else in
/// single quotes.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A random per-installation demo key (the session key, hex; the store
/// encryption key, base64), kept in `file` so demo sessions and the sealed
/// store survive restarts; created owner-readable only. A file that no
/// longer holds a usable key is replaced.
fn demo_key(dir: &Path, file: &str, encode: fn([u8; 32]) -> String) -> Result<String, AppError> {
    let path: PathBuf = dir.join(file);
    if let Ok(k) = std::fs::read_to_string(&path) {
        let k = k.trim().to_owned();
        let usable = match file {
            "store.key" => crate::config::decode_store_key(&k).is_ok(),
            _ => k.len() >= crate::config::MIN_SESSION_KEY_BYTES,
        };
        if usable {
            return Ok(k);
        }
    }
    let bytes = crate::secret::random_bytes::<32>()
        .map_err(|_| std::io::Error::other("no randomness available"))?;
    let key = encode(bytes);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(key.as_bytes())?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private_dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn the_config_lives_in_the_data_dir_and_keeps_its_keys() {
        let dir = private_dir();
        let data = dir.path().join("demo");
        let opts = DemoOptions::for_data_dir(&data);
        assert_eq!(opts.listen, DEFAULT_LISTEN, "nothing recorded yet");
        let first = demo_config(&opts).unwrap();
        assert_eq!(
            first.store.url,
            format!("sqlite://{}/portcullis.db", data.display())
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // A second caller (the CLI with --demo) gets the same keys.
        let again = demo_config(&opts).unwrap();
        assert_eq!(first.session.keys, again.session.keys);
        assert_eq!(
            first.store.encryption_keys().unwrap(),
            again.store.encryption_keys().unwrap()
        );
    }

    #[test]
    fn recorded_addresses_are_what_for_data_dir_returns() {
        let dir = private_dir();
        let opts = DemoOptions {
            data_dir: dir.path().to_path_buf(),
            listen: loopback(18080),
            admin: loopback(19090),
            upstream: loopback(18081),
        };
        opts.record_addresses().unwrap();
        assert_eq!(DemoOptions::for_data_dir(dir.path()), opts);
        let cfg = demo_config(&opts).unwrap();
        assert_eq!(cfg.server.public_url, "http://127.0.0.1:18080");
        assert_eq!(
            cfg.webhook.unwrap().url,
            "http://127.0.0.1:18081/webhooks/portcullis"
        );
    }

    #[test]
    fn the_banner_names_the_real_addresses_and_the_commands() {
        let dir = private_dir();
        let opts = DemoOptions {
            data_dir: dir.path().join("my demo"),
            listen: loopback(18080),
            admin: loopback(19090),
            upstream: loopback(18081),
        };
        let cfg = demo_config(&opts).unwrap();
        let text = banner(&opts, &cfg, "target/debug/portcullis");
        let demo = format!("--demo='{}/my demo'", dir.path().display());
        for line in [
            "SCIM base URL:  http://127.0.0.1:18080/scim/v2".to_owned(),
            format!("target/debug/portcullis scim-token create {demo} --tenant example"),
            format!(
                "target/debug/portcullis sessions mint {demo} --email alice@example.com \
                 --tenant example --groups Engineering,Everyone"
            ),
            "Metrics:        http://127.0.0.1:19090/metrics".to_owned(),
            "http://127.0.0.1:18081/directory".to_owned(),
        ] {
            assert!(text.contains(&line), "{line}\n{text}");
        }
        let default = DemoOptions::for_data_dir(Path::new(DEFAULT_DATA_DIR));
        assert!(
            banner(&default, &cfg, "portcullis")
                .contains("portcullis scim-token create --demo --tenant example")
        );
    }

    #[test]
    fn shell_quote_leaves_plain_words_alone() {
        assert_eq!(shell_quote("data/demo"), "data/demo");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
