//! Tenant email domains and their DNS TXT ownership proof.
//!
//! A tenant claims a domain (`add`), publishes
//! `{record_prefix}.{domain} TXT "portcullis-domain-verification={token}"`,
//! and the domain routes logins to that tenant only while it is `verified`.
//! Why DNS: only whoever controls a zone can publish there, so a tenant
//! cannot route (and later assert) another organisation's email addresses.
//!
//! Life cycle (the exact rules are in `state::next`):
//!
//! - `pending`: added, record not seen yet; re-checked every
//!   `pending_recheck_seconds`. Found → `verified`; still missing after
//!   `pending_expiry_seconds` → `failed`.
//! - `failed`: the background loop gives up; an explicit `verify` that
//!   finds the record still promotes it to `verified`.
//! - `verified`: routes logins; re-verified every `reverify_seconds` (and at
//!   the pending pace while the record is missing). Missing for longer than
//!   `lapse_grace_seconds` since it was last seen → `lapsed`.
//! - `lapsed`: stops routing; re-checked like pending; found → `verified`.
//!
//! A resolver *error* (timeout, SERVFAIL) is never evidence that a record
//! is gone: it is recorded in `detail` but only NXDOMAIN or a TXT set
//! without our token count as "missing".

mod lookup;
mod name;
mod state;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::DnsConfig;
use crate::store::{DomainRecord, DueCutoffs, Store, StoreError};

pub use crate::store::DomainStatus;
pub use lookup::LookupOutcome;
pub(crate) use lookup::resolver_builder;
pub use name::normalize_domain;

/// A claimed domain and the state of its proof (the stored row).
pub type DomainEntry = DomainRecord;

/// The fixed part of the TXT value; the token follows the `=`.
pub const TXT_VALUE_PREFIX: &str = "portcullis-domain-verification=";

/// How many lookups one background pass runs at once: enough to get
/// through thousands of domains per interval, few enough not to look like
/// a flood to the resolver.
const MAX_CONCURRENT_CHECKS: usize = 8;

/// How many due domains one pass picks up; the rest wait for the next tick,
/// so a huge backlog cannot make one pass run for hours.
const MAX_CHECKS_PER_PASS: i64 = 1_000;

/// Everything that can go wrong managing domains. Messages are written for
/// the operator running `portcullis domains ...`.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Not a usable domain name; the message says what is wrong.
    #[error("`{input}` is not a valid domain: {reason}")]
    Invalid { input: String, reason: String },

    /// Anyone can get an address there, so nobody can own it.
    #[error("`{0}` is a public mail provider; no tenant can own it")]
    PublicMail(String),

    /// One domain, one owner.
    #[error(
        "`{domain}` is already claimed by tenant `{owner}`; a domain belongs to one tenant \
         (remove it there first with `portcullis domains remove`)"
    )]
    Conflict { domain: String, owner: String },

    #[error("`{0}` has not been added; run `portcullis domains add` first")]
    NotFound(String),

    #[error("no tenant with id `{0}` in the configuration")]
    UnknownTenant(String),

    /// The CLI only adds domains the configuration already lists, so config
    /// stays the single description of who owns what.
    #[error(
        "`{domain}` is not listed for tenant `{tenant}`; add it to that tenant's \
         `[[tenants]] domains` in the configuration first"
    )]
    NotInConfig { tenant: String, domain: String },

    /// The resolver could not be set up (bad nameserver, unreadable resolv.conf).
    #[error("DNS resolver: {0}")]
    Resolver(String),

    #[error("the system random number generator failed")]
    Random,

    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts from one background pass, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Domains looked up.
    pub checked: usize,
    /// Became verified in this pass.
    pub verified: usize,
    /// Became lapsed in this pass.
    pub lapsed: usize,
    /// Became failed in this pass.
    pub failed: usize,
    /// Lookups that ended in a resolver error (no state change because of it).
    pub dns_errors: usize,
    /// Checks whose result could not be read or written.
    pub store_errors: usize,
}

/// Timings from `[dns]`, converted once.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub record_prefix: String,
    pub pending_recheck: i64,
    pub pending_expiry: i64,
    pub reverify: i64,
    pub lapse_grace: i64,
    pub lookup_timeout: Duration,
}

