//! OIDC RP: flows and attacks, and interop with panva's oidc-provider.

mod flow;
pub(crate) mod interop;
mod step_up;
