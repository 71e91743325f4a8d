//! Tenants kept in the store, merged with the file's; the admin API.

mod reload;
mod store;