impl Settings {
    fn from_config(dns: &DnsConfig) -> Settings {
        let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Settings {
            record_prefix: dns.record_prefix.trim_end_matches('.').to_ascii_lowercase(),
            pending_recheck: secs(dns.pending_recheck_seconds),
            pending_expiry: secs(dns.pending_expiry_seconds),
            reverify: secs(dns.reverify_seconds),
            lapse_grace: secs(dns.lapse_grace_seconds),
            lookup_timeout: Duration::from_millis(dns.lookup_timeout_ms.max(1)),
        }
    }
}

/// The domain service: store handle, TXT resolver and timings. Cheap to
/// clone (everything inside is shared), so the background loop and the
/// request path can each hold one.
#[derive(Clone)]
pub struct Domains {
    store: Store,
    resolver: lookup::TxtResolver,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for Domains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domains")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Token of claims made by the `[dev_idp]` development shortcut; never a
/// real token (those are 64 hex characters), so never publishable in DNS.
pub const DEV_SHORTCUT_TOKEN: &str = "dev-idp-shortcut";

impl Domains {
    /// Builds the resolver from `[dns]`: the listed `IP:PORT` nameservers
    /// over UDP and TCP, or the system's resolv.conf when none are listed.
    /// Must be called inside a tokio runtime.
    pub fn new(store: Store, dns: &DnsConfig) -> Result<Self, DomainError> {
        let settings = Settings::from_config(dns);
        let resolver = lookup::TxtResolver::new(dns, settings.lookup_timeout)?;
        Ok(Domains {
            store,
            resolver,
            settings: Arc::new(settings),
        })
    }

    /// Claims `domain` for `tenant` with a fresh random token. Re-adding a
    /// domain the tenant already holds returns the existing entry (same
    /// token, so the record already published stays valid). Subdomains are
    /// separate claims: `eu.acme.com` is not covered by `acme.com`.
    pub async fn add(
        &self,
        tenant: &str,
        domain: &str,
        now: i64,
    ) -> Result<DomainEntry, DomainError> {
        let entry = self.new_claim(tenant, domain, now)?;
        let domain = entry.domain.clone();
        match self.store.domains().insert(&entry).await {
            Ok(entry) => Ok(entry),
            Err(StoreError::Conflict { owner }) => Err(DomainError::Conflict { domain, owner }),
            Err(other) => Err(other.into()),
        }
    }

    /// A claim of `domain` for `tenant` with a fresh random token, checked
    /// like [`Domains::add`] but not stored (the admin API stores it in the
    /// transaction that also records the change).
    pub fn new_claim(
        &self,
        tenant: &str,
        domain: &str,
        now: i64,
    ) -> Result<DomainEntry, DomainError> {
        let domain = normalize_domain(domain)?;
        if crate::names::is_public_mail_domain(&domain) {
            return Err(DomainError::PublicMail(domain));
        }
        // The challenge name must itself be a valid DNS name.
        let record = format!("{}.{domain}", self.settings.record_prefix);
        if record.len() > 253 {
            return Err(DomainError::Invalid {
                input: domain,
                reason: format!(
                    "too long to hold the `{}` record",
                    self.settings.record_prefix
                ),
            });
        }
        if tenant.is_empty() {
            return Err(DomainError::UnknownTenant(tenant.to_owned()));
        }
        let token =
            hex::encode(crate::secret::random_bytes::<32>().map_err(|_| DomainError::Random)?);
        Ok(DomainRecord {
            domain,
            tenant: tenant.to_owned(),
            token,
            status: DomainStatus::Pending,
            created_at: now,
            last_checked_at: None,
            verified_at: None,
            last_seen_at: None,
            detail: None,
        })
    }

    /// Looks `entry`'s record up now and returns its next state without
    /// writing it (the admin API writes it with its audit event).
    pub async fn next_check(&self, entry: &DomainEntry, now: i64) -> crate::store::DomainCheck {
        let (name, expected) = self.txt_record(entry);
        let outcome = self.resolver.check(&name, &expected).await;
        state::next(entry, &outcome, now, &self.settings)
    }

