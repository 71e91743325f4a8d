//! Discovery and signing keys of one provider, cached: fetched on first
//! use (a provider that is down must not stop Portcullis from starting),
//! trusted for `discovery_refresh_seconds`, and the key set fetched again
//! when a token names a `kid` we don't know — at most once per
//! `jwks_min_refresh_seconds`, so forged tokens can't make us hammer the
//! provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use super::http::ProviderHttp;
use crate::auth::ConnectionError;
use crate::config::is_trustworthy_url;

/// One fetched view of the provider.
pub struct Discovered {
    /// With the fetched key set in place.
    pub metadata: CoreProviderMetadata,
    pub end_session_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub token_endpoint: String,
    pub fetched_at: Instant,
    pub jwks_fetched_at: Instant,
}

pub struct ProviderCache {
    issuer: String,
    http: ProviderHttp,
    refresh: Duration,
    jwks_min: Duration,
    current: RwLock<Option<Arc<Discovered>>>,
    fetching: Mutex<()>,
}

fn err(detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new("discovery", detail)
}

impl ProviderCache {
    pub fn new(issuer: &str, http: ProviderHttp, refresh: Duration, jwks_min: Duration) -> Self {
        Self {
            issuer: issuer.to_owned(),
            http,
            refresh,
            jwks_min,
            current: RwLock::new(None),
            fetching: Mutex::new(()),
        }
    }

    pub fn http(&self) -> &ProviderHttp {
        &self.http
    }

    /// The provider's current view: cached, or fetched when missing or
    /// older than the refresh interval. A failed refresh keeps serving the
    /// previous view (logged), so a provider blip doesn't stop logins.
    pub async fn get(&self) -> Result<Arc<Discovered>, ConnectionError> {
        if let Some(d) = self.current.read().await.as_ref()
            && d.fetched_at.elapsed() < self.refresh
        {
            return Ok(d.clone());
        }
        let _guard = self.fetching.lock().await;
        // Someone else may have refreshed while we waited.
        let stale = self.current.read().await.clone();
        if let Some(d) = &stale
            && d.fetched_at.elapsed() < self.refresh
        {
            return Ok(d.clone());
        }
        match self.fetch().await {
            Ok(d) => {
                let d = Arc::new(d);
                *self.current.write().await = Some(d.clone());
                Ok(d)
            }
            Err(e) => match stale {
                Some(d) => {
                    tracing::warn!(issuer = %self.issuer, error = %e.detail, "OIDC discovery refresh failed; using the previous metadata");
                    Ok(d)
                }
                None => Err(e),
            },
        }
    }

    /// Fetches the key set again after a token named an unknown `kid`;
    /// `None` when the last fetch was too recent (rate limit).
    pub async fn refresh_keys(
        &self,
        seen: &Arc<Discovered>,
    ) -> Result<Option<Arc<Discovered>>, ConnectionError> {
        let _guard = self.fetching.lock().await;
        let current = self.current.read().await.clone();
        if let Some(c) = &current
            && !Arc::ptr_eq(c, seen)
        {
            // Refreshed by someone else meanwhile: try that one.
            return Ok(Some(c.clone()));
        }
        if seen.jwks_fetched_at.elapsed() < self.jwks_min {
            return Ok(None);
        }
        let jwks = self.fetch_jwks(seen.metadata.jwks_uri().as_str()).await?;
        let d = Arc::new(Discovered {
            metadata: seen.metadata.clone().set_jwks(jwks),
            end_session_endpoint: seen.end_session_endpoint.clone(),
            userinfo_endpoint: seen.userinfo_endpoint.clone(),
            token_endpoint: seen.token_endpoint.clone(),
            fetched_at: seen.fetched_at,
            jwks_fetched_at: Instant::now(),
        });
        *self.current.write().await = Some(d.clone());
        Ok(Some(d))
    }

    async fn fetch(&self) -> Result<Discovered, ConnectionError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let (status, body) = self
            .http
            .get_json(&url)
            .await
            .map_err(|e| err(format!("{url}: {e}")))?;
        if status != 200 {
            return Err(err(format!("{url}: HTTP {status}")));
        }
        let raw: Value =
            serde_json::from_slice(&body).map_err(|e| err(format!("{url}: not JSON: {e}")))?;
        let metadata: CoreProviderMetadata = serde_json::from_value(raw.clone())
            .map_err(|e| err(format!("{url}: not OpenID provider metadata: {e}")))?;
        // OIDC Discovery §4.3: the document's issuer must be the one we
        // asked, exactly, or a provider could speak for another.
        if metadata.issuer().as_str() != self.issuer {
            return Err(err(format!(
                "metadata issuer {:?} is not the configured issuer {:?}",
                metadata.issuer().as_str(),
                self.issuer
            )));
        }
        let token_endpoint = metadata
            .token_endpoint()
            .map(|u| u.as_str().to_owned())
            .ok_or_else(|| err("metadata has no token_endpoint"))?;
        let str_field = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
        let end_session_endpoint = str_field("end_session_endpoint");
        let userinfo_endpoint = metadata.userinfo_endpoint().map(|u| u.as_str().to_owned());
        for (name, u) in [
            (
                "authorization_endpoint",
                Some(metadata.authorization_endpoint().as_str()),
            ),
            ("token_endpoint", Some(token_endpoint.as_str())),
            ("jwks_uri", Some(metadata.jwks_uri().as_str())),
            ("userinfo_endpoint", userinfo_endpoint.as_deref()),
            ("end_session_endpoint", end_session_endpoint.as_deref()),
        ] {
            if let Some(u) = u
                && !is_trustworthy_url(u)
            {
                return Err(err(format!(
                    "{name} {u:?} is not https (http only on loopback)"
                )));
            }
        }
        let jwks = self.fetch_jwks(metadata.jwks_uri().as_str()).await?;
        let now = Instant::now();
        Ok(Discovered {
            metadata: metadata.set_jwks(jwks),
            end_session_endpoint,
            userinfo_endpoint,
            token_endpoint,
            fetched_at: now,
            jwks_fetched_at: now,
        })
    }

    async fn fetch_jwks(&self, url: &str) -> Result<CoreJsonWebKeySet, ConnectionError> {
        let (status, body) = self
            .http
            .get_json(url)
            .await
            .map_err(|e| err(format!("{url}: {e}")))?;
        if status != 200 {
            return Err(err(format!("{url}: HTTP {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| err(format!("{url}: not a JWK set: {e}")))
    }
}
