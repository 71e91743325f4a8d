//! The gate holds whatever shape a request takes. Every request here is
//! sent as raw bytes (an HTTP client would resolve `..` and re-encode
//! before sending), and every assertion says what reached the app — byte
//! for byte, from an upstream that records request lines — not only what
//! the client got back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::env::{
    KEY_A, Options, STORE_KEY, TestEnv, config_text, principal, private_tempdir, raw_request,
};
use crate::support::refusal::{Watch, answered, refused_before_routing};

/// Request heads the app received, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// An upstream that records each request's head exactly as it arrived
/// (request line first) and answers 200 `ok`.
async fn recording_upstream() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut head = String::new();
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        match r.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        head.push_str(&line);
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    log.lock().unwrap().push(head);
                    let resp = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok";
                    if w.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

struct Gate {
    env: TestEnv,
    seen: Seen,
    cookie: String,
}

impl Gate {
    async fn start(extra: &str) -> Gate {
        let (upstream, seen) = recording_upstream().await;
        let env = TestEnv::with(Options {
            upstream: Some(upstream),
            extra: extra.to_owned(),
            ..Options::default()
        })
        .await;
        let cookie = env.shared.config().session.cookie_name.clone();
        Gate { env, seen, cookie }
    }

    fn front(&self) -> Front<'_> {
        Front {
            proxy: self.env.proxy,
            watch: Watch {
                admin: self.env.admin,
                store: &self.env.shared.store,
                cookie: &self.cookie,
                app: Some(&self.seen),
            },
            seen: &self.seen,
        }
    }

    async fn get(&self, target: &str, cookie: Option<&str>) -> (u16, Option<String>) {
        self.front().get(target, cookie).await
    }

    async fn refused(&self, target: &str, cookie: Option<&str>, status: u16, series: &str) {
        self.front().refused(target, cookie, status, series).await
    }
}

/// A proxy in front of a recording upstream: in-process ([`Gate`]) or the
/// real binary.
struct Front<'a> {
    proxy: SocketAddr,
    watch: Watch<'a>,
    seen: &'a Seen,
}

impl Front<'_> {
    /// Sends `target` with `cookie`; returns the status and the request
    /// line the app received for it (if any).
    async fn get(&self, target: &str, cookie: Option<&str>) -> (u16, Option<String>) {
        let before = self.seen.lock().unwrap().len();
        let resp = raw_request(self.proxy, &head(target, cookie)).await;
        (status(&resp), self.arrived_since(before))
    }

    /// Sends `target` with `cookie` through the shared refusal check: it
    /// must be answered `status`, create no session, never reach the app,
    /// and count once under `series`.
    async fn refused(&self, target: &str, cookie: Option<&str>, status: u16, series: &str) {
        let refusal = self.watch.refusal(series).await.named(target);
        let resp = raw_request(self.proxy, &head(target, cookie)).await;
        refusal.assert_raw(&resp, status).await;
    }

    fn arrived_since(&self, before: usize) -> Option<String> {
        let seen = self.seen.lock().unwrap();
        assert!(
            seen.len() <= before + 1,
            "one request reached the app twice: {seen:?}"
        );
        seen.get(before)
            .map(|h| h.lines().next().unwrap_or_default().to_owned())
    }

    /// Every path variant and ambiguous path of the tables below, with the
    /// sessions of a non-admin (`eng`) and an admin: none passes weaker
    /// than admins-only, each refusal with its exact status and reason.
    async fn variants_hold(&self, eng: &str, admin: &str) {
        for (target, ambiguous) in ADMIN_VARIANTS {
            match ambiguous {
                None => {
                    self.refused(target, None, 401, &denied()).await;
                    self.refused(target, Some(eng), 403, &denied()).await;
                    // An admin passes, and the app sees exactly the bytes sent.
                    let (st, reached) = self.get(target, Some(admin)).await;
                    assert_eq!(st, 200, "{target}: admin");
                    assert_eq!(
                        reached.as_deref(),
                        Some(format!("GET {target} HTTP/1.1").as_str()),
                        "{target}: the app must receive the path as sent"
                    );
                }
                Some(reason) => {
                    for cookie in [None, Some(eng), Some(admin)] {
                        self.refused(target, cookie, 400, &refused_before_routing(reason))
                            .await;
                    }
                }
            }
        }
        for (target, reason) in AMBIGUOUS {
            for cookie in [None, Some(admin)] {
                self.refused(target, cookie, 400, &refused_before_routing(reason))
                    .await;
            }
        }
        // The plain public and required paths still work.
        assert_eq!(self.get("/public/app.css", None).await.0, 200);
        assert_eq!(self.get("/dashboard", Some(eng)).await.0, 200);
        self.refused("/dashboard", None, 401, &denied()).await;
    }
}

