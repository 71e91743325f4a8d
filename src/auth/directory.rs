//! SCIM groups as session groups. A session records what the IdP asserted
//! at sign-in; what a request carries is composed from that record and the
//! directory as it is now ([`effective`], pure), whenever the session cache
//! is filled ([`DirectoryView`], the generation's implementation of
//! [`crate::session::Directory`]). A SCIM write drops exactly the cached
//! principals it may alter, on every replica, so the next request of an
//! existing session carries the new groups, roles, name and email, and
//! nothing needs a new login. Nothing is revoked here: a change that
//! removes access is decided by the gate on the next request.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::policy::map_roles;
use crate::config::{Config, GroupsSource, ScimGroupName, TenantConfig};
use crate::identity::{Principal, PrincipalKind};
use crate::session::Directory;
use crate::store::{DirectoryGroup, DirectoryUser, Store, StoreError};

/// A tenant's groups source: unset is `both` (without SCIM there are no
/// SCIM groups, so that is the IdP's).
pub fn groups_source(tenant: &TenantConfig) -> GroupsSource {
    tenant.groups_source.unwrap_or(GroupsSource::Both)
}

/// What a request carries for a session whose `recorded` principal holds
/// the IdP's groups. `scim` is the user as SCIM keeps them, `None` for a
/// user SCIM does not manage (JIT, invited, or a session minted by the
/// CLI): their principal is the record, unchanged.
///
/// For a SCIM-managed user, the groups follow `source`, the roles are the
/// login row's role plus every role `group_roles` maps those groups to,
/// and name and email are the login row's (SCIM keeps them current; a
/// missing name keeps the recorded one). The user id never changes.
pub fn effective(
    source: GroupsSource,
    recorded: Principal,
    scim: Option<&DirectoryUser>,
    tenant: &TenantConfig,
) -> Principal {
    let Some(user) = scim else {
        return recorded;
    };
    let directory = user
        .groups
        .iter()
        .map(|g| group_name(g, tenant.scim.group_name));
    let groups: Vec<String> = match source {
        GroupsSource::Idp => recorded.groups.clone(),
        GroupsSource::Scim => unique(directory.map(str::to_owned)),
        GroupsSource::Both => unique(
            recorded
                .groups
                .iter()
                .cloned()
                .chain(directory.map(str::to_owned)),
        ),
    };
    Principal {
        roles: map_roles(user.role.as_deref(), &groups, tenant),
        groups,
        email: user.email.clone(),
        name: user.name.clone().or(recorded.name),
        ..recorded
    }
}

/// The name a session carries for a SCIM group; a group without an
/// `externalId` goes by its `displayName`.
fn group_name(g: &DirectoryGroup, which: ScimGroupName) -> &str {
    match (which, &g.external_id) {
        (ScimGroupName::ExternalId, Some(id)) => id,
        _ => &g.name,
    }
}

/// In order, each once.
fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.filter(|g| seen.insert(g.clone())).collect()
}

/// The directory under one configuration generation: its tenants' groups
/// sources and group roles, over the store's SCIM tables.
pub struct DirectoryView {
    config: Arc<Config>,
    store: Store,
}

impl DirectoryView {
    pub fn new(config: Arc<Config>, store: Store) -> Self {
        Self { config, store }
    }
}

