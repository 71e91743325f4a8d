//! Forward-auth endpoints in-process: reqwest plays the host proxy (nginx,
//! Caddy/Traefik, Envoy) and sends what each sends. The real nginx and
//! Caddy run in `deploy::`.

use crate::support::env::*;

const SESSION_DOMAIN: &str = "domain = \"example.com\"";

fn forward_auth(trusted: &str) -> String {
    format!(
        r#"
[forward_auth]
trusted_proxies = [{trusted}]
hosts = ["app.example.com"]
[[forward_auth.endpoints]]
convention = "nginx"
[[forward_auth.endpoints]]
path = "/.portcullis/forward"
convention = "forward"
[[forward_auth.endpoints]]
path = "/.portcullis/envoy"
convention = "envoy"
[[forward_auth.endpoints]]
path = "/.portcullis/traefik-body"
convention = "forward"
forwards_body = true
[[forward_auth.endpoints]]
path = "/.portcullis/envoy-body"
convention = "envoy"
forwards_body = true

[login]
password_endpoints = [{{ path = "/login" }}]

"#
    )
}

async fn env_trusting(trusted: &str) -> TestEnv {
    TestEnv::with(Options {
        extra: forward_auth(trusted),
        session_extra: SESSION_DOMAIN.into(),
        ..Default::default()
    })
    .await
}

async fn trusted_env() -> TestEnv {
    env_trusting("\"127.0.0.1/32\"").await
}

/// nginx `auth_request` asking about `method uri` on `app.example.com`.
fn nginx(env: &TestEnv, method: &str, uri: &str) -> reqwest::RequestBuilder {
    client()
        .get(env.url("/.portcullis/auth"))
        .header("host", "app.example.com")
        .header("x-original-method", method)
        .header("x-original-uri", uri)
        .header("x-forwarded-proto", "http")
}

/// Caddy `forward_auth` / Traefik `ForwardAuth` asking about `method uri`.
fn forward(env: &TestEnv, method: &str, uri: &str) -> reqwest::RequestBuilder {
    client()
        .get(env.url("/.portcullis/forward"))
        .header("x-forwarded-method", method)
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-uri", uri)
}

/// Envoy `ext_authz` (path_prefix `/.portcullis/envoy`) asking about `GET uri`.
fn envoy(env: &TestEnv, uri: &str) -> reqwest::RequestBuilder {
    client()
        .get(env.url(&format!("/.portcullis/envoy{uri}")))
        .header("host", "app.example.com")
        .header("x-forwarded-proto", "http")
}

const IDENTITY: [&str; 8] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-name",
    "x-forwarded-groups",
    "x-forwarded-roles",
    "x-forwarded-tenant",
    "x-forwarded-principal-type",
    "x-portcullis-assertion",
];

