// PORTCULLIS PATCH: the published crate's own compiler warnings (unused
// imports, elided lifetimes) are silenced in this vendored copy, so that
// every build of Portcullis shows only Portcullis' warnings. No code change.
#![allow(warnings)]

pub mod attribute;
pub mod crypto;
pub mod idp;
pub mod key_info;
pub mod metadata;
pub mod schema;
pub mod service_provider;
pub mod signature;

pub mod traits;

#[macro_use]
extern crate derive_builder;
