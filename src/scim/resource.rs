//! Resources in and out: normalising request bodies to the stored document
//! (canonical attribute names, types coerced the way IdPs need, read-only
//! and write-only attributes dropped), and rendering stored rows with
//! `meta`, `members`/`groups` and the requested attribute projection.

use chrono::DateTime;
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::filter::{AttrPath, parse_attr_path};
use super::schema::{self, Attr, Extension, Kind, Mutability, Schemas, Ty};
use super::wire::{self, clip, etag, get_ci, key_ci, starts_with_ci, timestamp};
use crate::store::{ScimLogin, ScimMember, ScimRow};

/// Longest string value accepted in any attribute.
const MAX_STRING: usize = 64 * 1024;
/// Most values in one multi-valued attribute (members excepted).
const MAX_VALUES: usize = 1000;

/// Whether the body is a whole resource (POST, PUT: `schemas` required) or
/// a document after PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Patched,
}

/// A normalised resource: the document to store, plus (groups) the
/// members given in the body.
#[derive(Debug, Default)]
pub struct Normalized {
    pub doc: Map<String, Value>,
    pub members: Option<Vec<MemberRef>>,
}

/// A member named in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub id: String,
}

/// Coerces one value to the attribute's type; `None` for null/empty. A
/// multi-valued attribute takes a list (RFC 7643 §2.4); a bare string,
/// number or boolean for it is `invalidSyntax`, while a single object of a
/// multi-valued complex attribute counts as a list of one (PATCH clients
/// send `"value": {"value": …}`).
pub fn normalize_value(def: &Attr, v: &Value) -> Result<Option<Value>, ScimError> {
    if v.is_null() {
        return Ok(None);
    }
    if def.multi {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(_) if !def.sub.is_empty() => vec![v],
            _ => {
                return Err(ScimError::invalid_syntax(format!(
                    "`{}` is multi-valued: send a list of values",
                    def.name
                )));
            }
        };
        if items.len() > MAX_VALUES {
            return Err(ScimError::invalid_value(format!(
                "too many values for `{}`",
                def.name
            )));
        }
        let mut out = Vec::new();
        for item in items {
            if let Some(n) = normalize_element(def, item)? {
                out.push(n);
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    normalize_single(def, v)
}

/// One value of a multi-valued attribute (an item of its list, or what a
/// filtered PATCH path writes). A bare string in a multi-valued complex
/// attribute is its `value` (`"emails": ["a@acme.com"]`).
pub fn normalize_element(def: &Attr, item: &Value) -> Result<Option<Value>, ScimError> {
    match item {
        Value::String(s) if !def.sub.is_empty() => normalize_single(def, &json!({"value": s})),
        other => normalize_single(def, other),
    }
}

fn normalize_single(def: &Attr, v: &Value) -> Result<Option<Value>, ScimError> {
    if v.is_null() {
        return Ok(None);
    }
    if !def.sub.is_empty() {
        let Value::Object(obj) = v else {
            return Err(ScimError::invalid_value(format!(
                "`{}` must be an object",
                def.name
            )));
        };
        let mut out = Map::new();
        for (k, sv) in obj {
            let Some(sdef) = schema::find(def.sub, k) else {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown sub-attribute `{}.{}`",
                    def.name,
                    clip(k)
                )));
            };
            if let Some(n) = normalize_single(sdef, sv)? {
                out.insert(sdef.name.to_string(), n);
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Object(out)));
    }
    let bad = || ScimError::invalid_value(format!("`{}` must be a {}", def.name, def.ty.as_str()));
    Ok(Some(match def.ty {
        Ty::Boolean => match v {
            Value::Bool(b) => Value::Bool(*b),
            // Entra: "False", "True".
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(bad()),
        },
        Ty::Integer => match v {
            Value::Number(n) if n.is_i64() => v.clone(),
            Value::String(s) => s.parse::<i64>().map(Value::from).map_err(|_| bad())?,
            _ => return Err(bad()),
        },
        Ty::DateTime => match v {
            Value::String(s) if DateTime::parse_from_rfc3339(s).is_ok() => v.clone(),
            _ => return Err(bad()),
        },
        Ty::String | Ty::Reference | Ty::Binary | Ty::Complex => match v {
            Value::String(s) if s.len() > MAX_STRING => {
                return Err(ScimError::invalid_value(format!(
                    "`{}` is too long",
                    def.name
                )));
            }
            Value::String(s) if s.contains('\0') => {
                return Err(ScimError::invalid_value(format!(
                    "`{}` contains a NUL character",
                    def.name
                )));
            }
            Value::String(_) => v.clone(),
            _ => return Err(bad()),
        },
    }))
}

