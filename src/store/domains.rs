//! Tenant email domains and the state of their DNS ownership proof.
//!
//! The store only persists; the verification policy (what counts as proof,
//! when a domain lapses) lives in `crate::domains`. Domains are stored
//! lower-case and the caller normalises them: the store compares bytes.

use std::fmt;
use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Inner, StoreError, check_text};

/// The column list, as a macro so queries stay `&'static str` literals
/// (sqlx refuses dynamically built SQL).
macro_rules! select_domains {
    ($($rest:literal),*) => {
        concat!(
            "SELECT domain, tenant, token, status, created_at, last_checked_at, \
             verified_at, last_seen_at, detail FROM domains ",
            $($rest),*
        )
    };
}

/// Where a domain stands in its verification life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainStatus {
    /// Added; the TXT record has not been seen yet.
    Pending,
    /// The TXT record was found; the domain routes logins.
    Verified,
    /// Still pending when the pending window ran out; no more automatic checks.
    Failed,
    /// Was verified, but the record has been missing past the grace period;
    /// no longer routes logins until the record is seen again.
    Lapsed,
}

impl DomainStatus {
    /// The stored (and displayed) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DomainStatus::Pending => "pending",
            DomainStatus::Verified => "verified",
            DomainStatus::Failed => "failed",
            DomainStatus::Lapsed => "lapsed",
        }
    }
}

impl fmt::Display for DomainStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DomainStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(DomainStatus::Pending),
            "verified" => Ok(DomainStatus::Verified),
            "failed" => Ok(DomainStatus::Failed),
            "lapsed" => Ok(DomainStatus::Lapsed),
            _ => Err(StoreError::Corrupt(
                "domains.status has an unknown value".into(),
            )),
        }
    }
}

/// One claimed domain as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    /// Lower-case domain name, without a trailing dot.
    pub domain: String,
    /// Owning tenant id.
    pub tenant: String,
    /// The random proof token expected in the TXT record.
    pub token: String,
    pub status: DomainStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// Last lookup, whatever its outcome.
    pub last_checked_at: Option<i64>,
    /// When the domain (last) became verified.
    pub verified_at: Option<i64>,
    /// Last time the expected record was actually found.
    pub last_seen_at: Option<i64>,
    /// Human-readable outcome of the last check ("no TXT record", "timeout", ...).
    pub detail: Option<String>,
}

/// The result of one check, written back as a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainCheck {
    pub status: DomainStatus,
    pub last_checked_at: i64,
    pub verified_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub detail: Option<String>,
}

/// Absolute cut-offs for [`DomainStore::list_due`]: the caller owns the
/// clock and the intervals, the store only compares numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueCutoffs {
    /// `pending` and `lapsed` domains last checked at or before this are
    /// due, and so are `verified` ones whose last check did not find the
    /// record (they are inside their grace period and must be watched).
    pub recheck_before: i64,
    /// `verified` domains last checked at or before this are due.
    pub reverify_before: i64,
}

/// The domains view of a [`Store`](super::Store): `store.domains()`.
#[derive(Clone, Copy)]
pub struct DomainStore<'a> {
    pub(super) inner: &'a Inner,
}

