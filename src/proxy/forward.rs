//! Rewrites the request headed upstream: identity headers the client sent
//! are removed on every route, verified ones injected, our session cookie
//! withheld, and `X-Forwarded-*` made truthful.

use std::net::IpAddr;
use std::sync::LazyLock;

use http::HeaderValue;
use http::header::{COOKIE, HOST, HeaderName};
use pingora::http::{CasedHeaderName, RequestHeader, ResponseHeader};

use crate::identity::{HeaderPlan, Principal};

use crate::generation::Generation;

/// What the rewrite needs to know about the connection.
pub(super) struct Downstream<'a> {
    pub client_ip: Option<IpAddr>,
    /// The listener port the client connected to.
    pub port: Option<u16>,
    pub tls: bool,
    pub request_id: &'a str,
}

/// The names of the headers Portcullis writes upstream, parsed and spelled
/// once per configuration generation: pingora's `insert_header` copies and
/// parses a name on every call, which was the largest single cost of an
/// authenticated request (vendor/README.md, pingora-http patch).
pub(crate) struct UpstreamNames {
    /// `HeaderPlan::names`, in its order.
    identity: Vec<CasedHeaderName>,
    assertion: Option<CasedHeaderName>,
    /// The bytes every line [`rewrite`] may append spends on its name and
    /// punctuation, identity lines and the connection's apart.
    identity_names_len: usize,
    connection_names_len: usize,
}

impl UpstreamNames {
    pub(crate) fn compile(plan: &HeaderPlan) -> Self {
        let identity: Vec<_> = plan.names().cloned().map(CasedHeaderName::new).collect();
        let assertion = plan.assertion_header().cloned().map(CasedHeaderName::new);
        let line = |n: &CasedHeaderName| n.name().as_str().len() + ": \r\n".len();
        let f = &*FIXED;
        let connection = [
            &f.forwarded_for,
            &f.forwarded_proto,
            &f.forwarded_host,
            &f.forwarded_port,
            &f.real_ip,
            &f.forwarded,
            &f.request_id,
        ];
        Self {
            identity_names_len: identity.iter().chain(&assertion).map(line).sum(),
            connection_names_len: connection.into_iter().map(line).sum(),
            identity,
            assertion,
        }
    }

    /// Room for what [`rewrite`] appends, so its buffer is allocated once:
    /// the names, the assertion, and a guess at the other values (an
    /// address, a host, an email, a name, a few groups).
    fn room(&self, principal: bool, assertion: Option<&HeaderValue>) -> usize {
        const VALUES: usize = 256;
        let identity = if principal {
            self.identity_names_len + assertion.map_or(0, HeaderValue::len)
        } else {
            0
        };
        self.connection_names_len + identity + VALUES
    }
}

/// The connection's own headers, spelled as they always were (lower case).
struct Fixed {
    forwarded_for: CasedHeaderName,
    forwarded_proto: CasedHeaderName,
    forwarded_host: CasedHeaderName,
    forwarded_port: CasedHeaderName,
    real_ip: CasedHeaderName,
    forwarded: CasedHeaderName,
    request_id: CasedHeaderName,
    cookie: CasedHeaderName,
}

static FIXED: LazyLock<Fixed> = LazyLock::new(|| {
    let name = |n: &'static str| CasedHeaderName::new(HeaderName::from_static(n));
    Fixed {
        forwarded_for: name("x-forwarded-for"),
        forwarded_proto: name("x-forwarded-proto"),
        forwarded_host: name("x-forwarded-host"),
        forwarded_port: name("x-forwarded-port"),
        real_ip: name("x-real-ip"),
        forwarded: name("forwarded"),
        request_id: name("x-request-id"),
        cookie: CasedHeaderName::new(COOKIE),
    }
});

/// A value this module made (addresses, ids, sanitised hosts) as a
/// header value; if one ever failed to be one, the request is refused
/// rather than sent on without the header.
fn value(v: impl TryInto<HeaderValue>) -> pingora::Result<HeaderValue> {
    v.try_into().map_err(|_| {
        pingora::Error::explain(
            pingora::ErrorType::InvalidHTTPHeader,
            "invalid value for a forwarded header",
        )
    })
}

