//! Admission: a bound on the requests being worked on at once.
//!
//! Rule: at most `limits.max_active_requests` requests are *active* — past
//! their complete header and not yet answered by the app. The others wait
//! for a slot in arrival order, holding nothing but their header bytes,
//! for at most `limits.queue_timeout_ms`; then they are answered `503`
//! with `retry-after: 1` and the connection is closed. A client that hangs
//! up while it waits is noticed and its request dropped, never sent to the
//! app (a POST's side effects for nobody, a slot wasted); so is a shutdown.
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
//! between `max_active_requests / (2 × hold)` and `max_active_requests /
//! hold` (256 slots, 20 ms: 6,400 to 12,800 requests a second).
//!
//! [`Admission::admit`] is called by `conn::HeaderDeadline`, which holds
//! the HTTP/1 stream before pingora gets it: while a request waits, its
//! socket is read (into the header buffer pingora will be handed, up to
//! [`WATCH_LIMIT`]) so that a close is seen at once. The slot then lives in
//! a task-local ([`serve`]): pingora serves a request (HTTP/1, or one
//! HTTP/2 stream) inside one task, from the header to the last byte of the
//! answer, so the response filter can give it back ([`release`]) without a
//! handle threaded through pingora's API.

mod buckets;
mod slots;

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use pingora::server::ShutdownWatch;
use tokio::io::AsyncRead;

use crate::metrics::Metrics;

use super::conn::LogGate;
use super::state::ProxyState;
use slots::Slots;
pub(super) use slots::Ticket;

tokio::task_local! {
    /// The slot of the request this task is serving, until given back.
    static ACTIVE: RefCell<Option<Ticket>>;
}

/// A waiting request's socket is read for a close until this many bytes
/// (its header and what followed) are held; past it the request just
/// waits, so a large upload cannot make a queued request large.
const WATCH_LIMIT: usize = 64 * 1024;

/// Gives the current request's slot back: the app's answer has begun.
/// Nothing happens outside an admitted request or once given back.
pub(super) fn release() {
    // The ticket is dropped after the borrow ends, when `try_with` returns.
    let _ = ACTIVE.try_with(|slot| slot.borrow_mut().take());
}

/// Runs `request` holding `ticket`'s slot until [`release`] or its end.
pub(super) fn serve<F: Future>(ticket: Ticket, request: F) -> impl Future<Output = F::Output> {
    ACTIVE.scope(RefCell::new(Some(ticket)), request)
}

/// What became of a request that asked for a slot.
pub(super) enum Admit {
    Slot(Ticket),
    /// The client closed (or reset) its connection while it waited.
    Gone,
    /// The queue timeout passed, or the server is shutting down: answer
    /// `503`.
    Refused,
}

/// The slots of the public listeners (see the module docs).
pub struct Admission {
    slots: Arc<Slots>,
    state: Arc<ArcSwap<ProxyState>>,
    metrics: Arc<Metrics>,
    refusals_logged: LogGate,
}