/// The resource's core schema URN, when `key` is `urn:…:core…:Attr` form.
fn strip_core(kind: Kind, key: &str) -> Option<&str> {
    let urn = kind.core_urn();
    if key.len() > urn.len() + 1
        && starts_with_ci(key, urn)
        && key.as_bytes().get(urn.len()) == Some(&b':')
    {
        key.get(urn.len() + 1..)
    } else {
        None
    }
}

/// Request body → document.
pub fn normalize(
    schemas: &Schemas,
    kind: Kind,
    body: &Value,
    mode: Mode,
) -> Result<Normalized, ScimError> {
    let obj = wire::object(body)?;
    let declared: Vec<String> = match get_ci(body, "schemas") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| ScimError::invalid_syntax("`schemas` must be a list of URIs"))?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(ScimError::invalid_syntax(
                "`schemas` must be a list of URIs",
            ));
        }
    };
    if mode == Mode::Full
        && !declared
            .iter()
            .any(|s| s.eq_ignore_ascii_case(kind.core_urn()))
    {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must include {}",
            kind.core_urn()
        )));
    }
    let mut out = Normalized::default();
    for (key, v) in obj {
        if v.is_null()
            || ["schemas", "id", "meta"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(key))
        {
            continue;
        }
        let key = strip_core(kind, key).unwrap_or(key);
        if starts_with_ci(key, "urn:") {
            if let Some(Extension { urn: canon, attrs }) = schemas.extension(kind, key) {
                let Value::Object(ext) = v else {
                    return Err(ScimError::invalid_syntax(format!(
                        "`{canon}` must be an object"
                    )));
                };
                let mut eout = Map::new();
                for (k, ev) in ext {
                    if k.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    let Some(def) = schema::find(attrs, k) else {
                        return Err(ScimError::invalid_syntax(format!(
                            "unknown attribute `{}` in {canon}",
                            clip(k)
                        )));
                    };
                    if def.mutability == Mutability::ReadOnly {
                        continue;
                    }
                    if let Some(n) = normalize_value(def, ev)? {
                        eout.insert(def.name.to_string(), n);
                    }
                }
                if !eout.is_empty() {
                    if let Some(missing) = attrs
                        .iter()
                        .find(|d| d.required && !eout.contains_key(d.name.as_ref()))
                    {
                        return Err(ScimError::invalid_value(format!(
                            "`{canon}:{}` is required",
                            missing.name
                        )));
                    }
                    out.doc.insert(canon.to_owned(), Value::Object(eout));
                }
                continue;
            }
            // An extension Portcullis does not support: dropped, declared or
            // not (Entra sends custom extensions it never lists in
            // `schemas`); `/Schemas` says what is kept.
            tracing::debug!(extension = %clip(key), "unsupported SCIM schema extension ignored");
            continue;
        }
        let Some(def) = schemas.attr(kind, None, key) else {
            return Err(ScimError::invalid_syntax(format!(
                "unknown attribute `{}`",
                clip(key)
            )));
        };
        if kind == Kind::Group && def.name == "members" {
            let refs = member_refs(v)?;
            out.members = Some(refs);
            continue;
        }
        if matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly) {
            // `groups`, `password` (Okta sends it on create): never stored.
            continue;
        }
        if let Some(n) = normalize_value(def, v)? {
            out.doc.insert(def.name.to_string(), n);
        }
    }
    let required = match kind {
        Kind::User => "userName",
        Kind::Group => "displayName",
    };
    match out.doc.get(required) {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        _ => {
            return Err(ScimError::invalid_value(format!(
                "`{required}` is required"
            )));
        }
    }
    Ok(out)
}

/// Member ids from a `members` value (a list of `{"value": id}` or ids).
pub fn member_refs(v: &Value) -> Result<Vec<MemberRef>, ScimError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        one @ Value::Object(_) => vec![one],
        _ => {
            return Err(ScimError::invalid_syntax(
                "`members` is multi-valued: send a list of values",
            ));
        }
    };
    items
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|item| {
            let id = match item {
                Value::String(s) => Some(s.as_str()),
                Value::Object(_) => get_ci(item, "value").and_then(Value::as_str),
                _ => None,
            };
            match id {
                Some(id) if !id.is_empty() && !id.contains('\0') && id.len() <= 256 => {
                    Ok(MemberRef { id: id.to_owned() })
                }
                _ => Err(ScimError::invalid_value(
                    "each member needs a `value` with the member's id",
                )),
            }
        })
        .collect()
}

