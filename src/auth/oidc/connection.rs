//! `OidcConnection`: the connection boundary for OpenID Connect. `start`
//! builds an authorization-code request with PKCE (S256), `state` = the
//! flow relay and a fresh nonce, and keeps the verifier and nonce in the
//! encrypted flow cookie; `finish` burns the state once in the shared
//! store, exchanges the code (no redirects followed), verifies the ID
//! token, falls back to userinfo for missing claims and maps the claims.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm};
use openidconnect::{
    AccessToken, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, LoginHint, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, TokenResponse,
};
use serde_json::{Map, Value, json};

use super::claims::{ClaimMap, Mapped, to_login};
use super::client_auth::{ASSERTION_TYPE, ClientKey};
use super::http::ProviderHttp;
use super::issuer::IssuerRule;
use super::presets::{EmailVerified, entra_tenant_id, preset};
use super::provider::{Discovered, ProviderCache};
use super::verify::{Expect, parse_algs, verify};
use crate::auth::egress::{Egress, Guard};
use crate::auth::flow::FLOW_LIFETIME_SECONDS;
use crate::auth::{
    CallbackRequest, Connection, ConnectionError, ConnectionFactory, LoginStart, StartContext,
    VerifiedLogin,
};
use crate::config::EgressRules;
use crate::config::{ConnectionConfig, OidcConfig, PublicUrls, TenantConfig, TokenAuthMethod};
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::store::{IdpBinding, Store};

/// One-time store kind for consumed `state` values: a callback URL
/// replayed with a copied flow cookie fails on every replica.
pub const STATE_KIND: &str = "oidc-state";

/// Longest `code` accepted from the query.
const MAX_CODE_BYTES: usize = 4096;

pub struct OidcConnection {
    id: String,
    cfg: OidcConfig,
    secret: SecretSource,
    client_key: Option<ClientKey>,
    redirect_uri: String,
    provider: Arc<ProviderCache>,
    issuer: IssuerRule,
    /// Off only for a provider that documents no PKCE (Apple).
    pkce: bool,
    /// `form_post` where the provider requires it (Apple, for the `name`
    /// and `email` scopes).
    response_mode: Option<&'static str>,
    /// A pre-configured provider's own rules on the verified claims.
    rules: Option<Arc<dyn ClaimRules>>,
    algs: Vec<CoreJwsSigningAlgorithm>,
    scopes: Vec<String>,
    claims: ClaimMap,
    store: Store,
    /// Claims the headers and the assertion read (`[[headers.extra]]`,
    /// `assertion_claims`, this connection's `header_claims`): userinfo
    /// is asked for them when the ID token lacks one.
    mapped: Vec<String>,
    /// What an Entra groups overage turns into.
    overage: crate::auth::graph::OveragePolicy,
}

/// Where the client secret of the token request comes from.
pub(crate) enum SecretSource {
    None,
    Static(Secret),
    /// Sign in with Apple: an ES256 JWT minted per request with the
    /// operator's key (`kid` in `key`) for `audience` (Apple's issuer).
    AppleJwt {
        key: Box<ClientKey>,
        team_id: String,
        audience: String,
    },
}

/// What a pre-configured provider adds to the ID token checks: rules on
/// the verified claims (before they become a login), and a last touch on
/// the login from the callback itself (Apple's first-time name).
#[async_trait]
pub(crate) trait ClaimRules: Send + Sync {
    async fn check(&self, claims: &Map<String, Value>) -> Result<(), ConnectionError>;

    fn complete(&self, _login: &mut VerifiedLogin, _req: &CallbackRequest) {}
}

/// Everything a pre-configured provider's connection is built from
/// (`auth::platform` fills it in).
pub(crate) struct PlatformOidc {
    pub(crate) secret: SecretSource,
    pub(crate) redirect_uri: String,
    pub(crate) provider: Arc<ProviderCache>,
    pub(crate) issuer: IssuerRule,
    pub(crate) claims: ClaimMap,
    pub(crate) pkce: bool,
    pub(crate) response_mode: Option<&'static str>,
    pub(crate) rules: Arc<dyn ClaimRules>,
    pub(crate) store: Store,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).filter(|c| !c.is_control()).collect()
}

