//! Entra ID groups overage, resolved through Microsoft Graph.
//!
//! Entra puts at most 200 groups in a JWT (150 in a SAML assertion). A user
//! in more gets none: the ID token carries `_claim_names.groups` (or
//! `hasgroups`), the assertion a `groups.link` attribute. Roles derived
//! from groups would then silently vanish, so an overage is never passed
//! through as "no groups":
//!
//! * with `[tenants.connections.graph]`, the user's groups are fetched with
//!   the app's own credentials (client credentials; Graph's documented
//!   least-privileged application permissions for a user's
//!   `getMemberGroups` are `User.Read.All` + `GroupMember.Read.All`, or
//!   `Directory.Read.All`) from `POST /v1.0/users/{oid}/getMemberGroups`
//!   and cached per user;
//! * without it, or when Graph fails, the login is refused
//!   (`groups_overage`) unless the connection sets
//!   `allow_login_without_groups`.
//!
//! The Graph endpoint the IdP names in the token (`_claim_sources`,
//! `groups.link`) is never followed: it is attacker-shaped input that would
//! make the sidecar call an arbitrary URL. Only the configured Graph base is
//! called, with ids that must be GUIDs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::oidc::http::{HttpError, ProviderHttp};
use crate::auth::egress::Guard;
use crate::auth::{ConnectionError, VerifiedLogin};
use crate::config::ConnectionConfig;
use crate::config::is_guid;
use crate::metrics::Metrics;

/// Microsoft's public endpoints; tests override them with loopback URLs
/// (validation refuses anything else).
pub(crate) const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub(crate) const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";
/// The scope of an app-only Graph token: the app's granted permissions.
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// `getMemberGroups` returns at most this many ids (Graph's documented
/// limit); more is a malformed answer.
const MAX_GROUPS: usize = 11_000;
/// Longest group id kept (object ids are 36 characters).
const MAX_GROUP_ID: usize = 128;
/// A token is renewed this long before Entra says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);
/// Per request to Entra or Graph, unless the connection is OIDC (then its
/// `http_timeout_ms`, the budget it already gives the same IdP); a login
/// waits for at most two of them (plus one retry after a 401).
const TIMEOUT_MS: u64 = 10_000;

/// Why Graph gave no groups. Goes to the log only.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GraphError {
    #[error("the login names no user object id (`oid` / objectidentifier)")]
    NoObjectId,
    #[error("no directory (tenant) id: set graph.directory_id or send `tid` / tenantid")]
    NoDirectory,
    #[error("{0:?} is not a GUID")]
    NotAGuid(String),
    #[error("HTTP: {0}")]
    Http(#[from] HttpError),
    #[error("{what} answered {status}: {body}")]
    Status {
        what: &'static str,
        status: u16,
        body: String,
    },
    #[error("{what} sent an unreadable answer: {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// App credentials and where to call, from `[tenants.connections.graph]`.
#[derive(Debug, Clone)]
pub(crate) struct GraphSettings {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    /// Pinned directory; `None`: the one the (verified) login names.
    pub(crate) directory_id: Option<String>,
    pub(crate) security_enabled_only: bool,
    pub(crate) cache_ttl: Duration,
    /// Per request, in milliseconds.
    pub(crate) timeout_ms: u64,
    pub(crate) authority: String,
    pub(crate) graph: String,
}

impl GraphSettings {
    /// From a connection's config; `None` when it has no `graph` table.
    /// An OIDC connection lends its own client id and secret when the
    /// table names none (validation made sure one of the two exists).
    pub(crate) fn from_config(conn: &ConnectionConfig) -> Option<Self> {
        let g = conn.graph.as_ref()?;
        let oidc = conn.oidc.as_ref();
        let client_id = g
            .client_id
            .clone()
            .or_else(|| oidc.map(|o| o.client_id.clone()))?;
        let client_secret = g
            .client_secret
            .clone()
            .or_else(|| oidc.and_then(|o| o.client_secret.clone()))?;
        Some(Self {
            client_id,
            client_secret,
            directory_id: g.directory_id.clone(),
            security_enabled_only: g.security_enabled_only,
            cache_ttl: Duration::from_secs(g.cache_seconds),
            timeout_ms: oidc.map_or(TIMEOUT_MS, |o| o.http_timeout_ms),
            authority: trim(g.authority_url.as_deref().unwrap_or(DEFAULT_AUTHORITY)),
            graph: trim(g.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH)),
        })
    }
}

