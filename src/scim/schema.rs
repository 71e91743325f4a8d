//! The attributes Portcullis supports, as data: canonical names (lookups are
//! case-insensitive), types, case-exactness, mutability. The same table
//! drives input normalisation, filters, PATCH and `/Schemas`.
//!
//! [`Schemas`] is that table for one configuration: the built-in schemas
//! plus the extensions declared in `[[scim.extensions]]`. Every lookup of
//! an extension or of an attribute by URN goes through it, so a declared
//! extension is accepted, filtered, patched and advertised exactly like the
//! enterprise one.

use std::borrow::Cow;

use crate::config::{ScimAttributeType, ScimExtensionConfig, ScimResource};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    String,
    Boolean,
    Complex,
    Reference,
    DateTime,
    Integer,
    Binary,
}

impl Ty {
    pub fn as_str(self) -> &'static str {
        match self {
            Ty::String => "string",
            Ty::Boolean => "boolean",
            Ty::Complex => "complex",
            Ty::Reference => "reference",
            Ty::DateTime => "dateTime",
            Ty::Integer => "integer",
            Ty::Binary => "binary",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// One attribute definition (RFC 7643 §7). Built-in ones are static;
/// declared ones own their names.
#[derive(Debug)]
pub struct Attr {
    pub name: Cow<'static, str>,
    pub ty: Ty,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub unique: bool,
    pub sub: &'static [Attr],
    pub description: Cow<'static, str>,
}

const fn a(name: &'static str, ty: Ty, description: &'static str) -> Attr {
    Attr {
        name: Cow::Borrowed(name),
        ty,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        unique: false,
        sub: &[],
        description: Cow::Borrowed(description),
    }
}

const fn s(name: &'static str, description: &'static str) -> Attr {
    a(name, Ty::String, description)
}

const fn multi(mut attr: Attr, sub: &'static [Attr]) -> Attr {
    attr.multi = true;
    attr.sub = sub;
    attr
}

const fn complex(name: &'static str, sub: &'static [Attr], description: &'static str) -> Attr {
    let mut attr = a(name, Ty::Complex, description);
    attr.sub = sub;
    attr
}

const fn exact(mut attr: Attr) -> Attr {
    attr.case_exact = true;
    attr
}

const fn mutability(mut attr: Attr, m: Mutability) -> Attr {
    attr.mutability = m;
    attr
}

/// `value`, `display`, `type`, `primary`: the usual multi-valued shape.
const MULTI_STRING: &[Attr] = &[
    s("value", "The value."),
    s("display", "A human-readable name."),
    s("type", "A label, e.g. work or home."),
    a("primary", Ty::Boolean, "The primary value."),
];

const MULTI_REF: &[Attr] = &[
    exact(a("value", Ty::Reference, "The URL.")),
    s("display", "A human-readable name."),
    s("type", "A label."),
    a("primary", Ty::Boolean, "The primary value."),
];

const NAME_SUB: &[Attr] = &[
    s("formatted", "The full name."),
    s("familyName", "Family name."),
    s("givenName", "Given name."),
    s("middleName", "Middle name."),
    s("honorificPrefix", "e.g. Ms."),
    s("honorificSuffix", "e.g. III."),
];

const ADDRESS_SUB: &[Attr] = &[
    s("formatted", "The full address."),
    s("streetAddress", "Street."),
    s("locality", "City."),
    s("region", "State or region."),
    s("postalCode", "Postal code."),
    s("country", "Country (ISO 3166-1 alpha-2)."),
    s("type", "work, home or other."),
    a("primary", Ty::Boolean, "The primary address."),
];

const GROUP_REF_SUB: &[Attr] = &[
    mutability(exact(s("value", "The group's id.")), Mutability::ReadOnly),
    mutability(
        exact(a("$ref", Ty::Reference, "The group's URI.")),
        Mutability::ReadOnly,
    ),
    mutability(s("display", "The group's name."), Mutability::ReadOnly),
    mutability(s("type", "direct."), Mutability::ReadOnly),
];

pub static USER_ATTRS: &[Attr] = &[
    {
        let mut u = s(
            "userName",
            "Unique identifier for the user, case-insensitive.",
        );
        u.required = true;
        u.unique = true;
        u
    },
    complex("name", NAME_SUB, "The user's name."),
    s("displayName", "Name for display."),
    s("nickName", "Casual name."),
    exact(a("profileUrl", Ty::Reference, "Profile URL.")),
    s("title", "Job title."),
    s("userType", "e.g. Employee, Contractor."),
    s("preferredLanguage", "e.g. en-US."),
    s("locale", "e.g. en-US."),
    s("timezone", "e.g. Europe/Berlin."),
    a("active", Ty::Boolean, "Whether the user may sign in."),
    mutability(
        exact(s(
            "password",
            "Accepted and discarded: never stored, never returned.",
        )),
        Mutability::WriteOnly,
    ),
    multi(s("emails", "Email addresses."), MULTI_STRING),
    multi(s("phoneNumbers", "Phone numbers."), MULTI_STRING),
    multi(s("ims", "Instant messaging addresses."), MULTI_STRING),
    multi(s("photos", "Photo URLs."), MULTI_REF),
    multi(complex("addresses", ADDRESS_SUB, "Addresses."), ADDRESS_SUB),
    mutability(
        multi(
            complex("groups", GROUP_REF_SUB, "Groups, read-only."),
            GROUP_REF_SUB,
        ),
        Mutability::ReadOnly,
    ),
    multi(s("entitlements", "Entitlements."), MULTI_STRING),
    multi(s("roles", "Roles."), MULTI_STRING),
    multi(s("x509Certificates", "Certificates."), MULTI_STRING),
];

const MANAGER_SUB: &[Attr] = &[
    exact(s("value", "The manager's id.")),
    exact(a("$ref", Ty::Reference, "The manager's URI.")),
    mutability(
        s("displayName", "The manager's name."),
        Mutability::ReadOnly,
    ),
];

pub static ENTERPRISE_ATTRS: &[Attr] = &[
    s("employeeNumber", "Employee number."),
    s("costCenter", "Cost center."),
    s("organization", "Organization."),
    s("division", "Division."),
    s("department", "Department."),
    complex("manager", MANAGER_SUB, "The user's manager."),
];

const MEMBER_SUB: &[Attr] = &[
    mutability(exact(s("value", "The member's id.")), Mutability::Immutable),
    mutability(
        exact(a("$ref", Ty::Reference, "The member's URI.")),
        Mutability::Immutable,
    ),
    mutability(s("display", "The member's name."), Mutability::ReadOnly),
    mutability(s("type", "User or Group."), Mutability::Immutable),
];

pub static GROUP_ATTRS: &[Attr] = &[
    {
        let mut d = s(
            "displayName",
            "The group's name, unique case-insensitively.",
        );
        d.required = true;
        d.unique = true;
        d
    },
    multi(complex("members", MEMBER_SUB, "Members."), MEMBER_SUB),
];

const META_SUB: &[Attr] = &[
    mutability(
        exact(s("resourceType", "User or Group.")),
        Mutability::ReadOnly,
    ),
    mutability(
        a("created", Ty::DateTime, "Creation time."),
        Mutability::ReadOnly,
    ),
    mutability(
        a("lastModified", Ty::DateTime, "Last change."),
        Mutability::ReadOnly,
    ),
    mutability(
        exact(a("location", Ty::Reference, "URI.")),
        Mutability::ReadOnly,
    ),
    mutability(exact(s("version", "ETag.")), Mutability::ReadOnly),
];

/// Attributes every resource has (RFC 7643 §3.1).
pub static COMMON_ATTRS: &[Attr] = &[
    mutability(exact(s("id", "Server-assigned id.")), Mutability::ReadOnly),
    exact(s("externalId", "The provisioning client's id, case-exact.")),
    mutability(
        complex("meta", META_SUB, "Resource metadata."),
        Mutability::ReadOnly,
    ),
];

/// Finds an attribute by name, case-insensitively.
pub fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Resource kinds served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn core_urn(self) -> &'static str {
        match self {
            Kind::User => USER,
            Kind::Group => GROUP,
        }
    }

