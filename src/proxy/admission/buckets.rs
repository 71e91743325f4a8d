//! The two epoch buckets behind [`Slots`](super::slots::Slots): the
//! lock-free part of admission, apart from the clock and the semaphore so
//! that a model checker can run it.
//!
//! Rule: a slot counted in a bucket is given back exactly once — by
//! [`Buckets::release`] if its bucket still holds its epoch, or by whoever
//! moves the bucket on ([`Buckets::count_in`] or [`Buckets::sweep`]), never
//! both. Each bucket is one atomic word, `pack(epoch, count)`, and every
//! change to it is one compare-and-swap, so the count a sweep returns and
//! the count a release decrements are the same number read once.
//!
//! The word type is a parameter ([`Word`]) only so the `loom` model tests
//! below check this very code with loom's atomics; the product uses std's.

use std::sync::atomic::{AtomicU64, Ordering};

/// Low bits of a bucket word: the count (`max_active_requests` is at most
/// 1,000,000); high bits: the epoch (2^40 epochs of a millisecond at the
/// least are 34 years).
const COUNT_BITS: u32 = 24;
pub(super) const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn pack(epoch: u64, count: u64) -> u64 {
    epoch << COUNT_BITS | count
}

fn unpack(word: u64) -> (u64, u64) {
    (word >> COUNT_BITS, word & COUNT_MASK)
}

/// The atomic word a bucket is (std's `AtomicU64`, or loom's in tests).
pub(super) trait Word {
    fn new(value: u64) -> Self;
    fn load(&self, order: Ordering) -> u64;
    fn compare_exchange_weak(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
}

/// The same four methods on each atomic type (they have no common trait).
macro_rules! word {
    ($atomic:ty) => {
        impl Word for $atomic {
            fn new(value: u64) -> Self {
                <$atomic>::new(value)
            }
            fn load(&self, order: Ordering) -> u64 {
                <$atomic>::load(self, order)
            }
            fn compare_exchange_weak(
                &self,
                current: u64,
                new: u64,
                success: Ordering,
                failure: Ordering,
            ) -> Result<u64, u64> {
                <$atomic>::compare_exchange_weak(self, current, new, success, failure)
            }
        }
    };
}

word!(AtomicU64);
#[cfg(test)]
word!(loom::sync::atomic::AtomicU64);

/// `[even epoch, odd epoch]`: `pack(epoch, requests admitted then and still
/// counting)`.
pub(super) struct Buckets<W = AtomicU64>([W; 2]);

impl<W: Word> Buckets<W> {
    pub(super) fn new() -> Self {
        Self([W::new(pack(0, 0)), W::new(pack(1, 0))])
    }

    /// Counts one request in the bucket of `epoch`, moving the bucket on
    /// first if it still holds an older epoch of that parity. Returns the
    /// epoch the request counts in (a later one of the same parity if
    /// another thread, with a later clock reading, moved the bucket there
    /// first) and the slots of the old epoch it swept, to be given back.
    pub(super) fn count_in(&self, mut epoch: u64) -> (u64, u64) {
        let bucket = &self.0[(epoch & 1) as usize];
        let mut word = bucket.load(Ordering::Acquire);
        loop {
            let (at, count) = unpack(word);
            let (next, swept) = if at == epoch {
                (pack(epoch, count + 1), 0)
            } else if at < epoch {
                (pack(epoch, 1), count)
            } else {
                epoch = at;
                (pack(at, count + 1), 0)
            };
            match bucket.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return (epoch, swept),
                Err(current) => word = current,
            }
        }
    }

    /// The request counted in `epoch` is done: 1 if its slot is to be given
    /// back, 0 if a sweep already returned it.
    pub(super) fn release(&self, epoch: u64) -> u64 {
        let bucket = &self.0[(epoch & 1) as usize];
        let mut word = bucket.load(Ordering::Acquire);
        loop {
            let (at, count) = unpack(word);
            if at != epoch || count == 0 {
                return 0;
            }
            match bucket.compare_exchange_weak(
                word,
                pack(at, count - 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return 1,
                Err(current) => word = current,
            }
        }
    }

    /// Moves on every bucket whose epoch is two or more behind `now`;
    /// returns the slots they still counted, to be given back.
    pub(super) fn sweep(&self, now: u64) -> u64 {
        let mut returned = 0;
        for bucket in &self.0 {
            let mut word = bucket.load(Ordering::Acquire);
            loop {
                let (at, count) = unpack(word);
                if at + 2 > now || count == 0 {
                    break;
                }
                // Moved on by two epochs: still of its parity, never again
                // the epoch of a ticket that counted in it.
                match bucket.compare_exchange_weak(
                    word,
                    pack(at + 2, 0),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        returned += count;
                        break;
                    }
                    Err(current) => word = current,
                }
            }
        }
        returned
    }

