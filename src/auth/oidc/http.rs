//! The one HTTP client OIDC uses to talk to providers: the egress guard's
//! (`auth::egress`: public addresses only, checked at resolution; no
//! redirects — a provider's 302 must never send Portcullis to an internal
//! address; no proxies from the environment), a timeout on every request,
//! and a cap on every response body.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

use crate::auth::egress::{Guard, Refused};

/// Largest response accepted from a provider (discovery, keys, tokens,
/// userinfo are all a few KiB).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The egress guard refused it (logged and counted there); displays
    /// only the generic `egress::NOT_REACHABLE`.
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("response larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("bad request: {0}")]
    Build(String),
}

#[derive(Clone)]
pub(crate) struct ProviderHttp {
    client: reqwest::Client,
    guard: Guard,
}

impl ProviderHttp {
    pub(crate) fn new(timeout_ms: u64, guard: Guard) -> Result<Self, HttpError> {
        let client = guard
            .client(Duration::from_millis(timeout_ms))
            .map_err(|e| HttpError::Build(e.to_string()))?;
        Ok(Self { client, guard })
    }

    /// The guard requests go through.
    pub(crate) fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Sends one request (its URL checked by the guard first) and reads at
    /// most `MAX_BODY_BYTES` of its body. A redirect is refused.
    pub(crate) async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let raw = parts.uri.to_string();
        let url = self.guard.check(&raw)?;
        let mut resp = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| match Guard::refusal_in(&e) {
                Some(r) => HttpError::Refused(r),
                None => HttpError::Request(e),
            })?;
        if resp.status().is_redirection() {
            let location = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            return Err(self
                .guard
                .redirect(&raw, resp.status().as_u16(), location)
                .into());
        }
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_BODY_BYTES as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::builder().status(status);
        if let Some(h) = out.headers_mut() {
            *h = headers;
        }
        out.body(body).map_err(|e| HttpError::Build(e.to_string()))
    }

    /// GET a JSON document.
    pub(crate) async fn get_json(&self, url: &str) -> Result<(u16, Vec<u8>), HttpError> {
        let req = http::Request::builder()
            .method(http::Method::GET)
            .uri(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        let resp = self.send(req).await?;
        Ok((resp.status().as_u16(), resp.into_body()))
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