/// A GET of `target` (raw bytes) for `app.example.com`, from an API client.
fn head(target: &str, cookie: Option<&str>) -> String {
    let cookie = cookie
        .map(|c| format!("cookie: {c}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {target} HTTP/1.1\r\nhost: app.example.com\r\naccept: application/json\r\n{cookie}connection: close\r\n\r\n"
    )
}

/// What a gate denial (401, 403) counts: nothing but the answer itself.
fn denied() -> String {
    answered("required", "4xx")
}

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Path variants of `/admin` (admins only) and where they start from. Each
/// is a reading some server takes for `/admin/...`: see the README's
/// "Security model" for the list. `None`: gated like `/admin` itself;
/// `Some(reason)`: refused as ambiguous for everyone, counted as `reason`.
const ADMIN_VARIANTS: &[(&str, Option<&str>)] = &[
    ("/admin", None),
    ("/ADMIN", None),
    ("/Admin/users", None),
    ("/admin;jsessionid=x", None),
    ("/admin;/users", None),
    ("/public/..;/admin", None),
    ("/public/..;x/admin/users", None),
    ("/public;x/../admin", None),
    // Tomcat cuts `;…` before decoding: its `/admin/public`
    ("/admin;%2F../public", Some("path_encoded_separator")),
    ("/admin;%2f%2e%2e/public/x", Some("path_encoded_separator")),
    ("/admin;x%2F..%2F/public", Some("path_encoded_separator")),
    ("/public/../admin", None),
    ("/public/%2e%2e/admin", None),
    ("/public/%2E%2E/admin", None),
    ("/public/%252e%252e/admin", None),
    ("/public/.%2e/admin", None),
    ("/public/..%2fadmin", Some("path_encoded_separator")),
    ("/public/..%5cadmin", Some("path_encoded_separator")),
    ("/public/..\\admin", None),
    ("/public\\..\\admin", None),
    ("//admin", None),
    ("/public//..//admin", None),
    ("/%61dmin", None),
    ("/%41DMIN", None),
    ("/admin.", None),
    ("/admin./users", None),
    ("/admin%20/users", None),
    ("/admin.json", None),
    ("/admin.xml", None),
    ("/public/../admin.json", None),
    ("/adm%C4%B1n", None),
    ("/%EF%BD%81dmin", None),
    ("/./admin", None),
    ("/public/./../admin/", None),
];

/// Refused before routing, whoever asks: no reading is safe. With the
/// reason each is counted under.
const AMBIGUOUS: &[(&str, &str)] = &[
    ("/admin%00", "path_control"),
    ("/public/%00/../admin", "path_control"),
    ("/public/%0d%0a", "path_control"),
    ("/admin%ff", "path_invalid_utf8"),
    ("/public/%c0%ae%c0%ae/admin", "path_overlong"),
    ("/public/%e0%80%ae/admin", "path_overlong"),
    ("/admin%u0041", "path_malformed_escape"),
    ("/admin%2", "path_malformed_escape"),
    ("/public/%EF%BC%8E%EF%BC%8E/admin", "path_lookalike"),
    ("/public%EF%BC%8Fadmin", "path_lookalike"),
];

#[tokio::test]
async fn admin_variants_never_pass_weaker_than_admins_only() {
    let g = Gate::start("").await;
    let eng = g.env.mint(&principal("eve@acme.com", &["eng"])).await;
    let admin = g.env.mint(&principal("ada@acme.com", &["admins"])).await;
    g.front().variants_hold(&eng, &admin).await;
}

/// The same table against the real `portcullis run`: a child process with
/// its own config file and listeners, sessions minted by `portcullis
/// sessions mint`, a recording upstream, and the store opened beside it to
/// prove no refusal wrote a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_variants_against_the_real_binary() {
    use std::process::Command;
    let dir = private_tempdir().unwrap();
    let (upstream, seen) = recording_upstream().await;
    let path = dir.path().join("portcullis.toml");
    let store_url = format!("sqlite://{}/store.db", dir.path().display());
    let (_child, addrs) = crate::ops::cli::run_binary(&path, 2, |a| {
        config_text(a[0], a[1], upstream, &store_url, &[KEY_A], "")
    })
    .await;
    let (proxy, admin) = (addrs[0], addrs[1]);
    crate::ops::cli::wait_ready(admin).await;
    let mint = |email: &str, groups: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["sessions", "mint", "--config"])
            .arg(&path)
            .args(["--email", email, "--tenant", "acme", "--groups", groups])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pair = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(pair.starts_with("portcullis_session="), "{pair}");
        pair
    };
    let eng = mint("eve@acme.com", "eng");
    let admins = mint("ada@acme.com", "admins");
    let key = portcullis::config::decode_store_key(STORE_KEY).unwrap();
    let store = portcullis::store::Store::open_sealed(&store_url, &[key])
        .await
        .unwrap();
    assert_eq!(store.sessions().keys().await.unwrap().len(), 2);
    let front = Front {
        proxy,
        watch: Watch {
            admin,
            store: &store,
            cookie: "portcullis_session",
            app: Some(&seen),
        },
        seen: &seen,
    };
    front.variants_hold(&eng, &admins).await;
    store.close().await;
}

