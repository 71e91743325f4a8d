//! Service-account bearer tokens: `psa_<16 hex key id>_<43 base64url>`,
//! the shape of the SCIM (`pcs_`) and admin (`pat_`) tokens. The store
//! keeps the key id (to find the row) and the SHA-256 of the whole token,
//! compared in constant time.
//!
//! A token is checked on every request of a machine caller, so the rows
//! are kept in a read-through cache like sessions: a rotation or
//! revocation announces the account (`StoreEvent::ServiceAccountChanged`,
//! through `store_events` or `NOTIFY`) and every process drops it before
//! its next request; the cache TTL bounds staleness if an event is missed.
//! Unknown key ids are never cached, so a token created on another replica
//! works at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine;
use moka::future::Cache;

use crate::identity::{Principal, PrincipalKind};
use crate::secret::{constant_time_eq, random_bytes, sha256_hex};
use crate::store::{ServiceAccountKeyRow, ServiceAccountRow, Store, StoreError};

/// What every service-account token starts with.
pub const TOKEN_PREFIX: &str = "psa_";
/// What every service-account id starts with.
pub const ACCOUNT_PREFIX: &str = "sa_";
/// A token is `psa_` + 16 + `_` + 43 bytes; anything longer is not ours.
const MAX_TOKEN_BYTES: usize = 128;

/// A freshly generated token and what the store keeps of it.
pub struct NewServiceToken {
    /// Shown once, never stored.
    pub token: String,
    pub key_id: String,
    pub hash: String,
}

/// No randomness was available.
#[derive(Debug, thiserror::Error)]
#[error("no randomness available")]
pub struct NoRandomness;

pub fn generate_token() -> Result<NewServiceToken, NoRandomness> {
    let key_id = hex::encode(random_bytes::<8>().map_err(|_| NoRandomness)?);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(random_bytes::<32>().map_err(|_| NoRandomness)?);
    let token = format!("{TOKEN_PREFIX}{key_id}_{secret}");
    let hash = sha256_hex(token.as_bytes());
    Ok(NewServiceToken {
        token,
        key_id,
        hash,
    })
}

/// A new account id, `sa_<16 hex>`.
pub fn new_account_id() -> Result<String, NoRandomness> {
    Ok(format!(
        "{ACCOUNT_PREFIX}{}",
        hex::encode(random_bytes::<8>().map_err(|_| NoRandomness)?)
    ))
}

/// Whether a bearer token is meant to be a service-account token (its
/// prefix), whatever else is wrong with it.
pub fn is_service_token(token: &str) -> bool {
    token.starts_with(TOKEN_PREFIX)
}

/// The key id of a well-formed token.
fn key_id(token: &str) -> Option<&str> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let (key_id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    let secret_ok = !secret.is_empty()
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit()) && secret_ok)
        .then_some(key_id)
}

/// Why a service-account token did not authenticate: a label of
/// `portcullis_machine_auth_failures_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("not a well-formed service-account token")]
    Malformed,
    #[error("no service-account key with this id")]
    UnknownKey,
    #[error("the secret does not match the key")]
    WrongSecret,
    #[error("the service account is revoked")]
    Revoked,
    #[error("the service account has expired")]
    Expired,
    #[error("the token was rotated out and its overlap has ended")]
    Retired,
}

impl TokenRejection {
    pub fn label(self) -> &'static str {
        match self {
            TokenRejection::Malformed => "malformed",
            TokenRejection::UnknownKey => "unknown_key",
            TokenRejection::WrongSecret => "wrong_secret",
            TokenRejection::Revoked => "revoked",
            TokenRejection::Expired => "expired",
            TokenRejection::Retired => "retired",
        }
    }
}

/// A key and its account, as cached.
struct Cached {
    account: ServiceAccountRow,
    key: ServiceAccountKeyRow,
    /// The principal requests of this account carry.
    principal: Arc<Principal>,
    /// Last time `last_used_at` was written from this process.
    touched: AtomicI64,
}

/// An authenticated service-account token.
#[derive(Debug, Clone)]
pub struct ServiceCaller {
    pub principal: Arc<Principal>,
    /// The key the token named: the assertion cache key.
    pub key_id: String,
}

/// Looks service-account tokens up, through a cache kept coherent by store
/// events (see the module doc). Process-lifetime, shared by generations.
#[derive(Clone)]
pub struct ServiceAccounts {
    store: Store,
    cache: Cache<String, Arc<Cached>>,
}

