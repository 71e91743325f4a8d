//! SAML SP: flows, the attack corpus, encryption, hardening, pysaml2 interop, metadata URLs, single logout.

mod corpus;
mod encrypted;
mod flow;
mod hardening;
pub(crate) mod interop;
mod metadata_url;
mod slo;
mod step_up;