/// An encoded `/` or `\` under a protected prefix is read as a separator by
/// some servers and not by others: refused (400, `path_encoded_separator`)
/// even for an admin. Where every reading is public the same bytes pass,
/// and the app receives them as sent.
#[tokio::test]
async fn encoded_separators_are_refused_under_a_protected_prefix_only() {
    let g = Gate::start("").await;
    let admin = g.env.mint(&principal("ada@acme.com", &["admins"])).await;
    let series = refused_before_routing("path_encoded_separator");
    for target in [
        "/admin%2Fx",
        "/admin%2fx",
        "/admin%5cx",
        "/admin%5Cx",
        "/admin%252Fx",
        "/public/..%2Fadmin",
        "/public/..%5Cadmin",
        "/dashboard%2Fx",
    ] {
        for cookie in [Some(admin.as_str()), None] {
            g.refused(target, cookie, 400, &series).await;
        }
    }
    for target in [
        "/public/a%2Fb",
        "/public/a%5cb",
        "/public/a%252Fb",
        "/public/%2F",
    ] {
        for cookie in [None, Some(admin.as_str())] {
            let (st, reached) = g.get(target, cookie).await;
            assert_eq!(st, 200, "{target}");
            assert_eq!(
                reached.as_deref(),
                Some(format!("GET {target} HTTP/1.1").as_str()),
                "{target}"
            );
        }
    }
}

