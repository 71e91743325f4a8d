//! The store's admin tables on both backends: tenant documents (connections
//! sealed), the configuration version and its event, audit rows, setup links.

use std::time::{Duration, Instant};

use portcullis::store::{AuditRow, SetupLinkRow, Store, StoreError, StoreEvent};
use serde_json::json;
use tokio::sync::broadcast;

use crate::support::env::{STORE_KEY, private_tempdir};
use crate::support::postgres::PgCluster;

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = super::private_tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("store.db").display());
                super::$name(&url).await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let url = super::PgCluster::shared().await.fresh_database().await;
                super::$name(&url).await;
            }
        )* }
    };
}

on_both_stores!(
    tenant_docs_round_trip_and_connections_are_sealed,
    config_version_bumps_and_reaches_another_store,
    tenant_writes_need_begin_config,
    audit_lists_newest_first,
    setup_link_redeems_once,
);

pub(crate) async fn open(url: &str) -> Store {
    let key = portcullis::config::decode_store_key(STORE_KEY).unwrap();
    Store::open_sealed(url, &[key]).await.unwrap()
}

/// Writes `doc` (with its `connections`) as a store tenant, the way the
/// admin API does: one `begin_config` transaction.
pub(crate) async fn put_tenant(store: &Store, doc: &serde_json::Value) {
    let id = doc["id"].as_str().unwrap().to_owned();
    let mut body = doc.clone();
    let connections = body
        .as_object_mut()
        .unwrap()
        .remove("connections")
        .and_then(|c| c.as_array().cloned())
        .unwrap_or_default();
    let mut tx = store.begin_config(&id).await.unwrap();
    tx.tenants().put_tenant(&id, &body).await.unwrap();
    for (i, c) in connections.iter().enumerate() {
        let cid = c["id"].as_str().unwrap();
        tx.tenants()
            .put_connection(&id, i as i64, cid, c)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

pub(crate) async fn delete_tenant(store: &Store, id: &str) {
    let mut tx = store.begin_config(id).await.unwrap();
    assert!(tx.tenants().delete_tenant(id).await.unwrap());
    tx.commit().await.unwrap();
}

async fn tenant_docs_round_trip_and_connections_are_sealed(url: &str) {
    let store = open(url).await;
    let doc = json!({"id": "globex", "name": "Globex", "domains": ["globex.com"],
        "connections": [{"id": "globex-oidc", "protocol": "oidc",
            "oidc": {"issuer": "https://idp.globex.com", "client_id": "c",
                     "client_secret": "very-secret-value"}}]});
    put_tenant(&store, &doc).await;
    let all = store.tenants().load_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].document(), doc);
    // At rest: the connection (and its secret) only as a sealed value.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let raw: String = sqlx::query_scalar("SELECT doc FROM tenant_connections")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(raw.starts_with("pcs1:"), "{raw}");
    assert!(!raw.contains("very-secret-value"));
    // Bound to its row: moved to another id, it does not open.
    sqlx::query("UPDATE tenant_connections SET id = 'other'")
        .execute(&pool)
        .await
        .unwrap();
    let err = store.tenants().load_all().await.unwrap_err();
    assert!(matches!(err, StoreError::Sealing(_)), "{err:?}");
    pool.close().await;
    store.close().await;
}

async fn wait_for(rx: &mut broadcast::Receiver<StoreEvent>, expected: &StoreEvent) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(e)) if &e == expected => return,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            other => panic!("no {expected:?}: {other:?}"),
        }
    }
}