    /// `(epoch, count)` of each bucket, even first.
    #[cfg(test)]
    pub(super) fn read(&self) -> [(u64, u64); 2] {
        [0, 1].map(|i| unpack(self.0[i].load(Ordering::Acquire)))
    }
}

/// Exhaustive interleavings (loom) of the operations that race on one
/// bucket: admissions at an old and a new clock reading, releases, sweeps
/// and the admission that sweeps. Each operation returns the slots it gave
/// back; each model asserts the rule on their sum: after every thread is
/// done and a final sweep, the slots given back equal the slots taken.
#[cfg(test)]
mod model {
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicU64 as LoomU64;
    use loom::thread;

    use super::Buckets;

    type Shared = Arc<Buckets<LoomU64>>;

    fn spawn(
        b: &Shared,
        op: impl FnOnce(&Buckets<LoomU64>) -> u64 + 'static,
    ) -> thread::JoinHandle<u64> {
        let b = b.clone();
        thread::spawn(move || op(&b))
    }

    /// After every thread joined: sweeps far ahead, checks every bucket is
    /// empty, and returns what that sweep gave back.
    fn settle(b: &Buckets<LoomU64>) -> u64 {
        let swept = b.sweep(u64::from(u32::MAX));
        assert!(b.read().iter().all(|&(_, count)| count == 0));
        swept
    }

    /// A request ending while a sweep finds its bucket two epochs old: one
    /// of them, never both, gives its slot back.
    #[test]
    fn a_release_racing_a_sweep_returns_the_slot_once() {
        loom::model(|| {
            let b: Shared = Arc::new(Buckets::new());
            let (epoch, _) = b.count_in(0);
            let releaser = spawn(&b, move |b| b.release(epoch));
            let swept = b.sweep(2);
            assert_eq!(releaser.join().unwrap() + swept, 1);
            assert_eq!(settle(&b), 0);
        });
    }

    /// An admission two epochs on takes over the bucket of an old request
    /// while that request ends and a sweep runs: the old slot comes back
    /// once, the new request counts in epoch 2, and its release returns
    /// its own.
    #[test]
    fn an_admission_that_sweeps_races_a_release_and_a_sweep() {
        loom::model(|| {
            let b: Shared = Arc::new(Buckets::new());
            let (old, _) = b.count_in(0);
            let releaser = spawn(&b, move |b| b.release(old));
            let sweeper = spawn(&b, |b| b.sweep(2));
            let (fresh, swept) = b.count_in(2);
            assert_eq!(fresh, 2);
            let old_back = swept + releaser.join().unwrap() + sweeper.join().unwrap();
            assert_eq!(old_back, 1);
            assert_eq!(b.release(fresh), 1);
            assert_eq!(settle(&b), 0);
        });
    }

    /// Two admissions with different clock readings of the same parity
    /// (epoch 1 read before epoch 3 moved the bucket on): both count, and
    /// each slot comes back once.
    #[test]
    fn admissions_with_stale_and_fresh_clocks_both_count() {
        loom::model(|| {
            let b: Shared = Arc::new(Buckets::new());
            let stale = spawn(&b, |b| {
                let (at, swept) = b.count_in(1);
                assert!(at == 1 || at == 3, "{at}");
                swept + b.release(at)
            });
            let (at, swept) = b.count_in(3);
            assert_eq!(at, 3);
            // The stale request's slot is back once: by its release, or,
            // if it counted in epoch 1, by the admission at epoch 3 that
            // found epoch 1 two epochs old (its release then finds nothing).
            assert_eq!(stale.join().unwrap() + swept, 1);
            assert_eq!(b.release(at), 1);
            assert_eq!(settle(&b), 0);
        });
    }

    /// Two requests of one epoch end while a sweep runs: the count is
    /// returned whole, once, whoever wins each race.
    #[test]
    fn two_releases_and_a_sweep_lose_and_repeat_nothing() {
        loom::model(|| {
            let b: Shared = Arc::new(Buckets::new());
            let (first, _) = b.count_in(0);
            let (second, _) = b.count_in(0);
            let releaser = spawn(&b, move |b| b.release(first));
            let sweeper = spawn(&b, |b| b.sweep(2));
            let mine = b.release(second);
            assert_eq!(mine + releaser.join().unwrap() + sweeper.join().unwrap(), 2);
            assert_eq!(settle(&b), 0);
        });
    }
}
