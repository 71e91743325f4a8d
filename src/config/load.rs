//! Loading: parse once for spans (so every error gets a line), interpolate
//! the environment, then deserialize section by section and array element by
//! element so one bad route doesn't hide the next one's error.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, ConfigErrors};
use super::interpolate::interpolate;
use super::schema::Config;
use super::validate::validate;

/// Maps dotted key paths (`routes[0].policy`) to 1-based lines.
pub(crate) struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    fn build(text: &str, table: &DeTable<'_>) -> Self {
        let starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let line_of = |offset: usize| starts.partition_point(|&s| s <= offset).max(1);
        let mut lines = HashMap::new();
        walk_table("", table, &line_of, &mut lines);
        Self { lines }
    }

    /// No text behind the findings (a JSON document): every line is 1.
    pub(crate) fn empty() -> Self {
        Self {
            lines: HashMap::new(),
        }
    }

    /// The line of `key`, or of its nearest ancestor present in the file.
    pub(crate) fn line(&self, key: &str) -> usize {
        let mut k = key;
        loop {
            if let Some(l) = self.lines.get(k) {
                return *l;
            }
            match k.rfind(['.', '[']) {
                Some(i) => k = &k[..i],
                None => return 1,
            }
        }
    }
}

fn walk_table(
    prefix: &str,
    table: &DeTable<'_>,
    line_of: &dyn Fn(usize) -> usize,
    out: &mut HashMap<String, usize>,
) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        out.insert(path.clone(), line_of(k.span().start));
        walk_value(&path, v.get_ref(), line_of, out);
    }
}

fn walk_value(
    path: &str,
    value: &DeValue<'_>,
    line_of: &dyn Fn(usize) -> usize,
    out: &mut HashMap<String, usize>,
) {
    match value {
        DeValue::Table(t) => walk_table(path, t, line_of, out),
        DeValue::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                out.insert(p.clone(), line_of(e.span().start));
                walk_value(&p, e.get_ref(), line_of, out);
            }
        }
        _ => {}
    }
}

/// Collects errors against one file.
pub(crate) struct Collector<'a> {
    file: &'a str,
    index: &'a LineIndex,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(file: &'a str, index: &'a LineIndex) -> Self {
        Self {
            file,
            index,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let e = self.finding(key.into(), message.into());
        self.errors.push(e);
    }

    /// A finding that doesn't stop the file from loading.
    pub(crate) fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let e = self.finding(key.into(), message.into());
        self.warnings.push(e);
    }

    fn finding(&self, key: String, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: self.index.line(&key),
            key,
            message,
        }
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_probed(path, &super::json::no_probe)
}

/// [`load`], then the deep checks of `probe` (metadata parsing, keys) on
/// every tenant of a file that validated: what `portcullis check` runs.
pub fn load_probed(path: &Path, probe: super::json::Probe<'_>) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 1,
            key: String::new(),
            message: format!("cannot read file: {e}"),
        }])
    })?;
    from_str_probed(&text, &file, &|name| std::env::var(name).ok(), probe)
}

/// Parses configuration text; `file` labels errors and `env` resolves
/// `${NAME}` (injected so tests need not mutate the process environment).
pub fn from_str(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    from_str_probed(text, file, env, &super::json::no_probe)
}

