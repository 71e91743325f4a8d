//! The admin API: JSON under `/admin/v1/`, every route behind an operator
//! token. Routes and the OpenAPI 3.1 document come from the same handler
//! annotations (utoipa), so the document can't drift from the routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::Actor;
use super::ops::{
    self, AuditPage, ConnectionView, Current, DomainInput, DomainView, Link, OpError,
    ScimCredentials, SessionView, SetupLinkInput, TenantView, UserView,
};
use super::service_accounts::{
    self, RotateInput, ServiceAccountInput, ServiceAccountToken, ServiceAccountView,
};
use crate::config::{ConnectionConfig, FieldError, TenantConfig};

type Cur = State<Arc<dyn Current>>;

/// Every error: what went wrong, by field when a document didn't validate
/// (the field is empty for the request as a whole).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub errors: Vec<FieldError>,
}

/// An answer other than success.
pub struct ApiError(StatusCode, Vec<FieldError>);

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid(errors) => ApiError(StatusCode::BAD_REQUEST, errors),
            OpError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, vec![FieldError::new("", m)]),
            OpError::Conflict(m) => ApiError(StatusCode::CONFLICT, vec![FieldError::new("", m)]),
            OpError::Internal(m) => ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![FieldError::new("", m)],
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(ErrorBody { errors: self.1 })).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON body, read by hand so a malformed one is a JSON error too.
fn json_body(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            vec![FieldError::new("", format!("invalid JSON: {e}"))],
        )
    })
}

fn typed<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    let value = json_body(body)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => String::new(),
            p => p,
        };
        ApiError(
            StatusCode::BAD_REQUEST,
            vec![FieldError::new(field, e.inner().to_string())],
        )
    })
}

/// [`typed`] for a body that must be a JSON object (serde would also read
/// a struct from an array).
fn typed_object<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if !json_body(body)?.is_object() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            vec![FieldError::new("", "expected a JSON object")],
        ));
    }
    typed(body)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

#[utoipa::path(get, path = "/admin/v1/tenants", tag = "tenants",
    responses((status = 200, body = [TenantView]), (status = 401, body = ErrorBody)))]
async fn list_tenants(State(cur): Cur) -> Json<Vec<TenantView>> {
    Json(ops::list_tenants(&cur.ctx()))
}

