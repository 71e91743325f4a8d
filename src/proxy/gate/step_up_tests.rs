//! The gate's step-up decisions: a session whose authentication is too
//! weak or too old for the route is challenged, never forwarded.

use std::sync::Arc;

use super::*;
use crate::identity::AuthFacts;
use crate::proxy::routes::{Member, RouteMatch, StepUp, StepUpDemand};

const NOW: i64 = 1_800_000_000;
const LOGIN: &str = "/.portcullis/login";

fn route(acr: &[&str], max_age: Option<u64>) -> RouteMatch {
    RouteMatch {
        policy: Policy::Required,
        allowed_groups: vec![],
        allowed_roles: vec![],
        allowed_tenants: vec![],
        step_up: StepUp {
            acr: acr.iter().map(|s| s.to_string()).collect(),
            max_age,
        },
    }
}

fn with_auth(acr: Option<&str>, auth_time: Option<i64>) -> Identity {
    Identity::Authenticated(Arc::new(Principal {
        user_id: "u1".into(),
        groups: vec!["eng".into()],
        auth: AuthFacts {
            acr: acr.map(str::to_owned),
            amr: vec!["pwd".into()],
            auth_time,
        },
        ..Principal::default()
    }))
}

fn facts(wants_html: bool) -> RequestFacts<'static> {
    RequestFacts {
        path_and_query: "/admin?tab=keys",
        wants_html,
        now: NOW,
    }
}

fn decide_on(r: &RouteMatch, who: &Identity, html: bool) -> Outcome {
    decide(&Requirement::of(r), &facts(html), who, LOGIN)
}

fn challenged(o: &Outcome) -> Option<&StepUpChallenge> {
    match o {
        Outcome::StepUp(c) => Some(c),
        _ => None,
    }
}

#[test]
fn acr_any_of() {
    let r = route(&["mfa", "phr"], None);
    for ok in ["mfa", "phr"] {
        assert!(
            matches!(
                decide_on(&r, &with_auth(Some(ok), Some(NOW)), false),
                Outcome::Forward(Some(_))
            ),
            "{ok}"
        );
    }
    for weak in [Some("pwd"), Some("MFA"), Some(""), None] {
        let o = decide_on(&r, &with_auth(weak, Some(NOW)), false);
        let c = challenged(&o).unwrap_or_else(|| panic!("{weak:?}: {o:?}"));
        assert_eq!(c.need.acr, ["mfa", "phr"]);
        assert_eq!(c.need.max_age, None);
        assert!(!c.browser);
        assert_eq!(c.return_to, "/admin?tab=keys");
    }
    // a browser is challenged too (the proxy redirects it)
    assert!(challenged(&decide_on(&r, &with_auth(None, None), true)).is_some_and(|c| c.browser));
}

#[test]
fn max_age_counts_from_auth_time() {
    let r = route(&[], Some(900));
    let at = |t| decide_on(&r, &with_auth(None, t), false);
    assert!(matches!(at(Some(NOW)), Outcome::Forward(Some(_))));
    assert!(matches!(at(Some(NOW - 900)), Outcome::Forward(Some(_))));
    assert!(challenged(&at(Some(NOW - 901))).is_some());
    // no auth_time: never fresh enough
    assert!(challenged(&at(None)).is_some());
    // a far-past time doesn't overflow into "fresh"
    assert!(challenged(&at(Some(i64::MIN))).is_some());
}

#[test]
fn both_demands_must_hold() {
    let r = route(&["mfa"], Some(60));
    assert!(matches!(
        decide_on(&r, &with_auth(Some("mfa"), Some(NOW - 10)), false),
        Outcome::Forward(Some(_))
    ));
    assert!(
        challenged(&decide_on(
            &r,
            &with_auth(Some("mfa"), Some(NOW - 61)),
            false
        ))
        .is_some()
    );
    assert!(challenged(&decide_on(&r, &with_auth(Some("pwd"), Some(NOW)), false)).is_some());
}

#[test]
fn other_outcomes_come_first() {
    let r = route(&["mfa"], None);
    // no session: login, not step-up
    assert_eq!(
        decide_on(&r, &Identity::Anonymous, false),
        Outcome::Deny(Deny::Unauthenticated)
    );
    assert!(matches!(
        decide_on(&r, &Identity::Anonymous, true),
        Outcome::Redirect(_)
    ));
    assert_eq!(
        decide_on(&r, &Identity::Unknown, false),
        Outcome::Deny(Deny::Unavailable)
    );
    // not a member: stepping up would not help
    let members_only = RouteMatch {
        allowed_groups: vec![Member::parse("ops", &[])],
        ..route(&["mfa"], None)
    };
    assert_eq!(
        decide_on(&members_only, &with_auth(None, None), false),
        Outcome::Deny(Deny::Forbidden)
    );
}

#[test]
fn several_routes_conjoin() {
    let a = route(&["mfa", "phr", "hwk"], Some(3600));
    let b = route(&["hwk", "phr"], Some(600));
    let req = Requirement::of(&a);
    assert_eq!(
        req.step_up(),
        StepUpDemand::Demand(StepUp {
            acr: vec!["mfa".into(), "phr".into(), "hwk".into()],
            max_age: Some(3600)
        })
    );
    let both = Requirement::of_all(&[&a, &b]);
    assert_eq!(
        both.step_up(),
        StepUpDemand::Demand(StepUp {
            acr: vec!["phr".into(), "hwk".into()],
            max_age: Some(600)
        })
    );
    let disjoint = route(&["x"], None);
    let none = Requirement::of_all(&[&a, &disjoint]);
    assert_eq!(none.step_up(), StepUpDemand::Impossible);
    assert_eq!(
        decide(
            &none,
            &facts(false),
            &with_auth(Some("x"), Some(NOW)),
            LOGIN
        ),
        Outcome::Deny(Deny::Forbidden)
    );
    let plain = route(&[], None);
    assert_eq!(Requirement::of(&plain).step_up(), StepUpDemand::None);
    // a plain route beside a demanding one keeps the demand
    assert!(matches!(
        Requirement::of_all(&[&plain, &b]).step_up(),
        StepUpDemand::Demand(_)
    ));
}

#[test]
fn redirect_and_challenge_text() {
    let need = StepUp {
        acr: vec!["mfa".into(), "urn:x:phr".into()],
        max_age: Some(900),
    };
    assert_eq!(
        step_up_redirect("/.portcullis/step-up", "/admin?a=1&b", &need),
        "/.portcullis/step-up?return_to=%2Fadmin%3Fa%3D1%26b&acr_values=mfa%20urn%3Ax%3Aphr&max_age=900"
    );
    assert_eq!(
        step_up_www_authenticate(&need),
        "Bearer error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required\", acr_values=\"mfa urn:x:phr\", max_age=900"
    );
    let age_only = StepUp {
        acr: vec![],
        max_age: Some(60),
    };
    assert_eq!(
        step_up_redirect("/s", "/", &age_only),
        "/s?return_to=%2F&max_age=60"
    );
    assert!(!step_up_www_authenticate(&age_only).contains("acr_values"));
}
