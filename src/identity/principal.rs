use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A verified identity, as established by a session. The session record
/// keeps what the IdP asserted at sign-in; what a request sees is composed
/// from it when the session cache is filled (a SCIM-managed user's groups,
/// roles, name and email follow the directory), so two requests of one
/// session may carry different principals. Anything derived from a
/// principal (the signed assertion) is therefore cached per principal, not
/// per session.
///
/// `Default` lets each literal name only what it cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub tenant: Option<String>,
    pub connection: Option<String>,
    /// A person, or a machine caller.
    pub kind: PrincipalKind,
    /// IdP claims or attributes selected for headers and the assertion,
    /// keyed by the IdP's own name for them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Vec<String>>,
    /// How and when the IdP authenticated the user.
    pub auth: AuthFacts,
}

/// Who is behind a principal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A person signed in through SSO (or a session minted for one).
    #[default]
    User,
    /// A machine caller (service account or client-credentials token).
    Service,
}

impl PrincipalKind {
    /// The value of the principal-type header and the assertion's
    /// `principal_type` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
        }
    }
}

/// What the IdP said about the authentication itself: the context class
/// (OIDC `acr`, SAML `AuthnContextClassRef`), the methods (OIDC `amr`) and
/// the time (OIDC `auth_time`, SAML `AuthnInstant`, unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFacts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}
