//! `SamlConnection`: the connection boundary for SAML. `start` sends an
//! AuthnRequest over HTTP-Redirect and keeps its id in the flow cookie;
//! `finish` verifies the POSTed response against that id, burns the
//! assertion id in the shared store and maps the claims.
//!
//! One-time ids (assertions, IdP LogoutRequests) are remembered per
//! connection: an id is only meaningful to the IdP that issued it, and a
//! shared namespace would let one tenant's IdP burn another's assertion ids
//! ahead of time (a denial of service across tenants).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use samael::service_provider::ServiceProvider;

use crate::auth::egress::{Egress, Guard};
use crate::auth::{
    CallbackRequest, Connection, ConnectionError, ConnectionFactory, LoginStart, StartContext,
    VerifiedLogin,
};
use crate::config::EgressRules;
use crate::config::{ConnectionConfig, PublicUrls, TenantConfig};
use crate::metrics::Metrics;
use crate::store::{IdpBinding, Store};

use super::claims::{AttributeMap, to_login};
use super::decrypt::decrypt_response;
use super::keys::SpKey;
use super::metadata::{Fingerprint, IdpMetadata};
use super::presets::preset_attributes;
use super::remote::{FETCH_TIMEOUT, HoldsIdp, MetadataCache, Refresh, spawn_refresh};
use super::request::{authn_request_xml, new_request_id, redirect_url};
use super::response::has_dtd;
use super::response::{Expectations, decode, precheck, samael_algorithms, verify};
use super::sp_metadata::{SpMetadata, sp_metadata_xml};
use super::{REPLAY_KIND, sp_ids};

mod slo;

/// Longest accepted age of a response's/assertion's IssueInstant, on top of
/// the configured clock skew.
const MAX_ISSUE_DELAY_SECONDS: i64 = 300;

/// What a connection trusts, swapped whole when metadata from a URL is
/// refreshed: the IdP and the samael verifiers built from it.
pub struct Trust {
    pub idp: IdpMetadata,
    sp: Arc<ServiceProvider>,
    /// The same checks with samael's `allow_idp_initiated`, used only for
    /// unsolicited responses of connections that opt in.
    sp_unsolicited: Arc<ServiceProvider>,
}

impl HoldsIdp for Trust {
    fn idp(&self) -> &IdpMetadata {
        &self.idp
    }
}

/// What this SP says about itself to samael; fixed per connection.
#[derive(Clone)]
struct SpSettings {
    entity_id: String,
    acs_url: String,
    skew_seconds: i64,
    allow_sha1: bool,
}

impl SpSettings {
    fn trust(&self, idp: IdpMetadata) -> Trust {
        // Every field samael would otherwise default to a localhost URL or
        // to "allow everything" is set explicitly.
        let sp = ServiceProvider {
            entity_id: Some(self.entity_id.clone()),
            metadata_url: Some(self.entity_id.clone()),
            acs_url: Some(self.acs_url.clone()),
            slo_url: None,
            idp_metadata: idp.descriptor.clone(),
            authn_name_id_format: Some(super::request::EMAIL_NAME_ID.into()),
            allow_idp_initiated: false,
            max_issue_delay: chrono::Duration::seconds(MAX_ISSUE_DELAY_SECONDS + self.skew_seconds),
            max_clock_skew: chrono::Duration::seconds(self.skew_seconds),
            allowed_signature_algorithms: samael_algorithms(self.allow_sha1),
            ..ServiceProvider::default()
        };
        Trust {
            idp,
            sp_unsolicited: Arc::new(ServiceProvider {
                allow_idp_initiated: true,
                ..sp.clone()
            }),
            sp: Arc::new(sp),
        }
    }
}

pub struct SamlConnection {
    id: String,
    /// `None` only while metadata from a URL has never been fetched.
    trust: Arc<ArcSwapOption<Trust>>,
    /// With a metadata URL: turns true when its first fetch has ended.
    first_fetch: Option<tokio::sync::watch::Receiver<bool>>,
    pub sp_entity_id: String,
    pub acs_url: String,
    allow_sha1: bool,
    skew_seconds: i64,
    attributes: AttributeMap,
    allow_idp_initiated: bool,
    landing_path: Option<String>,
    /// Sign AuthnRequests (and LogoutRequests) with `sp_key`.
    sign_requests: bool,
    /// This SP's key pair: signs requests, decrypts assertions.
    sp_key: Option<Arc<SpKey>>,
    /// This SP's single logout endpoint (`…/saml/{id}/slo`).
    pub slo_url: String,
    store: Store,
    /// The one-time store kinds of this connection's assertion ids and of
    /// its IdP's LogoutRequest ids (`{kind}:{connection}`).
    assertion_replay_kind: String,
    logout_replay_kind: String,
    /// What an Entra groups overage (`groups.link`) turns into.
    overage: crate::auth::graph::OveragePolicy,
}

