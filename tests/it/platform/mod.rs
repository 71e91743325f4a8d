//! Pre-configured providers (Google, Microsoft, GitHub, Apple) against
//! fakes on loopback that speak each provider's documented shapes: a
//! happy path per provider, a refusal per rule, and tenants kept apart
//! when they share one provider.

mod apple;
mod github;
mod google;
mod microsoft;
mod tenants;
