//! Replays the request sequences Entra ID, Okta and OneLogin document for
//! their provisioning (`tests/fixtures/scim/`, sources in its README),
//! on SQLite and PostgreSQL.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;

use crate::support::scim::*;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/scim/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn subst_str(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = s.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

fn subst(v: &Value, vars: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(subst_str(s, vars)),
        Value::Array(a) => Value::Array(a.iter().map(|i| subst(i, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (subst_str(k, vars), subst(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `want` is contained in `have`: objects by key, arrays element-wise
/// with the same length, scalars equal.
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        (h, w) => h == w,
    }
}

async fn replay(name: &str, db: Db) {
    let fx = fixture(name);
    assert!(
        fx["source"].as_str().is_some_and(|s| !s.is_empty()),
        "{name}: source"
    );
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let ct = fx["content_type"]
        .as_str()
        .unwrap_or("application/scim+json")
        .to_owned();
    let mut vars: HashMap<String, String> = HashMap::new();
    for step in fx["steps"].as_array().unwrap() {
        let label = format!("{name}: {}", step["name"].as_str().unwrap());
        let method = Method::from_bytes(step["method"].as_str().unwrap().as_bytes()).unwrap();
        let path = subst_str(step["path"].as_str().unwrap(), &vars);
        let body = step
            .get("body")
            .map(|b| serde_json::to_vec(&subst(b, &vars)).unwrap());
        let r = c
            .raw(method, &path, &[("content-type", ct.as_str())], body)
            .await;
        let status = step["status"].as_u64().unwrap() as u16;
        assert_eq!(r.status, status, "{label}: {}", r.body);
        if status != 204 {
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("application/scim+json")),
                "{label}"
            );
        }
        if let Some(want) = step.get("expect") {
            let want = subst(want, &vars);
            assert!(
                contains(&r.body, &want),
                "{label}:\n got {}\nwant {}",
                r.body,
                want
            );
        }
        for pointer in step["absent"].as_array().into_iter().flatten() {
            let p = pointer.as_str().unwrap().to_owned();
            assert!(
                r.body.pointer(&p).is_none(),
                "{label}: {p} present in {}",
                r.body
            );
        }
        if let Some(members) = step.get("expect_members") {
            let mut want: Vec<String> = subst(members, &vars)
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            want.sort();
            assert_eq!(member_ids(&r.body), want, "{label}");
        }
        for (var, pointer) in step["capture"].as_object().into_iter().flatten() {
            let v = r
                .body
                .pointer(pointer.as_str().unwrap())
                .and_then(Value::as_str)
                .unwrap();
            vars.insert(var.clone(), v.to_owned());
        }
    }
}

macro_rules! replays {
    ($($name:ident),*) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::replay(stringify!($name), super::Db::Sqlite).await; }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::replay(stringify!($name), super::Db::Postgres).await; }
        )* }
    };
}

replays!(entra, okta, onelogin);

#[test]
fn every_fixture_is_replayed_and_sourced() {
    let dir = format!("{}/tests/fixtures/scim", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, ["entra", "okta", "onelogin"]);
    let readme = std::fs::read_to_string(format!("{dir}/README.md")).unwrap();
    for n in &names {
        assert!(
            readme.contains(&format!("`{n}.json`")),
            "{n} has no source in the README"
        );
    }
}
