//! Pre-configured providers: Google, Microsoft, GitHub and Apple sign-in
//! that a tenant picks with `platform = "…"` and sets up nothing for. The
//! operator registers one client per provider (`[platform.providers.*]`)
//! with one redirect URI, `{public_url}{prefix}platform/{provider}/callback`;
//! which tenant and connection started a login travels in the flow cookie,
//! never in the URL.
//!
//! Google, Microsoft and Apple are the OIDC connection with each
//! provider's issuer rule, client secret, flow variant and claim rules
//! (`rules.rs`); GitHub (OAuth 2.0 plus its REST API) is `github.rs`. One
//! discovery document and key set per provider is shared by every
//! tenant's connection of it.

mod endpoints;
mod github;
mod rules;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::auth::egress::Egress;
use crate::auth::oidc::{
    ClaimMap, ClaimRules, ClientKey, EmailVerified, IssuerRule, OidcConnection, PlatformOidc,
    ProviderCache, ProviderHttp, SecretSource, TENANT_PLACEHOLDER,
};
use crate::auth::policy::DomainRouter;
use crate::auth::{CallbackRequest, Connection, ConnectionError, ConnectionFactory, VerifiedLogin};
use crate::clock::Clock;
use crate::config::{
    ConnectionConfig, OidcConfig, PlatformConfig, PlatformKind, PublicUrls, TenantConfig,
};
use crate::metrics::Metrics;
use crate::store::Store;

/// Timeout of each request to a provider.
const HTTP_TIMEOUT_MS: u64 = 5_000;
/// How long a provider's discovery document and keys are trusted.
const DISCOVERY_REFRESH: Duration = Duration::from_secs(3600);
/// Least time between two key set fetches for an unknown `kid`.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(60);

fn config_error(detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new("config", detail)
}

/// The tenant's domains a provider may speak for: configured for it *and*
/// verified in the store for it (what login routing would send there).
pub(super) async fn verified_domains(
    router: &dyn DomainRouter,
    tenant: &TenantConfig,
) -> Result<Vec<String>, ConnectionError> {
    let mut out = Vec::new();
    for d in &tenant.domains {
        let owner = router
            .verified_tenant(&d.to_ascii_lowercase())
            .await
            .map_err(|e| ConnectionError::new("store", e))?;
        if owner.as_deref() == Some(tenant.id.as_str()) {
            out.push(d.to_ascii_lowercase());
        }
    }
    Ok(out)
}

/// Builds `platform = "…"` connections for one configuration generation.
pub(crate) struct PlatformFactory {
    config: PlatformConfig,
    store: Store,
    urls: PublicUrls,
    metrics: Option<Arc<Metrics>>,
    domains: Arc<dyn DomainRouter>,
    http: ProviderHttp,
    google: Option<Arc<ProviderCache>>,
    microsoft: Option<(Arc<ProviderCache>, String)>,
    apple: Option<(Arc<ProviderCache>, String)>,
}

impl PlatformFactory {
    pub(crate) fn new(
        config: &PlatformConfig,
        store: Store,
        urls: PublicUrls,
        metrics: Option<Arc<Metrics>>,
        domains: Arc<dyn DomainRouter>,
        clock: Clock,
        egress: &Egress,
    ) -> Result<Self, ConnectionError> {
        let http = ProviderHttp::new(HTTP_TIMEOUT_MS, egress.for_provider("platform"))
            .map_err(|e| config_error(format!("http client: {e}")))?;
        let cache = |discovery: &str, issuer: &str| {
            Arc::new(
                ProviderCache::new_with(
                    discovery,
                    issuer,
                    http.clone(),
                    DISCOVERY_REFRESH,
                    JWKS_MIN_REFRESH,
                )
                .with_clock(clock.clone()),
            )
        };
        let p = &config.providers;
        let google = p.google.as_ref().map(|g| {
            let issuer = g.issuer.as_deref().unwrap_or(endpoints::GOOGLE_ISSUER);
            cache(issuer, issuer)
        });
        let microsoft = match &p.microsoft {
            None => None,
            Some(m) => {
                let discovery = m
                    .issuer
                    .as_deref()
                    .unwrap_or(endpoints::MICROSOFT_DISCOVERY);
                let template = microsoft_template(discovery)?;
                Some((cache(discovery, &template), template))
            }
        };
        let apple = p.apple.as_ref().map(|a| {
            let issuer = a
                .issuer
                .clone()
                .unwrap_or_else(|| endpoints::APPLE_ISSUER.to_owned());
            (cache(&issuer, &issuer), issuer)
        });
        Ok(Self {
            config: config.clone(),
            store,
            urls,
            metrics,
            domains,
            http,
            google,
            microsoft,
            apple,
        })
    }

