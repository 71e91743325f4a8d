use super::*;

fn rate(max: u32, window_seconds: u64) -> Rate {
    Rate {
        max,
        window_seconds,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_window_allows_max_then_refuses_until_it_ends() {
    let t0 = Instant::now();
    let r = rate(3, 60);
    let mut w = None;
    for i in 0..3 {
        let (next, d) = count(w, r, t0 + secs(i));
        assert_eq!(d, Decision::Allow, "event {i}");
        w = Some(next);
    }
    let (next, d) = count(w, r, t0 + secs(10));
    assert_eq!(
        d,
        Decision::Limited {
            retry_after: secs(50)
        }
    );
    // Refused events still count: hammering doesn't earn an earlier reset.
    assert_eq!(next.count, 4);
    assert_eq!(next.start, t0);
    let (_, d) = count(Some(next), r, t0 + secs(59));
    assert_eq!(d.retry_after_seconds(), 1);
    // The window is over: a fresh one starts with this event.
    let (fresh, d) = count(Some(next), r, t0 + secs(60));
    assert_eq!(d, Decision::Allow);
    assert_eq!((fresh.start, fresh.count), (t0 + secs(60), 1));
}

#[test]
fn check_counts_nothing_and_refuses_once_at_the_limit() {
    let t0 = Instant::now();
    let r = rate(2, 30);
    assert_eq!(check(None, r, t0), Decision::Allow);
    let (w1, _) = count(None, r, t0);
    assert_eq!(check(Some(w1), r, t0 + secs(1)), Decision::Allow);
    let (w2, d) = count(Some(w1), r, t0 + secs(1));
    assert_eq!(d, Decision::Allow, "the max-th failure itself is allowed");
    assert_eq!(
        check(Some(w2), r, t0 + secs(5)),
        Decision::Limited {
            retry_after: secs(25)
        }
    );
    assert_eq!(check(Some(w2), r, t0 + secs(30)), Decision::Allow);
}

#[test]
fn retry_after_rounds_up_and_is_never_zero() {
    let d = |ms| Decision::Limited {
        retry_after: Duration::from_millis(ms),
    };
    assert_eq!(d(0).retry_after_seconds(), 1);
    assert_eq!(d(1).retry_after_seconds(), 1);
    assert_eq!(d(1000).retry_after_seconds(), 1);
    assert_eq!(d(1001).retry_after_seconds(), 2);
    assert_eq!(Decision::Allow.retry_after_seconds(), 0);
}

#[test]
fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
    let k = |s: &str| ClientKey::from(s.parse::<IpAddr>().unwrap());
    assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
    assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
    assert_eq!(k("::ffff:192.0.2.7"), k("192.0.2.7"));
    assert_ne!(k("192.0.2.7"), k("192.0.2.8"));
    // The loopback and an all-zero IPv4 address are different clients.
    assert_ne!(k("::1"), k("0.0.0.0"));
}

#[test]
fn the_client_is_the_peer_unless_forwarded_headers_are_trusted() {
    let peer: IpAddr = "10.0.0.9".parse().unwrap();
    let mut h = HeaderMap::new();
    h.append("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
    h.append("x-forwarded-for", "6.6.6.6, 203.0.113.5".parse().unwrap());
    assert_eq!(client_ip(Some(peer), &h, false), Some(peer));
    // Right-most entry of the last header: what the trusted balancer added.
    assert_eq!(
        client_ip(Some(peer), &h, true),
        Some("203.0.113.5".parse().unwrap())
    );
    for (v, want) in [
        ("198.51.100.1:4431", "198.51.100.1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("unknown", "10.0.0.9"),
        ("", "10.0.0.9"),
    ] {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        assert_eq!(
            client_ip(Some(peer), &h, true),
            Some(want.parse().unwrap()),
            "{v}"
        );
    }
    assert_eq!(client_ip(Some(peer), &HeaderMap::new(), true), Some(peer));
}

#[test]
fn internal_endpoints_map_to_their_limits() {
    let p = "/.portcullis";
    let l = |m: Method, path: &str| internal_limit(p, &m, path);
    assert_eq!(
        l(Method::POST, "/.portcullis/login"),
        Some(Limit::LoginStart)
    );
    assert_eq!(l(Method::GET, "/.portcullis/login"), None);
    assert_eq!(
        l(Method::GET, "/.portcullis/sso/acme-saml/start"),
        Some(Limit::LoginStart)
    );
    assert_eq!(
        l(Method::GET, "/.portcullis//SSO/acme-saml/Start/"),
        Some(Limit::LoginStart)
    );
    for path in [
        "/.portcullis/saml/acme-saml/acs",
        "/.portcullis/sso/acme/callback",
        "/.portcullis/oidc/acme/callback",
        "/.portcullis/platform/google/callback",
        "/.portcullis/Platform/apple/callback/",
    ] {
        assert_eq!(l(Method::POST, path), Some(Limit::LoginCallback), "{path}");
        assert_eq!(l(Method::GET, path), Some(Limit::LoginCallback), "{path}");
    }
    assert_eq!(
        l(Method::GET, "/.portcullis/setup/psl_0123_abcd"),
        Some(Limit::LoginStart)
    );
    for path in [
        "/.portcullis/setup/domains",
        "/.portcullis/setup",
        "/.portcullis/admin/sso",
        "/.portcullis/logout",
        "/.portcullis/jwks.json",
        "/.portcullis/saml/acme-saml/metadata",
        "/.portcullis/sso/acme/start/extra",
        "/login",
    ] {
        assert_eq!(l(Method::POST, path), None, "{path}");
    }
}

fn cfg(max: u32, window_seconds: u64) -> RateLimitsConfig {
    RateLimitsConfig {
        login_start: rate(max, window_seconds),
        login_callback: rate(max, window_seconds),
        scim_auth_failure: rate(max, window_seconds),
        max_tracked_clients: 1024,
    }
}

#[test]
fn the_limiter_keeps_clients_and_limits_apart_and_resets_with_time() {
    let limiter = RateLimiter::new(1024);
    let clock = Arc::new(ManualClock::default());
    limiter.set_clock(clock.clone());
    let c = cfg(2, 10);
    let a = Some("192.0.2.1".parse().unwrap());
    let b = Some("192.0.2.2".parse().unwrap());
    assert_eq!(limiter.hit(&c, Limit::LoginStart, a), Decision::Allow);
    assert_eq!(limiter.hit(&c, Limit::LoginStart, a), Decision::Allow);
    assert_eq!(
        limiter.hit(&c, Limit::LoginStart, a),
        Decision::Limited {
            retry_after: secs(10)
        }
    );
    assert_eq!(limiter.hit(&c, Limit::LoginStart, b), Decision::Allow);
    assert_eq!(limiter.hit(&c, Limit::LoginCallback, a), Decision::Allow);
    clock.advance(secs(4));
    assert_eq!(
        limiter.hit(&c, Limit::LoginStart, a).retry_after_seconds(),
        6
    );
    clock.advance(secs(6));
    assert_eq!(limiter.hit(&c, Limit::LoginStart, a), Decision::Allow);
    // No address (a Unix socket): nothing to count by.
    for _ in 0..5 {
        assert_eq!(limiter.hit(&c, Limit::LoginStart, None), Decision::Allow);
    }
    // max = 0 turns a limit off.
    let off = cfg(0, 10);
    for _ in 0..5 {
        assert_eq!(limiter.hit(&off, Limit::LoginStart, b), Decision::Allow);
    }
}

#[test]
fn scim_failures_are_counted_apart_from_the_check() {
    let limiter = RateLimiter::new(1024);
    let clock = Arc::new(ManualClock::default());
    limiter.set_clock(clock.clone());
    let c = cfg(2, 60);
    let ip = Some("2001:db8::7".parse().unwrap());
    let l = Limit::ScimAuthFailure;
    for _ in 0..10 {
        assert_eq!(
            limiter.check(&c, l, ip),
            Decision::Allow,
            "checks count nothing"
        );
    }
    limiter.record(&c, l, ip);
    assert_eq!(limiter.check(&c, l, ip), Decision::Allow);
    limiter.record(&c, l, ip);
    assert_eq!(limiter.check(&c, l, ip).retry_after_seconds(), 60);
    // Same /64, another address: the same client.
    let neighbour = Some("2001:db8::8".parse().unwrap());
    assert_ne!(limiter.check(&c, l, neighbour), Decision::Allow);
    clock.advance(secs(60));
    assert_eq!(limiter.check(&c, l, ip), Decision::Allow);
}

#[test]
fn memory_is_bounded_whatever_the_number_of_addresses() {
    let limiter = RateLimiter::new(1024);
    let c = cfg(5, 600);
    for i in 0..20_000u32 {
        let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
        let _ = limiter.hit(&c, Limit::LoginStart, Some(ip));
    }
    limiter.windows.run_pending_tasks();
    assert!(
        limiter.windows.entry_count() <= 1024,
        "{}",
        limiter.windows.entry_count()
    );
}
