//! IdP metadata from a URL, refreshed on a schedule. A fetch that fails, or
//! returns metadata that does not load (no signing certificate, a DTD, a
//! different entity id), keeps the last good copy and is counted in
//! `portcullis_saml_metadata_refresh_total{connection,result="error"}`.
//!
//! The last good XML per URL is also kept process-wide, so a configuration
//! reload starts the new connection with it instead of with nothing. At
//! startup with no good copy yet, the proxy starts anyway (other tenants
//! must not go down with one IdP) and this connection refuses logins with
//! reason `metadata_unavailable` until a fetch succeeds; fetches are then
//! retried every `RETRY_SECONDS` at most.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::metadata::IdpMetadata;
use crate::metrics::Metrics;

/// Largest metadata document accepted (read in chunks, stopped beyond).
const MAX_METADATA_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry interval while no good copy exists or after a failure.
const RETRY_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("GET {0}: {1}")]
    Http(String, String),
    #[error("metadata larger than {MAX_METADATA_BYTES} bytes")]
    TooLarge,
    #[error("metadata is not UTF-8")]
    Utf8,
    #[error("{0}")]
    Metadata(#[from] super::metadata::MetadataError),
    #[error("entity id changed from {0:?} to {1:?}; refused")]
    EntityChanged(String, String),
}

/// Last good metadata XML per URL, for the next configuration generation.
fn last_good() -> &'static Mutex<HashMap<String, String>> {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The last good metadata this process saw at `url`, if any.
pub fn cached(url: &str) -> Option<IdpMetadata> {
    let xml = last_good().lock().ok()?.get(url).cloned()?;
    IdpMetadata::from_xml(&xml).ok()
}

fn client() -> Result<reqwest::Client, FetchError> {
    // No redirects: metadata comes from exactly the configured URL.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| FetchError::Client(e.to_string()))
}

/// One fetch: status 200, size-capped body, then the same loader as files.
pub async fn fetch(url: &str) -> Result<(IdpMetadata, String), FetchError> {
    let http = |e: reqwest::Error| FetchError::Http(url.to_owned(), e.to_string());
    let mut resp = client()?.get(url).send().await.map_err(http)?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(FetchError::Http(
            url.to_owned(),
            format!("status {}", resp.status()),
        ));
    }
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

/// Keeps `cell` current from `url` until the connection owning it is
/// dropped (a reload replaced it): the loop holds only a weak reference.
pub fn spawn_refresh<T: Send + Sync + 'static>(
    connection: String,
    url: String,
    every: Duration,
    cell: Weak<ArcSwapOption<T>>,
    make: impl Fn(IdpMetadata) -> T + Send + Sync + 'static,
    current_entity: impl Fn(&T) -> String + Send + Sync + 'static,
    metrics: Option<Arc<Metrics>>,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::error!(connection = %connection, "no runtime: IdP metadata will not be fetched");
        return;
    };
    handle.spawn(async move {
        loop {
            let Some(strong) = cell.upgrade() else { return };
            let result = fetch(&url).await.and_then(|(md, xml)| {
                if let Some(cur) = strong.load_full() {
                    let before = current_entity(&cur);
                    if before != md.entity_id {
                        return Err(FetchError::EntityChanged(before, md.entity_id));
                    }
                }
                Ok((md, xml))
            });
            let ok = result.is_ok();
            match result {
                Ok((md, xml)) => {
                    if let Some(m) = &metrics
                        && let Ok(exp) = md.signing_cert_expiries()
                        && let Some(last) = exp.iter().max()
                    {
                        m.saml_cert_expiry
                            .with_label_values(&[connection.as_str()])
                            .set(last - crate::clock::now());
                    }
                    strong.store(Some(Arc::new(make(md))));
                    if let Ok(mut c) = last_good().lock() {
                        c.insert(url.clone(), xml);
                    }
                    tracing::debug!(connection = %connection, "IdP metadata refreshed");
                }
                Err(e) => {
                    let kept = strong.load().is_some();
                    tracing::warn!(connection = %connection, error = %e, kept_last_good = kept, "IdP metadata refresh failed");
                }
            }
            if let Some(m) = &metrics {
                m.saml_metadata_refresh
                    .with_label_values(&[connection.as_str(), if ok { "ok" } else { "error" }])
                    .inc();
            }
            let wait = if ok {
                every
            } else {
                every.min(Duration::from_secs(RETRY_SECONDS))
            };
            drop(strong);
            tokio::time::sleep(wait).await;
        }
    });
}