    /// `[dev_idp]` only (loopback, see `app.rs`): claims `domain` for
    /// `tenant` and marks it verified without a DNS lookup. The claim's
    /// token is [`DEV_SHORTCUT_TOKEN`], so [`Domains::forget_dev_shortcuts`]
    /// can find and drop it once `[dev_idp]` is gone.
    pub async fn mark_verified_for_dev(
        &self,
        tenant: &str,
        domain: &str,
        now: i64,
    ) -> Result<DomainEntry, DomainError> {
        let domain = normalize_domain(domain)?;
        let claim = DomainRecord {
            domain: domain.clone(),
            tenant: tenant.to_owned(),
            token: DEV_SHORTCUT_TOKEN.to_owned(),
            status: DomainStatus::Pending,
            created_at: now,
            last_checked_at: None,
            verified_at: None,
            last_seen_at: None,
            detail: None,
        };
        let entry = match self.store.domains().insert(&claim).await {
            Ok(entry) => entry,
            Err(StoreError::Conflict { owner }) => {
                return Err(DomainError::Conflict { domain, owner });
            }
            Err(other) => return Err(other.into()),
        };
        let check = crate::store::DomainCheck {
            status: DomainStatus::Verified,
            last_checked_at: now,
            verified_at: Some(entry.verified_at.unwrap_or(now)),
            last_seen_at: Some(now),
            detail: Some("development shortcut: [dev_idp] is configured".into()),
        };
        self.store
            .domains()
            .update_check(&entry.domain, &entry.token, &check)
            .await?;
        Ok(DomainEntry {
            status: check.status,
            last_checked_at: Some(now),
            verified_at: check.verified_at,
            last_seen_at: check.last_seen_at,
            detail: check.detail,
            ..entry
        })
    }

    /// Removes every claim made by the `[dev_idp]` shortcut. Called whenever
    /// a configuration without `[dev_idp]` is applied, so a store once used
    /// by the demo never routes those domains without real DNS proof.
    pub async fn forget_dev_shortcuts(&self) -> Result<Vec<String>, DomainError> {
        let mut removed = Vec::new();
        for entry in self.store.domains().list(None).await? {
            if entry.token == DEV_SHORTCUT_TOKEN
                && self.store.domains().delete(&entry.domain).await?
            {
                removed.push(entry.domain);
            }
        }
        Ok(removed)
    }

    /// The record the tenant must publish: `(name, value)`.
    pub fn txt_record(&self, entry: &DomainEntry) -> (String, String) {
        (
            format!("{}.{}", self.settings.record_prefix, entry.domain),
            format!("{TXT_VALUE_PREFIX}{}", entry.token),
        )
    }

    /// One domain's entry, if claimed.
    pub async fn get(&self, domain: &str) -> Result<Option<DomainEntry>, DomainError> {
        let domain = normalize_domain(domain)?;
        Ok(self.store.domains().get(&domain).await?)
    }

    /// Looks the record up now and applies the state machine (also the way
    /// to revive a `failed` domain, which the background loop leaves alone).
    pub async fn verify(&self, domain: &str, now: i64) -> Result<DomainEntry, DomainError> {
        let domain = normalize_domain(domain)?;
        let entry = self
            .store
            .domains()
            .get(&domain)
            .await?
            .ok_or(DomainError::NotFound(domain))?;
        let (entry, _) = self.check(entry, now).await?;
        Ok(entry)
    }

    /// Claimed domains, all or one tenant's, ordered by name.
    pub async fn list(&self, tenant: Option<&str>) -> Result<Vec<DomainEntry>, DomainError> {
        Ok(self.store.domains().list(tenant).await?)
    }

    /// Releases a domain; it stops routing at once. Returns whether it existed.
    pub async fn remove(&self, domain: &str) -> Result<bool, DomainError> {
        let domain = normalize_domain(domain)?;
        Ok(self.store.domains().delete(&domain).await?)
    }

    /// The routing question: which tenant does `domain` belong to? Only a
    /// `verified` domain answers; anything unparseable simply routes nowhere
    /// (this is fed from login forms, so bad input is normal, not an error).
    pub async fn verified_tenant(&self, domain: &str) -> Result<Option<String>, DomainError> {
        let Ok(domain) = normalize_domain(domain) else {
            return Ok(None);
        };
        Ok(self
            .store
            .domains()
            .get(&domain)
            .await?
            .filter(|e| e.status == DomainStatus::Verified)
            .map(|e| e.tenant))
    }

