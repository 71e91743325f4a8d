//! Attribute names per IdP, as data. Each preset lists, per claim, the
//! attribute names that IdP uses (first match wins); a connection's own
//! `*_attribute` settings replace a preset's list for that claim.

use crate::config::SamlConfig;

use super::claims::AttributeMap;

const ENTRA_EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
const ENTRA_NAME: &str = "http://schemas.microsoft.com/identity/claims/displayname";
const ENTRA_GIVEN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname";
const ENTRA_SURNAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname";
/// Entra sends group object ids (GUIDs) under this claim.
const ENTRA_GROUPS: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
const ENTRA_UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";

/// (email, display name, first name, last name, groups) attribute names.
type Names = (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const GENERIC: Names = (
    &["email", "mail", "emailAddress", "Email", ENTRA_EMAIL],
    &["displayName", "name", "cn"],
    &["firstName", "givenName", "given_name", "FirstName"],
    &["lastName", "surname", "sn", "family_name", "LastName"],
    &["groups", "memberOf", "Groups"],
);

fn names(preset: &str) -> Names {
    match preset {
        "entra" => (
            &[ENTRA_EMAIL, ENTRA_UPN],
            &[ENTRA_NAME],
            &[ENTRA_GIVEN],
            &[ENTRA_SURNAME],
            &[ENTRA_GROUPS],
        ),
        "okta" => (
            &["email"],
            &["displayName"],
            &["firstName"],
            &["lastName"],
            &["groups"],
        ),
        // Google Workspace has no default attribute statement; these are the
        // names its admin console suggests.
        "google" => (
            &["email"],
            &["name"],
            &["firstName"],
            &["lastName"],
            &["groups"],
        ),
        "onelogin" => (
            &["User.email", "email"],
            &["name"],
            &["User.FirstName"],
            &["User.LastName"],
            &["memberOf", "groups"],
        ),
        "jumpcloud" => (
            &["email"],
            &["displayname"],
            &["firstname"],
            &["lastname"],
            &["memberOf", "groups"],
        ),
        "duo" => (
            &["Email", "email"],
            &["DisplayName"],
            &["FirstName"],
            &["LastName"],
            &["Groups", "groups"],
        ),
        _ => GENERIC,
    }
}

/// The attribute mapping for a connection: its preset, then its overrides.
pub fn preset_attributes(preset: Option<&str>, cfg: &SamlConfig) -> AttributeMap {
    let (email, name, first, last, groups) = names(preset.unwrap_or("generic"));
    let pick = |over: &Option<String>, default: &[&str]| match over {
        Some(o) => vec![o.clone()],
        None => default.iter().map(|s| s.to_string()).collect(),
    };
    AttributeMap {
        email: pick(&cfg.email_attribute, email),
        name: pick(&cfg.name_attribute, name),
        first_name: pick(&cfg.first_name_attribute, first),
        last_name: pick(&cfg.last_name_attribute, last),
        groups: pick(&cfg.groups_attribute, groups),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SamlConfig {
        toml::from_str("idp_entity_id = \"x\"").unwrap()
    }

    #[test]
    fn presets_are_data_and_overrides_win() {
        let entra = preset_attributes(Some("entra"), &cfg());
        assert_eq!(entra.email[0], ENTRA_EMAIL);
        assert_eq!(entra.groups, vec![ENTRA_GROUPS.to_string()]);
        let mut c = cfg();
        c.groups_attribute = Some("roles".into());
        let okta = preset_attributes(Some("okta"), &c);
        assert_eq!(okta.groups, vec!["roles".to_string()]);
        assert_eq!(okta.email, vec!["email".to_string()]);
        for p in crate::config::PRESETS {
            let m = preset_attributes(Some(p), &cfg());
            assert!(!m.email.is_empty() && !m.groups.is_empty(), "{p}");
        }
    }
}