impl DomainStore<'_> {
    /// Claims a domain for a tenant. Idempotent for the same tenant (the
    /// existing row, with its original token, is returned so a repeated
    /// `domains add` prints the record already published). A domain owned
    /// by another tenant is a [`StoreError::Conflict`] naming the owner.
    /// `ON CONFLICT DO NOTHING` makes concurrent claims race-free: exactly
    /// one insert wins and everyone reads the winner.
    pub async fn insert(&self, d: &DomainRecord) -> Result<DomainRecord, StoreError> {
        for (field, value) in [
            ("domain", d.domain.as_str()),
            ("tenant", d.tenant.as_str()),
            ("token", d.token.as_str()),
        ] {
            check_text(field, value)?;
        }
        if let Some(detail) = &d.detail {
            check_text("detail", detail)?;
        }
        // Retried because a concurrent `delete` can remove the row
        // between our insert (which then did nothing) and our read.
        for _ in 0..3 {
            sqlx::query(
                "INSERT INTO domains (domain, tenant, token, status, created_at, \
                 last_checked_at, verified_at, last_seen_at, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (domain) DO NOTHING",
            )
            .bind(d.domain.as_str())
            .bind(d.tenant.as_str())
            .bind(d.token.as_str())
            .bind(d.status.as_str())
            .bind(d.created_at)
            .bind(d.last_checked_at)
            .bind(d.verified_at)
            .bind(d.last_seen_at)
            .bind(d.detail.as_deref())
            .execute(&self.inner.pool)
            .await?;
            let Some(existing) = self.get(&d.domain).await? else {
                continue;
            };
            if existing.tenant != d.tenant {
                return Err(StoreError::Conflict {
                    owner: existing.tenant,
                });
            }
            return Ok(existing);
        }
        Err(StoreError::Corrupt(
            "domain row kept vanishing while being inserted (concurrent removal)".into(),
        ))
    }

    /// One domain, or `None` if nobody claimed it.
    pub async fn get(&self, domain: &str) -> Result<Option<DomainRecord>, StoreError> {
        check_text("domain", domain)?;
        let row = sqlx::query(select_domains!("WHERE domain = $1"))
            .bind(domain)
            .fetch_optional(&self.inner.pool)
            .await?;
        row.as_ref().map(decode_domain).transpose()
    }

    /// All domains, or one tenant's, ordered by domain name.
    pub async fn list(&self, tenant: Option<&str>) -> Result<Vec<DomainRecord>, StoreError> {
        let rows = match tenant {
            Some(tenant) => {
                check_text("tenant", tenant)?;
                sqlx::query(select_domains!("WHERE tenant = $1 ORDER BY domain"))
                    .bind(tenant)
                    .fetch_all(&self.inner.pool)
                    .await?
            }
            None => {
                sqlx::query(select_domains!("ORDER BY domain"))
                    .fetch_all(&self.inner.pool)
                    .await?
            }
        };
        rows.iter().map(decode_domain).collect()
    }

    /// Writes a check's outcome. Guarded by the token the check looked for:
    /// if the domain was removed and re-added (new token) while the lookup
    /// was in flight, the stale result must not verify the new claim.
    /// Returns whether a row was updated.
    pub async fn update_check(
        &self,
        domain: &str,
        token: &str,
        check: &DomainCheck,
    ) -> Result<bool, StoreError> {
        check_text("domain", domain)?;
        check_text("token", token)?;
        if let Some(detail) = &check.detail {
            check_text("detail", detail)?;
        }
        let updated = sqlx::query(
            "UPDATE domains SET status = $3, last_checked_at = $4, verified_at = $5, \
             last_seen_at = $6, detail = $7 WHERE domain = $1 AND token = $2",
        )
        .bind(domain)
        .bind(token)
        .bind(check.status.as_str())
        .bind(check.last_checked_at)
        .bind(check.verified_at)
        .bind(check.last_seen_at)
        .bind(check.detail.as_deref())
        .execute(&self.inner.pool)
        .await?
        .rows_affected();
        Ok(updated > 0)
    }

    /// Releases a domain (it can then be claimed again, by anyone, with a
    /// new token). Returns whether it existed.
    pub async fn delete(&self, domain: &str) -> Result<bool, StoreError> {
        check_text("domain", domain)?;
        let deleted = sqlx::query("DELETE FROM domains WHERE domain = $1")
            .bind(domain)
            .execute(&self.inner.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    /// Domains the background loop should look up now, least recently
    /// checked first, at most `limit`. `failed` domains are never due:
    /// they wait for an operator's explicit `verify`.
    pub async fn list_due(
        &self,
        cutoffs: DueCutoffs,
        limit: i64,
    ) -> Result<Vec<DomainRecord>, StoreError> {
        let rows = sqlx::query(select_domains!(
            "WHERE \
             (status IN ('pending', 'lapsed') \
               AND (last_checked_at IS NULL OR last_checked_at <= $1)) \
             OR (status = 'verified' AND (last_checked_at IS NULL \
               OR last_checked_at <= $2 \
               OR ((last_seen_at IS NULL OR last_seen_at < last_checked_at) \
                   AND last_checked_at <= $1))) \
             ORDER BY COALESCE(last_checked_at, 0), domain LIMIT $3"
        ))
        .bind(cutoffs.recheck_before)
        .bind(cutoffs.reverify_before)
        .bind(limit)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(decode_domain).collect()
    }
}

/// The domains view of a [`WriteTx`](super::WriteTx): `tx.domains()`, for
/// claims changed together with their audit event.
pub struct DomainTx<'a> {
    pub(super) write: &'a mut super::WriteTx,
}

