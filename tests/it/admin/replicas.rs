//! Replicas sharing PostgreSQL: a tenant made through the admin API of one
//! logs users in on the other, without a reload; deleting its connection
//! there stops logins here.

use std::time::Duration;

use serde_json::json;

use crate::support::admin::AdminApi;
use crate::support::dns::DnsServer;
use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::oidc_op::{CLIENT_ID, CLIENT_SECRET, TestOp};
use crate::support::postgres::PgCluster;

/// The SSO start of `connection` on `env`: 302 to the provider once the
/// connection is served there.
async fn start(env: &TestEnv, connection: &str) -> reqwest::Response {
    client()
        .get(env.url(&format!(
            "/.portcullis/sso/{connection}/start?return_to=/dashboard&login_hint=alice@acme.com"
        )))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_created_on_one_replica_logs_users_in_on_another() {
    let url = PgCluster::shared().await.fresh_database().await;
    let dns = DnsServer::start().await;
    let op = TestOp::start().await;
    let opts = || Options {
        store_url: Some(url.clone()),
        extra: format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr()),
        admin_extra: "allow_loopback_idp_urls = true".into(),
        factories: portcullis::auth::Factories::builtin(),
        ..Default::default()
    };
    let a = TestEnv::with(opts()).await;
    let b = TestEnv::with(opts()).await;
    let api = AdminApi::new(&a, "ops").await;

    // On A only: tenant, domain (published and verified), OIDC connection.
    let (status, body) = api
        .post(
            "/admin/v1/tenants",
            &json!({"id": "acme", "jit": {"enabled": true}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, d) = api
        .post(
            "/admin/v1/tenants/acme/domains",
            &json!({"domain": "acme.com"}),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    dns.set_txt(
        d["record_name"].as_str().unwrap(),
        d["record_value"].as_str().unwrap(),
    );
    let (_, v) = api
        .post("/admin/v1/tenants/acme/domains/acme.com/verify", &json!({}))
        .await;
    assert_eq!(v["status"], "verified", "{v}");
    let (status, c) = api
        .post(
            "/admin/v1/tenants/acme/connections",
            &json!({"id": "acme-oidc", "protocol": "oidc",
                "oidc": {"issuer": op.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}}),
        )
        .await;
    assert_eq!(status, 201, "{c}");

    // On B, without a reload: the connection starts flows within seconds.
    let mut started = None;
    for _ in 0..100 {
        let resp = start(&b, "acme-oidc").await;
        if resp.status() == 302 {
            started = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = started.expect("B never served the connection made on A");
    let authorize = started.headers()["location"].to_str().unwrap().to_owned();
    let flow = cookie_pair(&started, "portcullis_flow_").expect("flow cookie");
    let at_op = client().get(&authorize).send().await.unwrap();
    let callback = at_op.headers()["location"].to_str().unwrap().to_owned();
    let cb = client()
        .get(&callback)
        .header("cookie", &flow)
        .send()
        .await
        .unwrap();
    assert_eq!(cb.status(), 303, "{}", cb.text().await.unwrap());
    let session = cookie_pair(&cb, "portcullis_session=").expect("session cookie");
    let (status, app) = echo(
        client()
            .get(b.url("/api"))
            .header("accept", "application/json")
            .header("cookie", &session),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));

    // Deleted on A: B stops starting logins with it, and its sessions end.
    let (status, _) = api
        .delete("/admin/v1/tenants/acme/connections/acme-oidc")
        .await;
    assert_eq!(status, 204);
    let mut last = 0;
    for _ in 0..100 {
        last = start(&b, "acme-oidc").await.status().as_u16();
        if last != 302 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(last, 302, "B still starts logins with a deleted connection");
    let mut status = 0;
    for _ in 0..50 {
        status = client()
            .get(b.url("/api"))
            .header("accept", "application/json")
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401);
}
