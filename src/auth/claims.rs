//! Claim and attribute mapping: what an IdP sent, flattened to strings
//! ([`flatten`], every protocol), and the few claims a session keeps for
//! `[[headers.extra]]` and `[headers] assertion_claims` ([`select`], at
//! sign-in). Only what the configuration names is kept, so the session
//! row stays small and an IdP can't fill it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::connection::{MAX_ATTRIBUTE_BYTES, MAX_ATTRIBUTE_VALUES, VerifiedLogin};
use crate::config::{ConnectionConfig, HeadersConfig};

/// Most bytes of selected claim values one session keeps.
pub const MAX_SELECTED_BYTES: usize = 16 * 1024;

/// Every claim as strings: a string as it is, a number or boolean as its
/// JSON text, each element of an array likewise, an object as JSON text;
/// `null` and empty strings are dropped. At most
/// [`MAX_ATTRIBUTE_VALUES`] values per claim, each cut to
/// [`MAX_ATTRIBUTE_BYTES`] (at a character boundary).
pub fn flatten(claims: &Map<String, Value>) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (name, value) in claims {
        let values: Vec<String> = match value {
            Value::Array(items) => items.iter().filter_map(text).collect(),
            other => text(other).into_iter().collect(),
        };
        let values: Vec<String> = values
            .into_iter()
            .take(MAX_ATTRIBUTE_VALUES)
            .map(|v| cut(v, MAX_ATTRIBUTE_BYTES))
            .collect();
        if !values.is_empty() {
            out.insert(name.clone(), values);
        }
    }
    out
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The claims a session keeps: for each `(name, source)` (see
/// [`crate::config::HeadersConfig::claim_sources`]), the login's values of
/// `source` under `name`. At most [`MAX_SELECTED_BYTES`] in all; values
/// beyond are dropped. Returns whether any were.
pub fn select(
    attributes: &BTreeMap<String, Vec<String>>,
    sources: &[(String, String)],
) -> (BTreeMap<String, Vec<String>>, bool) {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut budget = MAX_SELECTED_BYTES;
    let mut truncated = false;
    for (name, source) in sources {
        let Some(values) = attributes.get(source) else {
            continue;
        };
        let mut kept = Vec::new();
        for v in values {
            let cost = v.len() + name.len();
            if cost > budget {
                truncated = true;
                break;
            }
            budget -= cost;
            kept.push(v.clone());
        }
        if !kept.is_empty() {
            out.insert(name.clone(), kept);
        }
    }
    (out, truncated)
}

/// The claims a session of `login` keeps under `headers`, with the
/// overrides of the connection that made it (`conn`). A login whose values
/// exceed [`MAX_SELECTED_BYTES`] keeps what fits; that is logged.
pub fn for_session(
    login: &VerifiedLogin,
    headers: &HeadersConfig,
    conn: Option<&ConnectionConfig>,
) -> BTreeMap<String, Vec<String>> {
    let none = BTreeMap::new();
    let overrides = conn.map_or(&none, |c| &c.header_claims);
    let sources = headers.claim_sources(overrides);
    if sources.is_empty() {
        return BTreeMap::new();
    }
    let (kept, truncated) = select(&login.attributes, &sources);
    if truncated {
        tracing::warn!(
            connection = %login.connection_id,
            subject = %login.subject,
            limit = MAX_SELECTED_BYTES,
            "mapped claims exceed the limit per session; values beyond it are dropped"
        );
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flatten_strings_numbers_lists_and_objects() {
        let claims = json!({
            "department": "R&D",
            "employee_id": 4711,
            "admin": true,
            "nothing": null,
            "empty": "",
            "roles": ["a", "", 2, null, {"k": "v"}],
            "address": {"locality": "Zürich"},
            "many": (0..100).collect::<Vec<i32>>(),
            "huge": "é".repeat(1000),
        });
        let f = flatten(claims.as_object().unwrap());
        assert_eq!(f["department"], ["R&D"]);
        assert_eq!(f["employee_id"], ["4711"]);
        assert_eq!(f["admin"], ["true"]);
        assert!(!f.contains_key("nothing") && !f.contains_key("empty"));
        assert_eq!(f["roles"], ["a", "2", r#"{"k":"v"}"#]);
        assert_eq!(f["address"], [r#"{"locality":"Zürich"}"#]);
        assert_eq!(f["many"].len(), MAX_ATTRIBUTE_VALUES);
        // 2-byte characters: cut at a boundary, never inside one
        assert_eq!(f["huge"][0].len(), MAX_ATTRIBUTE_BYTES);
        assert!(f["huge"][0].chars().all(|c| c == 'é'));
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    }

    #[test]
    fn select_caps_and_overrides() {
        let attrs: BTreeMap<String, Vec<String>> = [
            ("department".to_owned(), vec!["Sales".to_owned()]),
            (
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/department".to_owned(),
                vec!["R&D".to_owned(), "Ops".to_owned()],
            ),
            ("secret".to_owned(), vec!["never kept".to_owned()]),
        ]
        .into();
        // Only what is named is kept; an override reads another source
        // under the configured name.
        let (kept, cut) = select(
            &attrs,
            &pairs(&[
                (
                    "department",
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/department",
                ),
                ("employee_id", "employee_id"),
            ]),
        );
        assert!(!cut);
        assert_eq!(
            kept,
            BTreeMap::from([(
                "department".to_owned(),
                vec!["R&D".to_owned(), "Ops".to_owned()]
            )])
        );
        // The budget holds across claims; what does not fit is dropped.
        let big: BTreeMap<String, Vec<String>> = [
            ("a".to_owned(), vec!["x".repeat(10_000)]),
            ("b".to_owned(), vec!["y".repeat(10_000), "z".into()]),
        ]
        .into();
        let (kept, cut) = select(&big, &pairs(&[("a", "a"), ("b", "b")]));
        assert!(cut);
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key("a"));
    }
}
