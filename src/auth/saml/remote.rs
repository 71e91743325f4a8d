//! IdP metadata from a URL, refreshed on a schedule. A fetch that fails, or
//! returns metadata that does not load (no signing certificate, a DTD, a
//! different entity id, a signing certificate outside the configured pins),
//! keeps the last good copy and is counted in
//! `portcullis_saml_metadata_refresh_total{connection,result="error"}`.
//!
//! Fetched through the egress guard (`auth::egress`): `https://` to a public
//! address only (plain http only to loopback under the test allowance) —
//! the metadata names the keys every login is checked with, and the URL is
//! written by whoever configures the tenant. A
//! refresh that changes the set of signing certificates is logged at WARN
//! with the old and new fingerprints and counted, so a key swap never goes
//! unnoticed even without pins.
//!
//! The last good XML per (connection, URL) is also kept for the life of the
//! process — in a [`MetadataCache`] owned by the app, not a global, so that
//! two servers in one process (tests) never see each other's metadata — and
//! a configuration reload starts the new connection with it instead of with
//! nothing. At startup with no good copy yet, the proxy starts anyway (other
//! tenants must not go down with one IdP) and this connection refuses logins
//! with reason `metadata_unavailable` until a fetch succeeds; fetches are
//! then retried every `RETRY_SECONDS` at most.
//!
//! A login that arrives while the *first* fetch is still in flight waits
//! for that fetch (bounded by its timeout) instead of failing: a connection
//! saved in the admin portal is built with no metadata yet, and the admin's
//! next click is "Test sign-in" — the refusal would be a race they cannot
//! see, won or lost by how fast their IdP answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::metadata::{Fingerprint, IdpMetadata, MetadataError};
use crate::auth::egress::{Guard, Refused};
use crate::metrics::Metrics;

/// Largest metadata document accepted (read in chunks, stopped beyond).
const MAX_METADATA_BYTES: usize = 1024 * 1024;
pub(super) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry interval while no good copy exists or after a failure.
const RETRY_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    #[error("HTTP client: {0}")]
    Client(String),
    /// Refused by the egress guard (logged and counted there).
    #[error("{0}: {1}")]
    Refused(String, Refused),
    #[error("GET {0}: {1}")]
    Http(String, String),
    #[error("metadata larger than {MAX_METADATA_BYTES} bytes")]
    TooLarge,
    #[error("metadata is not UTF-8")]
    Utf8,
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error("entity id changed from {0:?} to {1:?}; refused")]
    EntityChanged(String, String),
}

/// Last good metadata XML per (connection id, URL), shared by the
/// configuration generations of one app instance.
#[derive(Clone, Default)]
pub struct MetadataCache(Arc<Mutex<HashMap<(String, String), String>>>);

impl MetadataCache {
    /// The last good metadata this instance saw for `connection` at `url`.
    pub fn get(&self, connection: &str, url: &str) -> Option<IdpMetadata> {
        let xml = self
            .0
            .lock()
            .ok()?
            .get(&(connection.to_owned(), url.to_owned()))
            .cloned()?;
        IdpMetadata::from_xml(&xml).ok()
    }

    fn put(&self, connection: &str, url: &str, xml: String) {
        if let Ok(mut c) = self.0.lock() {
            c.insert((connection.to_owned(), url.to_owned()), xml);
        }
    }
}

