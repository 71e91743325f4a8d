//! Several apps behind one Portcullis: `[[upstreams]]`, routes naming
//! them, each request reaching only its own app under its own policy, and
//! requests whose readings would pick different apps refused.

use std::net::SocketAddr;

use crate::support::env::*;
use crate::support::refusal::AppLog;

/// Two apps by host: app1 is public with an admins-only `/admin`, app2
/// needs `eng` everywhere. The env's own routes (host-less) follow.
const BY_HOST: &str = r#"
[[routes]]
host = "app1.example.com"
prefix = "/"
policy = "public"

[[routes]]
host = "app1.example.com"
prefix = "/admin"
policy = "required"
allowed_groups = ["admins"]

[[routes]]
host = "app2.example.com"
prefix = "/"
policy = "required"
allowed_groups = ["eng"]
upstream = "app2"
"#;

/// A path of every host (that has no routes of its own) served by app2.
const BY_PATH: &str = r#"
[[routes]]
prefix = "/reports"
policy = "public"
upstream = "app2"
"#;

const APP1: usize = 0;
const APP2: usize = 1;

/// An env in front of two counting apps, `default` and `app2`.
struct Apps {
    env: TestEnv,
    logs: [AppLog; 2],
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Apps {
    async fn start(extra: &str, server_extra: &str) -> Self {
        let (a1, t1, log1) = start_counting_upstream().await;
        let (a2, t2, log2) = start_counting_upstream().await;
        Self::with(extra, server_extra, [a1, a2], [log1, log2], vec![t1, t2]).await
    }

    async fn with(
        extra: &str,
        server_extra: &str,
        addrs: [SocketAddr; 2],
        logs: [AppLog; 2],
        tasks: Vec<tokio::task::JoinHandle<()>>,
    ) -> Self {
        let env = TestEnv::with(Options {
            upstreams: vec![("default", addrs[0]), ("app2", addrs[1])],
            extra: extra.to_owned(),
            server_extra: server_extra.to_owned(),
            ..Options::default()
        })
        .await;
        Self {
            env,
            logs,
            _tasks: tasks,
        }
    }

    /// GET `path` for `host` as an API client, with a forged identity
    /// header; the status and what the app echoed.
    async fn get(&self, host: &str, path: &str, cookie: Option<&str>) -> (u16, serde_json::Value) {
        let mut r = client()
            .get(self.env.url(path))
            .header("host", host)
            .header("x-forwarded-email", "forged@evil.example")
            .header("x-forwarded-groups", "admins,eng");
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        echo(r).await
    }

    /// What reached each app since the last call.
    fn took(&self) -> [Vec<String>; 2] {
        self.logs
            .each_ref()
            .map(|l| std::mem::take(&mut *l.lock().unwrap()))
    }

    /// Exactly `line` reached app `app`, nothing reached the other.
    #[track_caller]
    fn reached(&self, app: usize, line: &str) {
        let mut want: [Vec<String>; 2] = Default::default();
        want[app].push(line.to_owned());
        assert_eq!(self.took(), want);
    }

    /// A request that must be refused with `status` and reach neither app;
    /// `series` counts it (see `support::refusal`).
    async fn refused(
        &self,
        host: &str,
        target: &str,
        cookie: Option<&str>,
        status: u16,
        series: &str,
    ) {
        self.took();
        let refusal = self.env.refusal(series).await.app(&self.logs[APP1]);
        let mut head =
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n");
        if let Some(c) = cookie {
            head.push_str(&format!("Cookie: {c}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        let resp = raw_request(self.env.proxy, &head).await;
        refusal
            .named(format!("{host}{target}"))
            .assert_raw(&resp, status)
            .await;
        assert_eq!(
            self.took(),
            [Vec::<String>::new(), Vec::new()],
            "{host}{target}"
        );
    }
}

#[tokio::test]
async fn two_apps_by_host_with_different_policies() {
    let apps = Apps::start(BY_HOST, "").await;
    let env = &apps.env;
    let admin = env.mint(&principal("ada@acme.com", &["admins"])).await;
    let eng = env.mint(&principal("eve@acme.com", &["eng"])).await;

    // app1: public, so anonymous requests reach it, without the forged
    // identity
    let (status, app) = apps.get("app1.example.com", "/", None).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "host"), Some("app1.example.com"));
    assert_eq!(seen(&app, "x-forwarded-email"), None);
    assert_eq!(seen(&app, "x-forwarded-groups"), None);
    apps.reached(APP1, "GET /");
    // app2's policy is not app1's: the same path needs `eng` there
    apps.refused("app2.example.com", "/", None, 401, "").await;
    apps.refused("app2.example.com", "/", Some(&admin), 403, "")
        .await;
    // ...and the host's route wins over the host-less public one
    apps.refused("app2.example.com", "/public/x", None, 401, "")
        .await;
    let (status, app) = apps.get("app2.example.com", "/public/x", Some(&eng)).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "host"), Some("app2.example.com"));
    assert_eq!(seen(&app, "x-forwarded-email"), Some("eve@acme.com"));
    assert_eq!(seen(&app, "x-forwarded-groups"), Some("eng"));
    assert!(seen(&app, "x-portcullis-assertion").is_some());
    apps.reached(APP2, "GET /public/x");