/// `case_sensitive = true`: the route's prefix matches only its own
/// spelling (README: "case-insensitively unless the route sets
/// `case_sensitive = true`"), still through decoding, parameters and dot
/// segments; a route without it matches every case.
#[tokio::test]
async fn case_sensitive_routes_match_their_own_spelling_only() {
    let g = Gate::start(
        r#"
[[routes]]
host = "app.example.com"
prefix = "/"
policy = "public"

[[routes]]
host = "app.example.com"
prefix = "/Reports"
policy = "required"
case_sensitive = true

[[routes]]
host = "app.example.com"
prefix = "/billing"
policy = "required"
"#,
    )
    .await;
    for target in [
        "/Reports",
        "/Reports/q1",
        "/Reports;x/q1",
        "/x/../Reports/q1",
        "/%52eports/q1",
        "/BILLING/x",
        "/Billing",
        "/billing/x",
    ] {
        g.refused(target, None, 401, &denied()).await;
    }
    // other spellings of /Reports are other (public) resources to a
    // case-sensitive app, and reach it as sent
    for target in ["/reports/q1", "/REPORTS/q1", "/rePorts"] {
        let (st, reached) = g.get(target, None).await;
        assert_eq!(st, 200, "{target}");
        assert_eq!(
            reached.as_deref(),
            Some(format!("GET {target} HTTP/1.1").as_str()),
            "{target}"
        );
    }
}

/// Two restricted routes whose raw and canonical readings differ: the
/// request must satisfy both routes' groups, not only the stricter policy.
#[tokio::test]
async fn raw_and_canonical_routes_must_both_admit() {
    let g = Gate::start(
        r#"
[[routes]]
prefix = "/ops"
policy = "required"
allowed_groups = ["ops"]

[[routes]]
prefix = "/ops/billing"
policy = "required"
allowed_groups = ["finance"]
"#,
    )
    .await;
    let ops = g.env.mint(&principal("o@acme.com", &["ops"])).await;
    let finance = g.env.mint(&principal("f@acme.com", &["finance"])).await;
    let both = g
        .env
        .mint(&principal("b@acme.com", &["ops", "finance"]))
        .await;
    let tricky = "/ops/x;/../billing/invoices";
    for cookie in [&ops, &finance] {
        g.refused(tricky, Some(cookie), 403, &denied()).await;
    }
    let (st, reached) = g.get(tricky, Some(&both)).await;
    assert_eq!(st, 200);
    assert_eq!(
        reached.as_deref(),
        Some(format!("GET {tricky} HTTP/1.1").as_str())
    );
    // Unambiguous requests need only their own route.
    assert_eq!(g.get("/ops/billing/invoices", Some(&finance)).await.0, 200);
    assert_eq!(g.get("/ops/status", Some(&ops)).await.0, 200);
}

/// A site public by default with one restricted prefix: Tomcat cuts
/// `;…` before decoding, so a parameter hiding `%2F..` is its `/admin/…`
/// while every decode-first reading lands on a public path.
#[tokio::test]
async fn params_hiding_an_encoded_slash_do_not_escape_a_restricted_prefix() {
    let g = Gate::start(
        r#"
[[routes]]
host = "app.example.com"
prefix = "/"
policy = "public"

[[routes]]
host = "app.example.com"
prefix = "/admin"
policy = "required"
allowed_groups = ["admins"]
"#,
    )
    .await;
    for target in [
        "/admin;%2F../public",
        "/admin;%2f%2e%2e/public/x",
        "/Admin;x%2F..%2F/index.html",
    ] {
        g.refused(
            target,
            None,
            400,
            &refused_before_routing("path_encoded_separator"),
        )
        .await;
    }
    // the public site itself stays public
    assert_eq!(g.get("/index.html", None).await.0, 200);
    assert_eq!(g.get("/a;x/b", None).await.0, 200);
}

