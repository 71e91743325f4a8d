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
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::super::*;

    // The store key sits on the first line (an inline table), as in
    // `config::tests`.
    const MINIMAL: &str = r#"store = { encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE=" }
[[listeners]]
address = "127.0.0.1:8080"

[session]
keys = ["kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"]
"#;

    fn env(_: &str) -> Option<String> {
        None
    }

    fn errors(text: &str) -> Vec<String> {
        match from_str(text, "t.toml", &env) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }
    /// A P-256 PKCS#8 PEM, as Apple's `.p8` download is.
    fn p256_pem() -> String {
        use base64::Engine as _;
        let rng = ring::rand::SystemRandom::new();
        let der = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        )
    }

    fn platform_env(name: &str) -> Option<String> {
        match name {
            "APPLE_KEY" => Some(p256_pem()),
            "GOOGLE_SECRET" => Some("g-secret".into()),
            "EMPTY" => Some(String::new()),
            other => env(other),
        }
    }

    const PLATFORM_PROVIDERS: &str = r#"
    [platform.providers.google]
    client_id = "g.apps.googleusercontent.com"
    client_secret = "${GOOGLE_SECRET}"
    [platform.providers.microsoft]
    client_id = "ms-client"
    client_secret = "ms-secret"
    [platform.providers.github]
    client_id = "gh-client"
    client_secret = "gh-secret"
    [platform.providers.apple]
    client_id = "com.example.portcullis"
    team_id = "ABCDE12345"
    key_id = "KEY123ABCD"
    private_key = "${APPLE_KEY}"
    "#;

    #[test]
    fn platform_providers_and_connections_load() {
        let text = format!(
            r#"{MINIMAL}{PLATFORM_PROVIDERS}
    [[tenants]]
    id = "acme"
    domains = ["acme.com"]
    [[tenants.connections]]
    id = "acme-google"
    platform = "google"
    [[tenants.connections]]
    id = "acme-ms"
    platform = "microsoft"
    microsoft = {{ tenant_ids = ["6F1E0D2C-1234-4abc-9def-0123456789ab"] }}
    [[tenants.connections]]
    id = "acme-gh"
    platform = "github"
    github = {{ org = "acme-corp", teams_as_groups = true }}
    [[tenants.connections]]
    id = "acme-apple"
    platform = "apple"
    "#
        );
        let cfg = from_str(&text, "t.toml", &platform_env).unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<_> = cfg.tenants[0]
            .connections
            .iter()
            .map(|c| c.kind().map(ConnectionKind::label))
            .collect();
        assert_eq!(
            kinds,
            [
                Some("google"),
                Some("microsoft"),
                Some("github"),
                Some("apple")
            ]
        );
        let google = cfg.platform.providers.google.as_ref().unwrap();
        assert_eq!(google.client_secret, "g-secret");
        assert_eq!(
            cfg.tenants[0].connections[2].github,
            Some(GithubRules {
                org: Some("acme-corp".into()),
                teams_as_groups: true
            })
        );
    }

    #[test]
    fn platform_overrides_accept_loopback_only() {
        let overrides = r#"
    [platform.providers.google]
    client_id = "g"
    client_secret = "s"
    issuer = "http://127.0.0.1:9999"
    [platform.providers.microsoft]
    client_id = "m"
    client_secret = "s"
    issuer = "https://login.evil.example/organizations/v2.0"
    [platform.providers.github]
    client_id = "gh"
    client_secret = "${EMPTY}"
    authorize_url = "http://localhost:1/login/oauth/authorize"
    token_url = "http://10.0.0.1/login/oauth/access_token"
    api_url = "http://127.0.0.1:1/?x=1"
    [platform.providers.apple]
    client_id = "com.example"
    team_id = ""
    key_id = "K"
    private_key = "not a key"
    issuer = "ftp://127.0.0.1"
    "#;
        let errs = match from_str(&format!("{MINIMAL}{overrides}"), "t.toml", &platform_env) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        };
        let loopback = "endpoint overrides exist for tests and accept loopback hosts only";
        let needs =
            "endpoint overrides exist for tests and need `[admin] allow_loopback_idp_urls = true`";
        for want in [
            format!("platform.providers.microsoft.issuer: {loopback}"),
            format!("platform.providers.github.token_url: {loopback}"),
            format!("platform.providers.github.api_url: {loopback}"),
            format!("platform.providers.apple.issuer: {loopback}"),
            "platform.providers.github.client_secret: must not be empty".into(),
            "platform.providers.apple.team_id: must not be empty".into(),
            "platform.providers.apple.private_key: must be the Sign in with Apple key".into(),
            // Loopback, but fetched only under the test allowance.
            format!("platform.providers.google.issuer: {needs}"),
            format!("platform.providers.github.authorize_url: {needs}"),
        ] {
            assert!(
                errs.iter().any(|e| e.contains(&want)),
                "missing {want:?} in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), 9, "{errs:#?}");
        let allowed = format!("{MINIMAL}{overrides}").replacen(
            "[platform.providers.google]",
            "[admin]\nallow_loopback_idp_urls = true\n[platform.providers.google]",
            1,
        );
        let errs = from_str(&allowed, "t.toml", &platform_env).unwrap_err().0;
        assert_eq!(errs.len(), 7, "{errs:#?}");
    }

    #[test]
    fn platform_connection_needs_its_provider_and_no_protocol() {
        let text = format!(
            r#"{MINIMAL}
    [platform.providers.google]
    client_id = "g"
    client_secret = "s"

    [[tenants]]
    id = "acme"
    domains = ["acme.com"]
    [[tenants.connections]]
    id = "both"
    protocol = "oidc"
    platform = "google"
    [[tenants.connections]]
    id = "neither"
    [[tenants.connections]]
    id = "unconfigured"
    platform = "github"
    [[tenants.connections]]
    id = "tables"
    platform = "google"
    preset = "google"
    github = {{ org = "acme" }}
    [tenants.connections.oidc]
    issuer = "https://accounts.google.com"
    client_id = "x"
    [[tenants.connections]]
    id = "pins"
    platform = "microsoft"
    microsoft = {{ tenant_ids = ["not-a-guid", "9188040D-6C67-4C5B-B112-36A304B66DAD"] }}
    [[tenants.connections]]
    id = "gh"
    platform = "github"
    github = {{ org = "bad org!", teams_as_groups = true }}
    [[tenants.connections]]
    id = "gh2"
    platform = "github"
    github = {{ teams_as_groups = true }}
    [[tenants.connections]]
    id = "custom"
    protocol = "saml"
    microsoft = {{ tenant_ids = [] }}
    [tenants.connections.saml]
    idp = "x"

    [[tenants]]
    id = "nodomains"
    [[tenants.connections]]
    id = "nd-google"
    platform = "google"
    "#
        );
        let errs = errors(&text);
        for want in [
            "tenants[0].connections[0].platform: use either `protocol`",
            "tenants[0].connections[1].protocol: missing: set `protocol",
            "tenants[0].connections[2].platform: `github` is not configured",
            "tenants[0].connections[3].preset: a `platform` connection has no `preset`",
            "tenants[0].connections[3].oidc: a `platform` connection has no `oidc`",
            "tenants[0].connections[3].github: `github` rules on a connection of another provider",
            "tenants[0].connections[4].platform: `microsoft` is not configured",
            "tenants[0].connections[4].microsoft.tenant_ids[0]: an Entra tenant id is a GUID",
            "tenants[0].connections[4].microsoft.tenant_ids[1]: this is the tenant of personal Microsoft accounts",
            "tenants[0].connections[5].github.org: a GitHub organisation login",
            "tenants[0].connections[6].github.teams_as_groups: needs `org`",
            "tenants[0].connections[7].microsoft: `microsoft` rules belong to a `platform = \"microsoft\"` connection",
            "tenants[1].connections[0].platform: the tenant lists no domains",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(want)),
                "missing {want:?} in {errs:#?}"
            );
        }
    }
}
