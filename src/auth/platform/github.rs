//! GitHub sign-in: OAuth 2.0 (GitHub speaks no OpenID Connect), so the
//! identity comes from its REST API with the user's token. `start` sends
//! the browser to the authorization page with `state` = the flow relay and
//! PKCE (S256); `finish` burns the state once, exchanges the code, and
//! reads the user, their addresses (only a verified one in a tenant domain
//! is used), the required organisation membership and that organisation's
//! teams. Every request goes through the provider client (no redirects,
//! timeout, capped bodies); pagination never leaves the API's origin.

use std::sync::Arc;

use async_trait::async_trait;
use openidconnect::PkceCodeChallenge;
use openidconnect::url::Url;
use serde_json::{Value, json};

use super::rules::{self, GithubEmail};
use crate::auth::flow::FLOW_LIFETIME_SECONDS;
use crate::auth::oidc::ProviderHttp;
use crate::auth::policy::DomainRouter;
use crate::auth::{
    CallbackRequest, Connection, ConnectionError, LoginStart, StartContext, VerifiedLogin,
};
use crate::config::{ConnectionConfig, GithubProvider, GithubRules, TenantConfig};
use crate::secret::Secret;
use crate::store::Store;

use super::endpoints::{GITHUB_API, GITHUB_AUTHORIZE, GITHUB_TOKEN};

/// One-time store kind for consumed GitHub `state` values.
pub(super) const STATE_KIND: &str = "github-state";

/// Most pages read of one list (100 entries each).
const MAX_PAGES: usize = 10;

/// Longest `code` accepted from the query.
const MAX_CODE_BYTES: usize = 4096;

const API_VERSION: &str = "2022-11-28";

/// What the factory shares with every GitHub connection.
pub(super) struct Deps {
    pub(super) redirect_uri: String,
    pub(super) http: ProviderHttp,
    pub(super) store: Store,
    pub(super) domains: Arc<dyn DomainRouter>,
}

pub(super) struct GithubConnection {
    id: String,
    tenant: TenantConfig,
    rules: GithubRules,
    client_id: String,
    secret: Secret,
    authorize_url: String,
    token_url: String,
    api_url: String,
    deps: Deps,
}

fn err(reason: &'static str, detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new(reason, detail)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).filter(|c| !c.is_control()).collect()
}

impl GithubConnection {
    pub(super) fn new(
        p: &GithubProvider,
        tenant: &TenantConfig,
        conn: &ConnectionConfig,
        deps: Deps,
    ) -> Self {
        let pick = |o: &Option<String>, d: &str| o.clone().unwrap_or_else(|| d.to_owned());
        Self {
            id: conn.id.clone(),
            tenant: tenant.clone(),
            rules: conn.github.clone().unwrap_or_default(),
            client_id: p.client_id.clone(),
            secret: Secret::new(p.client_secret.clone()),
            authorize_url: pick(&p.authorize_url, GITHUB_AUTHORIZE),
            token_url: pick(&p.token_url, GITHUB_TOKEN),
            api_url: pick(&p.api_url, GITHUB_API)
                .trim_end_matches('/')
                .to_owned(),
            deps,
        }
    }

