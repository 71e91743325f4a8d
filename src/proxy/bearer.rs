//! Machine callers: `Authorization: Bearer` on `required` and `optional`
//! routes, in proxy and forward-auth mode alike. [`presented`] reads the
//! header purely; [`PortcullisProxy::identify_caller`] looks the credential
//! up (a service-account token through the session module's cache, a JWT
//! through the tenant's OIDC connection) where the session cookie is looked
//! up otherwise, and hands the gate an [`Identity`]. A bearer credential
//! never creates a session and never reaches the app (`forward::rewrite`
//! removes it); a failure is one generic 401 for the client and a precise
//! reason in the log and `portcullis_machine_auth_failures_total`.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use pingora::proxy::Session;

use crate::auth::oidc::MAX_ACCESS_TOKEN_BYTES;
use crate::session::is_service_token;

use super::ctx::Ctx;
use super::gate::{Conflict, Identity};
use super::service::PortcullisProxy;
use super::state::ProxyState;

/// What a request's `Authorization` says, before anything is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Presented<'h> {
    /// No `Authorization`, or a scheme other than Bearer (the app's own
    /// business): the session cookie decides.
    Nothing,
    Bearer(&'h str),
    /// `Bearer` with no token, a token that is not RFC 6750's `b64token`,
    /// or one longer than any Portcullis accepts.
    Malformed(&'static str),
    Conflicting(Conflict),
}

/// Reads `Authorization` (RFC 6750 §2.1: `Bearer` case-insensitively, one
/// or more spaces, a `b64token`).
pub(super) fn presented(headers: &HeaderMap) -> Presented<'_> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Presented::Nothing;
    };
    if all.next().is_some() {
        return Presented::Conflicting(Conflict::TwoAuthorizations);
    }
    let bytes = value.as_bytes();
    let scheme_end = bytes.iter().position(|b| *b == b' ').unwrap_or(bytes.len());
    if !bytes[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return Presented::Nothing;
    }
    let token = &bytes[scheme_end..];
    let token = &token[token.iter().take_while(|b| **b == b' ').count()..];
    if token.is_empty() {
        return Presented::Malformed("malformed");
    }
    if token.len() > MAX_ACCESS_TOKEN_BYTES {
        return Presented::Malformed("oversized");
    }
    let body = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    let b64token = body > 0
        && token[..body]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b));
    match std::str::from_utf8(token) {
        Ok(t) if b64token => Presented::Bearer(t),
        _ => Presented::Malformed("malformed"),
    }
}

impl PortcullisProxy {
    /// Who a request to a `required` or `optional` route is: its bearer
    /// credential, or else its session cookie ([`PortcullisProxy::identify`]).
    /// Never fails the request itself; the gate decides on the answer.
    pub(super) async fn identify_caller(
        &self,
        session: &Session,
        st: &ProxyState,
        ctx: &mut Ctx,
    ) -> Identity {
        let g = &st.generation;
        let headers = &session.req_header().headers;
        let token = match presented(headers) {
            Presented::Nothing => return self.identify(session, st, ctx).await,
            Presented::Conflicting(c) => {
                tracing::info!(request_id = %ctx.request_id, reason = %c, "credentials refused as ambiguous");
                return Identity::Conflicting(c);
            }
            Presented::Malformed(reason) => {
                return refused(st, ctx, reason, "the bearer credential is not a b64token");
            }
            Presented::Bearer(t) => t,
        };
        // A session cookie beside a bearer token: which one is meant is a
        // guess, so neither counts (decided before any lookup).
        let cookies = headers.get_all(COOKIE);
        if matches!(
            g.codec
                .open(cookies.iter().map(|v| v.as_bytes()), &mut None),
            Ok(Some(_))
        ) {
            tracing::info!(request_id = %ctx.request_id, "a session cookie and a bearer credential: refused as ambiguous");
            return Identity::Conflicting(Conflict::CookieAndBearer);
        }
        if is_service_token(token) {
            self.service_account(st, ctx, token).await
        } else {
            self.machine_jwt(st, ctx, token).await
        }
    }

