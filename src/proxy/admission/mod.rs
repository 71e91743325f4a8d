//! Admission: a bound on the requests being worked on at once.
//!
//! Rule: at most `limits.max_active_requests` requests are *active* — past
//! their complete header and not yet answered by the app. The others wait
//! for a slot in arrival order, holding nothing but their header bytes,
//! for at most `limits.queue_timeout_ms`; then they are answered `503`
//! with `retry-after: 1` and the connection is closed.
//!
//! Why: an active request holds ~30 KB (pingora's session and channels,
//! the upstream request's header maps, an upstream connection and its
//! buffers, the response header) where a waiting one holds a few hundred
//! bytes. With no bound, 10,000 clients sending at once put 10,000
//! requests in flight: ~380 MB, and 10,000 upstream connections for a
//! keep-alive pool of a few hundred, so nearly every request opened a new
//! one; the app's accept queue overflowed (connect timeouts, `504`s) and
//! throughput fell to a third of its 32-connection figure. CPU, not
//! concurrency, limits a proxy: past the few hundred requests it can keep
//! busy, more in flight only costs memory and connects. HAProxy's
//! per-server `maxconn` and queue make the same trade.
//!
//! A request stops counting when the app's response header arrives (so a
//! WebSocket, an event stream or a download goes on without a slot), when
//! it ends, or between one and two `limits.active_request_hold_ms` after
//! it was admitted, whichever comes first ([`slots`] keeps that account
//! without a timer per request). The hold bounds what a slow app (long
//! polls) or a client trickling its body can take from everyone else:
//! without it a few hundred such requests would stall the whole proxy. A
//! request past its hold is no longer bounded, as before this module; an
//! app that answers slowly limits throughput either way. The hold also
//! sets the least rate admission lets through whatever the app's latency:
//! `max_active_requests / hold` (256 / 20 ms: 12,800 requests a second).
//!
//! The slot lives in a task-local ([`ACTIVE`]): pingora serves a request
//! (HTTP/1, or one HTTP/2 stream) inside one task, from the header to the
//! last byte of the answer, so the response filter can give it back
//! ([`release`]) without a handle threaded through pingora's API.

mod slots;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::H2Options;
use pingora::server::ShutdownWatch;

use crate::metrics::Metrics;

use super::conn::LogGate;
use super::state::ProxyState;
use slots::{Slots, Ticket};

tokio::task_local! {
    /// The slot of the request this task is serving, until given back.
    static ACTIVE: RefCell<Option<Ticket>>;
}

/// Gives the current request's slot back: the app's answer has begun.
/// Nothing happens outside an admitted request or once given back.
pub(super) fn release() {
    // The ticket is dropped after the borrow ends, when `try_with` returns.
    let _ = ACTIVE.try_with(|slot| slot.borrow_mut().take());
}

/// Admits the requests of the service it wraps (see the module docs).
pub struct Admission<H> {
    inner: Arc<H>,
    slots: Arc<Slots>,
    state: Arc<ArcSwap<ProxyState>>,
    metrics: Arc<Metrics>,
    refusals_logged: LogGate,
}

impl<H> Admission<H> {
    /// `max_active` and `hold` are fixed for the process; `state`
    /// supplies the queue timeout of the configuration in force.
    pub fn new(
        inner: H,
        max_active: usize,
        hold: Duration,
        state: Arc<ArcSwap<ProxyState>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(inner),
            slots: Arc::new(Slots::new(max_active, hold)),
            state,
            metrics,
            refusals_logged: LogGate::default(),
        }
    }

    /// Waits for a slot; `None` once the queue timeout has passed.
    async fn wait_for_slot(&self, queue_timeout: Duration) -> Option<Ticket> {
        let _queued = Queued::new(&self.metrics);
        self.slots.admit(queue_timeout).await
    }

    /// `503` and close: the request waited its whole queue timeout.
    async fn refuse(&self, mut session: ServerSession, queue_timeout: Duration) {
        self.metrics.limits.requests_shed.inc();
        if let Some(suppressed) = self.refusals_logged.admit() {
            tracing::warn!(
                ?queue_timeout,
                suppressed,
                "request refused: limits.max_active_requests requests were active for the whole queue timeout"
            );
        }
        // The header is in pingora's prefix buffer (HTTP/1) or already
        // parsed (HTTP/2): this reads no socket.
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
    }
}

/// Keeps the queued-requests gauge true however the wait ends.
struct Queued<'a>(&'a Metrics);

impl<'a> Queued<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.limits.requests_queued.inc();
        Self(metrics)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.limits.requests_queued.dec();
    }
}

#[async_trait]
impl<H: HttpServerApp + Send + Sync + 'static> HttpServerApp for Admission<H> {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let ticket = match self.slots.try_admit() {
            Some(ticket) => ticket,
            None => {
                let queue_timeout = Duration::from_millis(
                    self.state.load().generation.config.limits.queue_timeout_ms,
                );
                match self.wait_for_slot(queue_timeout).await {
                    Some(ticket) => ticket,
                    None => {
                        self.refuse(session, queue_timeout).await;
                        return None;
                    }
                }
            }
        };
        ACTIVE
            .scope(
                RefCell::new(Some(ticket)),
                self.inner.process_new_http(session, shutdown),
            )
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn release_gives_the_slot_back_once_and_only_inside_a_request() {
        let slots = Arc::new(Slots::new(1, Duration::from_secs(60)));
        // Outside a request: nothing to give back, no panic.
        release();
        let ticket = slots.try_admit().unwrap();
        ACTIVE
            .scope(RefCell::new(Some(ticket)), async {
                assert!(slots.try_admit().is_none());
                release();
                let again = slots.try_admit().expect("given back");
                drop(again);
                release();
                let one = slots.try_admit().unwrap();
                assert!(slots.try_admit().is_none(), "given back twice");
                drop(one);
            })
            .await;
        assert!(slots.try_admit().is_some());
    }
}
