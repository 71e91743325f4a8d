use std::net::IpAddr;

use http::header::HeaderName;

use super::*;
use crate::config::{ForwardAuthEndpoint, HeadersConfig};
use crate::proxy::canon::Ambiguity;
use crate::proxy::enforce::Refusal as LoginRefusal;
use crate::proxy::gate::Ambiguous;

const LOGIN: &str = "/.portcullis/login";

fn config(endpoints: &[(Option<&str>, Convention)]) -> Config {
    let mut cfg = Config::default();
    cfg.server.public_url = "https://auth.example.com".into();
    cfg.forward_auth.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
    cfg.forward_auth.hosts = vec!["app.example.com".into()];
    cfg.forward_auth.endpoints = endpoints
        .iter()
        .map(|(path, convention)| ForwardAuthEndpoint {
            path: path.map(str::to_owned),
            convention: *convention,
            forwards_body: false,
        })
        .collect();
    cfg
}

fn plan() -> Plan {
    Plan::compile(&config(&[
        (None, Convention::Nginx),
        (Some("/.portcullis/caddy"), Convention::Forward),
        (Some("/.portcullis/envoy"), Convention::Envoy),
    ]))
    .unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn orig(method: Method, scheme: &str, host: &str, pq: &str) -> Original {
    Original {
        method,
        scheme: scheme.into(),
        host: host.into(),
        path_and_query: pq.into(),
    }
}

#[test]
fn off_without_endpoints() {
    assert!(Plan::compile(&config(&[])).is_none());
}

#[test]
fn endpoints_match_exactly_except_envoy_prefixes() {
    let p = plan();
    let at = |path: &str| {
        p.endpoint_at(path)
            .map(|(e, rest)| (e.convention, rest.to_owned()))
    };
    assert_eq!(
        at("/.portcullis/auth"),
        Some((Convention::Nginx, "".into()))
    );
    assert_eq!(at("/.portcullis/auth/x"), None);
    assert_eq!(at("/.portcullis/authx"), None);
    assert_eq!(
        at("/.portcullis/caddy"),
        Some((Convention::Forward, "".into()))
    );
    assert_eq!(at("/.portcullis/caddy/"), None);
    assert_eq!(
        at("/.portcullis/envoy"),
        Some((Convention::Envoy, "".into()))
    );
    assert_eq!(
        at("/.portcullis/envoy/admin/x"),
        Some((Convention::Envoy, "/admin/x".into()))
    );
    assert_eq!(at("/.portcullis/envoyx"), None);
    assert_eq!(at("/.portcullis/login"), None);
}

#[test]
fn only_the_tcp_peer_in_trusted_proxies_is_trusted() {
    let p = plan();
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert!(p.trusts(ip("10.1.2.3")));
    assert!(p.trusts(ip("::ffff:10.1.2.3")), "IPv4-mapped");
    assert!(p.trusts(ip("::1")));
    assert!(!p.trusts(ip("11.0.0.1")));
    assert!(!p.trusts(ip("127.0.0.1")));
    assert!(!p.trusts(None));
    // IPv4-compatible (deprecated) is not IPv4-mapped: another address
    assert!(!p.trusts(ip("::10.1.2.3")));
    // an entry in the mapped spelling: the IPv4 peer and its mapped form
    let mut cfg = config(&[(None, Convention::Nginx)]);
    cfg.forward_auth.trusted_proxies = vec!["::ffff:192.0.2.0/120".into()];
    let mapped = Plan::compile(&cfg).unwrap();
    assert!(mapped.trusts(ip("::ffff:192.0.2.7")));
    assert!(mapped.trusts(ip("192.0.2.7")));
    assert!(!mapped.trusts(ip("192.0.3.7")));
}

#[test]
fn nginx_reads_x_original_uri_with_host_or_x_original_url() {
    let get = Method::GET;
    let nginx = |h: &[(&'static str, &str)]| {
        original(Convention::Nginx, &get, "", None, &headers(h), "https")
    };
    assert_eq!(
        nginx(&[
            ("x-original-method", "POST"),
            ("x-original-uri", "/admin?x=1"),
            ("host", "app.example.com"),
        ]),
        Ok(orig(Method::POST, "https", "app.example.com", "/admin?x=1"))
    );
    assert_eq!(
        nginx(&[
            ("x-original-method", "GET"),
            ("x-original-uri", "/a"),
            ("host", "app.example.com:8000"),
            ("x-forwarded-proto", "HTTP"),
        ]),
        Ok(orig(Method::GET, "http", "app.example.com:8000", "/a"))
    );
    // ingress-nginx: the absolute URL names scheme and host; Host is the
    // auth service's
    assert_eq!(
        nginx(&[
            ("x-original-method", "GET"),
            ("x-original-url", "http://app.example.com/b?c"),
            ("host", "portcullis.svc"),
        ]),
        Ok(orig(Method::GET, "http", "app.example.com", "/b?c"))
    );
    assert_eq!(
        nginx(&[
            ("x-original-method", "GET"),
            ("x-original-url", "https://app.example.com"),
        ]),
        Ok(orig(Method::GET, "https", "app.example.com", "/"))
    );
    // whichever of the two the proxy did not set is the client's
    assert_eq!(
        nginx(&[
            ("x-original-method", "GET"),
            ("x-original-uri", "/admin"),
            ("x-original-url", "http://app.example.com/public/"),
            ("host", "app.example.com"),
        ]),
        Err(Refusal::TwoTargets)
    );
    for (h, err) in [
        (
            &[("x-original-uri", "/"), ("host", "a")][..],
            Refusal::Missing("x-original-method"),
        ),
        (
            &[("x-original-method", "GET"), ("host", "a")][..],
            Refusal::Missing("x-original-uri"),
        ),
        (
            &[("x-original-method", "GET"), ("x-original-uri", "/")][..],
            Refusal::Missing("host"),
        ),
        (
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/"),
                ("x-original-uri", "/admin"),
                ("host", "a"),
            ][..],
            Refusal::Duplicate("x-original-uri"),
        ),
        (
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "http://evil/admin"),
                ("host", "a"),
            ][..],
            Refusal::Malformed("x-original-uri"),
        ),
        (
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/a#frag"),
                ("host", "a"),
            ][..],
            Refusal::Malformed("x-original-uri"),
        ),
        (
            &[
                ("x-original-method", "G(T"),
                ("x-original-uri", "/"),
                ("host", "a"),
            ][..],
            Refusal::Malformed("x-original-method"),
        ),
        (
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/"),
                ("host", "a"),
                ("x-forwarded-proto", "gopher"),
            ][..],
            Refusal::Malformed("x-forwarded-proto"),
        ),
        (
            &[
                ("x-original-method", "GET"),
                ("x-original-url", "http://user@evil/"),
            ][..],
            Refusal::Malformed("x-original-url"),
        ),
        (
            &[
                ("x-original-method", "GET"),
                ("x-original-url", "javascript://a/"),
            ][..],
            Refusal::Malformed("x-original-url"),
        ),
    ] {
        assert_eq!(nginx(h), Err(err), "{h:?}");
    }
}