async fn config_version_bumps_and_reaches_another_store(url: &str) {
    let a = open(url).await;
    let b = open(url).await;
    let mut local = a.subscribe();
    let mut remote = b.subscribe();
    let before = a.tenants().version().await.unwrap();
    put_tenant(&a, &json!({"id": "t1"})).await;
    assert_eq!(a.tenants().version().await.unwrap(), before + 1);
    wait_for(&mut local, &StoreEvent::TenantsChanged).await;
    wait_for(&mut remote, &StoreEvent::TenantsChanged).await;
    // A rolled-back change bumps nothing and announces nothing.
    {
        let mut tx = a.begin_config("t2").await.unwrap();
        tx.tenants()
            .put_tenant("t2", &json!({"id": "t2"}))
            .await
            .unwrap();
    }
    assert_eq!(b.tenants().version().await.unwrap(), before + 1);
    assert_eq!(b.tenants().load_all().await.unwrap().len(), 1);
    delete_tenant(&b, "t1").await;
    wait_for(&mut local, &StoreEvent::TenantsChanged).await;
    assert!(a.tenants().load_all().await.unwrap().is_empty());
    a.close().await;
    b.close().await;
}

async fn tenant_writes_need_begin_config(url: &str) {
    let store = open(url).await;
    let mut tx = store.begin_write("t").await.unwrap();
    let err = tx
        .tenants()
        .put_tenant("t", &json!({"id": "t"}))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    drop(tx);
    // Connection ids are global: another tenant can't take one.
    put_tenant(
        &store,
        &json!({"id": "a", "connections": [{"id": "shared-id", "protocol": "oidc"}]}),
    )
    .await;
    let mut tx = store.begin_config("b").await.unwrap();
    tx.tenants()
        .put_tenant("b", &json!({"id": "b"}))
        .await
        .unwrap();
    let err = tx
        .tenants()
        .put_connection("b", 0, "shared-id", &json!({"id": "shared-id"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { owner } if owner == "a"),
        "{err:?}"
    );
    drop(tx);
    store.close().await;
}

fn audit(tenant: &str, action: &str) -> AuditRow {
    AuditRow {
        id: 0,
        at_ms: 1,
        tenant: Some(tenant.into()),
        actor_kind: "cli".into(),
        actor: "ops".into(),
        action: action.into(),
        target: tenant.into(),
        before_json: None,
        after_json: Some("{}".into()),
        request_id: None,
    }
}

async fn audit_lists_newest_first(url: &str) {
    let store = open(url).await;
    for (t, a) in [("x", "one"), ("y", "two"), ("x", "three"), ("x", "four")] {
        let mut tx = store.begin_config(t).await.unwrap();
        tx.audit().record(&audit(t, a)).await.unwrap();
        tx.commit().await.unwrap();
    }
    // A rolled-back change leaves no event.
    {
        let mut tx = store.begin_config("x").await.unwrap();
        tx.audit().record(&audit("x", "rolled-back")).await.unwrap();
    }
    let actions = |rows: Vec<AuditRow>| rows.into_iter().map(|r| r.action).collect::<Vec<_>>();
    let page = store.audit().list(Some("x"), None, 2).await.unwrap();
    let next = page.last().unwrap().id;
    assert_eq!(actions(page), ["four", "three"]);
    assert_eq!(
        actions(store.audit().list(Some("x"), Some(next), 2).await.unwrap()),
        ["one"]
    );
    assert_eq!(
        actions(store.audit().list(None, None, 10).await.unwrap()),
        ["four", "three", "two", "one"]
    );
    store.close().await;
}

async fn setup_link_redeems_once(url: &str) {
    let store = open(url).await;
    let link = SetupLinkRow {
        id: "l1".into(),
        tenant: "t".into(),
        token_hash: "h".into(),
        intents: "[\"sso\"]".into(),
        created_by: "ops".into(),
        created_at: 100,
        expires_at: 200,
        used_at: None,
        revoked_at: None,
    };
    let mut tx = store.begin_config("t").await.unwrap();
    tx.setup_links().insert(&link).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.setup_links().get("l1").await.unwrap().unwrap(), link);
    let mut tx = store.begin_write("t").await.unwrap();
    assert!(
        !tx.setup_links().redeem("l1", 200).await.unwrap(),
        "expired"
    );
    assert!(tx.setup_links().redeem("l1", 150).await.unwrap());
    assert!(!tx.setup_links().redeem("l1", 151).await.unwrap(), "used");
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .setup_links()
            .get("l1")
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(150)
    );
    store.close().await;
}
