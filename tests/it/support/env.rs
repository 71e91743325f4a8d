//! `TestEnv`: the real proxy, in-process on 127.0.0.1, in front of a real
//! upstream (the built-in echo app) on its own ephemeral port.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pingora::server::ShutdownSignal;
use portcullis::app::{Shared, Stop, prepare_with_listeners};
use portcullis::identity::Principal;

pub(crate) const KEY_A: &str = "test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub(crate) const KEY_B: &str = "test-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// `[store] encryption_key` of every test environment: base64 of 32 bytes.
pub(crate) const STORE_KEY: &str = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE=";
/// A second store key, for rotation and wrong-key tests.
pub(crate) const STORE_KEY_2: &str = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDI=";

/// A listening socket on an ephemeral loopback port. Hand it to the
/// component that serves it (never close it and reuse the number: another
/// process may take the port in between).
pub(crate) fn bind_local() -> StdListener {
    StdListener::bind("127.0.0.1:0").expect("no free loopback port")
}

/// An address that refuses connections for as long as this value lives:
/// the port is bound (so no one else can take it) but never listened on,
/// so a connection attempt is answered with a reset (`ECONNREFUSED`). The
/// dead upstream, IdP or database of a test.
pub(crate) struct Refusing {
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

pub(crate) fn refusing() -> Refusing {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    Refusing {
        addr: socket.local_addr().unwrap(),
        _socket: socket,
    }
}

/// The routes every test environment uses.
pub(crate) const ROUTES: &str = r#"
[[routes]]
prefix = "/public/"
policy = "public"

[[routes]]
prefix = "/optional/"
policy = "optional"

[[routes]]
prefix = "/admin"
policy = "required"
allowed_groups = ["admins"]

[[routes]]
prefix = "/"
policy = "required"
"#;

pub(crate) struct Options {
    pub upstream: Option<SocketAddr>,
    pub store_url: Option<String>,
    pub keys: Vec<&'static str>,
    pub extra: String,
    /// PEM paths (cert, key) for a TLS listener.
    pub listener_tls: Option<(String, String)>,
    /// More `[upstream]` keys, one per line.
    pub upstream_extra: String,
    /// SSO protocol implementations (tests inject stand-in IdPs).
    pub factories: portcullis::auth::Factories,
    /// More `[server]` keys, one per line.
    pub server_extra: String,
    /// More `[session]` keys, one per line; a `secure = ...` line here
    /// replaces the default `secure = false`.
    pub session_extra: String,
    /// `[server] public_url` when Portcullis is reached through a host
    /// proxy (default: its own listener).
    pub public_url: Option<String>,
    /// The public listener, bound by the test before a host proxy that
    /// points at it was started.
    pub proxy_listener: Option<StdListener>,
    /// `[[upstreams]]` entries (name, address) instead of the `[upstream]`
    /// table; the env then starts no app of its own (`TestEnv::app` is
    /// `None`). `upstream_extra` goes into every entry.
    pub upstreams: Vec<(&'static str, SocketAddr)>,
    /// More `[admin]` keys, one per line.
    pub admin_extra: String,
    /// Leave out `[admin] allow_loopback_idp_urls = true` (every test IdP
    /// lives on loopback, so the environments allow it unless told not to).
    pub strict_egress: bool,
    /// `read_timeout_ms` of every upstream (default 5000).
    pub read_timeout_ms: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            upstream: None,
            store_url: None,
            keys: vec![KEY_A],
            extra: String::new(),
            listener_tls: None,
            upstream_extra: String::new(),
            factories: Default::default(),
            server_extra: String::new(),
            session_extra: String::new(),
            public_url: None,
            proxy_listener: None,
            upstreams: Vec::new(),
            admin_extra: String::new(),
            strict_egress: false,
            read_timeout_ms: None,
        }
    }
}

/// The test allowance every generated configuration carries: the test IdPs
/// live on loopback, which the egress guard otherwise refuses.
pub(crate) const LOOPBACK_IDPS: &str = "allow_loopback_idp_urls = true\n";