impl ServiceAccounts {
    pub fn new(store: Store, capacity: u64, ttl: Duration) -> Self {
        Self {
            store,
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// Drops expired entries now (see `Sessions::spawn_event_listener`).
    pub(super) async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// Checks `token` at `now`. A store failure is an error (the caller
    /// answers 503 on `required` routes, as for sessions).
    pub async fn authenticate(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Result<ServiceCaller, TokenRejection>, StoreError> {
        let Some(key_id) = key_id(token) else {
            return Ok(Err(TokenRejection::Malformed));
        };
        let cached = match self.cache.get(key_id).await {
            Some(c) => Some(c),
            None => match self.store.service_accounts().lookup(key_id).await? {
                Some((account, key)) => {
                    let c = Arc::new(Cached {
                        principal: Arc::new(principal_of(&account)),
                        touched: AtomicI64::new(account.last_used_at.unwrap_or(0)),
                        account,
                        key,
                    });
                    self.cache.insert(key_id.to_owned(), c.clone()).await;
                    Some(c)
                }
                None => None,
            },
        };
        // Hash and compare even for an unknown key id, so timing doesn't
        // tell a real key id from an invented one.
        let zeros = "0".repeat(64);
        let stored = cached
            .as_ref()
            .map_or(zeros.as_str(), |c| &c.key.secret_hash);
        let matches = constant_time_eq(sha256_hex(token.as_bytes()).as_bytes(), stored.as_bytes());
        let Some(c) = cached else {
            return Ok(Err(TokenRejection::UnknownKey));
        };
        if !matches {
            return Ok(Err(TokenRejection::WrongSecret));
        }
        if c.account.revoked_at.is_some() {
            return Ok(Err(TokenRejection::Revoked));
        }
        if c.account.expires_at.is_some_and(|e| e <= now) {
            return Ok(Err(TokenRejection::Expired));
        }
        if c.key.retires_at.is_some_and(|r| r <= now) {
            return Ok(Err(TokenRejection::Retired));
        }
        self.touch(&c, now);
        Ok(Ok(ServiceCaller {
            principal: c.principal.clone(),
            key_id: c.key.key_id.clone(),
        }))
    }

    /// Write-behind of `last_used_at`, at most once a minute per account
    /// and process.
    fn touch(&self, c: &Cached, now: i64) {
        let last = c.touched.load(Ordering::Relaxed);
        if now - last < 60
            || c.touched
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = self.store.clone();
        let id = c.account.id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.service_accounts().touch(&id, now).await {
                tracing::warn!(error = %e, "could not record service account use");
            }
        });
    }

    /// Drops every cached key of `account` (rotated or revoked).
    pub fn invalidate_account(&self, account: &str) {
        let account = account.to_owned();
        if self
            .cache
            .invalidate_entries_if(move |_, c| c.account.id == account)
            .is_err()
        {
            self.cache.invalidate_all();
        }
    }

    /// Drops everything (missed events, a reconnected listener).
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}

/// What a request of `account` carries: its id as the subject, its name,
/// its tenant and role; no email, no groups.
fn principal_of(account: &ServiceAccountRow) -> Principal {
    Principal {
        user_id: account.id.clone(),
        email: String::new(),
        name: Some(account.name.clone()),
        roles: account.role.clone().into_iter().collect(),
        tenant: Some(account.tenant.clone()),
        kind: PrincipalKind::Service,
        ..Principal::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let t = generate_token().unwrap();
        assert!(t.token.starts_with("psa_"));
        assert_eq!(t.token.len(), 4 + 16 + 1 + 43);
        assert_eq!(key_id(&t.token), Some(t.key_id.as_str()));
        assert_eq!(t.hash, sha256_hex(t.token.as_bytes()));
        assert!(is_service_token(&t.token));
        let id = new_account_id().unwrap();
        assert!(id.starts_with("sa_") && id.len() == 19);
    }

    #[test]
    fn only_well_formed_tokens_name_a_key() {
        for bad in [
            "",
            "psa_",
            "psa_0123456789abcdef",
            "psa_0123456789abcdef_",
            "psa_0123_x",
            "psa_zzzzzzzzzzzzzzzz_x",
            "pcs_0123456789abcdef_x",
            "psa_0123456789abcdef_a b",
            "psa_0123456789abcdef_a\u{0}",
        ] {
            assert_eq!(key_id(bad), None, "{bad:?}");
        }
        let long = format!("psa_0123456789abcdef_{}", "a".repeat(200));
        assert_eq!(key_id(&long), None);
        assert_eq!(
            key_id("psa_0123456789abcdef_c2VjcmV0"),
            Some("0123456789abcdef")
        );
    }
}
