//! `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes` (RFC 7644 §4),
//! generated from the same attribute tables the server enforces (declared
//! `[[scim.extensions]]` included), so they describe exactly what is
//! supported.
//!
//! These endpoints take no query: RFC 7644 §4 has a `filter` on them
//! answered with 403, so a client never takes a list it filtered for a
//! list of matches; other parameters are ignored.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ScimError;
use super::schema::{self, Attr, Kind, Mutability, Ty};
use super::service::Scim;
use super::wire::{list_response, scim_json};

const SPC: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// The 403 of RFC 7644 §4 when the query has a `filter`.
fn refuse_filter(query: Option<&str>) -> Result<(), ScimError> {
    let filtered = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(k, _)| k.eq_ignore_ascii_case("filter"));
    if filtered {
        return Err(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "filter is not supported on discovery endpoints (RFC 7644 §4)",
        ));
    }
    Ok(())
}

pub async fn service_provider_config(
    State(scim): State<Arc<Scim>>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(e) = refuse_filter(q.as_deref()) {
        return e.into_response();
    }
    let c = &scim.config.scim;
    scim_json(&json!({
        "schemas": [SPC],
        "documentationUri": "https://github.com/portcullis-auth/portcullis#scim",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": c.max_operations, "maxPayloadSize": c.max_payload_bytes},
        "filter": {"supported": true, "maxResults": c.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A per-tenant token from `portcullis scim-token create`",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", scim.base)
        }
    }))
}

fn attr_json(a: &Attr) -> Value {
    let returned = match a.mutability {
        Mutability::WriteOnly => "never",
        _ if a.name == "id" => "always",
        _ => "default",
    };
    let mut v = json!({
        "name": a.name,
        "type": a.ty.as_str(),
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability.as_str(),
        "returned": returned,
        "uniqueness": if a.unique { "server" } else { "none" },
    });
    if a.ty == Ty::Reference {
        v["referenceTypes"] = json!(match a.name.as_ref() {
            "$ref" => vec!["User", "Group"],
            _ => vec!["external"],
        });
    }
    if !a.sub.is_empty() {
        // Multi-valued string attributes with sub-attributes are complex.
        v["type"] = json!("complex");
        v["subAttributes"] = Value::Array(a.sub.iter().map(attr_json).collect());
    }
    v
}

fn schema_json(scim: &Scim, id: &str, name: &str, description: &str, attrs: &[Attr]) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{}/Schemas/{id}", scim.base)}
    })
}

fn all_schemas(scim: &Scim) -> Vec<Value> {
    let mut all = vec![
        schema_json(
            scim,
            schema::USER,
            "User",
            "User Account",
            schema::USER_ATTRS,
        ),
        schema_json(
            scim,
            schema::ENTERPRISE,
            "EnterpriseUser",
            "Enterprise User",
            schema::ENTERPRISE_ATTRS,
        ),
        schema_json(scim, schema::GROUP, "Group", "Group", schema::GROUP_ATTRS),
    ];
    for kind in [Kind::User, Kind::Group] {
        for e in scim.schemas.extensions(kind) {
            if e.urn == schema::ENTERPRISE {
                continue;
            }
            // The URN's last part names it (`…:2.0:User` → `User`, as the
            // enterprise extension is named after what it extends).
            let name = e.urn.rsplit(':').next().unwrap_or(e.urn);
            let description = format!("{} extension declared in [[scim.extensions]]", kind.name());
            all.push(schema_json(scim, e.urn, name, &description, e.attrs));
        }
    }
    all
}

/// Discovery lists are never paged: all of it, from 1.
fn list(items: Vec<Value>) -> Value {
    list_response(items.len(), 1, items)
}

pub async fn schemas(State(scim): State<Arc<Scim>>, RawQuery(q): RawQuery) -> Response {
    if let Err(e) = refuse_filter(q.as_deref()) {
        return e.into_response();
    }
    scim_json(&list(all_schemas(&scim)))
}

pub async fn schema(
    State(scim): State<Arc<Scim>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(e) = refuse_filter(q.as_deref()) {
        return e.into_response();
    }
    match all_schemas(&scim).into_iter().find(|s| {
        s["id"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(&id))
    }) {
        Some(s) => scim_json(&s),
        None => ScimError::not_found("no such schema").into_response(),
    }
}

fn resource_type_json(scim: &Scim, kind: Kind) -> Value {
    let extensions: Vec<Value> = scim
        .schemas
        .extensions(kind)
        .map(|e| json!({"schema": e.urn, "required": false}))
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": format!("/{}", kind.endpoint()),
        "description": match kind { Kind::User => "User Account", Kind::Group => "Group" },
        "schema": kind.core_urn(),
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/{}", scim.base, kind.name())}
    })
}

pub async fn resource_types(State(scim): State<Arc<Scim>>, RawQuery(q): RawQuery) -> Response {
    if let Err(e) = refuse_filter(q.as_deref()) {
        return e.into_response();
    }
    scim_json(&list(vec![
        resource_type_json(&scim, Kind::User),
        resource_type_json(&scim, Kind::Group),
    ]))
}

pub async fn resource_type(
    State(scim): State<Arc<Scim>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(e) = refuse_filter(q.as_deref()) {
        return e.into_response();
    }
    let kind = match id.to_ascii_lowercase().as_str() {
        "user" => Kind::User,
        "group" => Kind::Group,
        _ => return ScimError::not_found("no such resource type").into_response(),
    };
    scim_json(&resource_type_json(&scim, kind))
}