    pub fn core_attrs(self) -> &'static [Attr] {
        match self {
            Kind::User => USER_ATTRS,
            Kind::Group => GROUP_ATTRS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }

    pub fn store(self) -> crate::store::ScimKind {
        match self {
            Kind::User => crate::store::ScimKind::User,
            Kind::Group => crate::store::ScimKind::Group,
        }
    }
}

/// One schema extension of a resource type: its canonical URN (the key
/// its attributes live under in a resource) and its attributes.
#[derive(Debug, Clone, Copy)]
pub struct Extension<'a> {
    pub urn: &'a str,
    pub attrs: &'a [Attr],
}

/// An extension declared in `[[scim.extensions]]`.
#[derive(Debug)]
struct Declared {
    kind: Kind,
    urn: String,
    attrs: Vec<Attr>,
}

/// The schemas one configuration serves: the built-in ones (core User and
/// Group, the enterprise User extension) and the declared extensions.
/// `Schemas::default()` is the built-in ones alone.
#[derive(Debug, Default)]
pub struct Schemas {
    declared: Vec<Declared>,
}

impl Schemas {
    /// The built-in schemas plus `extensions` (validated by `config`).
    pub fn new(extensions: &[ScimExtensionConfig]) -> Self {
        let declared = extensions
            .iter()
            .map(|e| Declared {
                kind: match e.resource {
                    ScimResource::User => Kind::User,
                    ScimResource::Group => Kind::Group,
                },
                urn: e.urn.clone(),
                attrs: e
                    .attributes
                    .iter()
                    .map(|a| Attr {
                        name: Cow::Owned(a.name.clone()),
                        ty: match a.ty {
                            ScimAttributeType::String => Ty::String,
                            ScimAttributeType::Boolean => Ty::Boolean,
                            ScimAttributeType::Integer => Ty::Integer,
                            ScimAttributeType::DateTime => Ty::DateTime,
                            ScimAttributeType::Reference => Ty::Reference,
                            ScimAttributeType::Binary => Ty::Binary,
                        },
                        multi: a.multi_valued,
                        required: a.required,
                        case_exact: false,
                        mutability: Mutability::ReadWrite,
                        unique: false,
                        sub: &[],
                        description: Cow::Borrowed("Declared in [[scim.extensions]]."),
                    })
                    .collect(),
            })
            .collect();
        Self { declared }
    }

