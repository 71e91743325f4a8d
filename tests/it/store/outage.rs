//! The README's promise for a session store outage, against a real
//! PostgreSQL server that is stopped under a running Portcullis: `503` on
//! required routes (never a silent logout), anonymous on optional ones,
//! SSO enforcement fails closed, and everything works again once the
//! server is back.

use crate::support::env::*;
use crate::support::idp::Sso;
use crate::support::postgres::PgServer;

const REJECTED: &str = "portcullis_session_rejected_total{reason=\"store_error\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_503_on_required_anonymous_on_optional_and_enforcement_fails_closed() {
    let mut pg = PgServer::start().await;
    let s = Sso::start_on(true, "", Some(pg.url("postgres"))).await;
    let c = client();
    // Minted, never used: not in the session cache, so every request
    // with it asks the store.
    let cookie = s.env.mint(&principal("alice@acme.com", &["staff"])).await;

    pg.down().await;

    // required: 503 for browsers and APIs alike, the app never asked
    for accept in ["text/html", "application/json"] {
        let refusal = s.env.refusal(REJECTED).await.app(&s.app_saw);
        let r = c
            .get(s.env.url("/dashboard"))
            .header("accept", accept)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        refusal.assert(r, 503).await;
    }
    // optional: forwarded, anonymously
    let (status, app) = echo(c.get(s.env.url("/optional/page")).header("cookie", &cookie)).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-email"), None, "{app}");
    assert_eq!(seen(&app, "x-forwarded-user"), None, "{app}");
    // SSO enforcement can't tell whether the domain enforces: the domain
    // lookup fails, and enforcement answers what the gate answers for an
    // unknown session, 503 with Retry-After (enforcing acme and
    // non-enforcing globex alike), never forwards. It runs before any route
    // is chosen, so the request counts as a 5xx of policy `none`: the only
    // count of this refusal (no reason label of its own; the log says
    // "domain lookup failed during SSO enforcement").
    let unavailable = "portcullis_requests_total{class=\"5xx\",policy=\"none\"}";
    for email in ["alice@acme.com", "bob@globex.com"] {
        // a browser's form post
        let refusal = s
            .env
            .refusal(unavailable)
            .await
            .app(&s.app_saw)
            .named(email);
        let r = c
            .post(s.env.url("/login"))
            .header("accept", "text/html")
            .form(&[("email", email), ("password", "hunter2")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"5"[..]),
            "{email}"
        );
        let html = refusal.assert(r, 503).await;
        assert!(html.contains("Temporarily unavailable"), "{email}: {html}");
        // an API client's JSON login
        let refusal = s
            .env
            .refusal(unavailable)
            .await
            .app(&s.app_saw)
            .named(email);
        let r = c
            .post(s.env.url("/api/session"))
            .json(&serde_json::json!({"user": {"email": email}, "password": "x"}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&refusal.assert(r, 503).await).unwrap();
        assert_eq!(body["error"], "unavailable", "{email}: {body}");
    }

    pg.up().await;

    // Recovery: the same cookie is a session again (bounded: the pool
    // reconnects on demand), enforcement and forwarding work again.
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..100 {
        last = echo(c.get(s.env.url("/dashboard")).header("cookie", &cookie)).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 200, "{}", last.1);
    assert_eq!(seen(&last.1, "x-forwarded-email"), Some("alice@acme.com"));
    let r = c
        .post(s.env.url("/login"))
        .header("accept", "text/html")
        .form(&[("email", "alice@acme.com"), ("password", "hunter2")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (status, _) = echo(
        c.post(s.env.url("/login"))
            .form(&[("email", "bob@globex.com"), ("password", "pw")]),
    )
    .await;
    assert_eq!(status, 200);
}
