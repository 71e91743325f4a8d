//! Discovery and signing keys of one provider, cached: fetched on first
//! use (a provider that is down must not stop Portcullis from starting),
//! trusted for `discovery_refresh_seconds`, and the key set fetched again
//! when a token names a `kid` we don't know — at most once per
//! `jwks_min_refresh_seconds`, so forged tokens can't make us hammer the
//! provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Clock;

use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use super::http::ProviderHttp;
use crate::auth::ConnectionError;

/// One fetched view of the provider.
pub(crate) struct Discovered {
    /// With the fetched key set in place.
    pub metadata: CoreProviderMetadata,
    pub end_session_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub token_endpoint: String,
    pub fetched_at: Instant,
    pub jwks_fetched_at: Instant,
}

pub(crate) struct ProviderCache {
    /// What the discovery document must call the provider.
    issuer: String,
    /// Where `/.well-known/openid-configuration` is fetched under; the
    /// issuer itself, except for a multi-tenant endpoint (Microsoft's
    /// `organizations`) whose document names an issuer template.
    discovery: String,
    http: ProviderHttp,
    refresh: Duration,
    jwks_min: Duration,
    current: RwLock<Option<Arc<Discovered>>>,
    fetching: Mutex<()>,
    /// For the refresh interval and the key refetch limit.
    clock: Clock,
}

fn err(detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new("discovery", detail)
}

impl ProviderCache {
    pub(crate) fn new(
        issuer: &str,
        http: ProviderHttp,
        refresh: Duration,
        jwks_min: Duration,
    ) -> Self {
        Self::new_with(issuer, issuer, http, refresh, jwks_min)
    }

    /// Discovery at `discovery`, whose document must name `issuer`.
    pub(crate) fn new_with(
        discovery: &str,
        issuer: &str,
        http: ProviderHttp,
        refresh: Duration,
        jwks_min: Duration,
    ) -> Self {
        Self {
            issuer: issuer.to_owned(),
            discovery: discovery.to_owned(),
            http,
            refresh,
            jwks_min,
            current: RwLock::new(None),
            fetching: Mutex::new(()),
            clock: Clock::system(),
        }
    }

    /// Times its intervals by `clock` (tests move time themselves).
    pub(crate) fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// [`ProviderCache::with_clock`] in place.
    pub(crate) fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    pub(crate) fn http(&self) -> &ProviderHttp {
        &self.http
    }

