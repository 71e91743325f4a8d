//! Machine callers: service accounts and client-credentials tokens.
//!
//! A service account's token (`portcullis service-accounts create`, or the
//! admin API) authenticates API calls on `required` and `optional` routes:
//! the app gets the identity headers with `X-Forwarded-Principal-Type:
//! service`, the assertion says `principal_type: service`, and neither the
//! token nor a cookie ever crosses. Refusals are one generic 401 (`Bearer
//! error="invalid_token"`), the precise reason counted; ambiguous
//! credentials are a 400. Rotation overlaps, revocation reaches every
//! replica. Client-credentials JWTs are checked against the tenant's own
//! OIDC connection (`jwt` tests below, and against panva's oidc-provider
//! in `oidc::interop`).

use std::time::Duration;

use portcullis::store::{ServiceAccountKeyRow, ServiceAccountRow, Store};
use serde_json::{Value, json};

use super::directory::assertion;
use crate::support::admin::AdminApi;
use crate::support::env::*;
use crate::support::postgres::PgCluster;

/// Two tenants; `/admin` lets only group `admins` in (the env's routes).
const TENANTS: &str = r#"
[[tenants]]
id = "acme"
domains = ["acme.com"]

[[tenants]]
id = "globex"
domains = ["globex.com"]

[[routes]]
prefix = "/globex/"
policy = "required"
allowed_tenants = ["globex"]

[[routes]]
prefix = "/writers/"
policy = "required"
allowed_roles = ["writer"]
"#;

fn failures(reason: &str) -> String {
    format!("portcullis_machine_auth_failures_total{{reason=\"{reason}\"}}")
}

fn refused(reason: &str) -> String {
    format!("portcullis_requests_refused_total{{reason=\"{reason}\"}}")
}

async fn env_on(store_url: Option<String>) -> TestEnv {
    TestEnv::with(Options {
        store_url,
        extra: TENANTS.into(),
        ..Default::default()
    })
    .await
}

/// The configuration file of `env`, as the CLI would load it.
fn file_config(env: &TestEnv) -> portcullis::config::Config {
    portcullis::config::load(&env.config_path()).unwrap()
}

/// `portcullis service-accounts create`: the printed token.
async fn cli_create(env: &TestEnv, tenant: &str, name: &str, role: Option<&str>) -> String {
    let input = portcullis::admin::service_accounts::ServiceAccountInput {
        name: name.into(),
        role: role.map(str::to_owned),
        expires_days: None,
    };
    let out = portcullis::cli::service_accounts::create(&file_config(env), tenant, &input)
        .await
        .unwrap();
    let token = out.stdout.trim().to_owned();
    assert!(token.starts_with("psa_"), "{token}");
    assert!(out.stderr.contains("shown once"), "{}", out.stderr);
    token
}

