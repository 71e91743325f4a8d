//! The in-process session cache: the SHA-256 of a session id → the
//! session, or "no such session", read from the store at most once per TTL.
//!
//! Three rules, each with its reason:
//!
//! - **One small entry per session.** A proxy holds every session active
//!   within the TTL; at 100,000 the per-entry bookkeeping is memory the
//!   operator sees. moka (which the other caches use) spends ~346 bytes an
//!   entry on its timer wheel, access and write deques and per-entry
//!   `Arc`s; `quick_cache` keeps the key, the value and a few bytes of
//!   CLOCK state in a slab, ~128 bytes (both measured alone: 100,000
//!   `[u8; 32]` keys with `mimalloc`, after a collect). The TTL is the
//!   fill time kept beside the value and checked on read; the
//!   housekeeping ([`SessionCache::sweep`]) drops what expired in a
//!   process nobody asks.
//! - **Invalidation takes effect before it returns.** A revocation is a
//!   `retain` that visits every entry under its shard's lock, so no
//!   request after it can read the revoked session from here. A directory
//!   change (a SCIM write: thousands a second in a bulk job, each needing
//!   its effect before the SCIM answer leaves) is recorded instead, by
//!   tenant and user with its time ([`SessionCache::mark_changed`]), and
//!   a read treats an entry filled before a change of its user as absent:
//!   O(1) per change rather than a pass over every entry (~2 ms at
//!   100,000), and one flag load per read while nothing changed within
//!   the TTL. Records older than the TTL go with the housekeeping.
//! - **A fill that raced an invalidation is not kept.** A fill reads the
//!   store, then inserts; a revocation or directory change between the two
//!   would find nothing to invalidate and the stale entry would live a
//!   whole TTL. Every invalidation bumps a generation first; a fill that
//!   sees it changed serves its own request (which was in flight before
//!   the change finished) and leaves the cache alone.
//!
//! Fills are not coalesced: concurrent first requests of one session each
//! read their row (a browser opens a handful of connections at most), and
//! during a store outage each fails on its own rather than queueing behind
//! the last waiter's timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

// tokio's clock: the same as std's, but tests can pause and advance it.
use tokio::time::Instant;

use super::ActiveSession;

/// What the cache knows of one session id.
#[derive(Clone)]
struct Entry {
    filled: Instant,
    /// `None`: the store has no such (live) session.
    session: Option<Arc<ActiveSession>>,
}

/// See the module documentation.
pub(super) struct SessionCache {
    map: quick_cache::sync::Cache<[u8; 32], Entry>,
    ttl: Duration,
    generation: AtomicU64,
    /// Directory changes younger than the TTL, by tenant.
    changed: RwLock<HashMap<String, TenantChanges>>,
    /// Whether `changed` holds any: all a read checks while it doesn't.
    any_changed: AtomicBool,
}

/// When a tenant's principals last changed: all of them, and by user.
#[derive(Debug, Default)]
struct TenantChanges {
    all: Option<Instant>,
    users: HashMap<String, Instant>,
}

/// Where a lookup's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Cache,
    Store,
}

