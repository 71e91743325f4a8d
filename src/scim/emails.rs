//! SCIM stays inside the tenant: a tenant's IdP may provision
//! only people whose addresses are in the tenant's *verified* domains, or
//! it could hand the app identities it does not own (`ceo@other.com`
//! arriving in `user.created`). Unless the tenant allows external emails
//! (`[tenants.scim] allow_external_emails`), a user write that adds such an
//! address is refused with `400 invalidValue` naming the domain.
//!
//! "Verified" means what login routing means (`auth::discovery`): the
//! domain's state in the store is `verified` for this tenant *and* the
//! tenant still lists it in the configuration. Pending, failed and lapsed
//! domains, and domains verified by another tenant, are outside. The rule
//! for one address is `auth::tenant_email_domain`, the one `users invite`
//! applies to the configured domains.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

use super::error::ScimError;
use crate::auth::{ForeignEmail, tenant_email_domain};
use crate::config::TenantConfig;
use crate::metrics::Metrics;
use crate::store::{DomainStatus, Store, StoreError};

/// A tenant's domains as one SCIM request sees them (read once per
/// request, before its transaction).
#[derive(Debug, Default)]
pub struct TenantEmails {
    tenant: String,
    /// Lower-case domains that route to this tenant.
    verified: Vec<String>,
    allow_external: bool,
    /// Addresses refused, and external ones accepted, by this request; see
    /// [`TenantEmails::report`].
    refused: AtomicU64,
    accepted: AtomicU64,
}

impl TenantEmails {
    /// The tenant's verified domains (none for a tenant no longer
    /// configured: nothing is inside it).
    pub async fn load(
        store: &Store,
        tenant: &str,
        config: Option<&TenantConfig>,
    ) -> Result<Self, StoreError> {
        let Some(cfg) = config else {
            return Ok(Self {
                tenant: tenant.to_owned(),
                ..Self::default()
            });
        };
        let verified = store
            .domains()
            .list(Some(tenant))
            .await?
            .into_iter()
            .filter(|d| d.status == DomainStatus::Verified)
            .filter(|d| {
                cfg.domains
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(&d.domain))
            })
            .map(|d| d.domain.to_ascii_lowercase())
            .collect();
        Ok(Self {
            tenant: tenant.to_owned(),
            verified,
            allow_external: cfg.scim.allow_external_emails,
            ..Self::default()
        })
    }

    fn judge(&self, address: &str) -> Result<String, ForeignEmail> {
        tenant_email_domain(address, self.verified.iter().map(String::as_str))
    }

    /// Refuses a user document that adds an address outside the tenant.
    /// `before` is the stored document of a PUT or PATCH: addresses it
    /// already had are not judged again, so a user whose domain has lapsed
    /// since can still be deactivated, renamed or deleted (deprovisioning
    /// must never be blocked); their events mark the address unverified.
    pub fn check(
        &self,
        doc: &Map<String, Value>,
        before: Option<&Map<String, Value>>,
    ) -> Result<(), ScimError> {
        let old = before.map(addresses).unwrap_or_default();
        for (attr, address) in addresses(doc) {
            if old.iter().any(|(_, a)| a.eq_ignore_ascii_case(&address)) {
                continue;
            }
            let refusal = match self.judge(&address) {
                Ok(_) => continue,
                Err(ForeignEmail::NotAnAddress) => {
                    format!("`{attr}` is not an email address")
                }
                Err(ForeignEmail::OutsideTenant { domain }) => format!(
                    "`{attr}`: {domain} is not a verified domain of this tenant \
                     (prove it with `portcullis domains add`/`verify`)"
                ),
            };
            if self.allow_external {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(tenant = %self.tenant, reason = %refusal, "SCIM: user refused, address outside the tenant");
            return Err(ScimError::invalid_value(refusal));
        }
        Ok(())
    }

    /// What the webhook event says about a user's addresses: each one with
    /// `verified_domain`, true only when its domain routes to this tenant.
    pub fn marks(&self, doc: &Map<String, Value>) -> Value {
        Value::Array(
            addresses(doc)
                .into_iter()
                .map(|(_, a)| {
                    let verified = self.judge(&a).is_ok();
                    json!({"value": a, "verified_domain": verified})
                })
                .collect(),
        )
    }

    /// Forgets the counts (a Bulk request that runs again from the start).
    pub fn reset(&self) {
        self.refused.store(0, Ordering::Relaxed);
        self.accepted.store(0, Ordering::Relaxed);
    }

    /// Counts the request's refusals and accepted external addresses, once
    /// per request (a Bulk request may run its operations twice).
    pub fn report(&self, metrics: &Metrics) {
        for (result, n) in [
            ("refused", self.refused.swap(0, Ordering::Relaxed)),
            ("accepted", self.accepted.swap(0, Ordering::Relaxed)),
        ] {
            if n > 0 {
                metrics
                    .scim_external_emails
                    .with_label_values(&[self.tenant.as_str(), result])
                    .inc_by(n);
            }
        }
    }
}