/// A one-time store kind scoped to one connection. Connection ids are slugs
/// (no `:`), so two connections never share a kind.
pub(super) fn replay_kind(base: &str, connection: &str) -> String {
    format!("{base}:{connection}")
}

impl SamlConnection {
    /// A connection whose remote metadata, if any, is fetched from public
    /// addresses only (see [`SamlConnection::guarded`]).
    pub fn new(
        conn: &ConnectionConfig,
        urls: &PublicUrls,
        store: Store,
        dev_idp: Option<&super::dev_idp::DevIdp>,
        metrics: Option<Arc<Metrics>>,
        metadata_cache: &MetadataCache,
    ) -> Result<Self, ConnectionError> {
        Self::guarded(conn, urls, store, dev_idp, metrics, metadata_cache, None)
    }

    /// [`SamlConnection::new`] with the egress guard `idp_metadata_url` is
    /// fetched through (`None`: public hosts only, the system resolver).
    pub(crate) fn guarded(
        conn: &ConnectionConfig,
        urls: &PublicUrls,
        store: Store,
        dev_idp: Option<&super::dev_idp::DevIdp>,
        metrics: Option<Arc<Metrics>>,
        metadata_cache: &MetadataCache,
        guard: Option<Guard>,
    ) -> Result<Self, ConnectionError> {
        let cfg = conn.saml.as_ref().ok_or_else(|| {
            ConnectionError::new(
                "config",
                format!("connection `{}` has no saml settings", conn.id),
            )
        })?;
        let sp_key = match (&cfg.sp_key_file, &cfg.sp_cert_file) {
            (Some(k), Some(c)) => Some(Arc::new(SpKey::load(k, c).map_err(|e| {
                ConnectionError::new("config", format!("connection `{}`: {e}", conn.id))
            })?)),
            _ => None,
        };
        if cfg.sign_requests && sp_key.is_none() {
            return Err(ConnectionError::new(
                "config",
                format!(
                    "connection `{}`: sign_requests needs sp_key_file and sp_cert_file",
                    conn.id
                ),
            ));
        }
        let pins = cfg
            .idp_certificate_fingerprints
            .iter()
            .map(|p| {
                crate::config::parse_sha256_fingerprint(p).ok_or_else(|| {
                    ConnectionError::new(
                        "config",
                        format!(
                            "connection `{}`: {p:?} is not a SHA-256 fingerprint",
                            conn.id
                        ),
                    )
                })
            })
            .collect::<Result<Vec<Fingerprint>, _>>()?;
        let (sp_entity_id, acs_url) = sp_ids(conn, urls);
        let skew_seconds = i64::try_from(cfg.clock_skew_seconds).unwrap_or(600);
        let settings = SpSettings {
            entity_id: sp_entity_id.clone(),
            acs_url: acs_url.clone(),
            skew_seconds,
            allow_sha1: cfg.allow_sha1,
        };
        // `idp = "dev"`: the built-in development IdP's generated metadata,
        // verified exactly like any other IdP's.
        let loaded = match (cfg.idp.as_deref(), dev_idp, &cfg.idp_metadata_url) {
            (Some("dev"), Some(dev), _) => Some(IdpMetadata::from_xml(&dev.metadata_xml())),
            (Some(other), _, _) => {
                return Err(ConnectionError::new(
                    "config",
                    format!(
                        "connection `{}`: `idp = \"{other}\"` needs `[dev_idp]`",
                        conn.id
                    ),
                ));
            }
            // The last good copy of an earlier generation, if it still
            // satisfies this generation's pins; else wait for a fetch.
            (None, _, Some(url)) => metadata_cache
                .get(&conn.id, url)
                .filter(|md| match md.check_pins(&pins) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(connection = %conn.id, error = %e, "cached IdP metadata no longer matches the pins; waiting for a fetch");
                        false
                    }
                })
                .map(Ok),
            (None, _, None) => Some(IdpMetadata::load(cfg)),
        };
        // Inline, file and dev metadata must satisfy the pins now: a
        // startup (or reload) error that names the connection.
        let idp = loaded
            .map(|r| r.and_then(|md| md.check_pins(&pins).map(|()| md)))
            .transpose()
            .map_err(|e| {
                ConnectionError::new("metadata", format!("connection `{}`: {e}", conn.id))
            })?;
        let trust = Arc::new(ArcSwapOption::new(idp.map(|m| Arc::new(settings.trust(m)))));
        let mut first_fetch = None;
        if let (None, Some(url)) = (&cfg.idp, &cfg.idp_metadata_url) {
            let guard = match guard {
                Some(g) => g,
                None => public_guard(&conn.id)?,
            };
            spawn_refresh(
                Refresh {
                    connection: conn.id.clone(),
                    url: url.clone(),
                    every: Duration::from_secs(cfg.metadata_refresh_seconds),
                    pins,
                    cache: metadata_cache.clone(),
                    metrics,
                    guard,
                },
                Arc::downgrade(&trust),
                {
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    first_fetch = Some(rx);
                    tx
                },
                move |md| settings.trust(md),
            );
        }
        Ok(Self {
            id: conn.id.clone(),
            trust,
            first_fetch,
            sp_entity_id,
            acs_url,
            allow_sha1: cfg.allow_sha1,
            skew_seconds,
            attributes: preset_attributes(conn.preset.as_deref(), cfg),
            allow_idp_initiated: cfg.allow_idp_initiated,
            landing_path: cfg.landing_path.clone(),
            sign_requests: cfg.sign_requests,
            sp_key,
            slo_url: cfg
                .slo_url
                .clone()
                .unwrap_or_else(|| urls.saml_slo(&conn.id)),
            store,
            assertion_replay_kind: replay_kind(REPLAY_KIND, &conn.id),
            logout_replay_kind: replay_kind(super::LOGOUT_REPLAY_KIND, &conn.id),
            overage: crate::auth::graph::OveragePolicy::default(),
        })
    }

    /// Resolves (or refuses) groups overages by `overage`; without it an
    /// overage is refused.
    pub(crate) fn with_overage(mut self, overage: crate::auth::graph::OveragePolicy) -> Self {
        self.overage = overage;
        self
    }

    /// This SP's metadata (served at `…/saml/{id}/metadata`).
    pub fn sp_metadata_xml(&self) -> String {
        let cert = self.sp_key.as_ref().map(|k| k.cert_b64());
        sp_metadata_xml(&SpMetadata {
            entity_id: &self.sp_entity_id,
            acs_url: &self.acs_url,
            slo_url: Some(&self.slo_url),
            cert_b64: cert.as_deref(),
            sign_requests: self.sign_requests,
        })
    }

    /// What the connection trusts now; refused while metadata from a URL
    /// has never loaded.
    pub fn trust(&self) -> Result<Arc<Trust>, ConnectionError> {
        self.trust.load_full().ok_or_else(|| {
            ConnectionError::new(
                "metadata_unavailable",
                "the IdP metadata URL has not been fetched successfully yet",
            )
        })
    }

    /// [`Self::trust`], after waiting for the metadata URL's first fetch
    /// if it is still in flight (see `remote`): a connection saved a moment
    /// ago must not refuse the admin's test sign-in because their IdP took
    /// a second to serve its metadata.
    async fn trust_ready(&self) -> Result<Arc<Trust>, ConnectionError> {
        if self.trust.load().is_none()
            && let Some(first) = &self.first_fetch
        {
            let mut first = first.clone();
            // Ended (true) or the loop is gone (error): either way, look.
            let _ = tokio::time::timeout(FETCH_TIMEOUT, first.wait_for(|ended| *ended)).await;
        }
        self.trust()
    }
}