    async fn service_account(&self, st: &ProxyState, ctx: &mut Ctx, token: &str) -> Identity {
        let g = &st.generation;
        let now = crate::clock::now();
        let caller = match g.sessions.service_accounts().authenticate(token, now).await {
            Ok(Ok(c)) => c,
            Ok(Err(r)) => return refused(st, ctx, r.label(), &r.to_string()),
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "service account lookup failed");
                return Identity::Unknown;
            }
        };
        // A tenant removed from the configuration takes its accounts along.
        let tenant = caller.principal.tenant.as_deref().unwrap_or("");
        if g.auth.tenant(tenant).is_none() {
            let detail = format!("tenant `{tenant}` is not configured");
            return refused(st, ctx, "tenant_unknown", &detail);
        }
        g.metrics
            .machine
            .authenticated
            .with_label_values(&["service_account"])
            .inc();
        ctx.assertion_key = Some(format!("sa:{}", caller.key_id));
        Identity::Authenticated(caller.principal)
    }

    async fn machine_jwt(&self, st: &ProxyState, ctx: &mut Ctx, token: &str) -> Identity {
        let g = &st.generation;
        match g.auth.machine_jwt(token).await {
            Ok(Ok(p)) => {
                g.metrics
                    .machine
                    .authenticated
                    .with_label_values(&["jwt"])
                    .inc();
                ctx.assertion_key = Some(format!(
                    "jwt:{}",
                    crate::secret::sha256_hex(token.as_bytes())
                ));
                Identity::Authenticated(p)
            }
            Ok(Err(r)) => refused(st, ctx, r.label, &r.detail),
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "machine token check failed: the provider's keys are unavailable");
                Identity::Unknown
            }
        }
    }
}

/// Counts and logs a refused bearer credential; the client learns nothing
/// of `reason` or `detail`.
fn refused(st: &ProxyState, ctx: &Ctx, reason: &'static str, detail: &str) -> Identity {
    st.generation
        .metrics
        .machine
        .failures
        .with_label_values(&[reason])
        .inc();
    tracing::info!(request_id = %ctx.request_id, reason, detail, "bearer credential refused");
    Identity::InvalidBearer
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(presented(&HeaderMap::new()), Presented::Nothing);
        for (value, expected) in [
            (
                &b"Bearer abc.def-_~+/=="[..],
                Presented::Bearer("abc.def-_~+/=="),
            ),
            (b"bearer   psa_x", Presented::Bearer("psa_x")),
            (b"BEARER t", Presented::Bearer("t")),
            // the app's own schemes are not ours
            (b"Basic dXNlcjpwYXNz", Presented::Nothing),
            (b"Bearerish x", Presented::Nothing),
            (b"Bearer", Presented::Malformed("malformed")),
            (b"Bearer    ", Presented::Malformed("malformed")),
            (b"Bearer a b", Presented::Malformed("malformed")),
            (b"Bearer ===", Presented::Malformed("malformed")),
            (b"Bearer a=b", Presented::Malformed("malformed")),
            (b"Bearer t\xc3\xa9", Presented::Malformed("malformed")),
            (b"Bearer a\tb", Presented::Malformed("malformed")),
        ] {
            assert_eq!(
                presented(&with(&[value])),
                expected,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        let long = format!("Bearer {}", "a".repeat(MAX_ACCESS_TOKEN_BYTES + 1));
        assert_eq!(
            presented(&with(&[long.as_bytes()])),
            Presented::Malformed("oversized")
        );
        let fits = format!("Bearer {}", "a".repeat(MAX_ACCESS_TOKEN_BYTES));
        assert!(matches!(
            presented(&with(&[fits.as_bytes()])),
            Presented::Bearer(_)
        ));
        // twice, whatever the schemes
        assert_eq!(
            presented(&with(&[b"Bearer a", b"Bearer a"])),
            Presented::Conflicting(Conflict::TwoAuthorizations)
        );
        assert_eq!(
            presented(&with(&[b"Basic x", b"Bearer a"])),
            Presented::Conflicting(Conflict::TwoAuthorizations)
        );
    }
}
