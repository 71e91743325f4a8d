//! Responses Portcullis writes itself: redirects, denials, error pages and
//! the output of the internal router.

use bytes::Bytes;
use http::StatusCode;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::json;

use crate::endpoints::pages::{PAGE_HEADERS, message};

use super::gate::Deny;

/// A complete response to write downstream.
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    pub(super) fn new(
        status: StatusCode,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Self {
        Self {
            status,
            headers: vec![(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type),
            )],
            body: body.into(),
        }
    }

    pub fn header(mut self, name: http::HeaderName, value: &str) -> Self {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// Writes the reply; returns its status for logging.
    pub async fn send(self, session: &mut Session, request_id: &str) -> pingora::Result<u16> {
        let code = self.status.as_u16();
        let mut resp = ResponseHeader::build(
            self.status,
            Some(self.headers.len() + PAGE_HEADERS.len() + 2),
        )?;
        for (k, v) in self.headers {
            resp.append_header(k, v)?;
        }
        for (k, v) in PAGE_HEADERS {
            if resp.headers.get(*k).is_none() {
                resp.insert_header(*k, *v)?;
            }
        }
        resp.insert_header("x-request-id", request_id)?;
        resp.insert_header(http::header::CONTENT_LENGTH, self.body.len().to_string())?;
        let head_only = session.req_header().method == http::Method::HEAD;
        let empty = self.body.is_empty() || head_only;
        session.write_response_header(Box::new(resp), empty).await?;
        if !empty {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(code)
    }
}

/// 302 to the login page.
pub(super) fn redirect(location: &str) -> Reply {
    Reply::new(StatusCode::FOUND, "text/plain; charset=utf-8", Bytes::new())
        .header(http::header::LOCATION, location)
}

/// A bearer credential that did not authenticate (RFC 6750 §3): JSON
/// whatever the client accepts (a browser never sends one), and no hint
/// of why — that is in the log and the metric.
fn invalid_token(request_id: &str) -> Reply {
    let body = json!({
        "error": "invalid_token",
        "message": "The bearer credential is not valid.",
        "request_id": request_id,
    });
    Reply::new(
        StatusCode::UNAUTHORIZED,
        "application/json",
        body.to_string(),
    )
    .header(
        http::header::WWW_AUTHENTICATE,
        "Bearer error=\"invalid_token\"",
    )
}

/// A denial in the client's preferred format.
pub(super) fn deny(
    d: Deny,
    wants_html: bool,
    request_id: &str,
    login_path: &str,
    realm: &str,
) -> Reply {
    let (status, error, title, text) = match d {
        Deny::InvalidToken => return invalid_token(request_id),
        Deny::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Sign-in required",
            "You need to sign in to see this page.",
        ),
        Deny::Forbidden => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "Access denied",
            "Your account doesn't have access to this page.",
        ),
        Deny::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            "We couldn't check your session. Please try again shortly.",
        ),
    };
    let reply = if wants_html {
        let link = (d == Deny::Unauthenticated).then_some((login_path, "Sign in"));
        Reply::new(
            status,
            "text/html; charset=utf-8",
            message(title, text, link, request_id),
        )
    } else {
        let body = json!({"error": error, "message": text, "request_id": request_id});
        Reply::new(status, "application/json", body.to_string())
    };
    match d {
        Deny::Unauthenticated => reply.header(
            http::header::WWW_AUTHENTICATE,
            &format!("Portcullis realm=\"{realm}\", login_uri=\"{login_path}\""),
        ),
        Deny::Unavailable => reply.header(http::header::RETRY_AFTER, "5"),
        Deny::Forbidden | Deny::InvalidToken => reply,
    }
}

