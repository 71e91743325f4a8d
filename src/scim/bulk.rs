//! `POST /Bulk` (RFC 7644 §3.7): up to `[scim] max_operations` operations
//! and `max_payload_bytes` (the router refuses bigger bodies with 413),
//! `bulkId` references, `failOnErrors`. The request is one store
//! transaction: an operation fails alone (its changes rolled back, the
//! others kept), and everything that succeeded commits together, which is
//! also what makes 100 creates cost one commit instead of 100. Isolation
//! comes from a savepoint per operation, paid only when needed: the request
//! first runs without savepoints, and only if an operation fails does it
//! run again from the start with them. Operations referring to a `bulkId`
//! that is created later in the same request are retried once after the
//! rest.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::emails::TenantEmails;
use super::error::ScimError;
use super::http::Tenant;
use super::patch;
use super::resource::{self, Normalized};
use super::schema::{self, Kind};
use super::service::Scim;
use super::wire::{self, etag, get_ci, json_body, scim_json};
use crate::store::WriteTx;

pub async fn handler(
    State(scim): State<Arc<Scim>>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&scim, &tenant.0, &headers, &body).await {
        Ok(v) => scim_json(&v),
        Err(e) => e.into_response(),
    }
}

struct Op {
    method: String,
    bulk_id: Option<String>,
    path: String,
    data: Option<Value>,
    version: Option<String>,
}

fn parse_ops(body: &Value, max: usize) -> Result<(Vec<Op>, Option<usize>), ScimError> {
    wire::message(body, schema::BULK_REQUEST)?;
    let fail_on_errors = match get_ci(body, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ScimError::invalid_value("failOnErrors must be a positive integer")
                })?,
        ),
    };
    let Some(Value::Array(list)) = get_ci(body, "Operations") else {
        return Err(ScimError::invalid_syntax("`Operations` must be a list"));
    };
    if list.len() > max {
        return Err(ScimError::too_large(format!(
            "at most {max} operations per bulk request"
        )));
    }
    let mut ops = Vec::with_capacity(list.len());
    for o in list {
        let s = |k: &str| get_ci(o, k).and_then(Value::as_str).map(str::to_owned);
        let method = s("method")
            .ok_or_else(|| ScimError::invalid_syntax("each operation needs a `method`"))?
            .to_ascii_uppercase();
        let path =
            s("path").ok_or_else(|| ScimError::invalid_syntax("each operation needs a `path`"))?;
        ops.push(Op {
            method,
            bulk_id: s("bulkId"),
            path,
            data: get_ci(o, "data").cloned(),
            version: s("version"),
        });
    }
    Ok((ops, fail_on_errors))
}

/// Replaces `bulkId:x` strings with the ids created so far; `Err(x)` names
/// an id not created yet.
fn resolve(v: &Value, ids: &HashMap<String, String>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => match s.strip_prefix("bulkId:") {
            Some(b) => Value::String(ids.get(b).cloned().ok_or_else(|| b.to_owned())?),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|i| resolve(i, ids))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, ids)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn target(path: &str, ids: &HashMap<String, String>) -> Result<(Kind, Option<String>), ScimError> {
    let p = path.trim_start_matches('/');
    let (ep, id) = match p.split_once('/') {
        Some((e, i)) => (e, Some(i)),
        None => (p, None),
    };
    let kind = match ep {
        "Users" => Kind::User,
        "Groups" => Kind::Group,
        _ => return Err(ScimError::invalid_path("bulk paths are /Users or /Groups")),
    };
    let id = match id {
        Some(i) => Some(match i.strip_prefix("bulkId:") {
            Some(b) => ids
                .get(b)
                .cloned()
                .ok_or_else(|| ScimError::invalid_value("unresolved bulkId in path"))?,
            None => i.to_owned(),
        }),
        None => None,
    };
    Ok((kind, id))
}

