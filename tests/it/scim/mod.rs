//! The SCIM server: the protocol by RFC section, deprovisioning, domains, tenant isolation, recorded IdP sequences, scim2-tester, and the webhooks its writes produce.

mod deprovision;
mod domains;
mod isolation;
mod protocol;
mod replay;
mod tester;
mod webhooks;
