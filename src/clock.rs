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