/// At most one `primary: true` per multi-valued attribute (RFC 7643
/// §2.4), whatever a write sent. When several remain, the newly primary
/// one wins — one that was not the primary value in `before` (the last
/// such, in list order; the last of all when none is new) — and the others
/// become `primary: false`. So an IdP that marks a new address primary
/// without demoting the old one gets what it meant.
pub fn one_primary(doc: &mut Map<String, Value>, before: Option<&Map<String, Value>>) {
    let keys: Vec<String> = doc.keys().cloned().collect();
    for key in keys {
        let was = before.and_then(|b| b.get(&key));
        match doc.get_mut(&key) {
            Some(Value::Array(items)) => demote_extra_primaries(items, was),
            Some(Value::Object(ext)) if starts_with_ci(&key, "urn:") => {
                for (name, v) in ext.iter_mut() {
                    if let Value::Array(items) = v {
                        let was = was.and_then(|w| w.get(name));
                        demote_extra_primaries(items, was);
                    }
                }
            }
            _ => {}
        }
    }
}

fn demote_extra_primaries(items: &mut [Value], before: Option<&Value>) {
    let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    let primaries: Vec<usize> = (0..items.len())
        .filter(|&i| is_primary(&items[i]))
        .collect();
    if primaries.len() < 2 {
        return;
    }
    let old: Vec<&Value> = before
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|v| is_primary(v)).collect())
        .unwrap_or_default();
    let winner = primaries
        .iter()
        .rev()
        .find(|&&i| !old.iter().any(|o| same_element(&items[i], o)))
        .or(primaries.last())
        .copied();
    for i in primaries {
        if Some(i) != winner
            && let Value::Object(o) = &mut items[i]
        {
            o.insert("primary".into(), Value::Bool(false));
        }
    }
}

/// Whether two values of a multi-valued attribute are the same one: by
/// `value` (case-insensitively) when both have one, else equal apart from
/// `primary`.
fn same_element(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.eq_ignore_ascii_case(y),
        _ => {
            let strip = |v: &Value| match v {
                Value::Object(o) => Value::Object(
                    o.iter()
                        .filter(|(k, _)| k.as_str() != "primary")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                other => other.clone(),
            };
            strip(a) == strip(b)
        }
    }
}

/// What SSO login needs from a SCIM user: the email login finds the user
/// by (primary email, else the work email, else the first, else
/// `userName`), a display name, and `active`.
pub fn login_of(doc: &Map<String, Value>, role: Option<String>) -> ScimLogin {
    let emails: Vec<&Value> = doc
        .get("emails")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let value = |e: &&Value| e.get("value").and_then(Value::as_str).map(str::to_owned);
    let email = emails
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .and_then(value)
        .or_else(|| {
            emails
                .iter()
                .find(|e| {
                    e.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("work"))
                })
                .and_then(value)
        })
        .or_else(|| emails.first().and_then(value))
        .or_else(|| {
            doc.get("userName")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let name_part = |k: &str| {
        doc.get("name")
            .and_then(|n| n.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let name = doc
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| name_part("formatted"))
        .or_else(|| match (name_part("givenName"), name_part("familyName")) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (g, f) => g.or(f),
        });
    ScimLogin {
        email,
        name,
        active: doc.get("active") != Some(&Value::Bool(false)),
        role,
    }
}

/// A stored row as the client sees it (before projection).
pub fn render(
    kind: Kind,
    row: &ScimRow,
    base: &str,
    members: Option<&[ScimMember]>,
    groups: Option<&[(String, String)]>,
) -> Value {
    let doc: Map<String, Value> = serde_json::from_str(&row.doc).unwrap_or_default();
    // Only extensions the configuration serves are stored, so the
    // document's URN keys are the resource's extensions.
    let mut schemas = vec![json!(kind.core_urn())];
    schemas.extend(
        doc.keys()
            .filter(|k| starts_with_ci(k, "urn:"))
            .map(|k| json!(k)),
    );
    let location = wire::location(base, kind, &row.id);
    let mut out = Map::new();
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), json!(row.id));
    for (k, v) in doc {
        out.insert(k, v);
    }
    if let Some(members) = members {
        let list: Vec<Value> = members
            .iter()
            .map(|m| {
                let ep = if m.kind == "Group" { "Groups" } else { "Users" };
                json!({"value": m.id, "type": m.kind, "$ref": format!("{base}/{ep}/{}", m.id)})
            })
            .collect();
        out.insert("members".into(), Value::Array(list));
    }
    if let Some(groups) = groups
        && !groups.is_empty()
    {
        let list: Vec<Value> = groups
            .iter()
            .map(|(id, name)| {
                json!({"value": id, "display": name, "type": "direct",
                       "$ref": format!("{base}/Groups/{id}")})
            })
            .collect();
        out.insert("groups".into(), Value::Array(list));
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": kind.name(),
            "created": timestamp(row.created_at),
            "lastModified": timestamp(row.updated_at),
            "location": location,
            "version": etag(row.version),
        }),
    );
    Value::Object(out)
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.9).
#[derive(Debug, Default, Clone)]
pub struct Projection {
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

fn parse_list(s: Option<&str>) -> Result<Vec<AttrPath>, ScimError> {
    let Some(s) = s else { return Ok(Vec::new()) };
    if s.len() > 4096 {
        return Err(ScimError::invalid_value("attribute list too long"));
    }
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| parse_attr_path(p).map_err(|_| ScimError::invalid_value("invalid attribute name")))
        .collect()
}

