//! The TOML schema. Every struct denies unknown fields so that a typo in an
//! operator's file is an error with a line number, not a silently ignored
//! setting (a misspelt `secure = true` must never fail open).

use serde::{Deserialize, Serialize};

/// The whole configuration file.
///
/// Sections are deserialized one by one by the loader (see `load.rs`) so that
/// every error in every section is reported in one pass; this struct is the
/// assembled result.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub server: ServerConfig,
    pub listeners: Vec<ListenerConfig>,
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    /// `[[upstreams]]`: several apps behind one Portcullis; when set, used
    /// instead of `upstream` (see [`Config::upstreams`]).
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    pub session: SessionConfig,
    pub headers: HeadersConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub dns: DnsConfig,
    pub login: LoginConfig,
    pub tenants: Vec<TenantConfig>,
    /// Pre-configured sign-in providers (`[platform.providers.*]`).
    pub platform: super::platform::PlatformConfig,
    /// The development SAML IdP (`[dev_idp]`); loopback only.
    pub dev_idp: Option<DevIdpConfig>,
    /// Where user and group changes are delivered (`[webhook]`).
    pub webhook: Option<WebhookConfig>,
    /// The SCIM 2.0 server (`[scim]`).
    pub scim: ScimConfig,
    /// Findings that don't stop the file from loading but that an operator
    /// should read (`check` prints them, `run` logs them at WARN).
    pub warnings: Vec<super::ConfigError>,
    /// Slow and greedy clients (`[limits]`).
    pub limits: super::limits::LimitsConfig,
    /// Decision endpoints for host proxies (`[forward_auth]`).
    pub forward_auth: super::forward_auth::ForwardAuthConfig,
    /// Private addresses the file's IdP URLs may reach (`[egress]`).
    pub egress: super::egress::EgressConfig,
}

/// `[webhook]`: the upstream app's endpoint for user and group events
/// (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature`). Without this section events are still recorded
/// but not delivered, and dropped after the default retention (nobody
/// would ever take them); an app that starts listening later rebuilds its
/// state with `webhooks resync`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// Signing secrets, `whsec_` + base64 of 24–64 random bytes. Every
    /// secret signs every event, so a receiver can rotate by accepting the
    /// new secret first, then the old one is removed here.
    pub secrets: Vec<String>,
    /// Per-attempt timeout (connect + response).
    #[serde(default = "default_webhook_timeout")]
    pub timeout_seconds: u64,
    /// First retry delay; doubles per attempt with full jitter.
    #[serde(default = "default_webhook_retry_initial")]
    pub retry_initial_ms: u64,
    /// Cap on the retry delay.
    #[serde(default = "default_webhook_retry_max")]
    pub retry_max_ms: u64,
    /// An event still unacknowledged this long after it was written is
    /// dead-lettered and its tenant's queue moves on.
    #[serde(default = "default_webhook_max_age")]
    pub max_age_seconds: u64,
    /// Tenants delivered in parallel (each tenant is strictly in order).
    #[serde(default = "default_webhook_concurrency")]
    pub concurrency: usize,
    /// How often other replicas' new events are looked for; local writes
    /// wake the deliverer at once.
    #[serde(default = "default_webhook_poll")]
    pub poll_interval_ms: u64,
    /// Delivered and dead events are kept this long (the replay window).
    #[serde(default = "default_webhook_retention")]
    pub retention_days: u64,
    /// PEM bundle of extra CAs to trust for an `https` URL (private CA).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Decodes a Standard Webhooks secret: `whsec_` + base64 of 24–64 bytes.
