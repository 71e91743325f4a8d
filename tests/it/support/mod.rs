pub mod dns;
pub mod env;
pub mod idp;
pub mod oidc_op;
pub mod oidc_rp;
pub mod postgres;
pub mod pysaml2;
pub mod saml;
