//! The email field of a password-login submission, found the way any
//! framework behind us might find it — or a refusal.
//!
//! Rule: Portcullis forwards a submission only when it has read exactly one
//! value for the email field, under every reading a framework could apply:
//!
//! * field names compare case-insensitively (ASP.NET model binding and
//!   System.Text.Json's web defaults do), with PHP's `.`/space → `_`
//!   mangling, and `email[]`/`email[0]` (PHP, Rails, qs) counting as the
//!   field too;
//! * urlencoded pairs split on `;` as well as `&` (older CGI parsers and
//!   Python before 3.9.2 did), so `x=1;email=b@acme.com` can't hide a
//!   second email;
//! * JSON objects with a repeated key (whichever copy the app's parser
//!   keeps) are refused;
//! * `multipart/form-data` is parsed, every part must be named;
//! * anything else — other media types, charsets other than UTF-8, a
//!   `Content-Encoding`, bodies that don't parse — is refused, because what
//!   Portcullis can't read it can't vouch for.

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a submission was refused without looking its domain up. Each is a
/// metric label and the reason in the log; the client sees one generic
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("body could not be parsed")]
    Unparseable,
    #[error("content type is not urlencoded, JSON or multipart (UTF-8)")]
    ContentType,
    #[error("body is content-encoded")]
    ContentEncoding,
    #[error("no email field in the submission")]
    NoEmail,
    #[error("the email field appears more than once")]
    Duplicate,
    #[error("the email field is not a plain address")]
    NotAnEmail,
    #[error("credentials in the query string")]
    QueryCredentials,
    #[error("body larger than the inspection limit")]
    TooLarge,
    /// Asked through a forward-auth endpoint: the host proxy never shows
    /// Portcullis the body, so nothing in it can be vouched for.
    #[error("submission seen only through a forward-auth endpoint (no body)")]
    ForwardAuth,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unparseable => "unparseable",
            Refusal::ContentType => "content_type",
            Refusal::ContentEncoding => "content_encoding",
            Refusal::NoEmail => "no_email",
            Refusal::Duplicate => "duplicate_email",
            Refusal::NotAnEmail => "not_an_email",
            Refusal::QueryCredentials => "query_credentials",
            Refusal::TooLarge => "too_large",
            Refusal::ForwardAuth => "forward_auth",
        }
    }
}

/// Where the email is: a form field name (also the multipart part name) and
/// a JSON pointer, derived from each other when only one is configured
/// (`/user/email` ⇔ `user[email]`, the Rails and PHP convention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldSpec {
    form: String,
    pointer: Vec<String>,
}

impl FieldSpec {
    pub(crate) fn new(email_field: Option<&str>, email_json_pointer: Option<&str>) -> Self {
        match (email_field, email_json_pointer) {
            (_, Some(p)) => {
                let pointer: Vec<String> = p
                    .split('/')
                    .skip(1)
                    .map(|t| t.replace("~1", "/").replace("~0", "~"))
                    .collect();
                let form = match pointer.split_first() {
                    Some((first, rest)) => {
                        let mut f = first.clone();
                        for r in rest {
                            f.push_str(&format!("[{r}]"));
                        }
                        email_field.map_or(f, str::to_owned)
                    }
                    None => email_field.unwrap_or("email").to_owned(),
                };
                Self {
                    form: loose(&form),
                    pointer,
                }
            }
            (f, None) => {
                let f = f.unwrap_or("email");
                Self {
                    form: loose(f),
                    pointer: vec![f.to_owned()],
                }
            }
        }
    }

    /// Does form key `key` name this field (or an array of it)?
    fn names(&self, key: &str) -> bool {
        let k = loose(key);
        k == self.form
            || k.strip_prefix(self.form.as_str())
                .is_some_and(|rest| rest.starts_with('['))
    }
}

/// Field names as lenient frameworks compare them.
fn loose(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            ' ' | '.' => '_',
            c => c,
        })
        .collect::<String>()
        .to_lowercase()
}

