//! One decision for the same bytes. Proxy mode (`service.rs`) and
//! forward-auth (`forward_auth/serve.rs`) both describe a request as a
//! [`RequestView`] and ask [`decide_request`], so canonicalisation, host
//! routing, SSO enforcement on password endpoints, the route table and the
//! gate run in one order, in one place, and cannot drift apart.
//!
//! Pure: what needs I/O (a submission's body and its domain's tenant, the
//! session behind a cookie) is asked for with [`Need`]. A submission is
//! gathered into [`Known`] and the caller asks again. The session is asked
//! for last, when everything but the gate is decided, so
//! [`Need::Identity`] carries that much ([`Pending`]) and the caller
//! finishes the decision with the identity ([`Pending::decide`]): an
//! authenticated request reads its path and hosts and walks the route
//! table once. The answer for given facts is always the same, which is
//! what the unit tests below pin down.

use crate::config::Policy;

use super::canon::{self, Readings};
use super::enforce::{self, PasswordEndpoints};
use super::gate::{self, Ambiguous, Identity, Outcome, RequestFacts, Submission};
use super::host::HostError;
use super::routes::{Requirement, RouteTable};

/// A request as the decision sees it, whichever way it arrived.
#[derive(Debug, Clone)]
pub(crate) struct RequestView<'a> {
    /// The path as received, no query.
    pub(crate) path: &'a str,
    /// Path and query as received, for `return_to`.
    pub(crate) path_and_query: &'a str,
    /// The hosts the app may take the request for (`host::request_hosts`),
    /// or why they are ambiguous.
    pub(crate) hosts: Result<Vec<String>, HostError>,
    /// The client asked for HTML (a browser navigation).
    pub(crate) wants_html: bool,
    /// The request's `Content-Type`, for telling a form post from an API
    /// call.
    pub(crate) content_type: Option<&'a str>,
    /// Unix seconds, for step-up's `max_age`.
    pub(crate) now: i64,
}

/// What Portcullis sees of the body of the request it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodySight {
    /// All of it (or that there is none): this request's body.
    Seen,
    /// Nothing: there may be a body Portcullis cannot read. A submission
    /// is refused.
    Unseen,
    /// Only its beginning (the host proxy cut it): refused as too large.
    Partial,
}

/// What the caller has gathered so far (the session is not gathered
/// here: it finishes a [`Pending`] decision).
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// How the submission to the password endpoint went
    /// ([`Need::Submission`]).
    pub(crate) submission: Option<Submission>,
}

/// What the decision needs before it can answer.
#[derive(Debug)]
pub(crate) enum Need<'t> {
    /// The request names this password endpoint: read its submission.
    Submission(&'t enforce::Endpoint),
    /// The route is not public: look the session up, then finish the
    /// decision with [`Pending::decide`].
    Identity(Pending<'t>),
}

/// A decision that has passed every step but the gate, waiting for the
/// session: the route table's answer for the request's readings and
/// hosts.
#[derive(Debug, Clone)]
pub(crate) struct Pending<'t> {
    route: Requirement<'t>,
    policy: Policy,
    upstream: usize,
}

impl Pending<'_> {
    /// The decision for the same `view` under the same `tables`, now that
    /// the caller is known to be `who`.
    pub(crate) fn decide(
        self,
        view: &RequestView<'_>,
        tables: Tables<'_>,
        who: &Identity,
    ) -> Decided {
        gated(view, tables, &self.route, self.policy, self.upstream, who)
    }
}

/// The tables a decision consults: one configuration generation's.
#[derive(Clone, Copy)]
pub(crate) struct Tables<'t> {
    pub(crate) routes: &'t RouteTable,
    pub(crate) password_endpoints: &'t PasswordEndpoints,
    pub(crate) login_path: &'t str,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decided {
    pub(crate) outcome: Outcome,
    /// The strictest policy of the routes that applied; `None` when the
    /// request was refused or stopped before the route table.
    pub(crate) policy: Option<Policy>,
    /// The upstream the route table picked (proxy mode forwards there).
    pub(crate) upstream: Option<usize>,
}