/// A session too weak for the route: a browser is redirected to the
/// step-up login (`location`); an API client gets RFC 9470's 401, whose
/// `WWW-Authenticate` names what a new authentication must meet.
pub(super) fn step_up(
    c: &super::gate::StepUpChallenge,
    location: &str,
    wants_html: bool,
    request_id: &str,
) -> Reply {
    if c.browser {
        return redirect(location);
    }
    let text = "This resource needs a stronger or more recent sign-in.";
    let reply = if wants_html {
        Reply::new(
            StatusCode::UNAUTHORIZED,
            "text/html; charset=utf-8",
            message(
                "Sign-in required",
                text,
                Some((location, "Sign in again")),
                request_id,
            ),
        )
    } else {
        let body = json!({
            "error": "insufficient_user_authentication",
            "message": text,
            "request_id": request_id,
        });
        Reply::new(
            StatusCode::UNAUTHORIZED,
            "application/json",
            body.to_string(),
        )
    };
    reply.header(
        http::header::WWW_AUTHENTICATE,
        &super::gate::step_up_www_authenticate(&c.need),
    )
}

/// The page shown when the app can't be reached.
pub(super) fn bad_gateway(code: u16, wants_html: bool, request_id: &str) -> Reply {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    if wants_html {
        Reply::new(
            status,
            "text/html; charset=utf-8",
            message(
                "The application is unavailable",
                "The service behind this page didn't answer. Please try again in a moment.",
                None,
                request_id,
            ),
        )
    } else {
        let body = json!({"error": "bad_gateway", "request_id": request_id});
        Reply::new(status, "application/json", body.to_string())
    }
}

/// A password login refused because the tenant enforces SSO.
pub(super) fn sso_required(browser: bool, login_url: &str, request_id: &str) -> Reply {
    if browser {
        return Reply::new(
            StatusCode::SEE_OTHER,
            "text/plain; charset=utf-8",
            Bytes::new(),
        )
        .header(http::header::LOCATION, login_url);
    }
    let body = json!({
        "error": "sso_required",
        "message": "Your organisation requires single sign-on.",
        "login_url": login_url,
        "request_id": request_id,
    });
    Reply::new(StatusCode::FORBIDDEN, "application/json", body.to_string())
}

/// 413 for password-login bodies too large to inspect.
pub(super) fn too_large(request_id: &str) -> Reply {
    let body = json!({"error": "payload_too_large", "request_id": request_id});
    Reply::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "application/json",
        body.to_string(),
    )
}

/// A password-login submission Portcullis can't vouch for (see
/// `enforce`): browsers go to the login page, APIs get a 403 that says
/// nothing about why.
pub(super) fn login_refused(browser: bool, login_url: &str, request_id: &str) -> Reply {
    if browser {
        return Reply::new(
            StatusCode::SEE_OTHER,
            "text/plain; charset=utf-8",
            Bytes::new(),
        )
        .header(http::header::LOCATION, login_url);
    }
    let body = json!({
        "error": "login_refused",
        "message": "This sign-in request can't be accepted; sign in from the login page.",
        "login_url": login_url,
        "request_id": request_id,
    });
    Reply::new(StatusCode::FORBIDDEN, "application/json", body.to_string())
}

/// 400 for requests we refuse to interpret (oversized internal bodies...).
pub(super) fn bad_request(text: &'static str, request_id: &str) -> Reply {
    let body = json!({"error": "bad_request", "message": text, "request_id": request_id});
    Reply::new(
        StatusCode::BAD_REQUEST,
        "application/json",
        body.to_string(),
    )
}

/// Converts the internal router's response.
pub(super) async fn from_router(resp: http::Response<axum::body::Body>, limit: usize) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, limit).await.unwrap_or_default();
    let mut headers = Vec::with_capacity(parts.headers.len());
    let mut last: Option<http::HeaderName> = None;
    // `HeaderMap::into_iter` names a header once and then yields `None` for
    // its further values (several `Set-Cookie`s): keep them all.
    for (k, v) in parts.headers {
        if let Some(k) = k {
            last = Some(k);
        }
        if let Some(k) = &last
            && k != http::header::CONTENT_LENGTH
        {
            headers.push((k.clone(), v));
        }
    }
    Reply {
        status: parts.status,
        headers,
        body,
    }
}
