//! Slow and greedy clients against a real server, over raw sockets: a
//! header trickled byte by byte, bodies that stall, more connections than
//! the cap, and per-client rate limits (with the limiter's clock moved by
//! hand, never slept through).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portcullis::proxy::ratelimit::ManualClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::env::*;
use crate::support::scim::{ScimClient, TENANTS};

/// Everything the server sends until it closes (bounded).
async fn read_until_closed(s: &mut tokio::net::tcp::OwnedReadHalf, within: Duration) -> String {
    read_with_close(s, within).await.0
}

/// What the server sent, and whether it closed the connection in time.
async fn read_with_close(
    s: &mut tokio::net::tcp::OwnedReadHalf,
    within: Duration,
) -> (String, bool) {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        // A reset after the response (the client was still writing) ends
        // the read like a close does.
        while let Ok(n) = s.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect failed")
}

#[tokio::test]
async fn a_header_sent_one_byte_per_second_is_cut_off_at_the_deadline() {
    let env = TestEnv::with(Options {
        extra: "[limits]\nheader_timeout_ms = 3000\nkeepalive_timeout_seconds = 1\n".into(),
        ..Default::default()
    })
    .await;
    let (mut rx, mut tx) = connect(env.proxy).await.into_split();
    // 60 bytes at one per second: a minute, if nobody stopped it.
    let header = format!(
        "GET /public/x HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n",
        "y".repeat(25)
    );
    assert!(header.len() >= 60);
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let writer = tokio::spawn(async move {
        for b in header.bytes() {
            if tx.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        done.store(true, Ordering::SeqCst);
    });
    let got = read_until_closed(&mut rx, Duration::from_secs(30)).await;
    assert!(
        !finished.load(Ordering::SeqCst),
        "the whole header got through: {got}"
    );
    assert!(got.starts_with("HTTP/1.1 408"), "{got:?}");
    writer.abort();
    env.metrics_with("portcullis_client_timeouts_total{stage=\"header\"} 1")
        .await;

    // A prompt client on the same server is unaffected, on a kept-alive
    // connection too (the second request is read through the same guard).
    let c = client();
    for _ in 0..2 {
        let (status, _) = echo(c.get(env.url("/public/ok"))).await;
        assert_eq!(status, 200);
    }

    // A new connection that says nothing is closed at the same deadline,
    // without an answer, and counted apart.
    let (mut rx, _tx) = connect(env.proxy).await.into_split();
    let (got, closed) = read_with_close(&mut rx, Duration::from_secs(30)).await;
    assert!(closed && got.is_empty(), "{closed} {got:?}");
    env.metrics_with("portcullis_client_timeouts_total{stage=\"connection_idle\"} 1")
        .await;

    // A kept-alive connection idle after its request is closed quietly
    // after the keep-alive timeout: not a slow client.
    let (mut rx, mut tx) = connect(env.proxy).await.into_split();
    tx.write_all(b"GET /public/ok HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_with_close(&mut rx, Duration::from_secs(30)).await;
    assert!(closed, "a kept-alive idle connection stayed open: {got:?}");
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    // (the status line: a random request id may contain "408")
    assert!(!got.contains("HTTP/1.1 408"), "{got:?}");
    let m = env.metrics().await;
    assert!(
        m.contains("portcullis_client_timeouts_total{stage=\"header\"} 1")
            && m.contains("portcullis_client_timeouts_total{stage=\"connection_idle\"} 1"),
        "{m}"
    );
}

/// A body that stops arriving is answered `408` once the body deadline has
/// passed, on every endpoint whose body Portcullis reads itself, and
/// nothing reaches the app.
#[tokio::test]
async fn a_stalled_body_is_cut_off_and_never_forwarded() {
    let (upstream, _task, app_saw) = start_counting_upstream().await;
    let env = TestEnv::with(Options {
        upstream: Some(upstream),
        extra: format!(
            "{TENANTS}\n[login]\npassword_endpoints = [{{ path = \"/login\" }}]\n\n[limits]\nbody_timeout_ms = 1000\n"
        ),
        ..Default::default()
    })
    .await;
    let token = ScimClient::new(&env, "acme").await.token;
    for (stage, target, extra) in [
        (
            "scim_body",
            "/scim/v2/Users",
            format!("Authorization: Bearer {token}\r\nContent-Type: application/scim+json\r\n"),
        ),
        (
            "login_body",
            "/login",
            "Content-Type: application/x-www-form-urlencoded\r\n".to_owned(),
        ),
        (
            "internal_body",
            "/.portcullis/login",
            "Content-Type: application/x-www-form-urlencoded\r\n".to_owned(),
        ),
    ] {
        let (mut rx, mut tx) = connect(env.proxy).await.into_split();
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: a\r\n{extra}Content-Length: 100\r\n\r\nemail=alice%40acme.com&pass"
        );
        tx.write_all(head.as_bytes()).await.unwrap();
        // ... and nothing more: the client keeps the connection open.
        let got = read_until_closed(&mut rx, Duration::from_secs(20)).await;
        assert!(got.starts_with("HTTP/1.1 408"), "{stage}: {got:?}");
        assert!(
            got.to_ascii_lowercase().contains("connection: close"),
            "{stage}: {got:?}"
        );
        env.metrics_with(&format!(
            "portcullis_client_timeouts_total{{stage=\"{stage}\"}} 1"
        ))
        .await;
        drop(tx);
    }
    assert!(
        app_saw.lock().unwrap().is_empty(),
        "the app saw {:?}",
        app_saw.lock().unwrap()
    );
}

/// An internal-endpoint body beyond `max_internal_body_bytes` is refused
/// with a 400 naming the request, before any handler (or the rate-limited
/// login) reads it; one at the limit is read.
#[tokio::test]
async fn an_internal_body_over_its_limit_is_refused_with_400() {
    let env = TestEnv::with(Options {
        server_extra: "max_internal_body_bytes = 2048".into(),
        ..Default::default()
    })
    .await;
    let post = |len: usize| {
        client()
            .post(env.url("/.portcullis/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "email={}%40example.com",
                "a".repeat(len - "email=%40example.com".len())
            ))
            .send()
    };
    let r = post(2049).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/json");
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "error": "bad_request",
            "message": "request body too large",
            "request_id": id,
        })
    );
    let r = post(2048).await.unwrap();
    assert_ne!(r.status(), 400, "a body at the limit is read");
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_until_one_closes() {
    let env = TestEnv::with(Options {
        extra: "[limits]\nmax_connections = 2\nheader_timeout_ms = 60000\n".into(),
        ..Default::default()
    })
    .await;
    // The readiness probe's connections are gone before counting starts.
    env.metrics_with("portcullis_downstream_connections 0")
        .await;
    let first = connect(env.proxy).await;
    let _second = connect(env.proxy).await;
    env.metrics_with("portcullis_downstream_connections 2")
        .await;

    let (mut rx, _tx) = connect(env.proxy).await.into_split();
    let got = read_until_closed(&mut rx, Duration::from_secs(10)).await;
    assert!(got.starts_with("HTTP/1.1 503"), "{got:?}");
    assert!(
        got.to_ascii_lowercase().contains("retry-after: 1"),
        "{got:?}"
    );
    env.metrics_with("portcullis_downstream_connections_refused_total 1")
        .await;
    env.metrics_with("portcullis_downstream_connections 2")
        .await;

    drop(first);
    env.metrics_with("portcullis_downstream_connections 1")
        .await;
    let reply = raw_request(
        env.proxy,
        "GET /public/ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
}

/// What the limits see as the client: with `trust_forwarded_headers`, the
/// right-most `X-Forwarded-For` entry.
fn from(ip: &str) -> (&'static str, String) {
    ("x-forwarded-for", format!("10.9.9.9, {ip}"))
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_reset_after_the_window() {
    let env = TestEnv::with(Options {
        server_extra: "trust_forwarded_headers = true".into(),
        extra: format!(
            "{TENANTS}\n[limits.rate]\n\
             login_start = {{ max = 2, window_seconds = 60 }}\n\
             login_callback = {{ max = 2, window_seconds = 30 }}\n\
             scim_auth_failure = {{ max = 2, window_seconds = 120 }}\n"
        ),
        ..Default::default()
    })
    .await;
    let clock = Arc::new(ManualClock::default());
    env.shared.rate_limits.set_clock(clock.clone());
    let c = client();
    let status = |r: reqwest::Response| {
        (
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    };

    // Login starts: the SSO start link and the login page's email POST
    // share one limit.
    let start = |ip: &str| {
        let (k, v) = from(ip);
        c.get(env.url("/.portcullis/sso/acme-saml/start"))
            .header(k, v)
            .send()
    };
    let discover = |ip: &str| {
        let (k, v) = from(ip);
        c.post(env.url("/.portcullis/login"))
            .header(k, v)
            .form(&[("email", "alice@acme.com")])
            .send()
    };
    assert_ne!(status(start("198.51.100.1").await.unwrap()).0, 429);
    assert_ne!(status(discover("198.51.100.1").await.unwrap()).0, 429);
    let r = start("198.51.100.1").await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    assert_eq!(
        status(discover("198.51.100.1").await.unwrap()),
        (429, Some("60".into()))
    );
    // Another client is not affected; one that only writes a left-hand
    // X-Forwarded-For entry is not the limited client either.
    assert_ne!(status(start("198.51.100.2").await.unwrap()).0, 429);
    let r = c
        .get(env.url("/.portcullis/sso/acme-saml/start"))
        .header("x-forwarded-for", "198.51.100.1, 198.51.100.3")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 429);
    env.metrics_with("portcullis_rate_limited_total{limit=\"login_start\"} 2")
        .await;
    clock.advance(Duration::from_secs(45));
    assert_eq!(
        status(start("198.51.100.1").await.unwrap()),
        (429, Some("15".into()))
    );
    clock.advance(Duration::from_secs(15));
    assert_ne!(status(start("198.51.100.1").await.unwrap()).0, 429);

    // ACS posts and OIDC callbacks.
    let acs = |ip: &str| {
        let (k, v) = from(ip);
        c.post(env.url("/.portcullis/saml/acme-saml/acs"))
            .header(k, v)
            .form(&[("SAMLResponse", "x")])
            .send()
    };
    let callback = |ip: &str| {
        let (k, v) = from(ip);
        c.get(env.url("/.portcullis/oidc/acme-oidc/callback?code=x&state=y"))
            .header(k, v)
            .send()
    };
    assert_ne!(status(acs("198.51.100.4").await.unwrap()).0, 429);
    assert_ne!(status(callback("198.51.100.4").await.unwrap()).0, 429);
    assert_eq!(
        status(acs("198.51.100.4").await.unwrap()),
        (429, Some("30".into()))
    );
    assert_eq!(status(callback("198.51.100.4").await.unwrap()).0, 429);
    env.metrics_with("portcullis_rate_limited_total{limit=\"login_callback\"} 2")
        .await;
    clock.advance(Duration::from_secs(30));
    assert_ne!(status(acs("198.51.100.4").await.unwrap()).0, 429);

    // SCIM: only failures count, but past the limit even a valid token is
    // refused until the window ends.
    let good = ScimClient::new(&env, "acme").await;
    let bad = good.with_token("scim_bogus.token");
    let scim = |s: &ScimClient, ip: &str| {
        let (k, v) = from(ip);
        c.get(format!("{}/Users", s.base))
            .header("authorization", format!("Bearer {}", s.token))
            .header(k, v)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(status(scim(&good, "198.51.100.5").await.unwrap()).0, 200);
    }
    assert_eq!(status(scim(&bad, "198.51.100.5").await.unwrap()).0, 401);
    assert_eq!(status(scim(&good, "198.51.100.5").await.unwrap()).0, 200);
    assert_eq!(status(scim(&bad, "198.51.100.5").await.unwrap()).0, 401);
    let r = scim(&good, "198.51.100.5").await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "120");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/scim+json")
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "429");
    assert_eq!(status(scim(&good, "198.51.100.6").await.unwrap()).0, 200);
    env.metrics_with("portcullis_rate_limited_total{limit=\"scim_auth_failure\"} 1")
        .await;
    clock.advance(Duration::from_secs(120));
    assert_eq!(status(scim(&good, "198.51.100.5").await.unwrap()).0, 200);
}
