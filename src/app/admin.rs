//! The admin API on the admin listener: `Shared` as the admin module's
//! [`Current`], and the bridge from a pingora session to its axum router.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use pingora::protocols::http::ServerSession;
use tower::ServiceExt;

use super::Shared;
use crate::admin::{AdminCtx, Current};

/// The largest request body the admin API reads (pasted metadata fits).
const MAX_BODY: usize = 2 << 20;
/// The largest answer relayed.
const MAX_RESPONSE: usize = 8 << 20;
/// A body must arrive within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
impl Current for Shared {
    fn ctx(&self) -> AdminCtx {
        AdminCtx {
            config: self.config(),
            file_config: self.file_config(),
            config_file: self.config_path.as_ref().map_or_else(
                || "(given without a file)".to_owned(),
                |p| p.display().to_string(),
            ),
            store: self.store.clone(),
            sessions: self.sessions.clone(),
            metrics: self.metrics.clone(),
            invalid: self.invalid_store_tenants(),
        }
    }

    async fn rebuild(&self) {
        if let Err(e) = self.rebuild_from_store().await {
            tracing::error!(error = %e, "an admin change committed but could not be applied here yet; the next poll retries");
        }
    }
}

fn plain(status: u16, text: &str) -> http::Response<Vec<u8>> {
    let body = format!("{{\"errors\":[{{\"field\":\"\",\"message\":\"{text}\"}}]}}").into_bytes();
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_default()
}

/// Reads the request (bounded in size and time), runs `router` on it and
/// returns its answer.
pub(super) async fn serve(
    http: &mut ServerSession,
    router: &axum::Router,
) -> http::Response<Vec<u8>> {
    let mut body = Vec::new();
    let read = tokio::time::timeout(BODY_TIMEOUT, async {
        while let Some(chunk) = http.read_request_body().await? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Ok(false);
            }
        }
        Ok::<bool, Box<pingora::Error>>(true)
    })
    .await;
    match read {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return plain(413, "request body too large (2 MiB at most)"),
        Ok(Err(_)) => return plain(400, "could not read the request body"),
        Err(_) => return plain(408, "request body too slow"),
    }
    let head = http.req_header();
    let mut req = http::Request::builder()
        .method(head.method.clone())
        .uri(head.uri.clone());
    for (name, value) in head.headers.iter() {
        req = req.header(name, value);
    }
    let Ok(req) = req.body(axum::body::Body::from(body)) else {
        return plain(400, "malformed request");
    };
    let Ok(resp) = router.clone().oneshot(req).await;
    let (parts, body) = resp.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_RESPONSE)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return plain(500, "answer too large"),
    };
    let mut out = http::Response::builder().status(parts.status);
    for (name, value) in parts.headers.iter() {
        if name != http::header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    out.header(http::header::CONTENT_LENGTH, bytes.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(bytes)
        .unwrap_or_default()
}
