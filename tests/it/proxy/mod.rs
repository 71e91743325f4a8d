//! The proxy path: forwarding, the gate against every request shape, limits, TLS.

mod forward_auth;
mod forwarding;
mod gate;
mod limits;
mod tls;
