//! The proxy path: forwarding, the gate against every request shape, limits, TLS,
//! several upstreams.

mod admission;
mod buffers;
mod exchange;
mod forward_auth;
mod forwarding;
mod framing;
mod gate;
mod keepalive;
mod limits;
mod pool;
mod timeouts;
mod tls;
mod upstreams;
mod wire;
