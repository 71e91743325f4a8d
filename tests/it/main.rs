//! One integration-test binary (linking is the slow part on 2 cores).

// Helpers outside `#[test]` functions are test code too: a failed setup
// step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod architecture;
mod browser;
mod cli;
mod demo;
mod dev_idp;
mod domains;
mod enforce;
mod gate;
mod limits;
mod logout;
mod oidc;
mod oidc_interop;
mod proxy;
mod replicas;
mod saml;
mod saml_corpus;
mod saml_encrypted;
mod saml_hardening;
mod saml_interop;
mod saml_metadata_url;
mod saml_slo;
mod scim;
mod scim_deprovision;
mod scim_domains;
mod scim_isolation;
mod scim_replay;
mod scim_tester;
mod secrets;
mod sso;
mod store;
mod store_outage;
mod support;
mod tls;
mod webhooks;