    fn scopes(&self) -> &'static str {
        if self.rules.org.is_some() {
            "read:user user:email read:org"
        } else {
            "read:user user:email"
        }
    }

    /// Code → access token. GitHub answers errors with 200 and an `error`
    /// field, so any `error` is a failure whatever the status.
    async fn exchange(&self, code: &str, verifier: &str) -> Result<String, ConnectionError> {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.secret.expose())
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.deps.redirect_uri)
            .append_pair("code_verifier", verifier)
            .finish();
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri(&self.token_url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.into_bytes())
            .map_err(|e| err("token_exchange", e.to_string()))?;
        let resp = self
            .deps
            .http
            .send(req)
            .await
            .map_err(|e| err("token_exchange", format!("token endpoint unreachable: {e}")))?;
        let v: Value = serde_json::from_slice(resp.body()).map_err(|_| {
            err(
                "token_exchange",
                format!("token response (HTTP {}) is not JSON", resp.status()),
            )
        })?;
        if let Some(e) = v.get("error") {
            return Err(err(
                "token_exchange",
                format!(
                    "token endpoint refused: {} {}",
                    truncate(&e.to_string(), 100),
                    truncate(
                        v.get("error_description")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                        200
                    )
                ),
            ));
        }
        if resp.status() != 200 {
            return Err(err(
                "token_exchange",
                format!("token endpoint: HTTP {}", resp.status()),
            ));
        }
        let token = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err("token_exchange", "token response has no access_token"))?;
        // The user may have granted less than asked (scopes are editable
        // on the consent page).
        let granted: Vec<&str> = v
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("")
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .collect();
        let has = |any: &[&str]| granted.iter().any(|g| any.contains(g));
        if !has(&["user:email", "user"]) {
            return Err(err(
                "scope_denied",
                format!("granted scopes {granted:?} lack user:email"),
            ));
        }
        if self.rules.org.is_some() && !has(&["read:org", "write:org", "admin:org"]) {
            return Err(err(
                "scope_denied",
                format!("granted scopes {granted:?} lack read:org"),
            ));
        }
        Ok(token.to_owned())
    }

    /// One API GET: status, body as JSON (`Null` when not JSON), and the
    /// next page's URL when the `Link` header names one.
    async fn get(
        &self,
        url: &str,
        token: &str,
    ) -> Result<(u16, Value, Option<String>), ConnectionError> {
        let req = http::Request::builder()
            .method(http::Method::GET)
            .uri(url)
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Vec::new())
            .map_err(|e| err("userinfo", e.to_string()))?;
        let resp = self
            .deps
            .http
            .send(req)
            .await
            .map_err(|e| err("userinfo", format!("{}: {e}", self.path_of(url))))?;
        let next = resp
            .headers()
            .get_all(http::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link);
        let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        Ok((resp.status().as_u16(), body, next))
    }

    /// The path of an API URL, for log details (never the token).
    fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(self.api_url.as_str()).unwrap_or(url)
    }

    /// Every entry of a paginated list, following `rel="next"` only within
    /// the API's origin and for at most `MAX_PAGES` pages.
    async fn list(&self, first: &str, token: &str) -> Result<Vec<Value>, ConnectionError> {
        let origin = origin_of(&self.api_url)
            .ok_or_else(|| err("config", format!("api_url {:?} is no URL", self.api_url)))?;
        let mut out = Vec::new();
        let mut url = first.to_owned();
        for _ in 0..MAX_PAGES {
            let (status, body, next) = self.get(&url, token).await?;
            if status != 200 {
                return Err(err(
                    "userinfo",
                    format!("{}: HTTP {status}", self.path_of(&url)),
                ));
            }
            let Value::Array(items) = body else {
                return Err(err(
                    "malformed",
                    format!("{}: not a JSON array", self.path_of(&url)),
                ));
            };
            out.extend(items);
            match next {
                None => return Ok(out),
                Some(n) if origin_of(&n).as_ref() == Some(&origin) => url = n,
                Some(n) => {
                    return Err(err(
                        "malformed",
                        format!(
                            "next page {:?} is outside the API's origin",
                            truncate(&n, 200)
                        ),
                    ));
                }
            }
        }
        Err(err(
            "malformed",
            format!("{}: more than {MAX_PAGES} pages", self.path_of(first)),
        ))
    }
}

type Origin = (String, String, Option<u16>);

fn origin_of(url: &str) -> Option<Origin> {
    let u = Url::parse(url).ok()?;
    Some((
        u.scheme().to_owned(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default(),
    ))
}

/// The `rel="next"` target of one `Link` header value (RFC 8288).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                p.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim() == "rel" && v.trim().trim_matches('"').split(' ').any(|r| r == "next")
                })
            })
            .then(|| target.to_owned())
    })
}

#[async_trait]
impl Connection for GithubConnection {
    fn id(&self) -> &str {
        &self.id
    }

