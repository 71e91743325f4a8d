//! Forward-auth: Portcullis as the decision endpoint of a host proxy
//! (nginx `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`,
//! Envoy `ext_authz`). The request to decide arrives described in headers;
//! this module turns that description back into a request ([`original`]),
//! and the gate's outcome into the answer the host proxy understands
//! ([`answer`], [`allow_headers`]). The decision in between is the proxy
//! mode's: same readings, hosts, routes, policies and SSO enforcement.
//!
//! Rules:
//! * the description is believed only from a TCP peer in
//!   `[forward_auth] trusted_proxies` ([`Plan::trusts`]), never from a
//!   forwarded address;
//! * each endpoint reads only its configured convention's headers, which the
//!   host proxy overwrites; a missing or repeated one is refused, never
//!   guessed around (host proxies copy every client header into the auth
//!   request, so a header the proxy does not set is the client's).
//!
//! Pure: `serve.rs` gathers the facts and translates.

mod serve;

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::config::{Config, Convention, ReturnTargets, parse_proxy};
use crate::identity::{HeaderPlan, Principal};
use crate::redirect::safe_return_to;

use super::decide::BodySight;
use super::gate::{Deny, Outcome};
use super::host::{self, HostError};

/// The forward-auth endpoints of one configuration generation.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    trusted: Vec<ipnet::IpNet>,
    endpoints: Vec<Endpoint>,
    /// `{public_url}`, no trailing slash.
    origin: String,
    /// `http` or `https`: `public_url`'s, for a description without one.
    default_scheme: String,
    /// `{prefix}step-up`, where a step-up challenge sends browsers.
    step_up_path: String,
}

/// One endpoint: where, and which convention it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    path: String,
    convention: Convention,
    /// The host proxy sends the original body as the auth request's
    /// (`forwards_body`, Traefik `forwardBody`).
    forwards_body: bool,
}

impl Plan {
    /// `None` when `[forward_auth]` has no endpoints.
    pub(crate) fn compile(cfg: &Config) -> Option<Self> {
        let fa = &cfg.forward_auth;
        if !fa.enabled() {
            return None;
        }
        let urls = cfg.public_urls();
        let origin = urls.origin().to_owned();
        let default_scheme = if origin.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        Some(Self {
            // validation refused entries that do not parse
            trusted: fa
                .trusted_proxies
                .iter()
                .filter_map(|p| parse_proxy(p))
                .collect(),
            endpoints: fa
                .endpoints
                .iter()
                .map(|e| Endpoint {
                    path: e.path_in(cfg),
                    convention: e.convention,
                    forwards_body: e.forwards_body,
                })
                .collect(),
            origin,
            default_scheme: default_scheme.into(),
            step_up_path: urls.step_up_path(),
        })
    }

    /// The endpoint serving `path`, and what follows its path: exactly the
    /// path, or (envoy, whose `path_prefix` the original path is appended
    /// to) the path followed by `/…`.
    pub(crate) fn endpoint_at<'p>(&self, path: &'p str) -> Option<(&Endpoint, &'p str)> {
        self.endpoints.iter().find_map(|e| {
            let rest = path.strip_prefix(e.path.as_str())?;
            let fits =
                rest.is_empty() || (e.convention == Convention::Envoy && rest.starts_with('/'));
            fits.then_some((e, rest))
        })
    }

    /// Is `peer` (the TCP peer, never a forwarded address) a trusted host
    /// proxy? An IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, a dual-stack
    /// listener's IPv4 client) is the same host as its IPv4 address, and
    /// matches an entry in either spelling. `None` (no IP socket) is never
    /// trusted.
    pub(crate) fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| {
            let canonical = ip.to_canonical();
            let mapped = match canonical {
                IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
                v6 => v6,
            };
            self.trusted
                .iter()
                .any(|n| n.contains(&canonical) || n.contains(&mapped))
        })
    }
}

/// The request a host proxy asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Original {
    pub(crate) method: Method,
    /// `http` or `https`, lower-case.
    pub(crate) scheme: String,
    /// The authority as the host proxy saw it (`app.example.com:8443`);
    /// normalised and checked by `host::request_hosts` like a `Host`.
    pub(crate) host: String,
    /// Origin form, as received: starts with `/`.
    pub(crate) path_and_query: String,
}

impl Original {
    /// The path, without the query.
    pub(crate) fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// The query, without the `?`.
    pub(crate) fn query(&self) -> Option<&str> {
        self.path_and_query.split_once('?').map(|(_, q)| q)
    }
}

