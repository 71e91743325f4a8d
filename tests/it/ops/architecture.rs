//! The module map in `docs/architecture.md` is a rule, not a picture: each
//! top-level module of `src/` may import only the modules its row lists,
//! and only `app` and `proxy` may name pingora. This test reads the sources
//! (comments stripped) and fails on any arrow the table does not allow, so
//! a new dependency is a deliberate edit here and in the document, never an
//! accident of a convenient `use`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `module → the crate modules it may import`. Modules not listed here
/// fail the test: every top-level module has a row.
const ALLOWED: &[(&str, &[&str])] = &[
    // wiring and entry points
    ("main", &["cli"]),
    ("lib", &[]),
    ("cli", &["*"]),
    ("app", &["*"]),
    (
        "admin",
        &[
            "auth", "clock", "config", "domains", "metrics", "scim", "secret", "session", "store",
        ],
    ),
    (
        "demo",
        &[
            "app", "clock", "config", "events", "logging", "secret", "webhook",
        ],
    ),
    // the request path
    (
        "proxy",
        &[
            "auth",
            "clock",
            "config",
            "endpoints",
            "generation",
            "identity",
            "metrics",
            "names",
            "redirect",
            "secret",
            "session",
        ],
    ),
    (
        "endpoints",
        &[
            "auth",
            "clock",
            "config",
            "generation",
            "identity",
            "metrics",
            "names",
            "redirect",
            "session",
        ],
    ),
    // one configuration generation, shared by the two above
    (
        "generation",
        &["auth", "config", "identity", "metrics", "session"],
    ),
    // capabilities
    (
        "auth",
        &[
            "clock", "config", "domains", "events", "identity", "metrics", "names", "redirect",
            "secret", "session", "store",
        ],
    ),
    (
        "scim",
        &[
            "auth", "clock", "config", "events", "metrics", "names", "secret", "session", "store",
        ],
    ),
    (
        "webhook",
        &["clock", "config", "metrics", "secret", "store"],
    ),
    ("domains", &["clock", "config", "names", "secret", "store"]),
    (
        "session",
        &["clock", "config", "identity", "metrics", "secret", "store"],
    ),
    ("identity", &["config", "names", "secret"]),
    // foundations
    ("store", &["events"]),
    ("config", &["names", "redirect"]),
    ("events", &[]),
    ("names", &[]),
    ("redirect", &[]),
    ("clock", &[]),
    ("secret", &[]),
    ("metrics", &[]),
    ("logging", &["config"]),
];

/// Modules that may name pingora (the engine stays behind the proxy).
const PINGORA: &[&str] = &["app", "proxy"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/proxy/gate.rs` → `proxy`,
/// `src/app.rs` → `app`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The source without `//` comments (doc comments name modules freely)
/// and without string literals' contents (messages and test fixtures).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_str && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
                out.push(c);
            } else if !in_str {
                out.push(c);
            }
            prev = if prev == '\\' && c == '\\' { '\0' } else { c };
        }
        out.push('\n');
    }
    out
}

/// Crate modules named by `crate::x` paths, including grouped imports
/// (`use crate::{a, b::c}`).
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // the first identifier of each top-level item of the group
            let mut depth = 0;
            let mut name = String::new();
            let mut first = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => first = true,
                    c if depth == 0 && first && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if depth == 0 && first && !name.is_empty() => {
                        refs.insert(std::mem::take(&mut name));
                        first = false;
                    }
                    _ => {}
                }
                if c == ',' && depth == 0 && !name.is_empty() {
                    refs.insert(std::mem::take(&mut name));
                }
            }
            if !name.is_empty() {
                refs.insert(name);
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                refs.insert(name);
            }
        }
        rest = after;
    }
    refs.remove("");
    refs
}

/// Only names of this crate's top-level modules count (`crate::Config`
/// re-exports and the like are the lib's surface, not a module arrow).
fn top_level_only(refs: BTreeSet<String>, known: &BTreeSet<&str>) -> BTreeSet<String> {
    refs.into_iter()
        .filter(|r| known.contains(r.as_str()))
        .collect()
}

#[test]
fn imports_follow_the_module_map() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let known: BTreeSet<&str> = allowed.keys().copied().collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(file);
        let Some(may) = allowed.get(module.as_str()) else {
            violations.push(format!(
                "{}: module `{module}` has no row in ALLOWED",
                file.display()
            ));
            continue;
        };
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let refs = top_level_only(crate_refs(&code), &known);
        for r in refs {
            if r != module && !may.contains(&"*") && !may.contains(&r.as_str()) {
                violations.push(format!("{}: `{module}` imports `{r}`", file.display()));
            }
        }
        if code.contains("pingora") && !PINGORA.contains(&module.as_str()) {
            violations.push(format!("{}: `{module}` names pingora", file.display()));
        }
    }
    assert!(
        violations.is_empty(),
        "imports outside docs/architecture.md's module map (edit both the map and \
         ALLOWED in tests/it/ops/architecture.rs if the arrow is deliberate):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths() {
    let code = code_only(
        "use crate::{alpha::X, beta, gamma::{d, e}};\n\
         // use crate::hidden;\n\
         let s = \"crate::in_string\";\n\
         fn f() { crate::delta::g(); }\n",
    );
    let refs = crate_refs(&code);
    for m in ["alpha", "beta", "gamma", "delta"] {
        assert!(refs.contains(m), "{m} missing from {refs:?}");
    }
    assert!(!refs.contains("hidden"), "{refs:?}");
    assert!(!refs.contains("in_string"), "{refs:?}");
    assert!(!refs.contains("d") && !refs.contains("X"), "{refs:?}");
}
