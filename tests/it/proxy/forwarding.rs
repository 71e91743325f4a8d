//! The proxy end to end: real listener, real upstream, real store.

use std::time::Duration;

use crate::support::env::*;
use portcullis::store::SessionSelector;

#[tokio::test]
async fn public_route_passes_without_session() {
    let env = TestEnv::start().await;
    let (status, seen_by_app) = echo(client().get(env.url("/public/logo.png?x=1"))).await;
    assert_eq!(status, 200);
    assert_eq!(seen_by_app["path"], "/public/logo.png");
    assert_eq!(seen_by_app["query"], "x=1");
    assert_eq!(seen(&seen_by_app, "x-forwarded-email"), None);
}

#[tokio::test]
async fn required_route_redirects_browsers_and_401s_apis() {
    let env = TestEnv::start().await;
    let c = client();
    let r = c
        .get(env.url("/app/page?tab=2"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/.portcullis/login?return_to=%2Fapp%2Fpage%3Ftab%3D2"
    );
    assert!(r.headers().get("x-request-id").is_some());

    let r = c
        .get(env.url("/api/things"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.starts_with("Portcullis realm="), "{www}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    assert!(body["request_id"].as_str().is_some_and(|s| s.len() == 32));

    // the login page answers (no connection configured yet)
    let r = c
        .get(env.url("/.portcullis/login?return_to=%2Fapp"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("No single sign-on connection is configured"),
        "{html}"
    );
    assert!(html.contains(r#"name="return_to" value="/app""#), "{html}");
}

#[tokio::test]
async fn session_injects_identity_and_a_verifiable_assertion() {
    let env = TestEnv::start().await;
    let cookie = env
        .mint(&principal("alice@example.com", &["eng", "admins"]))
        .await;
    let (status, app) = echo(
        client()
            .get(env.url("/dashboard"))
            .header("cookie", format!("theme=dark; {cookie}")),
    )
    .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-user"), Some("user-alice"));
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@example.com"));
    assert_eq!(seen(&app, "x-forwarded-name"), Some("Alice Example"));
    assert_eq!(seen(&app, "x-forwarded-groups"), Some("eng,admins"));
    assert_eq!(seen(&app, "x-forwarded-roles"), Some("member"));
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));
    // the session cookie is Portcullis' credential, not the app's
    assert_eq!(seen(&app, "cookie"), Some("theme=dark"));
    // Across several lines the app's pairs arrive in order, as one line;
    // flow cookies and empty pairs go too.
    let (status, lines) = echo(
        client()
            .get(env.url("/dashboard"))
            .header("cookie", format!("a=1; {cookie}"))
            .header("cookie", "portcullis_flow_x=2")
            .header("cookie", "b=2;;  c = 3 "),
    )
    .await;
    assert_eq!(status, 200, "{lines}");
    assert_eq!(
        lines["headers"]["cookie"],
        serde_json::json!(["a=1; b=2; c = 3"])
    );
    // Nothing of the app's: no Cookie line at all.
    let (status, none) = echo(
        client()
            .get(env.url("/dashboard"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["headers"]["cookie"], serde_json::Value::Null, "{none}");

    let jwt = seen(&app, "x-portcullis-assertion")
        .expect("assertion")
        .to_owned();
    let jwks: jsonwebtoken::jwk::JwkSet = client()
        .get(env.url("/.portcullis/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["portcullis-upstream"]);
    v.set_issuer(&[format!("http://127.0.0.1:{}", env.proxy.port())]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &jwt,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .expect("assertion verifies against the JWKS");
    assert_eq!(data.claims["sub"], "user-alice");
    assert_eq!(data.claims["email"], "alice@example.com");
    assert_eq!(data.claims["groups"], serde_json::json!(["eng", "admins"]));
    let exp = data.claims["exp"].as_i64().unwrap();
    assert!(exp - portcullis::clock::now() <= 60);

    // a tampered assertion does not verify
    let mut forged = jwt.clone();
    forged.replace_range(forged.len() - 5.., "AAAAA");
    assert!(
        jsonwebtoken::decode::<serde_json::Value>(
            &forged,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &v
        )
        .is_err()
    );

    // the whoami endpoint sees the same principal
    let me: serde_json::Value = client()
        .get(env.url("/.portcullis/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "alice@example.com");
}

#[tokio::test]
async fn signing_key_survives_restart() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let store = format!("sqlite://{}/shared.db", dir.path().display());
    let kid = |env: &TestEnv| env.shared.generation().signer.kid().to_owned();
    let first = TestEnv::with(Options {
        store_url: Some(store.clone()),
        ..Default::default()
    })
    .await;
    let k1 = kid(&first);
    drop(first);
    let second = TestEnv::with(Options {
        store_url: Some(store),
        ..Default::default()
    })
    .await;
    assert_eq!(k1, kid(&second));
}

#[tokio::test]
async fn groups_gate_restricted_routes() {
    let env = TestEnv::start().await;
    let eng = env.mint(&principal("bob@example.com", &["eng"])).await;
    let admin = env.mint(&principal("carol@example.com", &["admins"])).await;
    let denied = "portcullis_requests_total{class=\"4xx\",policy=\"required\"}";
    let refusal = env.refusal(denied).await;
    let r = client()
        .get(env.url("/admin/users"))
        .header("cookie", &eng)
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    let r = client()
        .get(env.url("/admin/users"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // path tricks don't reach /admin through a public prefix: an encoded
    // slash under a protected route is refused as ambiguous
    let refusal = env
        .refusal("portcullis_requests_refused_total{reason=\"path_encoded_separator\"}")
        .await;
    let r = client()
        .get(env.url("/public/..%2Fadmin/users"))
        .header("cookie", &eng)
        .send()
        .await
        .unwrap();
    refusal.assert(r, 400).await;
}

/// The refusal check itself can fail: a session row added while another
/// one disappears (the sweep, a revocation) leaves the count unchanged, and
/// is still caught, by its key.
#[tokio::test]
async fn the_refusal_check_catches_a_new_session_row_the_count_hides() {
    let env = TestEnv::start().await;
    env.mint(&principal("old@example.com", &[])).await;
    let refusal = env.refusal("").await;
    let resp = client()
        .get(env.url("/dashboard"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    // meanwhile one row goes and another comes
    let gone = env
        .shared
        .store
        .sessions()
        .revoke(&SessionSelector::User("user-old".into()))
        .await
        .unwrap();
    assert_eq!(gone, 1);
    env.mint(&principal("new@example.com", &[])).await;
    assert_eq!(env.shared.store.sessions().count().await.unwrap(), 1);
    let check = tokio::spawn(async move { refusal.assert(resp, 401).await });
    let failed = check.await.expect_err("the check must fail");
    let message = failed
        .into_panic()
        .downcast::<String>()
        .map(|m| *m)
        .unwrap_or_default();
    assert!(
        message.contains("a refusal created 1 session row(s) in the store"),
        "{message}"
    );
}

/// Spoofed identity headers, in every spelling, never reach the app.
/// What the echo app saw, from a raw response (its JSON body, possibly
/// chunked).
fn echoed(raw: &str) -> serde_json::Value {
    let body = &raw[raw.find("\r\n\r\n").unwrap() + 4..];
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    serde_json::from_str(json).unwrap()
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let env = TestEnv::start().await;
    let cookie = env.mint(&principal("alice@example.com", &["eng"])).await;
    let spoof = "X-Forwarded-User: evil\r\n\
                 x-forwarded-email: evil@evil.com\r\n\
                 X-FORWARDED-GROUPS: admins\r\n\
                 X_Forwarded_Roles: owner\r\n\
                 x_forwarded_tenant: other\r\n\
                 X-Forwarded_Name: Mallory\r\n\
                 X-Portcullis-Assertion: eyJhbGciOiJub25lIn0.e30.\r\n\
                 X-Forwarded-User: evil-again\r\n\
                 X-Forwarded-For: 6.6.6.6\r\n\
                 X-Real-IP: 6.6.6.6\r\n\
                 X-Forwarded-Port: 1\r\n\
                 X-Request-Id: spoofed\r\n\
                 Forwarded: for=6.6.6.6\r\n";
    for (path, with_cookie) in [
        ("/public/x", false),
        ("/public/x", true),
        ("/optional/x", false),
        ("/optional/x", true),
        ("/app", true),
    ] {
        let cookie_line = if with_cookie {
            format!("Cookie: {cookie}\r\n")
        } else {
            String::new()
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{spoof}{cookie_line}Connection: close\r\n\r\n"
        );
        let raw = raw_request(env.proxy, &req).await;
        assert!(raw.starts_with("HTTP/1.1 200"), "{path}: {raw}");
        let app = echoed(&raw);
        let headers = app["headers"].as_object().unwrap();
        for (name, values) in headers {
            let norm = name.replace('_', "-");
            if norm.starts_with("x-forwarded-")
                && norm != "x-forwarded-for"
                && norm != "x-forwarded-proto"
                && norm != "x-forwarded-host"
                && norm != "x-forwarded-port"
                || norm == "x-portcullis-assertion"
            {
                assert!(
                    with_cookie && path != "/public/x",
                    "{path}: identity header {name} reached the app anonymously: {values}"
                );
                assert_eq!(
                    values.as_array().unwrap().len(),
                    1,
                    "{path}: {name} repeated: {values}"
                );
                let v = values[0].as_str().unwrap();
                assert!(
                    ![
                        "evil",
                        "evil-again",
                        "evil@evil.com",
                        "admins",
                        "owner",
                        "other",
                        "Mallory"
                    ]
                    .contains(&v),
                    "{path}: spoofed {name}: {v}"
                );
            }
        }
        assert_eq!(seen(&app, "x-forwarded-for"), Some("127.0.0.1"), "{path}");
        assert_eq!(seen(&app, "x-forwarded-proto"), Some("http"), "{path}");
        assert_eq!(seen(&app, "x-forwarded-host"), Some("127.0.0.1"), "{path}");
        // The client's `Forwarded` is replaced by what Portcullis saw.
        assert_eq!(
            seen(&app, "forwarded"),
            Some("for=127.0.0.1;proto=http;host=\"127.0.0.1\""),
            "{path}"
        );
        if with_cookie && path != "/public/x" {
            assert_eq!(seen(&app, "x-forwarded-user"), Some("user-alice"), "{path}");
        }
        // Portcullis' own headers reach the app once each, never beside the
        // client's copy.
        for name in [
            "x-forwarded-for",
            "x-real-ip",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-forwarded-port",
            "forwarded",
            "x-request-id",
        ] {
            let values = headers[name].as_array().unwrap();
            assert_eq!(values.len(), 1, "{path}: {name}: {values:?}");
        }
        assert_ne!(seen(&app, "x-real-ip"), Some("6.6.6.6"), "{path}");
        assert_ne!(seen(&app, "x-forwarded-port"), Some("1"), "{path}");
        assert_ne!(seen(&app, "x-request-id"), Some("spoofed"), "{path}");
    }
}

/// The hop-by-hop headers of RFC 9110 §7.6.1 (and the legacy ones pingora
/// strips too) describe the client's connection and stop at the proxy; the
/// rest arrive, repeated ones with every value. pingora finds them in one
/// pass over the request's names (`PORTCULLIS PATCH` pingora-proxy 3), so
/// they are sent in every case and spelling the pass must catch, after and
/// between ordinary headers. `Transfer-Encoding` and `Upgrade` are left
/// out: they change the request's framing and kind, which the upload and
/// WebSocket tests cover.
#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_proxy() {
    let env = TestEnv::start().await;
    let hop_by_hop = "Keep-Alive: timeout=5\r\n\
                      X-Kept-A: 1\r\n\
                      PROXY-CONNECTION: keep-alive\r\n\
                      Proxy-Authenticate: Basic realm=x\r\n\
                      X-Kept-B: 2\r\n\
                      proxy-authorization: Basic eDp5\r\n\
                      TE: trailers\r\n\
                      Trailer: X-Checksum\r\n\
                      X-Kept-A: 3\r\n\
                      Http2-Settings: AAMAAABkAAQAAP__\r\n";
    let req = format!(
        "GET /public/hop HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{hop_by_hop}Connection: close\r\n\r\n"
    );
    let raw = raw_request(env.proxy, &req).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let app = echoed(&raw);
    let headers = app["headers"].as_object().unwrap();
    for name in [
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "http2-settings",
    ] {
        assert!(
            !headers.contains_key(name),
            "{name} reached the app: {:?}",
            headers[name]
        );
    }
    assert_eq!(app["headers"]["x-kept-a"], serde_json::json!(["1", "3"]));
    assert_eq!(app["headers"]["x-kept-b"], serde_json::json!(["2"]));
    assert_eq!(seen(&app, "accept"), Some("application/json"));
}

#[tokio::test]
async fn tampered_expired_idle_and_revoked_cookies_are_anonymous() {
    let env = TestEnv::start().await;
    let c = client();
    let api = |cookie: String| {
        c.get(env.url("/api/x"))
            .header("accept", "application/json")
            .header("cookie", cookie)
    };
    let p = principal("dave@example.com", &[]);

    let good = env.mint(&p).await;
    assert_eq!(api(good.clone()).send().await.unwrap().status(), 200);

    // tampered: flip one character of the sealed value
    let (name, value) = good.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
    let rejected =
        |reason: &str| format!("portcullis_session_rejected_total{{reason=\"{reason}\"}}");
    let refusal = env.refusal(&rejected("undecryptable")).await;
    refusal
        .assert(api(tampered.clone()).send().await.unwrap(), 401)
        .await;
    for garbage in [
        "",
        "%00%ff",
        "a=b=c",
        &"x".repeat(4000),
        "v1.AAAA.99999999999",
    ] {
        assert_eq!(
            api(format!("{name}={garbage}"))
                .send()
                .await
                .unwrap()
                .status(),
            401,
            "{garbage}"
        );
    }

    // expired: absolute lifetime over
    let now = portcullis::clock::now();
    let expired = env.mint_at(&p, now - 100, 50).await;
    let refusal = env.refusal(&rejected("expired")).await;
    refusal
        .assert(api(expired).send().await.unwrap(), 401)
        .await;
    // idle: not seen for longer than the idle lifetime (default 1 h)
    let idle = env.mint_at(&p, now - 7200, 86_400).await;
    let refusal = env.refusal(&rejected("idle")).await;
    refusal.assert(api(idle).send().await.unwrap(), 401).await;

    // optional routes forward such requests anonymously
    let (status, app) = echo(c.get(env.url("/optional/x")).header("cookie", tampered)).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-user"), None);

    // revoked by user: effective on the very next request
    let other = env.mint(&principal("erin@example.com", &[])).await;
    assert_eq!(api(good.clone()).send().await.unwrap().status(), 200);
    let n = env
        .shared
        .sessions
        .revoke(&SessionSelector::User("user-dave".into()))
        .await
        .unwrap();
    assert_eq!(n, 3, "good, expired and idle sessions of dave");
    let refusal = env.refusal(&rejected("unknown")).await;
    refusal.assert(api(good).send().await.unwrap(), 401).await;
    assert_eq!(api(other.clone()).send().await.unwrap().status(), 200);
    // by tenant and connection
    env.shared
        .sessions
        .revoke(&SessionSelector::Connection("acme-saml".into()))
        .await
        .unwrap();
    assert_eq!(api(other).send().await.unwrap().status(), 401);

    let m = env.metrics().await;
    assert!(
        m.contains("portcullis_session_rejected_total{reason=\"undecryptable\"}"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_session_rejected_total{reason=\"expired\"}"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_session_rejected_total{reason=\"idle\"}"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_session_rejected_total{reason=\"unknown\"}"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_sessions_revoked_total{scope=\"user\"} 3"),
        "{m}"
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_refuses_open_redirects() {
    let env = TestEnv::start().await;
    let cookie = env.mint(&principal("frank@example.com", &[])).await;
    let c = client();
    // GET shows the confirmation page; the POST with its token logs out.
    let r = logout(&env, &cookie, "https://evil.example/x").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let clear = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        clear.starts_with("portcullis_session=;")
            && clear.contains("Max-Age=0")
            && clear.contains("HttpOnly"),
        "{clear}"
    );
    let r = c
        .get(env.url("/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(env.url("/.portcullis/logout?return_to=%2F%2Fevil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    let r = c
        .get(env.url("/.portcullis/logout?return_to=%2Fdone"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/done");
}

#[tokio::test]
async fn old_key_still_opens_cookies_after_rotation() {
    let env = TestEnv::start().await;
    let old_cookie = env.mint(&principal("gina@example.com", &[])).await;
    // rotate: new key first, old key kept for opening
    let rotated = env.config_text.replace(
        &format!("keys = [\"{KEY_A}\"]"),
        &format!("keys = [\"{KEY_B}\", \"{KEY_A}\"]"),
    );
    assert_ne!(rotated, env.config_text);
    let cfg = portcullis::config::from_str(&rotated, "rotated.toml", &|_| None).unwrap();
    env.shared.swap(cfg).await.unwrap();
    let r = client()
        .get(env.url("/x"))
        .header("cookie", &old_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_cookie = env.mint(&principal("gina@example.com", &[])).await;
    // drop the old key: old cookies stop opening, new ones still work
    let only_new = env.config_text.replace(
        &format!("keys = [\"{KEY_A}\"]"),
        &format!("keys = [\"{KEY_B}\"]"),
    );
    env.shared
        .swap(portcullis::config::from_str(&only_new, "new.toml", &|_| None).unwrap())
        .await
        .unwrap();
    assert_eq!(
        client()
            .get(env.url("/x"))
            .header("cookie", &old_cookie)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client()
            .get(env.url("/x"))
            .header("cookie", &new_cookie)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn upstream_down_gives_502_with_request_id() {
    // a reserved port that refuses connections
    let dead = refusing();
    let env = TestEnv::with(Options {
        upstream: Some(dead.addr),
        ..Default::default()
    })
    .await;
    let r = client()
        .get(env.url("/public/x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let html = r.text().await.unwrap();
    assert!(html.contains(&id), "{html}");
    assert!(html.contains("The application is unavailable"));
    let r = client()
        .get(env.url("/public/x"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");
    let m = env
        .metrics_with("portcullis_requests_total{class=\"5xx\",policy=\"public\"} 2")
        .await;
    assert!(
        m.contains("portcullis_upstream_errors_total{kind=\"connect\"}"),
        "{m}"
    );
}

/// The answer carries one `X-Request-Id`, the one the app was sent, never
/// the app's own (in any spelling, however many): written by Portcullis
/// after the app's headers (an appended line, pingora-http 2), so its
/// copies must go first. Two requests on one kept-alive connection, each
/// with its own id.
#[tokio::test]
async fn the_answer_carries_the_request_id_the_app_was_sent_and_only_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = app.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (mut s, _) = app.accept().await.unwrap();
        let mut buf = Vec::new();
        for _ in 0..2 {
            // One request head at a time (GETs, no bodies).
            let head = loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break buf.drain(..end + 4).collect::<Vec<u8>>();
                }
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the proxy closed the upstream connection");
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8(head).unwrap();
            let sent: Vec<&str> = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
                .map(|(_, v)| v.trim())
                .collect();
            assert_eq!(sent.len(), 1, "{head}");
            let body = sent[0];
            let answer = format!(
                "HTTP/1.1 200 OK\r\nX-Request-Id: app-1\r\nx-request-id: app-2\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    let env = TestEnv::with(Options {
        upstream: Some(addr),
        ..Default::default()
    })
    .await;
    let c = client();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = c.get(env.url("/public/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let answered: Vec<String> = r
            .headers()
            .get_all("x-request-id")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let sent_to_app = r.text().await.unwrap();
        assert_eq!(answered, [sent_to_app], "one id, the app's request's");
        ids.push(answered[0].clone());
    }
    assert_ne!(ids[0], ids[1], "each request its own id");
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the app served two requests on one connection")
        .unwrap();
}

#[tokio::test]
async fn large_uploads_stream_through() {
    let env = TestEnv::start().await;
    let cookie = env.mint(&principal("hal@example.com", &[])).await;
    let size = 32 * 1024 * 1024;
    // a streamed (chunked) body, produced lazily
    let chunks = (0..size / 65536).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 65536]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (status, app) = echo(
        client()
            .post(env.url("/upload"))
            .header("cookie", &cookie)
            .body(body),
    )
    .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["body_bytes"], size as u64);
    assert_eq!(app["method"], "POST");
}

#[tokio::test]
#[allow(clippy::result_large_err)] // tungstenite's handshake callback signature
async fn websocket_upgrades_pass_through() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    // a real WebSocket echo server as the upstream; it also reports the
    // identity header it saw in the handshake
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut who = String::new();
                let cb = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp| {
                    who = req
                        .headers()
                        .get("x-forwarded-email")
                        .map(|v| v.to_str().unwrap_or("").to_owned())
                        .unwrap_or_default();
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await else {
                    return;
                };
                let _ = ws.send(Message::text(format!("hello {who}"))).await;
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        let _ = ws.send(m).await;
                    }
                }
            });
        }
    });
    let env = TestEnv::with(Options {
        upstream: Some(upstream),
        ..Default::default()
    })
    .await;
    let cookie = env.mint(&principal("ivy@example.com", &[])).await;
    let mut req = format!("ws://{}/socket", env.proxy)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("handshake in time")
    .expect("handshake through the proxy");
    assert_eq!(resp.status(), 101);
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(hello.to_text().unwrap(), "hello ivy@example.com");
    // Many short tunnels: a fast upstream's 101 racing the upgrade request's
    // own end-of-body used to tear tunnels down (pingora#946, patched in
    // vendor/pingora-proxy). Each must carry traffic both ways.
    for round in 0..40 {
        let mut req = format!("ws://{}/socket", env.proxy)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        let (mut short, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let hello = tokio::time::timeout(Duration::from_secs(5), short.next())
            .await
            .unwrap();
        assert!(matches!(hello, Some(Ok(_))), "round {round}: {hello:?}");
        short.send(Message::text("ping")).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), short.next())
            .await
            .unwrap();
        assert_eq!(
            back.and_then(|m| m.ok())
                .map(|m| m.to_text().unwrap_or("").to_owned())
                .as_deref(),
            Some("ping"),
            "round {round}"
        );
    }
    for i in 0..20 {
        ws.send(Message::text(format!("msg {i}"))).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.to_text().unwrap(), format!("msg {i}"));
    }
    // without a session the upgrade is refused before reaching the app
    let req = format!("ws://{}/socket", env.proxy)
        .into_client_request()
        .unwrap();
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn internal_endpoints_reject_hostile_input() {
    let env = TestEnv::start().await;
    let c = client();
    // oversized form post to an internal endpoint
    let r = c
        .post(env.url("/.portcullis/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // malformed form
    let r = c
        .post(env.url("/.portcullis/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=%ZZ&&&=")
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error() || r.status() == 200,
        "{}",
        r.status()
    );
    // dot segments out of the internal prefix, sent as the bytes they are
    // (a client library would resolve them first): no reading of them is
    // served by the app to an anonymous caller, nor is the internal
    // namespace left: the internal router's 404, counted as such
    for target in [
        "/.portcullis/../../etc/passwd",
        "/.portcullis/..%2f..%2fetc/passwd",
        "/.portcullis/%2e%2e/%2e%2e/etc/passwd",
        "/.portcullis/..;/..;/etc/passwd",
    ] {
        let refusal = env
            .refusal("portcullis_requests_total{class=\"4xx\",policy=\"internal\"}")
            .await
            .named(target);
        let resp = raw_request(
            env.proxy,
            &format!(
                "GET {target} HTTP/1.1\r\nhost: app.example.com\r\naccept: application/json\r\nconnection: close\r\n\r\n"
            ),
        )
        .await;
        refusal.assert_raw(&resp, 404).await;
    }
    let r = c.get(env.url("/.portcullis/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // XSS attempt in the prefilled email is escaped
    let r = c
        .get(env.url("/.portcullis/login?email=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"))
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    // a huge cookie header is refused or anonymous, never a 500
    let r = c
        .get(env.url("/x"))
        .header(
            "cookie",
            format!("portcullis_session={}", "A".repeat(30_000)),
        )
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 401 || r.status() == 431 || r.status() == 400,
        "{}",
        r.status()
    );
}

/// The value of an unlabelled metric, when present.
fn gauge(m: &str, name: &str) -> Option<i64> {
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Expired sessions leave the cache of a process nobody uses any more:
/// the cache drops entries only while it is used, so the session event
/// listener runs its housekeeping every 5 s. Without it the gauge (and
/// the memory) would stay at 3 for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_leave_the_cache_of_an_idle_process() {
    let env = TestEnv::with(Options {
        session_extra: "cache_ttl_seconds = 8".into(),
        ..Default::default()
    })
    .await;
    for who in ["a@example.com", "b@example.com", "c@example.com"] {
        let cookie = env.mint(&principal(who, &[])).await;
        let r = client()
            .get(env.url("/x"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // within a housekeeping interval the gauge counts them (before they
    // expire), then, with no request in between, they are gone
    let mut seen = Vec::new();
    for _ in 0..100 {
        let n = gauge(&env.metrics().await, "portcullis_session_cache_entries");
        if seen.last() != Some(&n) {
            seen.push(n);
        }
        if seen.contains(&Some(3)) && n == Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cache entries over 20 s: {seen:?}");
}

#[tokio::test]
async fn admin_endpoints() {
    let env = TestEnv::start().await;
    let c = client();
    for (path, want) in [("/healthz", 200), ("/readyz", 200), ("/nope", 404)] {
        let r = c
            .get(format!("http://{}{path}", env.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{path}");
    }
    let cookie = env.mint(&principal("jo@example.com", &[])).await;
    for _ in 0..3 {
        c.get(env.url("/x"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
    }
    let m = env
        .metrics_with("portcullis_requests_total{class=\"2xx\",policy=\"required\"} 3")
        .await;
    assert!(m.contains("portcullis_sessions_created_total 1"), "{m}");
    assert!(
        m.contains("portcullis_session_cache_requests_total{result=\"hit\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_request_duration_seconds_bucket"),
        "{m}"
    );
    // the admin listener is not the proxy: metrics are not on the public port
    let r = c
        .get(env.url("/metrics"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
