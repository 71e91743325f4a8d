//! PATCH (RFC 7644 §3.5.2) on a stored document, plus what IdPs really
//! send: capitalised ops (Entra `Replace`), string booleans (`"False"`),
//! path-less value objects with dotted or URN-qualified keys, `members`
//! removal by value list or by `members[value eq "…"]`, `emails[type eq
//! "work"].value` (an `add` creates the work email when missing), and
//! Entra's `replace` with `null` (or `""` for a simple attribute), which
//! removes the attribute.
//!
//! Group memberships never pass through the document: operations on
//! `members` become a [`MemberChange`] that the store applies row by row,
//! so a 50,000-member group costs only what changes.
//!
//! An attribute path is applied by one function per operation (`add`,
//! `replace`, `remove`) over small shared helpers (filtered values out
//! and back, sub-attribute writes, tidying empties): the RFC defines each
//! operation on its own, and an IdP quirk belongs to one of them, so it is
//! fixed in one place without reading the other two.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::filter::{self, CompValue, Filter, Op, parse_attr_path};
use super::resource::{member_refs, normalize_element, normalize_value};
use super::schema::{self, Attr, Extension, Kind, Mutability, Schemas, Ty};
use super::wire::{self, get_ci};

/// Most operations in one PATCH request.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// Membership edits in request order, collapsed to a final state per id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemberChange {
    /// Every existing member is removed first.
    pub clear: bool,
    /// id → present after the request (`true`) or removed (`false`).
    pub set: BTreeMap<String, bool>,
}

impl MemberChange {
    pub fn is_empty(&self) -> bool {
        !self.clear && self.set.is_empty()
    }

    fn add(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.set.insert(id, true);
        }
    }

    fn remove(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.set.insert(id, false);
        }
    }

    fn clear_all(&mut self) {
        self.clear = true;
        self.set.clear();
    }
}

/// Parses a PatchOp request body.
pub fn parse_request(body: &Value) -> Result<Vec<Operation>, ScimError> {
    wire::message(body, schema::PATCH_OP)?;
    let Some(Value::Array(ops)) = get_ci(body, "Operations") else {
        return Err(ScimError::invalid_syntax("`Operations` must be a list"));
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("`Operations` is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("at most {MAX_OPERATIONS} operations per PATCH"),
        ));
    }
    ops.iter()
        .map(|o| {
            if !o.is_object() {
                return Err(ScimError::invalid_syntax(
                    "each operation must be an object",
                ));
            }
            let op = match get_ci(o, "op").and_then(Value::as_str) {
                Some(s) if s.eq_ignore_ascii_case("add") => OpKind::Add,
                Some(s) if s.eq_ignore_ascii_case("replace") => OpKind::Replace,
                Some(s) if s.eq_ignore_ascii_case("remove") => OpKind::Remove,
                _ => {
                    return Err(ScimError::invalid_syntax(
                        "`op` must be add, replace or remove",
                    ));
                }
            };
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(s.trim().to_owned()),
                Some(_) => return Err(ScimError::invalid_path("`path` must be a string")),
            };
            // A `null` value is kept for `replace` only, where it means
            // "remove" (Entra clears attributes that way).
            let value = get_ci(o, "value")
                .filter(|v| op == OpKind::Replace || !v.is_null())
                .cloned();
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// A resolved PATCH path.
enum Target<'s> {
    /// A whole extension object (`urn:…:enterprise:2.0:User`).
    Extension(Extension<'s>),
    Attr {
        ext: Option<&'s str>,
        def: &'s Attr,
        filter: Option<Filter>,
        sub: Option<&'s Attr>,
    },
}

fn parse_path<'s>(schemas: &'s Schemas, kind: Kind, text: &str) -> Result<Target<'s>, ScimError> {
    if let Some(e) = schemas.extension(kind, text) {
        return Ok(Target::Extension(e));
    }
    let (head, filter, after) = match text.find('[') {
        Some(open) => {
            let close = text
                .rfind(']')
                .filter(|c| *c > open)
                .ok_or_else(|| ScimError::invalid_path("unbalanced `[`"))?;
            let f = filter::parse_value_filter(&text[open + 1..close])?;
            (&text[..open], Some(f), &text[close + 1..])
        }
        None => (text, None, ""),
    };
    let p = parse_attr_path(head).map_err(|_| ScimError::invalid_path("invalid path"))?;
    let ext = match p.urn.as_deref() {
        None => None,
        Some(u) if u.eq_ignore_ascii_case(kind.core_urn()) => None,
        Some(u) => Some(
            schemas
                .extension(kind, u)
                .ok_or_else(|| ScimError::invalid_path("unknown schema in path"))?
                .urn,
        ),
    };
    let def = schemas
        .attr(kind, ext, &p.name)
        .ok_or_else(|| ScimError::invalid_path("unknown attribute in path"))?;
    let after_sub = match after {
        "" => None,
        s => Some(
            s.strip_prefix('.')
                .ok_or_else(|| ScimError::invalid_path("invalid path after `]`"))?,
        ),
    };
    let sub_name = match (p.sub.as_deref(), after_sub) {
        (Some(_), Some(_)) => return Err(ScimError::invalid_path("invalid path")),
        (a, b) => a.or(b),
    };
    let sub = match sub_name {
        None => None,
        Some(n) => Some(
            schema::find(def.sub, n)
                .ok_or_else(|| ScimError::invalid_path("unknown sub-attribute in path"))?,
        ),
    };
    if filter.is_some() && !def.multi {
        return Err(ScimError::invalid_path(
            "a filter needs a multi-valued attribute",
        ));
    }
    Ok(Target::Attr {
        ext,
        def,
        filter,
        sub,
    })
}