pub(crate) struct TestEnv {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub shared: Arc<Shared>,
    /// What the app saw, when the env started its own (counting) upstream.
    pub app: Option<super::refusal::AppLog>,
    _dir: tempfile::TempDir,
    pub config_text: String,
    stop: Option<tokio::sync::mpsc::Sender<ShutdownSignal>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _upstream_task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the echo app on an ephemeral port of the current runtime.
pub(crate) async fn start_echo_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = portcullis::demo::serve_upstream(listener).await;
    });
    (addr, task)
}

pub(crate) fn config_text(
    proxy: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    store: &str,
    keys: &[&str],
    extra: &str,
) -> String {
    let keys = keys
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[server]
public_url = "http://127.0.0.1:{port}"
threads = 2
grace_period_seconds = 0

[[listeners]]
address = "{proxy}"

[admin]
address = "{admin}"
{LOOPBACK_IDPS}
[upstream]
address = "{upstream}"
connect_timeout_ms = 1000
read_timeout_ms = 5000

[session]
keys = [{keys}]
secure = false

[store]
url = "{store}"
encryption_key = "{STORE_KEY}"

[log]
level = "warn"
{extra}
{ROUTES}
"#,
        port = proxy.port()
    )
}

impl TestEnv {
    pub(crate) async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub(crate) async fn with(opts: Options) -> Self {
        let dir = private_tempdir().unwrap();
        let (upstream, task, app) = match (opts.upstream, opts.upstreams.first()) {
            (Some(a), _) | (None, Some(&(_, a))) => (a, None, None),
            (None, None) => {
                let (a, t, log) = start_counting_upstream().await;
                (a, Some(t), Some(log))
            }
        };
        // Bound here and handed over: the server never binds these itself.
        let proxy_socket = opts.proxy_listener.unwrap_or_else(bind_local);
        let admin_socket = bind_local();
        let proxy = proxy_socket.local_addr().unwrap();
        let admin = admin_socket.local_addr().unwrap();
        let store = opts
            .store_url
            .unwrap_or_else(|| format!("sqlite://{}/store.db", dir.path().display()));
        let mut text = config_text(proxy, admin, upstream, &store, &opts.keys, &opts.extra);
        if let Some(url) = &opts.public_url {
            text = text.replacen(
                &format!("public_url = \"http://127.0.0.1:{}\"", proxy.port()),
                &format!("public_url = \"{url}\""),
                1,
            );
        }
        if !opts.upstreams.is_empty() {
            let entries: String = opts
                .upstreams
                .iter()
                .map(|(name, addr)| {
                    format!(
                        "[[upstreams]]\nname = \"{name}\"\naddress = \"{addr}\"\n\
                         connect_timeout_ms = 1000\nread_timeout_ms = 5000\n\n"
                    )
                })
                .collect();
            let table = format!(
                "[upstream]\naddress = \"{upstream}\"\nconnect_timeout_ms = 1000\nread_timeout_ms = 5000\n"
            );
            assert!(text.contains(&table), "the [upstream] table moved");
            text = text.replace(&table, &entries);
        }
        if let Some((cert, key)) = &opts.listener_tls {
            text = text.replace(
                &format!("address = \"{proxy}\"\n"),
                &format!("address = \"{proxy}\"\ntls = {{ cert = \"{cert}\", key = \"{key}\" }}\n"),
            );
        }
        text = text.replace(
            "grace_period_seconds = 0\n",
            &format!("grace_period_seconds = 0\n{}\n", opts.server_extra),
        );
        text = text.replace(
            "read_timeout_ms = 5000\n",
            &format!("read_timeout_ms = 5000\n{}\n", opts.upstream_extra),
        );
        if let Some(ms) = opts.read_timeout_ms {
            text = text.replace(
                "read_timeout_ms = 5000\n",
                &format!("read_timeout_ms = {ms}\n"),
            );
        }
        if opts.strict_egress || opts.admin_extra.contains("allow_loopback_idp_urls") {
            text = text.replacen(LOOPBACK_IDPS, "", 1);
        }
        text = text.replace(
            &format!("address = \"{admin}\"\n"),
            &format!("address = \"{admin}\"\n{}\n", opts.admin_extra),
        );
        if !opts.session_extra.is_empty() {
            let sets_secure = opts
                .session_extra
                .lines()
                .any(|l| l.trim_start().starts_with("secure"));
            let keep = if sets_secure { "" } else { "secure = false\n" };
            text = text.replacen(
                "secure = false\n",
                &format!("{keep}{}\n", opts.session_extra),
                1,
            );
        }
        let path: PathBuf = dir.path().join("portcullis.toml");
        std::fs::write(&path, &text).unwrap();
        let config = portcullis::config::load(&path).unwrap_or_else(|e| panic!("{e}"));

        let (stop_tx, stop_rx) = tokio::sync::mpsc::channel(1);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        // prepare() builds its own runtime, which can't happen inside the
        // test's runtime: do it all on a plain thread.
        let factories = opts.factories.clone();
        let sockets = vec![proxy_socket, admin_socket];
        let thread = std::thread::spawn(move || {
            match prepare_with_listeners(config, Some(path), factories, sockets) {
                Ok(p) => {
                    let _ = ready_tx.send(Ok(p.shared.clone()));
                    p.run(Stop::Channel(stop_rx));
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
        let shared =
            tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(30)))
                .await
                .unwrap()
                .expect("server did not start in time")
                .unwrap_or_else(|e| panic!("server failed to start: {e}"));
        // No wait for the ports: they were listening before the server
        // started, and connections queue until it accepts them.
        Self {
            proxy,
            admin,
            shared,
            app,
            _dir: dir,
            config_text: text,
            stop: Some(stop_tx),
            thread: Some(thread),
            _upstream_task: task,
        }
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self._dir.path().join("portcullis.toml")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    /// Creates a real session in the store; returns the `Cookie` header value.
    pub(crate) async fn mint(&self, p: &Principal) -> String {
        self.mint_at(p, portcullis::clock::now(), 3600).await
    }

    pub(crate) async fn mint_at(&self, p: &Principal, now: i64, lifetime: i64) -> String {
        let token = self
            .shared
            .sessions
            .create(p, None, lifetime, now)
            .await
            .unwrap();
        let set_cookie = self.shared.generation().codec.seal(&token, now);
        set_cookie.split(';').next().unwrap().to_owned()
    }

    /// Metrics once `needle` appears (bounded): request counters are
    /// updated in pingora's logging phase, just after the client already
    /// has its response.
    pub(crate) async fn metrics_with(&self, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            last = self.metrics().await;
            if last.contains(needle) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("metric `{needle}` never appeared:\n{last}");
    }

    pub(crate) async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.try_send(ShutdownSignal::FastShutdown);
        }
        // The server finishes shutting down on its own thread. Waiting for it
        // here would block this test's runtime, and closing the store can need
        // that runtime (connections the test itself used); the thread ends
        // when the runtime is dropped at the end of the test at the latest.
        drop(self.thread.take());
    }
}

/// Starts a process that must bind its own ports (a child process: no
/// socket can be handed over), on `n` loopback ports picked just before.
/// Such a port can be taken by someone else before the child binds it, so:
/// if the child exits (it fails fast on an address in use) it is started
/// again on fresh ports, at most 5 times; and it counts as started only
/// once *it* (its pid, per /proc) listens on every one of them, so a
/// stranger on a reused port is never mistaken for it. `spawn` gets the
/// addresses and returns the child.
pub(crate) async fn spawn_listening(
    n: usize,
    mut spawn: impl FnMut(&[SocketAddr]) -> std::process::Child,
) -> (std::process::Child, Vec<SocketAddr>) {
    let mut exits = Vec::new();
    for _ in 0..5 {
        let addrs: Vec<SocketAddr> = (0..n).map(|_| bind_local().local_addr().unwrap()).collect();
        let mut child = spawn(&addrs);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                exits.push(format!("{addrs:?}: {status}"));
                break;
            }
            if addrs.iter().all(|a| listens(child.id(), *a)) {
                return (child, addrs);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child did not listen on {addrs:?} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("the child exited before listening, 5 times: {exits:#?}");
}

/// Whether process `pid` holds a TCP socket listening on `addr` (IPv4),
/// from /proc/<pid>/net/tcp (inode of the listening socket) and
/// /proc/<pid>/fd (the process' sockets).
pub(crate) fn listens(pid: u32, addr: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = addr else {
        return false;
    };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
    })
}

