//! The exchange of a request without a body, as the app and the client see
//! it. Such a request goes through pingora's direct path (`PORTCULLIS PATCH
//! (pingora-proxy 4)` in `vendor/pingora-proxy/src/proxy_h1.rs`: no task
//! pipes, one loop reading the answer and writing it on), which must keep
//! what the joined loops did: a client that hangs up while the app thinks
//! is let go upstream too; an answer streams as the app sends it; an answer
//! cut short, or none at all, fails the request and is never reused;
//! answers without a body (`HEAD`, `204`, `304`) end at their head and keep
//! both connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::support::env::*;
use crate::support::raw::{next_head, target, upstream};

/// What the scripted upstream saw.
#[derive(Default)]
struct Seen {
    /// Connections accepted.
    conns: AtomicUsize,
    /// `/public/hold` arrived.
    held: AtomicBool,
    /// The connection `/public/hold` came on was closed by the proxy.
    hold_let_go: AtomicBool,
    /// Lets `/public/stream` send the rest of its answer.
    release: Notify,
}

/// A raw HTTP/1.1 upstream acting on each request's path (see the match).
async fn scripted_upstream() -> (SocketAddr, Arc<Seen>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    let (addr, task) = upstream(move |sock| {
        let index = state.conns.fetch_add(1, Ordering::SeqCst);
        serve(sock, index, state.clone())
    })
    .await;
    (addr, seen, task)
}

async fn serve(mut sock: TcpStream, index: usize, seen: Arc<Seen>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64];
    for _ in 0..100 {
        let Some(head) = next_head(&mut sock, &mut buf).await else {
            return;
        };
        let answer: &[u8] = match target(&head) {
            "/public/hold" => {
                // Think for up to 10 s; note whether the proxy lets go first.
                seen.held.store(true, Ordering::SeqCst);
                let read = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk));
                if let Ok(Ok(0) | Err(_)) = read.await {
                    seen.hold_let_go.store(true, Ordering::SeqCst);
                }
                return;
            }
            "/public/stream" => {
                let first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n";
                if sock.write_all(first).await.is_err() {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), seen.release.notified()).await;
                b"6\r\nsecond\r\n0\r\n\r\n"
            }
            "/public/short" => {
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                    .await;
                return;
            }
            "/public/short-chunked" => {
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                    )
                    .await;
                return;
            }
            "/public/silent" => return,
            "/public/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            "/public/204" => b"HTTP/1.1 204 No Content\r\n\r\n",
            "/public/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
            _ => {
                let body = index.to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if sock.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if sock.write_all(answer).await.is_err() {
            return;
        }
    }
}

async fn env_for(addr: SocketAddr) -> TestEnv {
    TestEnv::with(Options {
        upstream: Some(addr),
        ..Options::default()
    })
    .await
}

/// A client connection to the proxy, within 5 s.
async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap()
}

/// Reads from `s` until `pending` holds a head and `body` bytes after it,
/// or the connection closes, within 5 s; the head.
async fn read_head(s: &mut TcpStream, pending: &mut Vec<u8>) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end + 4]).into_owned();
            pending.drain(..end + 4);
            return head;
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("a head within 5 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before a head: {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// Reads `s` to its end (at most 5 s); everything read.
async fn read_to_close(s: &mut TcpStream, mut pending: Vec<u8>) -> Vec<u8> {
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        }
    });
    read.await
        .expect("the proxy closed the connection within 5 s");
    pending
}

