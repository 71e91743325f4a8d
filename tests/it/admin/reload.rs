//! Tenants kept in the store live beside the file's: they survive a
//! restart, a file reload that claims what they hold wins over them, and a
//! change on one server reaches the others without a reload.

use std::time::Duration;

use portcullis::config::Origin;
use serde_json::json;

use super::store::{delete_tenant, put_tenant};
use crate::support::env::*;
use crate::support::postgres::PgCluster;

const ACME: &str = r#"
[[tenants]]
id = "acme"
domains = ["acme.com"]
"#;

/// `(id, origin)` of every tenant `env` serves, in order.
fn served(env: &TestEnv) -> Vec<(String, Origin)> {
    env.shared
        .config()
        .tenants
        .iter()
        .map(|t| (t.id.clone(), t.origin))
        .collect()
}

/// Waits (bounded) until `env` serves exactly `want`.
async fn until_served(env: &TestEnv, want: &[(&str, Origin)]) {
    let want: Vec<(String, Origin)> = want.iter().map(|(i, o)| ((*i).to_owned(), *o)).collect();
    for _ in 0..200 {
        if served(env) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served(env), want, "not applied within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_tenants_survive_a_restart_after_the_files() {
    let dir = private_tempdir().unwrap();
    let url = format!("sqlite://{}/store.db", dir.path().display());
    let env = TestEnv::with(Options {
        store_url: Some(url.clone()),
        extra: ACME.into(),
        ..Default::default()
    })
    .await;
    put_tenant(
        &env.shared.store,
        &json!({"id": "globex", "domains": ["globex.com"], "admin_roles": ["it"]}),
    )
    .await;
    // The server's own watcher applies the change 100 ms after the store's
    // event, so on a slow machine it may have done so before this call:
    // whichever applies it, once it is applied nothing is left to apply.
    env.shared.rebuild_from_store().await.unwrap();
    assert!(
        !env.shared.rebuild_from_store().await.unwrap(),
        "nothing new"
    );
    assert_eq!(
        served(&env),
        [
            ("acme".into(), Origin::File),
            ("globex".into(), Origin::Store)
        ]
    );
    let generation = env.shared.generation();
    let globex = generation.auth.tenant("globex").unwrap();
    assert_eq!(globex.admin_roles, ["it"]);
    drop(env);

    let again = TestEnv::with(Options {
        store_url: Some(url),
        extra: ACME.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        served(&again),
        [
            ("acme".into(), Origin::File),
            ("globex".into(), Origin::Store)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_claiming_a_store_tenants_domain_wins_and_reports_it() {
    let env = TestEnv::with(Options {
        extra: ACME.into(),
        ..Default::default()
    })
    .await;
    put_tenant(
        &env.shared.store,
        &json!({"id": "globex", "domains": ["globex.com"]}),
    )
    .await;
    env.shared.rebuild_from_store().await.unwrap();
    assert!(env.shared.invalid_store_tenants().is_empty());

    // The file now gives globex.com to another tenant: the file wins, the
    // store tenant is left out (and said so), the server keeps serving.
    let text = format!(
        "{}\n[[tenants]]\nid = \"initech\"\ndomains = [\"globex.com\"]\n",
        env.config_text
    );
    std::fs::write(env.config_path(), text).unwrap();
    env.shared.reload().await.unwrap();
    assert_eq!(
        served(&env),
        [
            ("acme".into(), Origin::File),
            ("initech".into(), Origin::File)
        ]
    );
    let invalid = env.shared.invalid_store_tenants();
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].0, "globex");
    assert_eq!(invalid[0].1[0].field, "domains[0]");
    assert_eq!(
        invalid[0].1[0].message,
        "`globex.com` is already claimed by tenant `initech`; a domain belongs to one tenant"
    );
    env.metrics_with("portcullis_store_tenants_invalid 1").await;

    // Back to the old file: the store tenant is served again.
    std::fs::write(env.config_path(), &env.config_text).unwrap();
    env.shared.reload().await.unwrap();
    assert_eq!(
        served(&env),
        [
            ("acme".into(), Origin::File),
            ("globex".into(), Origin::Store)
        ]
    );
    env.metrics_with("portcullis_store_tenants_invalid 0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_store_tenant_does_not_stop_startup() {
    let dir = private_tempdir().unwrap();
    let url = format!("sqlite://{}/store.db", dir.path().display());
    {
        let store = super::store::open(&url).await;
        put_tenant(&store, &json!({"id": "acme", "domains": ["acme.com"]})).await;
        put_tenant(&store, &json!({"id": "fine"})).await;
        store.close().await;
    }
    // The file has its own `acme`: the store's is refused, the rest served.
    let env = TestEnv::with(Options {
        store_url: Some(url),
        extra: ACME.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        served(&env),
        [
            ("acme".into(), Origin::File),
            ("fine".into(), Origin::Store)
        ]
    );
    let invalid = env.shared.invalid_store_tenants();
    assert_eq!(invalid[0].0, "acme");
    let findings: Vec<(&str, &str)> = invalid[0]
        .1
        .iter()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        findings,
        [
            (
                "domains[0]",
                "`acme.com` is already claimed by tenant `acme`; a domain belongs to one tenant"
            ),
            ("id", "duplicate tenant id `acme`"),
        ]
    );
}

/// Two servers on one store: a tenant written through one's store reaches
/// the other without a reload, and so does its deletion.
async fn changes_reach_another_server(url: String) {
    let opts = || Options {
        store_url: Some(url.clone()),
        extra: ACME.into(),
        ..Default::default()
    };
    let a = TestEnv::with(opts()).await;
    let b = TestEnv::with(opts()).await;
    put_tenant(&a.shared.store, &json!({"id": "globex"})).await;
    let both = [("acme", Origin::File), ("globex", Origin::Store)];
    until_served(&a, &both).await;
    until_served(&b, &both).await;
    delete_tenant(&b.shared.store, "globex").await;
    until_served(&a, &[("acme", Origin::File)]).await;
    until_served(&b, &[("acme", Origin::File)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_sqlite_file_converge() {
    let dir = private_tempdir().unwrap();
    changes_reach_another_server(format!("sqlite://{}/store.db", dir.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_postgres_converge() {
    changes_reach_another_server(PgCluster::shared().await.fresh_database().await).await;
}