impl OidcConnection {
    /// `guard` is what the provider's URLs are fetched through.
    pub(crate) fn new(
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
        redirect_uri: String,
        store: Store,
        metrics: Option<Arc<Metrics>>,
        guard: Guard,
    ) -> Result<Self, ConnectionError> {
        let cfg = conn.oidc.clone().ok_or_else(|| {
            ConnectionError::new(
                "config",
                format!("connection `{}` has no oidc settings", conn.id),
            )
        })?;
        let p = preset(conn.preset.as_deref());
        let pick = |over: &Option<String>, default: &[&str]| match over {
            Some(o) => vec![o.clone()],
            None => default.iter().map(|s| s.to_string()).collect(),
        };
        let tid = if p.check_tid {
            Some(entra_tenant_id(&cfg.issuer).ok_or_else(|| {
                ConnectionError::new(
                    "config",
                    format!(
                        "connection `{}`: the Entra issuer must name the tenant id (https://login.microsoftonline.com/{{tenant-id}}/v2.0)",
                        conn.id
                    ),
                )
            })?)
        } else {
            None
        };
        let claims = ClaimMap {
            email: pick(&cfg.email_claim, p.email_claims),
            name: pick(&cfg.name_claim, p.name_claims),
            groups: pick(&cfg.groups_claim, p.groups_claims),
            email_verified: p.email_verified,
            hd_domains: p.check_hd.then(|| tenant.domains.clone()),
            tid,
        };
        let mut scopes: Vec<String> = match &cfg.scopes {
            Some(s) => s.clone(),
            None => p.scopes.iter().map(|s| s.to_string()).collect(),
        };
        scopes.retain(|s| s != "openid");
        let client_key = match cfg.token_auth_method {
            TokenAuthMethod::PrivateKeyJwt => Some(ClientKey::from_pem(
                cfg.private_key.as_deref().unwrap_or(""),
                cfg.private_key_id.clone(),
            )?),
            _ => None,
        };
        let graph_guard = guard.clone();
        let http = ProviderHttp::new(cfg.http_timeout_ms, guard)
            .map_err(|e| ConnectionError::new("config", format!("http client: {e}")))?;
        let provider = Arc::new(ProviderCache::new(
            &cfg.issuer,
            http,
            Duration::from_secs(cfg.discovery_refresh_seconds),
            Duration::from_secs(cfg.jwks_min_refresh_seconds),
        ));
        let algs = parse_algs(&cfg.allowed_algs);
        if algs.is_empty() {
            return Err(ConnectionError::new(
                "config",
                format!("connection `{}`: no usable allowed_algs", conn.id),
            ));
        }
        Ok(Self {
            id: conn.id.clone(),
            secret: cfg
                .client_secret
                .clone()
                .map_or(SecretSource::None, |s| SecretSource::Static(Secret::new(s))),
            client_key,
            redirect_uri,
            provider,
            issuer: IssuerRule::Exact(cfg.issuer.clone()),
            pkce: true,
            response_mode: None,
            rules: None,
            algs,
            scopes,
            claims,
            store,
            mapped: Vec::new(),
            overage: crate::auth::graph::OveragePolicy::for_connection(
                &tenant.id,
                conn,
                metrics,
                graph_guard,
            )?,
            cfg,
        })
    }

    /// A connection of a pre-configured provider: the same flow and ID
    /// token checks, with the provider's issuer rule, client secret, flow
    /// variant and claim rules. `conn` is the tenant's connection; `cfg`
    /// the OIDC settings the provider's section stands for.
    pub(crate) fn for_platform(
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
        cfg: OidcConfig,
        p: PlatformOidc,
    ) -> Result<Self, ConnectionError> {
        let as_oidc = ConnectionConfig {
            oidc: Some(cfg),
            preset: None,
            ..conn.clone()
        };
        let guard = p.provider.http().guard().clone();
        let mut c = Self::new(tenant, &as_oidc, p.redirect_uri, p.store, p.metrics, guard)?;
        c.secret = p.secret;
        c.provider = p.provider;
        c.issuer = p.issuer;
        c.claims = p.claims;
        c.pkce = p.pkce;
        c.response_mode = p.response_mode;
        c.rules = Some(p.rules);
        Ok(c)
    }

    fn client_id(&self) -> ClientId {
        ClientId::new(self.cfg.client_id.clone())
    }