#[utoipa::path(post, path = "/admin/v1/tenants", tag = "tenants", request_body = TenantConfig,
    responses((status = 201, body = TenantView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_tenant(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let body = json_body(&body)?;
    let t = ops::create_tenant(cur.as_ref(), &actor, &body).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = TenantView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_tenant(State(cur): Cur, Path(id): Path<String>) -> ApiResult<Json<TenantView>> {
    Ok(Json(ops::get_tenant(&cur.ctx(), &id)?))
}

#[utoipa::path(patch, path = "/admin/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "tenant id")),
    request_body(content = Object, description = "a JSON merge patch of the tenant's keys"),
    responses((status = 200, body = TenantView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn update_tenant(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<TenantView>> {
    let body = json_body(&body)?;
    Ok(Json(
        ops::update_tenant(cur.as_ref(), &actor, &id, &body).await?,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn delete_tenant(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ops::delete_tenant(cur.as_ref(), &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}/domains", tag = "domains",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = [DomainView]), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_domains(State(cur): Cur, Path(id): Path<String>) -> ApiResult<Json<Vec<DomainView>>> {
    Ok(Json(ops::list_domains(&cur.ctx(), &id).await?))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{id}/domains", tag = "domains",
    params(("id" = String, Path, description = "tenant id")), request_body = DomainInput,
    responses((status = 201, body = DomainView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn add_domain(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<DomainView>)> {
    let input: DomainInput = typed(&body)?;
    let d = ops::add_domain(cur.as_ref(), &actor, &id, &input).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{id}/domains/{domain}/verify", tag = "domains",
    params(("id" = String, Path, description = "tenant id"),
        ("domain" = String, Path, description = "the domain")),
    responses((status = 200, body = DomainView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn verify_domain(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path((id, domain)): Path<(String, String)>,
) -> ApiResult<Json<DomainView>> {
    Ok(Json(
        ops::verify_domain(cur.as_ref(), &actor, &id, &domain).await?,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{id}/domains/{domain}", tag = "domains",
    params(("id" = String, Path, description = "tenant id"),
        ("domain" = String, Path, description = "the domain")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn remove_domain(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path((id, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ops::remove_domain(cur.as_ref(), &actor, &id, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}/connections", tag = "connections",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = [ConnectionView]), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_connections(
    State(cur): Cur,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ConnectionView>>> {
    Ok(Json(ops::list_connections(&cur.ctx(), &id)?))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{id}/connections", tag = "connections",
    params(("id" = String, Path, description = "tenant id")), request_body = ConnectionConfig,
    responses((status = 201, body = ConnectionView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn add_connection(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let body = json_body(&body)?;
    let c = ops::put_connection(cur.as_ref(), &actor, &id, None, &body).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}/connections/{cid}", tag = "connections",
    params(("id" = String, Path, description = "tenant id"),
        ("cid" = String, Path, description = "connection id")),
    responses((status = 200, body = ConnectionView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_connection(
    State(cur): Cur,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(ops::get_connection(&cur.ctx(), &id, &cid)?))
}

#[utoipa::path(patch, path = "/admin/v1/tenants/{id}/connections/{cid}", tag = "connections",
    params(("id" = String, Path, description = "tenant id"),
        ("cid" = String, Path, description = "connection id")),
    request_body(content = Object, description = "a JSON merge patch of the connection's keys; ends its sessions"),
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn update_connection(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path((id, cid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<ConnectionView>> {
    let body = json_body(&body)?;
    Ok(Json(
        ops::put_connection(cur.as_ref(), &actor, &id, Some(&cid), &body).await?,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{id}/connections/{cid}", tag = "connections",
    params(("id" = String, Path, description = "tenant id"),
        ("cid" = String, Path, description = "connection id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn delete_connection(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ops::delete_connection(cur.as_ref(), &actor, &id, &cid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/tenants/{id}/connections/{cid}/test-link",
    tag = "connections",
    params(("id" = String, Path, description = "tenant id"),
        ("cid" = String, Path, description = "connection id")),
    responses((status = 200, body = Link), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn test_link(
    State(cur): Cur,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<Json<Link>> {
    Ok(Json(ops::test_link(&cur.ctx(), &id, &cid)?))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{id}/scim-token", tag = "provisioning",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = ScimCredentials), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn rotate_scim_token(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<Json<ScimCredentials>> {
    Ok(Json(
        ops::rotate_scim_token(cur.as_ref(), &actor, &id).await?,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{id}/scim-token", tag = "provisioning",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 204, description = "the tenant has no SCIM token now"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_scim_token(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ops::revoke_scim_token(cur.as_ref(), &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}/users", tag = "users",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = [UserView]), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_users(State(cur): Cur, Path(id): Path<String>) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(ops::list_users(&cur.ctx(), &id).await?))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}/sessions", tag = "users",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = [SessionView]), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_sessions(
    State(cur): Cur,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SessionView>>> {
    Ok(Json(ops::list_sessions(&cur.ctx(), &id).await?))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{id}/sessions", tag = "users",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = Revoked), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke_all_sessions(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<Json<Revoked>> {
    let revoked = ops::revoke_sessions(cur.as_ref(), &actor, &id, None).await?;
    Ok(Json(Revoked { revoked }))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{id}/sessions/{sid}", tag = "users",
    params(("id" = String, Path, description = "tenant id"),
        ("sid" = String, Path, description = "session id (its hash, as listed)")),
    responses((status = 200, body = Revoked), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke_session(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<Json<Revoked>> {
    let revoked = ops::revoke_sessions(cur.as_ref(), &actor, &id, Some(&sid)).await?;
    Ok(Json(Revoked { revoked }))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{id}/setup-links", tag = "tenants",
    params(("id" = String, Path, description = "tenant id")), request_body = SetupLinkInput,
    responses((status = 201, body = Link), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_setup_link(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Link>)> {
    let input: SetupLinkInput = typed(&body)?;
    let link = ops::create_setup_link(cur.as_ref(), &actor, &id, &input).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{id}/service-accounts", tag = "service-accounts",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = [ServiceAccountView]), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_service_accounts(
    State(cur): Cur,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ServiceAccountView>>> {
    Ok(Json(service_accounts::list(&cur.ctx(), &id).await?))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{id}/service-accounts", tag = "service-accounts",
    params(("id" = String, Path, description = "tenant id")), request_body = ServiceAccountInput,
    responses((status = 201, body = ServiceAccountToken), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_service_account(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ServiceAccountToken>)> {
    let input: ServiceAccountInput = typed_object(&body)?;
    let t = service_accounts::create(&cur.ctx(), &actor, &id, &input).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{id}/service-accounts/{name}/rotate",
    tag = "service-accounts",
    params(("id" = String, Path, description = "tenant id"),
        ("name" = String, Path, description = "the active account's name")),
    request_body(content = Option<RotateInput>, description = "optional; the overlap defaults to a day"),
    responses((status = 200, body = ServiceAccountToken), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn rotate_service_account(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<ServiceAccountToken>> {
    let input: RotateInput = if body.iter().all(u8::is_ascii_whitespace) {
        RotateInput::default()
    } else {
        typed_object(&body)?
    };
    Ok(Json(
        service_accounts::rotate(&cur.ctx(), &actor, &id, &name, &input).await?,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{id}/service-accounts/{name}",
    tag = "service-accounts",
    params(("id" = String, Path, description = "tenant id"),
        ("name" = String, Path, description = "the active account's name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_service_account(
    State(cur): Cur,
    Extension(actor): Extension<Actor>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    service_accounts::revoke(&cur.ctx(), &actor, &id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only this tenant's events.
    tenant: Option<String>,
    /// Events older than this id (the previous page's `next`).
    before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn audit(
    State(cur): Cur,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    // axum's own rejection is plain text: every error here is JSON.
    let Query(q) = q.map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            vec![FieldError::new("", e.body_text())],
        )
    })?;
    Ok(Json(
        ops::audit_page(&cur.ctx(), q.tenant.as_deref(), q.before, q.limit).await?,
    ))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Portcullis admin API", description = "Tenants, domains, SSO connections, SCIM tokens, service accounts, sessions, setup links and the audit log. Every route needs `Authorization: Bearer <token>` from `portcullis admin-token create`."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

fn parts() -> (Router<Arc<dyn Current>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
        .routes(routes!(list_domains, add_domain))
        .routes(routes!(verify_domain))
        .routes(routes!(remove_domain))
        .routes(routes!(list_connections, add_connection))
        .routes(routes!(
            get_connection,
            update_connection,
            delete_connection
        ))
        .routes(routes!(test_link))
        .routes(routes!(rotate_scim_token, revoke_scim_token))
        .routes(routes!(list_users))
        .routes(routes!(list_sessions, revoke_all_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(create_setup_link))
        .routes(routes!(list_service_accounts, create_service_account))
        .routes(routes!(rotate_service_account))
        .routes(routes!(revoke_service_account))
        .routes(routes!(audit))
        .split_for_parts()
}

/// The OpenAPI 3.1 document of every route, as served at
/// `/admin/v1/openapi.json`.
pub fn openapi_json() -> String {
    parts().1.to_pretty_json().unwrap_or_default()
}

/// The API's router, every route (the document included) behind a token.
pub fn router(cur: Arc<dyn Current>) -> Router {
    let (router, doc) = parts();
    let doc = doc.to_pretty_json().unwrap_or_default();
    router
        .route(
            "/admin/v1/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], doc)
            }),
        )
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                vec![FieldError::new("", "no such route")],
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            cur.clone(),
            require_token,
        ))
        .with_state(cur)
}

/// An operator token checked from the request head alone, before any of
/// the body is read: the admin listener authenticates first, so no
/// unauthenticated client can make it buffer a body. Only [`authenticate`]
/// makes one (its field is private), and a client can't set extensions.
#[derive(Debug, Clone)]
pub struct Authenticated(Actor);

/// Resolves the bearer token to its name (the actor), or the answer: 401
/// (generic; which check failed is not said), 503 when the store fails.
pub async fn authenticate(
    cur: &dyn Current,
    headers: &header::HeaderMap,
) -> Result<Authenticated, Response> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match super::tokens::authenticate(&cur.ctx().store, header).await {
        Ok(Some(name)) => Ok(Authenticated(Actor::OperatorToken { name })),
        Ok(None) => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            vec![FieldError::new(
                "",
                "a valid admin token is required (Authorization: Bearer, from `portcullis admin-token create`)",
            )],
        )
        .into_response()),
        Err(e) => {
            tracing::error!(error = %e, "admin token lookup failed");
            Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                vec![FieldError::new("", "the store is unavailable")],
            )
            .into_response())
        }
    }
}

/// Every route's gate: the caller authenticated by the listener, or by
/// its token here; the handlers see the [`Actor`].
async fn require_token(State(cur): Cur, mut req: Request, next: Next) -> Response {
    let authenticated = match req.extensions_mut().remove::<Authenticated>() {
        Some(a) => a,
        None => match authenticate(cur.as_ref(), req.headers()).await {
            Ok(a) => a,
            Err(answer) => return answer,
        },
    };
    req.extensions_mut().insert(authenticated.0);
    next.run(req).await
}
