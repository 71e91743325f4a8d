//! The `/scim/v2` HTTP surface: an axum router the proxy calls in-process.
//! Authentication is the tenant's bearer token (middleware), never a
//! browser session. Every response is `application/scim+json`.

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::discovery;
use super::error::ScimError;
use super::query::ListQuery;
use super::resource::Projection;
use super::schema::{self, Kind};
use super::service::Scim;
use super::wire::{etag_matches, get_ci, json_body, object, scim_json, with_version};

/// The authenticated tenant.
#[derive(Debug, Clone)]
pub struct Tenant(pub String);

/// Routes relative to the SCIM base path (the caller nests them).
pub fn router(scim: Arc<Scim>) -> Router {
    let api = Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Users", get(list_users).post(create_users))
        .route("/Users/.search", post(search_users))
        .route(
            "/Users/{id}",
            get(get_users)
                .put(put_users)
                .patch(patch_users)
                .delete(delete_users),
        )
        .route("/Groups", get(list_groups).post(create_groups))
        .route("/Groups/.search", post(search_groups))
        .route(
            "/Groups/{id}",
            get(get_groups)
                .put(put_groups)
                .patch(patch_groups)
                .delete(delete_groups),
        )
        .route("/Bulk", post(super::bulk::handler))
        .route("/.search", post(search_root))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(scim.clone(), authenticate))
        // The body is bounded once, by `body_limit` below, at the size Bulk
        // advertises; axum's own 2 MiB default would otherwise answer
        // bodies between the two with a plain-text 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(scim.clone());
    let path = scim.config.scim.base_path().to_owned();
    let limit = scim.config.scim.max_payload_bytes;
    Router::new()
        .nest(&path, api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(limit, body_limit))
}

/// Refuses a body over `[scim] max_payload_bytes` with a SCIM 413 before
/// authentication or any handler sees it (Bulk advertises the same number
/// as `maxPayloadSize`). Outermost, so every path under the base is
/// covered, unknown ones included.
async fn body_limit(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => next.run(Request::from_parts(parts, bytes.into())).await,
        Err(_) => {
            ScimError::too_large(format!("the request body exceeds {limit} bytes")).into_response()
        }
    }
}

/// A SCIM error response (RFC 7644 §3.12) without `scimType`, for answers
/// given on the API's behalf by whoever mounts it (the proxy's 429).
pub fn error(status: StatusCode, detail: &str) -> Response {
    ScimError::new(status, None, detail).into_response()
}

