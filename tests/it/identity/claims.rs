//! Claim and attribute mapping to headers and the assertion.
