//! Reading a request body Portcullis consumes itself (internal endpoints,
//! SCIM, SSO-enforced password logins), bounded in size *and* in time.
//!
//! pingora's own downstream read timeout applies to each read, so a client
//! sending a byte every few seconds keeps a connection and a task for as
//! long as it likes; the deadline here covers the whole body.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

use super::ctx::{BodyStage, Ctx, OutcomeKind};
use super::state::ProxyState;

/// A body read up to a limit.
#[derive(Debug)]
pub(super) enum Body {
    /// All of it, within the limit.
    Whole(Bytes),
    /// More than the limit arrived: what was read, which exceeds it by at
    /// most one chunk; the rest is left unread.
    TooLarge(Bytes),
}

#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    #[error("request body not received within {0:?}")]
    TimedOut(Duration),
    #[error("reading the request body: {0}")]
    Read(Box<pingora::Error>),
}

/// The body, reading at most `limit` bytes (and one chunk), within
/// `deadline`.
pub(super) async fn read_body(
    session: &mut Session,
    limit: usize,
    deadline: Duration,
) -> Result<Body, BodyError> {
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = session.read_request_body().await.map_err(BodyError::Read)? {
            let over = body.len() + chunk.len() > limit;
            body.extend_from_slice(&chunk);
            if over {
                return Ok(Body::TooLarge(body.freeze()));
            }
        }
        Ok(Body::Whole(body.freeze()))
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(BodyError::TimedOut(deadline)))
}

/// What [`receive`] got.
#[derive(Debug)]
pub(super) enum Received {
    Body(Body),
    /// The body could not be read and the client was answered (a `408`)
    /// with this status.
    Answered(u16),
}

/// The one way the proxy reads a body it consumes itself: at most `limit`
/// bytes within the generation's body timeout. A body that doesn't arrive
/// in time is answered here ([`refuse`], counted under `stage`) and the
/// request's outcome marked as a timeout.
pub(super) async fn receive(
    session: &mut Session,
    st: &ProxyState,
    ctx: &mut Ctx,
    limit: usize,
    stage: BodyStage,
) -> pingora::Result<Received> {
    match read_body(session, limit, st.body_timeout()).await {
        Ok(body) => Ok(Received::Body(body)),
        Err(e) => {
            ctx.outcome = OutcomeKind::Timeout;
            refuse(session, &st.generation.metrics, stage, e, &ctx.request_id)
                .await
                .map(Received::Answered)
        }
    }
}

/// Answers a body that could not be read: `408` for a client too slow
/// (counted under `stage`, logged with the reason, connection closed), the
/// read error itself otherwise.
pub(super) async fn refuse(
    session: &mut Session,
    metrics: &crate::metrics::Metrics,
    stage: BodyStage,
    err: BodyError,
    request_id: &str,
) -> pingora::Result<u16> {
    match err {
        BodyError::Read(e) => Err(e),
        err @ BodyError::TimedOut(_) => {
            metrics
                .limits
                .client_timeouts
                .with_label_values(&[stage.as_str()])
                .inc();
            tracing::warn!(
                request_id,
                stage = stage.as_str(),
                client = %session.client_addr().map(|a| a.to_string()).unwrap_or_default(),
                reason = %err,
                "slow client cut off"
            );
            // The rest of the body is never read: the connection can't be
            // reused, and draining it is what the client is stalling.
            session.set_keepalive(None);
            timeout_reply(request_id).send(session, request_id).await
        }
    }
}

fn timeout_reply(request_id: &str) -> super::respond::Reply {
    let body = serde_json::json!({
        "error": "request_timeout",
        "message": "The request was not received in time.",
        "request_id": request_id,
    });
    super::respond::Reply {
        status: http::StatusCode::REQUEST_TIMEOUT,
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body: Bytes::from(body.to_string()),
    }
    .header(http::header::CONNECTION, "close")
}