    fn redirect(&self) -> Result<RedirectUrl, ConnectionError> {
        RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|e| ConnectionError::new("config", format!("redirect_uri: {e}")))
    }

    fn expect<'a>(&'a self, now: i64, issuer: &'a str) -> Expect<'a> {
        Expect {
            client_id: &self.cfg.client_id,
            issuer,
            algs: &self.algs,
            trusted_audiences: &self.cfg.trusted_audiences,
            skew: i64::try_from(self.cfg.clock_skew_seconds).unwrap_or(120),
            now,
        }
    }

    /// Code → tokens at the token endpoint, authenticated as configured.
    async fn exchange(
        &self,
        d: &Discovered,
        code: &str,
        verifier: Option<&str>,
        now: i64,
    ) -> Result<openidconnect::core::CoreTokenResponse, ConnectionError> {
        let secret = match (&self.secret, self.cfg.token_auth_method) {
            (_, TokenAuthMethod::PrivateKeyJwt) | (SecretSource::None, _) => None,
            (SecretSource::Static(s), _) => Some(ClientSecret::new(s.expose().to_owned())),
            (
                SecretSource::AppleJwt {
                    key,
                    team_id,
                    audience,
                },
                _,
            ) => Some(ClientSecret::new(key.apple_client_secret(
                team_id,
                &self.cfg.client_id,
                audience,
                now,
            )?)),
        };
        let auth_type = match self.cfg.token_auth_method {
            TokenAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
            _ => AuthType::RequestBody,
        };
        let client =
            CoreClient::from_provider_metadata(d.metadata.clone(), self.client_id(), secret)
                .set_redirect_uri(self.redirect()?)
                .set_auth_type(auth_type);
        let mut req = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ConnectionError::new("discovery", e.to_string()))?;
        if let Some(v) = verifier {
            req = req.set_pkce_verifier(PkceCodeVerifier::new(v.to_owned()));
        }
        if let Some(key) = &self.client_key {
            let assertion = key.assertion(&self.cfg.client_id, &d.token_endpoint, now)?;
            req = req
                .add_extra_param("client_assertion_type", ASSERTION_TYPE)
                .add_extra_param("client_assertion", assertion);
        }
        req.request_async(self.provider.http()).await.map_err(|e| {
            let detail = match &e {
                RequestTokenError::ServerResponse(r) => format!(
                    "token endpoint refused: {} {}",
                    r.error(),
                    truncate(r.error_description().map(String::as_str).unwrap_or(""), 200)
                ),
                RequestTokenError::Request(err) => format!("token endpoint unreachable: {err:?}"),
                RequestTokenError::Parse(err, _) => format!("token response unparsable: {err}"),
                RequestTokenError::Other(m) => format!("token endpoint: {m}"),
            };
            ConnectionError::new("token_exchange", detail)
        })
    }

    /// Claims the ID token lacks, from the userinfo endpoint (JSON only);
    /// its `sub` must be the ID token's.
    async fn userinfo(
        &self,
        d: &Discovered,
        access_token: &AccessToken,
        sub: &str,
    ) -> Result<Map<String, Value>, ConnectionError> {
        let url = d
            .userinfo_endpoint
            .as_deref()
            .ok_or_else(|| ConnectionError::new("userinfo", "provider has no userinfo endpoint"))?;
        let req = http::Request::builder()
            .method(http::Method::GET)
            .uri(url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", access_token.secret()),
            )
            .body(Vec::new())
            .map_err(|e| ConnectionError::new("userinfo", e.to_string()))?;
        let resp = self
            .provider
            .http()
            .send(req)
            .await
            .map_err(|e| ConnectionError::new("userinfo", e.to_string()))?;
        if resp.status() != 200 {
            return Err(ConnectionError::new(
                "userinfo",
                format!("HTTP {}", resp.status()),
            ));
        }
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(resp.body()) else {
            return Err(ConnectionError::new(
                "userinfo",
                "not a JSON object (signed userinfo is not supported)",
            ));
        };
        if m.get("sub").and_then(Value::as_str) != Some(sub) {
            return Err(ConnectionError::new(
                "userinfo",
                "userinfo `sub` is not the ID token's",
            ));
        }
        Ok(m)
    }

    /// Verifies the ID token, fetching the keys once more (rate-limited)
    /// when it names a key we don't have.
    async fn verify_id_token(
        &self,
        d: Arc<Discovered>,
        token: &openidconnect::core::CoreIdToken,
        nonce: &Nonce,
        access_token: &AccessToken,
        now: i64,
    ) -> Result<(Arc<Discovered>, Map<String, Value>), ConnectionError> {
        let issuer = self.issuer.expected(&token.to_string())?;
        let expect = self.expect(now, &issuer);
        match verify(token, d.metadata.jwks(), &expect, nonce, Some(access_token)) {
            Ok(c) => Ok((d, c)),
            Err(e) if e.reason == "unknown_key" => match self.provider.refresh_keys(&d).await? {
                Some(fresh) => {
                    let c = verify(
                        token,
                        fresh.metadata.jwks(),
                        &expect,
                        nonce,
                        Some(access_token),
                    )
                    .map_err(|e| match e.reason {
                        "unknown_key" => ConnectionError::new("signature", e.detail),
                        _ => e,
                    })?;
                    Ok((fresh, c))
                }
                None => Err(ConnectionError::new(
                    "signature",
                    "no key for the token's kid (key set fetched too recently to fetch again)",
                )),
            },
            Err(e) => Err(e),
        }
    }

    fn needs_userinfo(&self, claims: &Map<String, Value>) -> (bool, bool) {
        let has = |names: &[String]| names.iter().any(|n| claims.contains_key(n));
        let required = !has(&self.claims.email)
            || (self.claims.email_verified == EmailVerified::Required
                && !claims.contains_key("email_verified"));
        let optional = !has(&self.claims.name)
            || (!self.claims.groups.is_empty()
                && !has(&self.claims.groups)
                && !claims.contains_key("_claim_names"))
            || self.mapped.iter().any(|c| !claims.contains_key(c));
        (required, optional)
    }

    /// Where to send the browser to end its session at the provider
    /// (RP-initiated logout), if the provider supports it.
    pub async fn end_session_url(&self, idp: &IdpBinding) -> Option<String> {
        if !self.cfg.rp_logout {
            return None;
        }
        let d = match self.provider.get().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(connection = %self.id, error = %e, "RP-initiated logout skipped: discovery failed");
                return None;
            }
        };
        let endpoint = d.end_session_endpoint.as_deref()?;
        let mut url = openidconnect::url::Url::parse(endpoint).ok()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = &idp.logout_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", &self.cfg.client_id);
            if let Some(p) = &self.cfg.post_logout_redirect_uri {
                q.append_pair("post_logout_redirect_uri", p);
            }
        }
        Some(url.to_string())
    }

    /// Validates a back-channel logout token; returns `(sub, sid)`.
    pub async fn logout_token(
        &self,
        token: &str,
    ) -> Result<(Option<String>, Option<String>), ConnectionError> {
        let d = self.provider.get().await?;
        let now = crate::clock::now();
        let check = |d: &Discovered| {
            super::logout::verify_logout_token(
                token,
                d.metadata.jwks(),
                &self.expect(now, &self.cfg.issuer),
            )
        };
        let claims = match check(&d) {
            Err(e) if e.reason == "unknown_key" => match self.provider.refresh_keys(&d).await? {
                Some(fresh) => check(&fresh).map_err(|e| match e.reason {
                    "unknown_key" => ConnectionError::new("signature", e.detail),
                    _ => e,
                }),
                None => Err(ConnectionError::new(
                    "signature",
                    "no key for the token's kid (key set fetched too recently to fetch again)",
                )),
            },
            other => other,
        }?;
        let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
        let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(now);
        let keep_until = iat
            + super::logout::MAX_LOGOUT_TOKEN_AGE_SECONDS
            + 2 * self.expect(now, &self.cfg.issuer).skew;
        let first = self
            .store
            .one_time()
            .consume(
                super::logout::JTI_KIND,
                &format!("{}:{jti}", self.id),
                keep_until,
            )
            .await
            .map_err(|e| ConnectionError::new("store", e.to_string()))?;
        if !first {
            return Err(ConnectionError::new(
                "replay",
                format!("logout token jti {jti:?} already used"),
            ));
        }
        let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok((s("sub"), s("sid")))
    }
}

