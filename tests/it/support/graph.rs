//! A fake Microsoft identity platform + Microsoft Graph on loopback, for
//! the Entra groups overage: the two calls Portcullis makes, in the shapes
//! Microsoft documents, with the failures a real tenant produces.
//!
//! * `POST /{tenant}/oauth2/v2.0/token` — the client credentials grant
//!   (form body `grant_type`, `client_id`, `client_secret`,
//!   `scope=https://graph.microsoft.com/.default`) → `{"token_type":
//!   "Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":…}`;
//!   a wrong secret is `401 {"error":"invalid_client","error_description":
//!   "AADSTS7000215: …","error_codes":[7000215],…}`, an unknown app or
//!   directory `400` with their AADSTS codes.
//! * `POST /v1.0/users/{id}/getMemberGroups` — `Authorization: Bearer`
//!   with a token issued above, JSON body `{"securityEnabledOnly": bool}`
//!   → `{"@odata.context":…,"value":["<group id>",…]}` (transitive, only
//!   security groups when asked); no or an unknown token is `401
//!   InvalidAuthenticationToken`, an unknown user `404
//!   Request_ResourceNotFound`, a body without the boolean `400`, all in
//!   Graph's `{"error":{"code","message","innerError"}}` envelope.
//!
//! Every call is recorded (path, form or body, `Authorization`), and
//! [`Fail`] makes `getMemberGroups` answer 500 or hang.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The scope of an app-only Graph token.
pub(crate) const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The fake's directory (Entra tenant id).
pub(crate) const DIRECTORY: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// The app registration Portcullis calls Graph as.
pub(crate) const APP_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub(crate) const APP_SECRET: &str = "graph-app-secret";

/// What `getMemberGroups` does instead of answering.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Fail {
    /// 500 with Graph's error envelope.
    Status500,
    /// No answer for a minute (past any client timeout).
    Hang,
}

/// One group of a user: its object id, and whether it is a security group.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub id: String,
    pub security: bool,
}

/// One `getMemberGroups` call as received.
#[derive(Clone, Debug)]
pub(crate) struct GraphCall {
    pub user: String,
    pub authorization: Option<String>,
    pub body: Value,
}

/// Everything received, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recorded {
    /// `(directory in the path, form fields)` of each token request.
    pub token: Vec<(String, HashMap<String, String>)>,
    pub member_groups: Vec<GraphCall>,
    /// `"METHOD /path"` of anything else (e.g. a followed overage link).
    pub other: Vec<String>,
}

struct Inner {
    client_id: String,
    client_secret: String,
    users: HashMap<String, Vec<Group>>,
    issued: HashSet<String>,
    fail: Option<Fail>,
    recorded: Recorded,
}

#[derive(Clone)]
pub(crate) struct FakeGraph {
    /// `http://127.0.0.1:port`: both the authority and the Graph base.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    _task: Arc<tokio::task::JoinHandle<()>>,
}

impl FakeGraph {
    /// Serves directory [`DIRECTORY`] with app [`APP_ID`] / [`APP_SECRET`]
    /// and no users.
    pub(crate) async fn start() -> FakeGraph {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            client_id: APP_ID.into(),
            client_secret: APP_SECRET.into(),
            users: HashMap::new(),
            issued: HashSet::new(),
            fail: None,
            recorded: Recorded::default(),
        }));
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/users/{id}/getMemberGroups", post(member_groups))
            .fallback(other)
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGraph {
            base,
            inner,
            _task: Arc::new(task),
        }
    }

    /// `user` (an object id) is a member of `groups`, transitively.
    pub(crate) fn set_groups(&self, user: &str, groups: &[Group]) {
        self.inner
            .lock()
            .unwrap()
            .users
            .insert(user.to_ascii_lowercase(), groups.to_vec());
    }

    /// The secret the app registration now has (a rotated secret).
    pub(crate) fn set_secret(&self, secret: &str) {
        self.inner.lock().unwrap().client_secret = secret.into();
    }

    /// Tokens issued so far stop working (revoked, or the signing key
    /// rolled): Graph answers 401 to them.
    pub(crate) fn revoke_tokens(&self) {
        self.inner.lock().unwrap().issued.clear();
    }

    pub(crate) fn fail(&self, fail: Option<Fail>) {
        self.inner.lock().unwrap().fail = fail;
    }

    pub(crate) fn recorded(&self) -> Recorded {
        self.inner.lock().unwrap().recorded.clone()
    }

    /// `(token requests, getMemberGroups calls)` so far.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let g = self.inner.lock().unwrap();
        (g.recorded.token.len(), g.recorded.member_groups.len())
    }

    /// The `[tenants.connections.graph]` table pointing at this fake, with
    /// the app's credentials and `extra` keys.
    pub(crate) fn toml(&self, extra: &str) -> String {
        format!(
            "[tenants.connections.graph]\nclient_id = \"{APP_ID}\"\nclient_secret = \"{APP_SECRET}\"\n\
             authority_url = \"{base}\"\ngraph_url = \"{base}\"\n{extra}\n",
            base = self.base
        )
    }
}

