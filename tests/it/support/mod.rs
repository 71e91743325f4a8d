pub mod dns;
pub mod env;
pub mod idp;
pub mod postgres;
pub mod pysaml2;
pub mod saml;