/// Why a forward-auth request was refused before any decision. Each is a
/// label of `portcullis_requests_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("peer is not in forward_auth.trusted_proxies")]
    Untrusted,
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{0}` appears more than once")]
    Duplicate(&'static str),
    #[error("both X-Original-URI and X-Original-URL: which one the proxy set is unknowable")]
    TwoTargets,
    #[error("`{0}` is malformed")]
    Malformed(&'static str),
}

impl Refusal {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Untrusted => "forward_auth_untrusted",
            Refusal::Missing(_) => "forward_auth_missing",
            Refusal::Duplicate(_) | Refusal::TwoTargets => "forward_auth_duplicate",
            Refusal::Malformed(_) => "forward_auth_malformed",
        }
    }
}

const X_ORIGINAL_METHOD: &str = "x-original-method";
const X_ORIGINAL_URI: &str = "x-original-uri";
const X_ORIGINAL_URL: &str = "x-original-url";
const X_FORWARDED_METHOD: &str = "x-forwarded-method";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";
const X_FORWARDED_URI: &str = "x-forwarded-uri";
const HOST: &str = "host";
/// nginx: whether the original request has a body (`none` or `present`),
/// which `auth_request` never sends (examples/nginx computes it with a
/// `map`).
const X_ORIGINAL_BODY: &str = "x-original-body";
/// Envoy, with `with_request_body`: `false` when the auth request's body is
/// the original's whole body, `true` when Envoy cut it at
/// `max_request_bytes`; absent when Envoy sends no body.
const ENVOY_PARTIAL_BODY: &str = "x-envoy-auth-partial-body";

/// The longest original target believed: beyond any real URL (browsers and
/// servers stop near 8 KiB), and a bound on the readings computed.
pub(crate) const MAX_TARGET: usize = 8192;

/// Envoy's header listing request headers to remove before the request goes
/// upstream (identity headers Portcullis has no value for).
const ENVOY_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// The nginx convention's pointer to the login page on a browser's 401
/// (nginx turns any redirect from the auth endpoint into a 500; its
/// `@login` location redirects when this header is there, and passes an
/// API client's 401 on when it is not).
pub(crate) const LOGIN_HEADER: &str = "x-portcullis-login";

/// The one value of `name`: `Ok(None)` when absent, refused when repeated
/// or not visible ASCII.
fn one<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, Refusal> {
    let mut all = headers.get_all(name).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(Refusal::Duplicate(name));
    }
    first
        .to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| Refusal::Malformed(name))
}

fn required<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, Refusal> {
    one(headers, name)?.ok_or(Refusal::Missing(name))
}

fn method(s: &str, name: &'static str) -> Result<Method, Refusal> {
    Method::from_bytes(s.as_bytes()).map_err(|_| Refusal::Malformed(name))
}

fn scheme(s: Option<&str>, default: &str, name: &'static str) -> Result<String, Refusal> {
    match s.map(str::to_ascii_lowercase) {
        None => Ok(default.to_owned()),
        Some(s) if s == "http" || s == "https" => Ok(s),
        Some(_) => Err(Refusal::Malformed(name)),
    }
}

/// An origin-form target: `/`, then no whitespace, fragment or control
/// character.
fn target(s: &str, name: &'static str) -> Result<String, Refusal> {
    let ok = s.len() <= MAX_TARGET
        && s.starts_with('/')
        && !s
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'#');
    ok.then(|| s.to_owned()).ok_or(Refusal::Malformed(name))
}

/// `X-Original-URL` (ingress-nginx): `scheme://authority/path?query`.
fn absolute(s: &str) -> Result<(String, String, String), Refusal> {
    let bad = Refusal::Malformed(X_ORIGINAL_URL);
    if s.len() > MAX_TARGET {
        return Err(bad);
    }
    let (scheme_part, rest) = s.split_once("://").ok_or(bad)?;
    let scheme = scheme(Some(scheme_part), "", X_ORIGINAL_URL)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(bad);
    }
    let path_and_query = match tail {
        "" => "/".to_owned(),
        t if t.starts_with('?') => format!("/{t}"),
        t => target(t, X_ORIGINAL_URL)?,
    };
    Ok((scheme, authority.to_owned(), path_and_query))
}

