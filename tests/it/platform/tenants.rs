//! Tenants sharing one provider: each user lands in the tenant whose
//! connection started the login, and only with that tenant's domains;
//! the login page and the test sign-in treat platform connections like
//! any other.

use serde_json::json;

use crate::support::env::*;
use crate::support::platform::{PlatformEnv, Setup, user};

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

async fn google() -> PlatformEnv {
    PlatformEnv::start(Setup {
        google: true,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_on_one_provider_each_land_in_their_own_tenant() {
    let p = google().await;
    let op = p.google.as_ref().unwrap();
    // Through the login page: the email's verified domain picks the tenant,
    // and its one connection is Google.
    let (cb, alice) = p.login_by_email("alice@acme.com").await;
    assert_eq!(cb.status(), 303);
    op.set_user(user(json!({"sub": "g-bob", "email": "bob@globex.com",
        "email_verified": true, "name": "Bob Globex", "hd": "globex.com"})));
    let (cb, bob) = p.login_by_email("bob@globex.com").await;
    assert_eq!(cb.status(), 303);

    let app = p.app_sees(&alice.unwrap()).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));
    let app = p.app_sees(&bob.unwrap()).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("bob@globex.com"));
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("globex"));

    // One redirect URI for both tenants: nothing in it says whose login it is.
    let uris: Vec<String> = op.recorded(|r| {
        r.authorize
            .iter()
            .map(|a| a["redirect_uri"].clone())
            .collect()
    });
    assert_eq!(uris.len(), 2);
    assert_eq!(uris[0], uris[1]);
    assert_eq!(uris[0], p.env.url("/.portcullis/platform/google/callback"));
    let m = p.env.metrics_with("portcullis_logins_total").await;
    for (connection, tenant) in [("acme-google", "acme"), ("globex-google", "globex")] {
        let series =
            format!("portcullis_logins_total{{connection=\"{connection}\",tenant=\"{tenant}\"}} 1");
        assert!(m.contains(&series), "{series}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_platform_connection_asserting_another_tenants_domain_is_refused() {
    let p = google().await;
    let op = p.google.as_ref().unwrap();
    // A Workspace that holds both domains at Google: acme's connection
    // still admits only acme's addresses, and the reverse.
    op.set_user(user(json!({"sub": "g-x", "email": "bob@globex.com",
        "email_verified": true, "hd": "acme.com"})));
    p.refused("acme-google", "foreign_domain").await;
    op.set_user(user(json!({"sub": "g-y", "email": "alice@acme.com",
        "email_verified": true, "hd": "globex.com"})));
    p.refused("globex-google", "foreign_domain").await;
    // globex's own Workspace user through acme's connection: the flow
    // started at acme, so acme's domains are the yardstick.
    op.set_user(user(json!({"sub": "g-z", "email": "bob@globex.com",
        "email_verified": true, "hd": "globex.com"})));
    p.refused("acme-google", "hd_mismatch").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn platform_test_sign_in_shows_the_verdict() {
    let p = google().await;
    let cfg = p.env.shared.config();
    let token = portcullis::auth::TestLinks::new(&cfg.session)
        .mint("acme-google", portcullis::clock::now())
        .unwrap();
    let enc: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let start = client()
        .get(
            p.env
                .url(&format!("/.portcullis/sso/acme-google/test?token={enc}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        query(&authorize)["redirect_uri"],
        p.env.url("/.portcullis/platform/google/callback")
    );
    let flow = crate::support::idp::cookie_pair(&start, "portcullis_flow_").unwrap();
    let at = p.at_provider(&authorize, flow).await;
    let sessions_before = p.env.shared.store.sessions().keys().await.unwrap().len();
    let page = p.send(&at, Some(&at.flow_cookie)).await;
    assert_eq!(page.status(), 200);
    assert!(
        crate::support::idp::cookie_pair(&page, "portcullis_session=").is_none(),
        "a test sign-in creates no session"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Allowed"), "{html}");
    assert!(
        html.contains("acme-google") && html.contains("alice@acme.com"),
        "{html}"
    );
    assert_eq!(
        p.env.shared.store.sessions().keys().await.unwrap().len(),
        sessions_before
    );
}

/// A reload that changes a provider's section (new client, new secret)
/// ends the sessions of every connection of that provider, and only those.
#[test]
fn a_changed_provider_section_changes_its_connections() {
    let config = |google_secret: &str| {
        let text = format!(
            r#"
[[listeners]]
address = "127.0.0.1:1"
[session]
keys = ["{KEY_A}"]
[store]
encryption_key = "{STORE_KEY}"
[platform.providers.google]
client_id = "g"
client_secret = "{google_secret}"
[platform.providers.github]
client_id = "gh"
client_secret = "s"
[[tenants]]
id = "acme"
domains = ["acme.com"]
[[tenants.connections]]
id = "acme-google"
platform = "google"
[[tenants.connections]]
id = "acme-github"
platform = "github"
[[tenants]]
id = "globex"
domains = ["globex.com"]
[[tenants.connections]]
id = "globex-google"
platform = "google"
"#
        );
        portcullis::config::from_str(&text, "t.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"))
    };
    let (old, same, rotated) = (config("one"), config("one"), config("two"));
    assert!(portcullis::app::changed_connections(&old, &same).is_empty());
    assert_eq!(
        portcullis::app::changed_connections(&old, &rotated),
        ["acme-google", "globex-google"]
    );
}
