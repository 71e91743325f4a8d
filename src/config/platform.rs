//! `[platform.providers.*]` and the connection kind `platform = "…"`:
//! sign-in providers the operator registers once (Google, Microsoft,
//! GitHub, Apple) that any tenant can then pick, with no IdP setup of its
//! own. The operator's credentials live here; a tenant's connection names
//! only the provider and, where the provider has them, its own rules.

use serde::{Deserialize, Serialize};

/// `[platform]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformConfig {
    pub providers: PlatformProviders,
}

/// `[platform.providers.*]`: each provider a tenant may pick, configured
/// once with the operator's own client registration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformProviders {
    pub google: Option<OidcPlatformProvider>,
    pub microsoft: Option<OidcPlatformProvider>,
    pub github: Option<GithubProvider>,
    pub apple: Option<AppleProvider>,
}

/// Google or Microsoft: an OpenID provider with a shared client secret.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcPlatformProvider {
    pub client_id: String,
    /// Write it as `${ENV_VAR}`.
    pub client_secret: String,
    /// Tests only: the provider's discovery base on a loopback host
    /// (Microsoft: the `organizations` base, e.g.
    /// `http://127.0.0.1:PORT/organizations/v2.0`).
    #[serde(default)]
    pub issuer: Option<String>,
}

/// GitHub: OAuth 2.0 (not OpenID Connect) with an OAuth App's credentials.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GithubProvider {
    pub client_id: String,
    /// Write it as `${ENV_VAR}`.
    pub client_secret: String,
    /// Tests only (loopback): `https://github.com/login/oauth/authorize`.
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// Tests only (loopback): `https://github.com/login/oauth/access_token`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Tests only (loopback): `https://api.github.com`.
    #[serde(default)]
    pub api_url: Option<String>,
}

/// Sign in with Apple: the client secret is a short-lived ES256 JWT that
/// Portcullis signs with the operator's key for each token request.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppleProvider {
    /// The Services ID (e.g. `com.example.portcullis`).
    pub client_id: String,
    /// The Apple developer team id (the JWT's `iss`).
    pub team_id: String,
    /// The id of the Sign in with Apple key (the JWT header's `kid`).
    pub key_id: String,
    /// The key itself, PKCS#8 PEM as downloaded (`.p8`); `${ENV_VAR}`.
    pub private_key: String,
    /// Tests only: the provider's issuer on a loopback host.
    #[serde(default)]
    pub issuer: Option<String>,
}

/// Which pre-configured provider a connection uses.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    Google,
    Microsoft,
    Github,
    Apple,
}

impl PlatformKind {
    pub const ALL: [PlatformKind; 4] = [Self::Google, Self::Microsoft, Self::Github, Self::Apple];

    /// The spelling in configuration and in the callback URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Microsoft => "microsoft",
            Self::Github => "github",
            Self::Apple => "apple",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What the login page's chooser calls it when the connection has no
    /// `display_name`.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::Microsoft => "Microsoft",
            Self::Github => "GitHub",
            Self::Apple => "Apple",
        }
    }
}

/// `microsoft = { tenant_ids = [...] }` on a `platform = "microsoft"`
/// connection.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MicrosoftRules {
    /// Entra tenant ids (GUIDs) whose users may sign in. Empty: any work
    /// or school tenant, but then only an `email` the tenant marks as
    /// domain-verified (`xms_edov`) is accepted.
    #[serde(default)]
    pub tenant_ids: Vec<String>,
}

/// `github = { org = "...", teams_as_groups = true }` on a
/// `platform = "github"` connection.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GithubRules {
    /// Only active members of this GitHub organisation may sign in.
    #[serde(default)]
    pub org: Option<String>,
    /// The user's teams in `org` become groups named `{org}/{team-slug}`.
    #[serde(default)]
    pub teams_as_groups: bool,
}

/// What a connection is: one of the protocols with the tenant's own IdP,
/// or a pre-configured provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Saml,
    Oidc,
    Platform(PlatformKind),
}

impl ConnectionKind {
    /// `saml`, `oidc`, or the provider's name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Saml => "saml",
            Self::Oidc => "oidc",
            Self::Platform(p) => p.as_str(),
        }
    }
}

impl super::ConnectionConfig {
    /// The connection's kind: `platform` when set, else `protocol`; `None`
    /// for neither (validation refuses that, and both).
    pub fn kind(&self) -> Option<ConnectionKind> {
        match (self.platform, self.protocol) {
            (Some(p), _) => Some(ConnectionKind::Platform(p)),
            (None, Some(super::Protocol::Saml)) => Some(ConnectionKind::Saml),
            (None, Some(super::Protocol::Oidc)) => Some(ConnectionKind::Oidc),
            (None, None) => None,
        }
    }
}

impl PlatformProviders {
    /// Whether `kind`'s section is configured.
    pub fn has(&self, kind: PlatformKind) -> bool {
        match kind {
            PlatformKind::Google => self.google.is_some(),
            PlatformKind::Microsoft => self.microsoft.is_some(),
            PlatformKind::Github => self.github.is_some(),
            PlatformKind::Apple => self.apple.is_some(),
        }
    }

    /// Whether `kind`'s section is the same in both: a reload that changes
    /// it changes every connection of that provider.
    pub fn same(&self, other: &Self, kind: PlatformKind) -> bool {
        match kind {
            PlatformKind::Google => self.google == other.google,
            PlatformKind::Microsoft => self.microsoft == other.microsoft,
            PlatformKind::Github => self.github == other.github,
            PlatformKind::Apple => self.apple == other.apple,
        }
    }
}

/// The Entra "tenant" of personal Microsoft accounts (outlook.com, …):
/// its users prove nothing about any organisation.
pub const MICROSOFT_CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// `8-4-4-4-12` hexadecimal digits: the shape of an Entra tenant id.
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A GitHub login (user or organisation): 1-39 of `A-Za-z0-9-`.
pub fn is_github_login(s: &str) -> bool {
    (1..=39).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
