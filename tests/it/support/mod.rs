pub mod dns;
pub mod env;
pub mod idp;
pub mod postgres;
pub mod receiver;
pub mod saml;
pub mod scim;
