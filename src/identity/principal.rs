use serde::Serialize;

/// A verified identity, as established by a session. Immutable for the life
/// of the session: a change at the IdP (or SCIM) ends the session rather than
/// mutating it, so a cached assertion can never describe stale rights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub tenant: Option<String>,
    pub connection: Option<String>,
}