#[tokio::test]
async fn a_client_that_hangs_up_while_the_app_thinks_is_let_go_upstream_too() {
    let (addr, seen, _task) = scripted_upstream().await;
    let env = env_for(addr).await;
    let mut s = connect(env.proxy).await;
    s.write_all(b"GET /public/hold HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let held = seen.clone();
    assert!(
        eventually(Duration::from_secs(5), move || held
            .held
            .load(Ordering::SeqCst))
        .await,
        "the request reached the app"
    );
    drop(s);
    // The client connection is watched while the answer is awaited: its
    // close fails the request at once and the upstream connection (with an
    // answer still to come on it) is closed, not left to the app's timing.
    let let_go = seen.clone();
    assert!(
        eventually(Duration::from_secs(3), move || let_go
            .hold_let_go
            .load(Ordering::SeqCst))
        .await,
        "the proxy held the upstream connection after its client left"
    );
}

#[tokio::test]
async fn an_answer_streams_as_the_app_sends_it() {
    let (addr, seen, _task) = scripted_upstream().await;
    let env = env_for(addr).await;
    let mut s = connect(env.proxy).await;
    s.write_all(b"GET /public/stream HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let head = read_head(&mut s, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The first chunk arrives while the app still holds the rest.
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&pending).contains("first") {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut chunk))
            .await
            .expect("the first chunk arrived before the answer's end")
            .unwrap();
        assert!(n > 0, "closed mid-answer");
        pending.extend_from_slice(&chunk[..n]);
    }
    assert!(!String::from_utf8_lossy(&pending).contains("second"));
    seen.release.notify_one();
    while !pending.ends_with(b"0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut chunk))
            .await
            .expect("the rest arrived")
            .unwrap();
        assert!(n > 0, "closed mid-answer");
        pending.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&pending).contains("second"));
    // The connection carries the next request; the upstream one was kept.
    s.write_all(b"GET /public/next HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    pending.clear();
    let head = read_head(&mut s, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        seen.conns.load(Ordering::SeqCst),
        1,
        "the upstream connection was reused"
    );
}

#[tokio::test]
async fn an_answer_cut_short_fails_the_request_and_is_never_reused() {
    let (addr, seen, _task) = scripted_upstream().await;
    let env = env_for(addr).await;
    let mut s = connect(env.proxy).await;
    s.write_all(b"GET /public/short HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let head = read_head(&mut s, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 100"),
        "{head}"
    );
    // The client gets what the app sent, then the connection ends: it can
    // tell the answer is incomplete. Nothing is added to the body (a
    // Portcullis error page written after the app's head was read as the
    // body's rest until this test).
    let body = read_to_close(&mut s, pending).await;
    assert_eq!(body, b"0123456789");
    // A chunked answer cut short is never given its last chunk.
    let mut s = connect(env.proxy).await;
    s.write_all(b"GET /public/short-chunked HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let head = read_head(&mut s, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = read_to_close(&mut s, pending).await;
    assert_eq!(
        body, b"5\r\nfirst\r\n",
        "the app's chunk and nothing after it"
    );
    // The next request is answered on a fresh upstream connection.
    let resp = client().get(env.url("/public/n")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "2");
    assert_eq!(seen.conns.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_app_that_closes_without_answering_gets_a_502() {
    let (addr, seen, _task) = scripted_upstream().await;
    let env = env_for(addr).await;
    let resp = client()
        .get(env.url("/public/silent"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let before = seen.conns.load(Ordering::SeqCst);
    let resp = client().get(env.url("/public/n")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        before.to_string(),
        "a fresh upstream connection"
    );
}

#[tokio::test]
async fn answers_without_a_body_end_at_their_head_and_keep_both_connections() {
    let (addr, seen, _task) = scripted_upstream().await;
    let env = env_for(addr).await;
    let mut s = connect(env.proxy).await;
    let mut pending = Vec::new();
    for (method, path, status) in [
        ("HEAD", "/public/head", "200"),
        ("GET", "/public/204", "204"),
        ("GET", "/public/304", "304"),
        ("HEAD", "/public/head", "200"),
    ] {
        s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let head = read_head(&mut s, &mut pending).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{method} {path}: {head}"
        );
        if path == "/public/head" {
            assert!(
                head.to_ascii_lowercase().contains("content-length: 1000"),
                "{head}"
            );
        }
        assert!(pending.is_empty(), "no body after {method} {path}'s head");
    }
    s.write_all(b"GET /public/n HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut chunk = [0u8; 64];
    while pending.is_empty() {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut chunk))
            .await
            .expect("a body")
            .unwrap();
        assert!(n > 0);
        pending.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(
        pending, b"0",
        "every answer came on the first upstream connection"
    );
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1);
}