async fn authenticate(State(scim): State<Arc<Scim>>, mut req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match scim.authenticate(auth).await {
        Ok(tenant) => {
            req.extensions_mut().insert(Tenant(tenant));
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn not_found() -> Response {
    ScimError::not_found("no such SCIM endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "method not supported on this endpoint",
    )
    .into_response()
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn int_param(v: Option<&str>, name: &str) -> Result<Option<i64>, ScimError> {
    v.map(|s| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| ScimError::invalid_value(format!("`{name}` must be an integer")))
    })
    .transpose()
}

fn sort_order(v: Option<&str>) -> Result<bool, ScimError> {
    match v {
        None => Ok(false),
        Some(s) if s.eq_ignore_ascii_case("ascending") => Ok(false),
        Some(s) if s.eq_ignore_ascii_case("descending") => Ok(true),
        Some(_) => Err(ScimError::invalid_value(
            "sortOrder must be ascending or descending",
        )),
    }
}

fn projection(pairs: &[(String, String)]) -> Result<Projection, ScimError> {
    Projection::parse(
        param(pairs, "attributes"),
        param(pairs, "excludedAttributes"),
    )
}

fn list_query_from_params(raw: Option<&str>) -> Result<ListQuery, ScimError> {
    let pairs = query_pairs(raw);
    Ok(ListQuery {
        filter: param(&pairs, "filter").map(str::to_owned),
        start_index: int_param(param(&pairs, "startIndex"), "startIndex")?,
        count: int_param(param(&pairs, "count"), "count")?,
        sort_by: param(&pairs, "sortBy").map(str::to_owned),
        descending: sort_order(param(&pairs, "sortOrder"))?,
        projection: projection(&pairs)?,
    })
}

/// A SearchRequest body (RFC 7644 §3.4.3).
fn list_query_from_body(body: &Value) -> Result<ListQuery, ScimError> {
    object(body)?;
    let string = |k: &str| -> Result<Option<String>, ScimError> {
        match get_ci(body, k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ScimError::invalid_value(format!("`{k}` must be a string"))),
        }
    };
    let list = |k: &str| -> Result<Option<String>, ScimError> {
        match get_ci(body, k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Array(a)) => Ok(Some(
                a.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| ScimError::invalid_value(format!("`{k}` must list strings")))?
                    .join(","),
            )),
            Some(_) => Err(ScimError::invalid_value(format!("`{k}` must be a list"))),
        }
    };
    let int = |k: &str| -> Result<Option<i64>, ScimError> {
        match get_ci(body, k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ScimError::invalid_value(format!("`{k}` must be an integer"))),
            Some(Value::String(s)) => int_param(Some(s), k),
            Some(_) => Err(ScimError::invalid_value(format!(
                "`{k}` must be an integer"
            ))),
        }
    };
    Ok(ListQuery {
        filter: string("filter")?,
        start_index: int("startIndex")?,
        count: int("count")?,
        sort_by: string("sortBy")?,
        descending: sort_order(string("sortOrder")?.as_deref())?,
        projection: Projection::parse(
            list("attributes")?.as_deref(),
            list("excludedAttributes")?.as_deref(),
        )?,
    })
}

type Res = Result<Response, ScimError>;

async fn search_root(
    State(s): State<Arc<Scim>>,
    Extension(t): Extension<Tenant>,
    h: HeaderMap,
    b: Bytes,
) -> Res {
    let body = json_body(&h, &b)?;
    let q = list_query_from_body(&body)?;
    if q.sort_by.is_some() {
        return Err(ScimError::invalid_value(
            "sortBy is supported per resource type (/Users/.search, /Groups/.search)",
        ));
    }
    Ok(scim_json(&s.search_all(&t.0, &q).await?))
}

async fn list(scim: &Scim, tenant: &str, kind: Kind, raw: Option<String>) -> Res {
    let q = list_query_from_params(raw.as_deref())?;
    Ok(scim_json(&scim.list(tenant, kind, &q).await?))
}

async fn search(scim: &Scim, tenant: &str, kind: Kind, headers: &HeaderMap, body: &Bytes) -> Res {
    let body = json_body(headers, body)?;
    let q = list_query_from_body(&body)?;
    Ok(scim_json(&scim.list(tenant, kind, &q).await?))
}

