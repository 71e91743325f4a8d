//! SAML claims that had no test of their own and the hardening of
//! the ACS and SLO: algorithm pins at the ACS, unsolicited responses that name a
//! request, libxmlsec1's diagnostics (the real binary as a child process).
//! Every refusal checks its metric reason, that no session cookie was set
//! and that no session row exists.

use std::process::{Command, Stdio};

use crate::ops::cli::{Child, wait_ready};
use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::refusal::{AppLog, Refusal, Watch, login_failure};
use crate::support::saml::*;

const SHA256_DIGEST: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const SHA1_DIGEST: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const HMAC_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";

/// The state before an ACS post that must be refused with `reason`.
async fn refusal(s: &SamlSso, reason: &str) -> Refusal {
    s.env
        .refusal(&login_failure(reason))
        .await
        .app(s.env.app.as_ref().expect("a counting upstream"))
        .named(reason)
}

/// A refused ACS post, through the shared check: the generic 403 page, no
/// session cookie, no new session row, the app untouched, and `reason`
/// counted once more.
async fn assert_refused(post: reqwest::Response, reason: &str, refusal: Refusal) {
    let body = refusal.assert(post, 403).await;
    assert!(body.contains("couldn"), "{reason}: generic page: {body}");
}

/// An IdP-initiated POST: no flow cookie, a RelayState that opens no flow.
async fn post_unsolicited(s: &SamlSso, xml: &str) -> reqwest::Response {
    client()
        .post(s.acs())
        .form(&[
            ("SAMLResponse", b64(xml)),
            ("RelayState", "/dashboard".into()),
        ])
        .send()
        .await
        .unwrap()
}

/// An unsolicited (IdP-initiated) response must name no request: one that
/// carries `InResponseTo` is a solicited response whose flow cookie is
/// missing (another browser, an expired flow, a stolen response), and turning
/// IdP-initiated login on must not turn it into a login. Three spellings, each
/// caught by a different check: the attribute on the Response and the
/// subject confirmation (as IdPs send it), `InResponseTo = "…"` with spaces on
/// the Response only, and the same on SubjectConfirmationData only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsolicited_response_naming_a_request_is_refused_with_idp_initiated_on() {
    let s = SamlSso::start("allow_idp_initiated = true\nlanding_path = \"/dashboard\"").await;
    let dir = s.dir.path();
    // `InResponseTo="…"` on the Response and/or the subject confirmation;
    // `spaced` rewrites it as `InResponseTo = "…"` after signing (libxml2
    // serialises attributes without spaces; canonicalisation ignores them,
    // so the signature stays valid)
    let unsolicited = |on_response: bool, on_subject: bool, spaced: bool| {
        let r = Resp::new(&s.acs(), &s.sp_entity(), "_REQ");
        let mut xml = r.template();
        for on in [on_response, on_subject] {
            xml = xml.replacen(
                " InResponseTo=\"_REQ\"",
                if on { " InResponseTo=\"_REQX\"" } else { "" },
                1,
            );
        }
        assert!(!xml.contains("_REQ\""), "{xml}");
        let signed = r.sign_template(&xml, &s.key, dir);
        if spaced {
            signed.replace("InResponseTo=\"_REQX\"", "InResponseTo = \"_REQX\"")
        } else {
            signed
        }
    };
    let cases = [
        (unsolicited(true, true, false), "state_mismatch"),
        (unsolicited(true, false, true), "in_response_to"),
        (unsolicited(false, true, true), "in_response_to"),
    ];
    for (xml, reason) in &cases {
        let before = refusal(&s, reason).await;
        let r = post_unsolicited(&s, xml).await;
        assert_refused(r, reason, before).await;
    }
    // the same response naming no request is an IdP-initiated login
    let ok = post_unsolicited(&s, &unsolicited(false, false, false)).await;
    assert_eq!(ok.status(), 303, "{}", ok.text().await.unwrap());
    assert_eq!(ok.headers()["location"], "/dashboard");
    let session = cookie_pair(&ok, "portcullis_session=").expect("session");
    assert_alice_engineer(&s.env, &session).await;
}

