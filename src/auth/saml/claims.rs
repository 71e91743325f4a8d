//! Verified assertion → `VerifiedLogin`: NameID or a mapped attribute for
//! the email, names, groups, and every attribute kept as raw claims.

use samael::schema::Assertion;
use serde_json::{Map, Value, json};

use crate::auth::{ConnectionError, VerifiedLogin};

/// Attribute names per claim, in priority order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeMap {
    pub email: Vec<String>,
    pub name: Vec<String>,
    pub first_name: Vec<String>,
    pub last_name: Vec<String>,
    pub groups: Vec<String>,
}

/// Entra's groups overage attribute and the user's ids beside it.
const ENTRA_GROUPS_LINK: &str = "http://schemas.microsoft.com/claims/groups.link";
const ENTRA_OBJECT_ID: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
const ENTRA_TENANT_ID: &str = "http://schemas.microsoft.com/identity/claims/tenantid";

const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// All attributes by `Name` (and `FriendlyName`), values in document order.
fn attributes(a: &Assertion) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for st in a.attribute_statements.iter().flatten() {
        for attr in &st.attributes {
            let values: Vec<Value> = attr
                .values
                .iter()
                .filter_map(|v| v.value.clone())
                .map(Value::String)
                .collect();
            for key in [attr.name.as_ref(), attr.friendly_name.as_ref()]
                .into_iter()
                .flatten()
            {
                match out.get_mut(key) {
                    Some(Value::Array(existing)) => existing.extend(values.iter().cloned()),
                    _ => {
                        out.insert(key.clone(), Value::Array(values.clone()));
                    }
                }
            }
        }
    }
    out
}