#[async_trait]
impl Directory for DirectoryView {
    async fn principal(&self, recorded: Principal) -> Result<Principal, StoreError> {
        // SCIM off: no writes keep the directory current, so the record is
        // what the IdP said and all there is.
        if !self.config.scim.enabled || recorded.kind != PrincipalKind::User {
            return Ok(recorded);
        }
        let Some(tenant) = recorded
            .tenant
            .as_deref()
            .and_then(|id| self.config.tenants.iter().find(|t| t.id == id))
        else {
            return Ok(recorded);
        };
        let user = self
            .store
            .directory()
            .user(&tenant.id, &recorded.user_id)
            .await?;
        Ok(effective(
            groups_source(tenant),
            recorded,
            user.as_ref(),
            tenant,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantConfig {
        let mut t: TenantConfig = toml::from_str("id = \"acme\"").unwrap();
        t.group_roles.insert("eng".into(), vec!["developer".into()]);
        t.group_roles
            .insert("sso-admins".into(), vec!["admin".into()]);
        t.group_roles
            .insert("0f3c-object-id".into(), vec!["auditor".into()]);
        t
    }

    fn recorded() -> Principal {
        Principal {
            user_id: "u-1".into(),
            email: "Alice@ACME.com".into(),
            name: Some("Alice (IdP)".into()),
            groups: vec!["sso-admins".into(), "eng".into()],
            roles: vec!["member".into(), "admin".into(), "developer".into()],
            tenant: Some("acme".into()),
            connection: Some("okta".into()),
            ..Principal::default()
        }
    }

    fn group(name: &str, external_id: Option<&str>) -> DirectoryGroup {
        DirectoryGroup {
            id: format!("id-{name}"),
            name: name.into(),
            external_id: external_id.map(str::to_owned),
        }
    }

    fn scim_user() -> DirectoryUser {
        DirectoryUser {
            email: "alice@acme.com".into(),
            name: Some("Alice Liddell".into()),
            role: Some("member".into()),
            active: true,
            groups: vec![
                group("eng", Some("0f3c-object-id")),
                group("platform", None),
            ],
        }
    }

    #[test]
    fn non_scim_sessions_are_unchanged() {
        for source in [GroupsSource::Idp, GroupsSource::Scim, GroupsSource::Both] {
            assert_eq!(effective(source, recorded(), None, &tenant()), recorded());
        }
    }

    #[test]
    fn effective_per_source() {
        let t = tenant();
        let user = scim_user();
        let p = |source| effective(source, recorded(), Some(&user), &t);

        let idp = p(GroupsSource::Idp);
        assert_eq!(idp.groups, ["sso-admins", "eng"]);
        assert_eq!(idp.roles, ["member", "admin", "developer"]);

        let scim = p(GroupsSource::Scim);
        assert_eq!(scim.groups, ["eng", "platform"]);
        // the IdP's sso-admins is gone, and with it its role
        assert_eq!(scim.roles, ["member", "developer"]);

        let both = p(GroupsSource::Both);
        // the IdP's first, then the directory's, each once
        assert_eq!(both.groups, ["sso-admins", "eng", "platform"]);
        assert_eq!(both.roles, ["member", "admin", "developer"]);

        for p in [idp, scim, both] {
            // name and email follow the directory; who it is does not move
            assert_eq!(p.email, "alice@acme.com");
            assert_eq!(p.name.as_deref(), Some("Alice Liddell"));
            assert_eq!(p.user_id, "u-1");
            assert_eq!(p.tenant.as_deref(), Some("acme"));
            assert_eq!(p.connection.as_deref(), Some("okta"));
        }
    }

    #[test]
    fn the_directory_role_and_a_missing_name() {
        let t = tenant();
        let user = DirectoryUser {
            name: None,
            role: None,
            groups: vec![],
            ..scim_user()
        };
        let p = effective(GroupsSource::Scim, recorded(), Some(&user), &t);
        assert!(p.groups.is_empty());
        // no role of its own in the directory: none from the record either
        assert!(p.roles.is_empty());
        assert_eq!(p.name.as_deref(), Some("Alice (IdP)"));
    }

    #[test]
    fn external_ids_name_groups_when_configured() {
        let mut t = tenant();
        t.scim.group_name = ScimGroupName::ExternalId;
        let p = effective(GroupsSource::Scim, recorded(), Some(&scim_user()), &t);
        // a group without an externalId keeps its displayName
        assert_eq!(p.groups, ["0f3c-object-id", "platform"]);
        assert_eq!(p.roles, ["member", "auditor"]);
    }

    #[test]
    fn unset_source_is_both() {
        assert_eq!(groups_source(&tenant()), GroupsSource::Both);
    }
}