/// A group name asserted by tenant B's IdP never opens tenant A's route.
#[tokio::test]
async fn authorization_is_scoped_to_the_tenant() {
    let g = Gate::start(
        r#"
[[tenants]]
id = "acme"
[[tenants]]
id = "globex"

[[routes]]
prefix = "/acme-admin"
policy = "required"
allowed_groups = ["acme:admins"]

[[routes]]
prefix = "/acme-only"
policy = "required"
allowed_tenants = ["acme"]

[[routes]]
prefix = "/owners"
policy = "required"
allowed_roles = ["acme:owner"]
"#,
    )
    .await;
    let mut acme_admin = principal("a@acme.com", &["admins"]);
    acme_admin.roles = vec!["owner".into()];
    let mut globex_admin = principal("g@globex.com", &["admins"]);
    globex_admin.tenant = Some("globex".into());
    globex_admin.roles = vec!["owner".into()];
    let acme = g.env.mint(&acme_admin).await;
    let globex = g.env.mint(&globex_admin).await;
    for path in [
        "/acme-admin",
        "/acme-only/x",
        "/owners",
        "/ACME-ADMIN",
        "/x/..;/acme-admin",
    ] {
        g.refused(path, Some(&globex), 403, &denied()).await;
        assert_eq!(g.get(path, Some(&acme)).await.0, 200, "{path}");
    }
}

#[tokio::test]
async fn check_warns_about_unqualified_groups_with_several_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        r#"[[listeners]]
address = "127.0.0.1:1"
[session]
keys = ["0123456789012345678901234567890123456789"]
[store]
encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE="
[[tenants]]
id = "acme"
[[tenants]]
id = "globex"
[[routes]]
prefix = "/admin"
policy = "required"
allowed_groups = ["admins", "acme:admins"]
"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: {}:14: routes[0].allowed_groups[0]",
            path.display()
        )) && stderr.contains("`admins` is not tied to a tenant"),
        "{stderr}"
    );
    assert!(!stderr.contains("allowed_groups[1]"), "{stderr}");
}

/// The same warning for roles (`group_roles` maps any tenant's groups to
/// them): unqualified `allowed_roles` with several tenants, unless the
/// route is limited to one tenant.
#[tokio::test]
async fn check_warns_about_unqualified_roles_with_several_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        r#"[[listeners]]
address = "127.0.0.1:1"
[session]
keys = ["0123456789012345678901234567890123456789"]
[store]
encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE="
[[tenants]]
id = "acme"
[[tenants]]
id = "globex"
[[routes]]
prefix = "/owners"
policy = "required"
allowed_roles = ["owner", "acme:owner"]
[[routes]]
prefix = "/acme-owners"
policy = "required"
allowed_tenants = ["acme"]
allowed_roles = ["owner"]
"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: {}:14: routes[0].allowed_roles[0]",
            path.display()
        )) && stderr.contains("`owner` is not tied to a tenant"),
        "{stderr}"
    );
    assert!(!stderr.contains("allowed_roles[1]"), "{stderr}");
    assert!(!stderr.contains("routes[1]"), "{stderr}");
}