/// The message never contains the secret.
pub fn decode_webhook_secret(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let Some(b64) = s.strip_prefix("whsec_") else {
        return Err("must start with `whsec_` (Standard Webhooks secret format)".into());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the part after `whsec_` is not valid base64".to_owned())?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(format!(
            "decodes to {} bytes; Standard Webhooks secrets are 24 to 64 bytes",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn default_webhook_timeout() -> u64 {
    10
}
fn default_webhook_retry_initial() -> u64 {
    1_000
}
fn default_webhook_retry_max() -> u64 {
    10 * 60 * 1_000
}
fn default_webhook_max_age() -> u64 {
    3 * 24 * 3600
}
fn default_webhook_concurrency() -> usize {
    16
}
fn default_webhook_poll() -> u64 {
    250
}
/// How long events are kept when `[webhook]` doesn't say (and, without
/// `[webhook]`, how long undelivered ones wait before they are dropped).
pub const DEFAULT_WEBHOOK_RETENTION_DAYS: u64 = 7;

fn default_webhook_retention() -> u64 {
    DEFAULT_WEBHOOK_RETENTION_DAYS
}

/// `[scim]`: the SCIM 2.0 server IdPs provision users and groups through.
/// Authenticated by per-tenant bearer tokens (`portcullis scim-token
/// create`), never by a browser session; never forwarded to the app.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ScimConfig {
    pub enabled: bool,
    /// Base path, outside the internal prefix.
    pub path: String,
    /// Largest request body (Bulk included); bigger is 413.
    pub max_payload_bytes: usize,
    /// Most operations in one Bulk request.
    pub max_operations: usize,
    /// Largest page of a list or search (`count` is capped to it).
    pub max_results: usize,
    /// Custom schema extensions (`[[scim.extensions]]`).
    pub extensions: Vec<super::ScimExtensionConfig>,
}

impl Default for ScimConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/scim/v2".into(),
            max_payload_bytes: 1024 * 1024,
            max_operations: 100,
            max_results: 100,
            extensions: Vec::new(),
        }
    }
}

/// `[dev_idp]`: a SAML IdP inside the binary that signs a response for any
/// configured user picked on a page. For demos and local development only:
/// Portcullis refuses to start with it on a non-loopback address.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DevIdpConfig {
    /// The tenant whose `saml` connection with `idp = "dev"` it serves;
    /// that tenant's domains are marked verified at startup.
    pub tenant: String,
    /// The users offered on the pick page.
    #[serde(default)]
    pub users: Vec<DevIdpUser>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DevIdpUser {
    pub email: String,
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The login page and SSO enforcement.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// The app's own (password) login page, offered when an email has no
    /// SSO; a same-origin path or an absolute URL.
    pub app_login_url: Option<String>,
    /// The app's password-login endpoints. A submission for a verified
    /// domain whose tenant has `enforce_sso` is answered by Portcullis (SSO
    /// redirect for browsers, 403 for APIs) and never reaches the app.
    pub password_endpoints: Vec<PasswordEndpoint>,
}

/// Where the app accepts passwords, and where the email is in the body.
/// Every request to the path that carries a body or uses a method other
/// than GET/HEAD/OPTIONS is inspected (urlencoded, JSON and multipart
/// bodies); anything Portcullis can't read is refused (see the README).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PasswordEndpoint {
    /// The path, e.g. `/login` or `/api/session`; matched like a route
    /// (case, `;params`, trailing slash and format suffixes included).
    pub path: String,
    /// The method the app's form uses. Documentation only: other methods
    /// are inspected too, since frameworks honour method overrides.
    #[serde(default = "default_post")]
    pub method: String,
    /// Form (urlencoded or multipart) field holding the email; also the
    /// top-level JSON key when no pointer is set. Default `email`.
    #[serde(default)]
    pub email_field: Option<String>,
    /// JSON pointer (RFC 6901) to the email in a JSON body, e.g.
    /// `/user/email`; forms are then read at `user[email]`.
    #[serde(default)]
    pub email_json_pointer: Option<String>,
    /// Field holding the password; a query string carrying it (or the
    /// email) is refused. Default `password`.
    #[serde(default)]
    pub password_field: Option<String>,
}

fn default_post() -> String {
    "POST".into()
}

/// Process-wide settings that don't belong to one listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The externally visible origin, e.g. `https://app.example.com`. Issuer
    /// of assertions and base of SSO callback URLs.
    pub public_url: String,
    /// Reserved path prefix for Portcullis' own endpoints.
    pub internal_prefix: String,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Let idle worker threads steal tasks from busy ones (pingora's
    /// default). Off pins each connection to one thread: fewer cross-thread
    /// wake-ups, measurably faster on small machines.
    pub work_stealing: bool,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub grace_period_seconds: u64,
    /// Trust `X-Forwarded-*` sent by the client (only behind a trusted load
    /// balancer); otherwise they are overwritten with what Portcullis saw.
    pub trust_forwarded_headers: bool,
    /// Policy for requests that match no `[[routes]]` entry.
    pub default_policy: Policy,
    /// Largest request body accepted by Portcullis' own endpoints (bytes).
    /// Proxied bodies stream through unbounded.
    pub max_internal_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            internal_prefix: "/.portcullis/".into(),
            threads: 2,
            work_stealing: true,
            grace_period_seconds: 10,
            trust_forwarded_headers: false,
            default_policy: Policy::Required,
            max_internal_body_bytes: 64 * 1024,
        }
    }
}