fn first(attrs: &Map<String, Value>, names: &[String]) -> Option<String> {
    names.iter().find_map(|n| {
        attrs
            .get(n)?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

fn looks_like_email(s: &str) -> bool {
    let mut parts = s.splitn(2, '@');
    matches!((parts.next(), parts.next()), (Some(l), Some(d)) if !l.is_empty() && d.contains('.') && !s.contains(char::is_whitespace))
}

/// Maps a verified assertion. The email comes from NameID when it is an
/// email (format emailAddress, or unspecified but shaped like one), else
/// from the mapped attribute; without either the login is refused.
pub(super) fn to_login(
    connection_id: &str,
    a: &Assertion,
    map: &AttributeMap,
) -> Result<VerifiedLogin, ConnectionError> {
    let name_id = a.subject.as_ref().and_then(|s| s.name_id.as_ref());
    let subject = name_id
        .map(|n| n.value.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConnectionError::new("malformed", "assertion has no NameID"))?;
    let format = name_id.and_then(|n| n.format.clone());
    let attrs = attributes(a);
    let nameid_email = match format.as_deref() {
        Some(EMAIL_FORMAT)
        | None
        | Some("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified") => {
            looks_like_email(&subject).then(|| subject.clone())
        }
        _ => None,
    };
    let email = nameid_email
        .or_else(|| first(&attrs, &map.email).filter(|e| looks_like_email(e)))
        .ok_or_else(|| {
            ConnectionError::new(
                "no_email",
                format!(
                    "neither NameID ({format:?}) nor attributes {:?} carry an email",
                    map.email
                ),
            )
        })?;
    let name = first(&attrs, &map.name).or_else(|| {
        let parts: Vec<String> = [
            first(&attrs, &map.first_name),
            first(&attrs, &map.last_name),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    let groups: Vec<String> = map
        .groups
        .iter()
        .find_map(|n| attrs.get(n).and_then(Value::as_array))
        .map(|vs| {
            vs.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // Entra's overage: a link to Graph instead of the groups. The link
    // itself is never followed (see `auth::graph`); the ids name the user.
    let groups_overage = (groups.is_empty() && attrs.contains_key(ENTRA_GROUPS_LINK)).then(|| {
        crate::auth::Overage {
            object_id: first(&attrs, &[ENTRA_OBJECT_ID.into()]),
            directory_id: first(&attrs, &[ENTRA_TENANT_ID.into()]),
        }
    });
    Ok(VerifiedLogin {
        groups_overage,
        connection_id: connection_id.to_owned(),
        subject: subject.clone(),
        email: email.to_ascii_lowercase(),
        email_verified: None,
        name,
        groups,
        // SessionIndex of the (first) AuthnStatement: what the IdP's
        // LogoutRequest names; NameID + Format: what ours must name.
        idp_session: a
            .authn_statements
            .iter()
            .flatten()
            .find_map(|st| st.session_index.clone()),
        logout_hint: Some(json!({ "name_id": subject, "format": format }).to_string()),
        raw_claims: json!({
            "name_id": subject,
            "name_id_format": format,
            "issuer": a.issuer.value,
            "assertion_id": a.id,
            "attributes": attrs,
        }),
        attributes: crate::auth::claims::flatten(&attrs),
        auth: auth_facts(a),
    })
}

/// How the IdP authenticated the user, from the (first) AuthnStatement:
/// `AuthnContextClassRef` as the acr (dropped unless the routes could name
/// it: printable, no spaces or quotes) and `AuthnInstant` as the time.
/// SAML has no methods list.
fn auth_facts(a: &Assertion) -> crate::identity::AuthFacts {
    let statement = a.authn_statements.iter().flatten().next();
    crate::identity::AuthFacts {
        acr: statement
            .and_then(|s| s.authn_context.as_ref())
            .and_then(|c| c.value.as_ref())
            .and_then(|r| r.value.as_deref())
            .map(str::trim)
            .filter(|v| crate::config::is_acr(v))
            .map(str::to_owned),
        amr: Vec::new(),
        auth_time: statement
            .and_then(|s| s.authn_instant)
            .map(|t| t.timestamp()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assertion(name_id_format: &str, name_id: &str) -> Assertion {
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>idp</saml:Issuer><saml:Subject><saml:NameID Format="{name_id_format}">{name_id}</saml:NameID></saml:Subject><saml:AttributeStatement><saml:Attribute Name="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"><saml:AttributeValue>Bob@Acme.com</saml:AttributeValue></saml:Attribute><saml:Attribute Name="firstName"><saml:AttributeValue>Bob</saml:AttributeValue></saml:Attribute><saml:Attribute Name="lastName"><saml:AttributeValue>Builder</saml:AttributeValue></saml:Attribute><saml:Attribute Name="http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"><saml:AttributeValue>0f9e-guid</saml:AttributeValue><saml:AttributeValue>aa11-guid</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"#
        )
        .parse()
        .unwrap()
    }

    fn map(preset: &str) -> AttributeMap {
        let cfg: crate::config::SamlConfig = toml::from_str("").unwrap();
        super::super::preset_attributes(Some(preset), &cfg)
    }

    #[test]
    fn authn_statement_gives_class_and_instant() {
        let a: Assertion = format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>idp</saml:Issuer><saml:Subject><saml:NameID Format="{EMAIL_FORMAT}">a@acme.com</saml:NameID></saml:Subject><saml:AuthnStatement AuthnInstant="2026-01-01T00:00:05Z"><saml:AuthnContext><saml:AuthnContextClassRef> urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor </saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement></saml:Assertion>"#
        )
        .parse()
        .unwrap();
        let l = to_login("c", &a, &map("okta")).unwrap();
        assert_eq!(
            l.auth.acr.as_deref(),
            Some("urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor")
        );
        assert_eq!(l.auth.auth_time, Some(1_767_225_605));
        assert!(l.auth.amr.is_empty());
    }

    #[test]
    fn email_from_name_id_or_attribute() {
        let a = assertion(EMAIL_FORMAT, "alice@acme.com");
        let l = to_login("c", &a, &map("entra")).unwrap();
        assert_eq!(l.email, "alice@acme.com");
        assert_eq!(l.email_verified, None);
        assert_eq!(l.groups, vec!["0f9e-guid", "aa11-guid"]);
        assert_eq!(l.name.as_deref(), None);

        let a = assertion(
            "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            "u-123",
        );
        let l = to_login("c", &a, &map("entra")).unwrap();
        assert_eq!(
            (l.subject.as_str(), l.email.as_str()),
            ("u-123", "bob@acme.com")
        );
        let generic = to_login("c", &a, &map("generic")).unwrap();
        assert_eq!(generic.name.as_deref(), Some("Bob Builder"));
        assert!(generic.raw_claims["attributes"]["firstName"][0] == "Bob");

        // no AuthnStatement: no facts
        assert_eq!(l.auth, crate::identity::AuthFacts::default());
        let mut none = map("okta");
        none.email = vec!["mail".into()];
        assert_eq!(to_login("c", &a, &none).unwrap_err().reason, "no_email");
    }

    /// Entra's overage attribute names no groups; the login says where
    /// they can be asked for (by the user's ids, never by the link).
    #[test]
    fn groups_link_without_groups_is_an_overage() {
        let overage = |groups: &str| -> Assertion {
            format!(
                r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>idp</saml:Issuer><saml:Subject><saml:NameID Format="{EMAIL_FORMAT}">alice@acme.com</saml:NameID></saml:Subject><saml:AttributeStatement>{groups}<saml:Attribute Name="{ENTRA_GROUPS_LINK}"><saml:AttributeValue>https://graph.windows.net/t/users/o/getMemberObjects</saml:AttributeValue></saml:Attribute><saml:Attribute Name="{ENTRA_OBJECT_ID}"><saml:AttributeValue>o-1</saml:AttributeValue></saml:Attribute><saml:Attribute Name="{ENTRA_TENANT_ID}"><saml:AttributeValue>t-1</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"#
            )
            .parse()
            .unwrap()
        };
        let l = to_login("c", &overage(""), &map("entra")).unwrap();
        assert!(l.groups.is_empty());
        assert_eq!(
            l.groups_overage,
            Some(crate::auth::Overage {
                object_id: Some("o-1".into()),
                directory_id: Some("t-1".into()),
            })
        );
        let with = r#"<saml:Attribute Name="http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"><saml:AttributeValue>g1</saml:AttributeValue></saml:Attribute>"#;
        let l = to_login("c", &overage(with), &map("entra")).unwrap();
        assert_eq!(
            (l.groups.as_slice(), l.groups_overage),
            (&["g1".to_owned()][..], None)
        );
        assert_eq!(
            to_login("c", &assertion(EMAIL_FORMAT, "a@acme.com"), &map("entra"))
                .unwrap()
                .groups_overage,
            None
        );
    }
}