pub(crate) async fn wait_for_port(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr} did not start listening within 10 s");
}

pub(crate) fn principal(email: &str, groups: &[&str]) -> Principal {
    Principal {
        user_id: format!("user-{}", email.split('@').next().unwrap()),
        email: email.into(),
        name: Some("Alice Example".into()),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        roles: vec!["member".into()],
        tenant: Some("acme".into()),
        connection: Some("acme-saml".into()),
        ..Principal::default()
    }
}

/// A client that never follows redirects and never stores cookies.
/// `tempfile::tempdir()`, but only its owner can enter it: the SQLite
/// store refuses a directory group or others may read, and tempfile follows
/// the umask (usually 0755).
pub(crate) fn private_tempdir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

/// Signs out the way a browser does since logout needs a CSRF token: GET
/// the confirmation page with `cookie`, then POST its form. Returns the
/// POST's response, or the GET's when it showed no page (no session).
pub(crate) async fn logout(env: &TestEnv, cookie: &str, return_to: &str) -> reqwest::Response {
    let return_to: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let page = client()
        .get(env.url(&format!("/.portcullis/logout?return_to={return_to}")))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    if page.status() != 200 {
        return page;
    }
    let html = page.text().await.unwrap();
    let csrf = hidden_field(&html, "csrf").unwrap_or_else(|| panic!("no csrf field: {html}"));
    let back = hidden_field(&html, "return_to").unwrap_or_default();
    client()
        .post(env.url("/.portcullis/logout"))
        .header("cookie", cookie)
        .form(&[("csrf", csrf), ("return_to", back)])
        .send()
        .await
        .unwrap()
}

