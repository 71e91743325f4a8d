//! The pingora `ProxyHttp` implementation: route, gate, forward. Each phase
//! only translates; decisions live in `gate` and `routes`.

pub mod canon;
mod enforce;
mod forward;
pub mod gate;
pub mod host;
mod respond;
pub mod routes;
mod service;
mod state;

pub use service::{Ctx, PortcullisProxy};
pub use state::{ProxyState, StateError, Upstream};