fn header<'r>(r: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn nginx_convention_allows_and_returns_every_identity_header_and_the_assertion() {
    let env = trusted_env().await;
    let cookie = env
        .mint(&principal("alice@example.com", &["eng", "admins"]))
        .await;
    let r = nginx(&env, "GET", "/admin/x?y=1")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-forwarded-user"), Some("user-alice"));
    assert_eq!(header(&r, "x-forwarded-email"), Some("alice@example.com"));
    assert_eq!(header(&r, "x-forwarded-name"), Some("Alice Example"));
    assert_eq!(header(&r, "x-forwarded-groups"), Some("eng,admins"));
    assert_eq!(header(&r, "x-forwarded-roles"), Some("member"));
    assert_eq!(header(&r, "x-forwarded-tenant"), Some("acme"));
    let jwt = header(&r, "x-portcullis-assertion").unwrap().to_owned();

    let jwks: jsonwebtoken::jwk::JwkSet = client()
        .get(env.url("/.portcullis/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(&jwt).unwrap().kid.unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["portcullis-upstream"]);
    v.set_issuer(&[format!("http://127.0.0.1:{}", env.proxy.port())]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &jwt,
        &jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap(),
        &v,
    )
    .expect("the assertion verifies against the JWKS");
    assert_eq!(data.claims["email"], "alice@example.com");
    // the decision endpoint answers; nothing is forwarded
    assert!(env.app.as_ref().unwrap().lock().unwrap().is_empty());
    // counted under the route's policy, as a proxied request would be
    env.metrics_with(r#"portcullis_requests_total{class="2xx",policy="required"} 1"#)
        .await;
}

#[tokio::test]
async fn nginx_convention_never_redirects_browsers_get_401_with_the_login_header() {
    let env = trusted_env().await;
    let login = format!(
        "http://127.0.0.1:{}/.portcullis/login?return_to=http%3A%2F%2Fapp%2Eexample%2Ecom%2Fdashboard%3Fa%3Db",
        env.proxy.port()
    );
    // a browser: the login page to redirect to, for nginx's `@login`
    let r = nginx(&env, "GET", "/dashboard?a=b")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-portcullis-login"), Some(login.as_str()));
    assert_eq!(header(&r, "location"), None);
    // an API client: a plain 401, which `@login` passes on
    let r = nginx(&env, "GET", "/dashboard?a=b")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-portcullis-login"), None);
    assert!(header(&r, "www-authenticate").is_some());
    // a path no reading makes unambiguous: 403, the one refusal nginx
    // passes on (a 400 would become a 500)
    let r = nginx(&env, "GET", "/%ZZ").send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn forward_convention_redirects_browsers_to_login_with_the_original_url() {
    let env = trusted_env().await;
    let r = forward(&env, "GET", "/dashboard?a=b")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to = header(&r, "location").unwrap();
    assert_eq!(
        to,
        format!(
            "http://127.0.0.1:{}/.portcullis/login?return_to=http%3A%2F%2Fapp%2Eexample%2Ecom%2Fdashboard%3Fa%3Db",
            env.proxy.port()
        )
    );
    // the login page carries the absolute target on
    let page = client().get(to).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        hidden_field(&page, "return_to").as_deref(),
        Some("http://app.example.com/dashboard?a=b")
    );
    // a host nobody configured keeps only its path
    let r = forward(&env, "GET", "/dashboard")
        .header("x-forwarded-host", "evil.example")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "two X-Forwarded-Host headers are refused");
    let r = client()
        .get(env.url("/.portcullis/forward"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-uri", "/dashboard")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(
        header(&r, "location")
            .unwrap()
            .ends_with("/.portcullis/login?return_to=%2Fdashboard"),
        "{:?}",
        header(&r, "location")
    );
}

#[tokio::test]
async fn api_clients_get_401_json_and_group_restricted_paths_403_in_every_convention() {
    let env = trusted_env().await;
    let staff = env.mint(&principal("bob@example.com", &["staff"])).await;
    for (name, req) in [
        ("nginx", nginx(&env, "GET", "/api/x")),
        ("forward", forward(&env, "GET", "/api/x")),
        ("envoy", envoy(&env, "/api/x")),
    ] {
        let r = req
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(header(&r, "x-portcullis-login"), None, "{name}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthenticated", "{name}");
    }
    for (name, req) in [
        ("nginx", nginx(&env, "GET", "/admin/x")),
        ("forward", forward(&env, "GET", "/admin/x")),
        ("envoy", envoy(&env, "/admin/x")),
    ] {
        let r = req.header("cookie", &staff).send().await.unwrap();
        assert_eq!(r.status(), 403, "{name}");
        assert_eq!(header(&r, "x-forwarded-email"), None, "{name}");
    }
}

#[tokio::test]
async fn anonymous_allow_sends_the_identity_headers_empty() {
    let env = trusted_env().await;
    for (name, req) in [
        ("nginx", nginx(&env, "GET", "/public/x")),
        ("forward", forward(&env, "GET", "/optional/x")),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
        for h in IDENTITY {
            assert_eq!(header(&r, h), Some(""), "{name}: {h}");
        }
    }
    // a signed-in user without a tenant: the tenant header is there, empty
    let mut p = principal("carol@example.com", &[]);
    p.tenant = None;
    p.name = None;
    let cookie = env.mint(&p).await;
    let r = forward(&env, "GET", "/x")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-forwarded-email"), Some("carol@example.com"));
    assert_eq!(header(&r, "x-forwarded-tenant"), Some(""));
    assert_eq!(header(&r, "x-forwarded-name"), Some(""));
}

#[tokio::test]
async fn envoy_path_prefix_carries_the_original_path_and_query() {
    let env = trusted_env().await;
    let cookie = env.mint(&principal("alice@example.com", &["eng"])).await;
    let r = envoy(&env, "/x?q=1")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-forwarded-email"), Some("alice@example.com"));
    assert!(header(&r, "x-portcullis-assertion").is_some_and(|a| !a.is_empty()));
    assert_eq!(header(&r, "x-forwarded-roles"), Some("member"));
    assert_eq!(header(&r, "x-envoy-auth-headers-to-remove"), None);
    // public: nothing to set, everything to remove
    let r = envoy(&env, "/public/x").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-forwarded-email"), None);
    assert_eq!(
        header(&r, "x-envoy-auth-headers-to-remove"),
        Some(IDENTITY.join(", ").as_str())
    );
    // the admin prefix under the endpoint's path: the group check applies
    let r = envoy(&env, "/admin")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // a browser: the redirect with the original URL, query included
    let r = envoy(&env, "/dashboard?a=1")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(
        header(&r, "location")
            .unwrap()
            .ends_with("return_to=http%3A%2F%2Fapp%2Eexample%2Ecom%2Fdashboard%3Fa%3D1")
    );
}

/// The request metadata is believed only from `trusted_proxies`: a client
/// reaching the endpoint itself, with a forged description, is refused
/// before anything is read — no session lookup, counted with its reason.
#[tokio::test]
async fn forged_forwarded_uri_from_an_untrusted_peer_is_refused() {
    let env = env_trusting("\"10.0.0.0/8\"").await;
    let cookie = env.mint(&principal("alice@example.com", &["admins"])).await;
    let series = r#"portcullis_requests_refused_total{reason="forward_auth_untrusted"}"#;
    for (name, req) in [
        ("forward", forward(&env, "GET", "/public/x")),
        ("nginx", nginx(&env, "GET", "/public/x")),
        ("envoy", envoy(&env, "/public/x")),
        (
            "forward, signed in",
            forward(&env, "GET", "/admin").header("cookie", &cookie),
        ),
    ] {
        let before = env.metrics().await;
        let refusal = env.refusal(series).await.named(name);
        let r = req.send().await.unwrap();
        for h in IDENTITY {
            assert_eq!(header(&r, h), None, "{name}: {h}");
        }
        refusal.assert(r, 403).await;
        let after = env.metrics().await;
        let lookups = |m: &str| {
            m.lines()
                .filter(|l| l.starts_with("portcullis_session_cache_requests_total"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            lookups(&before),
            lookups(&after),
            "{name}: a session lookup"
        );
    }
}

#[tokio::test]
async fn only_the_configured_conventions_headers_count() {
    let env = trusted_env().await;
    // a client's X-Original-URI copied through Caddy into a `forward`
    // endpoint: ignored, `/admin` is decided
    let r = forward(&env, "GET", "/admin")
        .header("x-original-uri", "/public/x")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // a client's X-Forwarded-Uri through nginx into an `nginx` endpoint
    let r = nginx(&env, "GET", "/admin")
        .header("x-forwarded-uri", "/public/x")
        .header("x-forwarded-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // ...and an X-Original-URL beside the X-Original-URI nginx set:
    // which one nginx wrote is unknowable, so neither is believed
    let series = r#"portcullis_requests_refused_total{reason="forward_auth_duplicate"}"#;
    let refusal = env.refusal(series).await;
    let r = nginx(&env, "GET", "/admin")
        .header("x-original-url", "http://app.example.com/public/x")
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
}

#[tokio::test]
async fn the_forwarded_uri_is_canonicalised_like_a_proxied_one() {
    let env = trusted_env().await;
    let staff = env.mint(&principal("bob@example.com", &["staff"])).await;
    // each a reading of /admin somewhere: never the weaker `/` route
    for uri in ["/ADMIN", "/admin;x", "/%61dmin", "/admin/", "/Admin.json"] {
        for (name, req) in [
            ("nginx", nginx(&env, "GET", uri)),
            ("forward", forward(&env, "GET", uri)),
        ] {
            let r = req.header("cookie", &staff).send().await.unwrap();
            assert_eq!(r.status(), 403, "{name} {uri}");
        }
    }
    // an encoded separator under a protected prefix: refused as in proxy
    // mode (403 for nginx, 400 for the rest)
    let r = nginx(&env, "GET", "/public/..%2fadmin")
        .header("cookie", &staff)
        .send()
        .await
        .unwrap();
    assert!([400, 403].contains(&r.status().as_u16()), "{}", r.status());
    let r = forward(&env, "GET", "/admin%2fx")
        .header("cookie", &staff)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = nginx(&env, "GET", "/admin%2fx")
        .header("cookie", &staff)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn malformed_or_duplicated_forwarded_metadata_is_refused() {
    let env = trusted_env().await;
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "forward without X-Forwarded-Uri",
            client()
                .get(env.url("/.portcullis/forward"))
                .header("x-forwarded-method", "GET")
                .header("x-forwarded-proto", "http")
                .header("x-forwarded-host", "app.example.com"),
            400,
            "forward_auth_missing",
        ),
        (
            "forward with two X-Forwarded-Uri",
            forward(&env, "GET", "/public/x").header("x-forwarded-uri", "/admin"),
            400,
            "forward_auth_duplicate",
        ),
        (
            "forward with a relative X-Forwarded-Uri",
            forward(&env, "GET", "admin"),
            400,
            "forward_auth_malformed",
        ),
        (
            "nginx without X-Original-Method",
            client()
                .get(env.url("/.portcullis/auth"))
                .header("x-original-uri", "/"),
            403,
            "forward_auth_missing",
        ),
        (
            "nginx with an absolute X-Original-URI",
            nginx(&env, "GET", "http://evil.example/admin"),
            403,
            "forward_auth_malformed",
        ),
    ];
    for (name, req, status, reason) in cases {
        let series = format!("portcullis_requests_refused_total{{reason=\"{reason}\"}}");
        let refusal = env.refusal(&series).await.named(name);
        let r = req.send().await.unwrap();
        refusal.assert(r, status).await;
    }
    // a bad Host in the description is the proxy mode's host refusal
    let r = forward(&env, "GET", "/x")
        .header("x-forwarded-host", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn password_endpoints_fail_closed_in_forward_auth_mode() {
    let env = trusted_env().await;
    let series = r#"portcullis_login_refused_total{reason="forward_auth"}"#;
    // a browser's form post: to the login page (a redirect where the
    // convention allows one)
    let refusal = env.refusal(series).await.named("forward, browser");
    let r = forward(&env, "POST", "/login")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "location").map(str::to_owned),
        Some(format!(
            "http://127.0.0.1:{}/.portcullis/login?use_sso=true",
            env.proxy.port()
        ))
    );
    refusal.assert(r, 303).await;
    // nginx: a 403 naming the login page
    let refusal = env.refusal(series).await.named("nginx, browser");
    let r = nginx(&env, "POST", "/login")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(
        header(&r, "x-portcullis-login")
            .unwrap()
            .ends_with("/.portcullis/login?use_sso=true")
    );
    refusal.assert(r, 403).await;
    // an API client, any case of the path
    let refusal = env.refusal(series).await.named("envoy, api");
    let r = client()
        .post(env.url("/.portcullis/envoy/LOGIN"))
        .header("host", "app.example.com")
        .json(&serde_json::json!({"email": "a@example.com", "password": "x"}))
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    // Caddy and Traefik cannot show whether a GET has a body (Caddy
    // passes a GET's body on to the app, and Express, Spring or ASP.NET
    // may read credentials from it): refused too
    let refusal = env.refusal(series).await.named("forward, GET");
    let r = forward(&env, "GET", "/login")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    refusal.assert(r, 303).await;
    // nginx says whether there is a body: showing the login page is no
    // submission (the `/` route still needs a session)...
    let r = nginx(&env, "GET", "/login")
        .header("x-original-body", "none")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        header(&r, "x-portcullis-login")
            .unwrap()
            .contains("return_to="),
        "the plain login redirect, not a refusal"
    );
    // ...a GET with a body, or nginx not saying, is refused
    for body in [Some("present"), None] {
        let refusal = env
            .refusal(series)
            .await
            .named(format!("nginx GET {body:?}"));
        let mut req = nginx(&env, "GET", "/login");
        if let Some(b) = body {
            req = req.header("x-original-body", b);
        }
        let r = req.send().await.unwrap();
        refusal.assert(r, 403).await;
    }
}

/// Credentials in the query string of a password endpoint are refused
/// whatever the method (PHP's `$_REQUEST`, ASP.NET model binding read
/// them), exactly as in proxy mode — even where the body is known to be
/// empty.
#[tokio::test]
async fn query_credentials_on_a_password_endpoint_are_refused_as_in_proxy_mode() {
    let env = trusted_env().await;
    let series = r#"portcullis_login_refused_total{reason="query_credentials"}"#;
    let uri = "/Login;x?email=alice%40example.com&password=hunter2";
    let refusal = env.refusal(series).await.named("nginx");
    let r = nginx(&env, "GET", uri)
        .header("x-original-body", "none")
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    let refusal = env.refusal(series).await.named("proxy mode");
    let r = client()
        .get(env.url(uri))
        .header("host", "app.example.com")
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    let refusal = env.refusal(series).await.named("envoy with bodies");
    let r = client()
        .get(env.url(&format!("/.portcullis/envoy-body{uri}")))
        .header("host", "app.example.com")
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
}

/// Where the host proxy forwards the body (Traefik `forwardBody`, Envoy
/// `with_request_body`), it is read exactly as proxy mode reads it: one
/// email, UTF-8 form/JSON/multipart, no second copy; a body Envoy cut short
/// or larger than the inspection limit is refused.
#[tokio::test]
async fn forwarded_bodies_are_read_like_proxy_mode_and_bounded() {
    let env = trusted_env().await;
    let traefik = |method: &str| {
        client()
            .get(env.url("/.portcullis/traefik-body"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", "app.example.com")
            .header("x-forwarded-uri", "/login")
    };
    let refused = |reason: &str| format!("portcullis_login_refused_total{{reason=\"{reason}\"}}");
    // a second email, however spelt: refused (a form post is a browser's:
    // sent to the SSO login, as in proxy mode)
    let refusal = env.refusal(&refused("duplicate_email")).await.named("dup");
    let r = traefik("POST")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a%40example.com;EMAIL=b%40acme.com&password=x")
        .send()
        .await
        .unwrap();
    refusal.assert(r, 303).await;
    // a charset the readers don't vouch for
    let refusal = env.refusal(&refused("content_type")).await.named("charset");
    let r = traefik("POST")
        .header("content-type", "application/json; charset=utf-16")
        .body(r#"{"email":"a@example.com"}"#)
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    // a GET carrying a body is inspected like any submission
    let refusal = env.refusal(&refused("no_email")).await.named("GET body");
    let r = traefik("GET")
        .header("content-type", "application/json")
        .body(r#"{"password":"x"}"#)
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    // a body over the inspection limit
    let refusal = env.refusal(&refused("too_large")).await.named("large");
    let big = format!("email=a%40example.com&pad={}", "x".repeat(70 * 1024));
    let r = traefik("POST")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    refusal.assert(r, 413).await;
    // Envoy says it cut the body at max_request_bytes
    let refusal = env.refusal(&refused("too_large")).await.named("partial");
    let r = client()
        .post(env.url("/.portcullis/envoy-body/login"))
        .header("host", "app.example.com")
        .header("x-envoy-auth-partial-body", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a%40exam")
        .send()
        .await
        .unwrap();
    refusal.assert(r, 413).await;
    // one plain email of an unrouted domain: the login goes on (the route
    // then wants a session, as in proxy mode)
    let r = traefik("POST")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a%40example.com&password=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .post(env.url("/.portcullis/envoy-body/login"))
        .header("host", "app.example.com")
        .header("x-envoy-auth-partial-body", "false")
        .json(&serde_json::json!({"email": "a@example.com", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // and with no body at all, showing the page is no submission
    let r = client()
        .get(env.url("/.portcullis/envoy-body/login"))
        .header("host", "app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// An enforcing tenant's password login through a host proxy that forwards
/// the body is stopped exactly as in proxy mode; another tenant's passes.
#[tokio::test]
async fn sso_enforcement_reads_forwarded_bodies() {
    let s = crate::support::idp::Sso::start_with(
        true,
        r#"
[forward_auth]
trusted_proxies = ["127.0.0.1"]
[[forward_auth.endpoints]]
convention = "forward"
forwards_body = true
"#,
    )
    .await;
    let ask = |uri: &str, email: &str| {
        client()
            .get(s.env.url("/.portcullis/auth"))
            .header("x-forwarded-method", "POST")
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", "app.example.com")
            .header("x-forwarded-uri", uri)
            .header("accept", "text/html")
            .form(&[("email", email), ("password", "pw")])
            .send()
    };
    let refusal = s
        .env
        .refusal(r#"portcullis_sso_enforced_total{tenant="acme"}"#)
        .await;
    // any reading of the endpoint
    let r = ask("/LOGIN;x", "Alice@ACME.com").await.unwrap();
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/.portcullis/login?use_sso=true&email=alice%40acme%2Ecom"),
        "{:?}",
        r.headers()
    );
    refusal.assert(r, 303).await;
    let r = ask("/login", "bob@globex.com").await.unwrap();
    assert_eq!(r.status(), 200, "globex does not enforce SSO");
}

/// Proxy mode and forward-auth decide the same bytes alike: one
/// decision function (`proxy::decide`) behind both.
#[tokio::test]
async fn forward_auth_and_proxy_mode_decide_the_same_bytes_alike() {
    let env = trusted_env().await;
    let staff = env.mint(&principal("bob@example.com", &["staff"])).await;
    let status = |resp: &str| -> u16 {
        resp.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    for uri in [
        "/public/x",
        "/public/../admin",
        "/public/..;/admin",
        "/public/%2e%2e/admin",
        "/public/%252e%252e/admin",
        "/PUBLIC/x",
        "/public;x/y",
        "/ADMIN",
        "/admin;jsessionid=1",
        "/admin./x",
        "/admin%2fx",
        "/public/x%2fy",
        "/public/%c0%ae%c0%ae/admin",
        "/public/%00",
        "/optional/x",
        "/x",
    ] {
        let raw = |target: &str| {
            format!(
                "GET {target} HTTP/1.1\r\nhost: app.example.com\r\ncookie: {staff}\r\nconnection: close\r\n\r\n"
            )
        };
        let proxied = status(&raw_request(env.proxy, &raw(uri)).await);
        let asked = forward(&env, "GET", uri)
            .header("cookie", &staff)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(
            asked, proxied,
            "{uri}: forward-auth {asked}, proxy mode {proxied}"
        );
        let envoyed =
            status(&raw_request(env.proxy, &raw(&format!("/.portcullis/envoy{uri}"))).await);
        assert_eq!(
            envoyed, proxied,
            "{uri}: envoy {envoyed}, proxy mode {proxied}"
        );
    }
}

/// nginx and Envoy pass a client's `X-Forwarded-Host` on to the app, which
/// Rails or Django may route on: it counts as a host of the request, as it
/// does in proxy mode behind a trusted balancer.
#[tokio::test]
async fn a_forwarded_host_the_app_would_read_counts() {
    // a host of its own, all of it protected; app.example.com's public
    // paths are public
    let hosts = r#"
[[routes]]
prefix = "/"
host = "admin.example.com"
policy = "required"
allowed_groups = ["admins"]
[[routes]]
prefix = "/public/"
host = "app.example.com"
policy = "public"
"#;
    let env = TestEnv::with(Options {
        extra: format!("{}{hosts}", forward_auth("\"127.0.0.1/32\"")),
        session_extra: SESSION_DOMAIN.into(),
        ..Default::default()
    })
    .await;
    let r = nginx(&env, "GET", "/public/x").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = nginx(&env, "GET", "/public/x")
        .header("x-forwarded-host", "Admin.Example.com.")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "admin.example.com's route applies");
    let r = envoy(&env, "/public/x")
        .header("x-forwarded-host", "admin.example.com:443")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // malformed: refused like a malformed Host
    let refusal = env
        .refusal(r#"portcullis_requests_refused_total{reason="host_malformed"}"#)
        .await;
    let r = nginx(&env, "GET", "/public/x")
        .header("x-forwarded-host", "user@admin.example.com")
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
}

/// The description's target: a fragment, an absolute or overlong one, and
/// an unknown `X-Original-Body` are refused; a scheme-relative `//host` is
/// a path on the described host, never a host.
#[tokio::test]
async fn hostile_targets_are_refused_or_read_as_paths() {
    let env = trusted_env().await;
    let series = r#"portcullis_requests_refused_total{reason="forward_auth_malformed"}"#;
    let long = format!("/public/{}", "a".repeat(9000));
    for (name, req, status) in [
        ("fragment", forward(&env, "GET", "/public/x#y"), 400),
        (
            "absolute",
            forward(&env, "GET", "http://evil.example/public/x"),
            400,
        ),
        ("overlong", forward(&env, "GET", &long), 400),
        (
            "x-original-body",
            nginx(&env, "GET", "/public/x").header("x-original-body", "0"),
            403,
        ),
    ] {
        let refusal = env.refusal(series).await.named(name);
        let r = req.send().await.unwrap();
        refusal.assert(r, status).await;
    }
    // `//evil.example/x` is a path under `/` (required) on app.example.com
    let r = forward(&env, "GET", "//evil.example/x")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to = header(&r, "location").unwrap();
    assert!(
        to.contains("return_to=http%3A%2F%2Fapp%2Eexample%2Ecom%2F%2Fevil%2Eexample%2Fx"),
        "{to}"
    );
}

#[tokio::test]
async fn login_returns_to_an_allowed_absolute_url_and_nowhere_else() {
    let env = trusted_env().await;
    for (target, kept) in [
        ("http://app.example.com/x?y=1", true),
        ("http://app.example.com:8443/x", true),
        ("https://evil.example/", false),
        ("http://app.example.com.evil.example/", false),
        ("http://app.example.com@evil.example/", false),
        ("//evil.example/", false),
    ] {
        let q: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let page = client()
            .get(env.url(&format!("/.portcullis/login?return_to={q}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let expected = if kept { target } else { "/" };
        assert_eq!(
            hidden_field(&page, "return_to").as_deref(),
            Some(expected),
            "{target}"
        );
    }
}

#[tokio::test]
async fn logout_returns_to_the_protected_host() {
    let env = trusted_env().await;
    let cookie = env.mint(&principal("alice@example.com", &["eng"])).await;
    let r = logout(&env, &cookie, "http://app.example.com/bye").await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), Some("http://app.example.com/bye"));
    // the confirmation page lets its form redirect there, nowhere else
    let page = client()
        .get(env.url("/.portcullis/logout?return_to=http%3A%2F%2Fapp.example.com%2Fbye"))
        .header(
            "cookie",
            env.mint(&principal("alice@example.com", &[])).await,
        )
        .send()
        .await
        .unwrap();
    let csp = header(&page, "content-security-policy").unwrap().to_owned();
    assert!(
        csp.contains("form-action 'self' http://app.example.com;"),
        "{csp}"
    );
    // the session is over
    let r = forward(&env, "GET", "/x")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // elsewhere: home on Portcullis' host
    let cookie = env.mint(&principal("alice@example.com", &["eng"])).await;
    let r = logout(&env, &cookie, "https://evil.example/").await;
    assert_eq!(header(&r, "location"), Some("/"));
}

#[tokio::test]
async fn session_domain_cookie_reaches_every_protected_host() {
    let env = trusted_env().await;
    // the cookie a login sets carries the configured Domain
    let now = portcullis::clock::now();
    let token = env
        .shared
        .sessions
        .create(&principal("alice@example.com", &[]), None, 3600, now)
        .await
        .unwrap();
    let set = env.shared.generation().codec.seal(&token, now);
    assert!(set.contains("Domain=example.com"), "{set}");
}

/// Step-up in forward-auth mode, from the same gate: a session below the
/// route's acr is sent to the step-up login (nginx: a 401 naming it;
/// the others: a redirect), an API client gets RFC 9470's 401, and a strong
/// enough session is allowed with its acr header.
#[tokio::test(flavor = "multi_thread")]
async fn step_up_routes_answer_as_in_proxy_mode() {
    let env = TestEnv::with(Options {
        extra: format!(
            "{}\n[headers]\nacr = \"X-Forwarded-Acr\"\n\n[[routes]]\nprefix = \"/secure\"\npolicy = \"required\"\nacr = [\"mfa\"]\nmax_age = 600\n",
            forward_auth("\"127.0.0.1/32\"")
        ),
        session_extra: SESSION_DOMAIN.into(),
        ..Default::default()
    })
    .await;
    let now = portcullis::clock::now();
    let with = |acr: &str, auth_time: i64| portcullis::identity::Principal {
        auth: portcullis::identity::AuthFacts {
            acr: Some(acr.into()),
            amr: vec![],
            auth_time: Some(auth_time),
        },
        ..principal("alice@example.com", &[])
    };
    let weak = env.mint(&with("pwd", now)).await;
    let stale = env.mint(&with("mfa", now - 3600)).await;
    let strong = env.mint(&with("mfa", now)).await;
    let step_up = "http://127.0.0.1:";
    for session in [&weak, &stale] {
        // nginx, a browser: 401 naming the step-up login (absolute)
        let r = nginx(&env, "GET", "/secure/x")
            .header("accept", "text/html")
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let login = r.headers()["x-portcullis-login"].to_str().unwrap();
        assert!(
            login.starts_with(step_up)
                && login.contains("/.portcullis/step-up?return_to=http%3A%2F%2Fapp%2Eexample%2Ecom%2Fsecure%2Fx&acr_values=mfa&max_age=600"),
            "{login}"
        );
        // Caddy/Traefik, a browser: a redirect there
        let r = forward(&env, "GET", "/secure/x")
            .header("accept", "text/html")
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .contains("/.portcullis/step-up?")
        );
        // Envoy, an API client: RFC 9470
        let r = envoy(&env, "/secure/x")
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("insufficient_user_authentication")
                && challenge.contains("acr_values=\"mfa\", max_age=600"),
            "{challenge}"
        );
    }
    let r = forward(&env, "GET", "/secure/x")
        .header("cookie", &strong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-forwarded-acr"], "mfa");
}