/// POST. `attributes`/`excludedAttributes` shape the answer as on a GET
/// (RFC 7644 §3.9); they are read before the write, so a bad one changes
/// nothing.
async fn create(
    scim: &Scim,
    tenant: &str,
    kind: Kind,
    headers: &HeaderMap,
    body: &Bytes,
    raw: Option<String>,
) -> Res {
    let projection = projection(&query_pairs(raw.as_deref()))?;
    let body = json_body(headers, body)?;
    let (res, version) = scim.create(tenant, kind, &body).await?;
    // Taken before the projection, which may leave `meta` out.
    let location = res["meta"]["location"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let res = projection.apply(kind, res);
    let mut resp = with_version(scim_json(&res), version);
    *resp.status_mut() = StatusCode::CREATED;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// GET by id. `If-None-Match` with the current ETag (weak comparison,
/// RFC 7232 §2.3.2: `W/"3"` and `"3"` alike, or `*`) is a 304 without a
/// body (RFC 7644 §3.14).
async fn read(
    scim: &Scim,
    tenant: &str,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
    raw: Option<String>,
) -> Res {
    let pairs = query_pairs(raw.as_deref());
    let (res, version) = scim.get(tenant, kind, id, &projection(&pairs)?).await?;
    let none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if etag_matches(none_match, version) {
        return Ok(with_version(
            StatusCode::NOT_MODIFIED.into_response(),
            version,
        ));
    }
    Ok(with_version(scim_json(&res), version))
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

/// PUT; the answer is shaped like a POST's.
async fn replace(
    scim: &Scim,
    tenant: &str,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
    raw: Option<String>,
) -> Res {
    let projection = projection(&query_pairs(raw.as_deref()))?;
    let body = json_body(headers, body)?;
    let (res, version) = scim
        .replace(tenant, kind, id, &body, if_match(headers))
        .await?;
    Ok(with_version(
        scim_json(&projection.apply(kind, res)),
        version,
    ))
}

async fn patch(
    scim: &Scim,
    tenant: &str,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
    raw: Option<String>,
) -> Res {
    let projection = projection(&query_pairs(raw.as_deref()))?;
    let body = json_body(headers, body)?;
    let row = scim
        .patch(tenant, kind, id, &body, if_match(headers))
        .await?;
    let res = scim.render(kind, &row, &projection).await?;
    Ok(with_version(scim_json(&res), row.version))
}

async fn delete(scim: &Scim, tenant: &str, kind: Kind, id: &str, headers: &HeaderMap) -> Res {
    scim.delete(tenant, kind, id, if_match(headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

macro_rules! handlers {
    ($kind:expr, $list:ident, $search:ident, $create:ident, $get:ident, $put:ident, $patch:ident, $delete:ident) => {
        async fn $list(
            State(s): State<Arc<Scim>>,
            Extension(t): Extension<Tenant>,
            RawQuery(q): RawQuery,
        ) -> Res {
            list(&s, &t.0, $kind, q).await
        }
        async fn $search(
            State(s): State<Arc<Scim>>,
            Extension(t): Extension<Tenant>,
            h: HeaderMap,
            b: Bytes,
        ) -> Res {
            search(&s, &t.0, $kind, &h, &b).await
        }
        async fn $create(
            State(s): State<Arc<Scim>>,
            Extension(t): Extension<Tenant>,
            RawQuery(q): RawQuery,
            h: HeaderMap,
            b: Bytes,
        ) -> Res {
            create(&s, &t.0, $kind, &h, &b, q).await
        }
        async fn $get(
            State(s): State<Arc<Scim>>,
            Extension(t): Extension<Tenant>,
            Path(id): Path<String>,
            RawQuery(q): RawQuery,
            h: HeaderMap,
        ) -> Res {
            read(&s, &t.0, $kind, &id, &h, q).await
        }
        async fn $put(
            State(s): State<Arc<Scim>>,
            Extension(t): Extension<Tenant>,
            Path(id): Path<String>,
            RawQuery(q): RawQuery,
            h: HeaderMap,
            b: Bytes,
        ) -> Res {
            replace(&s, &t.0, $kind, &id, &h, &b, q).await
        }
        async fn $patch(
            State(s): State<Arc<Scim>>,
            Extension(t): Extension<Tenant>,
            Path(id): Path<String>,
            RawQuery(q): RawQuery,
            h: HeaderMap,
            b: Bytes,
        ) -> Res {
            patch(&s, &t.0, $kind, &id, &h, &b, q).await
        }
        async fn $delete(
            State(s): State<Arc<Scim>>,
            Extension(t): Extension<Tenant>,
            Path(id): Path<String>,
            h: HeaderMap,
        ) -> Res {
            delete(&s, &t.0, $kind, &id, &h).await
        }
    };
}

handlers!(
    Kind::User,
    list_users,
    search_users,
    create_users,
    get_users,
    put_users,
    patch_users,
    delete_users
);
handlers!(
    Kind::Group,
    list_groups,
    search_groups,
    create_groups,
    get_groups,
    put_groups,
    patch_groups,
    delete_groups
);

/// `schemas` of a list response, for callers assembling one.
pub const LIST_SCHEMA: &str = schema::LIST;
