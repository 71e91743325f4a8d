//! The verification state machine, as a pure function of the stored entry,
//! one lookup's outcome and the clock, so every transition is unit-tested
//! without DNS or a database.

use super::{DomainEntry, DomainStatus, LookupOutcome, Settings};
use crate::store::DomainCheck;

/// The state after one check.
///
/// - Found: `verified` from any state; `verified_at` keeps the original
///   time while the domain stays verified and restarts when it (re)enters.
/// - Missing (NXDOMAIN, no TXT, other tokens): `pending` becomes `failed`
///   once `pending_expiry` has passed since it was added; `verified`
///   becomes `lapsed` once the record has not been seen for longer than
///   `lapse_grace` (a DNS edit gone wrong must not lock a tenant out at
///   once; a transferred domain must not stay routed forever).
/// - Error (timeout, SERVFAIL...): never evidence of absence, so a
///   verified domain stays verified however long errors last. A pending
///   domain still fails at expiry: `failed` means "we stopped trying
///   automatically", which is about time, not evidence.
pub(super) fn next(
    entry: &DomainEntry,
    outcome: &LookupOutcome,
    now: i64,
    settings: &Settings,
) -> DomainCheck {
    let pending_expired = now.saturating_sub(entry.created_at) >= settings.pending_expiry;
    let (status, verified_at, last_seen_at, detail) = match outcome {
        LookupOutcome::Found => {
            let verified_at = match (entry.status, entry.verified_at) {
                (DomainStatus::Verified, Some(at)) => at,
                _ => now,
            };
            (
                DomainStatus::Verified,
                Some(verified_at),
                Some(now),
                "record found".to_owned(),
            )
        }
        LookupOutcome::Missing(detail) => {
            let status = match entry.status {
                DomainStatus::Pending if pending_expired => DomainStatus::Failed,
                DomainStatus::Verified => {
                    let seen = entry
                        .last_seen_at
                        .or(entry.verified_at)
                        .unwrap_or(entry.created_at);
                    if now.saturating_sub(seen) > settings.lapse_grace {
                        DomainStatus::Lapsed
                    } else {
                        DomainStatus::Verified
                    }
                }
                other => other,
            };
            (
                status,
                entry.verified_at,
                entry.last_seen_at,
                detail.clone(),
            )
        }
        LookupOutcome::Error(detail) => {
            let status = match entry.status {
                DomainStatus::Pending if pending_expired => DomainStatus::Failed,
                other => other,
            };
            (
                status,
                entry.verified_at,
                entry.last_seen_at,
                detail.clone(),
            )
        }
    };
    DomainCheck {
        status,
        last_checked_at: now,
        verified_at,
        last_seen_at,
        detail: Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const T0: i64 = 1_000_000;

    fn settings() -> Settings {
        Settings {
            record_prefix: "_portcullis-challenge".into(),
            pending_recheck: 60,
            pending_expiry: 1_000,
            reverify: 600,
            lapse_grace: 300,
            lookup_timeout: Duration::from_secs(1),
        }
    }

    fn entry(status: DomainStatus, last_seen_at: Option<i64>) -> DomainEntry {
        DomainEntry {
            domain: "acme.com".into(),
            tenant: "acme".into(),
            token: "t".into(),
            status,
            created_at: T0,
            last_checked_at: last_seen_at,
            verified_at: last_seen_at,
            last_seen_at,
            detail: None,
        }
    }

    fn missing() -> LookupOutcome {
        LookupOutcome::Missing("NXDOMAIN".into())
    }

    fn error() -> LookupOutcome {
        LookupOutcome::Error("SERVFAIL".into())
    }

    #[test]
    fn found_verifies_from_every_state() {
        for status in [
            DomainStatus::Pending,
            DomainStatus::Failed,
            DomainStatus::Lapsed,
            DomainStatus::Verified,
        ] {
            let next = next(
                &entry(status, None),
                &LookupOutcome::Found,
                T0 + 5,
                &settings(),
            );
            assert_eq!(next.status, DomainStatus::Verified, "{status}");
            assert_eq!(next.last_seen_at, Some(T0 + 5));
            assert_eq!(next.last_checked_at, T0 + 5);
        }
    }

    #[test]
    fn reverification_keeps_the_original_verified_at() {
        let e = entry(DomainStatus::Verified, Some(T0 + 10));
        let next = next(&e, &LookupOutcome::Found, T0 + 700, &settings());
        assert_eq!(next.verified_at, Some(T0 + 10));
        assert_eq!(next.last_seen_at, Some(T0 + 700));
    }

    #[test]
    fn pending_fails_only_after_expiry() {
        let e = entry(DomainStatus::Pending, None);
        assert_eq!(
            next(&e, &missing(), T0 + 999, &settings()).status,
            DomainStatus::Pending
        );
        assert_eq!(
            next(&e, &missing(), T0 + 1_000, &settings()).status,
            DomainStatus::Failed
        );
        assert_eq!(
            next(&e, &error(), T0 + 999, &settings()).status,
            DomainStatus::Pending
        );
        assert_eq!(
            next(&e, &error(), T0 + 1_000, &settings()).status,
            DomainStatus::Failed
        );
    }

    #[test]
    fn verified_lapses_only_when_missing_past_grace() {
        let e = entry(DomainStatus::Verified, Some(T0));
        let s = settings();
        assert_eq!(
            next(&e, &missing(), T0 + 300, &s).status,
            DomainStatus::Verified
        );
        let lapsed = next(&e, &missing(), T0 + 301, &s);
        assert_eq!(lapsed.status, DomainStatus::Lapsed);
        assert_eq!(lapsed.last_seen_at, Some(T0), "last sighting is kept");
        assert_eq!(lapsed.detail.as_deref(), Some("NXDOMAIN"));
        // Errors never lapse, however long they last.
        assert_eq!(
            next(&e, &error(), T0 + 1_000_000, &s).status,
            DomainStatus::Verified
        );
    }

    #[test]
    fn failed_and_lapsed_stay_put_without_the_record() {
        for status in [DomainStatus::Failed, DomainStatus::Lapsed] {
            let e = entry(status, None);
            assert_eq!(next(&e, &missing(), T0 + 5_000, &settings()).status, status);
            assert_eq!(next(&e, &error(), T0 + 5_000, &settings()).status, status);
        }
    }

    #[test]
    fn clock_extremes_do_not_overflow() {
        let e = entry(DomainStatus::Verified, Some(i64::MIN));
        assert_eq!(
            next(&e, &missing(), i64::MAX, &settings()).status,
            DomainStatus::Lapsed
        );
        let e = entry(DomainStatus::Pending, None);
        assert_eq!(
            next(&e, &missing(), i64::MIN, &settings()).status,
            DomainStatus::Pending
        );
    }
}
