//! Portcullis: a reverse-proxy authentication sidecar. See ARCHITECTURE in
//! the README for the module map; dependencies point down only.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domains;
pub mod endpoints;
pub mod events;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod proxy;
pub mod redirect;
pub mod scim;
pub mod secret;
pub mod session;
pub mod store;
pub mod webhook;
