//! Downstream connections: a cap on how many are open, and a deadline for
//! each HTTP/1 request header (slowloris).
//!
//! pingora 0.9 bounds neither. Its header read has a timeout per `read()`
//! (60 s on a new connection, none at all on a kept-alive one after
//! `respect_keepalive`), so a client sending one byte every few seconds
//! holds a connection forever; and its accept loop spawns a task per
//! connection without limit. Both are fixed here, outside pingora, by
//! wrapping the proxy application:
//!
//! - [`ConnectionLimit`] (a `ServerApp`) holds a semaphore permit for the
//!   life of each connection. Beyond the cap a connection is answered
//!   `503` and closed at once rather than queued: pingora keeps accepting
//!   either way, so a queue would only turn a connection flood into file
//!   descriptor and memory exhaustion, while a refusal costs one write.
//!   Clients and balancers retry; the admin listener is not capped, so
//!   metrics and health stay reachable.
//! - [`HeaderDeadline`] (an `HttpServerApp`) reads each HTTP/1 request
//!   header itself, under the deadline, and hands the bytes to pingora as
//!   the session's pipelined prefix, which pingora parses before reading
//!   the socket again. The wait for the *first* byte of a request on a
//!   kept-alive connection is the idle timeout (closed quietly); from the
//!   first byte, or from the start on a new connection, the header must be
//!   complete within `header_timeout`.
//!
//! TLS handshakes happen before either (pingora bounds them at 60 s).

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::H2Options;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::session::CookieMemo;

use super::admission::{self, Admission, Admit};
use super::forward::Rendered;
use super::state::ProxyState;

tokio::task_local! {
    /// Set by [`ConnectionLimit`] for the task serving one connection:
    /// whether its first request is still to come.
    static FIRST_REQUEST: Cell<bool>;
    /// Set by [`ConnectionLimit`] for the task serving one connection: the
    /// session cookie it last presented, as it opened (see
    /// [`CookieMemo`]). HTTP/2 streams run in tasks of their own and have
    /// none.
    static OPENED_COOKIE: Cell<Option<Box<CookieMemo>>>;
    /// Set by [`ConnectionLimit`] for the task serving one connection: the
    /// timer and shutdown watch of its waits for a request ([`read_head`]),
    /// kept from one request to the next.
    static WAIT: Cell<Option<Wait>>;
    /// Set by [`ConnectionLimit`] for the task serving one connection: the
    /// upstream lines its requests repeat ([`Rendered`]).
    static RENDERED: Cell<Option<Box<Rendered>>>;
}

/// Runs `f` with this connection's [`CookieMemo`] slot, or with an empty
/// one when the task serves no HTTP/1 connection of ours.
pub(super) fn with_cookie_memo<R>(f: impl FnOnce(&mut Option<Box<CookieMemo>>) -> R) -> R {
    with_kept(&OPENED_COOKIE, f)
}

/// Runs `f` with this connection's [`Rendered`] slot, or with an empty one
/// when the task serves no HTTP/1 connection of ours.
pub(super) fn with_rendered<R>(f: impl FnOnce(&mut Option<Box<Rendered>>) -> R) -> R {
    with_kept(&RENDERED, f)
}

/// `f` with what the connection keeps in `slot`, taken out and put back:
/// never held across an await.
fn with_kept<T: 'static, R>(
    slot: &'static tokio::task::LocalKey<Cell<Option<Box<T>>>>,
    f: impl FnOnce(&mut Option<Box<T>>) -> R,
) -> R {
    match slot.try_with(Cell::take) {
        Ok(mut kept) => {
            let r = f(&mut kept);
            let _ = slot.try_with(|s| s.set(kept));
            r
        }
        Err(_) => f(&mut None),
    }
}

/// The buffer a request header is read into grows by this much; the
/// first read of each request goes through a [`SCRATCH`] buffer this size.
const HEAD_CHUNK: usize = 4096;