/// Every address of a user document, in order, without repeats
/// (case-insensitively): each `emails[].value`, and `userName` when it
/// contains an `@` (Entra's UPN, Okta's login). A `userName` with an `@`
/// that is not a valid address counts as one, so it is refused rather than
/// slipping through as "not an email" (it becomes the login email when a
/// user has no `emails`).
fn addresses(doc: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut push = |attr: &'static str, v: &str| {
        if !out.iter().any(|(_, a)| a.eq_ignore_ascii_case(v)) {
            out.push((attr, v.to_owned()));
        }
    };
    if let Some(list) = doc.get("emails").and_then(Value::as_array) {
        for e in list {
            if let Some(v) = e.get("value").and_then(Value::as_str) {
                push("emails.value", v);
            }
        }
    }
    if let Some(u) = doc.get("userName").and_then(Value::as_str)
        && u.contains('@')
    {
        push("userName", u);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(verified: &[&str], allow_external: bool) -> TenantEmails {
        TenantEmails {
            tenant: "acme".into(),
            verified: verified.iter().map(|d| d.to_string()).collect(),
            allow_external,
            ..TenantEmails::default()
        }
    }

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_new_address_must_be_in_a_verified_domain() {
        let s = scope(&["acme.com"], false);
        let ok = doc(json!({"userName": "a@ACME.com", "emails": [{"value": "a@acme.com"}]}));
        s.check(&ok, None).unwrap();
        for (d, named) in [
            (
                json!({"userName": "a@acme.com", "emails": [{"value": "a@acme.com"}, {"value": "a@evil.com"}]}),
                "evil.com",
            ),
            (
                json!({"userName": "a@evil.com", "emails": [{"value": "a@acme.com"}]}),
                "evil.com",
            ),
            (json!({"userName": "a@sub.acme.com"}), "sub.acme.com"),
            (json!({"userName": "a @acme.com"}), "userName"),
            (
                json!({"userName": "a", "emails": [{"value": "not-an-address"}]}),
                "emails.value",
            ),
        ] {
            let e = s.check(&doc(d.clone()), None).unwrap_err();
            assert_eq!(e.scim_type, Some("invalidValue"), "{d}");
            assert!(e.detail.contains(named), "{d}: {}", e.detail);
        }
        // A userName without `@` is a name, not an address.
        s.check(&doc(json!({"userName": "alice"})), None).unwrap();
        assert_eq!(s.refused.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn addresses_already_stored_are_not_judged_again() {
        let s = scope(&[], false);
        let before = doc(json!({"userName": "a@lapsed.com", "active": true}));
        let after = doc(json!({"userName": "A@lapsed.com", "active": false}));
        s.check(&after, Some(&before)).unwrap();
        let added = doc(json!({"userName": "a@lapsed.com", "emails": [{"value": "b@lapsed.com"}]}));
        assert!(s.check(&added, Some(&before)).is_err());
    }

    #[test]
    fn allowed_external_addresses_are_accepted_and_marked() {
        let s = scope(&["acme.com"], true);
        let d = doc(
            json!({"userName": "a@acme.com", "emails": [{"value": "a@ACME.com"}, {"value": "a@gmail.com"}, {"value": "junk"}]}),
        );
        s.check(&d, None).unwrap();
        assert_eq!(s.accepted.load(Ordering::Relaxed), 2);
        assert_eq!(
            s.marks(&d),
            json!([
                {"value": "a@ACME.com", "verified_domain": true},
                {"value": "a@gmail.com", "verified_domain": false},
                {"value": "junk", "verified_domain": false},
            ])
        );
    }
}
