//! The admin API on the admin listener: `Shared` as the admin module's
//! [`Current`], and the bridge from a pingora session to its axum router;
//! the setup portal mounted in front of the internal endpoints.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use pingora::protocols::http::ServerSession;
use tower::ServiceExt;

use super::Shared;
use crate::admin::portal::{Portal, Viewer};
use crate::admin::{AdminCtx, Current};
use crate::generation::Generation;

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

/// This server as the portal's [`crate::admin::portal::Host`]: bound once
/// `Shared` exists (the first generation is built before it); weak, so the
/// routers a generation holds don't keep the server alive.
#[derive(Clone, Default)]
pub(super) struct PortalHost(Arc<OnceLock<Weak<Shared>>>);

impl PortalHost {
    pub(super) fn bind(&self, shared: &Arc<Shared>) {
        let _ = self.0.set(Arc::downgrade(shared));
    }

    fn host(&self) -> crate::admin::portal::Host {
        let cell = self.0.clone();
        Arc::new(move || {
            cell.get()
                .and_then(Weak::upgrade)
                .map(|s| s as Arc<dyn Current>)
        })
    }
}

/// The internal router of a generation: the setup portal's paths
/// (`{prefix}setup/…`, `{prefix}admin…`) first, every other path to the
/// endpoints. The portal sees the caller's session as a [`Viewer`], so it
/// needs nothing of `endpoints`.
pub(super) fn internal_router(host: &PortalHost, generation: &Arc<Generation>) -> axum::Router {
    let portal = Portal::new(
        host.host(),
        generation.codec.clone(),
        &generation.config,
        generation.config.server.max_internal_body_bytes,
    );
    crate::admin::portal::router(portal)
        .layer(axum::middleware::map_request(
            |mut req: axum::extract::Request| async move {
                let session = req
                    .extensions()
                    .get::<crate::endpoints::CurrentSession>()
                    .and_then(|c| c.0.clone());
                req.extensions_mut().insert(Viewer(session));
                req
            },
        ))
        .fallback_service(crate::endpoints::router(generation.clone()))
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

/// Authenticates the request from its head (401 before any of the body is
/// read), reads the body (bounded in size and time), runs `router` on it
/// and returns its answer.
pub(super) async fn serve(
    http: &mut ServerSession,
    router: &axum::Router,
    cur: &dyn Current,
) -> http::Response<Vec<u8>> {
    let authenticated = match crate::admin::api::authenticate(cur, &http.req_header().headers).await
    {
        Ok(a) => a,
        Err(answer) => return relay(answer).await,
    };
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
        .uri(head.uri.clone())
        .extension(authenticated);
    for (name, value) in head.headers.iter() {
        req = req.header(name, value);
    }
    let Ok(req) = req.body(axum::body::Body::from(body)) else {
        return plain(400, "malformed request");
    };
    let Ok(resp) = router.clone().oneshot(req).await;
    relay(resp).await
}

/// An answer of the router as pingora sends it (bounded, `no-store`).
async fn relay(resp: axum::response::Response) -> http::Response<Vec<u8>> {
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
