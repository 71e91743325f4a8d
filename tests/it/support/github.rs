//! `FakeGithub`: GitHub's OAuth app flow and the REST endpoints sign-in
//! reads, on 127.0.0.1, in GitHub's documented shapes: the authorization
//! redirect (`code`, `state`), the token endpoint (JSON only with `Accept:
//! application/json`, errors as a 200 with `error`), `/user`,
//! `/user/emails`, `/user/memberships/orgs/{org}` and `/user/teams` (paged
//! with a `Link` header), each requiring the issued bearer token. Knobs
//! make it answer the way a real account or a hostile server would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

pub(crate) const GH_CLIENT_ID: &str = "gh-client";
pub(crate) const GH_CLIENT_SECRET: &str = "gh-secret";
/// Teams per page of `/user/teams`, so a few teams span several pages.
const TEAMS_PER_PAGE: usize = 2;

/// What the next sign-in looks like.
#[derive(Clone, Debug)]
pub(crate) struct GhKnobs {
    /// `/user`.
    pub user: Value,
    /// `/user/emails`, in API order.
    pub emails: Vec<Value>,
    /// The membership state in any organisation; `None`: 404.
    pub org_state: Option<&'static str>,
    /// `(org login, team slug)` of `/user/teams`.
    pub teams: Vec<(&'static str, &'static str)>,
    /// The granted scopes (comma-separated, as GitHub sends them);
    /// default: what was asked.
    pub grant_scopes: Option<String>,
    /// The token endpoint answers 200 with this `error`.
    pub token_error: Option<&'static str>,
    /// `/user/teams`' next page is announced on another origin.
    pub foreign_next: bool,
}

/// Verified alice@acme.com (primary), an unverified extra address.
pub(crate) fn email(address: &str, primary: bool, verified: bool) -> Value {
    json!({"email": address, "primary": primary, "verified": verified, "visibility": "private"})
}

impl Default for GhKnobs {
    fn default() -> Self {
        Self {
            user: json!({"login": "alice-gh", "id": 4242, "name": "Alice Example", "type": "User"}),
            emails: vec![
                email("alice@acme.com", true, true),
                email("alice@example.org", false, false),
            ],
            org_state: Some("active"),
            teams: vec![
                ("acme-corp", "eng"),
                ("other-org", "admins"),
                ("acme-corp", "ops"),
            ],
            grant_scopes: None,
            token_error: None,
            foreign_next: false,
        }
    }
}

#[derive(Default)]
pub(crate) struct GhRecorded {
    pub authorize: Vec<HashMap<String, String>>,
    pub token: Vec<HashMap<String, String>>,
    /// `METHOD path?query` of every API request.
    pub api: Vec<String>,
}

struct Grant {
    challenge: String,
    redirect_uri: String,
    scope: String,
    used: bool,
}

struct Inner {
    base: String,
    knobs: GhKnobs,
    grants: HashMap<String, Grant>,
    tokens: Vec<String>,
    recorded: GhRecorded,
}

#[derive(Clone)]
pub(crate) struct FakeGithub {
    /// `http://127.0.0.1:PORT`: authorize, token and API share it.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    _task: Arc<tokio::task::JoinHandle<()>>,
}

type Gh = State<Arc<Mutex<Inner>>>;

impl FakeGithub {
    pub(crate) async fn start() -> FakeGithub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            base: base.clone(),
            knobs: GhKnobs::default(),
            grants: HashMap::new(),
            tokens: Vec::new(),
            recorded: GhRecorded::default(),
        }));
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .route("/user/memberships/orgs/{org}", get(membership))
            .route("/user/teams", get(teams))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGithub {
            base,
            inner,
            _task: Arc::new(task),
        }
    }

    pub(crate) fn set(&self, f: impl FnOnce(&mut GhKnobs)) {
        f(&mut self.inner.lock().unwrap().knobs);
    }

    pub(crate) fn reset(&self) {
        self.inner.lock().unwrap().knobs = GhKnobs::default();
    }

    pub(crate) fn recorded<T>(&self, f: impl FnOnce(&GhRecorded) -> T) -> T {
        f(&self.inner.lock().unwrap().recorded)
    }

    /// The `[platform.providers.github]` section pointing here.
    pub(crate) fn provider_toml(&self) -> String {
        let b = &self.base;
        format!(
            "[platform.providers.github]\nclient_id = \"{GH_CLIENT_ID}\"\nclient_secret = \"{GH_CLIENT_SECRET}\"\n\
             authorize_url = \"{b}/login/oauth/authorize\"\ntoken_url = \"{b}/login/oauth/access_token\"\napi_url = \"{b}\"\n"
        )
    }
}

