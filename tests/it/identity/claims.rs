//! Claim and attribute mapping: `[[headers.extra]]` headers and
//! `[headers] assertion_claims`, from a real OIDC provider (panva's
//! oidc-provider) and a real SAML IdP (pysaml2) with a per-connection
//! override; values sanitised and joined; clients can't send them; what a
//! session keeps survives a cache miss on another process.

use portcullis::identity::Principal;
use serde_json::{Value, json};

use super::directory::assertion;
use crate::oidc::interop::{CLIENT_ID, CLIENT_SECRET, Jar, ONE_OP, login, start_pair};
use crate::saml::interop::{OPEN, STRICT, interop_with};
use crate::support::env::*;
use crate::support::idp::cookie_pair;

/// Two extra headers (one value; a joined list) and two claims copied
/// into the assertion, as top-level TOML.
const MAPPING: &str = r#"
[headers]
assertion_claims = ["department", "badges"]
[[headers.extra]]
name = "X-Forwarded-Department"
claim = "department"
[[headers.extra]]
name = "X-Badges"
claim = "badges"
join = ", "
"#;

/// `/dashboard` with `cookie` and forged copies of the extra headers.
async fn dashboard(env: &TestEnv, cookie: &str) -> Value {
    let (status, app) = echo(
        client()
            .get(env.url("/dashboard"))
            .header("cookie", cookie)
            .header("X_Forwarded_Department", "forged")
            .header("x-badges", "forged"),
    )
    .await;
    assert_eq!(status, 200, "{app}");
    app
}

/// Every value the app received for `name` (one header, never a forged
/// second one).
fn all<'a>(app: &'a Value, name: &str) -> Vec<&'a str> {
    app["headers"][name]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_claims_reach_headers_and_assertion() {
    let _one = ONE_OP.lock().await;
    // `org` is a scope of its own at the provider: department,
    // employee_id (a number) and badges (a list with a comma inside).
    let (rp, op) = start_pair(
        &format!(
            "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             scopes = [\"openid\", \"email\", \"profile\", \"groups\", \"org\"]\n\
             [tenants.connections.header_claims]\n\"X-Employee\" = \"employee_id\"\n\
             {MAPPING}\n[[headers.extra]]\nname = \"X-Employee\"\nclaim = \"employee\"\n"
        ),
        None,
    )
    .await;
    let session = login(&rp, &op, &mut Jar::default()).await;
    let app = dashboard(&rp.env, &session).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    assert_eq!(all(&app, "x-forwarded-department"), ["R&D"]);
    // each item's separator characters encoded, so two stay two
    assert_eq!(all(&app, "x-badges"), ["first-aid, fire%2C%20safety"]);
    // the connection reads `X-Employee` from `employee_id`; numbers as text
    assert_eq!(all(&app, "x-employee"), ["4711"]);
    let claims = assertion(&app);
    assert_eq!(claims["department"], "R&D");
    assert_eq!(claims["badges"], json!(["first-aid", "fire, safety"]));
    assert!(claims.get("employee_id").is_none(), "{claims}");
    // the provider's other claims are not kept
    assert!(claims.get("email_verified").is_none(), "{claims}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_attributes_with_a_per_connection_override() {
    // The open connection reads the department header from `division`;
    // the strict one from `department`, the default.
    let extra = format!(
        "\n[tenants.connections.header_claims]\n\"x-forwarded-department\" = \"division\"\n{MAPPING}"
    );
    let i = interop_with(&extra, None, &[]).await;
    for (conn, department) in [(OPEN, "Research"), (STRICT, "R&D")] {
        let r = i.sp_initiated(conn, "alice", false).await;
        assert_eq!(r.status(), 303, "{conn}: {}", r.text().await.unwrap());
        let session = cookie_pair(&r, "portcullis_session=").expect("session");
        let app = dashboard(&i.s.env, &session).await;
        assert_eq!(all(&app, "x-forwarded-department"), [department], "{conn}");
        assert_eq!(all(&app, "x-badges"), ["first-aid, fire%2C%20safety"]);
        let claims = assertion(&app);
        assert_eq!(claims["department"], department, "{conn}");
        assert_eq!(claims["badges"], json!(["first-aid", "fire, safety"]));
    }
    // bob has none of these attributes: no header, no claim
    let r = i.sp_initiated(STRICT, "bob", false).await;
    let session = cookie_pair(&r, "portcullis_session=").expect("session");
    let app = dashboard(&i.s.env, &session).await;
    assert!(all(&app, "x-forwarded-department").is_empty(), "{app}");
    assert!(all(&app, "x-badges").is_empty(), "{app}");
    assert!(assertion(&app).get("department").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_send_extra_headers_and_claims_outlive_the_cache() {
    let dir = private_tempdir().unwrap();
    let store = format!("sqlite://{}/store.db", dir.path().display());
    let on = |store: String| {
        TestEnv::with(Options {
            store_url: Some(store),
            extra: MAPPING.into(),
            ..Default::default()
        })
    };
    let a = on(store.clone()).await;
    let p = Principal {
        claims: [
            (
                "department".to_owned(),
                vec!["Sales\r\nX-Evil: 1".to_owned()],
            ),
            ("badges".to_owned(), vec!["a".to_owned(), "b".to_owned()]),
        ]
        .into(),
        ..principal("alice@example.com", &[])
    };
    let cookie = a.mint(&p).await;

    // Another process on the same file: its cache is empty, so what it
    // sends comes from the session row.
    let b = on(store).await;
    for env in [&a, &b] {
        let app = dashboard(env, &cookie).await;
        assert_eq!(all(&app, "x-forwarded-department"), ["SalesX-Evil: 1"]);
        assert!(app["headers"]["x-evil"].is_null(), "{app}");
        assert_eq!(all(&app, "x-badges"), ["a, b"]);
        assert!(app["headers"]["x_forwarded_department"].is_null(), "{app}");
        assert_eq!(assertion(&app)["badges"], json!(["a", "b"]));
    }

    // No session, or a public route: a client's copies, in any spelling,
    // never reach the app.
    for path in ["/public/page", "/optional/page"] {
        let (status, app) = echo(
            client()
                .get(a.url(path))
                .header("X_Forwarded_Department", "forged")
                .header("X.Badges", "forged")
                .header("x-badges", "forged"),
        )
        .await;
        assert_eq!(status, 200, "{path}: {app}");
        let names: Vec<&String> = app["headers"].as_object().unwrap().keys().collect();
        assert!(
            !names
                .iter()
                .any(|n| n.contains("department") || n.contains("badges")),
            "{path}: {names:?}"
        );
    }
}
