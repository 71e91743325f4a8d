//! pingora's fast timeouts, under which every upstream read and write runs
//! (`read_timeout_ms`, `PORTCULLIS PATCH` pingora-timeout 1: a thread
//! finds the 10 ms bucket it registered in last without searching its
//! tree). Each timeout must still fire at its own deadline, never at the
//! deadline of the bucket registered before it, and a fire racing its
//! waiter's first look at the timer must not be lost (pingora-timeout 2).

use std::time::{Duration, Instant};

use pingora::time::timeout;

/// A fast timeout on a future that never completes, started now (the
/// timer is registered when the task first polls it); how long it took to
/// fire.
fn started(d: Duration) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        let start = Instant::now();
        let fired = timeout(d, std::future::pending::<()>()).await;
        assert!(fired.is_err(), "a pending future completed");
        start.elapsed()
    })
}

#[tokio::test]
async fn each_fast_timeout_fires_at_its_own_deadline() {
    let short = Duration::from_millis(60);
    let long = Duration::from_secs(30);
    for round in 0..3 {
        // Registered in this order on this thread (tasks run in the order
        // spawned): the thread's last bucket is the long one when the
        // second short one registers, and the short one's again after.
        let first = started(short);
        let long_one = started(long);
        let shorts: Vec<_> = (0..20).map(|_| started(short)).collect();
        for (i, t) in std::iter::once(first).chain(shorts).enumerate() {
            let took = tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("a short timeout never fired")
                .unwrap();
            assert!(
                took >= short,
                "round {round}, {i}: fired early, after {took:?}"
            );
        }
        assert!(
            !long_one.is_finished(),
            "round {round}: the long timeout fired with the short ones"
        );
        long_one.abort();
    }
}

/// A fired flag that reads "not fired" once and fires its timer right
/// after: the window between a waiter's read of the flag and its wait, in
/// which the clock thread may fire the bucket.
struct FiresOnFirstRead<'a> {
    notify: &'a tokio::sync::Notify,
    set: std::sync::atomic::AtomicBool,
}

impl pingora::time::timer::Fired for FiresOnFirstRead<'_> {
    fn fired(&self) -> bool {
        let was = self.set.swap(true, std::sync::atomic::Ordering::SeqCst);
        if !was {
            self.notify.notify_waiters();
        }
        was
    }
}

/// A timer fired just after its waiter read the flag still ends the wait
/// (`PORTCULLIS PATCH` pingora-timeout 2). Waiting on a `Notified` created
/// after the read, as pingora did, misses that fire and waits forever:
/// the timeout of an upstream read would never come.
#[tokio::test]
async fn a_timer_fired_just_after_its_flag_was_read_ends_the_wait() {
    use pingora::time::timer::wait_fired;
    let notify = tokio::sync::Notify::new();
    let flag = FiresOnFirstRead {
        notify: &notify,
        set: false.into(),
    };
    tokio::time::timeout(Duration::from_secs(5), wait_fired(&notify, &flag))
        .await
        .expect("the fire was lost");
    // And a flag already set ends it at once, with nothing to wake it.
    tokio::time::timeout(Duration::from_secs(5), wait_fired(&notify, &flag))
        .await
        .expect("a fired flag did not end the wait");
}

/// An app that accepts and never answers: each request waits out
/// `read_timeout_ms` (a fast timeout) and gets a 504, the second as the
/// first, and not before its deadline.
#[tokio::test]
async fn an_upstream_that_never_answers_is_a_504_at_the_read_timeout() {
    use crate::support::env::*;
    use tokio::io::AsyncReadExt;

    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let app = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut s, _) = silent.accept().await.unwrap();
            // Read what comes, answer nothing.
            held.push(tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            }));
        }
    });
    let env = TestEnv::with(Options {
        upstream: Some(addr),
        read_timeout_ms: Some(400),
        ..Options::default()
    })
    .await;
    for attempt in 0..2 {
        let start = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            client().get(env.url("/public/slow")).send(),
        )
        .await
        .expect("no answer within 10 s")
        .unwrap();
        assert_eq!(r.status(), 504, "attempt {attempt}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(400),
            "attempt {attempt}: 504 before the read timeout, after {took:?}"
        );
    }
    app.abort();
}