    /// The extensions of `kind`: built-in first, then the declared ones in
    /// configuration order.
    pub fn extensions(&self, kind: Kind) -> impl Iterator<Item = Extension<'_>> {
        static USER_EXTENSIONS: [(&str, &[Attr]); 1] = [(ENTERPRISE, ENTERPRISE_ATTRS)];
        let built_in: &'static [(&'static str, &'static [Attr])] = match kind {
            Kind::User => &USER_EXTENSIONS,
            Kind::Group => &[],
        };
        built_in
            .iter()
            .map(|(urn, attrs)| Extension { urn, attrs })
            .chain(
                self.declared
                    .iter()
                    .filter(move |d| d.kind == kind)
                    .map(|d| Extension {
                        urn: &d.urn,
                        attrs: &d.attrs,
                    }),
            )
    }

    /// The extension of `kind` that `urn` names, case-insensitively.
    pub fn extension(&self, kind: Kind, urn: &str) -> Option<Extension<'_>> {
        self.extensions(kind)
            .find(|e| e.urn.eq_ignore_ascii_case(urn))
    }

    /// The definition of a top-level attribute (core, common), or of an
    /// attribute inside an extension when `urn` names one.
    pub fn attr(&self, kind: Kind, urn: Option<&str>, name: &str) -> Option<&Attr> {
        match urn {
            Some(u) if !u.eq_ignore_ascii_case(kind.core_urn()) => {
                find(self.extension(kind, u)?.attrs, name)
            }
            _ => find(kind.core_attrs(), name).or_else(|| find(COMMON_ATTRS, name)),
        }
    }
}