async fn other(State(inner): State<Arc<Mutex<Inner>>>, req: axum::extract::Request) -> Response {
    let line = format!("{} {}", req.method(), req.uri());
    inner.lock().unwrap().recorded.other.push(line);
    graph_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Invalid version or resource.",
    )
}

/// The identity platform's error body (`error_codes` etc. as Entra sends).
fn aadsts(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {text}\r\nTrace ID: {t}\r\nCorrelation ID: {c}\r\nTimestamp: 2026-12-06 00:00:00Z",
            t = uuid::Uuid::new_v4(),
            c = uuid::Uuid::new_v4()
        ),
        "error_codes": [code],
        "timestamp": "2026-12-06 00:00:00Z",
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, Json(body)).into_response()
}

/// Graph's OData error envelope.
fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": "2026-12-06T00:00:00",
            "request-id": uuid::Uuid::new_v4().to_string(),
            "client-request-id": uuid::Uuid::new_v4().to_string(),
        }
    }});
    (status, Json(body)).into_response()
}

async fn token(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut g = inner.lock().unwrap();
    g.recorded.token.push((tenant.clone(), form.clone()));
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let field = |k: &str| form.get(k).map(String::as_str);
    let unknown_tenant = format!("Tenant '{tenant}' not found.");
    // The first failed check answers, in Entra's order: request shape,
    // directory, grant, scope, app, secret.
    let checks = [
        (
            !form_type,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        ),
        (
            tenant != DIRECTORY,
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            unknown_tenant.as_str(),
        ),
        (
            field("grant_type") != Some("client_credentials"),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        ),
        (
            field("scope") != Some(GRAPH_SCOPE),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
        ),
        (
            field("client_id") != Some(g.client_id.as_str()),
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application was not found in the directory.",
        ),
        (
            field("client_secret") != Some(g.client_secret.as_str()),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        ),
    ];
    if let Some((_, status, error, code, text)) = checks.into_iter().find(|c| c.0) {
        return aadsts(status, error, code, text);
    }
    let access_token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}",
        uuid::Uuid::new_v4().simple()
    );
    g.issued.insert(access_token.clone());
    Json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": access_token,
    }))
    .into_response()
}

async fn member_groups(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fail = {
        let mut g = inner.lock().unwrap();
        g.recorded.member_groups.push(GraphCall {
            user: id.clone(),
            authorization: authorization.clone(),
            body: parsed.clone(),
        });
        g.fail
    };
    match fail {
        Some(Fail::Hang) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Some(Fail::Status500) => {
            return graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                "An unexpected error occurred.",
            );
        }
        None => {}
    }
    let g = inner.lock().unwrap();
    let token = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "));
    let invalid = match token {
        None => Some("Access token is empty."),
        Some(t) if !g.issued.contains(t) => {
            Some("Lifetime validation failed, the token is expired.")
        }
        Some(_) => None,
    };
    if let Some(message) = invalid {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return graph_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Request_BadRequest",
            "The request body must be JSON (Content-Type: application/json).",
        );
    }
    let Some(security_only) = parsed.get("securityEnabledOnly").and_then(Value::as_bool) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid request body: securityEnabledOnly (Edm.Boolean) is required.",
        );
    };
    let Some(groups) = g.users.get(&id.to_ascii_lowercase()) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    };
    let value: Vec<&str> = groups
        .iter()
        .filter(|gr| gr.security || !security_only)
        .map(|gr| gr.id.as_str())
        .collect();
    Json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)",
        "value": value,
    }))
    .into_response()
}