thread_local! {
    /// See [`first_bytes`]. Borrowed only within one poll, never across an
    /// await, so the tasks of a thread cannot contend for it.
    static SCRATCH: RefCell<Box<[u8; HEAD_CHUNK]>> = RefCell::new(Box::new([0; HEAD_CHUNK]));
}

/// pingora refuses request headers larger than this (its
/// `MAX_HEADER_SIZE`); reading stops here and pingora answers `400`.
const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// See [`refuse`].
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

const REFUSED_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n";
const TIMEOUT_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Caps the open connections of the service it wraps.
pub struct ConnectionLimit<A> {
    inner: Arc<A>,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    refusals_logged: LogGate,
}

impl<A> ConnectionLimit<A> {
    pub fn new(inner: A, max_connections: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(inner),
            permits: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            metrics,
            refusals_logged: LogGate::default(),
        }
    }
}

/// Keeps the open-connections gauge true however the connection ends.
struct Open<'a> {
    metrics: &'a Metrics,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.metrics.limits.connections.dec();
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionLimit<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.limits.connections_refused.inc();
            if let Some(suppressed) = self.refusals_logged.admit() {
                tracing::warn!(
                    client = %peer(&stream),
                    suppressed,
                    "connection refused: limits.max_connections connections are open"
                );
            }
            // A 503 an HTTP/1 client can read; an h2 client would only see
            // garbage, so it just sees the close.
            if !matches!(
                stream.selected_alpn_proto(),
                Some(pingora::protocols::ALPN::H2)
            ) {
                refuse(&mut stream, REFUSED_503).await;
            }
            return None;
        };
        self.metrics.limits.connections.inc();
        let _open = Open {
            metrics: &self.metrics,
            _permit: permit,
        };
        let served = OPENED_COOKIE.scope(
            Cell::new(None),
            RENDERED.scope(Cell::new(None), self.inner.process_new(stream, shutdown)),
        );
        FIRST_REQUEST
            .scope(Cell::new(true), WAIT.scope(Cell::new(None), served))
            .await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Bounds the time to receive each HTTP/1 request header, then admits the
/// request (`proxy::admission`): the wait for a slot watches the stream,
/// which only this layer holds.
pub struct HeaderDeadline<H> {
    inner: Arc<H>,
    admission: Admission,
    state: Arc<ArcSwap<ProxyState>>,
    metrics: Arc<Metrics>,
    timeouts_logged: LogGate,
}

impl<H> HeaderDeadline<H> {
    /// `state` supplies the timeouts of the configuration in force.
    pub fn new(
        inner: H,
        admission: Admission,
        state: Arc<ArcSwap<ProxyState>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(inner),
            admission,
            state,
            metrics,
            timeouts_logged: LogGate::default(),
        }
    }
}

impl<H: HttpServerApp + Send + Sync + 'static> HeaderDeadline<H> {
    /// A session this layer does not read itself (an HTTP/2 stream): its
    /// header is in, so it only waits for a slot.
    async fn admit_other(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match self.admission.admit::<Stream>(None, shutdown).await {
            Admit::Slot(ticket) => {
                admission::serve(ticket, self.inner.process_new_http(session, shutdown)).await
            }
            Admit::Gone => None,
            Admit::Refused => {
                let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
                    // Parsed already (HTTP/2): reads no socket.
                    if !matches!(session.read_request().await, Ok(true)) {
                        return;
                    }
                    session.set_keepalive(None);
                    let mut resp = ServerSession::generate_error(503);
                    let _ = resp.insert_header(http::header::RETRY_AFTER, "1");
                    let _ = session
                        .write_error_response(resp, bytes::Bytes::new())
                        .await;
                    let _ = session.finish().await;
                })
                .await;
                None
            }
        }
    }
}