impl Projection {
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        Ok(Self {
            attributes: parse_list(attributes)?,
            excluded: parse_list(excluded)?,
        })
    }

    /// Whether top-level `name` will be returned (so it is worth loading).
    pub fn wants(&self, name: &str) -> bool {
        let hit = |p: &AttrPath| p.urn.is_none() && p.name.eq_ignore_ascii_case(name);
        if !self.attributes.is_empty() {
            return self.attributes.iter().any(hit);
        }
        !self.excluded.iter().any(|p| hit(p) && p.sub.is_none())
    }

    pub fn apply(&self, kind: Kind, res: Value) -> Value {
        let Value::Object(mut obj) = res else {
            return res;
        };
        // Where a path lives: top level, or inside an extension object
        // (its key as the resource spells it; empty when it has none).
        let container = |obj: &Map<String, Value>, p: &AttrPath| -> Option<String> {
            p.urn
                .as_deref()
                .filter(|u| !u.eq_ignore_ascii_case(kind.core_urn()))
                .map(|u| key_ci(obj, u).unwrap_or_default())
        };
        if !self.attributes.is_empty() {
            let mut out = Map::new();
            for k in ["schemas", "id"] {
                if let Some(v) = obj.get(k) {
                    out.insert(k.into(), v.clone());
                }
            }
            for p in &self.attributes {
                let ext = container(&obj, p);
                let src = match &ext {
                    Some(e) => obj.get(e).and_then(Value::as_object),
                    None => Some(&obj),
                };
                let Some(src) = src else { continue };
                let Some(key) = key_ci(src, &p.name) else {
                    continue;
                };
                let picked = match &p.sub {
                    None => src[&key].clone(),
                    Some(sub) => keep_sub(&src[&key], sub),
                };
                let dst = match &ext {
                    Some(e) => out
                        .entry(e.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                        .as_object_mut(),
                    None => Some(&mut out),
                };
                if let Some(dst) = dst {
                    let merged = match dst.remove(&key) {
                        Some(prev) => merge(prev, picked),
                        None => picked,
                    };
                    dst.insert(key, merged);
                }
            }
            return Value::Object(out);
        }
        for p in &self.excluded {
            if p.name.eq_ignore_ascii_case("id") || p.name.eq_ignore_ascii_case("schemas") {
                continue;
            }
            let target = match container(&obj, p) {
                Some(ext) => obj.get_mut(&ext).and_then(Value::as_object_mut),
                None => Some(&mut obj),
            };
            let Some(target) = target else { continue };
            let Some(key) = key_ci(target, &p.name) else {
                continue;
            };
            match &p.sub {
                None => {
                    target.remove(&key);
                }
                Some(sub) => strip_sub(target.get_mut(&key), sub),
            }
        }
        Value::Object(obj)
    }
}

/// Only sub-attribute `sub` of a complex value (or of each value).
fn keep_sub(v: &Value, sub: &str) -> Value {
    let keep = |o: &Map<String, Value>| {
        Value::Object(
            o.iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(sub))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    match v {
        Value::Object(o) => keep(o),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|i| match i {
                    Value::Object(o) => keep(o),
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Combines two projections of the same attribute (`emails.value` and
/// `emails.type`).
fn merge(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut x), Value::Object(y)) => {
            x.extend(y);
            Value::Object(x)
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            Value::Array(x.into_iter().zip(y).map(|(a, b)| merge(a, b)).collect())
        }
        (_, b) => b,
    }
}

fn strip_sub(v: Option<&mut Value>, sub: &str) {
    match v {
        Some(Value::Object(o)) => {
            o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
        }
        Some(Value::Array(a)) => {
            for item in a {
                if let Value::Object(o) = item {
                    o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                }
            }
        }
        _ => {}
    }
}