/// Applies the operations to `doc` (a stored document) and collects
/// membership edits. On error nothing of the request may be kept: the
/// caller discards `doc`.
pub fn apply(
    schemas: &Schemas,
    kind: Kind,
    self_id: &str,
    doc: &mut Map<String, Value>,
    ops: &[Operation],
    members: &mut MemberChange,
) -> Result<(), ScimError> {
    for op in ops {
        match &op.path {
            Some(path) => apply_path(schemas, kind, doc, op.op, path, op.value.as_ref(), members)?,
            None => {
                if op.op == OpKind::Remove {
                    return Err(ScimError::no_target("remove needs a path"));
                }
                let Some(Value::Object(values)) = &op.value else {
                    return Err(ScimError::invalid_value(
                        "an operation without a path needs an object value",
                    ));
                };
                for (key, v) in values {
                    if ["schemas", "meta"]
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(key))
                    {
                        continue;
                    }
                    // Okta's rename carries the group's own id: ignored.
                    if key.eq_ignore_ascii_case("id") {
                        if v.as_str().is_some_and(|v| v != self_id) {
                            return Err(ScimError::mutability("`id` cannot change"));
                        }
                        continue;
                    }
                    if let Some(ext) = schemas.extension(kind, key)
                        && let Value::Object(inner) = v
                    {
                        for (k2, v2) in inner {
                            let p = format!("{}:{k2}", ext.urn);
                            apply_path(schemas, kind, doc, op.op, &p, Some(v2), members)?;
                        }
                        continue;
                    }
                    if let Ok(Target::Attr { def, .. }) = parse_path(schemas, kind, key)
                        && def.mutability == Mutability::ReadOnly
                    {
                        continue;
                    }
                    apply_path(schemas, kind, doc, op.op, key, Some(v), members)?;
                }
            }
        }
    }
    Ok(())
}

fn need(value: Option<&Value>) -> Result<&Value, ScimError> {
    value.ok_or_else(|| ScimError::invalid_value("this operation needs a value"))
}

fn container<'a>(
    doc: &'a mut Map<String, Value>,
    ext: Option<&str>,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    match ext {
        None => Some(doc),
        Some(urn) => {
            if create && !doc.contains_key(urn) {
                doc.insert(urn.to_owned(), Value::Object(Map::new()));
            }
            doc.get_mut(urn).and_then(Value::as_object_mut)
        }
    }
}

/// Equality-conditions of a value filter, to build the value an `add`
/// creates (`emails[type eq "work"].value`).
fn seed(f: &Filter, out: &mut Map<String, Value>) {
    match f {
        Filter::And(a, b) => {
            seed(a, out);
            seed(b, out);
        }
        Filter::Compare(p, Op::Eq, v) => {
            let v = match v {
                CompValue::Str(s) => json!(s),
                CompValue::Bool(b) => json!(b),
                CompValue::Num(n) => json!(n),
                CompValue::Null => return,
            };
            out.insert(p.name.clone(), v);
        }
        _ => {}
    }
}