impl SessionCache {
    pub(super) fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            map: quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            ttl,
            generation: AtomicU64::new(0),
            changed: RwLock::default(),
            any_changed: AtomicBool::new(false),
        }
    }

    /// The cached answer for `key` if it is younger than the TTL, else
    /// `fill`'s (kept unless an invalidation ran meanwhile).
    pub(super) async fn get_or_fill<E>(
        &self,
        key: &[u8; 32],
        fill: impl Future<Output = Result<Option<Arc<ActiveSession>>, E>>,
    ) -> Result<(Option<Arc<ActiveSession>>, Source), E> {
        let now = Instant::now();
        if let Some(entry) = self.map.get(key) {
            if self.fresh(&entry, now) {
                return Ok((entry.session, Source::Cache));
            }
            self.map.remove_if(key, |e| !self.fresh(e, now));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let session = fill.await?;
        if self.generation.load(Ordering::SeqCst) == generation {
            self.map.insert(
                *key,
                Entry {
                    filled: now,
                    session: session.clone(),
                },
            );
            // An invalidation that bumped the generation after the check
            // above ran its scan before or after this insert: after, it
            // removed the entry; before, the entry must go now (this
            // fill's own, not one a later fill put there).
            if self.generation.load(Ordering::SeqCst) != generation {
                self.map.remove_if(key, |e| e.filled == now);
            }
        }
        Ok((session, Source::Store))
    }

    /// Younger than the TTL, and filled after the last directory change
    /// of its user (a change at the very instant of the fill counts as
    /// after: the safe side).
    fn fresh(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.filled) < self.ttl && !self.changed_since(entry)
    }

    fn changed_since(&self, entry: &Entry) -> bool {
        if !self.any_changed.load(Ordering::SeqCst) {
            return false;
        }
        let Some(s) = &entry.session else {
            return false;
        };
        let Some(tenant) = s.principal.tenant.as_deref() else {
            return false;
        };
        let changed = self.changed.read().unwrap_or_else(PoisonError::into_inner);
        changed.get(tenant).is_some_and(|t| {
            t.all.is_some_and(|at| at >= entry.filled)
                || t.users
                    .get(&s.principal.user_id)
                    .is_some_and(|at| *at >= entry.filled)
        })
    }

    /// Records that the principals of `users` of `tenant` (`None`: all of
    /// its users) may have changed: from now on, sessions of theirs cached
    /// before are read again from the store.
    pub(super) fn mark_changed(&self, tenant: &str, users: Option<&[String]>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let now = Instant::now();
        let mut changed = self.changed.write().unwrap_or_else(PoisonError::into_inner);
        let t = changed.entry(tenant.to_owned()).or_default();
        match users {
            None => t.all = Some(now),
            Some(users) => {
                for u in users {
                    t.users.insert(u.clone(), now);
                }
            }
        }
        self.any_changed.store(true, Ordering::SeqCst);
    }

    pub(super) fn remove(&self, key: &[u8; 32]) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map.remove(key);
    }

    /// Drops every cached session for which `pred` holds.
    pub(super) fn remove_sessions(&self, pred: impl Fn(&ActiveSession) -> bool) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map
            .retain(|_, e| !e.session.as_deref().is_some_and(&pred));
    }

    pub(super) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map.clear();
    }

    /// Drops expired entries and lets every live session release what it
    /// holds past its use (`release`, e.g. an assertion too old to be sent
    /// again); returns how many entries remain.
    pub(super) fn sweep(&self, release: impl Fn(&ActiveSession)) -> usize {
        let now = Instant::now();
        {
            // A change older than the TTL is older than every live entry.
            let mut changed = self.changed.write().unwrap_or_else(PoisonError::into_inner);
            let old = |at: &Instant| now.saturating_duration_since(*at) >= self.ttl;
            changed.retain(|_, t| {
                t.all = t.all.filter(|at| !old(at));
                t.users.retain(|_, at| !old(at));
                t.all.is_some() || !t.users.is_empty()
            });
            self.any_changed
                .store(!changed.is_empty(), Ordering::SeqCst);
        }
        self.map.retain(|_, e| {
            let keep = self.fresh(e, now);
            if keep && let Some(s) = &e.session {
                release(s);
            }
            keep
        });
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Principal;
    use std::convert::Infallible;

    fn session(user: &str) -> Arc<ActiveSession> {
        Arc::new(ActiveSession::for_tests(Principal {
            user_id: user.into(),
            ..Principal::default()
        }))
    }

    async fn lookup(c: &SessionCache, key: u8, user: &str) -> (Option<String>, Source) {
        let s = session(user);
        let (got, source) = c
            .get_or_fill(&[key; 32], async { Ok::<_, Infallible>(Some(s)) })
            .await
            .unwrap();
        (got.map(|s| s.principal.user_id.clone()), source)
    }

    #[tokio::test(start_paused = true)]
    async fn a_fill_is_served_from_the_cache_until_the_ttl_passes() {
        let c = SessionCache::new(100, Duration::from_millis(200));
        assert_eq!(lookup(&c, 1, "a").await, (Some("a".into()), Source::Store));
        tokio::time::advance(Duration::from_millis(199)).await;
        assert_eq!(lookup(&c, 1, "b").await, (Some("a".into()), Source::Cache));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(lookup(&c, 1, "b").await, (Some("b".into()), Source::Store));
    }

    #[tokio::test]
    async fn no_such_session_is_cached_too() {
        let c = SessionCache::new(100, Duration::from_secs(60));
        let (got, source) = c
            .get_or_fill(&[7; 32], async { Ok::<_, Infallible>(None) })
            .await
            .unwrap();
        assert!(got.is_none());
        assert_eq!(source, Source::Store);
        assert_eq!(lookup(&c, 7, "a").await, (None, Source::Cache));
    }

    #[tokio::test]
    async fn a_failed_fill_caches_nothing() {
        let c = SessionCache::new(100, Duration::from_secs(60));
        let err = c
            .get_or_fill(&[3; 32], async {
                Err::<Option<Arc<ActiveSession>>, _>("down")
            })
            .await;
        assert_eq!(err.err(), Some("down"));
        assert_eq!(lookup(&c, 3, "a").await, (Some("a".into()), Source::Store));
    }

    #[tokio::test]
    async fn invalidation_removes_matching_sessions_at_once() {
        let c = SessionCache::new(100, Duration::from_secs(60));
        lookup(&c, 1, "alice").await;
        lookup(&c, 2, "bob").await;
        c.remove_sessions(|s| s.principal.user_id == "alice");
        assert_eq!(lookup(&c, 1, "x").await, (Some("x".into()), Source::Store));
        assert_eq!(
            lookup(&c, 2, "x").await,
            (Some("bob".into()), Source::Cache)
        );
        c.remove(&[2; 32]);
        assert_eq!(lookup(&c, 2, "y").await, (Some("y".into()), Source::Store));
        c.clear();
        assert_eq!(c.sweep(|_| {}), 0);
    }

    #[tokio::test]
    async fn a_fill_that_raced_an_invalidation_is_not_kept() {
        let c = SessionCache::new(100, Duration::from_secs(60));
        let s = session("alice");
        let (got, _) = c
            .get_or_fill(&[1; 32], async {
                // The revocation lands while the row is being read.
                c.remove_sessions(|s| s.principal.user_id == "alice");
                Ok::<_, Infallible>(Some(s))
            })
            .await
            .unwrap();
        // The request in flight is answered with what it read...
        assert_eq!(got.unwrap().principal.user_id, "alice");
        // ...but the next one reads the store again.
        assert_eq!(lookup(&c, 1, "x").await, (Some("x".into()), Source::Store));
    }

    fn tenant_session(tenant: &str, user: &str) -> Arc<ActiveSession> {
        Arc::new(ActiveSession::for_tests(Principal {
            user_id: user.into(),
            tenant: Some(tenant.into()),
            ..Principal::default()
        }))
    }

    async fn lookup_in(c: &SessionCache, key: u8, tenant: &str, user: &str) -> Source {
        let s = tenant_session(tenant, user);
        c.get_or_fill(&[key; 32], async { Ok::<_, Infallible>(Some(s)) })
            .await
            .unwrap()
            .1
    }

    #[tokio::test(start_paused = true)]
    async fn a_directory_change_refills_exactly_the_sessions_of_whom_it_names() {
        let c = SessionCache::new(100, Duration::from_secs(30));
        lookup_in(&c, 1, "acme", "alice").await;
        lookup_in(&c, 2, "acme", "bob").await;
        lookup_in(&c, 3, "globex", "alice").await;
        tokio::time::advance(Duration::from_millis(1)).await;
        c.mark_changed("acme", Some(&["alice".to_owned()]));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(lookup_in(&c, 1, "acme", "alice").await, Source::Store);
        assert_eq!(lookup_in(&c, 2, "acme", "bob").await, Source::Cache);
        assert_eq!(lookup_in(&c, 3, "globex", "alice").await, Source::Cache);
        // the refilled entry is after the change: kept
        assert_eq!(lookup_in(&c, 1, "acme", "alice").await, Source::Cache);
        // a tenant-wide change reaches everyone of the tenant
        tokio::time::advance(Duration::from_millis(1)).await;
        c.mark_changed("acme", None);
        assert_eq!(lookup_in(&c, 1, "acme", "alice").await, Source::Store);
        assert_eq!(lookup_in(&c, 2, "acme", "bob").await, Source::Store);
        assert_eq!(lookup_in(&c, 3, "globex", "alice").await, Source::Cache);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_at_the_instant_of_a_fill_refills_it() {
        let c = SessionCache::new(100, Duration::from_secs(30));
        lookup_in(&c, 1, "acme", "alice").await;
        c.mark_changed("acme", Some(&["alice".to_owned()]));
        assert_eq!(lookup_in(&c, 1, "acme", "alice").await, Source::Store);
    }

    #[tokio::test(start_paused = true)]
    async fn changes_older_than_the_ttl_are_forgotten() {
        let c = SessionCache::new(100, Duration::from_secs(30));
        c.mark_changed("acme", None);
        c.sweep(|_| {});
        assert!(c.any_changed.load(Ordering::SeqCst));
        tokio::time::advance(Duration::from_secs(30)).await;
        c.sweep(|_| {});
        assert!(!c.any_changed.load(Ordering::SeqCst));
        assert!(c.changed.read().unwrap().is_empty());
        lookup_in(&c, 1, "acme", "alice").await;
        assert_eq!(lookup_in(&c, 1, "acme", "alice").await, Source::Cache);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_drops_expired_entries_and_visits_live_ones() {
        let c = SessionCache::new(100, Duration::from_millis(200));
        lookup(&c, 1, "old").await;
        tokio::time::advance(Duration::from_millis(250)).await;
        lookup(&c, 2, "new").await;
        let seen = std::sync::Mutex::new(Vec::new());
        let left = c.sweep(|s| seen.lock().unwrap().push(s.principal.user_id.clone()));
        assert_eq!(left, 1);
        assert_eq!(*seen.lock().unwrap(), vec!["new".to_owned()]);
    }
}
