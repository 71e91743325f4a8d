//! The RFC 7644 §3.4.2.2 filter language: parsed to an AST, evaluated
//! exactly in Rust; [`indexed`] names the part a database index can answer.
//!
//! Beyond the RFC, for what IdPs send: a value path followed by a
//! sub-attribute comparison (`emails[type eq "work"].value eq "x"`, Entra)
//! means the same as `emails[type eq "work" and value eq "x"]`; an unquoted
//! value that is not a keyword or number is a string (Entra's `externalId eq
//! 5e4c…`); operators and keywords are case-insensitive.

use chrono::DateTime;
use serde_json::Value;

use super::error::ScimError;
use super::schema::{self, Attr, Kind, Schemas, Ty};
use super::wire::{get_ci, starts_with_ci};
use crate::store::ScimIndex;

/// Longest filter accepted; real IdP filters are far shorter.
pub const MAX_FILTER_LEN: usize = 8 * 1024;
/// Deepest nesting accepted (parentheses, `not`, value paths).
const MAX_DEPTH: usize = 32;

/// `[urn:]name[.sub]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, Op, CompValue),
    /// `attr[filter]`: some value of `attr` matches `filter` (whose paths
    /// are relative to that value).
    ValuePath(AttrPath, Box<Filter>),
}

fn valid_name(s: &str) -> bool {
    s == "$ref"
        || (s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

fn valid_urn(s: &str) -> bool {
    s.len() > 4
        && starts_with_ci(s, "urn:")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '_'))
}

/// Parses `[urn:]name[.sub]`.
pub fn parse_attr_path(text: &str) -> Result<AttrPath, ScimError> {
    let bad = || ScimError::invalid_filter("invalid attribute path");
    let (urn, rest) = if text.len() > 4 && starts_with_ci(text, "urn:") {
        let (u, r) = text.rsplit_once(':').ok_or_else(bad)?;
        if !valid_urn(u) {
            return Err(bad());
        }
        (Some(u.to_owned()), r)
    } else {
        (None, text)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    if !valid_name(name) || sub.is_some_and(|s| !valid_name(s)) {
        return Err(bad());
    }
    Ok(AttrPath {
        urn,
        name: name.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Str(String),
    Word(String),
}

fn lex(input: &str) -> Result<Vec<Tok>, ScimError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                out.push(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    _ => Tok::RBracket,
                });
            }
            '"' => {
                // A JSON string literal: find its end honouring escapes,
                // then let serde_json decode it.
                chars.next();
                let mut end = None;
                let mut escaped = false;
                for (j, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        end = Some(j);
                        break;
                    }
                }
                let end = end.ok_or_else(|| ScimError::invalid_filter("unterminated string"))?;
                let s: String = serde_json::from_str(&input[i..=end])
                    .map_err(|_| ScimError::invalid_filter("invalid string literal"))?;
                out.push(Tok::Str(s));
            }
            _ => {
                let mut end = input.len();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_whitespace() || matches!(d, '(' | ')' | '[' | ']' | '"') {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                out.push(Tok::Word(input[i..end].to_owned()));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

fn op(word: &str) -> Option<Op> {
    Some(match word.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "co" => Op::Co,
        "sw" => Op::Sw,
        "ew" => Op::Ew,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), ScimError> {
        if self.next() == Some(t) {
            Ok(())
        } else {
            Err(ScimError::invalid_filter(format!("expected {what}")))
        }
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ScimError::invalid_filter("filter nested too deeply"));
        }
        Ok(())
    }

    fn or(&mut self, inner: bool) -> Result<Filter, ScimError> {
        self.enter()?;
        let mut left = self.and(inner)?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and(inner)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self, inner: bool) -> Result<Filter, ScimError> {
        let mut left = self.unary(inner)?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary(inner)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, inner: bool) -> Result<Filter, ScimError> {
        if self.peek_word("not") {
            self.pos += 1;
            self.expect(Tok::LParen, "`(` after not")?;
            let f = self.or(inner)?;
            self.expect(Tok::RParen, "`)`")?;
            return Ok(Filter::Not(Box::new(f)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let f = self.or(inner)?;
            self.expect(Tok::RParen, "`)`")?;
            return Ok(f);
        }
        self.attr_exp(inner)
    }

    fn attr_exp(&mut self, inner: bool) -> Result<Filter, ScimError> {
        let Some(Tok::Word(word)) = self.next() else {
            return Err(ScimError::invalid_filter("expected an attribute path"));
        };
        let path = parse_attr_path(&word)?;
        if self.peek() == Some(&Tok::LBracket) {
            if inner || path.sub.is_some() {
                return Err(ScimError::invalid_filter("value paths cannot nest"));
            }
            self.pos += 1;
            self.enter()?;
            let f = self.or(true)?;
            self.depth -= 1;
            self.expect(Tok::RBracket, "`]`")?;
            // Entra: `emails[type eq "work"].value eq "x"`.
            if let Some(Tok::Word(w)) = self.peek()
                && let Some(sub) = w.strip_prefix('.')
            {
                let sub = sub.to_owned();
                if !valid_name(&sub) {
                    return Err(ScimError::invalid_filter("invalid sub-attribute"));
                }
                self.pos += 1;
                let rel = AttrPath {
                    urn: None,
                    name: sub,
                    sub: None,
                };
                let cond = self.condition(rel)?;
                return Ok(Filter::ValuePath(
                    path,
                    Box::new(Filter::And(Box::new(f), Box::new(cond))),
                ));
            }
            return Ok(Filter::ValuePath(path, Box::new(f)));
        }
        if inner && (path.urn.is_some() || path.sub.is_some()) {
            return Err(ScimError::invalid_filter(
                "inside [ ] only sub-attribute names are allowed",
            ));
        }
        self.condition(path)
    }

    fn condition(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        let Some(Tok::Word(w)) = self.next() else {
            return Err(ScimError::invalid_filter("expected an operator"));
        };
        if w.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = op(&w).ok_or_else(|| ScimError::invalid_filter("unknown operator"))?;
        let value = match self.next() {
            Some(Tok::Str(s)) => CompValue::Str(s),
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => CompValue::Bool(true),
                "false" => CompValue::Bool(false),
                "null" => CompValue::Null,
                _ => match w.parse::<f64>() {
                    Ok(n)
                        if n.is_finite()
                            && w.chars().all(|c| {
                                c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')
                            }) =>
                    {
                        CompValue::Num(n)
                    }
                    _ if !w.eq_ignore_ascii_case("and") && !w.eq_ignore_ascii_case("or") => {
                        CompValue::Str(w)
                    }
                    _ => return Err(ScimError::invalid_filter("expected a value")),
                },
            },
            _ => return Err(ScimError::invalid_filter("expected a value")),
        };
        Ok(Filter::Compare(path, op, value))
    }
}

/// Parses a filter expression.
pub fn parse(input: &str) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter("filter too long"));
    }
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(ScimError::invalid_filter("empty filter"));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let f = p.or(false)?;
    if p.pos != p.toks.len() {
        return Err(ScimError::invalid_filter(
            "unexpected text after the filter",
        ));
    }
    Ok(f)
}

