//! SSO enforcement fails closed: a password submission reaches the app only
//! when Portcullis read exactly one email and its domain is not enforced.
//! Every submission is sent as raw bytes so the path and body are exactly
//! the attack, and every refusal goes through the shared check: its exact
//! status, no session (cookie or row), the app untouched, its own reason
//! counted once.

use crate::support::env::raw_request;
use crate::support::idp::Sso;
use crate::support::refusal::login_refused;

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The raw request: `METHOD target` with `content-type` and `body`.
fn request(method: &str, target: &str, ct: Option<&str>, extra: &str, body: &str) -> String {
    let ct = ct
        .map(|c| format!("content-type: {c}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {target} HTTP/1.1\r\nhost: app.example.com\r\naccept: application/json\r\n{ct}{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// `METHOD target` with `content-type` and `body`; the status.
async fn submit(
    s: &Sso,
    method: &str,
    target: &str,
    ct: Option<&str>,
    extra: &str,
    body: &str,
) -> u16 {
    status(&raw_request(s.env.proxy, &request(method, target, ct, extra, body)).await)
}

fn app_count(s: &Sso) -> usize {
    s.app_saw.lock().unwrap().len()
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn multipart(email: &str) -> (String, String) {
    multipart_parts(&[("email", email), ("password", "hunter2")])
}

/// A multipart/form-data body with these (name, value) parts, in order.
fn multipart_parts(parts: &[(&str, &str)]) -> (String, String) {
    let mut body = String::new();
    for (name, value) in parts {
        body.push_str(&format!(
            "--b0undary\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str("--b0undary--\r\n");
    ("multipart/form-data; boundary=b0undary".into(), body)
}

/// Why a submission must be refused: the tenant enforces SSO (its
/// `portcullis_sso_enforced_total`), or Portcullis could not read exactly
/// one email (`portcullis_login_refused_total{reason}`).
#[derive(Clone, Copy, Debug)]
enum Why {
    Enforced,
    Refused(&'static str),
}

impl Why {
    fn series(self) -> String {
        match self {
            Why::Enforced => "portcullis_sso_enforced_total{tenant=\"acme\"}".into(),
            Why::Refused(reason) => login_refused(reason),
        }
    }

    /// The `error` of the 403 JSON an API client gets.
    fn error(self) -> &'static str {
        match self {
            Why::Enforced => "sso_required",
            Why::Refused(_) => "login_refused",
        }
    }
}

/// One evasion: the request, and what must answer it. A form post (or a
/// multipart one) is a browser's: 303 to the login page; anything else is
/// an API client's (it sent `accept: application/json`): 403 JSON.
struct Case<'a> {
    method: &'a str,
    target: &'a str,
    ct: Option<&'a str>,
    extra: &'a str,
    body: String,
    status: u16,
    why: Why,
}

fn case<'a>(
    method: &'a str,
    target: &'a str,
    ct: Option<&'a str>,
    body: &str,
    status: u16,
    why: Why,
) -> Case<'a> {
    Case {
        method,
        target,
        ct,
        extra: "",
        body: body.into(),
        status,
        why,
    }
}

#[tokio::test]
async fn every_evasion_is_refused_before_the_app() {
    use Why::*;
    let s = Sso::start(false).await;
    let (mp_ct, mp_acme) = multipart("alice@acme.com");
    let mp_ct = mp_ct.as_str();
    let (_, mp_twice) = multipart_parts(&[
        ("email", "bob@globex.com"),
        ("email", "alice@acme.com"),
        ("password", "hunter2"),
    ]);
    let (_, mp_cased) =
        multipart_parts(&[("email", "bob@globex.com"), ("Email", "alice@acme.com")]);
    let mail = "email=alice@acme.com";
    let cases: Vec<Case> = vec![
        // the endpoint path, read like a route
        case("POST", "/LOGIN", Some(FORM), mail, 303, Enforced),
        case(
            "POST",
            "/login;jsessionid=1",
            Some(FORM),
            mail,
            303,
            Enforced,
        ),
        case("POST", "/login/", Some(FORM), mail, 303, Enforced),
        case(
            "POST",
            "/login.json",
            Some(JSON),
            r#"{"email":"alice@acme.com"}"#,
            403,
            Enforced,
        ),
        case("POST", "/login.xml", Some(FORM), mail, 303, Enforced),
        case(
            "POST",
            "/login.xml",
            Some(JSON),
            r#"{"email":"alice@acme.com"}"#,
            403,
            Enforced,
        ),
        case("POST", "/x/..;/login", Some(FORM), mail, 303, Enforced),
        case("POST", "//login", Some(FORM), mail, 303, Enforced),
        case("POST", "/%6cogin", Some(FORM), mail, 303, Enforced),
        // which email? refuse rather than guess
        case(
            "POST",
            "/login",
            Some(FORM),
            "email=bob@globex.com&email=alice@acme.com",
            303,
            Refused("duplicate_email"),
        ),
        case(
            "POST",
            "/login",
            Some(FORM),
            "email=bob@globex.com&x=1;email=alice@acme.com",
            303,
            Refused("duplicate_email"),
        ),
        case(
            "POST",
            "/login",
            Some(FORM),
            "email=bob@globex.com&EMAIL=alice@acme.com",
            303,
            Refused("duplicate_email"),
        ),
        // PHP reads `email[]` as the field too: a second spelling of it
        case(
            "POST",
            "/login",
            Some(FORM),
            "email[]=alice@acme.com",
            303,
            Refused("duplicate_email"),
        ),
        case(
            "POST",
            "/login",
            Some(mp_ct),
            &mp_twice,
            303,
            Refused("duplicate_email"),
        ),
        case(
            "POST",
            "/login",
            Some(mp_ct),
            &mp_cased,
            303,
            Refused("duplicate_email"),
        ),
        case(
            "POST",
            "/api/session",
            Some(JSON),
            r#"{"user":{"email":"bob@globex.com","email":"alice@acme.com"}}"#,
            403,
            Refused("duplicate_email"),
        ),
        case(
            "POST",
            "/api/session",
            Some(JSON),
            r#"{"user":{"email":"bob@globex.com","Email":"alice@acme.com"}}"#,
            403,
            Refused("duplicate_email"),
        ),
        case(
            "POST",
            "/api/session",
            Some(JSON),
            r#"{"user":{"email":["alice@acme.com"]}}"#,
            403,
            Refused("duplicate_email"),
        ),
        // bodies Portcullis can't read
        case(
            "POST",
            "/api/session",
            Some("text/plain"),
            r#"{"user":{"email":"alice@acme.com"}}"#,
            403,
            Refused("content_type"),
        ),
        case(
            "POST",
            "/api/session",
            Some(JSON),
            r#"{"user":{"email":"alice@acme.com""#,
            403,
            Refused("unparseable"),
        ),
        case("POST", "/login", None, mail, 403, Refused("content_type")),
        Case {
            extra: "content-encoding: gzip\r\n",
            ..case(
                "POST",
                "/login",
                Some(FORM),
                mail,
                303,
                Refused("content_encoding"),
            )
        },
        case(
            "POST",
            "/login",
            Some("application/x-www-form-urlencoded; charset=utf-16"),
            mail,
            303,
            Refused("content_type"),
        ),
        case(
            "POST",
            "/login",
            Some(FORM),
            "username=alice",
            303,
            Refused("no_email"),
        ),
        case(
            "POST",
            "/login",
            Some(FORM),
            "email=alice",
            303,
            Refused("not_an_email"),
        ),
        case(
            "POST",
            "/login",
            Some(FORM),
            "email=Alice%20%3Calice@acme.com%3E",
            303,
            Refused("not_an_email"),
        ),
        // credentials in the query string
        case(
            "POST",
            "/login?email=alice@acme.com",
            Some(FORM),
            "email=bob@globex.com",
            303,
            Refused("query_credentials"),
        ),
        case(
            "GET",
            "/login?email=alice@acme.com&password=x",
            None,
            "",
            403,
            Refused("query_credentials"),
        ),
        case(
            "GET",
            "/login?PASSWORD=x",
            None,
            "",
            403,
            Refused("query_credentials"),
        ),
        // normalisation the app would apply
        case(
            "POST",
            "/login",
            Some(FORM),
            "email=ALICE%40ACME.COM%20",
            303,
            Enforced,
        ),
        case(
            "POST",
            "/login",
            Some(FORM),
            "email=alice%40acme.com.",
            303,
            Enforced,
        ),
        case(
            "POST",
            "/login",
            Some(FORM),
            "email=alice%40%EF%BD%81cme.com",
            303,
            Enforced,
        ),
        case(
            "POST",
            "/login",
            Some(FORM),
            "email=alice%40ac%C2%ADme.com",
            303,
            Enforced,
        ),
        // other methods and bodies
        case("PUT", "/login", Some(FORM), mail, 303, Enforced),
        case("GET", "/login", Some(FORM), mail, 303, Enforced),
        case("POST", "/login", Some(mp_ct), &mp_acme, 303, Enforced),
    ];
    for c in &cases {
        let what = format!("{} {} {:?}", c.method, c.target, c.body);
        let refusal = s
            .env
            .refusal(&c.why.series())
            .await
            .app(&s.app_saw)
            .named(&what);
        let resp = raw_request(
            s.env.proxy,
            &request(c.method, c.target, c.ct, c.extra, &c.body),
        )
        .await;
        let (head, _) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        let head = head.to_ascii_lowercase();
        let body = refusal.assert_raw(&resp, c.status).await;
        if c.status == 403 {
            // the API client gets JSON that names the refusal, never the reason
            let json: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
            assert_eq!(json["error"], c.why.error(), "{what}: {json}");
            assert!(
                json["login_url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("/.portcullis/login?use_sso=true")),
                "{what}: {json}"
            );
            if let Refused(reason) = c.why {
                assert!(!body.contains(reason), "{what}: reason leaked: {body}");
            }
        } else {
            let want = match c.why {
                Enforced => "location: /.portcullis/login?use_sso=true&email=alice%40acme%2ecom",
                Refused(_) => "location: /.portcullis/login?use_sso=true\r",
            };
            assert!(
                format!("{head}\r").contains(want),
                "{what}: {want:?} expected in\n{head}"
            );
        }
    }
}

/// An absolute-form target over HTTP/1.0 without `Host` names the endpoint
/// through its authority: enforced like any other submission.
#[tokio::test]
async fn absolute_form_over_http_1_0_without_host_is_enforced() {
    let s = Sso::start(false).await;
    let json = r#"{"email":"alice@acme.com"}"#;
    for target in [
        "http://app.example.com/login",
        "http://app.example.com/x/..;/LOGIN",
    ] {
        let refusal = s.env.refusal(&Why::Enforced.series()).await.app(&s.app_saw);
        let resp = raw_request(
            s.env.proxy,
            &format!(
                "POST {target} HTTP/1.0\r\naccept: application/json\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                json.len(),
            ),
        )
        .await;
        let answer: serde_json::Value =
            serde_json::from_str(&refusal.assert_raw(&resp, 403).await).unwrap();
        assert_eq!(answer["error"], "sso_required", "{target}");
    }
    // a non-enforced address in the same shape reaches the app
    let before = app_count(&s);
    let ok = r#"{"email":"bob@globex.com"}"#;
    let resp = raw_request(
        s.env.proxy,
        &format!(
            "POST http://app.example.com/login HTTP/1.0\r\naccept: application/json\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ok}",
            ok.len()
        ),
    )
    .await;
    assert_eq!(status(&resp), 200, "{resp}");
    assert_eq!(app_count(&s), before + 1);
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
