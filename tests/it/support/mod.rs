pub mod dns;
pub mod env;
pub mod postgres;