#[async_trait]
impl<H: HttpServerApp + Send + Sync + 'static> HttpServerApp for HeaderDeadline<H> {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // The session is taken apart by a plain function: a session kept in
        // a local of this future would sit in it, for nothing, through the
        // whole keep-alive wait of every idle connection.
        let (mut stream, kept) = match take_apart(session) {
            Ok(parts) => parts,
            // Boxed: its state (a whole session, the refusal's writes)
            // would otherwise size this future, and so every keep-alive
            // wait, for a path no listener takes today.
            Err(session) => return Box::pin(self.admit_other(session, shutdown)).await,
        };
        let first = FIRST_REQUEST
            .try_with(|f| f.replace(false))
            .unwrap_or(false);
        let (header_timeout, idle_timeout) = {
            let st = self.state.load();
            let l = &st.generation.config.limits;
            (
                Duration::from_millis(l.header_timeout_ms),
                Duration::from_secs(l.keepalive_timeout_seconds),
            )
        };
        let first_wait = if first { header_timeout } else { idle_timeout };
        match read_head(&mut stream, first_wait, header_timeout, first, shutdown).await {
            Head::Complete(mut head) => {
                match self
                    .admission
                    .admit(Some((&mut stream, &mut head)), shutdown)
                    .await
                {
                    Admit::Slot(ticket) => {
                        let session = kept.rebuild(stream, head);
                        admission::serve(ticket, self.inner.process_new_http(session, shutdown))
                            .await
                    }
                    Admit::Gone => None,
                    Admit::Refused => {
                        refuse(&mut stream, REFUSED_503).await;
                        None
                    }
                }
            }
            Head::Closed => None,
            Head::Silent => {
                self.metrics
                    .limits
                    .client_timeouts
                    .with_label_values(&["connection_idle"])
                    .inc();
                tracing::debug!(client = %peer(&stream), timeout = ?header_timeout, "new connection sent no request in time; closed");
                None
            }
            Head::TooSlow(received) => {
                self.metrics
                    .limits
                    .client_timeouts
                    .with_label_values(&["header"])
                    .inc();
                if let Some(suppressed) = self.timeouts_logged.admit() {
                    tracing::warn!(
                        client = %peer(&stream),
                        received_bytes = received,
                        timeout = ?header_timeout,
                        suppressed,
                        "slow client cut off: request header incomplete at the deadline"
                    );
                }
                refuse(&mut stream, TIMEOUT_408).await;
                None
            }
        }
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.inner.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}

/// What pingora set up for an HTTP/1 session, to be given to the one
/// rebuilt around the same stream once its request header is in.
struct Kept {
    keepalive: Option<u64>,
    reuses: Option<u32>,
    user_context: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Kept {
    fn rebuild(self, stream: Stream, head: BytesMut) -> ServerSession {
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive(self.keepalive);
        session.set_keepalive_reuses_remaining(self.reuses);
        session.set_connection_user_context(self.user_context);
        session.set_pipelined_prefix(head);
        session
    }
}

/// The stream of an HTTP/1 session whose bytes are all still in the
/// socket, and its settings; any other session is handed back. Pipelining
/// is never enabled here, so pingora holds no prefix of its own.
#[expect(
    clippy::result_large_err,
    reason = "the session came in by value and goes straight back out; boxing it would allocate per request"
)]
fn take_apart(mut session: ServerSession) -> Result<(Stream, Kept), ServerSession> {
    if session.as_http1().is_none() || session.pipelining_enabled() {
        return Err(session);
    }
    let kept = Kept {
        keepalive: session.get_keepalive(),
        reuses: session.get_keepalive_reuses_remaining(),
        user_context: session.take_connection_user_context(),
    };
    match session {
        ServerSession::H1(h1) => Ok((h1.into_inner(), kept)),
        other => Err(other),
    }
}

/// How reading a request header ended.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The header (and whatever followed it) — or more than pingora
    /// accepts, for pingora to refuse.
    Complete(BytesMut),
    /// Closed by the client, idle past the keep-alive timeout, or the
    /// server is shutting down: nothing to answer.
    Closed,
    /// A new connection that sent nothing within the header timeout.
    Silent,
    /// Part of a header, then the deadline.
    TooSlow(usize),
}

