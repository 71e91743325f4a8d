//! SCIM users are the people SSO signs in: deactivation and deletion end
//! their sessions at once and refuse their logins even with JIT on; the
//! SCIM API never reaches the app; the CLI issues tokens.

use serde_json::json;

use crate::support::env::*;
use crate::support::idp::Sso;
use crate::support::scim::*;

async fn dashboard(env: &TestEnv, session: &str) -> (u16, serde_json::Value) {
    echo(
        client()
            .get(env.url("/dashboard"))
            .header("cookie", session),
    )
    .await
}

/// The IdP signs the user in again: refused through the shared check (403,
/// no session cookie or row, the app untouched, one login failure counted
/// with `reason` for the connection and tenant), and the page says so.
async fn relogin_refused(s: &Sso, reason: &str) {
    let refusal = s
        .env
        .refusal(&format!(
            "portcullis_login_failures_total{{connection=\"acme-idp\",reason=\"{reason}\",tenant=\"acme\"}}"
        ))
        .await
        .app(&s.app_saw)
        .named(reason);
    let (cb, _) = s.login("acme-idp", "%2F").await;
    let body = refusal.assert(cb, 403).await;
    assert!(
        body.contains("Your account has been deactivated."),
        "{reason}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_and_deletion_end_sessions_and_refuse_logins_even_with_jit() {
    let s = Sso::start(true).await;
    let c = ScimClient::new(&s.env, "acme").await;
    let id = c.create_user("alice@acme.com").await;

    // The SSO login finds the SCIM user: same id in the identity headers.
    s.assert_next("Alice@acme.com", Some(true), &[]);
    let (_, session) = s.login("acme-idp", "%2F").await;
    let session = session.expect("signed in");
    let (status, app) = dashboard(&s.env, &session).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-user"), Some(id.as_str()));

    // Entra disables with a capitalised op and a string boolean.
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], false);
    // The very next request is anonymous: no cache grace period.
    let (status, _) = dashboard(&s.env, &session).await;
    assert_eq!(status, 401);
    // And the IdP can't sign them in again, JIT notwithstanding.
    relogin_refused(&s, "deactivated").await;

    // Okta re-enables with a path-less replace.
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": true}}]}),
        )
        .await;
    assert_eq!(r.body["active"], true);
    let (_, session) = s.login("acme-idp", "%2F").await;
    let session = session.expect("signed in again");
    assert_eq!(dashboard(&s.env, &session).await.0, 200);

    // DELETE ends the session too, and the tombstone keeps JIT out.
    assert_eq!(c.delete(&format!("/Users/{id}")).await.status, 204);
    assert_eq!(dashboard(&s.env, &session).await.0, 401);
    // the tombstone reads as a deactivated user
    relogin_refused(&s, "deactivated").await;

    // PUT with active=false (Okta deactivation by PUT) works the same.
    let bob = c.create_user("bob@acme.com").await;
    s.assert_next("bob@acme.com", Some(true), &[]);
    let (_, session) = s.login("acme-idp", "%2F").await;
    let session = session.expect("bob signed in");
    let mut body = c.get(&format!("/Users/{bob}")).await.body;
    body["active"] = json!(false);
    assert_eq!(c.put(&format!("/Users/{bob}"), &body).await.status, 200);
    assert_eq!(dashboard(&s.env, &session).await.0, 401);
}

/// Carol signs in through SSO with JIT on: her session and user id.
async fn carol_signed_in_by_jit() -> (Sso, String, String) {
    let s = Sso::start(true).await;
    s.assert_next("carol@acme.com", Some(true), &[]);
    let (_, session) = s.login("acme-idp", "%2F").await;
    let session = session.expect("JIT sign-in");
    let (_, app) = dashboard(&s.env, &session).await;
    let jit_id = seen(&app, "x-forwarded-user").unwrap().to_owned();
    (s, session, jit_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_adopts_the_jit_user_with_the_same_email() {
    let (s, session, jit_id) = carol_signed_in_by_jit().await;

    let c = ScimClient::new(&s.env, "acme").await;
    let r = c
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "carol.s",
                    "emails": [{"value": "Carol@acme.com", "type": "work", "primary": true}],
                    "active": false}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["id"],
        jit_id.as_str(),
        "the same person, the same id"
    );
    // Arriving deactivated ended the JIT session.
    assert_eq!(dashboard(&s.env, &session).await.0, 401);
}

