//! Tenants as JSON documents (the admin API, the store): decoded and
//! validated by the very functions that read the file, so a document gets
//! the messages `portcullis check` prints, keyed by the field inside the
//! tenant (`connections[0].saml.idp_metadata_xml`).

use serde::Serialize;

use super::load::{Collector, LineIndex, decode};
use super::schema::{Config, ConnectionConfig, Origin, TenantConfig};
use super::validate::{store_source, tenant_checks};

/// One finding about a document: the field (relative to the tenant, empty
/// for the document itself) and the message `check` would print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A configuration value as a JSON document: `None`s are left out (a
/// document spells "absent" by omission; `null` is refused on the way in).
pub fn to_document<T: Serialize>(v: &T) -> Result<serde_json::Value, String> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                o.retain(|_, e| !e.is_null());
                o.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(v).map_err(|e| e.to_string())?;
    strip(&mut v);
    Ok(v)
}

/// The deep checks (metadata parsing, keys) that live above `config`: the
/// caller passes `auth::check::check_tenant`, or nothing.
pub type Probe<'a> = &'a dyn Fn(&TenantConfig, &mut dyn FnMut(String, String));

/// A probe that checks nothing.
pub fn no_probe(_: &TenantConfig, _: &mut dyn FnMut(String, String)) {}

/// Decodes and validates a tenant document against `within` (the file's
/// tenants plus the store's already accepted ones). With `replacing`, the
/// tenant of that id in `within` is left out first (an update). Values are
/// taken literally: no `${ENV}` interpolation (a customer must not read the
/// server's environment), and `null` is refused. The result has
/// [`Origin::Store`].
pub fn tenant_from_json(
    body: &serde_json::Value,
    within: &Config,
    replacing: Option<&str>,
    probe: Probe<'_>,
) -> Result<TenantConfig, Vec<FieldError>> {
    let mut cfg = within.clone();
    if let Some(id) = replacing {
        cfg.tenants.retain(|t| t.id != id);
    }
    let i = cfg.tenants.len();
    let base = format!("tenants[{i}]");
    let index = LineIndex::empty();
    let mut c = Collector::new("store", &index);
    let mut nulls = Vec::new();
    let value = to_toml(body, "", &mut nulls);
    if !nulls.is_empty() {
        return Err(nulls
            .into_iter()
            .map(|f| FieldError::new(f, "null is not allowed; omit the key"))
            .collect());
    }
    let Some(mut tenant) = decode::<TenantConfig>(value, &base, &mut c) else {
        return Err(relative(&base, c.errors));
    };
    tenant.origin = Origin::Store;
    cfg.tenants.push(tenant);
    tenant_checks(&cfg, &mut c);
    store_source(&cfg, i, &mut c);
    let mut errors = relative(&base, c.errors);
    if errors.is_empty()
        && let Some(t) = cfg.tenants.last()
    {
        probe(t, &mut |field, message| {
            errors.push(FieldError { field, message })
        });
    }
    match cfg.tenants.pop() {
        Some(t) if errors.is_empty() => Ok(t),
        _ => Err(errors),
    }
}

/// A connection document added to (or, with `replacing`, replacing one of)
/// `tenant`: validated as that tenant with the connection in place, so
/// findings read `connections[2].oidc.client_id`.
pub fn connection_from_json(
    body: &serde_json::Value,
    tenant: &TenantConfig,
    within: &Config,
    replacing: Option<&str>,
    probe: Probe<'_>,
) -> Result<(TenantConfig, ConnectionConfig), Vec<FieldError>> {
    let mut doc = to_document(tenant).map_err(|e| {
        vec![FieldError::new(
            "",
            format!("cannot encode the tenant: {e}"),
        )]
    })?;
    let mut connections: Vec<serde_json::Value> = tenant
        .connections
        .iter()
        .filter(|c| Some(c.id.as_str()) != replacing)
        .map(to_document)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            vec![FieldError::new(
                "",
                format!("cannot encode a connection: {e}"),
            )]
        })?;
    let position = match replacing {
        Some(id) => tenant
            .connections
            .iter()
            .position(|c| c.id == id)
            .unwrap_or(connections.len()),
        None => connections.len(),
    };
    connections.insert(position, body.clone());
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("connections".into(), serde_json::Value::Array(connections));
    }
    let t = tenant_from_json(&doc, within, Some(&tenant.id), probe)?;
    let conn = t
        .connections
        .get(position)
        .cloned()
        .ok_or_else(|| vec![FieldError::new("", "the connection went missing")])?;
    Ok((t, conn))
}

