//! The identity providers the portal offers, as data: for each, the
//! protocol and preset it configures, and what to do in that IdP's own
//! console, step by step (the wording of the README's provider sections).
//! Steps name our values by placeholder; the page fills them in with copy
//! buttons.

use crate::config::{Config, PlatformKind};

/// One of our values, shown with a copy button inside a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    SpEntityId,
    AcsUrl,
    MetadataUrl,
    RedirectUri,
    BackchannelLogoutUri,
}

/// How a connection is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Saml,
    Oidc,
    /// A provider the operator configured (`[platform.providers.*]`).
    Platform(PlatformKind),
}

/// One IdP in the list.
#[derive(Debug, Clone)]
pub(crate) struct Idp {
    /// In the page's path (`sso/new/{key}`) and the connection id.
    pub key: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    /// The connection's `preset` (SAML attribute names, OIDC claim rules).
    pub preset: Option<&'static str>,
    /// Each step: text, then the values it needs pasted (in order).
    pub steps: Vec<(&'static str, Vec<(&'static str, Value)>)>,
    /// Example issuer (OIDC), as a hint in the form.
    pub issuer_hint: &'static str,
}

fn saml_steps(
    open: &'static str,
    attrs: &'static str,
    metadata: &'static str,
) -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
    vec![
        (open, vec![]),
        (
            "Enter our values: the Entity ID (Audience, Identifier) and the ACS URL (Reply URL, HTTP-POST binding). An IdP that imports service-provider metadata can read it from the metadata URL instead.",
            vec![
                ("Entity ID / Audience", Value::SpEntityId),
                ("ACS (Reply) URL", Value::AcsUrl),
                ("SP metadata URL", Value::MetadataUrl),
            ],
        ),
        (attrs, vec![]),
        (metadata, vec![]),
    ]
}

fn oidc_steps(
    register: &'static str,
    claims: &'static str,
) -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
    vec![
        (
            register,
            vec![
                ("Redirect URI", Value::RedirectUri),
                (
                    "Back-channel logout URI (optional)",
                    Value::BackchannelLogoutUri,
                ),
            ],
        ),
        (claims, vec![]),
        (
            "Copy the issuer, the client ID and the client secret into the form below.",
            vec![],
        ),
    ]
}