impl DomainTx<'_> {
    /// [`DomainStore::insert`] inside the transaction: the existing row of
    /// the same tenant, or [`StoreError::Conflict`] naming the owner.
    pub async fn insert(&mut self, d: &DomainRecord) -> Result<DomainRecord, StoreError> {
        for (field, value) in [
            ("domain", d.domain.as_str()),
            ("tenant", d.tenant.as_str()),
            ("token", d.token.as_str()),
        ] {
            check_text(field, value)?;
        }
        let tx = &mut self.write.tx;
        sqlx::query(
            "INSERT INTO domains (domain, tenant, token, status, created_at, \
             last_checked_at, verified_at, last_seen_at, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (domain) DO NOTHING",
        )
        .bind(d.domain.as_str())
        .bind(d.tenant.as_str())
        .bind(d.token.as_str())
        .bind(d.status.as_str())
        .bind(d.created_at)
        .bind(d.last_checked_at)
        .bind(d.verified_at)
        .bind(d.last_seen_at)
        .bind(d.detail.as_deref())
        .execute(&mut **tx)
        .await?;
        let existing = self.get(&d.domain).await?.ok_or_else(|| {
            StoreError::Corrupt("domain row vanished inside its transaction".into())
        })?;
        if existing.tenant != d.tenant {
            return Err(StoreError::Conflict {
                owner: existing.tenant,
            });
        }
        Ok(existing)
    }

    /// One domain as this transaction sees it.
    pub async fn get(&mut self, domain: &str) -> Result<Option<DomainRecord>, StoreError> {
        check_text("domain", domain)?;
        let row = sqlx::query(select_domains!("WHERE domain = $1"))
            .bind(domain)
            .fetch_optional(&mut *self.write.tx)
            .await?;
        row.as_ref().map(decode_domain).transpose()
    }

    /// [`DomainStore::update_check`] inside the transaction.
    pub async fn update_check(
        &mut self,
        domain: &str,
        token: &str,
        check: &DomainCheck,
    ) -> Result<bool, StoreError> {
        check_text("domain", domain)?;
        check_text("token", token)?;
        if let Some(detail) = &check.detail {
            check_text("detail", detail)?;
        }
        let updated = sqlx::query(
            "UPDATE domains SET status = $3, last_checked_at = $4, verified_at = $5, \
             last_seen_at = $6, detail = $7 WHERE domain = $1 AND token = $2",
        )
        .bind(domain)
        .bind(token)
        .bind(check.status.as_str())
        .bind(check.last_checked_at)
        .bind(check.verified_at)
        .bind(check.last_seen_at)
        .bind(check.detail.as_deref())
        .execute(&mut *self.write.tx)
        .await?
        .rows_affected();
        Ok(updated > 0)
    }

    /// Releases one domain of `tenant`; returns whether it existed.
    pub async fn delete(&mut self, tenant: &str, domain: &str) -> Result<bool, StoreError> {
        check_text("domain", domain)?;
        check_text("tenant", tenant)?;
        let deleted = sqlx::query("DELETE FROM domains WHERE domain = $1 AND tenant = $2")
            .bind(domain)
            .bind(tenant)
            .execute(&mut *self.write.tx)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    /// Releases every domain of `tenant` (the tenant is deleted).
    pub async fn delete_tenant(&mut self, tenant: &str) -> Result<u64, StoreError> {
        check_text("tenant", tenant)?;
        Ok(sqlx::query("DELETE FROM domains WHERE tenant = $1")
            .bind(tenant)
            .execute(&mut *self.write.tx)
            .await?
            .rows_affected())
    }
}

/// Maps a row to a record; an unknown status is `Corrupt`, never guessed.
fn decode_domain(row: &AnyRow) -> Result<DomainRecord, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(DomainRecord {
        domain: row.try_get("domain")?,
        tenant: row.try_get("tenant")?,
        token: row.try_get("token")?,
        status: status.parse()?,
        created_at: row.try_get("created_at")?,
        last_checked_at: row.try_get("last_checked_at")?,
        verified_at: row.try_get("verified_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        detail: row.try_get("detail")?,
    })
}