/// Ids named by a members filter: `value eq "x"`, or several joined by or.
fn member_ids_of(f: &Filter, out: &mut Vec<String>) -> Result<(), ScimError> {
    match f {
        Filter::Or(a, b) => {
            member_ids_of(a, out)?;
            member_ids_of(b, out)
        }
        Filter::Compare(p, Op::Eq, CompValue::Str(v)) if p.name.eq_ignore_ascii_case("value") => {
            out.push(v.clone());
            Ok(())
        }
        _ => Err(ScimError::invalid_filter(
            "members can be selected only by `value eq \"id\"`",
        )),
    }
}

fn apply_members(
    op: OpKind,
    filter: Option<&Filter>,
    sub: Option<&Attr>,
    value: Option<&Value>,
    members: &mut MemberChange,
) -> Result<(), ScimError> {
    if sub.is_some() {
        return Err(ScimError::invalid_path(
            "member sub-attributes cannot be changed",
        ));
    }
    let ids = |v: &Value| -> Result<Vec<String>, ScimError> {
        Ok(member_refs(v)?.into_iter().map(|m| m.id).collect())
    };
    match (op, filter) {
        (OpKind::Add, None) => members.add(ids(need(value)?)?),
        (OpKind::Replace, None) => {
            members.clear_all();
            members.add(ids(need(value)?)?);
        }
        (OpKind::Remove, None) => match value {
            // Entra: remove only the listed members.
            Some(v) => members.remove(ids(v)?),
            None => members.clear_all(),
        },
        (OpKind::Remove, Some(f)) => {
            let mut list = Vec::new();
            member_ids_of(f, &mut list)?;
            members.remove(list);
        }
        (_, Some(_)) => {
            return Err(ScimError::invalid_path(
                "members can only be added, replaced or removed as a whole or by value",
            ));
        }
    }
    Ok(())
}

/// Where an attribute operation lands inside its container: the attribute,
/// and optionally a value filter (`emails[type eq "work"]`) and a
/// sub-attribute (`.value`).
#[derive(Clone, Copy)]
struct Place<'a> {
    def: &'a Attr,
    filter: Option<&'a Filter>,
    sub: Option<&'a Attr>,
}

/// One operation with a path. It resolves what the path names (an
/// extension, a group's members, or an attribute in the document) and hands
/// attributes to [`add`], [`replace`] or [`remove`]: the three differ in
/// exactly the cases IdPs depend on (add appends to a list and creates a
/// missing filtered value, replace of a missing one is `noTarget`, remove
/// takes a value list), so each reads as its own RFC paragraph.
fn apply_path(
    schemas: &Schemas,
    kind: Kind,
    doc: &mut Map<String, Value>,
    op: OpKind,
    path: &str,
    value: Option<&Value>,
    members: &mut MemberChange,
) -> Result<(), ScimError> {
    let target = parse_path(schemas, kind, path)?;
    // Entra clears an attribute with `replace` and a `null` value, or an
    // empty string for a simple one: that is a `remove` of the same path.
    let (op, value) = if op == OpKind::Replace && clears(&target, value) {
        (OpKind::Remove, None)
    } else {
        (op, value)
    };
    let (ext, def, filter, sub) = match target {
        Target::Extension(e) => {
            return apply_extension(doc, op, e, value);
        }
        Target::Attr {
            ext,
            def,
            filter,
            sub,
        } => (ext, def, filter, sub),
    };
    if kind == Kind::Group && ext.is_none() && def.name == "members" {
        return apply_members(op, filter.as_ref(), sub, value, members);
    }
    if !stored(def, op, filter.is_none() && sub.is_none())? {
        return Ok(());
    }
    let Some(c) = container(doc, ext, op != OpKind::Remove) else {
        return Ok(());
    };
    let at = Place {
        def,
        filter: filter.as_ref(),
        sub,
    };
    match op {
        OpKind::Add => add(c, at, value)?,
        OpKind::Replace => replace(c, at, value)?,
        OpKind::Remove => remove(c, at, value)?,
    }
    tidy(doc, ext, &def.name);
    Ok(())
}

