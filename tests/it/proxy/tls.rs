//! TLS: a rustls listener in front, and TLS (with SNI and verification) to
//! the upstream. Certificates are made per test with the `openssl` CLI: a CA
//! plus a leaf with SANs (webpki refuses a self-signed end-entity cert).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::support::env::*;

struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pki(dir: &Path) -> Pki {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Portcullis Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
    );
    std::fs::write(dir.join("leaf.ext"), "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
    );
    let p = |f: &str| dir.join(f).display().to_string();
    Pki {
        ca: p("ca.pem"),
        cert: p("leaf.pem"),
        key: p("leaf.key"),
    }
}

fn tls_client(ca: &str, addr: SocketAddr) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .resolve("localhost", addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_listener_terminates_and_forwards_proto_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let env = TestEnv::with(Options {
        listener_tls: Some((pki.cert.clone(), pki.key.clone())),
        ..Default::default()
    })
    .await;
    let c = tls_client(&pki.ca, env.proxy);
    let base = format!("https://localhost:{}", env.proxy.port());
    let (status, app) = echo(
        c.get(format!("{base}/public/x"))
            .header("x-forwarded-proto", "http"),
    )
    .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-proto"), Some("https"));

    let cookie = env.mint(&principal("mo@example.com", &[])).await;
    let (status, app) = echo(c.get(format!("{base}/app")).header("cookie", &cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-email"), Some("mo@example.com"));

    // plain HTTP on the TLS port is not served
    let plain = client()
        .get(format!("http://{}/public/x", env.proxy))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test]
async fn tls_to_the_upstream_with_sni_and_verification() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    // The "app" speaks HTTPS: another Portcullis with a TLS listener in front
    // of the echo app (its /public/ route forwards anonymously).
    let app = TestEnv::with(Options {
        listener_tls: Some((pki.cert.clone(), pki.key.clone())),
        ..Default::default()
    })
    .await;

    // no verification: TLS and SNI work
    let unverified = TestEnv::with(Options {
        upstream: Some(app.proxy),
        upstream_extra: "tls = true\nsni = \"localhost\"\nverify_cert = false".into(),
        ..Default::default()
    })
    .await;
    let (status, seen_by_app) = echo(client().get(unverified.url("/public/through-tls"))).await;
    assert_eq!(status, 200, "{seen_by_app}");
    assert_eq!(seen_by_app["path"], "/public/through-tls");
    // the inner proxy saw a TLS connection
    assert_eq!(seen(&seen_by_app, "x-forwarded-proto"), Some("https"));

    // verification on: the test CA is not a system root, so the handshake is
    // refused and the client gets a 502, not the app
    let verified = TestEnv::with(Options {
        upstream: Some(app.proxy),
        upstream_extra: "tls = true\nsni = \"localhost\"\nverify_cert = true".into(),
        ..Default::default()
    })
    .await;
    let r = client()
        .get(verified.url("/public/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
}