async fn authorize(State(s): Gh, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut g = s.lock().unwrap();
    g.recorded.authorize.push(q.clone());
    let (Some(redirect_uri), Some(challenge)) = (q.get("redirect_uri"), q.get("code_challenge"))
    else {
        return (StatusCode::BAD_REQUEST, "redirect_uri and PKCE required").into_response();
    };
    if q.get("client_id").map(String::as_str) != Some(GH_CLIENT_ID)
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "bad client or PKCE method").into_response();
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    g.grants.insert(
        code.clone(),
        Grant {
            challenge: challenge.clone(),
            redirect_uri: redirect_uri.clone(),
            scope: q.get("scope").cloned().unwrap_or_default(),
            used: false,
        },
    );
    let mut url = reqwest::Url::parse(redirect_uri).unwrap();
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(st) = q.get("state") {
        url.query_pairs_mut().append_pair("state", st);
    }
    Redirect::to(url.as_str()).into_response()
}

/// GitHub's error shape: 200 with `error`, `error_description`, `error_uri`.
fn token_error(code: &str) -> Response {
    Json(json!({
        "error": code,
        "error_description": "The code passed is incorrect or expired.",
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/",
    }))
    .into_response()
}

async fn access_token(
    State(s): Gh,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut g = s.lock().unwrap();
    g.recorded.token.push(f.clone());
    if let Some(e) = g.knobs.token_error {
        return token_error(e);
    }
    if f.get("client_id").map(String::as_str) != Some(GH_CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(GH_CLIENT_SECRET)
    {
        return token_error("incorrect_client_credentials");
    }
    let code = f.get("code").cloned().unwrap_or_default();
    let Some(grant) = g.grants.get_mut(&code).filter(|gr| !gr.used) else {
        return token_error("bad_verification_code");
    };
    grant.used = true;
    if f.get("redirect_uri") != Some(&grant.redirect_uri) {
        return token_error("redirect_uri_mismatch");
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if B64.encode(openssl::sha::sha256(verifier.as_bytes())) != grant.challenge {
        return token_error("bad_verification_code");
    }
    let asked = grant.scope.replace(' ', ",");
    let scope = g.knobs.grant_scopes.clone().unwrap_or(asked);
    let token = format!("gho_{}", uuid::Uuid::new_v4().simple());
    g.tokens.push(token.clone());
    let json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if json {
        Json(json!({"access_token": token, "scope": scope, "token_type": "bearer"})).into_response()
    } else {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", &token)
            .append_pair("scope", &scope)
            .append_pair("token_type", "bearer")
            .finish();
        (
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
            body,
        )
            .into_response()
    }
}

/// The request log and the bearer token check (`false`: answer 401).
fn api(g: &mut Inner, headers: &HeaderMap, what: String) -> bool {
    g.recorded.api.push(what);
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| g.tokens.iter().any(|k| k == t))
        && headers
            .get(header::ACCEPT)
            .is_some_and(|v| v == "application/vnd.github+json")
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Requires authentication"})),
    )
        .into_response()
}

async fn user(State(s): Gh, headers: HeaderMap) -> Response {
    let mut g = s.lock().unwrap();
    if !api(&mut g, &headers, "GET /user".into()) {
        return unauthorized();
    }
    Json(g.knobs.user.clone()).into_response()
}

async fn emails(
    State(s): Gh,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut g = s.lock().unwrap();
    let per_page = q.get("per_page").cloned().unwrap_or_default();
    if !api(
        &mut g,
        &headers,
        format!("GET /user/emails?per_page={per_page}"),
    ) {
        return unauthorized();
    }
    Json(Value::Array(g.knobs.emails.clone())).into_response()
}

async fn membership(State(s): Gh, headers: HeaderMap, Path(org): Path<String>) -> Response {
    let mut g = s.lock().unwrap();
    if !api(
        &mut g,
        &headers,
        format!("GET /user/memberships/orgs/{org}"),
    ) {
        return unauthorized();
    }
    match g.knobs.org_state {
        Some(state) => Json(json!({
            "url": format!("{}/orgs/{org}/memberships/alice-gh", g.base),
            "state": state,
            "role": "member",
            "organization": {"login": org},
            "user": {"login": "alice-gh"},
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}

async fn teams(
    State(s): Gh,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut g = s.lock().unwrap();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    if !api(&mut g, &headers, format!("GET /user/teams?page={page}")) {
        return unauthorized();
    }
    let all: Vec<Value> = g
        .knobs
        .teams
        .iter()
        .map(|(org, slug)| json!({"slug": slug, "name": slug, "organization": {"login": org}}))
        .collect();
    let start = (page - 1) * TEAMS_PER_PAGE;
    let items: Vec<Value> = all
        .iter()
        .skip(start)
        .take(TEAMS_PER_PAGE)
        .cloned()
        .collect();
    let mut resp = Json(Value::Array(items)).into_response();
    if start + TEAMS_PER_PAGE < all.len() {
        let base = if g.knobs.foreign_next {
            // Same server, another origin by name: following it would work,
            // which is exactly what must not happen.
            g.base.replace("127.0.0.1", "localhost")
        } else {
            g.base.clone()
        };
        let link = format!(
            "<{base}/user/teams?per_page=100&page={}>; rel=\"next\", <{base}/user/teams?per_page=100&page=1>; rel=\"first\"",
            page + 1
        );
        resp.headers_mut()
            .insert(header::LINK, link.parse().unwrap());
    }
    resp
}