#[async_trait]
impl Connection for SamlConnection {
    fn id(&self) -> &str {
        &self.id
    }

    async fn start(&self, ctx: &StartContext) -> Result<LoginStart, ConnectionError> {
        let trust = self.trust_ready().await?;
        let request_id = new_request_id();
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let xml = authn_request_xml(
            &request_id,
            &now,
            &trust.idp.sso_url,
            &self.acs_url,
            &self.sp_entity_id,
            ctx.step_up.as_ref(),
        );
        let key = self.sp_key.as_deref().filter(|_| self.sign_requests);
        let redirect_to = redirect_url(&trust.idp.sso_url, &xml, &ctx.relay, key)
            .map_err(|e| ConnectionError::new("internal", format!("deflate: {e}")))?;
        Ok(LoginStart {
            redirect_to,
            state: serde_json::json!({ "request_id": request_id }),
        })
    }

    async fn finish(
        &self,
        req: &CallbackRequest,
        state: &serde_json::Value,
    ) -> Result<VerifiedLogin, ConnectionError> {
        let request_id = state
            .get("request_id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ConnectionError::new("state_mismatch", "flow has no SAML request id"))?
            .to_owned();
        let raw = req
            .form
            .iter()
            .find(|(k, _)| k == "SAMLResponse")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ConnectionError::new("malformed", "no SAMLResponse in the POST body"))?;
        let xml = decode(raw)?;
        self.verify_and_burn(xml, Some(request_id)).await
    }

