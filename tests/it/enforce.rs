//! SSO enforcement fails closed: a password submission reaches the app only
//! when Portcullis read exactly one email and its domain is not enforced.
//! Every submission is sent as raw bytes so the path and body are exactly
//! the attack, and every refusal checks that the app never saw it.

use crate::support::env::raw_request;
use crate::support::idp::Sso;

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `METHOD target` with `content-type` and `body`.
async fn submit(
    s: &Sso,
    method: &str,
    target: &str,
    ct: Option<&str>,
    extra: &str,
    body: &str,
) -> u16 {
    let ct = ct
        .map(|c| format!("content-type: {c}\r\n"))
        .unwrap_or_default();
    let resp = raw_request(
        s.env.proxy,
        &format!(
            "{method} {target} HTTP/1.1\r\nhost: app.example.com\r\naccept: application/json\r\n{ct}{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    status(&resp)
}

fn app_count(s: &Sso) -> usize {
    s.app_saw.lock().unwrap().len()
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn multipart(email: &str) -> (String, String) {
    (
        "multipart/form-data; boundary=b0undary".into(),
        format!(
            "--b0undary\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n{email}\r\n\
             --b0undary\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--b0undary--\r\n"
        ),
    )
}

#[tokio::test]
async fn every_evasion_is_refused_before_the_app() {
    let s = Sso::start(false).await;
    let (mp_ct, mp_acme) = multipart("alice@acme.com");
    let cases: Vec<(&str, &str, Option<&str>, &str, String)> = vec![
        // the endpoint path, read like a route
        (
            "POST",
            "/LOGIN",
            Some(FORM),
            "",
            "email=alice@acme.com".into(),
        ),
        (
            "POST",
            "/login;jsessionid=1",
            Some(FORM),
            "",
            "email=alice@acme.com".into(),
        ),
        (
            "POST",
            "/login/",
            Some(FORM),
            "",
            "email=alice@acme.com".into(),
        ),
        (
            "POST",
            "/login.json",
            Some(JSON),
            "",
            r#"{"email":"alice@acme.com"}"#.into(),
        ),
        (
            "POST",
            "/x/..;/login",
            Some(FORM),
            "",
            "email=alice@acme.com".into(),
        ),
        (
            "POST",
            "//login",
            Some(FORM),
            "",
            "email=alice@acme.com".into(),
        ),
        (
            "POST",
            "/%6cogin",
            Some(FORM),
            "",
            "email=alice@acme.com".into(),
        ),
        // which email? refuse rather than guess
        (
            "POST",
            "/login",
            Some(FORM),
            "",
            "email=bob@globex.com&email=alice@acme.com".into(),
        ),
        (
            "POST",
            "/login",
            Some(FORM),
            "",
            "email=bob@globex.com&x=1;email=alice@acme.com".into(),
        ),
        (
            "POST",
            "/login",
            Some(FORM),
            "",
            "email=bob@globex.com&EMAIL=alice@acme.com".into(),
        ),
        (
            "POST",
            "/login",
            Some(FORM),
            "",
            "email[]=alice@acme.com".into(),
        ),
        (
            "POST",
            "/api/session",
            Some(JSON),
            "",
            r#"{"user":{"email":"bob@globex.com","email":"alice@acme.com"}}"#.into(),
        ),
        (
            "POST",
            "/api/session",
            Some(JSON),
            "",
            r#"{"user":{"email":"bob@globex.com","Email":"alice@acme.com"}}"#.into(),
        ),
        (
            "POST",
            "/api/session",
            Some(JSON),
            "",
            r#"{"user":{"email":["alice@acme.com"]}}"#.into(),
        ),
        // bodies Portcullis can't read
        (
            "POST",
            "/api/session",
            Some("text/plain"),
            "",
            r#"{"user":{"email":"alice@acme.com"}}"#.into(),
        ),
        (
            "POST",
            "/api/session",
            Some(JSON),
            "",
            r#"{"user":{"email":"alice@acme.com""#.into(),
        ),
        ("POST", "/login", None, "", "email=alice@acme.com".into()),
        (
            "POST",
            "/login",
            Some(FORM),
            "content-encoding: gzip\r\n",
            "email=alice@acme.com".into(),
        ),
        (
            "POST",
            "/login",
            Some("application/x-www-form-urlencoded; charset=utf-16"),
            "",
            "email=alice@acme.com".into(),
        ),
        ("POST", "/login", Some(FORM), "", "username=alice".into()),
        ("POST", "/login", Some(FORM), "", "email=alice".into()),
        (
            "POST",
            "/login",
            Some(FORM),
            "",
            "email=Alice%20%3Calice@acme.com%3E".into(),
        ),
        // credentials in the query string
        (
            "POST",
            "/login?email=alice@acme.com",
            Some(FORM),
            "",
            "email=bob@globex.com".into(),
        ),
        (
            "GET",
            "/login?email=alice@acme.com&password=x",
            None,
            "",
            String::new(),
        ),
        ("GET", "/login?PASSWORD=x", None, "", String::new()),
        // normalisation the app would apply
        (
            "POST",
            "/login",
            Some(FORM),
            "",
            "email=ALICE%40ACME.COM%20".into(),
        ),
        (
            "POST",
            "/login",
            Some(FORM),
            "",
            "email=alice%40acme.com.".into(),
        ),
        (
            "POST",
            "/login",
            Some(FORM),
            "",
            "email=alice%40%EF%BD%81cme.com".into(),
        ),
        (
            "POST",
            "/login",
            Some(FORM),
            "",
            "email=alice%40ac%C2%ADme.com".into(),
        ),
        // other methods and bodies
        (
            "PUT",
            "/login",
            Some(FORM),
            "",
            "email=alice@acme.com".into(),
        ),
        (
            "GET",
            "/login",
            Some(FORM),
            "",
            "email=alice@acme.com".into(),
        ),
        ("POST", "/login", Some(&mp_ct), "", mp_acme.clone()),
    ];
    let before = app_count(&s);
    for (method, target, ct, extra, body) in &cases {
        let st = submit(&s, method, target, *ct, extra, body).await;
        assert!(matches!(st, 303 | 403), "{method} {target} {body:?}: {st}");
        assert_eq!(
            app_count(&s),
            before,
            "{method} {target} {body:?} reached the app: {:?}",
            s.app_saw.lock().unwrap()
        );
    }
    let m = s.env.metrics_with("portcullis_login_refused_total").await;
    for reason in [
        "duplicate_email",
        "content_type",
        "unparseable",
        "content_encoding",
        "no_email",
        "not_an_email",
        "query_credentials",
    ] {
        assert!(
            m.contains(&format!(
                "portcullis_login_refused_total{{reason=\"{reason}\"}}"
            )),
            "{reason} not counted:\n{m}"
        );
    }
    assert!(
        m.contains("portcullis_sso_enforced_total{tenant=\"acme\"} 14"),
        "{m}"
    );
}

#[tokio::test]
async fn readable_unenforced_logins_reach_the_app_intact() {
    let s = Sso::start(false).await;
    let (mp_ct, mp_bob) = multipart("bob@globex.com");
    let ok: Vec<(&str, &str, Option<&str>, String)> = vec![
        (
            "POST",
            "/login",
            Some(FORM),
            "email=bob%40globex.com&password=pw".into(),
        ),
        (
            "POST",
            "/login",
            Some(FORM),
            "email=x@unknown.org&password=pw".into(),
        ),
        (
            "POST",
            "/api/session",
            Some(JSON),
            r#"{"user":{"email":"bob@globex.com"},"password":"x"}"#.into(),
        ),
        (
            "POST",
            "/api/session",
            Some("application/json; charset=utf-8"),
            r#"{"user":{"email":"bob@globex.com"}}"#.into(),
        ),
        ("POST", "/login", Some(&mp_ct), mp_bob.clone()),
        ("GET", "/login", None, String::new()),
    ];
    for (i, (method, target, ct, body)) in ok.iter().enumerate() {
        let st = submit(&s, method, target, *ct, "", body).await;
        assert_eq!(st, 200, "{method} {target} {body:?}");
        assert_eq!(app_count(&s), i + 1);
        assert_eq!(s.app_saw.lock().unwrap()[i], format!("{method} {target}"));
    }
}