/// [`from_str`] with the deep checks of `probe` (see [`load_probed`]).
pub fn from_str_probed(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    probe: super::json::Probe<'_>,
) -> Result<Config, ConfigErrors> {
    let spanned = DeTable::parse(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(1);
        ConfigErrors(vec![ConfigError {
            file: file.to_owned(),
            line,
            key: String::new(),
            message: format!("invalid TOML: {}", e.message()),
        }])
    })?;
    let index = LineIndex::build(text, spanned.get_ref());
    let mut c = Collector {
        file,
        index: &index,
        errors: Vec::new(),
        warnings: Vec::new(),
    };

    let mut root: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            c.push("", format!("invalid TOML: {}", e.message()));
            return Err(ConfigErrors(c.errors));
        }
    };
    for (k, v) in root.iter_mut() {
        interpolate_value(k, v, env, &mut c);
    }

    let mut cfg = Config::default();
    for key in root.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            c.push(
                key.clone(),
                format!("unknown section, expected one of {}", SECTIONS.join(", ")),
            );
        }
    }
    cfg.server = section(&root, "server", &mut c);
    cfg.listeners = array(&root, "listeners", &mut c);
    cfg.admin = section(&root, "admin", &mut c);
    cfg.upstream = section(&root, "upstream", &mut c);
    cfg.upstreams = array(&root, "upstreams", &mut c);
    // Only here can one tell that `[upstream]` was written at all.
    if root.contains_key("upstream") && root.contains_key("upstreams") {
        c.push(
            "upstreams",
            "use either `[upstream]` (one app) or `[[upstreams]]` (several), not both",
        );
    }
    cfg.routes = array(&root, "routes", &mut c);
    cfg.session = section(&root, "session", &mut c);
    cfg.headers = section(&root, "headers", &mut c);
    cfg.store = section(&root, "store", &mut c);
    cfg.log = section(&root, "log", &mut c);
    cfg.dns = section(&root, "dns", &mut c);
    cfg.login = section(&root, "login", &mut c);
    cfg.tenants = array(&root, "tenants", &mut c);
    cfg.platform = section(&root, "platform", &mut c);
    cfg.dev_idp = section(&root, "dev_idp", &mut c);
    cfg.webhook = section(&root, "webhook", &mut c);
    cfg.scim = section(&root, "scim", &mut c);
    cfg.limits = section(&root, "limits", &mut c);
    cfg.forward_auth = section(&root, "forward_auth", &mut c);
    cfg.egress = section(&root, "egress", &mut c);

    // Validate even when some sections failed to decode, so the operator
    // sees everything at once; but drop findings about a failed section,
    // which was replaced by defaults and would produce noise.
    let failed: Vec<String> = c
        .errors
        .iter()
        .map(|e| top_section(&e.key).to_owned())
        .collect();
    let decoded = c.errors.len();
    validate(&cfg, &mut c);
    let mut i = 0;
    c.errors.retain(|e| {
        i += 1;
        i <= decoded || !failed.iter().any(|f| f == top_section(&e.key))
    });
    if c.errors.is_empty() {
        for (i, t) in cfg.tenants.iter().enumerate() {
            probe(t, &mut |key, message| {
                c.push(format!("tenants[{i}].{key}"), message)
            });
        }
    }
    if c.errors.is_empty() {
        c.warnings.sort_by_key(|e| e.line);
        cfg.warnings = c.warnings;
        Ok(cfg)
    } else {
        c.errors.sort_by_key(|e| e.line);
        Err(ConfigErrors(c.errors))
    }
}

fn top_section(key: &str) -> &str {
    key.split(['.', '[']).next().unwrap_or(key)
}

const SECTIONS: &[&str] = &[
    "server",
    "listeners",
    "admin",
    "upstream",
    "upstreams",
    "routes",
    "session",
    "headers",
    "store",
    "log",
    "dns",
    "login",
    "tenants",
    "platform",
    "dev_idp",
    "webhook",
    "scim",
    "limits",
    "forward_auth",
    "egress",
];

fn interpolate_value(
    path: &str,
    v: &mut toml::Value,
    env: &dyn Fn(&str) -> Option<String>,
    c: &mut Collector<'_>,
) {
    match v {
        toml::Value::String(s) => match interpolate(s, env) {
            Ok(new) => *s = new,
            Err(e) => c.push(path, e.to_string()),
        },
        toml::Value::Array(a) => {
            for (i, e) in a.iter_mut().enumerate() {
                interpolate_value(&format!("{path}[{i}]"), e, env, c);
            }
        }
        toml::Value::Table(t) => {
            for (k, e) in t.iter_mut() {
                interpolate_value(&format!("{path}.{k}"), e, env, c);
            }
        }
        _ => {}
    }
}

fn section<T: DeserializeOwned + Default>(
    root: &toml::Table,
    key: &str,
    c: &mut Collector<'_>,
) -> T {
    match root.get(key) {
        None => T::default(),
        Some(toml::Value::Table(_)) => decode(root.get(key).cloned(), key, c).unwrap_or_default(),
        Some(_) => {
            c.push(key, "expected a table, e.g. `[".to_owned() + key + "]`");
            T::default()
        }
    }
}

fn array<T: DeserializeOwned>(root: &toml::Table, key: &str, c: &mut Collector<'_>) -> Vec<T> {
    match root.get(key) {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| decode(Some(item.clone()), &format!("{key}[{i}]"), c))
            .collect(),
        Some(_) => {
            c.push(
                key,
                "expected an array of tables, e.g. `[[".to_owned() + key + "]]`",
            );
            Vec::new()
        }
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    value: Option<toml::Value>,
    base: &str,
    c: &mut Collector<'_>,
) -> Option<T> {
    let value = value?;
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => Some(t),
        Err(e) => {
            // Keep serde's first line; toml appends a redundant "in `key`".
            let inner = e
                .inner()
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let mut key = base.to_owned();
            let sub = e.path().to_string();
            if sub != "." {
                if !sub.starts_with('[') {
                    key.push('.');
                }
                key.push_str(&sub);
            }
            // serde names the offending field only in the message; fold it
            // into the key so the operator sees `routes[0].polcy`.
            if (inner.starts_with("unknown field") || inner.starts_with("missing field"))
                && let Some(field) = inner.split('`').nth(1)
                && !key.ends_with(&format!(".{field}"))
            {
                key = format!("{key}.{field}");
            }
            c.push(key, inner.trim().to_owned());
            None
        }
    }
}