    /// An OIDC configuration for a provider, with every default of a
    /// customer connection except those named here.
    fn oidc_config(
        &self,
        issuer: &str,
        client_id: &str,
        client_secret: Option<&str>,
        token_auth_method: &str,
        scopes: &[&str],
        userinfo: bool,
    ) -> Result<OidcConfig, ConnectionError> {
        serde_json::from_value(json!({
            "issuer": issuer,
            "client_id": client_id,
            "client_secret": client_secret,
            "token_auth_method": token_auth_method,
            "scopes": scopes,
            "userinfo": userinfo,
            "rp_logout": false,
            "http_timeout_ms": HTTP_TIMEOUT_MS,
        }))
        .map_err(|e| config_error(format!("platform OIDC settings: {e}")))
    }

    #[allow(clippy::too_many_arguments)]
    fn oidc(
        &self,
        kind: PlatformKind,
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
        cfg: OidcConfig,
        secret: SecretSource,
        provider: Arc<ProviderCache>,
        issuer: IssuerRule,
        claims: ClaimMap,
        rules: Arc<dyn ClaimRules>,
    ) -> Result<Arc<dyn Connection>, ConnectionError> {
        let apple = kind == PlatformKind::Apple;
        Ok(Arc::new(OidcConnection::for_platform(
            tenant,
            conn,
            cfg,
            PlatformOidc {
                secret,
                redirect_uri: self.urls.platform_callback(kind),
                provider,
                issuer,
                claims,
                // Apple documents no PKCE parameter, and needs `form_post`
                // for the `name` and `email` scopes.
                pkce: !apple,
                response_mode: apple.then_some("form_post"),
                rules,
                store: self.store.clone(),
                metrics: self.metrics.clone(),
            },
        )?))
    }

    fn claim_map(email: &[&str], email_verified: EmailVerified) -> ClaimMap {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        ClaimMap {
            email: owned(email),
            name: owned(&["name"]),
            groups: Vec::new(),
            email_verified,
            hd_domains: None,
            tid: None,
        }
    }

    fn google(
        &self,
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
    ) -> Result<Arc<dyn Connection>, ConnectionError> {
        let (Some(p), Some(provider)) = (&self.config.providers.google, &self.google) else {
            return Err(unconfigured(conn, PlatformKind::Google));
        };
        let issuer = p.issuer.as_deref().unwrap_or(endpoints::GOOGLE_ISSUER);
        let cfg = self.oidc_config(
            issuer,
            &p.client_id,
            Some(&p.client_secret),
            "client_secret_basic",
            &["email", "profile"],
            true,
        )?;
        self.oidc(
            PlatformKind::Google,
            tenant,
            conn,
            cfg,
            SecretSource::Static(crate::secret::Secret::new(p.client_secret.clone())),
            provider.clone(),
            IssuerRule::Exact(issuer.to_owned()),
            Self::claim_map(&["email"], EmailVerified::Required),
            Arc::new(GoogleRules {
                tenant: tenant.clone(),
                domains: self.domains.clone(),
            }),
        )
    }

