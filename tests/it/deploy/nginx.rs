//! `examples/nginx/` run by the real nginx (`auth_request`) in front of
//! Portcullis in forward-auth mode and an app, all on loopback.

use crate::support::hostproxy::{
    Kind, client_identity_headers_never_reach_the_app, end_to_end, example_config_loads,
    password_endpoints_fail_closed,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_example_end_to_end() {
    end_to_end(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_example_never_passes_client_identity_headers() {
    client_identity_headers_never_reach_the_app(Kind::Nginx).await;
}

#[test]
fn nginx_example_portcullis_config_loads() {
    example_config_loads(Kind::Nginx);
}

/// nginx says whether a request has a body (`X-Original-Body`): the
/// login page passes, a login is refused (nginx never sends the body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_example_password_endpoints_fail_closed() {
    password_endpoints_fail_closed(Kind::Nginx, true).await;
}