/// Reconstructs the original request from the auth request, reading only
/// `convention`'s headers. `request_method`, `rest` (the path after an
/// envoy endpoint's) and `query` are the auth request's own.
pub(crate) fn original(
    convention: Convention,
    request_method: &Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    default_scheme: &str,
) -> Result<Original, Refusal> {
    match convention {
        Convention::Nginx => {
            let method = method(required(headers, X_ORIGINAL_METHOD)?, X_ORIGINAL_METHOD)?;
            let (scheme, host, path_and_query) =
                match (one(headers, X_ORIGINAL_URI)?, one(headers, X_ORIGINAL_URL)?) {
                    (Some(_), Some(_)) => return Err(Refusal::TwoTargets),
                    (None, None) => return Err(Refusal::Missing(X_ORIGINAL_URI)),
                    (None, Some(url)) => absolute(url)?,
                    (Some(uri), None) => (
                        scheme(
                            one(headers, X_FORWARDED_PROTO)?,
                            default_scheme,
                            X_FORWARDED_PROTO,
                        )?,
                        required(headers, HOST)?.to_owned(),
                        target(uri, X_ORIGINAL_URI)?,
                    ),
                };
            Ok(Original {
                method,
                scheme,
                host,
                path_and_query,
            })
        }
        Convention::Forward => Ok(Original {
            method: method(required(headers, X_FORWARDED_METHOD)?, X_FORWARDED_METHOD)?,
            scheme: scheme(
                Some(required(headers, X_FORWARDED_PROTO)?),
                default_scheme,
                X_FORWARDED_PROTO,
            )?,
            host: required(headers, X_FORWARDED_HOST)?.to_owned(),
            path_and_query: target(required(headers, X_FORWARDED_URI)?, X_FORWARDED_URI)?,
        }),
        Convention::Envoy => {
            let path_and_query = match query {
                Some(q) => format!("{rest}?{q}"),
                None => rest.to_owned(),
            };
            Ok(Original {
                method: request_method.clone(),
                scheme: scheme(
                    one(headers, X_FORWARDED_PROTO)?,
                    default_scheme,
                    X_FORWARDED_PROTO,
                )?,
                host: required(headers, HOST)?.to_owned(),
                path_and_query: target(&path_and_query, "path")?,
            })
        }
    }
}

/// The hosts the app may take the original request for, normalised
/// (`host::request_hosts`, the proxy mode's reading): the described
/// authority, and — for nginx and Envoy, which pass the client's
/// `X-Forwarded-Host` on to the app unless told otherwise, and which Rails
/// or Django may route on — every `X-Forwarded-Host` in the auth request.
/// (In the `forward` convention `X-Forwarded-Host` *is* the description,
/// set by Caddy or Traefik, and the app gets the same.)
pub(crate) fn hosts(
    convention: Convention,
    original: &Original,
    headers: &HeaderMap,
) -> Result<Vec<String>, HostError> {
    let mut described = HeaderMap::new();
    let host = HeaderValue::from_str(&original.host).map_err(|_| HostError::Malformed)?;
    described.insert(http::header::HOST, host);
    let forwarded = convention != Convention::Forward;
    if forwarded {
        for v in headers.get_all(X_FORWARDED_HOST) {
            described.append(X_FORWARDED_HOST, v.clone());
        }
    }
    host::request_hosts(
        http::Version::HTTP_11,
        original.path_and_query.as_bytes(),
        &described,
        forwarded,
    )
}

/// What Portcullis can see of the original request's body, which SSO
/// enforcement on a password endpoint needs:
///
/// * `forwards_body` declared (Traefik `forwardBody`, Envoy
///   `with_request_body` with `allow_partial_message: false`): the auth
///   request's body is the original's — unless Envoy's
///   `x-envoy-auth-partial-body: true` says it cut it;
/// * nginx, which never sends the body: `X-Original-Body: none` (set by
///   the host proxy) says there is none;
/// * anything else: unseen, and a submission is refused.
///
/// Without `forwards_body` an Envoy `x-envoy-auth-partial-body` is not
/// believed: Envoy sends it only with a body, so its absence proves
/// nothing unless the operator says Envoy forwards bodies.
pub(crate) fn body_sight(
    convention: Convention,
    forwards_body: bool,
    headers: &HeaderMap,
) -> Result<BodySight, Refusal> {
    match convention {
        Convention::Nginx => match one(headers, X_ORIGINAL_BODY)? {
            Some(v) if v.eq_ignore_ascii_case("none") => Ok(BodySight::Seen),
            Some(v) if v.eq_ignore_ascii_case("present") => Ok(BodySight::Unseen),
            None => Ok(BodySight::Unseen),
            Some(_) => Err(Refusal::Malformed(X_ORIGINAL_BODY)),
        },
        _ if !forwards_body => Ok(BodySight::Unseen),
        Convention::Forward => Ok(BodySight::Seen),
        Convention::Envoy => match one(headers, ENVOY_PARTIAL_BODY)? {
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(BodySight::Partial),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(BodySight::Seen),
            None => Ok(BodySight::Seen),
            Some(_) => Err(Refusal::Malformed(ENVOY_PARTIAL_BODY)),
        },
    }
}

/// What to tell the host proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 200 and the identity headers ([`allow_headers`]).
    Allow(Option<Arc<Principal>>),
    /// Portcullis' own answer to `outcome`, as in proxy mode, with its
    /// status replaced by `status` and the login page named in
    /// [`LOGIN_HEADER`] when `login` is set.
    Own {
        outcome: Outcome,
        status: Option<u16>,
        login: Option<String>,
    },
}

