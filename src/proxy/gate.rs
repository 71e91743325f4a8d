//! The auth gate: a pure function from what we know about a request to what
//! should happen to it. Pingora phases only translate its outcome, which
//! keeps every access decision testable without sockets.

use std::sync::Arc;

use crate::config::Policy;
use crate::identity::Principal;
use crate::redirect::safe_return_to;

use super::routes::Requirement;

/// The parts of a request the gate looks at.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    /// Path and query as received, for `return_to`.
    pub path_and_query: &'a str,
    /// The client asked for HTML (a browser navigation).
    pub wants_html: bool,
}

/// How the session lookup went.
#[derive(Debug, Clone)]
pub enum Identity {
    Anonymous,
    Authenticated(Arc<Principal>),
    /// The store could not be reached: we don't know who this is.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forward to the upstream, with identity when there is one.
    Forward(Option<Arc<Principal>>),
    /// Send the browser to the login page.
    Redirect(String),
    Deny(Deny),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// 401: no session.
    Unauthenticated,
    /// 403: a session without the route's groups/roles.
    Forbidden,
    /// 503: the session store is unreachable.
    Unavailable,
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
        (Policy::Optional, Identity::Authenticated(p)) => Outcome::Forward(Some(p.clone())),
        // An optional route must not fail because the store is down.
        (Policy::Optional, _) => Outcome::Forward(None),
        (Policy::Required, Identity::Authenticated(p)) => {
            if route.admits(p) {
                Outcome::Forward(Some(p.clone()))
            } else {
                Outcome::Deny(Deny::Forbidden)
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

/// `login_path?return_to=<encoded same-origin path>`.
pub fn login_redirect(login_path: &str, path_and_query: &str) -> String {
    let target = safe_return_to(path_and_query).unwrap_or("/");
    let encoded: String =
        percent_encoding::utf8_percent_encode(target, percent_encoding::NON_ALPHANUMERIC).collect();
    format!("{login_path}?return_to={encoded}")
}

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
        })
    }

    const LOGIN: &str = "/.portcullis/login";

    #[test]
    fn decisions() {
        let html = RequestFacts {
            path_and_query: "/app?x=1",
            wants_html: true,
        };
        let api = RequestFacts {
            path_and_query: "/api",
            wants_html: false,
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
