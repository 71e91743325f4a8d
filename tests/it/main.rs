//! One integration-test binary (linking is the slow part on 2 cores).

mod browser;
mod cli;
mod demo;
mod dev_idp;
mod domains;
mod oidc;
mod oidc_interop;
mod proxy;
mod replicas;
mod saml;
mod saml_corpus;
mod saml_encrypted;
mod saml_interop;
mod saml_metadata_url;
mod saml_slo;
mod scim;
mod scim_deprovision;
mod scim_replay;
mod scim_tester;
mod sso;
mod store;
mod store_outage;
mod support;
mod tls;
mod webhooks;
