//! The store: both backends, outages, replicas sharing PostgreSQL, secrets at rest.

mod backends;
mod outage;
mod replicas;
mod secrets;