/// Every IdP the portal offers for `config`: the eight of every
/// installation, then the operator's pre-configured providers.
pub(crate) fn catalog(config: &Config) -> Vec<Idp> {
    let mut list = vec![
        Idp {
            key: "entra",
            name: "Microsoft Entra ID",
            kind: Kind::Oidc,
            preset: Some("entra"),
            steps: oidc_steps(
                "Entra admin center → App registrations → New registration, single tenant; add a Web redirect URI. Then Certificates & secrets → New client secret.",
                "Token configuration → Add optional claim “email” (ID token), and Add groups claim (security groups, or \"Groups assigned to the application\" to stay under the overage limit). Groups arrive as object IDs: map those IDs to roles on the role mapping page.",
            ),
            issuer_hint: "https://login.microsoftonline.com/{tenant-id}/v2.0 (tenant-specific, never common or organizations)",
        },
        Idp {
            key: "okta",
            name: "Okta",
            kind: Kind::Oidc,
            preset: Some("okta"),
            steps: oidc_steps(
                "Okta admin → Applications → Create App Integration → OIDC, Web Application; add the sign-in redirect URI.",
                "For groups, add a groups claim: Sign On tab → OpenID Connect ID Token → Groups claim filter (for example, matches regex “.*”). Okta sends “email_verified”; it must be true.",
            ),
            issuer_hint: "https://acme.okta.com (or a custom authorization server: https://acme.okta.com/oauth2/default)",
        },
        Idp {
            key: "google",
            name: "Google Workspace",
            kind: Kind::Oidc,
            preset: Some("google"),
            steps: oidc_steps(
                "Google Cloud console → APIs & Services → Credentials → Create OAuth client ID → Web application; add the redirect URI. Set the OAuth consent screen to Internal so only the Workspace's users can sign in.",
                "Nothing to add: the ID token's “hd” (the Workspace domain) must be one of your verified domains, and personal Google accounts are refused. Google sends no groups over OIDC.",
            ),
            issuer_hint: "https://accounts.google.com",
        },
        Idp {
            key: "onelogin",
            name: "OneLogin",
            kind: Kind::Saml,
            preset: Some("onelogin"),
            steps: saml_steps(
                "OneLogin admin → Applications → Add App → \"SAML Custom Connector (Advanced)\".",
                "Configuration → set the SAML nameID format to Email. Parameters → keep “User.email” (or add “email”), and add “memberOf” (or “groups”) if you map groups to roles.",
                "SSO tab → More Actions → SAML Metadata: download the XML and upload or paste it below.",
            ),
            issuer_hint: "",
        },
        Idp {
            key: "jumpcloud",
            name: "JumpCloud",
            kind: Kind::Saml,
            preset: Some("jumpcloud"),
            steps: saml_steps(
                "JumpCloud admin → SSO Applications → Add New Application → Custom SAML App.",
                "SAMLSubject NameID = email. Attributes: add “email”, “firstname”, “lastname”, and enable the group attribute named “memberOf” if you map groups to roles.",
                "Save, then Export Metadata: upload or paste the XML below.",
            ),
            issuer_hint: "",
        },
        Idp {
            key: "duo",
            name: "Duo",
            kind: Kind::Saml,
            preset: Some("duo"),
            steps: saml_steps(
                "Duo Admin Panel → Applications → Protect an Application → Generic SAML Service Provider.",
                "NameID format: email address. Map attributes “Email”, “FirstName”, “LastName”, and a “Groups” role attribute if you map groups to roles.",
                "Download the XML metadata from the application's page and upload or paste it below.",
            ),
            issuer_hint: "",
        },
        Idp {
            key: "saml",
            name: "Other SAML 2.0 IdP",
            kind: Kind::Saml,
            preset: None,
            steps: saml_steps(
                "In your IdP, create a SAML 2.0 application (\"service provider\").",
                "Set NameID to the user's email address, or send it as an “email” (or “mail”) attribute; send groups as “groups” (or “memberOf”) to map them to roles. Responses or assertions must be signed (RSA or ECDSA with SHA-256).",
                "Export the IdP's metadata XML (it must include the signing certificate) and upload or paste it below, or give its https URL.",
            ),
            issuer_hint: "",
        },
        Idp {
            key: "oidc",
            name: "Other OpenID Connect provider",
            kind: Kind::Oidc,
            preset: None,
            steps: oidc_steps(
                "Register a web application (confidential client, authorization code flow) and add the redirect URI.",
                "The ID token (or userinfo) must carry “email” with “email_verified: true”; add a “groups” claim if you map groups to roles.",
            ),
            issuer_hint: "https://idp.example.com (discovery: {issuer}/.well-known/openid-configuration)",
        },
    ];
    let p = &config.platform.providers;
    for (kind, on) in [
        (PlatformKind::Google, p.google.is_some()),
        (PlatformKind::Microsoft, p.microsoft.is_some()),
        (PlatformKind::Github, p.github.is_some()),
        (PlatformKind::Apple, p.apple.is_some()),
    ] {
        if on {
            list.push(platform(kind));
        }
    }
    list
}

fn platform(kind: PlatformKind) -> Idp {
    let (key, name, note) = match kind {
        PlatformKind::Google => (
            "platform-google",
            "Sign in with Google",
            "Only Google Workspace accounts whose domain (“hd”) is one of your verified domains sign in; personal accounts are refused.",
        ),
        PlatformKind::Microsoft => (
            "platform-microsoft",
            "Sign in with Microsoft",
            "Optionally restrict it to your Entra tenant IDs below; without them, only an “email” your tenant marks as domain-verified is accepted.",
        ),
        PlatformKind::Github => (
            "platform-github",
            "Sign in with GitHub",
            "Only a verified GitHub address in one of your verified domains is used. Optionally require membership of your GitHub organisation, and use its teams as groups.",
        ),
        PlatformKind::Apple => (
            "platform-apple",
            "Sign in with Apple",
            "Private relay addresses are refused; the address must be verified and in one of your verified domains.",
        ),
    };
    Idp {
        key,
        name,
        kind: Kind::Platform(kind),
        preset: None,
        steps: vec![
            (
                "Nothing to set up in an IdP console: this provider is registered by the service operator.",
                vec![],
            ),
            (note, vec![]),
        ],
        issuer_hint: "",
    }
}

/// The catalog entry a connection was made from (its preset and protocol,
/// or its platform provider).
pub(crate) fn of_connection(config: &Config, c: &crate::config::ConnectionConfig) -> Option<Idp> {
    let all = catalog(config);
    if let Some(k) = c.platform {
        return all.into_iter().find(|i| i.kind == Kind::Platform(k));
    }
    let kind = match c.protocol? {
        crate::config::Protocol::Saml => Kind::Saml,
        crate::config::Protocol::Oidc => Kind::Oidc,
    };
    let preset = c.preset.as_deref().filter(|p| *p != "generic");
    all.iter()
        .find(|i| i.kind == kind && i.preset == preset)
        .or_else(|| all.iter().find(|i| i.kind == kind && i.preset.is_none()))
        .cloned()
}