/// The signature method alone is not the algorithm: an RSA-SHA256
/// signature over a SHA-1 digest is a SHA-1 signature (a SHA-1 collision in
/// the referenced content survives it), refused unless `allow_sha1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_sha256_over_a_sha1_digest_is_refused() {
    let s = SamlSso::start("").await;
    let st = s.begin().await;
    let r = s.resp(&st);
    let xml = r.template();
    assert_eq!(xml.matches(SHA256_DIGEST).count(), 1);
    assert_eq!(xml.matches(RSA_SHA256).count(), 1);
    let xml = xml.replace(SHA256_DIGEST, SHA1_DIGEST);
    let signed = r.sign_template(&xml, &s.key, s.dir.path());
    assert!(signed.contains(SHA1_DIGEST) && signed.contains(RSA_SHA256));
    let before = refusal(&s, "algorithm").await;
    let post = s.post(&st, &b64(&signed)).await;
    assert_refused(post, "algorithm", before).await;
}

/// `allow_sha1 = true` opens RSA-SHA1 and nothing else: an HMAC-SHA1
/// signature (keyed here with the IdP certificate's bytes, the classic
/// key-confusion attempt) is refused as an algorithm, before any
/// cryptography; RSA-SHA1 from the same connection still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_sha1_still_refuses_hmac_sha1() {
    let s = SamlSso::start("allow_sha1 = true").await;
    let dir = s.dir.path();
    let hmac_key = dir.join("hmac.key");
    std::fs::write(&hmac_key, s.key.cert_pem()).unwrap();

    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.sha1 = true;
    let xml = r.template();
    assert_eq!(xml.matches(RSA_SHA1).count(), 1);
    let xml = xml.replace(RSA_SHA1, HMAC_SHA1);
    let tpl = dir.join("hmac.tpl.xml");
    let out_path = dir.join("hmac.signed.xml");
    std::fs::write(&tpl, &xml).unwrap();
    let out = Command::new("xmlsec1")
        .arg("--sign")
        .arg("--hmackey")
        .arg(&hmac_key)
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .arg("--output")
        .arg(&out_path)
        .arg(&tpl)
        .output()
        .expect("the xmlsec1 CLI is needed for SAML tests");
    assert!(
        out.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = std::fs::read_to_string(&out_path).unwrap();
    assert!(signed.contains(HMAC_SHA1), "{signed}");
    let before = refusal(&s, "algorithm").await;
    let post = s.post(&st, &b64(&signed)).await;
    assert_refused(post, "algorithm", before).await;

    // the connection does accept RSA-SHA1
    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.sha1 = true;
    let ok = s.post(&st, &b64(&r.signed(&s.key, dir))).await;
    assert_eq!(ok.status(), 303, "{}", ok.text().await.unwrap());
}

/// `portcullis run` as a child process, its stdout (the log) and stderr
/// captured in files that can be read while it runs.
pub(crate) struct Binary {
    pub proxy: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    /// What the app behind it saw.
    pub app: AppLog,
    pub store_url: String,
    child: Option<Child>,
    _upstream: tokio::task::JoinHandle<()>,
}