/// A public listener.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: String,
    #[serde(default)]
    pub tls: Option<ListenerTls>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain (leaf first).
    pub cert: String,
    /// PEM private key.
    pub key: String,
}

/// The operator listener: metrics and health, never on the public port.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub address: String,
    /// Serve the admin API under `/admin/v1/` (operator bearer tokens from
    /// `portcullis admin-token create`; without one everything is 401).
    pub api_enabled: bool,
    /// Tests and local development only: IdP URLs may point at loopback
    /// (127.0.0.0/8, `::1`, `localhost`, over http or https), from the file
    /// and the admin API alike, and are fetched there. Without it every
    /// IdP URL must be https to a public host (`config::EgressRules`).
    pub allow_loopback_idp_urls: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:9090".into(),
            api_enabled: true,
            allow_loopback_idp_urls: false,
        }
    }
}

/// The protected application.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// What `[[routes]] upstream` calls it; a slug.
    pub name: String,
    /// `host:port` of the app.
    pub address: String,
    /// Speak TLS to the app.
    pub tls: bool,
    /// SNI and certificate name when `tls` is on; defaults to the host part
    /// of `address`.
    pub sni: Option<String>,
    /// Verify the app's certificate against the system roots.
    pub verify_cert: bool,
    pub connect_timeout_ms: u64,
    /// Longest wait for each read from the app; long-polling apps raise it.
    pub read_timeout_ms: u64,
    /// How long an idle keep-alive connection to the app is kept in the pool.
    pub idle_timeout_seconds: u64,
    /// Idle keep-alive connections kept per worker thread.
    pub keepalive_pool_size: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            name: super::upstreams::DEFAULT_UPSTREAM.into(),
            address: "127.0.0.1:3000".into(),
            tls: false,
            sni: None,
            verify_cert: true,
            connect_timeout_ms: 2_000,
            read_timeout_ms: 60_000,
            idle_timeout_seconds: 60,
            keepalive_pool_size: 128,
        }
    }
}

/// What a route demands of a request.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// No session needed; identity headers are still stripped.
    Public,
    /// Identity injected when a session exists, forwarded anonymously otherwise.
    Optional,
    /// A session (and membership, when configured) is required.
    Required,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Public => "public",
            Policy::Optional => "optional",
            Policy::Required => "required",
        }
    }
}

/// One entry of the route table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix; `/api` matches `/api` and `/api/...`, not `/apix`.
    pub prefix: String,
    /// Only for this `Host` (case-insensitive, port ignored).
    #[serde(default)]
    pub host: Option<String>,
    pub policy: Policy,
    /// The principal needs one of these groups (if non-empty)...
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// ...or one of these roles (if non-empty). Both lists take
    /// tenant-qualified names: `acme:admins` is the `admins` group of tenant
    /// `acme`, never a group of that name asserted by another tenant's IdP.
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// When non-empty, only principals of these tenants pass.
    #[serde(default)]
    pub allowed_tenants: Vec<String>,
    /// Compare the prefix case-sensitively. Off by default, because many
    /// app servers (Express, ASP.NET, IIS) route case-insensitively and a
    /// case variant must not step around a protected prefix.
    #[serde(default)]
    pub case_sensitive: bool,
    /// The `name` of the upstream this route's requests go to; the default
    /// upstream when unset.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Step-up: the session's authentication context class must be one of
    /// these (route names; a connection's `acr_map` translates them for
    /// its IdP). A weaker session is sent through a fresh login.
    #[serde(default)]
    pub acr: Vec<String>,
    /// Step-up: the user must have authenticated at the IdP at most this
    /// long ago (seconds, or `"15m"`, `"1h"`…).
    #[serde(default)]
    pub max_age: Option<super::step_up::Duration>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// Browser sessions.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub cookie_name: String,
    /// Cookie encryption keys, each at least 32 bytes. The first seals new
    /// cookies; all of them open, so a key can be rotated without logging
    /// everyone out.
    pub keys: Vec<String>,
    pub absolute_lifetime_seconds: u64,
    pub idle_lifetime_seconds: u64,
    pub secure: bool,
    pub same_site: SameSite,
    /// Cookie `Domain`; host-only when unset (safest).
    pub domain: Option<String>,
    /// Sessions kept in the in-memory read-through cache.
    pub cache_capacity: u64,
    /// Upper bound on how long a cached session is trusted without
    /// re-reading the store; revocations invalidate sooner.
    pub cache_ttl_seconds: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: "portcullis_session".into(),
            keys: Vec::new(),
            absolute_lifetime_seconds: 12 * 3600,
            idle_lifetime_seconds: 3600,
            secure: true,
            same_site: SameSite::Lax,
            domain: None,
            cache_capacity: 100_000,
            cache_ttl_seconds: 30,
        }
    }
}

