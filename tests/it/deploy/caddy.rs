//! `examples/caddy/` run by the real Caddy (`forward_auth`) in front of
//! Portcullis in forward-auth mode and an app, all on loopback.

use crate::support::env::{client, echo};
use crate::support::hostproxy::{
    Deployment, Kind, client_identity_headers_never_reach_the_app, end_to_end,
    example_config_loads, identity_seen, password_endpoints_fail_closed,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_example_end_to_end() {
    end_to_end(Kind::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_example_never_passes_client_identity_headers() {
    client_identity_headers_never_reach_the_app(Kind::Caddy).await;
}

#[test]
fn caddy_example_portcullis_config_loads() {
    example_config_loads(Kind::Caddy);
}

/// The negative control of the test above: the example without its
/// `request_header` lines lets a client's `X_Forwarded_Email` through to
/// the app (Caddy overwrites only the names `copy_headers` lists), so the
/// check there would catch a broken example.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_without_the_strip_lines_leaks_a_client_header() {
    let d = Deployment::start_edited(Kind::Caddy, |example| {
        let kept: Vec<&str> = example
            .lines()
            .filter(|l| !l.trim_start().starts_with("request_header"))
            .collect();
        assert!(
            kept.len() < example.lines().count(),
            "no strip lines left to remove"
        );
        kept.join("\n")
    })
    .await;
    let (status, app) = echo(
        client()
            .get(d.url("/public/x"))
            .header("X_Forwarded_Email", "mallory@evil.example"),
    )
    .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(
        identity_seen(&app)
            .get("x-forwarded-email")
            .map(Vec::as_slice),
        Some(&["mallory@evil.example".to_owned()][..]),
        "{app}"
    );
}

/// Caddy neither sends the body nor says whether there is one: every
/// request to a password endpoint is refused, the login page too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_example_password_endpoints_fail_closed() {
    password_endpoints_fail_closed(Kind::Caddy, false).await;
}
