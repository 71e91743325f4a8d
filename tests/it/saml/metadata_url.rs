//! IdP metadata from a URL: a real local HTTP server serves metadata that
//! changes. A certificate rotation is picked up by the scheduled refresh;
//! broken metadata and HTTP errors keep the last good copy and are counted;
//! a proxy started while the URL is unreachable runs, refuses logins at
//! that connection with `metadata_unavailable`, and recovers by itself.
//! A change of signing certificates is logged at WARN and counted; pinned
//! fingerprints refuse metadata with any other certificate; the last good
//! copy belongs to one server, never to the process. A login that arrives
//! while the first fetch is still in flight waits for it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::env::*;
use crate::support::refusal::login_failure;
use crate::support::saml::*;

/// What the metadata server answers, changeable during the test, and how
/// long it takes to.
#[derive(Clone)]
struct Served(Arc<Mutex<(u16, String, Duration)>>);

impl Served {
    fn set(&self, status: u16, body: String) {
        let mut s = self.0.lock().unwrap();
        (s.0, s.1) = (status, body);
    }

    fn delay(&self, d: Duration) {
        self.0.lock().unwrap().2 = d;
    }
}

async fn metadata_server(initial: (u16, String)) -> (String, Served) {
    let served = Served(Arc::new(Mutex::new((initial.0, initial.1, Duration::ZERO))));
    let s = served.clone();
    let app = axum::Router::new().route(
        "/idp/metadata",
        axum::routing::get(move || {
            let s = s.clone();
            async move {
                let (status, body, delay) = s.0.lock().unwrap().clone();
                tokio::time::sleep(delay).await;
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/idp/metadata"), served)
}

fn metadata(cert_pem: &str) -> String {
    metadata_with(&[cert_pem])
}

/// Metadata with one signing `KeyDescriptor` per certificate.
fn metadata_with(cert_pems: &[&str]) -> String {
    let keys: String = cert_pems
        .iter()
        .map(|pem| {
            let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            format!(
                r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{der_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#
            )
        })
        .collect();
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{keys}<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SSO}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

/// The connection's `[[tenants.connections]]` block for metadata at `url`.
fn url_connection(url: &str, saml_extra: &str) -> String {
    format!(
        "[[tenants.connections]]\nid = \"{CONNECTION}\"\nprotocol = \"saml\"\npreset = \"okta\"\n[tenants.connections.saml]\nidp_metadata_url = \"{url}\"\nmetadata_refresh_seconds = 1\n{saml_extra}\n"
    )
}

async fn start(url: &str, dir: tempfile::TempDir, key: IdpKey) -> SamlSso {
    SamlSso::start_with(dir, key, &url_connection(url, "")).await
}

/// The value of the `metric` line for this connection (and `label`, e.g.
/// `result="ok"`), 0 when absent.
fn counter(m: &str, metric: &str, label: &str) -> u64 {
    m.lines()
        .find(|l| {
            l.starts_with(&format!("{metric}{{"))
                && l.contains(&format!("connection=\"{CONNECTION}\""))
                && l.contains(label)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn refreshes(m: &str, result: &str) -> u64 {
    counter(
        m,
        "portcullis_saml_metadata_refresh_total",
        &format!("result=\"{result}\""),
    )
}

const PIN_MISMATCHES: &str = "portcullis_saml_metadata_pin_mismatch_total";
const KEY_CHANGES: &str = "portcullis_saml_idp_signing_cert_changes_total";

/// Waits (bounded, 15 s) until `metric` of this connection reaches `n`.
async fn until_counter(metrics: impl AsyncFn() -> String, metric: &str, n: u64) {
    let mut last = String::new();
    for _ in 0..150 {
        last = metrics().await;
        if counter(&last, metric, "") >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{metric} below {n} within 15 s:\n{last}");
}

/// Waits (bounded) until at least `n` refreshes with `result` happened.
async fn until_refreshes(s: &SamlSso, result: &str, n: u64) {
    for _ in 0..150 {
        if refreshes(&s.env.metrics().await, result) >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("fewer than {n} `{result}` metadata refreshes within 15 s");
}

async fn login_with(s: &SamlSso, key: &IdpKey) -> u16 {
    let st = s.begin().await;
    let xml = s.resp(&st).signed(key, s.dir.path());
    s.post(&st, &b64(&xml)).await.status().as_u16()
}

/// A login signed by `key`, which the connection must not trust: through
/// the shared check (403, no session, the app untouched, one `signature`
/// failure counted).
async fn refused_with(s: &SamlSso, key: &IdpKey) {
    let st = s.begin().await;
    let xml = s.resp(&st).signed(key, s.dir.path());
    let refusal = s
        .env
        .refusal(&login_failure("signature"))
        .await
        .app(s.env.app.as_ref().expect("a counting upstream"));
    let body = refusal.assert(s.post(&st, &b64(&xml)).await, 403).await;
    assert!(body.contains("couldn"), "generic page expected: {body}");
}

/// Starting a login at a connection without metadata: through the shared
/// check (403, no session, the app untouched, one `metadata_unavailable`
/// failure counted).
async fn start_refused(s: &SamlSso) {
    let refusal = s
        .env
        .refusal(&login_failure("metadata_unavailable"))
        .await
        .app(s.env.app.as_ref().expect("a counting upstream"));
    let r = client()
        .get(s.env.url(&format!(
            "/.portcullis/sso/{CONNECTION}/start?return_to=%2F"
        )))
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_url_rotation_is_picked_up_and_failures_keep_the_last_good() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let old = IdpKey::generate(dir.path(), "old");
    let new = IdpKey::generate(dir.path(), "new");
    let (url, served) = metadata_server((200, metadata(&old.cert_pem()))).await;
    // the harness' own key stays untrusted here: only the served one counts
    let unused = IdpKey::generate(dir.path(), "unused");
    let s = start(&url, dir, unused).await;
    until_refreshes(&s, "ok", 1).await;
    assert_eq!(login_with(&s, &old).await, 303);
    refused_with(&s, &new).await;

    // the IdP rotates: the next refresh trusts only the new certificate
    served.set(200, metadata(&new.cert_pem()));
    let ok = refreshes(&s.env.metrics().await, "ok");
    until_refreshes(&s, "ok", ok + 2).await;
    assert_eq!(login_with(&s, &new).await, 303);
    refused_with(&s, &old).await;

    // broken metadata, metadata without a certificate, another entity, a
    // server error: each counted, the last good copy stays in force
    let good = metadata(&new.cert_pem());
    let key_start = good.find("<md:KeyDescriptor").unwrap();
    let key_end = good.find("</md:KeyDescriptor>").unwrap() + "</md:KeyDescriptor>".len();
    let no_cert = format!("{}{}", &good[..key_start], &good[key_end..]);
    assert!(!no_cert.contains("X509Certificate"));
    let other_entity = metadata(&old.cert_pem()).replace(IDP_ENTITY, "https://evil.example/idp");
    let with_dtd = format!(
        "<!DOCTYPE x [<!ENTITY a \"b\">]>{}",
        metadata(&old.cert_pem())
    );
    for (status, body) in [
        (200, "<not metadata".to_owned()),
        (200, no_cert),
        (200, other_entity),
        (200, with_dtd),
        (500, "oops".to_owned()),
    ] {
        served.set(status, body);
        let errors = refreshes(&s.env.metrics().await, "error");
        until_refreshes(&s, "error", errors + 1).await;
        assert_eq!(login_with(&s, &new).await, 303, "last good kept");
        refused_with(&s, &old).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_metadata_url_at_startup_refuses_that_connection_until_it_loads() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let key = IdpKey::generate(dir.path(), "idp");
    let cert = key.cert_pem();
    let (url, served) = metadata_server((503, "down".into())).await;
    let s = start(&url, dir, key).await;
    until_refreshes(&s, "error", 1).await;
    // the proxy runs; this connection refuses to start a login
    start_refused(&s).await;
    s.expect_failures("metadata_unavailable", 1).await;
    // the IdP comes back: logins work without a restart
    served.set(200, metadata(&cert));
    until_refreshes(&s, "ok", 1).await;
    assert_eq!(login_with(&s, &s.key).await, 303);
    let m = s.env.metrics().await;
    assert!(
        m.contains(&format!(
            "portcullis_saml_idp_cert_expiry_seconds{{connection=\"{CONNECTION}\"}}"
        )),
        "{m}"
    );
}

/// A connection whose IdP is slow to serve its metadata: a login started
/// before the first fetch ends waits for it and goes to the IdP (before, it
/// was refused with `metadata_unavailable` — what an admin saw clicking
/// "Test sign-in" right after saving a connection in the portal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_during_the_first_metadata_fetch_waits_for_it() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let key = IdpKey::generate(dir.path(), "idp");
    let (url, served) = metadata_server((200, metadata(&key.cert_pem()))).await;
    served.delay(Duration::from_secs(2));
    let s = start(&url, dir, key).await;
    assert_eq!(refreshes(&s.env.metrics().await, "ok"), 0, "still fetching");
    served.delay(Duration::ZERO);
    // `begin` asserts the redirect to the IdP
    let st = s.begin().await;
    assert_eq!(refreshes(&s.env.metrics().await, "ok"), 1);
    let xml = s.resp(&st).signed(&s.key, s.dir.path());
    assert_eq!(s.post(&st, &b64(&xml)).await.status().as_u16(), 303);
}

/// A refresh that changes the signing certificates is logged at WARN with
/// both SHA-256 fingerprint sets and counted; refreshes that change nothing
/// are not. The real binary, so that the log itself is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_certificate_change_on_refresh_is_logged_and_counted() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let old = IdpKey::generate(dir.path(), "old");
    let new = IdpKey::generate(dir.path(), "new");
    let (url, served) = metadata_server((200, metadata(&old.cert_pem()))).await;
    let extra = format!(
        "[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n{}",
        url_connection(&url, "")
    );
    let mut bin = crate::saml::hardening::Binary::start(dir, &extra, None).await;
    let metrics = async || bin.metrics().await;
    // two good refreshes of the same metadata: nothing changed
    until_counter(metrics, "portcullis_saml_metadata_refresh_total", 2).await;
    assert_eq!(counter(&bin.metrics().await, KEY_CHANGES, ""), 0);

    served.set(200, metadata(&new.cert_pem()));
    until_counter(async || bin.metrics().await, KEY_CHANGES, 1).await;
    let ok = refreshes(&bin.metrics().await, "ok");
    until_counter(
        async || bin.metrics().await,
        "portcullis_saml_metadata_refresh_total",
        ok + 2,
    )
    .await;
    assert_eq!(counter(&bin.metrics().await, KEY_CHANGES, ""), 1);
    let (stdout, _) = bin.stop();
    let warned: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("IdP signing certificates changed"))
        .collect();
    assert_eq!(warned.len(), 1, "{stdout}");
    let line = warned[0];
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(CONNECTION), "{line}");
    let (old_at, new_at) = (
        line.find(&old.fingerprint()).expect("old fingerprint"),
        line.find(&new.fingerprint()).expect("new fingerprint"),
    );
    assert!(old_at < new_at, "old, then new: {line}");
}

/// `idp_certificate_fingerprints` with metadata from a URL: a fetch whose
/// signing certificates are not all pinned is refused, counted and logged,
/// and the last good copy stays (none at startup: the connection waits).
/// A rotation to a pinned next key is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_metadata_url_refuses_unpinned_certificates() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let old = IdpKey::generate(dir.path(), "old");
    let new = IdpKey::generate(dir.path(), "new");
    let stranger = IdpKey::generate(dir.path(), "stranger");
    let (url, served) = metadata_server((200, metadata(&stranger.cert_pem()))).await;
    // openssl's form for one pin, bare lower-case hex for the other
    let pins = format!(
        "idp_certificate_fingerprints = [\"{}\", \"{}\"]",
        old.fingerprint(),
        new.fingerprint().replace(':', "").to_lowercase()
    );
    let unused = IdpKey::generate(dir.path(), "unused");
    let s = SamlSso::start_with(dir, unused, &url_connection(&url, &pins)).await;
    let metrics = async || s.env.metrics().await;

    // the first fetch names an unpinned key: refused, nothing to fall back on
    until_counter(metrics, PIN_MISMATCHES, 1).await;
    start_refused(&s).await;
    s.expect_failures("metadata_unavailable", 1).await;

    // the pinned key: logins work; then a rotation to the pinned next key
    served.set(200, metadata(&old.cert_pem()));
    until_refreshes(&s, "ok", 1).await;
    assert_eq!(login_with(&s, &old).await, 303);
    served.set(200, metadata_with(&[&old.cert_pem(), &new.cert_pem()]));
    let ok = refreshes(&s.env.metrics().await, "ok");
    until_refreshes(&s, "ok", ok + 1).await;
    assert_eq!(login_with(&s, &new).await, 303);

    // an unpinned key, alone or next to pinned ones: refused, last good kept
    for body in [
        metadata(&stranger.cert_pem()),
        metadata_with(&[&new.cert_pem(), &stranger.cert_pem()]),
    ] {
        served.set(200, body);
        let before = counter(&s.env.metrics().await, PIN_MISMATCHES, "");
        until_counter(async || s.env.metrics().await, PIN_MISMATCHES, before + 1).await;
        assert_eq!(login_with(&s, &new).await, 303, "last good kept");
        refused_with(&s, &stranger).await;
    }
}

/// The last good metadata belongs to one server: a second server in the
/// same process, with the same connection id and URL, does not start from
/// the first one's copy (tests in one process must not see each other's
/// metadata; before, the cache was process-wide and keyed by URL only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_good_metadata_is_per_server_not_per_process() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let key = IdpKey::generate(dir.path(), "idp");
    let (url, served) = metadata_server((200, metadata(&key.cert_pem()))).await;
    let a = start(&url, dir, key).await;
    until_refreshes(&a, "ok", 1).await;
    assert_eq!(login_with(&a, &a.key).await, 303);

    served.set(503, "down".into());
    let dir_b = crate::support::env::private_tempdir().unwrap();
    let key_b = IdpKey::generate(dir_b.path(), "idp");
    let b = start(&url, dir_b, key_b).await;
    until_refreshes(&b, "error", 1).await;
    // the second server has no metadata yet
    start_refused(&b).await;
    b.expect_failures("metadata_unavailable", 1).await;
    // the first keeps its own
    assert_eq!(login_with(&a, &a.key).await, 303);
}
