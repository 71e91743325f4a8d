//! Which `iss` an ID token must carry. A customer's provider has one
//! issuer; Microsoft's multi-tenant endpoint has one per Entra tenant,
//! spelled by a template in its discovery document
//! (`https://login.microsoftonline.com/{tenantid}/v2.0`). For such a token
//! the tenant id is read from the (not yet verified) payload only to name
//! the issuer it must then be verified against: signature, audience and
//! every other check still run unchanged, and a token whose `iss` names
//! another tenant than its `tid` fails the issuer check.

use serde_json::Value;

use super::verify::payload;
use crate::auth::ConnectionError;
use crate::config::is_guid;

/// The placeholder in Microsoft's issuer template.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenantid}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IssuerRule {
    /// The configured issuer, exactly.
    Exact(String),
    /// `template` with `{tenantid}` replaced by the token's `tid`.
    EntraTemplate(String),
}

impl IssuerRule {
    /// The issuer `id_token` (compact JWS, not yet verified) must carry.
    pub(crate) fn expected(&self, id_token: &str) -> Result<String, ConnectionError> {
        match self {
            Self::Exact(s) => Ok(s.clone()),
            Self::EntraTemplate(template) => {
                let claims = payload(id_token)?;
                let tid = claims.get("tid").and_then(Value::as_str).unwrap_or("");
                if !is_guid(tid) {
                    return Err(ConnectionError::new(
                        "issuer",
                        format!("`tid` {:?} is not an Entra tenant id", truncate(tid)),
                    ));
                }
                Ok(template.replace(TENANT_PLACEHOLDER, &tid.to_ascii_lowercase()))
            }
        }
    }

    /// Whether an authorization response's `iss` (RFC 9207) names this
    /// provider.
    pub(crate) fn admits(&self, iss: &str) -> bool {
        match self {
            Self::Exact(s) => iss == s,
            Self::EntraTemplate(template) => {
                let Some((head, tail)) = template.split_once(TENANT_PLACEHOLDER) else {
                    return false;
                };
                iss.strip_prefix(head)
                    .and_then(|rest| rest.strip_suffix(tail))
                    .is_some_and(is_guid)
            }
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde_json::json;

    use super::*;

    const TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const TID: &str = "6f1e0d2c-1234-4abc-9def-0123456789ab";

    fn token(claims: Value) -> String {
        format!("e30.{}.sig", B64.encode(claims.to_string()))
    }

    #[test]
    fn exact_is_the_configured_issuer_whatever_the_token_says() {
        let rule = IssuerRule::Exact("https://accounts.google.com".into());
        assert_eq!(
            rule.expected(&token(json!({"iss": "https://evil.example"})))
                .unwrap(),
            "https://accounts.google.com"
        );
        assert!(rule.admits("https://accounts.google.com"));
        assert!(!rule.admits("accounts.google.com"));
    }

    #[test]
    fn entra_template_names_the_tokens_own_tenant() {
        let rule = IssuerRule::EntraTemplate(TEMPLATE.into());
        assert_eq!(
            rule.expected(&token(json!({"tid": TID.to_ascii_uppercase()})))
                .unwrap(),
            format!("https://login.microsoftonline.com/{TID}/v2.0")
        );
        for bad in [
            json!({}),
            json!({"tid": 5}),
            json!({"tid": "organizations"}),
            json!({"tid": "../../evil"}),
        ] {
            assert_eq!(
                rule.expected(&token(bad.clone())).unwrap_err().reason,
                "issuer",
                "{bad}"
            );
        }
        assert_eq!(rule.expected("garbage").unwrap_err().reason, "malformed");
        assert!(rule.admits(&format!("https://login.microsoftonline.com/{TID}/v2.0")));
        assert!(!rule.admits("https://login.microsoftonline.com/common/v2.0"));
        assert!(!rule.admits(&format!("https://evil.example/{TID}/v2.0")));
    }
}