/// The same adoption through Bulk, between new users: the batched fast
/// path cannot adopt, so the request runs again one operation at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_adopts_the_jit_user_between_new_ones() {
    let (s, session, jit_id) = carol_signed_in_by_jit().await;

    let c = ScimClient::new(&s.env, "acme").await;
    let user = |b: &str, name: &str, email: &str, active: bool| {
        json!({"method": "POST", "path": "/Users", "bulkId": b,
               "data": {"schemas": [USER], "userName": name, "active": active,
                        "emails": [{"value": email, "type": "work", "primary": true}]}})
    };
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                    "Operations": [
                        user("a", "new.one", "new.one@acme.com", true),
                        user("c", "carol.s", "Carol@acme.com", false),
                        user("b", "new.two", "new.two@acme.com", true)]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ops = r.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["201", "201", "201"], "{}", r.body);
    assert!(
        ops[1]["location"].as_str().unwrap().ends_with(&jit_id),
        "the same person, the same id: {}",
        r.body
    );
    assert_eq!(dashboard(&s.env, &session).await.0, 401);
    let listed = c.get("/Users").await;
    assert_eq!(listed.body["totalResults"], 3, "each created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_requests_never_reach_the_app_nor_need_a_session() {
    let s = Sso::start(true).await;
    let c = ScimClient::new(&s.env, "acme").await;
    c.create_user("dan@acme.com").await;
    c.get("/Users").await;
    c.get("/NoSuchThing").await;
    c.with_token("wrong").get("/Users").await;
    // Sent raw: a client library would resolve the dot segments first.
    // SCIM's own answers count as internal; paths the SCIM router doesn't
    // claim are the app's, where an anonymous caller meets the gate.
    let (internal, required) = (
        "portcullis_requests_total{class=\"4xx\",policy=\"internal\"}",
        "portcullis_requests_total{class=\"4xx\",policy=\"required\"}",
    );
    for (path, want, series) in [
        ("/scim/v2", 401, internal),
        ("/scim/v2/", 404, internal),
        ("/scim/v2/Users?x=1", 401, internal),
        ("/scim/v2/../v2/Users", 401, internal),
        ("/scim/v2/Users/../../v2/Users", 401, internal),
        ("/x/../scim/v2/Users", 401, required),
        ("/scim/v2/%2e%2e/v2/Users", 401, internal),
        ("/scim/v2;x/Users", 401, required),
        ("/SCIM/v2/Users", 401, required),
    ] {
        let refusal = s.env.refusal(series).await.app(&s.app_saw).named(path);
        let resp = raw_request(
            s.env.proxy,
            &format!("GET {path} HTTP/1.1\r\nhost: app.example.com\r\nconnection: close\r\n\r\n"),
        )
        .await;
        refusal.assert_raw(&resp, want).await;
    }
    // A browser session is not a SCIM credential.
    s.assert_next("erin@acme.com", Some(true), &[]);
    let (_, session) = s.login("acme-idp", "%2F").await;
    let r = client()
        .get(s.env.url("/scim/v2/Users"))
        .header("cookie", session.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let saw = s.app_saw.lock().unwrap().clone();
    assert!(!saw.iter().any(|p| p.contains("/scim")), "{saw:?}");
    // Paths that merely start with the same letters are the app's.
    let r = client().get(s.env.url("/scim/v2x")).send().await.unwrap();
    assert_ne!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/scim+json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_creates_a_token_and_a_new_one_invalidates_the_old() {
    let env = env_on(Db::Sqlite, "").await;
    let create = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["scim-token", "create", "--config"])
            .arg(env.config_path())
            .args(["--tenant", "acme"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains(&format!("SCIM base URL: http://{}/scim/v2", env.proxy)),
            "{text}"
        );
        text.lines()
            .find_map(|l| l.strip_prefix("Bearer token:"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let first = create();
    let base = ScimClient::new(&env, "globex").await;
    let c1 = base.with_token(&first);
    assert_eq!(c1.get("/Users").await.status, 200);
    // Only the hash is stored.
    for file in ["store.db", "store.db-wal"] {
        let db = std::fs::read(env.config_path().with_file_name(file)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&db).contains(&first), "{file}");
    }
    let second = create();
    assert_eq!(c1.get("/Users").await.status, 401);
    assert_eq!(base.with_token(&second).get("/Users").await.status, 200);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["scim-token", "create", "--config"])
        .arg(env.config_path())
        .args(["--tenant", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}
