//! `limits.max_active_requests` against a real server and an app whose
//! answers the test releases by hand: requests beyond the bound wait and
//! are shed at the queue timeout; a slot comes back when the app's
//! response header arrives, or when the hold runs out.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::support::env::*;
use crate::support::raw::{next_head, target};

/// An app that answers `/public/hang…` only when the test adds a permit to
/// `gate`, streams `/public/stream…` (the header and a first chunk at once,
/// the end when the test adds a permit), sends `/public/early…` a
/// `103 Early Hints` at once and its answer when the test adds a permit,
/// and answers anything else at once.
/// `seen` lists the paths that reached it, in order.
struct GatedApp {
    addr: SocketAddr,
    gate: Arc<Semaphore>,
    seen: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl GatedApp {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Arc::new(Semaphore::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (g, s) = (gate.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, g.clone(), s.clone()));
            }
        });
        Self {
            addr,
            gate,
            seen,
            _task: task,
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` requests reached the app.
    async fn wait_seen(&self, n: usize) -> Vec<String> {
        for _ in 0..250 {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the app saw {:?}, not {n} requests", self.seen());
    }
}

async fn serve(mut conn: TcpStream, gate: Arc<Semaphore>, seen: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = next_head(&mut conn, &mut buf).await else {
            return;
        };
        let path = target(&head).to_owned();
        seen.lock().unwrap().push(path.clone());
        let ok = if path.starts_with("/public/hang") {
            gate.acquire().await.unwrap().forget();
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
        } else if path.starts_with("/public/early") {
            let hints = conn
                .write_all(b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n")
                .await;
            if hints.is_err() {
                return;
            }
            gate.acquire().await.unwrap().forget();
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
        } else if path.starts_with("/public/stream") {
            let first = conn
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
                .await;
            if first.is_err() {
                return;
            }
            gate.acquire().await.unwrap().forget();
            conn.write_all(b"4\r\nlast\r\n0\r\n\r\n").await
        } else {
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
        };
        if ok.is_err() {
            return;
        }
    }
}

async fn env_with(app: &GatedApp, limits: &str) -> TestEnv {
    TestEnv::with(Options {
        upstream: Some(app.addr),
        extra: format!("[limits]\n{limits}\n"),
        ..Default::default()
    })
    .await
}

/// Sends a GET on a new connection; the task returns the status line and
/// when it arrived.
fn get(proxy: SocketAddr, path: &str) -> tokio::task::JoinHandle<(String, Instant)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    tokio::spawn(async move {
        let reply = raw_request(proxy, &request).await;
        let status = reply.lines().next().unwrap_or_default().to_owned();
        (status, Instant::now())
    })
}

#[tokio::test]
async fn requests_beyond_the_bound_wait_their_turn_and_are_shed_at_the_queue_timeout() {
    let app = GatedApp::start().await;
    let env = env_with(
        &app,
        "max_active_requests = 1\nqueue_timeout_ms = 2000\nactive_request_hold_ms = 60000",
    )
    .await;
    let before = app.seen().len();

    let first = get(env.proxy, "/public/hang-1");
    app.wait_seen(before + 1).await;
    let sent = Instant::now();
    let second = get(env.proxy, "/public/hang-2");
    env.metrics_with("portcullis_requests_queued 1").await;

    // The one slot is taken for the whole queue timeout: 503, and the
    // app never saw the second request.
    let (status, at) = second.await.unwrap();
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(
        at - sent >= Duration::from_millis(1900),
        "shed after {:?}",
        at - sent
    );
    env.metrics_with("portcullis_requests_shed_total 1").await;
    env.metrics_with("portcullis_requests_queued 0").await;
    assert_eq!(app.seen().len(), before + 1, "{:?}", app.seen());

    // A waiting request gets the slot the moment the first one's answer
    // arrives, in arrival order.
    let third = get(env.proxy, "/public/hang-3");
    env.metrics_with("portcullis_requests_queued 1").await;
    assert_eq!(app.seen().len(), before + 1);
    app.gate.add_permits(1);
    assert_eq!(first.await.unwrap().0, "HTTP/1.1 200 OK");
    let seen = app.wait_seen(before + 2).await;
    assert_eq!(seen.last().unwrap(), "/public/hang-3");
    app.gate.add_permits(1);
    assert_eq!(third.await.unwrap().0, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn the_slot_comes_back_when_the_response_header_arrives_not_at_the_end_of_the_body() {
    let app = GatedApp::start().await;
    let env = env_with(
        &app,
        "max_active_requests = 1\nqueue_timeout_ms = 5000\nactive_request_hold_ms = 60000",
    )
    .await;
    let before = app.seen().len();

    // A response whose body goes on (an event stream, a download).
    let mut stream = TcpStream::connect(env.proxy).await.unwrap();
    stream
        .write_all(b"GET /public/stream HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("first") {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the stream's header and first chunk");

    // The body is still open, and another request goes through at once.
    let (status, _) = tokio::time::timeout(Duration::from_secs(3), get(env.proxy, "/public/ok"))
        .await
        .expect("the second request waited for the first one's body")
        .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        app.wait_seen(before + 2).await[before..],
        ["/public/stream", "/public/ok"]
    );

    // And the stream is whole when the app ends it.
    app.gate.add_permits(1);
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("0\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the end of the stream");
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("first") && text.contains("last"), "{text}");
}

#[tokio::test]
async fn a_request_the_app_holds_past_the_hold_stops_counting() {
    let app = GatedApp::start().await;
    let env = env_with(
        &app,
        "max_active_requests = 1\nqueue_timeout_ms = 10000\nactive_request_hold_ms = 1000",
    )
    .await;
    let before = app.seen().len();

    // A long poll takes the one slot.
    let poll = get(env.proxy, "/public/hang");
    app.wait_seen(before + 1).await;
    let sent = Instant::now();
    let (status, at) = tokio::time::timeout(Duration::from_secs(5), get(env.proxy, "/public/ok"))
        .await
        .expect("a long poll kept the next request waiting past the hold")
        .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    // It waited for the hold, not for the long poll (still unanswered).
    assert!(
        at - sent >= Duration::from_millis(500),
        "it never waited: {:?}",
        at - sent
    );
    assert!(!poll.is_finished());
    app.gate.add_permits(1);
    assert_eq!(poll.await.unwrap().0, "HTTP/1.1 200 OK");
    env.metrics_with("portcullis_requests_shed_total 0").await;
}

#[tokio::test]
async fn a_client_that_hangs_up_while_it_waits_is_never_forwarded() {
    let app = GatedApp::start().await;
    let env = env_with(
        &app,
        "max_active_requests = 1\nqueue_timeout_ms = 30000\nactive_request_hold_ms = 60000",
    )
    .await;
    let before = app.seen().len();
    let first = get(env.proxy, "/public/hang-1");
    app.wait_seen(before + 1).await;

    let mut gone = TcpStream::connect(env.proxy).await.unwrap();
    gone.write_all(b"POST /public/hang-2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbo")
        .await
        .unwrap();
    env.metrics_with("portcullis_requests_queued 1").await;
    drop(gone);
    // Seen at once, not when a slot frees (30 s away).
    env.metrics_with("portcullis_requests_abandoned_total 1")
        .await;
    env.metrics_with("portcullis_requests_queued 0").await;

    app.gate.add_permits(1);
    assert_eq!(first.await.unwrap().0, "HTTP/1.1 200 OK");
    // The slot is free for the next request, and the app never saw the
    // abandoned one.
    let (status, _) = get(env.proxy, "/public/ok").await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let seen = app.wait_seen(before + 2).await;
    assert_eq!(seen[before..], ["/public/hang-1", "/public/ok"]);
}

#[tokio::test]
async fn portcullis_own_answers_give_their_slot_back() {
    let app = GatedApp::start().await;
    let env = env_with(
        &app,
        "max_active_requests = 1\nqueue_timeout_ms = 1000\nactive_request_hold_ms = 60000",
    )
    .await;
    // Answered by Portcullis, never by the app: no response filter runs,
    // so only the request's end can give the slot back (within the 1 s
    // queue timeout, the 60 s hold being far off).
    for _ in 0..3 {
        let (status, _) = get(env.proxy, "/.portcullis/jwks.json").await.unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
    }
    env.metrics_with("portcullis_requests_shed_total 0").await;
}

#[tokio::test]
async fn an_informational_answer_is_not_the_answer() {
    let app = GatedApp::start().await;
    let env = env_with(
        &app,
        "max_active_requests = 1\nqueue_timeout_ms = 10000\nactive_request_hold_ms = 60000",
    )
    .await;
    let before = app.seen().len();
    let early = get(env.proxy, "/public/early");
    app.wait_seen(before + 1).await;
    // Whether or not pingora passes the 103 on, it does not free the slot.
    let next = get(env.proxy, "/public/ok");
    env.metrics_with("portcullis_requests_queued 1").await;
    assert_eq!(app.seen().len(), before + 1);
    app.gate.add_permits(1);
    assert_eq!(early.await.unwrap().0, "HTTP/1.1 103 Early Hints");
    assert_eq!(next.await.unwrap().0, "HTTP/1.1 200 OK");
}

/// SIGTERM to the real binary: a request waiting for a slot is refused at
/// once (`503`, never forwarded: the app would answer it after the process
/// is gone), while the request that holds the slot still gets its answer
/// within the grace period.
#[tokio::test]
async fn a_shutdown_refuses_the_requests_still_waiting_and_lets_the_active_one_finish() {
    use crate::ops::cli::{run_binary, signal, wait_for_metric, wait_ready};

    let app = GatedApp::start().await;
    let dir = private_tempdir().unwrap();
    let store = format!("sqlite://{}/s.db", dir.path().display());
    let path = dir.path().join("p.toml");
    let limits = "[limits]\nmax_active_requests = 1\nqueue_timeout_ms = 60000\nactive_request_hold_ms = 60000\n";
    let (mut child, addrs) = run_binary(&path, 2, |a| {
        config_text(a[0], a[1], app.addr, &store, &[KEY_A], limits)
            .replace("grace_period_seconds = 0", "grace_period_seconds = 5")
    })
    .await;
    let (proxy, admin) = (addrs[0], addrs[1]);
    wait_ready(admin).await;

    let before = app.seen().len();
    let active = get(proxy, "/public/hang-1");
    app.wait_seen(before + 1).await;
    let waiting = get(proxy, "/public/hang-2");
    wait_for_metric(admin, "portcullis_requests_queued 1").await;

    let signalled = Instant::now();
    signal(child.0.id(), "-TERM");
    // Refused on the signal, not at the 60 s queue timeout nor at the end
    // of the 5 s grace period.
    let (status, at) = waiting.await.unwrap();
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(
        at - signalled < Duration::from_secs(3),
        "refused after {:?}",
        at - signalled
    );
    assert_eq!(app.seen()[before..], ["/public/hang-1"]);

    app.gate.add_permits(1);
    assert_eq!(active.await.unwrap().0, "HTTP/1.1 200 OK");
    let exited = child.exit_within(Duration::from_secs(15)).await;
    assert!(exited.expect("exited within 15 s").success());
    assert_eq!(app.seen()[before..], ["/public/hang-1"]);
}
