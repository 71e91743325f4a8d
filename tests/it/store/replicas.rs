//! Several replicas sharing PostgreSQL: sessions, the assertion key and
//! revocations agree across them.

use std::time::Duration;

use crate::support::env::*;
use crate::support::postgres::PgCluster;
use portcullis::store::SessionSelector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_sessions_keys_and_revocations() {
    let url = PgCluster::shared().await.fresh_database().await;
    let a = TestEnv::with(Options {
        store_url: Some(url.clone()),
        ..Default::default()
    })
    .await;
    let b = TestEnv::with(Options {
        store_url: Some(url),
        ..Default::default()
    })
    .await;

    // both replicas adopted the same generated signing key
    assert_eq!(
        a.shared.generation().signer.kid(),
        b.shared.generation().signer.kid()
    );

    let cookie = a.mint(&principal("lee@example.com", &["eng"])).await;
    let api = |env: &TestEnv| {
        client()
            .get(env.url("/api"))
            .header("accept", "application/json")
            .header("cookie", cookie.clone())
    };
    assert_eq!(api(&a).send().await.unwrap().status(), 200);
    // b fills its cache with the session
    let (status, app) = echo(api(&b)).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-email"), Some("lee@example.com"));

    // revoked on a → b stops honouring it (LISTEN/NOTIFY), bounded wait
    a.shared
        .sessions
        .revoke(&SessionSelector::User("user-lee".into()))
        .await
        .unwrap();
    assert_eq!(api(&a).send().await.unwrap().status(), 401);
    let mut status = 0;
    for _ in 0..50 {
        status = api(&b).send().await.unwrap().status().as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401, "revocation did not reach the other replica");
}
