//! The slot accounting behind admission, without a timer per request.
//!
//! Rule: every slot taken goes back exactly once — by its request when the
//! app answers or the request ends, or, once its hold has passed, by a
//! sweep — and waiters get freed slots in arrival order.
//!
//! Time is cut into *epochs* one hold long. A request counts in the bucket
//! of the epoch it was admitted in; there are two buckets (even and odd
//! epochs), each one atomic word holding its epoch and its count. When a
//! bucket's epoch is two or more behind the clock, its requests are past
//! their hold: whoever next touches the bucket (an admission into the
//! current epoch of the same parity, or the sweeper) zeroes it, moves it
//! on, and returns its count of slots at once. A request ending later finds
//! its bucket moved on and returns nothing. Both are one compare-and-swap on
//! the same word, so a slot can never go back twice or not at all. A
//! request therefore stops counting between one and two holds after its
//! admission. The words and their compare-and-swaps are
//! [`Buckets`](super::buckets::Buckets), model-checked there with loom;
//! this module adds the clock, the semaphore and the waiters.
//!
//! Why not a timer per request: a tokio `Sleep` registered and cancelled
//! for every request cost ~1,200 instructions (callgrind), 1 % of a whole
//! proxied request, to enforce a bound that matters only while requests
//! wait. Here the fast path is two compare-and-swaps and a clock read; the
//! timer (one task, [`sweeper`]) runs only while someone is queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::buckets::{Buckets, COUNT_MASK};

/// `max_active_requests` slots and their holds.
pub(super) struct Slots {
    /// Slots not taken. Taken permits are forgotten; they come back through
    /// `add_permits` from whichever of release or sweep wins.
    free: Semaphore,
    /// Who counts in which epoch ([`Buckets`]).
    buckets: Buckets,
    start: Instant,
    hold_ms: u64,
    /// Requests waiting for a slot, and a wake-up for the sweeper when the
    /// first one arrives.
    waiting: AtomicUsize,
    queued: Notify,
    sweeper_started: AtomicBool,
}

/// One request's slot; dropping it gives the slot back (unless a sweep did).
pub(in crate::proxy) struct Ticket {
    slots: Arc<Slots>,
    epoch: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slots.release(self.epoch);
    }
}

impl Slots {
    pub(super) fn new(max_active: usize, hold: Duration) -> Self {
        let max = max_active
            .min(COUNT_MASK as usize)
            .min(Semaphore::MAX_PERMITS);
        Self {
            free: Semaphore::new(max),
            buckets: Buckets::new(),
            start: Instant::now(),
            hold_ms: u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1),
            waiting: AtomicUsize::new(0),
            queued: Notify::new(),
            sweeper_started: AtomicBool::new(false),
        }
    }

    fn epoch(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX) / self.hold_ms
    }

    /// A slot if one is free now.
    pub(super) fn try_admit(self: &Arc<Self>) -> Option<Ticket> {
        self.free.try_acquire().ok()?.forget();
        Some(self.count_in())
    }

    /// Waits for a slot, in arrival order, for at most `timeout`.
    pub(super) async fn admit(self: &Arc<Self>, timeout: Duration) -> Option<Ticket> {
        if !self.sweeper_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweeper(Arc::downgrade(self)));
        }
        let _waiting = Waiting::new(self);
        // Slots past their hold that nobody has swept yet are free now.
        self.sweep();
        match tokio::time::timeout(timeout, self.free.acquire()).await {
            Ok(Ok(permit)) => {
                permit.forget();
                Some(self.count_in())
            }
            // Err inside: the semaphore is never closed.
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Counts a request (its permit already taken) in the current epoch's
    /// bucket, sweeping the bucket first if it still holds an old epoch.
    fn count_in(self: &Arc<Self>) -> Ticket {
        let (epoch, swept) = self.buckets.count_in(self.epoch());
        self.give_back(swept);
        Ticket {
            slots: self.clone(),
            epoch,
        }
    }

    /// The request of `epoch` is done: its slot goes back unless a sweep
    /// already returned it.
    fn release(&self, epoch: u64) {
        self.give_back(self.buckets.release(epoch));
    }

    /// Returns the slots of every bucket whose epoch is two or more behind
    /// the clock.
    pub(super) fn sweep(&self) {
        self.give_back(self.buckets.sweep(self.epoch()));
    }

    fn give_back(&self, n: u64) {
        if n > 0 {
            self.free.add_permits(n as usize);
        }
    }

    /// When the next epoch begins.
    fn next_epoch_at(&self) -> Instant {
        self.start + Duration::from_millis((self.epoch() + 1).saturating_mul(self.hold_ms))
    }

    #[cfg(test)]
    fn free_slots(&self) -> usize {
        self.free.available_permits()
    }
}

/// Keeps the count of waiters true however a wait ends; the first waiter
/// wakes the sweeper.
struct Waiting<'a>(&'a Slots);

