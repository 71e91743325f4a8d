//! SCIM as it travels: the media type, JSON bodies in and out, ETags and
//! timestamps as clients read them, the list envelope, resource locations,
//! and the case-insensitive lookups RFC 7643 asks for.
//!
//! The rule: a module that reads a request or shapes a response takes these
//! from here and spells none of them itself. The reason: the resource
//! endpoints, Bulk, discovery and error bodies must answer in one shape and
//! read what IdPs send the same way (Entra, Okta and OneLogin each vary the
//! case of keys and media types); copies drift, and a client then meets two
//! dialects of one server.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::schema::{self, Kind};

/// The media type of every SCIM response (RFC 7644 §3.1).
pub(super) const CONTENT_TYPE: &str = "application/scim+json";

/// A JSON body with the SCIM media type: every answer, errors included, so
/// clients that check the content type accept all of them.
pub(super) fn scim_json(v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}

/// Parses a request body. The media type may be SCIM or plain JSON (IdPs
/// send either); anything else is refused rather than guessed at.
pub(super) fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ScimError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        let media = ct.split(';').next().unwrap_or_default().trim();
        if media != CONTENT_TYPE && media != "application/json" {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "send application/scim+json or application/json",
            ));
        }
    }
    serde_json::from_slice(body)
        .map_err(|_| ScimError::invalid_syntax("the body is not valid JSON"))
}

/// The members of a body that must be a JSON object (a resource, a search,
/// a PatchOp or BulkRequest), so each reader refuses anything else with the
/// same `invalidSyntax`.
pub(super) fn object(body: &Value) -> Result<&Map<String, Value>, ScimError> {
    body.as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object"))
}

/// A protocol message (PatchOp, BulkRequest): an object whose `schemas`
/// names `urn`. Checked before anything else in it is read, so a body meant
/// for another endpoint is refused as such instead of half-understood.
pub(super) fn message<'a>(body: &'a Value, urn: &str) -> Result<&'a Map<String, Value>, ScimError> {
    let obj = object(body)?;
    let declared = get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
        });
    if !declared {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must be [\"{urn}\"]"
        )));
    }
    Ok(obj)
}

/// Case-insensitive member lookup in a JSON object: attribute names are
/// case-insensitive (RFC 7643 §2.1), and IdPs do send `UserName` and
/// `Operations` as `operations`. The exact key is tried first (the common
/// case, one hash lookup).
pub(super) fn get_ci<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The key under which `m` holds `name`, whatever its case: for callers
/// that must move or remove the member, not only read it.
pub(super) fn key_ci(m: &Map<String, Value>, name: &str) -> Option<String> {
    m.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// `s` starts with `prefix`, ASCII case-insensitively (never slices inside
/// a character): schema URNs are compared this way wherever they prefix a
/// key or a path.
pub(super) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// At most 64 characters of client text, for error details and logs: a
/// refusal names what it refuses without echoing a megabyte back.
pub(super) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The weak ETag of a version, as `meta.version`, the `ETag` header and
/// Bulk results all show it.
pub(super) fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match` / `If-None-Match` value (`*` or a list of ETags)
/// names the current version, weak or strong alike. Beside [`etag`] so the
/// form written and the forms accepted are defined together.
pub(super) fn etag_matches(header: Option<&str>, version: i64) -> bool {
    let Some(h) = header else { return false };
    let current = etag(version);
    h.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == current || t.strip_prefix("W/").unwrap_or(t) == &current[2..])
}

/// `If-Match`: `*` or a list of ETags, one of which must be current.
pub(super) fn check_if_match(if_match: Option<&str>, version: i64) -> Result<(), ScimError> {
    if if_match.is_none() || etag_matches(if_match, version) {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "the resource has changed (ETag mismatch)",
        ))
    }
}

/// `resp` with the `ETag` of `version`, which clients send back in
/// `If-Match`.
pub(super) fn with_version(mut resp: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// RFC 3339 with milliseconds, UTC: `meta.created` and `lastModified`.
pub(super) fn timestamp(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A resource's URL (`meta.location`, the `Location` header, Bulk
/// results); `base` has no trailing slash.
pub(super) fn location(base: &str, kind: Kind, id: &str) -> String {
    format!("{base}/{}/{id}", kind.endpoint())
}

/// A ListResponse (RFC 7644 §3.4.2): resource queries and the discovery
/// lists share it, and `itemsPerPage` is always what the page holds.
pub(super) fn list_response(total: usize, start: i64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [schema::LIST],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}
