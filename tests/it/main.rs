//! One integration-test binary (linking is the slow part on 2 cores).

mod cli;
mod proxy;
mod store;
mod support;