    /// [`Self::verified_tenant`] for the part of `email` after its last `@`.
    pub async fn tenant_for_email(&self, email: &str) -> Result<Option<String>, DomainError> {
        match email.rsplit_once('@') {
            Some((_, domain)) => self.verified_tenant(domain).await,
            None => Ok(None),
        }
    }

    /// One background pass: looks up every due domain (bounded concurrency)
    /// and records the outcomes. A failing domain never stops the others.
    pub async fn check_due(&self, now: i64) -> Result<CheckSummary, DomainError> {
        let cutoffs = DueCutoffs {
            recheck_before: now.saturating_sub(self.settings.pending_recheck),
            reverify_before: now.saturating_sub(self.settings.reverify),
        };
        let due = self
            .store
            .domains()
            .list_due(cutoffs, MAX_CHECKS_PER_PASS)
            .await?;
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS));
        let mut tasks = JoinSet::new();
        for entry in due {
            let this = self.clone();
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                // Never closed, so acquiring only waits.
                let _permit = permits.acquire_owned().await;
                let before = entry.status;
                let domain = entry.domain.clone();
                let result = this.check(entry, now).await;
                (domain, before, result)
            });
        }
        let mut summary = CheckSummary::default();
        while let Some(joined) = tasks.join_next().await {
            // Only a panic (none is expected: no unwraps) ends up here;
            // count it rather than lose track of the domain silently.
            let Ok((domain, before, result)) = joined else {
                summary.store_errors += 1;
                continue;
            };
            match result {
                Ok((entry, outcome)) => {
                    summary.checked += 1;
                    if matches!(outcome, LookupOutcome::Error(_)) {
                        summary.dns_errors += 1;
                    }
                    if entry.status != before {
                        tracing::info!(
                            domain = %entry.domain,
                            tenant = %entry.tenant,
                            from = %before,
                            to = %entry.status,
                            detail = entry.detail.as_deref().unwrap_or(""),
                            "domain verification state changed"
                        );
                        match entry.status {
                            DomainStatus::Verified => summary.verified += 1,
                            DomainStatus::Lapsed => summary.lapsed += 1,
                            DomainStatus::Failed => summary.failed += 1,
                            DomainStatus::Pending => {}
                        }
                    }
                }
                // Removed while its lookup was in flight: nothing to record.
                Err(DomainError::NotFound(_)) => {}
                Err(error) => {
                    tracing::warn!(%domain, %error, "domain check could not be recorded");
                    summary.store_errors += 1;
                }
            }
        }
        Ok(summary)
    }

    /// Looks up `entry`'s record and stores the next state. If the domain
    /// was removed or re-added meanwhile, the stored row wins and is
    /// returned unchanged (a stale lookup must not judge a new token).
    async fn check(
        &self,
        entry: DomainEntry,
        now: i64,
    ) -> Result<(DomainEntry, LookupOutcome), DomainError> {
        let (name, expected) = self.txt_record(&entry);
        let outcome = self.resolver.check(&name, &expected).await;
        let next = state::next(&entry, &outcome, now, &self.settings);
        if self
            .store
            .domains()
            .update_check(&entry.domain, &entry.token, &next)
            .await?
        {
            let entry = DomainRecord {
                status: next.status,
                last_checked_at: Some(next.last_checked_at),
                verified_at: next.verified_at,
                last_seen_at: next.last_seen_at,
                detail: next.detail,
                ..entry
            };
            return Ok((entry, outcome));
        }
        let current = self
            .store
            .domains()
            .get(&entry.domain)
            .await?
            .ok_or_else(|| DomainError::NotFound(entry.domain.clone()))?;
        Ok((current, outcome))
    }
}

/// The background loop: runs [`Domains::check_due`] every `interval` until
/// `shutdown` turns true (or its sender is dropped). Errors are logged and
/// the loop carries on: a database blip must not stop re-verification for
/// the life of the process.
pub async fn run_checks(domains: Domains, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        // A pass is bounded by MAX_CHECKS_PER_PASS lookups, each bounded by
        // the lookup timeout; shutdown can still interrupt it between polls.
        tokio::select! {
            result = domains.check_due(crate::clock::now()) => match result {
                Ok(summary) if summary != CheckSummary::default() => {
                    tracing::debug!(?summary, "domain checks done");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "domain checks failed"),
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
