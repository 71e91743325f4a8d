//! The URLs and paths Portcullis publishes, typed once from `[server]`.
//! Validation has made `public_url` an origin and `internal_prefix` a path
//! that starts and ends with `/`; every endpoint URL is spelled here, so the
//! one an operator registers at an IdP, the one a login sends and the one a
//! handler is mounted at can't drift apart.

use super::schema::{Config, ScimConfig};
use crate::names::is_loopback_host;

/// `server.public_url` and `server.internal_prefix`, and everything built
/// from them. Connection ids are inserted as given: configured ids are
/// slugs; a caller passing anything else encodes it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrls {
    /// `https://app.example.com`: no trailing slash.
    origin: String,
    /// `/.portcullis/`: starts and ends with `/`.
    prefix: String,
}

impl Config {
    /// This configuration's [`PublicUrls`].
    pub fn public_urls(&self) -> PublicUrls {
        PublicUrls::new(&self.server.public_url, &self.server.internal_prefix)
    }
}

impl ScimConfig {
    /// `path` without a trailing slash (`/scim/v2`): where the SCIM router
    /// is mounted and what resource locations start with.
    pub fn base_path(&self) -> &str {
        self.path.trim_end_matches('/')
    }
}

impl PublicUrls {
    pub fn new(public_url: &str, internal_prefix: &str) -> Self {
        Self {
            origin: public_url.trim_end_matches('/').to_owned(),
            prefix: internal_prefix.to_owned(),
        }
    }