/// What a connection's waits for a request keep from one to the next
/// (see [`read_head`]).
struct Wait {
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Completes when the server starts shutting down; never polled
    /// again once it has.
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Reads until the end of a request header. Waits `first_wait` for the
/// first byte; the header must then be complete `header_timeout` after the
/// first byte, or after the start when `from_start` (a new connection).
///
/// The wait for the first byte uses the connection's timer and shutdown
/// watch ([`Wait`], in `WAIT`), kept from its last wait, not its own:
/// registering and cancelling a tokio timer for every request of a
/// kept-alive connection cost ~730 instructions a request (callgrind), and
/// a registration earlier than the runtime's next wake-up wakes its driver
/// (an eventfd write); cloning the shutdown watch and entering and leaving
/// its waiter list, ~450 more. A kept timer whose deadline has not come
/// stays registered; its deadline moves only when it fires early (a
/// deadline from an earlier wait, passed while the connection served a
/// request: moved to this wait's, and the wait goes on) or would fire late.
/// So a wait ends at exactly `first_wait`, as with a timer of its own. The
/// kept watch stays registered between waits and sees a shutdown
/// signalled while the connection was busy at its next poll.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    first_wait: Duration,
    header_timeout: Duration,
    from_start: bool,
    shutdown: &ShutdownWatch,
) -> Head {
    let start = tokio::time::Instant::now();
    let first_deadline = start + first_wait;
    // The connection's timer, kept from its last wait (see above).
    let mut wait = WAIT
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(|| Wait {
            timer: Box::pin(tokio::time::sleep_until(first_deadline)),
            shutdown: Box::pin(watch_shutdown(shutdown.clone())),
        });
    if wait.timer.deadline() > first_deadline {
        wait.timer.as_mut().reset(first_deadline);
    }
    let read = loop {
        tokio::select! {
            biased;
            r = first_bytes(stream) => break Some(r),
            () = &mut wait.timer => {
                if wait.timer.deadline() >= first_deadline {
                    break None;
                }
                // A deadline of an earlier wait, passed while the
                // connection was busy: this wait's is later.
                wait.timer.as_mut().reset(first_deadline);
            }
            // Not kept: a finished watch is never polled again.
            () = wait.shutdown.as_mut() => return Head::Closed,
        }
    };
    let _ = WAIT.try_with(|slot| slot.set(Some(wait)));
    let mut buf = match read {
        None if from_start => return Head::Silent,
        Some(Ok(buf)) if !buf.is_empty() => buf,
        None | Some(Ok(_)) | Some(Err(_)) => return Head::Closed,
    };
    let deadline = if from_start {
        start
    } else {
        tokio::time::Instant::now()
    } + header_timeout;
    let mut scan = HeadScan::default();
    loop {
        if scan.complete(&buf) || buf.len() > MAX_HEADER_BYTES {
            return Head::Complete(buf);
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(HEAD_CHUNK);
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Head::TooSlow(buf.len()),
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Closed,
            Ok(Ok(_)) => {}
        }
    }
}

/// Waits for the first bytes of a request without a buffer of its own.
///
/// A kept-alive connection spends most of its life here, and there are as
/// many of these waits as idle connections (10,000 and more): a 4 KiB
/// buffer each was most of an idle connection's memory. Each poll reads
/// into its thread's scratch buffer instead, which is free again when the
/// poll returns (a `Pending` read leaves nothing in it, by `AsyncRead`'s
/// contract); only bytes that arrived are copied, into a buffer of their
/// size: it becomes pingora's header buffer for the whole request, and a
/// request header is usually a few hundred bytes (a 4 KiB buffer was
/// ~4 KB of every in-flight request, valgrind massif at 1,000
/// connections). A header that did not arrive whole grows it in
/// [`read_head`]. Returns an empty buffer when the peer closed.
async fn first_bytes<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<BytesMut> {
    std::future::poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut read = ReadBuf::new(&mut scratch[..]);
            std::task::ready!(Pin::new(&mut *stream).poll_read(cx, &mut read))?;
            let got = read.filled();
            Poll::Ready(Ok(BytesMut::from(got)))
        })
    })
    .await
}

