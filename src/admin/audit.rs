//! Who changed what: the actor of a change, the closed set of actions, and
//! the redaction applied to before/after documents before they are stored.

use serde_json::Value;

use crate::store::AuditRow;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An operator token of the admin API, by its name.
    OperatorToken { name: String },
    /// A setup link, by its id.
    SetupLink { id: String },
    /// A signed-in admin of the tenant, by email.
    TenantAdmin { email: String },
    /// The command line, by the local user.
    Cli { user: String },
}

impl Actor {
    /// The CLI's actor: `$USER`, or `unknown`.
    pub fn cli() -> Self {
        Actor::Cli {
            user: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Actor::OperatorToken { .. } => "operator_token",
            Actor::SetupLink { .. } => "setup_link",
            Actor::TenantAdmin { .. } => "tenant_admin",
            Actor::Cli { .. } => "cli",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Actor::OperatorToken { name } => name,
            Actor::SetupLink { id } => id,
            Actor::TenantAdmin { email } => email,
            Actor::Cli { user } => user,
        }
    }
}

/// Every kind of change; the label is the audit `action` and the metric's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    TenantCreated,
    TenantUpdated,
    TenantDeleted,
    EnforcementChanged,
    RolesChanged,
    ProvisioningChanged,
    DomainAdded,
    DomainChecked,
    DomainRemoved,
    ConnectionCreated,
    ConnectionUpdated,
    ConnectionDeleted,
    ScimTokenRotated,
    ScimTokenRevoked,
    SessionsRevoked,
    SetupLinkCreated,
    SetupLinkUsed,
    AdminTokenCreated,
    AdminTokenRevoked,
    ServiceAccountCreated,
    ServiceAccountRotated,
    ServiceAccountRevoked,
    UserRemoved,
}

impl AuditAction {
    pub fn label(self) -> &'static str {
        match self {
            AuditAction::TenantCreated => "tenant.created",
            AuditAction::TenantUpdated => "tenant.updated",
            AuditAction::TenantDeleted => "tenant.deleted",
            AuditAction::EnforcementChanged => "enforcement.changed",
            AuditAction::RolesChanged => "roles.changed",
            AuditAction::ProvisioningChanged => "provisioning.changed",
            AuditAction::DomainAdded => "domain.added",
            AuditAction::DomainChecked => "domain.verified_checked",
            AuditAction::DomainRemoved => "domain.removed",
            AuditAction::ConnectionCreated => "connection.created",
            AuditAction::ConnectionUpdated => "connection.updated",
            AuditAction::ConnectionDeleted => "connection.deleted",
            AuditAction::ScimTokenRotated => "scim_token.rotated",
            AuditAction::ScimTokenRevoked => "scim_token.revoked",
            AuditAction::SessionsRevoked => "sessions.revoked",
            AuditAction::SetupLinkCreated => "setup_link.created",
            AuditAction::SetupLinkUsed => "setup_link.used",
            AuditAction::AdminTokenCreated => "admin_token.created",
            AuditAction::AdminTokenRevoked => "admin_token.revoked",
            AuditAction::ServiceAccountCreated => "service_account.created",
            AuditAction::ServiceAccountRotated => "service_account.rotated",
            AuditAction::ServiceAccountRevoked => "service_account.revoked",
            AuditAction::UserRemoved => "user.removed",
        }
    }
}

/// What replaces a secret in an answer or an audit document.
pub const REDACTED: &str = "<redacted>";

/// `client_secret`, `private_key` and any key naming a token become
/// [`REDACTED`]; `idp_metadata_xml` becomes its hash and size (enough to
/// tell two versions apart, nothing to read).
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        (_, Value::Null) => Value::Null,
                        ("client_secret" | "private_key", _) => Value::String(REDACTED.into()),
                        (k, _) if k.contains("token") => Value::String(REDACTED.into()),
                        ("idp_metadata_xml", Value::String(xml)) => Value::String(format!(
                            "sha256:{} ({} bytes)",
                            &crate::secret::sha256_hex(xml.as_bytes())[..12],
                            xml.len()
                        )),
                        _ => redact(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// The stored row of one change; before/after redacted here.
pub(crate) fn row(
    actor: &Actor,
    action: AuditAction,
    tenant: Option<&str>,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> AuditRow {
    let doc = |v: Option<&Value>| v.map(|v| redact(v).to_string());
    AuditRow {
        id: 0,
        at_ms: crate::clock::now_ms(),
        tenant: tenant.map(str::to_owned),
        actor_kind: actor.kind().into(),
        actor: actor.name().into(),
        action: action.label().into(),
        target: target.into(),
        before_json: doc(before),
        after_json: doc(after),
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_tokens_and_metadata_are_redacted() {
        let v = json!({"id": "c", "oidc": {"client_secret": "s3cret", "private_key": "-----BEGIN",
            "client_id": "kept"}, "token": "pcs_x", "scim_token": "y",
            "saml": {"idp_metadata_xml": "<EntityDescriptor/>"}, "list": [{"client_secret": "z"}]});
        let r = redact(&v);
        let text = r.to_string();
        for secret in [
            "s3cret",
            "-----BEGIN",
            "pcs_x",
            "\"y\"",
            "<EntityDescriptor/>",
            "\"z\"",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(r["oidc"]["client_id"], "kept");
        assert_eq!(r["oidc"]["client_secret"], REDACTED);
        let md = r["saml"]["idp_metadata_xml"].as_str().unwrap();
        assert!(
            md.starts_with("sha256:") && md.ends_with("(19 bytes)"),
            "{md}"
        );
    }
}
