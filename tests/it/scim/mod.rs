//! The SCIM server: the protocol by RFC section, conformance points strict clients rely on and declared schema extensions, deprovisioning, domains, tenant isolation, recorded IdP sequences, scim2-tester, and the webhooks its writes produce.

mod conformance;
mod deprovision;
mod domains;
mod isolation;
mod protocol;
mod replay;
mod tester;
mod webhooks;
