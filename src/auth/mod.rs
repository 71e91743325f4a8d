//! Login orchestration: the connection boundary every protocol implements,
//! the flow cookie that binds a login to its browser, discovery (email →
//! verified domain → tenant → connections) and the policy that completes a
//! login into a session.

pub mod check;
pub mod claims;
pub mod connection;
pub mod directory;
pub mod discovery;
pub mod egress;
pub mod flow;
pub(crate) mod graph;
pub mod machine;
pub mod oidc;
pub(crate) mod platform;
pub mod policy;
pub mod saml;
pub mod step_up;
pub mod testlink;

pub use connection::{
    CallbackRequest, Connection, ConnectionError, ConnectionFactory, Factories, LoginStart,
    Overage, Registered, Registry, StartContext, Unbuilt, VerifiedLogin,
};
pub use discovery::{AuthContext, Discovery};
pub use flow::{FlowCodec, FlowState};
pub use machine::JwtRejection;
pub use policy::{
    DomainRouter, ForeignEmail, LoginFailure, Mode, complete, email_domain, map_roles,
    tenant_email_domain,
};
pub use step_up::{StepUpAsk, StepUpFlow};
pub use testlink::{TestLinks, TestTicket};
