//! Wall-clock seconds, the unit of every expiry in the store and cookies.

/// Unix time in seconds (0 if the clock is before 1970, which only a broken
/// host reports; expiries then fail closed).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix time in milliseconds, for ordering and latency (SCIM `meta`
/// timestamps, webhook events and retries). Same failure mode as [`now`].
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Monotonic time for decisions that compare durations (a refetch at most
/// once per interval, a cache older than its refresh). The system clock in
/// production; a test hands a [`ManualClock`] to the component it builds
/// (through `auth::Factories::clock`) and moves time itself, so such limits
/// are checked exactly, without sleeping and without wall-clock bounds on a
/// loaded machine. There is no configuration key for it: only code that
/// builds the server can pass one.
#[derive(Clone, Default)]
pub struct Clock(Option<std::sync::Arc<ManualClock>>);

impl Clock {
    /// The system's monotonic clock (the default).
    pub fn system() -> Self {
        Self(None)
    }

    /// Time as `manual` says.
    pub fn manual(manual: std::sync::Arc<ManualClock>) -> Self {
        Self(Some(manual))
    }

    /// Now. For the system clock one branch more than `Instant::now()`.
    #[inline]
    pub fn now(&self) -> std::time::Instant {
        match &self.0 {
            None => std::time::Instant::now(),
            Some(m) => m.now(),
        }
    }

    /// Time since `earlier` (zero if `earlier` is later).
    #[inline]
    pub fn since(&self, earlier: std::time::Instant) -> std::time::Duration {
        self.now().saturating_duration_since(earlier)
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it.
#[derive(Debug)]
pub struct ManualClock {
    start: std::time::Instant,
    offset: std::sync::Mutex<std::time::Duration>,
}

impl ManualClock {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            start: std::time::Instant::now(),
            offset: std::sync::Mutex::new(std::time::Duration::ZERO),
        })
    }

    pub fn now(&self) -> std::time::Instant {
        self.start + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn advance(&self, by: std::time::Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let m = ManualClock::new();
        let clock = Clock::manual(m.clone());
        let t0 = clock.now();
        assert_eq!(clock.since(t0), Duration::ZERO);
        m.advance(Duration::from_millis(1500));
        assert_eq!(clock.since(t0), Duration::from_millis(1500));
        assert_eq!(
            Clock::manual(m).since(t0 + Duration::from_secs(9)),
            Duration::ZERO
        );
        let system = Clock::system();
        assert!(system.now() >= t0);
    }
}
