//! The per-request auth work: open the session cookie, look the session up
//! in the cache, plan the identity headers and fetch the (cached) assertion.
//!
//! Machines here are noisy, so the figure that matters is the ratio against
//! `baseline/clone_request_headers` — copying a typical request's header map,
//! which any proxy does per request anyway — measured in the same run.

// A benchmark is a harness like a test: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use portcullis::config::{HeadersConfig, SessionConfig};
use portcullis::identity::{AssertionSigner, HeaderPlan, Principal, generate_signing_key};
use portcullis::metrics::Metrics;
use portcullis::session::{CookieCodec, Lookup, Sessions};
use portcullis::store::Store;

fn typical_headers(cookie: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "app.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", "https://app.example.com/dashboard"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "same-origin"),
        ("upgrade-insecure-requests", "1"),
        ("x-forwarded-user", "spoofed"),
        ("connection", "keep-alive"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h.insert(
        "cookie",
        HeaderValue::from_str(&format!("_ga=GA1.2.3; theme=dark; {cookie}")).unwrap(),
    );
    h
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = {
        use std::os::unix::fs::PermissionsExt;
        // The store refuses a directory others can read.
        tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
    }
    .unwrap();
    let store = rt
        .block_on(Store::open(&format!(
            "sqlite://{}/bench.db",
            dir.path().display()
        )))
        .unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let sessions = Sessions::new(store, 10_000, Duration::from_secs(300), metrics);
    let cfg = SessionConfig {
        keys: vec!["bench-key-0123456789-0123456789-0123456789".into()],
        ..SessionConfig::default()
    };
    let codec = CookieCodec::new(&cfg).unwrap();
    let plan = HeaderPlan::compile(&HeadersConfig::default()).unwrap();
    let signer = AssertionSigner::new(
        &generate_signing_key().unwrap(),
        "https://app.example.com",
        "app",
        60,
    )
    .unwrap();
    let principal = Principal {
        user_id: "00u1a2b3c4d5e6f7g8h9".into(),
        email: "alice@example.com".into(),
        name: Some("Alice Example".into()),
        groups: (0..20).map(|i| format!("group-{i}")).collect(),
        roles: vec!["member".into()],
        tenant: Some("acme".into()),
        connection: Some("acme-okta".into()),
        ..Principal::default()
    };
    let now = portcullis::clock::now();
    let token = rt
        .block_on(sessions.create(&principal, None, 3600, now))
        .unwrap();
    let set_cookie = codec.seal(&token, now);
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let headers = typical_headers(&cookie);

    let mut g = c.benchmark_group("hot_path");
    g.bench_function("baseline/clone_request_headers", |b| {
        b.iter(|| std::hint::black_box(headers.clone()))
    });
    g.bench_function("cookie_open", |b| {
        b.iter(|| {
            codec
                .open(
                    headers.get_all("cookie").iter().map(|v| v.as_bytes()),
                    &mut None,
                )
                .unwrap()
                .unwrap()
        })
    });
    // The same cookie again on a kept-alive connection (`CookieMemo`).
    let mut memo = None;
    g.bench_function("cookie_open_remembered", |b| {
        b.iter(|| {
            codec
                .open(
                    headers.get_all("cookie").iter().map(|v| v.as_bytes()),
                    &mut memo,
                )
                .unwrap()
                .unwrap()
        })
    });
    g.bench_function("header_plan", |b| {
        b.iter(|| {
            (
                plan.headers_to_strip(&headers, false),
                plan.values(&principal),
            )
        })
    });
    // The proxy holds the session's principal in an `Arc` and the
    // session its assertion slot; the bench passes the same ones every time.
    let shared = std::sync::Arc::new(principal.clone());
    let slot = portcullis::identity::AssertionSlot::default();
    g.bench_function("assertion_cached", |b| {
        b.iter(|| signer.assertion_in(&slot, &shared, now).unwrap())
    });
    g.bench_function("assertion_sign_uncached", |b| {
        b.iter(|| signer.sign(&principal, now).unwrap())
    });
    g.bench_function("full_gate", |b| {
        b.to_async(&rt).iter(|| async {
            let opened = codec
                .open(
                    headers.get_all("cookie").iter().map(|v| v.as_bytes()),
                    &mut None,
                )
                .unwrap()
                .unwrap();
            let Lookup::Active(s) = sessions.resolve(&opened, now, 3600).await.unwrap() else {
                panic!("session")
            };
            let strip = plan.headers_to_strip(&headers, false);
            let values = plan.values(&s.principal);
            let a = signer
                .assertion_in(&s.assertion, &s.principal, now)
                .unwrap();
            (strip, values, a)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