fn trim(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// A user's complete group list, from Graph, cached per user.
pub(crate) struct GraphGroups {
    http: ProviderHttp,
    settings: GraphSettings,
    /// App-only access token per directory, with when to stop using it.
    tokens: tokio::sync::Mutex<HashMap<String, (String, Instant)>>,
    groups: moka::future::Cache<(String, String), Arc<Vec<String>>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct MemberGroups {
    value: Vec<String>,
}

impl GraphGroups {
    pub(crate) fn new(settings: GraphSettings, guard: Guard) -> Result<Self, GraphError> {
        Ok(Self {
            http: ProviderHttp::new(settings.timeout_ms, guard)?,
            groups: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(settings.cache_ttl.max(Duration::from_secs(1)))
                .build(),
            settings,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The group object ids `object_id` is a member of (transitively), in
    /// `directory` unless the settings pin one.
    pub(crate) async fn member_groups(
        &self,
        directory: Option<&str>,
        object_id: &str,
    ) -> Result<Arc<Vec<String>>, GraphError> {
        let directory = self
            .settings
            .directory_id
            .as_deref()
            .or(directory)
            .ok_or(GraphError::NoDirectory)?
            .to_ascii_lowercase();
        if !is_guid(&directory) {
            return Err(GraphError::NotAGuid(directory));
        }
        let object_id = object_id.to_ascii_lowercase();
        if !is_guid(&object_id) {
            return Err(GraphError::NotAGuid(object_id));
        }
        let key = (directory, object_id);
        if self.settings.cache_ttl.is_zero() {
            return self.fetch(&key.0, &key.1).await.map(Arc::new);
        }
        if let Some(hit) = self.groups.get(&key).await {
            return Ok(hit);
        }
        let fresh = Arc::new(self.fetch(&key.0, &key.1).await?);
        self.groups.insert(key, fresh.clone()).await;
        Ok(fresh)
    }

    async fn fetch(&self, directory: &str, object_id: &str) -> Result<Vec<String>, GraphError> {
        let token = self.token(directory).await?;
        match self.get_member_groups(&token, object_id).await {
            // A token revoked or rotated early: one fresh one, once.
            Err(GraphError::Status { status: 401, .. }) => {
                self.tokens.lock().await.remove(directory);
                let token = self.token(directory).await?;
                self.get_member_groups(&token, object_id).await
            }
            other => other,
        }
    }

    async fn token(&self, directory: &str) -> Result<String, GraphError> {
        let mut tokens = self.tokens.lock().await;
        if let Some((t, until)) = tokens.get(directory)
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("client_secret", &self.settings.client_secret)
            .append_pair("scope", GRAPH_SCOPE)
            .finish();
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!(
                "{}/{directory}/oauth2/v2.0/token",
                self.settings.authority
            ))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body.into_bytes())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        let resp = self.http.send(req).await?;
        let answer: TokenAnswer = parse("the token endpoint", resp)?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(300));
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        tokens.insert(directory.to_owned(), (answer.access_token.clone(), until));
        Ok(answer.access_token)
    }

    async fn get_member_groups(
        &self,
        token: &str,
        object_id: &str,
    ) -> Result<Vec<String>, GraphError> {
        let body = serde_json::json!({"securityEnabledOnly": self.settings.security_enabled_only});
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!(
                "{}/v1.0/users/{object_id}/getMemberGroups",
                self.settings.graph
            ))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body.to_string().into_bytes())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        let resp = self.http.send(req).await?;
        let answer: MemberGroups = parse("Graph getMemberGroups", resp)?;
        if answer.value.len() > MAX_GROUPS {
            return Err(GraphError::Malformed {
                what: "Graph getMemberGroups",
                detail: format!("{} groups (at most {MAX_GROUPS})", answer.value.len()),
            });
        }
        if let Some(bad) = answer
            .value
            .iter()
            .find(|g| g.is_empty() || g.len() > MAX_GROUP_ID || g.chars().any(char::is_control))
        {
            return Err(GraphError::Malformed {
                what: "Graph getMemberGroups",
                detail: format!("group id {:?}", bad.chars().take(40).collect::<String>()),
            });
        }
        Ok(answer.value)
    }
}

