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
pub fn to_login(
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
    let groups = map
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
    Ok(VerifiedLogin {
        connection_id: connection_id.to_owned(),
        subject: subject.clone(),
        email: email.to_ascii_lowercase(),
        email_verified: None,
        name,
        groups,
        raw_claims: json!({
            "name_id": subject,
            "name_id_format": format,
            "issuer": a.issuer.value,
            "assertion_id": a.id,
            "attributes": attrs,
        }),
    })
}