impl Binary {
    /// Starts the binary with `extra` config (tenants, …), `RUST_LOG` as
    /// given (unset otherwise: the config's `warn`), and waits until ready.
    pub(crate) async fn start(
        dir: tempfile::TempDir,
        extra: &str,
        rust_log: Option<&str>,
    ) -> Binary {
        let (upstream, task, app) = start_counting_upstream().await;
        let path = dir.path().join("p.toml");
        let store = format!("sqlite://{}/s.db", dir.path().display());
        let (child, addrs) = spawn_listening(2, |a| {
            std::fs::write(
                &path,
                config_text(a[0], a[1], upstream, &store, &[KEY_A], extra),
            )
            .unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
            cmd.args(["run", "--config"])
                .arg(&path)
                .env_remove("RUST_LOG")
                .stdout(Stdio::from(
                    std::fs::File::create(dir.path().join("stdout")).unwrap(),
                ))
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join("stderr")).unwrap(),
                ));
            if let Some(filter) = rust_log {
                cmd.env("RUST_LOG", filter);
            }
            cmd.spawn().unwrap()
        })
        .await;
        let (proxy, admin) = (addrs[0], addrs[1]);
        let child = Child(child);
        wait_ready(admin).await;
        Binary {
            proxy,
            admin,
            dir,
            app,
            store_url: store,
            child: Some(child),
            _upstream: task,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    pub(crate) async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap()
    }

    /// Stops (kills and reaps) the process; returns (stdout, stderr), now
    /// complete.
    pub(crate) fn stop(&mut self) -> (String, String) {
        drop(self.child.take());
        (
            self.stdout(),
            std::fs::read_to_string(self.dir.path().join("stderr")).unwrap(),
        )
    }
}

