//! One integration-test binary (linking is the slow part on 2 cores).

// Helpers outside `#[test]` functions are test code too: a failed setup
// step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod deploy;
mod login;
mod oidc;
mod ops;
mod proxy;
mod saml;
mod scim;
mod store;
mod support;