impl Decided {
    fn early(outcome: Outcome) -> Self {
        Self {
            outcome,
            policy: None,
            upstream: None,
        }
    }
}

/// Decides `view` under `tables`, given what is `known`; `Err` names what
/// must be gathered first. The order is the rule:
///
/// 1. every reading of the path and every host, or `Ambiguous`;
/// 2. on a password endpoint, SSO enforcement (fails closed);
/// 3. the route table: the conjunction of every route any reading selects,
///    one upstream they agree on, no encoded separator under a protected
///    route;
/// 4. the gate: here for a public route (anonymous), otherwise with the
///    session, in [`Pending::decide`].
pub(crate) fn decide_request<'t>(
    view: &RequestView<'_>,
    tables: Tables<'t>,
    known: &Known,
) -> Result<Decided, Need<'t>> {
    let readings = match canon::readings(view.path) {
        Ok(r) => r,
        Err(a) => return Ok(Decided::early(Outcome::Ambiguous(Ambiguous::Path(a)))),
    };
    let hosts = match &view.hosts {
        Ok(h) => h,
        Err(e) => return Ok(Decided::early(Outcome::Ambiguous(Ambiguous::Host(*e)))),
    };
    if let Some(early) = enforce_sso(view, tables, known, &readings)? {
        return Ok(Decided::early(early));
    }
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let route = tables.routes.requirement(&hosts, &readings);
    let policy = route.policy();
    let upstream = match tables.routes.upstream_for(&hosts, &readings) {
        Ok(u) => u,
        Err(e) => {
            return Ok(Decided {
                outcome: Outcome::Ambiguous(Ambiguous::Upstream(e)),
                policy: Some(policy),
                upstream: None,
            });
        }
    };
    if let Some(outcome) = gate::screen(&route, readings.encoded_separator()) {
        return Ok(Decided {
            outcome,
            policy: Some(policy),
            upstream: Some(upstream),
        });
    }
    if policy != Policy::Public {
        return Err(Need::Identity(Pending {
            route,
            policy,
            upstream,
        }));
    }
    Ok(gated(
        view,
        tables,
        &route,
        policy,
        upstream,
        &Identity::Anonymous,
    ))
}

/// The last step, the gate, for a request whose routes are decided.
fn gated(
    view: &RequestView<'_>,
    tables: Tables<'_>,
    route: &Requirement<'_>,
    policy: Policy,
    upstream: usize,
    who: &Identity,
) -> Decided {
    let facts = RequestFacts {
        path_and_query: view.path_and_query,
        wants_html: view.wants_html,
        now: view.now,
    };
    Decided {
        outcome: gate::decide(route, &facts, who, tables.login_path),
        policy: Some(policy),
        upstream: Some(upstream),
    }
}