/// The identity headers injected for the app.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    pub user: String,
    pub email: String,
    pub name: String,
    pub groups: String,
    pub roles: String,
    pub tenant: String,
    /// `user` for people, `service` for machine callers (service accounts,
    /// client-credentials tokens).
    pub principal_type: String,
    /// Extra header names to strip from every client request (e.g. headers
    /// your app trusted from a previous auth proxy).
    pub strip: Vec<String>,
    pub assertion: String,
    pub assertion_enabled: bool,
    pub assertion_lifetime_seconds: u64,
    /// `aud` of the assertion; the app checks it.
    pub assertion_audience: String,
    /// PKCS#8 PEM of a P-256 key. When unset, a key is generated once and
    /// kept in the store so restarts and replicas agree.
    pub signing_key: Option<String>,
    /// More headers from IdP claims or attributes (`[[headers.extra]]`).
    pub extra: Vec<ExtraHeader>,
    /// IdP claims copied into the assertion as top-level claims.
    pub assertion_claims: Vec<String>,
    /// Headers with how the user authenticated (step-up): the context
    /// class, the methods (comma-separated) and the time (unix seconds).
    /// Not sent unless named; stripped from clients when named.
    pub acr: Option<String>,
    pub amr: Option<String>,
    pub auth_time: Option<String>,
}

/// `[[headers.extra]]`: one header from an IdP claim (OIDC) or attribute
/// (SAML `Name` or `FriendlyName`), stripped from clients like the
/// identity headers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExtraHeader {
    pub name: String,
    pub claim: String,
    /// Every value joined with this; without it, the first value only.
    #[serde(default)]
    pub join: Option<String>,
}

impl HeadersConfig {
    /// The step-up headers that are configured, by key.
    pub fn auth_fact_headers(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("acr", self.acr.as_ref()),
            ("amr", self.amr.as_ref()),
            ("auth_time", self.auth_time.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }

    /// The claims a session of a connection keeps, as `(name, source)`:
    /// `name` is what `[[headers.extra]]` and `assertion_claims` call the
    /// claim, `source` the IdP's claim or attribute it is read from — the
    /// same unless the connection's `header_claims` names another for an
    /// extra header (matched case-insensitively, `_` as `-`). Each name
    /// once, the first mapping winning.
    pub fn claim_sources(
        &self,
        header_claims: &std::collections::BTreeMap<String, String>,
    ) -> Vec<(String, String)> {
        let overridden = |header: &str| {
            let wanted = crate::names::normalize_header_name(header);
            header_claims
                .iter()
                .find(|(h, _)| crate::names::normalize_header_name(h) == wanted)
                .map(|(_, claim)| claim.clone())
        };
        let mut out: Vec<(String, String)> = Vec::new();
        let pairs = self
            .extra
            .iter()
            .map(|e| {
                let source = overridden(&e.name).unwrap_or_else(|| e.claim.clone());
                (e.claim.clone(), source)
            })
            .chain(self.assertion_claims.iter().map(|c| (c.clone(), c.clone())));
        for (name, source) in pairs {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, source));
            }
        }
        out
    }
}

impl Default for HeadersConfig {
    fn default() -> Self {
        Self {
            user: "X-Forwarded-User".into(),
            email: "X-Forwarded-Email".into(),
            name: "X-Forwarded-Name".into(),
            groups: "X-Forwarded-Groups".into(),
            roles: "X-Forwarded-Roles".into(),
            tenant: "X-Forwarded-Tenant".into(),
            principal_type: "X-Forwarded-Principal-Type".into(),
            strip: Vec::new(),
            assertion: "X-Portcullis-Assertion".into(),
            assertion_enabled: true,
            assertion_lifetime_seconds: 60,
            assertion_audience: "portcullis-upstream".into(),
            signing_key: None,
            extra: Vec::new(),
            assertion_claims: Vec::new(),
            acr: None,
            amr: None,
            auth_time: None,
        }
    }
}

