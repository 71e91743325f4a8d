pub mod env;
pub mod postgres;
