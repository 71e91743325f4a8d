//! Rewrites the request headed upstream: identity headers the client sent
//! are removed on every route, verified ones injected, our session cookie
//! withheld, and `X-Forwarded-*` made truthful.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};

use http::HeaderValue;
use http::header::{COOKIE, HOST, HeaderName};
use pingora::http::{CasedHeaderName, FieldLines, RequestHeader, ResponseHeader};

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
    /// Unique per compilation: the key under which a connection keeps the
    /// identity lines rendered with these names and their plan
    /// ([`Rendered`]).
    id: u64,
    /// `HeaderPlan::names`, in its order.
    identity: Vec<CasedHeaderName>,
    assertion: Option<CasedHeaderName>,
}

static NEXT_NAMES_ID: AtomicU64 = AtomicU64::new(1);

impl UpstreamNames {
    /// `plan` is the generation's, the one [`rewrite`] is then given with
    /// these names (both live in one `ProxyState`).
    pub(crate) fn compile(plan: &HeaderPlan) -> Self {
        Self {
            id: NEXT_NAMES_ID.fetch_add(1, Ordering::Relaxed),
            identity: plan.names().cloned().map(CasedHeaderName::new).collect(),
            assertion: plan.assertion_header().cloned().map(CasedHeaderName::new),
        }
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

/// The lines a connection's requests repeat, rendered by its first request
/// and appended whole, one copy, to the next ones for as long as what they
/// were rendered from is the same: the identity lines (a function of the
/// principal and the generation's plan; a connection carries one session,
/// so each of its requests would render the same escaped, joined values)
/// and the forwarding lines of a directly exposed listener (a function of
/// the connection's address, port and TLS, and the request's host). Kept
/// per connection, not per session: ~300 bytes a busy connection, where a
/// rendering held by each cached session would cost that for every one of
/// them. Each part is keyed on all it was rendered from, so what is
/// appended is byte for byte what rendering would write.
#[derive(Default)]
pub(super) struct Rendered {
    identity: IdentityLines,
    connection: ConnectionLines,
    /// A trusted balancer's forwarding lines, rendered per request (they
    /// carry what the request says), in a buffer kept from one to the next.
    trusted: FieldLines,
}

/// The most a kept buffer of [`Rendered`] may hold on to past its request.
/// What one request renders can be long (a trusted balancer passes the
/// client's `X-Forwarded-For` chain, up to the header limit; a principal
/// may carry hundreds of groups); kept, every connection that once saw
/// such a request would idle with it. A buffer grown past this is dropped
/// after its request, so a connection idles with at most a few KiB of
/// rendered lines, and a principal whose lines are this long is rendered
/// per request, as without the memo.
const KEPT_MAX: usize = 4096;

impl Rendered {
    /// Drops each buffer grown past [`KEPT_MAX`], with its key.
    fn release_large(&mut self) {
        if self.identity.lines.capacity() > KEPT_MAX {
            self.identity = IdentityLines::default();
        }
        if self.connection.lines.capacity() > KEPT_MAX {
            self.connection = ConnectionLines::default();
        }
        if self.trusted.capacity() > KEPT_MAX {
            self.trusted = FieldLines::default();
        }
    }
}

#[derive(Default)]
struct IdentityLines {
    /// The [`UpstreamNames::id`] they were rendered with; 0 for none.
    names: u64,
    /// The principal they were rendered from, compared by address. Weak,
    /// so that the allocation (not the principal) stays while it is held:
    /// no other principal can come to have this address meanwhile.
    /// Principals are immutable behind their `Arc`, so a changed user
    /// (SCIM, a new login) is a new principal and is rendered afresh.
    principal: Weak<Principal>,
    lines: FieldLines,
}

impl IdentityLines {
    fn of(
        &mut self,
        names: &UpstreamNames,
        plan: &HeaderPlan,
        p: &Arc<Principal>,
    ) -> pingora::Result<&FieldLines> {
        if self.names != names.id || !std::ptr::eq(self.principal.as_ptr(), Arc::as_ptr(p)) {
            // Forgotten first: lines an error left half-written are never
            // answered as the principal's.
            self.names = 0;
            self.lines.clear();
            let lines = &mut self.lines;
            plan.each_value(p, |slot, v| match names.identity.get(slot) {
                Some(name) => lines.push(name, v.as_bytes()),
                None => Ok(()),
            })?;
            self.names = names.id;
            self.principal = Arc::downgrade(p);
        }
        Ok(&self.lines)
    }
}

/// What a directly exposed listener's forwarding lines are rendered from.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ConnectionKey {
    client_ip: Option<IpAddr>,
    port: Option<u16>,
    tls: bool,
}

#[derive(Default)]
struct ConnectionLines {
    /// `None` until rendered (or after a failed rendering).
    key: Option<ConnectionKey>,
    host: Option<String>,
    lines: FieldLines,
}

impl ConnectionLines {
    fn of(&mut self, down: &Downstream<'_>, host: Option<&str>) -> pingora::Result<&FieldLines> {
        let key = ConnectionKey {
            client_ip: down.client_ip,
            port: down.port,
            tls: down.tls,
        };
        if self.key != Some(key) || self.host.as_deref() != host {
            self.key = None;
            self.lines.clear();
            direct_lines(&mut self.lines, &key, host)?;
            match (&mut self.host, host) {
                (Some(kept), Some(h)) => {
                    kept.clear();
                    kept.push_str(h);
                }
                (kept, h) => *kept = h.map(str::to_owned),
            }
            self.key = Some(key);
        }
        Ok(&self.lines)
    }
}

/// Rewrites `req` for the app. The headers Portcullis sets (identity, the
/// assertion, forwarding, the request id) are written as appended field
/// lines (`RequestHeader::append_field_line`, pingora-http patch 2) after
/// every client copy of their names was removed: one line each, never
/// beside the client's, with no per-header work in the header maps. The
/// lines a connection repeats come from `rendered` ([`Rendered`]), kept by
/// the connection (or made for this request alone when `None`).
pub(super) fn rewrite(
    req: &mut RequestHeader,
    state: &Generation,
    names: &UpstreamNames,
    principal: Option<&Arc<Principal>>,
    assertion: Option<HeaderValue>,
    down: &Downstream<'_>,
    rendered: &mut Option<Box<Rendered>>,
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
    let lines = Lines {
        plan: &state.plan,
        names,
        trust,
    };
    lines.append(req, principal, assertion, down, rendered)
}

/// What [`Lines::append`] renders with: the generation's plan and names,
/// and whether a balancer in front is trusted.
struct Lines<'a> {
    plan: &'a HeaderPlan,
    names: &'a UpstreamNames,
    trust: bool,
}