/// One fetch through `guard` (the URL checked here too, whatever the
/// configuration path; no redirects: metadata comes from exactly the
/// configured URL), status 200, size-capped body, then the same loader as
/// files.
pub(super) async fn fetch(url: &str, guard: &Guard) -> Result<(IdpMetadata, String), FetchError> {
    let refused = |r| FetchError::Refused(url.to_owned(), r);
    let checked = guard.check(url).map_err(refused)?;
    let client = guard
        .client(FETCH_TIMEOUT)
        .map_err(|e| FetchError::Client(e.to_string()))?;
    let mut resp = client
        .get(checked)
        .send()
        .await
        .map_err(|e| match Guard::refusal_in(&e) {
            Some(r) => refused(r),
            None => FetchError::Http(url.to_owned(), e.to_string()),
        })?;
    if resp.status().is_redirection() {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        return Err(refused(guard.redirect(
            url,
            resp.status().as_u16(),
            location,
        )));
    }
    if resp.status() != reqwest::StatusCode::OK {
        return Err(FetchError::Http(
            url.to_owned(),
            format!("status {}", resp.status()),
        ));
    }
    if resp
        .content_length()
        .is_some_and(|l| l > MAX_METADATA_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let http = |e: reqwest::Error| FetchError::Http(url.to_owned(), e.to_string());
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > MAX_METADATA_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let xml = String::from_utf8(body).map_err(|_| FetchError::Utf8)?;
    Ok((IdpMetadata::from_xml(&xml)?, xml))
}

/// What a refreshed value exposes to the refresh loop.
pub(super) trait HoldsIdp {
    fn idp(&self) -> &IdpMetadata;
}

/// One connection's refresh: where from, how often, what must hold.
pub(super) struct Refresh {
    pub connection: String,
    pub url: String,
    pub every: Duration,
    /// `idp_certificate_fingerprints`; empty: no pin.
    pub pins: Vec<Fingerprint>,
    pub cache: MetadataCache,
    pub metrics: Option<Arc<Metrics>>,
    /// What the URL is fetched through.
    pub guard: Guard,
}

impl Refresh {
    /// A fetch, then what the metadata must keep: the entity id it had and
    /// the pins.
    async fn fetch_checked(
        &self,
        current: Option<&IdpMetadata>,
    ) -> Result<(IdpMetadata, String), FetchError> {
        let (md, xml) = fetch(&self.url, &self.guard).await?;
        if let Some(cur) = current
            && cur.entity_id != md.entity_id
        {
            return Err(FetchError::EntityChanged(
                cur.entity_id.clone(),
                md.entity_id,
            ));
        }
        md.check_pins(&self.pins)?;
        Ok((md, xml))
    }

    /// Logs and counts a signing certificate change between two good copies.
    fn report_key_change(&self, old: &IdpMetadata, new: &IdpMetadata) {
        if old.signing_fingerprints == new.signing_fingerprints {
            return;
        }
        tracing::warn!(
            connection = %self.connection,
            old = ?old.fingerprints_hex(),
            new = ?new.fingerprints_hex(),
            "IdP signing certificates changed on metadata refresh (SHA-256 fingerprints)"
        );
        if let Some(m) = &self.metrics {
            m.saml_signing_cert_changes
                .with_label_values(&[self.connection.as_str()])
                .inc();
        }
    }

    fn report_failure(&self, e: &FetchError, kept: bool) {
        let connection = self.connection.as_str();
        if let FetchError::Metadata(MetadataError::PinMismatch(_)) = e {
            tracing::error!(connection, error = %e, kept_last_good = kept, "IdP metadata refused: signing certificate not pinned");
            if let Some(m) = &self.metrics {
                m.saml_metadata_pin_mismatch
                    .with_label_values(&[connection])
                    .inc();
            }
        } else {
            tracing::warn!(connection, error = %e, kept_last_good = kept, "IdP metadata refresh failed");
        }
    }
}

/// Keeps `cell` current from the URL until the connection owning it is
/// dropped (a reload replaced it): the loop holds only a weak reference.
/// `first` turns true when the first fetch has ended, well or not.
pub(super) fn spawn_refresh<T: HoldsIdp + Send + Sync + 'static>(
    r: Refresh,
    cell: Weak<ArcSwapOption<T>>,
    first: tokio::sync::watch::Sender<bool>,
    make: impl Fn(IdpMetadata) -> T + Send + Sync + 'static,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::error!(connection = %r.connection, "no runtime: IdP metadata will not be fetched");
        return;
    };
    handle.spawn(async move {
        loop {
            let Some(strong) = cell.upgrade() else { return };
            let current = strong.load_full();
            let result = r.fetch_checked(current.as_deref().map(HoldsIdp::idp)).await;
            let ok = result.is_ok();
            match result {
                Ok((md, xml)) => {
                    if let Some(m) = &r.metrics
                        && let Ok(exp) = md.signing_cert_expiries()
                        && let Some(last) = exp.iter().max()
                    {
                        m.saml_cert_expiry
                            .with_label_values(&[r.connection.as_str()])
                            .set(last - crate::clock::now());
                    }
                    if let Some(cur) = &current {
                        r.report_key_change(cur.idp(), &md);
                    }
                    strong.store(Some(Arc::new(make(md))));
                    r.cache.put(&r.connection, &r.url, xml);
                    tracing::debug!(connection = %r.connection, "IdP metadata refreshed");
                }
                Err(e) => r.report_failure(&e, current.is_some()),
            }
            // Counted before the logins waiting for the first fetch go on,
            // so whoever they tell finds the fetch in the metrics too.
            if let Some(m) = &r.metrics {
                m.saml_metadata_refresh
                    .with_label_values(&[r.connection.as_str(), if ok { "ok" } else { "error" }])
                    .inc();
            }
            first.send_replace(true);
            let wait = if ok {
                r.every
            } else {
                r.every.min(Duration::from_secs(RETRY_SECONDS))
            };
            drop((strong, current));
            tokio::time::sleep(wait).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::auth::egress::Egress;
    use crate::config::EgressRules;

    #[tokio::test]
    async fn metadata_is_never_fetched_over_plain_http_to_a_remote_host() {
        let guard = |rules| Egress::with_rules(rules).unwrap().for_provider("t");
        let strict = guard(EgressRules::public_only());
        let tests = guard(EgressRules::with_loopback());
        for url in [
            "http://idp.example/metadata",
            "http://10.1.2.3/metadata",
            "https://10.1.2.3/metadata",
            "https://169.254.169.254/metadata",
            "file:///etc/passwd",
        ] {
            for g in [&strict, &tests] {
                match fetch(url, g).await {
                    Err(e @ FetchError::Refused(..)) => {
                        assert_eq!(
                            e.to_string(),
                            format!("{url}: {}", crate::auth::egress::NOT_REACHABLE)
                        )
                    }
                    other => panic!("{url}: {:?}", other.err()),
                }
            }
        }
        // Loopback only under the test allowance (nothing listens on port
        // 9: an HTTP error, so the request was made).
        assert!(matches!(
            fetch("http://127.0.0.1:9/metadata", &strict).await,
            Err(FetchError::Refused(..))
        ));
        assert!(matches!(
            fetch("http://127.0.0.1:9/metadata", &tests).await,
            Err(FetchError::Http(..))
        ));
    }
}