    // app1's admin area: admins only; `eng` opens app2, not this
    apps.refused("app1.example.com", "/admin", None, 401, "")
        .await;
    apps.refused("app1.example.com", "/admin/users", Some(&eng), 403, "")
        .await;
    let (status, app) = apps
        .get("app1.example.com", "/admin/users", Some(&admin))
        .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-email"), Some("ada@acme.com"));
    assert_eq!(seen(&app, "x-forwarded-groups"), Some("admins"));
    apps.reached(APP1, "GET /admin/users");

    // the port does not change the app
    let (status, _) = apps.get("APP2.example.com:8443", "/x", Some(&eng)).await;
    assert_eq!(status, 200);
    apps.reached(APP2, "GET /x");
}

/// A host no route names goes to the default app, under every host's
/// policy (the strictest reading of the route table), never to a host's
/// app.
#[tokio::test]
async fn unknown_host_goes_to_the_default_upstream_under_every_hosts_policy() {
    let apps = Apps::start(BY_HOST, "").await;
    let env = &apps.env;
    let admin = env.mint(&principal("ada@acme.com", &["admins"])).await;
    let eng = env.mint(&principal("eve@acme.com", &["eng"])).await;
    let both = env
        .mint(&principal("bo@acme.com", &["eng", "admins"]))
        .await;
    for host in ["other.example.com", "127.0.0.1"] {
        // public for app1 and for the host-less routes, `eng` for app2
        apps.refused(host, "/public/x", None, 401, "").await;
        apps.refused(host, "/public/x", Some(&admin), 403, "").await;
        let (status, app) = apps.get(host, "/public/x", Some(&eng)).await;
        assert_eq!(status, 200, "{app}");
        apps.reached(APP1, "GET /public/x");
        // app1's admin area holds too
        apps.refused(host, "/admin", Some(&eng), 403, "").await;
        let (status, _) = apps.get(host, "/admin", Some(&both)).await;
        assert_eq!(status, 200);
        apps.reached(APP1, "GET /admin");
    }
}

#[tokio::test]
async fn routes_can_name_an_upstream_by_path() {
    let apps = Apps::start(BY_PATH, "").await;
    let env = &apps.env;
    let (status, app) = apps.get("app.example.com", "/reports/q?x=1", None).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["query"], "x=1");
    apps.reached(APP2, "GET /reports/q");
    // the rest is the default app's, under the env's routes
    apps.refused("app.example.com", "/reportsx", None, 401, "")
        .await;
    let cookie = env.mint(&principal("ada@acme.com", &[])).await;
    let (status, app) = apps
        .get("app.example.com", "/reportsx", Some(&cookie))
        .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-email"), Some("ada@acme.com"));
    apps.reached(APP1, "GET /reportsx");
}