/// Whether a `replace` value clears its target: `null`, or `""` when the
/// target (the sub-attribute, if the path names one) is a simple
/// single-valued attribute.
fn clears(target: &Target<'_>, value: Option<&Value>) -> bool {
    match value {
        Some(Value::Null) => true,
        Some(Value::String(s)) if s.is_empty() => match target {
            Target::Extension(_) => false,
            Target::Attr { def, sub, .. } => {
                let t = sub.unwrap_or(def);
                !t.multi && t.sub.is_empty() && t.ty != Ty::Complex
            }
        },
        _ => false,
    }
}

/// Whether an operation on `def` is kept in the document. Read-only
/// attributes and removing a required one whole are refused (`mutability`);
/// write-only ones (`password`, which Okta sends) are accepted and dropped,
/// never stored.
fn stored(def: &Attr, op: OpKind, whole: bool) -> Result<bool, ScimError> {
    if def.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!(
            "`{}` is read-only",
            def.name
        )));
    }
    if def.mutability == Mutability::WriteOnly {
        return Ok(false);
    }
    if op == OpKind::Remove && whole && def.required {
        return Err(ScimError::mutability(format!(
            "`{}` cannot be removed",
            def.name
        )));
    }
    Ok(true)
}

/// `add` (RFC 7644 §3.5.2.1): a multi-valued attribute gains the values it
/// lacks, a complex one gains sub-attributes, anything else is set. On a
/// filtered path that matches nothing it creates the element the filter
/// describes (Entra's `emails[type eq "work"].value` for a new user).
fn add(c: &mut Map<String, Value>, at: Place<'_>, value: Option<&Value>) -> Result<(), ScimError> {
    let name = at.def.name.as_ref();
    match (at.filter, at.sub) {
        (None, None) => {
            let Some(new) = normalize_value(at.def, need(value)?)? else {
                return Ok(());
            };
            match (c.get_mut(name), new) {
                (Some(Value::Array(items)), Value::Array(add)) => {
                    for v in add {
                        if !items.contains(&v) {
                            items.push(v);
                        }
                    }
                }
                (_, new) => set_value(c, at.def, new),
            }
        }
        (None, Some(sdef)) => write_sub(c, at.def, sdef, normalize_value(sdef, need(value)?)?),
        (Some(f), sub) => {
            let mut s = select(c, at, f, value)?;
            if s.hits.is_empty() {
                s.items.extend(seeded(f, at, s.value)?);
            } else {
                update_hits(&mut s.items, &s.hits, sub, &s.value);
            }
            put_items(c, name, s.items);
        }
    }
    Ok(())
}

/// `replace` (RFC 7644 §3.5.2.3): the value is set, a list replaced whole;
/// replacing part of a complex attribute keeps the rest, and a null or
/// empty value unsets it. On a filtered path that matches nothing it is
/// `noTarget` and changes nothing.
fn replace(
    c: &mut Map<String, Value>,
    at: Place<'_>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = at.def.name.as_ref();
    match (at.filter, at.sub) {
        (None, None) => match normalize_value(at.def, need(value)?)? {
            None => {
                c.remove(name);
            }
            Some(new) => set_value(c, at.def, new),
        },
        (None, Some(sdef)) => write_sub(c, at.def, sdef, normalize_value(sdef, need(value)?)?),
        (Some(f), sub) => {
            let mut s = select(c, at, f, value)?;
            if s.hits.is_empty() {
                put_items(c, name, s.items);
                return Err(ScimError::no_target(format!(
                    "no value of `{name}` matches the filter"
                )));
            }
            update_hits(&mut s.items, &s.hits, sub, &s.value);
            put_items(c, name, s.items);
        }
    }
    Ok(())
}