impl Admission {
    /// `max_active` and `hold` are fixed for the process; `state`
    /// supplies the queue timeout of the configuration in force.
    pub fn new(
        max_active: usize,
        hold: Duration,
        state: Arc<ArcSwap<ProxyState>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            slots: Arc::new(Slots::new(max_active, hold)),
            state,
            metrics,
            refusals_logged: LogGate::default(),
        }
    }

    /// A slot now, or after waiting in line. `client` is the request's
    /// stream and the bytes read from it so far (HTTP/1), read on while
    /// the request waits; `None` for an HTTP/2 stream, whose connection
    /// pingora reads.
    pub(super) async fn admit<S: AsyncRead + Unpin>(
        &self,
        client: Option<(&mut S, &mut BytesMut)>,
        shutdown: &ShutdownWatch,
    ) -> Admit {
        match self.slots.try_admit() {
            Some(ticket) => Admit::Slot(ticket),
            // Boxed: inline, the wait's state (timers, the semaphore's
            // queue node, the watch on the client) would be part of the
            // caller's future, which every connection holds through its
            // keep-alive waits.
            None => Box::pin(self.wait(client, shutdown)).await,
        }
    }

    async fn wait<S: AsyncRead + Unpin>(
        &self,
        mut client: Option<(&mut S, &mut BytesMut)>,
        shutdown: &ShutdownWatch,
    ) -> Admit {
        let queue_timeout =
            Duration::from_millis(self.state.load().generation.config.limits.queue_timeout_ms);
        let _queued = Queued::new(&self.metrics);
        let started = tokio::time::Instant::now();
        let slot = self.slots.admit(queue_timeout);
        tokio::pin!(slot);
        let shutting_down = super::conn::shutdown_signalled(shutdown);
        tokio::pin!(shutting_down);
        loop {
            tokio::select! {
                biased;
                ticket = &mut slot => {
                    return match ticket {
                        Some(ticket) => {
                            self.metrics
                                .limits
                                .queue_wait
                                .observe(started.elapsed().as_secs_f64());
                            Admit::Slot(ticket)
                        }
                        None => {
                            self.shed(queue_timeout);
                            Admit::Refused
                        }
                    };
                }
                () = &mut shutting_down => return Admit::Refused,
                closed = closed(&mut client) => {
                    if closed {
                        self.metrics.limits.requests_abandoned.inc();
                        return Admit::Gone;
                    }
                }
            }
        }
    }

    fn shed(&self, queue_timeout: Duration) {
        self.metrics.limits.requests_shed.inc();
        if let Some(suppressed) = self.refusals_logged.admit() {
            tracing::warn!(
                ?queue_timeout,
                suppressed,
                "request refused: limits.max_active_requests requests were active for the whole queue timeout"
            );
        }
    }
}

/// Reads a waiting client's socket once: `true` when it closed or failed.
/// Bytes that arrive (a body, a pipelined request) are kept for pingora;
/// once [`WATCH_LIMIT`] are held, or without a stream, it never returns.
async fn closed<S: AsyncRead + Unpin>(client: &mut Option<(&mut S, &mut BytesMut)>) -> bool {
    let Some((stream, held)) = client else {
        return std::future::pending().await;
    };
    if held.len() >= WATCH_LIMIT {
        return std::future::pending().await;
    }
    !matches!(super::conn::read_appending(*stream, held).await, Ok(n) if n > 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn release_gives_the_slot_back_once_and_only_inside_a_request() {
        let slots = Arc::new(Slots::new(1, Duration::from_secs(60)));
        // Outside a request: nothing to give back, no panic.
        release();
        let ticket = slots.try_admit().unwrap();
        serve(ticket, async {
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

    #[tokio::test]
    async fn a_request_that_ends_without_release_gives_its_slot_back() {
        let slots = Arc::new(Slots::new(1, Duration::from_secs(60)));
        let ticket = slots.try_admit().unwrap();
        serve(ticket, async {
            assert!(slots.try_admit().is_none());
        })
        .await;
        let ticket = slots.try_admit().expect("given back at the end");
        // Dropped unfinished (the client went away): given back too.
        let abandoned = serve(ticket, std::future::pending::<()>());
        drop(abandoned);
        assert!(slots.try_admit().is_some());
    }

    #[tokio::test]
    async fn a_waiting_client_that_closes_is_seen_and_its_bytes_are_kept() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let mut held = BytesMut::from(&b"POST / HTTP/1.1\r\n\r\n"[..]);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"body")
            .await
            .unwrap();
        let mut watching = Some((&mut server, &mut held));
        assert!(!closed(&mut watching).await, "bytes are not a close");
        drop(client);
        assert!(closed(&mut watching).await);
        assert!(held.ends_with(b"\r\n\r\nbody"));
    }
}
