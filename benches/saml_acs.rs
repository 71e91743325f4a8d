//! ACS verification throughput: one signed `SAMLResponse` (the development
//! IdP's, RSA-2048 / SHA-256, assertion signed) through what the ACS runs
//! on its blocking thread — size check, base64, the no-DTD/shape/algorithm
//! prechecks, XML-DSig verification in libxmlsec1 and samael's checks on
//! the signed content. The replay-store write that follows in production
//! is a separate, store-bound cost and is not part of this figure.
//!
//! The issue's target: at least 3,000 verified responses per second on one
//! core, i.e. at most ~333 µs per iteration (criterion runs this
//! single-threaded). Measured on the 2-core development VM at load average
//! 0.5–0.8: 248–249 µs (~4,000/s); the code before the samael patch
//! (vendor/README.md) and the precheck rework took 497–505 µs in the same
//! window. Instruction counts (callgrind, `SAML_ACS_ITERATIONS` below):
//! 2.54 M per verification, from 4.60 M.

// A benchmark is a harness like a test: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use base64::Engine;
use criterion::{Criterion, Throughput, criterion_group};
use portcullis::auth::saml::SamlConnection;
use portcullis::auth::saml::dev_idp::{AuthnReq, DevIdp};
use portcullis::store::Store;

const CONFIG: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"
[[listeners]]
address = "127.0.0.1:8080"
[admin]
address = "127.0.0.1:9090"
[upstream]
address = "127.0.0.1:8081"
[[routes]]
prefix = "/"
policy = "required"
[session]
keys = ["bench-key-0123456789-0123456789-0123456789"]
[store]
url = "sqlite://unused.db"
encryption_key = "cG9ydGN1bGxpcy1iZW5jaC1zdG9yZS1rZXktMDAwMDE="
[[tenants]]
id = "example"
domains = ["example.com"]
[[tenants.connections]]
id = "example-dev"
protocol = "saml"
[tenants.connections.saml]
idp = "dev"
[dev_idp]
tenant = "example"
users = [{ email = "alice@example.com", name = "Alice Example", groups = ["Engineering", "Everyone"] }]
"#;

/// The connection, a signed response for it (form-encoded) and its
/// request id; the runtime and directory keep the store alive.
struct Fixture {
    conn: SamlConnection,
    form_value: String,
    request_id: String,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn setup() -> Fixture {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = portcullis::config::from_str(CONFIG, "bench.toml", &|_| None).unwrap();
    let dev = DevIdp::from_config(&config).unwrap().unwrap();
    let dir = {
        use std::os::unix::fs::PermissionsExt;
        // The store refuses a directory others can read.
        tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
    }
    .unwrap();
    let store = rt
        .block_on(Store::open(&format!(
            "sqlite://{}/bench.db",
            dir.path().display()
        )))
        .unwrap();
    let conn_cfg = &config.tenants[0].connections[0];
    let conn = SamlConnection::new(
        conn_cfg,
        &config.public_urls(),
        store,
        Some(&dev),
        None,
        &Default::default(),
    )
    .unwrap();
    let req = AuthnReq {
        id: "_bench-request".into(),
        acs_url: conn.acs_url.clone(),
        issuer: conn.sp_entity_id.clone(),
    };
    let xml = dev.respond(&req, "alice@example.com").unwrap();
    let form_value = base64::engine::general_purpose::STANDARD.encode(&xml);
    // the same response must verify (and a tampered one must not), or the
    // figure would measure a refusal
    conn.verify_form_value(&form_value, Some(&req.id)).unwrap();
    let tampered =
        base64::engine::general_purpose::STANDARD.encode(xml.replace("Everyone", "Admins"));
    assert!(conn.verify_form_value(&tampered, Some(&req.id)).is_err());
    Fixture {
        conn,
        form_value,
        request_id: req.id,
        _rt: rt,
        _dir: dir,
    }
}

fn bench(c: &mut Criterion) {
    let f = setup();
    let mut g = c.benchmark_group("saml_acs");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("verify_signed_response", |b| {
        b.iter(|| {
            f.conn
                .verify_form_value(std::hint::black_box(&f.form_value), Some(&f.request_id))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

/// `SAML_ACS_ITERATIONS=N` runs N verifications and no criterion: a fixed
/// workload for `valgrind --tool=callgrind`, whose instruction counts (unlike
/// timings on a shared machine) compare runs exactly. Per verification:
/// the difference between two such runs divided by the difference in N.
fn main() {
    if let Some(n) = std::env::var("SAML_ACS_ITERATIONS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    {
        let f = setup();
        for _ in 0..n {
            f.conn
                .verify_form_value(std::hint::black_box(&f.form_value), Some(&f.request_id))
                .unwrap();
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