impl Lines<'_> {
    /// Appends the lines Portcullis sets to `req`, whose client copies of
    /// their names [`rewrite`] has removed; whatever `rendered` keeps past
    /// this request is within [`KEPT_MAX`] a buffer.
    fn append(
        &self,
        req: &mut RequestHeader,
        principal: Option<&Arc<Principal>>,
        assertion: Option<HeaderValue>,
        down: &Downstream<'_>,
        rendered: &mut Option<Box<Rendered>>,
    ) -> pingora::Result<()> {
        let Self { plan, names, trust } = *self;
        let kept = rendered.get_or_insert_with(Box::default);
        // In a closure so that the release below runs on its errors too.
        let appended = (|| {
            let Rendered {
                identity,
                connection,
                trusted,
            } = &mut **kept;
            let identity = match principal {
                Some(p) => Some(identity.of(names, plan, p)?),
                None => None,
            };
            let assertion = names
                .assertion
                .as_ref()
                .zip(assertion.filter(|_| identity.is_some()));
            let forwarding = if trust {
                trusted.clear();
                if trusted_lines(trusted, req, down)? {
                    req.remove_header(FIXED.forwarded_for.name());
                }
                &*trusted
            } else {
                connection.of(down, request_host(req))?
            };
            let request_id = FIXED.request_id.name().as_str().len() + down.request_id.len() + 4;
            req.reserve_field_lines(
                identity.map_or(0, |l| l.as_bytes().len())
                    + assertion
                        .as_ref()
                        .map_or(0, |(n, v)| n.name().as_str().len() + v.len() + 4)
                    + forwarding.as_bytes().len()
                    + request_id,
            );
            if let Some(lines) = identity {
                req.append_field_lines(lines);
            }
            if let Some((name, token)) = &assertion {
                req.append_field_value(name, token)?;
            }
            req.append_field_lines(forwarding);
            req.append_field_line(&FIXED.request_id, down.request_id.as_bytes())?;
            Ok(())
        })();
        kept.release_large();
        appended
    }
}