/// Parses the filter inside a PATCH value path (`members[value eq "x"]`):
/// only sub-attribute names.
pub fn parse_value_filter(input: &str) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter("filter too long"));
    }
    let mut p = Parser {
        toks: lex(input)?,
        pos: 0,
        depth: 0,
    };
    let f = p.or(true)?;
    if p.pos != p.toks.len() {
        return Err(ScimError::invalid_filter(
            "unexpected text after the filter",
        ));
    }
    Ok(f)
}

/// Where paths are resolved: a whole resource, or one value of a
/// multi-valued complex attribute (inside `[ ]`).
#[derive(Clone, Copy)]
enum Scope<'s> {
    Resource(&'s Schemas, Kind),
    Element(&'s [Attr]),
}

/// The attribute values `path` selects, with the definition that decides
/// case-exactness and type.
fn resolve<'a, 's>(
    res: &'a Value,
    scope: Scope<'s>,
    path: &AttrPath,
    raw: bool,
) -> (Vec<&'a Value>, Option<&'s Attr>) {
    let (container, def) = match scope {
        Scope::Element(subs) => (Some(res), schema::find(subs, &path.name)),
        Scope::Resource(schemas, kind) => resource_attr(res, schemas, kind, path),
    };
    let Some(top) = container.and_then(|c| get_ci(c, &path.name)) else {
        return (Vec::new(), def);
    };
    let items: Vec<&Value> = match top {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    match &path.sub {
        Some(sub) => {
            let sdef = def.and_then(|d| schema::find(d.sub, sub));
            (
                items.into_iter().filter_map(|v| get_ci(v, sub)).collect(),
                sdef,
            )
        }
        None if !raw && def.is_some_and(|d| !d.sub.is_empty()) => {
            // A complex attribute without a sub-attribute compares its `value`.
            let sdef = def.and_then(|d| schema::find(d.sub, "value"));
            let vals = items
                .into_iter()
                .map(|v| {
                    if v.is_object() {
                        get_ci(v, "value").unwrap_or(&Value::Null)
                    } else {
                        v
                    }
                })
                .collect();
            (vals, sdef)
        }
        None => (items, def),
    }
}

/// Where a top-level path lives in a resource (itself, or an extension
/// object the configuration serves) and its definition.
fn resource_attr<'a, 's>(
    res: &'a Value,
    schemas: &'s Schemas,
    kind: Kind,
    path: &AttrPath,
) -> (Option<&'a Value>, Option<&'s Attr>) {
    let ext = path
        .urn
        .as_deref()
        .filter(|u| !u.eq_ignore_ascii_case(kind.core_urn()));
    let container = match ext {
        Some(u) => schemas.extension(kind, u).and_then(|e| get_ci(res, e.urn)),
        None => Some(res),
    };
    (
        container,
        schemas.attr(kind, path.urn.as_deref(), &path.name),
    )
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(present),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare_one(v: &Value, op: Op, want: &CompValue, def: Option<&Attr>) -> bool {
    use std::cmp::Ordering;
    let ord = |o: Ordering| match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    };
    match (v, want) {
        (Value::String(have), CompValue::Str(want)) => {
            if def.is_some_and(|d| d.ty == Ty::DateTime)
                && let (Ok(a), Ok(b)) = (
                    DateTime::parse_from_rfc3339(have),
                    DateTime::parse_from_rfc3339(want),
                )
            {
                return ord(a.cmp(&b));
            }
            let exact = def.is_some_and(|d| d.case_exact);
            let (a, b) = if exact {
                (have.clone(), want.clone())
            } else {
                (have.to_lowercase(), want.to_lowercase())
            };
            match op {
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                _ => ord(a.cmp(&b)),
            }
        }
        (Value::Bool(have), CompValue::Bool(want)) => match op {
            Op::Eq => have == want,
            Op::Ne => have != want,
            _ => false,
        },
        // Entra's string booleans in filters: `active eq "true"`.
        (Value::Bool(have), CompValue::Str(want)) => match want.to_ascii_lowercase().as_str() {
            "true" | "false" => {
                let w = want.eq_ignore_ascii_case("true");
                match op {
                    Op::Eq => *have == w,
                    Op::Ne => *have != w,
                    _ => false,
                }
            }
            _ => false,
        },
        (Value::Number(have), CompValue::Num(want)) => match have.as_f64() {
            Some(h) => h.partial_cmp(want).is_some_and(ord),
            None => false,
        },
        _ => false,
    }
}

fn eval_in(f: &Filter, res: &Value, scope: Scope<'_>) -> bool {
    match f {
        Filter::And(a, b) => eval_in(a, res, scope) && eval_in(b, res, scope),
        Filter::Or(a, b) => eval_in(a, res, scope) || eval_in(b, res, scope),
        Filter::Not(a) => !eval_in(a, res, scope),
        Filter::Present(p) => resolve(res, scope, p, true).0.into_iter().any(present),
        Filter::Compare(p, op, want) => {
            let (vals, def) = resolve(res, scope, p, false);
            match (op, want) {
                (Op::Eq, CompValue::Null) => !vals.into_iter().any(present),
                (Op::Ne, CompValue::Null) => vals.into_iter().any(present),
                (Op::Ne, _) => !vals.into_iter().any(|v| compare_one(v, Op::Eq, want, def)),
                _ => vals.into_iter().any(|v| compare_one(v, *op, want, def)),
            }
        }
        Filter::ValuePath(p, inner) => {
            let Scope::Resource(..) = scope else {
                return false;
            };
            let whole = AttrPath {
                urn: p.urn.clone(),
                name: p.name.clone(),
                sub: None,
            };
            let (container, def) = match scope {
                Scope::Resource(schemas, kind) => resource_attr(res, schemas, kind, &whole),
                Scope::Element(_) => (None, None),
            };
            let subs: &[Attr] = def.map(|d| d.sub).unwrap_or(&[]);
            match container.and_then(|c| get_ci(c, &whole.name)) {
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|item| eval_in(inner, item, Scope::Element(subs))),
                Some(item @ Value::Object(_)) => eval_in(inner, item, Scope::Element(subs)),
                _ => false,
            }
        }
    }
}

/// Whether the resource (rendered JSON, canonical names) matches.
pub fn eval(f: &Filter, res: &Value, schemas: &Schemas, kind: Kind) -> bool {
    eval_in(f, res, Scope::Resource(schemas, kind))
}

/// Evaluates a value filter against one value of a multi-valued attribute
/// (PATCH paths).
pub fn eval_element(f: &Filter, item: &Value, subs: &[Attr]) -> bool {
    eval_in(f, item, Scope::Element(subs))
}

/// A top-level conjunct a database index can answer exactly enough to
/// narrow the candidates: `userName`/`displayName eq` (case-insensitive),
/// `externalId eq`, `id eq`. The whole filter is still evaluated on them.
pub fn indexed(f: &Filter, kind: Kind) -> Option<(ScimIndex, String)> {
    match f {
        Filter::And(a, b) => indexed(a, kind).or_else(|| indexed(b, kind)),
        Filter::Compare(p, Op::Eq, CompValue::Str(v))
            if p.sub.is_none()
                && p.urn
                    .as_deref()
                    .is_none_or(|u| u.eq_ignore_ascii_case(kind.core_urn())) =>
        {
            let name_attr = match kind {
                Kind::User => "userName",
                Kind::Group => "displayName",
            };
            if p.name.eq_ignore_ascii_case(name_attr) {
                Some((ScimIndex::Name, v.clone()))
            } else if p.name.eq_ignore_ascii_case("externalId") {
                Some((ScimIndex::ExternalId, v.clone()))
            } else if p.name.eq_ignore_ascii_case("id") {
                Some((ScimIndex::Id, v.clone()))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Whether the filter looks at `attr` (top level), e.g. `members`, so the
/// caller knows to load it.
pub fn mentions(f: &Filter, attr: &str) -> bool {
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => mentions(a, attr) || mentions(b, attr),
        Filter::Not(a) => mentions(a, attr),
        Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) => {
            p.name.eq_ignore_ascii_case(attr)
        }
    }
}

#[cfg(test)]
mod tests;