impl OidcConnection {
    /// Machine access: verifies a client-credentials access token for this
    /// connection's `machine_audience` against the provider's keys (fetched
    /// again once for an unknown `kid`, within the refetch limit).
    pub async fn access_token(&self, token: &str) -> Result<Map<String, Value>, ConnectionError> {
        let Some(audience) = self.cfg.machine_audience.as_deref() else {
            return Err(ConnectionError::new(
                "unsupported",
                "machine access is off for this connection (no machine_audience)",
            ));
        };
        let d = self.provider.get().await?;
        let now = crate::clock::now();
        let check = |d: &Discovered| {
            super::machine::verify_access_token(
                token,
                d.metadata.jwks(),
                &self.expect(now, &self.cfg.issuer),
                audience,
            )
        };
        match check(&d) {
            Err(e) if e.reason == "unknown_key" => match self.provider.refresh_keys(&d).await? {
                Some(fresh) => check(&fresh).map_err(|e| match e.reason {
                    "unknown_key" => ConnectionError::new("signature", e.detail),
                    _ => e,
                }),
                None => Err(ConnectionError::new(
                    "signature",
                    "no key for the token's kid (key set fetched too recently to fetch again)",
                )),
            },
            other => other,
        }
    }
}

#[async_trait]
impl Connection for OidcConnection {
    fn id(&self) -> &str {
        &self.id
    }