/// `remove` (RFC 7644 §3.5.2.2): the attribute, the sub-attribute in each
/// value, or the values a filter selects. With a value list and no filter
/// it removes only the listed values of a multi-valued attribute (Entra
/// sends removals that way), matched by `value` case-insensitively.
fn remove(
    c: &mut Map<String, Value>,
    at: Place<'_>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = at.def.name.as_ref();
    match (at.filter, at.sub) {
        (None, None) => match (value, c.get_mut(name)) {
            (Some(v), Some(Value::Array(items))) if at.def.multi => {
                let drop: Vec<Value> = match normalize_value(at.def, v)? {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                items.retain(|item| !drop.iter().any(|d| same_value(item, d)));
            }
            _ => {
                c.remove(name);
            }
        },
        (None, Some(sdef)) => set_sub_everywhere(c, name, &sdef.name, None),
        (Some(f), sub) => {
            let mut items = take_items(c, name);
            let hits = hits(&items, f, at.def);
            match sub {
                None => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !hits.contains(&i);
                        i += 1;
                        keep
                    });
                }
                Some(sdef) => {
                    for &i in &hits {
                        set_sub(&mut items[i], &sdef.name, None);
                    }
                }
            }
            put_items(c, name, items);
        }
    }
    Ok(())
}

/// Sets sub-attribute `sdef` for add and replace: in the value, or in
/// every value of a multi-valued attribute (a path without a filter names
/// them all); an absent attribute is created holding just that.
fn write_sub(c: &mut Map<String, Value>, def: &Attr, sdef: &Attr, v: Option<Value>) {
    if matches!(
        c.get(def.name.as_ref()),
        Some(Value::Array(_) | Value::Object(_))
    ) {
        set_sub_everywhere(c, &def.name, &sdef.name, v);
        return;
    }
    let mut o = Map::new();
    if let Some(v) = v {
        o.insert(sdef.name.to_string(), v);
    }
    let v = if def.multi {
        json!([o])
    } else {
        Value::Object(o)
    };
    c.insert(def.name.to_string(), v);
}

/// Sets (`Some`) or removes (`None`) `sub` in attribute `name`'s value, or
/// in each of its values; nothing when the attribute is absent.
fn set_sub_everywhere(c: &mut Map<String, Value>, name: &str, sub: &str, v: Option<Value>) {
    match c.get_mut(name) {
        Some(Value::Array(items)) => {
            for item in items.iter_mut() {
                set_sub(item, sub, v.clone());
            }
        }
        Some(obj @ Value::Object(_)) => set_sub(obj, sub, v),
        _ => {}
    }
}

/// A filtered add or replace before it edits: the attribute's values taken
/// out, the positions the filter selects, and the value to write.
struct Selection {
    items: Vec<Value>,
    hits: Vec<usize>,
    value: Option<Value>,
}

/// Prepares a filtered add or replace. The value is checked first, so a
/// bad one fails before anything moves.
fn select(
    c: &mut Map<String, Value>,
    at: Place<'_>,
    f: &Filter,
    value: Option<&Value>,
) -> Result<Selection, ScimError> {
    let value = element_value(at, value)?;
    let items = take_items(c, &at.def.name);
    let hits = hits(&items, f, at.def);
    Ok(Selection { items, hits, value })
}

/// Sets the attribute to `new`; a single complex value is merged into the
/// one there, since replacing part of a complex attribute keeps the rest
/// (RFC 7644 §3.5.2.3) and adding to one adds sub-attributes.
fn set_value(c: &mut Map<String, Value>, def: &Attr, new: Value) {
    match (c.get_mut(def.name.as_ref()), new) {
        (Some(Value::Object(old)), Value::Object(new)) if !def.multi => {
            old.extend(new);
        }
        (_, new) => {
            c.insert(def.name.to_string(), new);
        }
    }
}

/// What a filtered add or replace writes into each matching element: the
/// sub-attribute's value, or one whole element (a list of one is accepted,
/// more is ambiguous and refused).
fn element_value(at: Place<'_>, value: Option<&Value>) -> Result<Option<Value>, ScimError> {
    if let Some(sdef) = at.sub {
        return normalize_value(sdef, need(value)?);
    }
    match need(value)? {
        list @ Value::Array(_) => match normalize_value(at.def, list)? {
            Some(Value::Array(mut a)) if a.len() == 1 => Ok(a.pop()),
            Some(Value::Array(_)) => {
                Err(ScimError::invalid_value("a filtered path takes one value"))
            }
            other => Ok(other),
        },
        one => normalize_element(at.def, one),
    }
}

/// The attribute's values taken out of the container for a filtered edit
/// (a single value counts as a list of one); [`put_items`] returns them.
fn take_items(c: &mut Map<String, Value>, name: &str) -> Vec<Value> {
    match c.remove(name) {
        Some(Value::Array(a)) => a,
        Some(other) => vec![other],
        None => Vec::new(),
    }
}

