//! The upstream keep-alive pool, seen from a raw upstream that numbers its
//! connections: a kept-alive connection is reused, and one the upstream
//! closed (half-close or reset) or that sat idle past `idle_timeout_seconds`
//! is never handed to a request: the next request gets a fresh connection
//! and a 200, never a 502. Written against pingora as published and kept
//! green by the pool patch in `vendor/pingora-core` (`PORTCULLIS PATCH`:
//! no idle-watch task per pooled connection, the checks happen at reuse).
//! Response bodies of every framing arrive whole on fresh and reused
//! connections (the body-buffer patch sizes the first buffer to the bytes
//! read with the header).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::env::*;
use crate::support::raw::{next_head, target, upstream};

/// What the upstream does with a connection after its first response.
#[derive(Clone, Copy, PartialEq)]
enum After {
    /// Keep serving requests on it.
    KeepAlive,
    /// Send FIN (shutdown of its write side) and keep reading: half-closed.
    HalfClose,
    /// Abort it with RST (linger 0).
    Reset,
}

/// Per accepted connection: whether the upstream has seen it end (EOF or
/// error from the proxy's side).
type Conns = Arc<Mutex<Vec<Arc<AtomicBool>>>>;

/// A raw HTTP/1.1 upstream answering `200` with the index of the connection
/// the request came on, then doing `after` with the connection.
async fn numbered_upstream(after: After) -> (SocketAddr, Conns, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns: Conns = Arc::default();
    let seen = conns.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let ended = Arc::new(AtomicBool::new(false));
            let index = {
                let mut c = seen.lock().unwrap();
                c.push(ended.clone());
                c.len() - 1
            };
            tokio::spawn(serve(sock, index, after, ended));
        }
    });
    (addr, conns, task)
}

async fn serve(mut sock: TcpStream, index: usize, after: After, ended: Arc<AtomicBool>) {
    let mut buf = Vec::new();
    let mut answered = 0;
    loop {
        // One request head (GET, no body) per answer.
        if next_head(&mut sock, &mut buf).await.is_none() {
            ended.store(true, Ordering::SeqCst);
            return;
        }
        let body = index.to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
            body.len()
        );
        if sock.write_all(resp.as_bytes()).await.is_err() {
            ended.store(true, Ordering::SeqCst);
            return;
        }
        answered += 1;
        match after {
            After::KeepAlive => {}
            After::HalfClose => {
                let _ = sock.shutdown().await;
                // Keep the read side open until the proxy lets go.
                let mut rest = [0u8; 64];
                while let Ok(n) = sock.read(&mut rest).await {
                    if n == 0 {
                        break;
                    }
                }
                ended.store(true, Ordering::SeqCst);
                return;
            }
            After::Reset => {
                // Let the proxy pool it first, then abort.
                tokio::time::sleep(Duration::from_millis(50)).await;
                sock.set_zero_linger().unwrap();
                drop(sock);
                ended.store(true, Ordering::SeqCst);
                return;
            }
        }
        assert!(answered < 1000, "bounded");
    }
}

/// GET a public path through the proxy: (status, connection index served on).
async fn get(env: &TestEnv) -> (u16, String) {
    let resp = client().get(env.url("/public/pool")).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn env_for(addr: SocketAddr, upstream_extra: &str) -> TestEnv {
    TestEnv::with(Options {
        upstream: Some(addr),
        upstream_extra: upstream_extra.to_owned(),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_kept_alive_upstream_connection_is_reused() {
    let (addr, conns, _task) = numbered_upstream(After::KeepAlive).await;
    let env = env_for(addr, "").await;
    for _ in 0..5 {
        assert_eq!(get(&env).await, (200, "0".to_owned()));
        // pingora returns the upstream connection to the pool after the
        // last byte of the answer is written downstream, so a client quick
        // enough (or a proxy task slow enough, under a loaded test run)
        // can send its next request before the connection is back (seen
        // once in a full run: the next request went on connection 1).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        conns.lock().unwrap().len(),
        1,
        "one upstream connection for all"
    );
}

#[tokio::test]
async fn a_half_closed_idle_upstream_connection_is_not_reused() {
    let (addr, conns, _task) = numbered_upstream(After::HalfClose).await;
    let env = env_for(addr, "").await;
    for i in 0..4 {
        // Time for the FIN to arrive before the next request.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(get(&env).await, (200, i.to_string()), "request {i}");
    }
    // The proxy closes its side of every half-closed connection (at once or
    // when it next looks at the pool): none is held open for good.
    let c = conns.clone();
    assert!(
        eventually(Duration::from_secs(3), move || {
            let c = c.lock().unwrap();
            c[..c.len() - 1].iter().all(|e| e.load(Ordering::SeqCst))
        })
        .await,
        "half-closed upstream connections were let go"
    );
}

#[tokio::test]
async fn a_reset_idle_upstream_connection_is_not_reused() {
    let (addr, conns, _task) = numbered_upstream(After::Reset).await;
    let env = env_for(addr, "").await;
    for i in 0..4 {
        // The upstream resets 50 ms after answering.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(get(&env).await, (200, i.to_string()), "request {i}");
    }
    assert_eq!(conns.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn an_upstream_connection_idle_past_its_timeout_is_closed_not_reused() {
    let (addr, conns, _task) = numbered_upstream(After::KeepAlive).await;
    let env = env_for(addr, "idle_timeout_seconds = 1").await;
    assert_eq!(get(&env).await, (200, "0".to_owned()));
    // Well within the timeout: reused.
    assert_eq!(get(&env).await, (200, "0".to_owned()));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(get(&env).await, (200, "1".to_owned()), "a fresh connection");
    let first = conns.lock().unwrap()[0].clone();
    assert!(
        eventually(Duration::from_secs(2), move || first.load(Ordering::SeqCst)).await,
        "the expired connection was closed"
    );
}

/// A raw upstream answering each request by its path, in one of the body
/// framings pingora's response reader sizes its buffer for (the body-buffer
/// patch in `vendor/pingora-core`): a small body in the header's packet, a
/// large one in pieces after it, chunked, and delimited by close.
async fn framing_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    upstream(|mut sock| async move {
        let mut buf = Vec::new();
        loop {
            let Some(head) = next_head(&mut sock, &mut buf).await else {
                return;
            };
            let pause = || tokio::time::sleep(Duration::from_millis(20));
            match target(&head) {
                "/public/small" => {
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                        .await;
                }
                "/public/large" => {
                    let body = large_body();
                    let _ = sock
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .await;
                    for piece in body.chunks(50_000) {
                        pause().await;
                        let _ = sock.write_all(piece).await;
                    }
                }
                "/public/chunked" => {
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                        )
                        .await;
                    pause().await;
                    let _ = sock.write_all(b"6\r\n world\r\n0\r\n\r\n").await;
                }
                _ => {
                    // close-delimited
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil")
                        .await;
                    pause().await;
                    let _ = sock.write_all(b" close").await;
                    return;
                }
            }
        }
    })
    .await
}

fn large_body() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn response_bodies_of_every_framing_arrive_whole() {
    let (addr, _task) = framing_upstream().await;
    let env = env_for(addr, "").await;
    let body = |path: &'static str| {
        let url = env.url(path);
        async move {
            let resp = client().get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.bytes().await.unwrap().to_vec()
        }
    };
    // Twice each: the second time on a reused upstream connection.
    for _ in 0..2 {
        assert_eq!(body("/public/small").await, b"ok\n");
        assert_eq!(body("/public/large").await, large_body());
        assert_eq!(body("/public/chunked").await, b"hello world");
        assert_eq!(body("/public/close").await, b"until close");
    }
}