    async fn start(&self, ctx: &StartContext) -> Result<LoginStart, ConnectionError> {
        let d = self.provider.get().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let verifier = self.pkce.then_some(verifier);
        let nonce = Nonce::new_random();
        let relay = ctx.relay.clone();
        let n = nonce.clone();
        let client = CoreClient::from_provider_metadata(d.metadata.clone(), self.client_id(), None)
            .set_redirect_uri(self.redirect()?);
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(relay),
            move || n,
        );
        if verifier.is_some() {
            req = req.set_pkce_challenge(challenge);
        }
        if let Some(mode) = self.response_mode {
            req = req.add_extra_param("response_mode", mode);
        }
        for s in &self.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        if let Some(hint) = &ctx.login_hint {
            req = req.set_login_hint(LoginHint::new(hint.clone()));
        }
        for (k, v) in &self.cfg.extra_auth_params {
            req = req.add_extra_param(k.clone(), v.clone());
        }
        // Step-up (OIDC Core 3.1.2.1): voluntary `acr_values` and
        // `max_age`; the callback checks what the provider achieved.
        if let Some(ask) = &ctx.step_up {
            if !ask.acr_values.is_empty() {
                req = req.add_extra_param("acr_values", ask.acr_values.join(" "));
            }
            if let Some(m) = ask.max_age {
                req = req.add_extra_param("max_age", m.to_string());
            }
        }
        let (url, _, _) = req.url();
        Ok(LoginStart {
            redirect_to: url.to_string(),
            state: json!({
                "nonce": nonce.secret(),
                "pkce_verifier": verifier.as_ref().map(|v| v.secret()),
            }),
        })
    }

    async fn finish(
        &self,
        req: &CallbackRequest,
        state: &Value,
    ) -> Result<VerifiedLogin, ConnectionError> {
        if let Some(err) = req.param("error") {
            return Err(ConnectionError::new(
                "idp_error",
                format!(
                    "{}: {}",
                    truncate(err, 100),
                    truncate(req.param("error_description").unwrap_or(""), 300)
                ),
            ));
        }
        let relay = req
            .relay()
            .ok_or_else(|| ConnectionError::new("missing_state", "no state"))?;
        let nonce = state
            .get("nonce")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ConnectionError::new("state_mismatch", "flow has no nonce"))?;
        let verifier = state
            .get("pkce_verifier")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if self.pkce && verifier.is_none() {
            return Err(ConnectionError::new(
                "pkce_missing",
                "flow has no PKCE verifier",
            ));
        }
        let code = req
            .param("code")
            .filter(|c| !c.is_empty() && c.len() <= MAX_CODE_BYTES)
            .ok_or_else(|| ConnectionError::new("malformed", "callback without a usable code"))?;
        // RFC 9207: when the provider names itself, it must be ours (mix-up).
        if let Some(iss) = req.param("iss")
            && !self.issuer.admits(iss)
        {
            return Err(ConnectionError::new(
                "issuer",
                format!(
                    "callback iss {:?} is not {:?}",
                    truncate(iss, 200),
                    self.cfg.issuer
                ),
            ));
        }
        let now = crate::clock::now();
        let first = self
            .store
            .one_time()
            .consume(STATE_KIND, relay, now + FLOW_LIFETIME_SECONDS + 60)
            .await
            .map_err(|e| ConnectionError::new("store", e.to_string()))?;
        if !first {
            return Err(ConnectionError::new(
                "replay",
                "this state was already used (callback replayed)",
            ));
        }
        let d = self.provider.get().await?;
        let tokens = self.exchange(&d, code, verifier, now).await?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| ConnectionError::new("malformed", "token response has no id_token"))?;
        let (d, mut claims) = self
            .verify_id_token(
                d,
                id_token,
                &Nonce::new(nonce.to_owned()),
                tokens.access_token(),
                now,
            )
            .await?;
        // From the ID token alone, before userinfo adds anything.
        let auth = super::claims::auth_facts(&claims);
        let (required, optional) = self.needs_userinfo(&claims);
        if self.cfg.userinfo && d.userinfo_endpoint.is_some() && (required || optional) {
            let sub = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match self.userinfo(&d, tokens.access_token(), &sub).await {
                Ok(extra) => {
                    for (k, v) in extra {
                        claims.entry(k).or_insert(v);
                    }
                }
                Err(e) if required => return Err(e),
                Err(e) => {
                    tracing::warn!(connection = %self.id, error = %e, "userinfo failed; continuing with the ID token's claims")
                }
            }
        }
        if let Some(rules) = &self.rules {
            rules.check(&claims).await?;
        }
        // `sid` is already the login's `idp_session`.
        let Mapped {
            mut login,
            groups_overage,
            sid: _,
        } = to_login(&self.id, &claims, &self.claims)?;
        if let Some(rules) = &self.rules {
            rules.complete(&mut login, req);
        }
        login.groups_overage = groups_overage;
        self.overage.settle(&mut login).await?;
        login.logout_hint = Some(id_token.to_string());
        login.auth = auth;
        Ok(login)
    }

    async fn logout_redirect(&self, idp: &IdpBinding) -> Option<String> {
        self.end_session_url(idp).await
    }

    async fn backchannel_logout(
        &self,
        logout_token: &str,
    ) -> Result<(Option<String>, Option<String>), ConnectionError> {
        self.logout_token(logout_token).await
    }

    async fn machine_token(&self, token: &str) -> Result<Map<String, Value>, ConnectionError> {
        self.access_token(token).await
    }
}

