//! Deploying it: the container image, the Kubernetes manifests and the host-proxy examples
//! (nginx and Caddy run for real).

mod caddy;
mod docker;
mod examples;
mod kubernetes;
mod nginx;
