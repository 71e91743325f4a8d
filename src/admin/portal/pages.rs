//! The portal's pages (askama, escaped by default) and what they share.

use askama::Template;

use crate::config::FieldError;

/// What every page shows around its content.
pub(crate) struct Chrome {
    pub title: String,
    pub tenant: String,
    pub tenant_name: String,
    pub who: String,
    /// (href, label, current)
    pub nav: Vec<(String, String, bool)>,
    pub csrf: String,
    /// Why the tenant can't be changed here, when it can't.
    pub read_only: Option<String>,
    /// The copy-button script (allowed by its hash in the CSP).
    pub script: &'static str,
}

/// Errors by form field (the last part of the path `check` names), and
/// every message in full for the summary at the top.
#[derive(Default)]
pub(crate) struct Errs(pub Vec<FieldError>);

impl Errs {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every message, with the field it names.
    pub(crate) fn all(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|e| match e.field.is_empty() {
                true => e.message.clone(),
                false => format!("{}: {}", e.field, e.message),
            })
            .collect()
    }

    /// The messages for form field `name`: an error whose path ends in
    /// `name` (`connections[2].oidc.client_id` → `client_id`,
    /// `group_roles.Eng` → `group_roles`).
    pub(crate) fn at(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|e| field_key(&e.field) == name || e.field.starts_with(&format!("{name}.")))
            .map(|e| e.message.clone())
            .collect()
    }
}

fn field_key(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

/// A time as UTC text.
pub(crate) fn when(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

#[derive(Template)]
#[template(path = "portal/message.html")]
pub(crate) struct MessagePage<'a> {
    pub title: &'a str,
    pub text: &'a str,
}

pub(crate) fn message(title: &str, text: &str) -> String {
    MessagePage { title, text }
        .render()
        .unwrap_or_else(|_| format!("{title}\n\n{text}\n"))
}

#[derive(Template)]
#[template(path = "portal/overview.html")]
pub(crate) struct OverviewPage {
    pub chrome: Chrome,
    /// (href, label, state in words)
    pub sections: Vec<(String, String, String)>,
}

pub(crate) struct DomainRow {
    pub domain: String,
    pub status: String,
    pub record_name: String,
    pub record_value: String,
    pub detail: String,
    pub checked: String,
}

#[derive(Template)]
#[template(path = "portal/domains.html")]
pub(crate) struct DomainsPage {
    pub chrome: Chrome,
    pub action: String,
    pub domains: Vec<DomainRow>,
    pub input: String,
    pub errs: Errs,
}

pub(crate) struct ConnRow {
    pub id: String,
    pub label: String,
    pub kind: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "portal/sso.html")]
pub(crate) struct SsoPage {
    pub chrome: Chrome,
    pub connections: Vec<ConnRow>,
    /// (href, name, kind)
    pub idps: Vec<(String, String, String)>,
    pub reset_action: String,
    pub errs: Errs,
}

pub(crate) struct Step {
    pub text: String,
    /// (label, value, element id)
    pub values: Vec<(String, String, String)>,
}

/// The values a connection form shows again after a refusal.
#[derive(Default)]
pub(crate) struct ConnFields {
    pub display_name: String,
    pub idp_metadata_url: String,
    pub idp_metadata_xml: String,
    pub issuer: String,
    pub client_id: String,
    pub scopes: String,
    pub groups_claim: String,
    pub tenant_ids: String,
    pub github_org: String,
    pub teams_as_groups: bool,
}

#[derive(Template)]
#[template(path = "portal/connection_new.html")]
pub(crate) struct NewConnectionPage {
    pub chrome: Chrome,
    pub idp_name: String,
    /// `saml`, `oidc`, `microsoft`, `github` or `platform`.
    pub kind: String,
    pub cid: String,
    pub steps: Vec<Step>,
    /// (claim, attribute names) for SAML.
    pub attributes: Vec<(String, String)>,
    pub issuer_hint: String,
    pub action: String,
    pub back: String,
    pub f: ConnFields,
    pub errs: Errs,
}

#[derive(Template)]
#[template(path = "portal/connection.html")]
pub(crate) struct ConnectionPage {
    pub chrome: Chrome,
    pub cid: String,
    pub label: String,
    /// `saml`, `oidc` or `platform`.
    pub kind: String,
    pub steps: Vec<Step>,
    pub attributes: Vec<(String, String)>,
    pub test_href: String,
    pub update_action: String,
    pub back: String,
    pub f: ConnFields,
    pub notice: Option<String>,
    pub errs: Errs,
}

#[derive(Template)]
#[template(path = "portal/provisioning.html")]
pub(crate) struct ProvisioningPage {
    pub chrome: Chrome,
    pub action: String,
    pub token_action: String,
    /// `manual`, `jit` or `scim`.
    pub mode: String,
    pub default_role: String,
    pub scim_enabled: bool,
    /// The tenant is provisioned by SCIM now (it has a token).
    pub scim_on: bool,
    pub scim_base: String,
    pub scim_users: i64,
    /// A token just made: shown this once.
    pub token: Option<String>,
    pub errs: Errs,
}

#[derive(Template)]
#[template(path = "portal/enforce.html")]
pub(crate) struct EnforcePage {
    pub chrome: Chrome,
    pub action: String,
    pub enforce: bool,
    pub verified: Vec<String>,
    pub unverified: Vec<String>,
    pub connections: usize,
    pub errs: Errs,
}

#[derive(Template)]
#[template(path = "portal/roles.html")]
pub(crate) struct RolesPage {
    pub chrome: Chrome,
    pub action: String,
    /// (group, roles comma-separated): the mapping, then empty rows to add.
    pub rows: Vec<(String, String)>,
    pub errs: Errs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_find_their_form_field() {
        let e = Errs(vec![
            FieldError::new("connections[2].oidc.client_id", "must not be empty"),
            FieldError::new("group_roles.Eng", "bad"),
            FieldError::new("domain", "public mail"),
            FieldError::new("", "general"),
        ]);
        assert_eq!(e.at("client_id"), ["must not be empty"]);
        assert_eq!(e.at("group_roles"), ["bad"]);
        assert_eq!(e.at("domain"), ["public mail"]);
        assert!(e.at("issuer").is_empty());
        assert_eq!(e.all().len(), 4);
        assert_eq!(e.all()[3], "general");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let html = message("<b>t</b>", "<script>alert(1)</script>");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
    }
}