    /// The origin, no trailing slash: the issuer of signed assertions.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Is the origin's host `localhost`, 127.0.0.0/8 or ::1? (The
    /// development IdP runs only then.)
    pub fn on_loopback(&self) -> bool {
        self.origin
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.host().map(is_loopback_host))
            .unwrap_or(false)
    }

    /// The internal prefix without its trailing slash (`/.portcullis`):
    /// where the endpoint router is mounted.
    pub fn mount(&self) -> &str {
        self.prefix.trim_end_matches('/')
    }

    /// The internal prefix as configured (`/.portcullis/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Is `path` one of ours? The mount itself (`/.portcullis`) counts too.
    pub fn is_internal(&self, path: &str) -> bool {
        path.starts_with(self.prefix.as_str()) || path == self.mount()
    }

    fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn url(&self, rest: &str) -> String {
        format!("{}{}{rest}", self.origin, self.prefix)
    }

    /// `{prefix}login`: the login page and its email form's action.
    pub fn login_path(&self) -> String {
        self.path("login")
    }

    /// `{prefix}step-up`: a fresh login at the session's own connection,
    /// asking the IdP for a stronger or more recent authentication.
    pub fn step_up_path(&self) -> String {
        self.path("step-up")
    }

    /// `{prefix}logout`: the logout page and its form's action.
    pub fn logout_path(&self) -> String {
        self.path("logout")
    }

    /// `{prefix}sso/{connection}/start`, without its query.
    pub fn sso_start_path(&self, connection: &str) -> String {
        self.path(&format!("sso/{connection}/start"))
    }

    /// `{public_url}{prefix}sso/{connection}/callback`: where a connection
    /// sends the browser back to.
    pub fn sso_callback(&self, connection: &str) -> String {
        self.url(&format!("sso/{connection}/callback"))
    }

    /// `{public_url}{prefix}sso/{connection}/test`, without its token.
    pub fn sso_test(&self, connection: &str) -> String {
        self.url(&format!("sso/{connection}/test"))
    }

    /// `{public_url}{prefix}oidc/{connection}/callback`: the redirect URI to
    /// register at the provider.
    pub fn oidc_callback(&self, connection: &str) -> String {
        self.url(&format!("oidc/{connection}/callback"))
    }

    /// `{public_url}{prefix}platform/{provider}/callback`: the one redirect
    /// URI the operator registers at a pre-configured provider, shared by
    /// every tenant's connection of that provider.
    pub fn platform_callback(&self, provider: super::PlatformKind) -> String {
        self.url(&format!("platform/{}/callback", provider.as_str()))
    }

    /// `{public_url}{prefix}oidc/{connection}/backchannel-logout`: the
    /// back-channel logout URI to register at the provider.
    pub fn oidc_backchannel_logout(&self, connection: &str) -> String {
        self.url(&format!("oidc/{connection}/backchannel-logout"))
    }

    /// `{public_url}{prefix}saml/{connection}/metadata`: this SP's metadata,
    /// and its entity id unless `sp_entity_id` says otherwise.
    pub fn saml_metadata(&self, connection: &str) -> String {
        self.url(&format!("saml/{connection}/metadata"))
    }

    /// `{public_url}{prefix}saml/{connection}/acs`: the default assertion
    /// consumer service URL.
    pub fn saml_acs(&self, connection: &str) -> String {
        self.url(&format!("saml/{connection}/acs"))
    }

    /// `{public_url}{prefix}saml/{connection}/slo`: the default single
    /// logout URL.
    pub fn saml_slo(&self, connection: &str) -> String {
        self.url(&format!("saml/{connection}/slo"))
    }

    /// `{public_url}{prefix}dev-idp/metadata`: the development IdP's entity
    /// id and metadata.
    pub fn dev_idp_metadata(&self) -> String {
        self.url("dev-idp/metadata")
    }

    /// `{public_url}{prefix}dev-idp/sso`: the development IdP's sign-in.
    pub fn dev_idp_sso(&self) -> String {
        self.url("dev-idp/sso")
    }

    /// `{prefix}dev-idp/pick`: the development IdP's user picker.
    pub fn dev_idp_pick_path(&self) -> String {
        self.path("dev-idp/pick")
    }

    /// `{public_url}{scim.path}`, no trailing slash: the SCIM base URL an
    /// IdP is given, and the base of resource locations.
    pub fn scim_base(&self, scim: &ScimConfig) -> String {
        format!("{}{}", self.origin, scim.base_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_with_or_without_a_trailing_slash() {
        for origin in ["https://app.example.com", "https://app.example.com/"] {
            let urls = PublicUrls::new(origin, "/.portcullis/");
            assert_eq!(urls.origin(), "https://app.example.com");
            assert_eq!(urls.mount(), "/.portcullis");
            assert_eq!(urls.login_path(), "/.portcullis/login");
            assert_eq!(urls.logout_path(), "/.portcullis/logout");
            assert_eq!(urls.sso_start_path("acme"), "/.portcullis/sso/acme/start");
            assert_eq!(
                urls.sso_callback("acme"),
                "https://app.example.com/.portcullis/sso/acme/callback"
            );
            assert_eq!(
                urls.sso_test("acme"),
                "https://app.example.com/.portcullis/sso/acme/test"
            );
            assert_eq!(
                urls.oidc_callback("okta"),
                "https://app.example.com/.portcullis/oidc/okta/callback"
            );
            assert_eq!(
                urls.oidc_backchannel_logout("okta"),
                "https://app.example.com/.portcullis/oidc/okta/backchannel-logout"
            );
            assert_eq!(
                urls.saml_metadata("entra"),
                "https://app.example.com/.portcullis/saml/entra/metadata"
            );
            assert_eq!(
                urls.saml_acs("entra"),
                "https://app.example.com/.portcullis/saml/entra/acs"
            );
            assert_eq!(
                urls.saml_slo("entra"),
                "https://app.example.com/.portcullis/saml/entra/slo"
            );
            assert_eq!(
                urls.dev_idp_metadata(),
                "https://app.example.com/.portcullis/dev-idp/metadata"
            );
            assert_eq!(
                urls.dev_idp_sso(),
                "https://app.example.com/.portcullis/dev-idp/sso"
            );
            assert_eq!(urls.dev_idp_pick_path(), "/.portcullis/dev-idp/pick");
            assert_eq!(
                urls.platform_callback(super::super::PlatformKind::Github),
                "https://app.example.com/.portcullis/platform/github/callback"
            );
            assert!(!urls.on_loopback());
        }
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost/",
            "http://[::1]:80",
        ] {
            assert!(
                PublicUrls::new(local, "/.portcullis/").on_loopback(),
                "{local}"
            );
        }
        assert!(!PublicUrls::new("not a url", "/.portcullis/").on_loopback());
    }

    #[test]
    fn scim_base_and_a_custom_prefix() {
        let mut cfg = Config::default();
        cfg.server.public_url = "https://id.example.com/".into();
        cfg.server.internal_prefix = "/_auth/".into();
        cfg.scim.path = "/provisioning/".into();
        let urls = cfg.public_urls();
        assert_eq!(cfg.scim.base_path(), "/provisioning");
        assert_eq!(
            urls.scim_base(&cfg.scim),
            "https://id.example.com/provisioning"
        );
        assert_eq!(urls.mount(), "/_auth");
        assert_eq!(
            urls.saml_acs("x"),
            "https://id.example.com/_auth/saml/x/acs"
        );
    }
}