/// One reading of the path names app2's public `/reports`, another the
/// default app's `/admin`: no app is the one both policies were written
/// for, so neither gets it.
#[tokio::test]
async fn readings_that_pick_different_upstreams_are_refused() {
    let apps = Apps::start(BY_PATH, "").await;
    let admin = apps.env.mint(&principal("ada@acme.com", &["admins"])).await;
    const AMBIGUOUS: &str = "portcullis_requests_refused_total{reason=\"upstream_ambiguous\"}";
    for target in [
        "/reports/../admin",
        "/reports/..%2fadmin",
        "/reports/%2e%2e/admin",
        "/reports/..;/admin",
        // a case-sensitive app would not read it as `/reports`
        "/REPORTS/q",
    ] {
        for cookie in [None, Some(admin.as_str())] {
            apps.refused("app.example.com", target, cookie, 400, AMBIGUOUS)
                .await;
        }
    }
    // readings that agree go through (as sent: a client library would
    // have removed the dot segments)
    let resp = raw_request(
        apps.env.proxy,
        "GET /reports/a/../b HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    apps.reached(APP2, "GET /reports/a/../b");
}

/// `X-Forwarded-Host` is read only behind a trusted balancer; then a
/// request whose hosts name two apps is refused.
#[tokio::test]
async fn untrusted_x_forwarded_host_cannot_switch_upstream() {
    let apps = Apps::start(BY_HOST, "").await;
    let r = client()
        .get(apps.env.url("/"))
        .header("host", "app1.example.com")
        .header("x-forwarded-host", "app2.example.com");
    let (status, app) = echo(r).await;
    assert_eq!(status, 200, "{app}");
    // app1's public policy, app1, and the header overwritten
    assert_eq!(seen(&app, "x-forwarded-host"), Some("app1.example.com"));
    apps.reached(APP1, "GET /");

    let trusted = Apps::start(BY_HOST, "trust_forwarded_headers = true").await;
    let resp = raw_request(
        trusted.env.proxy,
        "GET / HTTP/1.1\r\nHost: app1.example.com\r\nX-Forwarded-Host: app2.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert_eq!(trusted.took(), [Vec::<String>::new(), Vec::new()]);
    trusted
        .env
        .metrics_with("portcullis_requests_refused_total{reason=\"upstream_ambiguous\"} 1")
        .await;
    // a balancer naming the same app is fine
    let r = client()
        .get(trusted.env.url("/"))
        .header("host", "app1.example.com")
        .header("x-forwarded-host", "App1.example.com");
    let (status, _) = echo(r).await;
    assert_eq!(status, 200);
    trusted.reached(APP1, "GET /");
}

#[tokio::test]
async fn a_dead_upstream_fails_only_its_routes() {
    let (a1, t1, log1) = start_counting_upstream().await;
    let dead = refusing();
    let apps = Apps::with(
        BY_HOST,
        "",
        [a1, dead.addr],
        [log1, AppLog::default()],
        vec![t1],
    )
    .await;
    let eng = apps.env.mint(&principal("eve@acme.com", &["eng"])).await;
    let (status, _) = apps.get("app2.example.com", "/x", Some(&eng)).await;
    assert_eq!(status, 502);
    apps.env
        .metrics_with("portcullis_upstream_errors_total{kind=\"connect\"} 1")
        .await;
    let (status, _) = apps.get("app1.example.com", "/x", None).await;
    assert_eq!(status, 200);
    apps.reached(APP1, "GET /x");
}

/// A reload can add an app: new upstreams and routes apply to the next
/// request.
#[tokio::test]
async fn reload_adds_an_upstream() {
    let (a1, _t1, log1) = start_counting_upstream().await;
    let (a2, _t2, log2) = start_counting_upstream().await;
    let env = TestEnv::with(Options {
        upstreams: vec![("default", a1)],
        ..Options::default()
    })
    .await;
    let eng = env.mint(&principal("eve@acme.com", &["eng"])).await;
    let get = || async {
        let r = client()
            .get(env.url("/x"))
            .header("host", "app2.example.com")
            .header("cookie", &eng);
        echo(r).await.0
    };
    assert_eq!(get().await, 200);
    assert_eq!(std::mem::take(&mut *log1.lock().unwrap()), ["GET /x"]);

    let text = format!(
        "{}\n[[upstreams]]\nname = \"app2\"\naddress = \"{a2}\"\n{BY_HOST}",
        env.config_text
    );
    let cfg = portcullis::config::from_str(&text, "reloaded.toml", &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    env.shared.swap(cfg).await.unwrap();
    assert_eq!(get().await, 200);
    assert_eq!(*log2.lock().unwrap(), ["GET /x"]);
    assert!(log1.lock().unwrap().is_empty());
}