/// Reads what has arrived onto the end of `held`, through the thread's
/// scratch buffer as [`first_bytes`] does: `held` grows by the bytes that
/// came, not by a read-sized reservation. For a request waiting for its
/// slot (`admission`), whose socket is read only to see a close: 10,000
/// of them reserving 4 KiB each would be 40 MB for bytes that mostly never
/// come. `Ok(0)`: the peer closed.
pub(super) async fn read_appending<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    held: &mut BytesMut,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut read = ReadBuf::new(&mut scratch[..]);
            std::task::ready!(Pin::new(&mut *stream).poll_read(cx, &mut read))?;
            held.extend_from_slice(read.filled());
            Poll::Ready(Ok(read.filled().len()))
        })
    })
    .await
}

/// Finds the end of a request header incrementally (a client sending one
/// byte per read must not make each read rescan everything). The end is an
/// empty line: LF, optional CR, LF — the bare-LF form is what lenient
/// parsers (pingora's httparse among them) accept too. Empty lines before
/// the request line are skipped, as RFC 9112 §2.2 allows.
#[derive(Default)]
struct HeadScan {
    pos: usize,
    started: bool,
}

impl HeadScan {
    fn complete(&mut self, buf: &[u8]) -> bool {
        if !self.started {
            match buf[self.pos..]
                .iter()
                .position(|b| !matches!(b, b'\r' | b'\n'))
            {
                Some(i) => {
                    self.pos += i;
                    self.started = true;
                }
                None => {
                    self.pos = buf.len();
                    return false;
                }
            }
        }
        // From LF to LF (`memchr`: a header is a few hundred bytes, and a
        // byte loop was ~1,500 instructions of every request).
        while let Some(i) = memchr::memchr(b'\n', &buf[self.pos..]) {
            self.pos += i;
            match (buf.get(self.pos + 1), buf.get(self.pos + 2)) {
                (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')) => return true,
                // Not decidable yet: look at this LF again next time.
                (None, _) | (Some(b'\r'), None) => return false,
                _ => {}
            }
            self.pos += 1;
        }
        self.pos = buf.len();
        false
    }
}

/// Completes when the server starts shutting down; never, if it cannot.
pub(super) async fn shutdown_signalled(shutdown: &ShutdownWatch) {
    watch_shutdown(shutdown.clone()).await;
}

/// [`shutdown_signalled`] on a watch of its own, for a future that
/// outlives the borrow.
async fn watch_shutdown(mut stop: ShutdownWatch) {
    // A dropped sender means no shutdown will ever be signalled.
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Writes a whole refusal (`connection: close`), bounded in time: a
/// client that stopped reading must not hold the task.
async fn refuse(stream: &mut Stream, answer: &[u8]) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(answer).await?;
        stream.flush().await
    })
    .await;
}