/// Where sessions and keys live.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` (default, embedded) or `postgres://...` for replicas.
    pub url: String,
    /// Keys that seal the secrets Portcullis writes to the store (the
    /// assertion signing key, OIDC ID tokens kept for logout): each the
    /// base64 of 32 random bytes, normally `${ENV}`. One string or a list;
    /// the first seals, all open, so a key rotates without downtime.
    #[serde(deserialize_with = "one_or_many")]
    pub encryption_key: Vec<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/portcullis.db".into(),
            encryption_key: Vec::new(),
        }
    }
}

/// Redacts the encryption keys: a stray `{:?}` of the config must not put
/// them in a log.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url)
            .field(
                "encryption_key",
                &format!("<{} redacted>", self.encryption_key.len()),
            )
            .finish()
    }
}

/// Bytes in one `[store] encryption_key` (AES-256).
pub const STORE_KEY_BYTES: usize = 32;

impl StoreConfig {
    /// The decoded keys, first (sealing) key first. Validation has already
    /// refused undecodable ones; the error names the position, never the key.
    pub fn encryption_keys(&self) -> Result<Vec<[u8; STORE_KEY_BYTES]>, String> {
        self.encryption_key
            .iter()
            .enumerate()
            .map(|(i, k)| {
                decode_store_key(k).map_err(|e| format!("store.encryption_key[{i}]: {e}"))
            })
            .collect()
    }
}

/// Decodes one `[store] encryption_key`: standard base64 (with padding) of
/// exactly 32 bytes, what `openssl rand -base64 32` prints. One format only,
/// so a key can't be read two ways; hex is recognised to say so. The message
/// never contains the key.
pub fn decode_store_key(s: &str) -> Result<[u8; STORE_KEY_BYTES], String> {
    use base64::Engine as _;
    const HOW: &str = "generate one with `openssl rand -base64 32`";
    if s.is_empty() {
        return Err(format!(
            "is empty (is its environment variable set?); {HOW}"
        ));
    }
    if s.len() == 2 * STORE_KEY_BYTES && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "looks like hex; give the 32 bytes as base64 instead ({HOW})"
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim_end_matches(['\n', '\r']))
        .map_err(|_| format!("is not valid base64; {HOW}"))?;
    <[u8; STORE_KEY_BYTES]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "decodes to {} bytes, need exactly {STORE_KEY_BYTES}; {HOW}",
            bytes.len()
        )
    })
}

/// Accepts `key = "x"` as well as `key = ["x", "y"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `portcullis=debug,info`.
    pub level: String,
    /// One line per request on the `access` target.
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
            access_log: true,
        }
    }
}

/// DNS ownership proofs for tenant domains.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Resolvers to ask, `IP:PORT` (port 53 if omitted). Empty: the system's
    /// `/etc/resolv.conf`.
    pub nameservers: Vec<String>,
    /// The TXT record lives at `{record_prefix}.{domain}`.
    pub record_prefix: String,
    /// How often the background loop looks for domains due a check.
    pub check_interval_seconds: u64,
    /// Pending domains are re-checked this often...
    pub pending_recheck_seconds: u64,
    /// ...until this long after `domains add`; then they are `failed`.
    pub pending_expiry_seconds: u64,
    /// Verified domains are re-verified this often.
    pub reverify_seconds: u64,
    /// A verified domain whose record has been missing this long is
    /// `lapsed` and stops routing logins (a DNS blip must not lock a tenant
    /// out; a transferred domain must not stay routed forever).
    pub lapse_grace_seconds: u64,
    pub lookup_timeout_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            record_prefix: "_portcullis-challenge".into(),
            check_interval_seconds: 60,
            pending_recheck_seconds: 300,
            pending_expiry_seconds: 7 * 86_400,
            reverify_seconds: 6 * 3600,
            lapse_grace_seconds: 3 * 86_400,
            lookup_timeout_ms: 5_000,
        }
    }
}

/// Where a tenant is described: the configuration file (read-only for the
/// admin API) or the store (made through the admin API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    #[default]
    File,
    Store,
}

