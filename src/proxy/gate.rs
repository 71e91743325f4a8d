//! The auth gate: pure functions from what we know about a request to what
//! should happen to it — [`decide`] for the route table, [`decide_login`]
//! for SSO enforcement on the app's password login, [`screen`] for paths no
//! reading makes safe. Pingora phases gather the facts and only translate
//! the [`Outcome`], which keeps every access decision testable without
//! sockets.

use std::sync::Arc;

use crate::config::Policy;
use crate::identity::Principal;
use crate::redirect::safe_return_to;

use super::canon::Ambiguity;
use super::enforce::Refusal;
use super::host::HostError;
use super::routes::{Requirement, StepUp, StepUpDemand, UpstreamConflict};

/// The parts of a request the gate looks at.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    /// Path and query as received, for `return_to`.
    pub path_and_query: &'a str,
    /// The client asked for HTML (a browser navigation).
    pub wants_html: bool,
    /// Unix seconds, for step-up's `max_age`.
    pub now: i64,
}

/// Who the request's credentials name: a session cookie or a bearer
/// credential (a service-account token, a machine JWT), found and checked
/// by the phase.
#[derive(Debug, Clone)]
pub enum Identity {
    Anonymous,
    Authenticated(Arc<Principal>),
    /// The store (or a provider's keys) could not be reached: we don't know
    /// who this is.
    Unknown,
    /// A bearer credential that did not authenticate: malformed, unknown,
    /// expired, revoked, of a tenant no longer configured... The client is
    /// told only that it is invalid.
    InvalidBearer,
    /// Credentials that say different things, so which one counts would
    /// be a guess.
    Conflicting(Conflict),
}

/// Credentials refused as ambiguous before any of them is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// `Authorization` more than once: HTTP stacks keep the first, the last
    /// or a join, so the app and Portcullis could read different ones.
    #[error("more than one Authorization header")]
    TwoAuthorizations,
    /// A session cookie and a bearer credential: a browser session must not
    /// be silently replaced by a token (or the reverse) on one request.
    #[error("a session cookie and a bearer credential")]
    CookieAndBearer,
}

impl Conflict {
    pub fn label(self) -> &'static str {
        match self {
            Conflict::TwoAuthorizations => "authorization_repeated",
            Conflict::CookieAndBearer => "cookie_and_bearer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forward to the upstream, with identity when there is one.
    Forward(Option<Arc<Principal>>),
    /// Send the browser to the login page.
    Redirect(String),
    Deny(Deny),
    /// A path or host no reading makes unambiguous: 400, counted by reason.
    Ambiguous(Ambiguous),
    /// A password login stopped because the email's tenant enforces SSO:
    /// browsers go to `login_url`, APIs get a 403 naming it.
    SsoRequired {
        tenant: String,
        login_url: String,
        browser: bool,
    },
    /// A password-login submission Portcullis could not vouch for: one
    /// generic answer (a 413 for a body too large to inspect), the precise
    /// reason only in the log and metrics.
    LoginRefused {
        reason: Refusal,
        login_url: String,
        browser: bool,
    },
    /// A session too weak for the route (step-up): browsers go through a
    /// fresh login at their connection asking for `need`, APIs get a 401
    /// naming it (RFC 9470).
    StepUp(StepUpChallenge),
}

/// What a step-up asks for, and where the browser returns afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpChallenge {
    pub need: StepUp,
    /// Path and query as received.
    pub return_to: String,
    pub browser: bool,
}

/// Why a request was refused before routing. Each is a label of
/// `portcullis_requests_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ambiguous {
    #[error("{0}")]
    Path(Ambiguity),
    #[error("{0}")]
    Host(HostError),
    #[error("encoded path separator under a protected route")]
    EncodedSeparator,
    #[error("{0}")]
    Upstream(UpstreamConflict),
    #[error("{0}")]
    Credentials(Conflict),
}

