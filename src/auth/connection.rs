//! The boundary every SSO protocol implements: start a login (a redirect
//! plus state bound to the browser) and finish one into a `VerifiedLogin`.
//! Everything after that — which emails a connection may assert, who may
//! enter, which roles they get — is policy, decided once in `policy.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConnectionConfig, Origin, Protocol, TenantConfig};
use crate::identity::AuthFacts;

/// What an IdP proved about a user, after the protocol verified signatures,
/// audience, replay and the like. `Default` lets each literal name only what
/// it cares about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifiedLogin {
    pub connection_id: String,
    /// The IdP's stable identifier for the user (SAML NameID, OIDC `sub`).
    pub subject: String,
    pub email: String,
    /// `None` where the protocol doesn't carry it (SAML); `Some(false)` is
    /// always refused.
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// The IdP's own id for this login session (SAML `SessionIndex`, OIDC
    /// `sid`), so its logout messages can name the session.
    pub idp_session: Option<String>,
    /// Protocol-private data for asking the IdP to log the user out later
    /// (OIDC: the ID token for `id_token_hint`; SAML: the NameID with its
    /// qualifiers). Stored server-side with the session, never in a cookie.
    pub logout_hint: Option<String>,
    /// Everything the IdP sent, for the test sign-in page and debugging.
    pub raw_claims: serde_json::Value,
    /// Every claim or attribute flattened to strings (objects as JSON
    /// text), for claim mapping: at most [`MAX_ATTRIBUTE_VALUES`] values
    /// per name and [`MAX_ATTRIBUTE_BYTES`] per value.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// How and when the IdP authenticated the user.
    pub auth: AuthFacts,
    /// The IdP said the user has more groups than it would put in the
    /// login (Entra's groups overage); `groups` is then incomplete.
    pub groups_overage: Option<Overage>,
}

/// Most values kept per attribute of [`VerifiedLogin::attributes`].
pub const MAX_ATTRIBUTE_VALUES: usize = 64;
/// Longest attribute value kept, in bytes.
pub const MAX_ATTRIBUTE_BYTES: usize = 1024;

/// A groups overage: where the complete list can be asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overage {
    /// The directory's object id of the user (Entra `oid`).
    pub object_id: Option<String>,
    /// The directory (Entra tenant id, `tid`) the user belongs to.
    pub directory_id: Option<String>,
}

/// Where to send the browser to start a login, and the protocol state to
/// keep in the encrypted flow cookie until the callback.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginStart {
    pub redirect_to: String,
    pub state: serde_json::Value,
}

/// What a connection gets when starting a login.
#[derive(Debug, Clone)]
pub struct StartContext {
    /// Opaque value the protocol must round-trip through the IdP (SAML
    /// RelayState, OIDC `state`); it names the flow cookie.
    pub relay: String,
    /// The email the user typed, passed on as a login hint.
    pub login_hint: Option<String>,
    /// Absolute URL of this connection's callback endpoint.
    pub callback_url: String,
    /// A step-up login: what to ask the IdP for (its own values). A
    /// protocol that can't ask refuses to start (`step_up_unsupported`).
    pub step_up: Option<super::step_up::StepUpAsk>,
}

/// The IdP's answer as it arrived at the callback endpoint.
#[derive(Debug, Clone, Default)]
pub struct CallbackRequest {
    pub method: String,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
}

impl CallbackRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .chain(self.query.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The relay value: OIDC `state` or SAML `RelayState`.
    pub fn relay(&self) -> Option<&str> {
        self.param("state").or_else(|| self.param("RelayState"))
    }
}

/// Why a protocol refused a response. `reason` is a short, closed label for
/// metrics (`signature`, `state_mismatch`, `expired`, …); `detail` goes to the
/// log only, never to the browser.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct ConnectionError {
    pub reason: &'static str,
    pub detail: String,
}

impl ConnectionError {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// One configured SSO connection.
#[async_trait]
pub trait Connection: Send + Sync {
    fn id(&self) -> &str;
    async fn start(&self, ctx: &StartContext) -> Result<LoginStart, ConnectionError>;
    /// Verifies the IdP's response against the state saved at `start`.
    async fn finish(
        &self,
        req: &CallbackRequest,
        state: &serde_json::Value,
    ) -> Result<VerifiedLogin, ConnectionError>;
    /// The SAML connection behind this one, for the SAML-only endpoints
    /// (IdP-initiated login, single logout).
    fn saml(&self) -> Option<&super::saml::SamlConnection> {
        None
    }

    /// RP/SP-initiated logout: where to send the browser once its local
    /// session has ended, so the IdP ends its own session too. `None`:
    /// the protocol (or connection) has no such endpoint.
    async fn logout_redirect(&self, _idp: &crate::store::IdpBinding) -> Option<String> {
        None
    }

    /// Back-channel logout: verifies a logout token from the IdP and
    /// returns the `(subject, session)` it names.
    async fn backchannel_logout(
        &self,
        _token: &str,
    ) -> Result<(Option<String>, Option<String>), ConnectionError> {
        Err(ConnectionError::new(
            "unsupported",
            "this connection has no back-channel logout",
        ))
    }