/// Host: absolute-form targets route on their authority; HTTP/1.1 without
/// Host, two Hosts or a Host that disagrees with the target are refused;
/// an unknown host gets every host's routes.
#[tokio::test]
async fn host_shapes() {
    let g = Gate::start(
        r#"
[[routes]]
prefix = "/"
host = "www.example.com"
policy = "public"

[[routes]]
prefix = "/"
host = "ops.example.com"
policy = "required"
allowed_groups = ["ops"]
"#,
    )
    .await;
    let send = |head: String| {
        let proxy = g.env.proxy;
        async move { status(&raw_request(proxy, &head).await) }
    };
    let before = g.seen.lock().unwrap().len();
    assert_eq!(
        send("GET /x HTTP/1.1\r\nhost: www.example.com\r\nconnection: close\r\n\r\n".into()).await,
        200
    );
    assert_eq!(
        send("GET /x HTTP/1.1\r\nhost: WWW.example.com.:8080\r\nconnection: close\r\n\r\n".into())
            .await,
        200
    );
    assert_eq!(g.seen.lock().unwrap().len(), before + 2);
    // HTTP/1.0 with an absolute-form target and no Host routes on the
    // authority (the public host), and the app is told that host
    assert_eq!(
        send("GET http://WWW.example.com/x HTTP/1.0\r\nconnection: close\r\n\r\n".into()).await,
        200
    );
    let seen = g.seen.lock().unwrap()[before + 2].to_ascii_lowercase();
    // the target as sent, and the Host frameworks read when they ignore it
    assert!(
        seen.starts_with("get http://www.example.com/x http/1."),
        "{seen}"
    );
    assert!(seen.contains("\r\nhost: www.example.com\r\n"), "{seen}");
    let host = refused_before_routing;
    for (head, want, series) in [
        // the absolute-form authority wins over nothing: ops is protected
        (
            "GET http://ops.example.com/x HTTP/1.1\r\nhost: ops.example.com\r\n",
            401,
            denied(),
        ),
        // pingora's parser refuses a Host that disagrees with the
        // authority before any phase of Portcullis runs: nothing counted
        (
            "GET http://ops.example.com/x HTTP/1.1\r\nhost: www.example.com\r\n",
            400,
            String::new(),
        ),
        ("GET /x HTTP/1.1\r\n", 400, host("host_missing")),
        (
            "GET http://www.example.com/x HTTP/1.1\r\n",
            400,
            host("host_missing"),
        ),
        // two Hosts: pingora's parser again, nothing counted
        (
            "GET /x HTTP/1.1\r\nhost: www.example.com\r\nhost: ops.example.com\r\n",
            400,
            String::new(),
        ),
        // no configured host: every host's routes apply
        ("GET /x HTTP/1.1\r\nhost: 127.0.0.1\r\n", 401, denied()),
        ("GET /x HTTP/1.1\r\nhost: evil.example\r\n", 401, denied()),
        ("GET /x HTTP/1.0\r\n", 401, denied()),
        // HTTP/1.0 needs no Host: an absolute-form target for the
        // protected host, in any case and with a trailing dot, is refused
        ("GET http://ops.example.com/x HTTP/1.0\r\n", 401, denied()),
        ("GET http://OPS.example.com./x HTTP/1.0\r\n", 401, denied()),
        // userinfo in Host: pingora's parser, nothing counted
        (
            "GET /x HTTP/1.1\r\nhost: www.example.com@ops.example.com\r\n",
            400,
            String::new(),
        ),
    ] {
        let refusal = g.env.refusal(&series).await.app(&g.seen).named(head);
        let resp = raw_request(
            g.env.proxy,
            &format!("{head}accept: application/json\r\nconnection: close\r\n\r\n"),
        )
        .await;
        let body = refusal.assert_raw(&resp, want).await;
        if series.is_empty() {
            // pingora's own answer, not Portcullis' (which says why in JSON)
            assert!(body.is_empty(), "{head}: {body}");
            assert!(resp.contains("Server: Pingora\r\n"), "{head}: {resp}");
        }
    }
}

