//! The pingora `ProxyHttp` implementation: canonicalise, decide, translate.
//! Each phase only gathers facts and translates; decisions live in `gate`
//! (and `routes`, `ratelimit`), pure and tested without sockets.

mod admission;
mod bearer;
mod body;
pub mod canon;
mod conn;
mod ctx;
mod decide;
mod enforce;
mod forward;
mod forward_auth;
pub mod gate;
pub mod host;
mod mount;
pub mod ratelimit;
mod respond;
pub mod routes;
mod service;
mod state;

pub use admission::Admission;
pub use conn::{ConnectionLimit, HeaderDeadline};
pub use ctx::Ctx;
pub use mount::{Mount, ScimMount};
pub use service::PortcullisProxy;
pub use state::{ProxyState, StateError, Upstream};