    /// Machine access: verifies a client-credentials access token issued
    /// for this connection's `machine_audience` and returns its claims.
    async fn machine_token(
        &self,
        _token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ConnectionError> {
        Err(ConnectionError::new(
            "unsupported",
            "this connection takes no machine tokens",
        ))
    }
}

/// Builds connections of one protocol from configuration.
pub trait ConnectionFactory: Send + Sync {
    fn build(
        &self,
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
    ) -> Result<Arc<dyn Connection>, ConnectionError>;
}

/// Factories per protocol. A protocol without one makes a configured
/// connection of that protocol a clear startup error rather than a login
/// button that can't work.
#[derive(Clone, Default)]
pub struct Factories {
    pub saml: Option<Arc<dyn ConnectionFactory>>,
    pub oidc: Option<Arc<dyn ConnectionFactory>>,
    /// Pre-configured providers (`platform = "…"`).
    pub platform: Option<Arc<dyn ConnectionFactory>>,
    /// Use the built-in SAML implementation when `saml` is `None`. It needs
    /// the store and the public URL, so the app creates it per generation.
    pub builtin_saml: bool,
    /// Likewise for OIDC when `oidc` is `None`.
    pub builtin_oidc: bool,
    /// Likewise for the pre-configured providers when `platform` is `None`.
    pub builtin_platform: bool,
    /// The monotonic clock of the built-in implementations' intervals
    /// (system by default; tests pass a manual one).
    pub clock: crate::clock::Clock,
}

impl Factories {
    /// What `portcullis` runs with: the built-in protocols.
    pub fn builtin() -> Self {
        Self {
            builtin_saml: true,
            builtin_oidc: true,
            builtin_platform: true,
            ..Self::default()
        }
    }
}

/// A configured connection with its tenant.
#[derive(Clone)]
pub struct Registered {
    pub tenant: String,
    pub config: ConnectionConfig,
    pub connection: Arc<dyn Connection>,
}

impl Registered {
    pub fn display_name(&self) -> &str {
        self.config
            .display_name
            .as_deref()
            .or(self.config.platform.map(|p| p.display_name()))
            .unwrap_or(&self.config.id)
    }
}

/// All connections of one configuration generation.
#[derive(Clone, Default)]
pub struct Registry {
    by_id: HashMap<String, Registered>,
}

/// A tenant kept in the store whose connections could not be built: it is
/// left out of its generation (not served) while every other tenant is.
#[derive(Debug, Clone)]
pub struct Unbuilt {
    pub tenant: String,
    /// The connection that failed.
    pub connection: String,
    pub error: ConnectionError,
}

impl Registry {
    /// Builds every tenant's connections. A file tenant's failure fails the
    /// build (start and reload refuse the file, as `check` would); a store
    /// tenant's failure leaves out that tenant alone, returned in the
    /// second list, so one bad document from the admin API can never stop
    /// the other tenants on every replica.
    pub fn build(
        tenants: &[TenantConfig],
        factories: &Factories,
    ) -> Result<(Self, Vec<Unbuilt>), ConnectionError> {
        let mut by_id = HashMap::new();
        let mut unbuilt = Vec::new();
        for t in tenants {
            match Self::build_tenant(t, factories) {
                Ok(list) => by_id.extend(list),
                Err((conn, error)) if t.origin == Origin::Store => unbuilt.push(Unbuilt {
                    tenant: t.id.clone(),
                    connection: conn,
                    error,
                }),
                Err((_, error)) => return Err(error),
            }
        }
        Ok((Self { by_id }, unbuilt))
    }

    /// One tenant's connections, or the first that failed with why.
    fn build_tenant(
        t: &TenantConfig,
        factories: &Factories,
    ) -> Result<Vec<(String, Registered)>, (String, ConnectionError)> {
        t.connections
            .iter()
            .map(|c| {
                let factory = match (c.platform, c.protocol) {
                    (Some(_), _) => factories.platform.as_ref(),
                    (None, Some(Protocol::Saml)) => factories.saml.as_ref(),
                    (None, Some(Protocol::Oidc)) => factories.oidc.as_ref(),
                    (None, None) => None,
                };
                let factory = factory.ok_or_else(|| {
                    ConnectionError::new(
                        "unsupported",
                        format!(
                            "connection `{}`: {} is not available in this build",
                            c.id,
                            c.kind()
                                .map_or("no protocol", crate::config::ConnectionKind::label)
                        ),
                    )
                });
                let connection = factory
                    .and_then(|f| f.build(t, c))
                    .map_err(|e| (c.id.clone(), e))?;
                Ok((
                    c.id.clone(),
                    Registered {
                        tenant: t.id.clone(),
                        config: c.clone(),
                        connection,
                    },
                ))
            })
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<&Registered> {
        self.by_id.get(id)
    }

    /// A tenant's connections in configuration order.
    pub fn for_tenant<'a>(&'a self, tenant: &'a TenantConfig) -> Vec<&'a Registered> {
        tenant
            .connections
            .iter()
            .filter_map(|c| self.by_id.get(&c.id))
            .collect()
    }
}
