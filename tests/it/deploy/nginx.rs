//! `examples/nginx/` run by the real nginx (`auth_request`) in front of
//! Portcullis in forward-auth mode and an app, all on loopback.

use crate::support::hostproxy::{
    Kind, client_identity_headers_never_reach_the_app, end_to_end, example_config_loads,
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