/// A customer organisation.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Stable identifier (`a-z0-9-_`), used in URLs, sessions and headers.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Email domains the tenant claims. Each must be proven with a DNS TXT
    /// record (`portcullis domains add`) before it routes logins.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Users of these domains may not use the app's own password login.
    #[serde(default)]
    pub enforce_sso: bool,
    #[serde(default)]
    pub jit: JitConfig,
    /// IdP group → app role. A user gets every role any of their groups maps to.
    #[serde(default)]
    pub group_roles: std::collections::BTreeMap<String, Vec<String>>,
    /// Where a SCIM-managed user's groups come from; unset is `both`
    /// (a tenant without SCIM has no SCIM groups, so that is the IdP's).
    #[serde(default)]
    pub groups_source: Option<GroupsSource>,
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
    /// This tenant's SCIM provisioning (`[tenants.scim]`).
    #[serde(default)]
    pub scim: TenantScimConfig,
    /// Roles whose holders (signed in as this tenant) administer its SSO.
    #[serde(default)]
    pub admin_roles: Vec<String>,
    /// Set by the loader, never read from a document.
    #[serde(skip)]
    pub origin: Origin,
}

/// `[tenants.scim]`: how far a tenant's SCIM client may reach.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TenantScimConfig {
    /// Accept SCIM users whose addresses are outside the tenant's verified
    /// domains. Off by default because a tenant's IdP would otherwise hand
    /// the app identities of people it does not own (`ceo@other.com`);
    /// when on, webhook events mark each address `verified_domain`, so the
    /// app can tell which ones the tenant has proven.
    pub allow_external_emails: bool,
    /// Which name of a SCIM group a session carries (and `group_roles`
    /// keys): `displayName`, or `externalId` (Entra's group object id,
    /// what its tokens carry).
    pub group_name: ScimGroupName,
}

/// `groups_source`: whose groups a SCIM-managed user's session carries.
/// Users SCIM does not manage always carry the IdP's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupsSource {
    /// Only what the IdP put in the login.
    Idp,
    /// Only the SCIM directory's (nested groups flattened).
    Scim,
    /// Both, the IdP's first, without repeats.
    Both,
}

/// `[tenants.scim] group_name`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
pub enum ScimGroupName {
    #[default]
    #[serde(rename = "displayName")]
    DisplayName,
    #[serde(rename = "externalId")]
    ExternalId,
}

/// Just-in-time provisioning at first login.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct JitConfig {
    /// Create unknown users at login; off: only SCIM-provisioned or invited
    /// users may enter.
    pub enabled: bool,
    /// Role of users created just in time (and of invitations without one).
    pub default_role: Option<String>,
}

impl Default for JitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            default_role: Some("member".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Saml,
    Oidc,
}

/// One SSO connection of a tenant. Protocol settings are filled in by the
/// SAML and OIDC implementations.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Unique across all tenants; appears in callback URLs.
    pub id: String,
    /// `saml` or `oidc` with the tenant's own IdP; omitted for `platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// A pre-configured provider (`[platform.providers.*]`) instead of a
    /// `protocol` with its own table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<super::platform::PlatformKind>,
    /// Rules of a `platform = "microsoft"` connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microsoft: Option<super::platform::MicrosoftRules>,
    /// Rules of a `platform = "github"` connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<super::platform::GithubRules>,
    /// Provider preset: `entra`, `okta`, `google`, `onelogin`, `jumpcloud`,
    /// `duo` or `generic`.
    #[serde(default)]
    pub preset: Option<String>,
    /// Shown in the chooser when a tenant has several connections.
    #[serde(default)]
    pub display_name: Option<String>,
    /// SAML settings; required for `protocol = "saml"`, refused otherwise.
    #[serde(default)]
    pub saml: Option<SamlConfig>,
    /// OpenID Connect settings; required for `protocol = "oidc"`, refused otherwise.
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// Header name → the IdP claim or attribute it is read from for this
    /// connection, instead of the `[[headers.extra]]` default.
    #[serde(default)]
    pub header_claims: std::collections::BTreeMap<String, String>,
    /// Step-up: a route's acr name → this IdP's value for it (an OIDC
    /// `acr`, a SAML `AuthnContextClassRef`). Unmapped names are sent as
    /// they are.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub acr_map: std::collections::BTreeMap<String, String>,
    /// Microsoft Graph, for an Entra groups overage (a user in more groups
    /// than fit in a token): where and as whom to fetch the user's groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphConfig>,
    /// An overage that can't be resolved signs the user in without groups
    /// (and without the roles groups give). Off: such a login is refused,
    /// because access silently narrowed is as confusing as access widened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_login_without_groups: bool,
}