/// Puts edited values back; an emptied list is left out rather than
/// stored as `[]`.
fn put_items(c: &mut Map<String, Value>, name: &str, items: Vec<Value>) {
    if !items.is_empty() {
        c.insert(name.to_owned(), Value::Array(items));
    }
}

/// Positions of the values a value filter selects, decided before any is
/// changed so an edit can't change which values match.
fn hits(items: &[Value], f: &Filter, def: &Attr) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| filter::eval_element(f, item, def.sub))
        .map(|(i, _)| i)
        .collect()
}

/// Writes `v` into each selected value: a sub-attribute, the members of an
/// object value, or the whole value.
fn update_hits(items: &mut [Value], hits: &[usize], sub: Option<&Attr>, v: &Option<Value>) {
    for &i in hits {
        match (sub, v) {
            (Some(sdef), v) => set_sub(&mut items[i], &sdef.name, v.clone()),
            (None, Some(Value::Object(v))) => {
                if let Value::Object(item) = &mut items[i] {
                    item.extend(v.clone());
                }
            }
            (None, Some(v)) => items[i] = v.clone(),
            (None, None) => {}
        }
    }
}

/// The element an `add` to a filtered path creates when none matches: the
/// filter's equalities plus the value, normalised like any other value
/// (`None` if nothing valid remains).
fn seeded(f: &Filter, at: Place<'_>, v: Option<Value>) -> Result<Option<Value>, ScimError> {
    let mut o = Map::new();
    seed(f, &mut o);
    match (at.sub, v) {
        (Some(sdef), Some(v)) => {
            o.insert(sdef.name.to_string(), v);
        }
        (None, Some(Value::Object(v))) => o.extend(v),
        _ => {}
    }
    Ok(normalize_value(at.def, &Value::Object(o))?
        .and_then(|v| v.as_array().and_then(|a| a.first().cloned())))
}

/// No empty leftovers after an operation: `[]`, `{}`, an empty extension.
/// RFC 7643 §2.5 holds an empty value and an unassigned one to be the same
/// state, so the document keeps one form of it: absent.
fn tidy(doc: &mut Map<String, Value>, ext: Option<&str>, name: &str) {
    if let Some(c) = container(doc, ext, false) {
        let empty = match c.get(name) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        };
        if empty {
            c.remove(name);
        }
    }
    if let Some(urn) = ext
        && doc
            .get(urn)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        doc.remove(urn);
    }
}

fn apply_extension(
    doc: &mut Map<String, Value>,
    op: OpKind,
    Extension { urn, attrs }: Extension<'_>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if op == OpKind::Remove {
        doc.remove(urn);
        return Ok(());
    }
    let Some(Value::Object(values)) = value else {
        return Err(ScimError::invalid_value(
            "an extension takes an object value",
        ));
    };
    let ext = doc
        .entry(urn.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(ext) = ext else {
        return Err(ScimError::invalid_value("corrupt extension"));
    };
    for (k, v) in values {
        // scim2-tester (and some clients) send the extension object with
        // its own `schemas`.
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let def = schema::find(attrs, k)
            .ok_or_else(|| ScimError::invalid_path("unknown attribute in extension"))?;
        match normalize_value(def, v)? {
            Some(n) => match (ext.get_mut(def.name.as_ref()), n) {
                (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
                (_, n) => {
                    ext.insert(def.name.to_string(), n);
                }
            },
            None => {
                ext.remove(def.name.as_ref());
            }
        }
    }
    if ext.is_empty() {
        doc.remove(urn);
    }
    Ok(())
}

fn set_sub(item: &mut Value, sub: &str, v: Option<Value>) {
    if let Value::Object(o) = item {
        match v {
            Some(v) => {
                o.insert(sub.to_owned(), v);
            }
            None => {
                o.remove(sub);
            }
        }
    }
}

/// Whether a stored value is the one a `remove` names: by `value`
/// (case-insensitively) when both have one, else exactly.
fn same_value(item: &Value, target: &Value) -> bool {
    match (item.get("value"), target.get("value")) {
        (Some(Value::String(a)), Some(Value::String(b))) => a.eq_ignore_ascii_case(b),
        _ => item == target,
    }
}

#[cfg(test)]
mod tests;