    fn microsoft(
        &self,
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
    ) -> Result<Arc<dyn Connection>, ConnectionError> {
        let (Some(p), Some((provider, template))) =
            (&self.config.providers.microsoft, &self.microsoft)
        else {
            return Err(unconfigured(conn, PlatformKind::Microsoft));
        };
        let pins: Vec<String> = conn
            .microsoft
            .as_ref()
            .map(|m| {
                m.tenant_ids
                    .iter()
                    .map(|t| t.to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        // Pinned: the Entra preset's mapping. Unpinned: `email` only, and
        // the rules require `xms_edov`.
        let email: &[&str] = if pins.is_empty() {
            &["email"]
        } else {
            &["email", "preferred_username"]
        };
        let cfg = self.oidc_config(
            template,
            &p.client_id,
            Some(&p.client_secret),
            "client_secret_basic",
            &["email", "profile"],
            false,
        )?;
        self.oidc(
            PlatformKind::Microsoft,
            tenant,
            conn,
            cfg,
            SecretSource::Static(crate::secret::Secret::new(p.client_secret.clone())),
            provider.clone(),
            IssuerRule::EntraTemplate(template.clone()),
            Self::claim_map(email, EmailVerified::DirectoryManaged),
            Arc::new(MicrosoftRules { pins }),
        )
    }

    fn apple(
        &self,
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
    ) -> Result<Arc<dyn Connection>, ConnectionError> {
        let (Some(p), Some((provider, issuer))) = (&self.config.providers.apple, &self.apple)
        else {
            return Err(unconfigured(conn, PlatformKind::Apple));
        };
        let key = ClientKey::from_pem(&p.private_key, Some(p.key_id.clone()))?;
        let cfg = self.oidc_config(
            issuer,
            &p.client_id,
            None,
            "client_secret_post",
            &["name", "email"],
            false,
        )?;
        self.oidc(
            PlatformKind::Apple,
            tenant,
            conn,
            cfg,
            SecretSource::AppleJwt {
                key: Box::new(key),
                team_id: p.team_id.clone(),
                audience: issuer.clone(),
            },
            provider.clone(),
            IssuerRule::Exact(issuer.clone()),
            Self::claim_map(&["email"], EmailVerified::Required),
            Arc::new(AppleRules),
        )
    }
}

/// The issuer template of Microsoft's multi-tenant discovery base:
/// `…/organizations/v2.0` → `…/{tenantid}/v2.0`.
fn microsoft_template(discovery: &str) -> Result<String, ConnectionError> {
    if !discovery.contains(endpoints::MICROSOFT_ORGANIZATIONS) {
        return Err(config_error(format!(
            "the Microsoft discovery base {discovery:?} has no `{}` segment",
            endpoints::MICROSOFT_ORGANIZATIONS
        )));
    }
    Ok(discovery.replacen(
        endpoints::MICROSOFT_ORGANIZATIONS,
        &format!("/{TENANT_PLACEHOLDER}/"),
        1,
    ))
}

fn unconfigured(conn: &ConnectionConfig, kind: PlatformKind) -> ConnectionError {
    config_error(format!(
        "connection `{}`: [platform.providers.{}] is not configured",
        conn.id,
        kind.as_str()
    ))
}

impl ConnectionFactory for PlatformFactory {
    fn build(
        &self,
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
    ) -> Result<Arc<dyn Connection>, ConnectionError> {
        match conn.platform {
            Some(PlatformKind::Google) => self.google(tenant, conn),
            Some(PlatformKind::Microsoft) => self.microsoft(tenant, conn),
            Some(PlatformKind::Apple) => self.apple(tenant, conn),
            Some(PlatformKind::Github) => {
                let Some(p) = &self.config.providers.github else {
                    return Err(unconfigured(conn, PlatformKind::Github));
                };
                Ok(Arc::new(github::GithubConnection::new(
                    p,
                    tenant,
                    conn,
                    github::Deps {
                        redirect_uri: self.urls.platform_callback(PlatformKind::Github),
                        http: self.http.clone(),
                        store: self.store.clone(),
                        domains: self.domains.clone(),
                    },
                )))
            }
            None => Err(config_error(format!(
                "connection `{}` is not a platform connection",
                conn.id
            ))),
        }
    }
}

struct GoogleRules {
    tenant: TenantConfig,
    domains: Arc<dyn DomainRouter>,
}

#[async_trait]
impl ClaimRules for GoogleRules {
    async fn check(&self, claims: &Map<String, Value>) -> Result<(), ConnectionError> {
        let verified = verified_domains(self.domains.as_ref(), &self.tenant).await?;
        rules::google(claims, &verified)
    }
}

struct MicrosoftRules {
    pins: Vec<String>,
}

#[async_trait]
impl ClaimRules for MicrosoftRules {
    async fn check(&self, claims: &Map<String, Value>) -> Result<(), ConnectionError> {
        rules::microsoft(claims, &self.pins)
    }
}

struct AppleRules;

#[async_trait]
impl ClaimRules for AppleRules {
    async fn check(&self, claims: &Map<String, Value>) -> Result<(), ConnectionError> {
        rules::apple(claims)
    }

    /// Apple sends the name once, in the first authorisation's `user` form
    /// field; later logins fall back to the name stored then.
    fn complete(&self, login: &mut VerifiedLogin, req: &CallbackRequest) {
        if login.name.is_none() {
            login.name = req.param("user").and_then(rules::apple_first_time_name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_issuer_template_from_the_discovery_base() {
        assert_eq!(
            microsoft_template(endpoints::MICROSOFT_DISCOVERY).unwrap(),
            "https://login.microsoftonline.com/{tenantid}/v2.0"
        );
        assert_eq!(
            microsoft_template("http://127.0.0.1:9/organizations/v2.0").unwrap(),
            "http://127.0.0.1:9/{tenantid}/v2.0"
        );
        assert_eq!(
            microsoft_template("http://127.0.0.1:9/common/v2.0")
                .unwrap_err()
                .reason,
            "config"
        );
    }
}