/// The one email value of a submission.
pub(super) async fn email_value(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: Bytes,
    field: &FieldSpec,
) -> Result<String, Refusal> {
    if content_encoding.is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity")) {
        return Err(Refusal::ContentEncoding);
    }
    let Some(ct) = content_type else {
        return Err(if body.is_empty() {
            Refusal::NoEmail
        } else {
            Refusal::ContentType
        });
    };
    let mime: mime::Mime = ct.parse().map_err(|_| Refusal::ContentType)?;
    if let Some(cs) = mime.get_param(mime::CHARSET)
        && !(cs.as_str().eq_ignore_ascii_case("utf-8")
            || cs.as_str().eq_ignore_ascii_case("us-ascii"))
    {
        return Err(Refusal::ContentType);
    }
    let essence = mime.essence_str();
    if essence == "application/x-www-form-urlencoded" {
        let text = std::str::from_utf8(&body).map_err(|_| Refusal::Unparseable)?;
        one(form_values(text, field)?)
    } else if essence == "application/json"
        || (mime.type_() == mime::APPLICATION && mime.suffix() == Some(mime::JSON))
    {
        json_value(&body, field)
    } else if essence == "multipart/form-data" {
        let boundary = multer::parse_boundary(ct).map_err(|_| Refusal::Unparseable)?;
        one(multipart_values(body, boundary, field).await?)
    } else {
        Err(Refusal::ContentType)
    }
}

/// Does the query string carry any of these fields?
pub(super) fn query_names(query: &str, fields: &[&FieldSpec]) -> Result<bool, Refusal> {
    for (k, _) in pairs(query)? {
        if fields.iter().any(|f| f.names(&k)) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn one(mut values: Vec<String>) -> Result<String, Refusal> {
    match values.len() {
        0 => Err(Refusal::NoEmail),
        1 => Ok(values.swap_remove(0)),
        _ => Err(Refusal::Duplicate),
    }
}

/// `application/x-www-form-urlencoded` pairs, split on `&` and `;`, decoded
/// strictly (invalid UTF-8 is refused, not replaced).
fn pairs(text: &str) -> Result<Vec<(String, String)>, Refusal> {
    let decode = |s: &str| -> Result<String, Refusal> {
        let plus = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| Refusal::Unparseable)
    };
    text.split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn form_values(text: &str, field: &FieldSpec) -> Result<Vec<String>, Refusal> {
    let mut out = Vec::new();
    for (k, v) in pairs(text)? {
        if field.names(&k) {
            if loose(&k) != field.form {
                // `email[]=…`: an array, not one address.
                return Err(Refusal::Duplicate);
            }
            out.push(v);
        }
    }
    Ok(out)
}

async fn multipart_values(
    body: Bytes,
    boundary: String,
    field: &FieldSpec,
) -> Result<Vec<String>, Refusal> {
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    loop {
        let part = match mp.next_field().await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(_) => return Err(Refusal::Unparseable),
        };
        // A part without a plain `name` (only `name*`, say) is one some
        // parsers would still bind: can't vouch for what it holds.
        let Some(name) = part.name().map(str::to_owned) else {
            return Err(Refusal::Unparseable);
        };
        let value = part.bytes().await.map_err(|_| Refusal::Unparseable)?;
        if field.names(&name) {
            if loose(&name) != field.form {
                return Err(Refusal::Duplicate);
            }
            out.push(String::from_utf8(value.to_vec()).map_err(|_| Refusal::Unparseable)?);
        }
    }
    Ok(out)
}

fn json_value(body: &[u8], field: &FieldSpec) -> Result<String, Refusal> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let Strict(root) = Strict::deserialize(&mut de).map_err(|e| {
        if e.to_string().starts_with(REPEATED_KEY) {
            Refusal::Duplicate
        } else {
            Refusal::Unparseable
        }
    })?;
    de.end().map_err(|_| Refusal::Unparseable)?;
    let mut current = &root;
    for token in &field.pointer {
        current = match current {
            Value::Object(map) => {
                let wanted = token.to_lowercase();
                let mut hits = map.iter().filter(|(k, _)| k.to_lowercase() == wanted);
                let hit = hits.next().ok_or(Refusal::NoEmail)?;
                if hits.next().is_some() {
                    return Err(Refusal::Duplicate);
                }
                hit.1
            }
            Value::Array(items) => token
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .ok_or(Refusal::NoEmail)?,
            _ => return Err(Refusal::NoEmail),
        };
    }
    match current {
        Value::String(s) => Ok(s.clone()),
        Value::Array(_) => Err(Refusal::Duplicate),
        _ => Err(Refusal::NotAnEmail),
    }
}

/// A JSON value that refuses objects with a repeated key: serde_json keeps
/// the last copy, other parsers the first, so either reading could be the
/// app's.
struct Strict(Value);

const REPEATED_KEY: &str = "repeated key";

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON without repeated keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(REPEATED_KEY));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

#[cfg(test)]
mod tests;