    fn saml(&self) -> Option<&SamlConnection> {
        Some(self)
    }

    /// SAML single logout from the logout endpoint: the IdP's SLO URL with
    /// a LogoutRequest; its LogoutResponse comes back to our SLO endpoint
    /// and lands on `/` (the generic logout hook carries no return path).
    async fn logout_redirect(&self, idp: &IdpBinding) -> Option<String> {
        match self.slo_redirect(idp, None) {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!(connection = %self.id, reason = e.reason, detail = %e.detail, "no SAML single logout");
                None
            }
        }
    }
}

impl SamlConnection {
    /// An IdP-initiated (unsolicited) response: no flow cookie, so no
    /// request id to bind to. Refused unless the connection opts in; a
    /// response that names a request (`InResponseTo`) without its flow is a
    /// solicited one from another browser or an expired flow, never
    /// unsolicited. Returns the login and where to land: the RelayState
    /// when it is a safe relative path, else `landing_path`.
    pub async fn finish_unsolicited(
        &self,
        req: &CallbackRequest,
    ) -> Result<(VerifiedLogin, String), ConnectionError> {
        let raw = req
            .form
            .iter()
            .find(|(k, _)| k == "SAMLResponse")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ConnectionError::new("malformed", "no SAMLResponse in the POST body"))?;
        let xml = decode(raw)?;
        if xml.contains("InResponseTo=") {
            return Err(ConnectionError::new(
                "state_mismatch",
                "a response to a request (InResponseTo) without a valid flow cookie",
            ));
        }
        let landing = match (&self.landing_path, self.allow_idp_initiated) {
            (Some(l), true) => l.clone(),
            _ => {
                return Err(ConnectionError::new(
                    "unsolicited",
                    "IdP-initiated response, and this connection does not allow IdP-initiated login",
                ));
            }
        };
        let login = self.verify_and_burn(xml, None).await?;
        let return_to = req
            .param("RelayState")
            .and_then(crate::redirect::safe_return_to)
            .map(str::to_owned)
            .unwrap_or(landing);
        Ok((login, return_to))
    }

    /// The ACS checks on one `SAMLResponse` form value, synchronously:
    /// size, base64, prechecks, XML-DSig in libxmlsec1 and samael's checks
    /// (no decryption, no replay store). What the ACS runs on a blocking
    /// thread; public for the criterion bench.
    pub fn verify_form_value(
        &self,
        form_value: &str,
        request_id: Option<&str>,
    ) -> Result<(), ConnectionError> {
        let xml = decode(form_value)?;
        let trust = self.trust()?;
        let expect = Expectations {
            sp: if request_id.is_some() {
                &trust.sp
            } else {
                &trust.sp_unsolicited
            },
            idp_entity_id: &trust.idp.entity_id,
            sp_entity_id: &self.sp_entity_id,
            acs_url: &self.acs_url,
            request_id,
            allow_sha1: self.allow_sha1,
        };
        precheck(&xml, &expect)?;
        verify(&xml, &expect).map(|_| ())
    }

    /// The checks, off the async threads where they are blocking C, then
    /// the one-time use of the assertion id (every replica sees it).
    async fn verify_and_burn(
        &self,
        xml: String,
        request_id: Option<String>,
    ) -> Result<VerifiedLogin, ConnectionError> {
        let trust = self.trust_ready().await?;
        let expect = Expectations {
            sp: &trust.sp,
            idp_entity_id: &trust.idp.entity_id,
            sp_entity_id: &self.sp_entity_id,
            acs_url: &self.acs_url,
            request_id: request_id.as_deref(),
            allow_sha1: self.allow_sha1,
        };
        let xml = if xml.contains("EncryptedAssertion") && !has_dtd(&xml) {
            match &self.sp_key {
                Some(key) => {
                    let key = key.clone();
                    tokio::task::spawn_blocking(move || decrypt_response(&xml, &key.pkey))
                        .await
                        .map_err(|e| {
                            ConnectionError::new("internal", format!("decryption task: {e}"))
                        })??
                }
                // precheck refuses it as unsupported
                None => xml,
            }
        } else {
            xml
        };
        precheck(&xml, &expect)?;
        let sp = if request_id.is_some() {
            trust.sp.clone()
        } else {
            trust.sp_unsolicited.clone()
        };
        let (idp_entity_id, sp_entity_id, acs_url) = (
            trust.idp.entity_id.clone(),
            self.sp_entity_id.clone(),
            self.acs_url.clone(),
        );
        let allow_sha1 = self.allow_sha1;
        let assertion = tokio::task::spawn_blocking(move || {
            verify(
                &xml,
                &Expectations {
                    sp: &sp,
                    idp_entity_id: &idp_entity_id,
                    sp_entity_id: &sp_entity_id,
                    acs_url: &acs_url,
                    request_id: request_id.as_deref(),
                    allow_sha1,
                },
            )
        })
        .await
        .map_err(|e| ConnectionError::new("internal", format!("verification task: {e}")))??;
        let expires = assertion
            .conditions
            .as_ref()
            .and_then(|c| c.not_on_or_after)
            .map(|t| t.timestamp() + self.skew_seconds)
            .unwrap_or_else(|| Utc::now().timestamp() + 3600);
        let replay = |e: crate::store::StoreError| {
            ConnectionError::new("internal", format!("replay cache: {e}"))
        };
        let first = self
            .store
            .one_time()
            .consume(&self.assertion_replay_kind, &assertion.id, expires)
            .await
            .map_err(replay)?;
        // Ids burnt before the cache was scoped per connection (an upgrade
        // or a rolling restart) stay burnt until they expire.
        let legacy = self
            .store
            .one_time()
            .seen(REPLAY_KIND, &assertion.id, crate::clock::now())
            .await
            .map_err(replay)?;
        if !first || legacy {
            return Err(ConnectionError::new(
                "replay",
                format!("assertion {} was already used", assertion.id),
            ));
        }
        let mut login = to_login(&self.id, &assertion, &self.attributes)?;
        self.overage.settle(&mut login).await?;
        Ok(login)
    }
}