/// Builds OIDC connections; needs the store (one-time state and logout
/// token ids) and the public URL (the redirect URI).
pub struct OidcFactory {
    store: Store,
    urls: PublicUrls,
    metrics: Option<Arc<Metrics>>,
    clock: crate::clock::Clock,
    headers: crate::config::HeadersConfig,
    egress: Option<Egress>,
}

impl OidcFactory {
    pub fn new(store: Store, urls: PublicUrls, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            store,
            urls,
            metrics,
            clock: crate::clock::Clock::system(),
            headers: crate::config::HeadersConfig::default(),
            egress: None,
        }
    }
}

impl OidcFactory {
    /// Connections built from here time their provider intervals by `clock`.
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// What providers are fetched through (without it: public hosts only,
    /// the system resolver).
    pub fn with_egress(mut self, egress: Egress) -> Self {
        self.egress = Some(egress);
        self
    }

    /// Connections built from here ask userinfo for the claims these
    /// headers map when the ID token lacks them.
    pub fn with_headers(mut self, headers: crate::config::HeadersConfig) -> Self {
        self.headers = headers;
        self
    }
}

impl ConnectionFactory for OidcFactory {
    fn build(
        &self,
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
    ) -> Result<Arc<dyn Connection>, ConnectionError> {
        let redirect_uri = self.urls.oidc_callback(&conn.id);
        let egress = match &self.egress {
            Some(e) => e.clone(),
            None => Egress::with_rules(EgressRules::public_only())
                .map_err(|e| ConnectionError::new("config", e.to_string()))?,
        };
        let mut connection = OidcConnection::new(
            tenant,
            conn,
            redirect_uri,
            self.store.clone(),
            self.metrics.clone(),
            egress.for_tenant(tenant, &conn.id),
        )?;
        if let Some(p) = Arc::get_mut(&mut connection.provider) {
            p.set_clock(self.clock.clone());
        }
        connection.mapped = self
            .headers
            .claim_sources(&conn.header_claims)
            .into_iter()
            .map(|(_, source)| source)
            .collect();
        Ok(Arc::new(connection))
    }
}