/// The request id on the answer too, so a client's report names the
/// request the logs know: in place of any the app sent, as an appended
/// line (pingora-http 2), which costs a fraction of an insert into both
/// of the response's maps.
pub(super) fn tag_response(resp: &mut ResponseHeader, request_id: &str) -> pingora::Result<()> {
    resp.remove_header(FIXED.request_id.name());
    resp.append_field_line(&FIXED.request_id, request_id.as_bytes())
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

/// The request's own host: its `Host` if that is text, else the
/// authority of an absolute-form target.
fn request_host(req: &RequestHeader) -> Option<&str> {
    match req.headers.get(HOST).map(HeaderValue::to_str) {
        Some(Ok(h)) => Some(h),
        _ => req.uri.authority().map(http::uri::Authority::as_str),
    }
}

fn proto(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}

/// Behind a trusted balancer: extend its chain, keep what it said. The
/// chain is every `X-Forwarded-For` line in order (RFC 9110 §5.3: repeated
/// fields combine with commas), as the rate limiter reads it: a balancer
/// that adds a line of its own rather than extending the client's would
/// otherwise lose its entry here. Whether the client's `X-Forwarded-For`
/// lines are to be removed (the chain in `out` replaces them).
fn trusted_lines(
    out: &mut FieldLines,
    req: &RequestHeader,
    down: &Downstream<'_>,
) -> pingora::Result<bool> {
    let f = &*FIXED;
    let chained = if let Some(ip) = down.client_ip.map(ip_text) {
        let mut chain = String::new();
        for line in req.headers.get_all(f.forwarded_for.name()) {
            let line = line.to_str().map(str::trim).unwrap_or_default();
            if !line.is_empty() {
                chain.push_str(line);
                chain.push_str(", ");
            }
        }
        chain.push_str(&ip);
        out.push(&f.forwarded_for, chain.as_bytes())?;
        true
    } else {
        false
    };
    if req.headers.get(f.forwarded_proto.name()).is_none() {
        out.push(&f.forwarded_proto, proto(down.tls).as_bytes())?;
    }
    if let (None, Some(h)) = (req.headers.get(f.forwarded_host.name()), request_host(req)) {
        out.push(&f.forwarded_host, h.as_bytes())?;
    }
    Ok(chained)
}

/// Directly exposed: the client's forwarding headers were stripped (every
/// spelling, see `HeaderPlan::headers_to_strip`); these are the ones
/// Portcullis knows from the connection.
fn direct_lines(
    out: &mut FieldLines,
    down: &ConnectionKey,
    host: Option<&str>,
) -> pingora::Result<()> {
    let f = &*FIXED;
    let ip = down.client_ip.map(ip_text);
    let proto = proto(down.tls);
    if let Some(ip) = &ip {
        out.push(&f.forwarded_for, ip.as_bytes())?;
        out.push(&f.real_ip, ip.as_bytes())?;
    }
    out.push(&f.forwarded_proto, proto.as_bytes())?;
    if let Some(h) = host {
        out.push(&f.forwarded_host, h.as_bytes())?;
    }
    if let Some(port) = down.port {
        out.push(&f.forwarded_port, port.to_string().as_bytes())?;
    }
    let ip = down.client_ip.zip(ip.as_deref());
    out.push(&f.forwarded, rfc7239(ip, proto, host).as_bytes())
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
    use crate::config::HeadersConfig;

    fn person(n: usize) -> Principal {
        Principal {
            user_id: format!("u{n}"),
            email: format!("user{n}@example.com"),
            name: Some(format!("User\r\nX-Evil: {n} Zoë")),
            groups: (0..n % 4).map(|g| format!("g{g},x")).collect(),
            tenant: n.is_multiple_of(2).then(|| "acme".into()),
            ..Principal::default()
        }
    }

    /// What rendering alone writes: the lines kept by nothing.
    fn identity_fresh(names: &UpstreamNames, plan: &HeaderPlan, p: &Arc<Principal>) -> Vec<u8> {
        let mut fresh = IdentityLines::default();
        fresh.of(names, plan, p).unwrap().as_bytes().to_vec()
    }

    /// Kept identity lines are what rendering writes for the principal at
    /// hand, whichever came before: the same principal again, another, one
    /// made where a dropped one was (an allocator hands a freed block of
    /// the same size straight back: keyed on a bare address, this test
    /// gets the dropped principal's lines), and other names and plan.
    #[test]
    fn kept_identity_lines_are_the_principals_at_hand() {
        let plan = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
        let names = UpstreamNames::compile(&plan);
        let other_cfg = HeadersConfig {
            email: "X-Mail".into(),
            ..HeadersConfig::default()
        };
        let other_plan = HeaderPlan::compile(&other_cfg).unwrap();
        let other_names = UpstreamNames::compile(&other_plan);
        let mut kept = IdentityLines::default();
        let alice = Arc::new(person(1));
        let bob = Arc::new(person(2));
        for p in [&alice, &alice, &bob, &alice, &bob, &bob] {
            let want = identity_fresh(&names, &plan, p);
            assert_eq!(kept.of(&names, &plan, p).unwrap().as_bytes(), want);
        }
        let line = kept.of(&names, &plan, &bob).unwrap().as_bytes().to_vec();
        assert!(
            String::from_utf8(line)
                .unwrap()
                .contains("x-forwarded-email: user2@example.com\r\n")
        );
        let mail = kept
            .of(&other_names, &other_plan, &bob)
            .unwrap()
            .as_bytes()
            .to_vec();
        assert!(
            String::from_utf8(mail)
                .unwrap()
                .contains("x-mail: user2@example.com\r\n")
        );
        drop((alice, bob));
        for n in 3..40 {
            let p = Arc::new(person(n));
            let want = identity_fresh(&names, &plan, &p);
            assert_eq!(kept.of(&names, &plan, &p).unwrap().as_bytes(), want, "{n}");
        }
    }

    /// Kept forwarding lines are what rendering writes for the connection
    /// and host at hand.
    #[test]
    fn kept_forwarding_lines_are_the_connections_and_hosts_at_hand() {
        let fresh = |key: &ConnectionKey, host: Option<&str>| {
            let mut out = FieldLines::default();
            direct_lines(&mut out, key, host).unwrap();
            out
        };
        let keys = [
            (Some("10.0.0.1".parse().unwrap()), Some(8080), false),
            (Some("10.0.0.2".parse().unwrap()), Some(8080), false),
            (Some("::1".parse().unwrap()), Some(443), true),
            (None, None, false),
        ];
        let hosts = [
            Some("a.example"),
            Some("b.example:8443"),
            None,
            Some("a.example"),
        ];
        let mut kept = ConnectionLines::default();
        for (i, &(client_ip, port, tls)) in keys.iter().chain(keys.iter().rev()).enumerate() {
            for host in hosts.iter().chain([&hosts[i % hosts.len()]]) {
                let down = Downstream {
                    client_ip,
                    port,
                    tls,
                    request_id: "r",
                };
                let key = ConnectionKey {
                    client_ip,
                    port,
                    tls,
                };
                let got = kept.of(&down, *host).unwrap().clone();
                assert_eq!(
                    got,
                    fresh(&key, *host),
                    "{client_ip:?} {port:?} {tls} {host:?}"
                );
            }
        }
        let key = ConnectionKey {
            client_ip: Some("10.0.0.1".parse().unwrap()),
            port: Some(8080),
            tls: false,
        };
        assert_eq!(
            String::from_utf8(fresh(&key, Some("a.example")).as_bytes().to_vec()).unwrap(),
            "x-forwarded-for: 10.0.0.1\r\nx-real-ip: 10.0.0.1\r\nx-forwarded-proto: http\r\n\
             x-forwarded-host: a.example\r\nx-forwarded-port: 8080\r\n\
             forwarded: for=10.0.0.1;proto=http;host=\"a.example\"\r\n"
        );
    }

    /// A connection keeps no buffer past [`KEPT_MAX`] after a request,
    /// whatever the request carried (a long `X-Forwarded-For` chain behind
    /// a trusted balancer, a long host, a principal with a thousand
    /// groups), and writes what rendering afresh writes; lines of ordinary
    /// length stay kept.
    #[test]
    fn long_renderings_are_not_kept_past_their_request() {
        let plan = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
        let names = UpstreamNames::compile(&plan);
        let few = Arc::new(person(3));
        let many = Arc::new(Principal {
            groups: (0..1000).map(|g| format!("group-{g}")).collect(),
            ..person(3)
        });
        let long_chain = "192.0.2.1, ".repeat(6000);
        let long_host = format!("{}.example", "a".repeat(5000));
        let down = Downstream {
            client_ip: Some("10.0.0.1".parse().unwrap()),
            port: Some(8080),
            tls: false,
            request_id: "r",
        };
        let mut kept = None;
        let cases = [
            (false, &few, None, "a.example", true),
            (false, &many, None, "a.example", false),
            (false, &few, None, long_host.as_str(), false),
            (false, &few, None, "a.example", true),
            (true, &few, Some("192.0.2.1"), "a.example", true),
            (true, &few, Some(long_chain.as_str()), "a.example", false),
            (true, &few, Some("192.0.2.1"), "a.example", true),
        ];
        for (i, &(trust, p, chain, host, stays)) in cases.iter().enumerate() {
            let lines = Lines {
                plan: &plan,
                names: &names,
                trust,
            };
            let request = || {
                let mut req = RequestHeader::build("GET", b"/", None).unwrap();
                req.insert_header(HOST, host).unwrap();
                if let Some(chain) = chain {
                    req.insert_header("x-forwarded-for", chain).unwrap();
                }
                req
            };
            let (mut req, mut fresh) = (request(), request());
            lines
                .append(&mut req, Some(p), None, &down, &mut kept)
                .unwrap();
            lines
                .append(&mut fresh, Some(p), None, &down, &mut None)
                .unwrap();
            assert_eq!(
                req.appended_field_lines(),
                fresh.appended_field_lines(),
                "case {i}"
            );
            let r = kept.as_deref().unwrap();
            let held = [
                r.identity.lines.capacity(),
                if trust {
                    r.trusted.capacity()
                } else {
                    r.connection.lines.capacity()
                },
            ];
            assert!(held.iter().all(|&c| c <= KEPT_MAX), "case {i}: {held:?}");
            assert_eq!(held.iter().all(|&c| c > 0), stays, "case {i}: {held:?}");
        }
    }

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