/// `[tenants.connections.graph]`: an app registration with the Graph
/// application permissions `User.Read.All` and `GroupMember.Read.All` (or
/// `Directory.Read.All`), used only when Entra reports a groups overage.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// Default: the OIDC connection's `client_id` (required for SAML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Default: the OIDC connection's `client_secret` (required for SAML);
    /// use `${ENV_VAR}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The Entra tenant (directory) id, a GUID. Default: the `tid` of the
    /// verified login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<String>,
    /// Only security groups, like Entra's "Security groups" token setting.
    #[serde(default)]
    pub security_enabled_only: bool,
    /// How long a user's fetched groups are reused; 0 fetches every login.
    #[serde(default = "default_graph_cache_seconds")]
    pub cache_seconds: u64,
    /// Tests only (loopback): instead of `https://login.microsoftonline.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_url: Option<String>,
    /// Tests only (loopback): instead of `https://graph.microsoft.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_url: Option<String>,
}

fn default_graph_cache_seconds() -> u64 {
    600
}

/// A SAML connection: who the IdP is, which keys it signs with, what this
/// service provider calls itself, and how strict to be.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SamlConfig {
    /// `"dev"`: trust the built-in development IdP (`[dev_idp]`) instead of
    /// metadata; only allowed when `[dev_idp]` is configured.
    #[serde(default)]
    pub idp: Option<String>,
    /// IdP metadata XML on disk. Either this or the inline `idp_*` keys.
    #[serde(default)]
    pub idp_metadata_file: Option<String>,
    /// IdP metadata XML itself (what a customer pastes into the admin API).
    #[serde(default)]
    pub idp_metadata_xml: Option<String>,
    /// Inline metadata: the IdP's entity id (the `Issuer` it must send).
    #[serde(default)]
    pub idp_entity_id: Option<String>,
    /// Inline metadata: the IdP's HTTP-Redirect single sign-on URL.
    #[serde(default)]
    pub idp_sso_url: Option<String>,
    /// Inline metadata: the IdP's single logout URL.
    #[serde(default)]
    pub idp_slo_url: Option<String>,
    /// Inline metadata: PEM certificates the IdP signs with. Several during a
    /// rotation; a response signed by any of them is accepted.
    #[serde(default)]
    pub idp_certificates: Vec<String>,
    /// This SP's entity id; default `{public_url}/.portcullis/saml/{connection}/metadata`.
    #[serde(default)]
    pub sp_entity_id: Option<String>,
    /// Assertion consumer service URL; default `{public_url}/.portcullis/saml/{connection}/acs`.
    #[serde(default)]
    pub acs_url: Option<String>,
    /// Single logout URL; default `{public_url}/.portcullis/saml/{connection}/slo`.
    #[serde(default)]
    pub slo_url: Option<String>,
    /// Accept RSA-SHA1 signatures. Off: SHA-1 is collision-prone.
    #[serde(default)]
    pub allow_sha1: bool,
    /// Tolerance for the IdP's clock on NotBefore / NotOnOrAfter.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u64,
    /// Sign AuthnRequests (HTTP-Redirect binding, RSA-SHA256) with
    /// `sp_key_file`; for IdPs that require signed requests.
    #[serde(default)]
    pub sign_requests: bool,
    /// This SP's private key (PEM): signs AuthnRequests and LogoutRequests
    /// when `sign_requests` is on, and decrypts `EncryptedAssertion`s.
    #[serde(default)]
    pub sp_key_file: Option<String>,
    /// This SP's certificate (PEM) for `sp_key_file`, published in the SP
    /// metadata for signing and encryption.
    #[serde(default)]
    pub sp_cert_file: Option<String>,
    /// IdP metadata fetched from this http(s) URL and refreshed every
    /// `metadata_refresh_seconds`; a failed refresh keeps the last good copy.
    #[serde(default)]
    pub idp_metadata_url: Option<String>,
    /// Refresh interval for `idp_metadata_url`.
    #[serde(default = "default_metadata_refresh")]
    pub metadata_refresh_seconds: u64,
    /// SHA-256 fingerprints (hex, colons optional) the IdP's signing
    /// certificates must match. Set, metadata from any source (inline,
    /// file, URL; at startup and on every refresh) with a signing
    /// certificate outside this list is refused: whoever can change the
    /// metadata (its host, its DNS, a writable file) can't also choose the
    /// key that logins are checked with.
    #[serde(default)]
    pub idp_certificate_fingerprints: Vec<String>,
    /// Attribute mapping overrides; unset ones come from the preset.
    #[serde(default)]
    pub email_attribute: Option<String>,
    #[serde(default)]
    pub name_attribute: Option<String>,
    #[serde(default)]
    pub first_name_attribute: Option<String>,
    #[serde(default)]
    pub last_name_attribute: Option<String>,
    #[serde(default)]
    pub groups_attribute: Option<String>,
    /// Accept unsolicited (IdP-initiated) responses; needs `landing_path`.
    #[serde(default)]
    pub allow_idp_initiated: bool,
    /// Where an IdP-initiated login lands (a same-origin relative path),
    /// unless its RelayState is itself a safe relative path.
    #[serde(default)]
    pub landing_path: Option<String>,
}