    async fn start(&self, ctx: &StartContext) -> Result<LoginStart, ConnectionError> {
        // OAuth without OpenID Connect: no way to ask for, or learn, how
        // the user authenticated.
        if ctx.step_up.is_some() {
            return Err(err(
                "step_up_unsupported",
                "GitHub reports no acr or authentication time",
            ));
        }
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut url = Url::parse(&self.authorize_url)
            .map_err(|e| err("config", format!("authorize_url: {e}")))?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.deps.redirect_uri)
            .append_pair("scope", self.scopes())
            .append_pair("state", &ctx.relay)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256")
            .append_pair("allow_signup", "false");
        Ok(LoginStart {
            redirect_to: url.to_string(),
            state: json!({ "pkce_verifier": verifier.secret() }),
        })
    }

    async fn finish(
        &self,
        req: &CallbackRequest,
        state: &Value,
    ) -> Result<VerifiedLogin, ConnectionError> {
        if let Some(e) = req.param("error") {
            return Err(err(
                "idp_error",
                format!(
                    "{}: {}",
                    truncate(e, 100),
                    truncate(req.param("error_description").unwrap_or(""), 300)
                ),
            ));
        }
        let relay = req
            .relay()
            .ok_or_else(|| err("missing_state", "no state"))?;
        let verifier = state
            .get("pkce_verifier")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("pkce_missing", "flow has no PKCE verifier"))?;
        let code = req
            .param("code")
            .filter(|c| !c.is_empty() && c.len() <= MAX_CODE_BYTES)
            .ok_or_else(|| err("malformed", "callback without a usable code"))?;
        let now = crate::clock::now();
        let first = self
            .deps
            .store
            .one_time()
            .consume(STATE_KIND, relay, now + FLOW_LIFETIME_SECONDS + 60)
            .await
            .map_err(|e| err("store", e.to_string()))?;
        if !first {
            return Err(err(
                "replay",
                "this state was already used (callback replayed)",
            ));
        }
        let token = self.exchange(code, verifier).await?;
        let api = &self.api_url;

        let (status, user, _) = self.get(&format!("{api}/user"), &token).await?;
        if status != 200 {
            return Err(err("userinfo", format!("/user: HTTP {status}")));
        }
        // The numeric id is stable; the login can be renamed.
        let id = user
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| err("malformed", "/user has no numeric id"))?;
        let login = user.get("login").and_then(Value::as_str).unwrap_or("");
        let name = user
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .or(Some(login).filter(|l| !l.is_empty()))
            .map(str::to_owned);

        let raw_emails = self
            .list(&format!("{api}/user/emails?per_page=100"), &token)
            .await?;
        let emails: Vec<GithubEmail> = raw_emails
            .iter()
            .filter_map(|e| serde_json::from_value(e.clone()).ok())
            .collect();
        let domains = super::verified_domains(self.deps.domains.as_ref(), &self.tenant).await?;
        let email = rules::github_email(&emails, &domains)?;

        let mut groups = Vec::new();
        if let Some(org) = &self.rules.org {
            let (status, body, _) = self
                .get(&format!("{api}/user/memberships/orgs/{org}"), &token)
                .await?;
            rules::github_org(status, &body, org)?;
            if self.rules.teams_as_groups {
                let teams = self
                    .list(&format!("{api}/user/teams?per_page=100"), &token)
                    .await?;
                groups = teams
                    .iter()
                    .filter(|t| {
                        t.pointer("/organization/login")
                            .and_then(Value::as_str)
                            .is_some_and(|l| l.eq_ignore_ascii_case(org))
                    })
                    .filter_map(|t| t.get("slug").and_then(Value::as_str))
                    .map(|slug| format!("{org}/{slug}"))
                    .collect();
                groups.sort();
                groups.dedup();
            }
        }
        Ok(VerifiedLogin {
            connection_id: self.id.clone(),
            subject: id.to_string(),
            email,
            email_verified: Some(true),
            name,
            groups,
            raw_claims: json!({
                "id": id,
                "login": login,
                "emails": emails.iter().map(|e| json!({
                    "email": e.email, "primary": e.primary, "verified": e.verified,
                })).collect::<Vec<_>>(),
            }),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_and_origins() {
        let h = r#"<https://api.github.com/user/teams?page=2>; rel="next", <https://api.github.com/user/teams?page=5>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/user/teams?page=2")
        );
        assert_eq!(next_link(r#"<https://x/1>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(
            origin_of("https://API.github.com/x"),
            origin_of("https://api.github.com:443/y")
        );
        assert_ne!(
            origin_of("https://api.github.com/x"),
            origin_of("https://api.github.com.evil.io/x")
        );
        assert_ne!(
            origin_of("http://127.0.0.1:1/x"),
            origin_of("http://127.0.0.1:2/x")
        );
    }
}