/// Merges the store's tenant documents (each with its `connections`) into
/// the file's configuration, in order. A document that no longer validates
/// against what is already accepted (say a reload of the file now claims
/// its domain) is left out: the file wins. Returns the merged
/// configuration and the refused tenants with their findings.
pub fn merge_store_tenants(
    file: &Config,
    stored: &[serde_json::Value],
    probe: Probe<'_>,
) -> (Config, Vec<(String, Vec<FieldError>)>) {
    let mut merged = file.clone();
    let mut invalid = Vec::new();
    for doc in stored {
        match tenant_from_json(doc, &merged, None, probe) {
            Ok(t) => merged.tenants.push(t),
            Err(errors) => {
                let id = doc
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned();
                invalid.push((id, errors));
            }
        }
    }
    (merged, invalid)
}

impl Config {
    /// This configuration without the store tenants named in `ids` (those
    /// that could not be built); borrowed when there are none.
    pub fn without_tenants<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> std::borrow::Cow<'_, Config> {
        let ids: Vec<&str> = ids.into_iter().collect();
        if ids.is_empty() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut c = self.clone();
        c.tenants
            .retain(|t| t.origin == Origin::File || !ids.contains(&t.id.as_str()));
        std::borrow::Cow::Owned(c)
    }
}

/// Keeps the findings about `base` (`tenants[i]`) with that prefix removed.
fn relative(base: &str, errors: Vec<super::ConfigError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .filter_map(|e| {
            let rest = e.key.strip_prefix(base)?;
            let field = match rest.strip_prefix('.') {
                Some(f) => f,
                None if rest.is_empty() || rest.starts_with('[') => rest,
                None => return None,
            };
            Some(FieldError::new(field, e.message))
        })
        .collect()
}

