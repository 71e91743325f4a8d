//! The real nginx and Caddy, run from the files in `examples/` in front of
//! Portcullis (forward-auth mode) and a counting app, all on loopback; and
//! a browser that signs in through them with the development IdP.
//!
//! The examples are used as they are, with only their three addresses
//! replaced; a placeholder that is missing fails the test, so an example
//! that drifts from what is tested can't go unnoticed.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::env::*;
use super::refusal::AppLog;

/// Where the examples say the host proxy, Portcullis and the app listen.
const PROXY_AT: &str = "127.0.0.1:8000";
const PORTCULLIS_AT: &str = "127.0.0.1:8080";
const APP_AT: &str = "127.0.0.1:3000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    /// The example directory and its host-proxy file.
    fn example(self) -> (&'static str, &'static str) {
        match self {
            Kind::Nginx => ("nginx", "portcullis.conf"),
            Kind::Caddy => ("caddy", "Caddyfile"),
        }
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// `name` on PATH or in the sbin directories (Debian's nginx is in
/// /usr/sbin, which a non-root PATH may lack). A missing one fails the
/// test: CI installs both (scripts/install-deps.sh).
fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed; these tests run the real {name}: \
                 `apt-get install -y {name}` (scripts/install-deps.sh installs it)"
            )
        })
}

/// `examples/{dir}/{file}` with its three addresses replaced.
fn templated(kind: Kind, proxy: SocketAddr, portcullis: SocketAddr, app: SocketAddr) -> String {
    let (dir, file) = kind.example();
    let path = examples().join(dir).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for placeholder in [PROXY_AT, PORTCULLIS_AT, APP_AT] {
        assert!(
            text.contains(placeholder),
            "{} no longer mentions {placeholder}: the test can't run it as it is",
            path.display()
        );
    }
    text.replace(PROXY_AT, &proxy.to_string())
        .replace(PORTCULLIS_AT, &portcullis.to_string())
        .replace(APP_AT, &app.to_string())
}

