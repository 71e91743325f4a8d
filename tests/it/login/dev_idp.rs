//! The development IdP (`[dev_idp]`) as `portcullis demo` runs it: the
//! whole login over HTTP, and its refusals.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use base64::Engine;

use crate::support::env::*;

/// `portcullis demo` on free ports; killed on drop.
pub(crate) struct Demo {
    child: std::process::Child,
    pub listen: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    pub(crate) async fn start() -> Demo {
        let dir = crate::support::env::private_tempdir().unwrap();
        let (child, addrs) = spawn_listening(3, |a| {
            Command::new(env!("CARGO_BIN_EXE_portcullis"))
                .arg("demo")
                .arg("--data-dir")
                .arg(dir.path())
                .args(["--listen", &a[0].to_string()])
                .args(["--admin", &a[1].to_string()])
                .args(["--upstream", &a[2].to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .await;
        Demo {
            child,
            listen: addrs[0],
            _dir: dir,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("http://{}{path}", self.listen)
        }
    }
}

/// Where the login is driven: `portcullis demo` or a [`TestEnv`] with the
/// demo's tenant and dev IdP. Absolute URLs (the IdP's form actions) pass
/// through.
trait Site {
    fn url(&self, path: &str) -> String;
}

impl Site for Demo {
    fn url(&self, path: &str) -> String {
        Demo::url(self, path)
    }
}

impl Site for TestEnv {
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            TestEnv::url(self, path)
        }
    }
}

/// The demo's tenant, connection and dev IdP (config/demo.toml), for a
/// [`TestEnv`]: its counting upstream and store let the shared refusal
/// check prove what a refusal did not do.
const DEV_IDP: &str = r#"
[[tenants]]
id = "example"
domains = ["example.com"]
group_roles = { "Engineering" = ["developer"] }
[[tenants.connections]]
id = "example-dev"
protocol = "saml"
[tenants.connections.saml]
idp = "dev"

[dev_idp]
tenant = "example"
users = [
  { email = "alice@example.com", name = "Alice Example", groups = ["Engineering", "Everyone"] },
  { email = "bob@example.com", name = "Bob Example", groups = ["Everyone"] },
]
"#;

async fn dev_idp_env() -> TestEnv {
    TestEnv::with(Options {
        extra: DEV_IDP.into(),
        factories: portcullis::auth::Factories::builtin(),
        ..Default::default()
    })
    .await
}

/// A tiny cookie jar: name → value, sent back on every request.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.0.remove(k);
            } else {
                self.0.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn unescape(s: &str) -> String {
    s.replace("&#43;", "+")
        .replace("&#x2b;", "+")
        .replace("&#61;", "=")
        .replace("&#x3d;", "=")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `<input … name="{name}" value="…">` in `html`.
fn input(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name} in {html}"));
    let rest = &html[at..];
    let v = rest.split_once("value=\"").unwrap().1;
    unescape(v.split('"').next().unwrap())
}

fn form_action(html: &str) -> String {
    let v = html.split_once("action=\"").unwrap().1;
    unescape(v.split('"').next().unwrap())
}

/// Drives the login up to the dev IdP's pick page: (jar, pick page HTML).
async fn to_pick_page(demo: &impl Site, email: &str) -> (Jar, String) {
    let mut jar = Jar::default();
    let r = client()
        .get(demo.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let login = r.headers()["location"].to_str().unwrap().to_owned();
    let r = client().get(demo.url(&login)).send().await.unwrap();
    let html = r.text().await.unwrap();
    assert!(html.contains("<h1>Sign in</h1>"), "{html}");
    let r = client()
        .post(demo.url(&form_action(&html)))
        .form(&[("email", email), ("return_to", &input(&html, "return_to"))])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "one connection: a page that moves on to it"
    );
    let start = crate::support::idp::continue_href(&r.text().await.unwrap());
    let r = client().get(demo.url(&start)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    jar.take(&r);
    let sso = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        sso.starts_with(&demo.url("/.portcullis/dev-idp/sso?SAMLRequest=")),
        "{sso}"
    );
    let r = client().get(&sso).send().await.unwrap();
    assert_eq!(r.status(), 200);
    (jar, r.text().await.unwrap())
}

/// Picks `email` on the pick page: the auto-post page's HTML.
async fn pick(demo: &impl Site, pick_page: &str, email: &str) -> String {
    let r = client()
        .post(demo.url(&form_action(pick_page)))
        .form(&[
            ("SAMLRequest", input(pick_page, "SAMLRequest").as_str()),
            ("RelayState", input(pick_page, "RelayState").as_str()),
            ("email", email),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    r.text().await.unwrap()
}

/// POSTs the auto-post form to the ACS, as the browser would.
async fn post_to_acs(jar: &mut Jar, post_page: &str, saml_response: &str) -> reqwest::Response {
    let r = client()
        .post(form_action(post_page))
        .header("cookie", jar.header())
        .form(&[
            ("SAMLResponse", saml_response),
            ("RelayState", input(post_page, "RelayState").as_str()),
        ])
        .send()
        .await
        .unwrap();
    jar.take(&r);
    r
}

#[tokio::test]
async fn demo_signs_alice_in_through_the_dev_idp() {
    let demo = Demo::start().await;
    let (mut jar, page) = to_pick_page(&demo, "alice@example.com").await;
    assert!(page.contains("Alice Example (alice@example.com)"), "{page}");
    assert!(page.contains("Bob Example (bob@example.com)"), "{page}");
    assert!(page.contains("<button type=\"submit\" name=\"email\""));
    let post = pick(&demo, &page, "alice@example.com").await;
    assert_eq!(
        form_action(&post),
        demo.url("/.portcullis/saml/example-dev/acs")
    );
    assert!(post.contains("<button type=\"submit\">Continue</button>"));
    let r = post_to_acs(&mut jar, &post, &input(&post, "SAMLResponse")).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(to, "/");
    let r = client()
        .get(demo.url("/"))
        .header("accept", "text/html")
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Signed in as <strong>alice@example.com</strong>"),
        "{html}"
    );
    let (_, seen) = echo(client().get(demo.url("/")).header("cookie", jar.header())).await;
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-email"][0], "alice@example.com");
    assert_eq!(h["x-forwarded-name"][0], "Alice Example");
    let groups = h["x-forwarded-groups"][0].as_str().unwrap();
    assert!(
        groups.contains("Engineering") && groups.contains("Everyone"),
        "{groups}"
    );
    assert!(
        h["x-forwarded-roles"][0]
            .as_str()
            .unwrap()
            .contains("developer")
    );
    assert_eq!(h["x-forwarded-tenant"][0], "example");
}

/// The dev IdP's response is signed like any IdP's: a changed attribute
/// is refused by the SP's signature check, through the shared refusal
/// check (403, no session cookie or row, the app untouched, `signature`
/// counted once).
#[tokio::test]
async fn dev_idp_response_with_a_tampered_attribute_is_refused() {
    let env = dev_idp_env().await;
    let (mut jar, page) = to_pick_page(&env, "bob@example.com").await;
    let post = pick(&env, &page, "bob@example.com").await;
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(input(&post, "SAMLResponse"))
            .unwrap(),
    )
    .unwrap();
    assert!(xml.contains("<saml:AttributeValue>Everyone</saml:AttributeValue>"));
    assert!(
        xml.contains("<ds:SignatureValue>")
            && !xml.contains("<ds:SignatureValue></ds:SignatureValue>")
    );
    let tampered = xml.replace(
        "<saml:AttributeValue>Everyone</saml:AttributeValue>",
        "<saml:AttributeValue>Engineering</saml:AttributeValue>",
    );
    let refusal = env
        .refusal(r#"portcullis_login_failures_total{connection="example-dev",reason="signature",tenant="example"}"#)
        .await
        .app(env.app.as_ref().expect("a counting upstream"));
    let r = post_to_acs(
        &mut jar,
        &post,
        &base64::engine::general_purpose::STANDARD.encode(tampered),
    )
    .await;
    refusal.assert(r, 403).await;
    assert!(!jar.0.keys().any(|k| k.contains("session")), "{:?}", jar.0);
    // an untouched response in a fresh flow is a login: the refusal was
    // the tampering, not the setup
    let (mut jar, page) = to_pick_page(&env, "bob@example.com").await;
    let post = pick(&env, &page, "bob@example.com").await;
    let r = post_to_acs(&mut jar, &post, &input(&post, "SAMLResponse")).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    assert!(jar.0.keys().any(|k| k.contains("session")), "{:?}", jar.0);
}

#[tokio::test]
async fn dev_idp_refuses_a_foreign_acs_url() {
    let demo = Demo::start().await;
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_x1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" AssertionConsumerServiceURL="https://evil.test/acs" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{}</saml:Issuer></samlp:AuthnRequest>"#,
        demo.url("/.portcullis/saml/example-dev/metadata")
    );
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).unwrap();
    let req = base64::engine::general_purpose::STANDARD.encode(enc.finish().unwrap());
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLRequest", &req)
        .append_pair("RelayState", "r")
        .finish();
    let r = client()
        .get(demo.url(&format!("/.portcullis/dev-idp/sso?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(!html.contains("Alice"), "{html}");
    // …and so does the pick
    let r = client()
        .post(demo.url("/.portcullis/dev-idp/pick"))
        .form(&[
            ("SAMLRequest", req.as_str()),
            ("RelayState", "r"),
            ("email", "alice@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // the metadata names the signing certificate and the SSO URL
    let r = client()
        .get(demo.url("/.portcullis/dev-idp/metadata"))
        .send()
        .await
        .unwrap();
    let md = r.text().await.unwrap();
    assert!(md.contains("<ds:X509Certificate>"), "{md}");
    assert!(md.contains(&demo.url("/.portcullis/dev-idp/sso")), "{md}");
}

#[test]
fn dev_idp_refuses_non_loopback_addresses() {
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml")).unwrap();
    let env = |name: &str| match name {
        "PORTCULLIS_SESSION_KEY" => Some("k".repeat(32)),
        "PORTCULLIS_STORE_KEY" => Some(crate::support::env::STORE_KEY.into()),
        "PORTCULLIS_DATA_DIR" => Some("/tmp".into()),
        _ => None,
    };
    assert!(portcullis::config::from_str(&demo, "demo.toml", &env).is_ok());
    let listener = demo.replace("address = \"127.0.0.1:8080\"", "address = \"0.0.0.0:8080\"");
    let err = portcullis::config::from_str(&listener, "demo.toml", &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dev_idp") && err.contains("listeners[0].address"),
        "{err}"
    );
    let public = demo.replace("http://127.0.0.1:8080", "https://app.example.com");
    let err = portcullis::config::from_str(&public, "demo.toml", &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dev_idp") && err.contains("server.public_url"),
        "{err}"
    );
    // `idp = "dev"` without `[dev_idp]`
    let cut = demo.split("\n[dev_idp]").next().unwrap().to_owned();
    let err = portcullis::config::from_str(&cut, "demo.toml", &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("saml.idp"), "{err}");

    // `portcullis demo --listen 0.0.0.0:…` overrides after validation: it
    // must still refuse to start, naming the key
    // The ports are held here: should the check ever be skipped, the demo
    // fails to bind instead of serving (and this test hanging).
    let dir = crate::support::env::private_tempdir().unwrap();
    let held = [bind_local(), bind_local(), bind_local()];
    let port = |i: usize| held[i].local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("demo")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &format!("0.0.0.0:{}", port(0))])
        .args(["--admin", &format!("127.0.0.1:{}", port(1))])
        .args(["--upstream", &format!("127.0.0.1:{}", port(2))])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listeners[0].address") || stderr.contains("public_url"),
        "{stderr}"
    );
    assert!(stderr.contains("not loopback"), "{stderr}");
}