async fn run(
    scim: &Scim,
    tenant: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, ScimError> {
    let body = json_body(headers, body)?;
    let (ops, fail_on_errors) = parse_ops(&body, scim.config.scim.max_operations)?;
    // Read once for every operation (only user operations consult it).
    let emails = scim.tenant_emails(tenant, Kind::User).await?;
    let done = attempts(scim, tenant, &ops, fail_on_errors, &emails).await;
    emails.report(&scim.metrics);
    let (results, tx) = done?;
    scim.commit(tx).await?;
    Ok(json!({
        "schemas": [schema::BULK_RESPONSE],
        "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
    }))
}

/// The operations' results and their uncommitted transaction.
async fn attempts(
    scim: &Scim,
    tenant: &str,
    ops: &[Op],
    fail_on_errors: Option<usize>,
    emails: &TenantEmails,
) -> Result<(Vec<Option<Value>>, WriteTx), ScimError> {
    // Optimistic first: without a savepoint per operation (one round trip
    // each), which is all a request whose operations all succeed needs. The
    // first failing operation abandons that attempt, and the request runs
    // again from the start with savepoints so that failure stays its own.
    match attempt(scim, tenant, ops, fail_on_errors, false, emails).await? {
        Some(done) => Ok(done),
        None => attempt(scim, tenant, ops, fail_on_errors, true, emails)
            .await?
            .ok_or_else(ScimError::internal),
    }
}

/// Runs every operation in one new transaction, returned uncommitted with
/// the per-operation results. With `savepoints`, each operation runs in its
/// own savepoint and a failure is recorded and rolled back alone; without,
/// the first failure abandons the attempt (`None`, nothing written).
async fn attempt(
    scim: &Scim,
    tenant: &str,
    ops: &[Op],
    fail_on_errors: Option<usize>,
    savepoints: bool,
    emails: &TenantEmails,
) -> Result<Option<(Vec<Option<Value>>, WriteTx)>, ScimError> {
    // Only the attempt whose results count is counted.
    emails.reset();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut errors = 0usize;
    let mut deferred = Vec::new();
    let mut tx = scim.store.begin_write(tenant).await?;
    // Without savepoints, consecutive user creates are queued and written
    // together (see `create_users_in`) before any other operation runs.
    let mut queued: Vec<(usize, String, Normalized)> = Vec::new();
    for pass in 0..2 {
        let order: Vec<usize> = if pass == 0 {
            (0..ops.len()).collect()
        } else {
            std::mem::take(&mut deferred)
        };
        for i in order {
            if fail_on_errors.is_some_and(|n| errors >= n) {
                break;
            }
            let op = &ops[i];
            let data = match op.data.as_ref().map(|d| resolve(d, &ids)).transpose() {
                Ok(d) => d,
                Err(missing)
                    if pass == 0
                        && ops
                            .iter()
                            .any(|o| o.bulk_id.as_deref() == Some(missing.as_str())) =>
                {
                    deferred.push(i);
                    continue;
                }
                Err(_) if !savepoints => return Ok(None),
                Err(_) => {
                    errors += 1;
                    results[i] = Some(error_result(
                        op,
                        &ScimError::new(
                            StatusCode::CONFLICT,
                            Some("invalidValue"),
                            "a bulkId reference could not be resolved",
                        ),
                    ));
                    continue;
                }
            };
            if !savepoints && is_user_create(op, &ids) {
                let Some(Ok(n)) = data.as_ref().map(|d| {
                    resource::normalize(&scim.schemas, Kind::User, d, resource::Mode::Full)
                }) else {
                    return Ok(None);
                };
                let id = uuid::Uuid::new_v4().to_string();
                if let Some(b) = &op.bulk_id {
                    ids.insert(b.clone(), id.clone());
                }
                queued.push((i, id, n));
                continue;
            }
            if !create_queued(scim, &mut tx, ops, &mut queued, &mut results, emails).await {
                return Ok(None);
            }
            if savepoints {
                tx.savepoint().await?;
            }
            let outcome = one(scim, &mut tx, op, data, &ids, emails).await;
            match &outcome {
                Ok(_) if savepoints => tx.release_savepoint(),
                Ok(_) => {}
                // dropping the transaction rolls the attempt back
                Err(_) if !savepoints => return Ok(None),
                Err(_) => tx.rollback_savepoint().await?,
            }
            match outcome {
                Ok((result, created)) => {
                    if let (Some(b), Some(id)) = (&op.bulk_id, created) {
                        ids.insert(b.clone(), id);
                    }
                    results[i] = Some(result);
                }
                Err(e) => {
                    errors += 1;
                    results[i] = Some(error_result(op, &e));
                }
            }
        }
        if !create_queued(scim, &mut tx, ops, &mut queued, &mut results, emails).await {
            return Ok(None);
        }
    }
    Ok(Some((results, tx)))
}

/// A `POST /Users` with a bulkId: what the fast path may queue.
fn is_user_create(op: &Op, ids: &HashMap<String, String>) -> bool {
    op.method == "POST"
        && op.bulk_id.is_some()
        && matches!(target(&op.path, ids), Ok((Kind::User, None)))
}

/// Creates the queued users; `false` if that could not be done as a batch
/// (the attempt must then be abandoned).
async fn create_queued(
    scim: &Scim,
    tx: &mut WriteTx,
    ops: &[Op],
    queued: &mut Vec<(usize, String, Normalized)>,
    results: &mut [Option<Value>],
    emails: &TenantEmails,
) -> bool {
    if queued.is_empty() {
        return true;
    }
    let (index, items): (Vec<usize>, Vec<(String, Normalized)>) =
        queued.drain(..).map(|(i, id, n)| (i, (id, n))).unzip();
    let Ok(Some(rows)) = scim.create_users_in(tx, items, emails).await else {
        return false;
    };
    for (i, row) in index.into_iter().zip(rows) {
        let location = wire::location(&scim.base, Kind::User, &row.id);
        results[i] = Some(ok_result(&ops[i], 201, Some(location), Some(row.version)));
    }
    true
}

/// A successful operation's entry in the Bulk response.
fn ok_result(op: &Op, status: u16, location: Option<String>, version: Option<i64>) -> Value {
    let mut v = json!({"method": op.method, "status": status.to_string()});
    if let Some(b) = &op.bulk_id {
        v["bulkId"] = json!(b);
    }
    if let Some(l) = location {
        v["location"] = json!(l);
    }
    if let Some(ver) = version {
        v["version"] = json!(etag(ver));
    }
    v
}

fn error_result(op: &Op, e: &ScimError) -> Value {
    let mut v = json!({
        "method": op.method,
        "status": e.status.as_u16().to_string(),
        "response": e.body(),
    });
    if let Some(b) = &op.bulk_id {
        v["bulkId"] = json!(b);
    }
    v
}

async fn one(
    scim: &Scim,
    tx: &mut WriteTx,
    op: &Op,
    data: Option<Value>,
    ids: &HashMap<String, String>,
    emails: &TenantEmails,
) -> Result<(Value, Option<String>), ScimError> {
    let (kind, id) = target(&op.path, ids)?;
    let data = || {
        data.clone()
            .ok_or_else(|| ScimError::invalid_syntax("`data` is required"))
    };
    let ok = |status, location, version| ok_result(op, status, location, version);
    let location = |id: &str| wire::location(&scim.base, kind, id);
    match (op.method.as_str(), id) {
        ("POST", None) => {
            if op.bulk_id.is_none() {
                return Err(ScimError::invalid_syntax("POST needs a bulkId"));
            }
            let n = resource::normalize(&scim.schemas, kind, &data()?, resource::Mode::Full)?;
            let row = scim.create_in(tx, kind, n, emails).await?;
            Ok((
                ok(201, Some(location(&row.id)), Some(row.version)),
                Some(row.id),
            ))
        }
        ("PUT", Some(id)) => {
            let row = scim
                .replace_in(tx, kind, &id, &data()?, op.version.as_deref(), emails)
                .await?;
            Ok((ok(200, Some(location(&id)), Some(row.version)), None))
        }
        ("PATCH", Some(id)) => {
            let ops = patch::parse_request(&data()?)?;
            let row = scim
                .patch_in(tx, kind, &id, &ops, op.version.as_deref(), emails)
                .await?;
            Ok((ok(200, Some(location(&id)), Some(row.version)), None))
        }
        ("DELETE", Some(id)) => {
            scim.delete_in(tx, kind, &id, op.version.as_deref(), emails)
                .await?;
            Ok((ok(204, Some(location(&id)), None), None))
        }
        _ => Err(ScimError::invalid_syntax(
            "unsupported method/path combination in bulk",
        )),
    }
}
