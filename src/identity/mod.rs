//! Who a request belongs to, and how that is told to the upstream app:
//! plain identity headers plus a signed, short-lived JWT assertion.

mod assertion;
mod headers;
mod principal;

pub use assertion::{AssertionError, AssertionSigner, AssertionSlot, generate_signing_key};
pub use headers::HeaderPlan;
pub use principal::{AuthFacts, Principal, PrincipalKind};
