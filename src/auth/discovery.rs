//! Email → verified domain → tenant → connections, and the state a
//! configuration generation needs for logins.

use std::collections::HashMap;
use std::sync::Arc;

use super::connection::{ConnectionError, Factories, Registered, Registry, Unbuilt};
use super::flow::FlowCodec;
use super::policy::{DomainRouter, email_domain};
use crate::config::{Config, PublicUrls, TenantConfig};

/// Where an email leads.
#[derive(Clone)]
pub enum Discovery {
    /// Not an email address.
    Invalid,
    /// No tenant has verified this domain (unknown, pending or lapsed).
    Unrouted { domain: String },
    /// The tenant exists but has no connection yet.
    NoConnections { tenant: String },
    Connections {
        tenant: String,
        list: Vec<Registered>,
    },
}

/// Login state of one configuration generation.
pub struct AuthContext {
    pub registry: Registry,
    pub flow: FlowCodec,
    pub domains: Arc<dyn DomainRouter>,
    tenants: HashMap<String, TenantConfig>,
    /// The development IdP, with `[dev_idp]`.
    pub dev_idp: Option<Arc<crate::auth::saml::dev_idp::DevIdp>>,
    /// Where this generation's endpoints are published.
    pub urls: PublicUrls,
    /// The connections that take machine tokens.
    pub(crate) machine: super::machine::MachineIndex,
    /// Store tenants left out because a connection could not be built.
    pub unbuilt: Vec<Unbuilt>,
}

impl AuthContext {
    pub fn build(
        cfg: &Config,
        factories: &Factories,
        domains: Arc<dyn DomainRouter>,
    ) -> Result<Self, ConnectionError> {
        let (registry, unbuilt) = Registry::build(&cfg.tenants, factories)?;
        let served = cfg.without_tenants(unbuilt.iter().map(|u| u.tenant.as_str()));
        Ok(Self {
            registry,
            flow: FlowCodec::new(&cfg.session, &cfg.public_urls()),
            domains,
            tenants: served
                .tenants
                .iter()
                .map(|t| (t.id.clone(), t.clone()))
                .collect(),
            dev_idp: None,
            urls: cfg.public_urls(),
            machine: super::machine::MachineIndex::build(&served),
            unbuilt,
        })
    }

    pub fn tenant(&self, id: &str) -> Option<&TenantConfig> {
        self.tenants.get(id)
    }

    /// The tenant a domain routes to: verified in the store *and* still
    /// listed for that tenant in the configuration (removing a domain from
    /// the file stops routing even before `domains remove`).
    pub async fn routed_tenant(&self, domain: &str) -> Result<Option<&TenantConfig>, String> {
        let Some(id) = self.domains.verified_tenant(domain).await? else {
            return Ok(None);
        };
        Ok(self
            .tenants
            .get(&id)
            .filter(|t| t.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))))
    }

    /// Routes an email. A lookup failure in the store reads as "unrouted":
    /// the login page must not leak internal errors (it's logged).
    pub async fn discover(&self, email: &str) -> Discovery {
        let Some(domain) = email_domain(email.trim()) else {
            return Discovery::Invalid;
        };
        let tc = match self.routed_tenant(&domain).await {
            Ok(Some(t)) => t,
            Ok(None) => return Discovery::Unrouted { domain },
            Err(e) => {
                tracing::error!(error = %e, "domain lookup failed during discovery");
                return Discovery::Unrouted { domain };
            }
        };
        let tenant = tc.id.clone();
        let list: Vec<Registered> = self.registry.for_tenant(tc).into_iter().cloned().collect();
        if list.is_empty() {
            Discovery::NoConnections { tenant }
        } else {
            Discovery::Connections { tenant, list }
        }
    }
}
