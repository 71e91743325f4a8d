//! The egress guard through the admin API: IdP URLs a customer's admin
//! could use to make Portcullis call inside the operator's network (the
//! cloud metadata service, loopback, private ranges, names that resolve
//! there, endpoints a discovery document names, redirects) are refused —
//! generically to the API client, precisely in the log, counted by reason —
//! and nothing reaches a loopback listener standing in for the inside.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::support::admin::{AdminApi, errors};
use crate::support::dns::{Behaviour, DnsServer};
use crate::support::env::*;

/// What the API says about any refused IdP URL.
const REFUSED: &str =
    "the IdP URL is not reachable from this server: it must be an https:// URL of a public host";

/// A loopback listener standing in for the admin port or an internal
/// service: it only counts the connections it accepts (and answers
/// nothing), so "nothing arrived" is a number read at the end.
struct Inside {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Inside {
    async fn start() -> Inside {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = l.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Inside {
            addr,
            accepted,
            _task: task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn env_with(dns: &DnsServer, strict: bool) -> (TestEnv, AdminApi) {
    let env = TestEnv::with(Options {
        extra: format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr()),
        strict_egress: strict,
        factories: portcullis::auth::Factories::builtin(),
        ..Default::default()
    })
    .await;
    let api = AdminApi::new(&env, "ops").await;
    api.create_tenant(&json!({"id": "globex", "domains": ["globex.com"]}))
        .await;
    (env, api)
}

fn refused_count(metrics: &str, reason: &str) -> u64 {
    let needle = format!("portcullis_idp_egress_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn saml(id: &str, url: &str) -> Value {
    json!({"id": id, "protocol": "saml", "saml": {"idp_metadata_url": url}})
}

fn oidc(id: &str, issuer: &str) -> Value {
    json!({"id": id, "protocol": "oidc",
        "oidc": {"issuer": issuer, "client_id": "rp", "client_secret": "s3cret"}})
}

/// Waits (bounded) until `reason` has been counted at least `n` times.
async fn counted(env: &TestEnv, reason: &str, n: u64) -> String {
    for _ in 0..100 {
        let m = env.metrics().await;
        if refused_count(&m, reason) >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{reason} never counted {n} times:\n{}", env.metrics().await);
}

/// Without the test allowance: literals in every special range, loopback
/// over http, user info and local names are 400 with one generic message;
/// names that resolve inside (through the configured `[dns]`) are accepted
/// as text but never fetched, at startup of the connection or at login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_urls_pointing_inside_are_refused_and_nothing_gets_there() {
    let inside = Inside::start().await;
    let port = inside.addr.port();
    let dns = DnsServer::start().await;
    dns.set(
        "loop.idp.example",
        Behaviour::Addresses(vec![ip("127.0.0.1")]),
    );
    dns.set(
        "intranet.idp.example",
        Behaviour::Addresses(vec![ip("10.0.0.5")]),
    );
    // One public and one private address: any non-public one refuses.
    dns.set(
        "mixed.idp.example",
        Behaviour::Addresses(vec![ip("93.184.216.34"), ip("::ffff:127.0.0.1")]),
    );
    let (env, api) = env_with(&dns, true).await;
    let before = env.metrics().await;
    assert_eq!(refused_count(&before, "literal_address"), 0, "{before}");

    let path = "/admin/v1/tenants/globex/connections";
    let cases = [
        (
            saml("a", &format!("http://127.0.0.1:{port}/md")),
            "saml.idp_metadata_url",
            "scheme",
        ),
        (
            saml("b", &format!("https://127.0.0.1:{port}/md")),
            "saml.idp_metadata_url",
            "literal_address",
        ),
        (
            oidc("c", "https://169.254.169.254/latest/meta-data"),
            "oidc.issuer",
            "literal_address",
        ),
        (
            oidc("d", &format!("https://[::ffff:127.0.0.1]:{port}/")),
            "oidc.issuer",
            "literal_address",
        ),
        (
            oidc("e", &format!("https://2130706433:{port}/")),
            "oidc.issuer",
            "literal_address",
        ),
        (
            oidc("f", "https://[fd00:ec2::254]/"),
            "oidc.issuer",
            "literal_address",
        ),
        (
            saml("g", "https://10.1.2.3/md"),
            "saml.idp_metadata_url",
            "literal_address",
        ),
        (
            saml("h", "https://user:pw@idp.example.com/md"),
            "saml.idp_metadata_url",
            "userinfo",
        ),
        (
            oidc("i", &format!("https://localhost:{port}/")),
            "oidc.issuer",
            "local_name",
        ),
        (oidc("j", "https://metadata/"), "oidc.issuer", "local_name"),
    ];
    let mut expected: std::collections::HashMap<&str, u64> = Default::default();
    for (body, field, reason) in &cases {
        let (status, e) = api.post(path, body).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert_eq!(
            errors(&e),
            vec![(format!("connections[0].{field}"), REFUSED.to_owned())],
            "{body}"
        );
        // Nothing of the URL, the address or the range comes back.
        let text = e.to_string();
        for leak in [
            "127.0.0.1",
            "169.254",
            "link-local",
            "loopback",
            "private",
            "10.1.2.3",
        ] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
        *expected.entry(reason).or_default() += 1;
    }
    let m = env.metrics().await;
    for (reason, n) in &expected {
        assert_eq!(refused_count(&m, reason), *n, "{reason}: {m}");
    }
    // The store kept none of them.
    let (_, list) = api.get(path).await;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");

    // Names are accepted as text: only the resolver can tell where they go.
    let (status, body) = api
        .post(
            path,
            &saml("loop-md", &format!("https://loop.idp.example:{port}/md")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The metadata fetch starts with the connection, and is refused.
    counted(&env, "resolved_address", 1).await;
    for (id, issuer) in [
        ("intranet-oidc", "https://intranet.idp.example/".to_owned()),
        ("mixed-oidc", format!("https://mixed.idp.example:{port}/")),
        ("loop-oidc", format!("https://loop.idp.example:{port}/")),
    ] {
        let (status, body) = api.post(path, &oidc(id, &issuer)).await;
        assert_eq!(status, 201, "{body}");
        let was = refused_count(&env.metrics().await, "resolved_address");
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(env.url(&format!("/.portcullis/sso/{id}/start")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{id}");
        let page = resp.text().await.unwrap();
        for leak in ["10.0.0.5", "127.0.0.1", "idp.example", "not reachable"] {
            assert!(!page.contains(leak), "{leak} in the login page of {id}");
        }
        let m = counted(&env, "resolved_address", was + 1).await;
        assert!(
            m.contains(&format!(
                "portcullis_login_failures_total{{connection=\"{id}\",reason=\"discovery\",tenant=\"globex\"}} 1"
            )),
            "{m}"
        );
    }
    assert_eq!(
        inside.accepted(),
        0,
        "a request reached the loopback listener"
    );
    assert!(
        dns.udp_queries() + dns.tcp_queries() > 0,
        "the configured [dns] was not asked"
    );
}

/// With the test allowance (the discovery document is served on loopback):
/// the URLs the document names are held to the same rules before any is
/// fetched, and a redirect is never followed — not even to loopback, which
/// the allowance would otherwise let through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_endpoints_and_redirects_are_held_to_the_rules() {
    let inside = Inside::start().await;
    let dns = DnsServer::start().await;
    dns.set(
        "keys.internal.example",
        Behaviour::Addresses(vec![ip("10.0.0.5")]),
    );
    let op = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", op.local_addr().unwrap());
    let to_inside = format!("http://{}/", inside.addr);
    let b = base.clone();
    let app = Router::new().route(
        "/{case}/.well-known/openid-configuration",
        get(move |Path(case): Path<String>| {
            let iss = format!("{b}/{case}");
            let to_inside = to_inside.clone();
            async move {
                let mut doc = json!({
                    "issuer": iss,
                    "authorization_endpoint": format!("{iss}/authorize"),
                    "token_endpoint": format!("{iss}/token"),
                    "jwks_uri": format!("{iss}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                });
                let resp: Response = match case.as_str() {
                    "jwks-literal" => {
                        doc["jwks_uri"] = json!("https://169.254.169.254/latest/meta-data");
                        axum::Json(doc).into_response()
                    }
                    "jwks-name" => {
                        doc["jwks_uri"] = json!("https://keys.internal.example/jwks");
                        axum::Json(doc).into_response()
                    }
                    "token-private" => {
                        doc["token_endpoint"] = json!("https://10.1.2.3/token");
                        axum::Json(doc).into_response()
                    }
                    "userinfo-userinfo" => {
                        doc["userinfo_endpoint"] = json!("https://a:b@idp.example.com/userinfo");
                        axum::Json(doc).into_response()
                    }
                    _ => Redirect::temporary(&to_inside).into_response(),
                };
                resp
            }
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(op, app).await;
    });
    let (env, api) = env_with(&dns, false).await;
    let path = "/admin/v1/tenants/globex/connections";
    for (case, reason) in [
        ("jwks-literal", "literal_address"),
        ("jwks-name", "resolved_address"),
        ("token-private", "literal_address"),
        ("userinfo-userinfo", "userinfo"),
        ("redirect", "redirect"),
    ] {
        let (status, body) = api.post(path, &oidc(case, &format!("{base}/{case}"))).await;
        assert_eq!(status, 201, "{case}: {body}");
        let was = refused_count(&env.metrics().await, reason);
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(env.url(&format!("/.portcullis/sso/{case}/start")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{case}");
        let page = resp.text().await.unwrap();
        for leak in ["169.254", "10.0.0.5", "10.1.2.3", "internal.example"] {
            assert!(!page.contains(leak), "{leak} in the login page of {case}");
        }
        counted(&env, reason, was + 1).await;
    }
    assert_eq!(inside.accepted(), 0, "the redirect was followed");
    server.abort();
}

/// The operator's own file is held to the same rules, with its line; a
/// private IdP of the operator's is allowed by name or network, for the
/// file's tenants only.
#[test]
fn the_file_is_held_to_the_same_rules_and_may_name_private_idps() {
    let base = r#"
[[listeners]]
address = "127.0.0.1:8080"
[session]
keys = ["0123456789abcdef0123456789abcdef"]
[store]
encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE="
[[tenants]]
id = "acme"
domains = ["acme.com"]
[[tenants.connections]]
id = "adfs"
protocol = "saml"
[tenants.connections.saml]
idp_metadata_url = "https://adfs.corp.example/FederationMetadata/2007-06/FederationMetadata.xml"
[[tenants.connections]]
id = "internal"
protocol = "oidc"
[tenants.connections.oidc]
issuer = "https://10.20.0.9/adfs"
client_id = "c"
client_secret = "s"
"#;
    let e = portcullis::config::from_str(base, "portcullis.toml", &|_| None).unwrap_err();
    let found: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        vec![
            "portcullis.toml:20: tenants[0].connections[1].oidc.issuer: not fetched by this server: names an address in a private (10.0.0.0/8) range; IdP URLs must name a public host".to_owned()
        ]
    );
    let allowed = format!(
        "{base}[egress]\nallow_private_hosts = [\"adfs.corp.example\"]\nallow_private_networks = [\"10.20.0.0/16\"]\n"
    );
    portcullis::config::from_str(&allowed, "portcullis.toml", &|_| None).unwrap();
    let typo = format!("{base}[egress]\nallow_privat_hosts = []\n");
    let e = portcullis::config::from_str(&typo, "portcullis.toml", &|_| None).unwrap_err();
    assert!(e.to_string().contains("allow_privat_hosts"), "{e}");
}