fn default_clock_skew() -> u64 {
    120
}

fn default_metadata_refresh() -> u64 {
    3600
}
/// How the relying party authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP Basic with `client_id:client_secret` (the OIDC default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with `private_key` (RFC 7523); no shared secret.
    PrivateKeyJwt,
}

/// An OpenID Connect connection: which provider, which client, which claims.
/// Secrets are written as `${ENV_VAR}` and interpolated at load.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer; discovery is `{issuer}/.well-known/openid-configuration`
    /// and the ID token's `iss` must equal it exactly.
    pub issuer: String,
    pub client_id: String,
    /// For `client_secret_basic`/`client_secret_post`; use `${ENV_VAR}`.
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub token_auth_method: TokenAuthMethod,
    /// PKCS#8 PEM (RSA or P-256) for `private_key_jwt`; use `${ENV_VAR}`.
    #[serde(default)]
    pub private_key: Option<String>,
    /// `kid` of `private_key` as registered at the provider.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Scopes to ask for; `openid` is always added. Default: the preset's.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Extra authorization request parameters (e.g. `prompt`, `domain_hint`).
    #[serde(default)]
    pub extra_auth_params: std::collections::BTreeMap<String, String>,
    /// Claim mapping overrides; unset ones come from the preset.
    #[serde(default)]
    pub email_claim: Option<String>,
    #[serde(default)]
    pub name_claim: Option<String>,
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// ID token signature algorithms accepted. `none` and HMAC are refused.
    #[serde(default = "default_oidc_algs")]
    pub allowed_algs: Vec<String>,
    /// Audiences besides `client_id` an ID token may carry. Any other extra
    /// audience is refused.
    #[serde(default)]
    pub trusted_audiences: Vec<String>,
    /// Tolerance for the provider's clock on `exp` and `iat`.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u64,
    /// Ask the userinfo endpoint for claims the ID token lacks.
    #[serde(default = "default_true")]
    pub userinfo: bool,
    /// How long discovery and keys are trusted before they are fetched again.
    #[serde(default = "default_discovery_refresh")]
    pub discovery_refresh_seconds: u64,
    /// Least time between two key set fetches triggered by an unknown `kid`.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh_seconds: u64,
    /// Timeout of each request to the provider.
    #[serde(default = "default_oidc_timeout")]
    pub http_timeout_ms: u64,
    /// Send the browser to the provider's `end_session_endpoint` at logout.
    #[serde(default = "default_true")]
    pub rp_logout: bool,
    /// Where the provider returns the browser after logout (must be
    /// registered there); omitted when unset.
    #[serde(default)]
    pub post_logout_redirect_uri: Option<String>,
    /// Machine access: the `aud` a client-credentials access token from
    /// this provider must carry to authenticate an API call
    /// (`Authorization: Bearer <JWT>`). Unset: this connection's tokens
    /// authenticate nothing.
    #[serde(default)]
    pub machine_audience: Option<String>,
    /// The role every machine caller of this connection gets.
    #[serde(default)]
    pub machine_role: Option<String>,
    /// A claim of the access token whose values are the caller's groups
    /// (mapped to roles through the tenant's `group_roles`), e.g. `roles`
    /// (Entra app roles) or `scope`; space-separated strings are split.
    #[serde(default)]
    pub machine_groups_claim: Option<String>,
}

fn default_oidc_algs() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "PS256".into()]
}

fn default_true() -> bool {
    true
}

fn default_discovery_refresh() -> u64 {
    3600
}

fn default_jwks_min_refresh() -> u64 {
    60
}

fn default_oidc_timeout() -> u64 {
    5000
}
