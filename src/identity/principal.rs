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

impl Principal {
    /// Route membership: any listed group or any listed role admits; with
    /// both lists empty, any authenticated principal is admitted.
    pub fn is_member(&self, groups: &[String], roles: &[String]) -> bool {
        if groups.is_empty() && roles.is_empty() {
            return true;
        }
        groups.iter().any(|g| self.groups.contains(g))
            || roles.iter().any(|r| self.roles.contains(r))
    }
}