/// Headers the app may trust: rewrite headers, forwarding headers and
/// every spelling of identity headers are gone; Portcullis' own forwarding
/// headers describe the real connection.
#[tokio::test]
async fn headers_the_app_may_trust() {
    let g =
        Gate::start("[headers]\nstrip = [\"X-Legacy-User\"]\nassertion_enabled = false\n").await;
    let admin = g.env.mint(&principal("ada@acme.com", &["admins"])).await;
    let before = g.seen.lock().unwrap().len();
    let resp = raw_request(
        g.env.proxy,
        &format!(
            "GET /public/x HTTP/1.1\r\nhost: app.example.com\r\ncookie: {admin}\r\n\
             x-original-url: /admin\r\nx-rewrite-url: /admin\r\nx-real-ip: 1.2.3.4\r\n\
             true-client-ip: 1.2.3.4\r\nx-forwarded-ssl: on\r\nx-forwarded-port: 443\r\n\
             x-forwarded-prefix: /evil\r\nx-client-ip: 1.2.3.4\r\nforwarded: for=1.2.3.4\r\n\
             x-forwarded-for: 1.2.3.4\r\nx_forwarded_for: 1.2.3.4\r\nx.forwarded.email: boss@acme.com\r\n\
             x_legacy.user: boss\r\nx-portcullis-assertion: forged\r\nconnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status(&resp), 200, "{resp}");
    let head = g.seen.lock().unwrap()[before].to_ascii_lowercase();
    for gone in [
        "x-original-url",
        "x-rewrite-url",
        "true-client-ip",
        "x-forwarded-ssl",
        "x-forwarded-prefix",
        "x-client-ip",
        "x_forwarded_for",
        "x.forwarded.email",
        "x_legacy.user",
        "x-portcullis-assertion",
        "1.2.3.4",
        "boss",
    ] {
        assert!(!head.contains(gone), "`{gone}` reached the app:\n{head}");
    }
    // the client's `x-forwarded-port: 443` is replaced, not joined
    let ports: Vec<&str> = head
        .lines()
        .filter(|l| l.starts_with("x-forwarded-port:"))
        .map(str::trim)
        .collect();
    assert_eq!(
        ports,
        [format!("x-forwarded-port: {}", g.env.proxy.port())],
        "{head}"
    );
    assert!(
        !head.contains(": 443"),
        "the spoofed port reached the app:\n{head}"
    );
    for set in [
        "x-forwarded-for: 127.0.0.1",
        "x-real-ip: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: app.example.com",
        &format!("x-forwarded-port: {}", g.env.proxy.port()),
        "forwarded: for=127.0.0.1;proto=http;host=\"app.example.com\"",
    ] {
        assert!(head.contains(set), "`{set}` missing:\n{head}");
    }
}

/// Behind a trusted balancer its forwarding headers pass, but rewrite
/// headers and odd spellings still don't.
#[tokio::test]
async fn trusted_forwarded_headers_pass_through() {
    let (upstream, seen) = recording_upstream().await;
    let env = TestEnv::with(Options {
        upstream: Some(upstream),
        server_extra: "trust_forwarded_headers = true".into(),
        ..Options::default()
    })
    .await;
    let resp = raw_request(
        env.proxy,
        "GET /public/x HTTP/1.1\r\nhost: app.example.com\r\nx-forwarded-for: 203.0.113.7\r\n\
         x-forwarded-proto: https\r\nx-real-ip: 203.0.113.7\r\nx_forwarded_for: 6.6.6.6\r\n\
         x-original-url: /admin\r\nX-Request-ID: spoofed\r\n\
         X-Forwarded-For: 198.51.100.9\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&resp), 200, "{resp}");
    let head = seen.lock().unwrap()[0].to_ascii_lowercase();
    // Every line of the chain, in order (a balancer that adds a line of
    // its own), then the peer.
    assert!(
        head.contains("x-forwarded-for: 203.0.113.7, 198.51.100.9, 127.0.0.1"),
        "{head}"
    );
    assert!(head.contains("x-forwarded-proto: https"), "{head}");
    assert!(head.contains("x-real-ip: 203.0.113.7"), "{head}");
    // What the balancer did not say, Portcullis does.
    assert!(head.contains("x-forwarded-host: app.example.com"), "{head}");
    assert!(
        !head.contains("6.6.6.6") && !head.contains("x-original-url") && !head.contains("spoofed"),
        "{head}"
    );
    // Each once: the chain is extended, not sent beside the balancer's.
    for name in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "x-request-id",
    ] {
        let lines = head
            .lines()
            .filter(|l| l.starts_with(&format!("{name}:")))
            .count();
        assert_eq!(lines, 1, "{name}: {head}");
    }
}