impl<'a> Waiting<'a> {
    fn new(slots: &'a Slots) -> Self {
        if slots.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            slots.queued.notify_one();
        }
        Self(slots)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sweeps at every epoch boundary while anyone waits; sleeps on
/// [`Slots::queued`] otherwise. Ends with the admission it serves.
async fn sweeper(slots: std::sync::Weak<Slots>) {
    loop {
        let Some(s) = slots.upgrade() else { return };
        if s.waiting.load(Ordering::Acquire) == 0 {
            // `notify_one` stores its permit when nobody is waiting yet, so
            // a waiter arriving between the check and here is not missed.
            // Bounded, so a dropped admission is noticed.
            let _ = tokio::time::timeout(Duration::from_secs(60), s.queued.notified()).await;
            continue;
        }
        let at = s.next_epoch_at();
        drop(s);
        tokio::time::sleep_until(at).await;
        if let Some(s) = slots.upgrade() {
            s.sweep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOLD: Duration = Duration::from_millis(100);

    #[tokio::test(start_paused = true)]
    async fn a_slot_comes_back_when_its_request_ends() {
        let slots = Arc::new(Slots::new(2, HOLD));
        let a = slots.try_admit().unwrap();
        let b = slots.try_admit().unwrap();
        assert!(slots.try_admit().is_none());
        drop(a);
        assert_eq!(slots.free_slots(), 1);
        let c = slots.try_admit().unwrap();
        drop((b, c));
        assert_eq!(slots.free_slots(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_held_past_two_epochs_is_swept_and_not_returned_again() {
        let slots = Arc::new(Slots::new(1, HOLD));
        let long = slots.try_admit().unwrap();
        tokio::time::advance(Duration::from_millis(150)).await;
        slots.sweep();
        assert_eq!(slots.free_slots(), 0, "one epoch on: still counting");
        tokio::time::advance(Duration::from_millis(50)).await;
        slots.sweep();
        assert_eq!(slots.free_slots(), 1, "two epochs on: swept");
        let next = slots.try_admit().unwrap();
        // The long request ending late must not return a second slot.
        drop(long);
        assert_eq!(slots.free_slots(), 0);
        drop(next);
        assert_eq!(slots.free_slots(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_admission_sweeps_its_bucket_of_two_epochs_ago() {
        let slots = Arc::new(Slots::new(2, HOLD));
        let old = slots.try_admit().unwrap();
        tokio::time::advance(Duration::from_millis(200)).await;
        // Epoch 2 counts in epoch 0's bucket: the admission takes the free
        // slot and returns the old request's.
        let fresh = slots.try_admit().unwrap();
        assert_eq!(slots.free_slots(), 1);
        drop(old);
        assert_eq!(slots.free_slots(), 1);
        drop(fresh);
        assert_eq!(slots.free_slots(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_a_swept_slot_within_two_holds_and_gives_up_at_its_timeout() {
        let slots = Arc::new(Slots::new(1, HOLD));
        let _long_poll = slots.try_admit().unwrap();
        let start = Instant::now();
        let waited = slots.admit(Duration::from_secs(5)).await;
        assert!(waited.is_some());
        let took = start.elapsed();
        assert!(took <= Duration::from_millis(200), "{took:?}");
        // Now the waiter holds the only slot, for less than an epoch.
        let start = Instant::now();
        assert!(slots.admit(Duration::from_millis(50)).await.is_none());
        assert_eq!(start.elapsed(), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_arrival_order() {
        let slots = Arc::new(Slots::new(1, Duration::from_secs(3600)));
        let first = slots.try_admit().unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (s, o) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let t = s.admit(Duration::from_secs(60)).await.unwrap();
                o.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(t);
            }));
            // Each waiter queues before the next is spawned.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        assert_eq!(slots.free_slots(), 1);
    }

    /// The proptest interleaves one thread; here threads race for real:
    /// admissions, releases and sweeps at a 1 ms hold, so buckets turn
    /// over while they run. A slot returned twice would leave more free
    /// slots than there are; a lost one, fewer.
    #[test]
    fn threads_racing_admissions_releases_and_sweeps_lose_no_slot() {
        const CAP: usize = 8;
        let slots = Arc::new(Slots::new(CAP, Duration::from_millis(1)));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = slots.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..50_000usize {
                        held.extend(s.try_admit());
                        if held.len() > 2 || (i + t) % 3 == 0 {
                            held.pop();
                        }
                        if i % 7 == t {
                            s.sweep();
                        }
                        assert!(s.free_slots() <= CAP, "a slot came back twice");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(slots.free_slots(), CAP);
    }

    proptest! {
        /// Any interleaving of admissions, releases, sweeps and clock
        /// steps: a bucket counts exactly the requests still held from its
        /// epoch, the slots free plus those is the capacity, and once every
        /// request has ended all slots are free.
        #[test]
        fn every_slot_goes_back_exactly_once(
            ops in proptest::collection::vec((0u8..4, 0usize..8, 0u64..120), 1..200)
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                const CAP: usize = 4;
                let slots = Arc::new(Slots::new(CAP, HOLD));
                let mut held: Vec<Ticket> = Vec::new();
                for (op, pick, ms) in ops {
                    match op {
                        0 => held.extend(slots.try_admit()),
                        1 if !held.is_empty() => drop(held.swap_remove(pick % held.len())),
                        2 => slots.sweep(),
                        _ => tokio::time::advance(Duration::from_millis(ms)).await,
                    }
                    // Each bucket counts exactly the requests held since
                    // its epoch; the others were swept.
                    let mut counting = 0;
                    for (at, count) in slots.buckets.read() {
                        let live = held.iter().filter(|t| t.epoch == at).count();
                        prop_assert_eq!(count as usize, live);
                        counting += live;
                    }
                    prop_assert_eq!(slots.free_slots() + counting, CAP);
                }
                held.clear();
                prop_assert_eq!(slots.free_slots(), CAP);
                Ok(())
            })?;
        }
    }
}