impl Ambiguous {
    pub fn label(self) -> &'static str {
        match self {
            Ambiguous::Path(a) => a.label(),
            Ambiguous::Host(h) => h.label(),
            Ambiguous::EncodedSeparator => "path_encoded_separator",
            Ambiguous::Upstream(_) => "upstream_ambiguous",
            Ambiguous::Credentials(c) => c.label(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// 401: no session.
    Unauthenticated,
    /// 403: a session without the route's groups/roles.
    Forbidden,
    /// 503: the session store is unreachable.
    Unavailable,
    /// 401 with `WWW-Authenticate: Bearer error="invalid_token"`: a bearer
    /// credential that did not authenticate.
    InvalidToken,
}

/// Decides a request's fate. `route` is the conjunction of every route the
/// request's readings selected; `login_path` is the internal login page.
pub fn decide(
    route: &Requirement<'_>,
    facts: &RequestFacts<'_>,
    who: &Identity,
    login_path: &str,
) -> Outcome {
    match (route.policy(), who) {
        (Policy::Public, _) => Outcome::Forward(None),
        // A caller that presented a credential is answered about it, on
        // `optional` routes too: silently anonymous would hide a revoked
        // or mistyped token.
        (_, Identity::Conflicting(c)) => Outcome::Ambiguous(Ambiguous::Credentials(*c)),
        (_, Identity::InvalidBearer) => Outcome::Deny(Deny::InvalidToken),
        (Policy::Optional, Identity::Authenticated(p)) => Outcome::Forward(Some(p.clone())),
        // An optional route must not fail because the store is down.
        (Policy::Optional, _) => Outcome::Forward(None),
        (Policy::Required, Identity::Authenticated(p)) => {
            if !route.admits(p) {
                return Outcome::Deny(Deny::Forbidden);
            }
            match route.step_up() {
                StepUpDemand::None => Outcome::Forward(Some(p.clone())),
                StepUpDemand::Demand(need) if need.satisfied_by(&p.auth, facts.now) => {
                    Outcome::Forward(Some(p.clone()))
                }
                StepUpDemand::Demand(need) => Outcome::StepUp(StepUpChallenge {
                    need,
                    return_to: facts.path_and_query.to_owned(),
                    browser: facts.wants_html,
                }),
                // misconfigured routes: no session can pass
                StepUpDemand::Impossible => Outcome::Deny(Deny::Forbidden),
            }
        }
        (Policy::Required, Identity::Unknown) => Outcome::Deny(Deny::Unavailable),
        (Policy::Required, Identity::Anonymous) => {
            if facts.wants_html {
                Outcome::Redirect(login_redirect(login_path, facts.path_and_query))
            } else {
                Outcome::Deny(Deny::Unauthenticated)
            }
        }
    }
}

/// `%2F` inside a protected prefix: servers disagree on whether it
/// separates segments, so no reading is safe to act on. Checked before the
/// session is looked up; a public route takes the request as it is.
pub fn screen(route: &Requirement<'_>, encoded_separator: bool) -> Option<Outcome> {
    (encoded_separator && route.policy() != Policy::Public)
        .then_some(Outcome::Ambiguous(Ambiguous::EncodedSeparator))
}

/// What the proxy learned about a request to a password-login endpoint
/// (see `enforce` for how it reads one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// Nothing that could carry credentials (a plain GET): not inspected.
    Uninspected,
    /// Refused before any domain lookup.
    Refused(Refusal),
    /// Exactly one email, normalised, and where its domain routes.
    Email { address: String, tenant: Routing },
}

/// Where a submitted email's domain routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// No tenant has verified it.
    Unrouted,
    Tenant {
        id: String,
        enforces_sso: bool,
    },
    /// The lookup failed: we can't know.
    Failed,
}

/// SSO enforcement: `None` lets the submission go on to the route gate.
/// Fails closed — only an email whose domain provably routes to no
/// enforcing tenant passes. `browser` is a browser navigation or form post
/// ([`is_browser_form`]); `login_path` is the internal login page.
pub fn decide_login(submission: &Submission, browser: bool, login_path: &str) -> Option<Outcome> {
    match submission {
        Submission::Uninspected => None,
        Submission::Refused(reason) => Some(Outcome::LoginRefused {
            reason: *reason,
            login_url: format!("{login_path}?use_sso=true"),
            browser,
        }),
        Submission::Email { tenant, address } => match tenant {
            Routing::Unrouted
            | Routing::Tenant {
                enforces_sso: false,
                ..
            } => None,
            Routing::Failed => Some(Outcome::Deny(Deny::Unavailable)),
            Routing::Tenant { id, .. } => Some(Outcome::SsoRequired {
                tenant: id.clone(),
                login_url: format!(
                    "{login_path}?use_sso=true&email={}",
                    percent_encoding::utf8_percent_encode(
                        address,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                ),
                browser,
            }),
        },
    }
}

/// A browser posting a form gets a redirect, an API client a JSON 403.
pub fn is_browser_form(wants_html: bool, content_type: Option<&str>) -> bool {
    wants_html
        || content_type.is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/x-www-form-urlencoded")
                || ct.starts_with("multipart/form-data")
        })
}

/// `step_up_path?return_to=…&acr_values=…&max_age=…`: the fresh login a
/// step-up challenge asks for. The parameters only say what to ask the
/// IdP; the gate checks the new session against the route again.
pub fn step_up_redirect(step_up_path: &str, return_to: &str, need: &StepUp) -> String {
    let encoded: String =
        percent_encoding::utf8_percent_encode(return_to, percent_encoding::NON_ALPHANUMERIC)
            .collect();
    format!("{step_up_path}?return_to={encoded}{}", step_up_params(need))
}

