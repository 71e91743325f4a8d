//! Tenants kept in the store, merged with the file's; the admin API.

mod api;
mod egress;
mod onboard;
mod openapi;
mod portal;
mod reload;
mod replicas;
mod store;