/// Starts the real binary with a SAML connection, sends one response whose
/// RSA signature value is corrupted, checks the refusal through the shared
/// check (403, no session cookie or new row in its store, its app
/// untouched, reason `signature` counted once) and returns (stdout,
/// stderr) once the process is stopped.
async fn broken_signature_against_the_binary(rust_log: Option<&str>) -> (String, String) {
    let dir = crate::support::env::private_tempdir().unwrap();
    let key = IdpKey::generate(dir.path(), "idp");
    let extra = format!(
        "[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n[[tenants.connections]]\nid = \"{CONNECTION}\"\nprotocol = \"saml\"\n{}",
        saml_toml(&[key.cert_pem()], "")
    );
    let mut bin = Binary::start(dir, &extra, rust_log).await;
    let start = client()
        .get(bin.url(&format!(
            "/.portcullis/sso/{CONNECTION}/start?return_to=%2F"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let flow = cookie_pair(&start, "portcullis_flow_").expect("flow cookie");
    let (request, relay) = parse_redirect(start.headers()["location"].to_str().unwrap());
    let acs = bin.url(&format!("/.portcullis/saml/{CONNECTION}/acs"));
    let resp = Resp::new(
        &acs,
        &bin.url(&format!("/.portcullis/saml/{CONNECTION}/metadata")),
        &attr(&request, "ID"),
    );
    let signed = resp.signed(&key, bin.dir.path());
    // corrupt the RSA signature value, keeping it valid base64
    let value_at = signed.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
    let first = &signed[value_at..value_at + 1];
    let broken = format!(
        "{}{}{}",
        &signed[..value_at],
        if first == "A" { "B" } else { "A" },
        &signed[value_at + 1..]
    );
    let key = portcullis::config::decode_store_key(STORE_KEY).unwrap();
    let store = portcullis::store::Store::open_sealed(&bin.store_url, &[key])
        .await
        .unwrap();
    let refusal = Watch {
        admin: bin.admin,
        store: &store,
        cookie: "portcullis_session",
        app: Some(&bin.app),
    }
    .refusal(&format!(
        "portcullis_login_failures_total{{connection=\"{CONNECTION}\",reason=\"signature\",tenant=\"acme\"}}"
    ))
    .await;
    let r = client()
        .post(&acs)
        .header("cookie", flow)
        .form(&[("SAMLResponse", b64(&broken)), ("RelayState", relay)])
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    store.close().await;
    bin.stop()
}

fn raw_xmlsec_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("func=") || l.contains("xmlSec"))
        .collect()
}

/// libxmlsec1 reports a refused signature through its error callback; by
/// default that prints `func=xmlSec…:file=…` lines straight to stderr. They
/// must go through the log instead (target `xmlsec`, debug level): silent at
/// the configured level, present with `RUST_LOG=debug`, never raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmlsec_diagnostics_go_to_the_log_not_to_stderr() {
    let (stdout, stderr) = broken_signature_against_the_binary(None).await;
    assert_eq!(raw_xmlsec_lines(&stderr), Vec::<&str>::new());
    assert!(!stdout.contains("libxmlsec1"), "{stdout}");

    let (stdout, stderr) = broken_signature_against_the_binary(Some("debug")).await;
    assert_eq!(raw_xmlsec_lines(&stderr), Vec::<&str>::new());
    assert!(
        stdout
            .lines()
            .filter(|l| l.contains("libxmlsec1:"))
            .any(|l| l.contains("DEBUG") && l.contains("xmlsec") && l.contains("func=xmlSec")),
        "no libxmlsec1 diagnostic in the debug log:\n{}",
        stdout
            .lines()
            .filter(|l| l.contains("xmlsec"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Remote metadata names the keys every login is checked with, so it is
/// fetched over https only; plain http is for loopback test servers. The
/// real `check` names file, line and key.
#[test]
fn plain_http_metadata_url_is_a_config_error_with_file_line_and_key() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let check = |url: &str| {
        let text = config_text(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "127.0.0.1:3".parse().unwrap(),
            &format!("sqlite://{}/s.db", dir.path().display()),
            &[KEY_A],
            &format!(
                "[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n[[tenants.connections]]\nid = \"{CONNECTION}\"\nprotocol = \"saml\"\n[tenants.connections.saml]\nidp_metadata_url = \"{url}\"\n"
            ),
        );
        let line = text
            .lines()
            .position(|l| l.starts_with("idp_metadata_url"))
            .unwrap()
            + 1;
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            format!("{}:{line}", path.display()),
        )
    };
    for url in [
        "http://idp.example/metadata",
        "http://10.0.0.1/metadata",
        "http://127.0.0.1.nip.io/metadata",
        "ftp://idp.example/metadata",
    ] {
        let (code, err, at) = check(url);
        assert_eq!(code, Some(78), "{url}: {err}");
        assert!(
            err.contains(&format!(
                "{at}: tenants[0].connections[0].saml.idp_metadata_url: not fetched by this server: must be https://"
            )),
            "{url}: {err}"
        );
    }
    for url in [
        "https://idp.example/metadata",
        "http://127.0.0.1:8080/metadata",
        "http://[::1]:8080/metadata",
    ] {
        let (code, err, _) = check(url);
        assert_eq!(code, Some(0), "{url}: {err}");
    }
}

/// `[[tenants.connections]]` for `CONNECTION` trusting `certs` inline.
fn inline_connection(certs: &[String], saml_extra: &str) -> String {
    format!(
        "[[tenants.connections]]\nid = \"{CONNECTION}\"\nprotocol = \"saml\"\npreset = \"okta\"\n{}",
        saml_toml(certs, saml_extra)
    )
}

/// With `idp_certificate_fingerprints`, inline (or file) metadata whose
/// signing certificates are not all pinned is a startup error naming the
/// connection and the unpinned fingerprint; pinned, logins work (pins in
/// openssl's `AB:CD:…` form or bare hex, either case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_certificates_must_match_at_startup() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let key = IdpKey::generate(dir.path(), "idp");
    let other = IdpKey::generate(dir.path(), "other");
    // a pin for another key; all certificates but one pinned
    for (certs, pins, unpinned) in [
        (vec![key.cert_pem()], vec![other.fingerprint()], &key),
        (
            vec![key.cert_pem(), other.cert_pem()],
            vec![key.fingerprint()],
            &other,
        ),
    ] {
        let pins = format!(
            "idp_certificate_fingerprints = [{}]",
            pins.iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let text = config_text(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "127.0.0.1:3".parse().unwrap(),
            &format!("sqlite://{}/s.db", dir.path().display()),
            &[KEY_A],
            &format!(
                "[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n{}",
                inline_connection(&certs, &pins)
            ),
        );
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        let config = portcullis::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let err =
            portcullis::app::Shared::new(config, None, portcullis::auth::Factories::builtin())
                .await
                .err()
                .expect("startup must fail");
        let msg = err.to_string();
        assert!(msg.contains(CONNECTION), "{msg}");
        assert!(msg.contains("idp_certificate_fingerprints"), "{msg}");
        assert!(msg.contains(&unpinned.fingerprint()), "{msg}");
    }

    let pins = format!(
        "idp_certificate_fingerprints = [\"{}\", \"{}\"]",
        other.fingerprint(),
        key.fingerprint().replace(':', "").to_lowercase()
    );
    let certs = vec![key.cert_pem()];
    let s = SamlSso::start_with(dir, key, &inline_connection(&certs, &pins)).await;
    let st = s.begin().await;
    let r = s
        .post(&st, &b64(&s.resp(&st).signed(&s.key, s.dir.path())))
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
}

/// Assertion ids are one-time per connection: an IdP can't burn another
/// connection's ids (tenant B's IdP sending an assertion with the id tenant
/// A's IdP will use next would otherwise refuse A's login as a replay).
/// Within a connection a replay is still refused, and ids burnt before the
/// cache was scoped (an unscoped row from an earlier version) stay burnt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertion_ids_are_one_time_per_connection() {
    const OTHER: &str = "acme-other";
    const OTHER_IDP: &str = "https://idp2.test/metadata";
    let dir = crate::support::env::private_tempdir().unwrap();
    let key = IdpKey::generate(dir.path(), "idp");
    let other = IdpKey::generate(dir.path(), "other");
    let connections = format!(
        "{}\n[[tenants.connections]]\nid = \"{OTHER}\"\nprotocol = \"saml\"\npreset = \"okta\"\n{}",
        inline_connection(&[key.cert_pem()], ""),
        saml_toml(&[other.cert_pem()], "").replace(IDP_ENTITY, OTHER_IDP),
    );
    let s = SamlSso::start_with(dir, key, &connections).await;
    let shared_id = format!("_shared{}", uuid::Uuid::new_v4().simple());

    // the other connection's IdP uses the id first
    let start = client()
        .get(
            s.env
                .url(&format!("/.portcullis/sso/{OTHER}/start?return_to=%2F")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let flow = cookie_pair(&start, "portcullis_flow_").unwrap();
    let (request, relay) = parse_redirect(start.headers()["location"].to_str().unwrap());
    let acs = s.env.url(&format!("/.portcullis/saml/{OTHER}/acs"));
    let mut r = Resp::new(
        &acs,
        &s.env.url(&format!("/.portcullis/saml/{OTHER}/metadata")),
        &attr(&request, "ID"),
    );
    r.issuer = OTHER_IDP.into();
    r.assertion_id = shared_id.clone();
    let post = client()
        .post(&acs)
        .header("cookie", flow)
        .form(&[
            ("SAMLResponse", b64(&r.signed(&other, s.dir.path()))),
            ("RelayState", relay),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 303, "{}", post.text().await.unwrap());

    // the same id from this connection's IdP is another assertion
    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.assertion_id = shared_id.clone();
    let xml = r.signed(&s.key, s.dir.path());
    let post = s.post(&st, &b64(&xml)).await;
    assert_eq!(post.status(), 303, "{}", post.text().await.unwrap());

    // within the connection it is a replay, in a fresh flow too
    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.assertion_id = shared_id;
    let before = refusal(&s, "replay").await;
    let post = s.post(&st, &b64(&r.signed(&s.key, s.dir.path()))).await;
    assert_refused(post, "replay", before).await;

    // an unscoped row written before the upgrade still burns its id
    let legacy = format!("_legacy{}", uuid::Uuid::new_v4().simple());
    let now = portcullis::clock::now();
    assert!(
        s.env
            .shared
            .store
            .one_time()
            .consume(portcullis::auth::saml::REPLAY_KIND, &legacy, now + 600)
            .await
            .unwrap()
    );
    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.assertion_id = legacy;
    let before = refusal(&s, "replay").await;
    let post = s.post(&st, &b64(&r.signed(&s.key, s.dir.path()))).await;
    assert_refused(post, "replay", before).await;
}
