//! Rewrites the request headed upstream: identity headers the client sent
//! are removed on every route, verified ones injected, our session cookie
//! withheld, and `X-Forwarded-*` made truthful.

use std::net::IpAddr;

use http::header::{COOKIE, HOST};
use pingora::http::RequestHeader;

use crate::identity::Principal;

use crate::generation::Generation;

/// What the rewrite needs to know about the connection.
pub(super) struct Downstream<'a> {
    pub client_ip: Option<IpAddr>,
    /// The listener port the client connected to.
    pub port: Option<u16>,
    pub tls: bool,
    pub request_id: &'a str,
}

pub(super) fn rewrite(
    req: &mut RequestHeader,
    state: &Generation,
    principal: Option<&Principal>,
    assertion: Option<&str>,
    down: &Downstream<'_>,
) -> pingora::Result<()> {
    let trust = state.config.server.trust_forwarded_headers;
    for name in state.plan.headers_to_strip(&req.headers, trust) {
        req.remove_header(&name);
    }
    strip_session_cookie(req, state)?;
    // A machine caller's bearer credential is Portcullis', like the
    // session cookie: the app gets the identity headers and the assertion.
    if principal.is_some_and(|p| p.kind == crate::identity::PrincipalKind::Service) {
        req.remove_header(&http::header::AUTHORIZATION);
    }
    if let Some(p) = principal {
        for (name, value) in state.plan.values(p) {
            req.insert_header(name, value)?;
        }
        if let (Some(name), Some(token)) = (state.plan.assertion_header(), assertion) {
            req.insert_header(name.clone(), token)?;
        }
    }
    forwarded(req, trust, down)?;
    req.insert_header("x-request-id", down.request_id)?;
    Ok(())
}

/// The session cookie is a bearer credential for Portcullis, not the app:
/// an app (or its logs, or an XSS-prone debug page) never gets to see it.
fn strip_session_cookie(req: &mut RequestHeader, state: &Generation) -> pingora::Result<()> {
    let values: Vec<Vec<u8>> = req
        .headers
        .get_all(COOKIE)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
    if values.is_empty() {
        return Ok(());
    }
    if !values.iter().any(|v| state.codec.mentioned_in(v)) {
        return Ok(());
    }
    req.remove_header(&COOKIE);
    let kept: Vec<String> = values
        .iter()
        .filter_map(|v| state.codec.strip_from_header(v))
        .collect();
    if !kept.is_empty() {
        req.insert_header(COOKIE, kept.join("; "))?;
    }
    Ok(())
}

fn forwarded(req: &mut RequestHeader, trust: bool, down: &Downstream<'_>) -> pingora::Result<()> {
    let ip = down.client_ip.map(|i| i.to_string());
    let proto = if down.tls { "https" } else { "http" };
    let host = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.to_string()));
    if trust {
        // Behind a trusted balancer: extend its chain, keep what it said.
        if let Some(ip) = &ip {
            let chain = match req
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
                _ => ip.clone(),
            };
            req.insert_header("x-forwarded-for", chain)?;
        }
        if req.headers.get("x-forwarded-proto").is_none() {
            req.insert_header("x-forwarded-proto", proto)?;
        }
        if let (None, Some(h)) = (req.headers.get("x-forwarded-host"), &host) {
            req.insert_header("x-forwarded-host", h.as_str())?;
        }
    } else {
        // Directly exposed: the client's forwarding headers were stripped
        // (every spelling, see `HeaderPlan::headers_to_strip`); set the
        // ones Portcullis knows from the connection.
        if let Some(ip) = &ip {
            req.insert_header("x-forwarded-for", ip.as_str())?;
            req.insert_header("x-real-ip", ip.as_str())?;
        }
        req.insert_header("x-forwarded-proto", proto)?;
        if let Some(h) = &host {
            req.insert_header("x-forwarded-host", h.as_str())?;
        }
        if let Some(port) = down.port {
            req.insert_header("x-forwarded-port", port.to_string())?;
        }
        req.insert_header("forwarded", rfc7239(down.client_ip, proto, host.as_deref()))?;
    }
    Ok(())
}

/// `Forwarded: for=…;proto=…;host=…` (RFC 7239); IPv6 and hosts with a
/// port are quoted, and nothing from the request can close the quotes.
fn rfc7239(ip: Option<IpAddr>, proto: &str, host: Option<&str>) -> String {
    let mut out = match ip {
        Some(IpAddr::V6(v6)) => format!("for=\"[{v6}]\";"),
        Some(IpAddr::V4(v4)) => format!("for={v4};"),
        None => String::new(),
    };
    out.push_str("proto=");
    out.push_str(proto);
    if let Some(h) = host {
        let h: String = h
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
            .collect();
        out.push_str(&format!(";host=\"{h}\""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_header_is_well_formed() {
        assert_eq!(
            rfc7239(
                Some("10.0.0.1".parse().unwrap()),
                "https",
                Some("app.example.com:8443")
            ),
            "for=10.0.0.1;proto=https;host=\"app.example.com:8443\""
        );
        assert_eq!(
            rfc7239(Some("::1".parse().unwrap()), "http", Some("a\"b")),
            "for=\"[::1]\";proto=http;host=\"ab\""
        );
        assert_eq!(rfc7239(None, "http", None), "proto=http");
    }
}