/// A 2xx JSON answer as `T`; anything else an error with a short excerpt
/// of the body (Graph's errors name the missing permission).
fn parse<T: serde::de::DeserializeOwned>(
    what: &'static str,
    resp: http::Response<Vec<u8>>,
) -> Result<T, GraphError> {
    let status = resp.status().as_u16();
    let body = resp.into_body();
    if !(200..300).contains(&status) {
        return Err(GraphError::Status {
            what,
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| GraphError::Malformed {
        what,
        detail: e.to_string(),
    })
}

/// What a connection does about an overage: resolve it through Graph
/// (when configured) and whether a login may go on without groups.
#[derive(Clone, Default)]
pub(crate) struct OveragePolicy {
    pub(crate) graph: Option<Arc<GraphGroups>>,
    pub(crate) allow_without_groups: bool,
    pub(crate) tenant: String,
    pub(crate) connection: String,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl OveragePolicy {
    /// The policy of `conn`; `Err` only when its Graph client can't be
    /// built.
    pub(crate) fn for_connection(
        tenant: &str,
        conn: &ConnectionConfig,
        metrics: Option<Arc<Metrics>>,
        guard: Guard,
    ) -> Result<Self, ConnectionError> {
        let graph = GraphSettings::from_config(conn)
            .map(|s| GraphGroups::new(s, guard))
            .transpose()
            .map_err(|e| ConnectionError::new("internal", format!("Graph client: {e}")))?
            .map(Arc::new);
        Ok(Self {
            graph,
            allow_without_groups: conn.allow_login_without_groups,
            tenant: tenant.to_owned(),
            connection: conn.id.clone(),
            metrics,
        })
    }

    /// Completes `login`'s groups when the IdP signalled an overage, or
    /// refuses it (`groups_overage`). A login without an overage is left
    /// alone.
    pub(crate) async fn settle(&self, login: &mut VerifiedLogin) -> Result<(), ConnectionError> {
        let Some(overage) = login.groups_overage.clone() else {
            return Ok(());
        };
        if let Some(m) = &self.metrics {
            m.groups_overage
                .with_label_values(&[&self.tenant, &self.connection])
                .inc();
        }
        let failure = match &self.graph {
            Some(graph) => match overage.object_id.as_deref() {
                Some(oid) => match graph
                    .member_groups(overage.directory_id.as_deref(), oid)
                    .await
                {
                    Ok(groups) => {
                        tracing::info!(tenant = %self.tenant, connection = %self.connection, subject = %login.subject, groups = groups.len(), "groups overage resolved through Microsoft Graph");
                        login.groups = groups.as_ref().clone();
                        login.groups_overage = None;
                        return Ok(());
                    }
                    Err(e) => e.to_string(),
                },
                None => GraphError::NoObjectId.to_string(),
            },
            None => "the connection has no [graph] settings to fetch them".to_owned(),
        };
        if self.allow_without_groups {
            tracing::warn!(tenant = %self.tenant, connection = %self.connection, subject = %login.subject, reason = %failure, "groups overage not resolved; signing in without groups (allow_login_without_groups)");
            return Ok(());
        }
        Err(ConnectionError::new(
            "groups_overage",
            format!(
                "the IdP sent a groups overage instead of the user's groups, and they could not be fetched: {failure}. Configure [tenants.connections.graph] (application permissions User.Read.All and GroupMember.Read.All, admin-consented), or set allow_login_without_groups"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ttl: u64) -> GraphSettings {
        GraphSettings {
            client_id: "c".into(),
            client_secret: "s".into(),
            directory_id: None,
            security_enabled_only: false,
            cache_ttl: Duration::from_secs(ttl),
            timeout_ms: TIMEOUT_MS,
            authority: "http://127.0.0.1:9".into(),
            graph: "http://127.0.0.1:9".into(),
        }
    }

    #[tokio::test]
    async fn ids_that_are_not_guids_never_reach_a_url() {
        let guard =
            crate::auth::egress::Egress::with_rules(crate::config::EgressRules::public_only())
                .unwrap()
                .for_provider("t");
        let g = GraphGroups::new(settings(60), guard).unwrap();
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        for oid in [
            "../../me",
            "x/../../groups",
            "",
            "00000000-0000-0000-0000-00000000000g",
        ] {
            let e = g.member_groups(Some(tid), oid).await.unwrap_err();
            assert!(matches!(e, GraphError::NotAGuid(_)), "{oid}: {e}");
        }
        let e = g.member_groups(Some("contoso.com"), tid).await.unwrap_err();
        assert!(matches!(e, GraphError::NotAGuid(_)), "{e}");
        let e = g.member_groups(None, tid).await.unwrap_err();
        assert!(matches!(e, GraphError::NoDirectory), "{e}");
    }

    #[tokio::test]
    async fn no_overage_leaves_the_login_alone() {
        let p = OveragePolicy::default();
        let mut login = VerifiedLogin {
            groups: vec!["a".into()],
            ..VerifiedLogin::default()
        };
        p.settle(&mut login).await.unwrap();
        assert_eq!(login.groups, ["a"]);
    }

    #[tokio::test]
    async fn an_unresolvable_overage_refuses_unless_allowed() {
        let mut login = VerifiedLogin {
            groups_overage: Some(crate::auth::Overage::default()),
            ..VerifiedLogin::default()
        };
        let e = OveragePolicy::default()
            .settle(&mut login.clone())
            .await
            .unwrap_err();
        assert_eq!(e.reason, "groups_overage");
        let allow = OveragePolicy {
            allow_without_groups: true,
            ..OveragePolicy::default()
        };
        allow.settle(&mut login).await.unwrap();
        assert!(login.groups.is_empty());
    }
}
