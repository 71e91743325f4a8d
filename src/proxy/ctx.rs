//! The per-request context pingora threads through the phases, and the
//! closed label sets it reports under.
//!
//! Rule: every label that reaches a metric or the access log is an enum
//! variant here (or a `label()` of the decision that produced it), never a
//! string literal at the call site, so the set stays closed and a typo
//! can't open a new time series. The strings are what dashboards and tests
//! read: change none of them.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Policy;
use crate::identity::Principal;
use crate::session::ActiveSession;

use super::state::ProxyState;

/// Per-request context.
pub struct Ctx {
    /// The generation this request is served with, fixed at its start.
    pub(super) state: Option<Arc<ProxyState>>,
    pub(super) request_id: String,
    pub(super) start: Instant,
    /// The `policy` label.
    pub(super) policy: RouteKind,
    /// The client asked for HTML (a browser navigation).
    pub(super) wants_html: bool,
    pub(super) session: Option<Arc<ActiveSession>>,
    pub(super) principal: Option<Arc<Principal>>,
    /// Set when Portcullis answered itself.
    pub(super) status: Option<u16>,
    /// The access log's `outcome`.
    pub(super) outcome: OutcomeKind,
    /// The path a forward-auth request asked about, for the access log.
    pub(super) original_path: Option<String>,
    /// Index of the upstream the route table picked (`ProxyState::upstreams`).
    pub(super) upstream: usize,
    /// What the signed assertion is cached under when no session carries
    /// the request (a machine caller's key or token).
    pub(super) assertion_key: Option<String>,
}

impl Ctx {
    pub(super) fn new() -> Self {
        Self {
            state: None,
            request_id: next_request_id(),
            start: Instant::now(),
            policy: RouteKind::None,
            wants_html: false,
            session: None,
            principal: None,
            status: None,
            outcome: OutcomeKind::Forward,
            original_path: None,
            upstream: 0,
            assertion_key: None,
        }
    }
}

/// A unique request id without a syscall per request: a random per-process
/// prefix and a counter (ids need to be unique and unguessable across
/// processes, not secret).
fn next_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        crate::secret::random_bytes::<8>()
            .map(u64::from_le_bytes)
            .unwrap_or_else(|_| uuid::Uuid::new_v4().as_u64_pair().0)
    });
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&prefix.to_be_bytes());
    raw[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    // As `format!("{prefix:016x}{n:016x}")` writes it, without the
    // formatting machinery (a request id is made for every request).
    let mut out = [0u8; 32];
    hex::encode_to_slice(raw, &mut out)
        .ok()
        .and_then(|()| std::str::from_utf8(&out).ok())
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Which kind of path a request was: the `policy` label of
/// `portcullis_requests_total` and the request duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RouteKind {
    /// Refused or failed before a route applied.
    None,
    /// Served by Portcullis itself (internal endpoints, SCIM).
    Internal,
    Public,
    Optional,
    Required,
}

impl RouteKind {
    /// Its index in [`crate::metrics::POLICIES`], the label it counts
    /// under.
    pub(super) fn label_index(self) -> usize {
        match self {
            RouteKind::None => 0,
            RouteKind::Internal => 1,
            RouteKind::Public => 2,
            RouteKind::Optional => 3,
            RouteKind::Required => 4,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        crate::metrics::POLICIES[self.label_index()]
    }
}

impl From<Policy> for RouteKind {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Public => RouteKind::Public,
            Policy::Optional => RouteKind::Optional,
            Policy::Required => RouteKind::Required,
        }
    }
}

/// How a request ended, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutcomeKind {
    /// Sent on to the app.
    Forward,
    Scim,
    Internal,
    RateLimited,
    /// Its body did not arrive in time (or could not be read).
    Timeout,
    Redirect,
    Deny,
    /// A password login stopped: the tenant enforces SSO.
    SsoRequired,
    /// A password-login submission Portcullis could not vouch for.
    LoginRefused,
    /// An ambiguous path or host, refused before routing.
    Refused,
    /// The app could not be reached, or the request was malformed.
    Error,
    /// A forward-auth endpoint told the host proxy to let a request through.
    ForwardAuthAllow,
    /// A session too weak for the route: a fresh login or an RFC 9470 401.
    StepUp,
}

impl OutcomeKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Forward => "forward",
            OutcomeKind::Scim => "scim",
            OutcomeKind::Internal => "internal",
            OutcomeKind::RateLimited => "rate_limited",
            OutcomeKind::Timeout => "timeout",
            OutcomeKind::Redirect => "redirect",
            OutcomeKind::Deny => "deny",
            OutcomeKind::SsoRequired => "sso_required",
            OutcomeKind::LoginRefused => "login_refused",
            OutcomeKind::Refused => "refused",
            OutcomeKind::Error => "error",
            OutcomeKind::ForwardAuthAllow => "forward_auth_allow",
            OutcomeKind::StepUp => "step_up",
        }
    }
}

/// Which body a slow client was cut off in: the `stage` label of
/// `portcullis_client_timeouts_total` (the connection and header stages
/// are counted in `conn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyStage {
    Internal,
    Scim,
    Login,
}

impl BodyStage {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            BodyStage::Internal => "internal_body",
            BodyStage::Scim => "scim_body",
            BodyStage::Login => "login_body",
        }
    }
}

/// Why the app could not be reached: the `kind` label of
/// `portcullis_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UpstreamFailure {
    Timeout,
    Connect,
    Other,
}

impl UpstreamFailure {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Other => "other",
        }
    }
}

/// Why a session cookie was not honoured, where the proxy decides it (the
/// session cache reports its own reasons): the `reason` label of
/// `portcullis_session_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CookieRejection {
    /// No key opens it.
    Undecryptable,
    /// The store could not be asked.
    StoreError,
}

impl CookieRejection {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CookieRejection::Undecryptable => "undecryptable",
            CookieRejection::StoreError => "store_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels are a contract with dashboards: a rename here is a
    /// breaking change, not a refactor.
    #[test]
    fn request_ids_are_32_hex_digits_unique_with_a_shared_prefix() {
        let (a, b) = (next_request_id(), next_request_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{id}"
            );
        }
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16], "one per-process prefix");
        let n = |id: &str| u64::from_str_radix(&id[16..], 16).unwrap();
        assert!(n(&b) > n(&a), "a counter: {a} then {b}");
    }

    #[test]
    fn labels_are_the_documented_strings() {
        let kinds = [
            RouteKind::None,
            RouteKind::Internal,
            RouteKind::Public,
            RouteKind::Optional,
            RouteKind::Required,
        ];
        assert_eq!(
            kinds.map(RouteKind::as_str),
            ["none", "internal", "public", "optional", "required"]
        );
        for p in [Policy::Public, Policy::Optional, Policy::Required] {
            assert_eq!(RouteKind::from(p).as_str(), p.as_str());
        }
        assert_eq!(
            [BodyStage::Internal, BodyStage::Scim, BodyStage::Login].map(BodyStage::as_str),
            ["internal_body", "scim_body", "login_body"]
        );
        assert_eq!(
            [
                UpstreamFailure::Timeout,
                UpstreamFailure::Connect,
                UpstreamFailure::Other
            ]
            .map(UpstreamFailure::as_str),
            ["timeout", "connect", "other"]
        );
        assert_eq!(OutcomeKind::ForwardAuthAllow.as_str(), "forward_auth_allow");
        assert_eq!(
            [CookieRejection::Undecryptable, CookieRejection::StoreError]
                .map(CookieRejection::as_str),
            ["undecryptable", "store_error"]
        );
    }
}