/// Rewrites `req` for the app. The headers Portcullis sets (identity, the
/// assertion, forwarding, the request id) are written as appended field
/// lines (`RequestHeader::append_field_line`, pingora-http patch 2) after
/// every client copy of their names was removed: one line each, never
/// beside the client's, with no per-header work in the header maps.
pub(super) fn rewrite(
    req: &mut RequestHeader,
    state: &Generation,
    names: &UpstreamNames,
    principal: Option<&Principal>,
    assertion: Option<HeaderValue>,
    down: &Downstream<'_>,
) -> pingora::Result<()> {
    let trust = state.config.server.trust_forwarded_headers;
    // Every spelling of every name appended below (identity, assertion,
    // request id; and forwarding unless trusted) goes first.
    for name in state.plan.headers_to_strip(&req.headers, trust) {
        req.remove_header(&name);
    }
    strip_session_cookie(req, state)?;
    // A machine caller's bearer credential is Portcullis', like the
    // session cookie: the app gets the identity headers and the assertion.
    if principal.is_some_and(|p| p.kind == crate::identity::PrincipalKind::Service) {
        req.remove_header(&http::header::AUTHORIZATION);
    }
    req.reserve_field_lines(names.room(principal.is_some(), assertion.as_ref()));
    if let Some(p) = principal {
        state
            .plan
            .each_value(p, |slot, v| match names.identity.get(slot) {
                Some(name) => req.append_field_line(name, v.as_bytes()),
                None => Ok(()),
            })?;
        if let (Some(name), Some(token)) = (&names.assertion, &assertion) {
            req.append_field_value(name, token)?;
        }
    }
    forwarded(req, trust, down)?;
    req.append_field_line(&FIXED.request_id, down.request_id.as_bytes())?;
    Ok(())
}

/// The request's id on the answer too, so a client's report names the
/// request the logs know.
pub(super) fn tag_response(resp: &mut ResponseHeader, request_id: &str) -> pingora::Result<()> {
    resp.insert_parsed_header(&FIXED.request_id, value(request_id)?)
}

/// The session cookie is a bearer credential for Portcullis, not the app:
/// an app (or its logs, or an XSS-prone debug page) never gets to see it.
fn strip_session_cookie(req: &mut RequestHeader, state: &Generation) -> pingora::Result<()> {
    let cookies = req.headers.get_all(COOKIE);
    if !cookies
        .iter()
        .any(|v| state.codec.mentioned_in(v.as_bytes()))
    {
        return Ok(());
    }
    // Every line's other pairs, joined as one line; usually there are none
    // and nothing is allocated.
    let mut kept = String::new();
    for pair in cookies
        .iter()
        .flat_map(|v| state.codec.kept_pairs(v.as_bytes()))
    {
        if !kept.is_empty() {
            kept.push_str("; ");
        }
        kept.push_str(pair);
    }
    req.remove_header(&COOKIE);
    if !kept.is_empty() {
        req.insert_parsed_header(&FIXED.cookie, value(kept)?)?;
    }
    Ok(())
}