/// Builds SAML connections; needs the store (replay cache) and the public
/// URL (default SP entity id and ACS URL).
pub struct SamlFactory {
    store: Store,
    urls: PublicUrls,
    dev_idp: Option<Arc<super::dev_idp::DevIdp>>,
    metrics: Option<Arc<Metrics>>,
    metadata_cache: MetadataCache,
    egress: Option<Egress>,
}

/// The guard of a connection built without the generation's egress:
/// public hosts only, the system resolver.
pub(crate) fn public_guard(connection: &str) -> Result<Guard, ConnectionError> {
    Ok(Egress::with_rules(EgressRules::public_only())
        .map_err(|e| ConnectionError::new("config", e.to_string()))?
        .for_provider(connection))
}

impl SamlFactory {
    pub fn new(store: Store, urls: PublicUrls) -> Self {
        Self {
            store,
            urls,
            dev_idp: None,
            metrics: None,
            metadata_cache: MetadataCache::default(),
            egress: None,
        }
    }

    /// What metadata URLs are fetched through (without it: public hosts
    /// only, the system resolver).
    pub fn with_egress(mut self, egress: Egress) -> Self {
        self.egress = Some(egress);
        self
    }

    /// Remote metadata last fetched by earlier generations of the same app
    /// (a reload starts from it); without this the factory has its own.
    pub fn with_metadata_cache(mut self, cache: MetadataCache) -> Self {
        self.metadata_cache = cache;
        self
    }

    /// Where metadata refreshes and certificate expiries are reported.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Lets connections with `idp = "dev"` trust the development IdP.
    pub fn with_dev_idp(mut self, dev_idp: Option<Arc<super::dev_idp::DevIdp>>) -> Self {
        self.dev_idp = dev_idp;
        self
    }
}

impl ConnectionFactory for SamlFactory {
    fn build(
        &self,
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
    ) -> Result<Arc<dyn Connection>, ConnectionError> {
        let guard = self.egress.as_ref().map(|e| e.for_tenant(tenant, &conn.id));
        let overage = crate::auth::graph::OveragePolicy::for_connection(
            &tenant.id,
            conn,
            self.metrics.clone(),
            match &guard {
                Some(g) => g.clone(),
                None => public_guard(&conn.id)?,
            },
        )?;
        Ok(Arc::new(
            SamlConnection::guarded(
                conn,
                &self.urls,
                self.store.clone(),
                self.dev_idp.as_deref(),
                self.metrics.clone(),
                &self.metadata_cache,
                guard,
            )?
            .with_overage(overage),
        ))
    }
}