/// SSO enforcement: `Some` stops the request.
fn enforce_sso<'t>(
    view: &RequestView<'_>,
    tables: Tables<'t>,
    known: &Known,
    readings: &Readings<'_>,
) -> Result<Option<Outcome>, Need<'t>> {
    let Some(ep) = tables.password_endpoints.find(readings) else {
        return Ok(None);
    };
    let Some(submission) = &known.submission else {
        return Err(Need::Submission(ep));
    };
    let browser = gate::is_browser_form(view.wants_html, view.content_type);
    Ok(gate::decide_login(submission, browser, tables.login_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::enforce::Refusal;
    use http::Method;

    const CONFIG: &str = r#"
[[listeners]]
address = "127.0.0.1:1"
[session]
keys = ["0123456789012345678901234567890123456789"]
[store]
encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE="
[[routes]]
prefix = "/public"
policy = "public"
[[routes]]
prefix = "/admin"
policy = "required"
[[routes]]
prefix = "/"
host = "admin.example.com"
policy = "required"
[[routes]]
prefix = "/public"
host = "app.example.com"
policy = "public"
[[routes]]
prefix = "/"
policy = "public"
[login]
password_endpoints = [{ path = "/login" }]
"#;

    fn tables() -> (RouteTable, PasswordEndpoints) {
        let cfg = crate::config::from_str(CONFIG, "t", &|_| None).unwrap();
        (
            RouteTable::compile(&cfg),
            PasswordEndpoints::compile(&cfg.login),
        )
    }

    fn view<'a>(_method: &'a Method, path: &'a str, hosts: &[&str]) -> RequestView<'a> {
        RequestView {
            path,
            path_and_query: path,
            hosts: Ok(hosts.iter().map(|h| (*h).to_owned()).collect()),
            wants_html: false,
            content_type: None,
            now: 0,
        }
    }

    const LOGIN: &str = "/.portcullis/login";

    /// The outcome for `v`, or what the decision asked for; the session,
    /// when asked for, is `who` if given.
    fn outcome(
        v: &RequestView<'_>,
        known: &Known,
        who: Option<&Identity>,
    ) -> Result<Outcome, &'static str> {
        let (routes, pw) = tables();
        let t = Tables {
            routes: &routes,
            password_endpoints: &pw,
            login_path: LOGIN,
        };
        match (decide_request(v, t, known), who) {
            (Ok(d), _) => Ok(d.outcome),
            (Err(Need::Submission(_)), _) => Err("submission"),
            (Err(Need::Identity(p)), Some(who)) => Ok(p.decide(v, t, who).outcome),
            (Err(Need::Identity(_)), None) => Err("identity"),
        }
    }

    fn decide(v: &RequestView<'_>, known: &Known) -> Result<Outcome, &'static str> {
        outcome(v, known, None)
    }

    /// [`decide`], with the session (when asked for) an anonymous one.
    fn decide_anonymous(v: &RequestView<'_>, known: &Known) -> Result<Outcome, &'static str> {
        outcome(v, known, Some(&Identity::Anonymous))
    }

    /// Path case, `;params`, `..;`, encoded dots and trailing dots all
    /// reach the protected route.
    #[test]
    fn every_reading_of_a_protected_path_is_protected() {
        let get = Method::GET;
        for p in [
            "/admin",
            "/ADMIN/x",
            "/admin;jsessionid=1/x",
            "/public/..;/admin",
            "/public/%2e%2e/admin",
            "/admin./x",
            "/admin.json",
        ] {
            assert_eq!(
                decide(&view(&get, p, &["app.example.com"]), &Known::default()),
                Err("identity"),
                "{p}"
            );
            assert_eq!(
                decide_anonymous(&view(&get, p, &["app.example.com"]), &Known::default()),
                Ok(Outcome::Deny(gate::Deny::Unauthenticated)),
                "{p}"
            );
        }
        assert_eq!(
            decide(
                &view(&get, "/public/x", &["app.example.com"]),
                &Known::default()
            ),
            Ok(Outcome::Forward(None))
        );
        // an encoded separator under a protected route
        assert_eq!(
            decide_anonymous(
                &view(&get, "/admin%2fx", &["app.example.com"]),
                &Known::default()
            ),
            Ok(Outcome::Ambiguous(Ambiguous::EncodedSeparator))
        );
        // refused before any route
        assert_eq!(
            decide(
                &view(&get, "/a%00b", &["app.example.com"]),
                &Known::default()
            ),
            Ok(Outcome::Ambiguous(Ambiguous::Path(
                canon::Ambiguity::Control
            )))
        );
    }

    /// Every host the app may read counts: a public host with an extra
    /// protected one is protected.
    #[test]
    fn every_host_counts_and_ambiguous_hosts_are_refused() {
        let get = Method::GET;
        assert_eq!(
            decide(&view(&get, "/x", &["app.example.com"]), &Known::default()),
            Ok(Outcome::Forward(None))
        );
        assert_eq!(
            decide(
                &view(&get, "/x", &["app.example.com", "admin.example.com"]),
                &Known::default()
            ),
            Err("identity")
        );
        let mut v = view(&get, "/x", &[]);
        v.hosts = Err(HostError::Duplicate);
        assert_eq!(
            decide(&v, &Known::default()),
            Ok(Outcome::Ambiguous(Ambiguous::Host(HostError::Duplicate)))
        );
    }

    /// SSO enforcement comes first, under every reading of the endpoint,
    /// even on a public route.
    #[test]
    fn password_endpoints_need_their_submission_first() {
        let post = Method::POST;
        for p in [
            "/login",
            "/LOGIN",
            "/login;x",
            "/x/..;/login",
            "/login.json",
        ] {
            assert_eq!(
                decide_anonymous(&view(&post, p, &["app.example.com"]), &Known::default()),
                Err("submission"),
                "{p}"
            );
        }
        let refused = Known {
            submission: Some(Submission::Refused(Refusal::ForwardAuth)),
        };
        let mut v = view(&post, "/login", &["app.example.com"]);
        v.content_type = Some("application/x-www-form-urlencoded");
        assert_eq!(
            decide(&v, &refused),
            Ok(Outcome::LoginRefused {
                reason: Refusal::ForwardAuth,
                login_url: format!("{LOGIN}?use_sso=true"),
                browser: true,
            })
        );
        let uninspected = Known {
            submission: Some(Submission::Uninspected),
        };
        assert_eq!(decide(&v, &uninspected), Ok(Outcome::Forward(None)));
    }

    /// A pending decision holds the route table's answer for the request:
    /// finished with any caller, it is the gate's decision on the
    /// requirement every reading and host selects, with their policy and
    /// upstream — as the route table gives them when asked directly — for
    /// every path, host, kind of caller and navigation that asks.
    #[test]
    fn a_pending_decision_finishes_with_the_route_tables_answer() {
        let (routes, pw) = tables();
        let t = Tables {
            routes: &routes,
            password_endpoints: &pw,
            login_path: LOGIN,
        };
        let user = Identity::Authenticated(std::sync::Arc::new(crate::identity::Principal {
            user_id: "u1".into(),
            email: "a@example.com".into(),
            ..Default::default()
        }));
        let callers = [
            Identity::Anonymous,
            user,
            Identity::Unknown,
            Identity::InvalidBearer,
        ];
        let get = Method::GET;
        let mut pending = 0;
        for p in [
            "/admin",
            "/ADMIN/x?a=1",
            "/public/..;/admin",
            "/x",
            "/public/x",
        ] {
            for hosts in [&["app.example.com"][..], &["admin.example.com"]] {
                for html in [false, true] {
                    let mut v = view(&get, p, hosts);
                    v.wants_html = html;
                    let Err(Need::Identity(first)) = decide_request(&v, t, &Known::default())
                    else {
                        continue;
                    };
                    pending += 1;
                    let readings = canon::readings(p).unwrap();
                    let route = routes.requirement(hosts, &readings);
                    let upstream = routes.upstream_for(hosts, &readings).unwrap();
                    let facts = RequestFacts {
                        path_and_query: v.path_and_query,
                        wants_html: html,
                        now: v.now,
                    };
                    for who in &callers {
                        let expected = Decided {
                            outcome: gate::decide(&route, &facts, who, LOGIN),
                            policy: Some(route.policy()),
                            upstream: Some(upstream),
                        };
                        let finished = first.clone().decide(&v, t, who);
                        assert_eq!(finished, expected, "{p} {hosts:?} html={html} {who:?}");
                    }
                }
            }
        }
        // The three readings of /admin on both hosts, and every path on the
        // admin host; each with and without HTML.
        assert_eq!(pending, (3 * 2 + 2) * 2, "cases that asked for the session");
    }
}