    /// The provider's current view: cached, or fetched when missing or
    /// older than the refresh interval. A failed refresh keeps serving the
    /// previous view (logged), so a provider blip doesn't stop logins.
    pub(crate) async fn get(&self) -> Result<Arc<Discovered>, ConnectionError> {
        if let Some(d) = self.current.read().await.as_ref()
            && self.clock.since(d.fetched_at) < self.refresh
        {
            return Ok(d.clone());
        }
        let _guard = self.fetching.lock().await;
        // Someone else may have refreshed while we waited.
        let stale = self.current.read().await.clone();
        if let Some(d) = &stale
            && self.clock.since(d.fetched_at) < self.refresh
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
    pub(crate) async fn refresh_keys(
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
        if self.clock.since(seen.jwks_fetched_at) < self.jwks_min {
            return Ok(None);
        }
        let jwks = self.fetch_jwks(seen.metadata.jwks_uri().as_str()).await?;
        let d = Arc::new(Discovered {
            metadata: seen.metadata.clone().set_jwks(jwks),
            end_session_endpoint: seen.end_session_endpoint.clone(),
            userinfo_endpoint: seen.userinfo_endpoint.clone(),
            token_endpoint: seen.token_endpoint.clone(),
            fetched_at: seen.fetched_at,
            jwks_fetched_at: self.clock.now(),
        });
        *self.current.write().await = Some(d.clone());
        Ok(Some(d))
    }

    async fn fetch(&self) -> Result<Discovered, ConnectionError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.discovery.trim_end_matches('/')
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
        // asked, exactly, or a provider could speak for another. Compared
        // as sent: a URL type could normalise a template's `{tenantid}`.
        let issuer = raw.get("issuer").and_then(Value::as_str).unwrap_or("");
        if issuer != self.issuer {
            return Err(err(format!(
                "metadata issuer {issuer:?} is not the configured issuer {:?}",
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
        // What the server fetches is held to the egress rules (nobody
        // validated these URLs: the document names them)...
        let guard = self.http.guard();
        for (name, u) in [
            ("token_endpoint", Some(token_endpoint.as_str())),
            ("jwks_uri", Some(metadata.jwks_uri().as_str())),
            ("userinfo_endpoint", userinfo_endpoint.as_deref()),
        ] {
            if let Some(u) = u {
                guard.check(u).map_err(|e| err(format!("{name}: {e}")))?;
            }
        }
        // ...where the browser is sent only needs to be https.
        for (name, u) in [
            (
                "authorization_endpoint",
                Some(metadata.authorization_endpoint().as_str()),
            ),
            ("end_session_endpoint", end_session_endpoint.as_deref()),
        ] {
            if let Some(u) = u
                && !guard.is_browser_url(u)
            {
                return Err(err(format!(
                    "{name} {u:?} is not https (http only on loopback, for tests)"
                )));
            }
        }
        let jwks = self.fetch_jwks(metadata.jwks_uri().as_str()).await?;
        let now = self.clock.now();
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::get;

    use super::*;

    #[derive(Default)]
    struct Counts {
        discovery: AtomicUsize,
        jwks: AtomicUsize,
        /// 0 = healthy, 1 = 500s, 2 = redirect, 3 = huge body, 4 = wrong
        /// issuer, 5 = plain-http remote token endpoint
        mode: AtomicUsize,
    }

    async fn serve(counts: Arc<Counts>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let iss = base.clone();
        let c1 = counts.clone();
        let c2 = counts.clone();
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let c = c1.clone();
                    let iss = iss.clone();
                    async move {
                        c.discovery.fetch_add(1, Ordering::SeqCst);
                        match c.mode.load(Ordering::SeqCst) {
                            1 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                            2 => Redirect::temporary("http://169.254.169.254/").into_response(),
                            3 => "x".repeat(2 * 1024 * 1024).into_response(),
                            m => axum::Json(serde_json::json!({
                                "issuer": if m == 4 { "https://impostor.example".to_owned() } else { iss.clone() },
                                "authorization_endpoint": format!("{iss}/authorize"),
                                "token_endpoint": if m == 5 { "http://evil.example/token".to_owned() } else { format!("{iss}/token") },
                                "jwks_uri": format!("{iss}/jwks"),
                                "response_types_supported": ["code"],
                                "subject_types_supported": ["public"],
                                "id_token_signing_alg_values_supported": ["RS256"],
                            }))
                            .into_response(),
                        }
                    }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let c = c2.clone();
                    async move {
                        c.jwks.fetch_add(1, Ordering::SeqCst);
                        axum::Json(serde_json::json!({"keys": []}))
                    }
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        base
    }

    fn cache(issuer: &str, refresh_ms: u64, jwks_min_ms: u64) -> ProviderCache {
        ProviderCache::new(
            issuer,
            ProviderHttp::new(
                2000,
                crate::auth::egress::Egress::with_rules(crate::config::EgressRules::with_loopback())
                    .unwrap()
                    .for_provider("test"),
            )
            .unwrap(),
            Duration::from_millis(refresh_ms),
            Duration::from_millis(jwks_min_ms),
        )
    }

    #[tokio::test]
    async fn cached_refreshed_and_stale_on_failure() {
        let counts = Arc::new(Counts::default());
        let issuer = serve(counts.clone()).await;
        let c = cache(&issuer, 200, 3_600_000);
        let first = c.get().await.unwrap();
        let again = c.get().await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(counts.discovery.load(Ordering::SeqCst), 1);
        assert_eq!(counts.jwks.load(Ordering::SeqCst), 1);
        // An unknown kid may refetch the keys only once per interval.
        assert!(c.refresh_keys(&first).await.unwrap().is_none());
        assert_eq!(counts.jwks.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let refreshed = c.get().await.unwrap();
        assert!(!Arc::ptr_eq(&first, &refreshed));
        assert_eq!(counts.discovery.load(Ordering::SeqCst), 2);
        // The provider fails: the last good view keeps serving.
        counts.mode.store(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let stale = c.get().await.unwrap();
        assert!(Arc::ptr_eq(&stale, &refreshed));
        assert_eq!(counts.discovery.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn hostile_discovery_is_refused() {
        let counts = Arc::new(Counts::default());
        let issuer = serve(counts.clone()).await;
        for (mode, needle) in [
            (1, "HTTP 500"),
            (2, crate::auth::egress::NOT_REACHABLE),
            (3, "larger than"),
            (4, "is not the configured issuer"),
            (
                5,
                "token_endpoint: the IdP URL is not reachable from this server",
            ),
        ] {
            counts.mode.store(mode, Ordering::SeqCst);
            let e = match cache(&issuer, 1000, 1000).get().await {
                Err(e) => e,
                Ok(_) => panic!("mode {mode} accepted"),
            };
            assert_eq!(e.reason, "discovery");
            assert!(e.detail.contains(needle), "{mode}: {}", e.detail);
        }
        // Nobody listening.
        let err = cache("http://127.0.0.1:1", 1000, 1000)
            .get()
            .await
            .err()
            .unwrap();
        assert_eq!(err.reason, "discovery");
    }
}
