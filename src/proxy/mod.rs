//! The pingora `ProxyHttp` implementation: route, gate, forward. Each phase
//! only translates; decisions live in `gate` and `routes`.

mod body;
pub mod canon;
mod conn;
mod enforce;
mod forward;
pub mod gate;
pub mod host;
mod mount;
pub mod ratelimit;
mod respond;
pub mod routes;
mod service;
mod state;

pub use conn::{ConnectionLimit, HeaderDeadline};
pub use mount::{Mount, ScimMount};
pub use service::{Ctx, PortcullisProxy};
pub use state::{ProxyState, StateError, Upstream};
