//! Identity from the directory and the IdP: SCIM groups in sessions, claim
//! mapping, groups overage, machine callers, step-up.

mod claims;
mod directory;
mod machine;
mod overage;
mod step_up;