/// `&acr_values=…&max_age=…`, each only when asked for.
pub fn step_up_params(need: &StepUp) -> String {
    let mut q = String::new();
    if !need.acr.is_empty() {
        q.push_str("&acr_values=");
        q.extend(percent_encoding::utf8_percent_encode(
            &need.acr.join(" "),
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    if let Some(m) = need.max_age {
        q.push_str(&format!("&max_age={m}"));
    }
    q
}

/// RFC 9470's challenge: `Bearer error="insufficient_user_authentication"`
/// with the acr names and `max_age` a new authentication must meet. The
/// names are validated to hold no quote or backslash.
pub fn step_up_www_authenticate(need: &StepUp) -> String {
    let mut v = String::from(
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"A different authentication level is required\"",
    );
    if !need.acr.is_empty() {
        v.push_str(&format!(", acr_values=\"{}\"", need.acr.join(" ")));
    }
    if let Some(m) = need.max_age {
        v.push_str(&format!(", max_age={m}"));
    }
    v
}

/// `login_path?return_to=<encoded same-origin path>`.
pub fn login_redirect(login_path: &str, path_and_query: &str) -> String {
    let target = safe_return_to(path_and_query).unwrap_or("/");
    let encoded: String =
        percent_encoding::utf8_percent_encode(target, percent_encoding::NON_ALPHANUMERIC).collect();
    format!("{login_path}?return_to={encoded}")
}

#[cfg(test)]
mod step_up_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::routes::{Member, RouteMatch};

    fn route(policy: Policy, groups: &[&str]) -> RouteMatch {
        RouteMatch {
            policy,
            allowed_groups: groups.iter().map(|s| Member::parse(s, &[])).collect(),
            allowed_roles: vec![],
            allowed_tenants: vec![],
            step_up: Default::default(),
        }
    }

    fn alice() -> Arc<Principal> {
        Arc::new(Principal {
            user_id: "u1".into(),
            email: "alice@example.com".into(),
            name: None,
            groups: vec!["eng".into()],
            roles: vec!["admin".into()],
            tenant: None,
            connection: None,
            ..Principal::default()
        })
    }

    const LOGIN: &str = "/.portcullis/login";

    #[test]
    fn decisions() {
        let html = RequestFacts {
            path_and_query: "/app?x=1",
            wants_html: true,
            now: 0,
        };
        let api = RequestFacts {
            path_and_query: "/api",
            wants_html: false,
            now: 0,
        };
        let a = Identity::Authenticated(alice());
        use Outcome::*;
        assert_eq!(
            decide(
                &Requirement::of(&route(Policy::Public, &[])),
                &api,
                &a,
                LOGIN
            ),
            Forward(None)
        );
        assert_eq!(
            decide(
                &Requirement::of(&route(Policy::Optional, &[])),
                &api,
                &a,
                LOGIN
            ),
            Forward(Some(alice()))
        );
        assert_eq!(
            decide(
                &Requirement::of(&route(Policy::Optional, &[])),
                &api,
                &Identity::Unknown,
                LOGIN
            ),
            Forward(None)
        );
        assert_eq!(
            decide(
                &Requirement::of(&route(Policy::Required, &[])),
                &api,
                &a,
                LOGIN
            ),
            Forward(Some(alice()))
        );
        assert_eq!(
            decide(
                &Requirement::of(&route(Policy::Required, &["eng"])),
                &api,
                &a,
                LOGIN
            ),
            Forward(Some(alice()))
        );
        assert_eq!(
            decide(
                &Requirement::of(&route(Policy::Required, &["ops"])),
                &api,
                &a,
                LOGIN
            ),
            Deny(super::Deny::Forbidden)
        );
        let by_role = RouteMatch {
            allowed_roles: vec![Member::parse("admin", &[])],
            ..route(Policy::Required, &["ops"])
        };
        assert_eq!(
            decide(&Requirement::of(&by_role), &api, &a, LOGIN),
            Forward(Some(alice()))
        );
        assert_eq!(
            decide(
                &Requirement::of(&route(Policy::Required, &[])),
                &api,
                &Identity::Anonymous,
                LOGIN
            ),
            Deny(super::Deny::Unauthenticated)
        );
        assert_eq!(
            decide(
                &Requirement::of(&route(Policy::Required, &[])),
                &api,
                &Identity::Unknown,
                LOGIN
            ),
            Deny(super::Deny::Unavailable)
        );
        assert_eq!(
            decide(
                &Requirement::of(&route(Policy::Required, &[])),
                &html,
                &Identity::Anonymous,
                LOGIN
            ),
            Redirect("/.portcullis/login?return_to=%2Fapp%3Fx%3D1".into())
        );
    }

    #[test]
    fn sso_enforcement_fails_closed() {
        use Outcome::*;
        let email = |tenant| Submission::Email {
            address: "bob+x@acme.com".into(),
            tenant,
        };
        let enforcing = Routing::Tenant {
            id: "acme".into(),
            enforces_sso: true,
        };
        let relaxed = Routing::Tenant {
            id: "acme".into(),
            enforces_sso: false,
        };
        assert_eq!(decide_login(&Submission::Uninspected, true, LOGIN), None);
        assert_eq!(decide_login(&email(Routing::Unrouted), true, LOGIN), None);
        assert_eq!(decide_login(&email(relaxed), true, LOGIN), None);
        assert_eq!(
            decide_login(&email(Routing::Failed), false, LOGIN),
            Some(Deny(super::Deny::Unavailable))
        );
        assert_eq!(
            decide_login(&email(enforcing), false, LOGIN),
            Some(SsoRequired {
                tenant: "acme".into(),
                login_url: "/.portcullis/login?use_sso=true&email=bob%2Bx%40acme%2Ecom".into(),
                browser: false,
            })
        );
        assert_eq!(
            decide_login(&Submission::Refused(Refusal::Duplicate), true, LOGIN),
            Some(LoginRefused {
                reason: Refusal::Duplicate,
                login_url: "/.portcullis/login?use_sso=true".into(),
                browser: true,
            })
        );
    }

    #[test]
    fn bearer_credentials_are_decided_like_sessions_and_refused_generically() {
        use Outcome::*;
        let api = RequestFacts {
            path_and_query: "/api",
            wants_html: false,
            now: 0,
        };
        let html = RequestFacts {
            path_and_query: "/app",
            wants_html: true,
            now: 0,
        };
        let machine = Arc::new(Principal {
            user_id: "sa_1".into(),
            tenant: Some("acme".into()),
            roles: vec!["reader".into()],
            kind: crate::identity::PrincipalKind::Service,
            ..Principal::default()
        });
        let who = Identity::Authenticated(machine.clone());
        for policy in [Policy::Required, Policy::Optional] {
            let r = route(policy, &[]);
            assert_eq!(
                decide(&Requirement::of(&r), &api, &who, LOGIN),
                Forward(Some(machine.clone()))
            );
            // a bad token is a 401 even for a browser, never a login redirect
            for facts in [&api, &html] {
                assert_eq!(
                    decide(&Requirement::of(&r), facts, &Identity::InvalidBearer, LOGIN),
                    Deny(super::Deny::InvalidToken)
                );
            }
            for c in [Conflict::TwoAuthorizations, Conflict::CookieAndBearer] {
                assert_eq!(
                    decide(&Requirement::of(&r), &api, &Identity::Conflicting(c), LOGIN),
                    Ambiguous(super::Ambiguous::Credentials(c))
                );
            }
        }
        // groups and roles apply to machines as to people
        let by_role = RouteMatch {
            allowed_roles: vec![Member::parse("writer", &[])],
            ..route(Policy::Required, &[])
        };
        assert_eq!(
            decide(&Requirement::of(&by_role), &api, &who, LOGIN),
            Deny(super::Deny::Forbidden)
        );
        // public routes don't look at credentials at all
        let public = route(Policy::Public, &[]);
        for w in [
            Identity::InvalidBearer,
            Identity::Conflicting(Conflict::CookieAndBearer),
        ] {
            assert_eq!(
                decide(&Requirement::of(&public), &api, &w, LOGIN),
                Forward(None)
            );
        }
        assert_eq!(
            Conflict::TwoAuthorizations.label(),
            "authorization_repeated"
        );
        assert_eq!(
            super::Ambiguous::Credentials(Conflict::CookieAndBearer).label(),
            "cookie_and_bearer"
        );
    }

    /// A label of `portcullis_requests_refused_total{reason}`: dashboards
    /// and tests read it.
    #[test]
    fn upstream_conflicts_have_their_own_label() {
        let a = Ambiguous::Upstream(crate::proxy::routes::UpstreamConflict);
        assert_eq!(a.label(), "upstream_ambiguous");
    }

    #[test]
    fn form_posts_count_as_browsers() {
        assert!(is_browser_form(true, Some("application/json")));
        assert!(is_browser_form(
            false,
            Some("Application/X-WWW-Form-Urlencoded; charset=utf-8")
        ));
        assert!(is_browser_form(
            false,
            Some("multipart/form-data; boundary=x")
        ));
        assert!(!is_browser_form(false, Some("application/json")));
        assert!(!is_browser_form(false, None));
    }

    #[test]
    fn unsafe_return_targets_fall_back_to_root() {
        // what counts as unsafe is tested in `redirect`; here: the fallback
        for bad in ["//evil.com", "https://evil.com", "/\t/evil.com"] {
            assert_eq!(
                login_redirect(LOGIN, bad),
                "/.portcullis/login?return_to=%2F"
            );
        }
    }
}