#[test]
fn forward_needs_all_four_headers_and_reads_nothing_else() {
    let get = Method::GET;
    let all = [
        ("x-forwarded-method", "DELETE"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", "/admin/x?y"),
    ];
    let forward = |h: &[(&'static str, &str)]| {
        original(Convention::Forward, &get, "", None, &headers(h), "http")
    };
    assert_eq!(
        forward(&all),
        Ok(orig(
            Method::DELETE,
            "https",
            "app.example.com",
            "/admin/x?y"
        ))
    );
    // another convention's headers change nothing
    let mut with_nginx = all.to_vec();
    with_nginx.extend([("x-original-uri", "/public/"), ("host", "evil.example")]);
    assert_eq!(forward(&with_nginx), forward(&all));
    for i in 0..all.len() {
        let mut missing = all.to_vec();
        let (name, _) = missing.remove(i);
        assert_eq!(forward(&missing), Err(Refusal::Missing(name)));
        let mut twice = all.to_vec();
        twice.push(all[i]);
        assert_eq!(forward(&twice), Err(Refusal::Duplicate(name)));
    }
    let mut relative = all.to_vec();
    relative[3] = ("x-forwarded-uri", "admin");
    assert_eq!(
        forward(&relative),
        Err(Refusal::Malformed("x-forwarded-uri"))
    );
}

#[test]
fn envoy_takes_the_path_after_the_prefix_and_the_request_method() {
    let envoy = |method: Method, rest: &str, q: Option<&str>, h: &[(&'static str, &str)]| {
        original(Convention::Envoy, &method, rest, q, &headers(h), "https")
    };
    assert_eq!(
        envoy(
            Method::PUT,
            "/admin/x",
            Some("a=b"),
            &[("host", "app.example.com")]
        ),
        Ok(orig(
            Method::PUT,
            "https",
            "app.example.com",
            "/admin/x?a=b"
        ))
    );
    assert_eq!(
        envoy(
            Method::GET,
            "/",
            None,
            &[("host", "app.example.com"), ("x-forwarded-proto", "http")]
        ),
        Ok(orig(Method::GET, "http", "app.example.com", "/"))
    );
    assert_eq!(
        envoy(Method::GET, "", None, &[("host", "a")]),
        Err(Refusal::Malformed("path"))
    );
    assert_eq!(
        envoy(Method::GET, "/", None, &[]),
        Err(Refusal::Missing("host"))
    );
    // a forged nginx/forward description is not read
    assert_eq!(
        envoy(
            Method::GET,
            "/admin",
            None,
            &[
                ("host", "a"),
                ("x-original-uri", "/public/"),
                ("x-forwarded-uri", "/public/")
            ]
        )
        .map(|o| o.path_and_query),
        Ok("/admin".into())
    );
}

#[test]
fn refusal_labels_are_a_closed_set() {
    assert_eq!(
        [
            Refusal::Untrusted,
            Refusal::Missing("x"),
            Refusal::Duplicate("x"),
            Refusal::TwoTargets,
            Refusal::Malformed("x"),
        ]
        .map(Refusal::label),
        [
            "forward_auth_untrusted",
            "forward_auth_missing",
            "forward_auth_duplicate",
            "forward_auth_duplicate",
            "forward_auth_malformed",
        ]
    );
}

fn alice() -> Arc<Principal> {
    Arc::new(Principal {
        user_id: "u1".into(),
        email: "alice@example.com".into(),
        name: None,
        groups: vec!["eng".into()],
        roles: vec![],
        tenant: Some("acme".into()),
        connection: None,
        ..Default::default()
    })
}

fn returns() -> ReturnTargets {
    config(&[]).return_targets()
}

#[test]
fn login_returns_to_the_original_url_on_configured_hosts_only() {
    let p = plan();
    let at = |o: &Original| login_location(&p, LOGIN, o, &returns());
    assert_eq!(
        at(&orig(Method::GET, "https", "app.example.com", "/x?y=1")),
        "https://auth.example.com/.portcullis/login?return_to=https%3A%2F%2Fapp%2Eexample%2Ecom%2Fx%3Fy%3D1"
    );
    // a host nobody configured: its path only, on Portcullis' host
    assert_eq!(
        at(&orig(Method::GET, "https", "evil.example", "/x")),
        "https://auth.example.com/.portcullis/login?return_to=%2Fx"
    );
    // secure sessions never return over http
    assert_eq!(
        at(&orig(Method::GET, "http", "app.example.com", "/x")),
        "https://auth.example.com/.portcullis/login?return_to=%2Fx"
    );
    assert_eq!(
        at(&orig(
            Method::GET,
            "https",
            "app.example.com",
            "//evil.example/"
        )),
        "https://auth.example.com/.portcullis/login?return_to=https%3A%2F%2Fapp%2Eexample%2Ecom%2F%2Fevil%2Eexample%2F"
    );
    assert_eq!(
        at(&orig(
            Method::GET,
            "https",
            "evil.example",
            "//evil.example/"
        )),
        "https://auth.example.com/.portcullis/login?return_to=%2F"
    );
}

#[test]
fn answers_per_convention() {
    let p = plan();
    let o = orig(Method::GET, "https", "app.example.com", "/x");
    let login = login_location(&p, LOGIN, &o, &returns());
    let ans = |c, outcome| answer(c, outcome, &o, &p, LOGIN, &returns());
    let own = |outcome, status, login: Option<&str>| Answer::Own {
        outcome,
        status,
        login: login.map(str::to_owned),
    };
    use Convention::*;
    for c in [Nginx, Forward, Envoy] {
        assert_eq!(
            ans(c, Outcome::Forward(Some(alice()))),
            Answer::Allow(Some(alice()))
        );
        assert_eq!(ans(c, Outcome::Forward(None)), Answer::Allow(None));
        assert_eq!(
            ans(c, Outcome::Deny(Deny::Unauthenticated)),
            own(Outcome::Deny(Deny::Unauthenticated), None, None)
        );
        assert_eq!(
            ans(c, Outcome::Deny(Deny::Forbidden)),
            own(Outcome::Deny(Deny::Forbidden), None, None)
        );
        assert_eq!(
            ans(c, Outcome::Deny(Deny::Unavailable)),
            own(Outcome::Deny(Deny::Unavailable), None, None)
        );
    }
    // a browser: nginx can't pass a redirect on, the others can
    let redirect = || Outcome::Redirect("/.portcullis/login?return_to=%2Fx".into());
    assert_eq!(
        ans(Nginx, redirect()),
        own(Outcome::Deny(Deny::Unauthenticated), None, Some(&login))
    );
    for c in [Forward, Envoy] {
        assert_eq!(
            ans(c, redirect()),
            own(Outcome::Redirect(login.clone()), None, None)
        );
    }
    // ambiguous readings: 400, but 403 for nginx (anything else is a 500)
    let amb = || Outcome::Ambiguous(Ambiguous::Path(Ambiguity::MalformedEscape));
    assert_eq!(ans(Nginx, amb()), own(amb(), Some(403), None));
    assert_eq!(ans(Forward, amb()), own(amb(), None, None));
    // enforcement: absolute login URL; never a redirect for nginx
    let refused = |browser| Outcome::LoginRefused {
        reason: LoginRefusal::ForwardAuth,
        login_url: "/.portcullis/login?use_sso=true".into(),
        browser,
    };
    let abs = "https://auth.example.com/.portcullis/login?use_sso=true";
    assert_eq!(
        ans(Nginx, refused(true)),
        own(
            Outcome::LoginRefused {
                reason: LoginRefusal::ForwardAuth,
                login_url: abs.into(),
                browser: false
            },
            // a refusal too large to inspect (413 elsewhere) too
            Some(403),
            Some(abs)
        )
    );
    assert_eq!(
        ans(Forward, refused(true)),
        own(
            Outcome::LoginRefused {
                reason: LoginRefusal::ForwardAuth,
                login_url: abs.into(),
                browser: true
            },
            None,
            None
        )
    );
    let sso = Outcome::SsoRequired {
        tenant: "acme".into(),
        login_url: "/.portcullis/login?use_sso=true".into(),
        browser: true,
    };
    assert_eq!(
        ans(Nginx, sso),
        own(
            Outcome::SsoRequired {
                tenant: "acme".into(),
                login_url: abs.into(),
                browser: false
            },
            None,
            Some(abs)
        )
    );
}

fn pairs(v: &[(HeaderName, HeaderValue)]) -> Vec<String> {
    v.iter()
        .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
        .collect()
}

#[test]
fn allow_names_every_identity_header_and_the_assertion() {
    let plan = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
    let a = alice();
    for c in [Convention::Nginx, Convention::Forward] {
        assert_eq!(
            pairs(&allow_headers(
                c,
                &plan,
                Some(&a),
                Some(HeaderValue::from_static("jwt"))
            )),
            [
                "x-forwarded-user=u1",
                "x-forwarded-email=alice@example.com",
                "x-forwarded-name=",
                "x-forwarded-groups=eng",
                "x-forwarded-roles=",
                "x-forwarded-tenant=acme",
                "x-forwarded-principal-type=user",
                "x-portcullis-assertion=jwt",
            ]
        );
        assert_eq!(
            pairs(&allow_headers(c, &plan, None, None)),
            [
                "x-forwarded-user=",
                "x-forwarded-email=",
                "x-forwarded-name=",
                "x-forwarded-groups=",
                "x-forwarded-roles=",
                "x-forwarded-tenant=",
                "x-forwarded-principal-type=",
                "x-portcullis-assertion=",
            ]
        );
    }
    assert_eq!(
        pairs(&allow_headers(
            Convention::Envoy,
            &plan,
            Some(&a),
            Some(HeaderValue::from_static("jwt"))
        )),
        [
            "x-forwarded-user=u1",
            "x-forwarded-email=alice@example.com",
            "x-forwarded-groups=eng",
            "x-forwarded-tenant=acme",
            "x-forwarded-principal-type=user",
            "x-portcullis-assertion=jwt",
            "x-envoy-auth-headers-to-remove=x-forwarded-name, x-forwarded-roles",
        ]
    );
    assert_eq!(
        pairs(&allow_headers(Convention::Envoy, &plan, None, None)),
        [
            "x-envoy-auth-headers-to-remove=x-forwarded-user, x-forwarded-email, x-forwarded-name, x-forwarded-groups, x-forwarded-roles, x-forwarded-tenant, x-forwarded-principal-type, x-portcullis-assertion"
        ]
    );
    // signing off: no assertion header at all
    let off = HeaderPlan::compile(&HeadersConfig {
        assertion_enabled: false,
        ..HeadersConfig::default()
    })
    .unwrap();
    assert_eq!(
        allow_headers(Convention::Forward, &off, None, None).len(),
        7
    );
}

/// An overlong description is refused, never canonicalised: real targets
/// stop near 8 KiB, and each reading costs work.
#[test]
fn overlong_targets_are_refused() {
    let long = format!("/{}", "a".repeat(MAX_TARGET));
    let fits = format!("/{}", "a".repeat(MAX_TARGET - 1));
    let forward = |uri: &str| {
        original(
            Convention::Forward,
            &Method::GET,
            "",
            None,
            &headers(&[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.com"),
                ("x-forwarded-uri", uri),
            ]),
            "https",
        )
    };
    assert_eq!(forward(&long), Err(Refusal::Malformed("x-forwarded-uri")));
    assert!(forward(&fits).is_ok());
    let url = format!("https://app.example.com{long}");
    assert_eq!(
        original(
            Convention::Nginx,
            &Method::GET,
            "",
            None,
            &headers(&[("x-original-method", "GET"), ("x-original-url", &url)]),
            "https",
        ),
        Err(Refusal::Malformed("x-original-url"))
    );
    assert_eq!(
        original(
            Convention::Envoy,
            &Method::GET,
            &long,
            None,
            &headers(&[("host", "app.example.com")]),
            "https",
        ),
        Err(Refusal::Malformed("path"))
    );
}

/// Scheme-relative and percent-encoded targets are origin-form paths to
/// canonicalise, never an authority: the host comes from the host proxy.
#[test]
fn scheme_relative_targets_are_paths_on_the_described_host() {
    let o = original(
        Convention::Forward,
        &Method::GET,
        "",
        None,
        &headers(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", "//evil.example/admin%2Fx?a=b"),
        ]),
        "https",
    )
    .unwrap();
    assert_eq!(o.path(), "//evil.example/admin%2Fx");
    assert_eq!(o.query(), Some("a=b"));
    assert_eq!(
        hosts(Convention::Forward, &o, &HeaderMap::new()),
        Ok(vec!["app.example.com".to_owned()])
    );
}

/// The hosts are read like a proxied request's: normalised, and for nginx
/// and Envoy every `X-Forwarded-Host` the app would also get counts.
#[test]
fn hosts_are_normalised_and_forwarded_hosts_count_where_the_app_sees_them() {
    let o = orig(Method::GET, "https", "App.Example.COM.:8443", "/x");
    let xfh = headers(&[("x-forwarded-host", "Admin.example.com")]);
    assert_eq!(
        hosts(Convention::Nginx, &o, &HeaderMap::new()),
        Ok(vec!["app.example.com".to_owned()])
    );
    for c in [Convention::Nginx, Convention::Envoy] {
        assert_eq!(
            hosts(c, &o, &xfh),
            Ok(vec![
                "app.example.com".to_owned(),
                "admin.example.com".to_owned()
            ]),
            "{c:?}"
        );
    }
    // in the forward convention X-Forwarded-Host is the description itself
    assert_eq!(
        hosts(Convention::Forward, &o, &xfh),
        Ok(vec!["app.example.com".to_owned()])
    );
    let bad = headers(&[("x-forwarded-host", "a b")]);
    assert_eq!(
        hosts(Convention::Nginx, &o, &bad),
        Err(crate::proxy::host::HostError::Malformed)
    );
    let userinfo = orig(Method::GET, "https", "user@app.example.com", "/x");
    assert_eq!(
        hosts(Convention::Forward, &userinfo, &HeaderMap::new()),
        Err(crate::proxy::host::HostError::Malformed)
    );
}

/// The body is seen only where the host proxy provably shows it (or that
/// there is none); everything else is `Unseen`, which refuses a
/// password-endpoint submission.
#[test]
fn the_body_is_seen_only_where_the_host_proxy_shows_it() {
    use crate::proxy::decide::BodySight::*;
    let none = HeaderMap::new();
    let sight = |c, fwd, h: &HeaderMap| body_sight(c, fwd, h);
    // nginx never sends it; X-Original-Body says whether there is one
    assert_eq!(sight(Convention::Nginx, false, &none), Ok(Unseen));
    let h = headers(&[("x-original-body", "none")]);
    assert_eq!(sight(Convention::Nginx, false, &h), Ok(Seen));
    let h = headers(&[("x-original-body", "present")]);
    assert_eq!(sight(Convention::Nginx, false, &h), Ok(Unseen));
    let h = headers(&[("x-original-body", "0")]);
    assert_eq!(
        sight(Convention::Nginx, false, &h),
        Err(Refusal::Malformed("x-original-body"))
    );
    let h = headers(&[("x-original-body", "none"), ("x-original-body", "none")]);
    assert_eq!(
        sight(Convention::Nginx, false, &h),
        Err(Refusal::Duplicate("x-original-body"))
    );
    // Caddy and Traefik without forwardBody: unseen, whatever is claimed
    let claims = headers(&[
        ("x-original-body", "none"),
        ("x-envoy-auth-partial-body", "false"),
    ]);
    assert_eq!(sight(Convention::Forward, false, &claims), Ok(Unseen));
    assert_eq!(sight(Convention::Envoy, false, &claims), Ok(Unseen));
    assert_eq!(sight(Convention::Forward, true, &none), Ok(Seen));
    // Envoy with_request_body: the header only comes with a body
    assert_eq!(sight(Convention::Envoy, true, &none), Ok(Seen));
    let h = headers(&[("x-envoy-auth-partial-body", "false")]);
    assert_eq!(sight(Convention::Envoy, true, &h), Ok(Seen));
    let h = headers(&[("x-envoy-auth-partial-body", "true")]);
    assert_eq!(sight(Convention::Envoy, true, &h), Ok(Partial));
    let h = headers(&[("x-envoy-auth-partial-body", "maybe")]);
    assert_eq!(
        sight(Convention::Envoy, true, &h),
        Err(Refusal::Malformed("x-envoy-auth-partial-body"))
    );
}

/// Step-up answers the way the login does: browsers go to the step-up
/// login (absolute, back to the original URL; nginx: a 401 naming it), API
/// clients get the RFC 9470 401 in every convention.
#[test]
fn step_up_per_convention() {
    use crate::proxy::gate::StepUpChallenge;
    use crate::proxy::routes::StepUp;
    let p = plan();
    let o = orig(Method::GET, "https", "app.example.com", "/admin?x=1");
    let ans = |c, outcome| answer(c, outcome, &o, &p, LOGIN, &returns());
    let need = StepUp {
        acr: vec!["mfa".into()],
        max_age: Some(600),
    };
    let challenge = |browser| {
        Outcome::StepUp(StepUpChallenge {
            need: need.clone(),
            return_to: "/admin?x=1".into(),
            browser,
        })
    };
    let to = "https://auth.example.com/.portcullis/step-up?return_to=https%3A%2F%2Fapp%2Eexample%2Ecom%2Fadmin%3Fx%3D1&acr_values=mfa&max_age=600";
    assert_eq!(
        ans(Convention::Nginx, challenge(true)),
        Answer::Own {
            outcome: Outcome::Deny(Deny::Unauthenticated),
            status: None,
            login: Some(to.into())
        }
    );
    for c in [Convention::Forward, Convention::Envoy] {
        assert_eq!(
            ans(c, challenge(true)),
            Answer::Own {
                outcome: Outcome::Redirect(to.into()),
                status: None,
                login: None
            }
        );
    }
    for c in [Convention::Nginx, Convention::Forward, Convention::Envoy] {
        assert_eq!(
            ans(c, challenge(false)),
            Answer::Own {
                outcome: challenge(false),
                status: None,
                login: None
            }
        );
    }
}
