//! One kept-alive client connection carrying requests of every shape the
//! header reader meets: a header in one piece, one split across writes
//! after its first bytes, one larger than the per-thread buffer that takes
//! each request's first read, and a body sent with its header. Each must
//! reach the app whole, on the same connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::env::*;

/// Reads one response (status line, headers, `content-length` body) from
/// a kept-alive connection; returns its status, body and head (status line
/// and header lines, each ending in CRLF).
async fn read_response(
    s: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> (u16, serde_json::Value, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end + 2]).into_owned();
            let status: u16 = head[9..12].parse().expect("status code");
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("a content-length response");
            if pending.len() >= end + 4 + len {
                let body: Vec<u8> = pending.drain(..end + 4 + len).skip(end + 4).collect();
                let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                return (status, json, head);
            }
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("response timed out")
            .expect("read failed");
        assert!(n > 0, "the connection closed mid-response");
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// A client connection to the proxy, within 5 s.
async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_kept_alive_connection_carries_headers_of_every_shape() {
    let env = TestEnv::start().await;
    let mut s = connect(env.proxy).await;
    let mut pending = Vec::new();
    let accept = "Accept: application/json\r\n";

    // 1. In one piece.
    s.write_all(format!("GET /public/one HTTP/1.1\r\nHost: a\r\n{accept}\r\n").as_bytes())
        .await
        .unwrap();
    let (status, echo, _) = read_response(&mut s, &mut pending).await;
    assert_eq!((status, echo["path"].as_str()), (200, Some("/public/one")));

    // 2. Split after the first bytes: the first read takes only part of it.
    let two = format!("GET /public/two HTTP/1.1\r\nHost: a\r\nX-Part: yes\r\n{accept}\r\n");
    let (a, b) = two.as_bytes().split_at(7);
    s.write_all(a).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b).await.unwrap();
    let (status, echo, _) = read_response(&mut s, &mut pending).await;
    assert_eq!((status, echo["path"].as_str()), (200, Some("/public/two")));
    assert_eq!(seen(&echo, "x-part"), Some("yes"));

    // 3. Larger than the first read's buffer (4 KiB): read on until whole.
    let pad = "p".repeat(12_000);
    s.write_all(
        format!("GET /public/three HTTP/1.1\r\nHost: a\r\nX-Pad: {pad}\r\n{accept}\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let (status, echo, _) = read_response(&mut s, &mut pending).await;
    assert_eq!(
        (status, echo["path"].as_str()),
        (200, Some("/public/three"))
    );
    assert_eq!(
        seen(&echo, "x-pad").map(str::len),
        Some(12_000),
        "the large header arrived cut"
    );

    // 4. A body sent together with its header.
    s.write_all(
        format!("POST /public/four HTTP/1.1\r\nHost: a\r\n{accept}Content-Length: 5\r\n\r\nhello")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (status, echo, _) = read_response(&mut s, &mut pending).await;
    assert_eq!((status, echo["path"].as_str()), (200, Some("/public/four")));
    assert_eq!(echo["body_bytes"], 5);

    // 5. And the connection is still good for a plain request.
    s.write_all(format!("GET /public/five HTTP/1.1\r\nHost: a\r\n{accept}\r\n").as_bytes())
        .await
        .unwrap();
    let (status, echo, _) = read_response(&mut s, &mut pending).await;
    assert_eq!((status, echo["path"].as_str()), (200, Some("/public/five")));
    assert!(pending.is_empty(), "bytes beyond the last response");
}

/// pingora writes its own `Date` and `Connection` on every response
/// (pingora-core patch 9 inserts them under names prepared once): one of
/// each, spelled as before, `Connection` saying what the proxy will do
/// with the connection, whatever the app said.
#[tokio::test]
async fn every_answer_carries_one_date_and_the_connections_fate() {
    let env = TestEnv::start().await;
    let mut s = connect(env.proxy).await;
    let lines = |head: &str, name: &str| -> Vec<String> {
        head.split("\r\n")
            .filter(|l| {
                l.split_once(':')
                    .is_some_and(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(str::to_owned)
            .collect()
    };
    let accept = "Accept: application/json\r\n";

    let mut pending = Vec::new();
    s.write_all(format!("GET /public/a HTTP/1.1\r\nHost: a\r\n{accept}\r\n").as_bytes())
        .await
        .unwrap();
    let (status, _, head) = read_response(&mut s, &mut pending).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        lines(&head, "connection"),
        ["Connection: keep-alive"],
        "{head}"
    );
    let date = lines(&head, "date");
    assert_eq!(date.len(), 1, "{head}");
    assert!(
        date[0].starts_with("Date: ") && date[0].ends_with(" GMT"),
        "{head}"
    );

    s.write_all(
        format!("GET /public/b HTTP/1.1\r\nHost: a\r\n{accept}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (status, _, head) = read_response(&mut s, &mut pending).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(lines(&head, "connection"), ["Connection: close"], "{head}");
    assert_eq!(lines(&head, "date").len(), 1, "{head}");
    // and the proxy does close it
    let mut more = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut more))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the connection stayed open after `Connection: close`");
}

/// A connection remembers the session cookie it last presented, opened
/// (`session::CookieMemo`), and answers the same bytes without opening
/// them again. What opening and the session lookup decide must hold on
/// that connection all the same: another user's cookie is that user, a
/// tampered or garbled one is refused, the first of two cookies of ours
/// that opens counts, and a revocation takes effect on the very next
/// request.
#[tokio::test]
async fn a_connection_remembers_a_cookie_but_not_what_it_decides() {
    let env = TestEnv::start().await;
    let dave = env.mint(&principal("dave@example.com", &[])).await;
    let erin = env.mint(&principal("erin@example.com", &[])).await;
    let (name, value) = dave.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
    let garbled_then_dave = format!("{name}=garbage; {dave}");

    let mut s = connect(env.proxy).await;
    let mut pending = Vec::new();
    let mut ask = async |cookie: &str| {
        let req = format!(
            "GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nCookie: {cookie}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let (status, app, _) = read_response(&mut s, &mut pending).await;
        (status, seen(&app, "x-forwarded-user").map(str::to_owned))
    };
    let user = |u: &str| (200, Some(u.to_owned()));
    for (i, (cookie, want)) in [
        (&dave, user("user-dave")),
        (&dave, user("user-dave")),
        (&tampered, (401, None)),
        (&dave, user("user-dave")),
        (&erin, user("user-erin")),
        (&dave, user("user-dave")),
        (&garbled_then_dave, user("user-dave")),
        (&erin, user("user-erin")),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(ask(cookie).await, want, "request {i}");
    }
    assert_eq!(ask(&dave).await, user("user-dave"));
    env.shared
        .sessions
        .revoke(&portcullis::store::SessionSelector::User(
            "user-dave".into(),
        ))
        .await
        .unwrap();
    assert_eq!(ask(&dave).await, (401, None), "revoked, same connection");
    assert_eq!(ask(&erin).await, user("user-erin"));
    assert_eq!(ask(&dave).await, (401, None));
}

/// One connection can carry many users' requests (a balancer's pooled
/// connection does): each request reaches the app with its own identity,
/// host and forwarding lines, none with another's, though the proxy
/// keeps a connection's rendered lines from one request to the next
/// (`proxy::forward::Rendered`).
#[tokio::test]
async fn one_connection_carries_each_requests_own_identity_and_host() {
    let env = TestEnv::start().await;
    let alice = env.mint(&principal("alice@example.com", &["eng"])).await;
    let bob = env
        .mint(&principal("bob@example.com", &["ops", "sre"]))
        .await;
    let mut s = connect(env.proxy).await;
    let mut pending = Vec::new();
    // Who sends each request (the cookie, and what the app must see), and
    // to which host.
    let as_alice = Some((&alice, ("user-alice", "alice@example.com", "eng")));
    let as_bob = Some((&bob, ("user-bob", "bob@example.com", "ops,sre")));
    let steps = [
        (as_alice, "a.example"),
        (as_alice, "a.example"),
        (as_bob, "a.example"),
        (None, "b.example:8443"),
        (as_alice, "b.example:8443"),
        (as_bob, "a.example"),
        (None, "a.example"),
    ];
    for (i, (sender, host)) in steps.iter().enumerate() {
        let cookie = sender
            .map(|(c, _)| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        let who = sender.map(|(_, who)| who);
        s.write_all(
            format!(
                "GET /optional/{i} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\
                 X-Forwarded-User: evil\r\n{cookie}\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let (status, echo, _) = read_response(&mut s, &mut pending).await;
        assert_eq!(status, 200, "step {i}: {echo}");
        let want = match who {
            Some((user, email, groups)) => (Some(user), Some(email), Some(groups)),
            None => (None, None, None),
        };
        let got = (
            seen(&echo, "x-forwarded-user"),
            seen(&echo, "x-forwarded-email"),
            seen(&echo, "x-forwarded-groups"),
        );
        assert_eq!(got, want, "step {i}: {echo}");
        assert_eq!(
            echo["headers"]["x-forwarded-user"]
                .as_array()
                .map_or(0, Vec::len),
            usize::from(who.is_some()),
            "step {i}"
        );
        assert_eq!(
            seen(&echo, "x-portcullis-assertion").is_some(),
            who.is_some(),
            "step {i}"
        );
        assert_eq!(seen(&echo, "x-forwarded-host"), Some(*host), "step {i}");
        assert_eq!(
            seen(&echo, "forwarded"),
            Some(format!("for=127.0.0.1;proto=http;host=\"{host}\"").as_str()),
            "step {i}"
        );
        assert_eq!(
            seen(&echo, "x-forwarded-for"),
            Some("127.0.0.1"),
            "step {i}"
        );
    }
    assert!(pending.is_empty(), "bytes beyond the last response");
}
