//! IdP metadata from a URL: a real local HTTP server serves metadata that
//! changes. A certificate rotation is picked up by the scheduled refresh;
//! broken metadata and HTTP errors keep the last good copy and are counted;
//! a proxy started while the URL is unreachable runs, refuses logins at
//! that connection with `metadata_unavailable`, and recovers by itself.

use std::sync::{Arc, Mutex};

use crate::support::env::*;
use crate::support::saml::*;

/// What the metadata server answers, changeable during the test.
#[derive(Clone)]
struct Served(Arc<Mutex<(u16, String)>>);

impl Served {
    fn set(&self, status: u16, body: String) {
        *self.0.lock().unwrap() = (status, body);
    }
}

async fn metadata_server(initial: (u16, String)) -> (String, Served) {
    let served = Served(Arc::new(Mutex::new(initial)));
    let s = served.clone();
    let app = axum::Router::new().route(
        "/idp/metadata",
        axum::routing::get(move || {
            let s = s.clone();
            async move {
                let (status, body) = s.0.lock().unwrap().clone();
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
    let der_b64: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{der_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SSO}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

async fn start(url: &str, dir: tempfile::TempDir, key: IdpKey) -> SamlSso {
    let connections = format!(
        "[[tenants.connections]]\nid = \"{CONNECTION}\"\nprotocol = \"saml\"\npreset = \"okta\"\n[tenants.connections.saml]\nidp_metadata_url = \"{url}\"\nmetadata_refresh_seconds = 1\n"
    );
    SamlSso::start_with(dir, key, &connections).await
}

fn refreshes(m: &str, result: &str) -> u64 {
    m.lines()
        .find(|l| {
            l.starts_with("portcullis_saml_metadata_refresh_total")
                && l.contains(&format!("connection=\"{CONNECTION}\""))
                && l.contains(&format!("result=\"{result}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_url_rotation_is_picked_up_and_failures_keep_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let old = IdpKey::generate(dir.path(), "old");
    let new = IdpKey::generate(dir.path(), "new");
    let (url, served) = metadata_server((200, metadata(&old.cert_pem()))).await;
    // the harness' own key stays untrusted here: only the served one counts
    let unused = IdpKey::generate(dir.path(), "unused");
    let s = start(&url, dir, unused).await;
    until_refreshes(&s, "ok", 1).await;
    assert_eq!(login_with(&s, &old).await, 303);
    assert_eq!(login_with(&s, &new).await, 403);

    // the IdP rotates: the next refresh trusts only the new certificate
    served.set(200, metadata(&new.cert_pem()));
    let ok = refreshes(&s.env.metrics().await, "ok");
    until_refreshes(&s, "ok", ok + 2).await;
    assert_eq!(login_with(&s, &new).await, 303);
    assert_eq!(login_with(&s, &old).await, 403);

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
        assert_eq!(login_with(&s, &old).await, 403);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_metadata_url_at_startup_refuses_that_connection_until_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let key = IdpKey::generate(dir.path(), "idp");
    let cert = key.cert_pem();
    let (url, served) = metadata_server((503, "down".into())).await;
    let s = start(&url, dir, key).await;
    until_refreshes(&s, "error", 1).await;
    // the proxy runs; this connection refuses to start a login
    let r = client()
        .get(s.env.url(&format!(
            "/.portcullis/sso/{CONNECTION}/start?return_to=%2F"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
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
