//! Deploying it: the container image, the Kubernetes manifests and the host-proxy examples.

mod docker;
mod examples;
mod kubernetes;