fn peer(stream: &Stream) -> String {
    stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// At most one log line per second for events an attacker can repeat at
/// will; the lines in between are counted and reported with the next one.
#[derive(Default)]
pub(crate) struct LogGate {
    last_second: AtomicU64,
    suppressed: AtomicU64,
}

impl LogGate {
    /// `Some(lines suppressed since the last one)` when a line may go out.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = crate::clock::now().max(0) as u64;
        let last = self.last_second.load(Ordering::Relaxed);
        if now > last
            && self
                .last_second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(input: &[u8]) -> bool {
        HeadScan::default().complete(input)
    }

    #[test]
    fn finds_the_end_of_a_header_in_any_line_ending() {
        assert!(scan_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(scan_all(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(scan_all(b"GET / HTTP/1.1\r\nHost: a\n\r\nbody"));
        assert!(!scan_all(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!scan_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r"));
        // Leading empty lines are not the end of anything.
        assert!(!scan_all(b"\r\n\r\n\r\nGET / HTTP/1.1\r\n"));
        assert!(scan_all(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn byte_by_byte_scanning_agrees_with_scanning_at_once() {
        for input in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"\r\nGET / HTTP/1.1\nX: y\n\n",
            b"GET / HTTP/1.1\r\nX: \r\r\n\r\n",
        ] {
            let mut scan = HeadScan::default();
            let ends: Vec<bool> = (1..=input.len())
                .map(|n| scan.complete(&input[..n]))
                .collect();
            assert_eq!(
                ends.iter().position(|e| *e),
                Some(input.len() - 1),
                "{input:?}"
            );
        }
    }

    /// Where a header ends, by the rule read one byte at a time: after
    /// the first LF followed by LF or CRLF, past leading CR and LF.
    fn end_by_bytes(input: &[u8]) -> Option<usize> {
        let start = input.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
        (start..input.len()).find_map(|i| {
            let end = match (input[i], input.get(i + 1), input.get(i + 2)) {
                (b'\n', Some(b'\n'), _) => i + 1,
                (b'\n', Some(b'\r'), Some(b'\n')) => i + 2,
                _ => return None,
            };
            Some(end)
        })
    }

    #[test]
    fn every_short_input_ends_where_the_byte_rule_says() {
        // Every string of up to 8 bytes over {a, CR, LF}, fed whole and
        // byte by byte: the scan completes exactly when the rule has an end.
        let alphabet = [b'a', b'\r', b'\n'];
        for len in 0..=8u32 {
            for mut code in 0..3usize.pow(len) {
                let input: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[code % 3];
                        code /= 3;
                        b
                    })
                    .collect();
                let end = end_by_bytes(&input);
                assert_eq!(scan_all(&input), end.is_some(), "{input:?}");
                let mut scan = HeadScan::default();
                let first = (1..=input.len()).find(|&n| scan.complete(&input[..n]));
                assert_eq!(first.map(|n| n - 1), end, "{input:?} byte by byte");
            }
        }
    }

    fn watch() -> (tokio::sync::watch::Sender<bool>, ShutdownWatch) {
        tokio::sync::watch::channel(false)
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_header_is_cut_off_at_the_deadline() {
        let (_tx, rx) = watch();
        let (mut client, mut server) = tokio::io::duplex(1024);
        let trickle = tokio::spawn(async move {
            for b in b"GET / HTTP/1.1\r\nHost: a\r\n" {
                client.write_all(&[*b]).await.unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            client
        });
        let started = tokio::time::Instant::now();
        let got = read_head(
            &mut server,
            Duration::from_secs(75),
            Duration::from_secs(5),
            false,
            &rx,
        )
        .await;
        assert!(
            matches!(got, Head::TooSlow(n) if (5..=6).contains(&n)),
            "{got:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        trickle.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_are_quiet_and_new_connections_must_speak_first() {
        let (_tx, rx) = watch();
        let (_client, mut server) = tokio::io::duplex(1024);
        let t = Duration::from_secs;
        assert_eq!(
            read_head(&mut server, t(75), t(5), false, &rx).await,
            Head::Closed
        );
        assert_eq!(
            read_head(&mut server, t(5), t(5), true, &rx).await,
            Head::Silent
        );
    }

    /// The connection's kept timer (`WAIT`) ends each wait exactly
    /// at its own `first_wait`: not at a deadline left by an earlier wait
    /// that passed while the connection was busy, nor later when the
    /// earlier wait's deadline lies beyond this one's.
    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_ends_each_wait_at_its_own_deadline() {
        let (_tx, rx) = watch();
        let (mut client, mut server) = tokio::io::duplex(1024);
        let t = Duration::from_secs;
        WAIT.scope(Cell::new(None), async move {
            // A first request at once: the timer (deadline 5 s) is kept.
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let got = read_head(&mut server, t(5), t(5), true, &rx).await;
            assert!(matches!(got, Head::Complete(_)), "{got:?}");
            let kept = WAIT.with(Cell::take).expect("the timer is kept");
            assert_eq!(kept.timer.deadline(), tokio::time::Instant::now() + t(5));
            WAIT.with(|slot| slot.set(Some(kept)));
            // Busy past that deadline; then a wait of 75 s does not
            // end at once: its request, a second in, is read.
            tokio::time::sleep(t(6)).await;
            let writer = tokio::spawn(async move {
                tokio::time::sleep(t(1)).await;
                client.write_all(b"GET /b HTTP/1.1\r\n\r\n").await.unwrap();
                client
            });
            let started = tokio::time::Instant::now();
            let got = read_head(&mut server, t(75), t(5), false, &rx).await;
            assert_eq!(
                got,
                Head::Complete(BytesMut::from(&b"GET /b HTTP/1.1\r\n\r\n"[..]))
            );
            assert_eq!(started.elapsed(), t(1));
            let _client = writer.await.unwrap();
            // The kept deadline is 74 s away; a wait of 5 s ends at 5 s.
            let started = tokio::time::Instant::now();
            assert_eq!(
                read_head(&mut server, t(5), t(5), true, &rx).await,
                Head::Silent
            );
            assert_eq!(started.elapsed(), t(5));
            // And a wait of 75 s after it at 75 s.
            let started = tokio::time::Instant::now();
            assert_eq!(
                read_head(&mut server, t(75), t(5), false, &rx).await,
                Head::Closed
            );
            assert_eq!(started.elapsed(), t(75));
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_header_is_handed_over_with_what_followed() {
        let (_tx, rx) = watch();
        let (mut client, mut server) = tokio::io::duplex(1024);
        client
            .write_all(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let got = read_head(
            &mut server,
            Duration::from_secs(1),
            Duration::from_secs(1),
            true,
            &rx,
        )
        .await;
        assert_eq!(
            got,
            Head::Complete(BytesMut::from(
                &b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"[..]
            ))
        );
    }

    /// The connection's kept shutdown watch (`WAIT`) ends its next wait at
    /// once for a shutdown signalled while the connection was busy, and a
    /// wait when it is signalled during it.
    #[tokio::test(start_paused = true)]
    async fn a_kept_shutdown_watch_ends_the_next_wait() {
        let t = Duration::from_secs;
        for during in [false, true] {
            let (tx, rx) = watch();
            let (mut client, mut server) = tokio::io::duplex(1024);
            WAIT.scope(Cell::new(None), async move {
                client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
                let got = read_head(&mut server, t(5), t(5), true, &rx).await;
                assert!(matches!(got, Head::Complete(_)), "{got:?}");
                let kept = WAIT.with(Cell::take).expect("the watch is kept");
                WAIT.with(|slot| slot.set(Some(kept)));
                let started = tokio::time::Instant::now();
                let signal = async {
                    if during {
                        tokio::time::sleep(t(1)).await;
                    }
                    tx.send_replace(true);
                };
                let (got, ()) = if during {
                    tokio::join!(read_head(&mut server, t(3600), t(5), false, &rx), signal)
                } else {
                    signal.await;
                    (read_head(&mut server, t(3600), t(5), false, &rx).await, ())
                };
                assert_eq!(got, Head::Closed, "during {during}");
                assert_eq!(started.elapsed(), t(u64::from(during)), "during {during}");
                drop(client);
            })
            .await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_an_idle_wait() {
        let (tx, rx) = watch();
        let (_client, mut server) = tokio::io::duplex(1024);
        let wait = tokio::spawn(async move {
            read_head(
                &mut server,
                Duration::from_secs(3600),
                Duration::from_secs(5),
                false,
                &rx,
            )
            .await
        });
        tokio::task::yield_now().await;
        tx.send_replace(true);
        assert_eq!(wait.await.unwrap(), Head::Closed);
    }
}