/// The `[forward_auth]` part of `examples/{dir}/portcullis.toml` (up to
/// its routes), so Portcullis runs with the example's own settings.
fn example_forward_auth(kind: Kind) -> String {
    let path = examples().join(kind.example().0).join("portcullis.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find("[forward_auth]")
        .unwrap_or_else(|| panic!("{}: no [forward_auth]", path.display()));
    let end = text[start..]
        .find("[[routes]]")
        .map_or(text.len(), |i| start + i);
    text[start..end].to_owned()
}

/// A running nginx or Caddy; stopped (its whole process group) on drop.
pub(crate) struct HostProxy {
    child: Child,
    pub(crate) addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl HostProxy {
    /// Runs the example, changed by `edit` (identity for the example as
    /// it is).
    pub(crate) async fn start(
        kind: Kind,
        portcullis: SocketAddr,
        app: SocketAddr,
        edit: fn(String) -> String,
    ) -> Self {
        let dir = private_tempdir().unwrap();
        let d = dir.path().to_owned();
        let (child, addrs) = spawn_listening(1, |a| {
            let site = edit(templated(kind, a[0], portcullis, app));
            let mut cmd = match kind {
                Kind::Nginx => nginx_command(&d, &site),
                Kind::Caddy => caddy_command(&d, &site),
            };
            let log = std::fs::File::create(d.join("stderr.log")).unwrap();
            // its own process group, so drop stops the workers too
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        })
        .await;
        Self {
            child,
            addr: addrs[0],
            dir,
        }
    }

    /// `http://127.0.0.1:PORT`: what the browser talks to, and Portcullis'
    /// `public_url`.
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.origin())
        }
    }

    /// What the host proxy logged, for failure messages.
    pub(crate) fn log(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.path().join(f)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for HostProxy {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let kill = |signal: &str| {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        kill("-TERM");
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill("-KILL");
        let _ = self.child.wait();
    }
}

/// nginx with the example as the one site of a minimal main file whose
/// paths all stay in `dir` (pid, logs, temp files).
fn nginx_command(dir: &Path, site: &str) -> Command {
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    let main = format!(
        "worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {d}/client_body;\n\
         \x20 proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/uwsgi;\n\
         \x20 scgi_temp_path {d}/scgi;\n\
         \x20 include {d}/site.conf;\n\
         }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let mut cmd = Command::new(binary("nginx"));
    cmd.arg("-p")
        .arg(format!("{d}/"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        // `user` only matters as root: workers must read the 0700 dir
        .args(["-g", "daemon off; user root;"]);
    cmd
}

/// Caddy with the example behind global options a test needs: no admin
/// endpoint (parallel tests would fight over port 2019), its state in
/// `dir`.
fn caddy_command(dir: &Path, site: &str) -> Command {
    let file = dir.join("Caddyfile");
    std::fs::write(&file, format!("{{\n\tadmin off\n}}\n\n{site}")).unwrap();
    let mut cmd = Command::new(binary("caddy"));
    cmd.arg("run")
        .arg("--config")
        .arg(&file)
        .args(["--adapter", "caddyfile"])
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    cmd
}

/// The development IdP's tenant, as in `portcullis demo`.
const DEV_IDP: &str = r#"
[[tenants]]
id = "example"
domains = ["example.com"]
group_roles = { "Engineering" = ["developer"] }
[[tenants.connections]]
id = "example-dev"
protocol = "saml"
[tenants.connections.saml]
idp = "dev"

[dev_idp]
tenant = "example"
users = [
  { email = "alice@example.com", name = "Alice Example", groups = ["Engineering", "Everyone"] },
  { email = "bob@example.com", name = "Bob Example", groups = ["Everyone"] },
]
"#;

/// A host proxy in front of Portcullis (configured from the example's
/// `[forward_auth]`, the test routes and the dev IdP) and a counting app.
pub(crate) struct Deployment {
    pub(crate) env: TestEnv,
    pub(crate) app: AppLog,
    /// Declared after `env`: dropped after Portcullis stops.
    pub(crate) proxy: HostProxy,
    _app_task: tokio::task::JoinHandle<()>,
}

impl Deployment {
    pub(crate) async fn start(kind: Kind) -> Self {
        Self::start_edited(kind, |example| example).await
    }

    /// With the host proxy's example file changed by `edit`.
    pub(crate) async fn start_edited(kind: Kind, edit: fn(String) -> String) -> Self {
        Self::start_full(kind, edit, "").await
    }

    /// With more Portcullis configuration (top-level TOML).
    pub(crate) async fn start_configured(kind: Kind, extra: &str) -> Self {
        Self::start_full(kind, |example| example, extra).await
    }

    async fn start_full(kind: Kind, edit: fn(String) -> String, extra: &str) -> Self {
        // Portcullis' socket first: the host proxy points at it before
        // Portcullis runs (connections queue meanwhile).
        let listener: StdListener = bind_local();
        let portcullis = listener.local_addr().unwrap();
        let (app_addr, app_task, app) = start_counting_upstream().await;
        let proxy = HostProxy::start(kind, portcullis, app_addr, edit).await;
        let env = TestEnv::with(Options {
            upstream: Some(app_addr),
            proxy_listener: Some(listener),
            public_url: Some(proxy.origin()),
            extra: format!("{}\n{DEV_IDP}\n{extra}", example_forward_auth(kind)),
            factories: portcullis::auth::Factories::builtin(),
            ..Default::default()
        })
        .await;
        Self {
            env,
            app,
            proxy,
            _app_task: app_task,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.proxy.url(path)
    }

    /// Requests that reached the app so far.
    pub(crate) fn app_requests(&self) -> usize {
        self.app.lock().unwrap().len()
    }
}

/// A browser: no redirects followed, cookies kept by name.
#[derive(Default)]
pub(crate) struct Browser {
    jar: BTreeMap<String, String>,
}

impl Browser {
    pub(crate) fn take(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    pub(crate) fn cookie(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn get(&mut self, url: &str) -> reqwest::Response {
        let r = client()
            .get(url)
            .header("accept", "text/html")
            .header("cookie", self.cookie())
            .send()
            .await
            .unwrap();
        self.take(&r);
        r
    }

    pub(crate) async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = client()
            .post(url)
            .header("accept", "text/html")
            .header("cookie", self.cookie())
            .form(form)
            .send()
            .await
            .unwrap();
        self.take(&r);
        r
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {}", r.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// `<form … action="…">` of a page Portcullis rendered.
fn form_action(html: &str) -> String {
    let v = html.split_once("action=\"").unwrap().1;
    unescape(v.split('"').next().unwrap())
}

/// `<input … name="NAME" value="…">` of a page Portcullis rendered.
fn input(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name} in {html}"));
    let v = html[at..].split_once("value=\"").unwrap().1;
    unescape(v.split('"').next().unwrap())
}

fn unescape(s: &str) -> String {
    s.replace("&#43;", "+")
        .replace("&#x2b;", "+")
        .replace("&#61;", "=")
        .replace("&#x3d;", "=")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Deployment {
    /// Signs `email` in the way a browser does, through the host proxy,
    /// from the login page at `login` (an absolute URL) to the dev IdP and
    /// back. Returns where the login sent the browser in the end.
    pub(crate) async fn sign_in(&self, b: &mut Browser, login: &str, email: &str) -> String {
        let r = b.get(login).await;
        assert_eq!(r.status(), 200, "{}", self.proxy.log());
        let page = r.text().await.unwrap();
        let r = b
            .post(
                &self.url(&form_action(&page)),
                &[("email", email), ("return_to", &input(&page, "return_to"))],
            )
            .await;
        assert_eq!(r.status(), 200, "one connection: a page that moves on");
        let next = crate::support::idp::continue_href(&r.text().await.unwrap());
        let r = b.get(&self.url(&next)).await;
        assert_eq!(r.status(), 302);
        let sso = location(&r);
        assert!(
            sso.starts_with(&self.url("/.portcullis/dev-idp/sso?")),
            "the IdP is reached through the host proxy: {sso}"
        );
        let r = b.get(&sso).await;
        assert_eq!(r.status(), 200);
        let pick = r.text().await.unwrap();
        let r = b
            .post(
                &self.url(&form_action(&pick)),
                &[
                    ("SAMLRequest", &input(&pick, "SAMLRequest")),
                    ("RelayState", &input(&pick, "RelayState")),
                    ("email", email),
                ],
            )
            .await;
        assert_eq!(r.status(), 200);
        let post = r.text().await.unwrap();
        let acs = form_action(&post);
        assert!(acs.starts_with(&self.url("/.portcullis/saml/")), "{acs}");
        let r = b
            .post(
                &acs,
                &[
                    ("SAMLResponse", &input(&post, "SAMLResponse")),
                    ("RelayState", &input(&post, "RelayState")),
                ],
            )
            .await;
        assert!(r.status().is_redirection(), "{}", r.status());
        location(&r)
    }

    /// Signs out through the host proxy (confirmation page, then its
    /// form); returns where the browser is sent.
    pub(crate) async fn sign_out(&self, b: &mut Browser, return_to: &str) -> String {
        let q: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        let r = b
            .get(&self.url(&format!("/.portcullis/logout?return_to={q}")))
            .await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        let r = b
            .post(
                &self.url(&form_action(&page)),
                &[
                    ("csrf", &input(&page, "csrf")),
                    ("return_to", &input(&page, "return_to")),
                ],
            )
            .await;
        assert_eq!(r.status(), 303);
        location(&r)
    }
}

/// The identity headers the app must only ever get from Portcullis.
pub(crate) const IDENTITY: [&str; 8] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-name",
    "x-forwarded-groups",
    "x-forwarded-roles",
    "x-forwarded-tenant",
    "x-forwarded-principal-type",
    "x-portcullis-assertion",
];

/// Every header the app got whose name reads as an identity header in any
/// spelling (`X_Forwarded_Email`, `x.forwarded.email`), by normal name,
/// empty values left out (an empty header tells the app nothing).
pub(crate) fn identity_seen(app: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Some(headers) = app["headers"].as_object() else {
        panic!("not what the echo app answers: {app}");
    };
    for (name, values) in headers {
        let normal: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        if !IDENTITY.contains(&normal.as_str()) {
            continue;
        }
        for v in values.as_array().unwrap() {
            let v = v.as_str().unwrap();
            if !v.is_empty() {
                out.entry(normal.clone()).or_default().push(v.to_owned());
            }
        }
    }
    out
}

/// Verifies an assertion against the JWKS Portcullis publishes through the
/// host proxy; returns its claims.
pub(crate) async fn verify_assertion(d: &Deployment, jwt: &str) -> serde_json::Value {
    let jwks: jsonwebtoken::jwk::JwkSet = client()
        .get(d.url("/.portcullis/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["portcullis-upstream"]);
    v.set_issuer(&[d.proxy.origin()]);
    jsonwebtoken::decode::<serde_json::Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap(),
        &v,
    )
    .expect("the assertion verifies against the JWKS")
    .claims
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).collect()
}

/// What a host proxy in front of Portcullis must do, from an anonymous
/// browser to logout: the login redirect (nginx via its `@login`), a 401
/// for API clients, the sign-in through the host proxy, the app getting
/// Portcullis' identity and a verifiable assertion, a 403 on a path the
/// user's groups don't open, the decision endpoint unreachable from
/// outside, and a logout that ends the session.
pub(crate) async fn end_to_end(kind: Kind) {
    let d = Deployment::start(kind).await;
    let mut b = Browser::default();

    // an anonymous browser: to the login page, the original URL kept
    let wanted = d.url("/dashboard?tab=1");
    let r = b.get(&wanted).await;
    assert_eq!(r.status(), 302, "{kind:?}: {}", d.proxy.log());
    let login = location(&r);
    assert_eq!(
        login,
        d.url(&format!("/.portcullis/login?return_to={}", enc(&wanted))),
        "{kind:?}"
    );
    // an API client: 401, the app never asked
    let r = client()
        .get(d.url("/dashboard"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "{kind:?}");
    assert_eq!(d.app_requests(), 0, "{kind:?}");

    // signing in through the host proxy lands on the original URL
    let back = d.sign_in(&mut b, &login, "alice@example.com").await;
    assert_eq!(back, wanted, "{kind:?}");
    let (status, app) = echo(client().get(&back).header("cookie", b.cookie())).await;
    assert_eq!(status, 200, "{kind:?}: {app}");
    assert_eq!(app["path"], "/dashboard");
    let seen = identity_seen(&app);
    let one = |h: &str| seen.get(h).map(|v| v.join("|"));
    assert_eq!(
        one("x-forwarded-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(one("x-forwarded-name").as_deref(), Some("Alice Example"));
    assert_eq!(
        one("x-forwarded-groups").as_deref(),
        Some("Engineering,Everyone")
    );
    assert_eq!(one("x-forwarded-tenant").as_deref(), Some("example"));
    assert!(one("x-forwarded-roles").is_some_and(|r| r.contains("developer")));
    let user = one("x-forwarded-user").expect("a user id");
    let claims = verify_assertion(&d, &one("x-portcullis-assertion").expect("an assertion")).await;
    assert_eq!(claims["sub"], user.as_str());
    assert_eq!(claims["email"], "alice@example.com");

    // a path for the `admins` group only: 403, the app never asked
    let before = d.app_requests();
    let r = client()
        .get(d.url("/admin/settings"))
        .header("cookie", b.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{kind:?}");
    assert_eq!(d.app_requests(), before, "{kind:?}");

    // the decision endpoint is the host proxy's business only
    let r = client()
        .get(d.url("/.portcullis/auth"))
        .header("x-forwarded-uri", "/admin")
        .header("x-original-uri", "/admin")
        .header("cookie", b.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "{kind:?}");
    assert!(r.headers().get("x-forwarded-email").is_none());

    // logout through the host proxy ends the session
    let to = d.sign_out(&mut b, &d.url("/public/bye")).await;
    assert_eq!(to, d.url("/public/bye"), "{kind:?}");
    let r = b.get(&d.url("/dashboard")).await;
    assert_eq!(r.status(), 302, "{kind:?}: signed out");
    assert!(location(&r).contains("/.portcullis/login?"), "{kind:?}");
}

/// A client that sends identity headers of its own, in every spelling,
/// signed in or not, on every kind of route: the app only ever sees
/// Portcullis' values (or none), and a forged group opens nothing.
pub(crate) async fn client_identity_headers_never_reach_the_app(kind: Kind) {
    let d = Deployment::start(kind).await;
    let mut bob = principal("bob@example.com", &["Everyone"]);
    bob.tenant = Some("example".into());
    bob.name = None;
    let cookie = d.env.mint(&bob).await;
    let forged = |req: reqwest::RequestBuilder| {
        req.header("X-Forwarded-Email", "mallory@evil.example")
            .header("X-Forwarded-User", "mallory")
            .header("X-Forwarded-Name", "Mallory")
            .header("X-Forwarded-Groups", "admins")
            .header("X-Forwarded-Tenant", "evil")
            .header("X-Portcullis-Assertion", "forged")
            .header("X_Forwarded_Email", "mallory@evil.example")
            .header("x_forwarded_groups", "admins")
            .header("X_Portcullis_Assertion", "forged")
    };
    for (path, signed_in) in [
        ("/public/x", false),
        ("/public/x", true),
        ("/optional/x", false),
        ("/optional/x", true),
        ("/dashboard", true),
    ] {
        let mut req = client().get(d.url(path));
        if signed_in {
            req = req.header("cookie", &cookie);
        }
        let (status, app) = echo(forged(req)).await;
        assert_eq!(status, 200, "{kind:?} {path}: {app}\n{}", d.proxy.log());
        let seen = identity_seen(&app);
        let from_client = seen
            .iter()
            .filter(|(_, vs)| {
                vs.iter().any(|v| {
                    v.contains("mallory") || v.contains("evil") || v == "forged" || v == "admins"
                })
            })
            .collect::<Vec<_>>();
        assert!(from_client.is_empty(), "{kind:?} {path}: {from_client:?}");
        if signed_in && path != "/public/x" {
            assert_eq!(
                seen.get("x-forwarded-email").map(Vec::as_slice),
                Some(&["bob@example.com".to_owned()][..]),
                "{kind:?} {path}: {app}"
            );
            assert_eq!(seen["x-portcullis-assertion"].len(), 1, "{kind:?} {path}");
            // no name known: no name at all, never the client's
            assert!(!seen.contains_key("x-forwarded-name"), "{kind:?} {path}");
        } else {
            assert!(seen.is_empty(), "{kind:?} {path}: {seen:?}");
        }
    }
    // a forged group opens nothing
    let r = forged(client().get(d.url("/admin")).header("cookie", &cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{kind:?}");
}

/// SSO enforcement through the example: a password endpoint on a public
/// path. What the host proxy cannot show Portcullis is refused before the
/// app sees it; `page_passes` says whether a bodyless GET (the login page)
/// gets through. A client's `X-Forwarded-Host` never reaches the app: the
/// host proxy sets its own.
pub(crate) async fn password_endpoints_fail_closed(kind: Kind, page_passes: bool) {
    let d = Deployment::start_configured(
        kind,
        "[login]\npassword_endpoints = [{ path = \"/public/login\" }]\n",
    )
    .await;
    let refused = r#"portcullis_login_refused_total{reason="forward_auth"}"#;
    // the login page
    let page = client()
        .get(d.url("/public/login"))
        .header("x-forwarded-host", "evil.example");
    if page_passes {
        let (status, app) = echo(page).await;
        assert_eq!(status, 200, "{kind:?}: {app}\n{}", d.proxy.log());
        let host = seen(&app, "x-forwarded-host").unwrap_or_default();
        assert!(host.starts_with("127.0.0.1"), "{kind:?}: {host}");
    } else {
        let refusal = d.env.refusal(refused).await.app(&d.app).named("page");
        refusal.assert(page.send().await.unwrap(), 403).await;
    }
    // a GET carrying credentials in its body, and a plain POST
    let refusal = d.env.refusal(refused).await.app(&d.app).named("GET body");
    let r = client()
        .get(d.url("/public/login"))
        .header("content-type", "application/json")
        .body(r#"{"email":"alice@acme.com","password":"x"}"#)
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    let refusal = d.env.refusal(refused).await.app(&d.app).named("POST");
    let r = client()
        .post(d.url("/public/login"))
        .json(&serde_json::json!({"email": "alice@acme.com", "password": "x"}))
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
}

/// `examples/{dir}/portcullis.toml` loads as it is (its secrets given),
/// without warnings.
pub(crate) fn example_config_loads(kind: Kind) {
    let path = examples().join(kind.example().0).join("portcullis.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |name: &str| match name {
        "PORTCULLIS_SESSION_KEY" => Some(KEY_A.to_owned()),
        "PORTCULLIS_STORE_KEY" => Some(STORE_KEY.to_owned()),
        _ => None,
    };
    let cfg = portcullis::config::from_str(&text, &path.display().to_string(), &env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert!(cfg.forward_auth.enabled());
}
