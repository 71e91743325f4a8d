//! `[[scim.extensions]]`: schema extensions an operator declares for the
//! SCIM server (an IdP's custom attributes, e.g. Entra's
//! `urn:ietf:params:scim:schemas:extension:…:User`). Declared ones are
//! stored, returned, advertised in `/Schemas` and `/ResourceTypes`, and
//! carried in webhook events; undeclared ones are still dropped.

use serde::Deserialize;

/// One extension: its URN, the resource type it extends, its attributes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScimExtensionConfig {
    /// The schema URN, e.g. `urn:example:params:scim:schemas:extension:acme:2.0:User`.
    pub urn: String,
    /// `User` or `Group`.
    pub resource: ScimResource,
    pub attributes: Vec<ScimAttributeConfig>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum ScimResource {
    User,
    Group,
}

/// One attribute of an extension: simple (not complex), case-insensitive,
/// read-write.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScimAttributeConfig {
    pub name: String,
    #[serde(rename = "type", default)]
    pub ty: ScimAttributeType,
    /// A list of values; a single value sent for it is `invalidSyntax`.
    #[serde(default)]
    pub multi_valued: bool,
    /// Must be present whenever the extension is (the extension itself
    /// stays optional on the resource).
    #[serde(default)]
    pub required: bool,
}

/// RFC 7643 §2.3 types a simple attribute can have (`decimal` is not
/// supported).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ScimAttributeType {
    #[default]
    #[serde(rename = "string")]
    String,
    #[serde(rename = "boolean")]
    Boolean,
    #[serde(rename = "integer")]
    Integer,
    #[serde(rename = "dateTime")]
    DateTime,
    #[serde(rename = "reference")]
    Reference,
    #[serde(rename = "binary")]
    Binary,
}