/// The value of `<input type="hidden" name="NAME" value="...">` in a page
/// Portcullis rendered (askama-escaped).
pub(crate) fn hidden_field(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    let value = &html[start..start + html[start..].find('"')?];
    Some(
        value
            .replace("&#x2f;", "/")
            .replace("&#x2F;", "/")
            .replace("&#43;", "+")
            .replace("&#x3d;", "=")
            .replace("&#61;", "=")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// What the echo upstream saw, as JSON.
pub(crate) async fn echo(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    )
}

/// First value of a header the upstream received.
pub(crate) fn seen<'a>(echo: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

/// Sends raw bytes (exact header spelling) and returns the raw response.
pub(crate) async fn raw_request(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The echo app behind a counter of requests per path, to prove a request
/// never reached the app.
pub(crate) async fn start_counting_upstream() -> (
    SocketAddr,
    tokio::task::JoinHandle<()>,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    use axum::extract::{Request, State};
    use axum::middleware::{Next, from_fn_with_state};
    type Seen = Arc<std::sync::Mutex<Vec<String>>>;
    async fn record(
        State(seen): State<Seen>,
        req: Request,
        next: Next,
    ) -> axum::response::Response {
        seen.lock()
            .unwrap()
            .push(format!("{} {}", req.method(), req.uri().path()));
        next.run(req).await
    }
    let seen: Seen = Arc::default();
    let app = portcullis::demo::upstream_router().layer(from_fn_with_state(seen.clone(), record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task, seen)
}

/// Loads `/dashboard` with `session` and checks the identity the app sees:
/// alice@acme.com of tenant acme, groups Engineering and Everyone, roles
/// member and developer (the mapping both SSO test tenants use). Returns
/// what the app saw.
pub(crate) async fn assert_alice_engineer(env: &TestEnv, session: &str) -> serde_json::Value {
    let app = alice_dashboard(env, session).await;
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));
    assert_eq!(
        seen(&app, "x-forwarded-groups"),
        Some("Engineering,Everyone")
    );
    assert_eq!(seen(&app, "x-forwarded-roles"), Some("member,developer"));
    app
}

/// Loads `/dashboard` with `session`: it must reach the app as
/// alice@acme.com. Returns what the app saw.
pub(crate) async fn alice_dashboard(env: &TestEnv, session: &str) -> serde_json::Value {
    let (status, app) = echo(
        client()
            .get(env.url("/dashboard"))
            .header("cookie", session),
    )
    .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    app
}

/// Polls `cond` every 20 ms up to `limit`; whether it became true.
pub(crate) async fn eventually(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}
