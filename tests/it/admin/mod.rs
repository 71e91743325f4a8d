//! Tenants kept in the store, merged with the file's; the admin API.

#[macro_use]
mod api;
mod audit;
mod egress;
mod onboard;
mod openapi;
mod portal;
mod reload;
mod replicas;
mod store;
mod tenants;
