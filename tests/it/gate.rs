//! The gate holds whatever shape a request takes. Every request here is
//! sent as raw bytes (an HTTP client would resolve `..` and re-encode
//! before sending), and every assertion says what reached the app — byte
//! for byte, from an upstream that records request lines — not only what
//! the client got back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::env::{Options, TestEnv, principal, raw_request};

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
        Gate { env, seen }
    }

    /// Sends `target` with `cookie`; returns the status and the request
    /// line the app received for it (if any).
    async fn get(&self, target: &str, cookie: Option<&str>) -> (u16, Option<String>) {
        let before = self.seen.lock().unwrap().len();
        let cookie = cookie
            .map(|c| format!("cookie: {c}\r\n"))
            .unwrap_or_default();
        let resp = raw_request(
            self.env.proxy,
            &format!(
                "GET {target} HTTP/1.1\r\nhost: app.example.com\r\naccept: application/json\r\n{cookie}connection: close\r\n\r\n"
            ),
        )
        .await;
        (status(&resp), self.arrived_since(before))
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
}

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Path variants of `/admin` (admins only) and where they start from. Each
/// is a reading some server takes for `/admin/...`: see the README's
/// "Security model" for the list.
const ADMIN_VARIANTS: &[&str] = &[
    "/admin",
    "/ADMIN",
    "/Admin/users",
    "/admin;jsessionid=x",
    "/admin;/users",
    "/public/..;/admin",
    "/public/..;x/admin/users",
    "/public;x/../admin",
    // Tomcat cuts `;…` before decoding: its `/admin/public`
    "/admin;%2F../public",
    "/admin;%2f%2e%2e/public/x",
    "/admin;x%2F..%2F/public",
    "/public/../admin",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/%252e%252e/admin",
    "/public/.%2e/admin",
    "/public/..%2fadmin",
    "/public/..%5cadmin",
    "/public/..\\admin",
    "/public\\..\\admin",
    "//admin",
    "/public//..//admin",
    "/%61dmin",
    "/%41DMIN",
    "/admin.",
    "/admin./users",
    "/admin%20/users",
    "/admin.json",
    "/admin.xml",
    "/public/../admin.json",
    "/adm%C4%B1n",
    "/%EF%BD%81dmin",
    "/./admin",
    "/public/./../admin/",
];

/// Refused before routing, whoever asks: no reading is safe.
const AMBIGUOUS: &[&str] = &[
    "/admin%00",
    "/public/%00/../admin",
    "/public/%0d%0a",
    "/admin%ff",
    "/public/%c0%ae%c0%ae/admin",
    "/public/%e0%80%ae/admin",
    "/admin%u0041",
    "/admin%2",
    "/public/%EF%BC%8E%EF%BC%8E/admin",
    "/public%EF%BC%8Fadmin",
];

#[tokio::test]
async fn admin_variants_never_pass_weaker_than_admins_only() {
    let g = Gate::start("").await;
    let eng = g.env.mint(&principal("eve@acme.com", &["eng"])).await;
    let admin = g.env.mint(&principal("ada@acme.com", &["admins"])).await;
    for target in ADMIN_VARIANTS {
        let (anon, reached) = g.get(target, None).await;
        assert!(matches!(anon, 400 | 401), "{target}: anonymous got {anon}");
        assert_eq!(reached, None, "{target}: anonymous request reached the app");

        let (st, reached) = g.get(target, Some(&eng)).await;
        assert!(matches!(st, 400 | 403), "{target}: non-admin got {st}");
        assert_eq!(reached, None, "{target}: non-admin request reached the app");

        // An admin passes (or the request is refused as ambiguous) — and
        // when it passes, the app sees exactly the bytes that were sent.
        let (st, reached) = g.get(target, Some(&admin)).await;
        match st {
            200 => assert_eq!(
                reached.as_deref(),
                Some(format!("GET {target} HTTP/1.1").as_str()),
                "{target}: the app must receive the path as sent"
            ),
            400 => assert_eq!(reached, None, "{target}"),
            other => panic!("{target}: admin got {other}"),
        }
    }
    for target in AMBIGUOUS {
        let (st, reached) = g.get(target, Some(&admin)).await;
        assert_eq!(st, 400, "{target}");
        assert_eq!(reached, None, "{target}");
    }
    let m = g
        .env
        .metrics_with("portcullis_requests_refused_total")
        .await;
    for reason in [
        "path_control",
        "path_overlong",
        "path_malformed_escape",
        "path_lookalike",
        "path_encoded_separator",
    ] {
        assert!(
            m.contains(&format!("reason=\"{reason}\"")),
            "{reason} not counted:\n{m}"
        );
    }
    // The plain public and required paths still work.
    assert_eq!(g.get("/public/app.css", None).await.0, 200);
    assert_eq!(g.get("/dashboard", Some(&eng)).await.0, 200);
    assert_eq!(g.get("/dashboard", None).await.0, 401);
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
    for (cookie, want) in [(&ops, 403), (&finance, 403), (&both, 200)] {
        let (st, reached) = g.get(tricky, Some(cookie)).await;
        assert_eq!(st, want, "{cookie}");
        assert_eq!(reached.is_some(), want == 200);
    }
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
        let (st, reached) = g.get(target, None).await;
        assert!(matches!(st, 400 | 401), "{target}: anonymous got {st}");
        assert_eq!(reached, None, "{target}: reached the app");
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
        let (st, reached) = g.get(path, Some(&globex)).await;
        assert_eq!(st, 403, "{path}");
        assert_eq!(reached, None, "{path}");
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
    for (head, want) in [
        // the absolute-form authority wins over nothing: ops is protected
        (
            "GET http://ops.example.com/x HTTP/1.1\r\nhost: ops.example.com\r\n",
            401,
        ),
        (
            "GET http://ops.example.com/x HTTP/1.1\r\nhost: www.example.com\r\n",
            400,
        ),
        ("GET /x HTTP/1.1\r\n", 400),
        (
            "GET /x HTTP/1.1\r\nhost: www.example.com\r\nhost: ops.example.com\r\n",
            400,
        ),
        // no configured host: every host's routes apply
        ("GET /x HTTP/1.1\r\nhost: 127.0.0.1\r\n", 401),
        ("GET /x HTTP/1.1\r\nhost: evil.example\r\n", 401),
        ("GET /x HTTP/1.0\r\n", 401),
        (
            "GET /x HTTP/1.1\r\nhost: www.example.com@ops.example.com\r\n",
            400,
        ),
    ] {
        let st = send(format!(
            "{head}accept: application/json\r\nconnection: close\r\n\r\n"
        ))
        .await;
        assert_eq!(st, want, "{head:?}");
    }
    assert_eq!(
        g.seen.lock().unwrap().len(),
        before + 2,
        "{:?}",
        g.seen.lock().unwrap()
    );
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
         x-original-url: /admin\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&resp), 200, "{resp}");
    let head = seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        head.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1"),
        "{head}"
    );
    assert!(head.contains("x-forwarded-proto: https"), "{head}");
    assert!(head.contains("x-real-ip: 203.0.113.7"), "{head}");
    assert!(
        !head.contains("6.6.6.6") && !head.contains("x-original-url"),
        "{head}"
    );
}