fn forwarded(req: &mut RequestHeader, trust: bool, down: &Downstream<'_>) -> pingora::Result<()> {
    let f = &*FIXED;
    let ip = down.client_ip.map(ip_text);
    let proto = if down.tls { "https" } else { "http" };
    // The request's own `Host` (shared bytes, not copied), if it is text.
    let host = match req.headers.get(HOST) {
        Some(h) if h.to_str().is_ok() => Some(h.clone()),
        _ => req.uri.authority().map(|a| value(a.as_str())).transpose()?,
    };
    let host = host.as_ref().map(text);
    if trust {
        // Behind a trusted balancer: extend its chain, keep what it said.
        // The chain is every `X-Forwarded-For` line in order (RFC 9110
        // §5.3: repeated fields combine with commas), as the rate limiter
        // reads it: a balancer that adds a line of its own rather than
        // extending the client's would otherwise lose its entry here.
        if let Some(ip) = &ip {
            let mut chain = String::new();
            for line in req.headers.get_all(f.forwarded_for.name()) {
                let line = line.to_str().map(str::trim).unwrap_or_default();
                if !line.is_empty() {
                    chain.push_str(line);
                    chain.push_str(", ");
                }
            }
            chain.push_str(ip);
            req.remove_header(f.forwarded_for.name());
            req.append_field_line(&f.forwarded_for, chain.as_bytes())?;
        }
        if req.headers.get(f.forwarded_proto.name()).is_none() {
            req.append_field_line(&f.forwarded_proto, proto.as_bytes())?;
        }
        if let (None, Some(h)) = (req.headers.get(f.forwarded_host.name()), host) {
            req.append_field_line(&f.forwarded_host, h.as_bytes())?;
        }
    } else {
        // Directly exposed: the client's forwarding headers were stripped
        // (every spelling, see `HeaderPlan::headers_to_strip`); set the
        // ones Portcullis knows from the connection.
        if let Some(ip) = &ip {
            req.append_field_line(&f.forwarded_for, ip.as_bytes())?;
            req.append_field_line(&f.real_ip, ip.as_bytes())?;
        }
        req.append_field_line(&f.forwarded_proto, proto.as_bytes())?;
        if let Some(h) = host {
            req.append_field_line(&f.forwarded_host, h.as_bytes())?;
        }
        if let Some(port) = down.port {
            req.append_field_line(&f.forwarded_port, HeaderValue::from(port).as_bytes())?;
        }
        let ip = down.client_ip.zip(ip.as_deref());
        let forwarded = rfc7239(ip, proto, host);
        req.append_field_line(&f.forwarded, forwarded.as_bytes())?;
    }
    Ok(())
}

/// A value this module made, or took after `to_str` accepted it, as text
/// (visible ASCII, so the conversion cannot fail).
fn text(v: &HeaderValue) -> &str {
    v.to_str().unwrap_or_default()
}

/// The client's address in `IpAddr`'s `Display` form. An IPv4 address,
/// every request's case behind most deployments, is written out digit by
/// digit: `Display` goes through the formatting machinery, ~1,300
/// instructions a request (callgrind), for 4 numbers.
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
            out
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

/// `Forwarded: for=…;proto=…;host=…` (RFC 7239); IPv6 and hosts with a
/// port are quoted, and nothing from the request can close the quotes.
fn rfc7239(ip: Option<(IpAddr, &str)>, proto: &str, host: Option<&str>) -> String {
    // Pushed, not `format!`ed: this runs on every proxied request.
    let mut out = String::with_capacity(64);
    match ip {
        Some((IpAddr::V6(_), text)) => {
            out.push_str("for=\"[");
            out.push_str(text);
            out.push_str("]\";");
        }
        Some((IpAddr::V4(_), text)) => {
            out.push_str("for=");
            out.push_str(text);
            out.push(';');
        }
        None => {}
    }
    out.push_str("proto=");
    out.push_str(proto);
    if let Some(h) = host {
        out.push_str(";host=\"");
        out.extend(
            h.chars()
                .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\'),
        );
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_display_writes_them() {
        let mut v4: Vec<IpAddr> = (0..=255u8)
            .flat_map(|o| [[o, 0, 0, 0], [0, o, 0, 0], [1, 2, o, 4], [255, 255, 255, o]])
            .map(IpAddr::from)
            .collect();
        v4.extend(
            [
                "::1",
                "::ffff:10.0.0.1",
                "2001:db8::8a2e:370:7334",
                "fe80::1",
            ]
            .iter()
            .map(|a| a.parse::<IpAddr>().unwrap()),
        );
        for ip in v4 {
            assert_eq!(ip_text(ip), ip.to_string(), "{ip}");
        }
    }

    #[test]
    fn forwarded_header_is_well_formed() {
        assert_eq!(
            rfc7239(
                Some(("10.0.0.1".parse().unwrap(), "10.0.0.1")),
                "https",
                Some("app.example.com:8443")
            ),
            "for=10.0.0.1;proto=https;host=\"app.example.com:8443\""
        );
        assert_eq!(
            rfc7239(Some(("::1".parse().unwrap(), "::1")), "http", Some("a\"b")),
            "for=\"[::1]\";proto=http;host=\"ab\""
        );
        assert_eq!(rfc7239(None, "http", None), "proto=http");
    }
}