/// The gate's `outcome` in `convention`'s terms. The login URLs become
/// absolute (the host proxy may serve the app on another host than
/// Portcullis); nginx gets no redirect (it would turn it into a 500) and no
/// status but 2xx, 401 and 403.
pub(crate) fn answer(
    convention: Convention,
    outcome: Outcome,
    original: &Original,
    plan: &Plan,
    login_path: &str,
    returns: &ReturnTargets,
) -> Answer {
    let nginx = convention == Convention::Nginx;
    let own = |outcome, status, login| Answer::Own {
        outcome,
        status,
        login,
    };
    let absolute = |relative: String| format!("{}{relative}", plan.origin);
    match outcome {
        Outcome::Forward(p) => Answer::Allow(p),
        Outcome::Redirect(_) => {
            let to = login_location(plan, login_path, original, returns);
            if nginx {
                own(Outcome::Deny(Deny::Unauthenticated), None, Some(to))
            } else {
                own(Outcome::Redirect(to), None, None)
            }
        }
        // an API client: 401 (its `WWW-Authenticate` names the login page);
        // no login header, which nginx's `@login` turns into a redirect
        // 503; nginx makes any status but 2xx/401/403 a 500 (documented)
        Outcome::Deny(d) => own(Outcome::Deny(d), None, None),
        Outcome::Ambiguous(a) => own(Outcome::Ambiguous(a), nginx.then_some(403), None),
        Outcome::SsoRequired {
            tenant,
            login_url,
            browser,
        } => {
            let login_url = absolute(login_url);
            let login = nginx.then(|| login_url.clone());
            let outcome = Outcome::SsoRequired {
                tenant,
                login_url,
                browser: browser && !nginx,
            };
            own(outcome, None, login)
        }
        Outcome::LoginRefused {
            reason,
            login_url,
            browser,
        } => {
            let login_url = absolute(login_url);
            let login = nginx.then(|| login_url.clone());
            let outcome = Outcome::LoginRefused {
                reason,
                login_url,
                browser: browser && !nginx,
            };
            // a body too large to inspect is a 413 elsewhere
            own(outcome, nginx.then_some(403), login)
        }
        // A browser goes to the step-up login like to the login page (nginx:
        // a 401 naming it); an API client gets the RFC 9470 401.
        Outcome::StepUp(c) if c.browser => {
            let to = format!(
                "{}{}",
                return_location(plan, &plan.step_up_path, original, returns),
                super::gate::step_up_params(&c.need)
            );
            if nginx {
                own(Outcome::Deny(Deny::Unauthenticated), None, Some(to))
            } else {
                own(Outcome::Redirect(to), None, None)
            }
        }
        Outcome::StepUp(c) => own(Outcome::StepUp(c), None, None),
    }
}

/// `{public_url}{login_path}?return_to=…`: back to the original URL when its
/// host is a configured return target, else to its path on Portcullis'
/// own host (never anywhere a client named).
pub(crate) fn login_location(
    plan: &Plan,
    login_path: &str,
    original: &Original,
    returns: &ReturnTargets,
) -> String {
    return_location(plan, login_path, original, returns)
}

/// `{public_url}{path}?return_to=…`, the return target chosen as for
/// [`login_location`].
fn return_location(
    plan: &Plan,
    login_path: &str,
    original: &Original,
    returns: &ReturnTargets,
) -> String {
    let url = format!(
        "{}://{}{}",
        original.scheme, original.host, original.path_and_query
    );
    let target = returns
        .check(&url)
        .or_else(|| safe_return_to(&original.path_and_query))
        .unwrap_or("/");
    let encoded: String =
        percent_encoding::utf8_percent_encode(target, percent_encoding::NON_ALPHANUMERIC).collect();
    format!("{}{login_path}?return_to={encoded}", plan.origin)
}

/// The headers of a 2xx answer: every identity header and the assertion
/// header, empty when unknown (host proxies copy only what is there, and an
/// absent one can leave the client's in place or, in Caddy 2.6, send the app
/// an unexpanded placeholder). Envoy gets the non-empty ones and is told
/// to remove the rest from the request.
pub(crate) fn allow_headers(
    convention: Convention,
    plan: &HeaderPlan,
    principal: Option<&Principal>,
    assertion: Option<HeaderValue>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut all = plan.response_values(principal);
    if let Some(name) = plan.assertion_header() {
        let value = assertion.unwrap_or_else(|| HeaderValue::from_static(""));
        all.push((name.clone(), value));
    }
    if convention != Convention::Envoy {
        return all;
    }
    let (set, empty): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, v)| !v.is_empty());
    let mut out = set;
    if !empty.is_empty() {
        let names = empty
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&names) {
            out.push((HeaderName::from_static(ENVOY_REMOVE), v));
        }
    }
    out
}

#[cfg(test)]
mod tests;