/// An account written straight to the store (states the operations never
/// produce: already expired, of an unconfigured tenant); its token.
async fn insert_account(
    store: &Store,
    tenant: &str,
    name: &str,
    expires_at: Option<i64>,
) -> String {
    let new = portcullis::session::generate_token().unwrap();
    let id = portcullis::session::new_account_id().unwrap();
    let now = portcullis::clock::now();
    let mut tx = store.begin_write(tenant).await.unwrap();
    tx.service_accounts()
        .create(
            &ServiceAccountRow {
                id: id.clone(),
                tenant: tenant.into(),
                name: name.into(),
                role: None,
                created_by: "test:test".into(),
                created_at: now - 100,
                expires_at,
                revoked_at: None,
                last_used_at: None,
            },
            &ServiceAccountKeyRow {
                key_id: new.key_id,
                account_id: id,
                secret_hash: new.hash,
                created_at: now - 100,
                retires_at: None,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    new.token
}

/// What the app saw of a request to `path` with `authorization`.
async fn call(env: &TestEnv, path: &str, authorization: &str) -> (u16, Value) {
    echo(
        client()
            .get(env.url(path))
            .header("authorization", authorization),
    )
    .await
}

async fn send(env: &TestEnv, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(env.url(path))
        .header("accept", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

/// A refused bearer answer: 401, JSON, `Bearer error="invalid_token"`, and
/// nothing about why.
fn assert_generic_401(body: &str, www_authenticate: Option<&str>) {
    assert_eq!(www_authenticate, Some(r#"Bearer error="invalid_token""#));
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"], "invalid_token", "{body}");
    for word in [
        "revoked", "expired", "retired", "unknown", "secret", "tenant", "audience", "issuer",
    ] {
        assert!(!body.contains(word), "{word} leaked: {body}");
    }
}

/// Asserts that `path` with `token` is refused (a generic 401, counted
/// under `reason`, no cookie, no session, the app not reached).
async fn assert_refused(env: &TestEnv, path: &str, token: &str, reason: &str) {
    let r = env.refusal(&failures(reason)).await.named(reason);
    let resp = send(env, path, token).await;
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = r.assert(resp, 401).await;
    assert_generic_401(&body, www.as_deref());
}

/// Polls (bounded) until `path` with `token` answers `status`.
async fn eventually_status(env: &TestEnv, path: &str, token: &str, status: u16, what: &str) {
    let mut last = 0;
    for _ in 0..100 {
        last = send(env, path, token).await.status().as_u16();
        if last == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: still {last}, never {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_reaches_the_app_as_a_service_principal() {
    let env = env_on(None).await;
    let token = cli_create(&env, "acme", "billing-sync", Some("writer")).await;
    let id = env
        .shared
        .store
        .service_accounts()
        .list("acme")
        .await
        .unwrap()[0]
        .0
        .id
        .clone();

    let resp = send(&env, "/writers/report", &token).await;
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "a bearer request set a cookie"
    );
    assert_eq!(resp.status(), 200);
    let app: Value = resp.json().await.unwrap();
    assert_eq!(seen(&app, "x-forwarded-user"), Some(id.as_str()));
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));
    assert_eq!(seen(&app, "x-forwarded-roles"), Some("writer"));
    assert_eq!(seen(&app, "x-forwarded-name"), Some("billing-sync"));
    assert_eq!(seen(&app, "x-forwarded-principal-type"), Some("service"));
    assert_eq!(seen(&app, "x-forwarded-email"), Some(""));
    assert_eq!(
        seen(&app, "authorization"),
        None,
        "the token reached the app"
    );
    let claims = assertion(&app);
    assert_eq!(claims["principal_type"], "service");
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["roles"], json!(["writer"]));

    // optional routes take it too; public ones ignore it
    let (status, app) = call(&env, "/optional/x", &format!("Bearer {token}")).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-principal-type"), Some("service"));
    let (status, app) = call(&env, "/public/x", "Bearer nonsense").await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-principal-type"), None);

    // routes' groups, roles and tenants apply to machines as to people
    assert_eq!(send(&env, "/admin", &token).await.status(), 403);
    assert_eq!(send(&env, "/globex/x", &token).await.status(), 403);
    let reader = cli_create(&env, "acme", "reader", None).await;
    assert_eq!(send(&env, "/writers/report", &reader).await.status(), 403);
    // another tenant's account is of that tenant
    let globex = cli_create(&env, "globex", "billing-sync", None).await;
    let (status, app) = call(&env, "/globex/x", &format!("Bearer {globex}")).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("globex"));

    // people are `user`, and a client can't claim either
    let cookie = env.mint(&principal("alice@acme.com", &[])).await;
    let (status, app) = echo(
        client()
            .get(env.url("/dashboard"))
            .header("cookie", &cookie)
            .header("x-forwarded-principal-type", "service")
            .header("X_Forwarded_Principal_Type", "service"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-principal-type"), Some("user"));
    assert_eq!(assertion(&app)["principal_type"], "user");
    let (_, app) = echo(
        client()
            .get(env.url("/public/x"))
            .header("x-forwarded-principal-type", "service"),
    )
    .await;
    assert_eq!(seen(&app, "x-forwarded-principal-type"), None);

    // the app's own Authorization schemes pass with a session, untouched
    let (status, app) = echo(
        client()
            .get(env.url("/dashboard"))
            .header("cookie", &cookie)
            .header("authorization", "Basic dXNlcjpwYXNz"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "authorization"), Some("Basic dXNlcjpwYXNz"));

    // the CLI's change is audited with its actor
    let audit = env
        .shared
        .store
        .audit()
        .list(Some("acme"), None, 10)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "service_account.created" && a.actor_kind == "cli"),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .all(|a| !a.after_json.clone().unwrap_or_default().contains(&token))
    );
    // ...and the store has only the token's hash
    let rows = env
        .shared
        .store
        .service_accounts()
        .list("acme")
        .await
        .unwrap();
    let hash = portcullis::secret::sha256_hex(token.as_bytes());
    assert!(
        rows.iter()
            .any(|(_, keys)| keys.iter().any(|k| k.secret_hash == hash))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_are_one_generic_401_with_the_reason_counted() {
    let env = env_on(None).await;
    let store = &env.shared.store;
    let good = cli_create(&env, "acme", "sync", None).await;
    let now = portcullis::clock::now();

    let expired = insert_account(store, "acme", "old", Some(now - 1)).await;
    assert_refused(&env, "/dashboard", &expired, "expired").await;

    // a tenant that is not (or no longer) configured takes its accounts along
    let ghost = insert_account(store, "initech", "sync", None).await;
    assert_refused(&env, "/dashboard", &ghost, "tenant_unknown").await;

    // a key id nobody issued; the right key id with another secret
    let unknown = portcullis::session::generate_token().unwrap().token;
    assert_refused(&env, "/dashboard", &unknown, "unknown_key").await;
    let (prefix, _) = good.rsplit_once('_').unwrap();
    let wrong = format!("{prefix}_{}", "A".repeat(43));
    assert_refused(&env, "/dashboard", &wrong, "wrong_secret").await;
    // prefixed but not shaped like one
    assert_refused(&env, "/dashboard", "psa_123_x", "malformed").await;
    // on optional routes too: a presented credential is answered about
    assert_refused(&env, "/optional/x", &expired, "expired").await;

    // revoked through the CLI: the running server hears of it through the
    // store's events
    assert_eq!(send(&env, "/dashboard", &good).await.status(), 200);
    let out = portcullis::cli::service_accounts::revoke(&file_config(&env), "acme", "sync")
        .await
        .unwrap();
    assert!(out.stdout.contains("revoked"), "{}", out.stdout);
    eventually_status(&env, "/dashboard", &good, 401, "a revocation by the CLI").await;
    assert_refused(&env, "/dashboard", &good, "revoked").await;
    // revoking twice is "not found" (a usage error)
    assert!(
        portcullis::cli::service_accounts::revoke(&file_config(&env), "acme", "sync")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_ambiguous_credentials_are_refused() {
    let env = env_on(None).await;
    let token = cli_create(&env, "acme", "sync", None).await;
    let cookie = env.mint(&principal("alice@acme.com", &[])).await;
    let get = |headers: &[(&str, &str)]| {
        let mut req = client()
            .get(env.url("/dashboard"))
            .header("accept", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req
    };

    // `Bearer` without a token, a token that is no b64token, oversized
    for (value, reason) in [
        ("Bearer".to_owned(), "malformed"),
        ("Bearer    ".to_owned(), "malformed"),
        ("Bearer a b".to_owned(), "malformed"),
        (format!("Bearer {}", "a".repeat(9000)), "oversized"),
    ] {
        let r = env.refusal(&failures(reason)).await.named(reason);
        let resp = get(&[("authorization", &value)]).send().await.unwrap();
        let www = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.assert(resp, 401).await;
        assert_generic_401(&body, www.as_deref());
    }

    // two Authorization headers: which one counts is a guess
    let bearer = format!("Bearer {token}");
    let r = env.refusal(&refused("authorization_repeated")).await;
    let resp = get(&[("authorization", &bearer), ("authorization", &bearer)])
        .send()
        .await
        .unwrap();
    r.assert(resp, 400).await;

    // a session cookie and a token: neither counts
    let r = env.refusal(&refused("cookie_and_bearer")).await;
    let resp = get(&[("cookie", &cookie), ("authorization", &bearer)])
        .send()
        .await
        .unwrap();
    r.assert(resp, 400).await;

    // each alone still works
    assert_eq!(
        get(&[("cookie", &cookie)]).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        get(&[("authorization", &bearer)])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // a browser with a bad token gets the 401, not the login page
    let resp = client()
        .get(env.url("/dashboard"))
        .header("accept", "text/html")
        .header("authorization", "Bearer psa_0123456789abcdef_x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("location").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_overlaps_then_the_old_token_stops() {
    let env = env_on(None).await;
    let api = AdminApi::new(&env, "ops").await;
    let (status, created) = api
        .post(
            "/admin/v1/tenants/acme/service-accounts",
            &json!({"name": "sync", "role": "writer"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let old = created["token"].as_str().unwrap().to_owned();
    assert_eq!(created["account"]["status"], "active");
    assert_eq!(send(&env, "/dashboard", &old).await.status(), 200);

    // a day's overlap by default: both work
    let (status, rotated) = api
        .call(
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/service-accounts/sync/rotate",
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let keys = rotated["account"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{rotated}");
    // (keys made within one second list in key-id order)
    let retiring: Vec<i64> = keys
        .iter()
        .filter_map(|k| k["retires_at"].as_i64())
        .collect();
    assert_eq!(retiring.len(), 1, "{rotated}");
    let retires = retiring[0];
    assert!((retires - portcullis::clock::now() - 86_400).abs() < 10);
    assert_eq!(send(&env, "/dashboard", &old).await.status(), 200);
    assert_eq!(send(&env, "/dashboard", &new).await.status(), 200);

    // a rotation without overlap: the previous tokens stop at once (this
    // replica applied it before answering)
    let (status, again) = api
        .post(
            "/admin/v1/tenants/acme/service-accounts/sync/rotate",
            &json!({"overlap_seconds": 0}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    let newest = again["token"].as_str().unwrap().to_owned();
    assert_refused(&env, "/dashboard", &old, "retired").await;
    assert_refused(&env, "/dashboard", &new, "retired").await;
    assert_eq!(send(&env, "/dashboard", &newest).await.status(), 200);

    // a short overlap ends by itself
    let (_, last) = api
        .post(
            "/admin/v1/tenants/acme/service-accounts/sync/rotate",
            &json!({"overlap_seconds": 2}),
        )
        .await;
    let last = last["token"].as_str().unwrap().to_owned();
    // within the same or the next second: still in the overlap
    assert_eq!(send(&env, "/dashboard", &newest).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_refused(&env, "/dashboard", &newest, "retired").await;
    assert_eq!(send(&env, "/dashboard", &last).await.status(), 200);

    // hostile and wrong inputs
    for (body, field) in [
        (json!({"overlap_seconds": -1}), "overlap_seconds"),
        (json!({"overlap_seconds": 99_999_999}), "overlap_seconds"),
        (json!({"overlap": 1}), ""),
    ] {
        let (status, err) = api
            .post("/admin/v1/tenants/acme/service-accounts/sync/rotate", &body)
            .await;
        assert_eq!(status, 400, "{body}: {err}");
        if !field.is_empty() {
            assert_eq!(err["errors"][0]["field"], field, "{err}");
        }
    }
    for body in [
        json!({"name": ""}),
        json!({"name": "x".repeat(65)}),
        json!({"name": "a\u{7}b"}),
        json!({"name": "ok", "role": ""}),
        json!({"name": "ok", "expires_days": 0}),
        json!({"name": "ok", "expires_days": 100_000}),
        json!({"name": "ok", "admin": true}),
        json!(["name"]),
    ] {
        let (status, err) = api
            .post("/admin/v1/tenants/acme/service-accounts", &body)
            .await;
        assert_eq!(status, 400, "{body}: {err}");
    }
    let (status, _) = api
        .post(
            "/admin/v1/tenants/acme/service-accounts",
            &json!({"name": "sync"}),
        )
        .await;
    assert_eq!(status, 409, "an active name is unique in its tenant");
    let (status, _) = api
        .post(
            "/admin/v1/tenants/nope/service-accounts",
            &json!({"name": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .post(
            "/admin/v1/tenants/acme/service-accounts/nope/rotate",
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);

    // revoked through the API: at once here
    let (status, _) = api
        .delete("/admin/v1/tenants/acme/service-accounts/sync")
        .await;
    assert_eq!(status, 204);
    assert_refused(&env, "/dashboard", &last, "revoked").await;
    let (status, list) = api.get("/admin/v1/tenants/acme/service-accounts").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["status"], "revoked", "{list}");
    assert!(!list.to_string().contains("psa_"), "a token in a listing");
    // the name is free again
    let (status, _) = api
        .post(
            "/admin/v1/tenants/acme/service-accounts",
            &json!({"name": "sync"}),
        )
        .await;
    assert_eq!(status, 201);

    let (_, audit) = api.get("/admin/v1/audit?tenant=acme").await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "service_account.created",
        "service_account.rotated",
        "service_account.revoked",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    assert!(
        !audit.to_string().contains("psa_"),
        "a token in the audit log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_every_replica_on_postgres() {
    let url = PgCluster::shared().await.fresh_database().await;
    let a = env_on(Some(url.clone())).await;
    let b = env_on(Some(url)).await;
    let api = AdminApi::new(&a, "ops").await;
    let (status, created) = api
        .post(
            "/admin/v1/tenants/acme/service-accounts",
            &json!({"name": "sync"}),
        )
        .await;
    assert_eq!(status, 201);
    let token = created["token"].as_str().unwrap().to_owned();
    let (_, rotated_from) = api
        .post(
            "/admin/v1/tenants/acme/service-accounts",
            &json!({"name": "rotating"}),
        )
        .await;
    let rotating = rotated_from["token"].as_str().unwrap().to_owned();
    // both replicas have both cached before anything changes
    for env in [&a, &b] {
        for t in [&token, &rotating] {
            assert_eq!(send(env, "/dashboard", t).await.status(), 200);
        }
    }
    let (status, _) = api
        .delete("/admin/v1/tenants/acme/service-accounts/sync")
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .post(
            "/admin/v1/tenants/acme/service-accounts/rotating/rotate",
            &json!({"overlap_seconds": 0}),
        )
        .await;
    assert_eq!(status, 200);
    // at once on the replica that made the change...
    assert_eq!(send(&a, "/dashboard", &token).await.status(), 401);
    assert_eq!(send(&a, "/dashboard", &rotating).await.status(), 401);
    // ...and on the other as soon as NOTIFY arrives (well within the
    // cache TTL of 30 s, which would otherwise hide it)
    eventually_status(&b, "/dashboard", &token, 401, "a revocation on replica b").await;
    eventually_status(&b, "/dashboard", &rotating, 401, "a rotation on replica b").await;
    assert_refused(&b, "/dashboard", &token, "revoked").await;
    assert_refused(&b, "/dashboard", &rotating, "retired").await;
}

/// Forward-auth shares the gate: the host proxy gets the same answer for a
/// bearer request (200 with the identity headers, 401, 400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_gives_the_same_answers() {
    let env = TestEnv::with(Options {
        extra: format!(
            "{TENANTS}\n[forward_auth]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
             [[forward_auth.endpoints]]\nconvention = \"nginx\"\n"
        ),
        ..Default::default()
    })
    .await;
    let token = cli_create(&env, "acme", "sync", Some("writer")).await;
    let ask = |authorization: String| {
        client()
            .get(env.url("/.portcullis/auth"))
            .header("host", "app.example.com")
            .header("x-original-method", "GET")
            .header("x-original-uri", "/writers/x")
            .header("accept", "application/json")
            .header("authorization", authorization)
            .send()
    };
    let r = ask(format!("Bearer {token}")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none());
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("x-forwarded-principal-type").as_deref(), Some("service"));
    assert_eq!(h("x-forwarded-tenant").as_deref(), Some("acme"));
    assert_eq!(h("x-forwarded-roles").as_deref(), Some("writer"));
    assert!(h("x-portcullis-assertion").is_some_and(|a| !a.is_empty()));

    let r = env.refusal(&failures("unknown_key")).await;
    let other = portcullis::session::generate_token().unwrap().token;
    let resp = ask(format!("Bearer {other}")).await.unwrap();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = r.assert(resp, 401).await;
    assert_generic_401(&body, www.as_deref());
    // a session cookie and a token
    let cookie = env.mint(&principal("alice@acme.com", &[])).await;
    let resp = client()
        .get(env.url("/.portcullis/auth"))
        .header("host", "app.example.com")
        .header("x-original-method", "GET")
        .header("x-original-uri", "/x")
        .header("cookie", cookie)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    // ambiguous: nginx turns anything but 2xx/401/403 into a 500
    assert_eq!(resp.status(), 403);
}

mod jwt {
    //! Client-credentials access tokens against the controllable provider
    //! (`support::oidc_op`): every rule has a refusal that is counted under
    //! its reason. The happy path against panva's oidc-provider, which
    //! issues the token through a real `client_credentials` grant, is in
    //! `oidc::interop`.

    use serde_json::{Value, json};

    use super::{assert_refused, send};
    use crate::support::env::*;
    use crate::support::oidc_op::{Alg, CLIENT_ID, CLIENT_SECRET, TestOp};
    use crate::support::oidc_rp::{CONNECTION, Rp};

    pub(crate) const API: &str = "https://api.acme.test";

    fn oidc_extra() -> String {
        format!(
            "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             machine_audience = \"{API}\"\nmachine_role = \"service\"\nmachine_groups_claim = \"roles\"\n"
        )
    }

    fn claims(op: &TestOp) -> Value {
        let now = portcullis::clock::now();
        json!({"iss": op.issuer, "aud": API, "sub": "client-7", "client_id": "client-7",
            "iat": now, "nbf": now, "exp": now + 300, "roles": ["Engineering", "Reports"]})
    }

    fn with(op: &TestOp, k: &str, v: Value) -> Value {
        let mut c = claims(op);
        c[k] = v;
        c
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_credentials_token_of_the_tenants_provider_authenticates() {
        let op = TestOp::start().await;
        let rp = Rp::start(&op.issuer, "generic", &oidc_extra()).await;
        let token = op.sign(&claims(&op), "at+jwt");
        let resp = send(&rp.env, "/dashboard", &token).await;
        assert!(resp.headers().get("set-cookie").is_none());
        assert_eq!(resp.status(), 200);
        let app: Value = resp.json().await.unwrap();
        assert_eq!(seen(&app, "x-forwarded-user"), Some("client-7"));
        assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));
        assert_eq!(seen(&app, "x-forwarded-principal-type"), Some("service"));
        assert_eq!(
            seen(&app, "x-forwarded-groups"),
            Some("Engineering,Reports")
        );
        // the connection's role, and `group_roles` of the claim's values
        assert_eq!(seen(&app, "x-forwarded-roles"), Some("service,developer"));
        assert_eq!(seen(&app, "x-forwarded-email"), Some(""));
        assert_eq!(seen(&app, "authorization"), None);
        let a = super::assertion(&app);
        assert_eq!(a["principal_type"], "service");
        assert_eq!(a["sub"], "client-7");
        // a plain `JWT` typ is fine too
        let plain = op.sign_with(&claims(&op), &Alg::Rs256);
        assert_eq!(send(&rp.env, "/dashboard", &plain).await.status(), 200);
        // the provider rotated its key: the new kid is fetched once (not
        // sooner than `jwks_min_refresh_seconds` = 1 after the last fetch)
        op.rotate("k2");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let rotated = op.sign(&claims(&op), "at+jwt");
        assert_eq!(send(&rp.env, "/dashboard", &rotated).await.status(), 200);
        let m = rp.env.metrics().await;
        assert!(
            crate::support::refusal::sample(&m, "portcullis_machine_auth_total{kind=\"jwt\"}") >= 3,
            "{m}"
        );
        let _ = CONNECTION;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_bad_token_is_refused_with_its_reason() {
        let op = TestOp::start().await;
        let rp = Rp::start(&op.issuer, "generic", &oidc_extra()).await;
        let env = &rp.env;
        let now = portcullis::clock::now();
        let sign = |c: &Value| op.sign(c, "at+jwt");
        // expired beyond the connection's skew (120 s), not yet valid
        assert_refused(
            env,
            "/dashboard",
            &sign(&with(&op, "exp", json!(now - 200))),
            "jwt_expired",
        )
        .await;
        assert_refused(
            env,
            "/dashboard",
            &sign(&with(&op, "nbf", json!(now + 600))),
            "jwt_not_yet_valid",
        )
        .await;
        // another audience: Portcullis' own client id included
        assert_refused(
            env,
            "/dashboard",
            &sign(&with(&op, "aud", json!("https://other.test"))),
            "jwt_audience",
        )
        .await;
        assert_refused(
            env,
            "/dashboard",
            &sign(&with(&op, "aud", json!(CLIENT_ID))),
            "jwt_audience",
        )
        .await;
        // another issuer (no connection takes it)
        assert_refused(
            env,
            "/dashboard",
            &sign(&with(&op, "iss", json!("https://evil.test"))),
            "jwt_issuer",
        )
        .await;
        // signed by a key the provider does not publish
        assert_refused(
            env,
            "/dashboard",
            &op.sign_with(&claims(&op), &Alg::RogueKey),
            "jwt_signature",
        )
        .await;
        // alg none; HS256 keyed with the provider's public key
        assert_refused(
            env,
            "/dashboard",
            &op.sign_with(&claims(&op), &Alg::None),
            "jwt_algorithm",
        )
        .await;
        assert_refused(
            env,
            "/dashboard",
            &op.sign_with(&claims(&op), &Alg::Hs256WithPublicKey),
            "jwt_algorithm",
        )
        .await;
        // no subject, no expiry
        assert_refused(
            env,
            "/dashboard",
            &sign(&with(&op, "sub", json!(""))),
            "jwt_subject",
        )
        .await;
        let mut no_exp = claims(&op);
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_refused(env, "/dashboard", &sign(&no_exp), "jwt_malformed").await;
        // a payload changed after signing
        let good = sign(&claims(&op));
        let parts: Vec<&str> = good.split('.').collect();
        let forged_claims = with(&op, "roles", json!(["admins"]));
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                forged_claims.to_string()
            ),
            parts[2]
        );
        assert_refused(env, "/dashboard", &forged, "jwt_signature").await;
        // not a JWT at all
        assert_refused(env, "/dashboard", "abc.def", "jwt_malformed").await;
        assert_refused(env, "/dashboard", "opaque-token", "jwt_malformed").await;
        // the good one still works
        assert_eq!(send(env, "/dashboard", &good).await.status(), 200);
    }
}