/// JSON to the TOML value the file loader decodes, recording where a
/// `null` was (TOML has none, and "absent" must be spelt by omission).
fn to_toml(v: &serde_json::Value, path: &str, nulls: &mut Vec<String>) -> Option<toml::Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => {
            nulls.push(path.to_owned());
            return None;
        }
        J::Bool(b) => toml::Value::Boolean(*b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(f)) => toml::Value::Float(f),
            // Larger than i64: the decoder names the field as out of range.
            (None, None) => toml::Value::String(n.to_string()),
        },
        J::String(s) => toml::Value::String(s.clone()),
        J::Array(a) => toml::Value::Array(
            a.iter()
                .enumerate()
                .filter_map(|(i, e)| to_toml(e, &format!("{path}[{i}]"), nulls))
                .collect(),
        ),
        J::Object(o) => toml::Value::Table(
            o.iter()
                .filter_map(|(k, e)| {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    to_toml(e, &p, nulls).map(|t| (k.clone(), t))
                })
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(toml: &str) -> Config {
        super::super::from_str(toml, "t.toml", &|_| None).unwrap()
    }

    fn errs(r: Result<TenantConfig, Vec<FieldError>>) -> Vec<(String, String)> {
        r.unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    const BASE: &str = r#"
[[listeners]]
address = "127.0.0.1:8080"
[session]
keys = ["0123456789abcdef0123456789abcdef"]
[store]
encryption_key = "cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE="
[[tenants]]
id = "acme"
domains = ["acme.com"]
"#;

    /// The same bad tenant as TOML through `from_str` and as JSON through
    /// `tenant_from_json`: the same keys (after `tenants[1].`) and messages.
    #[test]
    fn json_and_toml_findings_are_identical() {
        let cases: &[(&str, serde_json::Value)] = &[
            (
                "id = \"globex\"\npolcy = 1\n",
                json!({"id": "globex", "polcy": 1}),
            ),
            (
                "id = \"globex\"\nenforce_sso = \"yes\"\n",
                json!({"id": "globex", "enforce_sso": "yes"}),
            ),
            (
                "id = \"Bad Id\"\ndomains = [\"acme.com\", \"gmail.com\", \"nodot\"]\n",
                json!({"id": "Bad Id", "domains": ["acme.com", "gmail.com", "nodot"]}),
            ),
            (
                "id = \"globex\"\n[[tenants.connections]]\nid = \"c1\"\nprotocol = \"oidc\"\n[tenants.connections.oidc]\nissuer = \"ftp://x\"\nclient_id = \"\"\n",
                json!({"id": "globex", "connections": [{"id": "c1", "protocol": "oidc", "oidc": {"issuer": "ftp://x", "client_id": ""}}]}),
            ),
            (
                "id = \"globex\"\n[[tenants.connections]]\nid = \"c1\"\nprotocol = \"saml\"\n[tenants.connections.saml]\nidp_metadata_xml = \"<x/>\"\n",
                json!({"id": "globex", "connections": [{"id": "c1", "protocol": "saml", "saml": {"idp_metadata_xml": "<x/>"}}]}),
            ),
        ];
        for (toml_tenant, json_tenant) in cases {
            let text = format!("{BASE}[[tenants]]\n{toml_tenant}");
            let from_file: Vec<(String, String)> =
                match super::super::from_str(&text, "t.toml", &|_| None) {
                    Ok(_) => panic!("{toml_tenant} loaded"),
                    Err(e) => {
                        e.0.into_iter()
                            .map(|e| {
                                let key = e.key.strip_prefix("tenants[1]").unwrap_or(&e.key);
                                (key.trim_start_matches('.').to_owned(), e.message)
                            })
                            .collect()
                    }
                };
            let mut from_json = errs(tenant_from_json(json_tenant, &file(BASE), None, &no_probe));
            let mut from_file = from_file;
            from_json.sort();
            from_file.sort();
            assert_eq!(from_json, from_file, "{toml_tenant}");
        }
    }

    #[test]
    fn nulls_env_references_and_server_files() {
        let base = file(BASE);
        assert_eq!(
            errs(tenant_from_json(
                &json!({"id": "g", "name": null, "jit": {"default_role": null}}),
                &base,
                None,
                &no_probe
            )),
            vec![
                (
                    "jit.default_role".to_owned(),
                    "null is not allowed; omit the key".to_owned()
                ),
                (
                    "name".to_owned(),
                    "null is not allowed; omit the key".to_owned()
                ),
            ]
        );
        let t = tenant_from_json(
            &json!({"id": "g", "name": "${HOME}"}),
            &base,
            None,
            &no_probe,
        )
        .unwrap();
        assert_eq!(t.name.as_deref(), Some("${HOME}"));
        assert_eq!(t.origin, Origin::Store);
        let e = errs(tenant_from_json(
            &json!({"id": "g", "connections": [{"id": "c", "protocol": "saml",
                "saml": {"idp_metadata_file": "/etc/passwd"}}]}),
            &base,
            None,
            &no_probe,
        ));
        assert!(
            e.contains(&(
                "connections[0].saml.idp_metadata_file".to_owned(),
                "not accepted through the API: server files are the operator's".to_owned()
            )),
            "{e:?}"
        );
        let e = errs(tenant_from_json(
            &json!({"id": "g", "connections": [{"id": "c", "protocol": "oidc",
                "oidc": {"issuer": "http://127.0.0.1:9/", "client_id": "x", "client_secret": "s"}}]}),
            &base,
            None,
            &no_probe,
        ));
        assert_eq!(e[0].0, "connections[0].oidc.issuer", "{e:?}");
    }

    #[test]
    fn ids_and_domains_are_unique_across_sources_and_the_file_wins() {
        let base = file(BASE);
        let e = errs(tenant_from_json(
            &json!({"id": "acme"}),
            &base,
            None,
            &no_probe,
        ));
        assert_eq!(
            e,
            vec![("id".to_owned(), "duplicate tenant id `acme`".to_owned())]
        );
        let e = errs(tenant_from_json(
            &json!({"id": "g", "domains": ["ACME.com"]}),
            &base,
            None,
            &no_probe,
        ));
        assert_eq!(e[0].0, "domains[0]");
        let (merged, invalid) = merge_store_tenants(
            &base,
            &[
                json!({"id": "g", "domains": ["g.com"]}),
                json!({"id": "h", "domains": ["acme.com"]}),
            ],
            &no_probe,
        );
        assert_eq!(
            merged
                .tenants
                .iter()
                .map(|t| (t.id.as_str(), t.origin))
                .collect::<Vec<_>>(),
            vec![("acme", Origin::File), ("g", Origin::Store)]
        );
        assert_eq!(invalid.len(), 1);
        assert_eq!(invalid[0].0, "h");
        // An update replaces the tenant's old self instead of clashing with it.
        let merged_g = tenant_from_json(
            &json!({"id": "g", "domains": ["g.com", "g2.com"]}),
            &merged,
            Some("g"),
            &no_probe,
        )
        .unwrap();
        assert_eq!(merged_g.domains.len(), 2);
    }
}
